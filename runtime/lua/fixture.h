/* fixture.h: runs the fixture cases of a script set (doc/architecture.md,
 * "Fixture cases") through the production engine and sandbox, with the
 * observed objects in an in-memory source (memsource.h), and compares the
 * result with the case's expectations (fixture.lua, a trusted matcher
 * embedded in the binary and run in its own plain lua_State).
 *
 * A fixture file holds one case per YAML document. Matching rules
 * (doc/lua-api.md, "Fixture cases"): expected children are found by
 * apiVersion, kind, namespace (default: the CR's) and name; listed fields are
 * a subset of the actual ones; lists compare element-wise and must have the
 * same length; `null` expects the field to be absent or null.
 *
 * Ownership: outputs are new references / owned strings for the caller. */
#ifndef SCHEDSIM_LUA_FIXTURE_H
#define SCHEDSIM_LUA_FIXTURE_H

#include <stdbool.h>

#include <jansson.h>

#include "lua/engine.h"

/* Loads a fixture file: a JSON array of its cases (new reference), or NULL
 * with "path:line:col: message" in err. */
json_t *lk_fixture_load(const char *path, char *err, size_t errlen);

/* Runs one case (doc) of the fixture file at path (for input_path and
 * messages). Failures are added to fails as "path: <case name>: message".
 * When result is not NULL it receives the reconcile result as JSON
 * (lk_result_to_json plus "logs"), or NULL when the case could not run.
 * Returns 0 when the case passed, 1 when it failed. */
int lk_fixture_run(struct lk_engine *e, const char *path, const json_t *doc,
                   struct lk_messages *fails, json_t **result);

/* Runs every case of every fixture file of e's script set (the directory's,
 * then the overlay's, named by their origin "configmap:<key>"), adding
 * failures to fails; the counts go to *ncases and *nfailed. A failure shared
 * by several cases is one message, "<file, or its folder>: <n> fixture
 * cases: <message>", so one typo does not print one line per case. Also
 * fails when a controller with a valid reconciler has no case. */
void lk_fixture_run_all(struct lk_engine *e, struct lk_messages *fails, size_t *ncases,
                        size_t *nfailed);

/* Where the time of a run went, in seconds (monotonic clock), summed over
 * the cases and the workers that ran them: parse = the YAML of fixture files
 * and of input_path files; setup = reading a case and filling its in-memory
 * source; reconcile = lk_engine_reconcile; match = the result as JSON and
 * the matcher. slowest is the longest case (setup + reconcile + match), named
 * "<file>: <case name>"; threads how many workers took part (set by
 * lk_fixture_finish). The other fields are added to, not reset. */
struct lk_fixture_times {
  double parse, setup, reconcile, match, slowest;
  char slowest_case[300];
  size_t threads;
  double again; /* running again on the primary engine the cases a secondary failed */
  size_t nagain;
  size_t cases; /* cases the worker(s) ran */
};

/* Adds more's figures to t (slowest: the longer of the two; threads is
 * left alone). */
void lk_fixture_times_add(struct lk_fixture_times *t, const struct lk_fixture_times *more);

/* lk_fixture_run_all in three steps, so that several threads can share the
 * cases, each with an engine of its own loaded from the same modules (check.c
 * runs two):
 *   lk_fixture_start: the fixture files of set (copied: the run does not
 *     borrow set), or NULL when out of memory;
 *   lk_fixture_work: called by each worker with its own engine (and its own
 *     times, may be NULL), concurrently; parses the files not yet parsed and
 *     runs the cases not yet run, one at a time, until none is left. A
 *     worker that comes late finds less to do; one that never comes is not
 *     waited for. Controllers are looked up by name in the worker's engine;
 *     only the worker touches it. A secondary worker (primary false) may
 *     run with a smaller memory cap than the primary engine: a case that
 *     fails on it is run again by lk_fixture_finish on e, and only that
 *     outcome counts, so its cap never refuses what e would allow;
 *   lk_fixture_finish: once every worker returned: adds the problems to
 *     fails in file order, as one thread would have found them (their order
 *     does not depend on the workers), counts the cases and frees the run (r
 *     NULL: one "out of memory" problem). e is the primary engine: it runs
 *     again what a secondary failed, and gives the controllers that need a
 *     case (NULL: neither, to discard a run). */
struct lk_fixture_run;
struct lk_fixture_run *lk_fixture_start(const struct lk_scriptset *set);
void lk_fixture_work(struct lk_fixture_run *r, struct lk_engine *e, bool primary,
                     struct lk_fixture_times *t);
void lk_fixture_finish(struct lk_fixture_run *r, struct lk_engine *e, struct lk_messages *fails,
                       size_t *ncases, size_t *nfailed, struct lk_fixture_times *t);

#endif
