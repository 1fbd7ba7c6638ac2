/* reload.h: hot reload of the script set from a ConfigMap
 * (`run --scripts-configmap NAMESPACE/NAME`; doc/hot-reload.md).
 *
 * The reload watches one ConfigMap (an informer of its own: namespace
 * NAMESPACE, field selector metadata.name=NAME, so it needs list and watch
 * on configmaps in that namespace only). Every data key overlays one module
 * of the script set directory (scriptset.h: key "a.b.lua" is module "a.b",
 * file a/b.lua); modules without a key stay as in the directory; no
 * ConfigMap means the directory alone.
 *
 * On every change of the ConfigMap (and once after its first list):
 *   1. the new set (directory + overlay) is loaded and, unless its revision
 *      is the one serving, checked with lk_check (check.h: the same check as
 *      `schedsim-operator check`) in a fresh sandbox, on a worker thread, so
 *      a slow or looping set never stalls the event loop;
 *   2. back on the loop (between two reconciles, as every callback is), a
 *      set that passed is handed to hooks.swap, which swaps it in and
 *      re-enqueues every CR; a set that failed (or that swap refuses) is
 *      refused: the serving set stays, a Warning Event ScriptSetRefused on
 *      the ConfigMap names the problems ("file:line: message"), and
 *      schedsim_script_reloads_total{result="refused"} counts it.
 * A change that arrives while a check runs makes that check's outcome
 * stale: it is dropped and the latest ConfigMap is checked next.
 *
 * Until the first outcome is known (ConfigMap listed, and its set swapped
 * or refused) k8s_reload_synced is false and the ready gate
 * "scripts-configmap" holds /readyz, so no CR is reconciled with a set the
 * ConfigMap is about to replace; hooks.ready is called once, then. A refusal
 * never clears the gate: /readyz stays ready.
 *
 * Ownership: the reload borrows the manager; k8s_reload_new registers a
 * Runnable (needs_leader false: every replica follows the ConfigMap, only
 * the leader posts Events) whose stop() ends the watch. A worker thread
 * owns its check; after stop() it frees its result instead of posting it.
 * Everything handed to hooks.swap is owned by the callee when it returns 0. */
#ifndef SCHEDSIM_LUA_RELOAD_H
#define SCHEDSIM_LUA_RELOAD_H

#include <stdbool.h>
#include <stddef.h>

#include "kube/manager.h"
#include "lua/engine.h"

struct k8s_reload;

struct k8s_reload_hooks {
  /* Loop thread. Swap e (checked, not yet serving) in. Returns 0 and takes
   * e; or non-zero with a reason in why ("controllers.lua: ...") to refuse
   * it (e stays the caller's). */
  int (*swap)(struct lk_engine *e, void *data, char *why, size_t whylen);
  /* Loop thread, once: the first outcome is known; reconciles may start. */
  void (*ready)(void *data);
  void *data;
};

struct k8s_reload_options {
  const char *configmap;        /* "NAMESPACE/NAME" */
  const char *dir;              /* the directory the ConfigMap overlays */
  struct lk_engine_opts engine; /* sandbox limits of the checked sets */
  const char *revision;         /* revision of the set serving at start */
};

/* Creates the reload and adds its Runnable to m. Returns 0; or 2 with a
 * message in err for a malformed NAMESPACE/NAME, 1 on allocation failure. */
int k8s_reload_new(struct k8s_manager *m, const struct k8s_reload_options *o,
                   const struct k8s_reload_hooks *h, struct k8s_reload **out, char *err,
                   size_t errlen);
/* True once the first outcome is known (see above). */
bool k8s_reload_synced(const struct k8s_reload *r);
/* The revision of the set serving now ("sha256:..."). */
const char *k8s_reload_revision(const struct k8s_reload *r);
/* Frees the reload (after the manager stopped; NULL is a no-op). */
void k8s_reload_free(struct k8s_reload *r);

#endif
