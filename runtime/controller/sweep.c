/* sweep.c: deletes orphaned children (internal.h, ctl_sweep_orphans): objects
 * of a controller's owns kinds that carry the operator's owner label for a CR
 * of the controller's kind that no longer exists. Owner references let the
 * garbage collector remove same-namespace children; children in other
 * namespaces rely on the cleanup finalizer, and a finalizer that was never
 * added (a failed write) or removed by hand would leak them. The sweep runs
 * when the workers start and at every resync, after the caches synced. An
 * object whose controller ownerReference is of another API group or kind is
 * someone else's, whatever its labels say, and is left alone. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller/internal.h"

#define SWEEP_MAX 100 /* deletes per sweep and controller; the next resync does the rest */

static void swept(const struct k8s_result *res, void *data)
{
  if (res->error && res->code != 404) {
    char buf[512];
    k8s_log(K8S_LOG_WARN, "cannot delete an orphaned child", "path", res->path, "error",
            k8s_status_format(res->error, buf, sizeof(buf)), NULL);
  } else
    k8s_log(K8S_LOG_INFO, "deleted an orphaned child", "path", res->path, NULL);
}

/* 1 when owner (a label value) names a CR of kind: the natural form begins
 * with "<kind>.", the hashed one with "<kind cut to 20>." (core/util.h). */
static int of_kind(const char *owner, const char *kind)
{
  char lower[128];
  size_t n = 0;
  for (; kind[n] && n < sizeof(lower) - 2; n++)
    lower[n] = (char)tolower((unsigned char)kind[n]);
  lower[n] = '.';
  lower[n + 1] = '\0';
  if (!strncmp(owner, lower, n + 1)) return 1;
  if (n <= 20) return 0;
  lower[20] = '.';
  return !strncmp(owner, lower, 21);
}

/* 1 when o has a controller ownerReference to something other than the
 * controller's kind (group compared, not version). */
static int foreign_controller(const struct k8s_object *o, const struct lk_gvk *for_)
{
  const struct k8s_owner_ref *ref = k8s_object_controller(o);
  if (!ref) return 0;
  const char *a = strchr(ref->api_version, '/'), *b = strchr(for_->api_version, '/');
  size_t na = a ? (size_t)(a - ref->api_version) : 0, nb = b ? (size_t)(b - for_->api_version) : 0;
  return strcmp(ref->kind, for_->kind) || na != nb ||
         strncmp(ref->api_version, for_->api_version, na);
}

void ctl_sweep_orphans(struct ctl *c)
{
  struct controllers *all = c->all;
  if (!c->cr->inf || !k8s_informer_has_synced(c->cr->inf)) return;
  struct k8s_label managed = {LK_LABEL_MANAGED_BY, LK_MANAGED_BY};
  int deleted = 0;
  for (size_t i = 0; i < c->nkinds && deleted < SWEEP_MAX; i++) {
    struct kinfo *ki = &c->kinds[i];
    if (ki->role != ROLE_OWNS || !ki->inf || !k8s_informer_has_synced(ki->inf)) continue;
    const struct k8s_object **objs = NULL;
    size_t m = k8s_store_select(k8s_informer_store(ki->inf), NULL, &managed, 1, &objs);
    for (size_t j = 0; m != (size_t)-1 && j < m && deleted < SWEEP_MAX; j++) {
      const struct k8s_object *o = objs[j];
      const char *owner = k8s_object_label(o, LK_LABEL_OWNER);
      if (!owner || !of_kind(owner, c->decl->for_.kind) || k8s_strmap_get(&c->owners, owner) ||
          o->deleting || foreign_controller(o, &c->decl->for_))
        continue;
      struct k8s_gvr gvr;
      if (k8s_discovery_gvr(k8s_manager_discovery(all->m), ki->gvk->api_version, ki->gvk->kind,
                            &gvr) != 0 ||
          k8s_client_delete(k8s_manager_client(all->m), &gvr, *o->ns ? o->ns : NULL, o->name,
                            "Background", swept, NULL) != 0)
        continue;
      k8s_log(K8S_LOG_INFO, "deleting an orphaned child", "controller", c->decl->name, "kind",
              ki->gvk->kind, "object", o->key, "owner", owner, NULL);
      deleted++;
    }
    free(objs);
  }
}
