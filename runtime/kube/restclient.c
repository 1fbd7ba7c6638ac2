/* restclient.c: the REST verbs over GVR paths (restclient.h): paths and query
 * strings, JSON bodies, decoding of results into objects or Kubernetes Status
 * errors, the watch stream (framed by runtime/core/watchframe.h), and the
 * rest_client_* metrics.
 *
 * Owns: the k8s_client and one `struct k8s_call` per request in flight (freed
 * right after its callback, or when cancelled through the client). Depends on
 * http.h for transport, core/json.h for JSON text. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/json.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/strmap.h"
#include "core/util.h"
#include "core/watchframe.h"
#include "kube/restclient.h"

const struct k8s_apply_opts k8s_apply_defaults = {
    .field_manager = K8S_FIELD_MANAGER, .force = true, .dry_run = false};

/* ==== structures =========================================================== */

struct k8s_call {
  struct k8s_client *c;
  struct k8s_call *prev, *next;
  struct k8s_http_request *req;
  k8s_client_fn done;
  void *data;
  char method[8];
  char *path;
  /* watch only */
  bool watch;
  bool in_feed;   /* inside k8s_watchframe_feed: free after it returns */
  bool cancelled; /* k8s_call_cancel ran */
  struct k8s_watch_handlers wh;
  struct k8s_watchframe *frame;
};

struct k8s_client {
  struct k8s_http *http;
  struct k8s_metric *requests; /* rest_client_requests_total{code,method} */
  struct k8s_metric *latency;  /* rest_client_request_duration_seconds{verb} */
  struct k8s_call *calls;
};

/* ==== paths ================================================================ */

int k8s_parse_api_version(const char *api_version, char *group, size_t glen, char *version,
                          size_t vlen)
{
  if (!api_version || !*api_version) return -EINVAL;
  const char *slash = strchr(api_version, '/');
  if (!slash) {
    if (glen) group[0] = 0;
    if ((size_t)snprintf(version, vlen, "%s", api_version) >= vlen) return -ENOSPC;
    return 0;
  }
  size_t gl = (size_t)(slash - api_version);
  if (gl + 1 > glen) return -ENOSPC;
  memcpy(group, api_version, gl);
  group[gl] = 0;
  if ((size_t)snprintf(version, vlen, "%s", slash + 1) >= vlen) return -ENOSPC;
  return 0;
}

int k8s_gvr_path(const struct k8s_gvr *gvr, const char *ns, const char *name,
                 const char *subresource, char *buf, size_t len)
{
  size_t n = 0;
  int w;
#define APPEND(...)                                                                                \
  do {                                                                                             \
    w = snprintf(buf + n, n < len ? len - n : 0, __VA_ARGS__);                                     \
    if (w < 0) return -EINVAL;                                                                     \
    n += (size_t)w;                                                                                \
  } while (0)
  if (!gvr->group || !*gvr->group)
    APPEND("/api/%s", gvr->version);
  else
    APPEND("/apis/%s/%s", gvr->group, gvr->version);
  if (gvr->namespaced && ns && *ns) APPEND("/namespaces/%s", ns);
  APPEND("/%s", gvr->resource);
  if (name && *name) {
    APPEND("/%s", name);
    if (subresource && *subresource) APPEND("/%s", subresource);
  }
#undef APPEND
  if (n >= len) return -ENOSPC;
  return (int)n;
}

/* A growable query string: "?a=b&c=d" with escaped values. */
struct query {
  char buf[2048];
  size_t n;
};

static void q_add(struct query *q, const char *key, const char *value)
{
  if (!value) return;
  char *esc = k8s_http_escape(value);
  if (!esc) return;
  int w = snprintf(q->buf + q->n, sizeof(q->buf) - q->n, "%c%s=%s", q->n ? '&' : '?', key, esc);
  free(esc);
  if (w > 0 && q->n + (size_t)w < sizeof(q->buf)) q->n += (size_t)w;
}

static void q_addl(struct query *q, const char *key, long v)
{
  char num[32];
  snprintf(num, sizeof(num), "%ld", v);
  q_add(q, key, num);
}

/* ==== results ============================================================== */

static const char *reason_for(int code)
{
  switch (code) {
  case 400:
    return "BadRequest";
  case 401:
    return "Unauthorized";
  case 403:
    return "Forbidden";
  case 404:
    return "NotFound";
  case 405:
    return "MethodNotAllowed";
  case 406:
    return "NotAcceptable";
  case 409:
    return "Conflict";
  case 410:
    return "Gone";
  case 415:
    return "UnsupportedMediaType";
  case 422:
    return "Invalid";
  case 429:
    return "TooManyRequests";
  case 500:
    return "InternalError";
  case 503:
    return "ServiceUnavailable";
  case 504:
    return "Timeout";
  default:
    return "Unknown";
  }
}

const char *k8s_status_format(const struct k8s_status *st, char *buf, size_t len)
{
  if (!st) {
    snprintf(buf, len, "ok");
  } else if (st->code == 0) {
    snprintf(buf, len, "%s: %s", st->reason, st->message);
  } else {
    snprintf(buf, len, "%s (%d): %s", st->reason, st->code, st->message);
  }
  return buf;
}

static void observe(struct k8s_client *c, const char *method, int code, double elapsed)
{
  if (!c->requests) return;
  char cs[16];
  if (code)
    snprintf(cs, sizeof(cs), "%d", code);
  else
    snprintf(cs, sizeof(cs), "<error>");
  const char *lv[] = {cs, method};
  k8s_metric_inc(c->requests, lv);
  const char *vv[] = {method};
  k8s_metric_observe(c->latency, vv, elapsed);
}

/* Builds the result of a finished response and calls done. */
static void deliver(struct k8s_call *call, const struct k8s_http_response *resp)
{
  struct k8s_result res;
  struct k8s_status st;
  memset(&res, 0, sizeof(res));
  memset(&st, 0, sizeof(st));
  res.method = call->method;
  res.path = call->path;
  res.elapsed = resp->elapsed;
  json_t *body = NULL;
  char msg[CURL_ERROR_SIZE + 64];

  if (resp->status == 0 || (resp->curl_code != 0 && !(resp->status >= 200 && call->watch))) {
    /* transport failure (for a stream that got a 2xx, the end is normal-ish:
     * the reflector reconnects either way, but report it as transport) */
    res.code = 0;
    st.code = 0;
    st.reason = "Transport";
    snprintf(msg, sizeof(msg), "%s %s: %s", call->method, call->path,
             resp->error ? resp->error : "no response");
    st.message = msg;
    res.error = &st;
  } else if (resp->status >= 200 && resp->status < 300) {
    res.code = (int)resp->status;
    if (resp->len) body = k8s_json_parse(resp->body, resp->len, NULL, 0);
    res.object = body;
    if (call->watch && resp->curl_code != 0) {
      /* a 2xx stream that broke (reset, timeout): transport error */
      res.code = 0;
      st.reason = "Transport";
      snprintf(msg, sizeof(msg), "%s %s: %s", call->method, call->path,
               resp->error ? resp->error : "stream ended");
      st.message = msg;
      res.error = &st;
    }
  } else {
    res.code = (int)resp->status;
    st.code = (int)resp->status;
    body = resp->len ? k8s_json_parse(resp->body, resp->len, NULL, 0) : NULL;
    const char *kind = json_string_value(json_object_get(body, "kind"));
    if (kind && !strcmp(kind, "Status")) {
      st.reason = json_string_value(json_object_get(body, "reason"));
      st.message = json_string_value(json_object_get(body, "message"));
      json_t *code = json_object_get(body, "code");
      if (json_is_integer(code) && json_integer_value(code))
        st.code = (int)json_integer_value(code);
      st.details = json_object_get(body, "details");
    }
    if (!st.reason || !*st.reason) st.reason = reason_for(st.code);
    if (!st.message) {
      snprintf(msg, sizeof(msg), "%s %s: %.*s", call->method, call->path,
               (int)(resp->len > 200 ? 200 : resp->len), resp->body);
      st.message = msg;
    }
    res.error = &st;
  }
  observe(call->c, call->method, res.code, resp->elapsed);
  if (res.error && k8s_log_enabled(K8S_LOG_DEBUG, 2)) {
    char b[512];
    k8s_log_v(2, "request failed", "method", call->method, "path", call->path, "error",
              k8s_status_format(res.error, b, sizeof(b)), NULL);
  } else if (k8s_log_enabled(K8S_LOG_DEBUG, 4)) {
    char code[16], proto[8], ms[32];
    snprintf(code, sizeof(code), "%d", res.code);
    snprintf(proto, sizeof(proto), "%ld", resp->http_version);
    snprintf(ms, sizeof(ms), "%.3f", resp->elapsed * 1000);
    k8s_log_v(4, "request", "method", call->method, "path", call->path, K8S_NUM("code"), code,
              K8S_NUM("http"), proto, K8S_NUM("ms"), ms, NULL);
  }
  if (call->watch)
    call->wh.on_done(&res, call->data);
  else
    call->done(&res, call->data);
  json_decref(body);
}

/* ==== calls ================================================================ */

static void call_unlink(struct k8s_call *call)
{
  struct k8s_client *c = call->c;
  if (call->prev)
    call->prev->next = call->next;
  else if (c->calls == call)
    c->calls = call->next;
  if (call->next) call->next->prev = call->prev;
  call->prev = call->next = NULL;
}

static void call_free(struct k8s_call *call)
{
  k8s_watchframe_free(call->frame);
  free(call->path);
  free(call);
}

static void on_http_done(const struct k8s_http_response *resp, void *data)
{
  struct k8s_call *call = data;
  if (call->watch && call->frame) {
    /* a last line without newline */
    call->in_feed = true;
    k8s_watchframe_finish(call->frame);
    call->in_feed = false;
    if (call->cancelled) { /* cancelled by its own event handler */
      call_free(call);
      return;
    }
  }
  call_unlink(call);
  call->cancelled = true; /* finished: a late k8s_call_cancel must not touch it */
  deliver(call, resp);
  call_free(call);
}

static void on_frame_event(void *ud, const struct k8s_watch_event *ev)
{
  struct k8s_call *call = ud;
  if (call->cancelled) return;
  if (call->wh.on_event) call->wh.on_event(k8s_watch_type_name(ev->type), ev->object, call->data);
}

static void on_frame_error(void *ud, enum k8s_watchframe_error code, const char *msg)
{
  struct k8s_call *call = ud;
  k8s_log(K8S_LOG_WARN, "watch stream: skipped a malformed line", "path", call->path, "error", msg,
          NULL);
}

static int on_chunk(const char *buf, size_t len, void *data)
{
  struct k8s_call *call = data;
  call->in_feed = true;
  if (call->wh.on_bytes) call->wh.on_bytes(len, call->data);
  if (!call->cancelled) k8s_watchframe_feed(call->frame, buf, len);
  call->in_feed = false;
  if (call->cancelled) {
    call_free(call);
    return 1;
  }
  return 0;
}

void k8s_call_cancel(struct k8s_call *call)
{
  if (!call || call->cancelled) return;
  call->cancelled = true;
  call_unlink(call);
  k8s_http_cancel(call->req); /* safe inside on_chunk: http defers the removal */
  if (!call->in_feed) call_free(call);
}

void k8s_client_cancel_data(struct k8s_client *c, void *data)
{
  struct k8s_call *call = c->calls;
  while (call) {
    struct k8s_call *next = call->next;
    if (call->data == data) k8s_call_cancel(call);
    call = next;
  }
}

static struct k8s_call *call_new(struct k8s_client *c, const char *method, const char *path,
                                 k8s_client_fn done, void *data)
{
  struct k8s_call *call = calloc(1, sizeof(*call));
  if (!call) return NULL;
  call->c = c;
  snprintf(call->method, sizeof(call->method), "%s", method);
  call->path = strdup(path);
  call->done = done;
  call->data = data;
  if (!call->path) {
    free(call);
    return NULL;
  }
  return call;
}

/* Sends a prepared call (takes ownership of call). */
static int call_send_accept(struct k8s_client *c, struct k8s_call *call, const char *body,
                            size_t body_len, const char *content_type, const char *accept,
                            double timeout)
{
  struct k8s_http_req req = {
      .method = call->method,
      .path = call->path,
      .accept = accept,
      .content_type = content_type,
      .body = body,
      .body_len = body_len,
      .timeout = timeout,
      .on_chunk = call->watch ? on_chunk : NULL,
  };
  int rc = k8s_http_send(c->http, &req, on_http_done, call, &call->req);
  if (rc) {
    call_free(call);
    return rc;
  }
  call->next = c->calls;
  if (c->calls) c->calls->prev = call;
  c->calls = call;
  return 0;
}

static int call_send(struct k8s_client *c, struct k8s_call *call, const char *body, size_t body_len,
                     const char *content_type, double timeout)
{
  return call_send_accept(c, call, body, body_len, content_type, NULL, timeout);
}

static int send_json(struct k8s_client *c, const char *method, const char *path, const json_t *body,
                     const char *content_type, double timeout, k8s_client_fn done, void *data)
{
  if (!done) return -EINVAL;
  char *text = NULL;
  size_t len = 0;
  if (body) {
    text = k8s_json_dump(body, 0, &len);
    if (!text) return -ENOMEM;
  }
  struct k8s_call *call = call_new(c, method, path, done, data);
  if (!call) {
    free(text);
    return -ENOMEM;
  }
  int rc = call_send(c, call, text, len,
                     body ? (content_type ? content_type : "application/json") : NULL, timeout);
  free(text);
  return rc;
}

/* ==== client =============================================================== */

struct k8s_client *k8s_client_new(struct k8s_http *http, struct k8s_metrics *metrics)
{
  struct k8s_client *c = calloc(1, sizeof(*c));
  if (!c) return NULL;
  c->http = http;
  if (metrics) {
    static const char *const req_labels[] = {"code", "method", NULL};
    static const char *const lat_labels[] = {"verb", NULL};
    static const double buckets[] = {0.001, 0.002, 0.004,  0.008,  0.016, 0.032,
                                     0.064, 0.128, 0.256,  0.512,  1.024, 2.048,
                                     4.096, 8.192, 16.384, 32.768, 65.536};
    c->requests = k8s_metrics_counter(metrics, "rest_client_requests_total",
                                      "Number of HTTP requests, partitioned by status code and "
                                      "method.",
                                      req_labels);
    c->latency = k8s_metrics_histogram(metrics, "rest_client_request_duration_seconds",
                                       "Request latency in seconds, broken down by verb.",
                                       lat_labels, buckets, sizeof(buckets) / sizeof(buckets[0]));
    if (!c->latency) c->requests = NULL; /* both or none */
  }
  return c;
}

void k8s_client_free(struct k8s_client *c)
{
  if (!c) return;
  while (c->calls)
    k8s_call_cancel(c->calls);
  free(c);
}

struct k8s_http *k8s_client_http(struct k8s_client *c)
{
  return c->http;
}

/* ==== verbs ================================================================ */

int k8s_client_request(struct k8s_client *c, const char *method, const char *path,
                       const json_t *body, const char *content_type, k8s_client_fn done, void *data)
{
  return send_json(c, method, path, body, content_type, 0, done, data);
}

int k8s_client_get_raw(struct k8s_client *c, const char *path, const char *accept,
                       k8s_client_fn done, void *data)
{
  if (!done || !path) return -EINVAL;
  struct k8s_call *call = call_new(c, "GET", path, done, data);
  if (!call) return -ENOMEM;
  return call_send_accept(c, call, NULL, 0, NULL, accept, 0);
}

int k8s_client_get(struct k8s_client *c, const struct k8s_gvr *gvr, const char *ns,
                   const char *name, k8s_client_fn done, void *data)
{
  return k8s_client_get_at(c, gvr, ns, name, NULL, done, data);
}

int k8s_client_get_at(struct k8s_client *c, const struct k8s_gvr *gvr, const char *ns,
                      const char *name, const char *rv, k8s_client_fn done, void *data)
{
  char path[1200];
  int n;
  if (!name || (n = k8s_gvr_path(gvr, ns, name, NULL, path, 1024)) < 0) return -EINVAL;
  struct query q = {.n = 0};
  q_add(&q, "resourceVersion", rv && *rv ? rv : NULL);
  snprintf(path + n, sizeof(path) - (size_t)n, "%s", q.buf);
  return send_json(c, "GET", path, NULL, NULL, 0, done, data);
}

int k8s_client_list(struct k8s_client *c, const struct k8s_gvr *gvr, const char *ns,
                    const struct k8s_list_opts *opts, k8s_client_fn done, void *data)
{
  char path[3200];
  int n = k8s_gvr_path(gvr, ns, NULL, NULL, path, 1024);
  if (n < 0) return -EINVAL;
  struct query q = {.n = 0};
  double timeout = 0;
  if (opts) {
    q_add(&q, "labelSelector", opts->label_selector);
    q_add(&q, "fieldSelector", opts->field_selector);
    if (opts->limit > 0) q_addl(&q, "limit", opts->limit);
    q_add(&q, "continue", opts->continue_token);
    q_add(&q, "resourceVersion", opts->resource_version);
    timeout = opts->timeout;
  }
  snprintf(path + n, sizeof(path) - (size_t)n, "%s", q.buf);
  return send_json(c, "GET", path, NULL, NULL, timeout, done, data);
}

int k8s_client_watch(struct k8s_client *c, const struct k8s_gvr *gvr, const char *ns,
                     const struct k8s_watch_opts *opts, const struct k8s_watch_handlers *h,
                     void *data, struct k8s_call **out)
{
  if (!h || !h->on_done) return -EINVAL;
  char path[3200];
  int n = k8s_gvr_path(gvr, ns, NULL, NULL, path, 1024);
  if (n < 0) return -EINVAL;
  struct query q = {.n = 0};
  q_add(&q, "watch", "1");
  long timeout_seconds = 0;
  if (opts) {
    q_add(&q, "labelSelector", opts->label_selector);
    q_add(&q, "fieldSelector", opts->field_selector);
    q_add(&q, "resourceVersion", opts->resource_version);
    if (opts->allow_bookmarks) q_add(&q, "allowWatchBookmarks", "true");
    if (opts->timeout_seconds > 0) q_addl(&q, "timeoutSeconds", opts->timeout_seconds);
    timeout_seconds = opts->timeout_seconds;
  }
  snprintf(path + n, sizeof(path) - (size_t)n, "%s", q.buf);
  struct k8s_call *call = call_new(c, "WATCH", path, NULL, data);
  if (!call) return -ENOMEM;
  snprintf(call->method, sizeof(call->method), "GET");
  call->watch = true;
  call->wh = *h;
  call->frame = k8s_watchframe_new(on_frame_event, on_frame_error, call);
  if (!call->frame) {
    call_free(call);
    return -ENOMEM;
  }
  /* the server ends the stream after timeoutSeconds; the client-side bound is
   * a safety net only (dead streams are the reflector's watchdog's job) */
  double timeout = timeout_seconds > 0 ? (double)timeout_seconds + 60 : -1;
  int rc = call_send(c, call, NULL, 0, NULL, timeout);
  if (rc == 0 && out) *out = call;
  return rc;
}

int k8s_client_create(struct k8s_client *c, const struct k8s_gvr *gvr, const char *ns,
                      const json_t *obj, k8s_client_fn done, void *data)
{
  char path[1024];
  if (!obj || k8s_gvr_path(gvr, ns, NULL, NULL, path, sizeof(path)) < 0) return -EINVAL;
  return send_json(c, "POST", path, obj, NULL, 0, done, data);
}

int k8s_client_update(struct k8s_client *c, const struct k8s_gvr *gvr, const char *ns,
                      const char *name, const char *subresource, const json_t *obj,
                      k8s_client_fn done, void *data)
{
  char path[1024];
  if (!obj || !name || k8s_gvr_path(gvr, ns, name, subresource, path, sizeof(path)) < 0)
    return -EINVAL;
  return send_json(c, "PUT", path, obj, NULL, 0, done, data);
}

int k8s_client_apply(struct k8s_client *c, const struct k8s_gvr *gvr, const char *ns,
                     const char *name, const char *subresource, const json_t *obj,
                     const struct k8s_apply_opts *opts, k8s_client_fn done, void *data)
{
  char path[2048];
  if (!obj || !name) return -EINVAL;
  int n = k8s_gvr_path(gvr, ns, name, subresource, path, 1024);
  if (n < 0) return -EINVAL;
  if (!opts) opts = &k8s_apply_defaults;
  struct query q = {.n = 0};
  q_add(&q, "fieldManager", opts->field_manager ? opts->field_manager : K8S_FIELD_MANAGER);
  if (opts->force) q_add(&q, "force", "true");
  if (opts->dry_run) q_add(&q, "dryRun", "All");
  snprintf(path + n, sizeof(path) - (size_t)n, "%s", q.buf);
  /* JSON is YAML: the apply-patch+yaml content type accepts a JSON body */
  return send_json(c, "PATCH", path, obj, "application/apply-patch+yaml", 0, done, data);
}

int k8s_client_delete(struct k8s_client *c, const struct k8s_gvr *gvr, const char *ns,
                      const char *name, const char *propagation, k8s_client_fn done, void *data)
{
  char path[1200];
  if (!name) return -EINVAL;
  int n = k8s_gvr_path(gvr, ns, name, NULL, path, 1024);
  if (n < 0) return -EINVAL;
  struct query q = {.n = 0};
  q_add(&q, "propagationPolicy", propagation);
  snprintf(path + n, sizeof(path) - (size_t)n, "%s", q.buf);
  return send_json(c, "DELETE", path, NULL, NULL, 0, done, data);
}
