/* workqueue.c: client-go's WorkQueue with two priorities and a delay heap
 * (workqueue.h). Owns one `struct item` per key that is queued, dirty,
 * processing or waiting; an item dies in exactly one place, release(), once
 * it is none of these. Owns its rate limiter. Depends on strmap.c and
 * ratelimiter.c; no clock of its own. */
#include <stdlib.h>
#include <string.h>
#include "strmap.h"
#include "workqueue.h"

struct item {
  struct item *prev, *next; /* links in queue[prio] while queued */
  size_t heap;              /* 1 + position in the delay heap; 0 when not waiting */
  double deadline;          /* while waiting */
  uint64_t seq;             /* FIFO order among equal deadlines */
  double added_at;          /* with an observer: when it became dirty */
  double started_at;        /* with an observer: when get() handed it out */
  unsigned queued : 1, dirty : 1, processing : 1;
  unsigned has_added_at : 1, has_started_at : 1;
  unsigned prio : 1;      /* priority it is queued with, or will be at done() */
  unsigned fire_prio : 1; /* priority it is queued with when its deadline passes */
  char key[];
};

struct list {
  struct item *head, *tail;
};

struct k8s_workqueue {
  char *name;
  struct k8s_ratelimiter *rl;
  struct k8s_strmap items; /* key -> struct item */
  struct list queue[2];    /* index: enum k8s_priority */
  struct item **heap;      /* min-heap on (deadline, seq) */
  size_t nheap, heap_cap;
  uint64_t seq;
  int shutting_down;
  struct k8s_workqueue_stats st;
  const struct k8s_workqueue_observer *obs; /* borrowed; NULL: no timing */
};

/* {====================================================================
 * Items and lists
 * ===================================================================== */

static struct item *item_get(struct k8s_workqueue *q, const char *key, int create)
{
  struct item *it = k8s_strmap_get(&q->items, key);
  if (it || !create) return it;
  size_t n = strlen(key);
  it = calloc(1, sizeof *it + n + 1);
  if (!it) return NULL;
  memcpy(it->key, key, n + 1);
  if (k8s_strmap_put(&q->items, it->key, it) < 0) {
    free(it);
    return NULL;
  }
  return it;
}

/* The one place an item dies: when nothing refers to its key any more. */
static void release(struct k8s_workqueue *q, struct item *it)
{
  if (it->queued || it->dirty || it->processing || it->heap) return;
  k8s_strmap_del(&q->items, it->key);
  free(it);
}

static void list_push(struct k8s_workqueue *q, struct item *it, int prio)
{
  struct list *l = &q->queue[prio];
  it->prio = (unsigned)prio;
  it->prev = l->tail;
  it->next = NULL;
  if (l->tail)
    l->tail->next = it;
  else
    l->head = it;
  l->tail = it;
  it->queued = 1;
  q->st.depth++;
}

static void list_unlink(struct k8s_workqueue *q, struct item *it)
{
  struct list *l = &q->queue[it->prio];
  if (it->prev)
    it->prev->next = it->next;
  else
    l->head = it->next;
  if (it->next)
    it->next->prev = it->prev;
  else
    l->tail = it->prev;
  it->prev = it->next = NULL;
  it->queued = 0;
  q->st.depth--;
}

/* }==================================================================== */

/* {====================================================================
 * Delay heap
 * ===================================================================== */

static int heap_less(const struct item *a, const struct item *b)
{
  return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static void heap_set(struct k8s_workqueue *q, size_t i, struct item *it)
{
  q->heap[i] = it;
  it->heap = i + 1;
}

static void heap_up(struct k8s_workqueue *q, size_t i)
{
  struct item *it = q->heap[i];
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!heap_less(it, q->heap[parent])) break;
    heap_set(q, i, q->heap[parent]);
    i = parent;
  }
  heap_set(q, i, it);
}

static void heap_down(struct k8s_workqueue *q, size_t i)
{
  struct item *it = q->heap[i];
  for (;;) {
    size_t c = 2 * i + 1;
    if (c >= q->nheap) break;
    if (c + 1 < q->nheap && heap_less(q->heap[c + 1], q->heap[c])) c++;
    if (!heap_less(q->heap[c], it)) break;
    heap_set(q, i, q->heap[c]);
    i = c;
  }
  heap_set(q, i, it);
}

static int heap_push(struct k8s_workqueue *q, struct item *it)
{
  if (q->nheap == q->heap_cap) {
    size_t cap = q->heap_cap ? q->heap_cap * 2 : 16;
    struct item **h = realloc(q->heap, cap * sizeof *h);
    if (!h) return -1;
    q->heap = h;
    q->heap_cap = cap;
  }
  heap_set(q, q->nheap++, it);
  heap_up(q, q->nheap - 1);
  q->st.waiting++;
  return 0;
}

static struct item *heap_pop(struct k8s_workqueue *q)
{
  struct item *top = q->heap[0];
  top->heap = 0;
  if (--q->nheap > 0) {
    heap_set(q, 0, q->heap[q->nheap]);
    heap_down(q, 0);
  }
  q->st.waiting--;
  return top;
}

/* }==================================================================== */

/* {====================================================================
 * The queue
 * ===================================================================== */

struct k8s_workqueue *k8s_workqueue_new(const char *name, struct k8s_ratelimiter *rl)
{
  struct k8s_workqueue *q = calloc(1, sizeof *q);
  if (q && !rl) rl = k8s_ratelimiter_new(NULL);
  if (!q || !rl || !(q->name = strdup(name ? name : ""))) {
    k8s_ratelimiter_free(rl);
    free(q);
    return NULL;
  }
  q->rl = rl;
  return q;
}

void k8s_workqueue_free(struct k8s_workqueue *q)
{
  if (!q) return;
  size_t i = 0;
  void *v;
  while (k8s_strmap_next(&q->items, &i, NULL, &v))
    free(v);
  k8s_strmap_clear(&q->items);
  free(q->heap);
  k8s_ratelimiter_free(q->rl);
  free(q->name);
  free(q);
}

const char *k8s_workqueue_name(const struct k8s_workqueue *q)
{
  return q->name;
}

int k8s_workqueue_add(struct k8s_workqueue *q, const char *key, enum k8s_priority prio)
{
  int p = prio == K8S_PRIORITY_HIGH;
  if (q->shutting_down) return -1;
  struct item *it = item_get(q, key, 1);
  if (!it) return -1;
  if (it->dirty) { /* queued already, or processing and queued again at done() */
    if (p > (int)it->prio) {
      if (it->queued) {
        list_unlink(q, it);
        list_push(q, it, p);
      } else {
        it->prio = (unsigned)p;
      }
    }
    return 0;
  }
  it->dirty = 1;
  q->st.adds++;
  if (q->obs && q->obs->now && !it->has_added_at) {
    it->added_at = q->obs->now(q->obs->data);
    it->has_added_at = 1;
  }
  if (it->processing) {
    it->prio = (unsigned)p;
    return 1;
  }
  list_push(q, it, p);
  return 1;
}

/* Puts it in the delay heap until deadline; one already waiting keeps the
 * earlier of its deadline and this one. 1 when it started waiting, 0 when it
 * was waiting already, -1 on malloc failure (it is released then). */
static int wait_until(struct k8s_workqueue *q, struct item *it, double deadline)
{
  if (it->heap) {
    if (deadline < it->deadline) {
      it->deadline = deadline;
      heap_up(q, it->heap - 1);
    }
    return 0;
  }
  it->deadline = deadline;
  it->seq = q->seq++;
  if (heap_push(q, it) < 0) {
    release(q, it);
    return -1;
  }
  return 1;
}

int k8s_workqueue_add_after(struct k8s_workqueue *q, const char *key, double delay, double now)
{
  if (q->shutting_down) return -1;
  q->st.retries++;
  if (delay <= 0) return k8s_workqueue_add(q, key, K8S_PRIORITY_LOW) < 0 ? -1 : 0;
  struct item *it = item_get(q, key, 1);
  if (!it) return -1;
  return wait_until(q, it, now + delay) < 0 ? -1 : 0;
}

int k8s_workqueue_add_batched(struct k8s_workqueue *q, const char *key, enum k8s_priority prio,
                              double period, double now)
{
  if (period <= 0) return k8s_workqueue_add(q, key, prio);
  if (q->shutting_down) return -1;
  struct item *it = item_get(q, key, 1);
  if (!it) return -1;
  if (it->dirty) return k8s_workqueue_add(q, key, prio); /* queued already: raise its priority */
  if (prio == K8S_PRIORITY_HIGH) it->fire_prio = 1;
  return wait_until(q, it, now + period);
}

double k8s_workqueue_add_rate_limited(struct k8s_workqueue *q, const char *key, double now)
{
  if (q->shutting_down) return -1;
  double delay = k8s_ratelimiter_when(q->rl, key, now);
  return k8s_workqueue_add_after(q, key, delay, now) < 0 ? -1 : delay;
}

void k8s_workqueue_forget(struct k8s_workqueue *q, const char *key)
{
  k8s_ratelimiter_forget(q->rl, key);
}

int k8s_workqueue_num_requeues(const struct k8s_workqueue *q, const char *key)
{
  return k8s_ratelimiter_num_requeues(q->rl, key);
}

const char *k8s_workqueue_get(struct k8s_workqueue *q)
{
  struct item *it = q->queue[K8S_PRIORITY_HIGH].head;
  if (!it) it = q->queue[K8S_PRIORITY_LOW].head;
  if (!it) return NULL;
  list_unlink(q, it);
  it->dirty = 0;
  it->processing = 1;
  q->st.processing++;
  it->has_started_at = 0;
  if (q->obs && q->obs->now) {
    double now = q->obs->now(q->obs->data);
    if (it->has_added_at && q->obs->queued)
      q->obs->queued(q->obs->data, it->key, now - it->added_at);
    it->started_at = now;
    it->has_started_at = 1;
  }
  it->has_added_at = 0;
  return it->key;
}

int k8s_workqueue_done(struct k8s_workqueue *q, const char *key)
{
  struct item *it = k8s_strmap_get(&q->items, key);
  if (!it || !it->processing) return -1;
  it->processing = 0;
  q->st.processing--;
  if (it->has_started_at && q->obs && q->obs->now && q->obs->worked)
    q->obs->worked(q->obs->data, it->key, q->obs->now(q->obs->data) - it->started_at);
  it->has_started_at = 0;
  if (it->dirty)
    list_push(q, it, (int)it->prio);
  else
    release(q, it);
  return 0;
}

double k8s_workqueue_next_deadline(const struct k8s_workqueue *q)
{
  return q->nheap ? q->heap[0]->deadline : -1;
}

size_t k8s_workqueue_tick(struct k8s_workqueue *q, double now)
{
  size_t moved = 0;
  while (q->nheap && q->heap[0]->deadline <= now) {
    struct item *it = heap_pop(q);
    enum k8s_priority p = it->fire_prio ? K8S_PRIORITY_HIGH : K8S_PRIORITY_LOW;
    it->fire_prio = 0;
    if (k8s_workqueue_add(q, it->key, p) < 0) release(q, it);
    moved++;
  }
  return moved;
}

void k8s_workqueue_shut_down(struct k8s_workqueue *q)
{
  q->shutting_down = 1;
  while (q->nheap)
    release(q, heap_pop(q));
}

int k8s_workqueue_shutting_down(const struct k8s_workqueue *q)
{
  return q->shutting_down;
}

void k8s_workqueue_stats(const struct k8s_workqueue *q, struct k8s_workqueue_stats *st)
{
  *st = q->st;
}

void k8s_workqueue_set_observer(struct k8s_workqueue *q, const struct k8s_workqueue_observer *o)
{
  q->obs = o;
}

size_t k8s_workqueue_unfinished(const struct k8s_workqueue *q, double now, double *total,
                                double *longest)
{
  size_t i = 0, n = 0;
  void *v;
  double sum = 0, max = 0;
  while (k8s_strmap_next(&q->items, &i, NULL, &v)) {
    const struct item *it = v;
    if (!it->processing || !it->has_started_at) continue;
    double d = now - it->started_at;
    sum += d;
    if (d > max) max = d;
    n++;
  }
  if (total) *total = sum;
  if (longest) *longest = max;
  return n;
}

/* }==================================================================== */
