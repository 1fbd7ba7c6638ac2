/* memsource.c: in-memory cache and discovery sources (see memsource.h),
 * over core/store.h. A handful of kinds: linear lookups. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube/restclient.h"
#include "lua/memsource.h"

struct kindent {
  char *api_version, *kind;
  struct k8s_store *store; /* NULL until an object is added */
  int without;             /* not served */
};

struct lk_memsource {
  struct kindent *kinds;
  size_t n, cap;
  struct lk_cache_source cache;
  struct lk_discovery_source discovery;
};

static struct kindent *find(struct lk_memsource *m, const char *av, const char *kind, int create)
{
  for (size_t i = 0; i < m->n; i++)
    if (!strcmp(m->kinds[i].api_version, av) && !strcmp(m->kinds[i].kind, kind))
      return &m->kinds[i];
  if (!create) return NULL;
  if (m->n == m->cap) {
    size_t cap = m->cap ? m->cap * 2 : 16;
    struct kindent *k = realloc(m->kinds, cap * sizeof(*k));
    if (!k) return NULL;
    m->kinds = k;
    m->cap = cap;
  }
  struct kindent *k = &m->kinds[m->n];
  memset(k, 0, sizeof(*k));
  k->api_version = strdup(av);
  k->kind = strdup(kind);
  if (!k->api_version || !k->kind) {
    free(k->api_version);
    free(k->kind);
    return NULL;
  }
  m->n++;
  return k;
}

/* {====================================================================
 * The vtables
 * ===================================================================== */

static struct k8s_store *mem_store(void *ud, const char *av, const char *kind)
{
  struct kindent *k = find(ud, av, kind, 0);
  return k && !k->without ? k->store : NULL;
}

static int mem_served(void *ud, const char *av, const char *kind)
{
  struct kindent *k = find(ud, av, kind, 0);
  return !k || !k->without;
}

static size_t mem_versions(void *ud, const char *group, const char *kind, const char **out,
                           size_t max)
{
  struct lk_memsource *m = ud;
  size_t n = 0, glen = strlen(group);
  for (size_t i = 0; i < m->n; i++) {
    struct kindent *k = &m->kinds[i];
    if (k->without || strcmp(k->kind, kind)) continue;
    const char *slash = strchr(k->api_version, '/');
    const char *version = slash ? slash + 1 : k->api_version;
    if (slash ? (size_t)(slash - k->api_version) != glen || strncmp(k->api_version, group, glen)
              : glen != 0)
      continue;
    int dup = 0;
    for (size_t j = 0; j < n && j < max; j++)
      dup |= !strcmp(out[j], version);
    if (dup) continue;
    if (n < max) out[n] = version;
    n++;
  }
  return n;
}

static int mem_namespaced(void *ud, const char *av, const char *kind)
{
  static const char *const cluster[] = {"Namespace",
                                        "Node",
                                        "PersistentVolume",
                                        "StorageClass",
                                        "ClusterRole",
                                        "ClusterRoleBinding",
                                        "CustomResourceDefinition",
                                        "PriorityClass",
                                        "ValidatingWebhookConfiguration",
                                        "MutatingWebhookConfiguration",
                                        "APIService",
                                        "GatewayClass",
                                        "IngressClass",
                                        NULL};
  for (int i = 0; cluster[i]; i++)
    if (!strcmp(kind, cluster[i])) return 0;
  return 1;
}

static const struct lk_cache_ops cache_ops = {mem_store, NULL}; /* complete */
static const struct lk_discovery_ops discovery_ops = {mem_served, mem_versions, mem_namespaced};

/* }==================================================================== */

struct lk_memsource *lk_memsource_new(void)
{
  struct lk_memsource *m = calloc(1, sizeof(*m));
  if (!m) return NULL;
  m->cache = (struct lk_cache_source){&cache_ops, m};
  m->discovery = (struct lk_discovery_source){&discovery_ops, m};
  return m;
}

void lk_memsource_free(struct lk_memsource *m)
{
  if (!m) return;
  for (size_t i = 0; i < m->n; i++) {
    free(m->kinds[i].api_version);
    free(m->kinds[i].kind);
    k8s_store_free(m->kinds[i].store);
  }
  free(m->kinds);
  free(m);
}

int lk_memsource_add(struct lk_memsource *m, const json_t *obj, char *err, size_t errlen)
{
  const char *av = json_string_value(json_object_get(obj, "apiVersion"));
  const char *kind = json_string_value(json_object_get(obj, "kind"));
  if (!json_is_object(obj) || !av || !*av || !kind || !*kind) {
    snprintf(err, errlen, "object without apiVersion or kind");
    return -1;
  }
  struct kindent *k = find(m, av, kind, 1);
  if (!k) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  if (!k->store) {
    k->store = k8s_store_new();
    if (!k->store || k8s_store_set_kind(k->store, av, kind) != 0 ||
        k8s_store_set_field_manager(k->store, K8S_FIELD_MANAGER) != 0) {
      snprintf(err, errlen, "out of memory");
      return -1;
    }
  }
  return k8s_store_upsert(k->store, obj, NULL, NULL, err, errlen) < 0 ? -1 : 0;
}

void lk_memsource_declare(struct lk_memsource *m, const char *api_version, const char *kind)
{
  find(m, api_version, kind, 1);
}

int lk_memsource_without(struct lk_memsource *m, const char *spec)
{
  const char *slash = strrchr(spec, '/');
  if (!slash || slash == spec || !slash[1]) return -1;
  char av[256];
  size_t n = (size_t)(slash - spec);
  if (n >= sizeof(av)) return -1;
  memcpy(av, spec, n);
  av[n] = '\0';
  struct kindent *k = find(m, av, slash + 1, 1);
  if (!k) return -1;
  k->without = 1;
  return 0;
}

const struct lk_cache_source *lk_memsource_cache(struct lk_memsource *m)
{
  return &m->cache;
}

const struct lk_discovery_source *lk_memsource_discovery(struct lk_memsource *m)
{
  return &m->discovery;
}
