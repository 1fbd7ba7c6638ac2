/* metrics.h: a small Prometheus registry (counters, gauges, histograms with
 * label sets) and its text exposition format (version 0.0.4).
 *
 * Thread safety: one mutex per registry guards every metric of it; updates
 * come from the event loop, rendering from libmicrohttpd's thread.
 *
 * Ownership: the registry owns its metrics (freed by k8s_metrics_free; metric
 * pointers die with it). Names, help texts, label names and label values are
 * copied. k8s_metrics_render returns malloc'd text the caller frees.
 *
 * Label values are passed as an array with one string per label name given at
 * registration (NULL array when the metric has no labels). Names are chosen
 * by callers (controller-runtime's names, doc/development.md); they are not
 * validated beyond being non-empty. */
#ifndef K8S_CORE_METRICS_H
#define K8S_CORE_METRICS_H

#include <stddef.h>

enum k8s_metric_type { K8S_METRIC_COUNTER, K8S_METRIC_GAUGE, K8S_METRIC_HISTOGRAM };

/* Prometheus' default buckets (0.005 ... 10 seconds), 11 values. */
extern const double k8s_metrics_default_buckets[];
#define K8S_METRICS_DEFAULT_NBUCKETS 11

/* New empty registry; NULL on malloc failure. */
struct k8s_metrics *k8s_metrics_new(void);

/* Frees the registry and every metric in it. NULL is a no-op. */
void k8s_metrics_free(struct k8s_metrics *m);

/* Registers (or returns the already registered) metric `name`.
 * label_names is a NULL-terminated array (NULL = no labels). Registering an
 * existing name with another type or other labels returns NULL. */
struct k8s_metric *k8s_metrics_counter(struct k8s_metrics *m, const char *name, const char *help,
                                       const char *const *label_names);
struct k8s_metric *k8s_metrics_gauge(struct k8s_metrics *m, const char *name, const char *help,
                                     const char *const *label_names);
/* buckets: ascending upper bounds (the +Inf bucket is implicit); NULL uses
 * k8s_metrics_default_buckets. */
struct k8s_metric *k8s_metrics_histogram(struct k8s_metrics *m, const char *name, const char *help,
                                         const char *const *label_names, const double *buckets,
                                         size_t nbuckets);

/* Counter or gauge: adds delta (counters ignore negative deltas). */
void k8s_metric_add(struct k8s_metric *mt, const char *const *label_values, double delta);
/* Counter or gauge: adds 1. */
void k8s_metric_inc(struct k8s_metric *mt, const char *const *label_values);
/* Gauge: sets the value. */
void k8s_metric_set(struct k8s_metric *mt, const char *const *label_values, double value);
/* Histogram: records one observation. */
void k8s_metric_observe(struct k8s_metric *mt, const char *const *label_values, double value);
/* Creates the series of label_values (value 0, or an empty histogram) if it
 * does not exist, so it is exposed before its first update: the Go client's
 * WithLabelValues(...), which controller-runtime and client-go call to
 * pre-initialise series. */
void k8s_metric_touch(struct k8s_metric *mt, const char *const *label_values);
/* A collector refreshes metrics right before each render (the Go client's
 * Collector.Collect, e.g. the process collector reading /proc at scrape
 * time). It runs on the rendering thread (libmicrohttpd's for /metrics), with
 * the registry unlocked, so it may update metrics of m; it must touch nothing
 * that another thread owns without its own lock (never the event loop's
 * state). data is borrowed and must outlive the registry. Returns 0, or -1 on
 * malloc failure. */
typedef void (*k8s_metrics_collect_fn)(struct k8s_metrics *m, void *data);
int k8s_metrics_add_collector(struct k8s_metrics *m, k8s_metrics_collect_fn fn, void *data);

/* Removes one label set (e.g. a script revision no longer current). */
void k8s_metric_remove(struct k8s_metric *mt, const char *const *label_values);

/* Current value of a counter/gauge series (0 when absent); histograms give
 * the observation count. For tests and health checks. */
double k8s_metric_value(struct k8s_metric *mt, const char *const *label_values);

/* Text exposition, after running the collectors: metrics sorted by name,
 * series by label values; # HELP and # TYPE lines; histograms as
 * _bucket{le="..."} (cumulative, +Inf last), _sum and _count. Label values
 * escaped (\\, \", \n). Every number (values, bucket bounds, counts) is
 * written by k8s_metrics_format_value, as the Go client writes it. Returns
 * malloc'd text (length in *len when len != NULL), NULL on malloc failure. */
char *k8s_metrics_render(struct k8s_metrics *m, size_t *len);

/* Writes d as prometheus/common's expfmt writes a sample value or an `le`
 * bound (text_create.go writeFloat: Go's strconv.FormatFloat(d, 'g', -1, 64)):
 * the shortest digits that read back as d, in plain notation for decimal
 * exponents -4..5 ("10", "100", "0.005", "123456") and in e-notation outside
 * ("1e+06", "1.5e-05", "1.71e+09"); "0" (also for -0), "NaN", "+Inf", "-Inf".
 * Histogram counts go through it too, as in the Go client (1000000 counts
 * print "1e+06"). Writes at most buflen bytes including the NUL (32 always
 * suffice); returns the length it needs, like snprintf. */
size_t k8s_metrics_format_value(double d, char *buf, size_t buflen);

#endif
