/* ratelimiter.c: client-go's default controller rate limiter (ratelimiter.h):
 * max(per-item exponential failure backoff, overall token bucket). Owns the
 * per-item failure counts (one small allocation per failing key, freed by
 * forget or with the limiter). Depends on strmap.c only. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "ratelimiter.h"
#include "strmap.h"

struct failure {
  int count;
  char key[];
};

struct k8s_ratelimiter {
  struct k8s_ratelimiter_config cfg;
  struct k8s_strmap failures; /* key -> struct failure */
  double tokens;              /* may go negative: reserved future tokens */
  double last;                /* time of the last refill */
  int started;
};

struct k8s_ratelimiter *k8s_ratelimiter_new(const struct k8s_ratelimiter_config *cfg)
{
  static const struct k8s_ratelimiter_config defaults = K8S_RATELIMITER_DEFAULTS;
  struct k8s_ratelimiter *rl = calloc(1, sizeof *rl);
  if (!rl) return NULL;
  rl->cfg = cfg ? *cfg : defaults;
  rl->tokens = rl->cfg.burst;
  return rl;
}

void k8s_ratelimiter_free(struct k8s_ratelimiter *rl)
{
  if (!rl) return;
  size_t it = 0;
  void *v;
  while (k8s_strmap_next(&rl->failures, &it, NULL, &v))
    free(v);
  k8s_strmap_clear(&rl->failures);
  free(rl);
}

/* Per-item exponential backoff: base * 2^count, capped (no overflow). */
static double item_delay(const struct k8s_ratelimiter *rl, int count)
{
  if (rl->cfg.base_delay <= 0) return 0;
  double d = ldexp(rl->cfg.base_delay, count > 1023 ? 1023 : count);
  return d > rl->cfg.max_delay || !isfinite(d) ? rl->cfg.max_delay : d;
}

/* Token bucket (golang.org/x/time/rate Reserve): take one token now; the wait
 * is how long until the bucket would have had it. */
static double bucket_delay(struct k8s_ratelimiter *rl, double now)
{
  if (rl->cfg.qps <= 0) return 0;
  if (!rl->started) {
    rl->started = 1;
    rl->last = now;
  }
  if (now > rl->last) {
    rl->tokens += (now - rl->last) * rl->cfg.qps;
    if (rl->tokens > rl->cfg.burst) rl->tokens = rl->cfg.burst;
    rl->last = now;
  }
  rl->tokens -= 1;
  return rl->tokens < 0 ? -rl->tokens / rl->cfg.qps : 0;
}

double k8s_ratelimiter_when(struct k8s_ratelimiter *rl, const char *key, double now)
{
  struct failure *f = k8s_strmap_get(&rl->failures, key);
  if (!f) {
    size_t n = strlen(key);
    f = malloc(sizeof *f + n + 1);
    if (f) {
      f->count = 0;
      memcpy(f->key, key, n + 1);
      if (k8s_strmap_put(&rl->failures, f->key, f) < 0) {
        free(f);
        f = NULL;
      }
    }
  }
  double item = item_delay(rl, f ? f->count : 0);
  if (f && f->count < 1 << 30) f->count++;
  double bucket = bucket_delay(rl, now);
  return item > bucket ? item : bucket;
}

void k8s_ratelimiter_forget(struct k8s_ratelimiter *rl, const char *key)
{
  free(k8s_strmap_del(&rl->failures, key));
}

int k8s_ratelimiter_num_requeues(const struct k8s_ratelimiter *rl, const char *key)
{
  const struct failure *f = k8s_strmap_get(&rl->failures, key);
  return f ? f->count : 0;
}
