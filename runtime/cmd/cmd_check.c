/* cmd_check.c: `schedsim-operator check [--scripts DIR]`: compiles every
 * module of a script set, validates controllers.lua, loads every reconciler
 * and runs every fixture case (runtime/lua/check.h). Prints one
 * "file:line: message" line per problem on stderr and exits 1, or prints a
 * summary and exits 0; usage errors exit 2. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "cmd/cmd_common.h"
#include "cmd/settings.h"
#include "lua/check.h"

static void usage(FILE *out)
{
  fprintf(out, "usage: schedsim-operator check [--scripts DIR] [--lua-memory-limit BYTES]\n"
               "                               [--lua-instruction-budget N]\n\n"
               "Compiles and self-tests a script set: every module, controllers.lua, every\n"
               "reconciler, and every fixture case under <folder>/fixtures/*.yaml, with the\n"
               "sandbox settings of `run` (same flags and environment fallbacks).\n"
               "Default DIR: the scripts installed beside the binary.\n");
}

int cmd_check(int argc, char **argv)
{
  const char *dir = NULL;
  struct settings set_flags = {0};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int r;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      return 0;
    }
    if ((r = settings_flag("check", argc, argv, &i, 0, &set_flags)) != 0) {
      if (r < 0) return 2;
      continue;
    }
    if (!strcmp(a, "--scripts") && i + 1 < argc) {
      dir = argv[++i];
      continue;
    }
    if (!strncmp(a, "--scripts=", 10)) {
      dir = a + 10;
      continue;
    }
    fprintf(stderr, "schedsim-operator check: unexpected argument %s\n", a);
    usage(stderr);
    return 2;
  }
  if (settings_finish("check", 0, &set_flags) != 0) return 2;
  struct lk_engine_opts eo = {set_flags.lua_memory_limit, set_flags.lua_instruction_budget};
  char buf[PATH_MAX];
  struct lk_scriptset *set;
  /* bare: a script set that does not load is reported as file: message */
  if (cmd_scripts_load("schedsim-operator check", dir, 1, buf, sizeof(buf), &dir, &set) != 0)
    return 2;
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
