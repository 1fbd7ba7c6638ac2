/* test-workqueue.c: the WorkQueue and its RateLimiter with a fake clock
 * (runtime/core/workqueue.c, ratelimiter.c): dedup, no key processed twice
 * at once, requeue at done, add_after with next_deadline/tick, add_batched
 * (one reconcile per batch period, HIGH when due), exponential
 * backoff 5 ms .. 1000 s, the 10 qps / burst 100 token bucket, priorities,
 * forget, shut_down and the counters. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "core/workqueue.h"
#include "testhelp.h"

static int near(double a, double b)
{
  return fabs(a - b) < 1e-9;
}

static const char *get(struct k8s_workqueue *q)
{
  const char *k = k8s_workqueue_get(q);
  return k ? k : "(none)";
}

static void test_dedup_and_processing(void)
{
  struct k8s_workqueue *q = k8s_workqueue_new("t", NULL);
  struct k8s_workqueue_stats st;
  test_cond("add new key", k8s_workqueue_add(q, "ns/a", K8S_PRIORITY_HIGH) == 1);
  test_cond("add same key again is deduplicated",
            k8s_workqueue_add(q, "ns/a", K8S_PRIORITY_HIGH) == 0);
  k8s_workqueue_add(q, "ns/b", K8S_PRIORITY_HIGH);
  k8s_workqueue_stats(q, &st);
  test_cond("depth counts queued keys once", st.depth == 2 && st.adds == 2);

  const char *a = k8s_workqueue_get(q);
  test_cond("FIFO: first key first", a && !strcmp(a, "ns/a"));
  test_cond("re-add while processing is accepted",
            k8s_workqueue_add(q, "ns/a", K8S_PRIORITY_HIGH) == 1);
  test_cond("and deduplicated again", k8s_workqueue_add(q, "ns/a", K8S_PRIORITY_HIGH) == 0);
  test_cond("next get skips the processing key", !strcmp(get(q), "ns/b"));
  test_cond("a processing key is not handed out twice", k8s_workqueue_get(q) == NULL);
  k8s_workqueue_stats(q, &st);
  test_cond("processing count", st.processing == 2 && st.depth == 0);
  test_cond("done requeues the dirty key", k8s_workqueue_done(q, "ns/a") == 0);
  test_cond("requeued key comes back", !strcmp(get(q), "ns/a"));
  test_cond("done of the key (by equal string)", k8s_workqueue_done(q, "ns/a") == 0);
  test_cond("done of a key not processing fails", k8s_workqueue_done(q, "ns/a") == -1);
  test_cond("done ns/b", k8s_workqueue_done(q, "ns/b") == 0);
  test_cond("queue empty", k8s_workqueue_get(q) == NULL);
  k8s_workqueue_stats(q, &st);
  test_cond("counters at rest", st.depth == 0 && st.processing == 0 && st.adds == 3);
  k8s_workqueue_free(q);
}

static void test_priorities(void)
{
  struct k8s_workqueue *q = k8s_workqueue_new("t", NULL);
  k8s_workqueue_add(q, "low1", K8S_PRIORITY_LOW);
  k8s_workqueue_add(q, "low2", K8S_PRIORITY_LOW);
  k8s_workqueue_add(q, "high1", K8S_PRIORITY_HIGH);
  k8s_workqueue_add(q, "low3", K8S_PRIORITY_LOW);
  k8s_workqueue_add(q, "low2", K8S_PRIORITY_HIGH); /* a watch event for a queued resync key */
  k8s_workqueue_add(q, "high1", K8S_PRIORITY_LOW); /* never lowers */
  const char *order[] = {"high1", "low2", "low1", "low3"};
  int ok = 1;
  for (int i = 0; i < 4; i++) {
    const char *k = get(q);
    ok &= !strcmp(k, order[i]);
  }
  test_cond("HIGH first, raised keys move up, FIFO within a priority", ok);

  /* A key added HIGH while processing is requeued HIGH at done. */
  k8s_workqueue_add(q, "low1", K8S_PRIORITY_LOW);
  k8s_workqueue_add(q, "high1", K8S_PRIORITY_HIGH);
  k8s_workqueue_done(q, "high1");
  k8s_workqueue_add(q, "low2", K8S_PRIORITY_LOW);
  k8s_workqueue_add(q, "low2", K8S_PRIORITY_HIGH);
  k8s_workqueue_done(q, "low2");
  k8s_workqueue_add(q, "low3", K8S_PRIORITY_LOW);
  k8s_workqueue_done(q, "low3");
  test_cond("priority kept through processing",
            !strcmp(get(q), "high1") && !strcmp(get(q), "low2") && !strcmp(get(q), "low3"));
  test_cond("a key still processing is not handed out", k8s_workqueue_get(q) == NULL);
  k8s_workqueue_done(q, "low1");
  test_cond("until its done", !strcmp(get(q), "low1"));
  k8s_workqueue_free(q);
}

static void test_add_after(void)
{
  struct k8s_workqueue *q = k8s_workqueue_new("t", NULL);
  struct k8s_workqueue_stats st;
  double now = 1000.0;
  test_cond("no deadline when nothing waits", k8s_workqueue_next_deadline(q) < 0);
  k8s_workqueue_add_after(q, "b", 2.0, now);
  k8s_workqueue_add_after(q, "a", 1.0, now);
  k8s_workqueue_add_after(q, "c", 3.0, now);
  k8s_workqueue_add_after(q, "c", 5.0, now); /* later: keeps 3 s */
  k8s_workqueue_add_after(q, "b", 0.5, now); /* earlier: moves to 0.5 s */
  k8s_workqueue_stats(q, &st);
  test_cond("delayed keys wait", st.waiting == 3 && st.depth == 0 && st.retries == 5);
  test_cond("next deadline is the earliest", near(k8s_workqueue_next_deadline(q), now + 0.5));
  test_cond("nothing due yet", k8s_workqueue_tick(q, now + 0.4) == 0 && !k8s_workqueue_get(q));
  test_cond("one due at +0.5", k8s_workqueue_tick(q, now + 0.5) == 1 && !strcmp(get(q), "b"));
  test_cond("next deadline +1", near(k8s_workqueue_next_deadline(q), now + 1.0));
  test_cond("two due at +10", k8s_workqueue_tick(q, now + 10) == 2);
  k8s_workqueue_add(q, "z", K8S_PRIORITY_HIGH);
  test_cond("delayed keys come back as LOW", !strcmp(get(q), "z"));
  test_cond("in deadline order", !strcmp(get(q), "a") && !strcmp(get(q), "c"));
  k8s_workqueue_done(q, "z");
  k8s_workqueue_add_after(q, "d", 0, now);
  test_cond("zero delay adds now", !strcmp(get(q), "d"));
  k8s_workqueue_done(q, "a");
  k8s_workqueue_done(q, "b");
  k8s_workqueue_done(q, "c");
  k8s_workqueue_done(q, "d");

  /* A due key already queued is not queued twice. */
  k8s_workqueue_add(q, "e", K8S_PRIORITY_HIGH);
  k8s_workqueue_add_after(q, "e", 1, now);
  k8s_workqueue_tick(q, now + 2);
  k8s_workqueue_stats(q, &st);
  test_cond("due key already queued stays once", st.depth == 1 && st.waiting == 0);
  k8s_workqueue_free(q);
}

static void test_add_batched(void)
{
  struct k8s_workqueue *q = k8s_workqueue_new("t", NULL);
  struct k8s_workqueue_stats st;
  double now = 50.0;
  test_cond("batched add starts a period",
            k8s_workqueue_add_batched(q, "ns/a", K8S_PRIORITY_HIGH, 0.1, now) == 1);
  test_cond("adds within the period fold into it",
            k8s_workqueue_add_batched(q, "ns/a", K8S_PRIORITY_HIGH, 0.1, now + 0.05) == 0 &&
                k8s_workqueue_add_batched(q, "ns/a", K8S_PRIORITY_HIGH, 0.1, now + 0.09) == 0);
  k8s_workqueue_stats(q, &st);
  test_cond("it waits, not queued, no retry counted",
            st.waiting == 1 && st.depth == 0 && st.retries == 0 && st.adds == 0);
  test_cond("the period ends at the first add's deadline",
            near(k8s_workqueue_next_deadline(q), now + 0.1));
  k8s_workqueue_add(q, "ns/low", K8S_PRIORITY_LOW);
  test_cond("nothing of the batch before the period ends",
            k8s_workqueue_tick(q, now + 0.099) == 0 && !strcmp(get(q), "ns/low"));
  test_cond("one key when due", k8s_workqueue_tick(q, now + 0.1) == 1);
  k8s_workqueue_add(q, "ns/low2", K8S_PRIORITY_LOW);
  test_cond("due batch comes back HIGH", !strcmp(get(q), "ns/a"));
  test_cond("once", !strcmp(get(q), "ns/low2") && k8s_workqueue_get(q) == NULL);
  k8s_workqueue_stats(q, &st);
  test_cond("counted as one add when due", st.adds == 3);
  /* queued already: no second copy, priority raised */
  k8s_workqueue_done(q, "ns/a");
  k8s_workqueue_add(q, "ns/b", K8S_PRIORITY_LOW);
  k8s_workqueue_add(q, "ns/c", K8S_PRIORITY_LOW);
  test_cond("a queued key is not batched again",
            k8s_workqueue_add_batched(q, "ns/c", K8S_PRIORITY_HIGH, 0.1, now) == 0);
  k8s_workqueue_stats(q, &st);
  test_cond("and does not wait", st.waiting == 0);
  test_cond("its priority is raised", !strcmp(get(q), "ns/c"));
  /* a retry waiting later is pulled forward by a batch; an earlier one kept */
  k8s_workqueue_add_after(q, "ns/r", 5.0, now);
  k8s_workqueue_add_batched(q, "ns/r", K8S_PRIORITY_HIGH, 0.1, now);
  test_cond("the earlier deadline wins", near(k8s_workqueue_next_deadline(q), now + 0.1));
  k8s_workqueue_add_batched(q, "ns/s", K8S_PRIORITY_LOW, 2.0, now);
  k8s_workqueue_add_after(q, "ns/s", 0.5, now);
  k8s_workqueue_tick(q, now + 0.6);
  k8s_workqueue_stats(q, &st);
  test_cond("both due once each", st.waiting == 0);
  test_cond("zero period adds now",
            k8s_workqueue_add_batched(q, "ns/z", K8S_PRIORITY_HIGH, 0, now) == 1);
  k8s_workqueue_free(q);
}

static void test_backoff(void)
{
  struct k8s_ratelimiter_config cfg = K8S_RATELIMITER_DEFAULTS;
  cfg.qps = 0; /* per-item backoff alone */
  struct k8s_ratelimiter *rl = k8s_ratelimiter_new(&cfg);
  double expect = 0.005;
  int ok = 1;
  for (int i = 0; i < 18; i++) { /* 5 ms .. 655.36 s */
    double d = k8s_ratelimiter_when(rl, "k", 0);
    ok &= near(d, expect);
    if (!near(d, expect)) printf("    step %d: %g, want %g\n", i, d, expect);
    expect *= 2;
  }
  test_cond("exponential steps 5 ms, 10 ms, 20 ms, ... 655.36 s", ok);
  test_cond("capped at 1000 s", near(k8s_ratelimiter_when(rl, "k", 0), 1000));
  for (int i = 0; i < 2000; i++)
    k8s_ratelimiter_when(rl, "k", 0);
  test_cond("stays capped after many failures", near(k8s_ratelimiter_when(rl, "k", 0), 1000));
  test_cond("num_requeues counts failures", k8s_ratelimiter_num_requeues(rl, "k") == 2020);
  test_cond("other keys are independent", near(k8s_ratelimiter_when(rl, "other", 0), 0.005));
  k8s_ratelimiter_forget(rl, "k");
  test_cond("forget resets", k8s_ratelimiter_num_requeues(rl, "k") == 0 &&
                                 near(k8s_ratelimiter_when(rl, "k", 0), 0.005));
  k8s_ratelimiter_free(rl);

  /* The token bucket alone: burst 100, then 10 qps. */
  cfg = (struct k8s_ratelimiter_config)K8S_RATELIMITER_DEFAULTS;
  cfg.base_delay = 0;
  rl = k8s_ratelimiter_new(&cfg);
  ok = 1;
  char key[32];
  for (int i = 0; i < 100; i++) {
    snprintf(key, sizeof key, "k%d", i);
    ok &= k8s_ratelimiter_when(rl, key, 50.0) == 0;
  }
  test_cond("burst of 100 without delay", ok);
  test_cond("101st waits 0.1 s", near(k8s_ratelimiter_when(rl, "x1", 50.0), 0.1));
  test_cond("102nd waits 0.2 s", near(k8s_ratelimiter_when(rl, "x2", 50.0), 0.2));
  test_cond("refill: 0.3 s later the wait is back to 0",
            k8s_ratelimiter_when(rl, "x3", 50.3) < 1e-9);
  test_cond("refill is capped at burst", k8s_ratelimiter_when(rl, "x4", 1e6) == 0);
  k8s_ratelimiter_free(rl);

  /* Both together, through the queue: max of the two. */
  struct k8s_workqueue *q = k8s_workqueue_new("t", NULL);
  double now = 10;
  double d1 = k8s_workqueue_add_rate_limited(q, "ns/x", now);
  double d2 = k8s_workqueue_add_rate_limited(q, "ns/x", now);
  test_cond("add_rate_limited uses the item backoff", near(d1, 0.005) && near(d2, 0.010));
  test_cond("waiting key keeps the earliest deadline",
            near(k8s_workqueue_next_deadline(q), now + 0.005));
  test_cond("num_requeues through the queue", k8s_workqueue_num_requeues(q, "ns/x") == 2);
  for (int i = 0; i < 150; i++) {
    snprintf(key, sizeof key, "ns/k%d", i);
    k8s_workqueue_add_rate_limited(q, key, now);
  }
  double d = k8s_workqueue_add_rate_limited(q, "ns/late", now);
  test_cond("bucket dominates after the burst", d > 5.0 && near(d, (153 - 100) * 0.1));
  k8s_workqueue_forget(q, "ns/x");
  test_cond("forget through the queue", k8s_workqueue_num_requeues(q, "ns/x") == 0);
  struct k8s_workqueue_stats st;
  k8s_workqueue_stats(q, &st);
  test_cond("retries counted", st.retries == 153);
  k8s_workqueue_free(q);
}

static void test_shutdown(void)
{
  struct k8s_workqueue *q = k8s_workqueue_new("t", NULL);
  k8s_workqueue_add(q, "a", K8S_PRIORITY_HIGH);
  k8s_workqueue_add_after(q, "b", 5, 0);
  k8s_workqueue_shut_down(q);
  test_cond("shutting_down", k8s_workqueue_shutting_down(q));
  test_cond("adds refused after shut_down", k8s_workqueue_add(q, "c", K8S_PRIORITY_HIGH) == -1 &&
                                                k8s_workqueue_add_after(q, "c", 1, 0) == -1 &&
                                                k8s_workqueue_add_rate_limited(q, "c", 0) < 0);
  test_cond("delayed keys dropped", k8s_workqueue_next_deadline(q) < 0);
  test_cond("queued keys drain", !strcmp(get(q), "a") && k8s_workqueue_get(q) == NULL);
  test_cond("done still works", k8s_workqueue_done(q, "a") == 0);
  test_cond("name", !strcmp(k8s_workqueue_name(q), "t"));
  k8s_workqueue_free(q);
}

static void test_many(void)
{
  struct k8s_workqueue *q = k8s_workqueue_new("t", NULL);
  char key[32];
  for (int round = 0; round < 3; round++)
    for (int i = 0; i < 5000; i++) {
      snprintf(key, sizeof key, "ns/k%d", i);
      k8s_workqueue_add(q, key, round == 1 ? K8S_PRIORITY_HIGH : K8S_PRIORITY_LOW);
      k8s_workqueue_add_after(q, key, (double)(i % 97), 0);
    }
  struct k8s_workqueue_stats st;
  k8s_workqueue_stats(q, &st);
  test_cond("5000 keys queued once each", st.depth == 5000 && st.waiting == 5000 - 5000 / 97 - 1);
  size_t got = 0;
  const char *k;
  while ((k = k8s_workqueue_get(q)) != NULL) {
    got++;
    k8s_workqueue_done(q, k);
  }
  test_cond("all handed out once", got == 5000);
  test_cond("all due after 100 s", k8s_workqueue_tick(q, 100) == st.waiting);
  k8s_workqueue_free(q);
}

int main(void)
{
  test_dedup_and_processing();
  test_priorities();
  test_add_after();
  test_add_batched();
  test_backoff();
  test_shutdown();
  test_many();
  test_report();
  return 0;
}
