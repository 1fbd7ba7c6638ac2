/* test-log.c: structured logs (runtime/core/log.c): JSON lines and text,
 * field types, redaction of secret-looking keys, escaping of odd bytes, and
 * the verbosity threshold. */
#include <string.h>
#include "core/log.h"
#include "testhelp.h"

static double fixed_clock(void)
{
  return 1767225600.25; /* 2026-01-01T00:00:00.250Z */
}

static int formats_as(enum k8s_log_level level, int v, const char *msg,
                      const struct k8s_log_field *f, size_t n, const char *expect)
{
  char buf[1024];
  size_t len = k8s_log_format(buf, sizeof buf, level, v, msg, f, n);
  int ok = len == strlen(expect) && strcmp(buf, expect) == 0;
  if (!ok) printf("  got:  %s  want: %s", buf, expect);
  return ok;
}

int main(void)
{
  k8s_log_set_clock(fixed_clock);
  k8s_log_init(K8S_LOG_JSON, 0, NULL);
  struct k8s_log_field f[] = {
      {.key = "controller", .type = K8S_LOG_STR, .s = "simulatordeployment"},
      {.key = "key", .type = K8S_LOG_STR, .s = "ns/name"},
      {.key = "reconcileID", .type = K8S_LOG_STR, .s = "3f2a"},
      {.key = "attempt", .type = K8S_LOG_INT, .i = 3},
      {.key = "took", .type = K8S_LOG_REAL, .d = 0.25},
      {.key = "ok", .type = K8S_LOG_BOOL, .i = 1},
      {.key = "obj", .type = K8S_LOG_RAW_JSON, .s = "{\"a\":[1]}"},
      {.key = "none", .type = K8S_LOG_STR, .s = NULL},
  };
  test_cond("JSON line",
            formats_as(K8S_LOG_INFO, 0, "reconciled", f, 8,
                       "{\"ts\":\"2026-01-01T00:00:00.250Z\",\"level\":\"info\",\"msg\":"
                       "\"reconciled\",\"controller\":\"simulatordeployment\",\"key\":"
                       "\"ns/name\",\"reconcileID\":\"3f2a\",\"attempt\":3,\"took\":0.25,"
                       "\"ok\":true,\"obj\":{\"a\":[1]},\"none\":null}\n"));
  struct k8s_log_field nums[] = {
      {.key = "code", .type = K8S_LOG_NUMBER, .s = "0"},
      {.key = "checkMs", .type = K8S_LOG_NUMBER, .s = "220.6"},
      {.key = "big", .type = K8S_LOG_NUMBER, .s = "-1.5e+06"},
      {.key = "notANumber", .type = K8S_LOG_NUMBER, .s = "012"},
      {.key = "alsoNot", .type = K8S_LOG_NUMBER, .s = "1."},
  };
  test_cond("numbers as JSON numbers, other text as strings",
            formats_as(K8S_LOG_INFO, 0, "n", nums, 5,
                       "{\"ts\":\"2026-01-01T00:00:00.250Z\",\"level\":\"info\",\"msg\":\"n\","
                       "\"code\":0,\"checkMs\":220.6,\"big\":-1.5e+06,\"notANumber\":\"012\","
                       "\"alsoNot\":\"1.\"}\n"));
  {
    FILE *out = tmpfile();
    k8s_log_set_output(out);
    k8s_log(K8S_LOG_INFO, "exiting", K8S_NUM("code"), "1", "port", "8080", NULL);
    k8s_log_set_output(NULL);
    char line[256] = "";
    rewind(out);
    size_t n = fread(line, 1, sizeof line - 1, out);
    line[n] = '\0';
    fclose(out);
    test_cond("K8S_NUM(key) in k8s_log pairs writes a number, plain keys strings",
              strstr(line, "\"code\":1,\"port\":\"8080\"}") != NULL);
    if (!strstr(line, "\"code\":1,")) printf("  got: %s", line);
  }
  struct k8s_log_field secret[] = {
      {.key = "token", .s = "abc"},
      {.key = "Authorization", .s = "Bearer x"},
      {.key = "bearerToken", .s = "x"},
      {.key = "client_secret", .s = "x"},
      {.key = "dbPassword", .s = "x"},
      {.key = "secretName", .s = "visible"},
      {.key = "secret", .type = K8S_LOG_INT, .i = 5},
  };
  test_cond(
      "secret-looking keys are redacted",
      formats_as(K8S_LOG_WARN, 0, "m", secret, 7,
                 "{\"ts\":\"2026-01-01T00:00:00.250Z\",\"level\":\"warn\",\"msg\":\"m\","
                 "\"token\":\"[REDACTED]\",\"Authorization\":\"[REDACTED]\",\"bearerToken\":"
                 "\"[REDACTED]\",\"client_secret\":\"[REDACTED]\",\"dbPassword\":\"[REDACTED]\","
                 "\"secretName\":\"visible\",\"secret\":\"[REDACTED]\"}\n"));
  struct k8s_log_field odd[] = {
      {.key = "v", .s = "a\"b\\c\n\t\x01\xff\xc3\xa9\xed\xa0\x80\xf0\x9f\x98\x80"}};
  test_cond(
      "odd bytes are escaped in JSON",
      formats_as(
          K8S_LOG_ERROR, 0, "bad\x7f", odd, 1,
          "{\"ts\":\"2026-01-01T00:00:00.250Z\",\"level\":\"error\",\"msg\":\"bad\\u007f\","
          "\"v\":\"a\\\"b\\\\c\\n\\t\\u0001\\u00ff\xc3\xa9\\u00ed\\u00a0\\u0080\xf0\x9f\x98\x80\"}"
          "\n"));
  struct k8s_log_field nan[] = {{.key = "x", .type = K8S_LOG_REAL, .d = 0.0 / 0.0}};
  test_cond("NaN is null in JSON",
            formats_as(K8S_LOG_DEBUG, 3, "d", nan, 1,
                       "{\"ts\":\"2026-01-01T00:00:00.250Z\",\"level\":\"debug\","
                       "\"msg\":\"d\",\"v\":3,\"x\":null}\n"));

  k8s_log_set_format(K8S_LOG_TEXT);
  test_cond("text line",
            formats_as(K8S_LOG_INFO, 0, "reconciled", f, 6,
                       "2026-01-01T00:00:00.250Z INFO  reconciled controller=simulatordeployment "
                       "key=ns/name reconcileID=3f2a attempt=3 took=0.25 ok=true\n"));
  struct k8s_log_field sp[] = {{.key = "msg", .s = "two words"},
                               {.key = "e", .s = ""},
                               {.key = "b", .s = "x\xff\n"},
                               {.key = "token", .s = "t"}};
  test_cond("text quoting and escaping",
            formats_as(K8S_LOG_ERROR, 0, "a b", sp, 4,
                       "2026-01-01T00:00:00.250Z ERROR \"a b\" msg=\"two words\" "
                       "e=\"\" b=\"x\\xff\\n\" token=[REDACTED]\n"));
  k8s_log_set_format(K8S_LOG_JSON);

  k8s_log_set_verbosity(0);
  test_cond("info always enabled",
            k8s_log_enabled(K8S_LOG_INFO, 0) && k8s_log_enabled(K8S_LOG_ERROR, 0));
  test_cond("debug off at -v 0", !k8s_log_enabled(K8S_LOG_DEBUG, 1));
  k8s_log_set_verbosity(2);
  test_cond("V(2) on at -v 2, V(3) off",
            k8s_log_enabled(K8S_LOG_DEBUG, 2) && !k8s_log_enabled(K8S_LOG_DEBUG, 3));

  FILE *tmp = tmpfile();
  k8s_log_set_output(tmp);
  k8s_log(K8S_LOG_INFO, "hello", "controller", "c", "key", "ns/n", NULL);
  k8s_log_v(3, "hidden", NULL);
  k8s_log_v(2, "shown", "k", NULL, NULL);
  fflush(tmp);
  rewind(tmp);
  char line[512] = "", line2[512] = "", line3[512] = "";
  (void)!fgets(line, sizeof line, tmp);
  (void)!fgets(line2, sizeof line2, tmp);
  test_cond("k8s_log writes one line with pairs",
            !strcmp(line,
                    "{\"ts\":\"2026-01-01T00:00:00.250Z\",\"level\":\"info\",\"msg\":\"hello\","
                    "\"controller\":\"c\",\"key\":\"ns/n\"}\n"));
  test_cond("k8s_log_v respects the threshold",
            strstr(line2, "\"msg\":\"shown\",\"v\":2,\"k\":null") &&
                !fgets(line3, sizeof line3, tmp));
  fclose(tmp);
  k8s_log_set_output(NULL);
  k8s_log_set_clock(NULL);
  test_report();
  return 0;
}
