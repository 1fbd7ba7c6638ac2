/* watchframe.c: line framing and decoding of a Kubernetes watch stream
 * (watchframe.h). Owns the partial-line buffer; complete lines inside a chunk
 * are parsed in place without copying. Depends on jansson. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "watchframe.h"

struct k8s_watchframe {
  k8s_watchframe_event_cb on_event;
  k8s_watchframe_error_cb on_error;
  void *ud;
  size_t max_line;
  char *buf; /* the partial line */
  size_t len, cap;
  int skipping; /* inside an oversized line: drop bytes up to the newline */
};

static const char *const type_names[] = {"ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"};

const char *k8s_watch_type_name(enum k8s_watch_type t)
{
  return (unsigned)t < 5 ? type_names[t] : "UNKNOWN";
}

struct k8s_watchframe *k8s_watchframe_new(k8s_watchframe_event_cb on_event,
                                          k8s_watchframe_error_cb on_error, void *ud)
{
  struct k8s_watchframe *f = calloc(1, sizeof *f);
  if (!f) return NULL;
  f->on_event = on_event;
  f->on_error = on_error;
  f->ud = ud;
  f->max_line = K8S_WATCHFRAME_MAX_LINE;
  return f;
}

void k8s_watchframe_free(struct k8s_watchframe *f)
{
  if (!f) return;
  free(f->buf);
  free(f);
}

void k8s_watchframe_set_max_line(struct k8s_watchframe *f, size_t max_line)
{
  f->max_line = max_line;
}

size_t k8s_watchframe_pending(const struct k8s_watchframe *f)
{
  return f->len;
}

static void report(struct k8s_watchframe *f, enum k8s_watchframe_error code, const char *fmt,
                   const char *detail)
{
  char msg[300];
  snprintf(msg, sizeof msg, fmt, detail);
  if (f->on_error) f->on_error(f->ud, code, msg);
}

static const char *str_or(const json_t *v, const char *dflt)
{
  return json_is_string(v) ? json_string_value(v) : dflt;
}

/* Parses one complete line (without its newline); returns 1 per event. */
static int parse_line(struct k8s_watchframe *f, const char *line, size_t len)
{
  if (len && line[len - 1] == '\r') len--;
  size_t i = 0;
  while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r'))
    i++;
  if (i == len) return 0; /* blank line (a keep-alive) */
  json_error_t e;
  json_t *root = json_loadb(line, len, JSON_ALLOW_NUL, &e);
  if (!root) {
    report(f, K8S_WATCHFRAME_E_JSON, "watch event is not JSON: %s", e.text);
    return 0;
  }
  const char *type = str_or(json_object_get(root, "type"), NULL);
  json_t *obj = json_object_get(root, "object");
  int t = -1;
  for (int k = 0; type && k < 5; k++)
    if (strcmp(type, type_names[k]) == 0) t = k;
  if (t < 0 || !json_is_object(obj)) {
    report(f, K8S_WATCHFRAME_E_EVENT,
           t < 0 ? "watch event has unknown type \"%.40s\"" : "watch event %s has no object",
           type ? type : "(none)");
    json_decref(root);
    return 0;
  }
  struct k8s_watch_event ev = {.type = (enum k8s_watch_type)t, .object = obj};
  ev.resource_version =
      str_or(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"), NULL);
  ev.reason = "";
  ev.message = "";
  if (t == K8S_WATCH_ERROR) {
    json_t *code = json_object_get(obj, "code");
    ev.code = json_is_integer(code) ? (int)json_integer_value(code) : 0;
    ev.reason = str_or(json_object_get(obj, "reason"), "");
    ev.message = str_or(json_object_get(obj, "message"), "");
    ev.expired = ev.code == 410 || !strcmp(ev.reason, "Expired") || !strcmp(ev.reason, "Gone");
  }
  if (f->on_event) f->on_event(f->ud, &ev);
  json_decref(root);
  return 1;
}

static int buffer_append(struct k8s_watchframe *f, const char *data, size_t n)
{
  if (f->len + n > f->cap) {
    size_t cap = f->cap ? f->cap : 4096;
    while (cap < f->len + n)
      cap *= 2;
    char *b = realloc(f->buf, cap);
    if (!b) return -1;
    f->buf = b;
    f->cap = cap;
  }
  memcpy(f->buf + f->len, data, n);
  f->len += n;
  return 0;
}

static void buffer_reset(struct k8s_watchframe *f)
{
  f->len = 0;
  if (f->cap > (1 << 20)) { /* do not keep a huge buffer after a big event */
    free(f->buf);
    f->buf = NULL;
    f->cap = 0;
  }
}

int k8s_watchframe_feed(struct k8s_watchframe *f, const char *data, size_t len)
{
  int events = 0;
  while (len) {
    const char *nl = memchr(data, '\n', len);
    size_t n = nl ? (size_t)(nl - data) : len; /* bytes of this line in the chunk */
    if (f->skipping) {
      if (nl) f->skipping = 0;
    } else if (f->len + n > f->max_line) {
      report(f, K8S_WATCHFRAME_E_OVERSIZE, "watch event longer than the limit%s", "");
      buffer_reset(f);
      f->skipping = !nl;
    } else if (nl && f->len == 0) {
      events += parse_line(f, data, n); /* whole line inside the chunk: no copy */
    } else {
      if (buffer_append(f, data, n) < 0) {
        buffer_reset(f);
        f->skipping = !nl;
        return -1;
      }
      if (nl) {
        events += parse_line(f, f->buf, f->len);
        buffer_reset(f);
      }
    }
    if (!nl) break;
    data = nl + 1;
    len -= n + 1;
  }
  return events;
}

int k8s_watchframe_finish(struct k8s_watchframe *f)
{
  int events = 0;
  if (f->len) {
    json_error_t e;
    json_t *probe = json_loadb(f->buf, f->len, JSON_ALLOW_NUL, &e);
    if (probe) {
      json_decref(probe);
      events = parse_line(f, f->buf, f->len);
    } else {
      report(f, K8S_WATCHFRAME_E_TRUNCATED, "watch stream ended inside an event%s", "");
    }
  }
  buffer_reset(f);
  f->skipping = 0;
  return events;
}
