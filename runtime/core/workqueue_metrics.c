/* workqueue_metrics.c: one WorkQueue's controller-runtime metrics
 * (workqueue_metrics.h). Owns its copy of the controller name and the queue
 * observer it installs; borrows the registry and the queue. Depends on
 * metrics.c, workqueue.c and util.c (the default clock). */
#include <stdlib.h>
#include <string.h>
#include "util.h"
#include "workqueue_metrics.h"

#define NBUCKETS 12

struct k8s_workqueue_metrics {
  struct k8s_workqueue *q;
  char *name;
  double (*now)(void);
  struct k8s_workqueue_observer obs;
  struct k8s_workqueue_stats last;
  struct k8s_metric *depth, *adds, *retries, *queue_s, *work_s, *unfinished, *longest;
};

static double obs_now(void *data)
{
  struct k8s_workqueue_metrics *wm = data;
  return wm->now();
}

static void obs_queued(void *data, const char *key, double seconds)
{
  struct k8s_workqueue_metrics *wm = data;
  const char *lv[] = {wm->name, wm->name};
  k8s_metric_observe(wm->queue_s, lv, seconds);
}

static void obs_worked(void *data, const char *key, double seconds)
{
  struct k8s_workqueue_metrics *wm = data;
  const char *lv[] = {wm->name, wm->name};
  k8s_metric_observe(wm->work_s, lv, seconds);
}

struct k8s_workqueue_metrics *k8s_workqueue_metrics_new(struct k8s_metrics *reg,
                                                        struct k8s_workqueue *q,
                                                        const char *controller, double (*now)(void))
{
  static const char *const nc[] = {"name", "controller", NULL};
  static const char *const ncp[] = {"name", "controller", "priority", NULL};
  /* prometheus.ExponentialBuckets(10e-9, 10, 12), multiplied as Go does */
  double buckets[NBUCKETS], b = 10e-9;
  for (int i = 0; i < NBUCKETS; i++, b *= 10)
    buckets[i] = b;
  struct k8s_workqueue_metrics *wm = calloc(1, sizeof *wm);
  if (!wm) return NULL;
  wm->q = q;
  wm->now = now ? now : k8s_monotonic;
  wm->name = strdup(controller ? controller : "");
  wm->depth = k8s_metrics_gauge(reg, "workqueue_depth",
                                "Current depth of workqueue by workqueue and priority", ncp);
  wm->adds = k8s_metrics_counter(reg, "workqueue_adds_total",
                                 "Total number of adds handled by workqueue", nc);
  wm->retries = k8s_metrics_counter(reg, "workqueue_retries_total",
                                    "Total number of retries handled by workqueue", nc);
  wm->queue_s =
      k8s_metrics_histogram(reg, "workqueue_queue_duration_seconds",
                            "How long in seconds an item stays in workqueue before being requested",
                            nc, buckets, NBUCKETS);
  wm->work_s = k8s_metrics_histogram(reg, "workqueue_work_duration_seconds",
                                     "How long in seconds processing an item from workqueue takes.",
                                     nc, buckets, NBUCKETS);
  wm->unfinished = k8s_metrics_gauge(
      reg, "workqueue_unfinished_work_seconds",
      "How many seconds of work has been done that is in progress and hasn't been observed by "
      "work_duration. Large values indicate stuck threads. One can deduce the number of stuck "
      "threads by observing the rate at which this increases.",
      nc);
  wm->longest = k8s_metrics_gauge(
      reg, "workqueue_longest_running_processor_seconds",
      "How many seconds has the longest running processor for workqueue been running.", nc);
  if (!wm->name || !wm->depth || !wm->adds || !wm->retries || !wm->queue_s || !wm->work_s ||
      !wm->unfinished || !wm->longest) {
    free(wm->name);
    free(wm);
    return NULL;
  }
  const char *lv[] = {wm->name, wm->name, ""};
  k8s_metric_set(wm->depth, lv, 0);
  k8s_metric_add(wm->adds, lv, 0);
  k8s_metric_add(wm->retries, lv, 0);
  k8s_metric_set(wm->unfinished, lv, 0);
  k8s_metric_set(wm->longest, lv, 0);
  k8s_metric_touch(wm->queue_s, lv); /* client-go's NewLatencyMetric: WithLabelValues */
  k8s_metric_touch(wm->work_s, lv);
  k8s_workqueue_stats(q, &wm->last);
  wm->obs = (struct k8s_workqueue_observer){obs_now, obs_queued, obs_worked, wm};
  k8s_workqueue_set_observer(q, &wm->obs);
  return wm;
}

void k8s_workqueue_metrics_update(struct k8s_workqueue_metrics *wm, double now)
{
  if (!wm) return;
  struct k8s_workqueue_stats st;
  k8s_workqueue_stats(wm->q, &st);
  const char *lv[] = {wm->name, wm->name, ""};
  k8s_metric_set(wm->depth, lv, (double)st.depth);
  if (st.adds > wm->last.adds) k8s_metric_add(wm->adds, lv, (double)(st.adds - wm->last.adds));
  if (st.retries > wm->last.retries)
    k8s_metric_add(wm->retries, lv, (double)(st.retries - wm->last.retries));
  wm->last = st;
  double total, longest;
  k8s_workqueue_unfinished(wm->q, now, &total, &longest);
  k8s_metric_set(wm->unfinished, lv, total);
  k8s_metric_set(wm->longest, lv, longest);
}

void k8s_workqueue_metrics_free(struct k8s_workqueue_metrics *wm)
{
  if (!wm) return;
  k8s_workqueue_set_observer(wm->q, NULL);
  free(wm->name);
  free(wm);
}
