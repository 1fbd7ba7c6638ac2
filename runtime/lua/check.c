/* check.c: compile and self-test a script set (see check.h). With two or
 * more online CPUs a second engine is loaded from a copy of the set's
 * modules on a second thread (while the first loads on the calling thread)
 * and runs about half the fixture cases (fixture.h); it is freed before
 * lk_check returns. */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <lua.h>

#include "core/util.h"
#include "lua/check.h"
#include "lua/engine_int.h"
#include "lua/fixture.h"

/* A set with fewer fixture files than this runs its cases on one thread: a
 * second engine (≈3.5 ms to load the bundled set) would cost more than it
 * saves. */
#define PARALLEL_MIN_FILES 4

/* A copy of set's modules, directory and revision, without its fixtures
 * (what lk_engine_new reads), or NULL when out of memory. */
static struct lk_scriptset *modules_dup(const struct lk_scriptset *set)
{
  struct lk_scriptset *d = calloc(1, sizeof(*d));
  if (!d) return NULL;
  memcpy(d->revision, set->revision, sizeof(d->revision));
  d->bytes = set->bytes;
  d->mods = calloc(set->nmods + 1, sizeof(*d->mods));
  if (!d->mods || (set->dir && !(d->dir = strdup(set->dir)))) goto fail;
  for (size_t i = 0; i < set->nmods; i++, d->nmods++) {
    const struct lk_module *m = &set->mods[i];
    struct lk_module *c = &d->mods[i];
    *c = (struct lk_module){.len = m->len, .overlay = m->overlay};
    c->name = strdup(m->name);
    c->path = strdup(m->path);
    c->source = malloc(m->len + 1);
    if (c->source) memcpy(c->source, m->source, m->len + 1);
    if (!c->name || !c->path || !c->source) {
      d->nmods++; /* freed with the others */
      goto fail;
    }
  }
  return d;
fail:
  lk_scriptset_free(d);
  return NULL;
}

struct helper {
  struct lk_scriptset *set; /* taken by lk_engine_new */
  const struct lk_engine_opts *opts;
  struct lk_engine *e; /* NULL when it did not load cleanly */
};

static void *load_helper(void *arg)
{
  struct helper *h = arg;
  /* its problems are the first engine's: not reported twice */
  if (lk_engine_new(h->set, h->opts, &h->e, NULL) != 0) {
    lk_engine_free(h->e);
    h->e = NULL;
  }
  return NULL;
}

int lk_check(struct lk_scriptset *set, const struct lk_engine_opts *opts, struct lk_messages *msgs,
             struct lk_check_stats *stats, struct lk_engine **engine)
{
  return lk_check_threads(set, opts, 0, msgs, stats, engine);
}

int lk_check_threads(struct lk_scriptset *set, const struct lk_engine_opts *opts, int threads,
                     struct lk_messages *msgs, struct lk_check_stats *stats,
                     struct lk_engine **engine)
{
  struct lk_check_stats st = {0};
  struct lk_engine *e = NULL;
  if (engine) *engine = NULL;
  st.modules = set->nmods;
  double t0 = k8s_monotonic();
  struct helper h = {.opts = opts};
  pthread_t tid;
  if (threads <= 0)
    threads =
        sysconf(_SC_NPROCESSORS_ONLN) >= 2 && set->nfixtures + set->nofixtures >= PARALLEL_MIN_FILES
            ? 2
            : 1;
  /* jansson seeds its hash function on the first object made: seed it here,
   * before the second thread starts, so the two never race on the seed (a
   * no-op once seeded; found with helgrind) */
  if (threads >= 2) json_object_seed(0);
  bool helping = set->dir && threads >= 2 && (h.set = modules_dup(set)) &&
                 pthread_create(&tid, NULL, load_helper, &h) == 0;
  if (!helping) lk_scriptset_free(h.set);
  int problems = lk_engine_new(set, opts, &e, msgs);
  if (helping) pthread_join(tid, NULL);
  if (problems < 0) {
    lk_engine_free(h.e);
    return -1;
  }
  double t1 = k8s_monotonic();
  st.compile = t1 - t0;
  st.controllers = e->ncontrollers;
  size_t ncases = 0, nfailed = 0;
  /* h.e is NULL when the helper did not load cleanly: then the calling
   * thread runs every case */
  if (e->set->dir) lk_fixture_run_all_timed(e, h.e, msgs, &ncases, &nfailed, &st.times);
  lk_engine_free(h.e);
  double t2 = k8s_monotonic();
  st.fixtures = t2 - t1;
  /* the fixture runs' garbage sits in the generational collector's old
   * generation until a major cycle: the engine goes on serving without it
   * (≈0.3 MiB of a 0.4 MiB state, found with heaptrack at idle) */
  lua_gc(e->sb->L, LUA_GCCOLLECT);
  st.gc = k8s_monotonic() - t2;
  st.cases = ncases;
  st.failed = nfailed;
  problems += (int)nfailed;
  if (stats) *stats = st;
  if (engine && problems == 0)
    *engine = e;
  else
    lk_engine_free(e);
  return problems;
}
