/* settings.c: flags with environment fallbacks shared by run and check
 * (settings.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/settings.h"
#include "lua/sandbox.h"

#define DEFAULT_SYNC_PERIOD 600.0
#define DEFAULT_MAX_CONCURRENT 16
#define DEFAULT_CHILD_BATCH 0.1

int settings_parse_duration(const char *s, double *out)
{
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (errno || end == s || v < 0) return -1;
  if (!*end || !strcmp(end, "s"))
    *out = v;
  else if (!strcmp(end, "ms"))
    *out = v / 1000;
  else if (!strcmp(end, "m"))
    *out = v * 60;
  else if (!strcmp(end, "h"))
    *out = v * 3600;
  else
    return -1;
  return 0;
}

static int parse_bytes(const char *s, size_t *out)
{
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *s == '-') return -1;
  if (!strcmp(end, "Ki"))
    v <<= 10;
  else if (!strcmp(end, "Mi"))
    v <<= 20;
  else if (!strcmp(end, "Gi"))
    v <<= 30;
  else if (*end)
    return -1;
  *out = (size_t)v;
  return v ? 0 : -1;
}

static int parse_count(const char *s, long max, long *out)
{
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno || end == s || *end || v < 1 || v > max) return -1;
  *out = v;
  return 0;
}

/* One setting: its flag, variable and parser. */
enum kind { BYTES, COUNT_BIG, COUNT_SMALL, DURATION, PERIOD };
static const struct {
  const char *flag, *env;
  enum kind kind;
  int run_only;
} table[] = {
    {"--lua-memory-limit", "SCHEDSIM_LUA_MEMORY_LIMIT", BYTES, 0},
    {"--lua-instruction-budget", "SCHEDSIM_LUA_INSTRUCTION_BUDGET", COUNT_BIG, 0},
    {"--sync-period", "SCHEDSIM_SYNC_PERIOD", DURATION, 1},
    {"--max-concurrent-reconciles", "SCHEDSIM_MAX_CONCURRENT_RECONCILES", COUNT_SMALL, 1},
    {"--child-events-batch-period", "SCHEDSIM_CHILD_EVENTS_BATCH_PERIOD", PERIOD, 1},
};
#define NSETTINGS (sizeof(table) / sizeof(table[0]))

/* Parses value into setting k of st; 0 or -1. */
static int set(size_t k, const char *value, struct settings *st)
{
  long n;
  switch (table[k].kind) {
  case BYTES:
    return parse_bytes(value, &st->lua_memory_limit);
  case COUNT_BIG:
    if (parse_count(value, 2000000000L, &n)) return -1;
    st->lua_instruction_budget = n;
    return 0;
  case COUNT_SMALL:
    if (parse_count(value, 1024, &n)) return -1;
    st->max_concurrent = (int)n;
    return 0;
  case DURATION:
    return settings_parse_duration(value, &st->sync_period) || st->sync_period <= 0 ? -1 : 0;
  case PERIOD:
    if (settings_parse_duration(value, &st->child_batch) || st->child_batch > 10) return -1;
    st->child_batch_given = 1;
    return 0;
  }
  return -1;
}

static int given(size_t k, const struct settings *st)
{
  switch (table[k].kind) {
  case BYTES:
    return st->lua_memory_limit != 0;
  case COUNT_BIG:
    return st->lua_instruction_budget != 0;
  case COUNT_SMALL:
    return st->max_concurrent != 0;
  case DURATION:
    return st->sync_period != 0;
  case PERIOD:
    return st->child_batch_given;
  }
  return 0;
}

static const char *want(size_t k)
{
  switch (table[k].kind) {
  case BYTES:
    return "a positive number of bytes (optionally Ki, Mi, Gi)";
  case COUNT_BIG:
    return "a positive integer";
  case COUNT_SMALL:
    return "an integer from 1 to 1024";
  case DURATION:
    return "a positive duration such as 30s or 10m";
  case PERIOD:
    return "a duration from 0 (off) to 10s, such as 100ms";
  }
  return "";
}

int settings_flag(const char *cmd, int argc, char **argv, int *i, int run, struct settings *st)
{
  const char *a = argv[*i];
  for (size_t k = 0; k < NSETTINGS; k++) {
    if (table[k].run_only && !run) continue;
    size_t n = strlen(table[k].flag);
    const char *value;
    if (strncmp(a, table[k].flag, n)) continue;
    if (a[n] == '=')
      value = a + n + 1;
    else if (!a[n] && *i + 1 < argc)
      value = argv[++*i];
    else if (!a[n]) {
      fprintf(stderr, "schedsim-operator %s: %s needs a value\n", cmd, table[k].flag);
      return -1;
    } else
      continue;
    if (set(k, value, st)) {
      fprintf(stderr, "schedsim-operator %s: %s: want %s, got \"%s\"\n", cmd, table[k].flag,
              want(k), value);
      return -1;
    }
    return 1;
  }
  return 0;
}

int settings_finish(const char *cmd, int run, struct settings *st)
{
  for (size_t k = 0; k < NSETTINGS; k++) {
    if ((table[k].run_only && !run) || given(k, st)) continue;
    const char *value = getenv(table[k].env);
    if (value && *value && set(k, value, st)) {
      fprintf(stderr, "schedsim-operator %s: %s: want %s, got \"%s\"\n", cmd, table[k].env, want(k),
              value);
      return -1;
    }
  }
  if (!st->lua_memory_limit) st->lua_memory_limit = LK_DEFAULT_MEMORY_LIMIT;
  if (!st->lua_instruction_budget) st->lua_instruction_budget = LK_DEFAULT_INSTRUCTION_BUDGET;
  if (run && !st->sync_period) st->sync_period = DEFAULT_SYNC_PERIOD;
  if (run && !st->max_concurrent) st->max_concurrent = DEFAULT_MAX_CONCURRENT;
  if (run && !st->child_batch_given) st->child_batch = DEFAULT_CHILD_BATCH;
  return 0;
}
