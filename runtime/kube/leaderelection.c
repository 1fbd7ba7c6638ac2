/* leaderelection.c: Lease-based leader election (leaderelection.h), a port of
 * client-go's tryAcquireOrRenew: GET the Lease, create it when missing, take
 * it over (PUT with the observed resourceVersion) when it is free, ours, or
 * not renewed for lease_duration as seen on the local monotonic clock; renew
 * every retry_period while leading; give up after renew_deadline without a
 * successful renewal; release by clearing holderIdentity.
 *
 * Owns: the elector, the last observed Lease (json), and two timers (the next
 * attempt, the renew deadline). At most one request is in flight. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/util.h"
#include "kube/leaderelection.h"

static const struct k8s_gvr lease_gvr = {"coordination.k8s.io", "v1", "leases", true};

struct k8s_leader_elector {
  struct k8s_client *c;
  struct k8s_loop *loop;
  struct k8s_leader_election_config cfg;
  char *ns, *name, *identity;
  bool started, leading, in_flight, releasing, released;
  json_t *observed; /* the Lease as last read or written */
  char observed_holder[256];
  char observed_renew[64];
  double observed_time; /* local monotonic time the record last changed */
  double last_renew;    /* local monotonic time of our last successful write */
  uint64_t retry_timer, deadline_timer;
  char last_leader[256];
  void (*release_done)(struct k8s_leader_elector *, bool, void *);
  void *release_data;
  struct k8s_metric *master_status; /* borrowed from cfg.metrics; NULL without */
};

static void try_acquire_or_renew(struct k8s_loop *loop, void *data);

/* ==== helpers ============================================================== */

static void micro_time(char *buf, size_t len)
{
  double now = k8s_wallclock();
  char ts[K8S_TIME_BUF];
  k8s_rfc3339(now, ts);
  long usec = (long)((now - (double)(long long)now) * 1e6);
  snprintf(buf, len, "%.19s.%06ldZ", ts, usec);
}

static const char *spec_str(json_t *lease, const char *key)
{
  const char *s = json_string_value(json_object_get(json_object_get(lease, "spec"), key));
  return s ? s : "";
}

static void schedule(struct k8s_leader_elector *le, double delay)
{
  if (le->retry_timer) k8s_loop_timer_cancel(le->loop, le->retry_timer);
  le->retry_timer = 0;
  if (!le->started || le->releasing) return;
  le->retry_timer = k8s_loop_timer_add(le->loop, delay, try_acquire_or_renew, le);
}

static double jittered(struct k8s_leader_elector *le)
{
  /* client-go: wait.JitterUntil(retryPeriod, 1.2) when campaigning */
  if (le->leading) return le->cfg.retry_period;
  return le->cfg.retry_period * (1.0 + 1.2 * (double)rand() / ((double)RAND_MAX + 1.0));
}

/* leader_election_master_status{name=<lease>}: 1 leading, 0 not */
static void set_master_status(struct k8s_leader_elector *le, bool leading)
{
  const char *lv[] = {le->name};
  k8s_metric_set(le->master_status, lv, leading ? 1 : 0);
}

static void observe_leader(struct k8s_leader_elector *le, const char *holder)
{
  if (strcmp(le->last_leader, holder) == 0) return;
  snprintf(le->last_leader, sizeof(le->last_leader), "%s", holder);
  k8s_log(K8S_LOG_INFO, "leader election: new leader observed", "lease", le->name, "holder",
          *holder ? holder : "<none>", NULL);
  if (le->cfg.new_leader) le->cfg.new_leader(le, holder, le->cfg.data);
}

static void stop_leading(struct k8s_leader_elector *le, const char *why)
{
  if (!le->leading) return;
  le->leading = false;
  set_master_status(le, false);
  if (le->deadline_timer) k8s_loop_timer_cancel(le->loop, le->deadline_timer);
  le->deadline_timer = 0;
  k8s_log(K8S_LOG_ERROR, "leader election: lost the lease", "lease", le->name, "reason", why, NULL);
  if (le->cfg.stopped_leading) le->cfg.stopped_leading(le, le->cfg.data);
}

static void deadline_fire(struct k8s_loop *loop, void *data)
{
  struct k8s_leader_elector *le = data;
  le->deadline_timer = 0;
  if (le->leading && k8s_loop_now(loop) - le->last_renew >= le->cfg.renew_deadline)
    stop_leading(le, "renew deadline passed");
}

static void renewed(struct k8s_leader_elector *le, json_t *lease)
{
  json_decref(le->observed);
  le->observed = json_incref(lease);
  snprintf(le->observed_holder, sizeof(le->observed_holder), "%s", le->identity);
  snprintf(le->observed_renew, sizeof(le->observed_renew), "%s", spec_str(lease, "renewTime"));
  le->last_renew = le->observed_time = k8s_loop_now(le->loop);
  if (le->deadline_timer) k8s_loop_timer_cancel(le->loop, le->deadline_timer);
  le->deadline_timer = k8s_loop_timer_add(le->loop, le->cfg.renew_deadline, deadline_fire, le);
  observe_leader(le, le->identity);
  if (!le->leading) {
    le->leading = true;
    set_master_status(le, true);
    k8s_log(K8S_LOG_INFO, "leader election: acquired the lease", "lease", le->name, "identity",
            le->identity, NULL);
    if (le->cfg.started_leading) le->cfg.started_leading(le, le->cfg.data);
  }
}

static json_t *lease_body(struct k8s_leader_elector *le, json_t *old, const char *holder)
{
  char now[64];
  micro_time(now, sizeof(now));
  const char *old_holder = old ? spec_str(old, "holderIdentity") : "";
  long long transitions =
      old ? json_integer_value(json_object_get(json_object_get(old, "spec"), "leaseTransitions"))
          : 0;
  const char *acquire = now;
  if (old && *holder && !strcmp(old_holder, holder) && *spec_str(old, "acquireTime"))
    acquire = spec_str(old, "acquireTime");
  else if (old && *holder && strcmp(old_holder, holder) != 0)
    transitions++;
  json_t *meta = json_pack("{s:s, s:s}", "name", le->name, "namespace", le->ns);
  const char *rv =
      old ? json_string_value(json_object_get(json_object_get(old, "metadata"), "resourceVersion"))
          : NULL;
  if (rv) json_object_set_new(meta, "resourceVersion", json_string(rv));
  int dur = *holder ? (int)(le->cfg.lease_duration + 0.5) : 1;
  json_t *spec = json_pack("{s:s, s:i, s:s, s:s, s:I}", "holderIdentity", holder,
                           "leaseDurationSeconds", dur, "acquireTime", acquire, "renewTime", now,
                           "leaseTransitions", (json_int_t)transitions);
  return json_pack("{s:s, s:s, s:o, s:o}", "apiVersion", "coordination.k8s.io/v1", "kind", "Lease",
                   "metadata", meta, "spec", spec);
}

/* ==== acquire / renew ====================================================== */

static void write_done(const struct k8s_result *res, void *data)
{
  struct k8s_leader_elector *le = data;
  le->in_flight = false;
  if (res->error) {
    char b[512];
    k8s_log_v(1, "leader election: write failed", "lease", le->name, "error",
              k8s_status_format(res->error, b, sizeof(b)), NULL);
  } else {
    renewed(le, res->object);
  }
  schedule(le, jittered(le));
}

static void get_done(const struct k8s_result *res, void *data)
{
  struct k8s_leader_elector *le = data;
  le->in_flight = false;
  double now = k8s_loop_now(le->loop);
  int rc;
  if (res->error && res->error->code == 404) {
    json_t *body = lease_body(le, NULL, le->identity);
    le->in_flight = true;
    rc = k8s_client_create(le->c, &lease_gvr, le->ns, body, write_done, le);
    json_decref(body);
    if (rc) {
      le->in_flight = false;
      schedule(le, jittered(le));
    }
    return;
  }
  if (res->error) {
    char b[512];
    k8s_log(K8S_LOG_WARN, "leader election: cannot read the lease", "lease", le->name, "error",
            k8s_status_format(res->error, b, sizeof(b)), NULL);
    schedule(le, jittered(le));
    return;
  }
  json_t *lease = res->object;
  const char *holder = spec_str(lease, "holderIdentity");
  const char *renew = spec_str(lease, "renewTime");
  if (strcmp(holder, le->observed_holder) || strcmp(renew, le->observed_renew)) {
    snprintf(le->observed_holder, sizeof(le->observed_holder), "%s", holder);
    snprintf(le->observed_renew, sizeof(le->observed_renew), "%s", renew);
    le->observed_time = now;
  }
  json_decref(le->observed);
  le->observed = json_incref(lease);
  observe_leader(le, holder);
  json_t *durv = json_object_get(json_object_get(lease, "spec"), "leaseDurationSeconds");
  double dur = json_is_integer(durv) ? (double)json_integer_value(durv) : le->cfg.lease_duration;
  bool mine = !strcmp(holder, le->identity);
  if (*holder && !mine && le->observed_time + dur > now) {
    /* held by someone else and not expired */
    if (le->leading) stop_leading(le, "another holder took the lease");
    schedule(le, jittered(le));
    return;
  }
  json_t *body = lease_body(le, lease, le->identity);
  le->in_flight = true;
  rc = k8s_client_update(le->c, &lease_gvr, le->ns, le->name, NULL, body, write_done, le);
  json_decref(body);
  if (rc) {
    le->in_flight = false;
    schedule(le, jittered(le));
  }
}

static void try_acquire_or_renew(struct k8s_loop *loop, void *data)
{
  struct k8s_leader_elector *le = data;
  le->retry_timer = 0;
  if (!le->started || le->releasing || le->in_flight) return;
  le->in_flight = true;
  if (k8s_client_get(le->c, &lease_gvr, le->ns, le->name, get_done, le)) {
    le->in_flight = false;
    schedule(le, jittered(le));
  }
}

/* ==== release ============================================================== */

static void release_done(const struct k8s_result *res, void *data)
{
  struct k8s_leader_elector *le = data;
  le->in_flight = false;
  bool ok = !res->error;
  if (ok) {
    k8s_log(K8S_LOG_INFO, "leader election: released the lease", "lease", le->name, NULL);
  } else {
    char b[512];
    k8s_log(K8S_LOG_WARN, "leader election: release failed", "lease", le->name, "error",
            k8s_status_format(res->error, b, sizeof(b)), NULL);
  }
  le->released = true;
  if (le->release_done) le->release_done(le, ok, le->release_data);
}

void k8s_leader_elector_release(struct k8s_leader_elector *le,
                                void (*done)(struct k8s_leader_elector *, bool ok, void *),
                                void *data)
{
  le->releasing = true;
  if (le->retry_timer) k8s_loop_timer_cancel(le->loop, le->retry_timer);
  if (le->deadline_timer) k8s_loop_timer_cancel(le->loop, le->deadline_timer);
  le->retry_timer = le->deadline_timer = 0;
  bool was_leading = le->leading;
  le->leading = false;
  if (was_leading) set_master_status(le, false);
  if (!was_leading || !le->observed) {
    if (done) done(le, true, data);
    return;
  }
  /* a renewal in flight is abandoned: release from the last written record */
  k8s_client_cancel_data(le->c, le);
  le->in_flight = false;
  le->release_done = done;
  le->release_data = data;
  json_t *body = lease_body(le, le->observed, "");
  le->in_flight = true;
  int rc = k8s_client_update(le->c, &lease_gvr, le->ns, le->name, NULL, body, release_done, le);
  json_decref(body);
  if (rc) {
    le->in_flight = false;
    if (done) done(le, false, data);
  }
}

/* ==== public =============================================================== */

struct k8s_leader_elector *k8s_leader_elector_new(struct k8s_client *c,
                                                  const struct k8s_leader_election_config *cfg)
{
  if (!cfg || !cfg->namespace || !cfg->name || !*cfg->namespace || !*cfg->name) return NULL;
  struct k8s_leader_elector *le = calloc(1, sizeof(*le));
  if (!le) return NULL;
  le->c = c;
  le->loop = k8s_http_loop(k8s_client_http(c));
  le->cfg = *cfg;
  if (le->cfg.lease_duration <= 0) le->cfg.lease_duration = 15;
  if (le->cfg.renew_deadline <= 0) le->cfg.renew_deadline = 10;
  if (le->cfg.retry_period <= 0) le->cfg.retry_period = 2;
  le->ns = strdup(cfg->namespace);
  le->name = strdup(cfg->name);
  if (cfg->identity && *cfg->identity) {
    le->identity = strdup(cfg->identity);
  } else {
    char host[200] = "unknown", id[256];
    gethostname(host, sizeof(host) - 1);
    snprintf(id, sizeof(id), "%s_%ld", host, (long)getpid());
    le->identity = strdup(id);
  }
  le->cfg.namespace = le->ns;
  le->cfg.name = le->name;
  le->cfg.identity = le->identity;
  if (cfg->metrics) {
    static const char *const labels[] = {"name", NULL};
    le->master_status = k8s_metrics_gauge(
        cfg->metrics, "leader_election_master_status",
        "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 "
        "indicates master. 'name' is the string used to identify the lease. Please make sure to "
        "group by name.",
        labels);
  }
  srand((unsigned)getpid() ^ (unsigned)(k8s_loop_now(le->loop) * 1000));
  return le;
}

int k8s_leader_elector_start(struct k8s_leader_elector *le)
{
  if (le->started) return -EALREADY;
  le->started = true;
  set_master_status(le, false);
  k8s_log(K8S_LOG_INFO, "leader election: campaigning", "lease", le->name, "namespace", le->ns,
          "identity", le->identity, NULL);
  schedule(le, 0);
  return 0;
}

bool k8s_leader_elector_is_leader(const struct k8s_leader_elector *le)
{
  return le->leading;
}

const char *k8s_leader_elector_identity(const struct k8s_leader_elector *le)
{
  return le->identity;
}

void k8s_leader_elector_free(struct k8s_leader_elector *le)
{
  if (!le) return;
  if (le->retry_timer) k8s_loop_timer_cancel(le->loop, le->retry_timer);
  if (le->deadline_timer) k8s_loop_timer_cancel(le->loop, le->deadline_timer);
  k8s_client_cancel_data(le->c, le);
  json_decref(le->observed);
  free(le->ns);
  free(le->name);
  free(le->identity);
  free(le);
}
