/* diff_tree.c: a readable per-field diff of two JSON trees (see diff_tree.h).
 * Multi-line strings (ConfigMap payloads) are compared line by line (LCS)
 * and shown as `path#N: "line"`, N the 1-based line of that side. */
#include <stdlib.h>
#include <string.h>

#include "cmd/diff_tree.h"

struct walk {
  int flags;
  const char *prefix;
  struct k8s_buf *out;
  size_t lines;
};

static const char *const server_set[] = {"metadata.managedFields",
                                         "metadata.resourceVersion",
                                         "metadata.uid",
                                         "metadata.creationTimestamp",
                                         "metadata.generation",
                                         "metadata.selfLink",
                                         NULL};

int dt_ignored(const char *path, int flags)
{
  for (int i = 0; server_set[i]; i++)
    if (!strcmp(path, server_set[i])) return 1;
  return (flags & DT_IGNORE_STATUS) && !strcmp(path, "status");
}

/* {====================================================================
 * Paths and values
 * ===================================================================== */

static int plain_key(const char *k)
{
  if (!*k || (*k >= '0' && *k <= '9')) return 0;
  for (const char *p = k; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          *p == '_' || *p == '-'))
      return 0;
  return 1;
}

/* path + key segment, malloc'd */
static char *key_path(const char *path, const char *key)
{
  struct k8s_buf b = {0};
  k8s_buf_adds(&b, path);
  if (plain_key(key)) {
    if (*path) k8s_buf_addc(&b, '.');
    k8s_buf_adds(&b, key);
  } else {
    json_t *s = json_string(key);
    char *q = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
    k8s_buf_printf(&b, "[%s]", q ? q : key);
    free(q);
    json_decref(s);
  }
  char *r = k8s_buf_steal(&b, NULL);
  return r ? r : strdup("?");
}

static char *index_path(const char *path, const char *field, const char *value, size_t i)
{
  struct k8s_buf b = {0};
  if (field)
    k8s_buf_printf(&b, "%s[%s=%s]", path, field, value);
  else
    k8s_buf_printf(&b, "%s[%zu]", path, i);
  char *r = k8s_buf_steal(&b, NULL);
  return r ? r : strdup("?");
}

static void line(struct walk *w, char sign, const char *path, const char *value)
{
  k8s_buf_printf(w->out, "%s%c %s: %s\n", w->prefix, sign, path, value);
  w->lines++;
}

static void value_line(struct walk *w, char sign, const char *path, const json_t *v)
{
  char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
  line(w, sign, path, s ? s : "?");
  free(s);
}

/* }==================================================================== */

/* {====================================================================
 * Multi-line strings
 * ===================================================================== */

struct text {
  char **v;
  size_t n;
};

static void split_lines(const char *s, struct text *t)
{
  t->v = NULL;
  t->n = 0;
  size_t cap = 0;
  while (*s) {
    const char *nl = strchr(s, '\n');
    size_t len = nl ? (size_t)(nl - s) : strlen(s);
    if (t->n == cap) {
      cap = cap ? cap * 2 : 16;
      char **nv = realloc(t->v, cap * sizeof(*nv));
      if (!nv) return;
      t->v = nv;
    }
    t->v[t->n++] = strndup(s, len);
    s += len + (nl ? 1 : 0);
  }
}

static void free_text(struct text *t)
{
  for (size_t i = 0; i < t->n; i++)
    free(t->v[i]);
  free(t->v);
}

static void text_line(struct walk *w, char sign, const char *path, size_t no, const char *s)
{
  json_t *js = json_string(s ? s : "");
  char *q = js ? json_dumps(js, JSON_ENCODE_ANY) : NULL;
  char *p = NULL;
  if (asprintf(&p, "%s#%zu", path, no) < 0) p = NULL;
  line(w, sign, p ? p : path, q ? q : "?");
  free(p);
  free(q);
  json_decref(js);
}

/* Line diff of two texts (either may be NULL: absent). */
static void text_diff(struct walk *w, const char *path, const char *a, const char *b)
{
  struct text x = {0}, y = {0};
  if (a) split_lines(a, &x);
  if (b) split_lines(b, &y);
  size_t n = x.n, m = y.n;
  unsigned *t = NULL;
  if (n && m && n * m <= 4u * 1024 * 1024) t = calloc((n + 1) * (m + 1), sizeof(*t));
  if (t) { /* t[i][j] = LCS of x[i..] and y[j..] */
    for (size_t i = n; i-- > 0;)
      for (size_t j = m; j-- > 0;)
        t[i * (m + 1) + j] =
            !strcmp(x.v[i], y.v[j])
                ? t[(i + 1) * (m + 1) + j + 1] + 1
                : (t[(i + 1) * (m + 1) + j] >= t[i * (m + 1) + j + 1] ? t[(i + 1) * (m + 1) + j]
                                                                      : t[i * (m + 1) + j + 1]);
    size_t i = 0, j = 0;
    while (i < n || j < m) {
      if (i < n && j < m && !strcmp(x.v[i], y.v[j])) {
        i++, j++;
      } else if (j < m && (i == n || t[i * (m + 1) + j + 1] >= t[(i + 1) * (m + 1) + j])) {
        text_line(w, '+', path, j + 1, y.v[j]);
        j++;
      } else {
        text_line(w, '-', path, i + 1, x.v[i]);
        i++;
      }
    }
    free(t);
  } else {
    for (size_t i = 0; i < n; i++)
      text_line(w, '-', path, i + 1, x.v[i]);
    for (size_t j = 0; j < m; j++)
      text_line(w, '+', path, j + 1, y.v[j]);
  }
  free_text(&x);
  free_text(&y);
}

static int multiline(const json_t *v)
{
  return json_is_string(v) && strchr(json_string_value(v), '\n');
}

/* }==================================================================== */

/* {====================================================================
 * Trees
 * ===================================================================== */

static int cmp_str(const void *a, const void *b)
{
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The sorted union of the keys of a and b (either may be NULL or not an
 * object); *n keys, borrowed. */
static const char **keys_of(const json_t *a, const json_t *b, size_t *n)
{
  size_t cap = json_object_size(a) + json_object_size(b), k = 0;
  const char **v = calloc(cap + 1, sizeof(*v));
  if (!v) {
    *n = 0;
    return NULL;
  }
  const char *key;
  json_t *val;
  json_object_foreach((json_t *)a, key, val) v[k++] = key;
  json_object_foreach((json_t *)b, key, val)
  {
    if (!json_object_get(a, key)) v[k++] = key;
  }
  if (k > 1) qsort(v, k, sizeof(*v), cmp_str);
  *n = k;
  return v;
}

/* The field ("name", then "type") that identifies every element of the
 * arrays a and b (either may be NULL), or NULL. */
static const char *array_key(const json_t *a, const json_t *b)
{
  static const char *const fields[] = {"name", "type", NULL};
  for (int f = 0; fields[f]; f++) {
    int ok = 1;
    const json_t *arrs[2] = {a, b};
    for (int s = 0; s < 2 && ok; s++) {
      size_t n = json_array_size(arrs[s]);
      for (size_t i = 0; i < n && ok; i++) {
        const char *v = json_string_value(json_object_get(json_array_get(arrs[s], i), fields[f]));
        if (!v || strchr(v, ']')) ok = 0;
        for (size_t j = 0; ok && j < i; j++)
          if (!strcmp(v, json_string_value(json_object_get(json_array_get(arrs[s], j), fields[f]))))
            ok = 0;
      }
    }
    if (ok && (json_array_size(a) || json_array_size(b))) return fields[f];
  }
  return NULL;
}

static const json_t *find_keyed(const json_t *arr, const char *field, const char *value)
{
  size_t i;
  json_t *e;
  json_array_foreach(arr, i, e)
  {
    if (!strcmp(json_string_value(json_object_get(e, field)), value)) return e;
  }
  return NULL;
}

static void walk(struct walk *w, const json_t *a, const json_t *b, const char *path);

static void walk_objects(struct walk *w, const json_t *a, const json_t *b, const char *path)
{
  size_t n;
  const char **keys = keys_of(a, b, &n);
  for (size_t i = 0; i < n; i++) {
    char *p = key_path(path, keys[i]);
    walk(w, json_object_get(a, keys[i]), json_object_get(b, keys[i]), p);
    free(p);
  }
  free(keys);
}

static void walk_arrays(struct walk *w, const json_t *a, const json_t *b, const char *path)
{
  const char *field = array_key(a, b);
  if (field) {
    size_t i;
    json_t *e;
    json_array_foreach(a, i, e)
    {
      const char *v = json_string_value(json_object_get(e, field));
      char *p = index_path(path, field, v, i);
      walk(w, e, find_keyed(b, field, v), p);
      free(p);
    }
    json_array_foreach(b, i, e)
    {
      const char *v = json_string_value(json_object_get(e, field));
      if (find_keyed(a, field, v)) continue;
      char *p = index_path(path, field, v, i);
      walk(w, NULL, e, p);
      free(p);
    }
    return;
  }
  size_t na = json_array_size(a), nb = json_array_size(b);
  for (size_t i = 0; i < na || i < nb; i++) {
    char *p = index_path(path, NULL, NULL, i);
    walk(w, json_array_get(a, i), json_array_get(b, i), p);
    free(p);
  }
}

static int is_container(const json_t *v)
{
  return (json_is_object(v) && json_object_size(v)) || (json_is_array(v) && json_array_size(v));
}

/* One side only: every leaf of v with sign. */
static void leaves(struct walk *w, const json_t *v, const char *path, char sign)
{
  if (json_is_object(v) && json_object_size(v))
    walk_objects(w, sign == '-' ? v : NULL, sign == '+' ? v : NULL, path);
  else if (json_is_array(v) && json_array_size(v))
    walk_arrays(w, sign == '-' ? v : NULL, sign == '+' ? v : NULL, path);
  else if (multiline(v))
    text_diff(w, path, sign == '-' ? json_string_value(v) : NULL,
              sign == '+' ? json_string_value(v) : NULL);
  else
    value_line(w, sign, path, v);
}

static void walk(struct walk *w, const json_t *a, const json_t *b, const char *path)
{
  if (dt_ignored(path, w->flags) || (!a && !b)) return;
  if (!a) {
    leaves(w, b, path, '+');
    return;
  }
  if (!b) {
    leaves(w, a, path, '-');
    return;
  }
  if (json_is_object(a) && json_is_object(b) && (json_object_size(a) || json_object_size(b))) {
    walk_objects(w, a, b, path);
    return;
  }
  if (json_is_array(a) && json_is_array(b) && (json_array_size(a) || json_array_size(b))) {
    walk_arrays(w, a, b, path);
    return;
  }
  if (json_equal((json_t *)a, (json_t *)b)) return;
  if (multiline(a) && multiline(b)) {
    text_diff(w, path, json_string_value(a), json_string_value(b));
    return;
  }
  if (is_container(a) || multiline(a))
    leaves(w, a, path, '-');
  else
    value_line(w, '-', path, a);
  if (is_container(b) || multiline(b))
    leaves(w, b, path, '+');
  else
    value_line(w, '+', path, b);
}

/* }==================================================================== */

size_t dt_diff(const json_t *before, const json_t *after, int flags, const char *prefix,
               struct k8s_buf *out)
{
  struct walk w = {flags, prefix ? prefix : "", out, 0};
  walk(&w, before, after, "");
  return w.lines;
}
