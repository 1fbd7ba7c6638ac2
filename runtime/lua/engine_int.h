/* engine_int.h: what the units of the engine share (engine.c: loading, the
 * calls into Lua; decl.c: controllers.lua's declarations; result.c:
 * validation, decoration, classification and status of a reconcile's
 * result). Not part of the runtime's API: only runtime/lua/engine.c, decl.c
 * and result.c include it.
 *
 * Ownership: a struct run lives on lk_engine_reconcile's stack and owns its
 * obs array and result; a struct post borrows everything it points to. */
#ifndef SCHEDSIM_LUA_ENGINE_INT_H
#define SCHEDSIM_LUA_ENGINE_INT_H

#include <jansson.h>

#include "lua/engine.h"

#define CONDITION_MESSAGE_MAX 32768
#define EVENT_MESSAGE_MAX 1024

/* {====================================================================
 * JSON helpers
 * ===================================================================== */

static inline const char *jstr(const json_t *o, const char *key)
{
  return json_string_value(json_object_get(o, key));
}

/* The object at o[key], created when missing; NULL when o[key] is not an
 * object. */
static inline json_t *jobj(json_t *o, const char *key)
{
  json_t *v = json_object_get(o, key);
  if (!v) {
    v = json_object();
    json_object_set_new(o, key, v);
  }
  return json_is_object(v) ? v : NULL;
}

static inline int nonempty(const char *s)
{
  return s && *s;
}

/* }==================================================================== */

/* One observed child of a reconcile (an object of an owns kind carrying the
 * CR's owner label). */
struct obs {
  const struct lk_gvk *gvk; /* the owns declaration */
  char *ns, *name, *hash;   /* hash: NULL when the child carries none */
  int deleting;
  int desired;
  const char *managed; /* our field set (store.h), or NULL; borrowed from the Store */
  size_t managed_len;
  const char *rv; /* resourceVersion, borrowed from the Store */
};

struct run {
  struct lk_engine *e;
  const struct lk_reconcile_in *in;
  const char *owner; /* owner label value */
  const char *now;
  int finalizing;
  struct obs *obs;
  size_t nobs, capobs;
  json_t *result;       /* the script's result as JSON */
  char result_err[600]; /* a result that could not be converted */
};

/* The post-processing of one reconcile's result. */
struct post {
  struct lk_engine *e;
  const struct lk_reconcile_in *in;
  struct run *run;
  struct lk_result *r;
  const char *path; /* the reconciler's file, for messages */
  const char *cr_ns, *cr_name, *cr_uid, *cr_av, *cr_kind;
  char msg[1024];
};

/* {====================================================================
 * decl.c
 * ===================================================================== */

/* Validates the JSON form of controllers.lua into e->controllers; adds every
 * problem to msgs; returns the number of problems. */
int lk_decl_parse(struct lk_engine *e, const json_t *list, struct lk_messages *msgs);
/* Frees what a declaration owns (not the struct itself). */
void lk_decl_free(struct lk_controller_decl *c);

/* }==================================================================== */

/* {====================================================================
 * result.c
 * ===================================================================== */

/* Validates p->run->result and fills p->r: events, requeue_after, finalized,
 * and (unless finalizing) the decorated, classified children. Returns 0, or
 * -1 with p->msg saying why. */
int lk_post_process(struct post *p);
/* Fills p->r's prune list: observed children not desired (all of them when
 * finalizing). */
void lk_build_prune(struct post *p);
/* Fills p->r->status from script_status (NULL: the CR's), the error, the
 * conflicts and the refused write; sets status_changed. */
void lk_build_status(struct post *p, const json_t *script_status);

/* }==================================================================== */

/* {====================================================================
 * boundary.c
 * ===================================================================== */

/* Checks decorated child ch of p->r against the security boundary (every
 * child of the result is decorated by then: the rules look for the
 * ServiceAccounts and Roles the same reconcile emits); when it crosses it,
 * sets ch->action LK_CHILD_REFUSED, ch->reason and ch->why, and counts it in
 * p->r->nrefused. */
void lk_boundary_check(struct post *p, struct lk_child *ch);

/* }==================================================================== */

#endif
