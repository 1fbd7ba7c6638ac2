/* informer.c: the Informer (a Reflector feeding a Store, then handlers) and the
 * Cache (informers by apiVersion+kind, reference-counted) of informer.h.
 *
 * Owns: per informer its reflector, its Store (runtime/core/store.h, which
 * strips metadata.managedFields) and its handler registrations; per cache the
 * informers and the map from "apiVersion/kind" to them. A relist is applied
 * page by page (upserts as pages arrive, then one sweep of the keys the list
 * did not contain), so memory never holds a whole second copy of a large
 * collection. Depends on reflector.h and, for kind → resource, discovery.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/strmap.h"
#include "kube/discovery.h"
#include "kube/informer.h"

/* ==== structures =========================================================== */

struct registration {
  unsigned id;
  struct k8s_event_handler h;
  void *data;
  bool removed;
};

/* One list+watch stream into the informer's Store: all namespaces, or one
 * (a Cache restricted to several namespaces has one feed per namespace). */
struct feed {
  struct k8s_informer *inf;
  char *ns; /* NULL: every namespace */
  struct k8s_reflector *reflector;
  json_t *seen; /* keys of the list in progress (an object used as a set) */
  bool synced;
};

struct k8s_informer {
  struct k8s_client *c;
  struct feed *feeds;
  size_t nfeeds;
  struct k8s_store *store;
  char *api_version, *kind;
  struct registration *regs;
  size_t nregs, capregs;
  unsigned next_id;
  int dispatching; /* > 0 while handlers run: removals are deferred */
  bool synced;     /* every feed listed once */
  bool started;
  /* cache bookkeeping */
  struct k8s_cache *cache;
  char *cache_key;    /* "apiVersion/kind" */
  char *scope_labels; /* the scope's label selector, or NULL (every object) */
  int refs;
  bool doomed;
  struct k8s_informer *next_doomed;
};

struct k8s_cache {
  struct k8s_client *c;
  struct k8s_discovery *d;
  char *ns, *labels, *field_manager; /* ns: the namespaces, cut in place at the commas */
  struct k8s_metric *objects;        /* schedsim_cache_objects, or NULL */
  char **nsv;                        /* the namespaces, pointing into ns */
  size_t nns;
  double dead_stream_timeout;
  struct k8s_strmap informers; /* cache_key -> informer */
  struct k8s_informer *doomed; /* released, freed by reap_timer */
  uint64_t reap_timer;
};

/* ==== dispatch ============================================================= */

static void compact_regs(struct k8s_informer *inf)
{
  if (inf->dispatching) return;
  size_t j = 0;
  for (size_t i = 0; i < inf->nregs; i++)
    if (!inf->regs[i].removed) inf->regs[j++] = inf->regs[i];
  inf->nregs = j;
}

/* The Store's change callback: the store is already updated. */
static void store_cb(void *ud, enum k8s_store_event ev, const struct k8s_object *old,
                     const struct k8s_object *new_obj)
{
  struct k8s_informer *inf = ud;
  if (ev == K8S_STORE_UNCHANGED) return;
  if (ev != K8S_STORE_UPDATED && inf->cache && inf->cache->objects) {
    const char *lv[] = {inf->cache_key};
    k8s_metric_set(inf->cache->objects, lv, (double)k8s_store_len(inf->store));
  }
  inf->dispatching++;
  size_t n = inf->nregs; /* handlers added during dispatch wait for the next event */
  for (size_t i = 0; i < n; i++) {
    struct registration *r = &inf->regs[i];
    if (r->removed) continue;
    switch (ev) {
    case K8S_STORE_ADDED:
      if (r->h.on_add) r->h.on_add(inf, new_obj, r->data);
      break;
    case K8S_STORE_UPDATED:
      if (r->h.on_update) r->h.on_update(inf, old, new_obj, r->data);
      break;
    case K8S_STORE_DELETED:
      if (r->h.on_delete) r->h.on_delete(inf, old, r->data);
      break;
    default:
      break;
    }
  }
  inf->dispatching--;
  compact_regs(inf);
}

static void notify_synced(struct k8s_informer *inf, bool relist)
{
  inf->dispatching++;
  size_t n = inf->nregs;
  for (size_t i = 0; i < n; i++)
    if (!inf->regs[i].removed && inf->regs[i].h.on_synced)
      inf->regs[i].h.on_synced(inf, relist, inf->regs[i].data);
  inf->dispatching--;
  compact_regs(inf);
}

/* ==== reflector sink ======================================================= */

static void upsert(struct k8s_informer *inf, json_t *obj)
{
  char err[256];
  if (k8s_store_upsert(inf->store, obj, store_cb, inf, err, sizeof(err)) < 0)
    k8s_log(K8S_LOG_WARN, "informer: object not cached", "kind", inf->kind, "error", err, NULL);
}

/* Deletes the objects of the feed's namespace its list did not contain. */
static void sweep(struct feed *f)
{
  struct k8s_informer *inf = f->inf;
  const struct k8s_object **objs = NULL;
  size_t n = k8s_store_list(inf->store, f->ns, &objs);
  if (n == (size_t)-1) return;
  char **gone = NULL;
  size_t ngone = 0;
  for (size_t i = 0; i < n; i++) {
    if (json_object_get(f->seen, objs[i]->key)) continue;
    char **g = realloc(gone, (ngone + 1) * sizeof(*g));
    if (!g) break;
    gone = g;
    gone[ngone] = strdup(objs[i]->key);
    if (gone[ngone]) ngone++;
  }
  free(objs);
  for (size_t i = 0; i < ngone; i++) {
    k8s_store_delete(inf->store, gone[i], store_cb, inf);
    free(gone[i]);
  }
  free(gone);
}

static void sink_list_page(json_t *items, bool first, bool last, const char *rv, void *data)
{
  struct feed *f = data;
  struct k8s_informer *inf = f->inf;
  if (first) {
    json_decref(f->seen);
    f->seen = json_object();
  }
  size_t i;
  json_t *it;
  char key[512];
  json_array_foreach(items, i, it)
  {
    if (k8s_store_key_of(it, key, sizeof(key)) >= 0) json_object_set_new(f->seen, key, json_true());
    upsert(inf, it);
  }
  if (!last) return;
  sweep(f);
  json_decref(f->seen);
  f->seen = NULL;
  f->synced = true;
  bool relist = inf->synced;
  for (size_t k = 0; k < inf->nfeeds; k++)
    if (!inf->feeds[k].synced) return; /* the first sync waits for every feed */
  inf->synced = true;
  k8s_log_v(1, "informer: synced", "kind", inf->kind, "namespace", f->ns ? f->ns : "",
            "resourceVersion", rv ? rv : "", NULL);
  notify_synced(inf, relist);
}

static void sink_event(const char *type, json_t *obj, void *data)
{
  struct feed *f = data;
  if (!strcmp(type, "DELETED")) {
    char key[512];
    if (k8s_store_key_of(obj, key, sizeof(key)) >= 0)
      k8s_store_delete(f->inf->store, key, store_cb, f->inf);
    return;
  }
  upsert(f->inf, obj);
}

static void sink_state(enum k8s_reflector_state st, const struct k8s_status *why, bool relist,
                       void *data)
{
  struct k8s_informer *inf = ((struct feed *)data)->inf;
  inf->dispatching++;
  size_t n = inf->nregs;
  for (size_t i = 0; i < n; i++)
    if (!inf->regs[i].removed && inf->regs[i].h.on_state)
      inf->regs[i].h.on_state(inf, st, why, relist, inf->regs[i].data);
  inf->dispatching--;
  compact_regs(inf);
}

static const struct k8s_reflector_sink informer_sink = {
    .list_page = sink_list_page,
    .event = sink_event,
    .state = sink_state,
};

/* ==== informer ============================================================= */

struct k8s_informer *k8s_informer_new_ns(struct k8s_client *c,
                                         const struct k8s_reflector_options *opts,
                                         const char *const *namespaces, size_t n)
{
  struct k8s_informer *inf = calloc(1, sizeof(*inf));
  if (!inf) return NULL;
  inf->c = c;
  inf->api_version = strdup(opts->api_version ? opts->api_version : "");
  inf->kind = strdup(opts->kind ? opts->kind : "");
  inf->store = k8s_store_new();
  size_t nf = n ? n : 1;
  inf->feeds = calloc(nf, sizeof(*inf->feeds));
  if (!inf->api_version || !inf->kind || !inf->store || !inf->feeds) {
    k8s_informer_free(inf);
    return NULL;
  }
  for (size_t i = 0; i < nf; i++) {
    struct feed *f = &inf->feeds[inf->nfeeds++];
    struct k8s_reflector_options o = *opts;
    f->inf = inf;
    if (n) {
      f->ns = strdup(namespaces[i]);
      o.namespace = f->ns;
    } else if (opts->namespace)
      f->ns = strdup(opts->namespace);
    f->reflector = k8s_reflector_new(c, &o, &informer_sink, f);
    if ((o.namespace && !f->ns) || !f->reflector) {
      k8s_informer_free(inf);
      return NULL;
    }
  }
  if (opts->api_version && opts->kind)
    k8s_store_set_kind(inf->store, opts->api_version, opts->kind);
  return inf;
}

struct k8s_informer *k8s_informer_new(struct k8s_client *c,
                                      const struct k8s_reflector_options *opts)
{
  return k8s_informer_new_ns(c, opts, NULL, 0);
}

void k8s_informer_free(struct k8s_informer *inf)
{
  if (!inf) return;
  for (size_t i = 0; i < inf->nfeeds; i++) {
    k8s_reflector_free(inf->feeds[i].reflector);
    json_decref(inf->feeds[i].seen);
    free(inf->feeds[i].ns);
  }
  free(inf->feeds);
  k8s_store_free(inf->store);
  free(inf->regs);
  free(inf->api_version);
  free(inf->kind);
  free(inf->cache_key);
  free(inf->scope_labels);
  free(inf);
}

int k8s_informer_start(struct k8s_informer *inf)
{
  if (inf->started) return 0;
  inf->started = true;
  int rc = 0;
  for (size_t i = 0; i < inf->nfeeds; i++)
    if (k8s_reflector_start(inf->feeds[i].reflector) < 0) rc = -1;
  return rc;
}

void k8s_informer_stop(struct k8s_informer *inf)
{
  if (!inf->started) return;
  inf->started = false;
  for (size_t i = 0; i < inf->nfeeds; i++)
    k8s_reflector_stop(inf->feeds[i].reflector);
}

unsigned k8s_informer_add_handler(struct k8s_informer *inf, const struct k8s_event_handler *h,
                                  void *data)
{
  if (inf->nregs == inf->capregs) {
    size_t cap = inf->capregs ? inf->capregs * 2 : 4;
    struct registration *r = realloc(inf->regs, cap * sizeof(*r));
    if (!r) return 0;
    inf->regs = r;
    inf->capregs = cap;
  }
  unsigned id = ++inf->next_id;
  struct registration *r = &inf->regs[inf->nregs++];
  r->id = id;
  r->h = *h;
  r->data = data;
  r->removed = false;
  if (inf->synced && h->on_add) {
    const struct k8s_object **objs = NULL;
    size_t n = k8s_store_list(inf->store, NULL, &objs);
    if (n != (size_t)-1) {
      inf->dispatching++;
      for (size_t i = 0; i < n; i++)
        h->on_add(inf, objs[i], data);
      inf->dispatching--;
      free(objs);
    }
    if (h->on_synced) h->on_synced(inf, false, data);
  }
  return id;
}

void k8s_informer_remove_handler(struct k8s_informer *inf, unsigned id)
{
  for (size_t i = 0; i < inf->nregs; i++)
    if (inf->regs[i].id == id) inf->regs[i].removed = true;
  compact_regs(inf);
}

bool k8s_informer_has_synced(const struct k8s_informer *inf)
{
  return inf->synced;
}

struct k8s_store *k8s_informer_store(struct k8s_informer *inf)
{
  return inf->store;
}

const struct k8s_object *k8s_informer_get(struct k8s_informer *inf, const char *key)
{
  return k8s_store_get(inf->store, key);
}

size_t k8s_informer_size(struct k8s_informer *inf)
{
  return k8s_store_len(inf->store);
}

const char *k8s_informer_api_version(const struct k8s_informer *inf)
{
  return inf->api_version;
}

const char *k8s_informer_kind(const struct k8s_informer *inf)
{
  return inf->kind;
}

struct k8s_reflector *k8s_informer_reflector(struct k8s_informer *inf)
{
  return inf->feeds[0].reflector;
}

/* ==== cache ================================================================ */

struct k8s_cache *k8s_cache_new(struct k8s_client *c, struct k8s_discovery *d,
                                const struct k8s_cache_options *opts)
{
  struct k8s_cache *cache = calloc(1, sizeof(*cache));
  if (!cache) return NULL;
  cache->c = c;
  cache->d = d;
  if (opts) {
    cache->ns = opts->namespace && *opts->namespace ? strdup(opts->namespace) : NULL;
    /* "a,b,c": one feed per namespace */
    for (char *p = cache->ns, *tok; p && (tok = strsep(&p, ","));) {
      char **v = *tok ? realloc(cache->nsv, (cache->nns + 1) * sizeof(*v)) : NULL;
      if (v) {
        cache->nsv = v;
        cache->nsv[cache->nns++] = tok; /* points into cache->ns */
      }
    }
    cache->labels =
        opts->label_selector && *opts->label_selector ? strdup(opts->label_selector) : NULL;
    cache->dead_stream_timeout = opts->dead_stream_timeout;
    if (opts->metrics) {
      static const char *const labels[] = {"kind", NULL};
      cache->objects =
          k8s_metrics_gauge(opts->metrics, "schedsim_cache_objects",
                            "Objects held in the informer cache, by apiVersion/kind.", labels);
    }
    cache->field_manager = opts->field_manager ? strdup(opts->field_manager) : NULL;
  }
  return cache;
}

static void reap(struct k8s_loop *loop, void *data)
{
  struct k8s_cache *cache = data;
  cache->reap_timer = 0;
  while (cache->doomed) {
    struct k8s_informer *inf = cache->doomed;
    cache->doomed = inf->next_doomed;
    k8s_informer_free(inf);
  }
}

void k8s_cache_free(struct k8s_cache *cache)
{
  if (!cache) return;
  size_t it = 0;
  const char *k;
  void *v;
  struct k8s_informer **all = calloc(cache->informers.len + 1, sizeof(*all));
  size_t n = 0;
  while (all && k8s_strmap_next(&cache->informers, &it, &k, &v))
    all[n++] = v;
  k8s_strmap_clear(&cache->informers);
  for (size_t i = 0; i < n; i++)
    k8s_informer_free(all[i]);
  free(all);
  if (cache->reap_timer)
    k8s_loop_timer_cancel(k8s_http_loop(k8s_client_http(cache->c)), cache->reap_timer);
  reap(NULL, cache);
  free(cache->nsv);
  free(cache->ns);
  free(cache->labels);
  free(cache->field_manager);
  free(cache);
}

static int same_scope(const struct k8s_informer *inf, const char *labels)
{
  return (!inf->scope_labels && !labels) ||
         (inf->scope_labels && labels && !strcmp(inf->scope_labels, labels));
}

/* Get-or-create with an explicit resource and scope (labels NULL: all). */
static int get_informer(struct k8s_cache *cache, const char *api_version, const char *kind,
                        const struct k8s_gvr *gvr, const char *labels, struct k8s_informer **out)
{
  char key[512];
  snprintf(key, sizeof(key), "%s/%s", api_version, kind);
  struct k8s_informer *inf = k8s_strmap_get(&cache->informers, key);
  if (inf) {
    if (!same_scope(inf, labels)) return -EEXIST;
    inf->refs++;
    *out = inf;
    return 0;
  }
  /* the cache-wide selector and the scope's, both */
  char both[1024];
  const char *sel = labels ? labels : cache->labels;
  if (labels && cache->labels) {
    snprintf(both, sizeof(both), "%s,%s", cache->labels, labels);
    sel = both;
  }
  struct k8s_reflector_options o = {
      .gvr = *gvr,
      .api_version = api_version,
      .kind = kind,
      .label_selector = sel,
      .dead_stream_timeout = cache->dead_stream_timeout,
  };
  /* a namespaced kind: one feed per namespace of the Cache (all when none) */
  inf = k8s_informer_new_ns(cache->c, &o, gvr->namespaced ? (const char *const *)cache->nsv : NULL,
                            gvr->namespaced ? cache->nns : 0);
  if (!inf || k8s_store_set_field_manager(inf->store, cache->field_manager) != 0) {
    k8s_informer_free(inf);
    return -ENOMEM;
  }
  inf->cache = cache;
  inf->cache_key = strdup(key);
  inf->scope_labels = labels ? strdup(labels) : NULL;
  inf->refs = 1;
  if (!inf->cache_key || (labels && !inf->scope_labels) ||
      k8s_strmap_put(&cache->informers, inf->cache_key, inf)) {
    k8s_informer_free(inf);
    return -ENOMEM;
  }
  k8s_log_v(1, "cache: informer started", "apiVersion", api_version, "kind", kind, "labels",
            labels ? labels : "", NULL);
  k8s_informer_start(inf);
  *out = inf;
  return 0;
}

int k8s_cache_get_informer_gvr(struct k8s_cache *cache, const char *api_version, const char *kind,
                               const struct k8s_gvr *gvr, struct k8s_informer **out)
{
  return get_informer(cache, api_version, kind, gvr, NULL, out);
}

int k8s_cache_get_informer_scoped(struct k8s_cache *cache, const char *api_version,
                                  const char *kind, const struct k8s_informer_scope *scope,
                                  struct k8s_informer **out)
{
  const char *labels =
      scope && scope->label_selector && *scope->label_selector ? scope->label_selector : NULL;
  struct k8s_informer *inf = k8s_cache_lookup(cache, api_version, kind);
  if (inf) {
    if (!same_scope(inf, labels)) return -EEXIST;
    inf->refs++;
    *out = inf;
    return 0;
  }
  struct k8s_gvr gvr;
  if (!cache->d || k8s_discovery_gvr(cache->d, api_version, kind, &gvr)) return -ENOENT;
  return get_informer(cache, api_version, kind, &gvr, labels, out);
}

int k8s_cache_get_informer(struct k8s_cache *cache, const char *api_version, const char *kind,
                           struct k8s_informer **out)
{
  return k8s_cache_get_informer_scoped(cache, api_version, kind, NULL, out);
}

const char *k8s_informer_label_selector(const struct k8s_informer *inf)
{
  return inf->scope_labels;
}

struct k8s_informer *k8s_cache_lookup(struct k8s_cache *cache, const char *api_version,
                                      const char *kind)
{
  char key[512];
  snprintf(key, sizeof(key), "%s/%s", api_version, kind);
  return k8s_strmap_get(&cache->informers, key);
}

void k8s_cache_release(struct k8s_cache *cache, struct k8s_informer *inf)
{
  if (!inf || inf->doomed || --inf->refs > 0) return;
  k8s_strmap_del(&cache->informers, inf->cache_key);
  k8s_informer_stop(inf);
  inf->doomed = true;
  inf->next_doomed = cache->doomed;
  cache->doomed = inf;
  k8s_log_v(1, "cache: informer stopped (no more users)", "kind", inf->kind, NULL);
  if (!cache->reap_timer)
    cache->reap_timer =
        k8s_loop_timer_add(k8s_http_loop(k8s_client_http(cache->c)), 0, reap, cache);
}

bool k8s_cache_has_synced(struct k8s_cache *cache)
{
  size_t it = 0;
  const char *k;
  void *v;
  while (k8s_strmap_next(&cache->informers, &it, &k, &v))
    if (!((struct k8s_informer *)v)->synced) return false;
  return true;
}

void k8s_cache_foreach(struct k8s_cache *cache, void (*fn)(struct k8s_informer *, void *),
                       void *data)
{
  size_t it = 0;
  const char *k;
  void *v;
  while (k8s_strmap_next(&cache->informers, &it, &k, &v))
    fn(v, data);
}
