/* workqueue.h: the WorkQueue of client-go (queue / dirty / processing sets,
 * AddAfter, AddRateLimited, Forget, Done, ShutDown), single-threaded and
 * clock-free: the event loop passes `now` (monotonic seconds) and drives the
 * delayed items with next_deadline / tick.
 *
 * Guarantees: a key is queued at most once; a key handed out by get() is not
 * handed out again until done(); a key added while processing is queued again
 * at done(). Two priorities: get() returns every HIGH key (watch events) before
 * any LOW key (resync, requeue, retries), FIFO within a priority; adding a
 * queued LOW key with HIGH moves it up. Delayed items (add_after /
 * add_rate_limited) become LOW adds when due; a key already waiting keeps the
 * earlier deadline.
 *
 * Timing (client-go's queue metrics, k8s.io/client-go/util/workqueue
 * metrics.go): with an observer set (k8s_workqueue_set_observer), an add that
 * makes a key dirty stamps its add time (kept if already stamped), get()
 * reports the time the key waited (queue duration) and stamps its processing
 * start, done() reports the processing time (work duration), and
 * k8s_workqueue_unfinished sums the running processing times. Without an
 * observer the queue reads no clock.
 *
 * Ownership: keys are copied. get() returns a pointer owned by the queue that
 * stays valid until done() of that key. The queue owns its rate limiter; the
 * observer is borrowed (it must outlive the queue or be unset first). */
#ifndef K8S_CORE_WORKQUEUE_H
#define K8S_CORE_WORKQUEUE_H

#include <stddef.h>
#include <stdint.h>
#include "ratelimiter.h"

enum k8s_priority {
  K8S_PRIORITY_LOW = 0, /* resync, requeue_after, retries */
  K8S_PRIORITY_HIGH = 1 /* watch events: real changes */
};

/* Counters for metrics (workqueue_depth, workqueue_adds_total,
 * workqueue_retries_total). Read with k8s_workqueue_stats. */
struct k8s_workqueue_stats {
  size_t depth;      /* keys queued now (both priorities) */
  size_t processing; /* keys handed out by get() and not done yet */
  size_t waiting;    /* delayed keys not yet due */
  uint64_t adds;     /* keys that became queued (dedup'd adds not counted) */
  uint64_t retries;  /* add_after + add_rate_limited calls */
};

/* New queue named `name` (copied; used by metrics) with rate limiter `rl`
 * (the queue takes ownership; NULL = k8s_ratelimiter_new(NULL)). NULL on
 * malloc failure (rl is then freed). */
struct k8s_workqueue *k8s_workqueue_new(const char *name, struct k8s_ratelimiter *rl);

/* Frees the queue, its keys and its rate limiter. NULL is a no-op. Pointers
 * from get() die with it. */
void k8s_workqueue_free(struct k8s_workqueue *q);

/* The queue's name. */
const char *k8s_workqueue_name(const struct k8s_workqueue *q);

/* Queues key now. Returns 1 when the key became queued or will be queued at
 * its done(), 0 when it already was (priority may be raised), -1 after
 * shut_down or on malloc failure. */
int k8s_workqueue_add(struct k8s_workqueue *q, const char *key, enum k8s_priority prio);

/* Queues key (LOW) once `now + delay` is reached; delay <= 0 is add(LOW).
 * Returns 0, or -1 after shut_down / on malloc failure. */
int k8s_workqueue_add_after(struct k8s_workqueue *q, const char *key, double delay, double now);

/* Queues key at `now + period` with priority prio, folding every add of the
 * period into one: the batch period of kube-controller-manager's
 * --endpointslice-updates-batch-period. A key queued already only has its
 * priority raised (as add); one waiting (a batch or a retry) keeps the
 * earlier deadline. period <= 0 is add(prio). Counted in adds when the
 * period ends (as add_after). Returns 1 when the key started waiting (or was queued by
 * add), 0 when it already waited or was queued, -1 after shut_down or on
 * malloc failure. */
int k8s_workqueue_add_batched(struct k8s_workqueue *q, const char *key, enum k8s_priority prio,
                              double period, double now);

/* add_after(key, rate_limiter.when(key, now)). Returns the delay used, or -1. */
double k8s_workqueue_add_rate_limited(struct k8s_workqueue *q, const char *key, double now);

/* Forgets key's failures in the rate limiter (call after a success). */
void k8s_workqueue_forget(struct k8s_workqueue *q, const char *key);

/* Failures of key recorded by the rate limiter. */
int k8s_workqueue_num_requeues(const struct k8s_workqueue *q, const char *key);

/* Pops the next key (HIGH first) and marks it processing; NULL when nothing
 * is queued (non-blocking). The string is valid until done(q, key). */
const char *k8s_workqueue_get(struct k8s_workqueue *q);

/* Ends processing of key (the pointer from get() or any equal string); if the
 * key was added meanwhile it is queued again with the highest priority it was
 * added with. Returns 0, or -1 when key is not processing. */
int k8s_workqueue_done(struct k8s_workqueue *q, const char *key);

/* Earliest deadline (monotonic seconds) of a delayed key, or -1 if none. */
double k8s_workqueue_next_deadline(const struct k8s_workqueue *q);

/* Moves every delayed key whose deadline <= now into the queue (LOW).
 * Returns how many were moved. */
size_t k8s_workqueue_tick(struct k8s_workqueue *q, double now);

/* Stops accepting adds (add/add_after return -1) and drops delayed keys;
 * queued keys can still be drained with get()/done(). */
void k8s_workqueue_shut_down(struct k8s_workqueue *q);

/* 1 after shut_down. */
int k8s_workqueue_shutting_down(const struct k8s_workqueue *q);

/* Counters (see struct). */
void k8s_workqueue_stats(const struct k8s_workqueue *q, struct k8s_workqueue_stats *st);

/* The queue's timing hooks. now() returns monotonic seconds (the same clock
 * as the `now` arguments above); queued() gets the seconds a key waited from
 * its add to its get() (workqueue_queue_duration_seconds); worked() the
 * seconds from get() to done() (workqueue_work_duration_seconds). Both run
 * inside get() / done(), on the caller's thread, and must not call into the
 * queue. Either may be NULL. */
struct k8s_workqueue_observer {
  double (*now)(void *data);
  void (*queued)(void *data, const char *key, double seconds);
  void (*worked)(void *data, const char *key, double seconds);
  void *data;
};

/* Sets (or with NULL, unsets) the observer. Keys added before it was set
 * have no add time and report no queue duration; keys handed out before it
 * was set report no work duration (as client-go, which skips keys it has no
 * time for). */
void k8s_workqueue_set_observer(struct k8s_workqueue *q, const struct k8s_workqueue_observer *o);

/* Work in progress at `now` (monotonic seconds) of keys handed out by get()
 * while an observer was set: *total the sum of their running times
 * (workqueue_unfinished_work_seconds), *longest the longest one
 * (workqueue_longest_running_processor_seconds); 0 and 0 when nothing runs.
 * Returns the number of such keys. O(keys known to the queue). */
size_t k8s_workqueue_unfinished(const struct k8s_workqueue *q, double now, double *total,
                                double *longest);

#endif
