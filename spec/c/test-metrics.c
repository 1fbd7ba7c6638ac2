/* test-metrics.c: the Prometheus registry and its text exposition
 * (runtime/core/metrics.c): counters, gauges and histograms with label sets,
 * sorting, escaping, re-registration rules, and updates from a second thread
 * while rendering. */
#include <math.h>
#include <pthread.h>
#include <string.h>
#include "core/metrics.h"
#include "testhelp.h"

static void test_render(void)
{
  struct k8s_metrics *m = k8s_metrics_new();
  const char *ctl_result[] = {"controller", "result", NULL};
  struct k8s_metric *total =
      k8s_metrics_counter(m, "controller_runtime_reconcile_total",
                          "Total number of reconciliations per controller", ctl_result);
  struct k8s_metric *depth = k8s_metrics_gauge(m, "workqueue_depth", "Current depth of workqueue",
                                               (const char *[]){"name", NULL});
  double b[] = {0.1, 1};
  struct k8s_metric *h = k8s_metrics_histogram(m, "controller_runtime_reconcile_time_seconds",
                                               "Length of time per reconciliation per controller",
                                               (const char *[]){"controller", NULL}, b, 2);
  struct k8s_metric *up = k8s_metrics_gauge(m, "schedsim_up", "Line 1\nwith \\ backslash", NULL);
  test_cond("register", total && depth && h && up);
  test_cond("same name and labels returns the same metric",
            k8s_metrics_counter(m, "controller_runtime_reconcile_total", "x", ctl_result) == total);
  test_cond("same name, other type fails",
            !k8s_metrics_counter(m, "workqueue_depth", "", (const char *[]){"name", NULL}));
  test_cond("same name, other labels fails", !k8s_metrics_gauge(m, "workqueue_depth", "", NULL));

  k8s_metric_inc(total, (const char *[]){"simulatordeployment", "success"});
  k8s_metric_inc(total, (const char *[]){"simulatordeployment", "success"});
  k8s_metric_add(total, (const char *[]){"simulatordeployment", "error"}, 1);
  k8s_metric_add(total, (const char *[]){"simulatordeployment", "error"}, -5); /* ignored */
  k8s_metric_inc(total, (const char *[]){"schedulerinstall", "requeue_after"});
  k8s_metric_set(depth, (const char *[]){"simulatordeployment"}, 3);
  k8s_metric_set(depth, (const char *[]){"a\"b\\c\nd"}, -1.5);
  k8s_metric_observe(h, (const char *[]){"simulatordeployment"}, 0.05);
  k8s_metric_observe(h, (const char *[]){"simulatordeployment"}, 0.5);
  k8s_metric_observe(h, (const char *[]){"simulatordeployment"}, 5);
  k8s_metric_set(up, NULL, 1);
  test_cond("value of a series",
            k8s_metric_value(total, (const char *[]){"simulatordeployment", "success"}) == 2);
  test_cond("histogram value is the count",
            k8s_metric_value(h, (const char *[]){"simulatordeployment"}) == 3);

  size_t len;
  char *text = k8s_metrics_render(m, &len);
  const char *expect =
      "# HELP controller_runtime_reconcile_time_seconds Length of time per reconciliation per "
      "controller\n"
      "# TYPE controller_runtime_reconcile_time_seconds histogram\n"
      "controller_runtime_reconcile_time_seconds_bucket{controller=\"simulatordeployment\",le=\"0."
      "1\"} 1\n"
      "controller_runtime_reconcile_time_seconds_bucket{controller=\"simulatordeployment\",le="
      "\"1\"} 2\n"
      "controller_runtime_reconcile_time_seconds_bucket{controller=\"simulatordeployment\",le=\"+"
      "Inf\"} 3\n"
      "controller_runtime_reconcile_time_seconds_sum{controller=\"simulatordeployment\"} 5.55\n"
      "controller_runtime_reconcile_time_seconds_count{controller=\"simulatordeployment\"} 3\n"
      "# HELP controller_runtime_reconcile_total Total number of reconciliations per controller\n"
      "# TYPE controller_runtime_reconcile_total counter\n"
      "controller_runtime_reconcile_total{controller=\"schedulerinstall\",result=\"requeue_after\"}"
      " 1\n"
      "controller_runtime_reconcile_total{controller=\"simulatordeployment\",result=\"error\"} 1\n"
      "controller_runtime_reconcile_total{controller=\"simulatordeployment\",result=\"success\"} "
      "2\n"
      "# HELP schedsim_up Line 1\\nwith \\\\ backslash\n"
      "# TYPE schedsim_up gauge\n"
      "schedsim_up 1\n"
      "# HELP workqueue_depth Current depth of workqueue\n"
      "# TYPE workqueue_depth gauge\n"
      "workqueue_depth{name=\"a\\\"b\\\\c\\nd\"} -1.5\n"
      "workqueue_depth{name=\"simulatordeployment\"} 3\n";
  test_cond("exposition text", text && strcmp(text, expect) == 0 && len == strlen(expect));
  if (text && strcmp(text, expect) != 0) printf("%s", text);
  free(text);

  k8s_metric_remove(depth, (const char *[]){"a\"b\\c\nd"});
  text = k8s_metrics_render(m, NULL);
  test_cond("remove a series", text && !strstr(text, "a\\\"b"));
  free(text);
  k8s_metrics_free(m);
}

static void *hammer(void *arg)
{
  struct k8s_metric *c = arg;
  for (int i = 0; i < 100000; i++)
    k8s_metric_inc(c, (const char *[]){i % 2 ? "a" : "b"});
  return NULL;
}

static void test_threads(void)
{
  struct k8s_metrics *m = k8s_metrics_new();
  struct k8s_metric *c = k8s_metrics_counter(m, "c_total", "", (const char *[]){"k", NULL});
  pthread_t t;
  pthread_create(&t, NULL, hammer, c);
  for (int i = 0; i < 200; i++)
    free(k8s_metrics_render(m, NULL));
  pthread_join(t, NULL);
  test_cond("concurrent updates and renders",
            k8s_metric_value(c, (const char *[]){"a"}) == 50000 &&
                k8s_metric_value(c, (const char *[]){"b"}) == 50000);
  k8s_metrics_free(m);
}

/* Expected texts are what Go's strconv.FormatFloat(v, 'g', -1, 64) prints
 * (prometheus/common expfmt writeFloat), checked with Go 1.26. */
static void test_go_numbers(void)
{
  static const struct {
    double v;
    const char *go;
  } cases[] = {
      {0, "0"},
      {-0.0, "0"}, /* writeFloat: f == 0 */
      {1, "1"},
      {-1, "-1"},
      {10, "10"},
      {100, "100"},
      {0.005, "0.005"},
      {0.025, "0.025"},
      {2.5, "2.5"},
      {123456, "123456"},
      {999999, "999999"},
      {1000000, "1e+06"},
      {1048576, "1.048576e+06"},
      {1234567, "1.234567e+06"},
      {1.71e9, "1.71e+09"},
      {1712345678.91, "1.71234567891e+09"},
      {0.0001, "0.0001"},
      {1e-05, "1e-05"},
      {1.5e-05, "1.5e-05"},
      {-1.5, "-1.5"},
      {5.55, "5.55"},
      {0.1 + 0.2, "0.30000000000000004"},
      {1e21, "1e+21"},
      {1e100, "1e+100"},
      {123456789012345678.0, "1.2345678901234568e+17"},
      {4.9406564584124654e-324, "5e-324"},
      {1.7976931348623157e308, "1.7976931348623157e+308"},
      {65536, "65536"},
      {33554432, "3.3554432e+07"},
      {0.000123, "0.000123"},
      {INFINITY, "+Inf"},
      {-INFINITY, "-Inf"},
      {NAN, "NaN"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    char buf[64], what[128];
    size_t n = k8s_metrics_format_value(cases[i].v, buf, sizeof buf);
    snprintf(what, sizeof what, "number %s as Go writes it", cases[i].go);
    test_cond_quiet(what, strcmp(buf, cases[i].go) == 0 && n == strlen(cases[i].go));
    if (strcmp(buf, cases[i].go)) printf("  got %s\n", buf);
  }
  char small[4];
  test_cond("truncates like snprintf",
            k8s_metrics_format_value(1048576, small, sizeof small) == 12 && !strcmp(small, "1.0"));

  /* in the exposition: le bounds, counters of 100, big counts */
  struct k8s_metrics *m = k8s_metrics_new();
  double b[] = {1, 10, 1000000};
  struct k8s_metric *h = k8s_metrics_histogram(m, "h", "h", NULL, b, 3);
  struct k8s_metric *c = k8s_metrics_counter(m, "c_total", "c", NULL);
  for (int i = 0; i < 100; i++)
    k8s_metric_inc(c, NULL);
  k8s_metric_observe(h, NULL, 5);
  char *text = k8s_metrics_render(m, NULL);
  test_cond("le=\"10\", not 1e+01", text && strstr(text, "h_bucket{le=\"10\"} 1\n"));
  test_cond("le=\"1e+06\" as Go", text && strstr(text, "h_bucket{le=\"1e+06\"} 1\n"));
  test_cond("a counter of 100 prints 100", text && strstr(text, "c_total 100\n"));
  free(text);
  k8s_metrics_free(m);
}

int main(void)
{
  test_go_numbers();
  test_render();
  test_threads();
  test_report();
  return 0;
}
