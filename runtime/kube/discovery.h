/* discovery.h: which groups, versions, kinds and resources the server serves.
 *
 * A refresh reads /api and /apis asking for aggregated discovery
 * (apidiscovery.k8s.io/v2, everything in those two documents; group-versions
 * marked Stale keep their previous entries); from a server without it, the
 * legacy lists: /api/v1 and every /apis/GROUP/VERSION, in parallel. It keeps, per apiVersion+kind,
 * the resource name, the namespaced flag and whether a /status subresource exists; per group, the
 * served versions with the server's preferred version first. Refreshes run every `interval` seconds
 * (default 30) and on demand; a group-version whose list fails keeps its
 * previous entries (so an aggregated API that is briefly down does not make
 * kinds vanish). When the set of served apiVersion+kind pairs changes, the
 * on_change listeners run (CRDs come and go).
 *
 * Ownership: the caller owns the discovery and must free it before the client
 * it borrows. Returned pointers are borrowed and valid until the next refresh
 * completes (copy what you keep across loop iterations). */
#ifndef SCHEDSIM_KUBE_DISCOVERY_H
#define SCHEDSIM_KUBE_DISCOVERY_H

#include <stdbool.h>
#include <stddef.h>

#include "kube/restclient.h"

struct k8s_discovery;

struct k8s_api_resource {
  const char *group;       /* "" for core */
  const char *version;     /* "v1" */
  const char *api_version; /* "v1" or "apps/v1" */
  const char *kind;        /* "Deployment" */
  const char *resource;    /* "deployments" */
  bool namespaced;
  bool has_status; /* the resource has a /status subresource */
};

/* Called after a refresh that changed the served set (and after the first). */
typedef void (*k8s_discovery_fn)(struct k8s_discovery *d, void *data);

/* Creates an idle discovery; interval <= 0 means 30 s. */
struct k8s_discovery *k8s_discovery_new(struct k8s_client *c, double interval);
void k8s_discovery_free(struct k8s_discovery *d);
/* Starts the periodic refresh (first refresh at once, unless one already
 * completed: then the next one is `interval` from now). */
int k8s_discovery_start(struct k8s_discovery *d);
/* Sets the seconds between periodic refreshes (> 0), re-arming a pending
 * one (kube/crdwatch.c lengthens it while CRDs are watched). */
void k8s_discovery_set_interval(struct k8s_discovery *d, double interval);
/* Refreshes now; done (may be NULL) is called when this refresh completed,
 * with ok false if /api or /apis failed (the old data is kept). If a refresh
 * is already running, done is called when it completes. */
int k8s_discovery_refresh(struct k8s_discovery *d,
                          void (*done)(struct k8s_discovery *, bool ok, void *), void *data);
/* Adds a change listener (up to 16). Returns 0, or -ENOSPC. */
int k8s_discovery_on_change(struct k8s_discovery *d, k8s_discovery_fn fn, void *data);
/* Removes the listener added with the same fn and data. */
void k8s_discovery_remove_listener(struct k8s_discovery *d, k8s_discovery_fn fn, void *data);

/* True after the first successful refresh. */
bool k8s_discovery_ready(const struct k8s_discovery *d);
/* The resource serving apiVersion+kind, or NULL when not served. */
const struct k8s_api_resource *k8s_discovery_lookup(const struct k8s_discovery *d,
                                                    const char *api_version, const char *kind);
/* Fills gvr from a lookup (strings borrowed like the lookup); -ENOENT if not served. */
int k8s_discovery_gvr(const struct k8s_discovery *d, const char *api_version, const char *kind,
                      struct k8s_gvr *gvr);
bool k8s_discovery_served(const struct k8s_discovery *d, const char *api_version, const char *kind);
/* Served versions of group that have kind, the group's preferred version first,
 * then in the server's order. Stores up to max borrowed strings in out and
 * returns how many there are in total. */
size_t k8s_discovery_versions(const struct k8s_discovery *d, const char *group, const char *kind,
                              const char **out, size_t max);
/* The preferred version of group, or NULL. */
const char *k8s_discovery_preferred_version(const struct k8s_discovery *d, const char *group);
/* Every served resource (borrowed array of *n entries; subresources excluded). */
const struct k8s_api_resource *k8s_discovery_resources(const struct k8s_discovery *d, size_t *n);

#endif
