/* test-engine-map.c: lk_engine_map (runtime/lua/engine.c) runs the map
 * function of a watch, except when the cache holds a store of the
 * controller's CR kind and it is empty: then no key could name a CR, and
 * the keys are empty without a call into Lua. Uses the test script set
 * spec/support/testscripts (widget.reconcile.map_secret: a Secret labelled
 * widget=<name> maps to <its namespace>/<name>). */
#include <string.h>

#include "core/json.h"
#include "core/store.h"
#include "lua/engine.h"
#include "testhelp.h"

/* A cache of one store: the Widget CRs. */
static struct k8s_store *widgets(void *ud, const char *api_version, const char *kind)
{
  return strcmp(kind, "Widget") ? NULL : ud;
}

static const struct lk_cache_ops ops = {widgets, NULL};

static json_t *parse(const char *text)
{
  char err[256];
  json_t *v = k8s_json_parse(text, strlen(text), err, sizeof err);
  if (!v) printf("  bad JSON: %s\n", err);
  return v;
}

/* The keys the map of widget's watch 0 gives for a Secret labelled
 * widget=w in ns1, as compact JSON (malloc'd), or NULL on error. */
static char *map_keys(struct lk_engine *e, const struct lk_cache_source *cache)
{
  json_t *secret = parse("{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":"
                         "{\"name\":\"s\",\"namespace\":\"ns1\",\"labels\":{\"widget\":\"w\"}}}");
  json_t *keys = NULL;
  struct lk_error lerr = {0};
  int rc =
      lk_engine_map(e, lk_engine_controller(e, "widget"), 0, secret, cache, NULL, &keys, &lerr);
  if (rc != 0) printf("  map failed: %s\n", lerr.message ? lerr.message : "?");
  lk_error_clear(&lerr);
  char *out = rc == 0 ? json_dumps(keys, JSON_COMPACT) : NULL;
  json_decref(keys);
  json_decref(secret);
  return out;
}

int main(void)
{
  struct lk_scriptset *set;
  char err[512];
  if (lk_scriptset_load("spec/support/testscripts", NULL, 0, NULL, &set, err, sizeof err) != 0) {
    printf("cannot load the test scripts: %s\n", err);
    return 1;
  }
  struct lk_engine *e;
  test_cond("the test script set loads", lk_engine_new(set, NULL, &e, NULL) == 0);

  struct k8s_store *crs = k8s_store_new();
  k8s_store_set_kind(crs, "test.sim.llm-d.io/v1alpha1", "Widget");
  struct lk_cache_source cache = {&ops, crs};

  char *keys = map_keys(e, NULL);
  test_cond("without a cache the map runs", keys && !strcmp(keys, "[\"ns1/w\"]"));
  free(keys);
  keys = map_keys(e, &cache);
  test_cond("with no Widget cached the map is not run: no keys", keys && !strcmp(keys, "[]"));
  free(keys);

  json_t *w = parse("{\"apiVersion\":\"test.sim.llm-d.io/v1alpha1\",\"kind\":\"Widget\","
                    "\"metadata\":{\"name\":\"other\",\"namespace\":\"ns2\"}}");
  test_cond("a Widget goes into the store",
            w && k8s_store_upsert(crs, w, NULL, NULL, err, sizeof err) >= 0);
  keys = map_keys(e, &cache);
  test_cond("with a Widget cached the map runs (its keys need not name a cached CR)",
            keys && !strcmp(keys, "[\"ns1/w\"]"));
  free(keys);

  json_decref(w);
  k8s_store_free(crs);
  lk_engine_free(e);
  test_report();
  return 0;
}
