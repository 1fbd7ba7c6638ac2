/* check.h: `schedsim-operator check` as a function, for the command and for
 * the hot reload of a script set (a new set is checked before it replaces
 * the running one). Loads the set into a new engine (compiles every module,
 * validates controllers.lua, loads every reconciler) and runs every fixture
 * case (fixture.h).
 *
 * Ownership: takes the script set; the engine, when returned, is owned by
 * the caller (lk_engine_free). */
#ifndef SCHEDSIM_LUA_CHECK_H
#define SCHEDSIM_LUA_CHECK_H

#include "lua/engine.h"
#include "lua/fixture.h"

/* What a check found and where its time went (seconds, monotonic clock):
 * compile = lk_engine_new (every module compiled, controllers.lua, every
 * reconciler loaded); fixtures = every case (broken down in times); gc = the
 * full collection after the cases. */
struct lk_check_stats {
  size_t modules, controllers, cases, failed;
  double compile, fixtures, gc;
  struct lk_fixture_times times;
  size_t second_thread_cases; /* of the cases, those the second thread ran */
};

/* Checks set. Problems are added to msgs as "file[:line]: message"; paths are
 * relative to the set's directory. Returns the number of problems (0: the
 * set is good), or -1 on allocation failure. When engine is not NULL and the
 * set is good, the loaded engine is stored there (otherwise it is freed). */
int lk_check(struct lk_scriptset *set, const struct lk_engine_opts *opts, struct lk_messages *msgs,
             struct lk_check_stats *stats, struct lk_engine **engine);

/* lk_check on at most `threads` threads (1 or 2; 0 = lk_check's choice: 2
 * when the thread may run on two CPUs and the set has at least 4 fixture
 * files, else 1). With 2, a second engine is loaded from a copy of the set's
 * modules on a second thread, with a quarter of the memory cap, and runs
 * about half the fixture cases (fixture.h, lk_fixture_work; a case that fails
 * there runs again on the first engine); the verdict, the problems and their
 * order do not depend on the number of threads. */
int lk_check_threads(struct lk_scriptset *set, const struct lk_engine_opts *opts, int threads,
                     struct lk_messages *msgs, struct lk_check_stats *stats,
                     struct lk_engine **engine);

#endif
