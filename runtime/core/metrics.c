/* metrics.c: the Prometheus registry and text exposition (metrics.h). Owns
 * every metric and series of a registry; they die together in
 * k8s_metrics_free (or a series alone in k8s_metric_remove). One mutex per
 * registry: updates run on the event loop, rendering on libmicrohttpd's
 * thread. Depends on buf.c and pthreads. */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "buf.h"
#include "metrics.h"

const double k8s_metrics_default_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                              0.5,   1,    2.5,   5,    10};

struct series {
  struct series *next;
  char **values;     /* one per label name */
  double value;      /* counter / gauge */
  double sum;        /* histogram */
  uint64_t count;    /* histogram */
  uint64_t *buckets; /* histogram: cumulative count per bound */
};

struct k8s_metric {
  struct k8s_metric *next;
  struct k8s_metrics *reg;
  enum k8s_metric_type type;
  char *name, *help;
  char **labels;
  size_t nlabels;
  double *bounds;
  size_t nbounds;
  struct series *series;
};

struct collector {
  k8s_metrics_collect_fn fn;
  void *data;
};

struct k8s_metrics {
  pthread_mutex_t mu;
  struct k8s_metric *metrics;
  struct collector *collectors;
  size_t ncollectors;
};

/* {====================================================================
 * Registry
 * ===================================================================== */

struct k8s_metrics *k8s_metrics_new(void)
{
  struct k8s_metrics *m = calloc(1, sizeof *m);
  if (m) pthread_mutex_init(&m->mu, NULL);
  return m;
}

static void free_series(const struct k8s_metric *mt, struct series *s)
{
  for (size_t i = 0; i < mt->nlabels; i++)
    free(s->values[i]);
  free(s->values);
  free(s->buckets);
  free(s);
}

static void free_metric(struct k8s_metric *mt)
{
  while (mt->series) {
    struct series *s = mt->series;
    mt->series = s->next;
    free_series(mt, s);
  }
  for (size_t i = 0; i < mt->nlabels; i++)
    free(mt->labels[i]);
  free(mt->labels);
  free(mt->bounds);
  free(mt->name);
  free(mt->help);
  free(mt);
}

void k8s_metrics_free(struct k8s_metrics *m)
{
  if (!m) return;
  while (m->metrics) {
    struct k8s_metric *mt = m->metrics;
    m->metrics = mt->next;
    free_metric(mt);
  }
  free(m->collectors);
  pthread_mutex_destroy(&m->mu);
  free(m);
}

static size_t count_names(const char *const *names)
{
  size_t n = 0;
  while (names && names[n])
    n++;
  return n;
}

static int same_labels(const struct k8s_metric *mt, const char *const *names)
{
  if (count_names(names) != mt->nlabels) return 0;
  for (size_t i = 0; i < mt->nlabels; i++)
    if (strcmp(mt->labels[i], names[i]) != 0) return 0;
  return 1;
}

static struct k8s_metric *reg(struct k8s_metrics *m, enum k8s_metric_type type, const char *name,
                              const char *help, const char *const *names, const double *bounds,
                              size_t nbounds)
{
  if (!m || !name || !*name) return NULL;
  pthread_mutex_lock(&m->mu);
  struct k8s_metric *mt;
  for (mt = m->metrics; mt; mt = mt->next)
    if (strcmp(mt->name, name) == 0) break;
  if (mt) {
    if (mt->type != type || !same_labels(mt, names)) mt = NULL;
    pthread_mutex_unlock(&m->mu);
    return mt;
  }
  mt = calloc(1, sizeof *mt);
  size_t n = count_names(names);
  int ok = mt && (mt->name = strdup(name)) && (mt->help = strdup(help ? help : "")) &&
           (mt->labels = calloc(n + 1, sizeof *mt->labels));
  if (ok) {
    mt->reg = m;
    mt->type = type;
    for (size_t i = 0; i < n && ok; i++, mt->nlabels++)
      ok = (mt->labels[i] = strdup(names[i])) != NULL;
  }
  if (ok && type == K8S_METRIC_HISTOGRAM) {
    mt->bounds = malloc((nbounds ? nbounds : 1) * sizeof *mt->bounds);
    ok = mt->bounds != NULL;
    if (ok) {
      memcpy(mt->bounds, bounds, nbounds * sizeof *bounds);
      mt->nbounds = nbounds;
    }
  }
  if (!ok) {
    if (mt) free_metric(mt);
    pthread_mutex_unlock(&m->mu);
    return NULL;
  }
  mt->next = m->metrics;
  m->metrics = mt;
  pthread_mutex_unlock(&m->mu);
  return mt;
}

struct k8s_metric *k8s_metrics_counter(struct k8s_metrics *m, const char *name, const char *help,
                                       const char *const *label_names)
{
  return reg(m, K8S_METRIC_COUNTER, name, help, label_names, NULL, 0);
}

struct k8s_metric *k8s_metrics_gauge(struct k8s_metrics *m, const char *name, const char *help,
                                     const char *const *label_names)
{
  return reg(m, K8S_METRIC_GAUGE, name, help, label_names, NULL, 0);
}

struct k8s_metric *k8s_metrics_histogram(struct k8s_metrics *m, const char *name, const char *help,
                                         const char *const *label_names, const double *buckets,
                                         size_t nbuckets)
{
  if (!buckets) {
    buckets = k8s_metrics_default_buckets;
    nbuckets = K8S_METRICS_DEFAULT_NBUCKETS;
  }
  return reg(m, K8S_METRIC_HISTOGRAM, name, help, label_names, buckets, nbuckets);
}

/* }==================================================================== */

/* {====================================================================
 * Series updates (called with the registry unlocked)
 * ===================================================================== */

static const char *label_at(const char *const *values, size_t i)
{
  return values && values[i] ? values[i] : "";
}

/* The series for values; created when `create`. Registry locked. */
static struct series *find_series(struct k8s_metric *mt, const char *const *values, int create)
{
  for (struct series *s = mt->series; s; s = s->next) {
    size_t i = 0;
    while (i < mt->nlabels && strcmp(s->values[i], label_at(values, i)) == 0)
      i++;
    if (i == mt->nlabels) return s;
  }
  if (!create) return NULL;
  struct series *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->values = calloc(mt->nlabels + 1, sizeof *s->values);
  int ok = s->values != NULL;
  for (size_t i = 0; ok && i < mt->nlabels; i++)
    ok = (s->values[i] = strdup(label_at(values, i))) != NULL;
  if (ok && mt->type == K8S_METRIC_HISTOGRAM)
    ok = (s->buckets = calloc(mt->nbounds + 1, sizeof *s->buckets)) != NULL;
  if (!ok) {
    if (s->values)
      for (size_t i = 0; i < mt->nlabels; i++)
        free(s->values[i]);
    free(s->values);
    free(s);
    return NULL;
  }
  s->next = mt->series;
  mt->series = s;
  return s;
}

void k8s_metric_add(struct k8s_metric *mt, const char *const *label_values, double delta)
{
  if (!mt || mt->type == K8S_METRIC_HISTOGRAM || (mt->type == K8S_METRIC_COUNTER && delta < 0))
    return;
  pthread_mutex_lock(&mt->reg->mu);
  struct series *s = find_series(mt, label_values, 1);
  if (s) s->value += delta;
  pthread_mutex_unlock(&mt->reg->mu);
}

void k8s_metric_inc(struct k8s_metric *mt, const char *const *label_values)
{
  k8s_metric_add(mt, label_values, 1);
}

void k8s_metric_set(struct k8s_metric *mt, const char *const *label_values, double value)
{
  if (!mt || mt->type != K8S_METRIC_GAUGE) return;
  pthread_mutex_lock(&mt->reg->mu);
  struct series *s = find_series(mt, label_values, 1);
  if (s) s->value = value;
  pthread_mutex_unlock(&mt->reg->mu);
}

void k8s_metric_observe(struct k8s_metric *mt, const char *const *label_values, double value)
{
  if (!mt || mt->type != K8S_METRIC_HISTOGRAM) return;
  pthread_mutex_lock(&mt->reg->mu);
  struct series *s = find_series(mt, label_values, 1);
  if (s) {
    for (size_t i = 0; i < mt->nbounds; i++)
      if (value <= mt->bounds[i]) s->buckets[i]++;
    s->count++;
    s->sum += value;
  }
  pthread_mutex_unlock(&mt->reg->mu);
}

void k8s_metric_touch(struct k8s_metric *mt, const char *const *label_values)
{
  if (!mt) return;
  pthread_mutex_lock(&mt->reg->mu);
  find_series(mt, label_values, 1);
  pthread_mutex_unlock(&mt->reg->mu);
}

void k8s_metric_remove(struct k8s_metric *mt, const char *const *label_values)
{
  if (!mt) return;
  pthread_mutex_lock(&mt->reg->mu);
  struct series *s = find_series(mt, label_values, 0);
  if (s) {
    struct series **pp = &mt->series;
    while (*pp != s)
      pp = &(*pp)->next;
    *pp = s->next;
    free_series(mt, s);
  }
  pthread_mutex_unlock(&mt->reg->mu);
}

double k8s_metric_value(struct k8s_metric *mt, const char *const *label_values)
{
  if (!mt) return 0;
  pthread_mutex_lock(&mt->reg->mu);
  struct series *s = find_series(mt, label_values, 0);
  double v = !s ? 0 : mt->type == K8S_METRIC_HISTOGRAM ? (double)s->count : s->value;
  pthread_mutex_unlock(&mt->reg->mu);
  return v;
}

/* }==================================================================== */

/* {====================================================================
 * Text exposition
 * ===================================================================== */

size_t k8s_metrics_format_value(double d, char *buf, size_t buflen)
{
  char e[40], out[64];
  size_t n = 0;
  if (isnan(d)) return (size_t)snprintf(buf, buflen, "NaN");
  if (isinf(d)) return (size_t)snprintf(buf, buflen, "%s", d > 0 ? "+Inf" : "-Inf");
  if (d == 0) return (size_t)snprintf(buf, buflen, "0"); /* -0 too, as Go's writeFloat */
  /* The shortest digit string that reads back as d: "%.*e" is correctly
   * rounded, so the first precision that round-trips gives Go's digits. */
  for (int prec = 0; prec <= 16; prec++) {
    snprintf(e, sizeof e, "%.*e", prec, d);
    if (strtod(e, NULL) == d) break;
  }
  /* e is "[-]D[.DDD]e[+-]XX": split into sign, digits and exponent */
  const char *p = e;
  int neg = *p == '-';
  if (neg) p++;
  char digs[20];
  size_t nd = 0;
  for (; *p && *p != 'e'; p++)
    if (*p != '.' && nd < sizeof digs - 1) digs[nd++] = *p;
  while (nd > 1 && digs[nd - 1] == '0') /* not in a shortest form; be safe */
    nd--;
  digs[nd] = '\0';
  int exp = atoi(p + 1);
  if (neg) out[n++] = '-';
  if (exp < -4 || exp >= 6) { /* strconv 'g', shortest: %e past these exponents */
    out[n++] = digs[0];
    if (nd > 1) {
      out[n++] = '.';
      memcpy(out + n, digs + 1, nd - 1);
      n += nd - 1;
    }
    n += (size_t)snprintf(out + n, sizeof out - n, "e%c%02d", exp < 0 ? '-' : '+', abs(exp));
  } else if (exp < 0) { /* 0.000DDD */
    out[n++] = '0';
    out[n++] = '.';
    for (int i = -1; i > exp; i--)
      out[n++] = '0';
    memcpy(out + n, digs, nd);
    n += nd;
  } else { /* DDD[.DDD] or DDD000 */
    for (int i = 0; i <= exp; i++)
      out[n++] = (size_t)i < nd ? digs[i] : '0';
    if ((size_t)exp + 1 < nd) {
      out[n++] = '.';
      memcpy(out + n, digs + exp + 1, nd - (size_t)exp - 1);
      n += nd - (size_t)exp - 1;
    }
  }
  out[n] = '\0';
  return (size_t)snprintf(buf, buflen, "%s", out);
}

static void add_number(struct k8s_buf *b, double d)
{
  char num[64];
  k8s_metrics_format_value(d, num, sizeof num);
  k8s_buf_adds(b, num);
}

static void add_escaped(struct k8s_buf *b, const char *s, int quotes)
{
  for (; *s; s++) {
    if (*s == '\\')
      k8s_buf_adds(b, "\\\\");
    else if (*s == '\n')
      k8s_buf_adds(b, "\\n");
    else if (*s == '"' && quotes)
      k8s_buf_adds(b, "\\\"");
    else
      k8s_buf_addc(b, *s);
  }
}

/* {name="value",...[,le="x"]} or nothing when there are no labels. */
static void add_labels(struct k8s_buf *b, const struct k8s_metric *mt, const struct series *s,
                       const double *le)
{
  if (!mt->nlabels && !le) return;
  k8s_buf_addc(b, '{');
  for (size_t i = 0; i < mt->nlabels; i++) {
    if (i) k8s_buf_addc(b, ',');
    k8s_buf_printf(b, "%s=\"", mt->labels[i]);
    add_escaped(b, s->values[i], 1);
    k8s_buf_addc(b, '"');
  }
  if (le) {
    k8s_buf_adds(b, mt->nlabels ? ",le=\"" : "le=\"");
    add_number(b, *le);
    k8s_buf_addc(b, '"');
  }
  k8s_buf_addc(b, '}');
}

static int metric_cmp(const void *a, const void *b)
{
  return strcmp((*(struct k8s_metric *const *)a)->name, (*(struct k8s_metric *const *)b)->name);
}

static int series_cmp(const void *a, const void *b, void *nlabels)
{
  const struct series *x = *(struct series *const *)a, *y = *(struct series *const *)b;
  for (size_t i = 0; i < *(const size_t *)nlabels; i++) {
    int c = strcmp(x->values[i], y->values[i]);
    if (c) return c;
  }
  return 0;
}

static void render_metric(struct k8s_buf *b, struct k8s_metric *mt)
{
  static const char *const types[] = {"counter", "gauge", "histogram"};
  size_t n = 0;
  for (struct series *s = mt->series; s; s = s->next)
    n++;
  k8s_buf_printf(b, "# HELP %s ", mt->name);
  add_escaped(b, mt->help, 0);
  k8s_buf_printf(b, "\n# TYPE %s %s\n", mt->name, types[mt->type]);
  if (!n) return;
  struct series **arr = malloc(n * sizeof *arr);
  if (!arr) {
    b->failed = 1;
    return;
  }
  n = 0;
  for (struct series *s = mt->series; s; s = s->next)
    arr[n++] = s;
  qsort_r(arr, n, sizeof *arr, series_cmp, &mt->nlabels);
  for (size_t i = 0; i < n; i++) {
    const struct series *s = arr[i];
    if (mt->type != K8S_METRIC_HISTOGRAM) {
      k8s_buf_adds(b, mt->name);
      add_labels(b, mt, s, NULL);
      k8s_buf_addc(b, ' ');
      add_number(b, s->value);
      k8s_buf_addc(b, '\n');
      continue;
    }
    double inf = INFINITY;
    for (size_t j = 0; j <= mt->nbounds; j++) {
      k8s_buf_printf(b, "%s_bucket", mt->name);
      add_labels(b, mt, s, j < mt->nbounds ? &mt->bounds[j] : &inf);
      k8s_buf_addc(b, ' ');
      add_number(b, (double)(j < mt->nbounds ? s->buckets[j] : s->count));
      k8s_buf_addc(b, '\n');
    }
    k8s_buf_printf(b, "%s_sum", mt->name);
    add_labels(b, mt, s, NULL);
    k8s_buf_addc(b, ' ');
    add_number(b, s->sum);
    k8s_buf_printf(b, "\n%s_count", mt->name);
    add_labels(b, mt, s, NULL);
    k8s_buf_addc(b, ' ');
    add_number(b, (double)s->count);
    k8s_buf_addc(b, '\n');
  }
  free(arr);
}

int k8s_metrics_add_collector(struct k8s_metrics *m, k8s_metrics_collect_fn fn, void *data)
{
  pthread_mutex_lock(&m->mu);
  struct collector *c = realloc(m->collectors, (m->ncollectors + 1) * sizeof *c);
  if (c) {
    m->collectors = c;
    m->collectors[m->ncollectors++] = (struct collector){fn, data};
  }
  pthread_mutex_unlock(&m->mu);
  return c ? 0 : -1;
}

/* Runs the collectors from a copy of the list taken under the lock (a
 * collector updates metrics, which takes the lock itself). */
static void collect(struct k8s_metrics *m)
{
  pthread_mutex_lock(&m->mu);
  size_t n = m->ncollectors;
  struct collector *copy = n ? malloc(n * sizeof *copy) : NULL;
  if (copy) memcpy(copy, m->collectors, n * sizeof *copy);
  pthread_mutex_unlock(&m->mu);
  for (size_t i = 0; copy && i < n; i++)
    copy[i].fn(m, copy[i].data);
  free(copy);
}

char *k8s_metrics_render(struct k8s_metrics *m, size_t *len)
{
  struct k8s_buf b = {0};
  collect(m);
  pthread_mutex_lock(&m->mu);
  size_t n = 0;
  for (struct k8s_metric *mt = m->metrics; mt; mt = mt->next)
    n++;
  struct k8s_metric **arr = malloc((n ? n : 1) * sizeof *arr);
  if (!arr) {
    pthread_mutex_unlock(&m->mu);
    return NULL;
  }
  n = 0;
  for (struct k8s_metric *mt = m->metrics; mt; mt = mt->next)
    arr[n++] = mt;
  if (n > 1) qsort(arr, n, sizeof *arr, metric_cmp);
  for (size_t i = 0; i < n; i++)
    render_metric(&b, arr[i]);
  pthread_mutex_unlock(&m->mu);
  free(arr);
  return k8s_buf_steal(&b, len);
}

/* }==================================================================== */
