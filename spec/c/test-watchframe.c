/* test-watchframe.c: framing of watch streams (runtime/core/watchframe.c):
 * an event split at every byte boundary, several events per chunk, blank
 * lines and CRLF, bookmarks, a 410 Expired ERROR event, garbage and oversized
 * lines (reported, then skipped), and a truncated end of stream. */
#include <string.h>
#include "core/buf.h"
#include "core/watchframe.h"
#include "testhelp.h"

struct seen {
  int events, errors;
  char log[8192]; /* "TYPE:name@rv " per event, "!code " per error */
  int last_code, last_expired;
  char last_reason[64];
};

static void on_event(void *ud, const struct k8s_watch_event *ev)
{
  struct seen *s = ud;
  const char *name =
      json_string_value(json_object_get(json_object_get(ev->object, "metadata"), "name"));
  size_t l = strlen(s->log);
  snprintf(s->log + l, sizeof s->log - l, "%s:%s@%s ", k8s_watch_type_name(ev->type),
           name ? name : "-", ev->resource_version ? ev->resource_version : "-");
  s->events++;
  s->last_code = ev->code;
  s->last_expired = ev->expired;
  snprintf(s->last_reason, sizeof s->last_reason, "%s", ev->reason);
}

static void on_error(void *ud, enum k8s_watchframe_error code, const char *msg)
{
  struct seen *s = ud;
  size_t l = strlen(s->log);
  snprintf(s->log + l, sizeof s->log - l, "!%d ", (int)code);
  s->errors++;
}

static const char *ev1 =
    "{\"type\":\"ADDED\",\"object\":{\"kind\":\"ConfigMap\",\"metadata\":{\"name\":"
    "\"a\",\"namespace\":\"n\",\"resourceVersion\":\"5\"},\"data\":{\"k\":\"v\\n\"}}}\n";
static const char *ev2 = "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"name\":\"\xc3\xa9\","
                         "\"resourceVersion\":\"6\"}}}\n";

static void test_split_everywhere(void)
{
  struct k8s_buf b = {0};
  k8s_buf_adds(&b, ev1);
  k8s_buf_adds(&b, ev2);
  int ok = 1;
  for (size_t cut = 0; cut <= b.len; cut++) {
    struct seen s = {0};
    struct k8s_watchframe *f = k8s_watchframe_new(on_event, on_error, &s);
    int n = k8s_watchframe_feed(f, b.p, cut);
    n += k8s_watchframe_feed(f, b.p + cut, b.len - cut);
    ok &= n == 2 && s.errors == 0 && !strcmp(s.log, "ADDED:a@5 MODIFIED:\xc3\xa9@6 ") &&
          k8s_watchframe_pending(f) == 0;
    k8s_watchframe_free(f);
  }
  test_cond("two events split at every byte boundary", ok);

  /* Three-way splits of the first event. */
  ok = 1;
  size_t n1 = strlen(ev1);
  for (size_t i = 0; i <= n1; i += 3)
    for (size_t j = i; j <= n1; j += 5) {
      struct seen s = {0};
      struct k8s_watchframe *f = k8s_watchframe_new(on_event, on_error, &s);
      k8s_watchframe_feed(f, ev1, i);
      k8s_watchframe_feed(f, ev1 + i, j - i);
      k8s_watchframe_feed(f, ev1 + j, n1 - j);
      ok &= s.events == 1 && s.errors == 0;
      k8s_watchframe_free(f);
    }
  test_cond("three-way splits", ok);

  /* Byte at a time. */
  struct seen s = {0};
  struct k8s_watchframe *f = k8s_watchframe_new(on_event, on_error, &s);
  for (size_t i = 0; i < b.len; i++)
    k8s_watchframe_feed(f, b.p + i, 1);
  test_cond("one byte at a time", s.events == 2 && s.errors == 0);
  k8s_watchframe_free(f);
  k8s_buf_free(&b);
}

static void test_chunks(void)
{
  struct seen s = {0};
  struct k8s_watchframe *f = k8s_watchframe_new(on_event, on_error, &s);
  struct k8s_buf b = {0};
  k8s_buf_adds(&b, ev1);
  k8s_buf_adds(&b, "\n\r\n   \n");
  k8s_buf_adds(&b, "{\"type\":\"DELETED\",\"object\":{\"metadata\":{\"name\":\"a\","
                   "\"resourceVersion\":\"7\"}}}\r\n");
  k8s_buf_adds(&b, "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"ConfigMap\",\"metadata\":{"
                   "\"resourceVersion\":\"12345\",\"annotations\":{\"k8s.io/initial-events-end\":"
                   "\"true\"}}}}\n");
  k8s_buf_adds(&b, ev2);
  int n = k8s_watchframe_feed(f, b.p, b.len);
  test_cond("several events in one chunk, blank lines and CRLF ignored",
            n == 4 && s.errors == 0 &&
                !strcmp(s.log, "ADDED:a@5 DELETED:a@7 BOOKMARK:-@12345 MODIFIED:\xc3\xa9@6 "));
  k8s_buf_free(&b);

  s = (struct seen){0};
  const char *gone =
      "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"apiVersion\":\"v1\","
      "\"metadata\":{},\"status\":\"Failure\",\"message\":\"too old resource version: "
      "1 (2)\",\"reason\":\"Expired\",\"code\":410}}\n";
  k8s_watchframe_feed(f, gone, strlen(gone));
  test_cond("410 ERROR decoded", s.events == 1 && s.last_code == 410 && s.last_expired &&
                                     !strcmp(s.last_reason, "Expired"));
  s = (struct seen){0};
  const char *other =
      "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"reason\":\"InternalError\","
      "\"code\":500}}\n";
  k8s_watchframe_feed(f, other, strlen(other));
  test_cond("500 ERROR is not expired", s.events == 1 && s.last_code == 500 && !s.last_expired);
  s = (struct seen){0};
  const char *gone2 = "{\"type\":\"ERROR\",\"object\":{\"reason\":\"Gone\"}}\n";
  k8s_watchframe_feed(f, gone2, strlen(gone2));
  test_cond("reason Gone without code is expired", s.events == 1 && s.last_expired);
  k8s_watchframe_free(f);
}

static void test_garbage(void)
{
  struct seen s = {0};
  struct k8s_watchframe *f = k8s_watchframe_new(on_event, on_error, &s);
  const char *junk = "not json\n{\"type\":\"ADDED\"}\n{\"type\":\"WHAT\",\"object\":{}}\n"
                     "[1,2]\n{\"type\":\"ADDED\",\"object\":[]}\n\xff\xfe\x00\x01\n";
  size_t junk_len = strlen(junk) + 3; /* through the NUL byte to the last newline */
  k8s_watchframe_feed(f, junk, junk_len);
  test_cond("garbage lines are reported", s.events == 0 && s.errors == 6);
  test_cond("error kinds", !strcmp(s.log, "!2 !3 !3 !3 !3 !2 "));
  s = (struct seen){0};
  k8s_watchframe_feed(f, ev1, strlen(ev1));
  test_cond("the stream continues after garbage", s.events == 1 && s.errors == 0);

  /* Oversized lines: limit 100 bytes. */
  s = (struct seen){0};
  k8s_watchframe_set_max_line(f, 100);
  struct k8s_buf b = {0};
  for (int i = 0; i < 50; i++)
    k8s_buf_adds(&b, "xxxxxxxxxx");
  k8s_watchframe_feed(f, b.p, 40);
  k8s_watchframe_feed(f, b.p, b.len); /* crosses the limit inside the second chunk */
  k8s_watchframe_feed(f, b.p, b.len); /* still the same line: silently skipped */
  test_cond("oversized line reported once", s.errors == 1 && !strcmp(s.log, "!1 "));
  test_cond("nothing buffered while skipping", k8s_watchframe_pending(f) == 0);
  k8s_watchframe_feed(f, "tail\n", 5);
  k8s_watchframe_feed(f, "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"ok\"}}}\n", 53);
  test_cond("next line after an oversized one is parsed", s.events == 1 && s.errors == 1);
  s = (struct seen){0};
  b.len = 0;
  k8s_buf_adds(&b, "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"");
  for (int i = 0; i < 60; i++)
    k8s_buf_addc(&b, 'n');
  k8s_buf_adds(&b, "\"}}}\n");
  k8s_buf_adds(&b, ev2);
  k8s_watchframe_feed(f, b.p, b.len);
  test_cond("an oversized complete line in one chunk, the next one parsed",
            s.errors == 1 && s.events == 1);
  k8s_watchframe_set_max_line(f, K8S_WATCHFRAME_MAX_LINE);
  k8s_buf_free(&b);

  /* End of stream. */
  s = (struct seen){0};
  k8s_watchframe_feed(f, ev1, 20);
  test_cond("partial line pending", k8s_watchframe_pending(f) == 20);
  test_cond("finish reports a truncated event",
            k8s_watchframe_finish(f) == 0 && s.errors == 1 && !strcmp(s.log, "!4 "));
  s = (struct seen){0};
  k8s_watchframe_feed(f, ev1, strlen(ev1) - 1); /* without the newline */
  test_cond("finish parses a complete last event", k8s_watchframe_finish(f) == 1 && s.events == 1);
  test_cond("finish resets", k8s_watchframe_pending(f) == 0);
  k8s_watchframe_free(f);

  f = k8s_watchframe_new(NULL, NULL, NULL);
  test_cond("NULL callbacks are allowed", k8s_watchframe_feed(f, junk, junk_len) == 0 &&
                                              k8s_watchframe_feed(f, ev1, strlen(ev1)) == 1);
  k8s_watchframe_free(f);
}

static void test_big_event(void)
{
  struct seen s = {0};
  struct k8s_watchframe *f = k8s_watchframe_new(on_event, on_error, &s);
  struct k8s_buf b = {0};
  k8s_buf_adds(
      &b, "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"big\"},\"data\":{\"x\":\"");
  for (int i = 0; i < 3 << 20; i++)
    k8s_buf_addc(&b, 'a');
  k8s_buf_adds(&b, "\"}}}\n");
  for (size_t off = 0; off < b.len; off += 65536)
    k8s_watchframe_feed(f, b.p + off, b.len - off < 65536 ? b.len - off : 65536);
  test_cond("3 MiB event in 64 KiB chunks", s.events == 1 && s.errors == 0);
  k8s_buf_free(&b);
  k8s_watchframe_free(f);
}

int main(void)
{
  test_split_everywhere();
  test_chunks();
  test_garbage();
  test_big_event();
  test_report();
  return 0;
}
