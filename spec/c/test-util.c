/* test-util.c: sha256 hex, label values and the owner label value, RFC 3339
 * formatting and the clocks (runtime/core/util.c). */
#include <string.h>
#include "core/util.h"
#include "testhelp.h"

int main(void)
{
  char hex[K8S_SHA256_HEX_LEN];
  k8s_sha256_hex("abc", 3, hex);
  test_cond("sha256(abc)",
            !strcmp(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
  k8s_sha256_hex("", 0, hex);
  test_cond("sha256(empty)",
            !strcmp(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));

  test_cond("label values", k8s_is_label_value("") && k8s_is_label_value("a") &&
                                k8s_is_label_value("a-b_c.d") && !k8s_is_label_value("-a") &&
                                !k8s_is_label_value("a.") && !k8s_is_label_value("a b") &&
                                !k8s_is_label_value("a/b"));
  char s64[65];
  memset(s64, 'a', 64);
  s64[64] = '\0';
  test_cond("64 chars is too long", !k8s_is_label_value(s64));
  s64[63] = '\0';
  test_cond("63 chars is fine", k8s_is_label_value(s64));

  char out[K8S_LABEL_VALUE_BUF];
  size_t n = k8s_owner_label_value("SimulatorDeployment", "default", "sim", out);
  test_cond("natural owner value",
            !strcmp(out, "simulatordeployment.default.sim") && n == strlen(out));
  k8s_owner_label_value("SchedulerInstall", NULL, "x", out);
  test_cond("cluster-scoped owner value", !strcmp(out, "schedulerinstall.x"));

  const char *ns = "a-rather-long-namespace-name-for-the-tests";
  const char *name = "and-an-even-longer-object-name-that-overflows";
  n = k8s_owner_label_value("SimulatorDeployment", ns, name, out);
  char natural[256], digest[K8S_SHA256_HEX_LEN];
  snprintf(natural, sizeof natural, "simulatordeployment.%s.%s", ns, name);
  k8s_sha256_hex(natural, strlen(natural), digest);
  test_cond("long owner value is hashed and valid",
            n <= 63 && k8s_is_label_value(out) &&
                !strncmp(out, "simulatordeployment.a-rather", 28) &&
                !strcmp(out + n - 10, (digest[10] = '\0', digest)));
  printf("    (%s)\n", out);
  char out2[K8S_LABEL_VALUE_BUF];
  k8s_owner_label_value("SimulatorDeployment", ns, "and-an-even-longer-object-name-that-overflowz",
                        out2);
  test_cond("different names give different values", strcmp(out, out2) != 0);
  n = k8s_owner_label_value(
      "Kind", "ns", "name_with_\xc3\xa9_and spaces/and/slashes-and-more-more-more-more", out);
  test_cond("invalid characters are sanitised", k8s_is_label_value(out) && n <= 63);
  int ok = 1;
  char name_buf[200];
  for (int len = 0; len < 150; len++) {
    memset(name_buf, len % 3 ? 'x' : '-', (size_t)len);
    name_buf[len] = '\0';
    k8s_owner_label_value("K", len % 2 ? "ns" : "", name_buf, out);
    ok &= k8s_is_label_value(out) && out[0] != '\0';
    k8s_owner_label_value("AVeryLongKindNameThatKeepsGoingAndGoing", "-ns-", name_buf, out);
    ok &= k8s_is_label_value(out) && out[0] != '\0';
  }
  test_cond("always a valid non-empty label value", ok);

  char t[K8S_TIME_BUF];
  k8s_rfc3339(1767225600.9, t);
  test_cond("rfc3339", !strcmp(t, "2026-01-01T00:00:00Z"));
  k8s_rfc3339_ms(1767225600.123, t);
  test_cond("rfc3339 with ms", !strcmp(t, "2026-01-01T00:00:00.123Z"));
  k8s_rfc3339(0, t);
  test_cond("epoch", !strcmp(t, "1970-01-01T00:00:00Z"));
  double a = k8s_monotonic(), b = k8s_monotonic();
  test_cond("monotonic clock", b >= a && a > 0);
  test_cond("wall clock after 2024", k8s_wallclock() > 1704067200.0);
  test_report();
  return 0;
}
