/* scriptset.c: loads a script set from a directory and an overlay, and
 * hashes it (see scriptset.h). Plain C and POSIX directory walking; the
 * digest comes from core/util.h. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "lua/scriptset.h"
#include "core/util.h"

#define MAX_DEPTH 16
#define MAX_FILE_BYTES (4 << 20)

/* {====================================================================
 * Names
 * ===================================================================== */

static int valid_component(const char *s, size_t n)
{
  if (n == 0) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '-'))
      return 0;
  }
  return 1;
}

/* 1 when name is "comp(.comp)*". */
static int valid_module_name(const char *name)
{
  const char *p = name;
  for (;;) {
    const char *dot = strchr(p, '.');
    size_t n = dot ? (size_t)(dot - p) : strlen(p);
    if (!valid_component(p, n)) return 0;
    if (!dot) return 1;
    p = dot + 1;
  }
}

int lk_module_name_from_key(const char *key, char *out, size_t outlen)
{
  size_t n = strlen(key);
  if (n < 5 || strcmp(key + n - 4, ".lua") || n - 4 >= outlen) return -1;
  memcpy(out, key, n - 4);
  out[n - 4] = '\0';
  return valid_module_name(out) ? 0 : -1;
}

int lk_fixture_path_from_key(const char *key, char *out, size_t outlen)
{
  const char *mid = strstr(key, ".fixtures.");
  if (!mid || !valid_component(key, (size_t)(mid - key))) return -1;
  const char *name = mid + 10;
  size_t n = strlen(name), ext = 0;
  if (n > 5 && !strcmp(name + n - 5, ".yaml"))
    ext = 5;
  else if (n > 4 && !strcmp(name + n - 4, ".yml"))
    ext = 4;
  if (!ext || !valid_component(name, n - ext)) return -1;
  int w = snprintf(out, outlen, "%.*s/fixtures/%s", (int)(mid - key), key, name);
  return w < 0 || (size_t)w >= outlen ? -1 : 0;
}

/* }==================================================================== */

/* {====================================================================
 * Collecting files
 * ===================================================================== */

struct collect {
  struct lk_scriptset *set;
  size_t capmods, capfix;
  char *err;
  size_t errlen;
};

static int add_module(struct collect *c, char *name, char *path, char *source, size_t len,
                      int overlay)
{
  struct lk_scriptset *set = c->set;
  if (set->nmods == c->capmods) {
    size_t cap = c->capmods ? c->capmods * 2 : 32;
    struct lk_module *m = realloc(set->mods, cap * sizeof(*m));
    if (!m) return -1;
    set->mods = m;
    c->capmods = cap;
  }
  set->mods[set->nmods++] = (struct lk_module){name, path, source, len, overlay};
  set->bytes += len;
  return 0;
}

static int add_fixture(struct collect *c, const char *rel)
{
  struct lk_scriptset *set = c->set;
  if (set->nfixtures == c->capfix) {
    size_t cap = c->capfix ? c->capfix * 2 : 32;
    char **f = realloc(set->fixtures, cap * sizeof(*f));
    if (!f) return -1;
    set->fixtures = f;
    c->capfix = cap;
  }
  if (!(set->fixtures[set->nfixtures] = strdup(rel))) return -1;
  set->nfixtures++;
  return 0;
}

static int has_suffix(const char *s, const char *suf)
{
  size_t n = strlen(s), m = strlen(suf);
  return n > m && !strcmp(s + n - m, suf);
}

/* Walks dir/rel (rel "" for the root), depth levels deep. */
static int walk(struct collect *c, const char *rel, int depth)
{
  char path[2 * PATH_MAX];
  snprintf(path, sizeof(path), "%s%s%s", c->set->dir, *rel ? "/" : "", rel);
  if (depth > MAX_DEPTH) {
    snprintf(c->err, c->errlen, "%s: directories nested too deep", path);
    return -1;
  }
  DIR *d = opendir(path);
  if (!d) {
    snprintf(c->err, c->errlen, "%s: %s", path, strerror(errno));
    return -1;
  }
  int rc = 0;
  struct dirent *e;
  /* "<folder>/fixtures" and its "contract" subfolder hold fixture files */
  int is_fixtures = (depth == 2 && has_suffix(rel, "/fixtures")) ||
                    (depth == 3 && has_suffix(rel, "/fixtures/" LK_CONTRACT_DIR));
  while (rc == 0 && (e = readdir(d))) {
    const char *n = e->d_name;
    if (n[0] == '.') continue;
    if (depth == 0 && !strcmp(n, "_meta")) continue;
    char crel[PATH_MAX], cpath[2 * PATH_MAX];
    if (snprintf(crel, sizeof(crel), "%s%s%s", rel, *rel ? "/" : "", n) >= (int)sizeof(crel))
      continue;
    snprintf(cpath, sizeof(cpath), "%s/%s", c->set->dir, crel);
    struct stat st;
    if (stat(cpath, &st) != 0) continue; /* dangling link */
    if (S_ISDIR(st.st_mode)) {
      if (!is_fixtures || (depth == 2 && !strcmp(n, LK_CONTRACT_DIR)))
        rc = walk(c, crel, depth + 1);
      continue;
    }
    if (!S_ISREG(st.st_mode)) continue;
    if (is_fixtures) {
      if (has_suffix(n, ".yaml") || has_suffix(n, ".yml")) rc = add_fixture(c, crel);
      continue;
    }
    if (!has_suffix(n, ".lua") || has_suffix(rel, "/fixtures") || !strcmp(rel, "fixtures"))
      continue;
    /* module name: path without ".lua", '/' -> '.' */
    char name[PATH_MAX];
    size_t len = strlen(crel) - 4;
    memcpy(name, crel, len);
    name[len] = '\0';
    for (char *p = name; *p; p++)
      if (*p == '/') *p = '.';
    if (!valid_module_name(name)) {
      snprintf(c->err, c->errlen,
               "%s: not a valid module file name (components must be [A-Za-z0-9_-]+)", cpath);
      rc = -1;
      break;
    }
    size_t srclen;
    char *src = k8s_read_file(cpath, MAX_FILE_BYTES, &srclen);
    if (!src) {
      snprintf(c->err, c->errlen, "%s: %s", cpath, strerror(errno));
      rc = -1;
      break;
    }
    char *mname = strdup(name), *mpath = strdup(crel);
    if (!mname || !mpath || add_module(c, mname, mpath, src, srclen, 0) != 0) {
      free(mname), free(mpath), free(src);
      snprintf(c->err, c->errlen, "%s: out of memory", cpath);
      rc = -1;
    }
  }
  closedir(d);
  return rc;
}

/* }==================================================================== */

static int cmp_modules(const void *a, const void *b)
{
  return strcmp(((const struct lk_module *)a)->name, ((const struct lk_module *)b)->name);
}

static int cmp_strings(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_module(struct lk_module *m)
{
  free(m->name);
  free(m->path);
  free(m->source);
}

/* Adds one overlay fixture file; a directory file of the same path is dropped. */
static int add_overlay_fixture(struct collect *c, const struct lk_overlay_entry *e, const char *rel,
                               const char *origin)
{
  struct lk_scriptset *set = c->set;
  struct lk_overlay_fixture *f =
      realloc(set->ofixtures, (set->nofixtures + 1) * sizeof(*set->ofixtures));
  if (!f) goto oom;
  set->ofixtures = f;
  f = &set->ofixtures[set->nofixtures];
  *f = (struct lk_overlay_fixture){0};
  f->rel = strdup(rel);
  f->text = malloc(e->len + 1);
  if (asprintf(&f->origin, "%s:%s", origin ? origin : "overlay", e->key) < 0) f->origin = NULL;
  if (!f->rel || !f->text || !f->origin) {
    free(f->rel), free(f->text), free(f->origin);
    goto oom;
  }
  memcpy(f->text, e->source, e->len);
  f->text[e->len] = '\0';
  f->len = e->len;
  set->nofixtures++;
  for (size_t i = 0; i < set->nfixtures; i++)
    if (!strcmp(set->fixtures[i], rel)) {
      free(set->fixtures[i]);
      memmove(&set->fixtures[i], &set->fixtures[i + 1], (set->nfixtures - i - 1) * sizeof(char *));
      set->nfixtures--;
      set->nreplaced++;
      break;
    }
  return 0;
oom:
  snprintf(c->err, c->errlen, "out of memory");
  return -1;
}

/* The contract fixture file of the directory that fixture path rel
 * ("<folder>/fixtures/<name>.yaml" or .yml) would stand in for, or NULL:
 * "<folder>/fixtures/contract/<name>.yaml" (or .yml). */
static const char *contract_twin(const struct lk_scriptset *set, const char *rel)
{
  const char *slash = strrchr(rel, '/'), *dot = strrchr(rel, '.');
  if (!slash || !dot || dot < slash) return NULL;
  size_t dir = (size_t)(slash - rel) + 1, stem = (size_t)(dot - slash) - 1;
  size_t cl = strlen(LK_CONTRACT_DIR);
  for (size_t i = 0; i < set->nfixtures; i++) {
    const char *f = set->fixtures[i];
    if (!strncmp(f, rel, dir) && !strncmp(f + dir, LK_CONTRACT_DIR "/", cl + 1) &&
        !strncmp(f + dir + cl + 1, slash + 1, stem) &&
        (!strcmp(f + dir + cl + 1 + stem, ".yaml") || !strcmp(f + dir + cl + 1 + stem, ".yml")))
      return f;
  }
  return NULL;
}

/* Replaces or adds one overlay module (or fixture file). A key that would
 * replace a contract fixture file, or names one, is refused. */
static int apply_overlay(struct collect *c, const struct lk_overlay_entry *e, const char *origin)
{
  char name[512];
  const char *contract = NULL;
  if (lk_fixture_path_from_key(e->key, name, sizeof(name)) == 0 &&
      !(contract = contract_twin(c->set, name)))
    return add_overlay_fixture(c, e, name, origin);
  if (contract || strstr(e->key, ".fixtures." LK_CONTRACT_DIR ".")) {
    snprintf(c->err, c->errlen,
             "%s%s%s: %s%s; contract cases run against every overlay and cannot be replaced (give "
             "the overlay's cases a name of their own; doc/hot-reload.md, \"Contract fixtures\")",
             origin ? origin : "", origin ? ": " : "", e->key,
             contract
                 ? "would replace the contract fixture file "
                 : "names a file of a contract fixture folder <folder>/fixtures/" LK_CONTRACT_DIR,
             contract ? contract : "");
    return -1;
  }
  if (lk_module_name_from_key(e->key, name, sizeof(name)) != 0) {
    if (!valid_module_name(e->key) || strlen(e->key) >= sizeof(name)) {
      snprintf(c->err, c->errlen,
               "%s%s%s: not a module key (expected <module>.lua, components [A-Za-z0-9_-]+, or "
               "<folder>.fixtures.<name>.yaml)",
               origin ? origin : "", origin ? ": " : "", e->key);
      return -1;
    }
    snprintf(name, sizeof(name), "%s", e->key);
  }
  char path[600];
  snprintf(path, sizeof(path), "%s%s%s.lua", origin ? origin : "overlay", ":", name);
  char *src = malloc(e->len + 1);
  char *mname = strdup(name), *mpath = strdup(path);
  if (!src || !mname || !mpath) {
    free(src), free(mname), free(mpath);
    snprintf(c->err, c->errlen, "out of memory");
    return -1;
  }
  memcpy(src, e->source, e->len);
  src[e->len] = '\0';
  for (size_t i = 0; i < c->set->nmods; i++) {
    struct lk_module *m = &c->set->mods[i];
    if (!strcmp(m->name, name)) {
      c->set->bytes -= m->len;
      free_module(m);
      *m = (struct lk_module){mname, mpath, src, e->len, 1};
      c->set->bytes += e->len;
      return 0;
    }
  }
  if (add_module(c, mname, mpath, src, e->len, 1) != 0) {
    free(src), free(mname), free(mpath);
    snprintf(c->err, c->errlen, "out of memory");
    return -1;
  }
  return 0;
}

static void compute_revision(struct lk_scriptset *set)
{
  EVP_MD_CTX *md = EVP_MD_CTX_new();
  unsigned char digest[32];
  unsigned int dlen = 0;
  EVP_DigestInit_ex(md, EVP_sha256(), NULL);
  for (size_t i = 0; i < set->nmods; i++) {
    const struct lk_module *m = &set->mods[i];
    char len[32];
    int n = snprintf(len, sizeof(len), "%zu", m->len);
    EVP_DigestUpdate(md, m->name, strlen(m->name) + 1);
    EVP_DigestUpdate(md, len, (size_t)n + 1);
    EVP_DigestUpdate(md, m->source, m->len);
  }
  EVP_DigestFinal_ex(md, digest, &dlen);
  EVP_MD_CTX_free(md);
  char *p = set->revision + sprintf(set->revision, "sha256:");
  for (unsigned i = 0; i < dlen; i++)
    p += sprintf(p, "%02x", digest[i]);
}

int lk_scriptset_load(const char *dir, const struct lk_overlay_entry *overlay, size_t noverlay,
                      const char *origin, struct lk_scriptset **out, char *err, size_t errlen)
{
  struct lk_scriptset *set = calloc(1, sizeof(*set));
  struct collect c = {set, 0, 0, err, errlen};
  if (!set) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  if (dir) {
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
      n--;
    set->dir = strndup(dir, n);
    if (!set->dir || walk(&c, "", 0) != 0) goto fail;
  }
  for (size_t i = 0; i < noverlay; i++)
    if (apply_overlay(&c, &overlay[i], origin) != 0) goto fail;
  if (set->nmods > 1) qsort(set->mods, set->nmods, sizeof(*set->mods), cmp_modules);
  if (set->nfixtures > 1) qsort(set->fixtures, set->nfixtures, sizeof(*set->fixtures), cmp_strings);
  compute_revision(set);
  *out = set;
  return 0;
fail:
  lk_scriptset_free(set);
  return -1;
}

void lk_scriptset_free(struct lk_scriptset *set)
{
  if (!set) return;
  for (size_t i = 0; i < set->nmods; i++)
    free_module(&set->mods[i]);
  for (size_t i = 0; i < set->nfixtures; i++)
    free(set->fixtures[i]);
  for (size_t i = 0; i < set->nofixtures; i++) {
    free(set->ofixtures[i].rel);
    free(set->ofixtures[i].origin);
    free(set->ofixtures[i].text);
  }
  free(set->ofixtures);
  free(set->mods);
  free(set->fixtures);
  free(set->dir);
  free(set);
}

const struct lk_module *lk_scriptset_find(const struct lk_scriptset *set, const char *name)
{
  struct lk_module key = {.name = (char *)name};
  const struct lk_module *m = bsearch(&key, set->mods, set->nmods, sizeof(key), cmp_modules);
  if (m) return m;
  char init[512];
  if (snprintf(init, sizeof(init), "%s.init", name) >= (int)sizeof(init)) return NULL;
  key.name = init;
  return bsearch(&key, set->mods, set->nmods, sizeof(key), cmp_modules);
}

static int has_controllers(const char *dir)
{
  char p[PATH_MAX];
  snprintf(p, sizeof(p), "%s/controllers.lua", dir);
  return access(p, R_OK) == 0;
}

const char *lk_scriptset_default_dir(char *buf, size_t buflen)
{
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0) return NULL;
  exe[n] = '\0';
  char *slash = strrchr(exe, '/');
  if (!slash) return NULL;
  *slash = '\0';
  snprintf(buf, buflen, "%s/scripts", exe);
  if (has_controllers(buf)) return buf;
  snprintf(buf, buflen, "%s/../share/schedsim-operator/scripts", exe);
  if (has_controllers(buf)) return buf;
  return NULL;
}
