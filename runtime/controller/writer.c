/* writer.c: the writes of one reconcile (internal.h) — server-side apply of
 * children, deletes, the status through /status, the cleanup finalizer,
 * Events — and the records of what was written (struct record): a write of
 * the same content over the same cached resourceVersion is not sent twice,
 * the engine learns of children another CR is creating and of the
 * resourceVersion our own apply produced (ctl_record_lookup). Each write
 * counts in its struct rec; the last write of a phase advances the
 * reconcile (reconcile.c). A failed write is kept on the rec with a reason
 * for the status of the same attempt. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller/internal.h"
#include "core/json.h"
#include "core/util.h"

/* {====================================================================
 * Records
 * ===================================================================== */

static void record_free(struct record *e)
{
  if (!e) return;
  free(e->id);
  free(e->owner);
  free(e->content);
  free(e->rv_before);
  free(e->rv_after);
  free(e->echo_rv);
  free(e);
}

static void record_drop(struct controllers *all, const char *id)
{
  record_free(k8s_strmap_del(&all->records, id));
}

/* The live record of id, or NULL (an expired one is dropped). */
static struct record *record_get(struct controllers *all, const char *id)
{
  struct record *e = k8s_strmap_get(&all->records, id);
  if (e && !e->echo_rv && k8s_monotonic() - e->at > EXPECTATION_TTL) {
    record_drop(all, id);
    return NULL;
  }
  return e;
}

/* Records a write being sent; returns 0 or -1 (out of memory: not recorded). */
static int record_set(struct controllers *all, const char *id, const char *owner,
                      const char *content, const char *rv_before)
{
  struct record *e = calloc(1, sizeof(*e));
  if (!e || !(e->id = strdup(id)) || !(e->owner = strdup(owner)) ||
      !(e->content = strdup(content)) || !(e->rv_before = strdup(rv_before)) ||
      !(e->rv_after = strdup(""))) {
    record_free(e);
    return -1;
  }
  e->at = k8s_monotonic();
  record_drop(all, id);
  if (k8s_strmap_put(&all->records, e->id, e) != 0) {
    record_free(e);
    return -1;
  }
  return 0;
}

static void child_id(const char *av, const char *kind, const char *ns, const char *name, char *buf,
                     size_t len)
{
  snprintf(buf, len, "%s/%s/%s/%s", av, kind, ns, name);
}

int ctl_record_lookup(void *ud, const char *api_version, const char *kind, const char *ns,
                      const char *name, const char **owner, const char **rv_after)
{
  char id[600];
  child_id(api_version, kind, ns, name, id, sizeof(id));
  struct record *e = record_get(ud, id);
  if (!e || !strcmp(e->content, "deleted")) return 0;
  *owner = e->owner;
  *rv_after = e->rv_after;
  return 1;
}

/* A claim is a record with empty content: the child is about to be written
 * for r's CR (its probe and prerequisites come first), so a concurrent
 * reconcile of another CR that wants the same name sees a Conflict before
 * either writes. An apply replaces it by the real record. */
#define CLAIM ""

void ctl_claim_children(struct rec *r)
{
  struct controllers *all = r->c->all;
  for (size_t i = 0; i < r->res.nchildren; i++) {
    const struct lk_child *ch = &r->res.children[i];
    if (ch->action != LK_CHILD_APPLY) continue;
    char id[600];
    child_id(ch->api_version, ch->kind, ch->ns, ch->name, id, sizeof(id));
    if (record_get(all, id)) continue; /* written (or claimed) already */
    record_set(all, id, r->owner, CLAIM, "");
  }
}

void ctl_release_claims(struct rec *r)
{
  struct controllers *all = r->c->all;
  for (size_t i = 0; r->have_res && i < r->res.nchildren; i++) {
    const struct lk_child *ch = &r->res.children[i];
    char id[600];
    child_id(ch->api_version, ch->kind, ch->ns, ch->name, id, sizeof(id));
    struct record *e = k8s_strmap_get(&all->records, id);
    if (e && !strcmp(e->content, CLAIM) && !strcmp(e->owner, r->owner)) record_drop(all, id);
  }
}

void ctl_record_forget_status(struct ctl *c, const char *key)
{
  char id[600];
  snprintf(id, sizeof(id), "status:%s/%s", c->decl->name, key);
  record_drop(c->all, id);
}

int ctl_status_echo(struct ctl *c, const struct k8s_object *o)
{
  char id[600];
  snprintf(id, sizeof(id), "status:%s/%s", c->decl->name, o->key);
  struct record *e = record_get(c->all, id);
  if (!e) return 0;
  if (*e->rv_after) {
    if (strcmp(e->rv_after, o->resource_version)) return 0;
    k8s_metric_inc(c->echoes, (const char *[]){c->decl->name, NULL});
    return 1;
  }
  if (e->echo_rv) return 0; /* one held event at most: a second is enqueued */
  e->echo_rv = strdup(o->resource_version);
  return e->echo_rv != NULL;
}

/* A status write returned (rv: the resourceVersion it produced, NULL when it
 * failed): the CR event held meanwhile is the write's echo, or is enqueued. */
static void settle_echo(struct rec *r, struct record *e, const char *rv)
{
  if (!e || !e->echo_rv) return;
  if (rv && !strcmp(rv, e->echo_rv))
    k8s_metric_inc(r->c->echoes, (const char *[]){r->c->decl->name, NULL});
  else
    ctl_enqueue(r->c, r->key);
  free(e->echo_rv);
  e->echo_rv = NULL;
}

void ctl_records_free(struct controllers *all)
{
  size_t it = 0;
  void *v;
  while (k8s_strmap_next(&all->records, &it, NULL, &v))
    record_free(v);
  k8s_strmap_clear(&all->records);
}

/* The same content was written over the same cached version and the cache
 * has not moved on yet: the informer has not delivered our write. Once the
 * cache moves on (our write, or someone else's), the engine decides again. */
static int written_already(struct controllers *all, const char *id, const char *content,
                           const char *rv)
{
  struct record *e = record_get(all, id);
  return e && !strcmp(e->content, content) && !strcmp(e->rv_before, rv);
}

/* }==================================================================== */

/* {====================================================================
 * Write plumbing
 * ===================================================================== */

/* Why a write failed, as a condition reason. */
static const char *failure_reason(const struct k8s_result *res)
{
  const json_t *details = res->error ? res->error->details : NULL;
  const char *dkind = json_string_value(json_object_get(details, "kind"));
  if (res->code == 404 && dkind && !strcmp(dkind, "namespaces")) return "TargetNamespaceNotFound";
  if (res->code == 403) return "WriteForbidden";
  if (res->code == 400 || res->code == 422) return "WriteInvalid";
  return "WriteFailed";
}

static void write_done(const struct k8s_result *res, void *data)
{
  struct write *w = data;
  struct rec *r = w->rec;
  struct controllers *all = r->c->all;
  if (res->error && !(w->allow404 && res->code == 404)) {
    char buf[512];
    k8s_status_format(res->error, buf, sizeof(buf));
    if (w->after_prereqs && (res->code == 404 || res->code == 403) && !r->failed) {
      /* the API server does not show what this reconcile just created yet
       * (a RoleBinding's Role in the RBAC authorizer's cache): try again
       * shortly, without calling it an error */
      r->quiet = 1;
      ctl_log(K8S_LOG_DEBUG, r->c, r->key, r->id, "write waits for a prerequisite", "what", w->what,
              "error", buf);
    } else {
      r->failed = 1;
      r->quiet = 0;
      ctl_log(K8S_LOG_ERROR, r->c, r->key, r->id, "write failed", "what", w->what, "error", buf);
      if (!r->failure) {
        if (asprintf(&r->failure, "%s: %s", w->what, buf) < 0) r->failure = NULL;
        r->failure_reason = failure_reason(res);
      }
    }
    if (w->record_id) {
      settle_echo(r, k8s_strmap_get(&all->records, w->record_id), NULL);
      record_drop(all, w->record_id);
    }
  } else {
    struct record *e = w->record_id ? k8s_strmap_get(&all->records, w->record_id) : NULL;
    const char *rv = json_string_value(
        json_object_get(json_object_get(res->object, "metadata"), "resourceVersion"));
    if (e && rv) {
      free(e->rv_after);
      e->rv_after = strdup(rv);
    }
    settle_echo(r, e, rv);
    if (w->prereq) r->created_prereqs = 1;
    if (w->creates) r->created++;
  }
  free(w->record_id);
  free(w);
  if (--r->pending == 0 && !r->issuing) ctl_advance(r);
}

static struct write *new_write(struct rec *r, const char *what, int allow404)
{
  struct write *w = calloc(1, sizeof(*w));
  if (!w) {
    r->failed = 1;
    return NULL;
  }
  w->rec = r;
  w->allow404 = allow404;
  w->after_prereqs = r->created_prereqs;
  snprintf(w->what, sizeof(w->what), "%s", what);
  return w;
}

/* Counts a write that was started (rc 0), or fails r when it could not be. */
static void started(struct rec *r, struct write *w, int rc)
{
  if (rc != 0) {
    r->failed = 1;
    ctl_log(K8S_LOG_ERROR, r->c, r->key, r->id, "write not sent", "what", w->what, NULL, NULL);
    if (!r->failure) {
      if (asprintf(&r->failure, "%s: not sent (out of memory or shutting down)", w->what) < 0)
        r->failure = NULL;
      r->failure_reason = "WriteFailed";
    }
    if (w->record_id) record_drop(r->c->all, w->record_id);
    free(w->record_id);
    free(w);
    return;
  }
  r->pending++;
  r->writes++;
}

static int gvr_of(struct controllers *all, const char *av, const char *kind, struct k8s_gvr *gvr)
{
  return k8s_discovery_gvr(k8s_manager_discovery(all->m), av, kind, gvr);
}

/* The resourceVersion of the cached object ("" when absent). */
static const char *cached_rv(struct controllers *all, const char *av, const char *kind,
                             const char *ns, const char *name)
{
  struct k8s_store *st = all->cache.ops->store(all->cache.ud, av, kind);
  char key[512];
  ctl_key_of(ns, name, key, sizeof(key));
  const struct k8s_object *o = st ? k8s_store_get(st, key) : NULL;
  return o ? o->resource_version : "";
}

/* }==================================================================== */

/* {====================================================================
 * Probes
 * ===================================================================== */

static void probe_done(const struct k8s_result *res, void *data)
{
  struct write *w = data;
  struct rec *r = w->rec;
  const char *object = w->what + strlen("check ");
  if (res->code == 404) {
    /* absent: ours to create */
  } else if (res->error) {
    char buf[512];
    r->failed = 1;
    ctl_log(K8S_LOG_ERROR, r->c, r->key, r->id, "probe failed", "what", w->what, "error",
            k8s_status_format(res->error, buf, sizeof(buf)));
    if (!r->failure) {
      if (asprintf(&r->failure, "%s: %s", w->what, buf) < 0) r->failure = NULL;
      r->failure_reason = failure_reason(res);
    }
  } else {
    const json_t *labels = json_object_get(json_object_get(res->object, "metadata"), "labels");
    const char *owner = json_string_value(json_object_get(labels, LK_LABEL_OWNER));
    if (!owner || strcmp(owner, r->owner)) {
      r->failed = r->conflict = 1;
      ctl_log(K8S_LOG_WARN, r->c, r->key, r->id, "child in conflict", "what", object, "owner",
              owner ? owner : "(unmanaged)");
      if (!r->failure) {
        if (asprintf(&r->failure,
                     "%s exists and is %s%s; not taken over; nothing of this set is written "
                     "until it is resolved",
                     object, owner ? "owned by " : "not managed by schedsim-operator",
                     owner ? owner : "") < 0)
          r->failure = NULL;
        r->failure_reason = "Conflict";
      }
    }
  }
  free(w);
  if (--r->pending == 0 && !r->issuing) ctl_advance(r);
}

void ctl_probe_child(struct rec *r, const struct lk_child *ch)
{
  struct controllers *all = r->c->all;
  char what[320];
  snprintf(what, sizeof(what), "check %s %s%s%s", ch->kind, ch->ns, *ch->ns ? "/" : "", ch->name);
  struct write *w = new_write(r, what, 0);
  if (!w) return;
  struct k8s_gvr gvr;
  if (gvr_of(all, ch->api_version, ch->kind, &gvr) != 0) {
    started(r, w, -1);
    return;
  }
  /* resourceVersion 0: the API server's watch cache answers, no etcd read.
   * A probe and the apply after it are two requests whichever read is used,
   * so an object created between them is not seen either way; the cache's
   * lag (milliseconds) does not widen that in kind. */
  started(r, w,
          k8s_client_get_at(k8s_manager_client(all->m), &gvr, *ch->ns ? ch->ns : NULL, ch->name,
                            "0", probe_done, w));
}

/* }==================================================================== */

/* {====================================================================
 * Writes
 * ===================================================================== */

/* Adds the cleanup finalizer by server-side apply of metadata.finalizers
 * alone (field manager K8S_FIELD_MANAGER; finalizers is a set, so others'
 * entries stay and concurrent writes of the CR cause no 409), with the
 * cached uid as a precondition: if the CR is gone, the API server answers
 * 409 "uid mismatch" instead of creating it. */
void ctl_add_finalizer(struct rec *r)
{
  struct controllers *all = r->c->all;
  const json_t *md = json_object_get(r->cr, "metadata");
  const char *av = json_string_value(json_object_get(r->cr, "apiVersion"));
  const char *kind = json_string_value(json_object_get(r->cr, "kind"));
  const char *ns = json_string_value(json_object_get(md, "namespace"));
  struct write *w = new_write(r, "add finalizer", 0);
  if (!w) return;
  struct k8s_gvr gvr;
  json_t *body = json_pack("{s:s, s:s, s:{s:O, s:O, s:[s]}}", "apiVersion", av, "kind", kind,
                           "metadata", "name", json_object_get(md, "name"), "uid",
                           json_object_get(md, "uid"), "finalizers", LK_FINALIZER);
  if (body && ns)
    json_object_set_new(json_object_get(body, "metadata"), "namespace", json_string(ns));
  /* a cached CR without name or uid, or a kind not served: fail the attempt
   * (retried) rather than skip the finalizer silently */
  started(r, w,
          !body || gvr_of(all, av, kind, &gvr) != 0
              ? -1
              : k8s_client_apply(k8s_manager_client(all->m), &gvr, ns,
                                 json_string_value(json_object_get(md, "name")), NULL, body, NULL,
                                 write_done, w));
  json_decref(body);
}

/* Removes the cleanup finalizer: JSON merge patch of metadata.finalizers
 * (the others kept) with the cached resourceVersion — 409 when the CR
 * changed meanwhile, and the retry re-reads the cache. A merge patch rather
 * than an apply, so a finalizer some other manager also claims (e.g. one a
 * user wrote) goes too. */
void ctl_remove_finalizer(struct rec *r)
{
  struct controllers *all = r->c->all;
  const json_t *md = json_object_get(r->cr, "metadata");
  const char *av = json_string_value(json_object_get(r->cr, "apiVersion"));
  const char *kind = json_string_value(json_object_get(r->cr, "kind"));
  struct write *w = new_write(r, "remove finalizer", 0);
  if (!w) return;
  struct k8s_gvr gvr;
  if (gvr_of(all, av, kind, &gvr) != 0) {
    started(r, w, -1);
    return;
  }
  json_t *list = json_array(), *v;
  size_t i;
  json_array_foreach(json_object_get(md, "finalizers"), i, v)
  {
    if (!json_is_string(v) || strcmp(json_string_value(v), LK_FINALIZER))
      json_array_append(list, v);
  }
  json_t *body = json_pack("{s:{s:o, s:O}}", "metadata", "finalizers", list, "resourceVersion",
                           json_object_get(md, "resourceVersion"));
  char path[1024];
  k8s_gvr_path(&gvr, json_string_value(json_object_get(md, "namespace")),
               json_string_value(json_object_get(md, "name")), NULL, path, sizeof(path));
  started(r, w,
          k8s_client_request(k8s_manager_client(all->m), "PATCH", path, body,
                             "application/merge-patch+json", write_done, w));
  json_decref(body);
}

void ctl_apply_child(struct rec *r, const struct lk_child *ch, int prereq)
{
  struct controllers *all = r->c->all;
  char id[600], what[300];
  child_id(ch->api_version, ch->kind, ch->ns, ch->name, id, sizeof(id));
  const char *rv = cached_rv(all, ch->api_version, ch->kind, ch->ns, ch->name);
  if (written_already(all, id, ch->hash, rv)) return;
  snprintf(what, sizeof(what), "apply %s %s%s%s", ch->kind, ch->ns, *ch->ns ? "/" : "", ch->name);
  if (ch->reason && !strcmp(ch->reason, "Drift"))
    ctl_log(K8S_LOG_INFO, r->c, r->key, r->id, "correcting drift", "what", what, "drift", ch->why);
  struct write *w = new_write(r, what, 0);
  if (!w) return;
  w->prereq = prereq && !ch->observed && !*rv;
  w->creates = !*rv;
  struct k8s_gvr gvr;
  if (gvr_of(all, ch->api_version, ch->kind, &gvr) != 0) {
    ctl_log(K8S_LOG_ERROR, r->c, r->key, r->id, "kind not served", "what", what, NULL, NULL);
    started(r, w, -1);
    return;
  }
  if (record_set(all, id, r->owner, ch->hash, rv) == 0) w->record_id = strdup(id);
  started(r, w,
          k8s_client_apply(k8s_manager_client(all->m), &gvr, *ch->ns ? ch->ns : NULL, ch->name,
                           NULL, ch->obj, NULL, write_done, w));
}

void ctl_delete_child(struct rec *r, const struct lk_ref *p)
{
  struct controllers *all = r->c->all;
  char what[300], id[600];
  if (p->deleting) return;
  snprintf(what, sizeof(what), "delete %s %s%s%s", p->kind, p->ns, *p->ns ? "/" : "", p->name);
  child_id(p->api_version, p->kind, p->ns, p->name, id, sizeof(id));
  const char *rv = cached_rv(all, p->api_version, p->kind, p->ns, p->name);
  if (written_already(all, id, "deleted", rv)) return;
  struct k8s_gvr gvr;
  if (gvr_of(all, p->api_version, p->kind, &gvr) != 0) return; /* gone with its CRD */
  struct write *w = new_write(r, what, 1);
  if (!w) return;
  if (record_set(all, id, r->owner, "deleted", rv) == 0) w->record_id = strdup(id);
  started(r, w,
          k8s_client_delete(k8s_manager_client(all->m), &gvr, *p->ns ? p->ns : NULL, p->name,
                            "Background", write_done, w));
}

void ctl_write_status(struct rec *r, const json_t *status)
{
  struct controllers *all = r->c->all;
  const json_t *cr = r->cr, *md = json_object_get(cr, "metadata");
  if (json_equal((json_t *)status, json_object_get(cr, "status"))) return;
  const char *av = json_string_value(json_object_get(cr, "apiVersion"));
  const char *kind = json_string_value(json_object_get(cr, "kind"));
  char id[600];
  snprintf(id, sizeof(id), "status:%s/%s", r->c->decl->name, r->key);
  char *dump = k8s_json_dump(status, K8S_JSON_SORT_KEYS, NULL);
  const char *rv = json_string_value(json_object_get(md, "resourceVersion"));
  if (!rv) rv = "";
  if (!dump || written_already(all, id, dump, rv)) {
    free(dump);
    return;
  }
  struct write *w = new_write(r, "write status", 0);
  struct k8s_gvr gvr;
  if (!w || gvr_of(all, av, kind, &gvr) != 0) {
    if (w) started(r, w, -1);
    free(dump);
    return;
  }
  json_t *body = json_pack("{s:s, s:s, s:{s:O}, s:O}", "apiVersion", av, "kind", kind, "metadata",
                           "name", json_object_get(md, "name"), "status", status);
  if (json_object_get(md, "namespace"))
    json_object_set(json_object_get(body, "metadata"), "namespace",
                    json_object_get(md, "namespace"));
  if (record_set(all, id, "", dump, rv) == 0) w->record_id = strdup(id);
  started(r, w,
          k8s_client_apply(
              k8s_manager_client(all->m), &gvr, json_string_value(json_object_get(md, "namespace")),
              json_string_value(json_object_get(md, "name")), "status", body, NULL, write_done, w));
  free(dump);
  json_decref(body);
}

void ctl_post_events(struct rec *r, const json_t *events)
{
  size_t i;
  json_t *ev;
  json_array_foreach(events, i, ev)
  {
    k8s_recorder_event(k8s_manager_recorder(r->c->all->m), r->cr,
                       json_string_value(json_object_get(ev, "type")),
                       json_string_value(json_object_get(ev, "reason")), NULL,
                       json_string_value(json_object_get(ev, "message")));
  }
}

/* }==================================================================== */
