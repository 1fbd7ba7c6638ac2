/* manager.h: the Manager (controller-runtime's manager.Manager) owns the
 * shared dependencies of the operator and runs Runnables in order.
 *
 * It owns: the loop, the kubeconfig, the HTTP and REST clients, the
 * EventRecorder, the metrics
 * registry's endpoints server, discovery, the Cache (informers) and, with
 * --leader-elect, the leader elector.
 *
 * Start order (k8s_manager_run):
 *   1. endpoints server (/healthz answers at once, /readyz 503 until step 5);
 *   2. discovery: first refresh (retried with backoff until it succeeds);
 *   3. every Runnable's setup(): register informers and handlers in the Cache;
 *   4. leader election starts campaigning (if enabled); caches sync (bounded by
 *      cache_sync_timeout: failure exits 1);
 *   5. ready: /readyz is 200 when caches are synced and every ready gate
 *      (k8s_manager_set_ready) is true;
 *   6. every Runnable's start(): at once for those with needs_leader false,
 *      on started_leading for the others (controllers).
 * Stop order (SIGTERM/SIGINT, or k8s_manager_stop), reversed:
 *   1. /readyz 503; every started Runnable's stop() (stop intake, in reverse
 *      order of start) ;
 *   2. wait until every Runnable's idle() is true (in-flight writes finished)
 *      or shutdown_timeout passed;
 *   3. informers stop; the Lease is released (holderIdentity cleared), bounded
 *      by what is left of shutdown_timeout (at least 1 s);
 *   4. the loop stops; k8s_manager_run returns 0.
 * Losing leadership (renew deadline passed) stops everything the same way and
 * makes k8s_manager_run return 1, as controller-runtime exits.
 *
 * Ownership: the caller owns the manager (k8s_manager_new / k8s_manager_free)
 * and everything reachable from its accessors is borrowed from it. The
 * manager keeps a copy of each k8s_runnable; its data is the Runnable's own
 * until k8s_manager_free hands it to the free hook (data without a free hook
 * must outlive the manager). */
#ifndef SCHEDSIM_KUBE_MANAGER_H
#define SCHEDSIM_KUBE_MANAGER_H

#include <stdbool.h>
#include <stddef.h>

#include "kube/discovery.h"
#include "kube/events.h"
#include "kube/http.h"
#include "kube/informer.h"
#include "kube/kubeconfig.h"
#include "kube/leaderelection.h"
#include "kube/loop.h"
#include "kube/restclient.h"
#include "kube/server.h"

struct k8s_manager;

struct k8s_manager_options {
  const char *kubeconfig; /* --kubeconfig (NULL: KUBECONFIG, in-cluster, ~/.kube/config) */
  const char *context;    /* --context */
  const char *namespace;  /* --namespace: cache only this namespace; NULL: all */
  bool leader_elect;      /* --leader-elect */
  const char *leader_election_namespace; /* NULL: in-cluster namespace, else the
                                            kubeconfig context's, else "default" */
  const char *leader_election_id;        /* Lease name; NULL: "schedsim-operator" */
  const char *metrics_addr;              /* --metrics-bind-address; NULL: ":8080" */
  const char *health_addr;               /* --health-probe-bind-address; NULL: ":8081" */
  /* --metrics-secure: /metrics over HTTPS, every scrape authenticated and
   * authorized by the API server (kube/authfilter.h), as a kubebuilder
   * scaffold serves it. The certificate is cert_path/cert_name and
   * cert_path/cert_key (--metrics-cert-path, -cert-name "tls.crt",
   * -cert-key "tls.key"); without cert_path a self-signed one is made at
   * start (controller-runtime does the same). */
  bool metrics_secure;
  const char *metrics_cert_path, *metrics_cert_name, *metrics_cert_key;
  double shutdown_timeout;    /* --shutdown-timeout; 0: 10 s */
  double cache_sync_timeout;  /* 0: 120 s */
  double discovery_interval;  /* 0: 30 s */
  double dead_stream_timeout; /* reflectors; 0: 150 s (reflector.h) */
};

/* A unit of work the manager starts and stops (a controller, the script
 * loader, ...). Every function may be NULL. All run on the loop. */
struct k8s_runnable {
  const char *name;  /* for logs */
  bool needs_leader; /* start only while leading (controllers: true) */
  /* after discovery is ready, before the caches sync: create informers here
   * (k8s_cache_get_informer) and add handlers. Non-zero fails the run (exit 1). */
  int (*setup)(struct k8s_manager *m, void *data);
  /* caches synced (and leading, if needs_leader): start workers. Non-zero fails. */
  int (*start)(struct k8s_manager *m, void *data);
  /* stop intake: take no new work; let writes in flight finish. */
  void (*stop)(struct k8s_manager *m, void *data);
  /* true once no work is in flight (checked every 50 ms during shutdown). */
  bool (*idle)(void *data);
  /* frees data: called once by k8s_manager_free (after the run, before the
   * Cache, client and loop go), in reverse order of adding. */
  void (*free)(void *data);
  void *data;
};

/* Loads the kubeconfig and creates loop, clients, discovery, cache (nothing is
 * started yet). Returns 0; or 2 with a message in err for a usage/config error
 * (e.g. no kubeconfig), 1 for other failures. */
int k8s_manager_new(const struct k8s_manager_options *opts, struct k8s_manager **out, char *err,
                    size_t errlen);
void k8s_manager_free(struct k8s_manager *m);

/* Adds a runnable (before k8s_manager_run, or during: then it is set up and
 * started at once if the manager already got that far). Returns 0 or -ENOMEM. */
int k8s_manager_add_runnable(struct k8s_manager *m, const struct k8s_runnable *r);
/* Named readiness gates (e.g. "scripts"): /readyz is 200 only when the caches
 * synced and every gate is true. A gate not set yet counts as not ready once
 * declared with ready=false. */
void k8s_manager_set_ready(struct k8s_manager *m, const char *gate, bool ready);

/* Runs the start sequence and the loop until shutdown. Returns the exit code:
 * 0 after a clean shutdown, 1 on failure. */
int k8s_manager_run(struct k8s_manager *m);
/* Starts the stop sequence (loop thread only; signals do this too). */
void k8s_manager_stop(struct k8s_manager *m, int exit_code);

/* ---- the controllers' hook -------------------------------------------------
 * `schedsim-operator run` (runtime/cmd/cmd_run.c) builds the Manager, then
 * calls k8s_controllers_add once, before k8s_manager_run. The function is
 * defined by runtime/controller/controller.c (declared here so the manager
 * and the controllers stay separate layers): it loads the script set and
 * adds one Runnable per controller (needs_leader true, with a free hook)
 * with k8s_manager_add_runnable, plus a ready gate "scripts". Returns 0, 2
 * for a usage/input error (message in err, naming the file or flag), 1 for
 * other failures. */
struct k8s_controllers_options {
  const char *scripts_dir;       /* --scripts DIR, or NULL: bundled scripts */
  const char *scripts_configmap; /* --scripts-configmap NAMESPACE/NAME, or NULL */
  size_t lua_memory_limit;       /* --lua-memory-limit, bytes */
  long lua_instruction_budget;   /* --lua-instruction-budget, per reconcile */
  double sync_period;            /* --sync-period, seconds between full resyncs */
  int max_concurrent;            /* --max-concurrent-reconciles: keys with writes in flight */
  double child_batch;            /* --child-events-batch-period, seconds (0: each event at once) */
};
int k8s_controllers_add(struct k8s_manager *m, const struct k8s_controllers_options *o, char *err,
                        size_t errlen);

bool k8s_manager_is_leader(const struct k8s_manager *m);
bool k8s_manager_stopping(const struct k8s_manager *m);

struct k8s_loop *k8s_manager_loop(struct k8s_manager *m);
struct k8s_config *k8s_manager_config(struct k8s_manager *m);
struct k8s_client *k8s_manager_client(struct k8s_manager *m);
/* The EventRecorder (kube/events.h): Events on CRs and the scripts ConfigMap. */
struct k8s_recorder *k8s_manager_recorder(struct k8s_manager *m);
struct k8s_discovery *k8s_manager_discovery(struct k8s_manager *m);
struct k8s_cache *k8s_manager_cache(struct k8s_manager *m);
struct k8s_metrics *k8s_manager_metrics(struct k8s_manager *m);
/* The namespace from --namespace, or NULL (all). */
const char *k8s_manager_namespace(const struct k8s_manager *m);

#endif
