/* k8sengine.c: the engine of runtime/lua/ as a Lua module for busted
 * (build/lua/k8sengine.so), so specs run scripts in the production sandbox:
 * load a script set (directory + overlay), check it, run fixture cases, run
 * reconciles with in-memory observed objects, evaluate snippets.
 *
 *   local k8sengine = require("k8sengine")
 *   local eng, problems = k8sengine.load(dir, { overlay = { ["a.b.lua"] = src },
 *                                             memory_limit = n, instruction_budget = n })
 *   eng:revision()                      "sha256:..."
 *   eng:controllers()                   declarations from controllers.lua
 *   eng:fixtures()                      fixture file paths
 *   eng:check()                         ok, messages, ncases
 *   eng:reconcile(name, cr, { observed = {...}, now = "...", without_kinds = {...},
 *                             grants = "all"|"labels" })
 *                                       result table (see lk_result_to_json) + logs;
 *                                       grants "labels" reads Namespace objects of
 *                                       observed (engine.h, enum lk_grants)
 *   eng:run_case(path, i)               ok, failures, result
 *   eng:map(name, watch_i, obj, { observed = ... })   keys | nil, err
 *   eng:eval(code)                      value | nil, message, kind
 *   eng:memory()                        { used, peak, loaded, limit }
 *   eng:close()
 *   k8sengine.cases(path)               { { name, controller }, ... } | nil, err
 *   k8sengine.fixture_files(dir)        sorted "<dir>/<folder>/fixtures/<case>.yaml"
 *
 * Misuse raises; load problems and failed reconciles are data (lists,
 * result.error). The userdata "k8s.Engine" is created closed, then filled;
 * __gc and __close share one idempotent release. */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "core/json.h"
#include "lua/engine.h"
#include "lua/fixture.h"
#include "lua/memsource.h"

#define ENGINE_MT "k8s.Engine"

struct ud_engine {
  struct lk_engine *e;
  struct lk_messages problems; /* from loading */
};

static struct ud_engine *check_engine(lua_State *L)
{
  struct ud_engine *u = luaL_checkudata(L, 1, ENGINE_MT);
  if (!u->e) luaL_error(L, "k8sengine: engine is closed");
  return u;
}

static void push_messages(lua_State *L, const struct lk_messages *m)
{
  lua_createtable(L, (int)m->n, 0);
  for (size_t i = 0; i < m->n; i++) {
    lua_pushstring(L, m->v[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
}

/* Converts the Lua value at idx to JSON or raises naming what. */
static json_t *check_json(lua_State *L, int idx, const char *what)
{
  char err[300];
  json_t *v = k8s_json_from_lua(L, idx, err, sizeof(err));
  if (!v) luaL_error(L, "k8sengine: %s: %s", what, err);
  return v;
}

/* Pushes a JSON value and drops the reference, also if pushing raises. */
static int p_push(lua_State *L)
{
  k8s_json_push_value(L, lua_touserdata(L, 1));
  return 1;
}

static void push_json_owned(lua_State *L, json_t *v)
{
  lua_pushcfunction(L, p_push);
  lua_pushlightuserdata(L, v);
  int st = lua_pcall(L, 1, 1, 0);
  json_decref(v);
  if (st != LUA_OK) lua_error(L);
}

/* {====================================================================
 * Loading
 * ===================================================================== */

static int engine_release(lua_State *L)
{
  struct ud_engine *u = luaL_checkudata(L, 1, ENGINE_MT);
  lk_engine_free(u->e);
  u->e = NULL;
  lk_messages_free(&u->problems);
  return 0;
}

/* k8sengine.load(dir [, opts]) -> engine, problems | nil, problems */
static int k8sengine_load(lua_State *L)
{
  const char *dir = luaL_optstring(L, 1, NULL);
  struct lk_engine_opts eo = {0};
  const char *origin = NULL;
  lua_settop(L, 2);
  struct ud_engine *u = lua_newuserdatauv(L, sizeof(*u), 0); /* 3: closed */
  memset(u, 0, sizeof(*u));
  luaL_setmetatable(L, ENGINE_MT);
  size_t nov = 0;
  struct lk_overlay_entry *ov = NULL;
  if (!lua_isnil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "memory_limit");
    eo.memory_limit = (size_t)luaL_optinteger(L, -1, 0);
    lua_getfield(L, 2, "instruction_budget");
    eo.instruction_budget = (long)luaL_optinteger(L, -1, 0);
    lua_getfield(L, 2, "origin");
    origin = luaL_optstring(L, -1, NULL);
    lua_pop(L, 3);
    if (lua_getfield(L, 2, "overlay") == LUA_TTABLE) { /* 4 */
      lua_pushnil(L);
      while (lua_next(L, 4))
        nov++, lua_pop(L, 1);
      ov = lua_newuserdatauv(L, (nov + 1) * sizeof(*ov), 0); /* 5: freed by the GC */
      size_t i = 0;
      lua_pushnil(L);
      while (lua_next(L, 4)) {
        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
          luaL_argerror(L, 2, "overlay must map module keys to source strings");
        ov[i].key = lua_tostring(L, -2);
        ov[i].source = lua_tolstring(L, -1, &ov[i].len);
        i++;
        lua_pop(L, 1);
      }
    }
  }
  char err[600];
  struct lk_scriptset *set;
  if (lk_scriptset_load(dir, ov, nov, origin, &set, err, sizeof(err)) != 0) {
    lua_pushnil(L);
    lua_createtable(L, 1, 0);
    lua_pushstring(L, err);
    lua_rawseti(L, -2, 1);
    return 2;
  }
  if (lk_engine_new(set, &eo, &u->e, &u->problems) < 0)
    return luaL_error(L, "k8sengine.load: out of memory");
  lua_pushvalue(L, 3);
  push_messages(L, &u->problems);
  return 2;
}

/* }==================================================================== */

/* {====================================================================
 * Engine methods
 * ===================================================================== */

static int engine_revision(lua_State *L)
{
  lua_pushstring(L, check_engine(L)->e->set->revision);
  return 1;
}

static void push_gvk(lua_State *L, const struct lk_gvk *g)
{
  lua_createtable(L, 0, 2);
  lua_pushstring(L, g->api_version);
  lua_setfield(L, -2, "apiVersion");
  lua_pushstring(L, g->kind);
  lua_setfield(L, -2, "kind");
}

static int engine_controllers(lua_State *L)
{
  struct lk_engine *e = check_engine(L)->e;
  lua_createtable(L, (int)e->ncontrollers, 0);
  for (size_t i = 0; i < e->ncontrollers; i++) {
    const struct lk_controller_decl *c = &e->controllers[i];
    lua_createtable(L, 0, 6);
    lua_pushstring(L, c->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, c->module);
    lua_setfield(L, -2, "module");
    lua_pushboolean(L, c->valid);
    lua_setfield(L, -2, "valid");
    push_gvk(L, &c->for_);
    lua_setfield(L, -2, "for_");
    lua_createtable(L, (int)c->nowns, 0);
    for (size_t k = 0; k < c->nowns; k++) {
      push_gvk(L, &c->owns[k]);
      lua_rawseti(L, -2, (lua_Integer)k + 1);
    }
    lua_setfield(L, -2, "owns");
    lua_createtable(L, (int)c->nwatches, 0);
    for (size_t k = 0; k < c->nwatches; k++) {
      push_gvk(L, &c->watches[k].gvk);
      if (c->watches[k].map) {
        lua_pushstring(L, c->watches[k].map);
        lua_setfield(L, -2, "map");
      }
      lua_rawseti(L, -2, (lua_Integer)k + 1);
    }
    lua_setfield(L, -2, "watches");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

static int engine_fixtures(lua_State *L)
{
  struct lk_engine *e = check_engine(L)->e;
  lua_createtable(L, (int)e->set->nfixtures, 0);
  for (size_t i = 0; i < e->set->nfixtures; i++) {
    lua_pushfstring(L, "%s/%s", e->set->dir, e->set->fixtures[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  return 1;
}

/* eng:check() -> ok, messages, ncases */
static int engine_check(lua_State *L)
{
  struct ud_engine *u = check_engine(L);
  struct lk_messages m = {0};
  for (size_t i = 0; i < u->problems.n; i++)
    lk_messages_add(&m, "%s", u->problems.v[i]);
  size_t ncases, nfailed;
  lk_fixture_run_all(u->e, &m, &ncases, &nfailed);
  lua_pushboolean(L, m.n == 0);
  push_messages(L, &m);
  lk_messages_free(&m);
  lua_pushinteger(L, (lua_Integer)ncases);
  return 3;
}

/* Fills a memsource from opts (observed, without_kinds) and the CR. */
static struct lk_memsource *memsource_from(lua_State *L, int opts, const json_t *cr,
                                           const struct lk_controller_decl *c)
{
  struct lk_memsource *ms = lk_memsource_new();
  char err[300];
  for (size_t i = 0; i < c->nkinds; i++)
    lk_memsource_declare(ms, c->kinds[i].api_version, c->kinds[i].kind);
  if (cr && lk_memsource_add(ms, cr, err, sizeof(err)) != 0) {
    lk_memsource_free(ms);
    luaL_error(L, "k8sengine: cr: %s", err);
  }
  if (lua_isnoneornil(L, opts)) return ms;
  luaL_checktype(L, opts, LUA_TTABLE);
  if (lua_getfield(L, opts, "observed") == LUA_TTABLE) {
    char jerr[300];
    json_t *obs = k8s_json_from_lua(L, -1, jerr, sizeof(jerr));
    size_t i;
    json_t *o;
    int bad = !obs;
    json_array_foreach(obs, i, o)
    {
      if (!bad && lk_memsource_add(ms, o, err, sizeof(err)) != 0) bad = 1;
    }
    json_decref(obs);
    if (bad) {
      lk_memsource_free(ms);
      luaL_error(L, "k8sengine: observed: %s", obs ? err : jerr);
    }
  }
  lua_pop(L, 1);
  if (lua_getfield(L, opts, "without_kinds") == LUA_TTABLE) {
    for (lua_Integer i = 1; lua_geti(L, -1, i) == LUA_TSTRING; i++) {
      if (lk_memsource_without(ms, lua_tostring(L, -1)) != 0) {
        lk_memsource_free(ms);
        luaL_error(L, "k8sengine: without_kinds[%d]: expected \"apiVersion/Kind\"", (int)i);
      }
      lua_pop(L, 1);
    }
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
  return ms;
}

static void capture(void *ud, enum k8s_log_level level, int v, const char *msg,
                    const struct k8s_log_field *fields, size_t nfields)
{
  json_t *rec = json_pack("{s:s, s:s}", "level", k8s_log_level_name(level), "msg", msg);
  for (size_t i = 0; i < nfields; i++) {
    const struct k8s_log_field *f = &fields[i];
    json_t *val = f->type == K8S_LOG_STR        ? json_string(f->s ? f->s : "")
                  : f->type == K8S_LOG_INT      ? json_integer(f->i)
                  : f->type == K8S_LOG_REAL     ? json_real(f->d)
                  : f->type == K8S_LOG_BOOL     ? json_boolean(f->i)
                  : f->type == K8S_LOG_RAW_JSON ? k8s_json_parse(f->s, strlen(f->s), NULL, 0)
                                                : NULL;
    json_object_set_new(rec, f->key, val ? val : json_null());
  }
  json_array_append_new(ud, rec);
}

static const struct lk_controller_decl *check_controller(lua_State *L, struct lk_engine *e, int idx)
{
  const char *name = luaL_checkstring(L, idx);
  const struct lk_controller_decl *c = lk_engine_controller(e, name);
  if (!c) luaL_error(L, "k8sengine: no controller named %s", name);
  return c;
}

/* eng:reconcile(controller, cr [, opts]) -> result */
static int engine_reconcile(lua_State *L)
{
  struct lk_engine *e = check_engine(L)->e;
  const struct lk_controller_decl *c = check_controller(L, e, 2);
  luaL_checktype(L, 3, LUA_TTABLE);
  lua_settop(L, 4);
  const char *now = NULL;
  enum lk_grants grants = LK_GRANTS_ALL;
  if (lua_istable(L, 4)) {
    lua_getfield(L, 4, "now");
    now = luaL_optstring(L, -1, NULL);
    lua_getfield(L, 4, "grants");
    const char *g = luaL_optstring(L, -1, "all");
    if (!strcmp(g, "labels"))
      grants = LK_GRANTS_LABELS;
    else if (strcmp(g, "all"))
      luaL_error(L, "k8sengine: grants: want \"all\" or \"labels\", got \"%s\"", g);
    lua_pop(L, 2);
  }
  json_t *cr = check_json(L, 3, "cr");
  struct lk_memsource *ms = memsource_from(L, 4, cr, c); /* may raise: cr leaks only then */
  json_t *logs = json_array();
  struct lk_reconcile_in in = {.controller = c,
                               .cr = cr,
                               .cache = lk_memsource_cache(ms),
                               .discovery = lk_memsource_discovery(ms),
                               .now = now,
                               .log = capture,
                               .log_data = logs,
                               .grants = grants};
  struct lk_result r;
  lk_engine_reconcile(e, &in, &r);
  json_t *rj = lk_result_to_json(&r);
  json_object_set_new(rj, "logs", logs);
  json_object_set_new(rj, "total_seconds", json_real(r.total_seconds));
  lk_result_free(&r);
  lk_memsource_free(ms);
  json_decref(cr);
  push_json_owned(L, rj);
  return 1;
}

/* eng:run_case(path, i) -> ok, failures, result */
static int engine_run_case(lua_State *L)
{
  struct lk_engine *e = check_engine(L)->e;
  const char *path = luaL_checkstring(L, 2);
  lua_Integer idx = luaL_optinteger(L, 3, 1);
  char err[600];
  json_t *docs = lk_fixture_load(path, err, sizeof(err));
  if (!docs) return luaL_error(L, "k8sengine: %s", err);
  const json_t *doc = json_array_get(docs, (size_t)(idx - 1));
  if (!doc) {
    json_decref(docs);
    return luaL_error(L, "k8sengine: %s has no case %d", path, (int)idx);
  }
  struct lk_messages fails = {0};
  json_t *result = NULL;
  int failed = lk_fixture_run(e, path, doc, &fails, &result);
  json_decref(docs);
  lua_pushboolean(L, !failed);
  push_messages(L, &fails);
  lk_messages_free(&fails);
  if (result)
    push_json_owned(L, result);
  else
    lua_pushnil(L);
  return 3;
}

/* eng:map(controller, watch_index, obj [, opts]) -> keys | nil, err */
static int engine_map(lua_State *L)
{
  struct lk_engine *e = check_engine(L)->e;
  const struct lk_controller_decl *c = check_controller(L, e, 2);
  lua_Integer w = luaL_checkinteger(L, 3);
  luaL_argcheck(L, w >= 1 && (size_t)w <= c->nwatches, 3, "no such watch");
  luaL_checktype(L, 4, LUA_TTABLE);
  lua_settop(L, 5);
  json_t *obj = check_json(L, 4, "obj");
  struct lk_memsource *ms = memsource_from(L, 5, NULL, c);
  json_t *keys = NULL;
  struct lk_error err = {0};
  int rc = lk_engine_map(e, c, (size_t)w - 1, obj, lk_memsource_cache(ms),
                         lk_memsource_discovery(ms), &keys, &err);
  lk_memsource_free(ms);
  json_decref(obj);
  if (rc != 0) {
    lua_pushnil(L);
    lua_pushstring(L, err.message ? err.message : "map failed");
    lk_error_clear(&err);
    return 2;
  }
  push_json_owned(L, keys);
  return 1;
}

/* eng:eval(code) -> value | nil, message, kind. Runs with an empty cache. */
static int engine_eval(lua_State *L)
{
  struct lk_engine *e = check_engine(L)->e;
  size_t len;
  const char *code = luaL_checklstring(L, 2, &len);
  struct lk_memsource *ms = lk_memsource_new();
  json_t *logs = json_array();
  struct lk_ctx ctx = {.cache = lk_memsource_cache(ms),
                       .discovery = lk_memsource_discovery(ms),
                       .log = capture,
                       .log_data = logs};
  json_t *out = NULL;
  struct lk_error err = {0};
  int rc = lk_engine_eval(e, code, len, &ctx, &out, &err);
  lk_memsource_free(ms);
  json_decref(logs);
  if (rc != 0) {
    lua_pushnil(L);
    lua_pushstring(L, err.message ? err.message : "eval failed");
    lua_pushstring(L, lk_error_kind_name(err.kind));
    lk_error_clear(&err);
    return 3;
  }
  push_json_owned(L, out);
  return 1;
}

static int engine_memory(lua_State *L)
{
  struct lk_engine *e = check_engine(L)->e;
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, (lua_Integer)e->sb->memory_used);
  lua_setfield(L, -2, "used");
  lua_pushinteger(L, (lua_Integer)e->sb->memory_peak);
  lua_setfield(L, -2, "peak");
  lua_pushinteger(L, (lua_Integer)e->memory_loaded);
  lua_setfield(L, -2, "loaded");
  lua_pushinteger(L, (lua_Integer)e->sb->memory_limit);
  lua_setfield(L, -2, "limit");
  return 1;
}

static int engine_tostring(lua_State *L)
{
  struct ud_engine *u = luaL_checkudata(L, 1, ENGINE_MT);
  if (u->e)
    lua_pushfstring(L, "k8s.Engine (%s)", u->e->set->revision);
  else
    lua_pushliteral(L, "k8s.Engine (closed)");
  return 1;
}

/* }==================================================================== */

/* {====================================================================
 * Module functions
 * ===================================================================== */

/* k8sengine.cases(path) -> { { name, controller }, ... } | nil, err */
static int k8sengine_cases(lua_State *L)
{
  const char *path = luaL_checkstring(L, 1);
  char err[600];
  json_t *docs = lk_fixture_load(path, err, sizeof(err));
  if (!docs) {
    lua_pushnil(L);
    lua_pushstring(L, err);
    return 2;
  }
  json_t *out = json_array(), *doc;
  size_t i;
  json_array_foreach(docs, i, doc)
  {
    json_t *name = json_object_get(doc, "name"), *ctrl = json_object_get(doc, "controller");
    json_array_append_new(out, json_pack("{s:O, s:O}", "name", name ? name : json_null(),
                                         "controller", ctrl ? ctrl : json_null()));
  }
  json_decref(docs);
  push_json_owned(L, out);
  return 1;
}

/* k8sengine.fixture_files(dir) -> sorted list of fixture paths */
static int k8sengine_fixture_files(lua_State *L)
{
  const char *dir = luaL_checkstring(L, 1);
  char err[600];
  struct lk_scriptset *set;
  if (lk_scriptset_load(dir, NULL, 0, NULL, &set, err, sizeof(err)) != 0)
    return luaL_error(L, "k8sengine.fixture_files: %s", err);
  lua_createtable(L, (int)set->nfixtures, 0);
  for (size_t i = 0; i < set->nfixtures; i++) {
    lua_pushfstring(L, "%s/%s", set->dir, set->fixtures[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lk_scriptset_free(set);
  return 1;
}

/* }==================================================================== */

static const luaL_Reg meth[] = {{"check", engine_check},
                                {"close", engine_release},
                                {"controllers", engine_controllers},
                                {"eval", engine_eval},
                                {"fixtures", engine_fixtures},
                                {"map", engine_map},
                                {"memory", engine_memory},
                                {"reconcile", engine_reconcile},
                                {"revision", engine_revision},
                                {"run_case", engine_run_case},
                                {NULL, NULL}};

static const luaL_Reg metameth[] = {{"__index", NULL},
                                    {"__gc", engine_release},
                                    {"__close", engine_release},
                                    {"__tostring", engine_tostring},
                                    {NULL, NULL}};

static const luaL_Reg funcs[] = {{"cases", k8sengine_cases},
                                 {"fixture_files", k8sengine_fixture_files},
                                 {"load", k8sengine_load},
                                 {NULL, NULL}};

int luaopen_k8sengine(lua_State *L)
{
  luaL_newmetatable(L, ENGINE_MT);
  luaL_setfuncs(L, metameth, 0);
  luaL_newlibtable(L, meth);
  luaL_setfuncs(L, meth, 0);
  lua_setfield(L, -2, "__index");
  lua_pop(L, 1);
  luaL_newlib(L, funcs);
  k8s_json_push_null(L);
  lua_setfield(L, -2, "null");
  k8s_json_push_array_mt(L);
  lua_setfield(L, -2, "array_mt");
  return 1;
}
