/* diff_tree.h: a readable diff of two JSON trees (Kubernetes objects), for
 * `schedsim-operator diff`. One line per changed leaf, with its field path:
 *
 *   - spec.replicas: 2
 *   + spec.replicas: 3
 *   + metadata.labels["app.kubernetes.io/name"]: "sim"
 *   - spec.template.spec.containers[name=decode].args[3]: "5"
 *
 * Paths: `.key` for keys made of [A-Za-z0-9_-] (not starting with a digit),
 * `["key"]` otherwise; arrays whose elements (on both sides) are objects with
 * a unique string `name` (or `type`, for conditions) are matched by it and
 * shown as `[name=X]`; other arrays by index. Values are compact JSON. A
 * leaf is a scalar, an empty object or an empty array; a subtree that is
 * added or removed is shown leaf by leaf. Keys are visited in byte order, so
 * the output is stable.
 *
 * Server-set fields are ignored on both sides: metadata.managedFields,
 * resourceVersion, uid, creationTimestamp, generation, selfLink, and, with
 * DT_IGNORE_STATUS, the top-level status.
 *
 * Ownership: inputs are borrowed; lines are appended to the caller's buffer. */
#ifndef SCHEDSIM_CMD_DIFF_TREE_H
#define SCHEDSIM_CMD_DIFF_TREE_H

#include <stddef.h>

#include <jansson.h>

#include "core/buf.h"

#define DT_IGNORE_STATUS 0x1

/* Appends the lines turning before into after to out (before or after may be
 * NULL: the object is added / removed). Each line is prefix + "- " or "+ " +
 * path + ": " + value + "\n". Returns the number of lines appended. */
size_t dt_diff(const json_t *before, const json_t *after, int flags, const char *prefix,
               struct k8s_buf *out);

/* True when path (as dt_diff writes it) is a server-set field that dt_diff
 * ignores under flags. */
int dt_ignored(const char *path, int flags);

#endif
