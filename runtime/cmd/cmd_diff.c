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
  return o ? k8s_json_parse(o->json, o->json_len, NULL, 0) : NULL;
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

/* Diffs one reconciled CR. Returns the number of changed objects, or -1 on
 * a cluster error (printed). */
static int diff_one(struct diffctx *x, struct lk_engine *e, struct input *in)
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
  struct lk_result r;
  int st = lk_engine_reconcile(e, &ri, &r);
  if (st != 0)
    fprintf(stderr, "%s: %s: %s %s: the reconcile would fail: %s\n", prog, in->file,
            cr_sget(in->applied, "kind"), key, r.err.message ? r.err.message : "?");

  struct output out = {0};
  int changed = 0, failed = 0;
  char sk[1400];

  /* the CR: spec (dry-run apply), finalizer, status */
  json_t *after = json_deep_copy(in->applied);
  json_t *amd = json_object_get(after, "metadata");
  int has_fin = 0;
  size_t i;
  json_t *v;
  json_array_foreach(json_object_get(amd, "finalizers"), i, v)
  {
    has_fin |= json_is_string(v) && !strcmp(json_string_value(v), LK_FINALIZER);
  }
  if (r.finalizing) {
    if (st == 0 && r.finalized && r.nobserved == 0 && has_fin) {
      json_t *keep = json_array();
      json_array_foreach(json_object_get(amd, "finalizers"), i, v)
      {
        if (!json_is_string(v) || strcmp(json_string_value(v), LK_FINALIZER))
          json_array_append(keep, v);
      }
      json_object_set_new(amd, "finalizers", keep);
    }
  } else {
    if (st == 0 && !has_fin && lk_result_needs_finalizer(&r, cr_sget(amd, "namespace"))) {
      json_t *f = json_object_get(amd, "finalizers");
      if (!json_is_array(f)) json_object_set_new(amd, "finalizers", f = json_array());
      json_array_append_new(f, json_string(LK_FINALIZER));
    }
    if (r.status_changed && r.status) json_object_set(after, "status", r.status);
  }
  {
    struct k8s_buf head = {0}, lines = {0};
    header(&head, cr_sget(in->applied, "apiVersion"), cr_sget(in->applied, "kind"), ns, name,
           in->live ? "live" : "absent", in->live ? "after apply" : "created");
    size_t n = object_diff(x, in->live, after, 0, cr_sget(in->applied, "apiVersion"),
                           cr_sget(in->applied, "kind"), ns, name, &lines);
    add_section(&out, "0", &head, &lines, n);
    changed += n > 0;
    k8s_buf_free(&head);
    k8s_buf_free(&lines);
  }
  json_decref(after);

  /* children the operator would apply: dry-run apply, in parallel */
  struct pending_apply *pa = calloc(r.nchildren + 1, sizeof(*pa));
  struct call *calls = calloc(r.nchildren + 1, sizeof(*calls));
  size_t npa = 0;
  for (size_t c = 0; !r.finalizing && pa && calls && c < r.nchildren; c++) {
    const struct lk_child *ch = &r.children[c];
    child_sortkey(sk, sizeof(sk), 1, ch->kind, ch->ns, ch->name, ch->api_version);
    if (ch->action == LK_CHILD_CONFLICT) {
      struct k8s_buf head = {0}, lines = {0};
      header(&head, ch->api_version, ch->kind, ch->ns, ch->name, "live", "conflict");
      k8s_buf_printf(&lines, "! exists %s: not applied (Ready=False, reason Conflict)\n",
                     ch->owner && *ch->owner ? "with another owner label"
                                             : "without our owner label");
      if (ch->owner && *ch->owner) k8s_buf_printf(&lines, "! current owner: %s\n", ch->owner);
      add_section(&out, sk, &head, &lines, 1);
      changed++;
      k8s_buf_free(&head);
      k8s_buf_free(&lines);
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
  if (npa && wait_calls(x, calls, npa) != 0) failed = 1;
  for (size_t j = 0; !failed && j < npa; j++) {
    const struct lk_child *ch = pa[j].ch;
    child_sortkey(sk, sizeof(sk), 1, ch->kind, ch->ns, ch->name, ch->api_version);
    json_t *live = cached(x, ch->api_version, ch->kind, ch->ns, ch->name);
    struct k8s_buf head = {0}, lines = {0};
    if (calls[j].error) {
      header(&head, ch->api_version, ch->kind, ch->ns, ch->name, live ? "live" : "absent",
             "apply fails");
      k8s_buf_printf(&lines, "! %s\n", calls[j].error);
      add_section(&out, sk, &head, &lines, 1);
      fprintf(stderr, "%s: dry-run apply of %s %s%s%s: %s\n", prog, ch->kind, ch->ns,
              *ch->ns ? "/" : "", ch->name, calls[j].error);
      failed = 1;
    } else {
      header(&head, ch->api_version, ch->kind, ch->ns, ch->name, live ? "live" : "absent",
             live ? "after apply" : "created");
      size_t n = object_diff(x, live, calls[j].obj, DT_IGNORE_STATUS, ch->api_version, ch->kind,
                             ch->ns, ch->name, &lines);
      add_section(&out, sk, &head, &lines, n);
      changed += n > 0;
    }
    k8s_buf_free(&head);
    k8s_buf_free(&lines);
    json_decref(live);
  }
  for (size_t j = 0; j < npa; j++)
    call_clear(&calls[j]);
  free(calls);
  free(pa);

  /* children the operator would delete */
  for (size_t p = 0; p < r.nprune; p++) {
    const struct lk_ref *ref = &r.prune[p];
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
    add_section(&out, sk, &head, &lines, n);
    changed++;
    k8s_buf_free(&head);
    k8s_buf_free(&lines);
    json_decref(live);
  }
  flush_sections(&out);
  lk_result_free(&r);
  return failed ? -1 : changed;
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

int cmd_diff(int argc, char **argv)
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
  const char *files[MAX_ARGS];
  size_t nfiles = 0;
  const char *dir = NULL, *kubeconfig = NULL, *context = NULL, *ns_flag = NULL;
  struct diffctx x = {.field_manager = "kubectl"};
  int verbosity = 0, c;
  optind = 1;
  const char *output = "unified";
  while ((c = getopt_long(argc, argv, "f:n:o:v:h", opts, NULL)) != -1) {
    switch (c) {
    case 'f':
      if (nfiles < MAX_ARGS) files[nfiles++] = optarg;
      break;
    case 's':
      dir = optarg;
      break;
    case 'k':
      kubeconfig = optarg;
      break;
    case 'c':
      context = optarg;
      break;
    case 'n':
      ns_flag = optarg;
      break;
    case 'm':
      x.field_manager = optarg;
      break;
    case 'o':
      output = optarg;
      break;
    case 'v':
      verbosity = atoi(optarg);
      break;
    case 'h':
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return EXIT_INPUT;
    }
  }
  if (optind < argc || !nfiles || (strcmp(output, "unified") && strcmp(output, "paths"))) {
    if (optind < argc)
      fprintf(stderr, "%s: unexpected argument %s\n", prog, argv[optind]);
    else if (!nfiles)
      fprintf(stderr, "%s: give at least one -f CR.yaml\n", prog);
    else
      fprintf(stderr, "%s: -o must be unified or paths\n", prog);
    usage(stderr);
    return EXIT_INPUT;
  }
  k8s_log_init(K8S_LOG_TEXT, verbosity, stderr);

  /* scripts */
  char buf[PATH_MAX], err[1024];
  if (!dir && !(dir = lk_scriptset_default_dir(buf, sizeof(buf)))) {
    fprintf(stderr, "%s: no scripts beside the binary; use --scripts DIR\n", prog);
    return EXIT_INPUT;
  }
  struct lk_scriptset *set;
  if (lk_scriptset_load(dir, NULL, 0, NULL, &set, err, sizeof(err)) != 0) {
    fprintf(stderr, "%s: %s\n", prog, err);
    return EXIT_INPUT;
  }
  struct lk_engine *e;
  struct lk_messages msgs = {0};
  if (lk_engine_new(set, NULL, &e, &msgs) < 0) return EXIT_CLUSTER;
  for (size_t i = 0; i < msgs.n; i++)
    fprintf(stderr, "%s/%s\n", dir, msgs.v[i]);
  lk_messages_free(&msgs);

  /* the cluster */
  struct k8s_config_options co = {.kubeconfig = kubeconfig, .context = context};
  if (k8s_config_load(&co, &x.cfg, err, sizeof(err)) != 0) {
    fprintf(stderr, "%s: %s\n", prog, err);
    lk_engine_free(e);
    return EXIT_INPUT;
  }
  /* CRs without metadata.namespace: -n, else the kubeconfig context's, else "default" */
  const char *def_ns = ns_flag                                 ? ns_flag
                       : x.cfg->namespace && *x.cfg->namespace ? x.cfg->namespace
                                                               : "default";

  int rc = 0;
  struct input *inputs = NULL;
  size_t ninputs = 0;
  json_t *docs = json_array();
  /* -f: files, "-" (stdin) and directories (recursively) */
  struct cr_file *paths = NULL;
  size_t npaths = 0;
  if (cr_expand_files(prog, (char *const *)files, nfiles, &paths, &npaths) != 0) rc = EXIT_INPUT;
  for (size_t f = 0; rc == 0 && f < npaths; f++) {
    json_array_clear(docs);
    if (cr_load_docs(prog, paths[f].path, docs) != 0) {
      rc = EXIT_INPUT;
      break;
    }
    size_t k;
    json_t *d;
    json_array_foreach(docs, k, d)
    {
      if (cr_skip_foreign(prog, e, &paths[f], k + 1, d)) continue;
      const struct lk_controller_decl *ctl = cr_check(prog, e, paths[f].name, k + 1, d);
      if (!ctl) {
        rc = EXIT_INPUT;
        break;
      }
      json_t *cr = json_deep_copy(d);
      json_t *md = json_object_get(cr, "metadata");
      const char *ns = json_string_value(json_object_get(md, "namespace"));
      if (!ns)
        json_object_set_new(md, "namespace", json_string(def_ns));
      else if (ns_flag && strcmp(ns, ns_flag)) {
        fprintf(stderr, "%s: %s: document %zu: metadata.namespace %s does not match -n %s\n", prog,
                paths[f].name, k + 1, ns, ns_flag);
        json_decref(cr);
        rc = EXIT_INPUT;
        break;
      }
      struct input *ni = realloc(inputs, (ninputs + 1) * sizeof(*ni));
      if (!ni) {
        json_decref(cr);
        rc = EXIT_CLUSTER;
        break;
      }
      inputs = ni;
      inputs[ninputs++] = (struct input){paths[f].name, k + 1, cr, NULL, NULL, ctl, NULL};
    }
  }
  json_decref(docs);

  if (rc == 0) {
    x.loop = k8s_loop_new();
    x.http = x.loop ? k8s_http_new(x.loop, x.cfg, NULL) : NULL;
    x.client = x.http ? k8s_client_new(x.http, NULL) : NULL;
    x.disc = x.client ? k8s_discovery_new(x.client, 0) : NULL;
    if (!x.disc) {
      fprintf(stderr, "%s: cannot set up the client\n", prog);
      rc = EXIT_CLUSTER;
    } else
      k8s_loop_set_signal_handler(x.loop, on_signal, NULL);
  }
  if (rc == 0) {
    int state = 0;
    if (k8s_discovery_refresh(x.disc, disc_done, &state) != 0) state = -1;
    while (state == 0 && !interrupted)
      if (k8s_loop_run_once(x.loop, 0.5) < 0) break;
    if (state <= 0) {
      fprintf(stderr, "%s: discovery failed (%s)\n", prog, x.cfg->server);
      rc = EXIT_CLUSTER;
    }
  }

  /* the CRs: live, and as they would be (dry run) */
  for (size_t i = 0; rc == 0 && i < ninputs; i++) {
    struct input *in = &inputs[i];
    if (kstore_declare(&x, in->c) != 0) rc = EXIT_CLUSTER;
  }
  struct call *calls = rc == 0 ? calloc(2 * ninputs + 1, sizeof(*calls)) : NULL;
  if (rc == 0 && !calls) rc = EXIT_CLUSTER;
  for (size_t i = 0; rc == 0 && i < ninputs; i++) {
    struct input *in = &inputs[i];
    in->k = kstore_find(&x, in->c->for_.api_version, in->c->for_.kind);
    if (gvr_copy(&x, in->c->for_.api_version, in->c->for_.kind, in->k) != 0) {
      fprintf(stderr, "%s: %s: %s %s is not served by the cluster (CRD not installed?)\n", prog,
              in->file, in->c->for_.api_version, in->c->for_.kind);
      rc = EXIT_CLUSTER;
      break;
    }
    const json_t *md = json_object_get(in->cr, "metadata");
    const char *ns = cr_sget(md, "namespace"), *name = cr_sget(md, "name");
    if (k8s_client_get(x.client, &in->k->gvr, ns, name, call_done, &calls[2 * i]) != 0)
      call_failed(&calls[2 * i], "request not sent");
    if (apply_cr(&x, &in->k->gvr, ns, name, in->cr, &calls[2 * i + 1]) != 0)
      call_failed(&calls[2 * i + 1], "request not sent");
  }
  if (rc == 0 && wait_calls(&x, calls, 2 * ninputs) != 0) rc = EXIT_CLUSTER;
  for (size_t i = 0; rc == 0 && i < ninputs; i++) {
    struct input *in = &inputs[i];
    struct call *g = &calls[2 * i], *a = &calls[2 * i + 1];
    if (g->error && g->code != 404) {
      fprintf(stderr, "%s: %s: get: %s\n", prog, in->file, g->error);
      rc = EXIT_CLUSTER;
    } else if (a->error) {
      /* invalid: 400, 422, or the 500 a strict apply answers for a field the
       * schema does not declare ("failed to create typed patch object") */
      int invalid = a->code == 400 || a->code == 422 ||
                    (a->code == 500 && strstr(a->error, "field not declared in schema"));
      fprintf(stderr, "%s: %s: document %zu: %s\n", prog, in->file, in->doc, a->error);
      rc = invalid ? EXIT_INPUT : EXIT_CLUSTER;
    } else {
      in->live = g->error ? NULL : json_incref(g->obj);
      in->applied = json_incref(a->obj);
    }
  }
  for (size_t i = 0; calls && i < 2 * ninputs; i++)
    call_clear(&calls[i]);
  free(calls);

  /* the cache, with the CRs as they would be */
  if (rc == 0 && fill_cache(&x) != 0) rc = EXIT_CLUSTER;
  for (size_t i = 0; rc == 0 && i < ninputs; i++) {
    struct input *in = &inputs[i];
    if (in->k->store &&
        k8s_store_upsert(in->k->store, in->applied, NULL, NULL, err, sizeof(err)) < 0) {
      fprintf(stderr, "%s: %s: %s\n", prog, in->file, err);
      rc = EXIT_CLUSTER;
    }
  }

  int differences = 0;
  x.paths = !strcmp(output, "paths");
  const char *external = getenv("KUBECTL_EXTERNAL_DIFF");
  if (rc == 0 && external && *external && !(x.ext = ud_external_new())) {
    fprintf(stderr, "%s: KUBECTL_EXTERNAL_DIFF: cannot make the directories\n", prog);
    rc = EXIT_CLUSTER;
  }
  for (size_t i = 0; rc == 0 && i < ninputs; i++) {
    int n = diff_one(&x, e, &inputs[i]);
    if (n < 0) rc = EXIT_CLUSTER;
    if (n > 0) differences = 1;
  }
  if (x.ext) { /* the program shows the objects; its exit status says whether they differ */
    int st = ud_external_run(x.ext, external);
    x.ext = NULL;
    if (rc == 0 && (st < 0 || st > 1)) {
      fprintf(stderr, "%s: KUBECTL_EXTERNAL_DIFF %s: exit %d\n", prog, external, st);
      rc = EXIT_CLUSTER;
    } else if (st == 1)
      differences = 1;
  }
  if (interrupted) {
    fprintf(stderr, "%s: interrupted\n", prog);
    rc = 128 + interrupted;
  }

  for (size_t i = 0; i < ninputs; i++) {
    json_decref(inputs[i].cr);
    json_decref(inputs[i].live);
    json_decref(inputs[i].applied);
  }
  free(inputs);
  cr_free_files(paths, npaths);
  for (size_t i = 0; i < x.nks; i++)
    k8s_store_free(x.ks[i].store);
  free(x.ks);
  k8s_discovery_free(x.disc);
  k8s_client_free(x.client);
  k8s_http_free(x.http);
  k8s_loop_free(x.loop);
  k8s_config_free(x.cfg);
  lk_engine_free(e);
  if (rc) return rc;
  return differences ? EXIT_DIFF : 0;
}
