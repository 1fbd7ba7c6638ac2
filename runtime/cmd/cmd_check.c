/* cmd_check.c: `schedsim-operator check [--scripts DIR] [--overlay PATH]`:
 * compiles every module of a script set (with the overlay a scripts
 * ConfigMap would apply), validates controllers.lua, loads every reconciler
 * and runs every fixture case (runtime/lua/check.h). Prints one
 * "file:line: message" line per distinct problem on stderr and exits 1, or
 * prints a summary and exits 0; usage errors exit 2. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "cmd/cmd.h"
#include "cmd/cmd_common.h"
#include "cmd/settings.h"
#include "core/yaml.h"
#include "lua/check.h"
#include "core/util.h"

#define OVERLAY_MAX_BYTES (4 << 20)

/* An overlay read from disk: entries point into keys/texts it owns. */
struct overlay {
  struct lk_overlay_entry *v;
  size_t n;
  json_t *cm;  /* the ConfigMap's data, when read from a manifest */
  char **bufs; /* keys and texts read from a directory */
  size_t nbufs;
};

static void overlay_free(struct overlay *o)
{
  for (size_t i = 0; i < o->nbufs; i++)
    free(o->bufs[i]);
  free(o->bufs);
  free(o->v);
  json_decref(o->cm);
  *o = (struct overlay){0};
}

/* Reads the overlay at path: a directory (each regular file is one key, named
 * by its file name, as `kubectl create configmap --from-file=DIR` makes it) or
 * a ConfigMap manifest (YAML or JSON; its data). Returns 0, or -1 with a
 * message naming the path on stderr. */
static int overlay_read(const char *path, struct overlay *o)
{
  struct stat st;
  if (stat(path, &st) != 0) {
    fprintf(stderr, "schedsim-operator check: --overlay %s: %s\n", path, strerror(errno));
    return -1;
  }
  if (S_ISDIR(st.st_mode)) {
    DIR *d = opendir(path);
    struct dirent *e;
    size_t cap = 0;
    while (d && (e = readdir(d))) {
      char p[2 * PATH_MAX];
      snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
      if (e->d_name[0] == '.' || stat(p, &st) != 0 || !S_ISREG(st.st_mode)) continue;
      if (o->n == cap) {
        cap = cap ? cap * 2 : 8;
        struct lk_overlay_entry *v = realloc(o->v, cap * sizeof(*o->v));
        if (v) o->v = v;
        char **bufs = v ? realloc(o->bufs, 2 * cap * sizeof(*o->bufs)) : NULL;
        if (bufs) o->bufs = bufs;
        if (!v || !bufs) { /* what is held stays in o for overlay_free */
          fprintf(stderr, "schedsim-operator check: out of memory\n");
          closedir(d);
          return -1;
        }
      }
      size_t len;
      char *text = k8s_read_file(p, OVERLAY_MAX_BYTES, &len), *key = strdup(e->d_name);
      if (!text || !key) {
        fprintf(stderr, "schedsim-operator check: --overlay %s: %s\n", p, strerror(errno));
        free(text), free(key);
        closedir(d);
        return -1;
      }
      o->bufs[o->nbufs++] = key;
      o->bufs[o->nbufs++] = text;
      o->v[o->n++] = (struct lk_overlay_entry){key, text, len};
    }
    if (!d) fprintf(stderr, "schedsim-operator check: --overlay %s: %s\n", path, strerror(errno));
    if (d) closedir(d);
    return d ? 0 : -1;
  }
  size_t len;
  char *text = k8s_read_file(path, OVERLAY_MAX_BYTES, &len), err[600];
  if (!text) {
    fprintf(stderr, "schedsim-operator check: --overlay %s: %s\n", path, strerror(errno));
    return -1;
  }
  json_t *docs = k8s_yaml_load(text, len, path, err, sizeof(err));
  free(text);
  if (!docs) {
    fprintf(stderr, "%s\n", err);
    return -1;
  }
  size_t i;
  json_t *doc;
  json_array_foreach(docs, i, doc)
  {
    const char *kind = json_string_value(json_object_get(doc, "kind"));
    if (kind && !strcmp(kind, "ConfigMap") && !o->cm)
      o->cm = json_incref(json_object_get(doc, "data"));
  }
  json_decref(docs);
  if (!o->cm) {
    fprintf(stderr, "schedsim-operator check: --overlay %s: no ConfigMap with data\n", path);
    return -1;
  }
  o->v = calloc(json_object_size(o->cm) + 1, sizeof(*o->v));
  if (!o->v) {
    fprintf(stderr, "schedsim-operator check: out of memory\n");
    return -1;
  }
  const char *k;
  json_t *v;
  json_object_foreach(o->cm, k, v)
  {
    if (!json_is_string(v)) {
      fprintf(stderr, "schedsim-operator check: --overlay %s: data.%s: not a string\n", path, k);
      return -1;
    }
    o->v[o->n++] = (struct lk_overlay_entry){k, json_string_value(v), json_string_length(v)};
  }
  return 0;
}

/* --timings: where the time went, in ms, on stderr (one line a phase). */
static void print_timings(double load, double check, const struct lk_check_stats *st)
{
  const struct lk_fixture_times *t = &st->times;
  double other = check - st->compile - st->fixtures - st->gc;
  fprintf(stderr,
          "timings (ms): load %.1f (read + hash the set)\n"
          "  check %.1f = compile %.1f + fixture cases %.1f + gc %.1f + other %.1f\n"
          "  fixture cases %.1f wall on %zu thread%s; summed over the threads: parse %.1f"
          " (fixture + input_path YAML) + setup %.1f + reconcile %.1f + match %.1f\n"
          "  %zu cases: %.2f ms of wall a case; slowest %.2f ms (%s)\n"
          "  second thread: %zu case%s run, %zu failed there and ran again on the first: %.1f\n",
          load * 1e3, check * 1e3, st->compile * 1e3, st->fixtures * 1e3, st->gc * 1e3, other * 1e3,
          st->fixtures * 1e3, t->threads, t->threads == 1 ? "" : "s", t->parse * 1e3,
          t->setup * 1e3, t->reconcile * 1e3, t->match * 1e3, st->cases,
          st->cases ? st->fixtures * 1e3 / (double)st->cases : 0.0, t->slowest * 1e3,
          t->slowest_case[0] ? t->slowest_case : "-", st->second_thread_cases,
          st->second_thread_cases == 1 ? "" : "s", t->nagain, t->again * 1e3);
}

static void usage(FILE *out)
{
  fprintf(
      out,
      "usage: schedsim-operator check [--scripts DIR] [--overlay PATH] [--timings] [--jobs 1|2]\n"
      "                               [--lua-memory-limit BYTES] [--lua-instruction-budget N]\n\n"
      "Compiles and self-tests a script set: every module, controllers.lua, every\n"
      "reconciler, and every fixture case under <folder>/fixtures/*.yaml, with the\n"
      "sandbox settings of `run` (same flags and environment fallbacks).\n"
      "Default DIR: the scripts installed beside the binary.\n"
      "--overlay applies what a scripts ConfigMap would (doc/hot-reload.md): PATH is\n"
      "its manifest (the data of its ConfigMap) or a directory of files named by\n"
      "key (policy.lua, <module>.lua, <folder>.fixtures.<name>.yaml).\n"
      "A problem several fixture cases share is one line with their count.\n"
      "--timings prints where the time went (load, compile, fixture cases by phase)\n"
      "on stderr. --jobs: threads that run the fixture cases (default: 2 on a\n"
      "machine with two CPUs); the verdict and the messages do not depend on it.\n");
}

int cmd_check(int argc, char **argv)
{
  const char *dir = NULL, *overlay_path = NULL;
  int timings = 0, jobs = 0;
  struct settings set_flags = {0};
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    int r;
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      usage(stdout);
      return 0;
    }
    if ((r = settings_flag("check", argc, argv, &i, 0, &set_flags)) != 0) {
      if (r < 0) return 2;
      continue;
    }
    if (!strcmp(a, "--scripts") && i + 1 < argc) {
      dir = argv[++i];
      continue;
    }
    if (!strncmp(a, "--scripts=", 10)) {
      dir = a + 10;
      continue;
    }
    if (!strcmp(a, "--jobs") && i + 1 < argc) {
      const char *v = argv[++i];
      if (strcmp(v, "1") && strcmp(v, "2")) {
        fprintf(stderr, "schedsim-operator check: --jobs: want 1 or 2, got \"%s\"\n", v);
        return 2;
      }
      jobs = atoi(v);
      continue;
    }
    if (!strcmp(a, "--timings")) {
      timings = 1;
      continue;
    }
    if (!strcmp(a, "--overlay") && i + 1 < argc) {
      overlay_path = argv[++i];
      continue;
    }
    if (!strncmp(a, "--overlay=", 10)) {
      overlay_path = a + 10;
      continue;
    }
    fprintf(stderr, "schedsim-operator check: unexpected argument %s\n", a);
    usage(stderr);
    return 2;
  }
  if (settings_finish("check", 0, &set_flags) != 0) return 2;
  struct lk_engine_opts eo = {set_flags.lua_memory_limit, set_flags.lua_instruction_budget};
  char buf[PATH_MAX];
  struct lk_scriptset *set;
  struct overlay ov = {0};
  if (overlay_path && overlay_read(overlay_path, &ov) != 0) {
    overlay_free(&ov);
    return 2;
  }
  /* bare: a script set that does not load is reported as file: message;
   * origin "configmap", as the operator names the overlay in messages */
  double t_load = k8s_monotonic();
  int lrc =
      cmd_scripts_load_overlay("schedsim-operator check", dir, 1, ov.v, ov.n,
                               overlay_path ? "configmap" : NULL, buf, sizeof(buf), &dir, &set);
  overlay_free(&ov);
  if (lrc != 0) return 2;
  t_load = k8s_monotonic() - t_load;
  char root[PATH_MAX];
  snprintf(root, sizeof(root), "%s", set->dir);
  char revision[sizeof(set->revision)];
  memcpy(revision, set->revision, sizeof(revision));
  size_t ofiles = set->nofixtures, oreplaced = set->nreplaced;
  struct lk_messages msgs = {0};
  struct lk_check_stats st;
  double t_check = k8s_monotonic();
  int problems = lk_check_threads(set, &eo, jobs, &msgs, &st, NULL);
  if (problems < 0) {
    fprintf(stderr, "schedsim-operator check: out of memory\n");
    return 1;
  }
  t_check = k8s_monotonic() - t_check;
  if (timings) print_timings(t_load, t_check, &st);
  size_t rl = strlen(root);
  for (size_t i = 0; i < msgs.n; i++) {
    const char *m = msgs.v[i];
    int seen = 0; /* the same problem twice (e.g. a require in two controllers): once */
    for (size_t k = 0; k < i && !seen; k++)
      seen = !strcmp(msgs.v[k], m);
    if (seen) continue;
    if (!strncmp(m, "configmap:", 10)) {
      fprintf(stderr, "%s\n", m);
      continue;
    }
    if (!strncmp(m, root, rl) && (m[rl] == '/' || m[rl] == ':')) /* names the set already */
      fprintf(stderr, "%s\n", m);
    else
      fprintf(stderr, "%s/%s\n", root, m);
  }
  lk_messages_free(&msgs);
  if (problems) {
    fprintf(stderr, "check: %d problem%s in %s\n", problems, problems == 1 ? "" : "s", root);
    return 1;
  }
  char from_overlay[96] = "";
  if (ofiles)
    snprintf(from_overlay, sizeof(from_overlay),
             "; %zu fixture file%s from the overlay, %zu replacing", ofiles, ofiles == 1 ? "" : "s",
             oreplaced);
  printf("ok: %zu modules, %zu controllers, %zu fixture cases passed (%s, %s%s)\n", st.modules,
         st.controllers, st.cases, root, revision, from_overlay);
  return 0;
}
