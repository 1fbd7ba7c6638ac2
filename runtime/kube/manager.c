/* manager.c: the Manager (manager.h): builds the shared dependencies, runs the
 * start sequence (server → discovery → runnables' setup → leader election and
 * cache sync → ready → runnables' start) and the reversed stop sequence on
 * SIGTERM/SIGINT, bounded by shutdown_timeout.
 *
 * Owns: the loop, config, HTTP and REST clients, metrics registry, endpoints
 * server, discovery, cache, leader elector, the runnable list (copies of the
 * descriptors; their data is borrowed) and the readiness gates. Everything is
 * freed in k8s_manager_free, in reverse order of creation. */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/process_metrics.h"
#include "kube/crdwatch.h"
#include "kube/manager.h"
#include "kube/authfilter.h"
#include "core/tlscert.h"

/* Seconds between discovery polls while CRDs are watched: only aggregated
 * APIs (APIService) change without a CRD event. */
#define DISCOVERY_WATCHED_INTERVAL 600.0

enum phase { PHASE_NEW, PHASE_DISCOVERY, PHASE_SYNCING, PHASE_RUNNING, PHASE_STOPPING };

struct runnable {
  struct k8s_runnable r;
  bool set_up, started, stopped;
};

struct gate {
  char *name;
  bool ready;
};

struct k8s_manager {
  struct k8s_manager_options o;
  char *kubeconfig, *context, *ns, *le_ns, *le_id, *metrics_addr, *health_addr;
  struct k8s_loop *loop;
  struct k8s_config *cfg;
  struct k8s_http *http;
  struct k8s_metrics *metrics;
  struct k8s_client *client;
  struct k8s_recorder *recorder;
  struct k8s_discovery *discovery;
  struct k8s_crdwatch *crdwatch; /* refreshes discovery on CRD changes */
  struct k8s_cache *cache;
  struct k8s_server *server;
  struct k8s_authfilter *authfilter; /* secure metrics only */
  char *tls_cert, *tls_key;          /* PEM, secure metrics only */
  struct k8s_leader_elector *elector;
  struct runnable *runnables;
  size_t nrunnables;
  struct gate *gates;
  size_t ngates;
  enum phase phase;
  bool synced, leading, ready_reported;
  int exit_code;
  double sync_started, stop_started, discovery_backoff;
  uint64_t sync_timer, stop_timer, discovery_timer;
  int signals;
};

static void stop_sequence_step(struct k8s_loop *loop, void *data);

/* ==== readiness ============================================================ */

static void update_ready(struct k8s_manager *m)
{
  if (!m->server) return;
  if (m->phase == PHASE_STOPPING) return;
  const char *why = NULL;
  char buf[256];
  if (!m->synced) {
    why = m->phase < PHASE_SYNCING ? "discovery" : "caches not synced";
  } else {
    for (size_t i = 0; i < m->ngates; i++)
      if (!m->gates[i].ready) {
        snprintf(buf, sizeof(buf), "%s not ready", m->gates[i].name);
        why = buf;
        break;
      }
  }
  k8s_server_set_ready(m->server, why == NULL, why);
  if (!why && !m->ready_reported) {
    m->ready_reported = true;
    k8s_log(K8S_LOG_INFO, "ready", NULL);
    /* the initial LISTs' bodies and their parse trees are gone: give the
     * freed heap back to the kernel (≈1 MiB of idle RSS, bench/README.md) */
    malloc_trim(0);
  }
}

void k8s_manager_set_ready(struct k8s_manager *m, const char *gate, bool ready)
{
  for (size_t i = 0; i < m->ngates; i++)
    if (!strcmp(m->gates[i].name, gate)) {
      m->gates[i].ready = ready;
      update_ready(m);
      return;
    }
  struct gate *g = realloc(m->gates, (m->ngates + 1) * sizeof(*g));
  if (!g) return;
  m->gates = g;
  m->gates[m->ngates].name = strdup(gate);
  m->gates[m->ngates].ready = ready;
  if (m->gates[m->ngates].name) m->ngates++;
  update_ready(m);
}

/* ==== runnables ============================================================ */

static int setup_one(struct k8s_manager *m, struct runnable *r)
{
  if (r->set_up) return 0;
  r->set_up = true;
  if (r->r.setup && r->r.setup(m, r->r.data)) {
    k8s_log(K8S_LOG_ERROR, "runnable setup failed", "runnable", r->r.name, NULL);
    return -1;
  }
  return 0;
}

static bool may_start(struct k8s_manager *m, struct runnable *r)
{
  if (m->phase != PHASE_RUNNING || r->started) return false;
  if (r->r.needs_leader && m->o.leader_elect && !m->leading) return false;
  return true;
}

static void start_runnables(struct k8s_manager *m)
{
  for (size_t i = 0; i < m->nrunnables && m->phase == PHASE_RUNNING; i++) {
    struct runnable *r = &m->runnables[i];
    if (!may_start(m, r)) continue;
    r->started = true;
    k8s_log_v(1, "starting runnable", "runnable", r->r.name, NULL);
    if (r->r.start && r->r.start(m, r->r.data)) {
      k8s_log(K8S_LOG_ERROR, "runnable failed to start", "runnable", r->r.name, NULL);
      k8s_manager_stop(m, 1);
      return;
    }
  }
}

int k8s_manager_add_runnable(struct k8s_manager *m, const struct k8s_runnable *r)
{
  struct runnable *v = realloc(m->runnables, (m->nrunnables + 1) * sizeof(*v));
  if (!v) return -ENOMEM;
  m->runnables = v;
  struct runnable *n = &m->runnables[m->nrunnables++];
  memset(n, 0, sizeof(*n));
  n->r = *r;
  if (!n->r.name) n->r.name = "runnable";
  if (m->phase >= PHASE_SYNCING && m->phase != PHASE_STOPPING) {
    if (setup_one(m, n)) {
      k8s_manager_stop(m, 1);
      return 0;
    }
    start_runnables(m);
  }
  return 0;
}

/* ==== start sequence ======================================================= */

static void sync_check(struct k8s_loop *loop, void *data)
{
  struct k8s_manager *m = data;
  m->sync_timer = 0;
  if (m->phase != PHASE_SYNCING) return;
  if (!k8s_cache_has_synced(m->cache)) {
    if (k8s_loop_now(loop) - m->sync_started > m->o.cache_sync_timeout) {
      k8s_log(K8S_LOG_ERROR, "caches did not sync in time", NULL);
      k8s_manager_stop(m, 1);
      return;
    }
    m->sync_timer = k8s_loop_timer_add(loop, 0.05, sync_check, m);
    return;
  }
  m->synced = true;
  m->phase = PHASE_RUNNING;
  k8s_log(K8S_LOG_INFO, "caches synced", NULL);
  update_ready(m);
  start_runnables(m);
}

static void started_leading(struct k8s_leader_elector *le, void *data)
{
  struct k8s_manager *m = data;
  m->leading = true;
  start_runnables(m);
}

static void stopped_leading(struct k8s_leader_elector *le, void *data)
{
  struct k8s_manager *m = data;
  m->leading = false;
  if (m->phase != PHASE_STOPPING) {
    k8s_log(K8S_LOG_ERROR, "leader election lost; stopping", NULL);
    k8s_manager_stop(m, 1);
  }
}

static void discovery_first(struct k8s_discovery *d, bool ok, void *data);

static void discovery_retry(struct k8s_loop *loop, void *data)
{
  struct k8s_manager *m = data;
  m->discovery_timer = 0;
  k8s_discovery_refresh(m->discovery, discovery_first, m);
}

static void discovery_first(struct k8s_discovery *d, bool ok, void *data)
{
  struct k8s_manager *m = data;
  if (m->phase != PHASE_DISCOVERY) return;
  if (!ok) {
    k8s_log(K8S_LOG_WARN, "discovery failed; retrying", NULL);
    m->discovery_timer = k8s_loop_timer_add(m->loop, m->discovery_backoff, discovery_retry, m);
    m->discovery_backoff = m->discovery_backoff * 2 > 30 ? 30 : m->discovery_backoff * 2;
    return;
  }
  k8s_discovery_start(m->discovery); /* periodic refresh from now on */
  /* CRD changes refresh discovery at once; the poll becomes the fallback */
  m->crdwatch = k8s_crdwatch_new(m->client, m->discovery, DISCOVERY_WATCHED_INTERVAL,
                                 m->o.discovery_interval > 0 ? m->o.discovery_interval : 30);
  if (m->crdwatch) k8s_crdwatch_start(m->crdwatch);
  m->phase = PHASE_SYNCING;
  for (size_t i = 0; i < m->nrunnables; i++)
    if (setup_one(m, &m->runnables[i])) {
      k8s_manager_stop(m, 1);
      return;
    }
  if (m->o.leader_elect) {
    struct k8s_leader_election_config lc = {
        .namespace = m->le_ns,
        .name = m->le_id,
        .started_leading = started_leading,
        .stopped_leading = stopped_leading,
        .data = m,
        .metrics = m->metrics,
    };
    m->elector = k8s_leader_elector_new(m->client, &lc);
    if (!m->elector) {
      k8s_manager_stop(m, 1);
      return;
    }
    k8s_leader_elector_start(m->elector);
  }
  m->sync_started = k8s_loop_now(m->loop);
  update_ready(m);
  sync_check(m->loop, m);
}

static void on_signal(struct k8s_loop *loop, int signo, void *data)
{
  struct k8s_manager *m = data;
  m->signals++;
  if (m->signals > 1) {
    k8s_log(K8S_LOG_WARN, "second signal: exiting now", NULL);
    m->exit_code = 1;
    k8s_loop_stop(loop);
    return;
  }
  k8s_log(K8S_LOG_INFO, "signal received; shutting down", "signal",
          signo == 15 ? "SIGTERM" : "SIGINT", NULL);
  k8s_manager_stop(m, 0);
}

static int authz(void *data, const char *token, const char *method, const char *path)
{
  return k8s_authfilter_check(data, token, method, path);
}

int k8s_manager_run(struct k8s_manager *m)
{
  char err[512];
  struct k8s_server_options so = {.metrics_addr = m->metrics_addr,
                                  .health_addr = m->health_addr,
                                  .tls_cert_pem = m->tls_cert,
                                  .tls_key_pem = m->tls_key,
                                  .authz = authz,
                                  .authz_data = m->authfilter};
  m->server = k8s_server_start(&so, m->metrics, err, sizeof(err));
  if (!m->server && strcmp(m->metrics_addr, "0") && strcmp(m->health_addr, "0")) {
    k8s_log(K8S_LOG_ERROR, "cannot serve the endpoints", "error", err, NULL);
    return 1;
  }
  if (!m->server && err[0]) {
    k8s_log(K8S_LOG_ERROR, "cannot serve the endpoints", "error", err, NULL);
    return 1;
  }
  k8s_loop_set_signal_handler(m->loop, on_signal, m);
  char mp[16], hp[16];
  snprintf(mp, sizeof(mp), "%d", k8s_server_port(m->server, 0));
  snprintf(hp, sizeof(hp), "%d", k8s_server_port(m->server, 1));
  k8s_log(K8S_LOG_INFO, "starting manager", "server", m->cfg->server, "source", m->cfg->source,
          "namespace", m->ns ? m->ns : "", K8S_NUM("metricsPort"), mp, K8S_NUM("healthPort"), hp,
          "metricsScheme", m->tls_cert ? "https" : "http", NULL);
  m->phase = PHASE_DISCOVERY;
  m->discovery_backoff = 1;
  update_ready(m);
  k8s_discovery_refresh(m->discovery, discovery_first, m);
  int rc = k8s_loop_run(m->loop);
  if (rc < 0) {
    k8s_log(K8S_LOG_ERROR, "event loop failed", NULL);
    return 1;
  }
  return m->exit_code;
}

/* ==== stop sequence ======================================================== */

static void release_done(struct k8s_leader_elector *le, bool ok, void *data)
{
  struct k8s_manager *m = data;
  k8s_loop_stop(m->loop);
}

static void force_stop(struct k8s_loop *loop, void *data)
{
  struct k8s_manager *m = data;
  m->stop_timer = 0;
  k8s_log(K8S_LOG_WARN, "lease release did not finish in time", NULL);
  k8s_loop_stop(loop);
}

static void stop_informer(struct k8s_informer *inf, void *data)
{
  k8s_informer_stop(inf);
}

/* Called every 50 ms while stopping: waits for idle runnables, then releases
 * the lease and stops the loop. */
static void stop_sequence_step(struct k8s_loop *loop, void *data)
{
  struct k8s_manager *m = data;
  m->stop_timer = 0;
  double elapsed = k8s_loop_now(loop) - m->stop_started;
  bool idle = true;
  for (size_t i = 0; i < m->nrunnables; i++) {
    struct runnable *r = &m->runnables[i];
    if (r->started && r->r.idle && !r->r.idle(r->r.data)) idle = false;
  }
  /* keep at least 1 s of the budget for the release */
  double budget = m->o.shutdown_timeout - 1.0;
  if (!idle && elapsed < budget) {
    m->stop_timer = k8s_loop_timer_add(loop, 0.05, stop_sequence_step, m);
    return;
  }
  if (!idle) k8s_log(K8S_LOG_WARN, "shutdown timeout: abandoning work in flight", NULL);
  k8s_cache_foreach(m->cache, stop_informer, NULL);
  if (m->elector && k8s_leader_elector_is_leader(m->elector)) {
    k8s_leader_elector_release(m->elector, release_done, m);
    /* hard bound: whatever is left of the timeout, at least 1 s */
    double left = m->o.shutdown_timeout - elapsed;
    m->stop_timer = k8s_loop_timer_add(loop, left > 1 ? left : 1, force_stop, m);
    return;
  }
  if (m->elector) k8s_leader_elector_release(m->elector, NULL, NULL);
  k8s_loop_stop(loop);
}

void k8s_manager_stop(struct k8s_manager *m, int exit_code)
{
  if (m->phase == PHASE_STOPPING) return;
  m->phase = PHASE_STOPPING;
  m->exit_code = exit_code;
  m->stop_started = k8s_loop_now(m->loop);
  if (m->server) k8s_server_set_shutting_down(m->server);
  if (m->sync_timer) k8s_loop_timer_cancel(m->loop, m->sync_timer);
  if (m->discovery_timer) k8s_loop_timer_cancel(m->loop, m->discovery_timer);
  m->sync_timer = m->discovery_timer = 0;
  for (size_t i = m->nrunnables; i-- > 0;) {
    struct runnable *r = &m->runnables[i];
    if (!r->started || r->stopped) continue;
    r->stopped = true;
    k8s_log_v(1, "stopping runnable", "runnable", r->r.name, NULL);
    if (r->r.stop) r->r.stop(m, r->r.data);
  }
  stop_sequence_step(m->loop, m);
}

/* ==== construction ========================================================= */

static char *dup_or(const char *s, const char *def)
{
  const char *v = s && *s ? s : def;
  return v ? strdup(v) : NULL;
}

int k8s_manager_new(const struct k8s_manager_options *opts, struct k8s_manager **out, char *err,
                    size_t errlen)
{
  *out = NULL;
  struct k8s_manager *m = calloc(1, sizeof(*m));
  if (!m) return 1;
  m->o = *opts;
  if (m->o.shutdown_timeout <= 0) m->o.shutdown_timeout = 10;
  if (m->o.cache_sync_timeout <= 0) m->o.cache_sync_timeout = 120;
  m->kubeconfig = dup_or(opts->kubeconfig, NULL);
  m->context = dup_or(opts->context, NULL);
  m->ns = dup_or(opts->namespace, NULL);
  m->metrics_addr = dup_or(opts->metrics_addr, ":8080");
  m->health_addr = dup_or(opts->health_addr, ":8081");
  m->le_id = dup_or(opts->leader_election_id, "schedsim-operator");
  char host[256];
  int port;
  if (k8s_parse_bind_address(m->metrics_addr, host, sizeof(host), &port) < 0) {
    snprintf(err, errlen, "--metrics-bind-address: malformed \"%s\" (want HOST:PORT, :PORT or 0)",
             m->metrics_addr);
    k8s_manager_free(m);
    return 2;
  }
  if (k8s_parse_bind_address(m->health_addr, host, sizeof(host), &port) < 0) {
    snprintf(err, errlen,
             "--health-probe-bind-address: malformed \"%s\" (want HOST:PORT, :PORT or 0)",
             m->health_addr);
    k8s_manager_free(m);
    return 2;
  }
  if (m->o.metrics_secure) {
    int rc = m->o.metrics_cert_path
                 ? k8s_tls_load(m->o.metrics_cert_path,
                                m->o.metrics_cert_name ? m->o.metrics_cert_name : "tls.crt",
                                m->o.metrics_cert_key ? m->o.metrics_cert_key : "tls.key",
                                &m->tls_cert, &m->tls_key, err, errlen)
                 : k8s_tls_self_signed("schedsim-operator-metrics", 365, &m->tls_cert, &m->tls_key,
                                       err, errlen);
    if (rc) {
      char why[512];
      snprintf(why, sizeof why, "%s", err);
      snprintf(err, errlen, "--metrics-secure: %s", why);
      k8s_manager_free(m);
      return 2;
    }
  } else if (m->o.metrics_cert_path) {
    snprintf(err, errlen, "--metrics-cert-path is set but --metrics-secure is not");
    k8s_manager_free(m);
    return 2;
  }
  struct k8s_config_options co = {.kubeconfig = m->kubeconfig, .context = m->context};
  if (k8s_config_load(&co, &m->cfg, err, errlen)) {
    k8s_manager_free(m);
    return 2;
  }
  m->le_ns =
      dup_or(opts->leader_election_namespace, m->cfg->namespace ? m->cfg->namespace : "default");
  m->loop = k8s_loop_new();
  m->metrics = k8s_metrics_new();
  if (!m->loop || !m->metrics || k8s_process_metrics_register(m->metrics) != 0) goto fail;
  m->http = k8s_http_new(m->loop, m->cfg, NULL);
  if (!m->http) goto fail;
  m->client = k8s_client_new(m->http, m->metrics);
  if (!m->client) goto fail;
  m->recorder = k8s_recorder_new(m->client, K8S_FIELD_MANAGER);
  if (!m->recorder) goto fail;
  if (m->o.metrics_secure) {
    m->authfilter = k8s_authfilter_new(m->loop, m->client, 10);
    if (!m->authfilter) goto fail;
  }
  m->discovery = k8s_discovery_new(m->client, m->o.discovery_interval);
  struct k8s_cache_options cacheo = {.namespace = m->ns,
                                     .dead_stream_timeout = m->o.dead_stream_timeout,
                                     .field_manager = K8S_FIELD_MANAGER,
                                     .metrics = m->metrics};
  m->cache = k8s_cache_new(m->client, m->discovery, &cacheo);
  if (!m->discovery || !m->cache) goto fail;
  m->o.kubeconfig = m->kubeconfig;
  m->o.context = m->context;
  m->o.namespace = m->ns;
  m->o.metrics_addr = m->metrics_addr;
  m->o.health_addr = m->health_addr;
  m->o.leader_election_namespace = m->le_ns;
  m->o.leader_election_id = m->le_id;
  *out = m;
  return 0;
fail:
  snprintf(err, errlen, "cannot create the manager: %s", strerror(errno ? errno : ENOMEM));
  k8s_manager_free(m);
  return 1;
}

void k8s_manager_free(struct k8s_manager *m)
{
  if (!m) return;
  if (m->loop) {
    if (m->sync_timer) k8s_loop_timer_cancel(m->loop, m->sync_timer);
    if (m->stop_timer) k8s_loop_timer_cancel(m->loop, m->stop_timer);
    if (m->discovery_timer) k8s_loop_timer_cancel(m->loop, m->discovery_timer);
  }
  k8s_authfilter_close(m->authfilter); /* no connection thread waits on the loop any more */
  k8s_server_stop(m->server);
  k8s_authfilter_free(m->authfilter);
  free(m->tls_cert);
  free(m->tls_key);
  /* the Runnables' data goes first, while the Cache they hold handlers on,
   * the client and the loop still exist; in reverse order of adding */
  for (size_t i = m->nrunnables; i-- > 0;)
    if (m->runnables[i].r.free) m->runnables[i].r.free(m->runnables[i].r.data);
  k8s_leader_elector_free(m->elector);
  k8s_cache_free(m->cache);
  k8s_crdwatch_free(m->crdwatch);
  k8s_discovery_free(m->discovery);
  k8s_recorder_free(m->recorder);
  k8s_client_free(m->client);
  k8s_http_free(m->http);
  k8s_loop_free(m->loop);
  k8s_metrics_free(m->metrics);
  k8s_config_free(m->cfg);
  for (size_t i = 0; i < m->ngates; i++)
    free(m->gates[i].name);
  free(m->gates);
  free(m->runnables);
  free(m->kubeconfig);
  free(m->context);
  free(m->ns);
  free(m->le_ns);
  free(m->le_id);
  free(m->metrics_addr);
  free(m->health_addr);
  free(m);
}

/* ==== accessors ============================================================ */

bool k8s_manager_is_leader(const struct k8s_manager *m)
{
  return !m->o.leader_elect || m->leading;
}

bool k8s_manager_stopping(const struct k8s_manager *m)
{
  return m->phase == PHASE_STOPPING;
}

struct k8s_loop *k8s_manager_loop(struct k8s_manager *m)
{
  return m->loop;
}

struct k8s_config *k8s_manager_config(struct k8s_manager *m)
{
  return m->cfg;
}

struct k8s_recorder *k8s_manager_recorder(struct k8s_manager *m)
{
  return m->recorder;
}

struct k8s_client *k8s_manager_client(struct k8s_manager *m)
{
  return m->client;
}

struct k8s_discovery *k8s_manager_discovery(struct k8s_manager *m)
{
  return m->discovery;
}

struct k8s_cache *k8s_manager_cache(struct k8s_manager *m)
{
  return m->cache;
}

struct k8s_metrics *k8s_manager_metrics(struct k8s_manager *m)
{
  return m->metrics;
}

const char *k8s_manager_namespace(const struct k8s_manager *m)
{
  return m->ns;
}
