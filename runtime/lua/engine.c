/* engine.c: loads a script set into a sandbox and runs reconcilers, map
 * functions and test snippets in it; validates and decorates results (see
 * engine.h for the contract).
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
#include "lua/engine.h"

#define CONDITION_MESSAGE_MAX 32768
#define EVENT_MESSAGE_MAX 1024

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
 * JSON helpers
 * ===================================================================== */

static const char *jstr(const json_t *o, const char *key)
{
  return json_string_value(json_object_get(o, key));
}

/* The object at o[key], created when missing; NULL when o[key] is not an
 * object. */
static json_t *jobj(json_t *o, const char *key)
{
  json_t *v = json_object_get(o, key);
  if (!v) {
    v = json_object();
    json_object_set_new(o, key, v);
  }
  return json_is_object(v) ? v : NULL;
}

static int nonempty(const char *s)
{
  return s && *s;
}

/* }==================================================================== */

/* {====================================================================
 * Loading: modules, controllers.lua, reconcilers
 * ===================================================================== */

static void free_gvk(struct lk_gvk *g)
{
  free(g->api_version);
  free(g->kind);
}

static void free_decl(struct lk_controller_decl *c)
{
  free(c->name);
  free_gvk(&c->for_);
  free(c->module);
  for (size_t i = 0; i < c->nowns; i++)
    free_gvk(&c->owns[i]);
  for (size_t i = 0; i < c->nwatches; i++) {
    free_gvk(&c->watches[i].gvk);
    free(c->watches[i].map);
    free(c->watches[i].map_module);
    free(c->watches[i].map_fn);
  }
  for (size_t i = 0; i < c->nkinds; i++)
    free_gvk(&c->kinds[i]);
  free(c->owns);
  free(c->watches);
  free(c->kinds);
}

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

static int valid_name(const char *s)
{
  if (!nonempty(s) || strlen(s) > 63) return 0;
  for (const char *p = s; *p; p++)
    if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '-')) return 0;
  return isalnum((unsigned char)s[0]) && isalnum((unsigned char)s[strlen(s) - 1]);
}

static int valid_kind(const char *s)
{
  if (!nonempty(s) || !isupper((unsigned char)s[0])) return 0;
  for (const char *p = s; *p; p++)
    if (!isalnum((unsigned char)*p)) return 0;
  return 1;
}

static int valid_api_version(const char *s)
{
  if (!nonempty(s)) return 0;
  for (const char *p = s; *p; p++)
    if (!(isalnum((unsigned char)*p) || *p == '.' || *p == '-' || *p == '/')) return 0;
  const char *slash = strchr(s, '/');
  return !slash || (slash != s && slash[1] && !strchr(slash + 1, '/'));
}

/* Parses { apiVersion, kind [, map] } at where; returns 0 or -1 (message added). */
static int parse_gvk(const json_t *v, const char *where, int allow_map, struct lk_gvk *out,
                     char **map, struct lk_messages *msgs)
{
  int bad = 0;
  if (!json_is_object(v)) {
    lk_messages_add(msgs, "controllers.lua: %s: must be a table { apiVersion = ..., kind = ... }",
                    where);
    return -1;
  }
  const char *key;
  json_t *val;
  json_object_foreach((json_t *)v, key, val)
  {
    if (strcmp(key, "apiVersion") && strcmp(key, "kind") && !(allow_map && !strcmp(key, "map"))) {
      lk_messages_add(msgs, "controllers.lua: %s.%s: unknown field", where, key);
      bad = 1;
    }
  }
  const char *av = jstr(v, "apiVersion"), *kind = jstr(v, "kind");
  if (!valid_api_version(av)) {
    lk_messages_add(msgs, "controllers.lua: %s.apiVersion: must be a string like \"apps/v1\"",
                    where);
    bad = 1;
  }
  if (!valid_kind(kind)) {
    lk_messages_add(msgs, "controllers.lua: %s.kind: must be a CamelCase kind name", where);
    bad = 1;
  }
  if (allow_map && json_object_get(v, "map")) {
    const char *m = jstr(v, "map");
    if (!nonempty(m) || !strchr(m, '.')) {
      lk_messages_add(msgs,
                      "controllers.lua: %s.map: must be a string \"module.function\" naming a "
                      "function of the script set",
                      where);
      bad = 1;
    } else if (map)
      *map = strdup(m);
  }
  if (bad) return -1;
  out->api_version = strdup(av);
  out->kind = strdup(kind);
  return 0;
}

static int same_gvk(const struct lk_gvk *a, const char *av, const char *kind)
{
  return !strcmp(a->api_version, av) && !strcmp(a->kind, kind);
}

static void add_kind(struct lk_controller_decl *c, const struct lk_gvk *g)
{
  for (size_t i = 0; i < c->nkinds; i++)
    if (same_gvk(&c->kinds[i], g->api_version, g->kind)) return;
  c->kinds[c->nkinds].api_version = strdup(g->api_version);
  c->kinds[c->nkinds].kind = strdup(g->kind);
  c->nkinds++;
}

/* Validates the JSON form of controllers.lua into e->controllers. */
static int parse_controllers(struct lk_engine *e, const json_t *list, struct lk_messages *msgs)
{
  int problems = 0;
  if (!json_is_array(list)) {
    lk_messages_add(msgs, "controllers.lua: must return a list of controller declarations");
    return 1;
  }
  size_t n = json_array_size(list);
  e->controllers = calloc(n ? n : 1, sizeof(*e->controllers));
  if (!e->controllers) return 1;
  for (size_t i = 0; i < n; i++) {
    const json_t *d = json_array_get(list, i);
    struct lk_controller_decl c = {0};
    int bad = 0;
    char where[64];
    snprintf(where, sizeof(where), "[%zu]", i + 1);
    if (!json_is_object(d)) {
      lk_messages_add(msgs, "controllers.lua: %s: must be a table", where);
      problems++;
      continue;
    }
    if (valid_name(jstr(d, "name"))) snprintf(where, sizeof(where), "%s", jstr(d, "name"));
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)d, key, val)
    {
      static const char *const known[] = {"name", "for_", "module", "owns", "watches", NULL};
      int ok = 0;
      for (int k = 0; known[k]; k++)
        ok |= !strcmp(key, known[k]);
      if (!ok) {
        lk_messages_add(msgs, "controllers.lua: %s.%s: unknown field", where, key);
        bad = 1;
      }
    }
    const char *name = jstr(d, "name"), *module = jstr(d, "module");
    if (!valid_name(name)) {
      lk_messages_add(msgs, "controllers.lua: %s.name: must be a lower-case name ([a-z0-9-])",
                      where);
      bad = 1;
    } else {
      for (size_t j = 0; j < e->ncontrollers; j++)
        if (!strcmp(e->controllers[j].name, name)) {
          lk_messages_add(msgs, "controllers.lua: %s: duplicate controller name", where);
          bad = 1;
        }
    }
    char w[128];
    snprintf(w, sizeof(w), "%s.for_", where);
    if (parse_gvk(json_object_get(d, "for_"), w, 0, &c.for_, NULL, msgs) != 0)
      bad = 1;
    else
      for (size_t j = 0; j < e->ncontrollers; j++)
        if (same_gvk(&e->controllers[j].for_, c.for_.api_version, c.for_.kind)) {
          lk_messages_add(msgs, "controllers.lua: %s.for_: %s %s is already reconciled by %s",
                          where, c.for_.api_version, c.for_.kind, e->controllers[j].name);
          bad = 1;
        }
    if (!nonempty(module)) {
      lk_messages_add(msgs, "controllers.lua: %s.module: must be a module name", where);
      bad = 1;
    } else if (!lk_scriptset_find(e->set, module)) {
      lk_messages_add(msgs, "controllers.lua: %s.module: no module %s in the script set", where,
                      module);
      bad = 1;
    }
    const json_t *owns = json_object_get(d, "owns"), *watches = json_object_get(d, "watches");
    if (owns && !json_is_array(owns) && !(json_is_object(owns) && !json_object_size(owns))) {
      lk_messages_add(msgs, "controllers.lua: %s.owns: must be a list", where);
      bad = 1;
      owns = NULL;
    }
    if (watches && !json_is_array(watches) &&
        !(json_is_object(watches) && !json_object_size(watches))) {
      lk_messages_add(msgs, "controllers.lua: %s.watches: must be a list", where);
      bad = 1;
      watches = NULL;
    }
    size_t no = json_array_size(owns), nw = json_array_size(watches);
    c.owns = calloc(no + 1, sizeof(*c.owns));
    c.watches = calloc(nw + 1, sizeof(*c.watches));
    c.kinds = calloc(no + nw + 1, sizeof(*c.kinds));
    for (size_t j = 0; j < no; j++) {
      snprintf(w, sizeof(w), "%s.owns[%zu]", where, j + 1);
      struct lk_gvk g = {0};
      if (parse_gvk(json_array_get(owns, j), w, 0, &g, NULL, msgs) != 0) {
        bad = 1;
        continue;
      }
      for (size_t k = 0; k < c.nowns; k++)
        if (same_gvk(&c.owns[k], g.api_version, g.kind)) {
          lk_messages_add(msgs, "controllers.lua: %s: %s %s listed twice", w, g.api_version,
                          g.kind);
          bad = 1;
        }
      c.owns[c.nowns++] = g;
    }
    for (size_t j = 0; j < nw; j++) {
      snprintf(w, sizeof(w), "%s.watches[%zu]", where, j + 1);
      struct lk_watch_decl wd = {0};
      if (parse_gvk(json_array_get(watches, j), w, 1, &wd.gvk, &wd.map, msgs) != 0) {
        bad = 1;
        free(wd.map);
        continue;
      }
      if (wd.map) {
        char *dot = strrchr(wd.map, '.');
        wd.map_module = strndup(wd.map, (size_t)(dot - wd.map));
        wd.map_fn = strdup(dot + 1);
        if (!lk_scriptset_find(e->set, wd.map_module)) {
          lk_messages_add(msgs, "controllers.lua: %s.map: no module %s in the script set", w,
                          wd.map_module);
          bad = 1;
        }
      }
      c.watches[c.nwatches++] = wd;
    }
    if (bad) {
      free_decl(&c);
      problems++;
      continue;
    }
    c.name = strdup(name);
    c.module = strdup(module);
    add_kind(&c, &c.for_);
    for (size_t j = 0; j < c.nowns; j++)
      add_kind(&c, &c.owns[j]);
    for (size_t j = 0; j < c.nwatches; j++)
      add_kind(&c, &c.watches[j].gvk);
    e->controllers[e->ncontrollers++] = c;
  }
  return problems;
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
      problems += parse_controllers(e, pj.out, msgs);
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
    free_decl(&e->controllers[i]);
  free(e->controllers);
  lk_sandbox_free(e->sb);
  lk_scriptset_free(e->set);
  free(e);
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
    if (same_gvk(&e->controllers[i].for_, api_version, kind)) return &e->controllers[i];
  return NULL;
}

/* }==================================================================== */

/* {====================================================================
 * The reconcile call (Lua side)
 * ===================================================================== */

struct obs {
  const struct lk_gvk *gvk; /* the owns declaration */
  char *ns, *name, *hash;   /* hash: NULL when the child carries none */
  int deleting;
  int desired;
};

struct run {
  struct lk_engine *e;
  const struct lk_reconcile_in *in;
  const char *owner; /* owner label value */
  const char *now;
  int finalizing;
  struct obs *obs;
  size_t nobs, capobs;
  json_t *result;       /* the script's result as JSON */
  char result_err[600]; /* a result that could not be converted */
};

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
        if (k8s_json_push(L, o->json, o->json_len, err, sizeof(err)) != 0)
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
 * Results: validation, decoration, classification, status
 * ===================================================================== */

void lk_owner_value(const json_t *cr, char out[64])
{
  const json_t *md = json_object_get(cr, "metadata");
  const char *kind = jstr(cr, "kind"), *ns = jstr(md, "namespace"), *name = jstr(md, "name");
  char lower[128];
  snprintf(lower, sizeof(lower), "%s", kind ? kind : "");
  for (char *p = lower; *p; p++)
    *p = (char)tolower((unsigned char)*p);
  k8s_owner_label_value(lower, ns ? ns : "", name ? name : "", out);
}

int lk_result_needs_finalizer(const struct lk_result *r, const char *cr_ns)
{
  /* the rule decorate() (below) follows for owner references */
  int cluster_cr = !cr_ns || !*cr_ns;
  for (size_t i = 0; i < r->nchildren; i++)
    if (cluster_cr || strcmp(r->children[i].ns, cr_ns)) return 1;
  for (size_t i = 0; i < r->nprune; i++)
    if (cluster_cr || strcmp(r->prune[i].ns, cr_ns)) return 1;
  return 0;
}

void lk_result_free(struct lk_result *r)
{
  if (!r) return;
  lk_error_clear(&r->err);
  for (size_t i = 0; i < r->nchildren; i++) {
    json_decref(r->children[i].obj);
    free(r->children[i].owner);
  }
  for (size_t i = 0; i < r->nprune; i++) {
    free(r->prune[i].api_version);
    free(r->prune[i].kind);
    free(r->prune[i].ns);
    free(r->prune[i].name);
  }
  free(r->children);
  free(r->prune);
  json_decref(r->status);
  json_decref(r->events);
  memset(r, 0, sizeof(*r));
}

struct post {
  struct lk_engine *e;
  const struct lk_reconcile_in *in;
  struct run *run;
  struct lk_result *r;
  const char *path; /* the reconciler's file, for messages */
  const char *cr_ns, *cr_name, *cr_uid, *cr_av, *cr_kind;
  char msg[1024];
};

static int post_fail(struct post *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int post_fail(struct post *p, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->msg, sizeof(p->msg), fmt, ap);
  va_end(ap);
  return -1;
}

static const struct lk_gvk *owns_of(const struct lk_controller_decl *c, const char *av,
                                    const char *kind)
{
  for (size_t i = 0; i < c->nowns; i++)
    if (same_gvk(&c->owns[i], av, kind)) return &c->owns[i];
  return NULL;
}

/* Decorates child i in place (steps 1, 2 and 4 of the contract). */
static int decorate(struct post *p, size_t i, json_t *child, struct lk_child *out)
{
  const struct lk_reconcile_in *in = p->in;
  if (!json_is_object(child)) return post_fail(p, "result.children[%zu]: must be a table", i);
  const char *av = jstr(child, "apiVersion"), *kind = jstr(child, "kind");
  if (!nonempty(av))
    return post_fail(p, "result.children[%zu].apiVersion: must be a non-empty string", i);
  if (!nonempty(kind))
    return post_fail(p, "result.children[%zu].kind: must be a non-empty string", i);
  json_t *md = json_object_get(child, "metadata");
  if (!json_is_object(md))
    return post_fail(p, "result.children[%zu].metadata: must be a table with a name", i);
  if (!nonempty(jstr(md, "name")))
    return post_fail(p, "result.children[%zu].metadata.name: must be a non-empty string", i);
  json_t *nsv = json_object_get(md, "namespace");
  if (nsv && !json_is_string(nsv))
    return post_fail(p, "result.children[%zu].metadata.namespace: must be a string", i);
  if (!owns_of(in->controller, av, kind))
    return post_fail(p,
                     "result.children[%zu]: %s %s is not in owns of controller %s "
                     "(controllers.lua)",
                     i, av, kind, in->controller->name);
  const struct lk_discovery_source *d = in->discovery;
  if (d && !d->ops->served(d->ud, av, kind))
    return post_fail(p,
                     "result.children[%zu]: %s %s is not served by the API server "
                     "(check k8s.discovery.served first)",
                     i, av, kind);
  int namespaced = d && d->ops->namespaced ? d->ops->namespaced(d->ud, av, kind) : -1;
  if (namespaced == 0)
    json_object_del(md, "namespace");
  else if (!nonempty(jstr(md, "namespace")))
    json_object_set_new(md, "namespace", json_string(p->cr_ns));

  json_t *labels = jobj(md, "labels");
  if (!labels) return post_fail(p, "result.children[%zu].metadata.labels: must be a table", i);
  json_object_set_new(labels, LK_LABEL_MANAGED_BY, json_string(LK_MANAGED_BY));
  json_object_set_new(labels, LK_LABEL_OWNER, json_string(p->run->owner));

  const char *ns = jstr(md, "namespace");
  if (ns && *p->cr_ns && !strcmp(ns, p->cr_ns)) {
    json_t *refs = json_object_get(md, "ownerReferences");
    if (!refs) {
      refs = json_array();
      json_object_set_new(md, "ownerReferences", refs);
    }
    if (!json_is_array(refs))
      return post_fail(p, "result.children[%zu].metadata.ownerReferences: must be a list", i);
    for (size_t k = json_array_size(refs); k-- > 0;) {
      const json_t *ref = json_array_get(refs, k);
      if (json_is_true(json_object_get(ref, "controller")) ||
          (nonempty(p->cr_uid) && !strcmp(p->cr_uid, jstr(ref, "uid") ? jstr(ref, "uid") : "")))
        json_array_remove(refs, k);
    }
    json_t *ref = json_pack("{s:s, s:s, s:s, s:b, s:b}", "apiVersion", p->cr_av, "kind", p->cr_kind,
                            "name", p->cr_name, "controller", 1, "blockOwnerDeletion", 1);
    if (nonempty(p->cr_uid)) json_object_set_new(ref, "uid", json_string(p->cr_uid));
    json_array_append_new(refs, ref);
  }

  json_t *ann = jobj(md, "annotations");
  if (!ann) return post_fail(p, "result.children[%zu].metadata.annotations: must be a table", i);
  json_object_del(ann, LK_ANNOTATION_HASH);
  size_t len;
  char *canon = k8s_json_dump(child, K8S_JSON_SORT_KEYS, &len);
  if (!canon) return post_fail(p, "result.children[%zu]: cannot encode", i);
  k8s_sha256_hex(canon, len, out->hash);
  free(canon);
  json_object_set_new(ann, LK_ANNOTATION_HASH, json_string(out->hash));

  out->obj = json_incref(child);
  out->api_version = jstr(child, "apiVersion");
  out->kind = jstr(child, "kind");
  out->ns = jstr(md, "namespace") ? jstr(md, "namespace") : "";
  out->name = jstr(md, "name");
  return 0;
}

/* Step 5: APPLY, UNCHANGED or CONFLICT for a decorated child. */
static int classify(struct post *p, struct lk_child *ch)
{
  struct run *run = p->run;
  for (size_t k = 0; k < run->nobs; k++) {
    struct obs *o = &run->obs[k];
    if (same_gvk(o->gvk, ch->api_version, ch->kind) && !strcmp(o->ns, ch->ns) &&
        !strcmp(o->name, ch->name)) {
      o->desired = 1;
      ch->action = o->hash && !strcmp(o->hash, ch->hash) ? LK_CHILD_UNCHANGED : LK_CHILD_APPLY;
      return 0;
    }
  }
  ch->action = LK_CHILD_APPLY;
  const struct lk_cache_source *cache = p->in->cache;
  struct k8s_store *st = cache ? cache->ops->store(cache->ud, ch->api_version, ch->kind) : NULL;
  if (!st) return 0;
  char key[512];
  snprintf(key, sizeof(key), "%s%s%s", ch->ns, *ch->ns ? "/" : "", ch->name);
  const struct k8s_object *cur = k8s_store_get(st, key);
  if (!cur) return 0;
  const char *owner = k8s_object_label(cur, LK_LABEL_OWNER);
  if (owner && !strcmp(owner, run->owner)) return 0;
  ch->action = LK_CHILD_CONFLICT;
  ch->owner = strdup(owner ? owner : "");
  p->r->nconflicts++;
  return 0;
}

/* Sets condition type in status.conditions, keeping lastTransitionTime from
 * the CR's condition of that type when its status is the same. */
static void set_condition(json_t *status, const json_t *cr_status, const char *type, const char *st,
                          const char *reason, const char *message, const char *now,
                          json_t *generation)
{
  json_t *conds = json_object_get(status, "conditions");
  if (!json_is_array(conds)) {
    conds = json_array();
    json_object_set_new(status, "conditions", conds);
  }
  const char *ltt = now;
  const json_t *old;
  size_t k;
  json_array_foreach(json_object_get(cr_status, "conditions"), k, old)
  {
    if (!strcmp(jstr(old, "type") ? jstr(old, "type") : "", type) && jstr(old, "status") &&
        !strcmp(jstr(old, "status"), st) && nonempty(jstr(old, "lastTransitionTime")))
      ltt = jstr(old, "lastTransitionTime");
  }
  char msg[CONDITION_MESSAGE_MAX + 1];
  snprintf(msg, sizeof(msg), "%s", message);
  json_t *c = json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", type, "status", st, "reason", reason,
                        "message", msg, "lastTransitionTime", ltt);
  if (generation) json_object_set(c, "observedGeneration", generation);
  size_t n = json_array_size(conds);
  for (k = 0; k < n; k++)
    if (!strcmp(jstr(json_array_get(conds, k), "type") ? jstr(json_array_get(conds, k), "type")
                                                       : "",
                type))
      break;
  if (k < n)
    json_array_set_new(conds, k, c);
  else
    json_array_insert_new(conds, 0, c);
}

/* Step 6: the status to write. script_status may be NULL (use the CR's). */
static void build_status(struct post *p, const json_t *script_status)
{
  const json_t *cr_status = json_object_get(p->in->cr, "status");
  json_t *gen = json_object_get(json_object_get(p->in->cr, "metadata"), "generation");
  json_t *st;
  if (json_is_object(script_status))
    st = json_deep_copy(script_status);
  else if (json_is_object(cr_status))
    st = json_deep_copy(cr_status);
  else
    st = json_object();
  struct lk_result *r = p->r;
  if (r->err.kind != LK_ERR_NONE) {
    set_condition(st, cr_status, "Ready", "False",
                  r->err.kind == LK_ERR_TERMINAL ? "InvalidSpec" : "ReconcileError",
                  r->err.message ? r->err.message : "reconcile failed", p->run->now, gen);
  } else if (r->nconflicts) {
    char msg[1024] = "";
    size_t shown = 0;
    for (size_t i = 0; i < r->nchildren; i++) {
      const struct lk_child *c = &r->children[i];
      if (c->action != LK_CHILD_CONFLICT) continue;
      if (shown++ == 0) {
        if (*c->owner)
          snprintf(msg, sizeof(msg), "%s %s%s%s exists and is owned by %s; not taken over", c->kind,
                   c->ns, *c->ns ? "/" : "", c->name, c->owner);
        else
          snprintf(msg, sizeof(msg),
                   "%s %s%s%s exists and is not managed by schedsim-operator; not taken over",
                   c->kind, c->ns, *c->ns ? "/" : "", c->name);
      }
    }
    if (shown > 1) {
      size_t n = strlen(msg);
      snprintf(msg + n, sizeof(msg) - n, " (and %zu more)", shown - 1);
    }
    set_condition(st, cr_status, "Ready", "False", "Conflict", msg, p->run->now, gen);
  } else if (nonempty(p->in->write_refused)) {
    set_condition(st, cr_status, "Ready", "False", "ReconcileError", p->in->write_refused,
                  p->run->now, gen);
  }
  if (gen) json_object_set(st, "observedGeneration", gen);
  json_object_set_new(st, "scriptRevision", json_string(p->e->set->revision));
  r->status = st;
  r->status_changed = !r->finalizing && !json_equal(st, (json_t *)cr_status);
}

static int valid_reason(const char *s)
{
  if (!nonempty(s) || !isupper((unsigned char)s[0])) return 0;
  for (const char *c = s; *c; c++)
    if (!isalnum((unsigned char)*c)) return 0;
  return 1;
}

/* Validates the converted result and fills r (children, events, requeue). */
static int post_process(struct post *p)
{
  struct lk_result *r = p->r;
  json_t *res = p->run->result;
  json_t *children = json_object_get(res, "children");
  json_t *status = json_object_get(res, "status");
  json_t *requeue = json_object_get(res, "requeue_after");
  json_t *events = json_object_get(res, "events");
  json_t *finalized = json_object_get(res, "finalized");
  if (children && !json_is_array(children) &&
      !(json_is_object(children) && !json_object_size(children)))
    return post_fail(p, "result.children: must be a list");
  if (status && !json_is_object(status) && !(json_is_array(status) && !json_array_size(status)))
    return post_fail(p, "result.status: must be a table");
  if (requeue && !(json_is_number(requeue) && json_number_value(requeue) > 0))
    return post_fail(p, "result.requeue_after: must be a positive number of seconds");
  if (finalized && !json_is_boolean(finalized))
    return post_fail(p, "result.finalized: must be a boolean");
  if (events && !json_is_array(events) && !(json_is_object(events) && !json_object_size(events)))
    return post_fail(p, "result.events: must be a list");
  r->requeue_after = requeue ? json_number_value(requeue) : 0;
  r->finalized = finalized ? json_is_true(finalized) : 1;

  r->events = json_array();
  size_t i;
  json_t *ev;
  json_array_foreach(json_is_array(events) ? events : NULL, i, ev)
  {
    const char *key;
    json_t *v;
    if (!json_is_object(ev)) return post_fail(p, "result.events[%zu]: must be a table", i);
    json_object_foreach(ev, key, v)
    {
      if (strcmp(key, "type") && strcmp(key, "reason") && strcmp(key, "message"))
        return post_fail(p, "result.events[%zu].%s: unknown field", i, key);
    }
    const char *type = jstr(ev, "type"), *reason = jstr(ev, "reason"),
               *message = jstr(ev, "message");
    if (!type || (strcmp(type, "Normal") && strcmp(type, "Warning")))
      return post_fail(p, "result.events[%zu].type: must be \"Normal\" or \"Warning\"", i);
    if (!valid_reason(reason))
      return post_fail(p, "result.events[%zu].reason: must be a CamelCase string", i);
    if (!message) return post_fail(p, "result.events[%zu].message: must be a string", i);
    char msg[EVENT_MESSAGE_MAX + 1];
    snprintf(msg, sizeof(msg), "%s", message);
    json_array_append_new(
        r->events, json_pack("{s:s, s:s, s:s}", "type", type, "reason", reason, "message", msg));
  }

  if (!r->finalizing) {
    size_t n = json_array_size(children);
    r->children = calloc(n + 1, sizeof(*r->children));
    if (!r->children) return post_fail(p, "out of memory");
    for (i = 0; i < n; i++) {
      struct lk_child *ch = &r->children[r->nchildren];
      if (decorate(p, i, json_array_get(children, i), ch) != 0) return -1;
      r->nchildren++;
      for (size_t k = 0; k + 1 < r->nchildren; k++) {
        const struct lk_child *o = &r->children[k];
        if (!strcmp(o->api_version, ch->api_version) && !strcmp(o->kind, ch->kind) &&
            !strcmp(o->ns, ch->ns) && !strcmp(o->name, ch->name))
          return post_fail(p, "result.children[%zu]: duplicate of children[%zu] (%s %s%s%s)", i, k,
                           ch->kind, ch->ns, *ch->ns ? "/" : "", ch->name);
      }
      classify(p, ch);
    }
  }
  return 0;
}

/* Observed children not desired (all of them when finalizing). */
static void build_prune(struct post *p)
{
  struct run *run = p->run;
  struct lk_result *r = p->r;
  r->nobserved = run->nobs;
  r->prune = calloc(run->nobs + 1, sizeof(*r->prune));
  if (!r->prune) return;
  for (size_t k = 0; k < run->nobs; k++) {
    struct obs *o = &run->obs[k];
    if (o->desired && !r->finalizing) continue;
    struct lk_ref *ref = &r->prune[r->nprune++];
    ref->api_version = strdup(o->gvk->api_version);
    ref->kind = strdup(o->gvk->kind);
    ref->ns = strdup(o->ns ? o->ns : "");
    ref->name = strdup(o->name ? o->name : "");
    ref->deleting = o->deleting;
  }
}

json_t *lk_result_to_json(const struct lk_result *r)
{
  static const char *const actions[] = {"apply", "unchanged", "conflict"};
  json_t *children = json_array(), *acts = json_array(), *prune = json_array();
  for (size_t i = 0; i < r->nchildren; i++) {
    const struct lk_child *c = &r->children[i];
    json_array_append(children, c->obj);
    json_t *a =
        json_pack("{s:s, s:s, s:s, s:s, s:s}", "apiVersion", c->api_version, "kind", c->kind,
                  "namespace", c->ns, "name", c->name, "action", actions[c->action]);
    if (c->owner) json_object_set_new(a, "owner", json_string(c->owner));
    json_array_append_new(acts, a);
  }
  for (size_t i = 0; i < r->nprune; i++) {
    const struct lk_ref *p = &r->prune[i];
    json_array_append_new(prune, json_pack("{s:s, s:s, s:s, s:s}", "apiVersion", p->api_version,
                                           "kind", p->kind, "namespace", p->ns, "name", p->name));
  }
  json_t *out = json_pack("{s:o, s:o, s:o, s:O, s:b, s:O, s:b, s:b, s:f}", "children", children,
                          "actions", acts, "prune", prune, "status",
                          r->status ? r->status : json_null(), "status_changed", r->status_changed,
                          "events", r->events ? r->events : json_array(), "finalizing",
                          r->finalizing, "finalized", r->finalized, "lua_seconds", r->lua_seconds);
  if (r->requeue_after > 0) json_object_set_new(out, "requeue_after", json_real(r->requeue_after));
  if (r->err.kind != LK_ERR_NONE) {
    json_object_set_new(out, "error", json_string(r->err.message ? r->err.message : "?"));
    json_object_set_new(out, "error_kind", json_string(lk_error_kind_name(r->err.kind)));
    if (r->err.traceback) json_object_set_new(out, "traceback", json_string(r->err.traceback));
  }
  return out;
}

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
  r->lua_seconds = k8s_monotonic() - t0;
  if (st == LUA_OK) {
    if (run.result_err[0])
      lk_error_set(&r->err, LK_ERR_RESULT, "%s: %s", p.path, run.result_err);
    else if (post_process(&p) != 0)
      lk_error_set(&r->err, LK_ERR_RESULT, "%s: %s", p.path, p.msg);
  }
  if (r->err.kind != LK_ERR_NONE) {
    /* a failed reconcile applies nothing and prunes nothing */
    for (size_t i = 0; i < r->nchildren; i++) {
      json_decref(r->children[i].obj);
      free(r->children[i].owner);
    }
    r->nchildren = r->nconflicts = 0;
    json_decref(r->events);
    r->events = json_array();
    r->requeue_after = 0;
    r->nobserved = run.nobs;
    if (run.finalizing) build_prune(&p), r->finalized = 0;
  } else
    build_prune(&p);
  if (!r->events) r->events = json_array();
  build_status(&p, r->err.kind == LK_ERR_NONE ? json_object_get(run.result, "status") : NULL);
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
