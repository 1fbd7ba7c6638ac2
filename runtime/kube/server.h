/* server.h: the operator's HTTP endpoints: /metrics (Prometheus text from the
 * runtime/core/metrics.h registry) on the metrics address, and /healthz
 * (the process is alive) and /readyz (a flag set by the caller: caches synced
 * and scripts loaded) on the health-probe address. Served by libmicrohttpd on
 * its internal thread: handlers only read the registry (thread-safe) and the
 * readiness flag (guarded by a mutex); they never touch the loop, Lua or the
 * Store. Both paths are also answered on either port (so one port can serve
 * all when both addresses are equal) — except with secure metrics (HTTPS,
 * every scrape authorized by the API server, see k8s_server_options), where
 * each address serves only its own paths.
 *
 * Addresses: ":8080" (all interfaces), "127.0.0.1:8080", "[::1]:8080", ":0"
 * (an ephemeral port, see k8s_server_port), or "0" / "" (disabled).
 *
 * Ownership: the caller owns the server; it borrows the metrics registry,
 * which must outlive it. */
#ifndef SCHEDSIM_KUBE_SERVER_H
#define SCHEDSIM_KUBE_SERVER_H

#include <stdbool.h>
#include <stddef.h>

struct k8s_server;
struct k8s_metrics;

/* Decides whether a request with bearer token `token` (NULL: none) may use
 * method on path; returns the HTTP status to answer (200 goes on to serve).
 * Called on the server's connection threads; may block. kube/authfilter.h
 * is the one the operator uses (TokenReview + SubjectAccessReview). */
typedef int (*k8s_server_authz_fn)(void *data, const char *token, const char *method,
                                   const char *path);

struct k8s_server_options {
  const char *metrics_addr; /* --metrics-bind-address */
  const char *health_addr;  /* --health-probe-bind-address */
  /* Secure metrics (--metrics-secure): PEM certificate and key (borrowed,
   * copied by the TLS library at start) and the authorizer every /metrics
   * request passes. NULL cert: plain HTTP, no authorization. With TLS the
   * metrics address serves only /metrics and the health address no
   * /metrics; the two addresses must differ. */
  const char *tls_cert_pem, *tls_key_pem;
  k8s_server_authz_fn authz;
  void *authz_data;
};

/* Starts both listeners. Returns NULL with a message in err if an address is
 * malformed or cannot be bound, or the TLS settings are incomplete. metrics
 * may be NULL (/metrics then 404). */
struct k8s_server *k8s_server_start(const struct k8s_server_options *o, struct k8s_metrics *metrics,
                                    char *err, size_t errlen);
/* Stops the listeners (joins the threads; close the authorizer first so no
 * connection thread waits on it). NULL is a no-op. */
void k8s_server_stop(struct k8s_server *srv);
/* Sets /readyz: ready true answers 200 "ok", false 503 with reason (copied;
 * may be NULL). Thread-safe. */
void k8s_server_set_ready(struct k8s_server *srv, bool ready, const char *reason);
/* Marks the process as shutting down: /readyz answers 503 "shutting down". */
void k8s_server_set_shutting_down(struct k8s_server *srv);
/* The bound port of the metrics (which = 0) or health (which = 1) listener,
 * or 0 when disabled. */
int k8s_server_port(const struct k8s_server *srv, int which);

/* Parses "host:port", ":port", "[v6]:port" or "0". Returns 0 and fills host
 * (may be "" for any) and port, 1 when disabled, -1 when malformed. */
int k8s_parse_bind_address(const char *addr, char *host, size_t hostlen, int *port);

#endif
