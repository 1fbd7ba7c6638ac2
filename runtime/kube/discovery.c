/* discovery.c: the served API resources (discovery.h): aggregated discovery
 * (apidiscovery.k8s.io/v2: /api and /apis, two requests in all), or, from
 * servers without it, legacy discovery: /api and /apis, then one resource
 * list per group-version, all in flight at once on the loop.
 *
 * Owns: the current snapshot (resources, groups, and a map "apiVersion/kind"
 * to resource), the snapshot being built by a refresh, the refresh timer and
 * the queue of refresh callbacks. A snapshot dies when the next refresh
 * completes. Depends on restclient.h. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/strmap.h"
#include "kube/discovery.h"

/* Ask for aggregated discovery (one document per root), accept the legacy
 * lists from servers that do not have it. */
#define AGGREGATED_ACCEPT                                                                          \
  "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"                          \
  "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"

/* ==== snapshots ============================================================ */

struct group {
  char *name;
  char *preferred;
  char **versions; /* server order */
  size_t nversions;
};

struct snapshot {
  struct k8s_api_resource *res;
  char **keys; /* "apiVersion/kind", parallel to res */
  size_t nres, capres;
  struct group *groups;
  size_t ngroups;
  struct k8s_strmap by_key; /* key -> (void *)(index + 1) */
};

static void snapshot_free(struct snapshot *s)
{
  if (!s) return;
  for (size_t i = 0; i < s->nres; i++) {
    free((char *)s->res[i].group);
    free((char *)s->res[i].version);
    free((char *)s->res[i].api_version);
    free((char *)s->res[i].kind);
    free((char *)s->res[i].resource);
    free(s->keys[i]);
  }
  free(s->res);
  free(s->keys);
  for (size_t i = 0; i < s->ngroups; i++) {
    free(s->groups[i].name);
    free(s->groups[i].preferred);
    for (size_t j = 0; j < s->groups[i].nversions; j++)
      free(s->groups[i].versions[j]);
    free(s->groups[i].versions);
  }
  free(s->groups);
  k8s_strmap_clear(&s->by_key);
  free(s);
}

static int snapshot_add(struct snapshot *s, const char *group, const char *version,
                        const char *kind, const char *resource, bool namespaced, bool has_status)
{
  char av[256], key[512];
  if (group && *group)
    snprintf(av, sizeof(av), "%s/%s", group, version);
  else
    snprintf(av, sizeof(av), "%s", version);
  snprintf(key, sizeof(key), "%s/%s", av, kind);
  void *existing = k8s_strmap_get(&s->by_key, key);
  if (existing) {
    struct k8s_api_resource *r = &s->res[(size_t)(uintptr_t)existing - 1];
    if (has_status && !strcmp(r->resource, resource)) r->has_status = true;
    return 0;
  }
  if (s->nres == s->capres) {
    size_t cap = s->capres ? s->capres * 2 : 64;
    struct k8s_api_resource *r = realloc(s->res, cap * sizeof(*r));
    if (!r) return -ENOMEM;
    s->res = r;
    char **k = realloc(s->keys, cap * sizeof(*k));
    if (!k) return -ENOMEM;
    s->keys = k;
    s->capres = cap;
  }
  struct k8s_api_resource *r = &s->res[s->nres];
  r->group = strdup(group ? group : "");
  r->version = strdup(version);
  r->api_version = strdup(av);
  r->kind = strdup(kind);
  r->resource = strdup(resource);
  r->namespaced = namespaced;
  r->has_status = has_status;
  s->keys[s->nres] = strdup(key);
  s->nres++;
  return k8s_strmap_put(&s->by_key, s->keys[s->nres - 1], (void *)(uintptr_t)s->nres);
}

static const struct k8s_api_resource *snapshot_lookup(const struct snapshot *s,
                                                      const char *api_version, const char *kind)
{
  if (!s) return NULL;
  char key[512];
  snprintf(key, sizeof(key), "%s/%s", api_version, kind);
  void *v = k8s_strmap_get(&s->by_key, key);
  return v ? &s->res[(size_t)(uintptr_t)v - 1] : NULL;
}

/* ==== discovery ============================================================ */

struct gv_req;

struct waiter {
  void (*done)(struct k8s_discovery *, bool, void *);
  void *data;
};

struct k8s_discovery {
  struct k8s_client *c;
  struct k8s_loop *loop;
  double interval;
  struct snapshot *cur, *next;
  int pending;     /* group-version lists in flight */
  bool refreshing; /* a refresh is running */
  bool roots_ok;
  int roots_pending;
  json_t *api, *apis; /* /api and /apis responses of the refresh */
  uint64_t timer;
  bool started;
  struct waiter *waiters;
  size_t nwaiters;
  struct gv_req *gv_reqs; /* group-version lists in flight */
  struct {
    k8s_discovery_fn fn;
    void *data;
  } listeners[16];
  size_t nlisteners;
};

static void schedule(struct k8s_discovery *d);

static void finish(struct k8s_discovery *d, bool ok)
{
  bool changed = false;
  if (ok) {
    struct snapshot *old = d->cur;
    if (!old || old->nres != d->next->nres) {
      changed = true;
    } else {
      for (size_t i = 0; i < d->next->nres && !changed; i++) {
        const struct k8s_api_resource *o =
            snapshot_lookup(old, d->next->res[i].api_version, d->next->res[i].kind);
        if (!o || strcmp(o->resource, d->next->res[i].resource) ||
            o->namespaced != d->next->res[i].namespaced)
          changed = true;
      }
    }
    d->cur = d->next;
    d->next = NULL;
    snapshot_free(old);
  } else {
    snapshot_free(d->next);
    d->next = NULL;
  }
  json_decref(d->api);
  json_decref(d->apis);
  d->api = d->apis = NULL;
  d->refreshing = false;
  if (changed) {
    char n[32];
    snprintf(n, sizeof(n), "%zu", d->cur->nres);
    k8s_log_v(1, "discovery: served resources changed", K8S_NUM("resources"), n, NULL);
  }
  struct waiter *w = d->waiters;
  size_t nw = d->nwaiters;
  d->waiters = NULL;
  d->nwaiters = 0;
  if (changed)
    for (size_t i = 0; i < d->nlisteners; i++)
      d->listeners[i].fn(d, d->listeners[i].data);
  for (size_t i = 0; i < nw; i++)
    if (w[i].done) w[i].done(d, ok, w[i].data);
  free(w);
  if (d->started && !d->timer) schedule(d);
}

/* Copies the entries of api_version from the current snapshot (its list
 * failed this time). */
static void keep_previous(struct k8s_discovery *d, const char *api_version)
{
  if (!d->cur) return;
  for (size_t i = 0; i < d->cur->nres; i++) {
    const struct k8s_api_resource *r = &d->cur->res[i];
    if (strcmp(r->api_version, api_version) != 0) continue;
    snapshot_add(d->next, r->group, r->version, r->kind, r->resource, r->namespaced, r->has_status);
  }
}

struct gv_req {
  struct k8s_discovery *d;
  struct gv_req *prev, *next; /* d->gv_reqs */
  char group[200];
  char version[56];
};

static void gv_unlink(struct gv_req *q)
{
  if (q->prev)
    q->prev->next = q->next;
  else if (q->d->gv_reqs == q)
    q->d->gv_reqs = q->next;
  if (q->next) q->next->prev = q->prev;
}

static void gv_done(const struct k8s_result *res, void *data)
{
  struct gv_req *q = data;
  struct k8s_discovery *d = q->d;
  char av[256];
  if (q->group[0])
    snprintf(av, sizeof(av), "%s/%s", q->group, q->version);
  else
    snprintf(av, sizeof(av), "%s", q->version);
  if (res->error) {
    char b[512];
    k8s_log_v(1, "discovery: group-version list failed; keeping the previous one", "groupVersion",
              av, "error", k8s_status_format(res->error, b, sizeof(b)), NULL);
    keep_previous(d, av);
  } else {
    json_t *resources = json_object_get(res->object, "resources");
    size_t i;
    json_t *r;
    /* first the main resources, then mark /status subresources */
    json_array_foreach(resources, i, r)
    {
      const char *name = json_string_value(json_object_get(r, "name"));
      const char *kind = json_string_value(json_object_get(r, "kind"));
      if (!name || !kind || strchr(name, '/')) continue;
      snapshot_add(d->next, q->group, q->version, kind, name,
                   json_is_true(json_object_get(r, "namespaced")), false);
    }
    json_array_foreach(resources, i, r)
    {
      const char *name = json_string_value(json_object_get(r, "name"));
      const char *slash = name ? strchr(name, '/') : NULL;
      if (!slash || strcmp(slash, "/status") != 0) continue;
      for (size_t k = 0; k < d->next->nres; k++) {
        struct k8s_api_resource *x = &d->next->res[k];
        if (!strcmp(x->api_version, av) && !strncmp(x->resource, name, (size_t)(slash - name)) &&
            x->resource[slash - name] == 0)
          x->has_status = true;
      }
    }
  }
  gv_unlink(q);
  free(q);
  if (--d->pending == 0) finish(d, true);
}

static void start_gv(struct k8s_discovery *d, const char *group, const char *version)
{
  struct gv_req *q = calloc(1, sizeof(*q));
  if (!q) return;
  q->d = d;
  snprintf(q->group, sizeof(q->group), "%s", group);
  snprintf(q->version, sizeof(q->version), "%s", version);
  char path[300];
  if (*group)
    snprintf(path, sizeof(path), "/apis/%s/%s", group, version);
  else
    snprintf(path, sizeof(path), "/api/%s", version);
  d->pending++;
  if (k8s_client_request(d->c, "GET", path, NULL, NULL, gv_done, q)) {
    d->pending--;
    free(q);
    return;
  }
  q->next = d->gv_reqs;
  if (q->next) q->next->prev = q;
  d->gv_reqs = q;
}

static void add_group(struct snapshot *s, const char *name, const char *preferred, json_t *versions)
{
  struct group *g = realloc(s->groups, (s->ngroups + 1) * sizeof(*g));
  if (!g) return;
  s->groups = g;
  g = &s->groups[s->ngroups++];
  memset(g, 0, sizeof(*g));
  g->name = strdup(name);
  g->preferred = preferred ? strdup(preferred) : NULL;
  size_t n = json_array_size(versions);
  g->versions = calloc(n + 1, sizeof(char *));
  size_t i;
  json_t *v;
  json_array_foreach(versions, i, v)
  {
    const char *ver =
        json_is_string(v) ? json_string_value(v) : json_string_value(json_object_get(v, "version"));
    if (ver && g->versions) g->versions[g->nversions++] = strdup(ver);
  }
}

static bool is_aggregated(json_t *root)
{
  const char *kind = json_string_value(json_object_get(root, "kind"));
  return kind && !strcmp(kind, "APIGroupDiscoveryList");
}

/* Aggregated discovery (apidiscovery.k8s.io/v2): every group, version and
 * resource in one document; versions come in preference order. */
static void parse_aggregated(struct k8s_discovery *d, json_t *root)
{
  size_t i;
  json_t *item;
  json_array_foreach(json_object_get(root, "items"), i, item)
  {
    const char *group =
        json_string_value(json_object_get(json_object_get(item, "metadata"), "name"));
    if (!group) group = "";
    json_t *versions = json_object_get(item, "versions");
    add_group(d->next, group,
              json_string_value(json_object_get(json_array_get(versions, 0), "version")), versions);
    size_t j;
    json_t *v;
    json_array_foreach(versions, j, v)
    {
      const char *version = json_string_value(json_object_get(v, "version"));
      if (!version) continue;
      const char *fresh = json_string_value(json_object_get(v, "freshness"));
      if (fresh && !strcmp(fresh, "Stale")) {
        char av[256];
        if (*group)
          snprintf(av, sizeof(av), "%s/%s", group, version);
        else
          snprintf(av, sizeof(av), "%s", version);
        keep_previous(d, av);
        continue;
      }
      size_t k;
      json_t *r;
      json_array_foreach(json_object_get(v, "resources"), k, r)
      {
        const char *resource = json_string_value(json_object_get(r, "resource"));
        const char *kind =
            json_string_value(json_object_get(json_object_get(r, "responseKind"), "kind"));
        const char *scope = json_string_value(json_object_get(r, "scope"));
        if (!resource || !kind || !*kind) continue;
        bool status = false;
        size_t m;
        json_t *sub;
        json_array_foreach(json_object_get(r, "subresources"), m, sub)
        {
          const char *name = json_string_value(json_object_get(sub, "subresource"));
          if (name && !strcmp(name, "status")) status = true;
        }
        snapshot_add(d->next, group, version, kind, resource, scope && !strcmp(scope, "Namespaced"),
                     status);
      }
    }
  }
}

/* Both roots arrived: parse the aggregated documents, or fan out one request
 * per group-version (legacy discovery). */
static void roots_ready(struct k8s_discovery *d)
{
  if (!d->roots_ok) {
    finish(d, false);
    return;
  }
  d->next = calloc(1, sizeof(*d->next));
  if (!d->next) {
    finish(d, false);
    return;
  }
  d->pending = 1; /* held until every request is sent */
  size_t i;
  if (is_aggregated(d->api)) {
    parse_aggregated(d, d->api);
  } else {
    json_t *versions = json_object_get(d->api, "versions");
    add_group(d->next, "", json_string_value(json_array_get(versions, 0)), versions);
    json_t *v;
    json_array_foreach(versions, i, v) start_gv(d, "", json_string_value(v));
  }
  if (is_aggregated(d->apis)) {
    parse_aggregated(d, d->apis);
  } else {
    json_t *g;
    json_array_foreach(json_object_get(d->apis, "groups"), i, g)
    {
      const char *name = json_string_value(json_object_get(g, "name"));
      if (!name) continue;
      json_t *gvs = json_object_get(g, "versions");
      const char *pref =
          json_string_value(json_object_get(json_object_get(g, "preferredVersion"), "version"));
      add_group(d->next, name, pref, gvs);
      size_t j;
      json_t *gv;
      json_array_foreach(gvs, j, gv)
      {
        const char *ver = json_string_value(json_object_get(gv, "version"));
        if (ver) start_gv(d, name, ver);
      }
    }
  }
  if (--d->pending == 0) finish(d, true);
}

static void root_done(const struct k8s_result *res, void *data)
{
  struct k8s_discovery *d = data;
  if (res->error) {
    char b[512];
    k8s_log(K8S_LOG_WARN, "discovery failed", "path", res->path, "error",
            k8s_status_format(res->error, b, sizeof(b)), NULL);
    d->roots_ok = false;
  } else if (!strcmp(res->path, "/api")) {
    d->api = json_incref(res->object);
  } else {
    d->apis = json_incref(res->object);
  }
  if (--d->roots_pending == 0) roots_ready(d);
}

int k8s_discovery_refresh(struct k8s_discovery *d,
                          void (*done)(struct k8s_discovery *, bool ok, void *), void *data)
{
  if (done) {
    struct waiter *w = realloc(d->waiters, (d->nwaiters + 1) * sizeof(*w));
    if (!w) return -ENOMEM;
    d->waiters = w;
    w[d->nwaiters].done = done;
    w[d->nwaiters].data = data;
    d->nwaiters++;
  }
  if (d->refreshing) return 0;
  d->refreshing = true;
  d->roots_ok = true;
  d->roots_pending = 2;
  if (k8s_client_get_raw(d->c, "/api", AGGREGATED_ACCEPT, root_done, d)) {
    d->roots_ok = false;
    d->roots_pending--;
  }
  if (k8s_client_get_raw(d->c, "/apis", AGGREGATED_ACCEPT, root_done, d)) {
    d->roots_ok = false;
    d->roots_pending--;
  }
  if (d->roots_pending == 0) roots_ready(d);
  return 0;
}

static void timer_fire(struct k8s_loop *loop, void *data)
{
  struct k8s_discovery *d = data;
  d->timer = 0;
  k8s_discovery_refresh(d, NULL, NULL);
}

static void schedule(struct k8s_discovery *d)
{
  d->timer = k8s_loop_timer_add(d->loop, d->interval, timer_fire, d);
}

struct k8s_discovery *k8s_discovery_new(struct k8s_client *c, double interval)
{
  struct k8s_discovery *d = calloc(1, sizeof(*d));
  if (!d) return NULL;
  d->c = c;
  d->loop = k8s_http_loop(k8s_client_http(c));
  d->interval = interval > 0 ? interval : 30;
  return d;
}

void k8s_discovery_set_interval(struct k8s_discovery *d, double interval)
{
  if (interval <= 0 || interval == d->interval) return;
  d->interval = interval;
  if (d->timer) { /* re-arm with the new interval */
    k8s_loop_timer_cancel(d->loop, d->timer);
    d->timer = 0;
    schedule(d);
  }
}

int k8s_discovery_start(struct k8s_discovery *d)
{
  if (d->started) return -EALREADY;
  d->started = true;
  if (d->cur) { /* already refreshed once: just keep it fresh */
    if (!d->timer && !d->refreshing) schedule(d);
    return 0;
  }
  return k8s_discovery_refresh(d, NULL, NULL);
}

void k8s_discovery_free(struct k8s_discovery *d)
{
  if (!d) return;
  if (d->timer) k8s_loop_timer_cancel(d->loop, d->timer);
  /* requests in flight carry d (roots) or a gv_req (group-versions) */
  k8s_client_cancel_data(d->c, d);
  while (d->gv_reqs) {
    struct gv_req *q = d->gv_reqs;
    d->gv_reqs = q->next;
    k8s_client_cancel_data(d->c, q);
    free(q);
  }
  snapshot_free(d->cur);
  snapshot_free(d->next);
  json_decref(d->api);
  json_decref(d->apis);
  free(d->waiters);
  free(d);
}

int k8s_discovery_on_change(struct k8s_discovery *d, k8s_discovery_fn fn, void *data)
{
  if (!fn) return -EINVAL;
  if (d->nlisteners == sizeof(d->listeners) / sizeof(d->listeners[0])) return -ENOSPC;
  d->listeners[d->nlisteners].fn = fn;
  d->listeners[d->nlisteners].data = data;
  d->nlisteners++;
  return 0;
}

void k8s_discovery_remove_listener(struct k8s_discovery *d, k8s_discovery_fn fn, void *data)
{
  for (size_t i = 0; i < d->nlisteners; i++) {
    if (d->listeners[i].fn != fn || d->listeners[i].data != data) continue;
    memmove(&d->listeners[i], &d->listeners[i + 1],
            (d->nlisteners - i - 1) * sizeof(d->listeners[0]));
    d->nlisteners--;
    return;
  }
}

bool k8s_discovery_ready(const struct k8s_discovery *d)
{
  return d->cur != NULL;
}

const struct k8s_api_resource *k8s_discovery_lookup(const struct k8s_discovery *d,
                                                    const char *api_version, const char *kind)
{
  return snapshot_lookup(d->cur, api_version, kind);
}

int k8s_discovery_gvr(const struct k8s_discovery *d, const char *api_version, const char *kind,
                      struct k8s_gvr *gvr)
{
  const struct k8s_api_resource *r = k8s_discovery_lookup(d, api_version, kind);
  if (!r) return -ENOENT;
  gvr->group = r->group;
  gvr->version = r->version;
  gvr->resource = r->resource;
  gvr->namespaced = r->namespaced;
  return 0;
}

bool k8s_discovery_served(const struct k8s_discovery *d, const char *api_version, const char *kind)
{
  return k8s_discovery_lookup(d, api_version, kind) != NULL;
}

static const struct group *find_group(const struct snapshot *s, const char *group)
{
  if (!s) return NULL;
  for (size_t i = 0; i < s->ngroups; i++)
    if (!strcmp(s->groups[i].name, group)) return &s->groups[i];
  return NULL;
}

size_t k8s_discovery_versions(const struct k8s_discovery *d, const char *group, const char *kind,
                              const char **out, size_t max)
{
  const struct group *g = find_group(d->cur, group ? group : "");
  if (!g) return 0;
  size_t n = 0;
  char av[256];
  /* preferred first */
  if (g->preferred) {
    if (*g->name)
      snprintf(av, sizeof(av), "%s/%s", g->name, g->preferred);
    else
      snprintf(av, sizeof(av), "%s", g->preferred);
    if (snapshot_lookup(d->cur, av, kind)) {
      if (n < max) out[n] = g->preferred;
      n++;
    }
  }
  for (size_t i = 0; i < g->nversions; i++) {
    if (g->preferred && !strcmp(g->versions[i], g->preferred)) continue;
    if (*g->name)
      snprintf(av, sizeof(av), "%s/%s", g->name, g->versions[i]);
    else
      snprintf(av, sizeof(av), "%s", g->versions[i]);
    if (!snapshot_lookup(d->cur, av, kind)) continue;
    if (n < max) out[n] = g->versions[i];
    n++;
  }
  return n;
}

const char *k8s_discovery_preferred_version(const struct k8s_discovery *d, const char *group)
{
  const struct group *g = find_group(d->cur, group ? group : "");
  return g ? g->preferred : NULL;
}

const struct k8s_api_resource *k8s_discovery_resources(const struct k8s_discovery *d, size_t *n)
{
  *n = d->cur ? d->cur->nres : 0;
  return d->cur ? d->cur->res : NULL;
}
