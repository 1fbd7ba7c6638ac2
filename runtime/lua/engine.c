/* engine.c: loads a script set into a sandbox and runs reconcilers, map
 * functions and test snippets in it (see engine.h for the contract); the
 * declarations of controllers.lua are decl.c's, what happens to a result
 * after the call is result.c's.
 *
 * The Lua side of each call is one protected C function (p_*) run through
 * lk_pcall: it builds the environment, decodes inputs (core/json.h), calls
 * the script and converts its result back to JSON. Everything after that
 * (validation, decoration, hashing, classification, status) is plain C over
 * jansson values, outside Lua. C allocations made inside a protected call
 * hang off a struct owned by the caller, so a Lua error cannot leak them. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "core/json.h"
#include "core/util.h"
#include "lua/engine_int.h"

/* {====================================================================
 * Messages
 * ===================================================================== */

void lk_messages_add(struct lk_messages *m, const char *fmt, ...)
{
  if (!m) return;
  if (m->n == m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 16;
    char **v = realloc(m->v, cap * sizeof(*v));
    if (!v) return;
    m->v = v;
    m->cap = cap;
  }
  va_list ap;
  va_start(ap, fmt);
  if (vasprintf(&m->v[m->n], fmt, ap) >= 0) m->n++;
  va_end(ap);
}

void lk_messages_free(struct lk_messages *m)
{
  for (size_t i = 0; i < m->n; i++)
    free(m->v[i]);
  free(m->v);
  memset(m, 0, sizeof(*m));
}

/* }==================================================================== */

/* {====================================================================
 * Loading: modules, controllers.lua, reconcilers
 * ===================================================================== */

/* Runs controllers.lua and converts what it returns. */
struct p_json {
  const char *module;
  json_t *out;
  char err[512];
};

static int p_module_json(lua_State *L)
{
  struct p_json *pj = lua_touserdata(L, 1);
  lk_sandbox_push_env(L);
  lk_sandbox_require(L, 2, pj->module);
  pj->out = k8s_json_from_lua(L, 3, pj->err, sizeof(pj->err));
  return 0;
}

/* Loads the controller's module and checks its exports. */
struct p_check {
  const struct lk_controller_decl *c;
  char err[512];
};

static int p_check_controller(lua_State *L)
{
  struct p_check *pc = lua_touserdata(L, 1);
  const struct lk_controller_decl *c = pc->c;
  lk_sandbox_push_env(L);
  lk_sandbox_require(L, 2, c->module);
  if (!lua_istable(L, 3) || lua_getfield(L, 3, "reconcile") != LUA_TFUNCTION) {
    snprintf(pc->err, sizeof(pc->err), "module %s does not export a function reconcile", c->module);
    return 0;
  }
  for (size_t i = 0; i < c->nwatches; i++) {
    const struct lk_watch_decl *w = &c->watches[i];
    if (!w->map) continue;
    lk_sandbox_require(L, 2, w->map_module);
    if (!lua_istable(L, -1) || lua_getfield(L, -1, w->map_fn) != LUA_TFUNCTION) {
      snprintf(pc->err, sizeof(pc->err), "watches %s %s: map %s is not a function",
               w->gvk.api_version, w->gvk.kind, w->map);
      return 0;
    }
  }
  return 0;
}

static const char *module_path(const struct lk_engine *e, const char *module)
{
  const struct lk_module *m = lk_scriptset_find(e->set, module);
  return m ? m->path : module;
}

int lk_engine_new(struct lk_scriptset *set, const struct lk_engine_opts *opts,
                  struct lk_engine **out, struct lk_messages *msgs)
{
  *out = NULL;
  struct lk_engine *e = calloc(1, sizeof(*e));
  struct lk_sandbox_opts so = {opts ? opts->memory_limit : 0, opts ? opts->instruction_budget : 0};
  if (!e || !(e->sb = lk_sandbox_new(&so))) {
    free(e);
    lk_scriptset_free(set);
    return -1;
  }
  e->set = set;
  int problems = 0;
  struct lk_error err = {0};
  for (size_t i = 0; i < set->nmods; i++) {
    const struct lk_module *m = &set->mods[i];
    if (lk_sandbox_add_module(e->sb, m->name, m->path, m->source, m->len, &err) != 0) {
      lk_messages_add(msgs, "%s", err.message);
      problems++;
      continue;
    }
    size_t n = strlen(m->name);
    if (n > 5 && !strcmp(m->name + n - 5, ".init")) { /* "a.init" is also "a" */
      char *alias = strndup(m->name, n - 5);
      if (alias && lk_scriptset_find(set, alias) == m)
        lk_sandbox_add_module(e->sb, alias, m->path, m->source, m->len, NULL);
      free(alias);
    }
  }
  lk_error_clear(&err);
  if (!lk_scriptset_find(set, "controllers")) {
    lk_messages_add(msgs, "controllers.lua: missing (the script set must have one)");
    problems++;
  } else {
    struct p_json pj = {.module = "controllers"};
    lua_State *L = e->sb->L;
    lua_pushcfunction(L, p_module_json);
    lua_pushlightuserdata(L, &pj);
    if (lk_pcall(e->sb, NULL, 1, 0, &err) != LUA_OK) {
      lk_messages_add(msgs, "%s", err.message);
      problems++;
    } else if (!pj.out) {
      lk_messages_add(msgs, "controllers.lua: %s", pj.err);
      problems++;
    } else
      problems += lk_decl_parse(e, pj.out, msgs);
    json_decref(pj.out);
    lk_sandbox_after_call(e->sb);
    lk_error_clear(&err);
  }
  for (size_t i = 0; i < e->ncontrollers; i++) {
    struct lk_controller_decl *c = &e->controllers[i];
    struct p_check pc = {.c = c};
    lua_State *L = e->sb->L;
    lua_pushcfunction(L, p_check_controller);
    lua_pushlightuserdata(L, &pc);
    if (lk_pcall(e->sb, NULL, 1, 0, &err) != LUA_OK) {
      lk_messages_add(msgs, "%s", err.message);
      problems++;
    } else if (pc.err[0]) {
      lk_messages_add(msgs, "%s: %s", module_path(e, c->module), pc.err);
      problems++;
    } else
      c->valid = 1;
    lk_sandbox_after_call(e->sb);
    lk_error_clear(&err);
  }
  lua_gc(e->sb->L, LUA_GCCOLLECT);
  e->memory_loaded = e->sb->memory_used;
  *out = e;
  return problems;
}

void lk_engine_free(struct lk_engine *e)
{
  if (!e) return;
  for (size_t i = 0; i < e->ncontrollers; i++)
    lk_decl_free(&e->controllers[i]);
  free(e->controllers);
  lk_sandbox_free(e->sb);
  lk_scriptset_free(e->set);
  free(e);
}

void lk_engine_trim(struct lk_engine *e)
{
  if (e) lk_sandbox_release_pool(e->sb);
}

const struct lk_controller_decl *lk_engine_controller(const struct lk_engine *e, const char *name)
{
  for (size_t i = 0; i < e->ncontrollers; i++)
    if (!strcmp(e->controllers[i].name, name)) return &e->controllers[i];
  return NULL;
}

const struct lk_controller_decl *lk_engine_controller_for(const struct lk_engine *e,
                                                          const char *api_version, const char *kind)
{
  for (size_t i = 0; i < e->ncontrollers; i++)
    if (lk_gvk_is(&e->controllers[i].for_, api_version, kind)) return &e->controllers[i];
  return NULL;
}

/* }==================================================================== */

/* {====================================================================
 * The reconcile call (Lua side)
 * ===================================================================== */

static void free_run(struct run *r)
{
  for (size_t i = 0; i < r->nobs; i++) {
    free(r->obs[i].ns);
    free(r->obs[i].name);
    free(r->obs[i].hash);
  }
  free(r->obs);
  json_decref(r->result);
}

static void push_ctx_table(lua_State *L, struct run *r)
{
  lua_createtable(L, 0, 3);
  lua_pushstring(L, r->e->set->revision);
  lua_setfield(L, -2, "script_revision");
  lua_pushboolean(L, r->finalizing);
  lua_setfield(L, -2, "finalizing");
  lua_pushstring(L, r->now);
  lua_setfield(L, -2, "now");
}

/* The store index of the owner label (store.h: "label:<key>"). */
#define OWNER_INDEX "label:" LK_LABEL_OWNER

/* Pushes observed = { children = { ["Kind.apiVersion"] = { ["ns/name"] = obj } } }
 * and records each child in r->obs. */
static void push_observed(lua_State *L, struct run *r)
{
  const struct lk_controller_decl *c = r->in->controller;
  const struct lk_cache_source *cache = r->in->cache;
  const struct lk_discovery_source *disc = r->in->discovery;
  struct k8s_label sel = {LK_LABEL_OWNER, r->owner};
  lua_createtable(L, 0, 1);
  lua_createtable(L, 0, (int)c->nowns);
  for (size_t i = 0; i < c->nowns; i++) {
    const struct lk_gvk *g = &c->owns[i];
    lua_pushfstring(L, "%s.%s", g->kind, g->api_version);
    lua_newtable(L);
    struct k8s_store *st = NULL;
    if (cache && (!disc || disc->ops->served(disc->ud, g->api_version, g->kind)))
      st = cache->ops->store(cache->ud, g->api_version, g->kind);
    if (st) {
      /* the owner-label index (store.h, built once per store, kept by every
       * upsert) turns the selection into one bucket read; without it every
       * reconcile scanned all cached objects of the kind, so its CPU grew
       * with the number of CRs (bench/engine.c --others). A failure to build
       * it (out of memory) leaves the scan. */
      k8s_store_add_index(st, OWNER_INDEX);
      const struct k8s_object **objs = NULL;
      size_t n = k8s_store_select(st, NULL, &sel, 1, &objs);
      if (n == (size_t)-1) luaL_error(L, "out of memory listing observed children");
      const struct k8s_object **box = lua_newuserdatauv(L, n * sizeof(*box) + 1, 0);
      if (n) memcpy(box, objs, n * sizeof(*box));
      free(objs);
      lua_insert(L, -2); /* keep the box below the kind's table */
      for (size_t j = 0; j < n; j++) {
        const struct k8s_object *o = box[j];
        char err[256];
        if (k8s_object_push(L, o, err, sizeof(err)) != 0)
          luaL_error(L, "cannot decode observed %s %s: %s", g->kind, o->key, err);
        if (r->nobs == r->capobs) {
          size_t cap = r->capobs ? r->capobs * 2 : 16;
          struct obs *nb = realloc(r->obs, cap * sizeof(*nb));
          if (!nb) luaL_error(L, "out of memory");
          r->obs = nb;
          r->capobs = cap;
        }
        struct obs *ob = &r->obs[r->nobs];
        memset(ob, 0, sizeof(*ob));
        r->nobs++;
        ob->gvk = g;
        ob->ns = strdup(o->ns);
        ob->name = strdup(o->name);
        ob->deleting = o->deleting;
        ob->managed = o->managed; /* borrowed: the Store does not change during the call */
        ob->managed_len = o->managed_len;
        ob->rv = o->resource_version;
        int top = lua_gettop(L);
        if (lua_getfield(L, -1, "metadata") == LUA_TTABLE &&
            lua_getfield(L, -1, "annotations") == LUA_TTABLE &&
            lua_getfield(L, -1, LK_ANNOTATION_HASH) == LUA_TSTRING)
          ob->hash = strdup(lua_tostring(L, -1));
        lua_settop(L, top);
        lua_setfield(L, -2, o->key);
      }
      lua_remove(L, -2); /* the box */
    }
    lua_settable(L, -3);
  }
  lua_setfield(L, -2, "children");
}

static int p_reconcile(lua_State *L)
{
  struct run *r = lua_touserdata(L, 1);
  lua_settop(L, 0);
  lk_sandbox_push_env(L); /* 1 */
  lk_sandbox_require(L, 1, r->in->controller->module);
  if (!lua_istable(L, 2) || lua_getfield(L, 2, "reconcile") != LUA_TFUNCTION)
    return luaL_error(L, "%s: module %s does not export a function reconcile",
                      module_path(r->e, r->in->controller->module), r->in->controller->module);
  /* stack: env, module, reconcile */
  k8s_json_push_value(L, r->in->cr);
  push_observed(L, r);
  push_ctx_table(L, r);
  lua_call(L, 3, 1);
  /* stack: env, module, result */
  if (!lua_istable(L, 3)) {
    snprintf(r->result_err, sizeof(r->result_err), "result: reconcile must return a table, got %s",
             luaL_typename(L, 3));
    return 0;
  }
  static const char *const fields[] = {"children", "status",    "requeue_after",
                                       "events",   "finalized", NULL};
  lua_pushnil(L);
  while (lua_next(L, 3)) {
    lua_pop(L, 1);
    int ok = 0;
    if (lua_type(L, -1) == LUA_TSTRING)
      for (int i = 0; fields[i]; i++)
        ok |= !strcmp(lua_tostring(L, -1), fields[i]);
    if (!ok) {
      snprintf(r->result_err, sizeof(r->result_err),
               "result.%s: unknown field (expected children, status, requeue_after, events, "
               "finalized)",
               lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "?");
      return 0;
    }
  }
  char err[512];
  r->result = k8s_json_from_lua(L, 3, err, sizeof(err));
  if (!r->result) {
    if (!strncmp(err, "(root): ", 8))
      snprintf(r->result_err, sizeof(r->result_err), "result: %s", err + 8);
    else
      snprintf(r->result_err, sizeof(r->result_err), "result.%s", err);
  }
  return 0;
}

/* }==================================================================== */

/* {====================================================================
 * lk_engine_reconcile
 * ===================================================================== */

int lk_engine_reconcile(struct lk_engine *e, const struct lk_reconcile_in *in, struct lk_result *r)
{
  memset(r, 0, sizeof(*r));
  double t0 = k8s_monotonic();
  const json_t *cr = in->cr;
  const json_t *md = json_object_get(cr, "metadata");
  struct post p = {.e = e, .in = in, .r = r};
  p.cr_av = jstr(cr, "apiVersion");
  p.cr_kind = jstr(cr, "kind");
  p.cr_name = jstr(md, "name");
  p.cr_ns = jstr(md, "namespace") ? jstr(md, "namespace") : "";
  p.cr_uid = jstr(md, "uid");
  p.path = module_path(e, in->controller->module);
  if (!nonempty(p.cr_av) || !nonempty(p.cr_kind) || !nonempty(p.cr_name)) {
    lk_error_set(&r->err, LK_ERR_RESULT, "the CR has no apiVersion, kind or metadata.name");
    return -1;
  }
  char owner[64], now[K8S_TIME_BUF];
  lk_owner_value(cr, owner);
  if (in->now)
    snprintf(now, sizeof(now), "%s", in->now);
  else
    k8s_rfc3339(k8s_wallclock(), now);
  struct run run = {.e = e, .in = in, .owner = owner, .now = now};
  run.finalizing = json_object_get(md, "deletionTimestamp") != NULL &&
                   !json_is_null(json_object_get(md, "deletionTimestamp"));
  r->finalizing = run.finalizing;
  r->finalized = 1;
  p.run = &run;

  struct lk_ctx ctx = {.cache = in->cache,
                       .discovery = in->discovery,
                       .now = now,
                       .kinds = in->controller->kinds,
                       .nkinds = in->controller->nkinds,
                       .controller = in->controller->name,
                       .log = in->log,
                       .log_data = in->log_data,
                       .log_fields = in->log_fields,
                       .nlog_fields = in->nlog_fields};
  lua_State *L = e->sb->L;
  lua_pushcfunction(L, p_reconcile);
  lua_pushlightuserdata(L, &run);
  int st = lk_pcall(e->sb, &ctx, 1, 0, &r->err);
  lk_sandbox_after_call(e->sb);
  /* a failed call (an error, the memory cap, the instruction budget) may
   * leave much garbage: collect it now, not at the next cycle */
  if (st != LUA_OK) lua_gc(L, LUA_GCCOLLECT);
  r->lua_seconds = k8s_monotonic() - t0;
  if (st == LUA_OK) {
    if (run.result_err[0])
      lk_error_set(&r->err, LK_ERR_RESULT, "%s: %s", p.path, run.result_err);
    else if (lk_post_process(&p) != 0)
      lk_error_set(&r->err, LK_ERR_RESULT, "%s: %s", p.path, p.msg);
  }
  if (r->err.kind != LK_ERR_NONE) {
    /* a failed reconcile applies nothing and prunes nothing */
    for (size_t i = 0; i < r->nchildren; i++) {
      json_decref(r->children[i].obj);
      free(r->children[i].owner);
      free(r->children[i].why);
    }
    r->nchildren = r->nconflicts = r->nrefused = 0;
    json_decref(r->events);
    r->events = json_array();
    r->requeue_after = 0;
    r->nobserved = run.nobs;
    if (run.finalizing) lk_build_prune(&p), r->finalized = 0;
  } else
    lk_build_prune(&p);
  if (!r->events) r->events = json_array();
  lk_build_status(&p, r->err.kind == LK_ERR_NONE ? json_object_get(run.result, "status") : NULL);
  free_run(&run);
  r->total_seconds = k8s_monotonic() - t0;
  return r->err.kind == LK_ERR_NONE ? 0 : 1;
}

/* }==================================================================== */

/* {====================================================================
 * Map functions and eval
 * ===================================================================== */

struct p_map {
  const struct lk_watch_decl *w;
  const json_t *obj;
  json_t *keys;
  char err[512];
};

static int p_map(lua_State *L)
{
  struct p_map *pm = lua_touserdata(L, 1);
  lua_settop(L, 0);
  lk_sandbox_push_env(L);
  lk_sandbox_require(L, 1, pm->w->map_module);
  if (!lua_istable(L, 2) || lua_getfield(L, 2, pm->w->map_fn) != LUA_TFUNCTION)
    return luaL_error(L, "map %s is not a function", pm->w->map);
  k8s_json_push_value(L, pm->obj);
  lua_call(L, 1, 1);
  if (lua_isnil(L, -1)) return 0;
  if (!lua_istable(L, -1)) {
    snprintf(pm->err, sizeof(pm->err), "%s: must return a list of keys, got %s", pm->w->map,
             luaL_typename(L, -1));
    return 0;
  }
  lua_Integer n = luaL_len(L, -1);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_geti(L, -1, i);
    char key[600] = "";
    if (lua_type(L, -1) == LUA_TSTRING)
      snprintf(key, sizeof(key), "%s", lua_tostring(L, -1));
    else if (lua_istable(L, -1)) {
      lua_getfield(L, -1, "namespace");
      lua_getfield(L, -2, "name");
      if (lua_type(L, -1) == LUA_TSTRING)
        snprintf(
            key, sizeof(key), "%s%s%s", lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "",
            lua_type(L, -2) == LUA_TSTRING && *lua_tostring(L, -2) ? "/" : "", lua_tostring(L, -1));
      lua_pop(L, 2);
    }
    if (!key[0]) {
      snprintf(pm->err, sizeof(pm->err),
               "%s: [%lld] must be \"namespace/name\" or { namespace = ..., name = ... }",
               pm->w->map, (long long)i);
      return 0;
    }
    json_array_append_new(pm->keys, json_string(key));
    lua_pop(L, 1);
  }
  return 0;
}

int lk_engine_map(struct lk_engine *e, const struct lk_controller_decl *c, size_t w,
                  const json_t *obj, const struct lk_cache_source *cache,
                  const struct lk_discovery_source *discovery, json_t **keys, struct lk_error *err)
{
  *keys = NULL;
  if (w >= c->nwatches || !c->watches[w].map) {
    lk_error_set(err, LK_ERR_RESULT, "watch %zu of %s has no map function", w, c->name);
    return -1;
  }
  /* No CR of the controller's kind is cached (a store, and it is empty): no
   * key the map could return names a CR to reconcile, and a CR that comes
   * later is reconciled on its own event, reading the cache as it is then.
   * The call would re-run the map module's chunks for nothing (in a
   * SimulatorDeployment burst with no SchedulerInstall, schedulerinstall's
   * map_simulator was 15% of the operator's CPU). */
  struct k8s_store *crs =
      cache ? cache->ops->store(cache->ud, c->for_.api_version, c->for_.kind) : NULL;
  if (crs && k8s_store_len(crs) == 0) {
    *keys = json_array();
    return *keys ? 0 : -1;
  }
  struct p_map pm = {.w = &c->watches[w], .obj = obj, .keys = json_array()};
  struct lk_ctx ctx = {.cache = cache,
                       .discovery = discovery,
                       .kinds = c->kinds,
                       .nkinds = c->nkinds,
                       .controller = c->name};
  lua_State *L = e->sb->L;
  lua_pushcfunction(L, p_map);
  lua_pushlightuserdata(L, &pm);
  int st = lk_pcall(e->sb, &ctx, 1, 0, err);
  lk_sandbox_after_call(e->sb);
  if (st == LUA_OK && pm.err[0]) lk_error_set(err, LK_ERR_RESULT, "%s", pm.err);
  if (st != LUA_OK || pm.err[0]) {
    json_decref(pm.keys);
    return -1;
  }
  *keys = pm.keys;
  return 0;
}

struct p_eval {
  const char *code;
  size_t len;
  json_t *out;
  char err[512];
};

static int p_eval(lua_State *L)
{
  struct p_eval *pe = lua_touserdata(L, 1);
  lua_settop(L, 0);
  lk_sandbox_push_env(L);
  if (luaL_loadbufferx(L, pe->code, pe->len, "=eval", "t") != LUA_OK) return lua_error(L);
  lua_pushvalue(L, 1);
  lua_setupvalue(L, 2, 1);
  lua_call(L, 0, 1);
  pe->out = k8s_json_from_lua(L, 2, pe->err, sizeof(pe->err));
  return 0;
}

int lk_engine_eval(struct lk_engine *e, const char *code, size_t len, struct lk_ctx *ctx,
                   json_t **out, struct lk_error *err)
{
  struct p_eval pe = {.code = code, .len = len};
  lua_State *L = e->sb->L;
  lua_pushcfunction(L, p_eval);
  lua_pushlightuserdata(L, &pe);
  int st = lk_pcall(e->sb, ctx, 1, 0, err);
  lk_sandbox_after_call(e->sb);
  if (st != LUA_OK) {
    json_decref(pe.out);
    return -1;
  }
  if (!pe.out) {
    lk_error_set(err, LK_ERR_RESULT, "eval: result: %s", pe.err);
    return -1;
  }
  *out = pe.out;
  return 0;
}

/* }==================================================================== */
