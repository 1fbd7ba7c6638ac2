/* crdwatch.c: discovery refreshes on CRD changes (crdwatch.h). Owns one
 * LIST (limit 1, for the resourceVersion) + WATCH of
 * apiextensions.k8s.io/v1 CustomResourceDefinitions, a debounce timer and a
 * retry timer. Every ADDED, MODIFIED or DELETED event (a CRD created,
 * established, given a version, removed) refreshes discovery within
 * CRDWATCH_DEBOUNCE seconds; BOOKMARKs only move the resourceVersion. The
 * periodic poll of discovery (its interval) stays as the fallback for what a
 * CRD watch cannot see (aggregated APIs), so the watch lets that interval be
 * long; while the watch cannot run (no RBAC, errors), discovery polls at its
 * short interval. Nothing is cached: the objects are read only for their
 * resourceVersion. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "kube/crdwatch.h"

#define CRDWATCH_DEBOUNCE 1.0 /* seconds from a CRD event to the refresh */
#define CRDWATCH_RETRY_MAX 60.0

static const struct k8s_gvr CRD_GVR = {.group = "apiextensions.k8s.io",
                                       .version = "v1",
                                       .resource = "customresourcedefinitions",
                                       .namespaced = false};

struct k8s_crdwatch {
  struct k8s_client *c;
  struct k8s_loop *loop;
  struct k8s_discovery *d;
  double poll_watching, poll_fallback; /* discovery intervals with and without the watch */
  char rv[64];
  struct k8s_call *call; /* the LIST or WATCH in flight, or NULL */
  uint64_t debounce, retry;
  double backoff;
  bool stopped;
};

static void list(struct k8s_crdwatch *w);

static void refresh_now(struct k8s_loop *loop, void *data)
{
  struct k8s_crdwatch *w = data;
  w->debounce = 0;
  k8s_log_v(1, "CRDs changed; refreshing discovery", NULL);
  k8s_discovery_refresh(w->d, NULL, NULL);
}

static void retry_now(struct k8s_loop *loop, void *data)
{
  struct k8s_crdwatch *w = data;
  w->retry = 0;
  list(w);
}

/* The watch ended or could not start: poll at the short interval, and try
 * again after a backoff (1 s doubling to a minute). */
static void lost(struct k8s_crdwatch *w, const struct k8s_result *res)
{
  w->call = NULL;
  if (w->stopped) return;
  k8s_discovery_set_interval(w->d, w->poll_fallback);
  if (res && res->error && res->code != 410) {
    char b[512];
    k8s_log(K8S_LOG_WARN, "cannot watch CustomResourceDefinitions; discovery polls instead",
            "error", k8s_status_format(res->error, b, sizeof(b)), NULL);
  }
  if (res && res->code == 410) w->rv[0] = '\0';
  w->retry = k8s_loop_timer_add(w->loop, w->backoff, retry_now, w);
  w->backoff = w->backoff * 2 > CRDWATCH_RETRY_MAX ? CRDWATCH_RETRY_MAX : w->backoff * 2;
}

static void on_event(const char *type, json_t *obj, void *data)
{
  struct k8s_crdwatch *w = data;
  const char *rv =
      json_string_value(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
  if (rv) snprintf(w->rv, sizeof(w->rv), "%s", rv);
  if (!strcmp(type, "BOOKMARK") || !strcmp(type, "ERROR")) return;
  w->backoff = 1;
  if (!w->debounce) w->debounce = k8s_loop_timer_add(w->loop, CRDWATCH_DEBOUNCE, refresh_now, w);
}

static void watch_done(const struct k8s_result *res, void *data)
{
  struct k8s_crdwatch *w = data;
  if (res->code == 200 && !res->error) { /* a clean end (timeoutSeconds): go on */
    w->call = NULL;
    list(w);
    return;
  }
  lost(w, res);
}

static void watch(struct k8s_crdwatch *w)
{
  struct k8s_watch_opts o = {.resource_version = w->rv, .allow_bookmarks = true};
  static const struct k8s_watch_handlers h = {.on_event = on_event, .on_done = watch_done};
  if (k8s_client_watch(w->c, &CRD_GVR, NULL, &o, &h, w, &w->call) != 0) {
    lost(w, NULL);
    return;
  }
  k8s_discovery_set_interval(w->d, w->poll_watching);
}

static void list_done(const struct k8s_result *res, void *data)
{
  struct k8s_crdwatch *w = data;
  w->call = NULL;
  const char *rv = json_string_value(
      json_object_get(json_object_get(res->object, "metadata"), "resourceVersion"));
  if (res->error || !rv) {
    lost(w, res);
    return;
  }
  bool first = !w->rv[0];
  snprintf(w->rv, sizeof(w->rv), "%s", rv);
  /* after a gap (a relist), a CRD may have changed unseen */
  if (!first && !w->debounce)
    w->debounce = k8s_loop_timer_add(w->loop, CRDWATCH_DEBOUNCE, refresh_now, w);
  watch(w);
}

static void list(struct k8s_crdwatch *w)
{
  if (w->stopped) return;
  if (w->rv[0]) { /* resume where the last watch stopped */
    watch(w);
    return;
  }
  struct k8s_list_opts o = {.limit = 1};
  if (k8s_client_list(w->c, &CRD_GVR, NULL, &o, list_done, w) != 0) lost(w, NULL);
}

struct k8s_crdwatch *k8s_crdwatch_new(struct k8s_client *c, struct k8s_discovery *d,
                                      double poll_watching, double poll_fallback)
{
  struct k8s_crdwatch *w = calloc(1, sizeof(*w));
  if (!w) return NULL;
  w->c = c;
  w->d = d;
  w->loop = k8s_http_loop(k8s_client_http(c));
  w->poll_watching = poll_watching;
  w->poll_fallback = poll_fallback;
  w->backoff = 1;
  return w;
}

int k8s_crdwatch_start(struct k8s_crdwatch *w)
{
  w->stopped = false;
  list(w);
  return 0;
}

void k8s_crdwatch_free(struct k8s_crdwatch *w)
{
  if (!w) return;
  w->stopped = true;
  if (w->call) k8s_call_cancel(w->call);
  k8s_client_cancel_data(w->c, w);
  if (w->debounce) k8s_loop_timer_cancel(w->loop, w->debounce);
  if (w->retry) k8s_loop_timer_cancel(w->loop, w->retry);
  free(w);
}
