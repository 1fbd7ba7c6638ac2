/* cmd_run.c: `schedsim-operator run` (placeholder until its owner lands it). */
#include <stdio.h>

#include "cmd/cmd.h"

int cmd_run(int argc, char **argv)
{
  fprintf(stderr, "schedsim-operator: 'run' is not implemented yet\n");
  return 1;
}
