/* controller.h: the Reconciler driver (doc/architecture.md): per controller of
 * controllers.lua, informers for the CR kind and every served owns/watches
 * kind, event handlers that enqueue CR keys, and workers that run the engine
 * (runtime/lua/engine.h) and carry out the runtime's side of the contract on
 * the API server: conflict refusal, server-side apply of changed children,
 * pruning, the finalizer, the status, events, and the WorkQueue outcome
 * (forget / add_after / add_rate_limited). A key stays processing until
 * every write of its reconcile completed.
 *
 * Units: controller.c (queue, handlers, informers, Runnable), reconcile.c
 * (one reconcile and its outcome), writer.c (writes, expectations,
 * refusals), live.c (the live cache/discovery sources, also used by diff).
 *
 * `schedsim-operator run` calls k8s_controllers_add (declared in
 * kube/manager.h, with its options) once before k8s_manager_run.
 *
 * Ownership: the Manager owns the controllers through their Runnables'
 * free hook (k8s_manager_free frees them, before the Cache they hold
 * handlers on). */
#ifndef SCHEDSIM_CONTROLLER_CONTROLLER_H
#define SCHEDSIM_CONTROLLER_CONTROLLER_H

#include "kube/manager.h"
#include "lua/context.h"

#endif
