/* reconcile.c: one reconcile of a CR key (internal.h): read the CR from the
 * informer cache, run the engine (runtime/lua/engine.h), issue the writes
 * (writer.c) and, once the last one finished, give the key its WorkQueue
 * outcome (controller-runtime's reconcileHandler):
 *   script error / failed write  -> add_rate_limited   result "error"
 *   terminal error (InvalidSpec) -> forget, no requeue result "error"
 *   child conflict               -> add_rate_limited   result "requeue"
 *   requeue_after                -> forget, add_after  result "requeue_after"
 *   otherwise                    -> forget             result "success"
 * and done(key). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/json.h"
#include "core/util.h"
#include "controller/internal.h"

/* {====================================================================
 * Completing a reconcile
 * ===================================================================== */

void ctl_complete(struct rec *r)
{
  struct ctl *c = r->c;
  struct controllers *all = c->all;
  double now = k8s_monotonic();
  const char *result;
  int recovered = 0;
  if (r->refused) {
    ctl_refusal_set(c, r->key, r->refused);
    r->refused = NULL;
  } else if (!r->failed)
    recovered = ctl_refusal_clear(c, r->key); /* the status still shows the refusal */
  if (r->failed || r->outcome == OUT_ERROR) {
    k8s_workqueue_add_rate_limited(c->q, r->key, now);
    result = "error";
  } else if (r->outcome == OUT_TERMINAL) {
    k8s_workqueue_forget(c->q, r->key);
    result = "error";
  } else if (r->outcome == OUT_CONFLICT) {
    k8s_workqueue_add_rate_limited(c->q, r->key, now);
    result = "requeue";
  } else if (r->outcome == OUT_REQUEUE_AFTER) {
    k8s_workqueue_forget(c->q, r->key);
    k8s_workqueue_add_after(c->q, r->key, r->requeue_after, now);
    result = "requeue_after";
  } else {
    k8s_workqueue_forget(c->q, r->key);
    result = "success";
  }
  const char *lv2[] = {c->decl->name, result};
  const char *lv1[] = {c->decl->name};
  k8s_metric_inc(all->mx.total, lv2);
  if (!strcmp(result, "error")) k8s_metric_inc(all->mx.errors, lv1);
  k8s_metric_observe(all->mx.time, lv1, now - r->t0);
  if (k8s_log_enabled(K8S_LOG_DEBUG, 1)) {
    char ms[32], writes[16];
    snprintf(ms, sizeof(ms), "%.3f", (now - r->t0) * 1000);
    snprintf(writes, sizeof(writes), "%d", r->writes);
    k8s_log_v(1, "reconciled", "controller", c->decl->name, "key", r->key, "reconcileID", r->id,
              "result", result, "ms", ms, "writes", writes, NULL);
  }
  k8s_workqueue_done(c->q, r->key);
  if (recovered) k8s_workqueue_add(c->q, r->key, K8S_PRIORITY_HIGH);
  c->inflight--;
  ctl_sync_queue_metrics(c);
  ctl_arm_timer(c);
  free(r->refused);
  free(r->key);
  free(r);
  ctl_schedule(c);
}

/* }==================================================================== */

/* {====================================================================
 * Reconciling one key
 * ===================================================================== */

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
  r->issuing = 1;
  snprintf(r->id, sizeof(r->id), "%016llx",
           (unsigned long long)(k8s_strhash(key) ^ (++all->idseq * 0x9e3779b97f4a7c15ULL)));
  c->inflight++;

  const struct k8s_object *obj = c->cr->inf ? k8s_informer_get(c->cr->inf, key) : NULL;
  if (!obj) { /* gone: its same-namespace children go with it (owner references) */
    ctl_expect_clear(c, key);
    ctl_refusal_clear(c, key);
    goto out;
  }
  char err[256];
  json_t *cr = k8s_json_parse(obj->json, obj->json_len, err, sizeof(err));
  if (!cr) {
    r->outcome = OUT_ERROR;
    ctl_log(K8S_LOG_ERROR, c, key, r->id, "cannot decode the cached CR", "error", err, NULL, NULL);
    goto out;
  }
  int deleting = obj->deleting, fin = ctl_has_finalizer(cr);
  if (deleting && !fin) {
    json_decref(cr);
    goto out;
  }
  struct k8s_log_field fields[] = {{"controller", K8S_LOG_STR, c->decl->name, 0, 0},
                                   {"key", K8S_LOG_STR, key, 0, 0},
                                   {"reconcileID", K8S_LOG_STR, r->id, 0, 0}};
  const struct refusal *refused = k8s_strmap_get(&c->refused, key);
  struct lk_reconcile_in in = {.controller = c->decl,
                               .cr = cr,
                               .cache = &all->cache,
                               .discovery = &all->discovery,
                               .log_fields = fields,
                               .nlog_fields = 3,
                               .write_refused = refused ? refused->message : NULL};
  struct lk_result res;
  int st = lk_engine_reconcile(all->engine, &in, &res);
  if (st != 0) {
    r->outcome = res.err.kind == LK_ERR_TERMINAL ? OUT_TERMINAL : OUT_ERROR;
    k8s_log(K8S_LOG_ERROR, "reconcile failed", "controller", c->decl->name, "key", key,
            "reconcileID", r->id, "error", res.err.message, "kind",
            lk_error_kind_name(res.err.kind), "traceback", res.err.traceback, NULL);
  } else if (res.nconflicts)
    r->outcome = OUT_CONFLICT;
  else if (res.requeue_after > 0) {
    r->outcome = OUT_REQUEUE_AFTER;
    r->requeue_after = res.requeue_after;
  }

  if (res.finalizing) {
    if (st == 0 && !res.finalized) {
      r->outcome = OUT_REQUEUE_AFTER;
      r->requeue_after = res.requeue_after > 0 ? res.requeue_after : FINALIZE_WAIT;
    } else if (st == 0) {
      for (size_t i = 0; i < res.nprune; i++)
        ctl_delete_child(r, &res.prune[i]);
      if (res.nobserved == 0) ctl_remove_finalizer(r, cr);
    }
  } else {
    if (!fin && st == 0 &&
        lk_result_needs_finalizer(
            &res, json_string_value(json_object_get(json_object_get(cr, "metadata"), "namespace"))))
      ctl_add_finalizer(r, cr);
    for (size_t i = 0; i < res.nchildren; i++) {
      const struct lk_child *ch = &res.children[i];
      if (ch->action == LK_CHILD_APPLY) ctl_apply_child(r, ch);
      if (ch->action == LK_CHILD_CONFLICT)
        ctl_log(K8S_LOG_WARN, c, key, r->id, "child exists and is not ours", "child", ch->name,
                "owner", ch->owner);
    }
    for (size_t i = 0; i < res.nprune; i++)
      ctl_delete_child(r, &res.prune[i]);
    if (res.status_changed) ctl_write_status(r, cr, res.status);
    ctl_post_events(r, cr, res.events);
  }
  lk_result_free(&res);
  json_decref(cr);
out:
  r->issuing = 0;
  if (r->pending == 0) ctl_complete(r);
}

/* }==================================================================== */
