/* loop.h: the one event loop of the operator (doc/architecture.md, "One thread,
 * one loop").
 *
 * A k8s_loop owns the libcurl multi handle and drives it with curl_multi_poll,
 * passing two extra fds: a signalfd (SIGTERM, SIGINT) and an eventfd used for
 * wake-ups from other threads. Around it sit a timer heap (monotonic seconds)
 * and a "next tick" queue. Every callback runs on the loop's thread, one at a
 * time; nothing in a callback may block. The only thread-safe functions are
 * k8s_loop_wakeup and k8s_loop_post.
 *
 * Ownership: the caller owns the loop (k8s_loop_new / k8s_loop_free); the loop
 * owns its CURLM, the signalfd and the eventfd. Callback data is borrowed: the
 * loop never frees it.
 *
 * Errors are negative errno values; a function that takes a callback and
 * returns an error never calls that callback (libuv rule). */
#ifndef SCHEDSIM_KUBE_LOOP_H
#define SCHEDSIM_KUBE_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include <curl/curl.h>

struct k8s_loop;

/* A timer, next-tick or posted callback. */
typedef void (*k8s_loop_fn)(struct k8s_loop *loop, void *data);
/* Called on the loop when SIGTERM or SIGINT arrives (signo is the signal). */
typedef void (*k8s_loop_signal_fn)(struct k8s_loop *loop, int signo, void *data);
/* Called on the loop after every curl_multi_perform, so the HTTP layer can
 * drain curl_multi_info_read (http.c installs it). */
typedef void (*k8s_loop_multi_fn)(struct k8s_loop *loop, CURLM *multi, void *data);

/* Creates a loop. Blocks SIGTERM and SIGINT in the calling thread (call it
 * before starting other threads, so they inherit the mask) and opens the
 * signalfd and eventfd. Returns NULL on failure (errno set). */
struct k8s_loop *k8s_loop_new(void);
/* Frees the loop: pending timers and ticks are dropped without being called.
 * The CURLM must have no easy handles left (the HTTP layer removes its own).
 * NULL is a no-op. */
void k8s_loop_free(struct k8s_loop *loop);

/* The multi handle the loop drives; borrowed, valid until k8s_loop_free. */
CURLM *k8s_loop_multi(struct k8s_loop *loop);
/* Installs the after-perform hook (one per loop; NULL removes it). */
void k8s_loop_set_multi_handler(struct k8s_loop *loop, k8s_loop_multi_fn fn, void *data);
/* Installs the signal handler (one per loop; NULL removes it: signals are
 * then only counted). Without a handler the first signal stops the loop. */
void k8s_loop_set_signal_handler(struct k8s_loop *loop, k8s_loop_signal_fn fn, void *data);

/* Monotonic clock in seconds (CLOCK_MONOTONIC), sampled fresh on each call. */
double k8s_loop_now(struct k8s_loop *loop);

/* Calls fn(loop, data) once, delay seconds from now (delay <= 0: on the next
 * iteration, after ticks). Returns a timer id > 0, or 0 on allocation failure.
 * Timers with equal deadlines fire in the order they were added. */
uint64_t k8s_loop_timer_add(struct k8s_loop *loop, double delay, k8s_loop_fn fn, void *data);
/* Cancels a pending timer. Returns 0, or -ENOENT if the id is unknown, has
 * already fired or was cancelled (so cancelling twice is harmless). O(log n). */
int k8s_loop_timer_cancel(struct k8s_loop *loop, uint64_t id);
/* Seconds until the earliest timer (0 if due), or -1 when none is pending. */
double k8s_loop_next_deadline(struct k8s_loop *loop);

/* Queues fn(loop, data) to run on the next iteration, before timers; ticks
 * queued by a tick run on the iteration after. Returns 0 or -ENOMEM. */
int k8s_loop_next_tick(struct k8s_loop *loop, k8s_loop_fn fn, void *data);
/* Thread-safe: queues fn like k8s_loop_next_tick and wakes the loop. */
int k8s_loop_post(struct k8s_loop *loop, k8s_loop_fn fn, void *data);
/* Thread-safe and async-signal-safe: wakes the loop from curl_multi_poll. */
void k8s_loop_wakeup(struct k8s_loop *loop);

/* Runs until k8s_loop_stop. Returns 0, or a negative errno if polling failed.
 * Re-entering a running loop returns -EBUSY. */
int k8s_loop_run(struct k8s_loop *loop);
/* Makes k8s_loop_run return after the current callback (loop thread only). */
void k8s_loop_stop(struct k8s_loop *loop);
/* Runs one iteration, waiting at most max_wait seconds (for tests and tools
 * that interleave their own work). Returns 0 or a negative errno. */
int k8s_loop_run_once(struct k8s_loop *loop, double max_wait);

#endif
