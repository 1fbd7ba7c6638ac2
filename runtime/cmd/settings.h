/* settings.h: the settings `run` and `check` share (the sandbox's memory cap
 * and instruction budget) and `run`'s controller settings, each a flag with an
 * environment variable as its documented fallback (doc/development.md,
 * "Command line"). A value that does not parse is an error naming the flag or
 * the variable, never a silent default.
 *
 *   --lua-memory-limit BYTES      SCHEDSIM_LUA_MEMORY_LIMIT       (64Mi)
 *   --lua-instruction-budget N    SCHEDSIM_LUA_INSTRUCTION_BUDGET (1000000)
 *   --sync-period DURATION        SCHEDSIM_SYNC_PERIOD            (10m)
 *   --max-concurrent-reconciles N SCHEDSIM_MAX_CONCURRENT_RECONCILES (16)
 *   --child-events-batch-period DURATION
 *                                 SCHEDSIM_CHILD_EVENTS_BATCH_PERIOD (100ms; 0: off)
 *
 * BYTES: an integer with an optional Ki, Mi or Gi suffix; DURATION: a number
 * with ms, s, m or h (plain: seconds). */
#ifndef SCHEDSIM_CMD_SETTINGS_H
#define SCHEDSIM_CMD_SETTINGS_H

#include <stddef.h>

struct settings {
  size_t lua_memory_limit;     /* bytes; 0: not given */
  long lua_instruction_budget; /* 0: not given */
  double sync_period;          /* seconds; 0: not given */
  int max_concurrent;          /* 0: not given */
  double child_batch;          /* seconds, 0..10 */
  int child_batch_given;
};

/* Parses "500ms", "10s", "2m", "1h" or plain seconds (>= 0). 0 or -1. */
int settings_parse_duration(const char *s, double *out);

/* If argv[*i] is one of the settings' flags ("--name V" or "--name=V"), parses
 * it into st, advances *i past the value and returns 1; returns 0 for another
 * argument, -1 (message on stderr, prefixed with cmd) for a bad value. run
 * is 1 for `run`'s flags too, 0 for the sandbox's only. */
int settings_flag(const char *cmd, int argc, char **argv, int *i, int run, struct settings *st);

/* Fills what no flag gave from the environment variables, then the defaults.
 * Returns 0, or -1 (message on stderr naming the variable) for a bad value. */
int settings_finish(const char *cmd, int run, struct settings *st);

#endif
