/* test-controller-metrics.c: the controller-runtime metric sets
 * (runtime/core/workqueue_metrics.c, controller_metrics.c) and the queue
 * timings under them (runtime/core/workqueue.c observer), with a fake clock:
 * queue and work durations, unfinished work and the longest processor,
 * series pre-initialised at 0, errors/terminal errors/panics, active workers,
 * and a collector run at render time. */
#include <math.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "core/controller_metrics.h"
#include "core/process_metrics.h"
#include "core/workqueue_metrics.h"
#include "testhelp.h"

static double fake_now;
static double clock_fn(void)
{
  return fake_now;
}

static int has(const char *text, const char *line)
{
  return text && strstr(text, line) != NULL;
}

static void test_workqueue_metrics(void)
{
  struct k8s_metrics *m = k8s_metrics_new();
  struct k8s_workqueue *q = k8s_workqueue_new("simulatordeployment", NULL);
  fake_now = 100;
  struct k8s_workqueue_metrics *wm =
      k8s_workqueue_metrics_new(m, q, "simulatordeployment", clock_fn);
  test_cond("workqueue metrics register", wm != NULL);
  char *t = k8s_metrics_render(m, NULL);
  const char *lbl = "{name=\"simulatordeployment\",controller=\"simulatordeployment\"}";
  char want[256];
  snprintf(want, sizeof want, "workqueue_adds_total%s 0\n", lbl);
  test_cond("adds_total pre-initialised at 0", has(t, want));
  snprintf(want, sizeof want, "workqueue_unfinished_work_seconds%s 0\n", lbl);
  test_cond("unfinished_work_seconds at 0", has(t, want));
  test_cond("depth with name, controller and priority",
            has(t,
                "workqueue_depth{name=\"simulatordeployment\",controller=\"simulatordeployment\","
                "priority=\"\"} 0\n"));
  test_cond("queue duration buckets as Go computes them (9.999999999999999e-06)",
            has(t, "le=\"9.999999999999999e-06\"") && has(t, "le=\"1e-08\"") &&
                has(t, "le=\"1000\""));
  free(t);

  k8s_workqueue_add(q, "ns/a", K8S_PRIORITY_HIGH);
  fake_now = 102; /* a waited 2 s */
  const char *k = k8s_workqueue_get(q);
  fake_now = 105;
  k8s_workqueue_metrics_update(wm, fake_now);
  t = k8s_metrics_render(m, NULL);
  snprintf(want, sizeof want, "workqueue_queue_duration_seconds_sum%s 2\n", lbl);
  test_cond("queue duration: 2 s from add to get", has(t, want));
  snprintf(want, sizeof want, "workqueue_unfinished_work_seconds%s 3\n", lbl);
  test_cond("unfinished work: 3 s running", has(t, want));
  snprintf(want, sizeof want, "workqueue_longest_running_processor_seconds%s 3\n", lbl);
  test_cond("longest running processor: 3 s", has(t, want));
  snprintf(want, sizeof want, "workqueue_adds_total%s 1\n", lbl);
  test_cond("adds_total 1", has(t, want));
  free(t);

  fake_now = 105.5;
  k8s_workqueue_done(q, k);
  k8s_workqueue_add_after(q, "ns/b", 1, fake_now);
  k8s_workqueue_metrics_update(wm, fake_now);
  t = k8s_metrics_render(m, NULL);
  snprintf(want, sizeof want, "workqueue_work_duration_seconds_sum%s 3.5\n", lbl);
  test_cond("work duration: 3.5 s from get to done", has(t, want));
  snprintf(want, sizeof want,
           "workqueue_work_duration_seconds_bucket{name=\"simulatordeployment\","
           "controller=\"simulatordeployment\",le=\"10\"} 1\n");
  test_cond("work duration in the 10 s bucket", has(t, want));
  snprintf(want, sizeof want, "workqueue_unfinished_work_seconds%s 0\n", lbl);
  test_cond("nothing unfinished after done", has(t, want));
  snprintf(want, sizeof want, "workqueue_retries_total%s 1\n", lbl);
  test_cond("retries_total 1 after add_after", has(t, want));
  free(t);

  k8s_workqueue_metrics_free(wm);
  k8s_workqueue_free(q);
  k8s_metrics_free(m);

  /* a registry where workqueue_depth has the old {name} labels */
  m = k8s_metrics_new();
  q = k8s_workqueue_new("x", NULL);
  k8s_metrics_gauge(m, "workqueue_depth", "d", (const char *[]){"name", NULL});
  test_cond("a family registered with other labels is refused",
            !k8s_workqueue_metrics_new(m, q, "x", clock_fn));
  k8s_workqueue_free(q);
  k8s_metrics_free(m);
}

static void test_controller_metrics(void)
{
  struct k8s_metrics *m = k8s_metrics_new();
  struct k8s_controller_metrics *cm = k8s_controller_metrics_new(m, "schedulerinstall", 4);
  test_cond("controller metrics register", cm != NULL);
  char *t = k8s_metrics_render(m, NULL);
  static const char *const results[] = {"success", "error", "requeue", "requeue_after"};
  for (size_t i = 0; i < 4; i++) {
    char want[160];
    snprintf(
        want, sizeof want,
        "controller_runtime_reconcile_total{controller=\"schedulerinstall\",result=\"%s\"} 0\n",
        results[i]);
    test_cond("result series pre-initialised at 0", has(t, want));
  }
  test_cond(
      "errors, terminal errors, panics at 0",
      has(t, "controller_runtime_reconcile_errors_total{controller=\"schedulerinstall\"} 0\n") &&
          has(t, "controller_runtime_terminal_reconcile_errors_total{controller="
                 "\"schedulerinstall\"} 0\n") &&
          has(t, "controller_runtime_reconcile_panics_total{controller=\"schedulerinstall\"} 0\n"));
  test_cond(
      "max_concurrent_reconciles and active_workers",
      has(t, "controller_runtime_max_concurrent_reconciles{controller=\"schedulerinstall\"} 4\n") &&
          has(t, "controller_runtime_active_workers{controller=\"schedulerinstall\"} 0\n"));
  test_cond(
      "empty reconcile_time histogram exposed",
      has(t,
          "controller_runtime_reconcile_time_seconds_count{controller=\"schedulerinstall\"} 0\n"));
  free(t);

  k8s_controller_metrics_reconciled(cm, K8S_RESULT_SUCCESS, 0, 0.02);
  k8s_controller_metrics_reconciled(cm, K8S_RESULT_ERROR, 0, 0.5);
  k8s_controller_metrics_reconciled(cm, K8S_RESULT_ERROR, 1, 0.5);
  k8s_controller_metrics_panicked(cm);
  k8s_controller_metrics_set_active(cm, 2);
  const char *c[] = {"schedulerinstall"};
  test_cond("success counted",
            k8s_metric_value(cm->total, (const char *[]){"schedulerinstall", "success"}) == 1);
  test_cond("two errors",
            k8s_metric_value(cm->errors, c) == 2 &&
                k8s_metric_value(cm->total, (const char *[]){"schedulerinstall", "error"}) == 2);
  test_cond("one terminal error", k8s_metric_value(cm->terminal_errors, c) == 1);
  test_cond("one panic", k8s_metric_value(cm->panics, c) == 1);
  test_cond("three observations", k8s_metric_value(cm->time, c) == 3);
  test_cond("active workers 2", k8s_metric_value(cm->active, c) == 2);
  k8s_controller_metrics_free(cm);
  k8s_metrics_free(m);
}

static void collect_fn(struct k8s_metrics *m, void *data)
{
  int *calls = data;
  (*calls)++;
  k8s_metric_set(k8s_metrics_gauge(m, "collected", "c", NULL), NULL, *calls);
}

static void test_collector(void)
{
  struct k8s_metrics *m = k8s_metrics_new();
  int calls = 0;
  test_cond("collector added", k8s_metrics_add_collector(m, collect_fn, &calls) == 0);
  char *t = k8s_metrics_render(m, NULL);
  test_cond("collector ran before the render", calls == 1 && has(t, "collected 1\n"));
  free(t);
  t = k8s_metrics_render(m, NULL);
  test_cond("and on every render", calls == 2 && has(t, "collected 2\n"));
  free(t);
  k8s_metrics_free(m);
}

static void test_process(void)
{
  struct k8s_process_stats st = {0};
  test_cond("reads /proc/self", k8s_process_stats_read(&st) == 0);
  /* no upper bound on vsize: AddressSanitizer reserves terabytes of shadow */
  test_cond("rss and vsize plausible (rss 1 MiB .. 64 GiB, rss <= vsize)",
            st.rss > 1 << 20 && st.rss <= st.vsize && st.rss < 64.0 * (1 << 30));
  test_cond("open fds: stdin/out/err at least", st.open_fds >= 3 && st.open_fds < st.max_fds);
  test_cond("start time in the last hour",
            st.start_time > (double)time(NULL) - 3600 && st.start_time <= (double)time(NULL) + 1);
  int fd = dup(1);
  struct k8s_process_stats st2 = {0};
  k8s_process_stats_read(&st2);
  test_cond("a new descriptor is counted", st2.open_fds == st.open_fds + 1);
  close(fd);
  struct k8s_metrics *m = k8s_metrics_new();
  test_cond("process metrics register", k8s_process_metrics_register(m) == 0);
  char *t = k8s_metrics_render(m, NULL);
  test_cond("families rendered",
            has(t, "# TYPE process_cpu_seconds_total counter\n") &&
                has(t, "\nprocess_resident_memory_bytes ") && has(t, "\nprocess_open_fds ") &&
                has(t, "\nprocess_max_fds ") && has(t, "\nprocess_start_time_seconds ") &&
                has(t, "\nprocess_virtual_memory_bytes ") &&
                has(t, "\nprocess_virtual_memory_max_bytes "));
  test_cond("rss not 0 after a scrape", t && !has(t, "\nprocess_resident_memory_bytes 0\n"));
  free(t);
  k8s_metrics_free(m);
}

int main(void)
{
  test_process();
  test_workqueue_metrics();
  test_controller_metrics();
  test_collector();
  test_report();
  return 0;
}
