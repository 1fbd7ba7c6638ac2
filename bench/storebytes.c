/* storebytes: where the bytes of a cached object go, by kind. Replays the
 * objects of a `kubectl get ... -o json --show-managed-fields` List into one
 * Store per kind, configured as the operator's informers configure theirs
 * (field manager schedsim-operator; apiVersion/kind come with each item),
 * and prints per object: heap in use (glibc mallinfo2, malloc headers
 * included), the object's allocation and its parts, the indexes, the text
 * and field set as sent and as kept, and the CPU time of storing and of
 * reading back as JSON. Figures: doc/architecture.md ("Memory per cached
 * object"). Not part of bench/run (it needs a List of real objects):
 *
 *   cc -O2 -I runtime $(pkg-config --cflags lua5.4) bench/storebytes.c \
 *     build/libschedsimrt.a $(pkg-config --libs jansson zlib lua5.4 libcurl yaml-0.1) \
 *     -lssl -lcrypto -lm -o build/storebytes
 *   kubectl get deploy,svc,endpointslices,simulatordeployments,ns -A -o json \
 *     --show-managed-fields > objects.json
 *   build/storebytes objects.json
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "core/store.h"

static size_t heap_in_use(void)
{
  struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

static double cpu_seconds(void)
{
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The fieldsV1 length of manager's Apply entry on the main resource, or 0. */
static size_t applied_fields_len(const json_t *item)
{
  size_t i;
  const json_t *e;
  json_array_foreach(json_object_get(json_object_get(item, "metadata"), "managedFields"), i, e)
  {
    const char *m = json_string_value(json_object_get(e, "manager"));
    const char *op = json_string_value(json_object_get(e, "operation"));
    if (m && op && !strcmp(m, "schedsim-operator") && !strcmp(op, "Apply") &&
        !json_object_get(e, "subresource")) {
      char *t = json_dumps(json_object_get(e, "fieldsV1"), JSON_COMPACT);
      size_t n = t ? strlen(t) : 0;
      free(t);
      return n;
    }
  }
  return 0;
}

/* Stores the items of kind `kind` and prints one line; returns the heap bytes
 * they took and adds their count to *total. */
static size_t replay(const json_t *items, const char *kind, size_t *total)
{
  struct k8s_store *s = k8s_store_new();
  if (!s || k8s_store_set_field_manager(s, "schedsim-operator") != 0) exit(1);
  size_t i, n = 0, fields_in = 0;
  const json_t *it;
  char err[256];
  json_array_foreach(items, i, it)
  {
    const char *k = json_string_value(json_object_get(it, "kind"));
    if (k && !strcmp(k, kind)) fields_in += applied_fields_len(it);
  }
  malloc_trim(0);
  size_t before = heap_in_use();
  double t0 = cpu_seconds();
  json_array_foreach(items, i, it)
  {
    const char *k = json_string_value(json_object_get(it, "kind"));
    if (!k || strcmp(k, kind)) continue;
    if (k8s_store_upsert(s, it, NULL, NULL, err, sizeof err) < 0)
      fprintf(stderr, "%s: %s\n", kind, err);
    n++;
  }
  double t1 = cpu_seconds();
  size_t heap = heap_in_use() - before;
  if (!n) {
    k8s_store_free(s);
    return 0;
  }
  const struct k8s_object **arr;
  size_t m = k8s_store_list(s, NULL, &arr), parts = 0, fields = 0, strings = 0;
  for (size_t j = 0; j < m; j++) {
    const struct k8s_object *o = arr[j];
    size_t arrays =
        o->nlabels * sizeof(struct k8s_label) + o->nowners * sizeof(struct k8s_owner_ref);
    size_t text = o->packed ? o->packed_len : o->json_len + 1;
    size_t fs = o->managed ? o->managed_len : 0;
    parts += arrays;
    fields += fs;
    strings += malloc_usable_size((void *)o) - sizeof *o - arrays - text - fs;
  }
  double t2 = cpu_seconds();
  for (size_t j = 0; j < m; j++)
    json_decref(k8s_object_parse(arr[j], NULL, 0));
  double t3 = cpu_seconds();
  free(arr);
  struct k8s_store_stats st;
  k8s_store_stats(s, &st);
  printf("%-20s %5zu objects: heap %5zu B/object = object %4zu (struct %zu, labels+owners %zu, "
         "strings+slack %zu, text %zu -> %zu, field set %zu -> %zu) + indexes %zu + dictionaries "
         "%zu; store %.1f us, read as JSON %.1f us\n",
         kind, n, heap / n, st.object_bytes / n, sizeof(struct k8s_object), parts / m, strings / m,
         st.json_bytes / n, st.packed_bytes / n, fields_in / n, fields / m, st.index_bytes / n,
         st.dict_bytes / n, (t1 - t0) / (double)n * 1e6, (t3 - t2) / (double)m * 1e6);
  k8s_store_free(s);
  *total += n;
  return heap;
}

int main(int argc, char **argv)
{
  if (argc != 2) {
    fprintf(stderr, "usage: %s LIST.json\n", argv[0]);
    return 2;
  }
  json_error_t e;
  json_t *doc = json_load_file(argv[1], 0, &e);
  const json_t *items = json_object_get(doc, "items");
  if (!json_is_array(items)) {
    fprintf(stderr, "%s: not a List: %s\n", argv[1], e.text);
    return 1;
  }
  /* the kinds in order of first appearance */
  json_t *kinds = json_array();
  size_t i;
  const json_t *it;
  json_array_foreach(items, i, it)
  {
    const json_t *k = json_object_get(it, "kind");
    size_t j;
    const json_t *seen;
    int found = 0;
    json_array_foreach(kinds, j, seen) found |= json_equal(seen, k);
    if (json_is_string(k) && !found) json_array_append((json_t *)kinds, (json_t *)k);
  }
  size_t heap = 0, n = 0;
  const json_t *k;
  json_array_foreach(kinds, i, k) heap += replay(items, json_string_value(k), &n);
  if (n) printf("all %zu objects: heap %zu B/object\n", n, heap / n);
  json_decref(kinds);
  json_decref(doc);
  return 0;
}
