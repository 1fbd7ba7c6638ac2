/* lib.h: the k8s Lua module, one C file per API area (doc/architecture.md,
 * "The k8s module"; reference in doc/lua-api.md):
 *
 *   lib_k8s.c        luaopen_k8s: now, terminal, null, array, array_mt, sha256,
 *                    and the submodules below as fields
 *   lib_cache.c      luaopen_k8s_cache: get, list (informer cache / fixtures)
 *   lib_discovery.c  luaopen_k8s_discovery: served, versions
 *   lib_log.c        luaopen_k8s_log: debug, info, warn, error
 *   lib_json.c       luaopen_k8s_json: encode, decode
 *   lib_yaml.c       luaopen_k8s_yaml: encode
 *
 * Bindings read the call's context (struct lk_ctx, context.h) from the
 * sandbox of their state. They raise for misuse (luaL_check*) and return
 * nil, err (err = { reason, code, message }) for expected failures. */
#ifndef SCHEDSIM_LUA_LIB_H
#define SCHEDSIM_LUA_LIB_H

#include <stddef.h>

#include <lua.h>

struct lk_ctx;

int luaopen_k8s(lua_State *L);
int luaopen_k8s_cache(lua_State *L);
int luaopen_k8s_discovery(lua_State *L);
int luaopen_k8s_log(lua_State *L);
int luaopen_k8s_json(lua_State *L);
int luaopen_k8s_yaml(lua_State *L);

/* The context of the running call; raises "<what>: not available here" when
 * there is none (the state is not running a call with a context). */
struct lk_ctx *lk_check_ctx(lua_State *L, const char *what);

/* Pushes nil and an error table { reason = reason, code = code, message = msg }
 * and returns 2 (the "nil, err" convention). */
int lk_push_fail(lua_State *L, const char *reason, int code, const char *msg);

/* Pushes text[0..len) as a Lua string and frees text, also when pushing
 * fails (the memory error is re-raised after the free). */
void lk_push_owned(lua_State *L, char *text, size_t len);

#endif
