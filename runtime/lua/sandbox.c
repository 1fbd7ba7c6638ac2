/* sandbox.c: the Lua sandbox of a script set (see sandbox.h for the rules).
 *
 * Provides the capped allocator, the budget hook, the message handler and
 * lk_pcall, the allow-listed base and the per-call environments with their
 * require. Depends on Lua 5.4's public API only, and on lib_k8s.c for the
 * k8s module table (luaopen_k8s).
 *
 * Registry layout (all refs kept in struct lk_sandbox):
 *   chunks     module name -> compiled main chunk (a Lua function, 1 upvalue _ENV),
 *              or the compile error of a module that did not compile (a string)
 *   base       allow-listed functions; __index of every environment (read-only:
 *              no script can reach it, the environment metatable is protected)
 *   proxies    library name -> metatable of its per-call proxy: { __index =
 *              the library's template, __pairs, __metatable = false }
 *   k8ssub     k8s submodule name (cache, log, ...) -> metatable of its proxy
 *   envmt      { __index = base, __metatable = false }
 *   arraymt    a pristine copy of k8s.array_mt, restored after every call */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "core/json.h"
#include "lua/lib.h"
#include "lua/sandbox.h"

#define HOOK_EVERY 1000
#define HEADROOM ((size_t)1 << 20)

/* {====================================================================
 * Allocator and budget hook
 * ===================================================================== */

/* {====================================================================
 * The block pool: Lua's small blocks kept for reuse
 *
 * Most of what a reconcile allocates is small (tables, short strings,
 * closures, node and array parts) and is freed again by the next young
 * collection. Taking each block from malloc made the call's cost depend on
 * the state of the process heap: in the operator, whose informers parse and
 * free watch events between reconciles, malloc's search and consolidation
 * of that heap made a call ~1.5x dearer than in a fresh process
 * (bench/engine.c --churn). Lua passes a block's size back when it frees or
 * resizes it, so a free list per size class needs no header: blocks of up to
 * LK_POOL_MAX_BLOCK bytes are rounded up to a multiple of LK_POOL_GRAIN, and
 * a freed block goes to its class's list while the lists hold less than
 * LK_POOL_MAX_BYTES (beyond that, and for larger blocks, plain free). The
 * memory cap still counts the sizes Lua asked for.
 * ===================================================================== */

static size_t pool_class(size_t size)
{
  return (size + LK_POOL_GRAIN - 1) / LK_POOL_GRAIN;
}

/* A block of class c: from its list, else from malloc. */
static void *pool_get(struct lk_sandbox *sb, size_t c)
{
  void *p = sb->pool[c];
  if (p) {
    sb->pool[c] = *(void **)p;
    sb->pool_bytes -= c * LK_POOL_GRAIN;
    return p;
  }
  return malloc(c * LK_POOL_GRAIN);
}

/* Returns a block of class c to its list, or to malloc when the lists are
 * full. */
static void pool_put(struct lk_sandbox *sb, void *p, size_t c)
{
  if (sb->pool_bytes + c * LK_POOL_GRAIN > LK_POOL_MAX_BYTES) {
    free(p);
    return;
  }
  *(void **)p = sb->pool[c];
  sb->pool[c] = p;
  sb->pool_bytes += c * LK_POOL_GRAIN;
}

/* Frees every pooled block (after lua_close, or when idle). */
static void pool_drain(struct lk_sandbox *sb)
{
  for (size_t c = 0; c < LK_POOL_CLASSES; c++)
    while (sb->pool[c]) {
      void *p = sb->pool[c];
      sb->pool[c] = *(void **)p;
      free(p);
    }
  sb->pool_bytes = 0;
}

/* realloc through the pool: a block keeps its place while its class does not
 * change; otherwise the contents move. Pooled classes are 1 ..
 * LK_POOL_CLASSES - 1; class 0 (size 0) never reaches here. */
static void *pool_realloc(struct lk_sandbox *sb, void *ptr, size_t old, size_t nsize)
{
  size_t oc = ptr && old <= LK_POOL_MAX_BLOCK ? pool_class(old) : 0;
  size_t nc = nsize <= LK_POOL_MAX_BLOCK ? pool_class(nsize) : 0;
  if (ptr && oc == 0 && nc == 0) return realloc(ptr, nsize);
  if (ptr && oc == nc) return ptr;
  void *p = nc ? pool_get(sb, nc) : malloc(nsize);
  if (!p) return NULL;
  if (ptr) {
    memcpy(p, ptr, old < nsize ? old : nsize);
    if (oc)
      pool_put(sb, ptr, oc);
    else
      free(ptr);
  }
  return p;
}

/* }==================================================================== */

/* The capped allocator: frees always succeed; growth past the cap returns
 * NULL, which Lua turns into LUA_ERRMEM after an emergency collection. */
static void *sb_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
  struct lk_sandbox *sb = ud;
  size_t old = ptr ? osize : 0;
  if (nsize == 0) {
    if (ptr && old <= LK_POOL_MAX_BLOCK)
      pool_put(sb, ptr, pool_class(old));
    else
      free(ptr);
    sb->memory_used -= old;
    return NULL;
  }
  if (nsize > old) {
    size_t limit = sb->memory_limit + (sb->headroom ? HEADROOM : 0);
    if (sb->memory_used - old + nsize > limit) {
      sb->memory_refused = 1;
      return NULL;
    }
  }
  void *p = pool_realloc(sb, ptr, old, nsize);
  if (!p) return NULL;
  sb->memory_used = sb->memory_used - old + nsize;
  if (sb->memory_used > sb->memory_peak) sb->memory_peak = sb->memory_used;
  return p;
}

struct lk_sandbox *lk_sandbox_of(lua_State *L)
{
  return *(struct lk_sandbox **)lua_getextraspace(L);
}

/* Counts instructions in steps of HOOK_EVERY. Once the budget is spent the
 * hook re-arms itself on every instruction and line, and raises each time:
 * a script's pcall may catch the first error but not the next one. */
static void budget_hook(lua_State *L, lua_Debug *ar)
{
  struct lk_sandbox *sb = lk_sandbox_of(L);
  if (!sb->exhausted) {
    sb->used += HOOK_EVERY;
    if (sb->used < sb->budget) return;
    sb->exhausted = 1;
    luaL_where(L, 0);
    snprintf(sb->budget_where, sizeof(sb->budget_where), "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    lua_sethook(L, budget_hook, LUA_MASKCOUNT | LUA_MASKLINE, 1);
  }
  luaL_error(L, "instruction budget exceeded (%ld instructions)", sb->budget);
}

/* }==================================================================== */

/* {====================================================================
 * Errors
 * ===================================================================== */

static const char *const kind_names[] = {"none",   "runtime", "terminal", "memory",
                                         "budget", "syntax",  "result"};

const char *lk_error_kind_name(enum lk_error_kind kind)
{
  return kind_names[kind];
}

void lk_error_set(struct lk_error *err, enum lk_error_kind kind, const char *fmt, ...)
{
  if (!err) return;
  free(err->message);
  err->kind = kind;
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&err->message, fmt, ap) < 0) err->message = NULL;
  va_end(ap);
}

void lk_error_clear(struct lk_error *err)
{
  if (!err) return;
  free(err->message);
  free(err->traceback);
  memset(err, 0, sizeof(*err));
}

#define TERMINAL_MT "k8s.TerminalError"

int lk_raise_terminal(lua_State *L, const char *msg, int level)
{
  lua_createtable(L, 0, 1);
  luaL_where(L, level);
  lua_pushstring(L, msg);
  lua_concat(L, 2);
  lua_setfield(L, -2, "message");
  lua_pushboolean(L, 1);
  lua_setfield(L, -2, "terminal");
  luaL_setmetatable(L, TERMINAL_MT);
  return lua_error(L);
}

static int terminal_tostring(lua_State *L)
{
  lua_getfield(L, 1, "message");
  return 1;
}

static int is_terminal(lua_State *L, int idx)
{
  if (lua_type(L, idx) != LUA_TTABLE || !lua_getmetatable(L, idx)) return 0;
  luaL_getmetatable(L, TERMINAL_MT);
  int eq = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return eq;
}

/* The message handler of lk_pcall: turns the error into a string (or keeps a
 * terminal error table), and records the traceback in the sandbox. Runs with
 * a little headroom above the memory cap so it can build the traceback. */
static int msghandler(lua_State *L)
{
  struct lk_sandbox *sb = lk_sandbox_of(L);
  sb->headroom++;
  if (!is_terminal(L, 1) && lua_type(L, 1) != LUA_TSTRING) {
    if (!luaL_callmeta(L, 1, "__tostring") || lua_type(L, -1) != LUA_TSTRING)
      lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    lua_replace(L, 1);
    lua_settop(L, 1);
  }
  luaL_traceback(L, L, NULL, 1);
  free(sb->traceback);
  sb->traceback = strdup(lua_tostring(L, -1));
  lua_pop(L, 1);
  sb->headroom--;
  return 1;
}

int lk_pcall(struct lk_sandbox *sb, struct lk_ctx *ctx, int nargs, int nresults,
             struct lk_error *err)
{
  lua_State *L = sb->L;
  int base = lua_gettop(L) - nargs;
  struct lk_ctx *saved = sb->ctx;
  lua_pushcfunction(L, msghandler);
  lua_insert(L, base);
  sb->ctx = ctx;
  sb->used = 0;
  sb->exhausted = 0;
  sb->memory_refused = 0;
  sb->budget_where[0] = '\0';
  free(sb->traceback);
  sb->traceback = NULL;
  lua_sethook(L, budget_hook, LUA_MASKCOUNT, HOOK_EVERY);
  int st = lua_pcall(L, nargs, nresults, base);
  lua_sethook(L, NULL, 0, 0);
  sb->ctx = saved;
  lua_remove(L, base);
  if (st == LUA_OK) return st;

  if (err) {
    lk_error_clear(err);
    if (sb->exhausted) {
      lk_error_set(err, LK_ERR_BUDGET, "%sinstruction budget exceeded (%ld instructions)",
                   sb->budget_where, sb->budget);
    } else if (st == LUA_ERRMEM || (sb->memory_refused && lua_isstring(L, -1) &&
                                    strstr(lua_tostring(L, -1), "not enough memory"))) {
      lk_error_set(err, LK_ERR_MEMORY, "not enough memory (memory limit %zu MiB)",
                   sb->memory_limit >> 20);
    } else if (is_terminal(L, -1)) {
      lua_getfield(L, -1, "message");
      lk_error_set(err, LK_ERR_TERMINAL, "%s", lua_tostring(L, -1));
      lua_pop(L, 1);
    } else {
      const char *msg = lua_tostring(L, -1);
      lk_error_set(err, LK_ERR_RUNTIME, "%s", msg ? msg : "(error object is not a string)");
    }
    err->traceback = sb->traceback;
    sb->traceback = NULL;
  }
  lua_pop(L, 1);
  lua_gc(L, LUA_GCCOLLECT);
  return st;
}

/* }==================================================================== */

/* {====================================================================
 * Wrapped base functions
 * ===================================================================== */

/* setmetatable without finalizers: a __gc could run at any later time, in
 * another reconcile or outside any budget. */
static int sb_setmetatable(lua_State *L)
{
  int t = lua_type(L, 2);
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
  if (t == LUA_TTABLE) {
    lua_pushliteral(L, "__gc");
    if (lua_rawget(L, 2) != LUA_TNIL)
      return luaL_error(L, "setmetatable: __gc metamethods are not allowed in the sandbox");
    lua_pop(L, 1);
  }
  if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
    return luaL_error(L, "cannot change a protected metatable");
  lua_settop(L, 2);
  lua_setmetatable(L, 1);
  return 1;
}

/* The message handler a script gives to xpcall, guarded: an error raised by
 * the budget hook calls the handler from inside the hook, where hooks are
 * off, so a looping handler would never be stopped. Once the budget is
 * spent the script's handler is skipped and the error passes unchanged. */
static int guarded_handler(lua_State *L)
{
  if (lk_sandbox_of(L)->exhausted) return 1;
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, lua_gettop(L) - 1, 1);
  return 1;
}

/* xpcall(f, msgh, ...) with msgh guarded; upvalue 1 is the real xpcall. */
static int sb_xpcall(lua_State *L)
{
  int n = lua_gettop(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_pushvalue(L, 2);
  lua_pushcclosure(L, guarded_handler, 1);
  lua_replace(L, 2);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_insert(L, 1);
  lua_call(L, n, LUA_MULTRET);
  return lua_gettop(L);
}

#define RESERVEDSLOT 5

/* Reader for load(function): the lbaselib.c generic_reader. */
static const char *generic_reader(lua_State *L, void *ud, size_t *size)
{
  luaL_checkstack(L, 2, "too many nested functions");
  lua_pushvalue(L, 1);
  lua_call(L, 0, 1);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    *size = 0;
    return NULL;
  } else if (!lua_isstring(L, -1))
    luaL_error(L, "reader function must return a string");
  lua_replace(L, RESERVEDSLOT);
  return lua_tolstring(L, RESERVEDSLOT, size);
}

/* load(chunk [, chunkname [, mode [, env]]]): text mode only, whatever mode
 * says; env defaults to the calling environment (upvalue 1). */
static int sb_load(lua_State *L)
{
  int status;
  size_t l;
  const char *s = lua_tolstring(L, 1, &l);
  int env = !lua_isnone(L, 4) ? 4 : 0;
  if (s != NULL) {
    const char *chunkname = luaL_optstring(L, 2, s);
    status = luaL_loadbufferx(L, s, l, chunkname, "t");
  } else {
    const char *chunkname = luaL_optstring(L, 2, "=(load)");
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_settop(L, RESERVEDSLOT);
    status = lua_load(L, generic_reader, NULL, chunkname, "t");
  }
  if (status != LUA_OK) {
    luaL_pushfail(L);
    lua_insert(L, -2);
    return 2;
  }
  if (env)
    lua_pushvalue(L, env);
  else
    lua_pushvalue(L, lua_upvalueindex(1));
  if (!lua_setupvalue(L, -2, 1)) lua_pop(L, 1);
  return 1;
}

/* require(name), upvalues: 1 the environment, 2 its loaded table. The
 * module's compiled main chunk is re-run with the environment as its _ENV,
 * so each call gets its own instance of every module it uses. */
static int sb_require(lua_State *L)
{
  const char *name = luaL_checkstring(L, 1);
  lua_settop(L, 1);
  if (lua_getfield(L, lua_upvalueindex(2), name) != LUA_TNIL) {
    if (lua_touserdata(L, -1) == (void *)sb_require)
      return luaL_error(L, "loop or previous error loading module '%s'", name);
    return 1;
  }
  lua_pop(L, 1);
  if (!strcmp(name, "k8s")) {
    lua_getfield(L, lua_upvalueindex(1), "k8s");
    return 1;
  }
  struct lk_sandbox *sb = lk_sandbox_of(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, sb->chunks_ref);
  int t = lua_getfield(L, 2, name);
  if (t == LUA_TSTRING) /* the module is in the set but did not compile */
    return luaL_error(L, "module '%s' does not compile: %s", name, lua_tostring(L, -1));
  if (t != LUA_TFUNCTION)
    return luaL_error(L,
                      "module '%s' not found: require loads only Lua modules of the script "
                      "set (no C modules)",
                      name);
  /* stack: name, chunks, chunk */
  lua_pushlightuserdata(L, (void *)sb_require); /* loading sentinel */
  lua_setfield(L, lua_upvalueindex(2), name);
  lua_pushvalue(L, lua_upvalueindex(1));
  lua_setupvalue(L, 3, 1); /* _ENV of this instance: the call's environment */
  lua_pushvalue(L, 1);
  lua_call(L, 1, 1);
  /* stack: name, chunks, result */
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_pushboolean(L, 1);
  }
  lua_pushvalue(L, -1);
  lua_setfield(L, lua_upvalueindex(2), name);
  return 1;
}

/* }==================================================================== */

/* {====================================================================
 * Building the base and the per-call environments
 * ===================================================================== */

static const char *const base_allowed[] = {
    "assert",   "error",    "getmetatable", "ipairs",   "next",   "pairs",
    "pcall",    "rawequal", "rawget",       "rawlen",   "rawset", "select",
    "tonumber", "tostring", "type",         "_VERSION", NULL};

/* Copies the fields named in keys (NULL: all but those in skip) from the table
 * at src into a new table. */
static void copy_fields(lua_State *L, int src, const char *const *keys, const char *const *skip)
{
  src = lua_absindex(L, src);
  lua_newtable(L);
  if (keys) {
    for (int i = 0; keys[i]; i++) {
      lua_getfield(L, src, keys[i]);
      lua_setfield(L, -2, keys[i]);
    }
    return;
  }
  lua_pushnil(L);
  while (lua_next(L, src)) {
    int skipped = 0;
    if (skip && lua_type(L, -2) == LUA_TSTRING)
      for (int i = 0; skip[i]; i++)
        if (!strcmp(lua_tostring(L, -2), skip[i])) skipped = 1;
    if (skipped) {
      lua_pop(L, 1);
      continue;
    }
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, -4);
  }
}

/* __pairs of a library proxy: iterates the template's keys (upvalue 1)
 * and yields the proxy's view of each value, so pairs(k8s) gives the
 * per-call sub-proxies, never the templates. */
static int proxy_next(lua_State *L)
{
  lua_settop(L, 2);
  if (!lua_next(L, lua_upvalueindex(1))) return 0;
  lua_pop(L, 1);
  lua_pushvalue(L, -1);
  lua_gettable(L, 1);
  return 2;
}

static int proxy_pairs(lua_State *L)
{
  lua_pushvalue(L, lua_upvalueindex(1)); /* the iterator */
  lua_pushvalue(L, 1);
  lua_pushnil(L);
  return 3;
}

/* Pushes the metatable for proxies of the template at idx. */
static void push_proxy_mt(lua_State *L, int idx)
{
  idx = lua_absindex(L, idx);
  lua_createtable(L, 0, 3);
  lua_pushvalue(L, idx);
  lua_setfield(L, -2, "__index");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_pushvalue(L, idx);
  lua_pushcclosure(L, proxy_next, 1);
  lua_pushcclosure(L, proxy_pairs, 1);
  lua_setfield(L, -2, "__pairs");
}

/* Shallow copy of the table at idx. */
static void copy_table(lua_State *L, int idx)
{
  idx = lua_absindex(L, idx);
  lua_createtable(L, 0, 8);
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, -4);
  }
}

/* Step 1 of open_sandbox: the allowed standard libraries, the string
 * metatable hidden, the terminal error metatable. Stack balanced. */
static void open_libs(lua_State *L)
{
  static const luaL_Reg libs[] = {{LUA_GNAME, luaopen_base},
                                  {LUA_STRLIBNAME, luaopen_string},
                                  {LUA_TABLIBNAME, luaopen_table},
                                  {LUA_MATHLIBNAME, luaopen_math},
                                  {LUA_UTF8LIBNAME, luaopen_utf8},
                                  {LUA_OSLIBNAME, luaopen_os},
                                  {NULL, NULL}};
  for (const luaL_Reg *lib = libs; lib->func; lib++) {
    luaL_requiref(L, lib->name, lib->func, 1);
    lua_pop(L, 1);
  }
  /* the string metatable is shared by every string: hide it */
  lua_pushliteral(L, "");
  lua_getmetatable(L, -1);
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 2);
  /* terminal errors: a protected metatable */
  luaL_newmetatable(L, TERMINAL_MT);
  lua_pushcfunction(L, terminal_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_pushliteral(L, TERMINAL_MT);
  lua_setfield(L, -2, "__metatable");
  lua_pop(L, 1);
}

/* Step 2: base, the allow-listed functions of the real globals (at the top
 * of the stack) plus wrappers, into sb->base_ref. Stack balanced. */
static void make_base(lua_State *L, struct lk_sandbox *sb)
{
  copy_fields(L, -1, base_allowed, NULL);
  lua_pushcfunction(L, sb_setmetatable);
  lua_setfield(L, -2, "setmetatable");
  lua_getfield(L, -2, "xpcall");
  lua_pushcclosure(L, sb_xpcall, 1);
  lua_setfield(L, -2, "xpcall");
  sb->base_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

/* Step 3b: with the globals and the proxies table at the top, adds k8s's
 * proxy metatable to the proxies, and one for each k8s submodule (all table
 * fields but array_mt) into sb->k8ssub_ref. Stack balanced. */
static void make_k8s_proxies(lua_State *L, struct lk_sandbox *sb)
{
  luaL_requiref(L, "k8s", luaopen_k8s, 0);
  push_proxy_mt(L, -1);
  lua_setfield(L, -3, "k8s");
  lua_newtable(L);
  lua_pushnil(L);
  while (lua_next(L, -3)) {
    if (lua_istable(L, -1) && strcmp(lua_tostring(L, -2), "array_mt")) {
      push_proxy_mt(L, -1);
      lua_pushvalue(L, -3);
      lua_insert(L, -2);
      lua_rawset(L, -5);
    }
    lua_pop(L, 1);
  }
  sb->k8ssub_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pop(L, 1); /* k8s */
}

/* Step 3: the proxy metatables of the libraries (each call gets { } with
 * __index = the library's template), string without dump, os reduced to
 * time, clock and date, into sb->templates_ref. The globals are at the top
 * of the stack. Stack balanced. */
static void make_templates(lua_State *L, struct lk_sandbox *sb)
{
  static const char *const no_dump[] = {"dump", NULL};
  static const char *const os_allowed[] = {"time", "clock", "date", NULL};
  static const char *const plain[] = {LUA_TABLIBNAME, LUA_MATHLIBNAME, LUA_UTF8LIBNAME, NULL};
  lua_newtable(L); /* proxies */
  lua_getfield(L, -2, LUA_STRLIBNAME);
  lua_pushnil(L);
  lua_setfield(L, -2, "dump"); /* also gone from ("").dump */
  copy_fields(L, -1, NULL, no_dump);
  push_proxy_mt(L, -1);
  lua_setfield(L, -4, LUA_STRLIBNAME);
  lua_pop(L, 2);
  for (int i = 0; plain[i]; i++) {
    lua_getfield(L, -2, plain[i]);
    push_proxy_mt(L, -1);
    lua_setfield(L, -3, plain[i]);
    lua_pop(L, 1);
  }
  lua_getfield(L, -2, LUA_OSLIBNAME);
  copy_fields(L, -1, os_allowed, NULL);
  push_proxy_mt(L, -1);
  lua_setfield(L, -4, LUA_OSLIBNAME);
  lua_pop(L, 2);
  make_k8s_proxies(L, sb);
  sb->templates_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

/* Step 4: a pristine copy of k8s.array_mt, the environment metatable
 * (__index = base) and the chunk table, into their refs. Stack balanced. */
static void make_refs(lua_State *L, struct lk_sandbox *sb)
{
  k8s_json_push_array_mt(L);
  copy_table(L, -1);
  sb->arraymt_snapshot_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pop(L, 1);

  lua_createtable(L, 0, 2);
  lua_rawgeti(L, LUA_REGISTRYINDEX, sb->base_ref);
  lua_setfield(L, -2, "__index");
  lua_pushboolean(L, 0);
  lua_setfield(L, -2, "__metatable");
  sb->envmt_ref = luaL_ref(L, LUA_REGISTRYINDEX);

  lua_newtable(L);
  sb->chunks_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}

/* Builds the sandbox's registry state, protected (lk_sandbox_new calls it
 * under lua_pcall: an allocation failure is an error, not a panic);
 * argument 1: the struct lk_sandbox, light userdata. */
static int open_sandbox(lua_State *L)
{
  struct lk_sandbox *sb = lua_touserdata(L, 1);
  open_libs(L);
  lua_pushglobaltable(L);
  make_base(L, sb);
  make_templates(L, sb);
  lua_pop(L, 1); /* globals */
  make_refs(L, sb);
  return 0;
}

void lk_sandbox_push_env(lua_State *L)
{
  struct lk_sandbox *sb = lk_sandbox_of(L);
  luaL_checkstack(L, 8, NULL);
  lua_createtable(L, 0, 12);
  int env = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, sb->templates_ref);
  lua_pushnil(L);
  while (lua_next(L, -2)) { /* name -> proxy metatable */
    lua_createtable(L, 0, 0);
    lua_insert(L, -2);
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, env);
  }
  lua_pop(L, 1);
  lua_getfield(L, env, "k8s");
  lua_rawgeti(L, LUA_REGISTRYINDEX, sb->k8ssub_ref);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    lua_createtable(L, 0, 0);
    lua_insert(L, -2);
    lua_setmetatable(L, -2);
    lua_pushvalue(L, -2);
    lua_insert(L, -2);
    lua_rawset(L, -5);
  }
  lua_pop(L, 2);
  lua_pushvalue(L, env);
  lua_setfield(L, env, "_G");
  lua_pushvalue(L, env);
  lua_pushcclosure(L, sb_load, 1);
  lua_setfield(L, env, "load");
  lua_pushvalue(L, env);
  lua_newtable(L);
  lua_pushcclosure(L, sb_require, 2);
  lua_setfield(L, env, "require");
  lua_rawgeti(L, LUA_REGISTRYINDEX, sb->envmt_ref);
  lua_setmetatable(L, env);
  /* a fixed random sequence per call: fixtures and render stay reproducible */
  lua_getfield(L, env, "math");
  lua_getfield(L, -1, "randomseed");
  lua_pushinteger(L, 0);
  lua_call(L, 1, 0);
  lua_pop(L, 1);
}

void lk_sandbox_require(lua_State *L, int env_idx, const char *name)
{
  env_idx = lua_absindex(L, env_idx);
  lua_getfield(L, env_idx, "require");
  lua_pushstring(L, name);
  lua_call(L, 1, 1);
}

/* Restores k8s.array_mt to its pristine contents if a script changed it. */
static int restore_array_mt(lua_State *L)
{
  struct lk_sandbox *sb = lk_sandbox_of(L);
  k8s_json_push_array_mt(L);
  int mt = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, sb->arraymt_snapshot_ref);
  int snap = mt + 1;
  int same = lua_getmetatable(L, mt) == 0;
  size_t n = 0;
  lua_pushnil(L);
  while (same && lua_next(L, mt)) {
    n++;
    lua_pushvalue(L, -2);
    lua_rawget(L, snap);
    same = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
  }
  if (!same) lua_settop(L, snap);
  size_t m = 0;
  lua_pushnil(L);
  while (same && lua_next(L, snap))
    m++, lua_pop(L, 1);
  if (!same || n != m) {
    lua_pushnil(L);
    lua_setmetatable(L, mt);
    for (;;) {
      lua_pushnil(L);
      if (!lua_next(L, mt)) break;
      lua_pop(L, 1);
      lua_pushnil(L);
      lua_rawset(L, mt);
    }
    lua_pushnil(L);
    while (lua_next(L, snap)) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, mt);
    }
  }
  lua_settop(L, mt - 1);
  return 0;
}

/* }==================================================================== */

struct lk_sandbox *lk_sandbox_new(const struct lk_sandbox_opts *opts)
{
  struct lk_sandbox *sb = calloc(1, sizeof(*sb));
  if (!sb) return NULL;
  sb->memory_limit = opts && opts->memory_limit ? opts->memory_limit : LK_DEFAULT_MEMORY_LIMIT;
  sb->budget =
      opts && opts->instruction_budget ? opts->instruction_budget : LK_DEFAULT_INSTRUCTION_BUDGET;
  sb->L = lua_newstate(sb_alloc, sb);
  if (!sb->L) {
    pool_drain(sb);
    free(sb);
    return NULL;
  }
  *(struct lk_sandbox **)lua_getextraspace(sb->L) = sb;
  lua_atpanic(sb->L, NULL);
  lua_gc(sb->L, LUA_GCGEN, 0, 0);
  lua_pushcfunction(sb->L, open_sandbox);
  lua_pushlightuserdata(sb->L, sb);
  if (lua_pcall(sb->L, 1, 0, 0) != LUA_OK) {
    lua_close(sb->L);
    pool_drain(sb);
    free(sb);
    return NULL;
  }
  return sb;
}

void lk_sandbox_release_pool(struct lk_sandbox *sb)
{
  if (sb) pool_drain(sb);
}

void lk_sandbox_free(struct lk_sandbox *sb)
{
  if (!sb) return;
  lua_close(sb->L);
  pool_drain(sb);
  free(sb->traceback);
  free(sb);
}

int lk_sandbox_add_module(struct lk_sandbox *sb, const char *name, const char *path,
                          const char *source, size_t len, struct lk_error *err)
{
  lua_State *L = sb->L;
  char chunkname[512];
  snprintf(chunkname, sizeof(chunkname), "@%s", path);
  sb->headroom++;
  int st = luaL_loadbufferx(L, source, len, chunkname, "t");
  sb->headroom--;
  if (st != LUA_OK) {
    lk_error_set(err, st == LUA_ERRMEM ? LK_ERR_MEMORY : LK_ERR_SYNTAX, "%s", lua_tostring(L, -1));
    if (st != LUA_ERRMEM) { /* remembered, so a require says why, not "not found" */
      lua_rawgeti(L, LUA_REGISTRYINDEX, sb->chunks_ref);
      lua_insert(L, -2);
      lua_setfield(L, -2, name);
    }
    lua_pop(L, 1);
    return -1;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, sb->chunks_ref);
  lua_insert(L, -2);
  lua_setfield(L, -2, name); /* may raise only on memory errors: tiny */
  lua_pop(L, 1);
  return 0;
}

/* Exported for the engine: call after each protected call that ran script
 * code. Never raises (runs protected). */
void lk_sandbox_after_call(struct lk_sandbox *sb)
{
  lua_State *L = sb->L;
  sb->headroom++;
  lua_pushcfunction(L, restore_array_mt);
  lua_pcall(L, 0, 0, 0);
  sb->headroom--;
  lua_settop(L, 0);
}
