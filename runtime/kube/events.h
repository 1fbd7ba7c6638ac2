/* events.h: the EventRecorder (client-go tools/events): posts events.k8s.io/v1
 * Events about an object, with client-go's two protections against noise —
 *
 *   spam filter: per regarding object a token bucket (burst 25, one token per
 *     5 minutes); an Event beyond it is dropped (-EAGAIN);
 *   series: an Event isomorphic to one posted in the last 6 minutes (same
 *     regarding object, type, reason, action and note) is not posted again:
 *     the first Event's `series` is patched instead ({count, lastObservedTime},
 *     the events.k8s.io/v1 EventSeries), so `kubectl events` shows one line
 *     with a count. client-go leaves the note out of the key; we keep it in,
 *     so that a repeat with a different message is never hidden.
 *
 * Events are fire and forget: a failure is logged, never returned.
 *
 * Ownership: the caller owns the recorder (k8s_recorder_new /
 * k8s_recorder_free) and frees it before the client it borrows. Arguments are
 * borrowed for the call. Not thread-safe: the loop's thread only. */
#ifndef SCHEDSIM_KUBE_EVENTS_H
#define SCHEDSIM_KUBE_EVENTS_H

#include <jansson.h>

#include "kube/restclient.h"

struct k8s_recorder;

/* A recorder posting through c as reportingController `controller`
 * (copied); reportingInstance is "<controller>-<hostname>". NULL on malloc
 * failure. */
struct k8s_recorder *k8s_recorder_new(struct k8s_client *c, const char *controller);
void k8s_recorder_free(struct k8s_recorder *r);

/* Records an Event about regarding (an object with apiVersion, kind,
 * metadata.name/namespace/uid). type "Normal" or "Warning"; reason
 * CamelCase; action CamelCase (NULL: reason); note free text (cut at 1 KiB).
 * Returns 0 when an Event was posted, 1 when it was counted into the series
 * of an earlier one (the count is patched once the POST, or the PATCH before,
 * has finished, so the Event ends with the latest count), -EAGAIN when the
 * spam filter dropped it, -EIO when the earlier Event could not be posted,
 * -EINVAL for a regarding object without kind or name, -ENOMEM. */
int k8s_recorder_event(struct k8s_recorder *r, const json_t *regarding, const char *type,
                       const char *reason, const char *action, const char *note);

#endif
