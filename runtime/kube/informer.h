/* informer.h: Informer (Reflector + Store + event handlers) and the Cache, a
 * registry of informers by apiVersion+kind (controller-runtime's cache).
 *
 * Contract (client-go SharedInformer, single-threaded):
 *   - the Store (runtime/core/store.h) is updated before handlers are called,
 *     so a handler that reads the Store sees the new state;
 *   - per object, notifications arrive in the order the server sent them;
 *   - a relist (after 410 Gone) replaces the Store page by page and notifies
 *     the difference: on_add for new keys, on_update for changed ones
 *     (resourceVersion differs), on_delete for keys that vanished (after the
 *     last page); unchanged objects are not notified;
 *   - metadata.managedFields is removed before caching (and before handlers);
 *   - has_synced becomes true after the first complete list and stays true.
 * Handlers run on the loop, must not block, and should only enqueue keys.
 *
 * Ownership: the Cache owns its informers; k8s_cache_get_informer returns a
 * counted reference (k8s_cache_release drops it; the informer stops when the
 * last reference goes, so informers of kinds a reloaded script set no longer
 * uses do not leak). Objects passed to handlers are borrowed for the call:
 * copy what you keep (usually just the key). */
#ifndef SCHEDSIM_KUBE_INFORMER_H
#define SCHEDSIM_KUBE_INFORMER_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "kube/reflector.h"

#include "core/store.h"

struct k8s_informer;
struct k8s_cache;
struct k8s_discovery;

/* Event handlers; any may be NULL. Objects are the Store's read-only
 * k8s_object (runtime/core/store.h: key, namespace, name, uid,
 * resourceVersion, generation, labels, owner references and the compact JSON
 * text), borrowed for the call only. */
struct k8s_event_handler {
  void (*on_add)(struct k8s_informer *inf, const struct k8s_object *obj, void *data);
  void (*on_update)(struct k8s_informer *inf, const struct k8s_object *old_obj,
                    const struct k8s_object *new_obj, void *data);
  void (*on_delete)(struct k8s_informer *inf, const struct k8s_object *obj, void *data);
  /* optional: after the first complete list (once), and after every relist */
  void (*on_synced)(struct k8s_informer *inf, bool relist, void *data);
  /* optional: the reflector changed state (see reflector.h); why is the error
   * that caused a backoff or a relist, or NULL */
  void (*on_state)(struct k8s_informer *inf, enum k8s_reflector_state st,
                   const struct k8s_status *why, bool relist, void *data);
};

/* ---- Informer --------------------------------------------------------------- */

/* Creates a stopped informer over a reflector with opts (copied). Returns
 * NULL on allocation failure. Standalone informers are owned by the caller
 * (k8s_informer_free); those of a Cache by the Cache. */
struct k8s_informer *k8s_informer_new(struct k8s_client *c,
                                      const struct k8s_reflector_options *opts);
/* The same over n reflectors, one per namespace of namespaces (copied), all
 * feeding the one Store; a relist of one namespace removes only that
 * namespace's vanished objects; synced once every namespace listed. n 0:
 * like k8s_informer_new. */
struct k8s_informer *k8s_informer_new_ns(struct k8s_client *c,
                                         const struct k8s_reflector_options *opts,
                                         const char *const *namespaces, size_t n);
void k8s_informer_free(struct k8s_informer *inf);
/* Starts list+watch (idempotent). */
int k8s_informer_start(struct k8s_informer *inf);
void k8s_informer_stop(struct k8s_informer *inf);

/* Adds a handler. If the informer has synced already, on_add is called at once
 * for every cached object (sorted by key), as client-go does. Returns a
 * registration id > 0, or 0 on allocation failure. */
unsigned k8s_informer_add_handler(struct k8s_informer *inf, const struct k8s_event_handler *h,
                                  void *data);
/* Removes a handler by id (safe from inside a handler). */
void k8s_informer_remove_handler(struct k8s_informer *inf, unsigned id);

bool k8s_informer_has_synced(const struct k8s_informer *inf);
/* The Store (borrowed; read it, never write it). */
struct k8s_store *k8s_informer_store(struct k8s_informer *inf);
/* The cached object with key "ns/name" (cluster-scoped: "name"), borrowed
 * until the Store next changes (see store.h), or NULL. */
const struct k8s_object *k8s_informer_get(struct k8s_informer *inf, const char *key);
/* Number of cached objects. */
size_t k8s_informer_size(struct k8s_informer *inf);
const char *k8s_informer_api_version(const struct k8s_informer *inf);
const char *k8s_informer_kind(const struct k8s_informer *inf);
struct k8s_reflector *k8s_informer_reflector(struct k8s_informer *inf);

/* ---- Cache ------------------------------------------------------------------ */

struct k8s_metrics;

struct k8s_cache_options {
  const char *namespace;      /* restrict namespaced kinds to these namespaces ("a" or "a,b,c",
                                 one list+watch each); NULL: all */
  const char *label_selector; /* applied to every informer; NULL: none */
  double dead_stream_timeout; /* passed to reflectors; 0: default */
  /* every Store keeps the field set this manager applied to each object
   * (store.h, k8s_object.managed); NULL: none */
  const char *field_manager;
  /* the gauge schedsim_cache_objects{kind="apiVersion/kind"} is registered
   * here and follows every Store of the Cache; NULL: none */
  struct k8s_metrics *metrics;
};

/* Creates a cache resolving kinds through d (borrowed; may be NULL, then only
 * k8s_cache_get_informer_gvr works). */
struct k8s_cache *k8s_cache_new(struct k8s_client *c, struct k8s_discovery *d,
                                const struct k8s_cache_options *opts);
/* Stops and frees every informer. NULL is a no-op. */
void k8s_cache_free(struct k8s_cache *cache);

/* Get-or-create the informer of apiVersion+kind, started at once. On success
 * returns 0 and a counted reference in *out. -ENOENT: discovery does not know
 * the kind (not served); -ENOMEM. */
int k8s_cache_get_informer(struct k8s_cache *cache, const char *api_version, const char *kind,
                           struct k8s_informer **out);

/* What part of a kind an informer caches (controller-runtime's per-object
 * cache selectors): label_selector NULL caches every object. */
struct k8s_informer_scope {
  const char *label_selector; /* e.g. "app.kubernetes.io/managed-by=schedsim-operator" */
};

/* The same with a scope. A kind has one informer in a Cache: asking for it
 * with another scope than it was created with gives -EEXIST (the Cache's
 * users agree on one scope per kind). */
int k8s_cache_get_informer_scoped(struct k8s_cache *cache, const char *api_version,
                                  const char *kind, const struct k8s_informer_scope *scope,
                                  struct k8s_informer **out);

/* The label selector the informer caches by, or NULL when it caches every
 * object of its kind (then a key missing from its Store is missing in the
 * cluster, once synced). */
const char *k8s_informer_label_selector(const struct k8s_informer *inf);
/* The same with an explicit resource (no discovery needed). */
int k8s_cache_get_informer_gvr(struct k8s_cache *cache, const char *api_version, const char *kind,
                               const struct k8s_gvr *gvr, struct k8s_informer **out);
/* The informer of apiVersion+kind if one exists (no reference taken), or NULL. */
struct k8s_informer *k8s_cache_lookup(struct k8s_cache *cache, const char *api_version,
                                      const char *kind);
/* Drops a reference; at zero the informer is stopped and freed (later, on the
 * loop, so releasing from a handler is safe). */
void k8s_cache_release(struct k8s_cache *cache, struct k8s_informer *inf);
/* True when every informer of the cache has synced. */
bool k8s_cache_has_synced(struct k8s_cache *cache);
/* Calls fn for each informer (do not add or release informers from fn). */
void k8s_cache_foreach(struct k8s_cache *cache, void (*fn)(struct k8s_informer *, void *),
                       void *data);

#endif
