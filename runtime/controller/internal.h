/* internal.h: what the units of the Reconciler driver share (controller.c:
 * queue, handlers, informers, Runnable; reconcile.c: one reconcile and its
 * outcome; writer.c: the writes, expectations and refusals). Not part of the
 * runtime's API: only the files of runtime/controller/ include it.
 *
 * Ownership: struct controllers owns its struct ctl array, the engine, the
 * reload watcher and every map; it is freed by the free hook of its own
 * Runnable, "controllers" (the Manager calls it in k8s_manager_free). A struct rec
 * lives from ctl_reconcile_key until ctl_complete; a struct write from its
 * start until its callback. */
#ifndef SCHEDSIM_CONTROLLER_INTERNAL_H
#define SCHEDSIM_CONTROLLER_INTERNAL_H

#include <jansson.h>

#include "controller/controller.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/strmap.h"
#include "core/workqueue.h"
#include "lua/engine.h"
#include "lua/reload.h"

#define DEFAULT_RESYNC 600.0
#define DEFAULT_MAX_INFLIGHT 16
#define BATCH_PER_TICK 32
#define EXPECTATION_TTL 30.0
#define FINALIZE_WAIT 5.0

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
  struct k8s_runnable owner; /* frees this struct (k8s_manager_free) */
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

/* }==================================================================== */

/* {====================================================================
 * controller.c
 * ===================================================================== */

/* Logs msg with the controller, key and reconcile id, plus up to two fields. */
void ctl_log(enum k8s_log_level lvl, struct ctl *c, const char *key, const char *id,
             const char *msg, const char *k1, const char *v1, const char *k2, const char *v2);
/* Copies the WorkQueue's depth and counters into the metrics. */
void ctl_sync_queue_metrics(struct ctl *c);
/* Runs the controller's processing on the next loop tick (once). */
void ctl_schedule(struct ctl *c);
/* Arms the loop timer for the queue's earliest delayed key. */
void ctl_arm_timer(struct ctl *c);
/* "ns/name", or "name" for a cluster-scoped object, into buf. */
void ctl_key_of(const char *ns, const char *name, char *buf, size_t len);
/* 1 when the CR carries the cleanup finalizer LK_FINALIZER. */
int ctl_has_finalizer(const json_t *cr);

/* }==================================================================== */

/* {====================================================================
 * reconcile.c
 * ===================================================================== */

/* Reconciles key (popped from c's queue): runs the engine and issues the
 * writes; the key gets its outcome in ctl_complete once they all finished. */
void ctl_reconcile_key(struct ctl *c, const char *key);
/* Gives r's key its WorkQueue outcome, counts it in the metrics, frees r. */
void ctl_complete(struct rec *r);

/* }==================================================================== */

/* {====================================================================
 * writer.c
 * ===================================================================== */

void ctl_expect_clear(struct ctl *c, const char *id);
void ctl_refusal_free(struct refusal *f);
/* Records message (ownership taken) as key's refused write. */
void ctl_refusal_set(struct ctl *c, const char *key, char *message);
/* Forgets key's refused write; returns 1 if there was one. */
int ctl_refusal_clear(struct ctl *c, const char *key);
void ctl_add_finalizer(struct rec *r, const json_t *cr);
void ctl_remove_finalizer(struct rec *r, const json_t *cr);
void ctl_apply_child(struct rec *r, const struct lk_child *ch);
void ctl_delete_child(struct rec *r, const struct lk_ref *p);
void ctl_write_status(struct rec *r, const json_t *cr, const json_t *status);
void ctl_post_events(struct rec *r, const json_t *cr, const json_t *events);

/* }==================================================================== */

#endif
