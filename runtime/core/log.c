/* log.c: the process logger (log.h): JSON lines or text, verbosity, key
 * redaction and byte-safe escaping. Owns only its global settings; a record
 * is formatted into a growable buffer and written
 * with one fwrite. Depends on util.c for the time format. */
#include <ctype.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "buf.h"
#include "json.h"
#include "log.h"
#include "util.h"

#define MAX_FIELDS 32 /* string pairs taken by k8s_log / k8s_log_v */

static struct {
  enum k8s_log_format format;
  int verbosity;
  FILE *out;
  double (*now)(void);
} logger = {K8S_LOG_JSON, 0, NULL, NULL};

void k8s_log_init(enum k8s_log_format format, int verbosity, FILE *out)
{
  logger.format = format;
  logger.verbosity = verbosity < 0 ? 0 : verbosity;
  logger.out = out;
}

void k8s_log_set_format(enum k8s_log_format format)
{
  logger.format = format;
}

void k8s_log_set_verbosity(int verbosity)
{
  logger.verbosity = verbosity < 0 ? 0 : verbosity;
}

void k8s_log_set_output(FILE *out)
{
  logger.out = out;
}

int k8s_log_verbosity(void)
{
  return logger.verbosity;
}

void k8s_log_set_clock(double (*now)(void))
{
  logger.now = now;
}

const char *k8s_log_level_name(enum k8s_log_level level)
{
  static const char *const names[] = {"error", "warn", "info", "debug"};
  return (unsigned)level < 4 ? names[level] : "info";
}

int k8s_log_enabled(enum k8s_log_level level, int v)
{
  if (level != K8S_LOG_DEBUG) return 1;
  return logger.verbosity >= (v < 1 ? 1 : v);
}

/* {====================================================================
 * Escaping
 * ===================================================================== */

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
  unsigned c = s[0];
  size_t len;
  unsigned cp;
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf)
    len = 2, cp = c & 0x1f;
  else if (c >= 0xe0 && c <= 0xef)
    len = 3, cp = c & 0x0f;
  else if (c >= 0xf0 && c <= 0xf4)
    len = 4, cp = c & 0x07;
  else
    return 0;
  if (n < len) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (s[i] & 0x3f);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
      (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return len;
}

static void json_escaped(struct k8s_buf *b, const char *str)
{
  static const char hex[] = "0123456789abcdef";
  const unsigned char *s = (const unsigned char *)str;
  size_t n = strlen(str);
  k8s_buf_addc(b, '"');
  for (size_t i = 0; i < n;) {
    unsigned c = s[i];
    size_t l = utf8_len(s + i, n - i);
    if (l > 1) {
      k8s_buf_add(b, s + i, l);
      i += l;
      continue;
    }
    i++;
    if (l == 1 && c >= 0x20 && c != '"' && c != '\\' && c != 0x7f) {
      k8s_buf_addc(b, (char)c);
    } else if (c == '"' || c == '\\') {
      k8s_buf_addc(b, '\\');
      k8s_buf_addc(b, (char)c);
    } else if (c == '\n') {
      k8s_buf_adds(b, "\\n");
    } else if (c == '\t') {
      k8s_buf_adds(b, "\\t");
    } else if (c == '\r') {
      k8s_buf_adds(b, "\\r");
    } else { /* control byte, or a byte of invalid UTF-8: \u00XX */
      char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      k8s_buf_add(b, u, 6);
    }
  }
  k8s_buf_addc(b, '"');
}

/* Text format: quoted (with \" \\ \n \xXX) when the value has spaces, '=',
 * quotes, control bytes or invalid UTF-8, or is empty; else as is. */
static void text_escaped(struct k8s_buf *b, const char *str, int allow_bare)
{
  const unsigned char *s = (const unsigned char *)str;
  size_t n = strlen(str);
  int bare = allow_bare && n > 0;
  for (size_t i = 0; i < n && bare;) {
    size_t l = utf8_len(s + i, n - i);
    if (!l ||
        (l == 1 && (s[i] <= 0x20 || s[i] == '"' || s[i] == '=' || s[i] == '\\' || s[i] == 0x7f)))
      bare = 0;
    i += l ? l : 1;
  }
  if (bare) {
    k8s_buf_add(b, s, n);
    return;
  }
  k8s_buf_addc(b, '"');
  for (size_t i = 0; i < n;) {
    size_t l = utf8_len(s + i, n - i);
    unsigned c = s[i];
    if (l > 1) {
      k8s_buf_add(b, s + i, l);
      i += l;
      continue;
    }
    i++;
    if (l == 1 && c >= 0x20 && c != '"' && c != '\\' && c != 0x7f)
      k8s_buf_addc(b, (char)c);
    else if (c == '"' || c == '\\')
      k8s_buf_printf(b, "\\%c", c);
    else if (c == '\n')
      k8s_buf_adds(b, "\\n");
    else if (c == '\t')
      k8s_buf_adds(b, "\\t");
    else
      k8s_buf_printf(b, "\\x%02x", c);
  }
  k8s_buf_addc(b, '"');
}

static int redacted(const char *key)
{
  static const char *const words[] = {"token", "authorization", "password", "secret"};
  size_t n = strlen(key);
  for (size_t i = 0; i < 4; i++) {
    size_t w = strlen(words[i]);
    if (n >= w && strcasecmp(key + n - w, words[i]) == 0) return 1;
  }
  return 0;
}

/* }==================================================================== */

/* {====================================================================
 * Records
 * ===================================================================== */

/* 1 when s is a JSON number (RFC 8259: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?). */
static int json_number_text(const char *s)
{
  if (*s == '-') s++;
  if (*s == '0')
    s++;
  else if (*s >= '1' && *s <= '9')
    while (*s >= '0' && *s <= '9')
      s++;
  else
    return 0;
  if (*s == '.') {
    if (!(*++s >= '0' && *s <= '9')) return 0;
    while (*s >= '0' && *s <= '9')
      s++;
  }
  if (*s == 'e' || *s == 'E') {
    s++;
    if (*s == '+' || *s == '-') s++;
    if (!(*s >= '0' && *s <= '9')) return 0;
    while (*s >= '0' && *s <= '9')
      s++;
  }
  return *s == '\0';
}

static void format_record(struct k8s_buf *b, enum k8s_log_level level, int v, const char *msg,
                          const struct k8s_log_field *fields, size_t nfields)
{
  char ts[K8S_TIME_BUF], num[40];
  k8s_rfc3339_ms(logger.now ? logger.now() : k8s_wallclock(), ts);
  int json = logger.format == K8S_LOG_JSON;
  if (json) {
    k8s_buf_printf(b, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":", ts, k8s_log_level_name(level));
    json_escaped(b, msg ? msg : "");
    if (level == K8S_LOG_DEBUG && v > 1) k8s_buf_printf(b, ",\"v\":%d", v);
  } else {
    char lv[8];
    const char *name = k8s_log_level_name(level);
    size_t i = 0;
    for (; name[i] && i < sizeof lv - 1; i++)
      lv[i] = (char)toupper((unsigned char)name[i]);
    lv[i] = '\0';
    k8s_buf_printf(b, "%s %-5s ", ts, lv);
    text_escaped(b, msg ? msg : "", 1);
  }
  for (size_t i = 0; i < nfields; i++) {
    const struct k8s_log_field *f = &fields[i];
    const char *key = f->key ? f->key : "";
    if (json) {
      k8s_buf_addc(b, ',');
      json_escaped(b, key);
      k8s_buf_addc(b, ':');
    } else {
      k8s_buf_addc(b, ' ');
      text_escaped(b, key, 1);
      k8s_buf_addc(b, '=');
    }
    if (redacted(key)) {
      if (json)
        k8s_buf_adds(b, "\"[REDACTED]\"");
      else
        k8s_buf_adds(b, "[REDACTED]");
      continue;
    }
    switch (f->type) {
    case K8S_LOG_INT:
      k8s_buf_printf(b, "%lld", f->i);
      break;
    case K8S_LOG_BOOL:
      k8s_buf_adds(b, f->i ? "true" : "false");
      break;
    case K8S_LOG_REAL:
      if (f->d != f->d || f->d - f->d != 0) /* NaN or inf: not JSON numbers */
        k8s_buf_adds(b, json ? "null" : "NaN");
      else {
        k8s_json_format_real(f->d, num, sizeof num);
        k8s_buf_adds(b, num);
      }
      break;
    case K8S_LOG_NUMBER:
      if (f->s && (!json || json_number_text(f->s))) {
        k8s_buf_adds(b, f->s);
        break;
      }
      goto string;
    case K8S_LOG_RAW_JSON:
      if (f->s) {
        k8s_buf_adds(b, f->s);
        break;
      }
      /* fallthrough */
    case K8S_LOG_STR:
    default:
    string:
      if (!f->s)
        k8s_buf_adds(b, json ? "null" : "<nil>");
      else if (json)
        json_escaped(b, f->s);
      else
        text_escaped(b, f->s, 1);
    }
  }
  k8s_buf_adds(b, json ? "}\n" : "\n");
}

size_t k8s_log_format(char *buf, size_t buflen, enum k8s_log_level level, int v, const char *msg,
                      const struct k8s_log_field *fields, size_t nfields)
{
  struct k8s_buf b = {0};
  format_record(&b, level, v, msg, fields, nfields);
  size_t n = b.len;
  if (buflen) {
    size_t c = n < buflen - 1 ? n : buflen - 1;
    if (c) memcpy(buf, b.p, c);
    buf[c] = '\0';
  }
  k8s_buf_free(&b);
  return n;
}

void k8s_log_fields(enum k8s_log_level level, int v, const char *msg,
                    const struct k8s_log_field *fields, size_t nfields)
{
  if (!k8s_log_enabled(level, v)) return;
  struct k8s_buf b = {0};
  format_record(&b, level, v, msg, fields, nfields);
  if (!b.failed && b.len) fwrite(b.p, 1, b.len, logger.out ? logger.out : stderr);
  k8s_buf_free(&b);
}

static void log_pairs(enum k8s_log_level level, int v, const char *msg, va_list ap)
{
  struct k8s_log_field fields[MAX_FIELDS];
  size_t n = 0;
  const char *key;
  while (n < MAX_FIELDS && (key = va_arg(ap, const char *)) != NULL) {
    fields[n] = (struct k8s_log_field){.key = key, .type = K8S_LOG_STR};
    if (key[0] == '#') /* K8S_NUM(key) */
      fields[n] = (struct k8s_log_field){.key = key + 1, .type = K8S_LOG_NUMBER};
    fields[n].s = va_arg(ap, const char *);
    n++;
  }
  k8s_log_fields(level, v, msg, fields, n);
}

void k8s_log(enum k8s_log_level level, const char *msg, ...)
{
  if (!k8s_log_enabled(level, 1)) return;
  va_list ap;
  va_start(ap, msg);
  log_pairs(level, 1, msg, ap);
  va_end(ap);
}

void k8s_log_v(int v, const char *msg, ...)
{
  enum k8s_log_level level = v <= 0 ? K8S_LOG_INFO : K8S_LOG_DEBUG;
  if (!k8s_log_enabled(level, v)) return;
  va_list ap;
  va_start(ap, msg);
  log_pairs(level, v, msg, ap);
  va_end(ap);
}

/* }==================================================================== */
