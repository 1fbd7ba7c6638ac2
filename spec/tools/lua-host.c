/* lua-host.c: a minimal Lua 5.4 interpreter for running busted in the
 * sanitizer build: `lua-host SCRIPT [ARGS...]` behaves like `lua5.4 SCRIPT
 * ARGS...` (standard libraries, the global `arg` table with arg[0] = SCRIPT,
 * the arguments also passed as `...`, a leading `#!` line skipped).
 *
 * Why it exists: the ASan build's Lua modules (k8srt.so, k8sengine.so) are
 * instrumented, and an uninstrumented lua5.4 can only load them with the ASan
 * runtime in LD_PRELOAD — which every process the spec starts (sh, curl,
 * kubectl) then inherits; an uninstrumented curl under a preloaded ASan
 * runtime can deadlock in setlocale. This host is linked with the sanitizers
 * itself (CMake adds -fsanitize to every target), so nothing is preloaded and
 * child processes run clean. In a normal build it is an ordinary interpreter.
 *
 * Exit status: what the script passes to os.exit; 1 if the script raises
 * (message and traceback on stderr); 2 on a usage error. */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>

static int traceback(lua_State *L)
{
  const char *msg = lua_tostring(L, 1);
  if (!msg) msg = luaL_tolstring(L, 1, NULL);
  luaL_traceback(L, L, msg, 1);
  return 1;
}

int main(int argc, char **argv)
{
  if (argc < 2) {
    fprintf(stderr, "usage: %s SCRIPT [ARGS...]\n", argv[0]);
    return 2;
  }
  lua_State *L = luaL_newstate();
  if (!L) {
    fprintf(stderr, "%s: cannot create a Lua state (out of memory)\n", argv[0]);
    return 1;
  }
  luaL_openlibs(L);

  /* arg table as lua.c builds it: interpreter at -1, script at 0 */
  lua_createtable(L, argc - 2, 2);
  lua_pushstring(L, argv[0]);
  lua_rawseti(L, -2, -1);
  for (int i = 1; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - 1);
  }
  lua_setglobal(L, "arg");

  lua_pushcfunction(L, traceback);
  int rc = 0;
  if (luaL_loadfile(L, argv[1]) != LUA_OK) {
    fprintf(stderr, "%s: %s\n", argv[0], lua_tostring(L, -1));
    rc = 1;
  } else {
    for (int i = 2; i < argc; i++)
      lua_pushstring(L, argv[i]);
    if (lua_pcall(L, argc - 2, 0, 1) != LUA_OK) {
      fprintf(stderr, "%s: %s\n", argv[0], lua_tostring(L, -1));
      rc = 1;
    }
  }
  lua_close(L);
  return rc;
}
