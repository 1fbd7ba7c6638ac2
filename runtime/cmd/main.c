/* main.c: the schedsim-operator entry point. Owns nothing but the dispatch
 * from the first argument to a subcommand (runtime/cmd/cmd_<name>.c). */
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"

static const struct {
  const char *name;
  int (*fn)(int argc, char **argv);
  const char *help;
} commands[] = {
    {"run", cmd_run, "run the controllers against the cluster in the kubeconfig"},
    {"check", cmd_check, "compile and self-test a script set"},
    {"render", cmd_render, "print what the scripts would apply for CR files, offline"},
    {"diff", cmd_diff, "show what applying CR files would change in the cluster (dry run)"},
    {"version", cmd_version, "print the version"},
};

static void usage(FILE *out)
{
  fprintf(out, "usage: schedsim-operator COMMAND [flags]\n\ncommands:\n");
  for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
    fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].help);
  fprintf(out, "\nRun 'schedsim-operator COMMAND --help' for a command's flags.\n");
}

int main(int argc, char **argv)
{
  if (argc < 2) {
    usage(stderr);
    return 2;
  }
  if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
    usage(stdout);
    return 0;
  }
  if (!strcmp(argv[1], "--version")) /* the habit of most CLIs */
    return cmd_version(argc - 1, argv + 1);
  for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
    if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
  fprintf(stderr, "schedsim-operator: unknown command %s\n", argv[1]);
  usage(stderr);
  return 2;
}
