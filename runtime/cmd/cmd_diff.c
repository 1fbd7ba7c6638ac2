/* cmd_diff.c: `schedsim-operator diff` (placeholder until its owner lands it). */
#include <stdio.h>

#include "cmd/cmd.h"

int cmd_diff(int argc, char **argv)
{
  fprintf(stderr, "schedsim-operator: 'diff' is not implemented yet\n");
  return 1;
}
