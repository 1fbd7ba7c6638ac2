/* strmap.h: an open-addressing hash map from C strings to pointers, used by
 * the Store, the WorkQueue, the RateLimiter and the metrics registry.
 *
 * The map does not copy keys: a key must stay alive, unchanged, as long as
 * its entry (callers point it into the value they store). Values are opaque.
 * A zeroed struct is an empty map. Not thread-safe. */
#ifndef K8S_CORE_STRMAP_H
#define K8S_CORE_STRMAP_H

#include <stddef.h>
#include <stdint.h>

struct k8s_strmap_slot {
  const char *key; /* NULL: empty; K8S_STRMAP_TOMB: deleted */
  void *value;
};

struct k8s_strmap {
  struct k8s_strmap_slot *slots;
  size_t cap;  /* power of two, or 0 */
  size_t len;  /* live entries */
  size_t used; /* live + deleted slots */
};

/* FNV-1a-style 64-bit hash of a NUL-terminated string. */
uint64_t k8s_strhash(const char *s);

/* Value for key, or NULL. */
void *k8s_strmap_get(const struct k8s_strmap *m, const char *key);

/* Inserts or replaces; on replace the stored key pointer becomes `key`.
 * Returns 0, or -1 on malloc failure (map unchanged). */
int k8s_strmap_put(struct k8s_strmap *m, const char *key, void *value);

/* Removes key; returns its value, or NULL when absent. */
void *k8s_strmap_del(struct k8s_strmap *m, const char *key);

/* Iteration: start with *it = 0; returns 1 and fills key/value per entry, 0
 * at the end. The map must not change during iteration. */
int k8s_strmap_next(const struct k8s_strmap *m, size_t *it, const char **key, void **value);

/* Frees the slot array (not keys or values) and empties the map. */
void k8s_strmap_clear(struct k8s_strmap *m);

/* Bytes of the slot array. */
size_t k8s_strmap_bytes(const struct k8s_strmap *m);

#endif
