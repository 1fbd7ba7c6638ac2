/* test-store.c: the Store and its indexes (runtime/core/store.c): keys,
 * ADDED/UPDATED/UNCHANGED/DELETED events with old and new objects,
 * managedFields removal, labels and owner references, the built-in and
 * on-demand indexes, label selection, relist (replace), and the memory held
 * per cached object (printed; only correctness is asserted), packed texts
 * and field sets against the store's preset dictionaries. */
#include <malloc.h>
#include <string.h>
#include "core/buf.h"
#include "core/fieldset.h"
#include "core/json.h"
#include "core/store.h"
#include "testhelp.h"

/* The stored text of o (unpacked when packed); valid until the next call. */
static const char *text(const struct k8s_object *o)
{
  static char *last;
  free(last);
  last = NULL;
  size_t len;
  char *scratch;
  const char *t = o ? k8s_object_json(o, &len, &scratch) : NULL;
  if (!t) return "";
  if (!scratch) return t;
  last = scratch;
  return last;
}

struct events {
  int n;
  enum k8s_store_event last;
  char old_rv[64], new_rv[64], keys[4096];
};

static void handler(void *ud, enum k8s_store_event ev, const struct k8s_object *old,
                    const struct k8s_object *new_obj)
{
  struct events *e = ud;
  static const char *const names[] = {"A", "U", "N", "D"};
  e->n++;
  e->last = ev;
  snprintf(e->old_rv, sizeof e->old_rv, "%s", old ? old->resource_version : "-");
  snprintf(e->new_rv, sizeof e->new_rv, "%s", new_obj ? new_obj->resource_version : "-");
  size_t l = strlen(e->keys);
  snprintf(e->keys + l, sizeof e->keys - l, "%s%s:%s", l ? " " : "", names[ev],
           (new_obj ? new_obj : old)->key);
}

static json_t *obj(const char *fmt_json)
{
  char err[256];
  json_t *v = k8s_json_parse(fmt_json, strlen(fmt_json), err, sizeof err);
  if (!v) printf("  bad test JSON: %s\n", err);
  return v;
}

static int upsert(struct k8s_store *s, const char *text, struct events *e)
{
  char err[256] = "";
  json_t *v = obj(text);
  int rc = k8s_store_upsert(s, v, e ? handler : NULL, e, err, sizeof err);
  json_decref(v);
  return rc;
}

static const char *keys_of(const struct k8s_object **arr, size_t n, char *buf, size_t len)
{
  buf[0] = '\0';
  for (size_t i = 0; i < n && n != (size_t)-1; i++) {
    size_t l = strlen(buf);
    snprintf(buf + l, len - l, "%s%s", i ? "," : "", arr[i]->key);
  }
  free(arr);
  return buf;
}

static void test_basic(void)
{
  struct k8s_store *s = k8s_store_new();
  struct events e = {0};
  char err[256], buf[1024];

  int rc =
      upsert(s,
             "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"a\","
             "\"namespace\":\"ns1\",\"uid\":\"u-a\",\"resourceVersion\":\"10\",\"generation\":3,"
             "\"labels\":{\"app\":\"x\",\"tier\":\"web\"},\"managedFields\":[{\"manager\":\"k\"}],"
             "\"ownerReferences\":[{\"apiVersion\":\"sim.llm-d.io/v1alpha1\",\"kind\":"
             "\"SimulatorDeployment\",\"name\":\"sd\",\"uid\":\"owner-1\",\"controller\":true}]},"
             "\"data\":{\"k\":\"v\"}}",
             &e);
  test_cond("first upsert is ADDED",
            rc == K8S_STORE_ADDED && e.n == 1 && e.last == K8S_STORE_ADDED);
  test_cond("ADDED has no old object", strcmp(e.old_rv, "-") == 0 && strcmp(e.new_rv, "10") == 0);
  const struct k8s_object *o = k8s_store_get(s, "ns1/a");
  test_cond("get by ns/name", o != NULL);
  test_cond("fields parsed", o && !strcmp(o->ns, "ns1") && !strcmp(o->name, "a") &&
                                 !strcmp(o->uid, "u-a") && !strcmp(o->resource_version, "10") &&
                                 o->generation == 3 && !o->deleting);
  test_cond("labels parsed and sorted", o && o->nlabels == 2 && !strcmp(o->labels[0].key, "app") &&
                                            !strcmp(k8s_object_label(o, "tier"), "web") &&
                                            k8s_object_label(o, "nope") == NULL);
  const struct k8s_owner_ref *ctl = o ? k8s_object_controller(o) : NULL;
  test_cond("owner reference parsed", ctl && !strcmp(ctl->uid, "owner-1") &&
                                          !strcmp(ctl->kind, "SimulatorDeployment") &&
                                          !strcmp(ctl->name, "sd") && ctl->controller);
  test_cond("managedFields removed from the stored text",
            o && !strstr(text(o), "managedFields") && strstr(text(o), "\"data\""));
  json_t *back = o ? k8s_object_parse(o, err, sizeof err) : NULL;
  test_cond("stored text is valid compact JSON",
            back && o->json_len == strlen(text(o)) && !strchr(text(o), ' '));
  json_decref(back);

  rc = upsert(s, "{\"metadata\":{\"name\":\"a\",\"namespace\":\"ns1\",\"resourceVersion\":\"10\"}}",
              &e);
  test_cond("same resourceVersion is UNCHANGED",
            rc == K8S_STORE_UNCHANGED && e.n == 2 && e.last == K8S_STORE_UNCHANGED);
  test_cond("UNCHANGED keeps the cached object", k8s_store_get(s, "ns1/a") == o);

  rc = upsert(s,
              "{\"metadata\":{\"name\":\"a\",\"namespace\":\"ns1\",\"resourceVersion\":\"11\","
              "\"deletionTimestamp\":\"2026-01-01T00:00:00Z\",\"labels\":{\"app\":\"y\"}}}",
              &e);
  test_cond("new resourceVersion is UPDATED with old and new",
            rc == K8S_STORE_UPDATED && !strcmp(e.old_rv, "10") && !strcmp(e.new_rv, "11"));
  o = k8s_store_get(s, "ns1/a");
  test_cond("deletionTimestamp sets deleting", o && o->deleting);
  test_cond("labels follow the update",
            o && !strcmp(k8s_object_label(o, "app"), "y") && o->nlabels == 1);

  rc = upsert(s, "{\"metadata\":{\"name\":\"node-1\",\"resourceVersion\":\"1\"}}", &e);
  test_cond("cluster-scoped key is the name", rc == K8S_STORE_ADDED && k8s_store_get(s, "node-1") &&
                                                  !strcmp(k8s_store_get(s, "node-1")->ns, ""));

  test_cond("object without name is refused",
            upsert(s, "{\"metadata\":{\"namespace\":\"x\"}}", &e) == -1);
  test_cond("non-object is refused", upsert(s, "[1]", &e) == -1);
  test_cond("refusals call no handler", e.n == 4);

  rc = upsert(s, "{\"metadata\":{\"name\":\"nrv\"},\"x\":1}", &e);
  test_cond("object without resourceVersion is ADDED", rc == K8S_STORE_ADDED);
  rc = upsert(s, "{\"metadata\":{\"name\":\"nrv\"},\"x\":1}", &e);
  test_cond("equal text without resourceVersion is UNCHANGED", rc == K8S_STORE_UNCHANGED);
  rc = upsert(s, "{\"metadata\":{\"name\":\"nrv\"},\"x\":2}", &e);
  test_cond("changed text without resourceVersion is UPDATED", rc == K8S_STORE_UPDATED);

  e.n = 0;
  test_cond("delete present key", k8s_store_delete(s, "ns1/a", handler, &e) == 1 && e.n == 1 &&
                                      e.last == K8S_STORE_DELETED && !strcmp(e.old_rv, "11"));
  test_cond("delete absent key", k8s_store_delete(s, "ns1/a", handler, &e) == 0 && e.n == 1);
  test_cond("len", k8s_store_len(s) == 2);

  char key[64];
  json_t *v = obj("{\"metadata\":{\"name\":\"n\",\"namespace\":\"s\"}}");
  test_cond("key_of", k8s_store_key_of(v, key, sizeof key) == 3 && !strcmp(key, "s/n"));
  test_cond("key_of small buffer", k8s_store_key_of(v, key, 3) == -1);
  json_decref(v);
  (void)buf;
  k8s_store_free(s);
}

static void test_indexes(void)
{
  struct k8s_store *s = k8s_store_new();
  char buf[1024];
  const struct k8s_object **arr;
  size_t n;
  const char *objs[] = {
      "{\"metadata\":{\"name\":\"b\",\"namespace\":\"ns2\",\"labels\":{\"app\":\"x\",\"env\":\"p\"}"
      ","
      "\"ownerReferences\":[{\"uid\":\"o1\"},{\"uid\":\"o2\"}]}}",
      "{\"metadata\":{\"name\":\"a\",\"namespace\":\"ns2\",\"labels\":{\"app\":\"x\"},"
      "\"ownerReferences\":[{\"uid\":\"o1\"}]}}",
      "{\"metadata\":{\"name\":\"z\",\"namespace\":\"ns1\",\"labels\":{\"app\":\"y\",\"env\":\"p\"}"
      "}}",
      "{\"metadata\":{\"name\":\"c\",\"labels\":{\"app\":\"x\"}}}",
      "{\"metadata\":{\"name\":\"a\",\"namespace\":\"ns10\"}}",
  };
  for (size_t i = 0; i < 5; i++)
    upsert(s, objs[i], NULL);

  n = k8s_store_list(s, NULL, &arr);
  test_cond("list all sorted by (namespace, name)",
            n == 5 && !strcmp(keys_of(arr, n, buf, sizeof buf), "c,ns1/z,ns10/a,ns2/a,ns2/b"));
  n = k8s_store_list(s, "ns2", &arr);
  test_cond("list one namespace",
            n == 2 && !strcmp(keys_of(arr, n, buf, sizeof buf), "ns2/a,ns2/b"));
  n = k8s_store_list(s, "", &arr);
  test_cond("list cluster-scoped", n == 1 && !strcmp(keys_of(arr, n, buf, sizeof buf), "c"));
  n = k8s_store_list(s, "none", &arr);
  test_cond("list empty namespace", n == 0 && arr == NULL);

  n = k8s_store_by_index(s, "namespace", "ns2", &arr);
  test_cond("namespace index", n == 2 && !strcmp(keys_of(arr, n, buf, sizeof buf), "ns2/a,ns2/b"));
  n = k8s_store_by_index(s, "owner-uid", "o1", &arr);
  test_cond("owner-uid index", n == 2 && !strcmp(keys_of(arr, n, buf, sizeof buf), "ns2/a,ns2/b"));
  n = k8s_store_by_index(s, "owner-uid", "o2", &arr);
  test_cond("owner-uid index, second owner",
            n == 1 && !strcmp(keys_of(arr, n, buf, sizeof buf), "ns2/b"));
  n = k8s_store_by_index(s, "label:env", "p", &arr);
  test_cond("label index created on demand",
            n == 2 && !strcmp(keys_of(arr, n, buf, sizeof buf), "ns1/z,ns2/b"));
  n = k8s_store_by_index(s, "nope", "x", &arr);
  test_cond("unknown index", n == (size_t)-1);

  struct k8s_label sel[] = {{"app", "x"}, {"env", "p"}};
  n = k8s_store_select(s, NULL, sel, 1, &arr);
  test_cond("select app=x", n == 3 && !strcmp(keys_of(arr, n, buf, sizeof buf), "c,ns2/a,ns2/b"));
  n = k8s_store_select(s, NULL, sel, 2, &arr);
  test_cond("select app=x,env=p (through label:env)",
            n == 1 && !strcmp(keys_of(arr, n, buf, sizeof buf), "ns2/b"));
  n = k8s_store_select(s, "ns2", sel, 1, &arr);
  test_cond("select in a namespace",
            n == 2 && !strcmp(keys_of(arr, n, buf, sizeof buf), "ns2/a,ns2/b"));
  n = k8s_store_select(s, NULL, NULL, 0, &arr);
  test_cond("empty selector matches all", n == 5);
  free(arr);

  /* Indexes follow updates and deletes. */
  upsert(s, "{\"metadata\":{\"name\":\"b\",\"namespace\":\"ns2\",\"labels\":{\"env\":\"q\"}}}",
         NULL);
  n = k8s_store_by_index(s, "label:env", "p", &arr);
  test_cond("label index after update",
            n == 1 && !strcmp(keys_of(arr, n, buf, sizeof buf), "ns1/z"));
  n = k8s_store_by_index(s, "owner-uid", "o2", &arr);
  test_cond("owner index after update", n == 0);
  k8s_store_delete(s, "ns2/a", NULL, NULL);
  n = k8s_store_by_index(s, "owner-uid", "o1", &arr);
  test_cond("owner index after delete", n == 0);
  n = k8s_store_list(s, "ns2", &arr);
  test_cond("namespace index after delete",
            n == 1 && !strcmp(keys_of(arr, n, buf, sizeof buf), "ns2/b"));
  test_cond("add_index for non-label names fails", k8s_store_add_index(s, "foo") == -1);
  test_cond("add_index label:", k8s_store_add_index(s, "label:app") == 0);
  n = k8s_store_select(s, NULL, sel, 1, &arr);
  test_cond("select through label:app", n == 1 && !strcmp(keys_of(arr, n, buf, sizeof buf), "c"));
  k8s_store_free(s);
}

static size_t name_len_index(const struct k8s_object *o, const char **values, size_t max, void *ud)
{
  static const char *const lens[] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9+"};
  size_t l = strlen(o->name);
  if (max) values[0] = lens[l > 9 ? 9 : l];
  return 1;
}

static void test_custom_and_replace(void)
{
  struct k8s_store *s = k8s_store_new();
  struct events e = {0};
  char err[256], buf[1024];
  const struct k8s_object **arr;
  upsert(s, "{\"metadata\":{\"name\":\"aa\",\"namespace\":\"n\",\"resourceVersion\":\"1\"}}", NULL);
  upsert(s, "{\"metadata\":{\"name\":\"bbb\",\"namespace\":\"n\",\"resourceVersion\":\"1\"}}",
         NULL);
  upsert(s, "{\"metadata\":{\"name\":\"cc\",\"namespace\":\"n\",\"resourceVersion\":\"1\"}}", NULL);
  test_cond("custom indexer", k8s_store_add_indexer(s, "namelen", name_len_index, NULL) == 0);
  test_cond("custom indexer name taken",
            k8s_store_add_indexer(s, "namelen", name_len_index, NULL) == -1);
  size_t n = k8s_store_by_index(s, "namelen", "2", &arr);
  test_cond("custom index lookup",
            n == 2 && !strcmp(keys_of(arr, n, buf, sizeof buf), "n/aa,n/cc"));

  json_t *items =
      obj("[{\"metadata\":{\"name\":\"aa\",\"namespace\":\"n\",\"resourceVersion\":\"1\"}},"
          "{\"metadata\":{\"name\":\"bbb\",\"namespace\":\"n\",\"resourceVersion\":\"2\"}},"
          "{\"metadata\":{\"name\":\"dd\",\"namespace\":\"n\",\"resourceVersion\":\"2\"}},"
          "{\"metadata\":{\"name\":\"dd\",\"namespace\":\"n\",\"resourceVersion\":\"3\"}},"
          "{\"metadata\":{}}]");
  int skipped = k8s_store_replace(s, items, handler, &e, err, sizeof err);
  test_cond("replace reports skipped items", skipped == 1 && strstr(err, "items[4]"));
  test_cond("replace events: unchanged, updated, added, updated, deleted",
            !strcmp(e.keys, "N:n/aa U:n/bbb A:n/dd U:n/dd D:n/cc"));
  test_cond("replace leaves the listed keys", k8s_store_len(s) == 3 && !k8s_store_get(s, "n/cc"));
  n = k8s_store_by_index(s, "namelen", "2", &arr);
  test_cond("custom index after replace",
            n == 2 && !strcmp(keys_of(arr, n, buf, sizeof buf), "n/aa,n/dd"));
  json_decref(items);
  test_cond("replace needs an array",
            k8s_store_replace(s, NULL, NULL, NULL, err, sizeof err) == -1);
  items = obj("[]");
  e.keys[0] = '\0';
  test_cond("replace with nothing deletes all",
            k8s_store_replace(s, items, handler, &e, err, sizeof err) == 0 &&
                k8s_store_len(s) == 0);
  json_decref(items);
  k8s_store_free(s);
}

static void test_kind_injection(void)
{
  struct k8s_store *s = k8s_store_new();
  k8s_store_set_kind(s, "apps/v1", "Deployment");
  upsert(s, "{\"metadata\":{\"name\":\"d\",\"namespace\":\"n\"},\"spec\":{}}", NULL);
  const struct k8s_object *o = k8s_store_get(s, "n/d");
  test_cond("list items get apiVersion and kind",
            o && !strncmp(text(o), "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",", 44));
  k8s_store_free(s);
}

/* {====================================================================
 * Memory per cached object (printed)
 * ===================================================================== */

static const char *configmap_fmt =
    "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"epp-config-%d\","
    "\"namespace\":\"team-%d\",\"uid\":\"6f1c8a52-3d1e-4d1f-9a0e-%012d\",\"resourceVersion\":\"%"
    "d\","
    "\"creationTimestamp\":\"2026-01-01T00:00:00Z\",\"labels\":{\"app.kubernetes.io/managed-by\":"
    "\"schedsim-operator\",\"app.kubernetes.io/name\":\"sched-%d\",\"app.kubernetes.io/component\":"
    "\"epp\",\"sim.llm-d.io/owner\":\"schedulerinstall.team-%d.sched-%d\"},\"annotations\":{"
    "\"sim.llm-d.io/"
    "desired-hash\":\"3b1f0c6e2f7d4a55b1e1c0d9a8f7e6d5c4b3a2918f7e6d5c4b3a29187f6e5d4c\"},"
    "\"ownerReferences\":[{\"apiVersion\":\"sim.llm-d.io/v1alpha1\",\"kind\":\"SchedulerInstall\","
    "\"name\":\"sched-%d\",\"uid\":\"0a9b8c7d-6e5f-4a3b-2c1d-%012d\",\"controller\":true,"
    "\"blockOwnerDeletion\":true}],\"managedFields\":[{\"manager\":\"schedsim-operator\","
    "\"operation\":\"Apply\",\"apiVersion\":\"v1\",\"time\":\"2026-01-01T00:00:00Z\","
    "\"fieldsType\":"
    "\"FieldsV1\",\"fieldsV1\":{\"f:data\":{\"f:config.yaml\":{}},\"f:metadata\":{\"f:labels\":{"
    "\"f:app.kubernetes.io/managed-by\":{},\"f:app.kubernetes.io/name\":{}}}}}]},\"data\":{"
    "\"config.yaml\":\"apiVersion: inference.networking.x-k8s.io/v1alpha1\\nkind: "
    "EndpointPickerConfig\\nplugins:\\n- type: queue-scorer\\n- type: "
    "kv-cache-utilization-scorer\\n"
    "- type: prefix-cache-scorer\\n- type: max-score-picker\\nschedulingProfiles:\\n- name: "
    "default\\n"
    "  plugins:\\n  - pluginRef: queue-scorer\\n    weight: 1\\n  - pluginRef: "
    "kv-cache-utilization-scorer\\n    weight: 1\\n  - pluginRef: prefix-cache-scorer\\n    "
    "weight: "
    "2\\n  - pluginRef: max-score-picker\\n\"}}";

static const char *deployment_fmt =
    "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"sim-decode-%d\","
    "\"namespace\":\"team-%d\",\"uid\":\"7e2d9b63-4e2f-4e20-8b1f-%012d\",\"resourceVersion\":\"%"
    "d\","
    "\"generation\":2,\"creationTimestamp\":\"2026-01-01T00:00:00Z\",\"labels\":{"
    "\"app.kubernetes.io/managed-by\":\"schedsim-operator\",\"app.kubernetes.io/name\":\"sim-%d\","
    "\"app.kubernetes.io/component\":\"simulator-decode\",\"llm-d.ai/role\":\"decode\","
    "\"sim.llm-d.io/owner\":\"simulatordeployment.team-%d.sim-%d\"},\"annotations\":{"
    "\"deployment.kubernetes.io/revision\":\"1\",\"sim.llm-d.io/desired-hash\":"
    "\"9c4e1f0b7a6d5c4b3a2918f7e6d5c4b3a29187f6e5d4c3b2a1908f7e6d5c4b3a\"},\"ownerReferences\":[{"
    "\"apiVersion\":\"sim.llm-d.io/v1alpha1\",\"kind\":\"SimulatorDeployment\",\"name\":\"sim-%d\","
    "\"uid\":\"1b2c3d4e-5f60-4718-293a-%012d\",\"controller\":true,\"blockOwnerDeletion\":true}],"
    "\"managedFields\":[{\"manager\":\"schedsim-operator\",\"operation\":\"Apply\",\"apiVersion\":"
    "\"apps/v1\",\"time\":\"2026-01-01T00:00:00Z\",\"fieldsType\":\"FieldsV1\",\"fieldsV1\":{"
    "\"f:spec\":{\"f:replicas\":{},\"f:selector\":{},\"f:template\":{\"f:spec\":{\"f:containers\":{"
    "\"k:{\\\"name\\\":\\\"vllm\\\"}\":{\".\":{},\"f:args\":{},\"f:image\":{},\"f:name\":{},"
    "\"f:ports\":{}}}}}}}},{\"manager\":\"kube-controller-manager\",\"operation\":\"Update\","
    "\"apiVersion\":\"apps/v1\",\"time\":\"2026-01-01T00:00:05Z\",\"fieldsType\":\"FieldsV1\","
    "\"fieldsV1\":{\"f:status\":{\"f:availableReplicas\":{},\"f:conditions\":{},"
    "\"f:readyReplicas\":{}}},\"subresource\":\"status\"}]},\"spec\":{\"replicas\":2,"
    "\"selector\":{\"matchLabels\":{\"app.kubernetes.io/name\":\"sim-%d\",\"llm-d.ai/role\":"
    "\"decode\"}},\"template\":{\"metadata\":{\"labels\":{\"app.kubernetes.io/name\":\"sim-%d\","
    "\"llm-d.ai/role\":\"decode\",\"llm-d.ai/inferenceServing\":\"true\"}},\"spec\":{"
    "\"containers\":[{\"name\":\"vllm\",\"image\":\"ghcr.io/llm-d/llm-d-inference-sim:v0.5.1\","
    "\"args\":[\"--model\",\"Qwen/Qwen3-0.6B\",\"--port\",\"8000\",\"--mode\",\"random\"],"
    "\"ports\":[{\"name\":\"http\",\"containerPort\":8000,\"protocol\":\"TCP\"}],\"resources\":{},"
    "\"terminationMessagePath\":\"/dev/termination-log\",\"terminationMessagePolicy\":\"File\","
    "\"imagePullPolicy\":\"IfNotPresent\"}],\"restartPolicy\":\"Always\","
    "\"terminationGracePeriodSeconds\":30,\"dnsPolicy\":\"ClusterFirst\",\"securityContext\":{},"
    "\"schedulerName\":\"default-scheduler\"}},\"strategy\":{\"type\":\"RollingUpdate\","
    "\"rollingUpdate\":{\"maxUnavailable\":\"25%%\",\"maxSurge\":\"25%%\"}},"
    "\"revisionHistoryLimit\":10,\"progressDeadlineSeconds\":600},\"status\":{"
    "\"observedGeneration\":2,\"replicas\":2,\"updatedReplicas\":2,\"readyReplicas\":2,"
    "\"availableReplicas\":2,\"conditions\":[{\"type\":\"Available\",\"status\":\"True\","
    "\"lastUpdateTime\":\"2026-01-01T00:00:05Z\",\"lastTransitionTime\":\"2026-01-01T00:00:05Z\","
    "\"reason\":\"MinimumReplicasAvailable\",\"message\":\"Deployment has minimum availability.\"},"
    "{\"type\":\"Progressing\",\"status\":\"True\",\"lastUpdateTime\":\"2026-01-01T00:00:05Z\","
    "\"lastTransitionTime\":\"2026-01-01T00:00:00Z\",\"reason\":\"NewReplicaSetAvailable\","
    "\"message\":\"ReplicaSet \\\"sim-decode-%d-5d8f9c7b6\\\" has successfully progressed.\"}]}}";

static void measure(const char *what, int configmap, int count)
{
  struct k8s_buf b = {0};
  k8s_buf_printf(&b, "%s", ""); /* warm up allocations outside the figure */
  struct mallinfo2 mi = mallinfo2();
  size_t heap_before = mi.uordblks + mi.hblkhd;
  struct k8s_store *s = k8s_store_new();
  k8s_store_add_index(s, "label:sim.llm-d.io/owner");
  size_t input = 0;
  int ok = 1;
  for (int i = 0; i < count; i++) {
    b.len = 0;
    int ns = i % 20;
    if (configmap)
      k8s_buf_printf(&b, configmap_fmt, i, ns, i, i + 1, i, ns, i, i, i);
    else
      k8s_buf_printf(&b, deployment_fmt, i, ns, i, i + 1, i, ns, i, i, i, i, i, i);
    input += b.len;
    ok &= upsert(s, b.p, NULL) == K8S_STORE_ADDED;
  }
  mi = mallinfo2();
  size_t heap = mi.uordblks + mi.hblkhd - heap_before - b.cap;
  k8s_buf_free(&b);
  test_cond("bulk upserts", ok && k8s_store_len(s) == (size_t)count);
  const struct k8s_object **arr;
  size_t n = k8s_store_by_index(
      s, "label:sim.llm-d.io/owner",
      configmap ? "schedulerinstall.team-7.sched-7" : "simulatordeployment.team-7.sim-7", &arr);
  test_cond("owner label lookup among many", n == 1);
  free(arr);
  struct k8s_store_stats st;
  k8s_store_stats(s, &st);
  printf("    store: %d %s: input %zu B/object (with managedFields), stored JSON %zu B/object, "
         "object %zu B/object, indexes %zu B/object, total %zu B/object\n",
         count, what, input / (size_t)count, st.json_bytes / st.objects,
         st.object_bytes / st.objects, st.index_bytes / st.objects,
         (st.object_bytes + st.index_bytes) / st.objects);
  if (heap < (size_t)count * 100000) /* mallinfo2 is meaningless under ASan */
    printf("    store: heap growth per object (mallinfo2, with malloc headers): %zu B\n",
           heap / (size_t)count);
  test_cond("stats count objects", st.objects == (size_t)count && st.json_bytes > 0);
  k8s_store_free(s);
}

/* }==================================================================== */

/* An EndpointSlice with no endpoints comes from the API server as
 * "endpoints": null; the store keeps null members out (null means absent in
 * API objects) so a script reading the cache sees nil, not k8s.null. */
static void test_null_members(void)
{
  struct k8s_store *s = k8s_store_new();
  struct events e = {0};
  upsert(
      s,
      "{\"apiVersion\":\"discovery.k8s.io/v1\",\"kind\":\"EndpointSlice\",\"metadata\":{"
      "\"name\":\"epp-x\",\"namespace\":\"ns\",\"resourceVersion\":\"1\",\"annotations\":null},"
      "\"addressType\":\"IPv4\",\"endpoints\":null,\"ports\":[{\"name\":\"grpc\",\"port\":9002}],"
      "\"extra\":[null,1]}",
      &e);
  const struct k8s_object *o = k8s_store_get(s, "ns/epp-x");
  test_cond("null object members left out of the stored text",
            o && !strstr(text(o), "\"endpoints\"") && !strstr(text(o), "\"annotations\"") &&
                strstr(text(o), "\"addressType\":\"IPv4\"") && strstr(text(o), "\"metadata\":{"));
  test_cond("null array elements kept", o && strstr(text(o), "\"extra\":[null,1]"));
  k8s_store_free(s);
}

static void test_packed(void)
{
  struct k8s_store *s = k8s_store_new();
  struct events e = {0};
  char big[4096];
  int n = snprintf(big, sizeof big,
                   "{\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"big\",\"namespace\":\"ns\","
                   "\"labels\":{\"app\":\"x\"}},\"data\":{");
  for (int i = 0; i < 60; i++)
    n += snprintf(big + n, sizeof big - (size_t)n,
                  "%s\"key-%02d\":\"value of the key number %02d\"", i ? "," : "", i, i);
  snprintf(big + n, sizeof big - (size_t)n, "}}");
  upsert(s, big, &e);
  upsert(s, "{\"metadata\":{\"name\":\"small\",\"namespace\":\"ns\"}}", &e);
  const struct k8s_object *o = k8s_store_get(s, "ns/big");
  test_cond("a text of K8S_STORE_PACK_MIN bytes or more is kept packed",
            o && o->json_len >= K8S_STORE_PACK_MIN && !o->json && o->packed &&
                o->packed_len < o->json_len / 2);
  json_t *want = k8s_json_parse(big, strlen(big), NULL, 0);
  json_t *got = o ? k8s_object_parse(o, NULL, 0) : NULL;
  test_cond("and unpacks to the same object", want && got && json_equal(want, got));
  test_cond("with the stored length", o && strlen(text(o)) == o->json_len);
  test_cond("labels still read without unpacking", o && !strcmp(k8s_object_label(o, "app"), "x"));
  const struct k8s_object *sm = k8s_store_get(s, "ns/small");
  test_cond("a short text is kept as it is", sm && sm->json && !sm->packed);
  struct k8s_store_stats st;
  k8s_store_stats(s, &st);
  test_cond("stats count the kept bytes", st.packed_bytes < st.json_bytes);
  e.n = 0;
  upsert(s, big, &e); /* no resourceVersion: the packed texts are compared */
  test_cond("the same packed text again is UNCHANGED", e.n == 1 && e.last == K8S_STORE_UNCHANGED);
  big[strlen(big) - 4] = 'X';
  upsert(s, big, &e);
  test_cond("another text is UPDATED", e.n == 2 && e.last == K8S_STORE_UPDATED);
  json_decref(want);
  json_decref(got);
  k8s_store_free(s);
}

/* {====================================================================
 * Preset dictionaries: texts and field sets packed against typical ones
 * ===================================================================== */

/* A Deployment as the API server sends it with our Apply entry in
 * managedFields (whose field set names the owner's uid, so every object's
 * set differs), numbered i (namespace, names, uids, resourceVersion). */
static char *typical(int i)
{
  struct k8s_buf b = {0};
  k8s_buf_printf(&b, deployment_fmt, i, i, i, i + 1, i, i, i, i, i, i, i, i);
  json_t *v = obj(b.p);
  k8s_buf_free(&b);
  char fields[512];
  snprintf(fields, sizeof fields,
           "{\"f:metadata\":{\"f:labels\":{\"f:app.kubernetes.io/name\":{}},"
           "\"f:ownerReferences\":{\"k:{\\\"uid\\\":\\\"1b2c3d4e-5f60-4718-293a-%012d\\\"}\":{}}},"
           "\"f:spec\":{\"f:replicas\":{},\"f:template\":{\"f:spec\":{\"f:containers\":{"
           "\"k:{\\\"name\\\":\\\"vllm\\\"}\":{\".\":{},\"f:image\":{},\"f:name\":{}}}}}}}",
           i);
  json_t *mf = json_array_get(json_object_get(json_object_get(v, "metadata"), "managedFields"), 0);
  json_object_set_new(mf, "fieldsV1", obj(fields));
  char *t = k8s_json_dump(v, 0, NULL);
  json_decref(v);
  return t;
}

/* The fieldsV1 of our Apply entry in text t, compact. */
static char *fields_of(const char *t)
{
  json_t *v = obj(t);
  json_t *mf = json_array_get(json_object_get(json_object_get(v, "metadata"), "managedFields"), 0);
  char *f = k8s_json_dump(json_object_get(mf, "fieldsV1"), 0, NULL);
  json_decref(v);
  return f;
}

static void test_dictionary(void)
{
  struct k8s_store *s = k8s_store_new();
  k8s_store_set_field_manager(s, "schedsim-operator");
  char *t1 = typical(1), *t2 = typical(2);
  upsert(s, t1, NULL);
  upsert(s, t2, NULL);
  const struct k8s_object *o = k8s_store_get(s, "team-2/sim-decode-2");
  test_cond("a typical object packs against the dictionary to an eighth of its text",
            o && o->packed && o->dict && o->packed_len * 8 < o->json_len);
  json_t *want = obj(t2), *got = o ? k8s_object_parse(o, NULL, 0) : NULL;
  json_object_del(json_object_get(want, "metadata"), "managedFields");
  test_cond("and unpacks to the object as sent, without managedFields",
            got && json_equal(want, got));
  json_decref(want);
  json_decref(got);

  char *f2 = fields_of(t2), *scratch = NULL;
  size_t len = 0;
  const char *mt = o ? k8s_managed_text(o->managed, o->managed_len, &len, &scratch) : NULL;
  test_cond("its field set is kept packed",
            o && o->managed && o->managed[0] == '\0' && o->managed_len * 4 < strlen(f2));
  test_cond("and unpacks to the Apply entry's fieldsV1",
            mt && len == strlen(f2) && !strcmp(mt, f2));
  free(scratch);
  json_t *want_applied = obj("{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{"
                             "\"name\":\"sim-decode-2\",\"namespace\":\"team-2\",\"labels\":{"
                             "\"app.kubernetes.io/name\":\"sim-2\"}},\"spec\":{\"replicas\":2}}");
  char path[256] = "";
  test_cond(
      "drift detection reads the packed field set",
      o && k8s_fieldset_covers_text(want_applied, o->managed, o->managed_len, path, sizeof path));
  json_object_set_new(json_object_get(want_applied, "spec"), "paused", json_true());
  test_cond(
      "and still names a field it does not cover",
      o && !k8s_fieldset_covers_text(want_applied, o->managed, o->managed_len, path, sizeof path) &&
          !strcmp(path, "spec.paused"));
  json_decref(want_applied);
  const char *plain = "{\"f:spec\":{}}";
  test_cond("k8s_managed_text passes a text through",
            k8s_managed_text(plain, strlen(plain), &len, &scratch) == plain && !scratch &&
                len == strlen(plain));

  /* A dissimilar object: the dictionary learns its shape, and the objects
   * packed against the old dictionary still read. */
  struct k8s_store_stats before, after;
  k8s_store_stats(s, &before);
  char other[4096];
  int n = snprintf(other, sizeof other,
                   "{\"kind\":\"ConfigMap\",\"metadata\":{\"name\":\"other\","
                   "\"namespace\":\"ns\"},\"data\":{");
  for (int i = 0; i < 40; i++)
    n += snprintf(other + n, sizeof other - (size_t)n, "%s\"q%02d\":\"%08x%08x\"", i ? "," : "", i,
                  (unsigned)(i * 2654435761u), (unsigned)(i * 40503u));
  snprintf(other + n, sizeof other - (size_t)n, "}}");
  upsert(s, other, NULL);
  k8s_store_stats(s, &after);
  test_cond("a shape the dictionary did not know is learned",
            after.dict_bytes > before.dict_bytes + strlen(other) / 2);
  o = k8s_store_get(s, "team-1/sim-decode-1");
  json_t *w1 = obj(t1), *g1 = o ? k8s_object_parse(o, NULL, 0) : NULL;
  json_object_del(json_object_get(w1, "metadata"), "managedFields");
  test_cond("objects packed against the older dictionary still unpack", g1 && json_equal(w1, g1));
  json_decref(w1);
  json_decref(g1);
  struct events e = {0};
  upsert(s,
         "{\"metadata\":{\"name\":\"nrv\",\"namespace\":\"ns\"},\"data\":"
         "\"the same text packed before and after the dictionary changed, 64 bytes or more\"}",
         &e);
  const struct k8s_object *nrv = k8s_store_get(s, "ns/nrv");
  upsert(s, other, NULL); /* no resourceVersion: compared, UNCHANGED */
  int before_dict = nrv && nrv->packed;
  for (int i = 0; i < K8S_STORE_DICT_SHAPES + 4;
       i++) { /* dissimilar objects: learn up to the cap */
    char name[32];
    snprintf(name, sizeof name, "rnd-%d", i);
    n = snprintf(other, sizeof other,
                 "{\"metadata\":{\"name\":\"%s\",\"namespace\":\"ns\"},\"d\":\"", name);
    for (int j = 0; j < 300; j++)
      other[n++] = (char)('a' + (unsigned)(j * 7919u + (unsigned)i * 104729u) % 26u);
    snprintf(other + n, sizeof other - (size_t)n, "\"}");
    upsert(s, other, NULL);
  }
  k8s_store_stats(s, &after);
  upsert(s,
         "{\"metadata\":{\"name\":\"nrv\",\"namespace\":\"ns\"},\"data\":"
         "\"the same text packed before and after the dictionary changed, 64 bytes or more\"}",
         &e);
  test_cond("the same text packed against another dictionary is UNCHANGED",
            before_dict && e.n == 2 && e.last == K8S_STORE_UNCHANGED);
  test_cond("a store of dissimilar objects stops learning (K8S_STORE_DICT_SHAPES)",
            after.dict_bytes <= (size_t)(K8S_STORE_DICT_SHAPES + 2) * 32768);
  size_t dicts = after.dict_bytes;
  k8s_store_delete(s, "team-1/sim-decode-1", NULL, NULL);
  k8s_store_delete(s, "team-2/sim-decode-2", NULL, NULL);
  k8s_store_stats(s, &after);
  test_cond("a dictionary no object needs any more is freed", after.dict_bytes < dicts);
  free(t1);
  free(t2);
  free(f2);
  k8s_store_free(s);
}

/* }==================================================================== */

int main(void)
{
  test_basic();
  test_indexes();
  test_custom_and_replace();
  test_kind_injection();
  test_null_members();
  test_packed();
  test_dictionary();
  measure("ConfigMaps", 1, 10000);
  measure("Deployments", 0, 10000);
  test_report();
  return 0;
}
