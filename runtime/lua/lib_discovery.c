/* lib_discovery.c: luaopen_k8s_discovery, what the API server serves, from
 * the call's discovery source (live discovery, or "everything but the
 * without_kinds" in fixtures and render). */
#include <lauxlib.h>

#include "core/json.h"
#include "lua/context.h"
#include "lua/lib.h"

static const struct lk_discovery_source *check_discovery(lua_State *L, const char *what)
{
  struct lk_ctx *ctx = lk_check_ctx(L, what);
  if (!ctx->discovery) luaL_error(L, "%s: no discovery in this context", what);
  return ctx->discovery;
}

/* k8s.discovery.served(apiVersion, kind) -> boolean */
static int discovery_served(lua_State *L)
{
  const char *api_version = luaL_checkstring(L, 1);
  const char *kind = luaL_checkstring(L, 2);
  const struct lk_discovery_source *d = check_discovery(L, "k8s.discovery.served");
  lua_pushboolean(L, d->ops->served(d->ud, api_version, kind));
  return 1;
}

/* k8s.discovery.versions(group, kind) -> { "v1", "v1alpha2" } (preferred first) */
static int discovery_versions(lua_State *L)
{
  const char *group = luaL_checkstring(L, 1);
  const char *kind = luaL_checkstring(L, 2);
  const struct lk_discovery_source *d = check_discovery(L, "k8s.discovery.versions");
  const char *out[32];
  size_t n = d->ops->versions(d->ud, group, kind, out, 32);
  if (n > 32) n = 32;
  lua_createtable(L, (int)n, 0);
  for (size_t i = 0; i < n; i++) {
    lua_pushstring(L, out[i]);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  k8s_json_mark_array(L, -1);
  return 1;
}

static const luaL_Reg discoverylib[] = {
    {"served", discovery_served}, {"versions", discovery_versions}, {NULL, NULL}};

int luaopen_k8s_discovery(lua_State *L)
{
  luaL_newlib(L, discoverylib);
  return 1;
}
