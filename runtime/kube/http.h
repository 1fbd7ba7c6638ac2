/* http.h: libcurl multi glue, async HTTP requests to one API server.
 *
 * A k8s_http sends requests on a k8s_loop's multi handle, so connections are
 * reused (and multiplexed over HTTP/2 when the server offers it through ALPN;
 * CURL_HTTP_VERSION_2TLS). TLS peer verification is on unless the config says
 * insecure-skip-tls-verify; the CA bundle and client certificate come from
 * memory (CURLOPT_CAINFO_BLOB, CURLOPT_SSLCERT_BLOB, CURLOPT_SSLKEY_BLOB). The
 * bearer token is added as a header on every request and re-read from its
 * file about once a minute (k8s_config_refresh_token).
 *
 * Every request ends exactly once with its done callback, unless the send
 * failed (then it is never called) or the request was cancelled (then it is
 * never called either). The body may instead be streamed (watches): with an
 * on_chunk callback and a 2xx status, body bytes go to on_chunk as they arrive
 * and the done response has an empty body; for any other status the body is
 * buffered and handed to done, so errors always arrive whole.
 *
 * Ownership: the caller owns the k8s_http and must k8s_http_free it before the
 * loop; the k8s_http borrows the loop and the config (both must outlive it).
 * A struct k8s_http_request is owned by the k8s_http and dies right after its
 * done callback returns, or at k8s_http_cancel. A k8s_http_response and the
 * memory it points to are borrowed for the duration of the done callback. */
#ifndef SCHEDSIM_KUBE_HTTP_H
#define SCHEDSIM_KUBE_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "kube/kubeconfig.h"
#include "kube/loop.h"

struct k8s_http;
struct k8s_http_request;

struct k8s_http_response {
  long status;              /* HTTP status, or 0 if no response was received */
  const char *body;         /* NUL-terminated (buffered requests; "" when streamed) */
  size_t len;               /* bytes in body, without the NUL */
  const char *content_type; /* response Content-Type, or NULL */
  int curl_code;            /* CURLcode; CURLE_OK when a response arrived */
  const char *error;        /* transport error text when curl_code != 0, else NULL */
  double elapsed;           /* seconds from send to completion */
  long http_version;        /* 1, 2 (the negotiated major version), 0 if unknown */
};

/* Whole response: called once on the loop; resp is borrowed. */
typedef void (*k8s_http_done_fn)(const struct k8s_http_response *resp, void *data);
/* Streaming body bytes of a 2xx response; called zero or more times before
 * done. Return 0 to continue, non-zero to abort the transfer (done then gets
 * curl_code CURLE_WRITE_ERROR). May call k8s_http_cancel on its own request. */
typedef int (*k8s_http_chunk_fn)(const char *buf, size_t len, void *data);

struct k8s_http_options {
  double connect_timeout; /* seconds to establish TCP+TLS (default 10) */
  double request_timeout; /* default overall timeout of non-streaming requests (default 60) */
  double token_check;     /* seconds between token-file checks (default 60) */
  const char *user_agent; /* default "schedsim-operator/VERSION" */
};

struct k8s_http_req {
  const char *method;       /* "GET", "POST", "PUT", "PATCH", "DELETE" */
  const char *path;         /* appended to cfg->server: "/api/v1/...?..." (already escaped) */
  const char *content_type; /* of body, or NULL */
  const char *body;         /* copied by k8s_http_send; may be NULL */
  size_t body_len;
  const char *accept;         /* Accept header, default "application/json" */
  double timeout;             /* overall seconds; 0: options.request_timeout; <0: none */
  double low_speed_time;      /* streaming: abort if < 1 byte/s for this long (0: off) */
  k8s_http_chunk_fn on_chunk; /* streaming sink, or NULL to buffer the body */
};

/* Creates a client. opts may be NULL for defaults. Returns NULL on failure. */
struct k8s_http *k8s_http_new(struct k8s_loop *loop, struct k8s_config *cfg,
                              const struct k8s_http_options *opts);
/* Cancels every request still in flight (their callbacks are not called) and
 * frees the client. NULL is a no-op. */
void k8s_http_free(struct k8s_http *http);

/* Starts req. On success returns 0 and, if out is not NULL, stores a handle
 * valid until done has returned or the request is cancelled. On error (bad
 * arguments -EINVAL, -ENOMEM, curl refused the handle -EIO) done is never
 * called. */
int k8s_http_send(struct k8s_http *http, const struct k8s_http_req *req, k8s_http_done_fn done,
                  void *data, struct k8s_http_request **out);
/* Cancels a request in flight: its callbacks are never called again and the
 * handle is invalid on return. Safe from inside the request's own on_chunk. */
void k8s_http_cancel(struct k8s_http_request *r);

/* Number of requests in flight (watches included). */
int k8s_http_inflight(struct k8s_http *http);
/* The loop and config the client was created with (borrowed). */
struct k8s_loop *k8s_http_loop(struct k8s_http *http);
struct k8s_config *k8s_http_config(struct k8s_http *http);

/* Percent-escapes s for a URL path segment or query value into a new malloc'd
 * string (returns owned; NULL on allocation failure). */
char *k8s_http_escape(const char *s);

#endif
