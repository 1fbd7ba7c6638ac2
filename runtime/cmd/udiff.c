/* udiff.c: unified diffs of objects' YAML and the KUBECTL_EXTERNAL_DIFF
 * directories (udiff.h). Owns the line tables of one ud_diff call and the
 * temporary directories of one ud_external. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmd/diff_tree.h"
#include "cmd/udiff.h"
#include "core/yaml.h"

/* {====================================================================
 * Objects as YAML
 * ===================================================================== */

/* Removes the server-set fields (dt_ignored) from a copy of obj. */
static void strip(json_t *obj, int flags)
{
  json_t *md = json_object_get(obj, "metadata");
  static const char *const keys[] = {"managedFields",     "resourceVersion", "uid",
                                     "creationTimestamp", "generation",      "selfLink"};
  for (size_t i = 0; json_is_object(md) && i < sizeof keys / sizeof keys[0]; i++) {
    char path[64];
    snprintf(path, sizeof path, "metadata.%s", keys[i]);
    if (dt_ignored(path, flags)) json_object_del(md, keys[i]);
  }
  if (dt_ignored("status", flags)) json_object_del(obj, "status");
}

char *ud_object_yaml(const json_t *obj, int flags)
{
  if (!obj) return strdup("");
  json_t *c = json_deep_copy(obj);
  if (!c) return NULL;
  strip(c, flags);
  char *y = k8s_yaml_dump(c);
  json_decref(c);
  return y;
}

/* }==================================================================== */

/* {====================================================================
 * Unified diff
 * ===================================================================== */

struct lines {
  const char **p; /* line starts */
  size_t *len;    /* lengths without the newline */
  size_t n;
};

static int split(const char *s, struct lines *l)
{
  size_t cap = 1;
  for (const char *q = s; *q; q++)
    cap += *q == '\n';
  l->p = malloc(cap * sizeof *l->p);
  l->len = malloc(cap * sizeof *l->len);
  l->n = 0;
  if (!l->p || !l->len) return -1;
  while (*s) {
    const char *e = strchr(s, '\n');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    l->p[l->n] = s;
    l->len[l->n++] = n;
    s += n + (e != NULL);
  }
  return 0;
}

static int same(const struct lines *a, size_t i, const struct lines *b, size_t j)
{
  return a->len[i] == b->len[j] && !memcmp(a->p[i], b->p[j], a->len[i]);
}

enum op { OP_SAME, OP_DEL, OP_ADD };

static void emit(struct k8s_buf *out, char c, const struct lines *l, size_t i)
{
  k8s_buf_addc(out, c);
  k8s_buf_add(out, l->p[i], l->len[i]);
  k8s_buf_addc(out, '\n');
}

size_t ud_diff(const char *a, const char *b, int context, struct k8s_buf *out)
{
  struct lines la = {0}, lb = {0};
  size_t changes = (size_t)-1;
  unsigned *lcs = NULL;
  enum op *ops = NULL;
  size_t *ai = NULL, *bi = NULL;
  if (split(a, &la) || split(b, &lb)) goto done;
  size_t n = la.n, m = lb.n, w = m + 1;
  /* lcs[i][j]: length of the LCS of a[i..] and b[j..] */
  lcs = calloc((n + 1) * w, sizeof *lcs);
  ops = malloc((n + m + 1) * sizeof *ops);
  ai = malloc((n + m + 1) * sizeof *ai);
  bi = malloc((n + m + 1) * sizeof *bi);
  if (!lcs || !ops || !ai || !bi) goto done;
  for (size_t i = n; i-- > 0;)
    for (size_t j = m; j-- > 0;)
      lcs[i * w + j] = same(&la, i, &lb, j)                         ? lcs[(i + 1) * w + j + 1] + 1
                       : lcs[(i + 1) * w + j] >= lcs[i * w + j + 1] ? lcs[(i + 1) * w + j]
                                                                    : lcs[i * w + j + 1];
  /* the edit script, deletions before additions at each point */
  size_t k = 0, i = 0, j = 0;
  changes = 0;
  while (i < n || j < m) {
    if (i < n && j < m && same(&la, i, &lb, j)) {
      ops[k] = OP_SAME, ai[k] = i++, bi[k++] = j++;
    } else if (i < n && (j == m || lcs[(i + 1) * w + j] >= lcs[i * w + j + 1])) {
      ops[k] = OP_DEL, ai[k] = i++, bi[k++] = j, changes++;
    } else {
      ops[k] = OP_ADD, ai[k] = i, bi[k++] = j++, changes++;
    }
  }
  /* hunks: each change with `context` equal lines around it; two changes
   * at most 2 * context equal lines apart share a hunk */
  size_t ctx = context > 0 ? (size_t)context : 0, x = 0;
  while (x < k) {
    while (x < k && ops[x] == OP_SAME)
      x++;
    if (x == k) break;
    size_t start = x > ctx ? x - ctx : 0, last = x, y = x + 1;
    while (y < k) {
      if (ops[y] != OP_SAME)
        last = y;
      else if (y - last > 2 * ctx)
        break;
      y++;
    }
    size_t end = last + 1 + ctx < k ? last + 1 + ctx : k;
    size_t na = 0, nb = 0;
    for (size_t z = start; z < end; z++) {
      na += ops[z] != OP_ADD;
      nb += ops[z] != OP_DEL;
    }
    /* as diff -u: 1-based starts (the line before an empty range), ",1" omitted */
    k8s_buf_printf(out, "@@ -%zu", ai[start] + (na ? 1 : 0));
    if (na != 1) k8s_buf_printf(out, ",%zu", na);
    k8s_buf_printf(out, " +%zu", bi[start] + (nb ? 1 : 0));
    if (nb != 1) k8s_buf_printf(out, ",%zu", nb);
    k8s_buf_adds(out, " @@\n");
    for (size_t z = start; z < end; z++) {
      if (ops[z] == OP_SAME)
        emit(out, ' ', &la, ai[z]);
      else if (ops[z] == OP_DEL)
        emit(out, '-', &la, ai[z]);
      else
        emit(out, '+', &lb, bi[z]);
    }
    x = end;
  }
done:
  free(la.p), free(la.len), free(lb.p), free(lb.len);
  free(lcs), free(ops), free(ai), free(bi);
  return changes;
}

/* }==================================================================== */

/* {====================================================================
 * KUBECTL_EXTERNAL_DIFF
 * ===================================================================== */

struct ud_external {
  char live[64], merged[64];
};

struct ud_external *ud_external_new(void)
{
  struct ud_external *x = calloc(1, sizeof *x);
  if (!x) return NULL;
  const char *tmp = getenv("TMPDIR");
  if (!tmp || !*tmp) tmp = "/tmp";
  snprintf(x->live, sizeof x->live, "%.40s/LIVE-XXXXXX", tmp);
  snprintf(x->merged, sizeof x->merged, "%.40s/MERGED-XXXXXX", tmp);
  if (!mkdtemp(x->live)) {
    free(x);
    return NULL;
  }
  if (!mkdtemp(x->merged)) {
    rmdir(x->live);
    free(x);
    return NULL;
  }
  return x;
}

static int write_file(const char *dir, const char *name, const char *text)
{
  char path[1200];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  if (!f) return -1;
  int ok = fputs(text, f) >= 0;
  return fclose(f) == 0 && ok ? 0 : -1;
}

int ud_external_add(struct ud_external *x, const char *api_version, const char *kind,
                    const char *ns, const char *name, const char *live_yaml,
                    const char *merged_yaml)
{
  /* apps/v1 -> apps.v1; v1 -> v1 (kubectl: group.version.kind.ns.name) */
  char file[1000];
  snprintf(file, sizeof file, "%s.%s.%s.%s", api_version, kind, ns && *ns ? ns : "", name);
  for (char *p = file; *p; p++)
    if (*p == '/') *p = '.';
  int rc = 0;
  if (live_yaml && write_file(x->live, file, live_yaml) != 0) rc = -1;
  if (merged_yaml && write_file(x->merged, file, merged_yaml) != 0) rc = -1;
  return rc;
}

static void remove_dir(const char *dir)
{
  char cmd[200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir); /* our own mkdtemp name: no quote in it */
  if (system(cmd) != 0) rmdir(dir);
}

int ud_external_run(struct ud_external *x, const char *cmd)
{
  /* words of cmd, then the two directories */
  char *copy = strdup(cmd ? cmd : "");
  char *argv[34];
  int argc = 0;
  for (char *save = NULL, *w = copy ? strtok_r(copy, " \t", &save) : NULL; w && argc < 31;
       w = strtok_r(NULL, " \t", &save))
    argv[argc++] = w;
  int status = -1;
  if (argc > 0) {
    argv[argc++] = x->live;
    argv[argc++] = x->merged;
    argv[argc] = NULL;
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
      execvp(argv[0], argv);
      fprintf(stderr, "schedsim-operator diff: KUBECTL_EXTERNAL_DIFF: %s: %s\n", argv[0],
              strerror(errno));
      _exit(127);
    }
    int ws;
    if (pid > 0 && waitpid(pid, &ws, 0) == pid && WIFEXITED(ws)) status = WEXITSTATUS(ws);
  }
  free(copy);
  remove_dir(x->live);
  remove_dir(x->merged);
  free(x);
  return status == 127 ? -1 : status;
}

/* }==================================================================== */
