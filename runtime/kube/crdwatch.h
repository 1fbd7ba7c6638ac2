/* crdwatch.h: refresh discovery when CustomResourceDefinitions change, so a
 * CRD installed after start is served to the controllers within about a
 * second instead of a poll interval (crdwatch.c). */
#ifndef SCHEDSIM_KUBE_CRDWATCH_H
#define SCHEDSIM_KUBE_CRDWATCH_H

#include "kube/discovery.h"
#include "kube/restclient.h"

struct k8s_crdwatch;

/* A watcher of CRDs over c that refreshes d on every change. While its
 * watch runs, d polls every poll_watching seconds; while it cannot (no
 * list/watch right on customresourcedefinitions, errors), every
 * poll_fallback seconds. Borrows c and d (both must outlive it). NULL on
 * malloc failure. */
struct k8s_crdwatch *k8s_crdwatch_new(struct k8s_client *c, struct k8s_discovery *d,
                                      double poll_watching, double poll_fallback);
/* Starts the LIST + WATCH (errors are retried with backoff, logged). 0. */
int k8s_crdwatch_start(struct k8s_crdwatch *w);
/* Cancels the request in flight and the timers, frees w. NULL is a no-op. */
void k8s_crdwatch_free(struct k8s_crdwatch *w);

#endif
