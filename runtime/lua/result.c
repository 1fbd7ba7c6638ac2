/* result.c: what the runtime does with a reconcile's result (engine.h,
 * steps 3-6 of its header): validation with messages naming the field,
 * decoration of every child (namespace, labels, owner reference, desired
 * hash), the security boundary (boundary.c), classification against the
 * observed children and the cache (conflicts, drift), holding a half-built
 * set, the prune list and the status to write. Plain C over jansson values,
 * outside Lua. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "core/fieldset.h"
#include "core/json.h"
#include "core/util.h"
#include "lua/engine_int.h"

/* {====================================================================
 * Results: validation, decoration, classification, status
 * ===================================================================== */

void lk_owner_value(const json_t *cr, char out[64])
{
  const json_t *md = json_object_get(cr, "metadata");
  const char *kind = jstr(cr, "kind"), *ns = jstr(md, "namespace"), *name = jstr(md, "name");
  char lower[128];
  snprintf(lower, sizeof(lower), "%s", kind ? kind : "");
  for (char *p = lower; *p; p++)
    *p = (char)tolower((unsigned char)*p);
  k8s_owner_label_value(lower, ns ? ns : "", name ? name : "", out);
}

int lk_result_needs_finalizer(const struct lk_result *r, const char *cr_ns)
{
  /* the rule decorate() (below) follows for owner references */
  int cluster_cr = !cr_ns || !*cr_ns;
  for (size_t i = 0; i < r->nchildren; i++) {
    const struct lk_child *c = &r->children[i];
    if (c->action != LK_CHILD_APPLY && c->action != LK_CHILD_UNCHANGED) continue; /* not written */
    if (cluster_cr || strcmp(c->ns, cr_ns)) return 1;
  }
  for (size_t i = 0; i < r->nprune; i++)
    if (cluster_cr || strcmp(r->prune[i].ns, cr_ns)) return 1;
  return 0;
}

void lk_result_free(struct lk_result *r)
{
  if (!r) return;
  lk_error_clear(&r->err);
  for (size_t i = 0; i < r->nchildren; i++) {
    json_decref(r->children[i].obj);
    free(r->children[i].owner);
    free(r->children[i].why);
  }
  for (size_t i = 0; i < r->nprune; i++) {
    free(r->prune[i].api_version);
    free(r->prune[i].kind);
    free(r->prune[i].ns);
    free(r->prune[i].name);
  }
  free(r->children);
  free(r->prune);
  json_decref(r->status);
  json_decref(r->events);
  memset(r, 0, sizeof(*r));
}

static int post_fail(struct post *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int post_fail(struct post *p, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->msg, sizeof(p->msg), fmt, ap);
  va_end(ap);
  return -1;
}

static const struct lk_gvk *owns_of(const struct lk_controller_decl *c, const char *av,
                                    const char *kind)
{
  for (size_t i = 0; i < c->nowns; i++)
    if (lk_gvk_is(&c->owns[i], av, kind)) return &c->owns[i];
  return NULL;
}

/* Step 1 of decorate: child i is a table with apiVersion, kind,
 * metadata.name and a string metadata.namespace if any, of a kind the
 * controller owns and the API server serves. Returns 0, or -1 with the
 * message in p->msg. */
static int check_child(struct post *p, size_t i, const json_t *child)
{
  const struct lk_reconcile_in *in = p->in;
  if (!json_is_object(child)) return post_fail(p, "result.children[%zu]: must be a table", i);
  const char *av = jstr(child, "apiVersion"), *kind = jstr(child, "kind");
  if (!nonempty(av))
    return post_fail(p, "result.children[%zu].apiVersion: must be a non-empty string", i);
  if (!nonempty(kind))
    return post_fail(p, "result.children[%zu].kind: must be a non-empty string", i);
  const json_t *md = json_object_get(child, "metadata");
  if (!json_is_object(md))
    return post_fail(p, "result.children[%zu].metadata: must be a table with a name", i);
  if (!nonempty(jstr(md, "name")))
    return post_fail(p, "result.children[%zu].metadata.name: must be a non-empty string", i);
  const json_t *nsv = json_object_get(md, "namespace");
  if (nsv && !json_is_string(nsv))
    return post_fail(p, "result.children[%zu].metadata.namespace: must be a string", i);
  if (!owns_of(in->controller, av, kind))
    return post_fail(p,
                     "result.children[%zu]: %s %s is not in owns of controller %s "
                     "(controllers.lua)",
                     i, av, kind, in->controller->name);
  const struct lk_discovery_source *d = in->discovery;
  if (d && !d->ops->served(d->ud, av, kind))
    return post_fail(p,
                     "result.children[%zu]: %s %s is not served by the API server "
                     "(check k8s.discovery.served first)",
                     i, av, kind);
  return 0;
}

/* Step 2a: the namespace: none for a cluster-scoped kind, the CR's when
 * the script left it empty. */
static void default_namespace(struct post *p, json_t *child)
{
  const struct lk_discovery_source *d = p->in->discovery;
  const char *av = jstr(child, "apiVersion"), *kind = jstr(child, "kind");
  json_t *md = json_object_get(child, "metadata");
  int namespaced = d && d->ops->namespaced ? d->ops->namespaced(d->ud, av, kind) : -1;
  if (namespaced == 0)
    json_object_del(md, "namespace");
  else if (!nonempty(jstr(md, "namespace")))
    json_object_set_new(md, "namespace", json_string(p->cr_ns));
}

/* Step 2b: the managed-by and owner labels, the owner label on a pod
 * template too. Returns 0, or -1 with the message in p->msg. */
static int set_labels(struct post *p, size_t i, json_t *child)
{
  json_t *md = json_object_get(child, "metadata");
  json_t *labels = jobj(md, "labels");
  if (!labels) return post_fail(p, "result.children[%zu].metadata.labels: must be a table", i);
  json_object_set_new(labels, LK_LABEL_MANAGED_BY, json_string(LK_MANAGED_BY));
  json_object_set_new(labels, LK_LABEL_OWNER, json_string(p->run->owner));
  /* a pod template's pods carry the owner label too: a selector check
   * (runtime/controller/selectors.c) tells them from pods deployed by others */
  json_t *tmpl = json_object_get(json_object_get(child, "spec"), "template");
  if (json_is_object(tmpl) && json_is_object(json_object_get(tmpl, "spec"))) {
    json_t *tmd = jobj(tmpl, "metadata");
    json_t *tlabels = tmd ? jobj(tmd, "labels") : NULL;
    if (!tlabels)
      return post_fail(p, "result.children[%zu].spec.template.metadata.labels: must be a table", i);
    json_object_set_new(tlabels, LK_LABEL_OWNER, json_string(p->run->owner));
  }
  return 0;
}

/* Step 2c: in the CR's own namespace, the controller owner reference to the
 * CR, replacing any other controller reference or one to the CR's uid.
 * Returns 0, or -1 with the message in p->msg. */
static int set_owner_ref(struct post *p, size_t i, json_t *md)
{
  const char *ns = jstr(md, "namespace");
  if (!ns || !*p->cr_ns || strcmp(ns, p->cr_ns)) return 0;
  json_t *refs = json_object_get(md, "ownerReferences");
  if (!refs) {
    refs = json_array();
    json_object_set_new(md, "ownerReferences", refs);
  }
  if (!json_is_array(refs))
    return post_fail(p, "result.children[%zu].metadata.ownerReferences: must be a list", i);
  for (size_t k = json_array_size(refs); k-- > 0;) {
    const json_t *ref = json_array_get(refs, k);
    if (json_is_true(json_object_get(ref, "controller")) ||
        (nonempty(p->cr_uid) && !strcmp(p->cr_uid, jstr(ref, "uid") ? jstr(ref, "uid") : "")))
      json_array_remove(refs, k);
  }
  json_t *ref = json_pack("{s:s, s:s, s:s, s:b, s:b}", "apiVersion", p->cr_av, "kind", p->cr_kind,
                          "name", p->cr_name, "controller", 1, "blockOwnerDeletion", 1);
  if (nonempty(p->cr_uid)) json_object_set_new(ref, "uid", json_string(p->cr_uid));
  json_array_append_new(refs, ref);
  return 0;
}

/* Step 4: the desired-hash annotation, the SHA-256 of the child's
 * canonical JSON without it, also into out->hash. Returns 0, or -1 with the
 * message in p->msg. */
static int set_hash(struct post *p, size_t i, json_t *child, struct lk_child *out)
{
  json_t *ann = jobj(json_object_get(child, "metadata"), "annotations");
  if (!ann) return post_fail(p, "result.children[%zu].metadata.annotations: must be a table", i);
  json_object_del(ann, LK_ANNOTATION_HASH);
  size_t len;
  char *canon = k8s_json_dump(child, K8S_JSON_SORT_KEYS, &len);
  if (!canon) return post_fail(p, "result.children[%zu]: cannot encode", i);
  k8s_sha256_hex(canon, len, out->hash);
  free(canon);
  json_object_set_new(ann, LK_ANNOTATION_HASH, json_string(out->hash));
  return 0;
}

/* Decorates child i in place (steps 1, 2 and 4 of the contract). */
static int decorate(struct post *p, size_t i, json_t *child, struct lk_child *out)
{
  if (check_child(p, i, child) != 0) return -1;
  default_namespace(p, child);
  json_t *md = json_object_get(child, "metadata");
  if (set_labels(p, i, child) != 0 || set_owner_ref(p, i, md) != 0 ||
      set_hash(p, i, child, out) != 0)
    return -1;
  out->obj = json_incref(child);
  out->api_version = jstr(child, "apiVersion");
  out->kind = jstr(child, "kind");
  out->ns = jstr(md, "namespace") ? jstr(md, "namespace") : "";
  out->name = jstr(md, "name");
  return 0;
}

static void set_why(struct lk_child *ch, const char *reason, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_why(struct lk_child *ch, const char *reason, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  free(ch->why);
  if (vasprintf(&ch->why, fmt, ap) < 0) ch->why = NULL;
  va_end(ap);
  ch->reason = reason;
}

/* Drift: the observed child carries our desired hash, but our field manager
 * no longer owns every field of the desired object (core/fieldset.h: someone
 * else changed one). Not drift when the cache shows exactly the object our
 * last apply produced: then the API server, not a writer, recorded the field
 * set, and applying again would change nothing. */
static int drifted(struct post *p, const struct obs *o, struct lk_child *ch)
{
  if (!o->managed) return 0; /* no field set kept (render, fixtures without managedFields) */
  char path[512];
  if (k8s_fieldset_covers_text(ch->obj, o->managed, o->managed_len, path, sizeof(path))) return 0;
  const struct lk_write_memory *wm = p->in->writes;
  const char *owner, *rv_after;
  if (wm && wm->lookup(wm->ud, ch->api_version, ch->kind, ch->ns, ch->name, &owner, &rv_after) &&
      *rv_after && o->rv && !strcmp(rv_after, o->rv))
    return 0;
  set_why(ch, "Drift", "%s %s%s%s: %s was changed by another writer; applied again", ch->kind,
          ch->ns, *ch->ns ? "/" : "", ch->name, path);
  return 1;
}

/* Step 5: APPLY, UNCHANGED or CONFLICT for a decorated child inside the
 * boundary. */
static void classify(struct post *p, struct lk_child *ch)
{
  struct run *run = p->run;
  for (size_t k = 0; k < run->nobs; k++) {
    struct obs *o = &run->obs[k];
    if (lk_gvk_is(o->gvk, ch->api_version, ch->kind) && !strcmp(o->ns, ch->ns) &&
        !strcmp(o->name, ch->name)) {
      o->desired = 1;
      ch->observed = 1;
      ch->action = o->hash && !strcmp(o->hash, ch->hash) && !drifted(p, o, ch) ? LK_CHILD_UNCHANGED
                                                                               : LK_CHILD_APPLY;
      return;
    }
  }
  ch->action = LK_CHILD_APPLY;
  const char *owner = NULL;
  const struct lk_cache_source *cache = p->in->cache;
  struct k8s_store *st = cache ? cache->ops->store(cache->ud, ch->api_version, ch->kind) : NULL;
  char key[512];
  snprintf(key, sizeof(key), "%s%s%s", ch->ns, *ch->ns ? "/" : "", ch->name);
  const struct k8s_object *cur = st ? k8s_store_get(st, key) : NULL;
  if (cur) {
    owner = k8s_object_label(cur, LK_LABEL_OWNER);
    if (owner && !strcmp(owner, run->owner)) return;
    if (!owner) owner = "";
  } else {
    /* not in the cache yet: another CR's write of it may be in flight */
    const struct lk_write_memory *wm = p->in->writes;
    const char *rv_after;
    if (!wm ||
        !wm->lookup(wm->ud, ch->api_version, ch->kind, ch->ns, ch->name, &owner, &rv_after) ||
        !strcmp(owner, run->owner)) {
      /* a cache of our own objects only cannot tell a foreign one apart */
      ch->probe =
          st && cache->ops->complete && !cache->ops->complete(cache->ud, ch->api_version, ch->kind);
      return;
    }
  }
  ch->action = LK_CHILD_CONFLICT;
  ch->owner = strdup(owner);
  if (*owner)
    set_why(ch, "Conflict", "%s %s%s%s exists and is owned by %s; not taken over", ch->kind, ch->ns,
            *ch->ns ? "/" : "", ch->name, owner);
  else
    set_why(ch, "Conflict",
            "%s %s%s%s exists and is not managed by schedsim-operator; not taken over", ch->kind,
            ch->ns, *ch->ns ? "/" : "", ch->name);
  p->r->nconflicts++;
}

/* A set with a child in CONFLICT or REFUSED is not written at all: a
 * half-built set (a Deployment without its ServiceAccount, a Service whose
 * selector matches pods another CR's Deployment did not get) would be worse
 * than none, and it keeps the first CR that claimed a name the clean winner. */
static void hold(struct lk_result *r)
{
  if (!r->nconflicts && !r->nrefused) return;
  for (size_t i = 0; i < r->nchildren; i++)
    if (r->children[i].action == LK_CHILD_APPLY) r->children[i].action = LK_CHILD_HELD;
}

void lk_status_condition(json_t *status, const json_t *cr_status, const char *type, const char *st,
                         const char *reason, const char *message, const char *now,
                         json_t *generation)
{
  char wall[K8S_TIME_BUF];
  if (!now) {
    k8s_rfc3339(k8s_wallclock(), wall);
    now = wall;
  }
  json_t *conds = json_object_get(status, "conditions");
  if (!json_is_array(conds)) {
    conds = json_array();
    json_object_set_new(status, "conditions", conds);
  }
  const char *ltt = now;
  const json_t *old;
  size_t k;
  json_array_foreach(json_object_get(cr_status, "conditions"), k, old)
  {
    if (!strcmp(jstr(old, "type") ? jstr(old, "type") : "", type) && jstr(old, "status") &&
        !strcmp(jstr(old, "status"), st) && nonempty(jstr(old, "lastTransitionTime")))
      ltt = jstr(old, "lastTransitionTime");
  }
  char msg[CONDITION_MESSAGE_MAX + 1];
  snprintf(msg, sizeof(msg), "%s", message);
  json_t *c = json_pack("{s:s, s:s, s:s, s:s, s:s}", "type", type, "status", st, "reason", reason,
                        "message", msg, "lastTransitionTime", ltt);
  if (generation) json_object_set(c, "observedGeneration", generation);
  size_t n = json_array_size(conds);
  for (k = 0; k < n; k++)
    if (!strcmp(jstr(json_array_get(conds, k), "type") ? jstr(json_array_get(conds, k), "type")
                                                       : "",
                type))
      break;
  if (k < n)
    json_array_set_new(conds, k, c);
  else
    json_array_insert_new(conds, 0, c);
}

/* Step 6: the status to write. script_status may be NULL (use the CR's). */
void lk_result_override_events(struct lk_result *r, const json_t *cr_status, const char *reason,
                               const char *message)
{
  const char *was = NULL;
  size_t i;
  const json_t *c;
  json_array_foreach(json_object_get(cr_status, "conditions"), i, c)
  {
    if (jstr(c, "type") && !strcmp(jstr(c, "type"), "Ready")) was = jstr(c, "reason");
  }
  json_decref(r->events);
  r->events = json_array();
  if (was && !strcmp(was, reason)) return; /* no transition: nothing to tell */
  char msg[EVENT_MESSAGE_MAX + 1];
  snprintf(msg, sizeof(msg), "%s", message ? message : "");
  json_array_append_new(
      r->events, json_pack("{s:s, s:s, s:s}", "type", "Warning", "reason", reason, "message", msg));
}

void lk_build_status(struct post *p, const json_t *script_status)
{
  const json_t *cr_status = json_object_get(p->in->cr, "status");
  json_t *gen = json_object_get(json_object_get(p->in->cr, "metadata"), "generation");
  json_t *st;
  if (json_is_object(script_status))
    st = json_deep_copy(script_status);
  else if (json_is_object(cr_status))
    st = json_deep_copy(cr_status);
  else
    st = json_object();
  struct lk_result *r = p->r;
  if (r->err.kind != LK_ERR_NONE) {
    const char *reason = r->err.kind == LK_ERR_TERMINAL ? "InvalidSpec" : "ReconcileError";
    const char *msg = r->err.message ? r->err.message : "reconcile failed";
    lk_status_condition(st, cr_status, "Ready", "False", reason, msg, p->run->now, gen);
    lk_result_override_events(r, cr_status, reason, msg);
  } else if (r->nrefused || r->nconflicts) {
    /* refusals first: a conflict may resolve by itself, a refusal needs a person */
    enum lk_child_action want = r->nrefused ? LK_CHILD_REFUSED : LK_CHILD_CONFLICT;
    const struct lk_child *first = NULL;
    size_t shown = 0;
    for (size_t i = 0; i < r->nchildren; i++)
      if (r->children[i].action == want && shown++ == 0) first = &r->children[i];
    char msg[1024];
    snprintf(msg, sizeof(msg), "%s", first && first->why ? first->why : "a child is not written");
    if (shown > 1) {
      size_t n = strlen(msg);
      snprintf(msg + n, sizeof(msg) - n, " (and %zu more)", shown - 1);
    }
    if (r->nrefused && r->nconflicts) {
      size_t n = strlen(msg);
      snprintf(msg + n, sizeof(msg) - n, "; %zu child%s in conflict", r->nconflicts,
               r->nconflicts == 1 ? "" : "ren");
    }
    size_t n = strlen(msg);
    snprintf(msg + n, sizeof(msg) - n, "; nothing of this set is written until it is resolved");
    lk_status_condition(st, cr_status, "Ready", "False",
                        first && first->reason ? first->reason : "Conflict", msg, p->run->now, gen);
    lk_result_override_events(r, cr_status, first && first->reason ? first->reason : "Conflict",
                              msg);
  }
  if (gen) json_object_set(st, "observedGeneration", gen);
  json_object_set_new(st, "scriptRevision", json_string(p->e->set->revision));
  r->status = st;
  r->status_changed = !r->finalizing && !json_equal(st, (json_t *)cr_status);
}

static int valid_reason(const char *s)
{
  if (!nonempty(s) || !isupper((unsigned char)s[0])) return 0;
  for (const char *c = s; *c; c++)
    if (!isalnum((unsigned char)*c)) return 0;
  return 1;
}

/* Validates the converted result and fills r (children, events, requeue). */
int lk_post_process(struct post *p)
{
  struct lk_result *r = p->r;
  json_t *res = p->run->result;
  json_t *children = json_object_get(res, "children");
  json_t *status = json_object_get(res, "status");
  json_t *requeue = json_object_get(res, "requeue_after");
  json_t *events = json_object_get(res, "events");
  json_t *finalized = json_object_get(res, "finalized");
  if (children && !json_is_array(children) &&
      !(json_is_object(children) && !json_object_size(children)))
    return post_fail(p, "result.children: must be a list");
  if (status && !json_is_object(status) && !(json_is_array(status) && !json_array_size(status)))
    return post_fail(p, "result.status: must be a table");
  if (requeue && !(json_is_number(requeue) && json_number_value(requeue) > 0))
    return post_fail(p, "result.requeue_after: must be a positive number of seconds");
  if (finalized && !json_is_boolean(finalized))
    return post_fail(p, "result.finalized: must be a boolean");
  if (events && !json_is_array(events) && !(json_is_object(events) && !json_object_size(events)))
    return post_fail(p, "result.events: must be a list");
  r->requeue_after = requeue ? json_number_value(requeue) : 0;
  r->finalized = finalized ? json_is_true(finalized) : 1;

  r->events = json_array();
  size_t i;
  json_t *ev;
  json_array_foreach(json_is_array(events) ? events : NULL, i, ev)
  {
    const char *key;
    json_t *v;
    if (!json_is_object(ev)) return post_fail(p, "result.events[%zu]: must be a table", i);
    json_object_foreach(ev, key, v)
    {
      if (strcmp(key, "type") && strcmp(key, "reason") && strcmp(key, "message"))
        return post_fail(p, "result.events[%zu].%s: unknown field", i, key);
    }
    const char *type = jstr(ev, "type"), *reason = jstr(ev, "reason"),
               *message = jstr(ev, "message");
    if (!type || (strcmp(type, "Normal") && strcmp(type, "Warning")))
      return post_fail(p, "result.events[%zu].type: must be \"Normal\" or \"Warning\"", i);
    if (!valid_reason(reason))
      return post_fail(p, "result.events[%zu].reason: must be a CamelCase string", i);
    if (!message) return post_fail(p, "result.events[%zu].message: must be a string", i);
    char msg[EVENT_MESSAGE_MAX + 1];
    snprintf(msg, sizeof(msg), "%s", message);
    json_array_append_new(
        r->events, json_pack("{s:s, s:s, s:s}", "type", type, "reason", reason, "message", msg));
  }

  if (!r->finalizing) {
    size_t n = json_array_size(children);
    r->children = calloc(n + 1, sizeof(*r->children));
    if (!r->children) return post_fail(p, "out of memory");
    for (i = 0; i < n; i++) {
      struct lk_child *ch = &r->children[r->nchildren];
      if (decorate(p, i, json_array_get(children, i), ch) != 0) return -1;
      r->nchildren++;
      for (size_t k = 0; k + 1 < r->nchildren; k++) {
        const struct lk_child *o = &r->children[k];
        if (!strcmp(o->api_version, ch->api_version) && !strcmp(o->kind, ch->kind) &&
            !strcmp(o->ns, ch->ns) && !strcmp(o->name, ch->name))
          return post_fail(p, "result.children[%zu]: duplicate of children[%zu] (%s %s%s%s)", i, k,
                           ch->kind, ch->ns, *ch->ns ? "/" : "", ch->name);
      }
    }
    for (i = 0; i < r->nchildren; i++) /* the rules look at the whole set */
      lk_boundary_check(p, &r->children[i]);
    for (i = 0; i < r->nchildren; i++)
      if (r->children[i].action != LK_CHILD_REFUSED) classify(p, &r->children[i]);
    hold(r);
  }
  return 0;
}

/* Observed children not desired (all of them when finalizing). */
void lk_build_prune(struct post *p)
{
  struct run *run = p->run;
  struct lk_result *r = p->r;
  r->nobserved = run->nobs;
  r->prune = calloc(run->nobs + 1, sizeof(*r->prune));
  if (!r->prune) return;
  int held = !r->finalizing && (r->nconflicts || r->nrefused); /* see hold() */
  for (size_t k = 0; k < run->nobs && !held; k++) {
    struct obs *o = &run->obs[k];
    if (o->desired && !r->finalizing) continue;
    struct lk_ref *ref = &r->prune[r->nprune++];
    ref->api_version = strdup(o->gvk->api_version);
    ref->kind = strdup(o->gvk->kind);
    ref->ns = strdup(o->ns ? o->ns : "");
    ref->name = strdup(o->name ? o->name : "");
    ref->deleting = o->deleting;
  }
}

json_t *lk_result_to_json(const struct lk_result *r)
{
  static const char *const actions[] = {"apply", "unchanged", "conflict", "refused", "held"};
  json_t *children = json_array(), *acts = json_array(), *prune = json_array();
  for (size_t i = 0; i < r->nchildren; i++) {
    const struct lk_child *c = &r->children[i];
    json_array_append(children, c->obj);
    json_t *a =
        json_pack("{s:s, s:s, s:s, s:s, s:s}", "apiVersion", c->api_version, "kind", c->kind,
                  "namespace", c->ns, "name", c->name, "action", actions[c->action]);
    if (c->owner) json_object_set_new(a, "owner", json_string(c->owner));
    if (c->reason) json_object_set_new(a, "reason", json_string(c->reason));
    if (c->why) json_object_set_new(a, "message", json_string(c->why));
    if (c->probe) json_object_set_new(a, "probe", json_true());
    json_array_append_new(acts, a);
  }
  for (size_t i = 0; i < r->nprune; i++) {
    const struct lk_ref *p = &r->prune[i];
    json_array_append_new(prune, json_pack("{s:s, s:s, s:s, s:s}", "apiVersion", p->api_version,
                                           "kind", p->kind, "namespace", p->ns, "name", p->name));
  }
  json_t *out = json_pack("{s:o, s:o, s:o, s:O, s:b, s:O, s:b, s:b, s:f}", "children", children,
                          "actions", acts, "prune", prune, "status",
                          r->status ? r->status : json_null(), "status_changed", r->status_changed,
                          "events", r->events ? r->events : json_array(), "finalizing",
                          r->finalizing, "finalized", r->finalized, "lua_seconds", r->lua_seconds);
  if (r->requeue_after > 0) json_object_set_new(out, "requeue_after", json_real(r->requeue_after));
  if (r->err.kind != LK_ERR_NONE) {
    json_object_set_new(out, "error", json_string(r->err.message ? r->err.message : "?"));
    json_object_set_new(out, "error_kind", json_string(lk_error_kind_name(r->err.kind)));
    if (r->err.traceback) json_object_set_new(out, "traceback", json_string(r->err.traceback));
  }
  return out;
}

/* }==================================================================== */
