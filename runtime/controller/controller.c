/* controller.c: the controllers of a script set (controller.h): per
 * controller a WorkQueue of CR keys ("ns/name"), informers (CR kind, owns
 * kinds, watches kinds) from the Manager's Cache, an owner map (value of the
 * sim.llm-d.io/owner label -> CR key) so child events find their CR, and the
 * Runnable the Manager starts, stops and frees. Event handlers only enqueue
 * keys (or, for watches with a map function, queue the object for the next
 * tick, where the map runs in the sandbox). Processing runs on a loop tick:
 * pop keys and hand each to ctl_reconcile_key (reconcile.c), at most
 * max_inflight keys with writes in flight. Also: hot-reload hooks (swap the
 * engine between reconciles), discovery changes, resync, metrics.
 *
 * Depends on runtime/kube (manager, cache, discovery, loop), runtime/core
 * (store, workqueue, metrics, log, json) and runtime/lua (engine, check,
 * reload). */
#include <math.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "controller/internal.h"
#include "controller/live.h"
#include "core/json.h"
#include "core/util.h"
#include "lua/check.h"

/* {====================================================================
 * Small helpers
 * ===================================================================== */

void ctl_log_ctx(struct ctl_logctx *lc, const struct ctl *c, const char *key, const char *id)
{
  const char *av = c->decl->for_.api_version, *slash = strchr(av, '/');
  snprintf(lc->group, sizeof lc->group, "%.*s", slash ? (int)(slash - av) : 0, av);
  const char *name = key ? strrchr(key, '/') : NULL;
  snprintf(lc->ns, sizeof lc->ns, "%.*s", name ? (int)(name - key) : 0, key ? key : "");
  name = name ? name + 1 : key ? key : "";
  json_t *o = json_pack("{s:s,s:s}", "name", name, "namespace", lc->ns);
  size_t len = o ? json_dumpb(o, lc->obj, sizeof lc->obj - 1, JSON_COMPACT) : 0;
  json_decref(o);
  lc->obj[len < sizeof lc->obj ? len : 0] = '\0';
  const char *kind = c->decl->for_.kind;
  struct k8s_log_field f[CTL_LOG_FIELDS] = {
      {"controller", K8S_LOG_STR, c->decl->name, 0, 0},
      {"controllerGroup", K8S_LOG_STR, lc->group, 0, 0},
      {"controllerKind", K8S_LOG_STR, kind, 0, 0},
      {kind, lc->obj[0] ? K8S_LOG_RAW_JSON : K8S_LOG_STR, lc->obj[0] ? lc->obj : NULL, 0, 0},
      {"namespace", K8S_LOG_STR, lc->ns, 0, 0},
      {"name", K8S_LOG_STR, name, 0, 0},
      {"reconcileID", K8S_LOG_STR, id, 0, 0},
      {"key", K8S_LOG_STR, key, 0, 0},
  };
  memcpy(lc->f, f, sizeof f);
  lc->n = CTL_LOG_FIELDS;
}

void ctl_logf(enum k8s_log_level lvl, int v, struct ctl *c, const char *key, const char *id,
              const char *msg, const struct k8s_log_field *extra, size_t nextra)
{
  if (!k8s_log_enabled(lvl, v)) return;
  struct ctl_logctx lc;
  ctl_log_ctx(&lc, c, key, id);
  struct k8s_log_field f[CTL_LOG_FIELDS + 8];
  memcpy(f, lc.f, lc.n * sizeof *f);
  size_t n = lc.n;
  for (size_t i = 0; i < nextra && n < sizeof f / sizeof f[0]; i++)
    f[n++] = extra[i];
  k8s_log_fields(lvl, v, msg, f, n);
}

void ctl_log(enum k8s_log_level lvl, struct ctl *c, const char *key, const char *id,
             const char *msg, const char *k1, const char *v1, const char *k2, const char *v2)
{
  struct k8s_log_field extra[2] = {{k1, K8S_LOG_STR, v1, 0, 0}, {k2, K8S_LOG_STR, v2, 0, 0}};
  ctl_logf(lvl, 1, c, key, id, msg, extra, !k1 ? 0 : !k2 ? 1 : 2);
}

static void metrics_tick(struct k8s_loop *loop, void *data)
{
  struct ctl *c = data;
  c->metrics_timer = 0;
  ctl_sync_queue_metrics(c);
}

void ctl_sync_queue_metrics(struct ctl *c)
{
  k8s_workqueue_metrics_update(c->wqm, k8s_monotonic());
  k8s_controller_metrics_set_active(c->cm, c->inflight);
  if (c->inflight > 0 && !c->metrics_timer && !c->stopping)
    c->metrics_timer = k8s_loop_timer_add(k8s_manager_loop(c->all->m), 0.5, metrics_tick, c);
}

static void process(struct k8s_loop *loop, void *data);

void ctl_schedule(struct ctl *c)
{
  if (c->tick_pending || !c->started) return;
  if (k8s_loop_next_tick(k8s_manager_loop(c->all->m), process, c) == 0) c->tick_pending = 1;
}

static void timer_fired(struct k8s_loop *loop, void *data)
{
  struct ctl *c = data;
  c->timer = 0;
  ctl_schedule(c);
}

/* Arms the loop timer for the queue's earliest delayed key. */
void ctl_arm_timer(struct ctl *c)
{
  double d = k8s_workqueue_next_deadline(c->q);
  if (d < 0) return;
  if (c->timer && c->timer_at <= d) return;
  struct k8s_loop *loop = k8s_manager_loop(c->all->m);
  if (c->timer) k8s_loop_timer_cancel(loop, c->timer);
  c->timer_at = d;
  c->timer = k8s_loop_timer_add(loop, d - k8s_monotonic(), timer_fired, c);
}

static void enqueue(struct ctl *c, const char *key, enum k8s_priority prio)
{
  if (!key || !*key) return;
  k8s_workqueue_add(c->q, key, prio);
  ctl_sync_queue_metrics(c);
  ctl_schedule(c);
}

void ctl_enqueue(struct ctl *c, const char *key)
{
  enqueue(c, key, K8S_PRIORITY_HIGH);
}

/* "ns/name" or "name" */
void ctl_key_of(const char *ns, const char *name, char *buf, size_t len)
{
  snprintf(buf, len, "%s%s%s", ns && *ns ? ns : "", ns && *ns ? "/" : "", name);
}

int ctl_has_finalizer(const json_t *cr)
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
 * Processing the queue
 * ===================================================================== */

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
  k8s_workqueue_tick(c->q, k8s_monotonic());
  int n = 0;
  while (!c->stopping && c->inflight < c->all->max_inflight && n < BATCH_PER_TICK) {
    const char *key = k8s_workqueue_get(c->q);
    if (!key) break;
    n++;
    ctl_reconcile_key(c, key);
  }
  ctl_sync_queue_metrics(c);
  ctl_arm_timer(c);
  if (n == BATCH_PER_TICK) ctl_schedule(c);
}

/* }==================================================================== */

/* {====================================================================
 * Event handlers
 * ===================================================================== */

static void owner_track(struct ctl *c, const struct k8s_object *o, int add)
{
  char owner[64], key[512];
  k8s_owner_label_value(c->decl->for_.kind, o->ns, o->name, owner);
  ctl_key_of(o->ns, o->name, key, sizeof(key));
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

/* Enqueues the CR of a child's event after the batch period
 * (--child-events-batch-period): a Deployment's rollout, its ReplicaSet and
 * its EndpointSlices change several times within a few hundred milliseconds,
 * and one reconcile (one status write) for the lot says the same as one per
 * event. The CR's own events are not batched. */
static void enqueue_child_event(struct ctl *c, const char *key)
{
  k8s_workqueue_add_batched(c->q, key, K8S_PRIORITY_HIGH, c->all->child_batch, k8s_monotonic());
  ctl_sync_queue_metrics(c);
  ctl_schedule(c);
}

/* Enqueues the CR whose owner label o carries, through the owner map (an
 * index: no scan of the CRs); 1 when there is one. */
static int enqueue_by_owner_label(struct ctl *c, const struct k8s_object *o)
{
  const char *owner = k8s_object_label(o, LK_LABEL_OWNER);
  struct owner_ent *e = owner ? k8s_strmap_get(&c->owners, owner) : NULL;
  if (!e) return 0;
  enqueue_child_event(c, e->key);
  return 1;
}

/* The CR key a child points at: its owner label through the owner map, or
 * its controller ownerReference of the CR kind. */
static void enqueue_owner(struct ctl *c, const struct k8s_object *o)
{
  if (enqueue_by_owner_label(c, o)) return;
  const struct k8s_owner_ref *ref = k8s_object_controller(o);
  if (ref && !strcmp(ref->kind, c->decl->for_.kind) &&
      !strcmp(ref->api_version, c->decl->for_.api_version)) {
    char key[512];
    ctl_key_of(o->ns, ref->name, key, sizeof(key));
    enqueue_child_event(c, key);
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
  ctl_sync_queue_metrics(c);
  ctl_schedule(c);
}

static void on_object(struct kinfo *ki, const struct k8s_object *o, int deleted)
{
  struct ctl *c = ki->c;
  switch (ki->role) {
  case ROLE_CR:
    owner_track(c, o, !deleted);
    if (!deleted && ctl_status_echo(c, o)) break;
    enqueue(c, o->key, K8S_PRIORITY_HIGH);
    break;
  case ROLE_OWNS:
    enqueue_owner(c, o);
    break;
  case ROLE_WATCH: {
    const struct lk_watch_decl *w = &c->decl->watches[ki->index];
    /* an owned_only watch (e.g. the EndpointSlices of a CR's Services, which
     * copy the Service's labels) finds its CR by the owner label: the map
     * function runs only for objects no CR of this controller owns */
    if (w->owned_only && enqueue_by_owner_label(c, o)) break;
    if (!w->map) {
      enqueue_all(c, K8S_PRIORITY_HIGH);
      break;
    }
    json_t *obj = k8s_object_parse(o, NULL, 0);
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
    ctl_schedule(c);
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

/* What of a kind the Cache holds (doc/lua-api.md, "What the cache holds"):
 * a kind only owned (and watches declared owned_only) by every controller
 * is cached by the managed-by label — the operator's own objects, not the
 * cluster's; a CR kind, or a kind any controller watches, entirely. */
static const char *scope_of(struct controllers *all, const struct lk_gvk *g)
{
  int owned = 0;
  for (size_t i = 0; i < all->nctls; i++) {
    const struct lk_controller_decl *d = all->ctls[i].decl;
    if (lk_gvk_is(&d->for_, g->api_version, g->kind)) return NULL;
    for (size_t k = 0; k < d->nowns; k++)
      owned |= lk_gvk_is(&d->owns[k], g->api_version, g->kind);
    for (size_t k = 0; k < d->nwatches; k++) {
      if (!lk_gvk_is(&d->watches[k].gvk, g->api_version, g->kind)) continue;
      if (!d->watches[k].owned_only) return NULL;
      owned = 1;
    }
  }
  return owned ? LK_LABEL_MANAGED_BY "=" LK_MANAGED_BY : NULL;
}

/* Creates the informers that discovery serves and are not there yet. */
static void ensure_informers(struct ctl *c)
{
  struct k8s_cache *cache = k8s_manager_cache(c->all->m);
  for (size_t i = 0; i < c->nkinds; i++) {
    struct kinfo *ki = &c->kinds[i];
    if (ki->inf) continue;
    struct k8s_informer_scope scope = {scope_of(c->all, ki->gvk)};
    int rc =
        k8s_cache_get_informer_scoped(cache, ki->gvk->api_version, ki->gvk->kind, &scope, &ki->inf);
    if (rc != 0) {
      ki->inf = NULL;
      k8s_log(K8S_LOG_WARN, "kind not served; waiting for discovery", "controller", c->decl->name,
              "apiVersion", ki->gvk->api_version, "kind", ki->gvk->kind, NULL);
      continue;
    }
    ki->handler = k8s_informer_add_handler(ki->inf, &handler, ki);
  }
}

/* The served kinds changed (a CRD was installed or removed): start the
 * informers that can start now, and reconcile every CR again, since what a
 * script emits depends on k8s.discovery.served (an InferencePool, a
 * DestinationRule becomes possible or impossible). */
static void discovery_changed(struct k8s_discovery *d, void *data)
{
  struct controllers *all = data;
  if (k8s_manager_stopping(all->m)) return;
  for (size_t i = 0; i < all->nctls; i++) {
    ensure_informers(&all->ctls[i]);
    enqueue_all(&all->ctls[i], K8S_PRIORITY_LOW);
  }
}

/* {====================================================================
 * Namespace grants (doc/security.md)
 * ===================================================================== */

/* Enqueues every CR (of every controller) in namespace ns. */
static void enqueue_namespace(struct controllers *all, const char *ns)
{
  for (size_t i = 0; i < all->nctls; i++) {
    struct ctl *c = &all->ctls[i];
    if (!c->cr->inf) continue;
    const struct k8s_object **objs = NULL;
    size_t n = k8s_store_list(k8s_informer_store(c->cr->inf), ns, &objs);
    for (size_t k = 0; n != (size_t)-1 && k < n; k++)
      k8s_workqueue_add(c->q, objs[k]->key, K8S_PRIORITY_HIGH);
    free(objs);
    ctl_sync_queue_metrics(c);
    ctl_schedule(c);
  }
}

/* A grant label allow-from.sim.llm-d.io/<source> appeared, changed or went
 * on a Namespace: the CRs of <source> reconcile again (a refused child may
 * now be written, or a granted one refused). */
static void grants_changed(struct controllers *all, const struct k8s_object *a,
                           const struct k8s_object *b)
{
  size_t plen = strlen(LK_GRANT_LABEL_PREFIX);
  for (int side = 0; side < 2; side++) {
    const struct k8s_object *o = side ? b : a, *other = side ? a : b;
    for (size_t i = 0; o && i < o->nlabels; i++) {
      const char *key = o->labels[i].key;
      if (strncmp(key, LK_GRANT_LABEL_PREFIX, plen)) continue;
      const char *was = other ? k8s_object_label(other, key) : NULL;
      if (!was || strcmp(was, o->labels[i].value)) enqueue_namespace(all, key + plen);
    }
  }
}

static void ns_add(struct k8s_informer *inf, const struct k8s_object *o, void *data)
{
  grants_changed(data, NULL, o);
}

static void ns_update(struct k8s_informer *inf, const struct k8s_object *old,
                      const struct k8s_object *o, void *data)
{
  grants_changed(data, old, o);
}

static void ns_delete(struct k8s_informer *inf, const struct k8s_object *o, void *data)
{
  grants_changed(data, o, NULL);
}

static const struct k8s_event_handler ns_handler = {
    .on_add = ns_add, .on_update = ns_update, .on_delete = ns_delete};

/* The Namespace informer the grants are read from; the engine reads the
 * same Store through the cache source (store "v1" "Namespace"). */
static int watch_namespaces(struct controllers *all)
{
  if (all->namespaces) return 0;
  if (k8s_cache_get_informer(k8s_manager_cache(all->m), "v1", "Namespace", &all->namespaces)) {
    all->namespaces = NULL;
    return -1;
  }
  all->ns_handler = k8s_informer_add_handler(all->namespaces, &ns_handler, all);
  return 0;
}

/* }==================================================================== */

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
      if (!same_gvk(&a->watches[k].gvk, &b->watches[k].gvk) ||
          a->watches[k].owned_only != b->watches[k].owned_only)
        what = "watches";
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
    ctl_schedule(&all->ctls[i]);
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
  ctl_sweep_orphans(c);
  c->resync_timer = k8s_loop_timer_add(loop, c->all->resync, resync, c);
}

static int ctl_setup(struct k8s_manager *m, void *data)
{
  struct ctl *c = data;
  ensure_informers(c);
  if (watch_namespaces(c->all) != 0) {
    k8s_log(K8S_LOG_ERROR, "cannot watch Namespaces (the grant labels, doc/security.md)", NULL);
    return -1;
  }
  return 0;
}

static int ctl_start(struct k8s_manager *m, void *data)
{
  struct ctl *c = data;
  c->started = 1;
  k8s_log(K8S_LOG_INFO, "starting workers", "controller", c->decl->name, NULL);
  ctl_sweep_orphans(c); /* the caches synced: what a lost finalizer left behind */
  c->resync_timer = k8s_loop_timer_add(k8s_manager_loop(m), c->all->resync, resync, c);
  ctl_schedule(c);
  return 0;
}

static void ctl_stop(struct k8s_manager *m, void *data)
{
  struct ctl *c = data;
  c->stopping = 1;
  struct k8s_loop *loop = k8s_manager_loop(m);
  if (c->resync_timer) k8s_loop_timer_cancel(loop, c->resync_timer);
  if (c->timer) k8s_loop_timer_cancel(loop, c->timer);
  if (c->metrics_timer) k8s_loop_timer_cancel(loop, c->metrics_timer);
  if (c->trim_timer) k8s_loop_timer_cancel(loop, c->trim_timer);
  c->resync_timer = c->timer = c->metrics_timer = c->trim_timer = 0;
  k8s_workqueue_shut_down(c->q);
}

static bool busy(const struct controllers *all)
{
  for (size_t i = 0; i < all->nctls; i++) {
    struct k8s_workqueue_stats st;
    k8s_workqueue_stats(all->ctls[i].q, &st);
    if (all->ctls[i].inflight || st.depth || st.processing) return true;
  }
  return false;
}

static void trim_fired(struct k8s_loop *loop, void *data)
{
  (void)loop;
  struct ctl *c = data;
  c->trim_timer = 0;
  if (c->stopping || busy(c->all)) return;
  lk_engine_trim(c->all->engine); /* the sandbox's block pool first, then the heap */
  malloc_trim(0);
}

void ctl_trim_when_idle(struct ctl *c)
{
  if (c->trim_timer || c->stopping || busy(c->all)) return;
  c->trim_timer = k8s_loop_timer_add(k8s_manager_loop(c->all->m), TRIM_AFTER, trim_fired, c);
}

static bool ctl_idle(void *data)
{
  struct ctl *c = data;
  return c->inflight == 0;
}

static void register_metrics(struct controllers *all)
{
  struct k8s_metrics *reg = k8s_manager_metrics(all->m);
  static const char *const rev[] = {"revision", NULL};
  all->mx.revision = k8s_metrics_gauge(reg, "schedsim_script_revision_info",
                                       "The script set revision in use (value 1)", rev);
  const char *lv[] = {all->engine->set->revision};
  k8s_metric_set(all->mx.revision, lv, 1);
}

/* The free hook of the "controllers" Runnable (added first, so freed last):
 * every controller's maps, queue and kinds, the reload watcher, the engine. */
static void free_all(void *data)
{
  struct controllers *all = data;
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
    ctl_selectors_free(c);
    for (size_t j = 0; j < c->nmapq; j++)
      json_decref(c->mapq[j].obj);
    free(c->mapq);
    free(c->kinds);
    free((char *)c->runnable.name);
    k8s_workqueue_metrics_free(c->wqm); /* unsets the queue's observer first */
    k8s_controller_metrics_free(c->cm);
    k8s_workqueue_free(c->q);
  }
  free(all->ctls);
  if (all->namespaces) k8s_informer_remove_handler(all->namespaces, all->ns_handler);
  ctl_records_free(all);
  k8s_ratelimiter_free(all->script_backoff);
  k8s_reload_free(all->reload);
  lk_engine_free(all->engine);
  free(all);
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
  struct lk_engine_opts eo = {o->lua_memory_limit, o->lua_instruction_budget};
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
  all->engine = engine;
  /* from here on the Manager owns all (the owner Runnable's free hook), so
   * every failure below simply returns */
  all->owner = (struct k8s_runnable){.name = "controllers", .free = free_all, .data = all};
  if (k8s_manager_add_runnable(m, &all->owner) != 0) {
    free_all(all);
    return 1;
  }
  all->m = m;
  all->memory = (struct lk_write_memory){ctl_record_lookup, all};
  struct k8s_ratelimiter_config sb = {SCRIPT_BACKOFF_BASE, SCRIPT_BACKOFF_MAX, 0, 0};
  if (!(all->script_backoff = k8s_ratelimiter_new(&sb))) return 1;
  all->resync = o->sync_period > 0 ? o->sync_period : DEFAULT_RESYNC;
  all->child_batch = o->child_batch;
  all->max_inflight = o->max_concurrent > 0 ? o->max_concurrent : DEFAULT_MAX_INFLIGHT;
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
    /* controller-runtime's series, at 0 before the first reconcile */
    struct k8s_metrics *reg = k8s_manager_metrics(m);
    c->wqm = k8s_workqueue_metrics_new(reg, c->q, d->name, NULL);
    c->cm = k8s_controller_metrics_new(reg, d->name, all->max_inflight);
    static const char *const ctl_labels[] = {"controller", NULL};
    c->echoes =
        k8s_metrics_counter(reg, "schedsim_status_echoes_skipped_total",
                            "Watch events of a CR at the resourceVersion the operator's own "
                            "status write produced, not reconciled again",
                            ctl_labels);
    /* the CPU of the script call alone (thread CPU time): the observed
     * objects' decoding, the Lua reconcile, the result's checks and
     * decoration; not the informers' event handling or the writes */
    static const double cpu_buckets[] = {0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002,
                                         0.003,  0.005,   0.01,   0.025,   0.05,  0.1};
    c->engine_cpu = k8s_metrics_histogram(
        reg, "schedsim_reconcile_engine_cpu_seconds",
        "CPU time of the script call of a reconcile (decoding what it observes, the Lua "
        "reconcile, checking and decorating its result), writes excluded",
        ctl_labels, cpu_buckets, sizeof(cpu_buckets) / sizeof(cpu_buckets[0]));
    if (!c->wqm || !c->cm || !c->echoes || !c->engine_cpu) return 1;
    k8s_metric_touch(c->engine_cpu, (const char *[]){d->name, NULL});
    k8s_metric_touch(c->echoes, (const char *[]){d->name, NULL});
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
