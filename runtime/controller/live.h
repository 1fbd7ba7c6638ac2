/* live.h: the operator's cache and discovery sources for sandboxed calls
 * (runtime/lua/context.h) over the live informers and discovery. `run`
 * (controller.c) and `diff` (cmd_diff.c) use them; render and the fixtures
 * use the in-memory sources (runtime/lua/memsource.h) instead.
 *
 * Ownership: the filled structs borrow cache and d, which must outlive them. */
#ifndef SCHEDSIM_CONTROLLER_LIVE_H
#define SCHEDSIM_CONTROLLER_LIVE_H

#include "kube/discovery.h"
#include "kube/informer.h"
#include "lua/context.h"

/* Fills src: store(av, kind) is the Store of the Cache's informer for that
 * kind, or NULL when the Cache has none. */
void lk_live_cache_source(struct lk_cache_source *src, struct k8s_cache *cache);
/* Fills src: served/versions/namespaced as discovery last saw them. */
void lk_live_discovery_source(struct lk_discovery_source *src, struct k8s_discovery *d);

#endif
