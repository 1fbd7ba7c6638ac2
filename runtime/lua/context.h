/* context.h: what a sandboxed call may read, as interfaces with one
 * implementation for the operator (informers, discovery) and one in memory
 * (fixtures, render --observed, k8sengine): a script cannot tell them apart.
 *
 *   struct lk_cache_source      the Store of an apiVersion+kind (or NULL: not
 *                               cached / not served)
 *   struct lk_discovery_source  served kinds, served versions, scope
 *   struct lk_ctx               the context of one call: sources, the clock,
 *                               the kinds k8s.cache may read, the log sink
 *
 * Ownership: everything here is borrowed by the sandbox for one call
 * (lk_pcall); the caller keeps it alive for that long. */
#ifndef SCHEDSIM_LUA_CONTEXT_H
#define SCHEDSIM_LUA_CONTEXT_H

#include <stddef.h>

#include "core/log.h"
#include "core/store.h"

struct lk_gvk {
  char *api_version; /* "apps/v1" */
  char *kind;        /* "Deployment" */
};

/* The cache: one Store per apiVersion+kind. store returns the Store
 * (borrowed), or NULL when the kind is not cached (not served, not watched).
 * complete (may be NULL: always) is 1 when that Store holds every object of
 * the kind, 0 when it holds only the operator's own (an owns kind cached by
 * its managed-by label): then a name missing from it may still exist. */
struct lk_cache_ops {
  struct k8s_store *(*store)(void *ud, const char *api_version, const char *kind);
  int (*complete)(void *ud, const char *api_version, const char *kind);
};
struct lk_cache_source {
  const struct lk_cache_ops *ops;
  void *ud;
};

struct lk_discovery_ops {
  /* 1 when the server serves apiVersion+kind. */
  int (*served)(void *ud, const char *api_version, const char *kind);
  /* Served versions of group (core: "") that have kind, preferred first:
   * up to max borrowed strings in out; returns the total. */
  size_t (*versions)(void *ud, const char *group, const char *kind, const char **out, size_t max);
  /* 1 namespaced, 0 cluster-scoped, -1 unknown (treated as namespaced). */
  int (*namespaced)(void *ud, const char *api_version, const char *kind);
};
struct lk_discovery_source {
  const struct lk_discovery_ops *ops;
  void *ud;
};

/* A log record from k8s.log.*: fields are the call's fields (controller, key,
 * reconcileID) followed by the script's. */
typedef void (*lk_log_fn)(void *ud, enum k8s_log_level level, int v, const char *msg,
                          const struct k8s_log_field *fields, size_t nfields);

struct lk_ctx {
  const struct lk_cache_source *cache;         /* NULL: k8s.cache raises */
  const struct lk_discovery_source *discovery; /* NULL: k8s.discovery raises */
  const char *now;                             /* k8s.now(); NULL: the wall clock */
  const struct lk_gvk *kinds;                  /* kinds k8s.cache may read */
  size_t nkinds;                               /* 0 with kinds NULL: any kind */
  const char *controller;                      /* for messages, may be NULL */
  lk_log_fn log;                               /* NULL: core/log.h */
  void *log_data;
  const struct k8s_log_field *log_fields; /* prepended to every record */
  size_t nlog_fields;
};

/* The default sink: k8s_log_fields of core/log.h. */
void lk_log_to_core(void *ud, enum k8s_log_level level, int v, const char *msg,
                    const struct k8s_log_field *fields, size_t nfields);

#endif
