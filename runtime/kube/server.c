/* server.c: /metrics, /healthz and /readyz over libmicrohttpd (server.h).
 *
 * Owns: up to two MHD daemons (metrics, health probes), each with its own
 * internal polling thread — or, for secure metrics, TLS and a thread per
 * connection (the authorizer blocks while the API server reviews the token) —
 * and the readiness flag under a mutex. Handlers read only the metrics
 * registry (which has its own lock), that flag, and call the authorizer. */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "core/metrics.h"
#include "kube/server.h"
#include "core/util.h"

struct k8s_server;

/* What one daemon serves: the metrics daemon of a secure server serves only
 * /metrics, behind the authorizer; the health daemon of a secure server
 * serves no /metrics (it would bypass the authorizer). */
struct listener {
  struct k8s_server *srv;
  bool metrics_only, no_metrics;
};

struct k8s_server {
  struct MHD_Daemon *d[2]; /* metrics, health */
  struct listener l[2];
  int port[2];
  struct k8s_metrics *metrics;
  k8s_server_authz_fn authz;
  void *authz_data;
  pthread_mutex_t mu;
  bool ready, shutting_down;
  char reason[256];
};

/* ==== addresses ============================================================ */

int k8s_parse_bind_address(const char *addr, char *host, size_t hostlen, int *port)
{
  if (!addr || !*addr || !strcmp(addr, "0")) return 1;
  const char *colon;
  if (addr[0] == '[') {
    const char *end = strchr(addr, ']');
    if (!end || end[1] != ':') return -1;
    size_t n = (size_t)(end - addr - 1);
    if (n + 1 > hostlen) return -1;
    memcpy(host, addr + 1, n);
    host[n] = 0;
    colon = end + 1;
  } else {
    colon = strrchr(addr, ':');
    if (!colon) return -1;
    size_t n = (size_t)(colon - addr);
    if (n + 1 > hostlen) return -1;
    memcpy(host, addr, n);
    host[n] = 0;
  }
  char *end;
  long p = strtol(colon + 1, &end, 10);
  if (!colon[1] || *end || p < 0 || p > 65535) return -1;
  *port = (int)p;
  return 0;
}

/* ==== handlers ============================================================= */

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *ctype,
                             char *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
  struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
  if (!r) return MHD_NO;
  MHD_add_response_header(r, "Content-Type", ctype);
  enum MHD_Result ret = MHD_queue_response(conn, status, r);
  MHD_destroy_response(r);
  return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size, void **con_cls)
{
  const struct listener *l = cls;
  struct k8s_server *srv = l->srv;
  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
    return reply(conn, 405, "text/plain", "method not allowed\n", 19, MHD_RESPMEM_PERSISTENT);
  if (!strcmp(url, "/metrics") && !l->no_metrics) {
    if (srv->authz) {
      const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
      const char *token = h && !strncasecmp(h, "Bearer ", 7) ? h + 7 : NULL;
      int status = srv->authz(srv->authz_data, token, method, url);
      if (status != 200) {
        char body[64];
        int n = snprintf(body, sizeof body, "%s\n",
                         status == 401   ? "Unauthorized"
                         : status == 403 ? "Forbidden (user cannot get path \"/metrics\")"
                                         : "Authorization unavailable");
        return reply(conn, (unsigned)status, "text/plain", body, (size_t)n, MHD_RESPMEM_MUST_COPY);
      }
    }
    if (!srv->metrics)
      return reply(conn, 404, "text/plain", "no metrics\n", 11, MHD_RESPMEM_PERSISTENT);
    size_t len = 0;
    char *text = k8s_metrics_render(srv->metrics, &len);
    if (!text) return reply(conn, 500, "text/plain", "out of memory\n", 14, MHD_RESPMEM_PERSISTENT);
    return reply(conn, 200, "text/plain; version=0.0.4; charset=utf-8", text, len,
                 MHD_RESPMEM_MUST_FREE);
  }
  if (l->metrics_only)
    return reply(conn, 404, "text/plain", "not found\n", 10, MHD_RESPMEM_PERSISTENT);
  if (!strcmp(url, "/healthz") || !strcmp(url, "/livez"))
    return reply(conn, 200, "text/plain", "ok", 2, MHD_RESPMEM_PERSISTENT);
  if (!strcmp(url, "/readyz")) {
    char buf[300];
    unsigned status;
    pthread_mutex_lock(&srv->mu);
    if (srv->shutting_down) {
      status = 503;
      snprintf(buf, sizeof(buf), "shutting down\n");
    } else if (srv->ready) {
      status = 200;
      snprintf(buf, sizeof(buf), "ok");
    } else {
      status = 503;
      snprintf(buf, sizeof(buf), "not ready: %s\n", srv->reason[0] ? srv->reason : "starting");
    }
    pthread_mutex_unlock(&srv->mu);
    return reply(conn, status, "text/plain", buf, strlen(buf), MHD_RESPMEM_MUST_COPY);
  }
  return reply(conn, 404, "text/plain", "not found\n", 10, MHD_RESPMEM_PERSISTENT);
}

/* ==== lifecycle ============================================================ */

static struct MHD_Daemon *start(unsigned flags, uint16_t port, struct listener *l,
                                const struct sockaddr *sa, const char *cert, const char *key)
{
  struct MHD_OptionItem o[6];
  int n = 0;
  o[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, 10, NULL};
  if (sa) o[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, (void *)sa};
  if (cert) {
    o[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)cert};
    o[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, (void *)key};
    o[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, 64, NULL};
  }
  o[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
  return MHD_start_daemon(flags, port, NULL, NULL, handle, l, MHD_OPTION_ARRAY, o, MHD_OPTION_END);
}

static struct MHD_Daemon *listen_on(struct listener *l, const char *flag, const char *addr,
                                    const char *cert, const char *key, char *err, size_t errlen)
{
  char host[256];
  int port = 0;
  int rc = k8s_parse_bind_address(addr, host, sizeof(host), &port);
  if (rc == 1) return NULL;
  if (rc < 0) {
    k8s_seterr(err, errlen, "%s: malformed address \"%s\" (want HOST:PORT, :PORT or 0)", flag,
               addr);
    return NULL;
  }
  unsigned flags = cert ? MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                              MHD_USE_POLL | MHD_USE_TLS
                        : MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
  struct MHD_Daemon *d = NULL;
  if (!*host) {
    d = start(flags | MHD_USE_DUAL_STACK, (uint16_t)port, l, NULL, cert, key);
    if (!d) d = start(flags, (uint16_t)port, l, NULL, cert, key);
  } else {
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai = NULL;
    char ps[16];
    snprintf(ps, sizeof(ps), "%d", port);
    if (getaddrinfo(host, ps, &hints, &ai) != 0 || !ai) {
      k8s_seterr(err, errlen, "%s: cannot resolve \"%s\"", flag, host);
      return NULL;
    }
    d = start(flags | (ai->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0), (uint16_t)port, l,
              ai->ai_addr, cert, key);
    freeaddrinfo(ai);
  }
  if (!d)
    k8s_seterr(err, errlen, "%s: cannot listen on %s (in use%s?)", flag, addr,
               cert ? ", or a certificate or key the TLS library refuses" : "");
  return d;
}

static int bound_port(struct MHD_Daemon *d)
{
  if (!d) return 0;
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
  return info ? info->port : 0;
}

struct k8s_server *k8s_server_start(const struct k8s_server_options *o, struct k8s_metrics *metrics,
                                    char *err, size_t errlen)
{
  const char *metrics_addr = o->metrics_addr, *health_addr = o->health_addr;
  bool secure = o->tls_cert_pem != NULL;
  if (err && errlen) err[0] = 0;
  bool same = metrics_addr && health_addr && !strcmp(metrics_addr, health_addr) &&
              strcmp(metrics_addr, "0") && !strstr(metrics_addr, ":0");
  if (secure && (!o->tls_key_pem || !o->authz)) {
    k8s_seterr(err, errlen, "secure metrics need a certificate, its key and an authorizer");
    return NULL;
  }
  if (secure && same) {
    k8s_seterr(err, errlen,
               "--metrics-bind-address and --health-probe-bind-address are equal: secure "
               "metrics (HTTPS) and the probes (HTTP) need two addresses");
    return NULL;
  }
  struct k8s_server *srv = calloc(1, sizeof(*srv));
  if (!srv) return NULL;
  pthread_mutex_init(&srv->mu, NULL);
  srv->metrics = metrics;
  srv->authz = secure ? o->authz : NULL;
  srv->authz_data = o->authz_data;
  srv->l[0] = (struct listener){srv, secure, false};
  srv->l[1] = (struct listener){srv, false, secure};
  srv->d[0] = listen_on(&srv->l[0], "--metrics-bind-address", metrics_addr, o->tls_cert_pem,
                        o->tls_key_pem, err, errlen);
  if (err && err[0]) goto fail;
  if (!same) {
    srv->d[1] =
        listen_on(&srv->l[1], "--health-probe-bind-address", health_addr, NULL, NULL, err, errlen);
    if (err && err[0]) goto fail;
  }
  srv->port[0] = bound_port(srv->d[0]);
  srv->port[1] = same ? srv->port[0] : bound_port(srv->d[1]);
  return srv;
fail:
  k8s_server_stop(srv);
  return NULL;
}

void k8s_server_stop(struct k8s_server *srv)
{
  if (!srv) return;
  for (int i = 0; i < 2; i++)
    if (srv->d[i]) MHD_stop_daemon(srv->d[i]);
  pthread_mutex_destroy(&srv->mu);
  free(srv);
}

void k8s_server_set_ready(struct k8s_server *srv, bool ready, const char *reason)
{
  if (!srv) return;
  pthread_mutex_lock(&srv->mu);
  srv->ready = ready;
  snprintf(srv->reason, sizeof(srv->reason), "%s", reason ? reason : "");
  pthread_mutex_unlock(&srv->mu);
}

void k8s_server_set_shutting_down(struct k8s_server *srv)
{
  if (!srv) return;
  pthread_mutex_lock(&srv->mu);
  srv->shutting_down = true;
  pthread_mutex_unlock(&srv->mu);
}

int k8s_server_port(const struct k8s_server *srv, int which)
{
  if (!srv || which < 0 || which > 1) return 0;
  return srv->port[which];
}
