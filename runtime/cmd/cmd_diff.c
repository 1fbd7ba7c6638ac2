/* cmd_diff.c: `schedsim-operator diff`: what applying CR files would change
 * in the cluster of the kubeconfig, without changing anything.
 *
 * Steps (every request is a GET, a LIST, or a server-side apply with
 * dryRun=All; nothing else is sent):
 *   1. discovery (the live one: kinds not served are not read, as in `run`);
 *   2. each CR of -f is applied with dryRun=All (field manager --field-manager,
 *      default "kubectl", force): the answer is the CR as it would be, with
 *      the server's defaults and validation, and the live uid, generation
 *      and status when it exists; the live CR is read with a GET;
 *   3. the cache the engine reads is built by listing, in all namespaces, every
 *      served kind the CRs' controllers declare (for_, owns, watches): the
 *      informers of `run` hold the same; the dry-run CRs replace the live ones;
 *   4. each CR goes through lk_engine_reconcile, as in the operator;
 *   5. children the operator would apply (a missing child or another
 *      desired-hash) are applied with dryRun=All (field manager
 *      schedsim-operator, force, as the operator does) and the answer is
 *      compared with the live object; children it would prune are shown as
 *      removed, conflicts as a `!` line; the CR's own section shows its spec
 *      change, the finalizer the operator would add, and the status it would
 *      write.
 *
 * Output: one section per object that would change, sorted (the CR first,
 * then its children by kind, namespace, name):
 *   --- Deployment.apps/v1 ns/name (live)
 *   +++ Deployment.apps/v1 ns/name (after apply)
 *   @@ -30,7 +30,7 @@
 *   -  replicas: 2
 *   +  replicas: 3
 * a unified diff of the object's YAML (udiff.h, server-set fields dropped),
 * or with -o paths one line per changed field path (diff_tree.h:
 * "- spec.replicas: 2"). With KUBECTL_EXTERNAL_DIFF set, the objects go to
 * that program's LIVE and MERGED directories instead (udiff.h).
 * Exit codes (kubectl diff's): 0 no differences, 1 differences, 2 usage or
 * input error (unreadable file, unknown kind, a CR the server rejects), 3
 * failure talking to the cluster (or a child the server would reject). */
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "cmd/cmd_common.h"
#include "cmd/crinput.h"
#include "cmd/diff_tree.h"
#include "cmd/udiff.h"
#include "controller/live.h"
#include "core/buf.h"
#include "core/json.h"
#include "core/log.h"
#include "core/store.h"
#include "kube/discovery.h"
#include "kube/http.h"
#include "kube/kubeconfig.h"
#include "kube/loop.h"
#include "kube/restclient.h"
#include "lua/engine.h"
#include "lua/fixture.h"

#define MAX_ARGS 64
#define LIST_PAGE 500
#define EXIT_DIFF 1
#define EXIT_INPUT 2
#define EXIT_CLUSTER 3

static const char *prog = "schedsim-operator diff";

/* {====================================================================
 * Synchronous calls over the loop
 * ===================================================================== */

struct call {
  int done;
  int code;     /* HTTP status, 0: transport error */
  json_t *obj;  /* 2xx body */
  char *error;  /* formatted Status, or NULL */
  char *reason; /* Status reason, or NULL */
};

struct diffctx {
  struct k8s_loop *loop;
  struct k8s_config *cfg;
  struct k8s_http *http;
  struct k8s_client *client;
  struct k8s_discovery *disc;
  struct kstore *ks;
  size_t nks;
  const char *field_manager;
  int paths;               /* -o paths: field-path lines (diff_tree.h); else unified */
  struct ud_external *ext; /* KUBECTL_EXTERNAL_DIFF set: the LIVE/MERGED directories */
};

static volatile int interrupted;

static void on_signal(struct k8s_loop *loop, int signo, void *data)
{
  interrupted = signo;
}

static void call_done(const struct k8s_result *res, void *data)
{
  struct call *c = data;
  c->done = 1;
  c->code = res->code;
  if (res->object) c->obj = json_incref(res->object);
  if (res->error) {
    char buf[2048];
    c->error = strdup(k8s_status_format(res->error, buf, sizeof(buf)));
    c->reason = strdup(res->error->reason ? res->error->reason : "");
  }
}

/* A call whose request could not be sent. */
static void call_failed(struct call *c, const char *what)
{
  c->done = 1;
  c->code = 0;
  c->error = strdup(what);
  c->reason = strdup("Transport");
}

static void call_clear(struct call *c)
{
  json_decref(c->obj);
  free(c->error);
  free(c->reason);
  memset(c, 0, sizeof(*c));
}

/* Runs the loop until every call of v is done. Returns 0, or -1 when
 * interrupted (SIGINT, SIGTERM) or the loop failed. */
static int wait_calls(struct diffctx *x, struct call *v, size_t n)
{
  for (;;) {
    size_t left = 0;
    for (size_t i = 0; i < n; i++)
      left += !v[i].done;
    if (!left) return 0;
    if (interrupted || k8s_loop_run_once(x->loop, 0.5) < 0) return -1;
  }
}

static void disc_done(struct k8s_discovery *d, bool ok, void *data)
{
  *(int *)data = ok ? 1 : -1;
}

/* }==================================================================== */

/* {====================================================================
 * The cache: one Store per served kind, filled by LIST
 * ===================================================================== */

struct kstore {
  const char *api_version, *kind; /* borrowed from the engine's declarations */
  struct k8s_store *store;        /* NULL: not served */
  struct k8s_gvr gvr;
  char group[256], version[64], resource[128];
};

static struct kstore *kstore_find(struct diffctx *x, const char *av, const char *kind)
{
  for (size_t i = 0; i < x->nks; i++)
    if (!strcmp(x->ks[i].api_version, av) && !strcmp(x->ks[i].kind, kind)) return &x->ks[i];
  return NULL;
}

static struct k8s_store *cache_store(void *ud, const char *av, const char *kind)
{
  struct kstore *k = kstore_find(ud, av, kind);
  return k ? k->store : NULL;
}

static const struct lk_cache_ops cache_ops = {cache_store, NULL}; /* lists all: complete */

static int kstore_add(struct diffctx *x, const char *av, const char *kind)
{
  if (kstore_find(x, av, kind)) return 0;
  struct kstore *nk = realloc(x->ks, (x->nks + 1) * sizeof(*nk));
  if (!nk) return -1;
  x->ks = nk;
  struct kstore *k = &x->ks[x->nks++];
  memset(k, 0, sizeof(*k));
  k->api_version = av;
  k->kind = kind;
  return 0;
}

/* Adds the kinds of controller c (for_, owns, watches) to the cache list,
 * and Namespaces (the engine reads their grant labels, doc/security.md). */
static int kstore_declare(struct diffctx *x, const struct lk_controller_decl *c)
{
  for (size_t i = 0; i < c->nkinds; i++)
    if (kstore_add(x, c->kinds[i].api_version, c->kinds[i].kind) != 0) return -1;
  return kstore_add(x, "v1", "Namespace");
}

/* Copies the gvr of a discovered kind (discovery's strings are only valid
 * until its next refresh). */
static int gvr_copy(struct diffctx *x, const char *av, const char *kind, struct kstore *k)
{
  struct k8s_gvr g;
  if (k8s_discovery_gvr(x->disc, av, kind, &g) != 0) return -1;
  snprintf(k->group, sizeof(k->group), "%s", g.group);
  snprintf(k->version, sizeof(k->version), "%s", g.version);
  snprintf(k->resource, sizeof(k->resource), "%s", g.resource);
  k->gvr = (struct k8s_gvr){k->group, k->version, k->resource, g.namespaced};
  return 0;
}

/* Lists every served kind in all namespaces (pages of LIST_PAGE, kinds in
 * parallel) into its Store. Returns 0, or -1 (message printed). */
static int fill_cache(struct diffctx *x)
{
  size_t n = x->nks;
  struct call *calls = calloc(n + 1, sizeof(*calls));
  char **cont = calloc(n + 1, sizeof(*cont));
  int *active = calloc(n + 1, sizeof(*active));
  int rc = 0;
  if (!calls || !cont || !active) rc = -1;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    struct kstore *k = &x->ks[i];
    if (gvr_copy(x, k->api_version, k->kind, k) != 0) continue; /* not served */
    k->store = k8s_store_new();
    /* keep our field set: the engine sees drift as the operator does */
    if (!k->store || k8s_store_set_kind(k->store, k->api_version, k->kind) != 0 ||
        k8s_store_set_field_manager(k->store, K8S_FIELD_MANAGER) != 0)
      rc = -1;
    active[i] = 1;
  }
  while (rc == 0) {
    size_t issued = 0;
    for (size_t i = 0; i < n; i++) {
      call_clear(&calls[i]);
      if (!active[i]) {
        calls[i].done = 1;
        continue;
      }
      struct k8s_list_opts lo = {.limit = LIST_PAGE, .continue_token = cont[i]};
      if (k8s_client_list(x->client, &x->ks[i].gvr, NULL, &lo, call_done, &calls[i]) != 0)
        call_failed(&calls[i], "request not sent");
      issued++;
    }
    if (!issued) break;
    if (wait_calls(x, calls, n) != 0) {
      rc = -1;
      break;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
      if (!active[i]) continue;
      struct kstore *k = &x->ks[i];
      if (calls[i].error) {
        fprintf(stderr, "%s: list %s %s: %s\n", prog, k->api_version, k->kind, calls[i].error);
        rc = -1;
        break;
      }
      size_t j;
      json_t *item;
      char err[256];
      json_array_foreach(json_object_get(calls[i].obj, "items"), j, item)
      {
        if (k8s_store_upsert(k->store, item, NULL, NULL, err, sizeof(err)) < 0) {
          fprintf(stderr, "%s: list %s %s: %s\n", prog, k->api_version, k->kind, err);
          rc = -1;
          break;
        }
      }
      const char *next =
          json_string_value(json_object_get(json_object_get(calls[i].obj, "metadata"), "continue"));
      free(cont[i]);
      cont[i] = next && *next ? strdup(next) : NULL;
      if (!cont[i]) active[i] = 0;
    }
  }
  for (size_t i = 0; calls && i < n; i++) {
    call_clear(&calls[i]);
    if (cont) free(cont[i]);
  }
  free(calls);
  free(cont);
  free(active);
  return rc;
}

/* The live object of a kind from the cache (new reference), or NULL. */
static json_t *cached(struct diffctx *x, const char *av, const char *kind, const char *ns,
                      const char *name)
{
  struct kstore *k = kstore_find(x, av, kind);
  if (!k || !k->store) return NULL;
  char key[600];
  snprintf(key, sizeof(key), "%s%s%s", ns && *ns ? ns : "", ns && *ns ? "/" : "", name);
  const struct k8s_object *o = k8s_store_get(k->store, key);
  return o ? k8s_object_parse(o, NULL, 0) : NULL;
}

/* }==================================================================== */

/* {====================================================================
 * Input
 * ===================================================================== */

struct input {
  const char *file;
  size_t doc;
  json_t *cr;      /* as in the file, namespace defaulted */
  json_t *live;    /* GET, or NULL when absent */
  json_t *applied; /* the dry-run apply answer */
  const struct lk_controller_decl *c;
  struct kstore *k; /* the CR kind */
};

/* }==================================================================== */

/* {====================================================================
 * Output
 * ===================================================================== */

struct section {
  char *sortkey;
  char *text;
};

struct output {
  struct section *v;
  size_t n;
};

static void header(struct k8s_buf *b, const char *av, const char *kind, const char *ns,
                   const char *name, const char *before, const char *after)
{
  char obj[900];
  snprintf(obj, sizeof(obj), "%s.%s %s%s%s", kind, av, ns && *ns ? ns : "", ns && *ns ? "/" : "",
           name);
  k8s_buf_printf(b, "--- %s (%s)\n+++ %s (%s)\n", obj, before, obj, after);
}

/* Adds a section (header + lines) when lines is not empty. */
static void add_section(struct output *o, const char *sortkey, struct k8s_buf *head,
                        struct k8s_buf *lines, size_t nlines)
{
  if (!nlines || !lines->len) return; /* no lines: the external program shows it */
  struct section *nv = realloc(o->v, (o->n + 1) * sizeof(*nv));
  if (!nv) return;
  o->v = nv;
  k8s_buf_add(head, lines->p, lines->len);
  o->v[o->n].sortkey = strdup(sortkey);
  o->v[o->n].text = k8s_buf_steal(head, NULL);
  o->n++;
}

static int cmp_section(const void *a, const void *b)
{
  return strcmp(((const struct section *)a)->sortkey, ((const struct section *)b)->sortkey);
}

/* Writes the sections of one CR (the CR's own first) and frees them. */
static void flush_sections(struct output *o)
{
  if (o->n) /* qsort(NULL, 0, …) is undefined behaviour */
    qsort(o->v, o->n, sizeof(*o->v), cmp_section);
  for (size_t i = 0; i < o->n; i++) {
    if (o->v[i].text) fputs(o->v[i].text, stdout);
    free(o->v[i].sortkey);
    free(o->v[i].text);
  }
  free(o->v);
  o->v = NULL;
  o->n = 0;
  fflush(stdout);
}

/* The change of one object (before or after NULL: created / removed) as
 * lines of the chosen output: a unified diff of the two YAML texts, the
 * field-path lines of -o paths, or, with KUBECTL_EXTERNAL_DIFF, nothing here
 * and the two sides written to its directories. Returns the number of
 * changed lines (1 for a changed object in the external mode), 0 when equal. */
static size_t object_diff(struct diffctx *x, const json_t *before, const json_t *after, int flags,
                          const char *av, const char *kind, const char *ns, const char *name,
                          struct k8s_buf *lines)
{
  if (x->paths && !x->ext) return dt_diff(before, after, flags, "", lines);
  char *a = ud_object_yaml(before, flags), *b = ud_object_yaml(after, flags);
  size_t n = 0;
  if (a && b && x->ext) {
    n = strcmp(a, b) != 0;
    if (n) ud_external_add(x->ext, av, kind, ns, name, before ? a : NULL, after ? b : NULL);
  } else if (a && b) {
    n = ud_diff(a, b, 3, lines);
    if (n == (size_t)-1) n = 0;
  }
  free(a);
  free(b);
  return n;
}

static void child_sortkey(char *buf, size_t len, int group, const char *kind, const char *ns,
                          const char *name, const char *av)
{
  snprintf(buf, len, "%d\x01%s\x01%s\x01%s\x01%s", group, kind, ns, name, av);
}

/* }==================================================================== */

/* {====================================================================
 * One CR
 * ===================================================================== */

struct pending_apply {
  const struct lk_child *ch;
  struct kstore k; /* gvr storage */
};

/* Reconciles one CR as the operator would, on the live discovery and the
 * cache of fill_cache; *r is the caller's (lk_result_free). Returns
 * lk_engine_reconcile's status, after a message when it failed. */
static int reconcile_cr(struct diffctx *x, struct lk_engine *e, const struct input *in,
                        struct lk_result *r)
{
  const json_t *md = json_object_get(in->applied, "metadata");
  const char *ns = cr_sget(md, "namespace"), *name = cr_sget(md, "name");
  struct lk_discovery_source disc;
  lk_live_discovery_source(&disc, x->disc);
  struct lk_cache_source cache = {&cache_ops, x};
  char key[600];
  snprintf(key, sizeof(key), "%s/%s", ns, name);
  struct k8s_log_field fields[] = {{"controller", K8S_LOG_STR, in->c->name, 0, 0},
                                   {"key", K8S_LOG_STR, key, 0, 0}};
  struct lk_reconcile_in ri = {.controller = in->c,
                               .cr = in->applied,
                               .cache = &cache,
                               .discovery = &disc,
                               .log_fields = fields,
                               .nlog_fields = 2};
  int st = lk_engine_reconcile(e, &ri, r);
  if (st != 0)
    fprintf(stderr, "%s: %s: %s %s: the reconcile would fail: %s\n", prog, in->file,
            cr_sget(in->applied, "kind"), key, r->err.message ? r->err.message : "?");
  return st;
}

/* The CR as the operator would leave it (new reference): the dry-run apply
 * answer, with the finalizer it would add or remove, and the status it
 * would write. st: the reconcile's status. */
static json_t *cr_after(const struct input *in, const struct lk_result *r, int st)
{
  json_t *after = json_deep_copy(in->applied);
  json_t *amd = json_object_get(after, "metadata");
  int has_fin = 0;
  size_t i;
  json_t *v;
  json_array_foreach(json_object_get(amd, "finalizers"), i, v)
  {
    has_fin |= json_is_string(v) && !strcmp(json_string_value(v), LK_FINALIZER);
  }
  if (r->finalizing) {
    if (st == 0 && r->finalized && r->nobserved == 0 && has_fin) {
      json_t *keep = json_array();
      json_array_foreach(json_object_get(amd, "finalizers"), i, v)
      {
        if (!json_is_string(v) || strcmp(json_string_value(v), LK_FINALIZER))
          json_array_append(keep, v);
      }
      json_object_set_new(amd, "finalizers", keep);
    }
  } else {
    if (st == 0 && !has_fin && lk_result_needs_finalizer(r, cr_sget(amd, "namespace"))) {
      json_t *f = json_object_get(amd, "finalizers");
      if (!json_is_array(f)) json_object_set_new(amd, "finalizers", f = json_array());
      json_array_append_new(f, json_string(LK_FINALIZER));
    }
    if (r->status_changed && r->status) json_object_set(after, "status", r->status);
  }
  return after;
}

/* The CR's own section: live against cr_after. Returns 1 when it changes. */
static int cr_section(struct diffctx *x, const struct input *in, const struct lk_result *r, int st,
                      struct output *out)
{
  const json_t *md = json_object_get(in->applied, "metadata");
  const char *ns = cr_sget(md, "namespace"), *name = cr_sget(md, "name");
  const char *av = cr_sget(in->applied, "apiVersion"), *kind = cr_sget(in->applied, "kind");
  json_t *after = cr_after(in, r, st);
  struct k8s_buf head = {0}, lines = {0};
  header(&head, av, kind, ns, name, in->live ? "live" : "absent",
         in->live ? "after apply" : "created");
  size_t n = object_diff(x, in->live, after, 0, av, kind, ns, name, &lines);
  add_section(out, "0", &head, &lines, n);
  k8s_buf_free(&head);
  k8s_buf_free(&lines);
  json_decref(after);
  return n > 0;
}

/* The section of a child the operator would not apply: it exists without
 * our owner label or with another one. */
static void conflict_section(const struct lk_child *ch, struct output *out)
{
  char sk[1400];
  child_sortkey(sk, sizeof(sk), 1, ch->kind, ch->ns, ch->name, ch->api_version);
  struct k8s_buf head = {0}, lines = {0};
  header(&head, ch->api_version, ch->kind, ch->ns, ch->name, "live", "conflict");
  k8s_buf_printf(&lines, "! exists %s: not applied (Ready=False, reason Conflict)\n",
                 ch->owner && *ch->owner ? "with another owner label" : "without our owner label");
  if (ch->owner && *ch->owner) k8s_buf_printf(&lines, "! current owner: %s\n", ch->owner);
  add_section(out, sk, &head, &lines, 1);
  k8s_buf_free(&head);
  k8s_buf_free(&lines);
}

/* Sends the dry-run applies of the children the operator would apply (pa
 * and calls: room for r->nchildren each), and adds the conflict sections.
 * Returns the number of applies sent; *changed counts the conflicts. */
static size_t send_applies(struct diffctx *x, const struct lk_result *r, struct pending_apply *pa,
                           struct call *calls, struct output *out, int *changed)
{
  size_t npa = 0;
  for (size_t c = 0; !r->finalizing && pa && calls && c < r->nchildren; c++) {
    const struct lk_child *ch = &r->children[c];
    if (ch->action == LK_CHILD_CONFLICT) {
      conflict_section(ch, out);
      (*changed)++;
      continue;
    }
    if (ch->action != LK_CHILD_APPLY) continue;
    struct pending_apply *p = &pa[npa++];
    p->ch = ch;
    if (gvr_copy(x, ch->api_version, ch->kind, &p->k) != 0) {
      call_failed(&calls[npa - 1], "kind not served by the cluster");
      continue;
    }
    struct k8s_apply_opts ao = {.field_manager = K8S_FIELD_MANAGER, .force = true, .dry_run = true};
    if (k8s_client_apply(x->client, &p->k.gvr, *ch->ns ? ch->ns : NULL, ch->name, NULL, ch->obj,
                         &ao, call_done, &calls[npa - 1]) != 0)
      call_failed(&calls[npa - 1], "request not sent");
  }
  return npa;
}

/* The section of one applied child: live against the dry-run answer, or
 * the server's refusal. Returns 1 when it changes, 0 when not, -1 when the
 * apply failed (printed). */
static int applied_section(struct diffctx *x, const struct lk_child *ch, const struct call *call,
                           struct output *out)
{
  char sk[1400];
  int rc;
  child_sortkey(sk, sizeof(sk), 1, ch->kind, ch->ns, ch->name, ch->api_version);
  json_t *live = cached(x, ch->api_version, ch->kind, ch->ns, ch->name);
  struct k8s_buf head = {0}, lines = {0};
  if (call->error) {
    header(&head, ch->api_version, ch->kind, ch->ns, ch->name, live ? "live" : "absent",
           "apply fails");
    k8s_buf_printf(&lines, "! %s\n", call->error);
    add_section(out, sk, &head, &lines, 1);
    fprintf(stderr, "%s: dry-run apply of %s %s%s%s: %s\n", prog, ch->kind, ch->ns,
            *ch->ns ? "/" : "", ch->name, call->error);
    rc = -1;
  } else {
    header(&head, ch->api_version, ch->kind, ch->ns, ch->name, live ? "live" : "absent",
           live ? "after apply" : "created");
    size_t n = object_diff(x, live, call->obj, DT_IGNORE_STATUS, ch->api_version, ch->kind, ch->ns,
                           ch->name, &lines);
    add_section(out, sk, &head, &lines, n);
    rc = n > 0;
  }
  k8s_buf_free(&head);
  k8s_buf_free(&lines);
  json_decref(live);
  return rc;
}

/* Children the operator would apply: dry-run apply, in parallel, then one
 * section each. Returns the number of changed children, or -1 when an apply
 * failed or the wait was interrupted. */
static int apply_children(struct diffctx *x, const struct lk_result *r, struct output *out)
{
  struct pending_apply *pa = calloc(r->nchildren + 1, sizeof(*pa));
  struct call *calls = calloc(r->nchildren + 1, sizeof(*calls));
  int changed = 0, failed = 0;
  size_t npa = send_applies(x, r, pa, calls, out, &changed);
  if (npa && wait_calls(x, calls, npa) != 0) failed = 1;
  for (size_t j = 0; !failed && j < npa; j++) {
    int n = applied_section(x, pa[j].ch, &calls[j], out);
    if (n < 0) failed = 1;
    changed += n > 0;
  }
  for (size_t j = 0; j < npa; j++)
    call_clear(&calls[j]);
  free(calls);
  free(pa);
  return failed ? -1 : changed;
}

/* Children the operator would delete: one section each. Returns their
 * number. */
static int prune_sections(struct diffctx *x, const struct lk_result *r, struct output *out)
{
  int changed = 0;
  char sk[1400];
  for (size_t p = 0; p < r->nprune; p++) {
    const struct lk_ref *ref = &r->prune[p];
    if (ref->deleting) continue;
    json_t *live = cached(x, ref->api_version, ref->kind, ref->ns, ref->name);
    struct k8s_buf head = {0}, lines = {0};
    child_sortkey(sk, sizeof(sk), 2, ref->kind, ref->ns, ref->name, ref->api_version);
    header(&head, ref->api_version, ref->kind, ref->ns, ref->name, "live", "pruned");
    size_t n = object_diff(x, live, NULL, DT_IGNORE_STATUS, ref->api_version, ref->kind, ref->ns,
                           ref->name, &lines);
    if (!n) {
      k8s_buf_adds(&lines, "- (the whole object)\n");
      n = 1;
    }
    add_section(out, sk, &head, &lines, n);
    changed++;
    k8s_buf_free(&head);
    k8s_buf_free(&lines);
    json_decref(live);
  }
  return changed;
}

/* Diffs one reconciled CR: its own section, its children's, the pruned
 * ones, written sorted. Returns the number of changed objects, or -1 on a
 * cluster error (printed). */
static int diff_one(struct diffctx *x, struct lk_engine *e, struct input *in)
{
  struct lk_result r;
  int st = reconcile_cr(x, e, in, &r);
  struct output out = {0};
  int changed = cr_section(x, in, &r, st, &out);
  int n = apply_children(x, &r, &out);
  if (n > 0) changed += n;
  changed += prune_sections(x, &r, &out);
  flush_sections(&out);
  lk_result_free(&r);
  return n < 0 ? -1 : changed;
}

/* }==================================================================== */

/* Server-side apply of a CR with dryRun=All, as `kubectl apply --server-side
 * --dry-run=server` sends it: field manager x->field_manager, force, and
 * fieldValidation=Strict (an unknown or duplicate field is an error naming
 * it, not silently pruned). */
static int apply_cr(struct diffctx *x, const struct k8s_gvr *gvr, const char *ns, const char *name,
                    const json_t *cr, struct call *c)
{
  char path[1024];
  if (k8s_gvr_path(gvr, ns, name, NULL, path, sizeof(path)) < 0) return -1;
  char *fm = k8s_http_escape(x->field_manager);
  char *full = NULL;
  int n = fm ? asprintf(&full, "%s?fieldManager=%s&force=true&dryRun=All&fieldValidation=Strict",
                        path, fm)
             : -1;
  free(fm);
  if (n < 0) return -1;
  int rc = k8s_client_request(x->client, "PATCH", full, cr, "application/apply-patch+yaml",
                              call_done, c);
  free(full);
  return rc;
}

static void usage(FILE *out)
{
  fprintf(out,
          "usage: schedsim-operator diff -f CR.yaml [-f MORE.yaml]... [--scripts DIR]\n"
          "         [--kubeconfig FILE] [--context NAME] [-n NAMESPACE] [--field-manager NAME]\n"
          "         [-v N]\n\n"
          "Shows what applying the CRs would change in the cluster of the kubeconfig: the\n"
          "CRs themselves (server-side apply, dry run), the children the scripts would\n"
          "apply (server-side apply with dryRun=All, field manager schedsim-operator),\n"
          "the children they would delete, and the status they would write. Nothing is\n"
          "written.\n\n"
          "  -f, --filename FILE      CR file (YAML or JSON, several documents, List), - for\n"
          "                           stdin, or a directory (its .yaml/.yml/.json, recursively)\n"
          "  --scripts DIR            script set (default: beside the binary)\n"
          "  --kubeconfig FILE        kubeconfig (default: $KUBECONFIG, ~/.kube/config)\n"
          "  --context NAME           kubeconfig context\n"
          "  -n, --namespace NS       namespace of CRs without one (default: the context's)\n"
          "  --field-manager NAME     field manager of the CR's dry-run apply (default "
          "kubectl)\n"
          "  -o, --output FORMAT      unified (default: diff -u of each object's YAML) or\n"
          "                           paths (one line per changed field path)\n"
          "  -v N                     log verbosity\n\n"
          "KUBECTL_EXTERNAL_DIFF, as for kubectl diff: run that program (first word; the\n"
          "others are its arguments) on two directories LIVE and MERGED holding one YAML\n"
          "file per changed object (<group>.<version>.<Kind>.<namespace>.<name>).\n\n"
          "Exit codes: 0 no differences, 1 differences, 2 usage or input error, 3 cluster "
          "error (or the external program failed).\n");
}

/* {====================================================================
 * Steps of cmd_diff
 * ===================================================================== */

struct diff_flags {
  const char *files[MAX_ARGS];
  size_t nfiles;
  const char *dir, *kubeconfig, *context, *ns_flag, *output;
  int verbosity;
};

/* One diff: the flags, the engine, the CRs and the cluster context. Owned
 * and freed by diffrun_free. */
struct diffrun {
  struct diff_flags f;
  struct diffctx x;
  const char *def_ns; /* namespace of CRs without one */
  struct lk_engine *e;
  struct input *inputs;
  size_t ninputs;
  struct cr_file *paths; /* the -f files; inputs[].file points into them */
  size_t npaths;
};

/* Reads the flags into d->f (and d->x.field_manager). Returns -1 to go on,
 * or the exit code: 0 after --help, EXIT_INPUT after a usage error (message
 * and usage printed). */
static int parse_flags(int argc, char **argv, struct diffrun *d)
{
  static const struct option opts[] = {{"filename", required_argument, NULL, 'f'},
                                       {"scripts", required_argument, NULL, 's'},
                                       {"kubeconfig", required_argument, NULL, 'k'},
                                       {"context", required_argument, NULL, 'c'},
                                       {"namespace", required_argument, NULL, 'n'},
                                       {"field-manager", required_argument, NULL, 'm'},
                                       {"output", required_argument, NULL, 'o'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  struct diff_flags *f = &d->f;
  int c;
  optind = 1;
  f->output = "unified";
  while ((c = getopt_long(argc, argv, "f:n:o:v:h", opts, NULL)) != -1) {
    switch (c) {
    case 'f':
      if (f->nfiles < MAX_ARGS) f->files[f->nfiles++] = optarg;
      break;
    case 's':
      f->dir = optarg;
      break;
    case 'k':
      f->kubeconfig = optarg;
      break;
    case 'c':
      f->context = optarg;
      break;
    case 'n':
      f->ns_flag = optarg;
      break;
    case 'm':
      d->x.field_manager = optarg;
      break;
    case 'o':
      f->output = optarg;
      break;
    case 'v':
      f->verbosity = atoi(optarg);
      break;
    case 'h':
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return EXIT_INPUT;
    }
  }
  if (optind < argc || !f->nfiles || (strcmp(f->output, "unified") && strcmp(f->output, "paths"))) {
    if (optind < argc)
      fprintf(stderr, "%s: unexpected argument %s\n", prog, argv[optind]);
    else if (!f->nfiles)
      fprintf(stderr, "%s: give at least one -f CR.yaml\n", prog);
    else
      fprintf(stderr, "%s: -o must be unified or paths\n", prog);
    usage(stderr);
    return EXIT_INPUT;
  }
  return -1;
}

/* The scripts, the engine and the kubeconfig. Returns 0, or the exit code
 * after a message (everything it made freed). */
static int setup(struct diffrun *d)
{
  char buf[PATH_MAX], err[1024];
  const char *dir;
  struct lk_scriptset *set;
  if (cmd_scripts_load(prog, d->f.dir, 0, buf, sizeof(buf), &dir, &set) != 0) return EXIT_INPUT;
  if (cmd_engine_new(dir, set, &d->e) != 0) return EXIT_CLUSTER;
  struct k8s_config_options co = {.kubeconfig = d->f.kubeconfig, .context = d->f.context};
  if (k8s_config_load(&co, &d->x.cfg, err, sizeof(err)) != 0) {
    fprintf(stderr, "%s: %s\n", prog, err);
    lk_engine_free(d->e);
    d->e = NULL;
    return EXIT_INPUT;
  }
  /* CRs without metadata.namespace: -n, else the kubeconfig context's, else "default" */
  const struct k8s_config *cfg = d->x.cfg;
  d->def_ns = d->f.ns_flag                        ? d->f.ns_flag
              : cfg->namespace && *cfg->namespace ? cfg->namespace
                                                  : "default";
  return 0;
}

/* cr_input_fn: defaults the CR's namespace (def_ns), checks it against -n,
 * and keeps it as an input. */
static int add_input(void *ud, const struct cr_file *f, size_t doc, const json_t *dd,
                     const struct lk_controller_decl *ctl)
{
  struct diffrun *d = ud;
  json_t *cr = json_deep_copy(dd);
  json_t *md = json_object_get(cr, "metadata");
  const char *ns = json_string_value(json_object_get(md, "namespace"));
  if (!ns)
    json_object_set_new(md, "namespace", json_string(d->def_ns));
  else if (d->f.ns_flag && strcmp(ns, d->f.ns_flag)) {
    fprintf(stderr, "%s: %s: document %zu: metadata.namespace %s does not match -n %s\n", prog,
            f->name, doc, ns, d->f.ns_flag);
    json_decref(cr);
    return EXIT_INPUT;
  }
  struct input *ni = realloc(d->inputs, (d->ninputs + 1) * sizeof(*ni));
  if (!ni) {
    json_decref(cr);
    return EXIT_CLUSTER;
  }
  d->inputs = ni;
  d->inputs[d->ninputs++] = (struct input){f->name, doc, cr, NULL, NULL, ctl, NULL};
  return 0;
}

/* The loop, HTTP client and discovery of the kubeconfig's cluster, and one
 * discovery pass. Returns 0, or EXIT_CLUSTER after a message. */
static int connect_cluster(struct diffctx *x)
{
  x->loop = k8s_loop_new();
  x->http = x->loop ? k8s_http_new(x->loop, x->cfg, NULL) : NULL;
  x->client = x->http ? k8s_client_new(x->http, NULL) : NULL;
  x->disc = x->client ? k8s_discovery_new(x->client, 0) : NULL;
  if (!x->disc) {
    fprintf(stderr, "%s: cannot set up the client\n", prog);
    return EXIT_CLUSTER;
  }
  k8s_loop_set_signal_handler(x->loop, on_signal, NULL);
  int state = 0;
  if (k8s_discovery_refresh(x->disc, disc_done, &state) != 0) state = -1;
  while (state == 0 && !interrupted)
    if (k8s_loop_run_once(x->loop, 0.5) < 0) break;
  if (state <= 0) {
    fprintf(stderr, "%s: discovery failed (%s)\n", prog, x->cfg->server);
    return EXIT_CLUSTER;
  }
  return 0;
}

/* Sends, for each CR, a GET of the live one (calls[2i]) and its dry-run
 * apply (calls[2i+1]). Returns 0, or EXIT_CLUSTER when its kind is not
 * served (printed). */
static int send_cr_calls(struct diffrun *d, struct call *calls)
{
  for (size_t i = 0; i < d->ninputs; i++) {
    struct input *in = &d->inputs[i];
    in->k = kstore_find(&d->x, in->c->for_.api_version, in->c->for_.kind);
    if (gvr_copy(&d->x, in->c->for_.api_version, in->c->for_.kind, in->k) != 0) {
      fprintf(stderr, "%s: %s: %s %s is not served by the cluster (CRD not installed?)\n", prog,
              in->file, in->c->for_.api_version, in->c->for_.kind);
      return EXIT_CLUSTER;
    }
    const json_t *md = json_object_get(in->cr, "metadata");
    const char *ns = cr_sget(md, "namespace"), *name = cr_sget(md, "name");
    if (k8s_client_get(d->x.client, &in->k->gvr, ns, name, call_done, &calls[2 * i]) != 0)
      call_failed(&calls[2 * i], "request not sent");
    if (apply_cr(&d->x, &in->k->gvr, ns, name, in->cr, &calls[2 * i + 1]) != 0)
      call_failed(&calls[2 * i + 1], "request not sent");
  }
  return 0;
}

/* Keeps each CR's live object and dry-run answer. Returns 0, EXIT_INPUT
 * when the server rejects a CR, EXIT_CLUSTER on another error (printed). */
static int take_cr_answers(struct diffrun *d, const struct call *calls)
{
  for (size_t i = 0; i < d->ninputs; i++) {
    struct input *in = &d->inputs[i];
    const struct call *g = &calls[2 * i], *a = &calls[2 * i + 1];
    if (g->error && g->code != 404) {
      fprintf(stderr, "%s: %s: get: %s\n", prog, in->file, g->error);
      return EXIT_CLUSTER;
    } else if (a->error) {
      /* invalid: 400, 422, or the 500 a strict apply answers for a field the
       * schema does not declare ("failed to create typed patch object") */
      int invalid = a->code == 400 || a->code == 422 ||
                    (a->code == 500 && strstr(a->error, "field not declared in schema"));
      fprintf(stderr, "%s: %s: document %zu: %s\n", prog, in->file, in->doc, a->error);
      return invalid ? EXIT_INPUT : EXIT_CLUSTER;
    }
    in->live = g->error ? NULL : json_incref(g->obj);
    in->applied = json_incref(a->obj);
  }
  return 0;
}

/* The CRs: live, and as they would be (dry run). Also declares the kinds
 * of their controllers for the cache. Returns 0 or the exit code. */
static int read_crs(struct diffrun *d)
{
  for (size_t i = 0; i < d->ninputs; i++)
    if (kstore_declare(&d->x, d->inputs[i].c) != 0) return EXIT_CLUSTER;
  struct call *calls = calloc(2 * d->ninputs + 1, sizeof(*calls));
  if (!calls) return EXIT_CLUSTER;
  int rc = send_cr_calls(d, calls);
  if (rc == 0 && wait_calls(&d->x, calls, 2 * d->ninputs) != 0) rc = EXIT_CLUSTER;
  if (rc == 0) rc = take_cr_answers(d, calls);
  for (size_t i = 0; i < 2 * d->ninputs; i++)
    call_clear(&calls[i]);
  free(calls);
  return rc;
}

/* The cache, with the CRs as they would be. Returns 0 or EXIT_CLUSTER. */
static int load_cache(struct diffrun *d)
{
  char err[1024];
  if (fill_cache(&d->x) != 0) return EXIT_CLUSTER;
  for (size_t i = 0; i < d->ninputs; i++) {
    struct input *in = &d->inputs[i];
    if (in->k->store &&
        k8s_store_upsert(in->k->store, in->applied, NULL, NULL, err, sizeof(err)) < 0) {
      fprintf(stderr, "%s: %s: %s\n", prog, in->file, err);
      return EXIT_CLUSTER;
    }
  }
  return 0;
}

/* Diffs every CR (diff_one), and with KUBECTL_EXTERNAL_DIFF runs that
 * program on the objects. Returns rc (EXIT_CLUSTER on a failure); sets
 * *differences when something would change. */
static int diff_all(struct diffrun *d, int rc, int *differences)
{
  struct diffctx *x = &d->x;
  x->paths = !strcmp(d->f.output, "paths");
  const char *external = getenv("KUBECTL_EXTERNAL_DIFF");
  if (rc == 0 && external && *external && !(x->ext = ud_external_new())) {
    fprintf(stderr, "%s: KUBECTL_EXTERNAL_DIFF: cannot make the directories\n", prog);
    rc = EXIT_CLUSTER;
  }
  for (size_t i = 0; rc == 0 && i < d->ninputs; i++) {
    int n = diff_one(x, d->e, &d->inputs[i]);
    if (n < 0) rc = EXIT_CLUSTER;
    if (n > 0) *differences = 1;
  }
  if (x->ext) { /* the program shows the objects; its exit status says whether they differ */
    int st = ud_external_run(x->ext, external);
    x->ext = NULL;
    if (rc == 0 && (st < 0 || st > 1)) {
      fprintf(stderr, "%s: KUBECTL_EXTERNAL_DIFF %s: exit %d\n", prog, external, st);
      rc = EXIT_CLUSTER;
    } else if (st == 1)
      *differences = 1;
  }
  return rc;
}

static void diffrun_free(struct diffrun *d)
{
  for (size_t i = 0; i < d->ninputs; i++) {
    json_decref(d->inputs[i].cr);
    json_decref(d->inputs[i].live);
    json_decref(d->inputs[i].applied);
  }
  free(d->inputs);
  cr_free_files(d->paths, d->npaths);
  for (size_t i = 0; i < d->x.nks; i++)
    k8s_store_free(d->x.ks[i].store);
  free(d->x.ks);
  k8s_discovery_free(d->x.disc);
  k8s_client_free(d->x.client);
  k8s_http_free(d->x.http);
  k8s_loop_free(d->x.loop);
  k8s_config_free(d->x.cfg);
  lk_engine_free(d->e);
}

/* }==================================================================== */

int cmd_diff(int argc, char **argv)
{
  struct diffrun d = {.x = {.field_manager = "kubectl"}};
  int rc = parse_flags(argc, argv, &d);
  if (rc >= 0) return rc;
  k8s_log_init(K8S_LOG_TEXT, d.f.verbosity, stderr);
  if ((rc = setup(&d)) != 0) return rc;
  /* -f: files, "-" (stdin) and directories (recursively) */
  rc = cr_read_inputs(prog, d.e, (char *const *)d.f.files, d.f.nfiles, &d.paths, &d.npaths,
                      add_input, &d);
  if (rc < 0) rc = EXIT_INPUT;
  if (rc == 0) rc = connect_cluster(&d.x);
  if (rc == 0) rc = read_crs(&d);
  if (rc == 0) rc = load_cache(&d);
  int differences = 0;
  rc = diff_all(&d, rc, &differences);
  if (interrupted) {
    fprintf(stderr, "%s: interrupted\n", prog);
    rc = 128 + interrupted;
  }
  diffrun_free(&d);
  if (rc) return rc;
  return differences ? EXIT_DIFF : 0;
}
