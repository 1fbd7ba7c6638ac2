/* cmd_version.c: `schedsim-operator version` (and `--version`): the
 * release, the commit and the build date the build recorded
 * (cmake/buildinfo.cmake), as text or, with -o json|yaml, in the field names
 * of Kubernetes' version.Info (gitVersion, gitCommit, gitTreeState,
 * buildDate, platform) plus luaVersion. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include <jansson.h>
#include <lua.h>

#include "cmd/cmd.h"
#include "core/yaml.h"

extern const char schedsim_git_commit[], schedsim_git_tree_state[], schedsim_build_date[];

/* "linux/amd64" as Go names it (GOOS/GOARCH). */
static void platform(char *buf, size_t len)
{
  struct utsname u;
  const char *arch = "unknown";
  if (uname(&u) == 0) {
    arch = !strcmp(u.machine, "x86_64")                                   ? "amd64"
           : !strcmp(u.machine, "aarch64") || !strcmp(u.machine, "arm64") ? "arm64"
                                                                          : u.machine;
  }
  snprintf(buf, len, "linux/%.32s", arch);
}

int cmd_version(int argc, char **argv)
{
  const char *output = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-o") && i + 1 < argc)
      output = argv[++i];
    else if (!strncmp(argv[i], "--output=", 9) || !strncmp(argv[i], "-o=", 3))
      output = strchr(argv[i], '=') + 1;
    else if (!strcmp(argv[i], "--output") && i + 1 < argc)
      output = argv[++i];
    else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      printf("usage: schedsim-operator version [-o json|yaml]\n");
      return 0;
    } else {
      fprintf(stderr, "schedsim-operator version: unexpected argument %s\n", argv[i]);
      return 2;
    }
  }
  char plat[64], short_commit[13];
  platform(plat, sizeof plat);
  snprintf(short_commit, sizeof short_commit, "%s", schedsim_git_commit);
  if (!output) {
    printf("schedsim-operator v%s (commit %s%s, built %s, %s, %s)\n", SCHEDSIM_VERSION,
           short_commit, !strcmp(schedsim_git_tree_state, "dirty") ? "-dirty" : "",
           schedsim_build_date, LUA_RELEASE, plat);
    return 0;
  }
  if (strcmp(output, "json") && strcmp(output, "yaml")) {
    fprintf(stderr, "schedsim-operator version: -o must be json or yaml\n");
    return 2;
  }
  json_t *info =
      json_pack("{s:s+, s:s, s:s, s:s, s:s, s:s}", "gitVersion", "v", SCHEDSIM_VERSION, "gitCommit",
                schedsim_git_commit, "gitTreeState", schedsim_git_tree_state, "buildDate",
                schedsim_build_date, "luaVersion", LUA_RELEASE, "platform", plat);
  char *text = !info                     ? NULL
               : !strcmp(output, "json") ? json_dumps(info, JSON_INDENT(2) | JSON_PRESERVE_ORDER)
                                         : k8s_yaml_dump(info);
  json_decref(info);
  if (!text) return 1;
  fputs(text, stdout);
  if (!strcmp(output, "json")) putchar('\n');
  free(text);
  return 0;
}
