/* restclient.h: the Kubernetes REST client over group/version/resource paths.
 *
 * Verbs: get, list (paginated by the caller with limit/continue), watch
 * (streaming, framed into events), create, update (PUT), server-side apply
 * (PATCH application/apply-patch+yaml with a JSON body, fieldManager
 * schedsim-operator, force=true), the same on /status, delete with a
 * propagationPolicy. Events are kube/events.h's.
 * Paths: core group "/api/v1", others "/apis/GROUP/VERSION", then
 * "/namespaces/NS" for namespaced resources, "/RESOURCE[/NAME[/SUBRESOURCE]]".
 *
 * Errors: an API error (non-2xx) is decoded into the Kubernetes Status the
 * server sent (code, reason, message) and passed up unchanged; when the body is
 * not a Status the reason is derived from the code (404 NotFound, 409 Conflict,
 * ...). A transport failure (connect, TLS, timeout, reset) becomes a Status-like
 * error with code 0 and reason "Transport". Every completion counts in
 * rest_client_requests_total{code,method} ("<error>" for transport failures) and
 * observes rest_client_request_duration_seconds{verb}.
 *
 * Ownership: the caller owns the client (k8s_client_new / k8s_client_free) and
 * must free it before the k8s_http it borrows. Object arguments (json_t *) are
 * borrowed: the client serialises them before returning. A k8s_result and
 * everything it points to are borrowed for the duration of the callback; keep
 * result->object with json_incref. Each verb follows the http.h rule: a
 * non-zero return means the callback is never called, and a cancelled call's
 * callback is never called either. */
#ifndef SCHEDSIM_KUBE_RESTCLIENT_H
#define SCHEDSIM_KUBE_RESTCLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "kube/http.h"

#define K8S_FIELD_MANAGER "schedsim-operator"

struct k8s_client;
struct k8s_call; /* one request in flight */
struct k8s_metrics;

/* Which collection a request addresses. Strings are borrowed. group is "" for
 * the core group. */
struct k8s_gvr {
  const char *group;
  const char *version;
  const char *resource; /* plural lower-case name, e.g. "configmaps" */
  bool namespaced;
};

/* A Kubernetes Status (or the Status-like transport error). */
struct k8s_status {
  int code;           /* HTTP status; 0 for transport errors */
  const char *reason; /* "NotFound", "Conflict", "Forbidden", "Expired", "Gone", "Transport", ... */
  const char *message; /* the server's message verbatim, or the transport error text */
  json_t *details;     /* Status.details, or NULL (borrowed) */
};

struct k8s_result {
  int code;                       /* HTTP status, 0 on transport error */
  json_t *object;                 /* decoded 2xx body (object or list), or NULL */
  const struct k8s_status *error; /* NULL on success */
  const char *method;             /* "GET", "PATCH", ... */
  const char *path;               /* request path incl. query */
  double elapsed;                 /* seconds */
};

typedef void (*k8s_client_fn)(const struct k8s_result *res, void *data);

struct k8s_list_opts {
  const char *label_selector;   /* e.g. "app=x,tier in (a,b)", or NULL */
  const char *field_selector;   /* e.g. "metadata.name=x", or NULL */
  long limit;                   /* page size, 0: no limit */
  const char *continue_token;   /* from the previous page's metadata.continue, or NULL */
  const char *resource_version; /* NULL: most recent (quorum read); "0": any (cache) */
  double timeout;               /* overall seconds, 0: the http default */
};

struct k8s_watch_opts {
  const char *label_selector;
  const char *field_selector;
  const char *resource_version; /* start after this RV; NULL: from now, with synthetic ADDs */
  long timeout_seconds;         /* server-side timeoutSeconds; 0: server default */
  bool allow_bookmarks;         /* allowWatchBookmarks=true */
};

/* Watch callbacks. type is "ADDED", "MODIFIED", "DELETED", "BOOKMARK" or
 * "ERROR" (object is then a Status, e.g. code 410 reason Expired); object is
 * borrowed for the call. on_bytes (optional) reports raw stream activity (for
 * dead-stream detection). on_done ends the watch exactly once: code 200 for a
 * clean end of stream, an API error (e.g. 410 Gone, 403) or a transport error.
 * Cancelling the returned request suppresses all further callbacks. */
struct k8s_watch_handlers {
  void (*on_event)(const char *type, json_t *object, void *data);
  void (*on_bytes)(size_t n, void *data);
  k8s_client_fn on_done;
};

struct k8s_apply_opts {
  const char *field_manager; /* NULL: K8S_FIELD_MANAGER */
  bool force;                /* force=true (take over conflicting fields) */
  bool dry_run;              /* dryRun=All */
};
/* What NULL apply options mean: K8S_FIELD_MANAGER, force, not dry-run. */
extern const struct k8s_apply_opts k8s_apply_defaults;

/* Creates a client over http. metrics may be NULL (no metrics). */
struct k8s_client *k8s_client_new(struct k8s_http *http, struct k8s_metrics *metrics);
/* Frees the client; in-flight requests are cancelled (callbacks not called). */
void k8s_client_free(struct k8s_client *c);
struct k8s_http *k8s_client_http(struct k8s_client *c);

/* Writes the path of gvr (and ns, name, subresource; each may be NULL) into
 * buf. Returns the length, or -ENOSPC. ns is ignored for cluster-scoped gvrs. */
int k8s_gvr_path(const struct k8s_gvr *gvr, const char *ns, const char *name,
                 const char *subresource, char *buf, size_t len);
/* Parses "v1" / "apps/v1" into group and version (copied into the buffers). */
int k8s_parse_api_version(const char *api_version, char *group, size_t glen, char *version,
                          size_t vlen);

/* A raw request: method on path (with query), JSON body (may be NULL) sent as
 * content_type (NULL: application/json). Used by discovery. */
int k8s_client_request(struct k8s_client *c, const char *method, const char *path,
                       const json_t *body, const char *content_type, k8s_client_fn done,
                       void *data);

/* GET path with an explicit Accept header (NULL: application/json); used by
 * discovery to ask for the aggregated format. */
int k8s_client_get_raw(struct k8s_client *c, const char *path, const char *accept,
                       k8s_client_fn done, void *data);

int k8s_client_get(struct k8s_client *c, const struct k8s_gvr *gvr, const char *ns,
                   const char *name, k8s_client_fn done, void *data);
/* k8s_client_get with GetOptions.resourceVersion (NULL or "": the most recent,
 * a quorum read from etcd; "0": any version, served from the API server's
 * watch cache without an etcd read — API conventions, "Resource versions",
 * semantics for get). rv is copied into the path; the caller keeps it. */
int k8s_client_get_at(struct k8s_client *c, const struct k8s_gvr *gvr, const char *ns,
                      const char *name, const char *rv, k8s_client_fn done, void *data);
/* One page: res->object is the List; its metadata has resourceVersion and
 * continue. ns NULL: all namespaces. */
int k8s_client_list(struct k8s_client *c, const struct k8s_gvr *gvr, const char *ns,
                    const struct k8s_list_opts *opts, k8s_client_fn done, void *data);
/* Starts a watch stream; *out (optional) receives the handle to cancel it with
 * k8s_call_cancel. ns NULL: all namespaces. */
int k8s_client_watch(struct k8s_client *c, const struct k8s_gvr *gvr, const char *ns,
                     const struct k8s_watch_opts *opts, const struct k8s_watch_handlers *h,
                     void *data, struct k8s_call **out);
int k8s_client_create(struct k8s_client *c, const struct k8s_gvr *gvr, const char *ns,
                      const json_t *obj, k8s_client_fn done, void *data);
/* PUT the whole object (optimistic concurrency by metadata.resourceVersion);
 * subresource NULL or "status". */
int k8s_client_update(struct k8s_client *c, const struct k8s_gvr *gvr, const char *ns,
                      const char *name, const char *subresource, const json_t *obj,
                      k8s_client_fn done, void *data);
/* Server-side apply of obj (apiVersion, kind, metadata.name[, namespace], the
 * fields this manager owns). subresource NULL or "status". opts NULL:
 * k8s_apply_defaults. */
int k8s_client_apply(struct k8s_client *c, const struct k8s_gvr *gvr, const char *ns,
                     const char *name, const char *subresource, const json_t *obj,
                     const struct k8s_apply_opts *opts, k8s_client_fn done, void *data);
/* DELETE with propagationPolicy (NULL: server default; "Background",
 * "Foreground", "Orphan"). */
int k8s_client_delete(struct k8s_client *c, const struct k8s_gvr *gvr, const char *ns,
                      const char *name, const char *propagation, k8s_client_fn done, void *data);

/* Cancels one call (a watch): no callback follows; safe from inside the
 * call's own callbacks. The handle is invalid afterwards. */
void k8s_call_cancel(struct k8s_call *call);
/* Cancels every call in flight whose callback data is `data` (teardown of an
 * object that issued requests with itself as data). */
void k8s_client_cancel_data(struct k8s_client *c, void *data);

/* "Forbidden (403): configmaps is forbidden: User ..." into buf; returns buf. */
const char *k8s_status_format(const struct k8s_status *st, char *buf, size_t len);

#endif
