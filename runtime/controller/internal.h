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
#include "core/controller_metrics.h"
#include "core/metrics.h"
#include "core/workqueue_metrics.h"
#include "core/strmap.h"
#include "core/ratelimiter.h"
#include "core/workqueue.h"
#include "lua/engine.h"
#include "lua/reload.h"

#define DEFAULT_RESYNC 600.0
#define DEFAULT_MAX_INFLIGHT 16
#define BATCH_PER_TICK 32
#define EXPECTATION_TTL 30.0
#define FINALIZE_WAIT 5.0
#define REQUEUE_FLOOR 1.0 /* seconds: the least requeue_after honoured */
#define QUIET_RETRY 1.0   /* seconds: retry after a prerequisite was not visible yet */
/* seconds: a CR in Conflict looks again at this pace (not the growing rate
 * limit): the other owner's objects go without an event that names it */
#define CONFLICT_RECHECK 5.0
#define TRIM_AFTER 2.0 /* seconds without work before malloc_trim (ctl_trim_when_idle) */
/* seconds: after a status left to the created children's events, the
 * reconcile that writes it anyway if no such event came */
#define CREATED_RECHECK 2.0
#define SCRIPT_BACKOFF_BASE 1.0 /* seconds: first retry of a failing script, doubling */
#define SCRIPT_BACKOFF_MAX 300.0

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

/* What the runtime last wrote to one object: a child (shared by every
 * controller: two CRs of different kinds may want the same name) or a CR's
 * status. Kept in controllers.records for EXPECTATION_TTL seconds. It lets a
 * reconcile that runs before the informer delivered our own write skip
 * writing the same content again, tells the engine that another CR is
 * already creating a child the cache does not show yet (a claim), and which
 * resourceVersion our last apply produced (no drift on our own write). */
struct record {
  char *id;        /* map key: "<apiVersion>/<kind>/<ns>/<name>", or "status:<controller>/<key>" */
  char *owner;     /* children: the owner label value it was written for ("" for a status) */
  char *content;   /* the desired hash, the status text, or "deleted" */
  char *rv_before; /* the cached resourceVersion the write went over ("" when absent) */
  char *rv_after;  /* the resourceVersion the write produced; "" while in flight */
  char *echo_rv;   /* a status write's: the resourceVersion of a CR event held while the
                      write was in flight (ctl_status_echo), or NULL */
  double at;       /* monotonic seconds of the write */
};

struct mapev {
  size_t watch;
  json_t *obj;
};

struct metrics {
  struct k8s_metric *revision;
};

struct ctl {
  struct controllers *all;
  const struct lk_controller_decl *decl;
  struct k8s_workqueue *q;
  struct kinfo *kinds;
  size_t nkinds;
  struct kinfo *cr; /* kinds[0] */
  struct k8s_strmap owners;
  struct k8s_strmap selectors; /* CR key -> the last selector check (selectors.c) */
  struct mapev *mapq;
  size_t nmapq, capmapq;
  int started, stopping, tick_pending;
  int inflight;
  uint64_t timer, resync_timer;
  double timer_at;
  struct k8s_workqueue_metrics *wqm; /* workqueue_* of q (core/workqueue_metrics.h) */
  struct k8s_controller_metrics *cm; /* controller_runtime_* (core/controller_metrics.h) */
  struct k8s_metric *echoes;         /* schedsim_status_echoes_skipped_total (the registry's) */
  struct k8s_metric *engine_cpu;     /* schedsim_reconcile_engine_cpu_seconds (the registry's) */
  uint64_t metrics_timer;            /* refreshes unfinished work while keys run */
  uint64_t trim_timer;               /* ctl_trim_when_idle's, while armed */
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
  struct lk_write_memory memory;   /* over records, for the engine */
  struct k8s_strmap records;       /* id -> struct record */
  struct k8s_informer *namespaces; /* v1 Namespace: the grant labels (doc/security.md) */
  unsigned ns_handler;
  struct k8s_ratelimiter *script_backoff; /* keys whose script failed or ran out of budget */
  struct metrics mx;
  double resync;
  int max_inflight;
  double child_batch; /* --child-events-batch-period, seconds */
  uint64_t idseq;
  struct k8s_runnable owner; /* frees this struct (k8s_manager_free) */
};

/* The phases of one reconcile's writes, in order; a phase starts when every
 * write of the previous one finished (doc/architecture.md, "Ordered
 * writes"). */
enum phase {
  PHASE_PROBE,     /* GET the children a cache of our own objects cannot vouch for, and
                      LIST the pods the Services and InferencePools to apply select */
  PHASE_FINALIZER, /* the cleanup finalizer, before any child outside the CR's namespace */
  PHASE_PREREQS,   /* ServiceAccounts, ConfigMaps, Roles: what other children refer to */
  PHASE_CHILDREN,  /* every other child, then deletes of children no longer desired */
  PHASE_STATUS,    /* the status (with this attempt's failed write, if any) and Events */
  PHASE_DONE
};

/* One reconcile whose writes are in flight. Owns key, cr and res. */
struct rec {
  struct ctl *c;
  char *key;
  char id[17];
  char owner[64]; /* the CR's owner label value */
  json_t *cr;     /* the CR as read from the cache */
  struct lk_result res;
  int have_res;
  int fin; /* the CR carries the cleanup finalizer */
  int st;  /* lk_engine_reconcile's return */
  enum phase phase;
  int pending;
  int issuing;
  int failed;             /* a write failed (or could not be sent) */
  int conflict;           /* a probe found a child of another owner */
  int quiet;              /* ... only transiently, right after creating its prerequisites */
  int created_prereqs;    /* PHASE_PREREQS created an object */
  int created;            /* applies of children the cache did not hold that succeeded */
  int deferred;           /* the status was left to the reconcile the created children's
                             events bring (status_deferred) */
  int selectors_checked;  /* PHASE_PROBE listed pods (ctl_check_selectors) */
  int selectors_unknown;  /* ... and some list got no answer */
  char *selector_warning; /* the first foreign pod a selector matches (owned), or NULL */
  char *failure;          /* the first failed write and the server's answer (owned) */
  const char
      *failure_reason; /* TargetNamespaceNotFound, WriteForbidden, WriteInvalid, WriteFailed */
  enum {
    OUT_SUCCESS,
    OUT_ERROR,
    OUT_SCRIPT_ERROR,
    OUT_TERMINAL,
    OUT_CONFLICT,
    OUT_REFUSED,
    OUT_REQUEUE_AFTER
  } outcome;
  double requeue_after;
  double t0;
  int writes;
};

struct write {
  struct rec *rec;
  int allow404;
  int after_prereqs; /* a child written after this reconcile created its prerequisites */
  int prereq;        /* a PHASE_PREREQS apply of a child that did not exist */
  int creates;       /* an apply of a child the cache did not hold */
  char *record_id;   /* the record to complete (rv_after) or drop (failure), or NULL */
  char what[320];
};

/* }==================================================================== */

/* {====================================================================
 * controller.c
 * ===================================================================== */

/* The fields controller-runtime puts on a reconcile's log lines, in its
 * order: controller, controllerGroup, controllerKind, <Kind> ({"name",
 * "namespace"} as a JSON object), namespace, name, reconcileID; then key
 * ("namespace/name", this project's habit). Filled by ctl_log_ctx; the
 * fields point into the struct, the controller and the key/id strings,
 * which must outlive the use. */
#define CTL_LOG_FIELDS 8
struct ctl_logctx {
  struct k8s_log_field f[CTL_LOG_FIELDS];
  size_t n;
  char ns[256], group[256], obj[640];
};
void ctl_log_ctx(struct ctl_logctx *lc, const struct ctl *c, const char *key, const char *id);
/* Logs msg at lvl (V-level v for K8S_LOG_DEBUG) with the ctl_log_ctx fields
 * of key and id, then nextra more. */
void ctl_logf(enum k8s_log_level lvl, int v, struct ctl *c, const char *key, const char *id,
              const char *msg, const struct k8s_log_field *extra, size_t nextra);
/* ctl_logf with up to two string fields (a NULL key ends them), V-level 1. */
void ctl_log(enum k8s_log_level lvl, struct ctl *c, const char *key, const char *id,
             const char *msg, const char *k1, const char *v1, const char *k2, const char *v2);
/* Brings the WorkQueue's metrics (depth, counters, durations, unfinished
 * work) and active_workers up to date; while keys run, again every 0.5 s
 * (client-go's unfinished-work period). */
void ctl_sync_queue_metrics(struct ctl *c);
/* Runs the controller's processing on the next loop tick (once). */
void ctl_schedule(struct ctl *c);
/* Called when a reconcile of c completed: once every controller has stayed
 * without queued or running keys for TRIM_AFTER seconds, the heap a burst
 * freed goes back to the kernel (malloc_trim): glibc keeps freed chunks in
 * the middle of the heap mapped, so RSS after a burst was its high-water
 * mark, not what the caches hold (bench/README.md, bytes per cached object). */
void ctl_trim_when_idle(struct ctl *c);
/* Adds key (a CR of c) to c's queue at high priority and schedules a tick. */
void ctl_enqueue(struct ctl *c, const char *key);
/* Arms the loop timer for the queue's earliest delayed key. */
void ctl_arm_timer(struct ctl *c);
/* "ns/name", or "name" for a cluster-scoped object, into buf. */
void ctl_key_of(const char *ns, const char *name, char *buf, size_t len);
/* 1 when the CR carries the cleanup finalizer LK_FINALIZER. */
int ctl_has_finalizer(const json_t *cr);

/* }==================================================================== */

/* {====================================================================
 * sweep.c
 * ===================================================================== */

/* Deletes (at most 100 per call) objects of c's owns kinds that carry the
 * owner label of a CR of c's kind that does not exist. */
void ctl_sweep_orphans(struct ctl *c);

/* }==================================================================== */

/* {====================================================================
 * selectors.c
 * ===================================================================== */

/* PHASE_PROBE: LISTs the pods each Service or InferencePool r applies (or
 * keeps) selects (counted in r->pending), unless the last answer for r's key
 * is recent and none of those children changes. */
void ctl_check_selectors(struct rec *r);
/* The foreign pod r's selectors match (this attempt's answer, remembered
 * for the key; else the remembered one), or NULL. Owned by r or the
 * controller: valid until r completes. */
const char *ctl_selector_warning(struct rec *r);
/* Forgets the remembered answer of key (the CR is gone). */
void ctl_selectors_forget(struct ctl *c, const char *key);
/* Frees every remembered answer of c. */
void ctl_selectors_free(struct ctl *c);

/* }==================================================================== */

/* {====================================================================
 * reconcile.c
 * ===================================================================== */

/* Reconciles key (popped from c's queue): runs the engine and issues the
 * writes; the key gets its outcome in ctl_complete once they all finished. */
void ctl_reconcile_key(struct ctl *c, const char *key);
/* Issues the writes of r's next phases until one has writes in flight, or
 * completes r after the last (called again by the last write of a phase). */
void ctl_advance(struct rec *r);

/* }==================================================================== */

/* {====================================================================
 * writer.c
 * ===================================================================== */

/* The lk_write_memory lookup over all->records (ud: struct controllers). */
int ctl_record_lookup(void *ud, const char *api_version, const char *kind, const char *ns,
                      const char *name, const char **owner, const char **rv_after);
/* Claims the children r's engine run decided to apply (records with no
 * content, for EXPECTATION_TTL at most): until r's applies replace them, a
 * reconcile of another CR sees those names as being written for r's CR. */
void ctl_claim_children(struct rec *r);
/* Drops the claims of r that no apply replaced (r is complete). */
void ctl_release_claims(struct rec *r);
/* Forgets the status record of key (the CR is gone). */
void ctl_record_forget_status(struct ctl *c, const char *key);
/* Whether a watch event of CR o needs no enqueue now. 1 when o is at the
 * resourceVersion our last status write of it produced (the event echoing
 * that write: what the reconcile wrote is what it saw, and any other change
 * has its own resourceVersion and event), counted in
 * schedsim_status_echoes_skipped_total; 1 also when that write is still in
 * flight and no other event is held: the event is held on the write's record
 * and write_done decides when the response brings the resourceVersion (the
 * same: skipped; another, or a failed write: enqueued). The reconcile is in
 * flight meanwhile, so holding adds no delay. 0: enqueue it. */
int ctl_status_echo(struct ctl *c, const struct k8s_object *o);
/* Frees every record. */
void ctl_records_free(struct controllers *all);

/* Each issues one write of r (counted in r->pending; its completion calls
 * ctl_advance when it is the last one of the phase). prereq: the child is a
 * PHASE_PREREQS one. */
/* GETs child ch (PHASE_PROBE): an object of that name of another owner
 * fails r as a Conflict, before anything is written. */
void ctl_probe_child(struct rec *r, const struct lk_child *ch);
void ctl_add_finalizer(struct rec *r);
void ctl_remove_finalizer(struct rec *r);
void ctl_apply_child(struct rec *r, const struct lk_child *ch, int prereq);
void ctl_delete_child(struct rec *r, const struct lk_ref *p);
/* Writes status (the whole status of the CR) when it differs from what the
 * CR or our last write of it holds. */
void ctl_write_status(struct rec *r, const json_t *status);
void ctl_post_events(struct rec *r, const json_t *events);

/* }==================================================================== */

#endif
