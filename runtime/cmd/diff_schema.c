/* diff_schema.c: a light structural-schema check of CRs (see diff_schema.h). */
#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/diff_schema.h"
#include "lua/fixture.h"

struct ds_entry {
  char *api_version, *kind;
  json_t *schema; /* openAPIV3Schema (reference) */
};

struct ds_schemas {
  struct ds_entry *v;
  size_t n;
};

static const char *sget(const json_t *o, const char *k)
{
  const char *s = json_string_value(json_object_get(o, k));
  return s ? s : "";
}

static void add_crd(struct ds_schemas *s, const json_t *crd)
{
  if (strcmp(sget(crd, "kind"), "CustomResourceDefinition")) return;
  const json_t *spec = json_object_get(crd, "spec");
  const char *group = sget(spec, "group");
  const char *kind = sget(json_object_get(spec, "names"), "kind");
  size_t i;
  json_t *ver;
  json_array_foreach(json_object_get(spec, "versions"), i, ver)
  {
    json_t *schema = json_object_get(json_object_get(ver, "schema"), "openAPIV3Schema");
    if (!json_is_object(schema) || !*kind) continue;
    struct ds_entry *nv = realloc(s->v, (s->n + 1) * sizeof(*nv));
    if (!nv) return;
    s->v = nv;
    struct ds_entry *e = &s->v[s->n];
    if (asprintf(&e->api_version, "%s%s%s", group, *group ? "/" : "", sget(ver, "name")) < 0)
      return;
    e->kind = strdup(kind);
    e->schema = json_incref(schema);
    s->n++;
  }
}

static int has_ext(const char *n)
{
  size_t l = strlen(n);
  return (l > 5 && !strcmp(n + l - 5, ".yaml")) || (l > 4 && !strcmp(n + l - 4, ".yml")) ||
         (l > 5 && !strcmp(n + l - 5, ".json"));
}

struct ds_schemas *ds_load_dir(const char *dir, char *err, size_t errlen)
{
  struct ds_schemas *s = calloc(1, sizeof(*s));
  DIR *d = s ? opendir(dir) : NULL;
  if (!d) {
    snprintf(err, errlen, "%s: cannot open", dir);
    free(s);
    return NULL;
  }
  struct dirent *de;
  int rc = 0;
  while (rc == 0 && (de = readdir(d))) {
    if (de->d_name[0] == '.' || !has_ext(de->d_name)) continue;
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
    json_t *docs = lk_fixture_load(path, err, errlen);
    if (!docs) {
      rc = -1;
      break;
    }
    size_t i;
    json_t *doc;
    json_array_foreach(docs, i, doc) add_crd(s, doc);
    json_decref(docs);
  }
  closedir(d);
  if (rc) {
    ds_free(s);
    return NULL;
  }
  return s;
}

void ds_free(struct ds_schemas *s)
{
  if (!s) return;
  for (size_t i = 0; i < s->n; i++) {
    free(s->v[i].api_version);
    free(s->v[i].kind);
    json_decref(s->v[i].schema);
  }
  free(s->v);
  free(s);
}

/* {====================================================================
 * Validation
 * ===================================================================== */

struct vctx {
  char *err;
  size_t errlen;
};

static const char *type_name(const json_t *v)
{
  switch (json_typeof(v)) {
  case JSON_OBJECT:
    return "object";
  case JSON_ARRAY:
    return "array";
  case JSON_STRING:
    return "string";
  case JSON_INTEGER:
    return "integer";
  case JSON_REAL:
    return "number";
  case JSON_TRUE:
  case JSON_FALSE:
    return "boolean";
  default:
    return "null";
  }
}

static int fail(struct vctx *c, const char *path, const char *fmt, const char *a, const char *b)
{
  char msg[1024];
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
  snprintf(msg, sizeof(msg), fmt, a, b);
#pragma GCC diagnostic pop
  snprintf(c->err, c->errlen, "%s: %.900s", *path ? path : "(root)", msg);
  return -1;
}

static int type_ok(const char *type, const json_t *v)
{
  if (!strcmp(type, "object")) return json_is_object(v);
  if (!strcmp(type, "array")) return json_is_array(v);
  if (!strcmp(type, "string")) return json_is_string(v);
  if (!strcmp(type, "boolean")) return json_is_boolean(v);
  if (!strcmp(type, "number")) return json_is_number(v);
  if (!strcmp(type, "integer")) {
    if (json_is_integer(v)) return 1;
    if (!json_is_real(v)) return 0;
    double d = json_real_value(v);
    return isfinite(d) && d == floor(d);
  }
  return 1; /* unknown type names: not ours to judge */
}

static char *child_path(const char *path, const char *key)
{
  char *p = NULL;
  if (asprintf(&p, "%s%s%s", path, *path ? "." : "", key) < 0) return NULL;
  return p;
}

static int validate(struct vctx *c, const json_t *schema, const json_t *v, const char *path);

static int validate_object(struct vctx *c, const json_t *schema, const json_t *v, const char *path)
{
  const json_t *props = json_object_get(schema, "properties");
  const json_t *addl = json_object_get(schema, "additionalProperties");
  int preserve = json_is_true(json_object_get(schema, "x-kubernetes-preserve-unknown-fields"));
  const char *key;
  json_t *val;
  json_object_foreach((json_t *)v, key, val)
  {
    const json_t *sub = json_object_get(props, key);
    if (!sub && json_is_object(addl)) sub = addl;
    if (!sub) {
      if (preserve || json_is_true(addl) || (!props && !addl)) continue;
      char *p = child_path(path, key);
      int rc = fail(c, p ? p : path, "unknown field \"%s\" (not in the CRD schema)%s", key, "");
      free(p);
      return rc;
    }
    char *p = child_path(path, key);
    if (!p) return fail(c, path, "out of memory%s%s", "", "");
    int rc = validate(c, sub, val, p);
    free(p);
    if (rc) return rc;
  }
  return 0;
}

static int validate(struct vctx *c, const json_t *schema, const json_t *v, const char *path)
{
  if (!json_is_object(schema) || json_is_null(v)) return 0;
  char a[256], b[256];
  if (json_is_true(json_object_get(schema, "x-kubernetes-int-or-string"))) {
    if (!json_is_integer(v) && !json_is_string(v))
      return fail(c, path, "must be an integer or a string, got %s%s", type_name(v), "");
  } else {
    const char *type = json_string_value(json_object_get(schema, "type"));
    if (type && !type_ok(type, v)) {
      char *got = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
      snprintf(b, sizeof(b), "%s %.80s", type_name(v), got ? got : "");
      free(got);
      return fail(c, path, "must be %s, got %s", type, b);
    }
  }
  const json_t *en = json_object_get(schema, "enum");
  if (json_is_array(en) && json_array_size(en)) {
    size_t i;
    json_t *e;
    int found = 0;
    json_array_foreach(en, i, e) found |= json_equal(e, (json_t *)v);
    if (!found) {
      char *got = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
      char *want = json_dumps(en, JSON_COMPACT);
      snprintf(a, sizeof(a), "%.80s", got ? got : "");
      snprintf(b, sizeof(b), "%.200s", want ? want : "");
      free(got);
      free(want);
      return fail(c, path, "unsupported value %s: supported values: %s", a, b);
    }
  }
  if (json_is_number(v)) {
    double d = json_number_value(v);
    const json_t *min = json_object_get(schema, "minimum"),
                 *max = json_object_get(schema, "maximum");
    if (json_is_number(min) && d < json_number_value(min)) {
      snprintf(a, sizeof(a), "%g", d);
      snprintf(b, sizeof(b), "%g", json_number_value(min));
      return fail(c, path, "%s is less than the minimum %s", a, b);
    }
    if (json_is_number(max) && d > json_number_value(max)) {
      snprintf(a, sizeof(a), "%g", d);
      snprintf(b, sizeof(b), "%g", json_number_value(max));
      return fail(c, path, "%s is greater than the maximum %s", a, b);
    }
  }
  if (json_is_object(v)) return validate_object(c, schema, v, path);
  if (json_is_array(v)) {
    const json_t *items = json_object_get(schema, "items");
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
      char *p = NULL;
      if (asprintf(&p, "%s[%zu]", path, i) < 0) return fail(c, path, "out of memory%s%s", "", "");
      int rc = validate(c, items, e, p);
      free(p);
      if (rc) return rc;
    }
  }
  return 0;
}

/* }==================================================================== */

int ds_check(const struct ds_schemas *s, const json_t *obj, char *err, size_t errlen)
{
  const char *av = sget(obj, "apiVersion"), *kind = sget(obj, "kind");
  for (size_t i = 0; s && i < s->n; i++) {
    if (strcmp(s->v[i].api_version, av) || strcmp(s->v[i].kind, kind)) continue;
    struct vctx c = {err, errlen};
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)obj, key, val)
    {
      if (!strcmp(key, "metadata")) continue; /* the API server's */
      const json_t *sub = json_object_get(json_object_get(s->v[i].schema, "properties"), key);
      if (!sub) {
        if (!strcmp(key, "apiVersion") || !strcmp(key, "kind")) continue;
        return fail(&c, key, "unknown field \"%s\" (not in the CRD schema)%s", key, "");
      }
      if (validate(&c, sub, val, key) != 0) return -1;
    }
    return 0;
  }
  return 0;
}
