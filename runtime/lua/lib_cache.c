/* lib_cache.c: luaopen_k8s_cache, reads from the informer cache (or the
 * fixture's observed objects: the same interface, context.h). Each read
 * decodes a fresh table from the cached JSON text, so a script may change
 * what it reads without touching the cache.
 *
 * Only the kinds the controller declares (for_, owns, watches in
 * controllers.lua) may be read: reading another kind is a programming error
 * (it would work in fixtures and find nothing in the operator). A declared
 * kind that the server does not serve reads as absent. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "core/json.h"
#include "lua/context.h"
#include "lua/lib.h"

#define MAX_SELECTOR 16

/* The Store of apiVersion+kind for this call, or NULL (not served). Raises
 * when the kind is not declared by the controller. */
static struct k8s_store *check_store(lua_State *L, const char *what, const char *api_version,
                                     const char *kind)
{
  struct lk_ctx *ctx = lk_check_ctx(L, what);
  if (ctx->kinds) {
    size_t i;
    for (i = 0; i < ctx->nkinds; i++)
      if (!strcmp(ctx->kinds[i].api_version, api_version) && !strcmp(ctx->kinds[i].kind, kind))
        break;
    if (i == ctx->nkinds)
      luaL_error(L,
                 "%s: %s %s is not declared in for_, owns or watches of controller %s "
                 "(controllers.lua)",
                 what, api_version, kind, ctx->controller ? ctx->controller : "?");
  }
  if (!ctx->cache) luaL_error(L, "%s: no cache in this context", what);
  if (ctx->discovery && !ctx->discovery->ops->served(ctx->discovery->ud, api_version, kind))
    return NULL;
  return ctx->cache->ops->store(ctx->cache->ud, api_version, kind);
}

static void push_object(lua_State *L, const struct k8s_object *obj)
{
  char err[256];
  if (k8s_object_push(L, obj, err, sizeof(err)) != 0)
    luaL_error(L, "k8s.cache: cannot decode %s: %s", obj->key, err);
}

/* k8s.cache.get(apiVersion, kind, namespace, name) -> object, or nil */
static int cache_get(lua_State *L)
{
  const char *api_version = luaL_checkstring(L, 1);
  const char *kind = luaL_checkstring(L, 2);
  const char *ns = luaL_optstring(L, 3, "");
  const char *name = luaL_checkstring(L, 4);
  struct k8s_store *st = check_store(L, "k8s.cache.get", api_version, kind);
  if (!st) {
    lua_pushnil(L);
    return 1;
  }
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  if (*ns) {
    luaL_addstring(&b, ns);
    luaL_addchar(&b, '/');
  }
  luaL_addstring(&b, name);
  luaL_pushresult(&b);
  const struct k8s_object *obj = k8s_store_get(st, lua_tostring(L, -1));
  if (!obj) {
    lua_pushnil(L);
    return 1;
  }
  push_object(L, obj);
  return 1;
}

/* k8s.cache.list(apiVersion, kind [, { namespace = ns, labels = { k = v } }])
 * -> array of objects sorted by namespace/name */
static int cache_list(lua_State *L)
{
  const char *api_version = luaL_checkstring(L, 1);
  const char *kind = luaL_checkstring(L, 2);
  const char *ns = NULL;
  struct k8s_label sel[MAX_SELECTOR];
  size_t nsel = 0;
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, 3)) {
      const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : "";
      if (strcmp(k, "namespace") && strcmp(k, "labels"))
        luaL_argerror(L, 3, "unknown option (expected namespace, labels)");
      lua_pop(L, 1);
    }
    if (lua_getfield(L, 3, "namespace") != LUA_TNIL) {
      ns = lua_tostring(L, -1);
      if (lua_type(L, -1) != LUA_TSTRING) luaL_argerror(L, 3, "namespace must be a string");
    }
    if (lua_getfield(L, 3, "labels") != LUA_TNIL) {
      int t = lua_gettop(L);
      if (!lua_istable(L, t)) luaL_argerror(L, 3, "labels must be a table");
      lua_pushnil(L);
      while (lua_next(L, t)) {
        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
          luaL_argerror(L, 3, "labels must map strings to strings");
        if (nsel == MAX_SELECTOR) luaL_argerror(L, 3, "too many labels");
        sel[nsel].key = lua_tostring(L, -2); /* pinned by the labels table */
        sel[nsel].value = lua_tostring(L, -1);
        nsel++;
        lua_pop(L, 1);
      }
    }
  }
  struct k8s_store *st = check_store(L, "k8s.cache.list", api_version, kind);
  lua_newtable(L);
  k8s_json_mark_array(L, -1);
  if (!st) return 1;
  const struct k8s_object **objs = NULL;
  size_t n = k8s_store_select(st, ns, sel, nsel, &objs);
  if (n == (size_t)-1) return luaL_error(L, "k8s.cache.list: out of memory");
  /* box the array so a Lua error while decoding cannot leak it */
  const struct k8s_object **box = lua_newuserdatauv(L, n * sizeof(*box) + 1, 0);
  if (n) memcpy(box, objs, n * sizeof(*box));
  free(objs);
  for (size_t i = 0; i < n; i++) {
    push_object(L, box[i]);
    lua_rawseti(L, -3, (lua_Integer)i + 1);
  }
  lua_pop(L, 1);
  return 1;
}

static const luaL_Reg cachelib[] = {{"get", cache_get}, {"list", cache_list}, {NULL, NULL}};

int luaopen_k8s_cache(lua_State *L)
{
  luaL_newlib(L, cachelib);
  return 1;
}
