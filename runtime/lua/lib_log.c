/* lib_log.c: luaopen_k8s_log, structured log records from scripts. Each
 * record carries the call's fields (controller, key, reconcileID) and then
 * the script's fields in key order; tables are written as JSON. The sink is
 * the call's (core/log.h in the operator, a capture list in k8sengine). */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "core/json.h"
#include "lua/context.h"
#include "lua/lib.h"
#include "lua/sandbox.h"

#define MAX_FIELDS 32

static int cmp_keys(const void *a, const void *b)
{
  return strcmp(((const struct k8s_log_field *)a)->key, ((const struct k8s_log_field *)b)->key);
}

/* log(level, v): msg at 1, fields table (optional) at 2. Table values are
 * encoded to JSON strings kept on the Lua stack until the record is written. */
static int emit(lua_State *L, enum k8s_log_level level, int v)
{
  const char *msg = luaL_checkstring(L, 1);
  struct lk_sandbox *sb = lk_sandbox_of(L);
  struct lk_ctx *ctx = sb ? sb->ctx : NULL;
  struct k8s_log_field fields[MAX_FIELDS * 2];
  size_t n = 0, nfix = ctx ? ctx->nlog_fields : 0;
  if (nfix > MAX_FIELDS) nfix = MAX_FIELDS;
  for (size_t i = 0; i < nfix; i++)
    fields[n++] = ctx->log_fields[i];
  size_t first = n;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    lua_newtable(L); /* 3: pins the JSON texts of table values */
    int npins = 0;
    /* keys and string values stay alive in the fields table (2) */
    lua_pushnil(L);
    while (lua_next(L, 2)) {
      if (lua_type(L, -2) != LUA_TSTRING) luaL_argerror(L, 2, "field names must be strings");
      if (n - first == MAX_FIELDS) luaL_argerror(L, 2, "too many fields");
      struct k8s_log_field *f = &fields[n++];
      memset(f, 0, sizeof(*f));
      f->key = lua_tostring(L, -2);
      switch (lua_type(L, -1)) {
      case LUA_TSTRING:
        f->type = K8S_LOG_STR;
        f->s = lua_tostring(L, -1);
        break;
      case LUA_TNUMBER:
        if (lua_isinteger(L, -1)) {
          f->type = K8S_LOG_INT;
          f->i = lua_tointeger(L, -1);
        } else {
          f->type = K8S_LOG_REAL;
          f->d = lua_tonumber(L, -1);
        }
        break;
      case LUA_TBOOLEAN:
        f->type = K8S_LOG_BOOL;
        f->i = lua_toboolean(L, -1);
        break;
      default: {
        char err[200];
        size_t len;
        char *text = k8s_json_encode_lua(L, lua_gettop(L), &len, err, sizeof(err));
        if (!text) luaL_error(L, "k8s.log: field %s: %s", f->key, err);
        lk_push_owned(L, text, len);
        f->type = K8S_LOG_RAW_JSON;
        f->s = lua_tostring(L, -1);
        lua_rawseti(L, 3, ++npins);
        break;
      }
      }
      lua_pop(L, 1);
    }
    if (n - first > 1) qsort(fields + first, n - first, sizeof(fields[0]), cmp_keys);
  }
  if (ctx && ctx->log)
    ctx->log(ctx->log_data, level, v, msg, fields, n);
  else
    lk_log_to_core(NULL, level, v, msg, fields, n);
  return 0;
}

void lk_log_to_core(void *ud, enum k8s_log_level level, int v, const char *msg,
                    const struct k8s_log_field *fields, size_t nfields)
{
  k8s_log_fields(level, v, msg, fields, nfields);
}

static int log_debug(lua_State *L)
{
  return emit(L, K8S_LOG_DEBUG, 1);
}

static int log_info(lua_State *L)
{
  return emit(L, K8S_LOG_INFO, 0);
}

static int log_warn(lua_State *L)
{
  return emit(L, K8S_LOG_WARN, 0);
}

static int log_error(lua_State *L)
{
  return emit(L, K8S_LOG_ERROR, 0);
}

static const luaL_Reg loglib[] = {{"debug", log_debug},
                                  {"error", log_error},
                                  {"info", log_info},
                                  {"warn", log_warn},
                                  {NULL, NULL}};

int luaopen_k8s_log(lua_State *L)
{
  luaL_newlib(L, loglib);
  return 1;
}
