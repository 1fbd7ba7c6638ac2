/* authfilter.c: TokenReview + SubjectAccessReview for the secure metrics
 * endpoint, with a small verdict cache (authfilter.h).
 *
 * Owns: the verdict cache (under `mu`) and, per check that misses it, one
 * `struct review` shared by the waiting server thread and the loop: two
 * references (waiter, loop), the last one to drop it frees it. */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "core/log.h"
#include "core/util.h"
#include "kube/authfilter.h"
#include "kube/loop.h"
#include "kube/restclient.h"

#define CACHE_SLOTS 64
#define TTL_ALLOWED 120.0
#define TTL_DENIED 10.0

struct verdict {
  char key[K8S_SHA256_HEX_LEN]; /* sha256(token \n verb \n path); "" when free */
  int status;
  double expires; /* k8s_monotonic seconds */
};

struct k8s_authfilter {
  struct k8s_loop *loop;
  struct k8s_client *client;
  double timeout;
  pthread_mutex_t mu;
  pthread_cond_t cv; /* signalled when a review finishes or on close */
  bool closed;
  struct verdict cache[CACHE_SLOTS];
};

struct review {
  struct k8s_authfilter *f;
  int refs;   /* under f->mu */
  int status; /* 0 while pending */
  char key[K8S_SHA256_HEX_LEN];
  char *token, *verb, *path;
};

static const struct k8s_gvr TOKENREVIEWS = {"authentication.k8s.io", "v1", "tokenreviews", false};
static const struct k8s_gvr SARS = {"authorization.k8s.io", "v1", "subjectaccessreviews", false};

/* ==== cache (under mu) ===================================================== */

static int cache_get(struct k8s_authfilter *f, const char *key, double now)
{
  for (int i = 0; i < CACHE_SLOTS; i++)
    if (f->cache[i].key[0] && !strcmp(f->cache[i].key, key) && f->cache[i].expires > now)
      return f->cache[i].status;
  return 0;
}

static void cache_put(struct k8s_authfilter *f, const char *key, int status, double now)
{
  int slot = 0;
  for (int i = 0; i < CACHE_SLOTS; i++) {
    if (!f->cache[i].key[0] || !strcmp(f->cache[i].key, key) || f->cache[i].expires <= now) {
      slot = i;
      break;
    }
    if (f->cache[i].expires < f->cache[slot].expires) slot = i;
  }
  memcpy(f->cache[slot].key, key, K8S_SHA256_HEX_LEN);
  f->cache[slot].status = status;
  f->cache[slot].expires = now + (status == 200 ? TTL_ALLOWED : TTL_DENIED);
}

/* ==== one review =========================================================== */

static void review_unref(struct review *r)
{
  pthread_mutex_lock(&r->f->mu);
  bool last = --r->refs == 0;
  pthread_mutex_unlock(&r->f->mu);
  if (!last) return;
  free(r->token);
  free(r->verb);
  free(r->path);
  free(r);
}

/* On the loop: records the verdict (cached unless it is a failure), wakes
 * the waiter, drops the loop's reference. */
static void finish(struct review *r, int status)
{
  struct k8s_authfilter *f = r->f;
  pthread_mutex_lock(&f->mu);
  r->status = status;
  if (status == 200 || status == 401 || status == 403)
    cache_put(f, r->key, status, k8s_monotonic());
  pthread_cond_broadcast(&f->cv);
  pthread_mutex_unlock(&f->mu);
  review_unref(r);
}

static void failed(struct review *r, const char *what, const struct k8s_result *res)
{
  k8s_log(K8S_LOG_ERROR, "metrics authorization failed", "review", what, "error",
          res->error && res->error->message ? res->error->message : "no answer", NULL);
  finish(r, 500);
}

static void on_sar(const struct k8s_result *res, void *data)
{
  struct review *r = data;
  if (res->error || !res->object) {
    failed(r, "SubjectAccessReview", res);
    return;
  }
  json_t *st = json_object_get(res->object, "status");
  finish(r, json_is_true(json_object_get(st, "allowed")) ? 200 : 403);
}

static void on_tokenreview(const struct k8s_result *res, void *data)
{
  struct review *r = data;
  if (res->error || !res->object) {
    failed(r, "TokenReview", res);
    return;
  }
  json_t *st = json_object_get(res->object, "status");
  json_t *user = json_object_get(st, "user");
  if (!json_is_true(json_object_get(st, "authenticated")) || !json_is_object(user)) {
    finish(r, 401);
    return;
  }
  json_t *spec = json_object();
  json_object_set(spec, "user", json_object_get(user, "username"));
  if (json_object_get(user, "uid")) json_object_set(spec, "uid", json_object_get(user, "uid"));
  if (json_object_get(user, "groups"))
    json_object_set(spec, "groups", json_object_get(user, "groups"));
  if (json_object_get(user, "extra"))
    json_object_set(spec, "extra", json_object_get(user, "extra"));
  json_object_set_new(spec, "nonResourceAttributes",
                      json_pack("{s:s, s:s}", "path", r->path, "verb", r->verb));
  json_t *sar = json_pack("{s:s, s:s, s:o}", "apiVersion", "authorization.k8s.io/v1", "kind",
                          "SubjectAccessReview", "spec", spec);
  if (!sar || k8s_client_create(r->f->client, &SARS, NULL, sar, on_sar, r) != 0) finish(r, 500);
  json_decref(sar);
}

static void start_review(struct k8s_loop *loop, void *data)
{
  (void)loop;
  struct review *r = data;
  json_t *tr = json_pack("{s:s, s:s, s:{s:s}}", "apiVersion", "authentication.k8s.io/v1", "kind",
                         "TokenReview", "spec", "token", r->token);
  if (!tr || k8s_client_create(r->f->client, &TOKENREVIEWS, NULL, tr, on_tokenreview, r) != 0)
    finish(r, 500);
  json_decref(tr);
}

/* ==== public =============================================================== */

struct k8s_authfilter *k8s_authfilter_new(struct k8s_loop *loop, struct k8s_client *client,
                                          double timeout)
{
  struct k8s_authfilter *f = calloc(1, sizeof *f);
  if (!f) return NULL;
  f->loop = loop;
  f->client = client;
  f->timeout = timeout > 0 ? timeout : 10;
  pthread_mutex_init(&f->mu, NULL);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&f->cv, &ca);
  pthread_condattr_destroy(&ca);
  return f;
}

int k8s_authfilter_check(struct k8s_authfilter *f, const char *token, const char *method,
                         const char *path)
{
  if (!token || !*token) return 401;
  char verb[16];
  size_t i = 0;
  for (; method[i] && i + 1 < sizeof verb; i++)
    verb[i] = (char)(method[i] >= 'A' && method[i] <= 'Z' ? method[i] + 32 : method[i]);
  verb[i] = 0;
  size_t n = strlen(token) + strlen(verb) + strlen(path) + 3;
  char *material = malloc(n);
  if (!material) return 500;
  snprintf(material, n, "%s\n%s\n%s", token, verb, path);
  char key[K8S_SHA256_HEX_LEN];
  k8s_sha256_hex(material, strlen(material), key);
  free(material);

  pthread_mutex_lock(&f->mu);
  int status = f->closed ? 503 : cache_get(f, key, k8s_monotonic());
  pthread_mutex_unlock(&f->mu);
  if (status) return status;

  struct review *r = calloc(1, sizeof *r);
  if (!r) return 500;
  r->f = f;
  r->refs = 2;
  memcpy(r->key, key, sizeof key);
  r->token = strdup(token);
  r->verb = strdup(verb);
  r->path = strdup(path);
  if (!r->token || !r->verb || !r->path || k8s_loop_post(f->loop, start_review, r) != 0) {
    free(r->token);
    free(r->verb);
    free(r->path);
    free(r);
    return 500;
  }
  struct timespec until;
  clock_gettime(CLOCK_MONOTONIC, &until);
  until.tv_sec += (time_t)f->timeout;
  pthread_mutex_lock(&f->mu);
  int rc = 0;
  while (!r->status && !f->closed && rc == 0)
    rc = pthread_cond_timedwait(&f->cv, &f->mu, &until);
  status = r->status ? r->status : 503;
  pthread_mutex_unlock(&f->mu);
  review_unref(r);
  return status;
}

void k8s_authfilter_close(struct k8s_authfilter *f)
{
  if (!f) return;
  pthread_mutex_lock(&f->mu);
  f->closed = true;
  pthread_cond_broadcast(&f->cv);
  pthread_mutex_unlock(&f->mu);
}

void k8s_authfilter_free(struct k8s_authfilter *f)
{
  if (!f) return;
  pthread_cond_destroy(&f->cv);
  pthread_mutex_destroy(&f->mu);
  free(f);
}
