/* log.h: structured logs, one line per record.
 *
 * JSON lines by default: {"ts":"2026-01-01T00:00:00.000Z","level":"info",
 * "msg":"...", then the fields in call order, e.g. "controller", "key",
 * "reconcileID"}. Text format: `ts LEVEL msg key=value ...` with values
 * quoted when they contain spaces, quotes or control bytes.
 *
 * Levels and verbosity (klog / logr habit): error, warn and info print always
 * (info is V(0)); k8s_log_v(n, ...) prints when the threshold set by `-v N`
 * is >= n and is shown as level "debug" (n >= 1). Fields whose key is
 * token, authorization, password or secret (case-insensitive, also as a
 * suffix such as bearerToken or client_secret) are written as "[REDACTED]".
 * Any byte is safe in messages and values: JSON output escapes control bytes
 * and invalid UTF-8 (as \u00XX of the byte), text output escapes them as \xXX.
 *
 * State is process-global (one logger); configure it before other threads
 * log. Each record is written with a single fwrite of a complete line.
 * Nothing is allocated that the caller must free. */
#ifndef K8S_CORE_LOG_H
#define K8S_CORE_LOG_H

#include <stdio.h>
#include <stddef.h>

enum k8s_log_level { K8S_LOG_ERROR = 0, K8S_LOG_WARN, K8S_LOG_INFO, K8S_LOG_DEBUG };
enum k8s_log_format { K8S_LOG_JSON = 0, K8S_LOG_TEXT };

enum k8s_log_field_type {
  K8S_LOG_STR = 0,  /* s */
  K8S_LOG_INT,      /* i */
  K8S_LOG_REAL,     /* d */
  K8S_LOG_BOOL,     /* i (0/1) */
  K8S_LOG_RAW_JSON, /* s: valid JSON inserted as is (text format: printed as is) */
  K8S_LOG_NUMBER    /* s: a number's text ("0", "220.6") written as a JSON number; text
                       that is not a JSON number is written as a string */
};

/* In the key, value pairs of k8s_log / k8s_log_v, a key made with
 * K8S_NUM("checkMs") marks its value (still a string) as a number: JSON
 * writes "checkMs":220.6, not "checkMs":"220.6" (K8S_LOG_NUMBER). */
#define K8S_NUM(key) "#" key

struct k8s_log_field {
  const char *key;
  enum k8s_log_field_type type;
  const char *s;
  long long i;
  double d;
};

/* Configures the logger: format, verbosity threshold (-v N, >= 0) and output
 * stream (NULL = stderr; borrowed, must outlive logging). */
void k8s_log_init(enum k8s_log_format format, int verbosity, FILE *out);
void k8s_log_set_format(enum k8s_log_format format);
void k8s_log_set_verbosity(int verbosity);
void k8s_log_set_output(FILE *out);
int k8s_log_verbosity(void);

/* Replaces the wall clock used for "ts" (NULL restores it); for tests. */
void k8s_log_set_clock(double (*now)(void));

/* 1 when a record of this level (and V-level v, for K8S_LOG_DEBUG) prints. */
int k8s_log_enabled(enum k8s_log_level level, int v);

/* Logs msg with string fields given as key, value pairs ending with NULL:
 *   k8s_log(K8S_LOG_INFO, "reconciled", "controller", c, "key", k, NULL);
 * A NULL value is written as null (JSON) / <nil> (text). */
void k8s_log(enum k8s_log_level level, const char *msg, ...) __attribute__((sentinel));

/* V-level debug record: printed when verbosity >= v; pairs as for k8s_log. */
void k8s_log_v(int v, const char *msg, ...) __attribute__((sentinel));

/* Typed fields (from Lua: numbers, booleans, tables as raw JSON). */
void k8s_log_fields(enum k8s_log_level level, int v, const char *msg,
                    const struct k8s_log_field *fields, size_t nfields);

/* Formats one record into buf (for tests and the Lua module) exactly as it
 * would be written, including the trailing newline; returns the length it
 * needs (like snprintf; output truncated when it exceeds buflen). */
size_t k8s_log_format(char *buf, size_t buflen, enum k8s_log_level level, int v, const char *msg,
                      const struct k8s_log_field *fields, size_t nfields);

/* "error", "warn", "info", "debug". */
const char *k8s_log_level_name(enum k8s_log_level level);

#endif
