/* controller_metrics.c: controller-runtime's per-controller metric families
 * and their pre-initialised series (controller_metrics.h). Owns the struct
 * and its copy of the controller name; the metrics belong to the registry. */
#include <stdlib.h>
#include <string.h>
#include "controller_metrics.h"

/* controller-runtime's reconcile_time_seconds buckets (metrics.go) */
static const double time_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3,  0.35,
                                      0.4,   0.45, 0.5,   0.6,  0.7, 0.8,  0.9, 1.0,  1.25, 1.5,
                                      1.75,  2.0,  2.5,   3.0,  3.5, 4.0,  4.5, 5,    6,    7,
                                      8,     9,    10,    15,   20,  25,   30,  40,   50,   60};

struct k8s_controller_metrics *
k8s_controller_metrics_new(struct k8s_metrics *reg, const char *controller, double max_concurrent)
{
  static const char *const cr[] = {"controller", "result", NULL};
  static const char *const c[] = {"controller", NULL};
  struct k8s_controller_metrics *cm = calloc(1, sizeof *cm);
  if (!cm) return NULL;
  cm->controller = strdup(controller ? controller : "");
  cm->total = k8s_metrics_counter(reg, "controller_runtime_reconcile_total",
                                  "Total number of reconciliations per controller", cr);
  cm->errors = k8s_metrics_counter(reg, "controller_runtime_reconcile_errors_total",
                                   "Total number of reconciliation errors per controller", c);
  cm->terminal_errors =
      k8s_metrics_counter(reg, "controller_runtime_terminal_reconcile_errors_total",
                          "Total number of terminal reconciliation errors per controller", c);
  cm->panics = k8s_metrics_counter(reg, "controller_runtime_reconcile_panics_total",
                                   "Total number of reconciliation panics per controller", c);
  cm->time = k8s_metrics_histogram(reg, "controller_runtime_reconcile_time_seconds",
                                   "Length of time per reconciliation per controller", c,
                                   time_buckets, sizeof time_buckets / sizeof time_buckets[0]);
  cm->max_concurrent =
      k8s_metrics_gauge(reg, "controller_runtime_max_concurrent_reconciles",
                        "Maximum number of concurrent reconciles per controller", c);
  cm->active = k8s_metrics_gauge(reg, "controller_runtime_active_workers",
                                 "Number of currently used workers per controller", c);
  if (!cm->controller || !cm->total || !cm->errors || !cm->terminal_errors || !cm->panics ||
      !cm->time || !cm->max_concurrent || !cm->active) {
    k8s_controller_metrics_free(cm);
    return NULL;
  }
  static const char *const results[] = {K8S_RESULT_ERROR, K8S_RESULT_REQUEUE_AFTER,
                                        K8S_RESULT_REQUEUE, K8S_RESULT_SUCCESS};
  for (size_t i = 0; i < 4; i++)
    k8s_metric_touch(cm->total, (const char *[]){cm->controller, results[i]});
  const char *lv[] = {cm->controller};
  k8s_metric_touch(cm->errors, lv);
  k8s_metric_touch(cm->terminal_errors, lv);
  k8s_metric_touch(cm->panics, lv);
  k8s_metric_touch(cm->time, lv);
  k8s_metric_set(cm->max_concurrent, lv, max_concurrent);
  k8s_metric_set(cm->active, lv, 0);
  return cm;
}

void k8s_controller_metrics_reconciled(struct k8s_controller_metrics *cm, const char *result,
                                       int terminal, double seconds)
{
  if (!cm || !result) return;
  const char *lv[] = {cm->controller};
  k8s_metric_inc(cm->total, (const char *[]){cm->controller, result});
  if (!strcmp(result, K8S_RESULT_ERROR)) {
    k8s_metric_inc(cm->errors, lv);
    if (terminal) k8s_metric_inc(cm->terminal_errors, lv);
  }
  k8s_metric_observe(cm->time, lv, seconds);
}

void k8s_controller_metrics_panicked(struct k8s_controller_metrics *cm)
{
  if (cm) k8s_metric_inc(cm->panics, (const char *[]){cm->controller});
}

void k8s_controller_metrics_set_active(struct k8s_controller_metrics *cm, double active)
{
  if (cm) k8s_metric_set(cm->active, (const char *[]){cm->controller}, active);
}

void k8s_controller_metrics_free(struct k8s_controller_metrics *cm)
{
  if (!cm) return;
  free(cm->controller);
  free(cm);
}
