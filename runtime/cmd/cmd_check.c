/* cmd_check.c: `schedsim-operator check` (placeholder until its owner lands it). */
#include <stdio.h>

#include "cmd/cmd.h"

int cmd_check(int argc, char **argv)
{
  fprintf(stderr, "schedsim-operator: 'check' is not implemented yet\n");
  return 1;
}
