/* test-fieldset.c: drift detection over server-side apply field sets
 * (runtime/core/fieldset.c). The field sets below have the shape
 * kube-apiserver writes into metadata.managedFields[].fieldsV1 for an applied
 * Deployment, ConfigMap and Service (associative lists by key, set lists by
 * value, atomic lists as leaves). */
#include <string.h>

#include "core/fieldset.h"
#include "core/json.h"
#include "testhelp.h"

static json_t *parse(const char *text)
{
  char err[256];
  json_t *v = k8s_json_parse(text, strlen(text), err, sizeof err);
  if (!v) printf("  bad test JSON: %s\n", err);
  return v;
}

static const char *DEPLOY =
    "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\","
    "\"metadata\":{\"name\":\"epp\",\"namespace\":\"ns\",\"labels\":{\"app\":\"epp\"},"
    "\"annotations\":{\"sim.llm-d.io/desired-hash\":\"abc\"},"
    "\"ownerReferences\":[{\"apiVersion\":\"sim.llm-d.io/v1alpha1\",\"kind\":\"SchedulerInstall\","
    "\"name\":\"s\",\"uid\":\"u-1\",\"controller\":true}]},"
    "\"spec\":{\"replicas\":2,\"selector\":{\"matchLabels\":{\"app\":\"epp\"}},"
    "\"template\":{\"metadata\":{\"labels\":{\"app\":\"epp\"}},"
    "\"spec\":{\"serviceAccountName\":\"epp\",\"containers\":[{\"name\":\"epp\",\"image\":\"i:1\","
    "\"args\":[\"--a\",\"1\"],\"ports\":[{\"name\":\"grpc\",\"containerPort\":9002}],"
    "\"resources\":{}}],\"volumes\":[{\"name\":\"cfg\",\"configMap\":{\"name\":\"c\"}}]}}}}";

/* What the API server records for DEPLOY applied by one manager (ports gain
 * the defaulted protocol in their key). */
static const char *DEPLOY_FIELDS =
    "{\"f:metadata\":{\"f:annotations\":{\"f:sim.llm-d.io/desired-hash\":{}},"
    "\"f:labels\":{\"f:app\":{}},\"f:ownerReferences\":{\"k:{\\\"uid\\\":\\\"u-1\\\"}\":{}}},"
    "\"f:spec\":{\"f:replicas\":{},\"f:selector\":{},"
    "\"f:template\":{\"f:metadata\":{\"f:labels\":{\"f:app\":{}}},"
    "\"f:spec\":{\"f:containers\":{\"k:{\\\"name\\\":\\\"epp\\\"}\":{\".\":{},\"f:args\":{},"
    "\"f:image\":{},\"f:name\":{},\"f:ports\":{\"k:{\\\"containerPort\\\":9002,"
    "\\\"protocol\\\":\\\"TCP\\\"}\":{\".\":{},\"f:containerPort\":{},\"f:name\":{}}},"
    "\"f:resources\":{}}},\"f:serviceAccountName\":{},"
    "\"f:volumes\":{\"k:{\\\"name\\\":\\\"cfg\\\"}\":{\".\":{},\"f:configMap\":{\"f:name\":{}},"
    "\"f:name\":{}}}}}}}";

static int covers(const char *obj, const char *fields, char *path, size_t len)
{
  json_t *o = parse(obj), *f = parse(fields);
  int rc = k8s_fieldset_covers(o, f, path, len);
  json_decref(o);
  json_decref(f);
  return rc;
}

/* DEPLOY_FIELDS with `cut` removed once (the field another writer took). */
static char *without(const char *cut)
{
  const char *at = strstr(DEPLOY_FIELDS, cut);
  if (!at) {
    printf("  test setup: %s not in the field set\n", cut);
    return strdup(DEPLOY_FIELDS);
  }
  size_t n = strlen(DEPLOY_FIELDS) - strlen(cut);
  char *out = malloc(n + 1);
  size_t pre = (size_t)(at - DEPLOY_FIELDS);
  memcpy(out, DEPLOY_FIELDS, pre);
  strcpy(out + pre, at + strlen(cut));
  return out;
}

int main(void)
{
  char path[256];
  test_cond("the field set of an apply covers the applied object",
            covers(DEPLOY, DEPLOY_FIELDS, path, sizeof path) && !path[0]);

  char *f = without("\"f:replicas\":{},");
  test_cond("kubectl scale took spec.replicas: not covered",
            !covers(DEPLOY, f, path, sizeof path) && !strcmp(path, "spec.replicas"));
  free(f);

  f = without("\"f:image\":{},");
  test_cond("kubectl set image took the image: the path names the container",
            !covers(DEPLOY, f, path, sizeof path) &&
                !strcmp(path, "spec.template.spec.containers[name=\"epp\"].image"));
  free(f);

  /* the server drops a parent with no owned field left under it */
  f = without("\"f:annotations\":{\"f:sim.llm-d.io/desired-hash\":{}},");
  test_cond("an edited annotation: not covered",
            !covers(DEPLOY, f, path, sizeof path) && !strcmp(path, "metadata.annotations"));
  free(f);

  test_cond("a field recorded without children is owned as a whole (selector)",
            covers(DEPLOY, DEPLOY_FIELDS, path, sizeof path));

  f = without(",\"f:args\":{}");
  test_cond("an atomic list (args) another writer replaced: not covered",
            !covers(DEPLOY, f, path, sizeof path) && strstr(path, "].args"));
  free(f);

  test_cond("a port matches its key with the protocol the server defaulted",
            covers(DEPLOY, DEPLOY_FIELDS, path, sizeof path));

  const char *other_port = "{\"spec\":{\"template\":{\"spec\":{\"containers\":[{\"name\":\"epp\","
                           "\"ports\":[{\"containerPort\":9003}]}]}}}}";
  test_cond("a list element with another key is not covered",
            !covers(other_port, DEPLOY_FIELDS, path, sizeof path) &&
                !strcmp(path, "spec.template.spec.containers[name=\"epp\"].ports[0]"));

  const char *cm = "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"c\"},"
                   "\"data\":{\"epp-config.yaml\":\"x\"}}";
  test_cond("ConfigMap data replaced by garbage (our key gone)",
            !covers(cm, "{\"f:data\":{\"f:garbage\":{}}}", path, sizeof path) &&
                !strcmp(path, "data.epp-config.yaml"));
  test_cond("ConfigMap data still ours",
            covers(cm, "{\"f:data\":{\".\":{},\"f:epp-config.yaml\":{}}}", path, sizeof path));

  const char *fin = "{\"metadata\":{\"finalizers\":[\"sim.llm-d.io/cleanup\"]}}";
  test_cond("a set list element by value",
            covers(fin,
                   "{\"f:metadata\":{\"f:finalizers\":{\"v:\\\"sim.llm-d.io/cleanup\\\"\":{}}}}",
                   path, sizeof path));
  test_cond("a set list element missing",
            !covers(fin, "{\"f:metadata\":{\"f:finalizers\":{\"v:\\\"other\\\"\":{}}}}", path,
                    sizeof path) &&
                !strcmp(path, "metadata.finalizers[0]"));

  test_cond("null values, status, name and namespace are not compared",
            covers("{\"apiVersion\":\"v1\",\"kind\":\"X\",\"metadata\":{\"name\":\"n\","
                   "\"namespace\":\"s\"},\"status\":{\"a\":1},\"spec\":{\"gone\":null}}",
                   "{}", path, sizeof path));
  test_cond("an empty field set covers nothing that is set",
            !covers("{\"spec\":{\"a\":1}}", "{}", path, sizeof path) && !strcmp(path, "spec"));
  test_cond("not an object: not covered, path (root)",
            !covers("[1]", "{}", path, sizeof path) && !strcmp(path, "(root)"));

  json_t *o = parse(DEPLOY);
  test_cond("text form",
            k8s_fieldset_covers_text(o, DEPLOY_FIELDS, strlen(DEPLOY_FIELDS), path, sizeof path));
  test_cond("unreadable text: not covered",
            !k8s_fieldset_covers_text(o, "{nope", 5, path, sizeof path) &&
                !strcmp(path, "(unreadable field set)"));
  json_decref(o);
  test_report();
  return 0;
}
