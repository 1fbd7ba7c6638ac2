/* udiff.h: unified diffs of Kubernetes objects for `schedsim-operator diff`
 * (what `kubectl diff` users read: `diff -u -N` of each object's YAML), and
 * the KUBECTL_EXTERNAL_DIFF hook.
 *
 * An object is compared as YAML (core/yaml.h: keys sorted, block style)
 * after dropping the fields the API server sets (diff_tree.h dt_ignored:
 * managedFields, resourceVersion, uid, creationTimestamp, generation,
 * selfLink, and status with DT_IGNORE_STATUS), so only what an apply
 * changes shows. Ownership: inputs are borrowed; output goes to the
 * caller's buffer. */
#ifndef SCHEDSIM_CMD_UDIFF_H
#define SCHEDSIM_CMD_UDIFF_H

#include <stddef.h>

#include <jansson.h>

#include "core/buf.h"

/* YAML text of obj without the server-set fields (flags as dt_diff), ""
 * for NULL. Returns malloc'd text (free it), NULL on malloc failure. */
char *ud_object_yaml(const json_t *obj, int flags);

/* Appends a unified diff of text a -> b (lines; a missing final newline is
 * treated as present) to out: hunks "@@ -l,n +l,n @@" with `context` lines
 * around each change, lines prefixed " ", "-", "+". No header lines (the
 * caller writes ---/+++). Returns the number of "-" and "+" lines (0: equal,
 * nothing appended). O(len(a) * len(b)) time and memory in lines (objects
 * are hundreds of lines); (size_t)-1 on malloc failure. */
size_t ud_diff(const char *a, const char *b, int context, struct k8s_buf *out);

/* KUBECTL_EXTERNAL_DIFF, as kubectl runs it: a directory pair LIVE and
 * MERGED under $TMPDIR, one file per object named
 * <group>.<version>.<Kind>.<namespace>.<name> (core group "": "v1.…"), then
 * `PROGRAM [ARGS] LIVE MERGED`, where the variable's first word is the
 * program and the other words its arguments. */
struct ud_external;
/* NULL when the directories cannot be made (errno). */
struct ud_external *ud_external_new(void);
/* Writes the two sides of one object (NULL side: no file, as kubectl does
 * for a created or deleted object). Returns 0 or -1. */
int ud_external_add(struct ud_external *x, const char *api_version, const char *kind,
                    const char *ns, const char *name, const char *live_yaml,
                    const char *merged_yaml);
/* Runs `cmd` (the variable's value) on the two directories, removes them and
 * frees x. Returns the program's exit status (0 same, 1 different, as diff),
 * or -1 when it could not run. */
int ud_external_run(struct ud_external *x, const char *cmd);

#endif
