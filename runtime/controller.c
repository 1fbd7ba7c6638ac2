/* controller.c: the Reconciler driver (see controller.h).
 *
 * Per controller: a WorkQueue of CR keys ("ns/name"), informers (CR kind,
 * owns kinds, watches kinds) from the Manager's Cache, an owner map (value
 * of the sim.llm-d.io/owner label -> CR key) so child events find their CR,
 * and the in-flight reconciles. Event handlers only enqueue keys (or, for
 * watches with a map function, queue the object for the next tick, where the
 * map runs in the sandbox). Workers run on a loop tick: pop a key, run the
 * engine (synchronous Lua, reading the informer cache), then issue the writes
 * asynchronously; when the last write completes the key gets its outcome
 * (controller-runtime's reconcileHandler):
 *   script error / failed write  -> add_rate_limited   result "error"
 *   terminal error (InvalidSpec) -> forget, no requeue result "error"
 *   child conflict               -> add_rate_limited   result "requeue"
 *   requeue_after                -> forget, add_after  result "requeue_after"
 *   otherwise                    -> forget             result "success"
 * and done(key).
 *
 * Writes of one reconcile: the cleanup finalizer when a child lives outside
 * the CR's namespace (server-side apply of metadata.finalizers alone, uid as
 * precondition; removed by JSON merge patch with the cached
 * resourceVersion), server-side apply of
 * children whose desired-hash changed, deletes of children no longer
 * desired, the status through /status (server-side apply) when it differs,
 * Events (fire and forget). Deletion path: finalizing reconcile, delete every
 * owned child, remove the finalizer once the cache shows none left.
 *
 * Refused writes: a 4xx answer other than 404/409/429 is remembered per CR
 * key (struct refusal) and handed to the next reconcile, whose status then
 * says Ready=False ReconcileError naming the write; an attempt whose writes
 * all succeed forgets it and requeues the key so the status is rewritten.
 *
 * Expectations: right after a write the informer may still show the old
 * object; a reconcile in that window would write again. The driver
 * remembers, per child and per CR status, what it wrote and over which
 * cached resourceVersion (for 30 s), and skips a write of the same content
 * while the cache still shows that version.
 *
 * Depends on runtime/kube (manager, cache, client, discovery, loop),
 * runtime/core (store, workqueue, metrics, log, json) and runtime/lua
 * (engine, check). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "controller.h"
#include "core/json.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/strmap.h"
#include "core/util.h"
#include "core/workqueue.h"
#include "lua/check.h"
#include "lua/engine.h"
#include "lua/reload.h"

#define DEFAULT_RESYNC 600.0
#define DEFAULT_MAX_INFLIGHT 16
#define BATCH_PER_TICK 32
#define EXPECTATION_TTL 30.0
#define FINALIZE_WAIT 5.0

/* {====================================================================
 * Live sources
 * ===================================================================== */

static struct k8s_store *live_store(void *ud, const char *av, const char *kind)
{
  struct k8s_informer *inf = k8s_cache_lookup(ud, av, kind);
  return inf ? k8s_informer_store(inf) : NULL;
}

static int live_served(void *ud, const char *av, const char *kind)
{
  return k8s_discovery_served(ud, av, kind);
}

static size_t live_versions(void *ud, const char *group, const char *kind, const char **out,
                            size_t max)
{
  return k8s_discovery_versions(ud, group, kind, out, max);
}

static int live_namespaced(void *ud, const char *av, const char *kind)
{
  const struct k8s_api_resource *r = k8s_discovery_lookup(ud, av, kind);
  return r ? r->namespaced : -1;
}

static const struct lk_cache_ops live_cache_ops = {live_store};
static const struct lk_discovery_ops live_discovery_ops = {live_served, live_versions,
                                                           live_namespaced};

void lk_live_cache_source(struct lk_cache_source *src, struct k8s_cache *cache)
{
  *src = (struct lk_cache_source){&live_cache_ops, cache};
}

void lk_live_discovery_source(struct lk_discovery_source *src, struct k8s_discovery *d)
{
  *src = (struct lk_discovery_source){&live_discovery_ops, d};
}

/* }==================================================================== */

/* {====================================================================
 * Types
 * ===================================================================== */

enum role { ROLE_CR, ROLE_OWNS, ROLE_WATCH };

struct ctl;

/* One informer a controller uses (handler data). */
struct kinfo {
  struct ctl *c;
  const struct lk_gvk *gvk;
  enum role role;
  size_t index; /* into owns / watches */
  struct k8s_informer *inf;
  unsigned handler;
};

struct owner_ent {
  char *owner; /* map key */
  char *key;
};

struct expectation {
  char *id; /* map key: "child:<apiVersion>/<kind>/<ns>/<name>" or "status:<key>" */
  char *value;
  double at;
};

struct mapev {
  size_t watch;
  json_t *obj;
};

struct metrics {
  struct k8s_metric *total, *errors, *time, *depth, *adds, *retries, *revision;
};

struct ctl {
  struct controllers *all;
  const struct lk_controller_decl *decl;
  struct k8s_workqueue *q;
  struct kinfo *kinds;
  size_t nkinds;
  struct kinfo *cr; /* kinds[0] */
  struct k8s_strmap owners;
  struct k8s_strmap expect;
  struct k8s_strmap refused; /* CR key -> struct refusal */
  struct mapev *mapq;
  size_t nmapq, capmapq;
  int started, stopping, tick_pending;
  int inflight;
  uint64_t timer, resync_timer;
  double timer_at;
  struct k8s_workqueue_stats last; /* for counter deltas */
  struct k8s_runnable runnable;
};

struct controllers {
  struct k8s_manager *m;
  struct lk_engine *engine;
  struct k8s_reload *reload; /* --scripts-configmap, or NULL */
  struct ctl *ctls;
  size_t nctls;
  struct lk_cache_source cache;
  struct lk_discovery_source discovery;
  struct metrics mx;
  double resync;
  int max_inflight;
  uint64_t idseq;
};

/* One reconcile whose writes are in flight. */
struct rec {
  struct ctl *c;
  char *key;
  char id[17];
  int pending;
  int issuing;
  int failed;
  enum { OUT_SUCCESS, OUT_ERROR, OUT_TERMINAL, OUT_CONFLICT, OUT_REQUEUE_AFTER } outcome;
  double requeue_after;
  double t0;
  int writes;
  char *refused; /* the first write the API server refused (owned), or NULL */
};

/* A write of a CR's last attempt that the API server refused (a 4xx other
 * than 404, 409 Conflict and 429: a denial, not a race or throttling). The
 * next reconcile of the CR reports it as Ready=False ReconcileError until an
 * attempt's writes all succeed. Owned by ctl.refused. */
struct refusal {
  char *key;
  char *message; /* "<what>: <Reason> (<code>): <message>" */
};

struct write {
  struct rec *rec;
  int allow404;
  char *expect_id; /* set the expectation on success */
  char *expect_value;
  char what[320];
};

static struct controllers *g_controllers;

/* }==================================================================== */

/* {====================================================================
 * Small helpers
 * ===================================================================== */

static double now_mono(void)
{
  return k8s_monotonic();
}

static void log_c(enum k8s_log_level lvl, struct ctl *c, const char *key, const char *id,
                  const char *msg, const char *k1, const char *v1, const char *k2, const char *v2)
{
  k8s_log(lvl, msg, "controller", c->decl->name, "key", key, "reconcileID", id, k1, v1, k2, v2,
          NULL);
}

static void sync_queue_metrics(struct ctl *c)
{
  struct metrics *mx = &c->all->mx;
  struct k8s_workqueue_stats st;
  k8s_workqueue_stats(c->q, &st);
  const char *lv[] = {c->decl->name};
  k8s_metric_set(mx->depth, lv, (double)st.depth);
  if (st.adds > c->last.adds) k8s_metric_add(mx->adds, lv, (double)(st.adds - c->last.adds));
  if (st.retries > c->last.retries)
    k8s_metric_add(mx->retries, lv, (double)(st.retries - c->last.retries));
  c->last = st;
}

static void process(struct k8s_loop *loop, void *data);

static void schedule(struct ctl *c)
{
  if (c->tick_pending || !c->started) return;
  if (k8s_loop_next_tick(k8s_manager_loop(c->all->m), process, c) == 0) c->tick_pending = 1;
}

static void timer_fired(struct k8s_loop *loop, void *data)
{
  struct ctl *c = data;
  c->timer = 0;
  schedule(c);
}

/* Arms the loop timer for the queue's earliest delayed key. */
static void arm_timer(struct ctl *c)
{
  double d = k8s_workqueue_next_deadline(c->q);
  if (d < 0) return;
  if (c->timer && c->timer_at <= d) return;
  struct k8s_loop *loop = k8s_manager_loop(c->all->m);
  if (c->timer) k8s_loop_timer_cancel(loop, c->timer);
  c->timer_at = d;
  c->timer = k8s_loop_timer_add(loop, d - now_mono(), timer_fired, c);
}

static void enqueue(struct ctl *c, const char *key, enum k8s_priority prio)
{
  if (!key || !*key) return;
  k8s_workqueue_add(c->q, key, prio);
  sync_queue_metrics(c);
  schedule(c);
}

/* "ns/name" or "name" */
static void key_of(const char *ns, const char *name, char *buf, size_t len)
{
  snprintf(buf, len, "%s%s%s", ns && *ns ? ns : "", ns && *ns ? "/" : "", name);
}

static int has_finalizer(const json_t *cr)
{
  size_t i;
  json_t *v;
  json_array_foreach(json_object_get(json_object_get(cr, "metadata"), "finalizers"), i, v)
  {
    if (json_is_string(v) && !strcmp(json_string_value(v), LK_FINALIZER)) return 1;
  }
  return 0;
}

/* }==================================================================== */

/* {====================================================================
 * Expectations
 * ===================================================================== */

static const char *expectation(struct ctl *c, const char *id)
{
  struct expectation *e = k8s_strmap_get(&c->expect, id);
  if (!e) return NULL;
  if (now_mono() - e->at > EXPECTATION_TTL) {
    k8s_strmap_del(&c->expect, id);
    free(e->id);
    free(e->value);
    free(e);
    return NULL;
  }
  return e->value;
}

static void expect_set(struct ctl *c, const char *id, const char *value)
{
  struct expectation *e = k8s_strmap_get(&c->expect, id);
  if (!e) {
    e = calloc(1, sizeof(*e));
    if (!e || !(e->id = strdup(id))) {
      free(e);
      return;
    }
    if (k8s_strmap_put(&c->expect, e->id, e) != 0) {
      free(e->id);
      free(e);
      return;
    }
  }
  free(e->value);
  e->value = strdup(value);
  e->at = now_mono();
}

static void expect_clear(struct ctl *c, const char *id)
{
  struct expectation *e = k8s_strmap_del(&c->expect, id);
  if (!e) return;
  free(e->id);
  free(e->value);
  free(e);
}

static void refusal_free(struct refusal *f)
{
  if (!f) return;
  free(f->key);
  free(f->message);
  free(f);
}

/* Records message (ownership taken) as key's refused write. */
static void refusal_set(struct ctl *c, const char *key, char *message)
{
  struct refusal *f = calloc(1, sizeof(*f));
  if (f) f->key = strdup(key);
  if (!f || !f->key) {
    free(f);
    free(message);
    return;
  }
  f->message = message;
  refusal_free(k8s_strmap_del(&c->refused, key));
  if (k8s_strmap_put(&c->refused, f->key, f) != 0) refusal_free(f);
}

/* Forgets key's refused write; returns 1 if there was one. */
static int refusal_clear(struct ctl *c, const char *key)
{
  struct refusal *f = k8s_strmap_del(&c->refused, key);
  refusal_free(f);
  return f != NULL;
}

/* }==================================================================== */

/* {====================================================================
 * Completing a reconcile
 * ===================================================================== */

static void complete(struct rec *r)
{
  struct ctl *c = r->c;
  struct controllers *all = c->all;
  double now = now_mono();
  const char *result;
  int recovered = 0;
  if (r->refused) {
    refusal_set(c, r->key, r->refused);
    r->refused = NULL;
  } else if (!r->failed)
    recovered = refusal_clear(c, r->key); /* the status still shows the refusal */
  if (r->failed || r->outcome == OUT_ERROR) {
    k8s_workqueue_add_rate_limited(c->q, r->key, now);
    result = "error";
  } else if (r->outcome == OUT_TERMINAL) {
    k8s_workqueue_forget(c->q, r->key);
    result = "error";
  } else if (r->outcome == OUT_CONFLICT) {
    k8s_workqueue_add_rate_limited(c->q, r->key, now);
    result = "requeue";
  } else if (r->outcome == OUT_REQUEUE_AFTER) {
    k8s_workqueue_forget(c->q, r->key);
    k8s_workqueue_add_after(c->q, r->key, r->requeue_after, now);
    result = "requeue_after";
  } else {
    k8s_workqueue_forget(c->q, r->key);
    result = "success";
  }
  const char *lv2[] = {c->decl->name, result};
  const char *lv1[] = {c->decl->name};
  k8s_metric_inc(all->mx.total, lv2);
  if (!strcmp(result, "error")) k8s_metric_inc(all->mx.errors, lv1);
  k8s_metric_observe(all->mx.time, lv1, now - r->t0);
  if (k8s_log_enabled(K8S_LOG_DEBUG, 1)) {
    char ms[32], writes[16];
    snprintf(ms, sizeof(ms), "%.3f", (now - r->t0) * 1000);
    snprintf(writes, sizeof(writes), "%d", r->writes);
    k8s_log_v(1, "reconciled", "controller", c->decl->name, "key", r->key, "reconcileID", r->id,
              "result", result, "ms", ms, "writes", writes, NULL);
  }
  k8s_workqueue_done(c->q, r->key);
  if (recovered) k8s_workqueue_add(c->q, r->key, K8S_PRIORITY_HIGH);
  c->inflight--;
  sync_queue_metrics(c);
  arm_timer(c);
  free(r->refused);
  free(r->key);
  free(r);
  schedule(c);
}

static void write_done(const struct k8s_result *res, void *data)
{
  struct write *w = data;
  struct rec *r = w->rec;
  if (res->error && !(w->allow404 && res->code == 404)) {
    char buf[512];
    r->failed = 1;
    log_c(K8S_LOG_ERROR, r->c, r->key, r->id, "write failed", "what", w->what, "error",
          k8s_status_format(res->error, buf, sizeof(buf)));
    if (!r->refused && res->code >= 400 && res->code < 500 && res->code != 404 &&
        res->code != 409 && res->code != 429) {
      size_t n = strlen(w->what) + strlen(buf) + 3;
      r->refused = malloc(n);
      if (r->refused) snprintf(r->refused, n, "%s: %s", w->what, buf);
    }
    if (w->expect_id) expect_clear(r->c, w->expect_id);
  } else if (w->expect_id && w->expect_value)
    expect_set(r->c, w->expect_id, w->expect_value);
  free(w->expect_id);
  free(w->expect_value);
  free(w);
  if (--r->pending == 0 && !r->issuing) complete(r);
}

/* Starts one write; fn issues it with (write) as callback data. */
static struct write *new_write(struct rec *r, const char *what, int allow404)
{
  struct write *w = calloc(1, sizeof(*w));
  if (!w) {
    r->failed = 1;
    return NULL;
  }
  w->rec = r;
  w->allow404 = allow404;
  snprintf(w->what, sizeof(w->what), "%s", what);
  return w;
}

static void started(struct rec *r, struct write *w, int rc)
{
  if (rc != 0) {
    r->failed = 1;
    log_c(K8S_LOG_ERROR, r->c, r->key, r->id, "write not sent", "what", w->what, NULL, NULL);
    free(w->expect_id);
    free(w->expect_value);
    free(w);
    return;
  }
  r->pending++;
  r->writes++;
}

/* }==================================================================== */

/* {====================================================================
 * Writes
 * ===================================================================== */

static int gvr_of(struct controllers *all, const char *av, const char *kind, struct k8s_gvr *gvr)
{
  return k8s_discovery_gvr(k8s_manager_discovery(all->m), av, kind, gvr);
}

/* Adds the cleanup finalizer by server-side apply of metadata.finalizers
 * alone (field manager K8S_FIELD_MANAGER; finalizers is a set, so others'
 * entries stay and concurrent writes of the CR cause no 409), with the
 * cached uid as a precondition: if the CR is gone, the API server answers
 * 409 "uid mismatch" instead of creating it. */
static void add_finalizer(struct rec *r, const json_t *cr)
{
  struct controllers *all = r->c->all;
  const json_t *md = json_object_get(cr, "metadata");
  const char *av = json_string_value(json_object_get(cr, "apiVersion"));
  const char *kind = json_string_value(json_object_get(cr, "kind"));
  const char *ns = json_string_value(json_object_get(md, "namespace"));
  struct k8s_gvr gvr;
  if (gvr_of(all, av, kind, &gvr) != 0) {
    r->failed = 1;
    return;
  }
  json_t *body = json_pack("{s:s, s:s, s:{s:O, s:O, s:[s]}}", "apiVersion", av, "kind", kind,
                           "metadata", "name", json_object_get(md, "name"), "uid",
                           json_object_get(md, "uid"), "finalizers", LK_FINALIZER);
  if (!body) { /* a cached CR without name or uid: retry rather than skip silently */
    r->failed = 1;
    return;
  }
  if (ns) json_object_set_new(json_object_get(body, "metadata"), "namespace", json_string(ns));
  struct write *w = new_write(r, "add finalizer", 0);
  if (w)
    started(r, w,
            k8s_client_apply(k8s_manager_client(all->m), &gvr, ns,
                             json_string_value(json_object_get(md, "name")), NULL, body, NULL,
                             write_done, w));
  json_decref(body);
}

/* Removes the cleanup finalizer: JSON merge patch of metadata.finalizers
 * (the others kept) with the cached resourceVersion — 409 when the CR
 * changed meanwhile, and the retry re-reads the cache. A merge patch rather
 * than an apply, so a finalizer some other manager also claims (e.g. one a
 * user wrote) goes too. */
static void remove_finalizer(struct rec *r, const json_t *cr)
{
  struct controllers *all = r->c->all;
  const json_t *md = json_object_get(cr, "metadata");
  struct k8s_gvr gvr;
  const char *av = json_string_value(json_object_get(cr, "apiVersion"));
  const char *kind = json_string_value(json_object_get(cr, "kind"));
  if (gvr_of(all, av, kind, &gvr) != 0) {
    r->failed = 1;
    return;
  }
  json_t *list = json_array(), *v;
  size_t i;
  json_array_foreach(json_object_get(md, "finalizers"), i, v)
  {
    if (!json_is_string(v) || strcmp(json_string_value(v), LK_FINALIZER))
      json_array_append(list, v);
  }
  json_t *body = json_pack("{s:{s:o, s:O}}", "metadata", "finalizers", list, "resourceVersion",
                           json_object_get(md, "resourceVersion"));
  char path[1024];
  k8s_gvr_path(&gvr, json_string_value(json_object_get(md, "namespace")),
               json_string_value(json_object_get(md, "name")), NULL, path, sizeof(path));
  struct write *w = new_write(r, "remove finalizer", 0);
  if (w)
    started(r, w,
            k8s_client_request(k8s_manager_client(all->m), "PATCH", path, body,
                               "application/merge-patch+json", write_done, w));
  json_decref(body);
}

/* The resourceVersion of the cached object ("" when absent). */
static const char *cached_rv(struct controllers *all, const char *av, const char *kind,
                             const char *ns, const char *name)
{
  struct k8s_store *st = all->cache.ops->store(all->cache.ud, av, kind);
  char key[512];
  key_of(ns, name, key, sizeof(key));
  const struct k8s_object *o = st ? k8s_store_get(st, key) : NULL;
  return o ? o->resource_version : "";
}

/* "<content>@<resourceVersion>": what was written, and the cached version
 * it was written over. */
static char *expect_value(const char *content, const char *rv)
{
  char *v = NULL;
  return asprintf(&v, "%s@%s", content, rv) < 0 ? NULL : v;
}

/* A write of the same content over the same cached version is pending in
 * the cache: the informer has not delivered our last write yet. Once the
 * cache moves on (our write, or someone else's), the normal comparison
 * decides again. */
static int written_already(struct ctl *c, const char *id, const char *content, const char *rv)
{
  const char *exp = expectation(c, id);
  char *want = exp ? expect_value(content, rv) : NULL;
  int same = want && !strcmp(exp, want);
  free(want);
  return same;
}

static void apply_child(struct rec *r, const struct lk_child *ch)
{
  struct controllers *all = r->c->all;
  char id[600], what[300];
  snprintf(id, sizeof(id), "child:%s/%s/%s/%s", ch->api_version, ch->kind, ch->ns, ch->name);
  const char *rv = cached_rv(all, ch->api_version, ch->kind, ch->ns, ch->name);
  if (written_already(r->c, id, ch->hash, rv)) return;
  snprintf(what, sizeof(what), "apply %s %s%s%s", ch->kind, ch->ns, *ch->ns ? "/" : "", ch->name);
  struct k8s_gvr gvr;
  if (gvr_of(all, ch->api_version, ch->kind, &gvr) != 0) {
    r->failed = 1;
    log_c(K8S_LOG_ERROR, r->c, r->key, r->id, "kind not served", "what", what, NULL, NULL);
    return;
  }
  struct write *w = new_write(r, what, 0);
  if (!w) return;
  w->expect_id = strdup(id);
  w->expect_value = expect_value(ch->hash, rv);
  started(r, w,
          k8s_client_apply(k8s_manager_client(all->m), &gvr, *ch->ns ? ch->ns : NULL, ch->name,
                           NULL, ch->obj, NULL, write_done, w));
}

static void delete_child(struct rec *r, const struct lk_ref *p)
{
  struct controllers *all = r->c->all;
  char what[300], id[600];
  if (p->deleting) return;
  snprintf(what, sizeof(what), "delete %s %s%s%s", p->kind, p->ns, *p->ns ? "/" : "", p->name);
  snprintf(id, sizeof(id), "child:%s/%s/%s/%s", p->api_version, p->kind, p->ns, p->name);
  const char *rv = cached_rv(all, p->api_version, p->kind, p->ns, p->name);
  if (written_already(r->c, id, "deleted", rv)) return;
  struct k8s_gvr gvr;
  if (gvr_of(all, p->api_version, p->kind, &gvr) != 0) return; /* gone with its CRD */
  struct write *w = new_write(r, what, 1);
  if (!w) return;
  w->expect_id = strdup(id);
  w->expect_value = expect_value("deleted", rv);
  started(r, w,
          k8s_client_delete(k8s_manager_client(all->m), &gvr, *p->ns ? p->ns : NULL, p->name,
                            "Background", write_done, w));
}

static void write_status(struct rec *r, const json_t *cr, const json_t *status)
{
  struct controllers *all = r->c->all;
  const json_t *md = json_object_get(cr, "metadata");
  const char *av = json_string_value(json_object_get(cr, "apiVersion"));
  const char *kind = json_string_value(json_object_get(cr, "kind"));
  char id[600];
  snprintf(id, sizeof(id), "status:%s", r->key);
  char *dump = k8s_json_dump(status, K8S_JSON_SORT_KEYS, NULL);
  const char *rv = json_string_value(json_object_get(md, "resourceVersion"));
  if (!rv) rv = "";
  if (!dump || written_already(r->c, id, dump, rv)) {
    free(dump);
    return;
  }
  struct k8s_gvr gvr;
  if (gvr_of(all, av, kind, &gvr) != 0) {
    free(dump);
    r->failed = 1;
    return;
  }
  json_t *body =
      json_pack("{s:s, s:s, s:{s:O, s:O}, s:O}", "apiVersion", av, "kind", kind, "metadata", "name",
                json_object_get(md, "name"), "namespace",
                json_object_get(md, "namespace") ? json_object_get(md, "namespace") : json_null(),
                "status", status);
  if (!json_object_get(md, "namespace"))
    json_object_del(json_object_get(body, "metadata"), "namespace");
  struct write *w = new_write(r, "write status", 0);
  if (w) {
    w->expect_id = strdup(id);
    w->expect_value = expect_value(dump, rv);
    started(r, w,
            k8s_client_apply(k8s_manager_client(all->m), &gvr,
                             json_string_value(json_object_get(md, "namespace")),
                             json_string_value(json_object_get(md, "name")), "status", body, NULL,
                             write_done, w));
  }
  free(dump);
  json_decref(body);
}

static void post_events(struct rec *r, const json_t *cr, const json_t *events)
{
  size_t i;
  json_t *ev;
  json_array_foreach(events, i, ev)
  {
    k8s_client_event(k8s_manager_client(r->c->all->m), cr,
                     json_string_value(json_object_get(ev, "type")),
                     json_string_value(json_object_get(ev, "reason")), NULL,
                     json_string_value(json_object_get(ev, "message")));
  }
}

/* }==================================================================== */

/* {====================================================================
 * Reconciling one key
 * ===================================================================== */

static void reconcile_key(struct ctl *c, const char *key)
{
  struct controllers *all = c->all;
  struct rec *r = calloc(1, sizeof(*r));
  if (!r || !(r->key = strdup(key))) {
    free(r);
    k8s_workqueue_add_rate_limited(c->q, key, now_mono());
    k8s_workqueue_done(c->q, key);
    return;
  }
  r->c = c;
  r->t0 = now_mono();
  r->issuing = 1;
  snprintf(r->id, sizeof(r->id), "%016llx",
           (unsigned long long)(k8s_strhash(key) ^ (++all->idseq * 0x9e3779b97f4a7c15ULL)));
  c->inflight++;

  const struct k8s_object *obj = c->cr->inf ? k8s_informer_get(c->cr->inf, key) : NULL;
  if (!obj) { /* gone: its same-namespace children go with it (owner references) */
    expect_clear(c, key);
    refusal_clear(c, key);
    goto out;
  }
  char err[256];
  json_t *cr = k8s_json_parse(obj->json, obj->json_len, err, sizeof(err));
  if (!cr) {
    r->outcome = OUT_ERROR;
    log_c(K8S_LOG_ERROR, c, key, r->id, "cannot decode the cached CR", "error", err, NULL, NULL);
    goto out;
  }
  int deleting = obj->deleting, fin = has_finalizer(cr);
  if (deleting && !fin) {
    json_decref(cr);
    goto out;
  }
  struct k8s_log_field fields[] = {{"controller", K8S_LOG_STR, c->decl->name, 0, 0},
                                   {"key", K8S_LOG_STR, key, 0, 0},
                                   {"reconcileID", K8S_LOG_STR, r->id, 0, 0}};
  const struct refusal *refused = k8s_strmap_get(&c->refused, key);
  struct lk_reconcile_in in = {.controller = c->decl,
                               .cr = cr,
                               .cache = &all->cache,
                               .discovery = &all->discovery,
                               .log_fields = fields,
                               .nlog_fields = 3,
                               .write_refused = refused ? refused->message : NULL};
  struct lk_result res;
  int st = lk_engine_reconcile(all->engine, &in, &res);
  if (st != 0) {
    r->outcome = res.err.kind == LK_ERR_TERMINAL ? OUT_TERMINAL : OUT_ERROR;
    k8s_log(K8S_LOG_ERROR, "reconcile failed", "controller", c->decl->name, "key", key,
            "reconcileID", r->id, "error", res.err.message, "kind",
            lk_error_kind_name(res.err.kind), "traceback", res.err.traceback, NULL);
  } else if (res.nconflicts)
    r->outcome = OUT_CONFLICT;
  else if (res.requeue_after > 0) {
    r->outcome = OUT_REQUEUE_AFTER;
    r->requeue_after = res.requeue_after;
  }

  if (res.finalizing) {
    if (st == 0 && !res.finalized) {
      r->outcome = OUT_REQUEUE_AFTER;
      r->requeue_after = res.requeue_after > 0 ? res.requeue_after : FINALIZE_WAIT;
    } else if (st == 0) {
      for (size_t i = 0; i < res.nprune; i++)
        delete_child(r, &res.prune[i]);
      if (res.nobserved == 0) remove_finalizer(r, cr);
    }
  } else {
    if (!fin && st == 0 &&
        lk_result_needs_finalizer(
            &res, json_string_value(json_object_get(json_object_get(cr, "metadata"), "namespace"))))
      add_finalizer(r, cr);
    for (size_t i = 0; i < res.nchildren; i++) {
      const struct lk_child *ch = &res.children[i];
      if (ch->action == LK_CHILD_APPLY) apply_child(r, ch);
      if (ch->action == LK_CHILD_CONFLICT)
        log_c(K8S_LOG_WARN, c, key, r->id, "child exists and is not ours", "child", ch->name,
              "owner", ch->owner);
    }
    for (size_t i = 0; i < res.nprune; i++)
      delete_child(r, &res.prune[i]);
    if (res.status_changed) write_status(r, cr, res.status);
    post_events(r, cr, res.events);
  }
  lk_result_free(&res);
  json_decref(cr);
out:
  r->issuing = 0;
  if (r->pending == 0) complete(r);
}

/* Runs queued map functions (watched objects -> CR keys). */
static void run_maps(struct ctl *c)
{
  struct controllers *all = c->all;
  for (size_t i = 0; i < c->nmapq; i++) {
    struct mapev *ev = &c->mapq[i];
    json_t *keys = NULL;
    struct lk_error err = {0};
    if (lk_engine_map(all->engine, c->decl, ev->watch, ev->obj, &all->cache, &all->discovery, &keys,
                      &err) != 0) {
      k8s_log(K8S_LOG_ERROR, "map function failed", "controller", c->decl->name, "map",
              c->decl->watches[ev->watch].map, "error", err.message, NULL);
      lk_error_clear(&err);
    }
    size_t k;
    json_t *v;
    json_array_foreach(keys, k, v) enqueue(c, json_string_value(v), K8S_PRIORITY_HIGH);
    json_decref(keys);
    json_decref(ev->obj);
  }
  c->nmapq = 0;
}

static void process(struct k8s_loop *loop, void *data)
{
  struct ctl *c = data;
  c->tick_pending = 0;
  if (!c->started) return;
  /* the scripts ConfigMap decides the set first (reload_ready schedules) */
  if (c->all->reload && !k8s_reload_synced(c->all->reload)) return;
  run_maps(c);
  k8s_workqueue_tick(c->q, now_mono());
  int n = 0;
  while (!c->stopping && c->inflight < c->all->max_inflight && n < BATCH_PER_TICK) {
    const char *key = k8s_workqueue_get(c->q);
    if (!key) break;
    n++;
    reconcile_key(c, key);
  }
  sync_queue_metrics(c);
  arm_timer(c);
  if (n == BATCH_PER_TICK) schedule(c);
}

/* }==================================================================== */

/* {====================================================================
 * Event handlers
 * ===================================================================== */

static void owner_track(struct ctl *c, const struct k8s_object *o, int add)
{
  char owner[64], key[512];
  char kind[128];
  snprintf(kind, sizeof(kind), "%s", c->decl->for_.kind);
  for (char *p = kind; *p; p++)
    if (*p >= 'A' && *p <= 'Z') *p = (char)(*p - 'A' + 'a');
  k8s_owner_label_value(kind, o->ns, o->name, owner);
  key_of(o->ns, o->name, key, sizeof(key));
  struct owner_ent *e = k8s_strmap_get(&c->owners, owner);
  if (!add) {
    if (e && !strcmp(e->key, key)) {
      k8s_strmap_del(&c->owners, owner);
      free(e->owner);
      free(e->key);
      free(e);
    }
    return;
  }
  if (e) return;
  e = calloc(1, sizeof(*e));
  if (!e || !(e->owner = strdup(owner)) || !(e->key = strdup(key)) ||
      k8s_strmap_put(&c->owners, e->owner, e) != 0) {
    if (e) free(e->owner), free(e->key);
    free(e);
  }
}

/* The CR key a child points at: its owner label through the owner map, or
 * its controller ownerReference of the CR kind. */
static void enqueue_owner(struct ctl *c, const struct k8s_object *o)
{
  const char *owner = k8s_object_label(o, LK_LABEL_OWNER);
  if (owner) {
    struct owner_ent *e = k8s_strmap_get(&c->owners, owner);
    if (e) {
      enqueue(c, e->key, K8S_PRIORITY_HIGH);
      return;
    }
  }
  const struct k8s_owner_ref *ref = k8s_object_controller(o);
  if (ref && !strcmp(ref->kind, c->decl->for_.kind) &&
      !strcmp(ref->api_version, c->decl->for_.api_version)) {
    char key[512];
    key_of(o->ns, ref->name, key, sizeof(key));
    enqueue(c, key, K8S_PRIORITY_HIGH);
  }
}

static void enqueue_all(struct ctl *c, enum k8s_priority prio)
{
  if (!c->cr->inf) return;
  const struct k8s_object **objs = NULL;
  size_t n = k8s_store_list(k8s_informer_store(c->cr->inf), NULL, &objs);
  for (size_t i = 0; n != (size_t)-1 && i < n; i++)
    k8s_workqueue_add(c->q, objs[i]->key, prio);
  free(objs);
  sync_queue_metrics(c);
  schedule(c);
}

static void on_object(struct kinfo *ki, const struct k8s_object *o, int deleted)
{
  struct ctl *c = ki->c;
  switch (ki->role) {
  case ROLE_CR:
    owner_track(c, o, !deleted);
    enqueue(c, o->key, K8S_PRIORITY_HIGH);
    break;
  case ROLE_OWNS:
    enqueue_owner(c, o);
    break;
  case ROLE_WATCH: {
    const struct lk_watch_decl *w = &c->decl->watches[ki->index];
    if (!w->map) {
      enqueue_all(c, K8S_PRIORITY_HIGH);
      break;
    }
    json_t *obj = k8s_json_parse(o->json, o->json_len, NULL, 0);
    if (!obj) break;
    if (c->nmapq == c->capmapq) {
      size_t cap = c->capmapq ? c->capmapq * 2 : 16;
      struct mapev *nq = realloc(c->mapq, cap * sizeof(*nq));
      if (!nq) {
        json_decref(obj);
        break;
      }
      c->mapq = nq;
      c->capmapq = cap;
    }
    c->mapq[c->nmapq++] = (struct mapev){ki->index, obj};
    schedule(c);
    break;
  }
  }
}

static void h_add(struct k8s_informer *inf, const struct k8s_object *o, void *data)
{
  on_object(data, o, 0);
}

static void h_update(struct k8s_informer *inf, const struct k8s_object *old,
                     const struct k8s_object *o, void *data)
{
  struct kinfo *ki = data;
  if (ki->role == ROLE_OWNS) { /* the owner label may have changed */
    const char *a = k8s_object_label(old, LK_LABEL_OWNER), *b = k8s_object_label(o, LK_LABEL_OWNER);
    if (a && (!b || strcmp(a, b))) on_object(ki, old, 0);
  }
  on_object(ki, o, 0);
}

static void h_delete(struct k8s_informer *inf, const struct k8s_object *o, void *data)
{
  on_object(data, o, 1);
}

static const struct k8s_event_handler handler = {
    .on_add = h_add, .on_update = h_update, .on_delete = h_delete};

/* Creates the informers that discovery serves and are not there yet. */
static void ensure_informers(struct ctl *c)
{
  struct k8s_cache *cache = k8s_manager_cache(c->all->m);
  for (size_t i = 0; i < c->nkinds; i++) {
    struct kinfo *ki = &c->kinds[i];
    if (ki->inf) continue;
    int rc = k8s_cache_get_informer(cache, ki->gvk->api_version, ki->gvk->kind, &ki->inf);
    if (rc != 0) {
      ki->inf = NULL;
      k8s_log(K8S_LOG_WARN, "kind not served; waiting for discovery", "controller", c->decl->name,
              "apiVersion", ki->gvk->api_version, "kind", ki->gvk->kind, NULL);
      continue;
    }
    ki->handler = k8s_informer_add_handler(ki->inf, &handler, ki);
  }
}

static void discovery_changed(struct k8s_discovery *d, void *data)
{
  struct controllers *all = data;
  if (k8s_manager_stopping(all->m)) return;
  for (size_t i = 0; i < all->nctls; i++)
    ensure_informers(&all->ctls[i]);
}

/* }==================================================================== */

/* {====================================================================
 * Hot reload (runtime/lua/reload.h)
 * ===================================================================== */

static int same_gvk(const struct lk_gvk *a, const struct lk_gvk *b)
{
  return !strcmp(a->api_version, b->api_version) && !strcmp(a->kind, b->kind);
}

/* The informers and their handlers follow controllers.lua as loaded at
 * start: a new set may change modules and map functions, not the
 * controllers or their kinds (same names, for_, owns and watches kinds, in
 * the same order). Returns 1 when e declares what runs, else 0 with why. */
static int same_controllers(const struct lk_engine *cur, const struct lk_engine *e, char *why,
                            size_t len)
{
  const char *what = NULL, *name = "";
  if (e->ncontrollers != cur->ncontrollers) what = "count";
  for (size_t i = 0; !what && i < cur->ncontrollers; i++) {
    const struct lk_controller_decl *a = &cur->controllers[i], *b = &e->controllers[i];
    name = a->name;
    if (strcmp(a->name, b->name))
      what = "name";
    else if (!same_gvk(&a->for_, &b->for_))
      what = "for_";
    else if (a->nowns != b->nowns)
      what = "owns";
    else if (a->nwatches != b->nwatches)
      what = "watches";
    for (size_t k = 0; !what && k < a->nowns; k++)
      if (!same_gvk(&a->owns[k], &b->owns[k])) what = "owns";
    for (size_t k = 0; !what && k < a->nwatches; k++)
      if (!same_gvk(&a->watches[k].gvk, &b->watches[k].gvk)) what = "watches";
  }
  if (!what) return 1;
  if (!*name)
    snprintf(why, len, "controllers.lua: declares %zu controllers, %zu are running",
             e->ncontrollers, cur->ncontrollers);
  else
    snprintf(why, len, "controllers.lua: controller %s: %s differs from the running one", name,
             what);
  snprintf(why + strlen(why), len - strlen(why),
           "; a change of the controllers or of their kinds needs a restart of the operator");
  return 0;
}

/* reload.h swap hook: between two reconciles (a loop callback), point every
 * controller at e's declarations, free the old engine (keys with writes in
 * flight only need their ctl), and enqueue every CR. */
static int swap_engine(struct lk_engine *e, void *data, char *why, size_t len)
{
  struct controllers *all = data;
  if (!same_controllers(all->engine, e, why, len)) return -1;
  for (size_t i = 0; i < all->nctls; i++) {
    struct ctl *c = &all->ctls[i];
    const struct lk_controller_decl *d = &e->controllers[i];
    c->decl = d;
    for (size_t k = 0; k < c->nkinds; k++) {
      struct kinfo *ki = &c->kinds[k];
      ki->gvk = ki->role == ROLE_CR     ? &d->for_
                : ki->role == ROLE_OWNS ? &d->owns[ki->index]
                                        : &d->watches[ki->index].gvk;
    }
  }
  const char *old[] = {all->engine->set->revision}, *cur[] = {e->set->revision};
  k8s_metric_remove(all->mx.revision, old);
  k8s_metric_set(all->mx.revision, cur, 1);
  lk_engine_free(all->engine);
  all->engine = e;
  for (size_t i = 0; i < all->nctls; i++)
    enqueue_all(&all->ctls[i], K8S_PRIORITY_LOW);
  return 0;
}

/* reload.h ready hook: the ConfigMap decided the set; start processing. */
static void reload_ready(void *data)
{
  struct controllers *all = data;
  for (size_t i = 0; i < all->nctls; i++)
    schedule(&all->ctls[i]);
}

/* }==================================================================== */

/* {====================================================================
 * Runnable
 * ===================================================================== */

static void resync(struct k8s_loop *loop, void *data)
{
  struct ctl *c = data;
  c->resync_timer = 0;
  if (c->stopping) return;
  enqueue_all(c, K8S_PRIORITY_LOW);
  c->resync_timer = k8s_loop_timer_add(loop, c->all->resync, resync, c);
}

static int ctl_setup(struct k8s_manager *m, void *data)
{
  struct ctl *c = data;
  ensure_informers(c);
  return 0;
}

static int ctl_start(struct k8s_manager *m, void *data)
{
  struct ctl *c = data;
  c->started = 1;
  k8s_log(K8S_LOG_INFO, "starting workers", "controller", c->decl->name, NULL);
  c->resync_timer = k8s_loop_timer_add(k8s_manager_loop(m), c->all->resync, resync, c);
  schedule(c);
  return 0;
}

static void ctl_stop(struct k8s_manager *m, void *data)
{
  struct ctl *c = data;
  c->stopping = 1;
  struct k8s_loop *loop = k8s_manager_loop(m);
  if (c->resync_timer) k8s_loop_timer_cancel(loop, c->resync_timer);
  if (c->timer) k8s_loop_timer_cancel(loop, c->timer);
  c->resync_timer = c->timer = 0;
  k8s_workqueue_shut_down(c->q);
}

static bool ctl_idle(void *data)
{
  struct ctl *c = data;
  return c->inflight == 0;
}

static double env_double(const char *name, double def)
{
  const char *s = getenv(name);
  char *end;
  double v = s ? strtod(s, &end) : def;
  return s && (end == s || *end || v <= 0) ? def : v;
}

static void register_metrics(struct controllers *all)
{
  struct k8s_metrics *reg = k8s_manager_metrics(all->m);
  static const char *const cr[] = {"controller", "result", NULL};
  static const char *const c[] = {"controller", NULL};
  static const char *const name[] = {"name", NULL};
  static const char *const rev[] = {"revision", NULL};
  all->mx.total = k8s_metrics_counter(reg, "controller_runtime_reconcile_total",
                                      "Total number of reconciliations per controller", cr);
  all->mx.errors = k8s_metrics_counter(reg, "controller_runtime_reconcile_errors_total",
                                       "Total number of reconciliation errors per controller", c);
  all->mx.time =
      k8s_metrics_histogram(reg, "controller_runtime_reconcile_time_seconds",
                            "Length of time per reconciliation per controller", c, NULL, 0);
  all->mx.depth = k8s_metrics_gauge(reg, "workqueue_depth", "Current depth of workqueue", name);
  all->mx.adds = k8s_metrics_counter(reg, "workqueue_adds_total",
                                     "Total number of adds handled by workqueue", name);
  all->mx.retries = k8s_metrics_counter(reg, "workqueue_retries_total",
                                        "Total number of retries handled by workqueue", name);
  all->mx.revision = k8s_metrics_gauge(reg, "schedsim_script_revision_info",
                                       "The script set revision in use (value 1)", rev);
  const char *lv[] = {all->engine->set->revision};
  k8s_metric_set(all->mx.revision, lv, 1);
}

static void free_all(void)
{
  struct controllers *all = g_controllers;
  if (!all) return;
  for (size_t i = 0; i < all->nctls; i++) {
    struct ctl *c = &all->ctls[i];
    size_t it = 0;
    const char *k;
    void *v;
    while (k8s_strmap_next(&c->owners, &it, &k, &v)) {
      struct owner_ent *e = v;
      free(e->owner);
      free(e->key);
      free(e);
    }
    k8s_strmap_clear(&c->owners);
    it = 0;
    while (k8s_strmap_next(&c->expect, &it, &k, &v)) {
      struct expectation *e = v;
      free(e->id);
      free(e->value);
      free(e);
    }
    k8s_strmap_clear(&c->expect);
    it = 0;
    while (k8s_strmap_next(&c->refused, &it, &k, &v))
      refusal_free(v);
    k8s_strmap_clear(&c->refused);
    for (size_t j = 0; j < c->nmapq; j++)
      json_decref(c->mapq[j].obj);
    free(c->mapq);
    free(c->kinds);
    free((char *)c->runnable.name);
    k8s_workqueue_free(c->q);
  }
  free(all->ctls);
  k8s_reload_free(all->reload);
  lk_engine_free(all->engine);
  free(all);
  g_controllers = NULL;
}

int k8s_controllers_add(struct k8s_manager *m, const struct k8s_controllers_options *o, char *err,
                        size_t errlen)
{
  char buf[4096];
  const char *dir = o->scripts_dir;
  if (!dir && !(dir = lk_scriptset_default_dir(buf, sizeof(buf)))) {
    snprintf(err, errlen, "no scripts beside the binary; use --scripts DIR");
    return 2;
  }
  struct lk_scriptset *set;
  if (lk_scriptset_load(dir, NULL, 0, NULL, &set, err, errlen) != 0) return 2;
  struct lk_engine_opts eo = {
      (size_t)env_double("SCHEDSIM_LUA_MEMORY_LIMIT", (double)LK_DEFAULT_MEMORY_LIMIT),
      (long)env_double("SCHEDSIM_LUA_INSTRUCTION_BUDGET", (double)LK_DEFAULT_INSTRUCTION_BUDGET)};
  struct lk_messages msgs = {0};
  struct lk_check_stats st;
  struct lk_engine *engine = NULL;
  int problems = lk_check(set, &eo, &msgs, &st, &engine);
  if (problems != 0) {
    for (size_t i = 0; i < msgs.n; i++)
      k8s_log(K8S_LOG_ERROR, "script set refused", "scripts", dir, "problem", msgs.v[i], NULL);
    snprintf(err, errlen, "%s: the script set does not pass check (%d problem%s; first: %s)", dir,
             problems, problems == 1 ? "" : "s", msgs.n ? msgs.v[0] : "?");
    lk_messages_free(&msgs);
    return 2;
  }
  lk_messages_free(&msgs);

  struct controllers *all = calloc(1, sizeof(*all));
  if (!all) {
    lk_engine_free(engine);
    return 1;
  }
  g_controllers = all;
  atexit(free_all);
  all->m = m;
  all->engine = engine;
  all->resync = env_double("SCHEDSIM_RESYNC_PERIOD", DEFAULT_RESYNC);
  all->max_inflight = (int)env_double("SCHEDSIM_MAX_INFLIGHT", DEFAULT_MAX_INFLIGHT);
  lk_live_cache_source(&all->cache, k8s_manager_cache(m));
  lk_live_discovery_source(&all->discovery, k8s_manager_discovery(m));
  register_metrics(all);
  all->ctls = calloc(engine->ncontrollers + 1, sizeof(*all->ctls));
  if (!all->ctls) return 1;
  for (size_t i = 0; i < engine->ncontrollers; i++) {
    struct ctl *c = &all->ctls[all->nctls++];
    const struct lk_controller_decl *d = &engine->controllers[i];
    c->all = all;
    c->decl = d;
    c->q = k8s_workqueue_new(d->name, NULL);
    c->kinds = calloc(1 + d->nowns + d->nwatches, sizeof(*c->kinds));
    if (!c->q || !c->kinds) return 1;
    c->kinds[c->nkinds++] = (struct kinfo){c, &d->for_, ROLE_CR, 0, NULL, 0};
    for (size_t k = 0; k < d->nowns; k++)
      c->kinds[c->nkinds++] = (struct kinfo){c, &d->owns[k], ROLE_OWNS, k, NULL, 0};
    for (size_t k = 0; k < d->nwatches; k++)
      c->kinds[c->nkinds++] = (struct kinfo){c, &d->watches[k].gvk, ROLE_WATCH, k, NULL, 0};
    c->cr = &c->kinds[0];
    c->runnable = (struct k8s_runnable){.name = strdup(d->name), /* outlives a reload */
                                        .needs_leader = true,
                                        .setup = ctl_setup,
                                        .start = ctl_start,
                                        .stop = ctl_stop,
                                        .idle = ctl_idle,
                                        .data = c};
    if (k8s_manager_add_runnable(m, &c->runnable) != 0) return 1;
  }
  k8s_discovery_on_change(k8s_manager_discovery(m), discovery_changed, all);
  if (o->scripts_configmap) {
    struct k8s_reload_options ro = {o->scripts_configmap, dir, eo, engine->set->revision};
    struct k8s_reload_hooks h = {swap_engine, reload_ready, all};
    int rc = k8s_reload_new(m, &ro, &h, &all->reload, err, errlen);
    if (rc) return rc;
  }
  k8s_manager_set_ready(m, "scripts", true);
  k8s_log(K8S_LOG_INFO, "script set loaded", "scripts", dir, "revision", engine->set->revision,
          NULL);
  return 0;
}

/* }==================================================================== */
