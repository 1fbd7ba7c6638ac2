/* writer.c: the writes of one reconcile (internal.h) — server-side apply of
 * children, deletes, the status through /status, the cleanup finalizer,
 * Events — and what the driver remembers about them: expectations (what was
 * written over which cached resourceVersion, so a reconcile that runs before
 * the informer delivered our own write does not write again) and refusals
 * (a write the API server denied, reported in the CR's status by the next
 * reconcile). Every write holds its struct rec; the last one to finish
 * completes it (reconcile.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/json.h"
#include "core/util.h"
#include "controller/internal.h"

/* {====================================================================
 * Expectations
 * ===================================================================== */

static const char *expectation(struct ctl *c, const char *id)
{
  struct expectation *e = k8s_strmap_get(&c->expect, id);
  if (!e) return NULL;
  if (k8s_monotonic() - e->at > EXPECTATION_TTL) {
    k8s_strmap_del(&c->expect, id);
    free(e->id);
    free(e->value);
    free(e);
    return NULL;
  }
  return e->value;
}

static void expect_set(struct ctl *c, const char *id, const char *value)
{
  struct expectation *e = k8s_strmap_get(&c->expect, id);
  if (!e) {
    e = calloc(1, sizeof(*e));
    if (!e || !(e->id = strdup(id))) {
      free(e);
      return;
    }
    if (k8s_strmap_put(&c->expect, e->id, e) != 0) {
      free(e->id);
      free(e);
      return;
    }
  }
  free(e->value);
  e->value = strdup(value);
  e->at = k8s_monotonic();
}

void ctl_expect_clear(struct ctl *c, const char *id)
{
  struct expectation *e = k8s_strmap_del(&c->expect, id);
  if (!e) return;
  free(e->id);
  free(e->value);
  free(e);
}

void ctl_refusal_free(struct refusal *f)
{
  if (!f) return;
  free(f->key);
  free(f->message);
  free(f);
}

/* Records message (ownership taken) as key's refused write. */
void ctl_refusal_set(struct ctl *c, const char *key, char *message)
{
  struct refusal *f = calloc(1, sizeof(*f));
  if (f) f->key = strdup(key);
  if (!f || !f->key) {
    free(f);
    free(message);
    return;
  }
  f->message = message;
  ctl_refusal_free(k8s_strmap_del(&c->refused, key));
  if (k8s_strmap_put(&c->refused, f->key, f) != 0) ctl_refusal_free(f);
}

/* Forgets key's refused write; returns 1 if there was one. */
int ctl_refusal_clear(struct ctl *c, const char *key)
{
  struct refusal *f = k8s_strmap_del(&c->refused, key);
  ctl_refusal_free(f);
  return f != NULL;
}

/* }==================================================================== */

/* {====================================================================
 * Write plumbing
 * ===================================================================== */

static void write_done(const struct k8s_result *res, void *data)
{
  struct write *w = data;
  struct rec *r = w->rec;
  if (res->error && !(w->allow404 && res->code == 404)) {
    char buf[512];
    r->failed = 1;
    ctl_log(K8S_LOG_ERROR, r->c, r->key, r->id, "write failed", "what", w->what, "error",
            k8s_status_format(res->error, buf, sizeof(buf)));
    if (!r->refused && res->code >= 400 && res->code < 500 && res->code != 404 &&
        res->code != 409 && res->code != 429) {
      size_t n = strlen(w->what) + strlen(buf) + 3;
      r->refused = malloc(n);
      if (r->refused) snprintf(r->refused, n, "%s: %s", w->what, buf);
    }
    if (w->expect_id) ctl_expect_clear(r->c, w->expect_id);
  } else if (w->expect_id && w->expect_value)
    expect_set(r->c, w->expect_id, w->expect_value);
  free(w->expect_id);
  free(w->expect_value);
  free(w);
  if (--r->pending == 0 && !r->issuing) ctl_complete(r);
}

/* Starts one write; fn issues it with (write) as callback data. */
static struct write *new_write(struct rec *r, const char *what, int allow404)
{
  struct write *w = calloc(1, sizeof(*w));
  if (!w) {
    r->failed = 1;
    return NULL;
  }
  w->rec = r;
  w->allow404 = allow404;
  snprintf(w->what, sizeof(w->what), "%s", what);
  return w;
}

static void started(struct rec *r, struct write *w, int rc)
{
  if (rc != 0) {
    r->failed = 1;
    ctl_log(K8S_LOG_ERROR, r->c, r->key, r->id, "write not sent", "what", w->what, NULL, NULL);
    free(w->expect_id);
    free(w->expect_value);
    free(w);
    return;
  }
  r->pending++;
  r->writes++;
}

/* }==================================================================== */

/* {====================================================================
 * Writes
 * ===================================================================== */

static int gvr_of(struct controllers *all, const char *av, const char *kind, struct k8s_gvr *gvr)
{
  return k8s_discovery_gvr(k8s_manager_discovery(all->m), av, kind, gvr);
}

/* Adds the cleanup finalizer by server-side apply of metadata.finalizers
 * alone (field manager K8S_FIELD_MANAGER; finalizers is a set, so others'
 * entries stay and concurrent writes of the CR cause no 409), with the
 * cached uid as a precondition: if the CR is gone, the API server answers
 * 409 "uid mismatch" instead of creating it. */
void ctl_add_finalizer(struct rec *r, const json_t *cr)
{
  struct controllers *all = r->c->all;
  const json_t *md = json_object_get(cr, "metadata");
  const char *av = json_string_value(json_object_get(cr, "apiVersion"));
  const char *kind = json_string_value(json_object_get(cr, "kind"));
  const char *ns = json_string_value(json_object_get(md, "namespace"));
  struct k8s_gvr gvr;
  if (gvr_of(all, av, kind, &gvr) != 0) {
    r->failed = 1;
    return;
  }
  json_t *body = json_pack("{s:s, s:s, s:{s:O, s:O, s:[s]}}", "apiVersion", av, "kind", kind,
                           "metadata", "name", json_object_get(md, "name"), "uid",
                           json_object_get(md, "uid"), "finalizers", LK_FINALIZER);
  if (!body) { /* a cached CR without name or uid: retry rather than skip silently */
    r->failed = 1;
    return;
  }
  if (ns) json_object_set_new(json_object_get(body, "metadata"), "namespace", json_string(ns));
  struct write *w = new_write(r, "add finalizer", 0);
  if (w)
    started(r, w,
            k8s_client_apply(k8s_manager_client(all->m), &gvr, ns,
                             json_string_value(json_object_get(md, "name")), NULL, body, NULL,
                             write_done, w));
  json_decref(body);
}

/* Removes the cleanup finalizer: JSON merge patch of metadata.finalizers
 * (the others kept) with the cached resourceVersion — 409 when the CR
 * changed meanwhile, and the retry re-reads the cache. A merge patch rather
 * than an apply, so a finalizer some other manager also claims (e.g. one a
 * user wrote) goes too. */
void ctl_remove_finalizer(struct rec *r, const json_t *cr)
{
  struct controllers *all = r->c->all;
  const json_t *md = json_object_get(cr, "metadata");
  struct k8s_gvr gvr;
  const char *av = json_string_value(json_object_get(cr, "apiVersion"));
  const char *kind = json_string_value(json_object_get(cr, "kind"));
  if (gvr_of(all, av, kind, &gvr) != 0) {
    r->failed = 1;
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
  struct write *w = new_write(r, "remove finalizer", 0);
  if (w)
    started(r, w,
            k8s_client_request(k8s_manager_client(all->m), "PATCH", path, body,
                               "application/merge-patch+json", write_done, w));
  json_decref(body);
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

/* "<content>@<resourceVersion>": what was written, and the cached version
 * it was written over. */
static char *expect_value(const char *content, const char *rv)
{
  char *v = NULL;
  return asprintf(&v, "%s@%s", content, rv) < 0 ? NULL : v;
}

/* A write of the same content over the same cached version is pending in
 * the cache: the informer has not delivered our last write yet. Once the
 * cache moves on (our write, or someone else's), the normal comparison
 * decides again. */
static int written_already(struct ctl *c, const char *id, const char *content, const char *rv)
{
  const char *exp = expectation(c, id);
  char *want = exp ? expect_value(content, rv) : NULL;
  int same = want && !strcmp(exp, want);
  free(want);
  return same;
}

void ctl_apply_child(struct rec *r, const struct lk_child *ch)
{
  struct controllers *all = r->c->all;
  char id[600], what[300];
  snprintf(id, sizeof(id), "child:%s/%s/%s/%s", ch->api_version, ch->kind, ch->ns, ch->name);
  const char *rv = cached_rv(all, ch->api_version, ch->kind, ch->ns, ch->name);
  if (written_already(r->c, id, ch->hash, rv)) return;
  snprintf(what, sizeof(what), "apply %s %s%s%s", ch->kind, ch->ns, *ch->ns ? "/" : "", ch->name);
  struct k8s_gvr gvr;
  if (gvr_of(all, ch->api_version, ch->kind, &gvr) != 0) {
    r->failed = 1;
    ctl_log(K8S_LOG_ERROR, r->c, r->key, r->id, "kind not served", "what", what, NULL, NULL);
    return;
  }
  struct write *w = new_write(r, what, 0);
  if (!w) return;
  w->expect_id = strdup(id);
  w->expect_value = expect_value(ch->hash, rv);
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
  snprintf(id, sizeof(id), "child:%s/%s/%s/%s", p->api_version, p->kind, p->ns, p->name);
  const char *rv = cached_rv(all, p->api_version, p->kind, p->ns, p->name);
  if (written_already(r->c, id, "deleted", rv)) return;
  struct k8s_gvr gvr;
  if (gvr_of(all, p->api_version, p->kind, &gvr) != 0) return; /* gone with its CRD */
  struct write *w = new_write(r, what, 1);
  if (!w) return;
  w->expect_id = strdup(id);
  w->expect_value = expect_value("deleted", rv);
  started(r, w,
          k8s_client_delete(k8s_manager_client(all->m), &gvr, *p->ns ? p->ns : NULL, p->name,
                            "Background", write_done, w));
}

void ctl_write_status(struct rec *r, const json_t *cr, const json_t *status)
{
  struct controllers *all = r->c->all;
  const json_t *md = json_object_get(cr, "metadata");
  const char *av = json_string_value(json_object_get(cr, "apiVersion"));
  const char *kind = json_string_value(json_object_get(cr, "kind"));
  char id[600];
  snprintf(id, sizeof(id), "status:%s", r->key);
  char *dump = k8s_json_dump(status, K8S_JSON_SORT_KEYS, NULL);
  const char *rv = json_string_value(json_object_get(md, "resourceVersion"));
  if (!rv) rv = "";
  if (!dump || written_already(r->c, id, dump, rv)) {
    free(dump);
    return;
  }
  struct k8s_gvr gvr;
  if (gvr_of(all, av, kind, &gvr) != 0) {
    free(dump);
    r->failed = 1;
    return;
  }
  json_t *body =
      json_pack("{s:s, s:s, s:{s:O, s:O}, s:O}", "apiVersion", av, "kind", kind, "metadata", "name",
                json_object_get(md, "name"), "namespace",
                json_object_get(md, "namespace") ? json_object_get(md, "namespace") : json_null(),
                "status", status);
  if (!json_object_get(md, "namespace"))
    json_object_del(json_object_get(body, "metadata"), "namespace");
  struct write *w = new_write(r, "write status", 0);
  if (w) {
    w->expect_id = strdup(id);
    w->expect_value = expect_value(dump, rv);
    started(r, w,
            k8s_client_apply(k8s_manager_client(all->m), &gvr,
                             json_string_value(json_object_get(md, "namespace")),
                             json_string_value(json_object_get(md, "name")), "status", body, NULL,
                             write_done, w));
  }
  free(dump);
  json_decref(body);
}

void ctl_post_events(struct rec *r, const json_t *cr, const json_t *events)
{
  size_t i;
  json_t *ev;
  json_array_foreach(events, i, ev)
  {
    k8s_client_event(k8s_manager_client(r->c->all->m), cr,
                     json_string_value(json_object_get(ev, "type")),
                     json_string_value(json_object_get(ev, "reason")), NULL,
                     json_string_value(json_object_get(ev, "message")));
  }
}

/* }==================================================================== */
