/* reconcile.c: one reconcile of a CR key (internal.h): read the CR from the
 * informer cache, run the engine (runtime/lua/engine.h), issue the writes
 * (writer.c) in ordered phases (enum phase: existence checks of children the
 * cache cannot vouch for with a LIST of the pods each selector matches
 * (selectors.c) beside them, the finalizer, then what other children refer
 * to, then the other children and deletes, then the status),
 * and once the last one finished give the key its WorkQueue outcome
 * (controller-runtime's reconcileHandler):
 *   failed write                 -> add_rate_limited           result "error"
 *   script error, budget         -> add_after (script backoff) result "error"
 *   terminal error (InvalidSpec) -> forget, no requeue         result "error"
 *   child refused (boundary)     -> forget, no requeue         result "error"
 *                                   (a grant label change requeues it)
 *   child conflict               -> add_after 5 s              result "requeue"
 *   prerequisite not visible yet -> add_after 1 s              result "requeue"
 *   requeue_after                -> forget, add_after (>= 1 s) result "requeue_after"
 *   otherwise                    -> forget                     result "success"
 * and done(key).
 *
 * A write that fails stops the phases that follow (a Deployment is not
 * applied when its ServiceAccount could not be), and the same attempt's
 * status says Ready=False with a reason naming the cause
 * (TargetNamespaceNotFound, WriteForbidden, WriteInvalid, WriteFailed) and
 * the write; the status is written last, so Ready=True is never written
 * while a child of the attempt failed. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "controller/internal.h"
#include "core/json.h"
#include "core/util.h"

/* {====================================================================
 * Completing a reconcile
 * ===================================================================== */

static void complete(struct rec *r)
{
  struct ctl *c = r->c;
  struct controllers *all = c->all;
  double now = k8s_monotonic();
  const char *result;
  int terminal = 0; /* not retried until the CR (or a grant) changes */
  if (r->conflict) {
    k8s_workqueue_forget(c->q, r->key);
    k8s_workqueue_add_after(c->q, r->key, CONFLICT_RECHECK, now);
    result = "requeue";
  } else if (r->failed) {
    k8s_workqueue_add_rate_limited(c->q, r->key, now);
    result = "error";
  } else if (r->quiet) {
    k8s_workqueue_add_after(c->q, r->key, QUIET_RETRY, now);
    result = "requeue";
  } else if (r->outcome == OUT_SCRIPT_ERROR || r->outcome == OUT_ERROR) {
    /* a failing script (or one out of budget) waits 1 s, 2 s, 4 s ... up to
     * 5 min, so a few bad CRs cannot keep the loop busy for the others */
    k8s_workqueue_forget(c->q, r->key);
    k8s_workqueue_add_after(c->q, r->key, k8s_ratelimiter_when(all->script_backoff, r->key, now),
                            now);
    result = "error";
  } else if (r->outcome == OUT_TERMINAL || r->outcome == OUT_REFUSED) {
    k8s_workqueue_forget(c->q, r->key);
    result = "error";
    terminal = 1;
  } else if (r->outcome == OUT_CONFLICT) {
    k8s_workqueue_forget(c->q, r->key);
    k8s_workqueue_add_after(c->q, r->key, CONFLICT_RECHECK, now);
    result = "requeue";
  } else if (r->outcome == OUT_REQUEUE_AFTER) {
    k8s_workqueue_forget(c->q, r->key);
    k8s_workqueue_add_after(c->q, r->key, r->requeue_after, now);
    result = "requeue_after";
  } else {
    k8s_workqueue_forget(c->q, r->key);
    result = "success";
  }
  if (r->deferred) /* the children's events come first, normally (status_deferred) */
    k8s_workqueue_add_batched(c->q, r->key, K8S_PRIORITY_LOW, CREATED_RECHECK, now);
  if (r->outcome != OUT_SCRIPT_ERROR && r->outcome != OUT_ERROR)
    k8s_ratelimiter_forget(all->script_backoff, r->key);
  /* panic: the script raised a Lua error (doc/metrics.md, "Errors, terminal
   * errors and panics") */
  k8s_controller_metrics_reconciled(c->cm, result, terminal, now - r->t0);
  if (r->have_res && r->st != 0 && r->res.err.kind == LK_ERR_RUNTIME)
    k8s_controller_metrics_panicked(c->cm);
  struct k8s_log_field done[] = {{"result", K8S_LOG_STR, result, 0, 0},
                                 {"ms", K8S_LOG_REAL, NULL, 0, (now - r->t0) * 1000},
                                 {"writes", K8S_LOG_INT, NULL, r->writes, 0}};
  ctl_logf(K8S_LOG_DEBUG, 1, c, r->key, r->id, "reconciled", done, 3);
  ctl_release_claims(r);
  k8s_workqueue_done(c->q, r->key);
  c->inflight--;
  ctl_sync_queue_metrics(c);
  ctl_arm_timer(c);
  if (r->have_res) lk_result_free(&r->res);
  json_decref(r->cr);
  free(r->failure);
  free(r->selector_warning);
  free(r->key);
  free(r);
  ctl_schedule(c);
  ctl_trim_when_idle(c);
}

/* }==================================================================== */

/* {====================================================================
 * The phases
 * ===================================================================== */

/* Kinds other children refer to by name: a pod template's ServiceAccount
 * and ConfigMap volumes, a RoleBinding's Role. */
static int prereq_kind(const struct lk_child *ch)
{
  if (!strcmp(ch->api_version, "v1"))
    return !strcmp(ch->kind, "ServiceAccount") || !strcmp(ch->kind, "ConfigMap");
  return !strcmp(ch->kind, "Role") && !strcmp(ch->api_version, "rbac.authorization.k8s.io/v1");
}

/* The status of this attempt: the engine's, and the failed write when
 * there was one, or else the foreign pods a selector matches (new
 * reference). */
static json_t *attempt_status(struct rec *r)
{
  json_t *st = json_deep_copy(r->res.status);
  const char *warning = r->failure || r->st != 0 ? NULL : ctl_selector_warning(r);
  if (st && warning) {
    const json_t *cr_status = json_object_get(r->cr, "status");
    json_t *gen = json_object_get(json_object_get(r->cr, "metadata"), "generation");
    lk_status_condition(st, cr_status, "Degraded", "True", "SelectorMatchesForeignPods", warning,
                        NULL, gen);
    lk_status_condition(st, cr_status, "Ready", "False", "SelectorMatchesForeignPods", warning,
                        NULL, gen);
    lk_result_override_events(&r->res, cr_status, "SelectorMatchesForeignPods", warning);
    /* pods come and go unwatched: look again in a while */
    if (r->outcome == OUT_SUCCESS) {
      r->outcome = OUT_REQUEUE_AFTER;
      r->requeue_after = 60;
    }
  }
  if (st && r->failure) {
    const char *reason = r->failure_reason ? r->failure_reason : "WriteFailed";
    const json_t *cr_status = json_object_get(r->cr, "status");
    lk_status_condition(st, cr_status, "Ready", "False", reason, r->failure, NULL,
                        json_object_get(json_object_get(r->cr, "metadata"), "generation"));
    lk_result_override_events(&r->res, cr_status, reason, r->failure);
  }
  return st;
}

/* Whether this attempt leaves its status to the next reconcile: it created
 * children (applies of objects the cache did not hold, all successful) and
 * nothing else is wrong, so the status it would write ("Deployment ... not
 * created yet") is already out of date and the next one is known to come:
 * the created children's watch events enqueue the CR (after the batch
 * period), and CREATED_RECHECK if they do not. One status write instead of
 * two per new CR (issue: "no intermediate status when the next is known").
 * Its Events go with it (the next attempt computes them again from the same
 * CR status). */
static int status_deferred(struct rec *r)
{
  if (r->created == 0 || r->failed || r->conflict || r->quiet ||
      (r->outcome != OUT_SUCCESS && r->outcome != OUT_REQUEUE_AFTER))
    return 0;
  /* the selector check's answer is remembered all the same (the next attempt
   * need not list the pods again); one that found foreign pods is written now */
  return ctl_selector_warning(r) == NULL;
}

static void issue_phase(struct rec *r)
{
  struct lk_result *res = &r->res;
  int ok = r->have_res && r->st == 0;
  const char *cr_ns =
      json_string_value(json_object_get(json_object_get(r->cr, "metadata"), "namespace"));
  switch (r->phase) {
  case PHASE_PROBE:
    if (!ok || res->finalizing) break;
    for (size_t i = 0; i < res->nchildren; i++)
      if (res->children[i].action == LK_CHILD_APPLY && res->children[i].probe)
        ctl_probe_child(r, &res->children[i]);
    /* the pods a selector matches do not depend on the selector's object
     * existing: the LIST goes with the probes, not after the applies (one
     * round trip less before a new CR's status) */
    ctl_check_selectors(r);
    break;
  case PHASE_FINALIZER:
    if (r->failed) break;
    if (ok && !res->finalizing && !r->fin && lk_result_needs_finalizer(res, cr_ns))
      ctl_add_finalizer(r);
    break;
  case PHASE_PREREQS:
    if (!ok || res->finalizing || r->failed) break;
    for (size_t i = 0; i < res->nchildren; i++)
      if (res->children[i].action == LK_CHILD_APPLY && prereq_kind(&res->children[i]))
        ctl_apply_child(r, &res->children[i], 1);
    break;
  case PHASE_CHILDREN:
    if (!ok || r->failed || r->quiet || (res->finalizing && !res->finalized)) break;
    for (size_t i = 0; i < res->nchildren; i++)
      if (res->children[i].action == LK_CHILD_APPLY && !prereq_kind(&res->children[i]))
        ctl_apply_child(r, &res->children[i], 0);
    for (size_t i = 0; i < res->nprune; i++)
      ctl_delete_child(r, &res->prune[i]);
    break;
  case PHASE_STATUS:
    if (!r->have_res) break;
    if (res->finalizing) {
      if (ok && res->finalized && res->nobserved == 0 && !r->failed) ctl_remove_finalizer(r);
      break;
    }
    if (r->quiet && !r->failed) break; /* the retry in a second writes it */
    if ((r->deferred = status_deferred(r))) break;
    json_t *st = attempt_status(r);
    if (st) ctl_write_status(r, st);
    json_decref(st);
    ctl_post_events(r, res->events);
    break;
  case PHASE_DONE:
    break;
  }
}

void ctl_advance(struct rec *r)
{
  r->issuing = 1;
  while (r->phase < PHASE_DONE) {
    issue_phase(r);
    r->phase++;
    if (r->pending) {
      r->issuing = 0;
      return; /* the phase's last write calls back */
    }
  }
  r->issuing = 0;
  complete(r);
}

/* }==================================================================== */

/* {====================================================================
 * Reconciling one key
 * ===================================================================== */

static void run_engine(struct ctl *c, struct rec *r)
{
  struct controllers *all = c->all;
  struct ctl_logctx lc; /* the script's k8s.log lines carry the reconcile's fields */
  ctl_log_ctx(&lc, c, r->key, r->id);
  struct lk_reconcile_in in = {.controller = c->decl,
                               .cr = r->cr,
                               .cache = &all->cache,
                               .discovery = &all->discovery,
                               .log_fields = lc.f,
                               .nlog_fields = lc.n,
                               .grants = LK_GRANTS_LABELS,
                               .writes = &all->memory};
  struct lk_result *res = &r->res;
  struct timespec t0, t1;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
  r->st = lk_engine_reconcile(all->engine, &in, res);
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
  k8s_metric_observe(c->engine_cpu, (const char *[]){c->decl->name, NULL},
                     (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
  r->have_res = 1;
  if (r->st != 0) {
    r->outcome = res->err.kind == LK_ERR_TERMINAL ? OUT_TERMINAL : OUT_SCRIPT_ERROR;
    struct k8s_log_field why[] = {{"error", K8S_LOG_STR, res->err.message, 0, 0},
                                  {"kind", K8S_LOG_STR, lk_error_kind_name(res->err.kind), 0, 0},
                                  {"traceback", K8S_LOG_STR, res->err.traceback, 0, 0}};
    ctl_logf(K8S_LOG_ERROR, 1, c, r->key, r->id, "reconcile failed", why, 3);
    /* what the failed call allocated goes back to the system, not only to
     * malloc: a memory bomb must not raise the operator's RSS for good */
    malloc_trim(0);
  } else if (res->nrefused) {
    r->outcome = OUT_REFUSED;
    for (size_t i = 0; i < res->nchildren; i++)
      if (res->children[i].action == LK_CHILD_REFUSED)
        ctl_log(K8S_LOG_WARN, c, r->key, r->id, "child refused", "reason", res->children[i].reason,
                "message", res->children[i].why);
  } else if (res->nconflicts) {
    r->outcome = OUT_CONFLICT;
    for (size_t i = 0; i < res->nchildren; i++)
      if (res->children[i].action == LK_CHILD_CONFLICT)
        ctl_log(K8S_LOG_WARN, c, r->key, r->id, "child in conflict", "message",
                res->children[i].why, NULL, NULL);
  } else if (res->requeue_after > 0) {
    r->outcome = OUT_REQUEUE_AFTER;
    r->requeue_after = res->requeue_after < REQUEUE_FLOOR ? REQUEUE_FLOOR : res->requeue_after;
  }
  if (res->finalizing && r->st == 0 && !res->finalized) {
    r->outcome = OUT_REQUEUE_AFTER;
    r->requeue_after = res->requeue_after > REQUEUE_FLOOR ? res->requeue_after : FINALIZE_WAIT;
  }
}

void ctl_reconcile_key(struct ctl *c, const char *key)
{
  struct controllers *all = c->all;
  struct rec *r = calloc(1, sizeof(*r));
  if (!r || !(r->key = strdup(key))) {
    free(r);
    k8s_workqueue_add_rate_limited(c->q, key, k8s_monotonic());
    k8s_workqueue_done(c->q, key);
    return;
  }
  r->c = c;
  r->t0 = k8s_monotonic();
  snprintf(r->id, sizeof(r->id), "%016llx",
           (unsigned long long)(k8s_strhash(key) ^ (++all->idseq * 0x9e3779b97f4a7c15ULL)));
  c->inflight++;
  r->phase = PHASE_DONE; /* nothing to write unless the CR is there */

  const struct k8s_object *obj = c->cr->inf ? k8s_informer_get(c->cr->inf, key) : NULL;
  char err[256];
  if (!obj) { /* gone: its same-namespace children go with it (owner references) */
    ctl_record_forget_status(c, key);
    ctl_selectors_forget(c, key);
  } else if (!(r->cr = k8s_object_parse(obj, err, sizeof(err)))) {
    r->outcome = OUT_ERROR;
    ctl_log(K8S_LOG_ERROR, c, key, r->id, "cannot decode the cached CR", "error", err, NULL, NULL);
  } else if ((r->fin = ctl_has_finalizer(r->cr)) || !obj->deleting) {
    lk_owner_value(r->cr, r->owner);
    run_engine(c, r);
    if (r->st == 0 && !r->res.finalizing && r->outcome != OUT_REFUSED && r->outcome != OUT_CONFLICT)
      ctl_claim_children(r);
    r->phase = PHASE_PROBE;
  }
  ctl_advance(r);
}

/* }==================================================================== */
