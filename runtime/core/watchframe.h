/* watchframe.h: framing of a Kubernetes watch stream (GET ...?watch=1): one
 * JSON object {"type": ..., "object": {...}} per line, arriving in arbitrary
 * chunks. The framer buffers partial lines, parses each complete line and
 * calls back once per event; blank lines and a trailing '\r' are ignored.
 *
 * Errors never stop the framer: an oversized line (> max_line bytes, default
 * 16 MiB) is reported once and skipped up to its newline; a line that is not
 * JSON, or not a watch event, is reported and skipped. The caller (the
 * Reflector) decides whether to restart the watch.
 *
 * Ownership: the framer copies the bytes it needs. Event fields are borrowed
 * for the duration of the callback (json_incref the object to keep it). A
 * callback may not free the framer. */
#ifndef K8S_CORE_WATCHFRAME_H
#define K8S_CORE_WATCHFRAME_H

#include <stddef.h>
#include <jansson.h>

#define K8S_WATCHFRAME_MAX_LINE ((size_t)16 << 20)

enum k8s_watch_type {
  K8S_WATCH_ADDED = 0,
  K8S_WATCH_MODIFIED,
  K8S_WATCH_DELETED,
  K8S_WATCH_BOOKMARK,
  K8S_WATCH_ERROR
};

struct k8s_watch_event {
  enum k8s_watch_type type;
  json_t *object;               /* the event's "object" (a JSON object), borrowed */
  const char *resource_version; /* object.metadata.resourceVersion, or NULL; for a
                                   BOOKMARK the resourceVersion to resume from */
  /* ERROR events: the object is a metav1.Status */
  int code;            /* Status.code (e.g. 410), 0 if absent */
  const char *reason;  /* Status.reason ("Expired", "Gone", ...), "" if absent */
  const char *message; /* Status.message, "" if absent */
  int expired;         /* 1 when code == 410 or reason is Expired/Gone: relist */
};

enum k8s_watchframe_error {
  K8S_WATCHFRAME_E_OVERSIZE = 1, /* a line longer than max_line */
  K8S_WATCHFRAME_E_JSON,         /* a line that is not valid JSON */
  K8S_WATCHFRAME_E_EVENT,        /* JSON, but no known "type" or no object "object" */
  K8S_WATCHFRAME_E_TRUNCATED     /* finish() with a partial line buffered */
};

typedef void (*k8s_watchframe_event_cb)(void *ud, const struct k8s_watch_event *ev);
typedef void (*k8s_watchframe_error_cb)(void *ud, enum k8s_watchframe_error code, const char *msg);

/* New framer calling on_event / on_error (either may be NULL) with ud.
 * NULL on malloc failure. */
struct k8s_watchframe *k8s_watchframe_new(k8s_watchframe_event_cb on_event,
                                          k8s_watchframe_error_cb on_error, void *ud);

/* Frees the framer and its buffer. NULL is a no-op. */
void k8s_watchframe_free(struct k8s_watchframe *f);

/* Changes the line limit (bytes, without the newline); for tests. */
void k8s_watchframe_set_max_line(struct k8s_watchframe *f, size_t max_line);

/* Feeds len bytes; calls back for each complete line. Returns the number of
 * events delivered, or -1 on malloc failure (the partial line is dropped). */
int k8s_watchframe_feed(struct k8s_watchframe *f, const char *data, size_t len);

/* End of stream: a buffered line without newline is parsed if it is complete
 * JSON, else reported as E_TRUNCATED. Resets the framer for reuse. Returns
 * the number of events delivered (0 or 1). */
int k8s_watchframe_finish(struct k8s_watchframe *f);

/* Bytes currently buffered (a partial line). */
size_t k8s_watchframe_pending(const struct k8s_watchframe *f);

/* "ADDED", "MODIFIED", ... for a type. */
const char *k8s_watch_type_name(enum k8s_watch_type t);

#endif
