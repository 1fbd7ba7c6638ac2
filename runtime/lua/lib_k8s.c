/* lib_k8s.c: luaopen_k8s, the top of the k8s module: the clock, terminal
 * errors, the JSON markers, sha256, and the submodules (cache, discovery,
 * log, json, yaml) as fields. The markers come from core/json.h, the digest
 * and the time format from core/util.h. */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "core/json.h"
#include "core/util.h"
#include "lua/context.h"
#include "lua/lib.h"
#include "lua/sandbox.h"

/* {====================================================================
 * Helpers shared by the lib_*.c files
 * ===================================================================== */

struct lk_ctx *lk_check_ctx(lua_State *L, const char *what)
{
  struct lk_sandbox *sb = lk_sandbox_of(L);
  if (!sb || !sb->ctx) luaL_error(L, "%s: not available here (no reconcile is running)", what);
  return sb->ctx;
}

static int push_lstring(lua_State *L)
{
  lua_pushlstring(L, lua_touserdata(L, 1), (size_t)lua_tointeger(L, 2));
  return 1;
}

void lk_push_owned(lua_State *L, char *text, size_t len)
{
  luaL_checkstack(L, 4, NULL);
  lua_pushcfunction(L, push_lstring);
  lua_pushlightuserdata(L, text);
  lua_pushinteger(L, (lua_Integer)len);
  int st = lua_pcall(L, 2, 1, 0);
  free(text);
  if (st != LUA_OK) lua_error(L);
}

int lk_push_fail(lua_State *L, const char *reason, int code, const char *msg)
{
  lua_pushnil(L);
  lua_createtable(L, 0, 3);
  lua_pushstring(L, reason);
  lua_setfield(L, -2, "reason");
  lua_pushinteger(L, code);
  lua_setfield(L, -2, "code");
  lua_pushstring(L, msg);
  lua_setfield(L, -2, "message");
  return 2;
}

/* }==================================================================== */

/* k8s.now(): RFC 3339 UTC; fixed by the call's context in fixtures. */
static int k8s_now(lua_State *L)
{
  struct lk_sandbox *sb = lk_sandbox_of(L);
  if (sb && sb->ctx && sb->ctx->now) {
    lua_pushstring(L, sb->ctx->now);
    return 1;
  }
  char buf[K8S_TIME_BUF];
  k8s_rfc3339(k8s_wallclock(), buf);
  lua_pushstring(L, buf);
  return 1;
}

/* k8s.terminal(msg): raises a terminal error (reason InvalidSpec, no retry). */
static int k8s_terminal(lua_State *L)
{
  const char *msg = luaL_checkstring(L, 1);
  return lk_raise_terminal(L, msg, 1);
}

/* k8s.array(t): marks t (or a new table) as a JSON array; returns it. */
static int k8s_array(lua_State *L)
{
  if (lua_isnoneornil(L, 1)) {
    lua_settop(L, 0);
    lua_newtable(L);
  }
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  if (lua_getmetatable(L, 1)) {
    k8s_json_push_array_mt(L);
    if (!lua_rawequal(L, -1, -2)) luaL_argerror(L, 1, "table already has a metatable");
    lua_pop(L, 2);
    return 1;
  }
  k8s_json_mark_array(L, 1);
  return 1;
}

/* k8s.sha256(s): lower-case hex digest. */
static int k8s_sha256(lua_State *L)
{
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  char hex[K8S_SHA256_HEX_LEN];
  k8s_sha256_hex(s, len, hex);
  lua_pushstring(L, hex);
  return 1;
}

static const luaL_Reg k8slib[] = {{"array", k8s_array},
                                  {"now", k8s_now},
                                  {"sha256", k8s_sha256},
                                  {"terminal", k8s_terminal},
                                  {NULL, NULL}};

static const luaL_Reg submodules[] = {
    {"cache", luaopen_k8s_cache}, {"discovery", luaopen_k8s_discovery}, {"json", luaopen_k8s_json},
    {"log", luaopen_k8s_log},     {"yaml", luaopen_k8s_yaml},           {NULL, NULL}};

int luaopen_k8s(lua_State *L)
{
  luaL_newlib(L, k8slib);
  k8s_json_push_null(L);
  lua_setfield(L, -2, "null");
  k8s_json_push_array_mt(L);
  lua_setfield(L, -2, "array_mt");
  for (const luaL_Reg *m = submodules; m->func; m++) {
    m->func(L);
    lua_setfield(L, -2, m->name);
  }
  return 1;
}
