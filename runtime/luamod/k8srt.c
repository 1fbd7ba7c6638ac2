/* k8srt.c: luaopen_k8srt, the runtime's pure parts (runtime/core) as a Lua
 * module for busted specs: JSON and YAML conversion with the k8s markers, a
 * Store, a WorkQueue driven by an explicit fake clock, the watch-stream
 * framer, sha256 and the owner label value. Not loaded by the operator.
 *
 * Errors: misuse raises (luaL_check*); expected failures (bad JSON/YAML text,
 * an object the Store refuses) return nil, message. Userdata are created
 * closed (NULL handle) before their resource exists, and __gc/__close share
 * one idempotent release. */
#include <string.h>
#include <lauxlib.h>
#include <lua.h>
#include "core/json.h"
#include "core/store.h"
#include "core/util.h"
#include "core/watchframe.h"
#include "core/workqueue.h"
#include "core/yaml.h"

#define STORE_MT "k8s.Store"
#define QUEUE_MT "k8s.WorkQueue"
#define FRAME_MT "k8s.WatchFrame"

/* {====================================================================
 * JSON and YAML
 * ===================================================================== */

static int json_encode(lua_State *L)
{
  char err[512];
  size_t len;
  luaL_checkany(L, 1);
  char *text = k8s_json_encode_lua(L, 1, &len, err, sizeof err);
  if (!text) return luaL_error(L, "json.encode: %s", err);
  lua_pushlstring(L, text, len);
  free(text);
  return 1;
}

static int json_decode(lua_State *L)
{
  char err[512];
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  if (k8s_json_push(L, text, len, err, sizeof err) < 0) {
    luaL_pushfail(L);
    lua_pushstring(L, err);
    return 2;
  }
  return 1;
}

/* Pushes the documents (a light userdata json_t array) as a Lua array. */
static int push_docs(lua_State *L)
{
  const json_t *docs = lua_touserdata(L, 1);
  size_t n = json_array_size(docs);
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    k8s_json_push_value(L, json_array_get(docs, i));
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  k8s_json_mark_array(L, -1);
  return 1;
}

static int yaml_load(lua_State *L)
{
  char err[512];
  size_t len;
  const char *text = luaL_checklstring(L, 1, &len);
  const char *filename = luaL_optstring(L, 2, NULL);
  json_t *docs = k8s_yaml_load(text, len, filename, err, sizeof err);
  if (!docs) {
    luaL_pushfail(L);
    lua_pushstring(L, err);
    return 2;
  }
  lua_pushcfunction(L, push_docs);
  lua_pushlightuserdata(L, docs);
  int rc = lua_pcall(L, 1, 1, 0); /* so that docs is freed on any error */
  json_decref(docs);
  if (rc != LUA_OK) return lua_error(L);
  return 1;
}

static int yaml_dump(lua_State *L)
{
  char err[512];
  size_t len;
  luaL_checkany(L, 1);
  json_t *v = k8s_json_from_lua(L, 1, err, sizeof err);
  if (!v) return luaL_error(L, "yaml.dump: %s", err);
  char *text = lua_toboolean(L, 2) ? k8s_yaml_dump_stream(v, &len) : k8s_yaml_dumpn(v, &len);
  json_decref(v);
  if (!text) return luaL_error(L, "yaml.dump: cannot write this value");
  lua_pushlstring(L, text, len);
  free(text);
  return 1;
}

static int l_array(lua_State *L)
{
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  k8s_json_mark_array(L, 1);
  return 1;
}

/* }==================================================================== */

/* {====================================================================
 * Small helpers
 * ===================================================================== */

static int l_sha256(lua_State *L)
{
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  char hex[K8S_SHA256_HEX_LEN];
  k8s_sha256_hex(s, len, hex);
  lua_pushstring(L, hex);
  return 1;
}

static int l_owner_label_value(lua_State *L)
{
  const char *kind = luaL_checkstring(L, 1);
  const char *ns = luaL_optstring(L, 2, "");
  const char *name = luaL_checkstring(L, 3);
  char out[K8S_LABEL_VALUE_BUF];
  size_t n = k8s_owner_label_value(kind, ns, name, out);
  lua_pushlstring(L, out, n);
  return 1;
}

static int l_is_label_value(lua_State *L)
{
  lua_pushboolean(L, k8s_is_label_value(luaL_checkstring(L, 1)));
  return 1;
}

static int l_rfc3339(lua_State *L)
{
  char out[K8S_TIME_BUF];
  size_t n = k8s_rfc3339(luaL_checknumber(L, 1), out);
  lua_pushlstring(L, out, n);
  return 1;
}

static void push_event_name(lua_State *L, enum k8s_store_event ev)
{
  static const char *const names[] = {"ADDED", "UPDATED", "UNCHANGED", "DELETED"};
  lua_pushstring(L, names[ev]);
}

/* }==================================================================== */

/* {====================================================================
 * Store
 * ===================================================================== */

struct lstore {
  struct k8s_store *s;
};

static struct k8s_store *check_store(lua_State *L)
{
  struct lstore *ls = luaL_checkudata(L, 1, STORE_MT);
  if (!ls->s) luaL_error(L, "attempt to use a closed store");
  return ls->s;
}

static int store_new(lua_State *L)
{
  const char *av = luaL_optstring(L, 1, NULL);
  const char *kind = luaL_optstring(L, 2, NULL);
  struct lstore *ls = lua_newuserdatauv(L, sizeof *ls, 0);
  ls->s = NULL;
  luaL_setmetatable(L, STORE_MT);
  ls->s = k8s_store_new();
  if (!ls->s || (av && kind && k8s_store_set_kind(ls->s, av, kind) < 0))
    return luaL_error(L, "out of memory");
  return 1;
}

static int store_gc(lua_State *L)
{
  struct lstore *ls = luaL_checkudata(L, 1, STORE_MT);
  k8s_store_free(ls->s);
  ls->s = NULL;
  return 0;
}

/* The object argument at idx: a Lua table or JSON text. New reference. */
static json_t *check_object(lua_State *L, int idx)
{
  char err[512];
  json_t *v;
  if (lua_type(L, idx) == LUA_TSTRING) {
    size_t len;
    const char *text = lua_tolstring(L, idx, &len);
    v = k8s_json_parse(text, len, err, sizeof err);
  } else {
    luaL_checktype(L, idx, LUA_TTABLE);
    v = k8s_json_from_lua(L, idx, err, sizeof err);
  }
  if (!v) luaL_error(L, "bad object: %s", err);
  return v;
}

/* Records store events into the table at `idx` as {type=, key=}. */
struct recorder {
  lua_State *L;
  int idx;
};

static void record(void *ud, enum k8s_store_event ev, const struct k8s_object *old,
                   const struct k8s_object *new_obj)
{
  struct recorder *r = ud;
  lua_State *L = r->L;
  lua_createtable(L, 0, 4);
  push_event_name(L, ev);
  lua_setfield(L, -2, "type");
  lua_pushstring(L, (new_obj ? new_obj : old)->key);
  lua_setfield(L, -2, "key");
  if (old) {
    lua_pushstring(L, old->resource_version);
    lua_setfield(L, -2, "old_resource_version");
  }
  if (new_obj) {
    lua_pushstring(L, new_obj->resource_version);
    lua_setfield(L, -2, "resource_version");
  }
  lua_rawseti(L, r->idx, (lua_Integer)lua_rawlen(L, r->idx) + 1);
}

static int store_upsert(lua_State *L)
{
  char err[512];
  struct k8s_store *s = check_store(L);
  json_t *v = check_object(L, 2);
  lua_newtable(L);
  struct recorder r = {L, lua_gettop(L)};
  int ev = k8s_store_upsert(s, v, record, &r, err, sizeof err);
  json_decref(v);
  if (ev < 0) {
    luaL_pushfail(L);
    lua_pushstring(L, err);
    return 2;
  }
  push_event_name(L, (enum k8s_store_event)ev);
  return 1;
}

static int store_replace(lua_State *L)
{
  char err[512];
  struct k8s_store *s = check_store(L);
  json_t *v = check_object(L, 2);
  lua_newtable(L);
  struct recorder r = {L, lua_gettop(L)};
  int skipped = k8s_store_replace(s, v, record, &r, err, sizeof err);
  json_decref(v);
  if (skipped < 0) return luaL_error(L, "replace: %s", err);
  k8s_json_mark_array(L, -1);
  lua_pushinteger(L, skipped);
  if (skipped) {
    lua_pushstring(L, err);
    return 3;
  }
  return 2;
}

static int store_delete(lua_State *L)
{
  struct k8s_store *s = check_store(L);
  lua_pushboolean(L, k8s_store_delete(s, luaL_checkstring(L, 2), NULL, NULL));
  return 1;
}

static void push_object(lua_State *L, const struct k8s_object *o)
{
  char err[256];
  if (k8s_object_push(L, o, err, sizeof err) < 0)
    luaL_error(L, "stored object %s: %s", o->key, err);
}

static int store_get(lua_State *L)
{
  struct k8s_store *s = check_store(L);
  const struct k8s_object *o = k8s_store_get(s, luaL_checkstring(L, 2));
  if (!o) return 0;
  push_object(L, o);
  return 1;
}

/* The indexed fields of an object, for specs of the Store itself. */
static int store_meta(lua_State *L)
{
  struct k8s_store *s = check_store(L);
  const struct k8s_object *o = k8s_store_get(s, luaL_checkstring(L, 2));
  if (!o) return 0;
  lua_createtable(L, 0, 12);
  lua_pushstring(L, o->key);
  lua_setfield(L, -2, "key");
  lua_pushstring(L, o->ns);
  lua_setfield(L, -2, "namespace");
  lua_pushstring(L, o->name);
  lua_setfield(L, -2, "name");
  lua_pushstring(L, o->uid);
  lua_setfield(L, -2, "uid");
  lua_pushstring(L, o->resource_version);
  lua_setfield(L, -2, "resource_version");
  lua_pushinteger(L, o->generation);
  lua_setfield(L, -2, "generation");
  lua_pushboolean(L, o->deleting);
  lua_setfield(L, -2, "deleting");
  lua_pushinteger(L, (lua_Integer)o->json_len);
  lua_setfield(L, -2, "json_len");
  lua_createtable(L, 0, (int)o->nlabels);
  for (size_t i = 0; i < o->nlabels; i++) {
    lua_pushstring(L, o->labels[i].value);
    lua_setfield(L, -2, o->labels[i].key);
  }
  lua_setfield(L, -2, "labels");
  lua_createtable(L, (int)o->nowners, 0);
  for (size_t i = 0; i < o->nowners; i++) {
    const struct k8s_owner_ref *r = &o->owners[i];
    lua_createtable(L, 0, 5);
    lua_pushstring(L, r->api_version);
    lua_setfield(L, -2, "apiVersion");
    lua_pushstring(L, r->kind);
    lua_setfield(L, -2, "kind");
    lua_pushstring(L, r->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, r->uid);
    lua_setfield(L, -2, "uid");
    lua_pushboolean(L, r->controller);
    lua_setfield(L, -2, "controller");
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  k8s_json_mark_array(L, -1);
  lua_setfield(L, -2, "owners");
  return 1;
}

/* Pushes an array of objects and frees arr; n == (size_t)-1 raises. */
static int push_objects(lua_State *L, const struct k8s_object **arr, size_t n, const char *what)
{
  if (n == (size_t)-1) return luaL_error(L, "%s failed", what);
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    char err[256];
    if (k8s_object_push(L, arr[i], err, sizeof err) < 0) {
      free(arr);
      return luaL_error(L, "stored object: %s", err);
    }
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  free(arr);
  k8s_json_mark_array(L, -1);
  return 1;
}

static int store_list(lua_State *L)
{
  struct k8s_store *s = check_store(L);
  const struct k8s_object **arr;
  size_t n = k8s_store_list(s, luaL_optstring(L, 2, NULL), &arr);
  return push_objects(L, arr, n, "list");
}

static int store_by_index(lua_State *L)
{
  struct k8s_store *s = check_store(L);
  const struct k8s_object **arr;
  size_t n = k8s_store_by_index(s, luaL_checkstring(L, 2), luaL_checkstring(L, 3), &arr);
  if (n == (size_t)-1) return luaL_error(L, "by_index: unknown index '%s'", lua_tostring(L, 2));
  return push_objects(L, arr, n, "by_index");
}

static int store_select(lua_State *L)
{
  struct k8s_store *s = check_store(L);
  luaL_checktype(L, 2, LUA_TTABLE);
  const char *ns = luaL_optstring(L, 3, NULL);
  struct k8s_label sel[64];
  size_t nsel = 0;
  lua_pushnil(L);
  while (lua_next(L, 2)) {
    if (nsel == 64 || lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
      return luaL_argerror(L, 2, "labels must map strings to strings (at most 64)");
    sel[nsel].key = lua_tostring(L, -2);
    sel[nsel].value = lua_tostring(L, -1); /* the table keeps both alive */
    nsel++;
    lua_pop(L, 1);
  }
  const struct k8s_object **arr;
  size_t n = k8s_store_select(s, ns, sel, nsel, &arr);
  return push_objects(L, arr, n, "select");
}

static int store_add_index(lua_State *L)
{
  struct k8s_store *s = check_store(L);
  lua_pushboolean(L, k8s_store_add_index(s, luaL_checkstring(L, 2)) == 0);
  return 1;
}

static int store_len(lua_State *L)
{
  lua_pushinteger(L, (lua_Integer)k8s_store_len(check_store(L)));
  return 1;
}

static int store_stats(lua_State *L)
{
  struct k8s_store_stats st;
  k8s_store_stats(check_store(L), &st);
  lua_createtable(L, 0, 6);
  lua_pushinteger(L, (lua_Integer)st.objects);
  lua_setfield(L, -2, "objects");
  lua_pushinteger(L, (lua_Integer)st.object_bytes);
  lua_setfield(L, -2, "object_bytes");
  lua_pushinteger(L, (lua_Integer)st.index_bytes);
  lua_setfield(L, -2, "index_bytes");
  lua_pushinteger(L, (lua_Integer)st.json_bytes);
  lua_setfield(L, -2, "json_bytes");
  lua_pushinteger(L, (lua_Integer)st.packed_bytes);
  lua_setfield(L, -2, "packed_bytes");
  lua_pushinteger(L, (lua_Integer)st.dict_bytes);
  lua_setfield(L, -2, "dict_bytes");
  return 1;
}

static const luaL_Reg store_meth[] = {
    {"add_index", store_add_index},
    {"by_index", store_by_index},
    {"delete", store_delete},
    {"get", store_get},
    {"len", store_len},
    {"list", store_list},
    {"meta", store_meta},
    {"replace", store_replace},
    {"select", store_select},
    {"stats", store_stats},
    {"upsert", store_upsert},
    {NULL, NULL},
};

/* }==================================================================== */

/* {====================================================================
 * WorkQueue with a fake clock
 * ===================================================================== */

struct lqueue {
  struct k8s_workqueue *q;
  double now; /* the fake clock, seconds */
};

static struct lqueue *check_queue(lua_State *L)
{
  struct lqueue *lq = luaL_checkudata(L, 1, QUEUE_MT);
  if (!lq->q) luaL_error(L, "attempt to use a closed work queue");
  return lq;
}

static double opt_field(lua_State *L, int idx, const char *name, double dflt)
{
  if (lua_type(L, idx) != LUA_TTABLE) return dflt;
  lua_getfield(L, idx, name);
  double v = luaL_optnumber(L, -1, dflt);
  lua_pop(L, 1);
  return v;
}

/* k8srt.workqueue([name], [{base_delay=, max_delay=, qps=, burst=, now=}]) */
static int queue_new(lua_State *L)
{
  const char *name = luaL_optstring(L, 1, "test");
  struct k8s_ratelimiter_config cfg = K8S_RATELIMITER_DEFAULTS;
  cfg.base_delay = opt_field(L, 2, "base_delay", cfg.base_delay);
  cfg.max_delay = opt_field(L, 2, "max_delay", cfg.max_delay);
  cfg.qps = opt_field(L, 2, "qps", cfg.qps);
  cfg.burst = (int)opt_field(L, 2, "burst", cfg.burst);
  double now = opt_field(L, 2, "now", 0);
  struct lqueue *lq = lua_newuserdatauv(L, sizeof *lq, 0);
  lq->q = NULL;
  lq->now = now;
  luaL_setmetatable(L, QUEUE_MT);
  struct k8s_ratelimiter *rl = k8s_ratelimiter_new(&cfg);
  if (!rl || !(lq->q = k8s_workqueue_new(name, rl))) return luaL_error(L, "out of memory");
  return 1;
}

static int queue_gc(lua_State *L)
{
  struct lqueue *lq = luaL_checkudata(L, 1, QUEUE_MT);
  k8s_workqueue_free(lq->q);
  lq->q = NULL;
  return 0;
}

static int queue_add(lua_State *L)
{
  static const char *const prios[] = {"low", "high", NULL};
  struct lqueue *lq = check_queue(L);
  const char *key = luaL_checkstring(L, 2);
  int prio = luaL_checkoption(L, 3, "high", prios);
  lua_pushinteger(L, k8s_workqueue_add(lq->q, key, prio ? K8S_PRIORITY_HIGH : K8S_PRIORITY_LOW));
  return 1;
}

static int queue_add_after(lua_State *L)
{
  struct lqueue *lq = check_queue(L);
  int rc = k8s_workqueue_add_after(lq->q, luaL_checkstring(L, 2), luaL_checknumber(L, 3), lq->now);
  lua_pushboolean(L, rc == 0);
  return 1;
}

static int queue_add_rate_limited(lua_State *L)
{
  struct lqueue *lq = check_queue(L);
  lua_pushnumber(L, k8s_workqueue_add_rate_limited(lq->q, luaL_checkstring(L, 2), lq->now));
  return 1;
}

static int queue_forget(lua_State *L)
{
  k8s_workqueue_forget(check_queue(L)->q, luaL_checkstring(L, 2));
  return 0;
}

static int queue_num_requeues(lua_State *L)
{
  lua_pushinteger(L, k8s_workqueue_num_requeues(check_queue(L)->q, luaL_checkstring(L, 2)));
  return 1;
}

static int queue_get(lua_State *L)
{
  const char *key = k8s_workqueue_get(check_queue(L)->q);
  if (!key) return 0;
  lua_pushstring(L, key);
  return 1;
}

static int queue_done(lua_State *L)
{
  lua_pushboolean(L, k8s_workqueue_done(check_queue(L)->q, luaL_checkstring(L, 2)) == 0);
  return 1;
}

static int queue_shut_down(lua_State *L)
{
  k8s_workqueue_shut_down(check_queue(L)->q);
  return 0;
}

static int queue_now(lua_State *L)
{
  lua_pushnumber(L, check_queue(L)->now);
  return 1;
}

/* q:advance(seconds): moves the fake clock and ticks; returns keys moved. */
static int queue_advance(lua_State *L)
{
  struct lqueue *lq = check_queue(L);
  lq->now += luaL_checknumber(L, 2);
  lua_pushinteger(L, (lua_Integer)k8s_workqueue_tick(lq->q, lq->now));
  return 1;
}

static int queue_next_deadline(lua_State *L)
{
  double d = k8s_workqueue_next_deadline(check_queue(L)->q);
  if (d < 0) return 0;
  lua_pushnumber(L, d);
  return 1;
}

static int queue_stats(lua_State *L)
{
  struct k8s_workqueue_stats st;
  k8s_workqueue_stats(check_queue(L)->q, &st);
  lua_createtable(L, 0, 5);
  lua_pushinteger(L, (lua_Integer)st.depth);
  lua_setfield(L, -2, "depth");
  lua_pushinteger(L, (lua_Integer)st.processing);
  lua_setfield(L, -2, "processing");
  lua_pushinteger(L, (lua_Integer)st.waiting);
  lua_setfield(L, -2, "waiting");
  lua_pushinteger(L, (lua_Integer)st.adds);
  lua_setfield(L, -2, "adds");
  lua_pushinteger(L, (lua_Integer)st.retries);
  lua_setfield(L, -2, "retries");
  return 1;
}

static const luaL_Reg queue_meth[] = {
    {"add", queue_add},
    {"add_after", queue_add_after},
    {"add_rate_limited", queue_add_rate_limited},
    {"advance", queue_advance},
    {"done", queue_done},
    {"forget", queue_forget},
    {"get", queue_get},
    {"next_deadline", queue_next_deadline},
    {"now", queue_now},
    {"num_requeues", queue_num_requeues},
    {"shut_down", queue_shut_down},
    {"stats", queue_stats},
    {NULL, NULL},
};

/* }==================================================================== */

/* {====================================================================
 * Watch framer
 * ===================================================================== */

struct frame_ctx {
  lua_State *L;
  int events, errors; /* stack indexes of the result tables of the current call */
};

/* Userdata memory does not move, so the framer's ud points at ctx. */
struct lframe {
  struct k8s_watchframe *f;
  struct frame_ctx ctx;
};

static void frame_event(void *ud, const struct k8s_watch_event *ev)
{
  struct frame_ctx *c = ud;
  lua_State *L = c->L;
  lua_createtable(L, 0, 8);
  lua_pushstring(L, k8s_watch_type_name(ev->type));
  lua_setfield(L, -2, "type");
  k8s_json_push_value(L, ev->object);
  lua_setfield(L, -2, "object");
  if (ev->resource_version) {
    lua_pushstring(L, ev->resource_version);
    lua_setfield(L, -2, "resource_version");
  }
  if (ev->type == K8S_WATCH_ERROR) {
    lua_pushinteger(L, ev->code);
    lua_setfield(L, -2, "code");
    lua_pushstring(L, ev->reason);
    lua_setfield(L, -2, "reason");
    lua_pushstring(L, ev->message);
    lua_setfield(L, -2, "message");
    lua_pushboolean(L, ev->expired);
    lua_setfield(L, -2, "expired");
  }
  lua_rawseti(L, c->events, (lua_Integer)lua_rawlen(L, c->events) + 1);
}

static void frame_error(void *ud, enum k8s_watchframe_error code, const char *msg)
{
  static const char *const names[] = {"", "oversize", "json", "event", "truncated"};
  struct frame_ctx *c = ud;
  lua_State *L = c->L;
  lua_createtable(L, 0, 2);
  lua_pushstring(L, (unsigned)code < 5 ? names[code] : "unknown");
  lua_setfield(L, -2, "code");
  lua_pushstring(L, msg);
  lua_setfield(L, -2, "message");
  lua_rawseti(L, c->errors, (lua_Integer)lua_rawlen(L, c->errors) + 1);
}

static struct lframe *check_frame(lua_State *L)
{
  struct lframe *lf = luaL_checkudata(L, 1, FRAME_MT);
  if (!lf->f) luaL_error(L, "attempt to use a closed watch framer");
  return lf;
}

/* k8srt.watchframe([max_line]) */
static int frame_new(lua_State *L)
{
  lua_Integer max_line = luaL_optinteger(L, 1, 0);
  struct lframe *lf = lua_newuserdatauv(L, sizeof *lf, 0);
  lf->f = NULL;
  luaL_setmetatable(L, FRAME_MT);
  lf->f = k8s_watchframe_new(frame_event, frame_error, &lf->ctx);
  if (!lf->f) return luaL_error(L, "out of memory");
  if (max_line > 0) k8s_watchframe_set_max_line(lf->f, (size_t)max_line);
  return 1;
}

static int frame_gc(lua_State *L)
{
  struct lframe *lf = luaL_checkudata(L, 1, FRAME_MT);
  k8s_watchframe_free(lf->f);
  lf->f = NULL;
  return 0;
}

/* f:feed(bytes) / f:finish() -> events, errors */
static int frame_run(lua_State *L, int finish)
{
  struct lframe *lf = check_frame(L);
  size_t len = 0;
  const char *data = finish ? NULL : luaL_checklstring(L, 2, &len);
  lua_newtable(L);
  lua_newtable(L);
  lf->ctx = (struct frame_ctx){L, lua_gettop(L) - 1, lua_gettop(L)};
  int rc = finish ? k8s_watchframe_finish(lf->f) : k8s_watchframe_feed(lf->f, data, len);
  if (rc < 0) return luaL_error(L, "watch framer: out of memory");
  k8s_json_mark_array(L, lf->ctx.events);
  k8s_json_mark_array(L, lf->ctx.errors);
  return 2;
}

static int frame_feed(lua_State *L)
{
  return frame_run(L, 0);
}

static int frame_finish(lua_State *L)
{
  return frame_run(L, 1);
}

static int frame_pending(lua_State *L)
{
  lua_pushinteger(L, (lua_Integer)k8s_watchframe_pending(check_frame(L)->f));
  return 1;
}

static const luaL_Reg frame_meth[] = {
    {"feed", frame_feed},
    {"finish", frame_finish},
    {"pending", frame_pending},
    {NULL, NULL},
};

/* }==================================================================== */

static void create_meta(lua_State *L, const char *name, const luaL_Reg *meth, lua_CFunction gc)
{
  luaL_newmetatable(L, name); /* sets __name */
  lua_newtable(L);
  luaL_setfuncs(L, meth, 0);
  lua_setfield(L, -2, "__index");
  lua_pushcfunction(L, gc);
  lua_setfield(L, -2, "__gc");
  lua_pushcfunction(L, gc);
  lua_setfield(L, -2, "__close");
  lua_pop(L, 1);
}

static const luaL_Reg json_funcs[] = {
    {"decode", json_decode},
    {"encode", json_encode},
    {NULL, NULL},
};

static const luaL_Reg yaml_funcs[] = {
    {"dump", yaml_dump},
    {"load", yaml_load},
    {NULL, NULL},
};

static const luaL_Reg k8srt_funcs[] = {
    {"array", l_array},
    {"is_label_value", l_is_label_value},
    {"owner_label_value", l_owner_label_value},
    {"rfc3339", l_rfc3339},
    {"sha256", l_sha256},
    {"store", store_new},
    {"watchframe", frame_new},
    {"workqueue", queue_new},
    {NULL, NULL},
};

int luaopen_k8srt(lua_State *L)
{
  create_meta(L, STORE_MT, store_meth, store_gc);
  create_meta(L, QUEUE_MT, queue_meth, queue_gc);
  create_meta(L, FRAME_MT, frame_meth, frame_gc);
  luaL_newlib(L, k8srt_funcs);
  luaL_newlib(L, json_funcs);
  lua_setfield(L, -2, "json");
  luaL_newlib(L, yaml_funcs);
  lua_setfield(L, -2, "yaml");
  k8s_json_push_null(L);
  lua_setfield(L, -2, "null");
  k8s_json_push_array_mt(L);
  lua_setfield(L, -2, "array_mt");
  return 1;
}
