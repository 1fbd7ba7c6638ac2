/* http.c: async HTTP over the loop's libcurl multi handle (http.h).
 *
 * Owns: the k8s_http (TLS and auth settings, the bearer header, the list of
 * requests in flight) and every k8s_http_request with its easy handle,
 * header list, body copy and response buffer. A request dies in one place,
 * request_free: after its CURLMSG_DONE is dispatched, or on cancel (at once,
 * or on the next tick when cancelled from inside a curl callback, where
 * curl_multi_remove_handle is not allowed). Shape after curl's
 * docs/examples/ephiperfifo.c: the easy handle points back to its request
 * through CURLINFO_PRIVATE. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "kube/http.h"

#ifndef SCHEDSIM_VERSION
#define SCHEDSIM_VERSION "dev"
#endif

/* ==== structures =========================================================== */

struct k8s_http_request {
  struct k8s_http *http;
  CURL *easy;
  struct curl_slist *headers;
  char *body; /* copy of the request body */
  char *buf;  /* response body (buffered mode, or non-2xx of a stream) */
  size_t len, cap;
  k8s_http_done_fn done;
  k8s_http_chunk_fn on_chunk;
  void *data;
  double started;
  bool cancelled;
  bool zombie;  /* cancelled from a curl callback: freed on the next iteration */
  bool pending; /* on http->pending: not yet added to the multi handle */
  char errbuf[CURL_ERROR_SIZE];
  struct k8s_http_request *prev, *next; /* in flight (http->head) */
  struct k8s_http_request *qnext;       /* on http->zombies or http->pending */
};

struct k8s_http {
  struct k8s_loop *loop;
  struct k8s_config *cfg;
  struct k8s_http_options opts;
  char *auth; /* "Authorization: Bearer ..." (secret) */
  double token_checked;
  char user_agent[96];
  struct k8s_http_request *head;
  int inflight;
  int in_curl_cb;                   /* > 0 while curl is calling us */
  struct k8s_http_request *zombies; /* cancelled inside a curl callback */
  struct k8s_http_request *pending; /* sent inside a curl callback, not added yet */
  uint64_t deferred_timer;          /* runs run_deferred; 0 when not armed */
  char *base;                       /* URL prefix of requests: the server, or with
                                       tls-server-name as its host */
  struct curl_slist *connect_to;    /* tls-server-name: "name:port:host:port", or NULL */
};

/* With a kubeconfig tls-server-name (client-go's rest.Config.ServerName), the
 * request URL names that host, so TLS sends it as SNI and checks the
 * certificate against it, and CURLOPT_CONNECT_TO sends the connection to the
 * server's real address. Returns 0, or -1 for a server URL without a host. */
static int server_name_override(struct k8s_http *h)
{
  const char *server = h->cfg->server, *sni = h->cfg->tls_server_name;
  const char *sep = strstr(server, "://");
  if (!sni) return (h->base = strdup(server)) ? 0 : -1;
  if (!sep) return -1;
  const char *host = sep + 3, *end;
  char hostbuf[256];
  if (*host == '[') { /* an IPv6 literal, kept in brackets */
    end = strchr(host, ']');
    if (!end) return -1;
    end++;
  } else
    end = host + strcspn(host, ":/");
  if ((size_t)(end - host) >= sizeof(hostbuf) || end == host) return -1;
  memcpy(hostbuf, host, (size_t)(end - host));
  hostbuf[end - host] = '\0';
  const char *port = strncmp(server, "http://", 7) ? "443" : "80";
  char portbuf[16];
  if (*end == ':') {
    size_t n = strcspn(end + 1, "/");
    if (!n || n >= sizeof(portbuf)) return -1;
    memcpy(portbuf, end + 1, n);
    portbuf[n] = '\0';
    port = portbuf;
  }
  const char *rest = end + strcspn(end, "/"); /* a path prefix, if any */
  char *ct = NULL;
  if (asprintf(&h->base, "%.*s://%s:%s%s", (int)(sep - server), server, sni, port, rest) < 0)
    h->base = NULL;
  if (!h->base || asprintf(&ct, "%s:%s:%s:%s", sni, port, hostbuf, port) < 0) return -1;
  h->connect_to = curl_slist_append(NULL, ct);
  free(ct);
  return h->connect_to ? 0 : -1;
}

/* ==== auth ================================================================= */

static void set_auth(struct k8s_http *h)
{
  if (h->auth) {
    memset(h->auth, 0, strlen(h->auth));
    free(h->auth);
    h->auth = NULL;
  }
  if (!h->cfg->token || !*h->cfg->token) return;
  size_t n = strlen(h->cfg->token) + 32;
  h->auth = malloc(n);
  if (h->auth) snprintf(h->auth, n, "Authorization: Bearer %s", h->cfg->token);
}

static void maybe_refresh_token(struct k8s_http *h)
{
  if (!h->cfg->token_file) return;
  double now = k8s_loop_now(h->loop);
  if (now - h->token_checked < h->opts.token_check) return;
  h->token_checked = now;
  int rc = k8s_config_refresh_token(h->cfg);
  if (rc > 0) {
    set_auth(h);
    k8s_log(K8S_LOG_INFO, "bearer token reloaded", "file", h->cfg->token_file, NULL);
  } else if (rc < 0) {
    k8s_log(K8S_LOG_WARN, "cannot re-read the token file; keeping the old token", "file",
            h->cfg->token_file, NULL);
  }
}

/* ==== request lifetime ===================================================== */

static void unlink_req(struct k8s_http_request *r)
{
  struct k8s_http *h = r->http;
  if (r->prev)
    r->prev->next = r->next;
  else if (h->head == r)
    h->head = r->next;
  if (r->next) r->next->prev = r->prev;
  r->prev = r->next = NULL;
}

static void request_free(struct k8s_http_request *r)
{
  if (r->easy) {
    if (!r->pending) curl_multi_remove_handle(k8s_loop_multi(r->http->loop), r->easy);
    curl_easy_cleanup(r->easy);
  }
  curl_slist_free_all(r->headers);
  free(r->body);
  free(r->buf);
  free(r);
}

static void fail_request(struct k8s_http_request *r, const char *why)
{
  struct k8s_http_response resp;
  memset(&resp, 0, sizeof(resp));
  resp.curl_code = CURLE_FAILED_INIT;
  resp.error = why;
  resp.body = "";
  r->done(&resp, r->data);
  request_free(r);
}

/* Frees requests cancelled inside curl callbacks and adds those sent there
 * (curl refuses multi calls from its own callbacks). */
static void run_deferred(struct k8s_loop *loop, void *data)
{
  struct k8s_http *h = data;
  h->deferred_timer = 0;
  struct k8s_http_request *z = h->zombies;
  h->zombies = NULL;
  while (z) {
    struct k8s_http_request *next = z->qnext;
    request_free(z);
    z = next;
  }
  while (h->pending) {
    struct k8s_http_request *r = h->pending;
    h->pending = r->qnext;
    r->qnext = NULL;
    r->pending = false;
    if (curl_multi_add_handle(k8s_loop_multi(loop), r->easy) != CURLM_OK) {
      h->inflight--;
      unlink_req(r);
      r->pending = true; /* never added: do not remove */
      fail_request(r, "curl_multi_add_handle failed");
      continue;
    }
  }
}

static void schedule_deferred(struct k8s_http *h)
{
  if (!h->deferred_timer) h->deferred_timer = k8s_loop_timer_add(h->loop, 0, run_deferred, h);
}

void k8s_http_cancel(struct k8s_http_request *r)
{
  if (!r || r->cancelled) return;
  struct k8s_http *h = r->http;
  r->cancelled = true;
  unlink_req(r);
  h->inflight--;
  if (r->pending) { /* never added: take it off the pending list */
    struct k8s_http_request **pp = &h->pending;
    while (*pp && *pp != r)
      pp = &(*pp)->qnext;
    if (*pp) *pp = r->qnext;
    request_free(r);
    return;
  }
  if (h->in_curl_cb) {
    /* curl is inside perform: the handle may not be removed now */
    r->zombie = true;
    r->qnext = h->zombies;
    h->zombies = r;
    schedule_deferred(h);
    return;
  }
  request_free(r);
}

/* ==== curl callbacks ======================================================= */

static int buf_append(struct k8s_http_request *r, const char *p, size_t n)
{
  if (r->len + n + 1 > r->cap) {
    size_t cap = r->cap ? r->cap : 4096;
    while (cap < r->len + n + 1)
      cap *= 2;
    char *b = realloc(r->buf, cap);
    if (!b) return -1;
    r->buf = b;
    r->cap = cap;
  }
  memcpy(r->buf + r->len, p, n);
  r->len += n;
  r->buf[r->len] = 0;
  return 0;
}

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
  struct k8s_http_request *r = userdata;
  size_t n = size * nmemb;
  if (r->cancelled) return 0;
  if (r->on_chunk) {
    long code = 0;
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
    if (code >= 200 && code < 300) {
      struct k8s_http *h = r->http;
      h->in_curl_cb++;
      int stop = r->on_chunk(ptr, n, r->data);
      h->in_curl_cb--;
      if (r->cancelled) return 0;
      return stop ? 0 : n;
    }
  }
  return buf_append(r, ptr, n) ? 0 : n;
}

/* Drains finished transfers (the loop calls this after every perform). */
static void multi_done(struct k8s_loop *loop, CURLM *multi, void *unused)
{
  CURLMsg *msg;
  int q;
  while ((msg = curl_multi_info_read(multi, &q))) {
    if (msg->msg != CURLMSG_DONE) continue;
    CURL *easy = msg->easy_handle;
    CURLcode code = msg->data.result;
    struct k8s_http_request *r = NULL;
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r);
    if (!r || r->cancelled) continue; /* zombie: freed by reap_zombies */
    struct k8s_http *h = r->http;
    curl_multi_remove_handle(multi, easy);
    unlink_req(r);
    h->inflight--;

    struct k8s_http_response resp;
    memset(&resp, 0, sizeof(resp));
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &resp.status);
    char *ct = NULL;
    curl_easy_getinfo(easy, CURLINFO_CONTENT_TYPE, &ct);
    resp.content_type = ct;
    long ver = 0;
    curl_easy_getinfo(easy, CURLINFO_HTTP_VERSION, &ver);
    resp.http_version = ver == CURL_HTTP_VERSION_2_0 ? 2 : ver ? 1 : 0;
    resp.curl_code = (int)code;
    if (code != CURLE_OK) {
      resp.error = r->errbuf[0] ? r->errbuf : curl_easy_strerror(code);
      /* a transfer aborted after a complete response is still a response */
    }
    resp.body = r->buf ? r->buf : "";
    resp.len = r->len;
    resp.elapsed = k8s_loop_now(loop) - r->started;
    r->cancelled = true; /* finishing: k8s_http_cancel from done is a no-op */
    r->done(&resp, r->data);
    request_free(r);
  }
}

/* ==== client =============================================================== */

struct k8s_http *k8s_http_new(struct k8s_loop *loop, struct k8s_config *cfg,
                              const struct k8s_http_options *opts)
{
  struct k8s_http *h = calloc(1, sizeof(*h));
  if (!h) return NULL;
  h->loop = loop;
  h->cfg = cfg;
  if (opts) h->opts = *opts;
  if (h->opts.connect_timeout <= 0) h->opts.connect_timeout = 10;
  if (h->opts.request_timeout <= 0) h->opts.request_timeout = 60;
  if (h->opts.token_check <= 0) h->opts.token_check = 60;
  snprintf(h->user_agent, sizeof(h->user_agent), "User-Agent: %s",
           h->opts.user_agent ? h->opts.user_agent : "schedsim-operator/" SCHEDSIM_VERSION);
  h->opts.user_agent = NULL;
  h->token_checked = k8s_loop_now(loop);
  if (server_name_override(h) != 0) {
    k8s_log(K8S_LOG_ERROR, "cannot use the server URL with tls-server-name", "server", cfg->server,
            NULL);
    k8s_http_free(h);
    return NULL;
  }
  if (cfg->insecure)
    k8s_log(K8S_LOG_WARN, "TLS verification of the API server is off (insecure-skip-tls-verify)",
            "server", cfg->server, NULL);
  set_auth(h);
  CURLM *multi = k8s_loop_multi(loop);
  curl_multi_setopt(multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  k8s_loop_set_multi_handler(loop, multi_done, NULL);
  return h;
}

void k8s_http_free(struct k8s_http *h)
{
  if (!h) return;
  while (h->head)
    k8s_http_cancel(h->head);
  h->in_curl_cb = 0;
  struct k8s_http_request *z = h->zombies;
  while (z) {
    struct k8s_http_request *next = z->qnext;
    request_free(z);
    z = next;
  }
  h->zombies = NULL;
  if (h->deferred_timer) k8s_loop_timer_cancel(h->loop, h->deferred_timer);
  if (h->auth) {
    memset(h->auth, 0, strlen(h->auth));
    free(h->auth);
  }
  free(h->base);
  curl_slist_free_all(h->connect_to);
  free(h);
}

int k8s_http_inflight(struct k8s_http *h)
{
  return h->inflight;
}

struct k8s_loop *k8s_http_loop(struct k8s_http *h)
{
  return h->loop;
}

struct k8s_config *k8s_http_config(struct k8s_http *h)
{
  return h->cfg;
}

static int add_header(struct curl_slist **l, const char *name, const char *value)
{
  char line[512];
  snprintf(line, sizeof(line), "%s: %s", name, value);
  struct curl_slist *n = curl_slist_append(*l, line);
  if (!n) return -1;
  *l = n;
  return 0;
}

int k8s_http_send(struct k8s_http *h, const struct k8s_http_req *req, k8s_http_done_fn done,
                  void *data, struct k8s_http_request **out)
{
  if (!h || !req || !req->method || !req->path || !done) return -EINVAL;
  maybe_refresh_token(h);
  struct k8s_http_request *r = calloc(1, sizeof(*r));
  if (!r) return -ENOMEM;
  r->http = h;
  r->done = done;
  r->on_chunk = req->on_chunk;
  r->data = data;
  r->started = k8s_loop_now(h->loop);
  r->easy = curl_easy_init();
  if (!r->easy) goto nomem;

  size_t ul = strlen(h->base) + strlen(req->path) + 1;
  char *url = malloc(ul);
  if (!url) goto nomem;
  snprintf(url, ul, "%s%s", h->base, req->path);
  CURL *e = r->easy;
  curl_easy_setopt(e, CURLOPT_URL, url);
  free(url); /* curl copies it */
  if (h->connect_to) curl_easy_setopt(e, CURLOPT_CONNECT_TO, h->connect_to);
  curl_easy_setopt(e, CURLOPT_PRIVATE, r);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 30L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 15L);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)(h->opts.connect_timeout * 1000));
  double timeout = req->timeout == 0 ? h->opts.request_timeout : req->timeout;
  if (timeout > 0) curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(timeout * 1000));
  if (req->low_speed_time > 0) {
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)req->low_speed_time);
  }
  if (!req->on_chunk) curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "gzip");

  /* TLS: verification on unless the kubeconfig says otherwise */
  struct k8s_config *cfg = h->cfg;
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, cfg->insecure ? 0L : 1L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, cfg->insecure ? 0L : 2L);
  if (cfg->ca) {
    struct curl_blob blob = {.data = cfg->ca, .len = cfg->ca_len, .flags = CURL_BLOB_NOCOPY};
    curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &blob);
  }
  if (cfg->cert && cfg->key) {
    struct curl_blob cert = {.data = cfg->cert, .len = cfg->cert_len, .flags = CURL_BLOB_NOCOPY};
    struct curl_blob key = {.data = cfg->key, .len = cfg->key_len, .flags = CURL_BLOB_NOCOPY};
    curl_easy_setopt(e, CURLOPT_SSLCERT_BLOB, &cert);
    curl_easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
    curl_easy_setopt(e, CURLOPT_SSLKEY_BLOB, &key);
    curl_easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
  }

  if (add_header(&r->headers, "Accept", req->accept ? req->accept : "application/json")) goto nomem;
  if (req->content_type && add_header(&r->headers, "Content-Type", req->content_type)) goto nomem;
  struct curl_slist *n = curl_slist_append(r->headers, h->user_agent);
  if (!n) goto nomem;
  r->headers = n;
  if (h->auth) {
    n = curl_slist_append(r->headers, h->auth);
    if (!n) goto nomem;
    r->headers = n;
  }
  n = curl_slist_append(r->headers, "Expect:");
  if (!n) goto nomem;
  r->headers = n;
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);

  if (strcmp(req->method, "GET") != 0) {
    if (!strcmp(req->method, "POST"))
      curl_easy_setopt(e, CURLOPT_POST, 1L);
    else
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
    if (req->body || strcmp(req->method, "DELETE") != 0) {
      r->body = malloc(req->body_len + 1);
      if (!r->body) goto nomem;
      if (req->body_len) memcpy(r->body, req->body, req->body_len);
      r->body[req->body_len] = 0;
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)req->body_len);
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
    }
  }

  if (h->in_curl_cb) {
    /* inside a curl callback: add on the next iteration */
    r->pending = true;
    struct k8s_http_request **pp = &h->pending;
    while (*pp)
      pp = &(*pp)->qnext;
    *pp = r;
    schedule_deferred(h);
  } else if (curl_multi_add_handle(k8s_loop_multi(h->loop), e) != CURLM_OK) {
    curl_easy_cleanup(r->easy);
    r->easy = NULL;
    request_free(r);
    return -EIO;
  }
  r->prev = NULL;
  r->next = h->head;
  if (h->head) h->head->prev = r;
  h->head = r;
  h->inflight++;
  if (out) *out = r;
  return 0;
nomem:
  if (r->easy) curl_easy_cleanup(r->easy);
  r->easy = NULL;
  request_free(r);
  return -ENOMEM;
}

char *k8s_http_escape(const char *s)
{
  static const char hex[] = "0123456789ABCDEF";
  size_t n = strlen(s);
  char *out = malloc(3 * n + 1), *o = out;
  if (!out) return NULL;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
        *p == '-' || *p == '_' || *p == '.' || *p == '~') {
      *o++ = (char)*p;
    } else {
      *o++ = '%';
      *o++ = hex[*p >> 4];
      *o++ = hex[*p & 15];
    }
  }
  *o = 0;
  return out;
}
