/* live.c: the live cache and discovery sources (live.h). */
#include "controller/live.h"

/* {====================================================================
 * Live sources
 * ===================================================================== */

static struct k8s_store *live_store(void *ud, const char *av, const char *kind)
{
  struct k8s_informer *inf = k8s_cache_lookup(ud, av, kind);
  return inf ? k8s_informer_store(inf) : NULL;
}

static int live_served(void *ud, const char *av, const char *kind)
{
  return k8s_discovery_served(ud, av, kind);
}

static size_t live_versions(void *ud, const char *group, const char *kind, const char **out,
                            size_t max)
{
  return k8s_discovery_versions(ud, group, kind, out, max);
}

static int live_namespaced(void *ud, const char *av, const char *kind)
{
  const struct k8s_api_resource *r = k8s_discovery_lookup(ud, av, kind);
  return r ? r->namespaced : -1;
}

static int live_complete(void *ud, const char *av, const char *kind)
{
  struct k8s_informer *inf = k8s_cache_lookup(ud, av, kind);
  return !inf || !k8s_informer_label_selector(inf);
}

static const struct lk_cache_ops live_cache_ops = {live_store, live_complete};
static const struct lk_discovery_ops live_discovery_ops = {live_served, live_versions,
                                                           live_namespaced};

void lk_live_cache_source(struct lk_cache_source *src, struct k8s_cache *cache)
{
  *src = (struct lk_cache_source){&live_cache_ops, cache};
}

void lk_live_discovery_source(struct lk_discovery_source *src, struct k8s_discovery *d)
{
  *src = (struct lk_discovery_source){&live_discovery_ops, d};
}

/* }==================================================================== */
