/* leaderelection.h: leader election on a coordination.k8s.io/v1 Lease
 * (client-go's leaderelection semantics).
 *
 * Timings (defaults as client-go and controller-runtime): lease_duration 15 s,
 * renew_deadline 10 s, retry_period 2 s. A candidate tries every retry_period
 * (with jitter) to acquire: it GETs the Lease, creates it if missing, or takes
 * it over with a PUT carrying the observed resourceVersion (optimistic
 * concurrency: a 409 means someone else won the race) when holderIdentity is
 * empty, is itself, or the holder has not renewed for lease_duration as
 * observed on the local monotonic clock (never by comparing wall clocks). The
 * leader renews every retry_period; if no renewal succeeded for renew_deadline
 * it stops leading (stopped_leading is called; controller-runtime then exits).
 * Release (on shutdown) PUTs the Lease with holderIdentity cleared so a
 * successor need not wait for the lease to expire.
 *
 * Metrics: with cfg.metrics, the gauge leader_election_master_status{name}
 * (client-go's leader metric as controller-runtime registers it,
 * sigs.k8s.io/controller-runtime pkg/metrics/leaderelection.go; name = the
 * Lease name, client-go's LeaderElectionConfig.Name) is 0 from start() while
 * campaigning, 1 while leading, 0 again after losing or releasing the Lease.
 *
 * Ownership: the caller owns the elector; it borrows the client and the
 * metrics registry (which must outlive it); strings in the config are copied.
 * Callbacks run on the loop. */
#ifndef SCHEDSIM_KUBE_LEADERELECTION_H
#define SCHEDSIM_KUBE_LEADERELECTION_H

#include <stdbool.h>

#include "core/metrics.h"
#include "kube/restclient.h"

struct k8s_leader_elector;

struct k8s_leader_election_config {
  const char *namespace; /* of the Lease (required) */
  const char *name;      /* of the Lease (required) */
  const char *identity;  /* NULL: "<hostname>_<pid>" */
  double lease_duration; /* 0: 15 s */
  double renew_deadline; /* 0: 10 s */
  double retry_period;   /* 0: 2 s */
  void (*started_leading)(struct k8s_leader_elector *le, void *data);
  void (*stopped_leading)(struct k8s_leader_elector *le, void *data);
  /* optional: the observed holder changed (identity "" when none) */
  void (*new_leader)(struct k8s_leader_elector *le, const char *identity, void *data);
  void *data;
  struct k8s_metrics *metrics; /* optional: leader_election_master_status (above) */
};

/* Creates an idle elector; NULL on invalid config or allocation failure. */
struct k8s_leader_elector *k8s_leader_elector_new(struct k8s_client *c,
                                                  const struct k8s_leader_election_config *cfg);
/* Starts campaigning. Returns 0 or -EALREADY. */
int k8s_leader_elector_start(struct k8s_leader_elector *le);
/* Stops campaigning and, if leading, releases the Lease (clears
 * holderIdentity). done (may be NULL) is called once the release request
 * finished (ok false if it failed) or at once when not leading; stopped_leading
 * is not called for a release. */
void k8s_leader_elector_release(struct k8s_leader_elector *le,
                                void (*done)(struct k8s_leader_elector *, bool ok, void *),
                                void *data);
bool k8s_leader_elector_is_leader(const struct k8s_leader_elector *le);
const char *k8s_leader_elector_identity(const struct k8s_leader_elector *le);
/* Cancels requests and timers without releasing. NULL is a no-op. */
void k8s_leader_elector_free(struct k8s_leader_elector *le);

#endif
