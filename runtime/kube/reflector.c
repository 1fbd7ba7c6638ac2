/* reflector.c: ListAndWatch for one resource (reflector.h): the LISTING /
 * WATCHING / BACKOFF state machine, relist on 410 Gone, exponential backoff
 * with jitter, and the dead-stream watchdog.
 *
 * Owns: the reflector, its copies of the option strings, the current call (a
 * list page or the watch) and its two timers (backoff, watchdog). Depends on
 * restclient.h for the requests and loop.h for the timers. Sink callbacks may
 * stop the reflector: every path re-checks `epoch` after calling out. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "kube/reflector.h"

struct k8s_reflector {
  struct k8s_client *c;
  struct k8s_loop *loop;
  struct k8s_reflector_options o;
  char *group, *version, *resource, *api_version, *kind, *ns, *labels, *fields;
  struct k8s_reflector_sink sink;
  void *data;

  enum k8s_reflector_state state;
  unsigned epoch; /* bumped by stop: callbacks of older epochs are ignored */
  char rv[64];
  char *continue_token;
  bool list_first;
  bool relist; /* the list in progress was caused by 410 Gone */
  struct k8s_call *call;
  uint64_t backoff_timer, dead_timer;
  double backoff;
  double watch_started, last_activity;
  uint64_t rng;
  struct k8s_reflector_stats stats;
  char what[160]; /* "configmaps (ns)" for logs */
};

static void start_list(struct k8s_reflector *r, bool relist, const struct k8s_status *why);
static void start_watch(struct k8s_reflector *r);

/* ==== helpers ============================================================== */

const char *k8s_reflector_state_name(enum k8s_reflector_state st)
{
  switch (st) {
  case K8S_REFLECTOR_LISTING:
    return "Listing";
  case K8S_REFLECTOR_WATCHING:
    return "Watching";
  case K8S_REFLECTOR_BACKOFF:
    return "Backoff";
  default:
    return "Stopped";
  }
}

static double rnd(struct k8s_reflector *r)
{
  r->rng ^= r->rng << 13;
  r->rng ^= r->rng >> 7;
  r->rng ^= r->rng << 17;
  return (double)(r->rng >> 11) / 9007199254740992.0;
}

static void set_state(struct k8s_reflector *r, enum k8s_reflector_state st,
                      const struct k8s_status *why, bool relist)
{
  r->state = st;
  if (r->sink.state) r->sink.state(st, why, relist, r->data);
}

static void set_rv(struct k8s_reflector *r, json_t *obj)
{
  const char *rv =
      json_string_value(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
  if (rv && *rv) snprintf(r->rv, sizeof(r->rv), "%s", rv);
}

static void cancel_timers(struct k8s_reflector *r)
{
  if (r->backoff_timer) k8s_loop_timer_cancel(r->loop, r->backoff_timer);
  if (r->dead_timer) k8s_loop_timer_cancel(r->loop, r->dead_timer);
  r->backoff_timer = r->dead_timer = 0;
}

static void cancel_call(struct k8s_reflector *r)
{
  if (r->call) k8s_call_cancel(r->call);
  r->call = NULL;
}

static bool is_gone(const struct k8s_status *st)
{
  return st && (st->code == 410 ||
                (st->reason && (!strcmp(st->reason, "Expired") || !strcmp(st->reason, "Gone"))));
}

/* ==== backoff ============================================================== */

static void backoff_fire(struct k8s_loop *loop, void *data)
{
  struct k8s_reflector *r = data;
  r->backoff_timer = 0;
  if (r->rv[0] && r->continue_token == NULL && !r->list_first)
    start_watch(r);
  else
    start_list(r, false, NULL);
}

/* After a failure: wait, then re-watch from the last resourceVersion, or
 * relist when list_first is set. */
static void enter_backoff(struct k8s_reflector *r, const struct k8s_status *why)
{
  r->stats.errors++;
  double delay = r->backoff * (1.0 + 0.2 * rnd(r));
  r->backoff *= 2;
  if (r->backoff > r->o.backoff_max) r->backoff = r->o.backoff_max;
  char b[600], d[32];
  snprintf(d, sizeof(d), "%.2f", delay);
  k8s_log(K8S_LOG_WARN, "reflector: backing off", "resource", r->what, "error",
          k8s_status_format(why, b, sizeof(b)), K8S_NUM("retry_in"), d, NULL);
  set_state(r, K8S_REFLECTOR_BACKOFF, why, false);
  r->backoff_timer = k8s_loop_timer_add(r->loop, delay, backoff_fire, r);
}

/* ==== list ================================================================= */

static void send_page(struct k8s_reflector *r);

static void list_done(const struct k8s_result *res, void *data)
{
  struct k8s_reflector *r = data;
  unsigned epoch = r->epoch;
  r->call = NULL;
  if (res->error) {
    free(r->continue_token);
    r->continue_token = NULL;
    if (is_gone(res->error) && !r->list_first) {
      /* the continue token expired: start the list again at once */
      r->list_first = true;
      start_list(r, r->relist, res->error);
      return;
    }
    r->list_first = true;
    enter_backoff(r, res->error);
    return;
  }
  json_t *list = res->object;
  json_t *items = json_object_get(list, "items");
  json_t *meta = json_object_get(list, "metadata");
  const char *cont = json_string_value(json_object_get(meta, "continue"));
  const char *rv = json_string_value(json_object_get(meta, "resourceVersion"));
  bool last = !cont || !*cont;
  if (!json_is_array(items)) items = NULL;
  /* list items carry no apiVersion/kind: stamp them */
  size_t i;
  json_t *it;
  json_array_foreach(items, i, it)
  {
    if (r->api_version) json_object_set_new(it, "apiVersion", json_string(r->api_version));
    if (r->kind) json_object_set_new(it, "kind", json_string(r->kind));
  }
  json_t *empty = items ? NULL : json_array();
  bool first = r->list_first;
  r->list_first = false;
  free(r->continue_token);
  r->continue_token = last ? NULL : strdup(cont);
  if (last && rv) snprintf(r->rv, sizeof(r->rv), "%s", rv);
  if (r->sink.list_page)
    r->sink.list_page(items ? items : empty, first, last, last ? rv : NULL, r->data);
  json_decref(empty);
  if (epoch != r->epoch) return; /* stopped by the sink */
  if (!last) {
    send_page(r);
    return;
  }
  r->stats.lists++;
  if (r->relist) r->stats.relists++;
  k8s_log_v(1, "reflector: listed", "resource", r->what, "resourceVersion", r->rv, NULL);
  start_watch(r);
}

static void send_page(struct k8s_reflector *r)
{
  struct k8s_list_opts lo = {
      .label_selector = r->labels,
      .field_selector = r->fields,
      .limit = r->o.page_size,
      .continue_token = r->continue_token,
  };
  struct k8s_gvr gvr = {r->group, r->version, r->resource, r->o.gvr.namespaced};
  /* a list's call has no handle: cancel through k8s_client_cancel_data */
  int rc = k8s_client_list(r->c, &gvr, r->ns, &lo, list_done, r);
  if (rc) {
    struct k8s_status st = {.code = 0, .reason = "Transport", .message = "cannot send the list"};
    r->list_first = true;
    enter_backoff(r, &st);
  }
}

static void start_list(struct k8s_reflector *r, bool relist, const struct k8s_status *why)
{
  cancel_call(r);
  k8s_client_cancel_data(r->c, r);
  cancel_timers(r);
  r->relist = relist;
  r->list_first = true;
  free(r->continue_token);
  r->continue_token = NULL;
  if (relist) {
    char b[600];
    k8s_log(K8S_LOG_INFO, "reflector: relisting", "resource", r->what, "reason",
            k8s_status_format(why, b, sizeof(b)), NULL);
  }
  set_state(r, K8S_REFLECTOR_LISTING, why, relist);
  send_page(r);
}

/* ==== watch ================================================================ */

static void dead_check(struct k8s_loop *loop, void *data)
{
  struct k8s_reflector *r = data;
  r->dead_timer = 0;
  double idle = k8s_loop_now(loop) - r->last_activity;
  if (idle < r->o.dead_stream_timeout) {
    r->dead_timer = k8s_loop_timer_add(loop, r->o.dead_stream_timeout - idle, dead_check, r);
    return;
  }
  char s[32];
  snprintf(s, sizeof(s), "%.0f", idle);
  k8s_log(K8S_LOG_WARN, "reflector: watch stream silent, restarting it", "resource", r->what,
          K8S_NUM("idle_seconds"), s, "resourceVersion", r->rv, NULL);
  r->stats.dead_streams++;
  cancel_call(r);
  start_watch(r);
}

static void on_bytes(size_t n, void *data)
{
  struct k8s_reflector *r = data;
  r->last_activity = k8s_loop_now(r->loop);
}

static void on_event(const char *type, json_t *obj, void *data)
{
  struct k8s_reflector *r = data;
  if (!strcmp(type, "BOOKMARK")) {
    set_rv(r, obj);
    r->stats.bookmarks++;
    return;
  }
  if (!strcmp(type, "ERROR")) {
    struct k8s_status st = {
        .code = (int)json_integer_value(json_object_get(obj, "code")),
        .reason = json_string_value(json_object_get(obj, "reason")),
        .message = json_string_value(json_object_get(obj, "message")),
    };
    if (!st.reason) st.reason = "Unknown";
    if (!st.message) st.message = "";
    cancel_call(r);
    cancel_timers(r);
    if (is_gone(&st)) {
      start_list(r, true, &st);
    } else {
      enter_backoff(r, &st);
    }
    return;
  }
  set_rv(r, obj);
  r->stats.events++;
  if (r->kind && !json_object_get(obj, "kind")) {
    json_object_set_new(obj, "kind", json_string(r->kind));
    json_object_set_new(obj, "apiVersion", json_string(r->api_version));
  }
  if (r->sink.event) r->sink.event(type, obj, r->data);
}

static void watch_done(const struct k8s_result *res, void *data)
{
  struct k8s_reflector *r = data;
  r->call = NULL;
  if (r->dead_timer) k8s_loop_timer_cancel(r->loop, r->dead_timer);
  r->dead_timer = 0;
  double age = k8s_loop_now(r->loop) - r->watch_started;
  if (age >= r->o.healthy_after) r->backoff = r->o.backoff_initial;
  if (!res->error) {
    /* timeoutSeconds reached: a normal end; watch again from where we are */
    k8s_log_v(2, "reflector: watch ended, rewatching", "resource", r->what, "resourceVersion",
              r->rv, NULL);
    start_watch(r);
    return;
  }
  if (is_gone(res->error)) {
    start_list(r, true, res->error);
    return;
  }
  enter_backoff(r, res->error);
}

static void start_watch(struct k8s_reflector *r)
{
  cancel_call(r);
  cancel_timers(r);
  double span = r->o.watch_timeout_max - r->o.watch_timeout_min;
  long timeout = (long)(r->o.watch_timeout_min + (span > 0 ? span * rnd(r) : 0));
  struct k8s_watch_opts wo = {
      .label_selector = r->labels,
      .field_selector = r->fields,
      .resource_version = r->rv[0] ? r->rv : NULL,
      .timeout_seconds = timeout,
      .allow_bookmarks = true,
  };
  struct k8s_watch_handlers h = {.on_event = on_event, .on_bytes = on_bytes, .on_done = watch_done};
  struct k8s_gvr gvr = {r->group, r->version, r->resource, r->o.gvr.namespaced};
  r->stats.watches++;
  r->watch_started = r->last_activity = k8s_loop_now(r->loop);
  set_state(r, K8S_REFLECTOR_WATCHING, NULL, false);
  int rc = k8s_client_watch(r->c, &gvr, r->ns, &wo, &h, r, &r->call);
  if (rc) {
    r->call = NULL;
    struct k8s_status st = {.code = 0, .reason = "Transport", .message = "cannot send the watch"};
    enter_backoff(r, &st);
    return;
  }
  r->dead_timer = k8s_loop_timer_add(r->loop, r->o.dead_stream_timeout, dead_check, r);
}

/* ==== public =============================================================== */

static char *dup_or_null(const char *s)
{
  return s && *s ? strdup(s) : NULL;
}

struct k8s_reflector *k8s_reflector_new(struct k8s_client *c,
                                        const struct k8s_reflector_options *opts,
                                        const struct k8s_reflector_sink *sink, void *data)
{
  struct k8s_reflector *r = calloc(1, sizeof(*r));
  if (!r) return NULL;
  r->c = c;
  r->loop = k8s_http_loop(k8s_client_http(c));
  r->o = *opts;
  r->group = strdup(opts->gvr.group ? opts->gvr.group : "");
  r->version = strdup(opts->gvr.version ? opts->gvr.version : "v1");
  r->resource = strdup(opts->gvr.resource ? opts->gvr.resource : "");
  r->api_version = dup_or_null(opts->api_version);
  r->kind = dup_or_null(opts->kind);
  r->ns = dup_or_null(opts->namespace);
  r->labels = dup_or_null(opts->label_selector);
  r->fields = dup_or_null(opts->field_selector);
  if (sink) r->sink = *sink;
  r->data = data;
  if (r->o.page_size <= 0) r->o.page_size = 500;
  if (r->o.dead_stream_timeout <= 0) r->o.dead_stream_timeout = 150;
  if (r->o.backoff_initial <= 0) r->o.backoff_initial = 0.8;
  if (r->o.backoff_max <= 0) r->o.backoff_max = 30;
  if (r->o.healthy_after <= 0) r->o.healthy_after = 60;
  if (r->o.watch_timeout_min <= 0) r->o.watch_timeout_min = 300;
  if (r->o.watch_timeout_max < r->o.watch_timeout_min) r->o.watch_timeout_max = 600;
  if (r->o.watch_timeout_max < r->o.watch_timeout_min)
    r->o.watch_timeout_max = r->o.watch_timeout_min;
  r->backoff = r->o.backoff_initial;
  r->rng = (uint64_t)(uintptr_t)r ^ (uint64_t)(k8s_loop_now(r->loop) * 1e9) ^ 0x9e3779b97f4a7c15ull;
  if (!r->rng) r->rng = 1;
  snprintf(r->what, sizeof(r->what), "%s%s%s%s%s", r->resource, r->group[0] ? "." : "", r->group,
           r->ns ? " -n " : "", r->ns ? r->ns : "");
  if (!r->group || !r->version || !r->resource) {
    k8s_reflector_free(r);
    return NULL;
  }
  return r;
}

int k8s_reflector_start(struct k8s_reflector *r)
{
  if (r->state != K8S_REFLECTOR_STOPPED) return -EALREADY;
  r->epoch++;
  r->rv[0] = 0;
  r->backoff = r->o.backoff_initial;
  start_list(r, false, NULL);
  return 0;
}

void k8s_reflector_stop(struct k8s_reflector *r)
{
  if (!r) return;
  r->epoch++;
  cancel_call(r);
  k8s_client_cancel_data(r->c, r);
  cancel_timers(r);
  free(r->continue_token);
  r->continue_token = NULL;
  r->state = K8S_REFLECTOR_STOPPED;
}

void k8s_reflector_free(struct k8s_reflector *r)
{
  if (!r) return;
  k8s_reflector_stop(r);
  free(r->group);
  free(r->version);
  free(r->resource);
  free(r->api_version);
  free(r->kind);
  free(r->ns);
  free(r->labels);
  free(r->fields);
  free(r);
}

enum k8s_reflector_state k8s_reflector_state(const struct k8s_reflector *r)
{
  return r->state;
}

const char *k8s_reflector_resource_version(const struct k8s_reflector *r)
{
  return r->rv;
}

double k8s_reflector_last_activity(const struct k8s_reflector *r)
{
  return r->last_activity;
}

void k8s_reflector_stats(const struct k8s_reflector *r, struct k8s_reflector_stats *out)
{
  *out = r->stats;
}
