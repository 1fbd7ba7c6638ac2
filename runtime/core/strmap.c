/* strmap.c: the string -> pointer hash map of strmap.h: open addressing with
 * linear probing and tombstones, grown (and cleaned) at 3/4 load. Keys are
 * not stored hashed; comparing strings on probe is cheap at our sizes. */
#include <stdlib.h>
#include <string.h>
#include "strmap.h"

static char tomb_mark;
#define TOMB ((const char *)&tomb_mark)

uint64_t k8s_strhash(const char *s)
{
  uint64_t h = 1469598103934665603ULL;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    h ^= *p;
    h *= 1099511628211ULL;
  }
  h ^= h >> 29; /* spread the high bits into the low ones we mask with */
  return h;
}

static size_t find(const struct k8s_strmap *m, const char *key)
{
  size_t mask = m->cap - 1;
  for (size_t i = k8s_strhash(key) & mask;; i = (i + 1) & mask) {
    const char *k = m->slots[i].key;
    if (!k) return (size_t)-1;
    if (k != TOMB && strcmp(k, key) == 0) return i;
  }
}

void *k8s_strmap_get(const struct k8s_strmap *m, const char *key)
{
  if (!m->len) return NULL;
  size_t i = find(m, key);
  return i == (size_t)-1 ? NULL : m->slots[i].value;
}

static int resize(struct k8s_strmap *m, size_t cap)
{
  struct k8s_strmap_slot *slots = calloc(cap, sizeof *slots);
  if (!slots) return -1;
  for (size_t i = 0; i < m->cap; i++) {
    const char *k = m->slots[i].key;
    if (!k || k == TOMB) continue;
    size_t j = k8s_strhash(k) & (cap - 1);
    while (slots[j].key)
      j = (j + 1) & (cap - 1);
    slots[j] = m->slots[i];
  }
  free(m->slots);
  m->slots = slots;
  m->cap = cap;
  m->used = m->len;
  return 0;
}

int k8s_strmap_put(struct k8s_strmap *m, const char *key, void *value)
{
  if (m->len) {
    size_t i = find(m, key);
    if (i != (size_t)-1) {
      m->slots[i].key = key;
      m->slots[i].value = value;
      return 0;
    }
  }
  if ((m->used + 1) * 4 > m->cap * 3) {
    size_t cap = m->cap ? m->cap : 8;
    while ((m->len + 1) * 2 > cap) /* after growing, at most half full */
      cap *= 2;
    if (resize(m, cap) < 0) return -1;
  }
  size_t mask = m->cap - 1;
  size_t i = k8s_strhash(key) & mask;
  while (m->slots[i].key && m->slots[i].key != TOMB)
    i = (i + 1) & mask;
  if (!m->slots[i].key) m->used++;
  m->slots[i].key = key;
  m->slots[i].value = value;
  m->len++;
  return 0;
}

void *k8s_strmap_del(struct k8s_strmap *m, const char *key)
{
  if (!m->len) return NULL;
  size_t i = find(m, key);
  if (i == (size_t)-1) return NULL;
  void *v = m->slots[i].value;
  m->slots[i].key = TOMB;
  m->slots[i].value = NULL;
  m->len--;
  if (m->len == 0) { /* everything gone: forget the tombstones */
    memset(m->slots, 0, m->cap * sizeof *m->slots);
    m->used = 0;
  } else if (m->cap > 64 && m->len * 8 < m->cap) {
    resize(m, m->cap / 2); /* failure just keeps the larger table */
  }
  return v;
}

int k8s_strmap_next(const struct k8s_strmap *m, size_t *it, const char **key, void **value)
{
  for (size_t i = *it; i < m->cap; i++) {
    const char *k = m->slots[i].key;
    if (k && k != TOMB) {
      *it = i + 1;
      if (key) *key = k;
      if (value) *value = m->slots[i].value;
      return 1;
    }
  }
  *it = m->cap;
  return 0;
}

void k8s_strmap_clear(struct k8s_strmap *m)
{
  free(m->slots);
  memset(m, 0, sizeof *m);
}

size_t k8s_strmap_bytes(const struct k8s_strmap *m)
{
  return m->cap * sizeof(struct k8s_strmap_slot);
}
