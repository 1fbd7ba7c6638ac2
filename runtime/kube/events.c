/* events.c: the EventRecorder (events.h): spam filter buckets and Event
 * series per isomorphic Event, over the REST client. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/strmap.h"
#include "core/util.h"
#include "kube/events.h"

#define EVENT_BURST 25.0
#define EVENT_REFILL (1.0 / 300.0) /* tokens per second */
#define EVENT_BUCKETS_MAX 4096
#define SERIES_WINDOW 360.0 /* seconds an Event stays open for repeats (client-go: 6 min) */
#define SERIES_MAX 4096

struct bucket {
  char *key;
  double tokens;
  double last; /* monotonic */
};

/* An Event posted recently: repeats patch its series. One request per series
 * is in flight at a time (the POST, then one PATCH carrying the latest count),
 * so a PATCH never overtakes the POST it patches nor an older count. The
 * series owns that request: freeing the series cancels it. */
struct series {
  struct k8s_recorder *r;
  char *key;         /* the isomorphic key */
  char *path;        /* the Event's URL path */
  long count;        /* occurrences so far */
  long sent;         /* the count the API server has or is being sent */
  bool inflight;     /* a request of this series is on the wire */
  bool lost;         /* the POST failed: repeats have nothing to patch */
  double last;       /* monotonic, of the last occurrence */
  char observed[48]; /* MicroTime of the last occurrence */
};

struct k8s_recorder {
  struct k8s_client *c;
  char *controller;
  char instance[200];
  struct k8s_strmap buckets; /* regarding object -> struct bucket */
  struct k8s_strmap series;  /* isomorphic key -> struct series */
};

struct k8s_recorder *k8s_recorder_new(struct k8s_client *c, const char *controller)
{
  struct k8s_recorder *r = calloc(1, sizeof(*r));
  if (!r || !(r->controller = strdup(controller))) {
    free(r);
    return NULL;
  }
  r->c = c;
  char host[128] = "unknown";
  gethostname(host, sizeof(host) - 1);
  snprintf(r->instance, sizeof(r->instance), "%s-%s", controller, host);
  return r;
}

static void series_free(struct series *s)
{
  if (!s) return;
  if (s->inflight) k8s_client_cancel_data(s->r->c, s);
  free(s->key);
  free(s->path);
  free(s);
}

void k8s_recorder_free(struct k8s_recorder *r)
{
  if (!r) return;
  size_t it = 0;
  void *v;
  while (k8s_strmap_next(&r->buckets, &it, NULL, &v)) {
    free(((struct bucket *)v)->key);
    free(v);
  }
  k8s_strmap_clear(&r->buckets);
  it = 0;
  while (k8s_strmap_next(&r->series, &it, NULL, &v))
    series_free(v);
  k8s_strmap_clear(&r->series);
  free(r->controller);
  free(r);
}

static void series_send(struct series *s);

/* A request of series data finished: send the count that arrived meanwhile. */
static void series_done(const struct k8s_result *res, void *data)
{
  struct series *s = data;
  s->inflight = false;
  if (res->error) {
    char b[512];
    k8s_log(K8S_LOG_WARN, s->sent == 1 ? "cannot post Event" : "cannot patch Event series", "error",
            k8s_status_format(res->error, b, sizeof(b)), NULL);
    if (s->sent == 1) s->lost = true;
    return;
  }
  series_send(s);
}

/* Patches the series count when it is ahead of what was sent and nothing of
 * this series is in flight. */
static void series_send(struct series *s)
{
  if (s->inflight || s->lost || s->sent >= s->count) return;
  json_t *patch = json_pack("{s:{s:I, s:s}}", "series", "count", (json_int_t)s->count,
                            "lastObservedTime", s->observed);
  if (!patch) return;
  long count = s->count;
  s->inflight = k8s_client_request(s->r->c, "PATCH", s->path, patch, "application/merge-patch+json",
                                   series_done, s) == 0;
  if (s->inflight) s->sent = count;
  json_decref(patch);
}

/* Takes a token from the bucket of key; false when it is empty. */
static bool allowed(struct k8s_recorder *r, const char *key)
{
  double now = k8s_monotonic();
  struct bucket *b = k8s_strmap_get(&r->buckets, key);
  if (!b) {
    if (r->buckets.len >= EVENT_BUCKETS_MAX) {
      /* forget buckets that refilled completely: they carry no state */
      size_t it = 0;
      void *v;
      struct bucket *drop[256];
      size_t nd = 0;
      while (nd < 256 && k8s_strmap_next(&r->buckets, &it, NULL, &v)) {
        struct bucket *x = v;
        if (x->tokens + (now - x->last) * EVENT_REFILL >= EVENT_BURST) drop[nd++] = x;
      }
      for (size_t i = 0; i < nd; i++) {
        k8s_strmap_del(&r->buckets, drop[i]->key);
        free(drop[i]->key);
        free(drop[i]);
      }
    }
    b = calloc(1, sizeof(*b));
    if (!b) return false;
    b->key = strdup(key);
    b->tokens = EVENT_BURST;
    b->last = now;
    if (!b->key || k8s_strmap_put(&r->buckets, b->key, b)) {
      free(b->key);
      free(b);
      return false;
    }
  }
  b->tokens += (now - b->last) * EVENT_REFILL;
  if (b->tokens > EVENT_BURST) b->tokens = EVENT_BURST;
  b->last = now;
  if (b->tokens < 1) return false;
  b->tokens -= 1;
  return true;
}

/* The series of key when it is still open, or NULL (closed ones are freed,
 * and a full map drops every closed series). */
static struct series *open_series(struct k8s_recorder *r, const char *key, double now)
{
  if (r->series.len >= SERIES_MAX) {
    size_t it = 0;
    void *v;
    struct series *drop[256];
    size_t nd = 0;
    while (nd < 256 && k8s_strmap_next(&r->series, &it, NULL, &v))
      if (now - ((struct series *)v)->last > SERIES_WINDOW) drop[nd++] = v;
    for (size_t i = 0; i < nd; i++) {
      k8s_strmap_del(&r->series, drop[i]->key);
      series_free(drop[i]);
    }
  }
  struct series *s = k8s_strmap_get(&r->series, key);
  if (s && now - s->last > SERIES_WINDOW) {
    k8s_strmap_del(&r->series, key);
    series_free(s);
    s = NULL;
  }
  return s;
}

/* MicroTime: RFC 3339 with microseconds. */
static void micro_time(double wall, char out[48])
{
  char ts[K8S_TIME_BUF];
  k8s_rfc3339(wall, ts);
  long usec = (long)((wall - (double)(long long)wall) * 1e6);
  snprintf(out, 48, "%.19s.%06ldZ", ts, usec);
}

int k8s_recorder_event(struct k8s_recorder *r, const json_t *regarding, const char *type,
                       const char *reason, const char *action, const char *note)
{
  const json_t *meta = json_object_get(regarding, "metadata");
  const char *api_version = json_string_value(json_object_get(regarding, "apiVersion"));
  const char *kind = json_string_value(json_object_get(regarding, "kind"));
  const char *name = json_string_value(json_object_get(meta, "name"));
  const char *ns = json_string_value(json_object_get(meta, "namespace"));
  const char *uid = json_string_value(json_object_get(meta, "uid"));
  const char *rv = json_string_value(json_object_get(meta, "resourceVersion"));
  if (!kind || !name || !type || !reason) return -EINVAL;
  if (!action) action = reason;
  char notebuf[1025];
  snprintf(notebuf, sizeof(notebuf), "%s", note ? note : "");
  char obj[600], *key = NULL;
  snprintf(obj, sizeof(obj), "%s/%s/%s/%s", api_version ? api_version : "", kind, ns ? ns : "",
           name);
  if (asprintf(&key, "%s|%s|%s|%s|%s|%s", obj, uid ? uid : "", type, reason, action, notebuf) < 0)
    return -ENOMEM;
  double now = k8s_monotonic(), wall = k8s_wallclock();
  char micro[48];
  micro_time(wall, micro);

  struct series *s = open_series(r, key, now);
  if (s) { /* a repeat: count it into the first Event's series */
    free(key);
    if (!allowed(r, obj)) return -EAGAIN;
    if (s->lost) return -EIO;
    s->count++;
    s->last = now;
    memcpy(s->observed, micro, sizeof(s->observed));
    series_send(s);
    return 1;
  }
  if (!allowed(r, obj)) {
    free(key);
    k8s_log_v(1, "Event dropped by the spam filter", "object", obj, "reason", reason, NULL);
    return -EAGAIN;
  }
  const char *event_ns = ns && *ns ? ns : "default";
  /* client-go's naming: "<name>.<hex nanoseconds>" (generateName "<name>."
   * is refused: a name must not end in a dot) */
  static unsigned long long seq;
  char gen[300];
  snprintf(gen, sizeof(gen), "%.200s.%llx", name,
           (unsigned long long)(wall * 1e9) + (seq++ & 0xfff));
  char path[512];
  snprintf(path, sizeof(path), "/apis/events.k8s.io/v1/namespaces/%s/events", event_ns);
  s = calloc(1, sizeof(*s));
  if (!s || asprintf(&s->path, "%s/%s", path, gen) < 0) {
    free(s);
    free(key);
    return -ENOMEM;
  }
  s->r = r;
  s->key = key;
  s->count = s->sent = 1;
  s->last = now;
  memcpy(s->observed, micro, sizeof(s->observed));
  json_t *reg = json_pack("{s:s?, s:s, s:s, s:s?, s:s?, s:s?}", "apiVersion", api_version, "kind",
                          kind, "name", name, "namespace", ns, "uid", uid, "resourceVersion", rv);
  json_t *ev = json_pack("{s:s, s:s, s:{s:s, s:s}, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o}",
                         "apiVersion", "events.k8s.io/v1", "kind", "Event", "metadata", "name", gen,
                         "namespace", event_ns, "eventTime", micro, "reportingController",
                         r->controller, "reportingInstance", r->instance, "action", action,
                         "reason", reason, "note", notebuf, "type", type, "regarding", reg);
  int rc = ev ? k8s_client_request(r->c, "POST", path, ev, NULL, series_done, s) : -ENOMEM;
  json_decref(ev);
  s->inflight = rc == 0;
  /* remember it for its repeats (a failed remember costs only aggregation) */
  if (rc == 0 && k8s_strmap_put(&r->series, s->key, s) == 0) return 0;
  series_free(s); /* and s->key; cancels the POST, which then counts as not sent */
  return rc ? rc : -ENOMEM;
}
