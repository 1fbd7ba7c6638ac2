/* lib_yaml.c: luaopen_k8s_yaml, YAML text for ConfigMap payloads
 * (core/yaml.h: block style, keys sorted, ambiguous scalars quoted). */
#include <lauxlib.h>
#include <stdlib.h>

#include "core/json.h"
#include "core/yaml.h"
#include "lua/lib.h"

/* k8s.yaml.encode(v) -> YAML text ending in "\n". Raises for values that have
 * no JSON form, like k8s.json.encode. */
static int yaml_encode(lua_State *L)
{
  char err[256];
  luaL_checkany(L, 1);
  json_t *v = k8s_json_from_lua(L, 1, err, sizeof(err));
  if (!v) return luaL_error(L, "k8s.yaml.encode: %s", err);
  size_t len;
  char *text = k8s_yaml_dumpn(v, &len);
  json_decref(v);
  if (!text) return luaL_error(L, "k8s.yaml.encode: cannot format the value");
  lk_push_owned(L, text, len);
  return 1;
}

static const luaL_Reg yamllib[] = {{"encode", yaml_encode}, {NULL, NULL}};

int luaopen_k8s_yaml(lua_State *L)
{
  luaL_newlib(L, yamllib);
  return 1;
}
