/* cmd_version.c: `schedsim-operator version` prints the build version. */
#include <stdio.h>

#include <lua.h>

#include "cmd/cmd.h"

int cmd_version(int argc, char **argv)
{
  printf("schedsim-operator %s (%s)\n", SCHEDSIM_VERSION, LUA_RELEASE);
  return 0;
}
