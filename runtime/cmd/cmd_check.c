/* cmd_check.c: `schedsim-operator check [--scripts DIR]`: compiles every
 * module of a script set, validates controllers.lua, loads every reconciler
 * and runs every fixture case (runtime/lua/check.h). Prints one
 * "file:line: message" line per problem on stderr and exits 1, or prints a
 * summary and exits 0; usage errors exit 2. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "lua/check.h"

static void usage(FILE *out)
{
  fprintf(out, "usage: schedsim-operator check [--scripts DIR] [--memory-limit BYTES]\n"
               "                               [--instruction-budget N]\n\n"
               "Compiles and self-tests a script set: every module, controllers.lua, every\n"
               "reconciler, and every fixture case under <folder>/fixtures/*.yaml.\n"
               "Default DIR: the scripts installed beside the binary.\n");
}

int cmd_check(int argc, char **argv)
{
  static const struct option opts[] = {{"scripts", required_argument, NULL, 's'},
                                       {"memory-limit", required_argument, NULL, 'm'},
                                       {"instruction-budget", required_argument, NULL, 'b'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  const char *dir = NULL;
  struct lk_engine_opts eo = {0};
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
    case 's':
      dir = optarg;
      break;
    case 'm':
      eo.memory_limit = strtoull(optarg, NULL, 10);
      break;
    case 'b':
      eo.instruction_budget = strtol(optarg, NULL, 10);
      break;
    case 'h':
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return 2;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "schedsim-operator check: unexpected argument %s\n", argv[optind]);
    usage(stderr);
    return 2;
  }
  char buf[PATH_MAX];
  if (!dir && !(dir = lk_scriptset_default_dir(buf, sizeof(buf)))) {
    fprintf(stderr, "schedsim-operator check: no scripts beside the binary; use --scripts DIR\n");
    return 2;
  }
  char err[1024];
  struct lk_scriptset *set;
  if (lk_scriptset_load(dir, NULL, 0, NULL, &set, err, sizeof(err)) != 0) {
    fprintf(stderr, "%s\n", err);
    return 2;
  }
  char root[PATH_MAX];
  snprintf(root, sizeof(root), "%s", set->dir);
  char revision[sizeof(set->revision)];
  memcpy(revision, set->revision, sizeof(revision));
  struct lk_messages msgs = {0};
  struct lk_check_stats st;
  int problems = lk_check(set, &eo, &msgs, &st, NULL);
  if (problems < 0) {
    fprintf(stderr, "schedsim-operator check: out of memory\n");
    return 1;
  }
  size_t rl = strlen(root);
  for (size_t i = 0; i < msgs.n; i++) {
    const char *m = msgs.v[i];
    if (!strncmp(m, root, rl) && m[rl] == '/')
      fprintf(stderr, "%s\n", m);
    else
      fprintf(stderr, "%s/%s\n", root, m);
  }
  lk_messages_free(&msgs);
  if (problems) {
    fprintf(stderr, "check: %d problem%s in %s\n", problems, problems == 1 ? "" : "s", root);
    return 1;
  }
  printf("ok: %zu modules, %zu controllers, %zu fixture cases passed (%s, %s)\n", st.modules,
         st.controllers, st.cases, root, revision);
  return 0;
}
