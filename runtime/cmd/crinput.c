/* crinput.c: loading and checking the CR documents given to render and diff
 * (see crinput.h): -f expansion (stdin, directories), reading, List
 * expansion, the kind check, and the loop over them (cr_read_inputs). Owns
 * nothing beyond each call. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cmd/crinput.h"
#include "core/yaml.h"
#include "core/util.h"

const char *cr_sget(const json_t *o, const char *k)
{
  const char *s = json_string_value(json_object_get(o, k));
  return s ? s : "";
}

int cr_load_docs(const char *prog, const char *path, json_t *out)
{
  char err[1024];
  int is_stdin = !strcmp(path, "-");
  const char *name = is_stdin ? "<stdin>" : path;
  struct stat st;
  if (!is_stdin && stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
    fprintf(stderr, "%s: %s: is a directory\n", prog, path);
    return -1;
  }
  FILE *f = is_stdin ? stdin : fopen(path, "rb");
  size_t len = 0;
  char *text = f ? k8s_read_stream(f, 0, &len) : NULL;
  int e = errno;
  if (f && !is_stdin) fclose(f);
  if (!text) {
    fprintf(stderr, "%s: %s: %s\n", prog, name, strerror(e));
    return -1;
  }
  json_t *docs = k8s_yaml_load_flags(text, len, name, K8S_YAML_11_BOOLS, err, sizeof(err));
  free(text);
  if (!docs) {
    fprintf(stderr, "%s: %s\n", prog, err);
    return -1;
  }
  size_t i;
  json_t *d;
  json_array_foreach(docs, i, d)
  {
    json_t *items = json_object_get(d, "items");
    if (!strcmp(cr_sget(d, "kind"), "List") && json_is_array(items))
      json_array_extend(out, items);
    else
      json_array_append(out, d);
  }
  json_decref(docs);
  return 0;
}

const struct lk_controller_decl *cr_check(const char *prog, struct lk_engine *e, const char *file,
                                          size_t doc, const json_t *cr)
{
  if (!json_is_object(cr)) {
    fprintf(stderr, "%s: %s: document %zu: not a mapping\n", prog, file, doc);
    return NULL;
  }
  const char *av = cr_sget(cr, "apiVersion"), *kind = cr_sget(cr, "kind");
  const json_t *md = json_object_get(cr, "metadata");
  if (!*av || !*kind) {
    fprintf(stderr, "%s: %s: document %zu: %s: missing\n", prog, file, doc,
            !*av ? "apiVersion" : "kind");
    return NULL;
  }
  const struct lk_controller_decl *c = lk_engine_controller_for(e, av, kind);
  if (!c) {
    fprintf(stderr,
            "%s: %s: document %zu: unknown kind %s %s (no controller in controllers.lua "
            "reconciles it; known:",
            prog, file, doc, av, kind);
    for (size_t i = 0; i < e->ncontrollers; i++)
      fprintf(stderr, " %s/%s", e->controllers[i].for_.api_version, e->controllers[i].for_.kind);
    fprintf(stderr, ")\n");
    return NULL;
  }
  if (!json_is_object(md) || !*cr_sget(md, "name")) {
    fprintf(stderr, "%s: %s: document %zu: metadata.name: missing\n", prog, file, doc);
    return NULL;
  }
  const json_t *ns = json_object_get(md, "namespace");
  if (ns && !json_is_string(ns)) {
    fprintf(stderr, "%s: %s: document %zu: metadata.namespace: not a string\n", prog, file, doc);
    return NULL;
  }
  if (!c->valid) {
    fprintf(stderr, "%s: controller %s did not load\n", prog, c->name);
    return NULL;
  }
  return c;
}

/* {====================================================================
 * -f expansion
 * ===================================================================== */

struct paths {
  struct cr_file *v;
  size_t n, cap;
};

static int push(struct paths *p, const char *s, int in_dir)
{
  if (p->n == p->cap) {
    size_t nc = p->cap ? p->cap * 2 : 16;
    struct cr_file *nv = realloc(p->v, nc * sizeof(*nv));
    if (!nv) return -1;
    p->v = nv, p->cap = nc;
  }
  struct cr_file *f = &p->v[p->n];
  if (!(f->path = strdup(s))) return -1;
  f->name = strcmp(s, "-") ? f->path : "<stdin>";
  f->in_dir = in_dir;
  p->n++;
  return 0;
}

static int manifest_ext(const char *name)
{
  const char *dot = strrchr(name, '.');
  return dot && (!strcmp(dot, ".yaml") || !strcmp(dot, ".yml") || !strcmp(dot, ".json"));
}

static int cmp_paths(const void *a, const void *b)
{
  return strcmp(((const struct cr_file *)a)->path, ((const struct cr_file *)b)->path);
}

/* Appends the manifest files below dir (recursively) to p; -1 on malloc
 * failure or an unreadable directory (errno set). */
static int walk(const char *dir, struct paths *p, int depth)
{
  if (depth > 64) return 0; /* a symlink loop */
  DIR *d = opendir(dir);
  if (!d) return -1;
  struct dirent *e;
  int rc = 0;
  while (rc == 0 && (e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    size_t n = strlen(dir) + strlen(e->d_name) + 2;
    char *path = malloc(n);
    if (!path) {
      rc = -1;
      break;
    }
    snprintf(path, n, "%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", e->d_name);
    struct stat st;
    if (stat(path, &st) == 0) {
      if (S_ISDIR(st.st_mode))
        rc = walk(path, p, depth + 1);
      else if (S_ISREG(st.st_mode) && manifest_ext(e->d_name))
        rc = push(p, path, 1);
    }
    free(path);
  }
  closedir(d);
  return rc;
}

int cr_expand_files(const char *prog, char *const *args, size_t nargs, struct cr_file **files,
                    size_t *nfiles)
{
  struct paths out = {0};
  int stdin_seen = 0;
  for (size_t i = 0; i < nargs; i++) {
    const char *a = args[i];
    struct stat st;
    if (!strcmp(a, "-")) {
      if (stdin_seen++) {
        fprintf(stderr, "%s: -f -: standard input can be given once\n", prog);
        goto fail;
      }
      if (push(&out, a, 0) != 0) goto oom;
    } else if (stat(a, &st) != 0) {
      fprintf(stderr, "%s: %s: %s\n", prog, a, strerror(errno));
      goto fail;
    } else if (S_ISDIR(st.st_mode)) {
      size_t first = out.n;
      if (walk(a, &out, 0) != 0) {
        fprintf(stderr, "%s: %s: %s\n", prog, a, strerror(errno));
        goto fail;
      }
      if (out.n == first) {
        fprintf(stderr, "%s: %s: no .yaml, .yml or .json file in the directory\n", prog, a);
        goto fail;
      }
      qsort(out.v + first, out.n - first, sizeof(*out.v), cmp_paths);
    } else if (push(&out, a, 0) != 0) {
      goto oom;
    }
  }
  *files = out.v;
  *nfiles = out.n;
  return 0;
oom:
  fprintf(stderr, "%s: out of memory\n", prog);
fail:
  cr_free_files(out.v, out.n);
  return -1;
}

void cr_free_files(struct cr_file *files, size_t nfiles)
{
  for (size_t i = 0; i < nfiles; i++)
    free(files[i].path);
  free(files);
}

int cr_skip_foreign(const char *prog, struct lk_engine *e, const struct cr_file *f, size_t doc,
                    const json_t *d)
{
  if (!f->in_dir || !json_is_object(d)) return 0;
  const char *av = cr_sget(d, "apiVersion"), *kind = cr_sget(d, "kind");
  if (!*av || !*kind || lk_engine_controller_for(e, av, kind)) return 0;
  fprintf(stderr, "%s: %s: document %zu: skipping %s %s (not a kind the operator reconciles)\n",
          prog, f->name, doc, av, kind);
  return 1;
}

/* }==================================================================== */

int cr_read_inputs(const char *prog, struct lk_engine *e, char *const *args, size_t nargs,
                   struct cr_file **files, size_t *nfiles, cr_input_fn fn, void *ud)
{
  *files = NULL;
  *nfiles = 0;
  if (cr_expand_files(prog, args, nargs, files, nfiles) != 0) return -1;
  int rc = 0;
  json_t *docs = json_array();
  for (size_t f = 0; rc == 0 && f < *nfiles; f++) {
    const struct cr_file *file = &(*files)[f];
    json_array_clear(docs);
    if (cr_load_docs(prog, file->path, docs) != 0) {
      rc = -1;
      break;
    }
    size_t k;
    json_t *d;
    json_array_foreach(docs, k, d)
    {
      if (cr_skip_foreign(prog, e, file, k + 1, d)) continue;
      const struct lk_controller_decl *c = cr_check(prog, e, file->name, k + 1, d);
      if (!c) {
        rc = -1;
        break;
      }
      if ((rc = fn(ud, file, k + 1, d, c)) != 0) break;
    }
  }
  json_decref(docs);
  return rc;
}
