/* cmd_render.c: `schedsim-operator render` (placeholder until its owner lands it). */
#include <stdio.h>

#include "cmd/cmd.h"

int cmd_render(int argc, char **argv)
{
  fprintf(stderr, "schedsim-operator: 'render' is not implemented yet\n");
  return 1;
}
