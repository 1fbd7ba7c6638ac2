/* test-udiff.c: the unified diff of `schedsim-operator diff`
 * (runtime/cmd/udiff.c) on random line sequences: as many changed lines as
 * GNU diff -u, and `patch` (no fuzz) turns a into b with its hunks; the server-set fields dropped
 * from objects' YAML, and the KUBECTL_EXTERNAL_DIFF directory pair. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cmd/udiff.h"
#include "core/json.h"
#include "testhelp.h"

static void write_text(const char *path, const char *text)
{
  FILE *f = fopen(path, "w");
  fputs(text, f);
  fclose(f);
}

/* "-" and "+" lines of GNU diff -u a b (the minimal edit for these sizes) */
static size_t gnu_changes(const char *fa, const char *fb)
{
  char cmd[160];
  snprintf(cmd, sizeof cmd, "diff -u %s %s | tail -n +3 | grep -c '^[-+]'", fa, fb);
  FILE *p = popen(cmd, "r");
  size_t n = 0;
  if (fscanf(p, "%zu", &n) != 1) n = (size_t)-1;
  pclose(p);
  return n;
}

/* 1 when `patch` turns a into b with our hunks (headers, context and counts
 * must all be right for patch to accept them without fuzz). */
static int patches(const char *fa, const char *fb, const char *hunks)
{
  char fd[] = "/tmp/udiffdXXXXXX", fo[] = "/tmp/udiffoXXXXXX";
  close(mkstemp(fd));
  close(mkstemp(fo));
  struct k8s_buf d = {0};
  k8s_buf_printf(&d, "--- %s\n+++ %s\n%s", fa, fb, hunks);
  k8s_buf_addc(&d, '\0');
  write_text(fd, d.p);
  k8s_buf_free(&d);
  char cmd[256];
  snprintf(cmd, sizeof cmd, "patch -s -F 0 -o %s %s < %s >/dev/null 2>&1 && cmp -s %s %s", fo, fa,
           fd, fo, fb);
  int ok = system(cmd) == 0;
  remove(fd);
  remove(fo);
  return ok;
}

static char *random_text(unsigned *seed, int n, int alphabet)
{
  struct k8s_buf b = {0};
  for (int i = 0; i < n; i++)
    k8s_buf_printf(&b, "line %d\n", rand_r(seed) % alphabet);
  k8s_buf_addc(&b, '\0');
  return k8s_buf_steal(&b, NULL);
}

static void test_against_gnu(void)
{
  unsigned seed = 22;
  int same = 0;
  for (int t = 0; t < 300; t++) {
    char *a = random_text(&seed, rand_r(&seed) % 40, 2 + t % 9);
    char *b = random_text(&seed, rand_r(&seed) % 40, 2 + t % 9);
    if (t % 3 == 0) { /* mostly equal texts: small edits in long context */
      free(b);
      b = strdup(a);
      char *nl = strchr(b + strlen(b) / 2, '\n');
      if (nl) memcpy(nl > b + 4 ? nl - 1 : b, "X", 1);
    }
    struct k8s_buf out = {0};
    size_t n = ud_diff(a, b, 3, &out);
    k8s_buf_addc(&out, '\0');
    char fa[] = "/tmp/udiffaXXXXXX", fb[] = "/tmp/udiffbXXXXXX";
    close(mkstemp(fa));
    close(mkstemp(fb));
    write_text(fa, a);
    write_text(fb, b);
    int ok = n == gnu_changes(fa, fb) && (n == 0 ? out.len == 1 : patches(fa, fb, out.p));
    same += ok;
    if (!ok) printf("--- a\n%s--- b\n%s--- got (%zu changes)\n%s", a, b, n, out.p);
    remove(fa);
    remove(fb);
    k8s_buf_free(&out);
    free(a);
    free(b);
    if (!ok) break;
  }
  test_cond("300 random cases: as many changes as GNU diff -u, and patch applies them exactly",
            same == 300);
  struct k8s_buf out = {0};
  test_cond("equal texts: 0 changes, nothing written",
            ud_diff("a\nb\n", "a\nb\n", 3, &out) == 0 && out.len == 0);
  test_cond("counts - and + lines", ud_diff("a\nb\nc\n", "a\nB\nc\nd\n", 3, &out) == 3);
  k8s_buf_free(&out);
}

static void test_object_yaml(void)
{
  json_t *o = json_loads("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\"metadata\":{\"name\":"
                         "\"a\",\"uid\":\"u\",\"resourceVersion\":\"7\",\"managedFields\":[]},"
                         "\"data\":{\"k\":\"v\"},\"status\":{\"x\":1}}",
                         0, NULL);
  char *y = ud_object_yaml(o, 0x1 /* DT_IGNORE_STATUS */);
  test_cond("server-set fields and status dropped",
            y && !strstr(y, "uid") && !strstr(y, "resourceVersion") &&
                !strstr(y, "managedFields") && !strstr(y, "status") && strstr(y, "k: v\n"));
  free(y);
  y = ud_object_yaml(o, 0);
  test_cond("status kept without the flag", y && strstr(y, "status:"));
  free(y);
  json_decref(o);
}

static void test_external(void)
{
  struct ud_external *x = ud_external_new();
  test_cond("directories made", x != NULL);
  if (!x) return;
  ud_external_add(x, "apps/v1", "Deployment", "ns", "d", "a: 1\n", "a: 2\n");
  ud_external_add(x, "v1", "ConfigMap", "ns", "new", NULL, "b: 1\n");
  /* the program sees LIVE MERGED with kubectl's file names */
  char script[] = "/tmp/udiffsXXXXXX";
  close(mkstemp(script));
  write_text(script,
             "test -f \"$1/apps.v1.Deployment.ns.d\" && test -f \"$2/v1.ConfigMap.ns.new\" && "
             "! test -e \"$1/v1.ConfigMap.ns.new\"\n");
  char cmd[64];
  snprintf(cmd, sizeof cmd, "sh %s", script);
  int rc = ud_external_run(x, cmd);
  remove(script);
  test_cond("program runs with LIVE and MERGED, kubectl's file names, no file for a new object",
            rc == 0);
  x = ud_external_new();
  ud_external_add(x, "v1", "ConfigMap", "ns", "c", "a\n", "b\n");
  test_cond("diff -u -N exits 1 on a difference", ud_external_run(x, "diff -u -N") == 1);
  x = ud_external_new();
  test_cond("a missing program is -1", ud_external_run(x, "/nonexistent/differ") == -1);
}

int main(void)
{
  test_against_gnu();
  test_object_yaml();
  test_external();
  test_report();
  return 0;
}
