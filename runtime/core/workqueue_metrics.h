/* workqueue_metrics.h: a WorkQueue's metrics as controller-runtime registers
 * them (sigs.k8s.io/controller-runtime pkg/metrics/workqueue.go, its
 * workqueue.MetricsProvider for client-go's queue), so stock dashboards and
 * alerts find them:
 *
 *   workqueue_depth{name,controller,priority}                gauge (priority "")
 *   workqueue_adds_total{name,controller}                    counter
 *   workqueue_retries_total{name,controller}                 counter
 *   workqueue_queue_duration_seconds{name,controller}        histogram
 *   workqueue_work_duration_seconds{name,controller}         histogram
 *   workqueue_unfinished_work_seconds{name,controller}       gauge
 *   workqueue_longest_running_processor_seconds{name,controller} gauge
 *
 * `name` and `controller` are both the controller's name, as
 * controller-runtime sets them. Histogram buckets are controller-runtime's
 * ExponentialBuckets(10e-9, 10, 12): 1e-08 s .. 1000 s, computed as Go
 * computes them (so `le` prints the same text, 9.999999999999999e-06
 * included).
 *
 * Use (on the thread that owns the queue, the event loop):
 *   wm = k8s_workqueue_metrics_new(registry, q, "simulatordeployment", now_fn);
 *   ... after adds, get/done, and every 0.5 s (client-go's
 *   updateUnfinishedWork period): k8s_workqueue_metrics_update(wm, now);
 *   k8s_workqueue_metrics_free(wm);   before k8s_workqueue_free(q)
 *
 * Ownership: the caller owns the returned object; it borrows the registry
 * and the queue (both must outlive it) and sets itself as the queue's
 * observer until freed. Series stay in the registry after free. */
#ifndef K8S_CORE_WORKQUEUE_METRICS_H
#define K8S_CORE_WORKQUEUE_METRICS_H

#include "metrics.h"
#include "workqueue.h"

struct k8s_workqueue_metrics;

/* Registers the seven families in reg (or reuses them when registered with
 * the same labels), creates the queue's series at 0 (as client-go does when a
 * queue is made), and observes q's timings with `now` (monotonic seconds,
 * the clock of the queue's `now` arguments; NULL: k8s_monotonic). Returns
 * NULL on malloc failure, or when a family of that name exists with other
 * labels or another type (a caller that registered its own workqueue_depth). */
struct k8s_workqueue_metrics *k8s_workqueue_metrics_new(struct k8s_metrics *reg,
                                                        struct k8s_workqueue *q,
                                                        const char *controller,
                                                        double (*now)(void));

/* Brings depth, adds, retries (from k8s_workqueue_stats, counted since the
 * last update), unfinished work and the longest running processor (from
 * k8s_workqueue_unfinished at `now`) up to date. */
void k8s_workqueue_metrics_update(struct k8s_workqueue_metrics *wm, double now);

/* Unsets the queue's observer and frees wm. NULL is a no-op. */
void k8s_workqueue_metrics_free(struct k8s_workqueue_metrics *wm);

#endif
