/* controller_metrics.h: a controller's metrics as controller-runtime
 * registers them (sigs.k8s.io/controller-runtime
 * pkg/internal/controller/metrics/metrics.go) and pre-initialises them when a
 * controller starts (pkg/internal/controller/controller.go initMetrics), so
 * dashboards and alerts see every series at 0 before the first reconcile:
 *
 *   controller_runtime_reconcile_total{controller,result}        counter,
 *       result in success, error, requeue, requeue_after (all four at 0)
 *   controller_runtime_reconcile_errors_total{controller}          counter
 *   controller_runtime_terminal_reconcile_errors_total{controller} counter
 *   controller_runtime_reconcile_panics_total{controller}          counter
 *   controller_runtime_reconcile_time_seconds{controller}          histogram,
 *       controller-runtime's buckets 0.005 .. 60 s
 *   controller_runtime_max_concurrent_reconciles{controller}       gauge
 *   controller_runtime_active_workers{controller}                  gauge
 *
 * Ownership: the caller owns the returned struct (k8s_controller_metrics_free);
 * the metric pointers in it are borrowed from the registry, which must
 * outlive it. Updates are thread-safe (the registry's lock). */
#ifndef K8S_CORE_CONTROLLER_METRICS_H
#define K8S_CORE_CONTROLLER_METRICS_H

#include "metrics.h"

/* controller-runtime's result label values (controller.go labelError, ...). */
#define K8S_RESULT_SUCCESS "success"
#define K8S_RESULT_ERROR "error"
#define K8S_RESULT_REQUEUE "requeue"
#define K8S_RESULT_REQUEUE_AFTER "requeue_after"

struct k8s_controller_metrics {
  char *controller; /* owned copy of the controller name (the label value) */
  struct k8s_metric *total, *errors, *terminal_errors, *panics, *time, *max_concurrent, *active;
};

/* Registers the families (or reuses them when registered with the same labels)
 * and creates the controller's series: the four result values, errors,
 * terminal errors and panics at 0, an empty time histogram, active workers 0
 * and max_concurrent_reconciles = max_concurrent (controller-runtime's
 * MaxConcurrentReconciles; ours: how many reconciles may have writes in flight
 * at once). NULL on malloc failure or when a family exists with other labels. */
struct k8s_controller_metrics *
k8s_controller_metrics_new(struct k8s_metrics *reg, const char *controller, double max_concurrent);

/* One finished reconcile: reconcile_total{result} += 1; with result "error"
 * also reconcile_errors_total, and with terminal != 0 also
 * terminal_reconcile_errors_total (controller-runtime counts a terminal error
 * as an error too); reconcile_time_seconds observes seconds. */
void k8s_controller_metrics_reconciled(struct k8s_controller_metrics *cm, const char *result,
                                       int terminal, double seconds);

/* A reconcile that panicked (ours: the script raised an error outside the
 * reconcile contract, or the engine failed); counted besides the error. */
void k8s_controller_metrics_panicked(struct k8s_controller_metrics *cm);

/* controller_runtime_active_workers: reconciles running now (ours: keys
 * processing, i.e. handed out by the queue and not done). */
void k8s_controller_metrics_set_active(struct k8s_controller_metrics *cm, double active);

/* Frees cm (the series stay in the registry). NULL is a no-op. */
void k8s_controller_metrics_free(struct k8s_controller_metrics *cm);

#endif
