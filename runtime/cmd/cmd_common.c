/* cmd_common.c: the script set and engine setup of render, diff and check
 * (see cmd_common.h). Owns nothing beyond each call. */
#include <stdio.h>

#include "cmd/cmd_common.h"

int cmd_scripts_load(const char *prog, const char *dir, int bare, char *buf, size_t buflen,
                     const char **dir_out, struct lk_scriptset **set)
{
  return cmd_scripts_load_overlay(prog, dir, bare, NULL, 0, NULL, buf, buflen, dir_out, set);
}

int cmd_scripts_load_overlay(const char *prog, const char *dir, int bare,
                             const struct lk_overlay_entry *ov, size_t nov, const char *origin,
                             char *buf, size_t buflen, const char **dir_out,
                             struct lk_scriptset **set)
{
  char err[1024];
  if (!dir && !(dir = lk_scriptset_default_dir(buf, buflen))) {
    fprintf(stderr, "%s: no scripts beside the binary; use --scripts DIR\n", prog);
    return -1;
  }
  if (lk_scriptset_load(dir, ov, nov, origin, set, err, sizeof(err)) != 0) {
    if (bare)
      fprintf(stderr, "%s\n", err);
    else
      fprintf(stderr, "%s: %s\n", prog, err);
    return -1;
  }
  *dir_out = dir;
  return 0;
}

int cmd_engine_new(const char *dir, struct lk_scriptset *set, struct lk_engine **e)
{
  struct lk_messages msgs = {0};
  if (lk_engine_new(set, NULL, e, &msgs) < 0) {
    lk_messages_free(&msgs);
    return -1;
  }
  for (size_t i = 0; i < msgs.n; i++)
    fprintf(stderr, "%s/%s\n", dir, msgs.v[i]);
  lk_messages_free(&msgs);
  return 0;
}
