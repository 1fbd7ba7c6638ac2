/* reflector.h: ListAndWatch for one resource (client-go's Reflector).
 *
 * States:
 *   LISTING   paginated list (limit 500, continue) of the whole collection;
 *             pages go to the sink, the last one with the list's resourceVersion;
 *   WATCHING  a watch from the last resourceVersion with allowWatchBookmarks,
 *             timeoutSeconds randomised in [5, 10] min; every event and bookmark
 *             advances the resourceVersion; a clean end of stream re-watches at
 *             once from the last resourceVersion;
 *   BACKOFF   after a failed list or watch: wait (0.8 s doubling to 30 s, with
 *             jitter; reset after a watch that stayed healthy for 60 s), then
 *             watch again from the last resourceVersion, or relist when there is
 *             none or the list failed;
 *   STOPPED   before start and after stop.
 * 410 Gone (an ERROR event with code 410, or HTTP 410 on the watch, or an
 * "Expired" continue token) leads straight to LISTING: a relist, not a backoff.
 * Dead-stream detection: no byte for dead_stream_timeout seconds (default 150)
 * restarts the watch from the last resourceVersion. The API server sends a
 * quiet watch a bookmark about once a minute (its cacher's bookmark
 * frequency), so the default waits for two and a half of them: at 60 s, a
 * label-selected watch that matched nothing was restarted just before its
 * bookmark came, from a resourceVersion that a flood of others' objects of
 * that kind had pushed out of the watch cache — 410, and a relist of every
 * object of the kind (11 in three minutes in the bench's cluster-noise
 * window).
 *
 * Ownership: the caller owns the reflector; it borrows the client, the sink
 * and the strings of the options (copied at k8s_reflector_new). Objects handed to
 * the sink are borrowed for the call (json_incref to keep them). */
#ifndef SCHEDSIM_KUBE_REFLECTOR_H
#define SCHEDSIM_KUBE_REFLECTOR_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "kube/restclient.h"

struct k8s_reflector;

enum k8s_reflector_state {
  K8S_REFLECTOR_STOPPED = 0,
  K8S_REFLECTOR_LISTING,
  K8S_REFLECTOR_WATCHING,
  K8S_REFLECTOR_BACKOFF,
};

/* Where the reflector puts what it sees (an Informer, or a test). */
struct k8s_reflector_sink {
  /* One page of a (re)list. first is true on the first page of a list, last on
   * its final page; rv is the list's resourceVersion (set when last). items is a
   * JSON array of objects (each has apiVersion and kind filled in). A list that
   * fails midway restarts with first = true; pages already delivered are then
   * superseded. */
  void (*list_page)(json_t *items, bool first, bool last, const char *rv, void *data);
  /* One watch event: type "ADDED", "MODIFIED" or "DELETED". */
  void (*event)(const char *type, json_t *obj, void *data);
  /* Optional: state transitions, with the error that caused a BACKOFF or a
   * relist (NULL otherwise). relist is true when LISTING was entered because of
   * 410 Gone. */
  void (*state)(enum k8s_reflector_state st, const struct k8s_status *why, bool relist, void *data);
};

struct k8s_reflector_options {
  struct k8s_gvr gvr;         /* what to list and watch */
  const char *api_version;    /* "v1", "apps/v1": stamped on listed items */
  const char *kind;           /* "ConfigMap": stamped on listed items */
  const char *namespace;      /* NULL: all namespaces */
  const char *label_selector; /* NULL: all */
  const char *field_selector; /* NULL: all */
  long page_size;             /* default 500 */
  double dead_stream_timeout; /* default 150 s */
  double backoff_initial;     /* default 0.8 s */
  double backoff_max;         /* default 30 s */
  double healthy_after;       /* a watch this old resets the backoff; default 60 s */
  double watch_timeout_min;   /* default 300 s */
  double watch_timeout_max;   /* default 600 s */
};

/* Creates a stopped reflector. Returns NULL on allocation failure. */
struct k8s_reflector *k8s_reflector_new(struct k8s_client *c,
                                        const struct k8s_reflector_options *opts,
                                        const struct k8s_reflector_sink *sink, void *data);
/* Starts listing (STOPPED → LISTING). Returns 0, or -EALREADY. */
int k8s_reflector_start(struct k8s_reflector *r);
/* Cancels the list or watch in flight and any timer; no sink call follows. */
void k8s_reflector_stop(struct k8s_reflector *r);
/* Stops and frees. NULL is a no-op. */
void k8s_reflector_free(struct k8s_reflector *r);

enum k8s_reflector_state k8s_reflector_state(const struct k8s_reflector *r);
/* The last resourceVersion seen (list, event or bookmark), or "" (borrowed). */
const char *k8s_reflector_resource_version(const struct k8s_reflector *r);
/* Monotonic time (k8s_loop_now) when the watch stream last delivered bytes:
 * inside a sink callback, now minus this is the time from the event's bytes
 * arriving to the callback (for latency measurements). */
double k8s_reflector_last_activity(const struct k8s_reflector *r);
/* Counters since creation. */
struct k8s_reflector_stats {
  uint64_t lists;        /* completed lists */
  uint64_t relists;      /* lists caused by 410 Gone */
  uint64_t watches;      /* watch requests started */
  uint64_t events;       /* ADDED/MODIFIED/DELETED delivered */
  uint64_t bookmarks;    /* BOOKMARK events */
  uint64_t dead_streams; /* watches restarted by the dead-stream timer */
  uint64_t errors;       /* failed lists and watches */
};
void k8s_reflector_stats(const struct k8s_reflector *r, struct k8s_reflector_stats *out);
/* The state's name: "Stopped", "Listing", "Watching", "Backoff". */
const char *k8s_reflector_state_name(enum k8s_reflector_state st);

#endif
