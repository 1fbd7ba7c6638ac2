/* bench/engine.c: the CPU of one script call (lk_engine_reconcile, what the
 * operator's schedsim_reconcile_engine_cpu_seconds measures), offline, on
 * realistic inputs: a CR and its observed children as the API server returned
 * them (bench/engine-data/, captured from a bench burst), plus `--others M`
 * objects of other owners in the same stores (the cache of a cluster with M
 * more CRs: what a reconcile in the middle of a burst sees).
 *
 *   build/bench-engine [--scripts DIR] [--data DIR] [-n CALLS] [--others M]
 *                      [--evict KIB] [--label TEXT]
 *
 * Each call is timed with CLOCK_THREAD_CPUTIME_ID, as in the operator
 * (runtime/controller/reconcile.c). --evict KIB writes a buffer of that size
 * between calls, so each call starts with caches another process (the API
 * server, on a loaded machine) left cold. --churn K parses K watch-event-sized
 * JSON texts with jansson between calls into a ring of 512 kept documents
 * (each replacing the oldest), as the informers do in a burst: the malloc
 * heap the call then allocates from is the operator's, not a fresh
 * process's. --gc-outside (an experiment, not the engine's behaviour) runs a
 * full collection before each call and stops the collector during it: the
 * difference is the collector's work inside a call. Prints one line:
 *   <label>: n=<calls> others=<M> evict=<KiB> median=<µs> p95=<µs> mean=<µs>
 *   lua_kib=<KiB held by the Lua state after the calls> pool_kib=<KiB of
 *   free blocks the sandbox keeps for reuse>
 * Exits non-zero when a reconcile fails (the figure would be meaningless). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lua.h>

#include "core/json.h"
#include "core/yaml.h"
#include "lua/engine.h"
#include "lua/memsource.h"

static double thread_cpu(void)
{
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static json_t *load_json(const char *dir, const char *file)
{
  char path[1024], err[256];
  snprintf(path, sizeof(path), "%s/%s", dir, file);
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "bench-engine: cannot open %s\n", path);
    return NULL;
  }
  static char buf[1 << 20];
  size_t n = fread(buf, 1, sizeof(buf), f);
  fclose(f);
  json_t *v = k8s_json_parse(buf, n, err, sizeof(err));
  if (!v) fprintf(stderr, "bench-engine: %s: %s\n", path, err);
  return v;
}

/* Adds a copy of obj under namespace ns with owner label value owner. */
static int add_copy(struct lk_memsource *ms, const json_t *obj, const char *ns, const char *owner)
{
  char err[256];
  json_t *c = json_deep_copy(obj);
  json_t *md = json_object_get(c, "metadata");
  json_object_set_new(md, "namespace", json_string(ns));
  json_t *labels = json_object_get(md, "labels");
  if (labels && owner) json_object_set_new(labels, LK_LABEL_OWNER, json_string(owner));
  int rc = lk_memsource_add(ms, c, err, sizeof(err));
  if (rc) fprintf(stderr, "bench-engine: %s\n", err);
  json_decref(c);
  return rc;
}

int main(int argc, char **argv)
{
  const char *scripts = "scripts", *data = "bench/engine-data", *label = "engine";
  long n = 2000, others = 0, evict_kib = 0, churn = 0;
  int gc_outside = 0;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--scripts") && i + 1 < argc)
      scripts = argv[++i];
    else if (!strcmp(argv[i], "--data") && i + 1 < argc)
      data = argv[++i];
    else if (!strcmp(argv[i], "-n") && i + 1 < argc)
      n = atol(argv[++i]);
    else if (!strcmp(argv[i], "--others") && i + 1 < argc)
      others = atol(argv[++i]);
    else if (!strcmp(argv[i], "--evict") && i + 1 < argc)
      evict_kib = atol(argv[++i]);
    else if (!strcmp(argv[i], "--gc-outside"))
      gc_outside = 1;
    else if (!strcmp(argv[i], "--churn") && i + 1 < argc)
      churn = atol(argv[++i]);
    else if (!strcmp(argv[i], "--label") && i + 1 < argc)
      label = argv[++i];
    else {
      fprintf(stderr,
              "usage: %s [--scripts DIR] [--data DIR] [-n CALLS] [--others M] "
              "[--evict KIB] [--churn K] [--gc-outside] [--label TEXT]\n",
              argv[0]);
      return 2;
    }
  }
  if (n < 1) n = 1;

  struct lk_scriptset *set;
  char err[512];
  if (lk_scriptset_load(scripts, NULL, 0, NULL, &set, err, sizeof(err)) != 0) {
    fprintf(stderr, "bench-engine: %s\n", err);
    return 1;
  }
  struct lk_engine *e;
  struct lk_messages msgs = {0};
  if (lk_engine_new(set, NULL, &e, &msgs) != 0) {
    for (size_t i = 0; i < msgs.n; i++)
      fprintf(stderr, "bench-engine: %s\n", msgs.v[i]);
    return 1;
  }
  lk_messages_free(&msgs);

  json_t *cr = load_json(data, "cr.json"), *children = load_json(data, "children.json");
  if (!cr || !children) return 1;
  const char *av = json_string_value(json_object_get(cr, "apiVersion"));
  const char *kind = json_string_value(json_object_get(cr, "kind"));
  const struct lk_controller_decl *c = lk_engine_controller_for(e, av, kind);
  if (!c) {
    fprintf(stderr, "bench-engine: no controller for %s %s\n", av, kind);
    return 1;
  }
  struct lk_memsource *ms = lk_memsource_new();
  if (lk_memsource_add(ms, cr, err, sizeof(err)) != 0) {
    fprintf(stderr, "bench-engine: cr.json: %s\n", err);
    return 1;
  }
  size_t i;
  json_t *item;
  json_t *items = json_object_get(children, "items");
  json_array_foreach(items, i, item)
  {
    if (add_copy(ms, item,
                 json_string_value(json_object_get(json_object_get(item, "metadata"), "namespace")),
                 NULL))
      return 1;
  }
  for (long k = 0; k < others; k++) {
    char ns[64], owner[64];
    snprintf(ns, sizeof(ns), "other-%06ld", k);
    snprintf(owner, sizeof(owner), "other-%06ld.sim", k);
    json_array_foreach(items, i, item) if (add_copy(ms, item, ns, owner)) return 1;
  }

  struct lk_reconcile_in in = {.controller = c,
                               .cr = cr,
                               .cache = lk_memsource_cache(ms),
                               .discovery = lk_memsource_discovery(ms),
                               .now = "2026-12-06T00:00:00Z",
                               .grants = LK_GRANTS_ALL};
  size_t evict_bytes = (size_t)evict_kib << 10;
  unsigned char *junk = evict_bytes ? malloc(evict_bytes) : NULL;
  double *t = calloc((size_t)n, sizeof(*t));
  json_t *ring[512] = {0};
  size_t ring_at = 0, nitems = json_array_size(items);
  char **texts = calloc(nitems ? nitems : 1, sizeof(*texts));
  for (size_t j = 0; j < nitems; j++)
    texts[j] = json_dumps(json_array_get(items, j), JSON_COMPACT);
  long warmup = n / 10 < 20 ? 20 : n / 10;
  for (long k = -warmup; k < n; k++) {
    for (long j = 0; j < churn && nitems; j++, ring_at = (ring_at + 1) % 512) {
      const char *text = texts[(size_t)j % nitems];
      json_decref(ring[ring_at]);
      ring[ring_at] = k8s_json_parse(text, strlen(text), err, sizeof(err));
    }
    if (junk)
      for (size_t b = 0; b < evict_bytes; b += 64)
        junk[b] = (unsigned char)(junk[b] + k);
    struct lk_result r;
    if (gc_outside) {
      lua_gc(e->sb->L, LUA_GCCOLLECT);
      lua_gc(e->sb->L, LUA_GCSTOP);
    }
    double t0 = thread_cpu();
    int st = lk_engine_reconcile(e, &in, &r);
    double t1 = thread_cpu();
    if (st != 0) {
      fprintf(stderr, "bench-engine: reconcile failed: %s\n", r.err.message ? r.err.message : "?");
      return 1;
    }
    if (k == 0 && r.nobserved != json_array_size(items))
      fprintf(stderr, "bench-engine: warning: %zu observed children, expected %zu\n", r.nobserved,
              json_array_size(items));
    lk_result_free(&r);
    if (k >= 0) t[k] = (t1 - t0) * 1e6;
  }
  double sum = 0;
  for (long k = 0; k < n; k++)
    sum += t[k];
  qsort(t, (size_t)n, sizeof(*t), cmp_double);
  printf("%s: n=%ld others=%ld evict=%ldKiB churn=%ld median=%.0fus p95=%.0fus mean=%.0fus "
         "lua_kib=%zu pool_kib=%zu\n",
         label, n, others, evict_kib, churn, t[n / 2], t[(size_t)((double)n * 0.95)],
         sum / (double)n, e->sb->memory_used >> 10, e->sb->pool_bytes >> 10);
  free(t);
  free(junk);
  for (size_t j = 0; j < 512; j++)
    json_decref(ring[j]);
  for (size_t j = 0; j < nitems; j++)
    free(texts[j]);
  free(texts);
  json_decref(cr);
  json_decref(children);
  lk_memsource_free(ms);
  lk_engine_free(e);
  return 0;
}
