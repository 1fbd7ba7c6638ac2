/* fuzz-json-lua.c: libFuzzer target for JSON text -> Lua -> JSON
 * (runtime/core/json.c). Any input must either be refused with a message or
 * convert to Lua and back to a JSON value equal to the parsed input, and the
 * sorted encoding must be a fixed point. Also exercises the YAML writer and
 * reader on the same value (dump -> load must give it back). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include <lualib.h>
#include "core/json.h"
#include "core/yaml.h"

/* A fresh Lua state per input, with an allocator that never calls realloc
 * (libFuzzer counts ASan's realloc as a malloc without a free), keeps mallocs
 * and frees balanced within a run, so libFuzzer's leak check runs only when
 * something really stays allocated. */
static void *balanced_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  void *p = malloc(nsize);
  if (p && ptr) {
    memcpy(p, ptr, osize < nsize ? osize : nsize);
    free(ptr);
  }
  return p;
}

static void one_input(lua_State *L, const char *data, size_t size)
{
  char err[256];
  json_t *orig = k8s_json_parse(data, size, err, sizeof err);
  if (k8s_json_push(L, data, size, err, sizeof err) < 0) {
    /* Refused: a parse error, or nesting deeper than the limit. */
    json_decref(orig);
    return;
  }
  if (!orig) abort(); /* pushed what jansson could not parse */
  size_t len;
  char *text = k8s_json_encode_lua(L, -1, &len, err, sizeof err);
  if (!text) abort(); /* everything decoded must encode */
  json_t *back = k8s_json_parse(text, len, err, sizeof err);
  if (!back || !json_equal(orig, back)) abort();
  char *again = k8s_json_dump(back, K8S_JSON_SORT_KEYS, NULL);
  if (!again || strcmp(again, text) != 0) abort(); /* the sorted encoding is deterministic */

  char *y = k8s_yaml_dump(orig);
  if (!y) abort();
  json_t *docs = k8s_yaml_load(y, strlen(y), "fuzz", err, sizeof err);
  if (!docs) abort(); /* our own YAML must load */
  /* A null document is skipped on load; otherwise the value comes back. */
  if (json_is_null(orig)
          ? json_array_size(docs) != 0
          : (json_array_size(docs) != 1 || !json_equal(json_array_get(docs, 0), orig)))
    abort();
  json_decref(docs);
  free(y);
  free(again);
  json_decref(back);
  free(text);
  json_decref(orig);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  lua_State *L = lua_newstate(balanced_alloc, NULL);
  if (!L) return 0;
  one_input(L, (const char *)data, size);
  lua_close(L);
  return 0;
}
