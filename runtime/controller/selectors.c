/* selectors.c: the selector check of a reconcile (internal.h,
 * run in PHASE_PROBE; doc/security.md, "Selectors"). A Service or InferencePool
 * a CR applies selects pods by label; a selector that also matches pods this
 * operator did not deploy sends the CR's traffic to someone else's pods (or
 * theirs to the CR's). Beside the existence probes (before the applies: the
 * pods a selector matches do not depend on its object), the pods each such
 * selector matches are listed (one LIST per selector, not cached: the
 * operator watches no pods) and a pod counts as foreign unless it carries
 * the owner label sim.llm-d.io/owner (any CR's: a SchedulerInstall routing
 * to a SimulatorDeployment's pods is the point) or the consent label
 * sim.llm-d.io/selectable: "true" set by whoever deploys it. A foreign pod
 * makes the status say Degraded=True and Ready=False with reason
 * SelectorMatchesForeignPods, naming the selector, the pod and its owner.
 *
 * Owns struct selmem (the last answer per CR key, in ctl->selectors): a key
 * is checked again when one of its selector children is applied, when the
 * last clean answer is older than SELECTOR_REFRESH, or while it found
 * foreign pods (then the reconcile is requeued after a minute to look
 * again). SELECTOR_REFRESH bounds the LISTs that reconciles of a settled
 * fleet send: at 5000 CRs, the EndpointSlice updates that trail a rollout
 * reconciled every CR in a minute, and a one-minute refresh sent ~4800 pod
 * LISTs in it (bench/run --scale). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller/internal.h"
#include "core/util.h"

#define SELECTOR_REFRESH 300.0 /* seconds */
#define LABEL_SELECTABLE "sim.llm-d.io/selectable"

struct selmem {
  char *key;     /* the CR key (owned; the map's key) */
  double at;     /* monotonic time of the last complete check */
  char *warning; /* what it found (owned), or NULL */
};

struct sellist {
  struct rec *rec;
  char what[320]; /* "Service ns/name" */
};

static void selmem_free(struct selmem *m)
{
  if (!m) return;
  free(m->key);
  free(m->warning);
  free(m);
}

/* The label map child ch selects pods by, or NULL: a Service's
 * spec.selector; an InferencePool's spec.selector.matchLabels (v1) or
 * spec.selector (v1alpha2, a plain map). */
static const json_t *selector_of(const struct lk_child *ch)
{
  const json_t *spec = json_object_get(ch->obj, "spec");
  const json_t *sel = json_object_get(spec, "selector");
  if (!strcmp(ch->kind, "Service") && !strcmp(ch->api_version, "v1")) return sel;
  if (!strcmp(ch->kind, "InferencePool")) {
    const json_t *ml = json_object_get(sel, "matchLabels");
    return ml ? ml : sel;
  }
  return NULL;
}

/* "k=v,k2=v2" of map sel into buf; 0, or -1 when empty, not a map of
 * strings, or too long. */
static int selector_string(const json_t *sel, char *buf, size_t len)
{
  if (!json_is_object(sel) || json_object_size(sel) == 0) return -1;
  size_t off = 0;
  const char *k;
  const json_t *v;
  json_object_foreach((json_t *)sel, k, v)
  {
    if (!json_is_string(v)) return -1;
    int n = snprintf(buf + off, len - off, "%s%s=%s", off ? "," : "", k, json_string_value(v));
    if (n < 0 || (size_t)n >= len - off) return -1;
    off += (size_t)n;
  }
  return 0;
}

/* Who deployed pod o: its controller owner reference ("ReplicaSet x"), or
 * "no owner". */
static void owner_of(const json_t *pod, char *buf, size_t len)
{
  const json_t *refs = json_object_get(json_object_get(pod, "metadata"), "ownerReferences");
  size_t i;
  const json_t *ref;
  json_array_foreach(refs, i, ref)
  {
    if (!json_is_true(json_object_get(ref, "controller"))) continue;
    snprintf(buf, len, "%s %s", json_string_value(json_object_get(ref, "kind")),
             json_string_value(json_object_get(ref, "name")));
    return;
  }
  snprintf(buf, len, "no owner");
}

static void list_done(const struct k8s_result *res, void *data)
{
  struct sellist *l = data;
  struct rec *r = l->rec;
  if (res->error) {
    /* no answer (e.g. no right to list pods there): nothing is claimed */
    char b[512];
    r->selectors_unknown = 1;
    ctl_log(K8S_LOG_WARN, r->c, r->key, r->id, "cannot check a selector", "what", l->what, "error",
            k8s_status_format(res->error, b, sizeof(b)));
  } else {
    size_t i, foreign = 0;
    const json_t *pod, *first = NULL;
    json_array_foreach(json_object_get(res->object, "items"), i, pod)
    {
      const json_t *labels = json_object_get(json_object_get(pod, "metadata"), "labels");
      const char *ok = json_string_value(json_object_get(labels, LABEL_SELECTABLE));
      if (json_object_get(labels, LK_LABEL_OWNER) || (ok && !strcmp(ok, "true"))) continue;
      if (!foreign++) first = pod;
    }
    if (first && !r->selector_warning) {
      const json_t *md = json_object_get(first, "metadata");
      char owner[300];
      owner_of(first, owner, sizeof(owner));
      if (asprintf(&r->selector_warning,
                   "%s selects pod %s/%s (%s)%s, which schedsim-operator did not deploy: narrow "
                   "the selector, or label those pods %s=true if they are meant to serve",
                   l->what, json_string_value(json_object_get(md, "namespace")),
                   json_string_value(json_object_get(md, "name")), owner,
                   foreign > 1 ? " and others" : "", LABEL_SELECTABLE) < 0)
        r->selector_warning = NULL;
    }
  }
  free(l);
  if (--r->pending == 0 && !r->issuing) ctl_advance(r);
}

void ctl_check_selectors(struct rec *r)
{
  struct ctl *c = r->c;
  struct lk_result *res = &r->res;
  double now = k8s_monotonic();
  struct selmem *m = k8s_strmap_get(&c->selectors, r->key);
  int changed = 0, any = 0;
  for (size_t i = 0; i < res->nchildren; i++) {
    const struct lk_child *ch = &res->children[i];
    if (ch->action != LK_CHILD_APPLY && ch->action != LK_CHILD_UNCHANGED) continue;
    if (!selector_of(ch)) continue;
    any = 1;
    if (ch->action == LK_CHILD_APPLY) changed = 1;
  }
  if (!any) {
    if (m) {
      k8s_strmap_del(&c->selectors, r->key);
      selmem_free(m);
    }
    return;
  }
  if (m && !changed && !m->warning && now - m->at < SELECTOR_REFRESH) return;
  r->selectors_checked = 1;
  struct k8s_gvr gvr = {.group = "", .version = "v1", .resource = "pods", .namespaced = true};
  for (size_t i = 0; i < res->nchildren; i++) {
    const struct lk_child *ch = &res->children[i];
    if (ch->action != LK_CHILD_APPLY && ch->action != LK_CHILD_UNCHANGED) continue;
    char sel[1024];
    if (selector_string(selector_of(ch), sel, sizeof(sel)) != 0 || !*ch->ns) continue;
    struct sellist *l = calloc(1, sizeof(*l));
    if (!l) {
      r->selectors_unknown = 1;
      continue;
    }
    l->rec = r;
    snprintf(l->what, sizeof(l->what), "%s %s/%s", ch->kind, ch->ns, ch->name);
    struct k8s_list_opts o = {.label_selector = sel, .resource_version = "0"};
    if (k8s_client_list(k8s_manager_client(c->all->m), &gvr, ch->ns, &o, list_done, l) != 0) {
      free(l);
      r->selectors_unknown = 1;
      continue;
    }
    r->pending++;
  }
}

const char *ctl_selector_warning(struct rec *r)
{
  struct ctl *c = r->c;
  struct selmem *m = k8s_strmap_get(&c->selectors, r->key);
  if (r->selectors_checked && !r->selectors_unknown) {
    /* this attempt's complete answer replaces the remembered one */
    if (!m && (m = calloc(1, sizeof(*m))) &&
        (!(m->key = strdup(r->key)) || k8s_strmap_put(&c->selectors, m->key, m) != 0)) {
      selmem_free(m);
      m = NULL;
    }
    if (m) {
      free(m->warning);
      m->warning = r->selector_warning ? strdup(r->selector_warning) : NULL;
      m->at = k8s_monotonic();
    }
  }
  return r->selector_warning ? r->selector_warning : m ? m->warning : NULL;
}

void ctl_selectors_forget(struct ctl *c, const char *key)
{
  struct selmem *m = k8s_strmap_get(&c->selectors, key);
  if (!m) return;
  k8s_strmap_del(&c->selectors, key);
  selmem_free(m);
}

void ctl_selectors_free(struct ctl *c)
{
  size_t it = 0;
  void *v;
  while (k8s_strmap_next(&c->selectors, &it, NULL, &v))
    selmem_free(v);
  k8s_strmap_clear(&c->selectors);
}
