/* loop.c: the one event loop (see loop.h): curl_multi_poll over the multi
 * handle plus a signalfd and an eventfd, a timer heap and a next-tick queue.
 *
 * Owns: the CURLM, the two fds, the timers (a binary heap of slot indices; a
 * slot's generation makes stale ids harmless) and the tick queues. Depends on
 * libcurl (>= 7.68 for curl_multi_poll/curl_multi_wakeup) and Linux fds. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "kube/loop.h"

/* ==== structures ========================================================== */

struct timer_slot {
  double deadline;
  uint64_t seq; /* tie-break: insertion order */
  k8s_loop_fn fn;
  void *data;
  uint32_t gen;
  int32_t pos; /* index in the heap, -1 when free */
};

struct tick {
  k8s_loop_fn fn;
  void *data;
};

struct tickq {
  struct tick *v;
  size_t n, cap;
};

struct k8s_loop {
  CURLM *multi;
  int sfd, efd;
  bool stop, running;

  struct timer_slot *slots;
  size_t nslots, capslots;
  uint32_t *free_slots;
  size_t nfree;
  uint32_t *heap;
  size_t nheap, capheap;
  uint64_t seq;

  struct tickq ticks;
  pthread_mutex_t post_mu;
  struct tickq posted; /* guarded by post_mu */

  k8s_loop_multi_fn multi_fn;
  void *multi_data;
  k8s_loop_signal_fn signal_fn;
  void *signal_data;
};

/* ==== clock ================================================================ */

double k8s_loop_now(struct k8s_loop *loop)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ==== timer heap =========================================================== */

static bool slot_before(struct k8s_loop *l, uint32_t a, uint32_t b)
{
  struct timer_slot *x = &l->slots[a], *y = &l->slots[b];
  if (x->deadline != y->deadline) return x->deadline < y->deadline;
  return x->seq < y->seq;
}

static void heap_set(struct k8s_loop *l, size_t i, uint32_t slot)
{
  l->heap[i] = slot;
  l->slots[slot].pos = (int32_t)i;
}

static void heap_up(struct k8s_loop *l, size_t i)
{
  uint32_t s = l->heap[i];
  while (i > 0) {
    size_t p = (i - 1) / 2;
    if (!slot_before(l, s, l->heap[p])) break;
    heap_set(l, i, l->heap[p]);
    i = p;
  }
  heap_set(l, i, s);
}

static void heap_down(struct k8s_loop *l, size_t i)
{
  uint32_t s = l->heap[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= l->nheap) break;
    if (c + 1 < l->nheap && slot_before(l, l->heap[c + 1], l->heap[c])) c++;
    if (!slot_before(l, l->heap[c], s)) break;
    heap_set(l, i, l->heap[c]);
    i = c;
  }
  heap_set(l, i, s);
}

/* Removes heap entry i and frees its slot (bumping the generation). */
static void heap_remove(struct k8s_loop *l, size_t i)
{
  uint32_t slot = l->heap[i];
  l->nheap--;
  if (i < l->nheap) {
    uint32_t moved = l->heap[l->nheap];
    heap_set(l, i, moved);
    heap_down(l, i);
    heap_up(l, (size_t)l->slots[moved].pos);
  }
  l->slots[slot].pos = -1;
  l->slots[slot].gen++;
  l->slots[slot].fn = NULL;
  l->free_slots[l->nfree++] = slot;
}

uint64_t k8s_loop_timer_add(struct k8s_loop *l, double delay, k8s_loop_fn fn, void *data)
{
  uint32_t slot;
  if (!fn) return 0;
  if (l->nfree) {
    slot = l->free_slots[--l->nfree];
  } else {
    if (l->nslots == l->capslots) {
      size_t cap = l->capslots ? l->capslots * 2 : 16;
      struct timer_slot *s = realloc(l->slots, cap * sizeof(*s));
      if (!s) return 0;
      l->slots = s;
      uint32_t *f = realloc(l->free_slots, cap * sizeof(*f));
      if (!f) return 0;
      l->free_slots = f;
      uint32_t *h = realloc(l->heap, cap * sizeof(*h));
      if (!h) return 0;
      l->heap = h;
      l->capslots = l->capheap = cap;
    }
    slot = (uint32_t)l->nslots++;
    l->slots[slot].gen = 1;
  }
  struct timer_slot *t = &l->slots[slot];
  t->deadline = k8s_loop_now(l) + (delay > 0 && isfinite(delay) ? delay : 0);
  t->seq = ++l->seq;
  t->fn = fn;
  t->data = data;
  l->heap[l->nheap] = slot;
  t->pos = (int32_t)l->nheap++;
  heap_up(l, (size_t)t->pos);
  return ((uint64_t)t->gen << 32) | (uint64_t)(slot + 1);
}

int k8s_loop_timer_cancel(struct k8s_loop *l, uint64_t id)
{
  uint32_t slot = (uint32_t)(id & 0xffffffffu);
  uint32_t gen = (uint32_t)(id >> 32);
  if (slot == 0 || slot > l->nslots) return -ENOENT;
  struct timer_slot *t = &l->slots[slot - 1];
  if (t->gen != gen || t->pos < 0) return -ENOENT;
  heap_remove(l, (size_t)t->pos);
  return 0;
}

double k8s_loop_next_deadline(struct k8s_loop *l)
{
  if (!l->nheap) return -1;
  double d = l->slots[l->heap[0]].deadline - k8s_loop_now(l);
  return d > 0 ? d : 0;
}

/* Fires every timer due now; timers added by a callback with delay 0 wait for
 * the next iteration (their deadline is after `now`... or equal: the seq
 * bound stops them). */
static void run_timers(struct k8s_loop *l)
{
  double now = k8s_loop_now(l);
  uint64_t seq_bound = l->seq;
  while (l->nheap && !l->stop) {
    uint32_t slot = l->heap[0];
    struct timer_slot *t = &l->slots[slot];
    if (t->deadline > now || t->seq > seq_bound) break;
    k8s_loop_fn fn = t->fn;
    void *data = t->data;
    heap_remove(l, 0);
    fn(l, data);
  }
}

/* ==== ticks ================================================================ */

static int tickq_push(struct tickq *q, k8s_loop_fn fn, void *data)
{
  if (q->n == q->cap) {
    size_t cap = q->cap ? q->cap * 2 : 16;
    struct tick *v = realloc(q->v, cap * sizeof(*v));
    if (!v) return -ENOMEM;
    q->v = v;
    q->cap = cap;
  }
  q->v[q->n].fn = fn;
  q->v[q->n].data = data;
  q->n++;
  return 0;
}

int k8s_loop_next_tick(struct k8s_loop *l, k8s_loop_fn fn, void *data)
{
  if (!fn) return -EINVAL;
  return tickq_push(&l->ticks, fn, data);
}

void k8s_loop_wakeup(struct k8s_loop *l)
{
  uint64_t one = 1;
  ssize_t n = write(l->efd, &one, sizeof(one));
  (void)n; /* EAGAIN means the counter is already non-zero: awake anyway */
}

int k8s_loop_post(struct k8s_loop *l, k8s_loop_fn fn, void *data)
{
  if (!fn) return -EINVAL;
  pthread_mutex_lock(&l->post_mu);
  int rc = tickq_push(&l->posted, fn, data);
  pthread_mutex_unlock(&l->post_mu);
  if (!rc) k8s_loop_wakeup(l);
  return rc;
}

/* Runs the ticks queued so far (ticks they queue wait for the next round). */
static void run_ticks(struct k8s_loop *l)
{
  pthread_mutex_lock(&l->post_mu);
  for (size_t i = 0; i < l->posted.n; i++)
    tickq_push(&l->ticks, l->posted.v[i].fn, l->posted.v[i].data);
  l->posted.n = 0;
  pthread_mutex_unlock(&l->post_mu);
  if (!l->ticks.n) return;
  struct tickq q = l->ticks;
  memset(&l->ticks, 0, sizeof(l->ticks));
  for (size_t i = 0; i < q.n; i++) {
    if (l->stop) { /* keep the rest for a later run */
      for (size_t j = i; j < q.n; j++)
        tickq_push(&l->ticks, q.v[j].fn, q.v[j].data);
      break;
    }
    q.v[i].fn(l, q.v[i].data);
  }
  /* reuse the larger buffer */
  if (!l->ticks.n && q.cap >= l->ticks.cap) {
    free(l->ticks.v);
    l->ticks = q;
    l->ticks.n = 0;
  } else {
    free(q.v);
  }
}

/* ==== lifecycle ============================================================ */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
  curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct k8s_loop *k8s_loop_new(void)
{
  pthread_once(&curl_once, curl_init_once);
  struct k8s_loop *l = calloc(1, sizeof(*l));
  if (!l) return NULL;
  l->sfd = l->efd = -1;
  pthread_mutex_init(&l->post_mu, NULL);

  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  if (pthread_sigmask(SIG_BLOCK, &mask, NULL) != 0) goto fail;
  signal(SIGPIPE, SIG_IGN);
  l->sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  if (l->sfd < 0) goto fail;
  l->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (l->efd < 0) goto fail;
  l->multi = curl_multi_init();
  if (!l->multi) {
    errno = ENOMEM;
    goto fail;
  }
  return l;
fail:
  k8s_loop_free(l);
  return NULL;
}

void k8s_loop_free(struct k8s_loop *l)
{
  if (!l) return;
  if (l->multi) curl_multi_cleanup(l->multi);
  if (l->sfd >= 0) close(l->sfd);
  if (l->efd >= 0) close(l->efd);
  free(l->slots);
  free(l->free_slots);
  free(l->heap);
  free(l->ticks.v);
  free(l->posted.v);
  pthread_mutex_destroy(&l->post_mu);
  free(l);
}

CURLM *k8s_loop_multi(struct k8s_loop *l)
{
  return l->multi;
}

void k8s_loop_set_multi_handler(struct k8s_loop *l, k8s_loop_multi_fn fn, void *data)
{
  l->multi_fn = fn;
  l->multi_data = data;
}

void k8s_loop_set_signal_handler(struct k8s_loop *l, k8s_loop_signal_fn fn, void *data)
{
  l->signal_fn = fn;
  l->signal_data = data;
}

void k8s_loop_stop(struct k8s_loop *l)
{
  l->stop = true;
}

/* ==== one iteration ======================================================== */

static void read_signals(struct k8s_loop *l)
{
  struct signalfd_siginfo si;
  while (read(l->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
    if (l->signal_fn)
      l->signal_fn(l, (int)si.ssi_signo, l->signal_data);
    else
      l->stop = true;
  }
}

int k8s_loop_run_once(struct k8s_loop *l, double max_wait)
{
  run_ticks(l);
  if (l->stop) return 0;
  run_timers(l);
  if (l->stop) return 0;

  double wait = max_wait;
  if (l->ticks.n) wait = 0;
  double next = k8s_loop_next_deadline(l);
  if (next >= 0 && (wait < 0 || next < wait)) wait = next;
  int timeout_ms = wait < 0 ? 1000 * 3600 : (int)ceil(wait * 1000.0);
  if (wait >= 0 && timeout_ms > 1000 * 3600) timeout_ms = 1000 * 3600;

  struct curl_waitfd fds[2] = {
      {.fd = l->sfd, .events = CURL_WAIT_POLLIN, .revents = 0},
      {.fd = l->efd, .events = CURL_WAIT_POLLIN, .revents = 0},
  };
  int numfds = 0;
  CURLMcode mc = curl_multi_poll(l->multi, fds, 2, timeout_ms, &numfds);
  if (mc != CURLM_OK) return -EIO;
  if (fds[1].revents) {
    uint64_t v;
    while (read(l->efd, &v, sizeof(v)) == (ssize_t)sizeof(v)) {
    }
  }
  if (fds[0].revents) read_signals(l);

  int running = 0;
  curl_multi_perform(l->multi, &running);
  if (l->multi_fn) l->multi_fn(l, l->multi, l->multi_data);
  return 0;
}

int k8s_loop_run(struct k8s_loop *l)
{
  if (l->running) return -EBUSY;
  l->running = true;
  l->stop = false;
  int rc = 0;
  while (!l->stop) {
    rc = k8s_loop_run_once(l, -1);
    if (rc < 0) break;
  }
  l->running = false;
  l->stop = false;
  return rc;
}
