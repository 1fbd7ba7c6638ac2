/* lib_json.c: luaopen_k8s_json, the runtime's own JSON converter
 * (core/json.h: k8s.array_mt for arrays, k8s.null for null). */
#include <lauxlib.h>
#include <stdlib.h>

#include "core/json.h"
#include "lua/lib.h"

/* k8s.json.encode(v) -> compact JSON text, keys sorted. A value that has no
 * JSON form (function, sparse table, NaN ...) is a programming error: raises. */
static int json_encode(lua_State *L)
{
  char err[256];
  size_t len;
  luaL_checkany(L, 1);
  luaL_checkstack(L, 4, NULL);
  char *text = k8s_json_encode_lua(L, 1, &len, err, sizeof(err));
  if (!text) return luaL_error(L, "k8s.json.encode: %s", err);
  lk_push_owned(L, text, len);
  return 1;
}

/* k8s.json.decode(s) -> value, or nil, err (reason "InvalidJSON") */
static int json_decode(lua_State *L)
{
  char err[256];
  size_t len;
  const char *s = luaL_checklstring(L, 1, &len);
  if (k8s_json_push(L, s, len, err, sizeof(err)) != 0)
    return lk_push_fail(L, "InvalidJSON", 0, err);
  return 1;
}

static const luaL_Reg jsonlib[] = {{"decode", json_decode}, {"encode", json_encode}, {NULL, NULL}};

int luaopen_k8s_json(lua_State *L)
{
  luaL_newlib(L, jsonlib);
  return 1;
}
