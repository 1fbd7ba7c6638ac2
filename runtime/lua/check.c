/* check.c: compile and self-test a script set (see check.h). When the
 * thread may run on two CPUs a second engine is loaded from a copy of the set's
 * modules on a second thread while the calling thread loads the first and
 * starts on the fixture cases; the second joins in once loaded (fixture.h,
 * lk_fixture_work) and is freed before lk_check returns. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#endif
#include <pthread.h>
#include <sched.h>
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

/* The second engine's memory cap is this fraction of the first's: the
 * check adds at most a quarter of a cap to the process's worst case (the
 * serving state and the checked one may each reach their cap; a Deployment's
 * memory limit is sized for those, deploy/manager/deployment.yaml), while
 * the bundled cases peak far below it. A case that fails on the second
 * engine is run again on the first (fixture.h, lk_fixture_work), so the
 * smaller cap never refuses a set the first engine alone would pass. */
#define HELPER_MEMORY_SHARE 4

struct helper {
  struct lk_scriptset *set; /* taken by lk_engine_new */
  struct lk_engine_opts opts;
  struct lk_fixture_run *run; /* NULL: no fixtures */
  struct lk_fixture_times t;
};

/* The second thread: loads its engine, then takes cases until none is left
 * (the calling thread started on them while this one loaded). */
static void *help(void *arg)
{
  struct helper *h = arg;
  struct lk_engine *e = NULL;
  /* its problems are the first engine's: not reported twice; an engine with
   * problems runs no case */
  if (lk_engine_new(h->set, &h->opts, &e, NULL) == 0 && h->run)
    lk_fixture_work(h->run, e, false, &h->t);
  lk_engine_free(e);
  return NULL;
}

/* CPUs this thread may run on (its affinity mask: taskset, a cpuset
 * cgroup), or the online CPUs when that cannot be read. */
static long usable_cpus(void)
{
  cpu_set_t cs;
  if (sched_getaffinity(0, sizeof(cs), &cs) == 0) return CPU_COUNT(&cs);
  return sysconf(_SC_NPROCESSORS_ONLN);
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
  bool fixtures = set->dir != NULL;
  struct helper h = {.run = fixtures ? lk_fixture_start(set) : NULL};
  if (opts) h.opts = *opts;
  h.opts.memory_limit =
      (h.opts.memory_limit ? h.opts.memory_limit : LK_DEFAULT_MEMORY_LIMIT) / HELPER_MEMORY_SHARE;
  pthread_t tid;
  if (threads <= 0)
    threads = usable_cpus() >= 2 && set->nfixtures + set->nofixtures >= PARALLEL_MIN_FILES ? 2 : 1;
  /* jansson seeds its hash function on the first object made: seed it here,
   * before the second thread starts, so the two never race on the seed (a
   * no-op once seeded; found with helgrind) */
  if (threads >= 2) json_object_seed(0);
  bool helping = h.run && threads >= 2 && (h.set = modules_dup(set)) &&
                 pthread_create(&tid, NULL, help, &h) == 0;
  if (!helping) lk_scriptset_free(h.set);
  int problems = lk_engine_new(set, opts, &e, msgs);
  double t1 = k8s_monotonic();
  st.compile = t1 - t0;
  if (problems >= 0 && h.run) lk_fixture_work(h.run, e, true, &st.times);
  if (helping) pthread_join(tid, NULL);
  if (problems < 0) {
    struct lk_messages junk = {0};
    size_t n0, n1;
    lk_fixture_finish(h.run, NULL, &junk, &n0, &n1, NULL);
    lk_messages_free(&junk);
    return -1;
  }
  st.controllers = e->ncontrollers;
  size_t ncases = 0, nfailed = 0;
  if (fixtures) {
    lk_fixture_times_add(&st.times, &h.t);
    st.second_thread_cases = h.t.cases;
    lk_fixture_finish(h.run, e, msgs, &ncases, &nfailed, &st.times);
  }
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
