/* ratelimiter.h: the RateLimiter of client-go's workqueue (When / Forget /
 * NumRequeues) as the default controller rate limiter: the max of a per-item
 * exponential backoff (base 5 ms, doubling per failure, capped at 1000 s) and
 * an overall token bucket (10 qps, burst 100).
 *
 * Time is passed in: `now` is monotonic seconds (k8s_monotonic(), or a fake
 * clock in tests). Delays are seconds. Keys are copied; the limiter owns its
 * per-item state until forget(). Not thread-safe. */
#ifndef K8S_CORE_RATELIMITER_H
#define K8S_CORE_RATELIMITER_H

struct k8s_ratelimiter_config {
  double base_delay; /* seconds; per-item delay is base * 2^failures */
  double max_delay;  /* seconds; cap of the per-item delay */
  double qps;        /* token bucket refill rate; <= 0 disables the bucket */
  int burst;         /* token bucket size */
};

/* The defaults above: { 0.005, 1000.0, 10.0, 100 }. */
#define K8S_RATELIMITER_DEFAULTS                                                                   \
  {                                                                                                \
    0.005, 1000.0, 10.0, 100                                                                       \
  }

/* New limiter (cfg NULL = defaults). NULL on malloc failure. */
struct k8s_ratelimiter *k8s_ratelimiter_new(const struct k8s_ratelimiter_config *cfg);

/* Frees the limiter and its per-item state. NULL is a no-op. */
void k8s_ratelimiter_free(struct k8s_ratelimiter *rl);

/* Records one more failure of `key` and returns the delay before it may be
 * retried: max(base * 2^(failures before this call), token-bucket wait). */
double k8s_ratelimiter_when(struct k8s_ratelimiter *rl, const char *key, double now);

/* Clears the per-item failure count of key (the token bucket is unaffected). */
void k8s_ratelimiter_forget(struct k8s_ratelimiter *rl, const char *key);

/* Number of failures recorded for key since the last forget. */
int k8s_ratelimiter_num_requeues(const struct k8s_ratelimiter *rl, const char *key);

#endif
