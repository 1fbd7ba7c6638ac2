/* boundary.c: the security boundary every child of a reconcile must stay
 * inside (doc/security.md), checked by the runtime after decoration and
 * before anything is written, whatever the scripts (bundled or a ConfigMap
 * overlay) emitted. A child that crosses it is REFUSED with a reason and a
 * message naming the object, the field and the rule:
 *
 *   KindRefused          cluster-scoped kinds (ClusterRole, Namespace, CRDs,
 *                        webhooks, ...) and Secrets are never written;
 *   NamespaceNotGranted  a namespace other than the CR's own needs the label
 *                        allow-from.sim.llm-d.io/<CR namespace>: "true" on
 *                        the target Namespace (set by an administrator);
 *   IdentityRefused      a pod template may name only a ServiceAccount the
 *                        same reconcile emits (or none); a RoleBinding may
 *                        bind only a Role the same reconcile emits, in its
 *                        namespace, to ServiceAccounts it emits;
 *   PodSpecRefused       no Secret references, host namespaces, hostPath
 *                        volumes, privileged containers or added
 *                        capabilities in a pod template;
 *   RoleRuleRefused      a Role may grant only the verbs on the resources an
 *                        EPP needs (the table below), never a wildcard.
 *
 * Why in C: the scripts are user-editable (the scripts ConfigMap) and run on
 * behalf of CR authors, while the operator holds wide rights; a script can
 * emit any object, so what it may not do is decided here. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua/engine_int.h"

/* {====================================================================
 * What a Role may grant
 * ===================================================================== */

/* The rights an EPP needs (llm-d-inference-scheduler v0.4.0
 * deploy/components/inference-gateway/rbac.yaml; GAIE's inferencepool chart;
 * leases for --ha-enable-leader-election), and nothing else. */
static const struct {
  const char *group, *resource, *verbs;
} role_allow[] = {
    {"", "pods", " get list watch "},
    {"", "services", " get list watch "},
    {"", "endpoints", " get list watch "},
    {"discovery.k8s.io", "endpointslices", " get list watch "},
    {"inference.networking.k8s.io", "inferencepools", " get list watch update patch "},
    {"inference.networking.k8s.io", "inferenceobjectives", " get list watch update patch "},
    {"inference.networking.x-k8s.io", "inferencepools", " get list watch update patch "},
    {"inference.networking.x-k8s.io", "inferenceobjectives", " get list watch update patch "},
    {"inference.networking.x-k8s.io", "inferencemodelrewrites", " get list watch update patch "},
    {"inference.networking.x-k8s.io", "inferencemodels", " get list watch update patch "},
    {"coordination.k8s.io", "leases", " get list watch create update patch delete "},
};

static int role_allows(const char *group, const char *resource, const char *verb)
{
  char v[64];
  snprintf(v, sizeof(v), " %s ", verb);
  for (size_t i = 0; i < sizeof(role_allow) / sizeof(role_allow[0]); i++)
    if (!strcmp(role_allow[i].group, group) && !strcmp(role_allow[i].resource, resource) &&
        strstr(role_allow[i].verbs, v))
      return 1;
  return 0;
}

/* }==================================================================== */

/* {====================================================================
 * Helpers
 * ===================================================================== */

struct verdict {
  const char *reason;
  char why[768];
};

static int refuse(struct verdict *v, const char *reason, const struct lk_child *ch, const char *fmt,
                  ...) __attribute__((format(printf, 4, 5)));

static int refuse(struct verdict *v, const char *reason, const struct lk_child *ch, const char *fmt,
                  ...)
{
  char rule[600];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(rule, sizeof(rule), fmt, ap);
  va_end(ap);
  v->reason = reason;
  snprintf(v->why, sizeof(v->why), "%s %s%s%s: %s", ch->kind, ch->ns, *ch->ns ? "/" : "", ch->name,
           rule);
  return 1;
}

/* The child of the result of kind in namespace ns named name, or NULL. */
static const struct lk_child *emitted(const struct post *p, const char *kind, const char *ns,
                                      const char *name)
{
  for (size_t i = 0; i < p->r->nchildren; i++) {
    const struct lk_child *c = &p->r->children[i];
    if (!strcmp(c->kind, kind) && !strcmp(c->ns, ns) && !strcmp(c->name, name)) return c;
  }
  return NULL;
}

static int is_group(const struct lk_child *ch, const char *group_version_prefix)
{
  return !strncmp(ch->api_version, group_version_prefix, strlen(group_version_prefix));
}

/* }==================================================================== */

/* {====================================================================
 * The rules
 * ===================================================================== */

static int check_namespace(const struct post *p, const struct lk_child *ch, struct verdict *v)
{
  if (!*ch->ns) {
    if (*p->cr_ns)
      return refuse(v, "KindRefused", ch,
                    "%s is cluster-scoped; the operator never writes cluster-scoped objects on a "
                    "CR's behalf",
                    ch->kind);
    return 0;
  }
  if (!strcmp(ch->kind, "Secret") && !strcmp(ch->api_version, "v1"))
    return refuse(v, "KindRefused", ch, "the operator never writes Secrets");
  if (!strcmp(ch->ns, p->cr_ns) || p->in->grants == LK_GRANTS_ALL) return 0;
  const struct lk_cache_source *cache = p->in->cache;
  struct k8s_store *st = cache ? cache->ops->store(cache->ud, "v1", "Namespace") : NULL;
  const struct k8s_object *nso = st ? k8s_store_get(st, ch->ns) : NULL;
  char label[128];
  snprintf(label, sizeof(label), "%s%s", LK_GRANT_LABEL_PREFIX, p->cr_ns);
  const char *val = nso ? k8s_object_label(nso, label) : NULL;
  if (val && !strcmp(val, "true")) return 0;
  if (st && !nso)
    return refuse(v, "TargetNamespaceNotFound", ch,
                  "namespace %s does not exist (create it, and grant it to namespace %s with "
                  "`kubectl label namespace %s %s=true`)",
                  ch->ns, p->cr_ns, ch->ns, label);
  return refuse(v, "NamespaceNotGranted", ch,
                "namespace %s does not grant namespace %s (an administrator grants it with "
                "`kubectl label namespace %s %s=true`)",
                ch->ns, p->cr_ns, ch->ns, label);
}

/* The pod spec of a workload child, or NULL. */
static const json_t *pod_spec(const struct lk_child *ch)
{
  const json_t *spec = json_object_get(ch->obj, "spec");
  if (!strcmp(ch->kind, "Pod")) return spec;
  if (!strcmp(ch->kind, "CronJob"))
    spec = json_object_get(json_object_get(spec, "jobTemplate"), "spec");
  if (!strcmp(ch->kind, "Deployment") || !strcmp(ch->kind, "ReplicaSet") ||
      !strcmp(ch->kind, "StatefulSet") || !strcmp(ch->kind, "DaemonSet") ||
      !strcmp(ch->kind, "Job") || !strcmp(ch->kind, "CronJob") ||
      !strcmp(ch->kind, "ReplicationController"))
    return json_object_get(json_object_get(spec, "template"), "spec");
  return NULL;
}

static int check_container(const struct lk_child *ch, const char *list, size_t i, const json_t *c,
                           struct verdict *v)
{
  const char *cname = jstr(c, "name") ? jstr(c, "name") : "?";
  size_t k;
  const json_t *e;
  json_array_foreach(
      json_object_get(c, "envFrom"), k,
      e) if (json_object_get(e, "secretRef")) return refuse(v, "PodSpecRefused", ch,
                                                            "%s[%zu] (%s).envFrom[%zu].secretRef: "
                                                            "pods may not read Secrets",
                                                            list, i, cname, k);
  json_array_foreach(
      json_object_get(c, "env"), k,
      e) if (json_object_get(json_object_get(e, "valueFrom"),
                             "secretKeyRef")) return refuse(v, "PodSpecRefused", ch,
                                                            "%s[%zu] "
                                                            "(%s).env[%zu].valueFrom.secretKeyRef: "
                                                            "pods may not "
                                                            "read Secrets",
                                                            list, i, cname, k);
  const json_t *sc = json_object_get(c, "securityContext");
  if (json_is_true(json_object_get(sc, "privileged")))
    return refuse(v, "PodSpecRefused", ch, "%s[%zu] (%s).securityContext.privileged: not allowed",
                  list, i, cname);
  if (json_array_size(json_object_get(json_object_get(sc, "capabilities"), "add")))
    return refuse(v, "PodSpecRefused", ch,
                  "%s[%zu] (%s).securityContext.capabilities.add: not allowed", list, i, cname);
  return 0;
}

static int check_pod(const struct post *p, const struct lk_child *ch, struct verdict *v)
{
  const json_t *ps = pod_spec(ch);
  if (!json_is_object(ps)) return 0;
  static const char *const sa_fields[] = {"serviceAccountName", "serviceAccount"};
  for (size_t i = 0; i < 2; i++) {
    const char *sa = jstr(ps, sa_fields[i]);
    if (!nonempty(sa)) continue;
    const struct lk_child *own = emitted(p, "ServiceAccount", ch->ns, sa);
    if (!own || strcmp(own->api_version, "v1"))
      return refuse(v, "IdentityRefused", ch,
                    "pod template %s %s: a pod may run only as a ServiceAccount this CR owns (the "
                    "same reconcile emits ServiceAccount %s/%s), or the namespace default",
                    sa_fields[i], sa, ch->ns, sa);
  }
  static const char *const host[] = {"hostNetwork", "hostPID", "hostIPC"};
  for (size_t i = 0; i < 3; i++)
    if (json_is_true(json_object_get(ps, host[i])))
      return refuse(v, "PodSpecRefused", ch, "pod template %s: true is not allowed", host[i]);
  size_t i;
  const json_t *vol;
  json_array_foreach(json_object_get(ps, "volumes"), i, vol)
  {
    const char *vn = jstr(vol, "name") ? jstr(vol, "name") : "?";
    if (json_object_get(vol, "secret"))
      return refuse(v, "PodSpecRefused", ch, "volumes[%zu] (%s).secret: pods may not mount Secrets",
                    i, vn);
    if (json_object_get(vol, "hostPath"))
      return refuse(v, "PodSpecRefused", ch, "volumes[%zu] (%s).hostPath: not allowed", i, vn);
    size_t k;
    const json_t *src;
    json_array_foreach(json_object_get(json_object_get(vol, "projected"), "sources"), k,
                       src) if (json_object_get(src, "secret")) return refuse(v, "PodSpecRefused",
                                                                              ch,
                                                                              "volumes[%zu] (%s)"
                                                                              ".projected.sources["
                                                                              "%zu].secret: pods "
                                                                              "may not mount "
                                                                              "Secrets",
                                                                              i, vn, k);
  }
  static const char *const lists[] = {"containers", "initContainers", "ephemeralContainers"};
  for (size_t l = 0; l < 3; l++) {
    const json_t *c;
    json_array_foreach(json_object_get(ps, lists[l]), i,
                       c) if (check_container(ch, lists[l], i, c, v)) return 1;
  }
  return 0;
}

static int check_rolebinding(const struct post *p, const struct lk_child *ch, struct verdict *v)
{
  if (strcmp(ch->kind, "RoleBinding") || !is_group(ch, "rbac.authorization.k8s.io/")) return 0;
  const json_t *ref = json_object_get(ch->obj, "roleRef");
  const char *kind = jstr(ref, "kind"), *name = jstr(ref, "name");
  if (!kind || strcmp(kind, "Role"))
    return refuse(v, "IdentityRefused", ch,
                  "roleRef.kind %s: a RoleBinding may bind only a Role this CR owns (ClusterRoles "
                  "are never bound)",
                  kind ? kind : "(none)");
  if (!nonempty(name) || !emitted(p, "Role", ch->ns, name))
    return refuse(v, "IdentityRefused", ch,
                  "roleRef.name %s: a RoleBinding may bind only a Role the same reconcile emits in "
                  "namespace %s",
                  name ? name : "(none)", ch->ns);
  size_t i;
  const json_t *s;
  json_array_foreach(json_object_get(ch->obj, "subjects"), i, s)
  {
    const char *sk = jstr(s, "kind"), *sn = jstr(s, "name"), *sns = jstr(s, "namespace");
    if (!nonempty(sns)) sns = ch->ns;
    if (!sk || strcmp(sk, "ServiceAccount") || !nonempty(sn) ||
        !emitted(p, "ServiceAccount", sns, sn))
      return refuse(v, "IdentityRefused", ch,
                    "subjects[%zu] %s %s%s%s: a RoleBinding may bind only ServiceAccounts the same "
                    "reconcile emits",
                    i, sk ? sk : "(no kind)", sns, "/", sn ? sn : "(no name)");
  }
  return 0;
}

static int check_role(const struct lk_child *ch, struct verdict *v)
{
  if (strcmp(ch->kind, "Role") || !is_group(ch, "rbac.authorization.k8s.io/")) return 0;
  size_t i, a, r, k;
  const json_t *rule, *g, *res, *verb;
  json_array_foreach(json_object_get(ch->obj, "rules"), i, rule)
  {
    if (json_array_size(json_object_get(rule, "nonResourceURLs")))
      return refuse(v, "RoleRuleRefused", ch, "rules[%zu].nonResourceURLs: not allowed", i);
    const json_t *groups = json_object_get(rule, "apiGroups"),
                 *resources = json_object_get(rule, "resources"),
                 *verbs = json_object_get(rule, "verbs");
    if (!json_array_size(groups) || !json_array_size(resources) || !json_array_size(verbs))
      return refuse(v, "RoleRuleRefused", ch,
                    "rules[%zu]: apiGroups, resources and verbs are "
                    "required",
                    i);
    json_array_foreach(groups, a, g) json_array_foreach(resources, r, res)
        json_array_foreach(verbs, k, verb)
    {
      const char *gs = json_string_value(g), *rs = json_string_value(res),
                 *vs = json_string_value(verb);
      if (!gs || !rs || !vs || !role_allows(gs, rs, vs))
        return refuse(v, "RoleRuleRefused", ch,
                      "rules[%zu]: %s on %s%s%s is not among the rights an EPP needs "
                      "(doc/security.md)",
                      i, vs ? vs : "?", gs && *gs ? gs : "", gs && *gs ? "/" : "", rs ? rs : "?");
    }
  }
  return 0;
}

/* }==================================================================== */

void lk_boundary_check(struct post *p, struct lk_child *ch)
{
  struct verdict v = {0};
  if (check_namespace(p, ch, &v) || check_pod(p, ch, &v) || check_rolebinding(p, ch, &v) ||
      check_role(ch, &v)) {
    ch->action = LK_CHILD_REFUSED;
    ch->reason = v.reason;
    free(ch->why);
    ch->why = strdup(v.why);
    p->r->nrefused++;
  }
}
