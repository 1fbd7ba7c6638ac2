/* yaml.c: YAML <-> jansson (yaml.h). Owns the Kubernetes-style scalar
 * resolution (YAML 1.2 core schema, as sigs.k8s.io/yaml), the event-driven
 * loader (documents, anchors/aliases, merge keys, limits) and the writer over
 * libyaml's emitter (sorted keys, quoting of ambiguous strings, literal
 * blocks). Depends on libyaml, jansson and json.h's real formatting. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>
#include "buf.h"
#include "json.h"
#include "yaml.h"

#define MAX_DEPTH 200        /* nesting of collections */
#define MAX_EXPANDED 1000000 /* nodes after alias expansion, per document */

/* {====================================================================
 * Scalar resolution
 * ===================================================================== */

enum scalar_kind { S_STRING, S_NULL, S_BOOL, S_INT, S_FLOAT, S_SPECIAL_FLOAT };

static int eq_any(const char *s, size_t n, const char *const *words)
{
  for (; *words; words++)
    if (strlen(*words) == n && memcmp(*words, s, n) == 0) return 1;
  return 0;
}

static const char *const null_words[] = {"~", "null", "Null", "NULL", NULL};
static const char *const true_words[] = {"true", "True", "TRUE", NULL};
static const char *const false_words[] = {"false", "False", "FALSE", NULL};
static const char *const inf_nan_words[] = {".inf",  ".Inf",  ".INF",  "+.inf", "+.Inf",
                                            "+.INF", "-.inf", "-.Inf", "-.INF", ".nan",
                                            ".NaN",  ".NAN",  NULL};
/* YAML 1.1 booleans: strings here, but quoted on output for 1.1 readers. */
static const char *const yaml11_bool_words[] = {"y",  "Y",   "yes", "Yes", "YES", "n",
                                                "N",  "no",  "No",  "NO",  "on",  "On",
                                                "ON", "off", "Off", "OFF", NULL};

static int all_digits(const char *s, size_t n, int base)
{
  if (n == 0) return 0;
  for (size_t i = 0; i < n; i++) {
    int c = (unsigned char)s[i];
    if (base == 16 ? !isxdigit(c) : base == 8 ? (c < '0' || c > '7') : !isdigit(c)) return 0;
  }
  return 1;
}

/* [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )? */
static int is_float(const char *s, size_t n)
{
  size_t i = 0, d = 0;
  if (i < n && (s[i] == '-' || s[i] == '+')) i++;
  while (i < n && isdigit((unsigned char)s[i]))
    i++, d++;
  if (i < n && s[i] == '.') {
    i++;
    while (i < n && isdigit((unsigned char)s[i]))
      i++, d++;
  }
  if (d == 0) return 0;
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    i++;
    if (i < n && (s[i] == '-' || s[i] == '+')) i++;
    size_t e = i;
    while (i < n && isdigit((unsigned char)s[i]))
      i++;
    if (i == e) return 0;
  }
  return i == n;
}

/* Classifies a plain scalar. Decimal integers with a leading zero ("0123")
 * stay strings: YAML 1.1 readers take them as octal. */
static enum scalar_kind classify_plain(const char *s, size_t n)
{
  if (n == 0 || eq_any(s, n, null_words)) return S_NULL;
  if (eq_any(s, n, true_words) || eq_any(s, n, false_words)) return S_BOOL;
  if (eq_any(s, n, inf_nan_words)) return S_SPECIAL_FLOAT;
  const char *d = s;
  size_t dn = n;
  if (*d == '-' || *d == '+') d++, dn--;
  if (all_digits(d, dn, 10)) return (dn > 1 && d[0] == '0') ? S_STRING : S_INT;
  if (n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o'))
    return all_digits(s + 2, n - 2, s[1] == 'x' ? 16 : 8) ? S_INT : S_STRING;
  if (is_float(s, n)) return S_FLOAT;
  return S_STRING;
}

/* Value of a scalar classified as kind; NULL on failure (no memory, or an
 * explicitly tagged scalar that does not parse). */
static json_t *scalar_value(const char *s, size_t n, enum scalar_kind kind)
{
  char tmp[128];
  switch (kind) {
  case S_NULL:
    return json_null();
  case S_BOOL:
    return json_boolean(eq_any(s, n, true_words));
  case S_INT:
  case S_FLOAT: {
    if (n >= sizeof tmp) return kind == S_INT ? NULL : json_real(strtod(s, NULL));
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    if (kind == S_INT) {
      const char *p = tmp;
      int base = 10, neg = 0;
      if (*p == '-' || *p == '+') neg = *p++ == '-';
      if (p[0] == '0' && (p[1] == 'x' || p[1] == 'o')) {
        base = p[1] == 'x' ? 16 : 8;
        p += 2;
      }
      errno = 0;
      char *end;
      unsigned long long u = strtoull(p, &end, base);
      if (*end || end == p) return NULL;
      if (errno == 0 && !neg && u <= (unsigned long long)LLONG_MAX)
        return json_integer((json_int_t)u);
      if (errno == 0 && neg && u <= (unsigned long long)LLONG_MAX + 1ULL)
        return json_integer(u == (unsigned long long)LLONG_MAX + 1ULL ? LLONG_MIN : -(long long)u);
      if (base != 10) return NULL;
      return json_real(strtod(tmp, NULL)); /* beyond int64: a real, as Go does */
    }
    double d = strtod(tmp, NULL);
    return json_real(d);
  }
  case S_STRING:
  case S_SPECIAL_FLOAT:
    break;
  }
  return json_stringn(s, n);
}

/* }==================================================================== */

/* {====================================================================
 * Loader
 * ===================================================================== */

struct anchor {
  char *name;
  json_t *value;
  size_t nodes; /* nodes under value, aliases expanded */
};

struct loader {
  yaml_parser_t parser;
  const char *filename;
  char *err;
  size_t errlen;
  struct anchor *anchors;
  size_t nanchors, anchors_cap;
  size_t expanded; /* nodes in the current document, aliases expanded */
  int failed;
  unsigned flags; /* K8S_YAML_* */
};

static void fail_at(struct loader *ld, yaml_mark_t mark, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail_at(struct loader *ld, yaml_mark_t mark, const char *fmt, ...)
{
  if (ld->failed) return;
  ld->failed = 1;
  if (!ld->err || !ld->errlen) return;
  char msg[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  snprintf(ld->err, ld->errlen, "%s:%zu:%zu: %s", ld->filename, mark.line + 1, mark.column + 1,
           msg);
}

static void fail_parser(struct loader *ld)
{
  yaml_parser_t *p = &ld->parser;
  if (p->error == YAML_MEMORY_ERROR) {
    fail_at(ld, p->mark, "out of memory");
    return;
  }
  yaml_mark_t mark = p->problem_mark;
  if (p->error == YAML_READER_ERROR) { /* the reader reports a byte offset */
    mark = p->mark;
  }
  if (p->context)
    fail_at(ld, mark, "%s %s (line %zu)", p->problem ? p->problem : "syntax error", p->context,
            p->context_mark.line + 1);
  else
    fail_at(ld, mark, "%s", p->problem ? p->problem : "syntax error");
}

static int next_event(struct loader *ld, yaml_event_t *ev)
{
  if (!yaml_parser_parse(&ld->parser, ev)) {
    fail_parser(ld);
    return -1;
  }
  return 0;
}

static void clear_anchors(struct loader *ld)
{
  for (size_t i = 0; i < ld->nanchors; i++) {
    free(ld->anchors[i].name);
    json_decref(ld->anchors[i].value);
  }
  ld->nanchors = 0;
}

static int add_anchor(struct loader *ld, const char *name, json_t *v, size_t nodes)
{
  if (ld->nanchors == ld->anchors_cap) {
    size_t cap = ld->anchors_cap ? ld->anchors_cap * 2 : 8;
    struct anchor *a = realloc(ld->anchors, cap * sizeof *a);
    if (!a) return -1;
    ld->anchors = a;
    ld->anchors_cap = cap;
  }
  char *copy = strdup(name);
  if (!copy) return -1;
  ld->anchors[ld->nanchors++] = (struct anchor){copy, json_incref(v), nodes};
  return 0;
}

static const struct anchor *find_anchor(struct loader *ld, const char *name)
{
  for (size_t i = ld->nanchors; i-- > 0;) /* the latest definition wins */
    if (strcmp(ld->anchors[i].name, name) == 0) return &ld->anchors[i];
  return NULL;
}

static json_t *load_node(struct loader *ld, yaml_event_t *ev, int depth, size_t *nodes);

static json_t *load_scalar(struct loader *ld, yaml_event_t *ev)
{
  const char *s = (const char *)ev->data.scalar.value;
  size_t n = ev->data.scalar.length;
  const char *tag = (const char *)ev->data.scalar.tag;
  int plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
  enum scalar_kind kind = S_STRING, seen = classify_plain(s, n);
  int ok = 1;
  if (!tag && plain && (ld->flags & K8S_YAML_11_BOOLS) && eq_any(s, n, yaml11_bool_words)) {
    /* y/yes/on (any of their spellings) true, n/no/off false */
    return json_boolean(s[0] == 'y' || s[0] == 'Y' || (n == 2 && (s[1] == 'n' || s[1] == 'N')));
  }
  if (!tag) {
    kind = plain ? seen : S_STRING;
  } else if (strcmp(tag, "!") == 0 || strcmp(tag, YAML_STR_TAG) == 0 ||
             strcmp(tag, "tag:yaml.org,2002:binary") == 0) {
    kind = S_STRING;
  } else if (strcmp(tag, YAML_NULL_TAG) == 0) {
    kind = S_NULL;
  } else if (strcmp(tag, YAML_BOOL_TAG) == 0) {
    kind = S_BOOL;
    ok = seen == S_BOOL;
  } else if (strcmp(tag, YAML_INT_TAG) == 0) {
    kind = S_INT;
    ok = seen == S_INT;
  } else if (strcmp(tag, YAML_FLOAT_TAG) == 0) {
    kind = seen == S_SPECIAL_FLOAT ? S_SPECIAL_FLOAT : S_FLOAT;
    ok = seen == S_INT || seen == S_FLOAT || seen == S_SPECIAL_FLOAT;
  } else {
    kind = plain ? seen : S_STRING; /* a custom tag: resolve as untagged */
  }
  if (!ok) {
    fail_at(ld, ev->start_mark, "cannot read \"%.*s\" as %s", (int)(n > 40 ? 40 : n), s, tag);
    return NULL;
  }
  if (kind == S_SPECIAL_FLOAT) {
    fail_at(ld, ev->start_mark, "%.*s cannot be represented in JSON", (int)(n > 40 ? 40 : n), s);
    return NULL;
  }
  json_t *v = scalar_value(s, n, kind);
  if (!v)
    fail_at(ld, ev->start_mark, "%s",
            kind == S_STRING ? "string is not valid UTF-8" : "number out of range");
  return v;
}

/* Text of a mapping key: a scalar's own text, or an alias to a string. */
static int key_text(struct loader *ld, yaml_event_t *ev, json_t **key)
{
  if (ev->type == YAML_SCALAR_EVENT) {
    *key = json_stringn((const char *)ev->data.scalar.value, ev->data.scalar.length);
    if (!*key) {
      fail_at(ld, ev->start_mark, "key is not valid UTF-8");
      return -1;
    }
    return 0;
  }
  if (ev->type == YAML_ALIAS_EVENT) {
    const struct anchor *a = find_anchor(ld, (const char *)ev->data.alias.anchor);
    if (a && json_is_string(a->value)) {
      *key = json_incref(a->value);
      return 0;
    }
  }
  fail_at(ld, ev->start_mark, "mapping keys must be scalars");
  return -1;
}

/* Merges the keys of src (an object, or an array of objects) into obj where
 * absent. */
static int merge_into(struct loader *ld, json_t *obj, json_t *src, yaml_mark_t mark)
{
  if (json_is_array(src)) {
    for (size_t i = 0; i < json_array_size(src); i++)
      if (merge_into(ld, obj, json_array_get(src, i), mark) < 0) return -1;
    return 0;
  }
  if (!json_is_object(src)) {
    fail_at(ld, mark, "a merge key (<<) needs a mapping or a list of mappings");
    return -1;
  }
  for (void *it = json_object_iter(src); it; it = json_object_iter_next(src, it)) {
    const char *k = json_object_iter_key(it);
    size_t kl = json_object_iter_key_len(it);
    if (!json_object_getn(obj, k, kl) &&
        json_object_setn(obj, k, kl, json_object_iter_value(it)) < 0) {
      fail_at(ld, mark, "out of memory");
      return -1;
    }
  }
  return 0;
}

static json_t *load_mapping(struct loader *ld, int depth, size_t *nodes)
{
  json_t *obj = json_object(), *merges = json_array();
  yaml_event_t ev;
  if (!obj || !merges) {
    fail_at(ld, ld->parser.mark, "out of memory");
    goto fail;
  }
  for (;;) {
    if (next_event(ld, &ev) < 0) goto fail;
    if (ev.type == YAML_MAPPING_END_EVENT) {
      yaml_event_delete(&ev);
      break;
    }
    yaml_mark_t kmark = ev.start_mark;
    int is_merge = ev.type == YAML_SCALAR_EVENT && ev.data.scalar.length == 2 &&
                   memcmp(ev.data.scalar.value, "<<", 2) == 0 &&
                   ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !ev.data.scalar.tag;
    json_t *key = NULL;
    if (!is_merge && key_text(ld, &ev, &key) < 0) {
      yaml_event_delete(&ev);
      goto fail;
    }
    yaml_event_delete(&ev);
    if (next_event(ld, &ev) < 0) {
      json_decref(key);
      goto fail;
    }
    size_t sub = 0;
    json_t *val = load_node(ld, &ev, depth + 1, &sub);
    yaml_event_delete(&ev);
    if (!val) {
      json_decref(key);
      goto fail;
    }
    *nodes += sub;
    if (is_merge) {
      if (json_array_append_new(merges, val) < 0) {
        fail_at(ld, kmark, "out of memory");
        goto fail;
      }
      continue;
    }
    const char *k = json_string_value(key);
    size_t kl = json_string_length(key);
    if (json_object_getn(obj, k, kl)) {
      fail_at(ld, kmark, "duplicate key \"%.*s\"", (int)(kl > 60 ? 60 : kl), k);
      json_decref(key);
      json_decref(val);
      goto fail;
    }
    int rc = json_object_setn_new(obj, k, kl, val);
    json_decref(key);
    if (rc < 0) {
      fail_at(ld, kmark, "out of memory");
      goto fail;
    }
  }
  if (merge_into(ld, obj, merges, ld->parser.mark) < 0) goto fail;
  json_decref(merges);
  return obj;
fail:
  json_decref(obj);
  json_decref(merges);
  return NULL;
}

static json_t *load_sequence(struct loader *ld, int depth, size_t *nodes)
{
  json_t *arr = json_array();
  yaml_event_t ev;
  if (!arr) {
    fail_at(ld, ld->parser.mark, "out of memory");
    return NULL;
  }
  for (;;) {
    if (next_event(ld, &ev) < 0) goto fail;
    if (ev.type == YAML_SEQUENCE_END_EVENT) {
      yaml_event_delete(&ev);
      return arr;
    }
    size_t sub = 0;
    json_t *v = load_node(ld, &ev, depth + 1, &sub);
    yaml_event_delete(&ev);
    if (!v) goto fail;
    *nodes += sub;
    if (json_array_append_new(arr, v) < 0) {
      fail_at(ld, ld->parser.mark, "out of memory");
      goto fail;
    }
  }
fail:
  json_decref(arr);
  return NULL;
}

/* Loads the node that starts with ev (borrowed; the caller deletes it). */
static json_t *load_node(struct loader *ld, yaml_event_t *ev, int depth, size_t *nodes)
{
  const char *anchor = NULL;
  json_t *v = NULL;
  *nodes = 1;
  if (depth > MAX_DEPTH) {
    fail_at(ld, ev->start_mark, "nesting deeper than %d", MAX_DEPTH);
    return NULL;
  }
  switch (ev->type) {
  case YAML_SCALAR_EVENT:
    anchor = (const char *)ev->data.scalar.anchor;
    v = load_scalar(ld, ev);
    break;
  case YAML_SEQUENCE_START_EVENT:
    anchor = (const char *)ev->data.sequence_start.anchor;
    v = load_sequence(ld, depth, nodes);
    break;
  case YAML_MAPPING_START_EVENT:
    anchor = (const char *)ev->data.mapping_start.anchor;
    v = load_mapping(ld, depth, nodes);
    break;
  case YAML_ALIAS_EVENT: {
    const struct anchor *a = find_anchor(ld, (const char *)ev->data.alias.anchor);
    if (!a) {
      fail_at(ld, ev->start_mark, "unknown anchor \"%s\"", (const char *)ev->data.alias.anchor);
      return NULL;
    }
    *nodes = a->nodes;
    v = json_incref(a->value);
    break;
  }
  default:
    fail_at(ld, ev->start_mark, "unexpected YAML event");
    return NULL;
  }
  if (!v) return NULL;
  ld->expanded += ev->type == YAML_ALIAS_EVENT ? *nodes : 1; /* children counted already */
  if (ld->expanded > MAX_EXPANDED) {
    fail_at(ld, ev->start_mark, "document has more than %d nodes (aliases expanded)", MAX_EXPANDED);
    json_decref(v);
    return NULL;
  }
  if (anchor && add_anchor(ld, anchor, v, *nodes) < 0) {
    fail_at(ld, ev->start_mark, "out of memory");
    json_decref(v);
    return NULL;
  }
  return v;
}

json_t *k8s_yaml_load(const char *text, size_t len, const char *filename, char *err, size_t errlen)
{
  return k8s_yaml_load_flags(text, len, filename, 0, err, errlen);
}

json_t *k8s_yaml_load_flags(const char *text, size_t len, const char *filename, unsigned flags,
                            char *err, size_t errlen)
{
  struct loader ld = {
      .filename = filename ? filename : "<input>", .err = err, .errlen = errlen, .flags = flags};
  json_t *docs = json_array();
  yaml_event_t ev;
  if (err && errlen) err[0] = '\0';
  if (!docs || !yaml_parser_initialize(&ld.parser)) {
    json_decref(docs);
    if (err && errlen) snprintf(err, errlen, "%s: out of memory", ld.filename);
    return NULL;
  }
  yaml_parser_set_input_string(&ld.parser, (const unsigned char *)text, len);
  for (;;) {
    if (next_event(&ld, &ev) < 0) goto fail;
    yaml_event_type_t type = ev.type;
    yaml_event_delete(&ev);
    if (type == YAML_STREAM_END_EVENT) break;
    if (type != YAML_DOCUMENT_START_EVENT) continue; /* STREAM_START */
    if (next_event(&ld, &ev) < 0) goto fail;
    size_t nodes = 0;
    ld.expanded = 0;
    json_t *root = load_node(&ld, &ev, 0, &nodes);
    yaml_event_delete(&ev);
    clear_anchors(&ld); /* anchors do not cross documents */
    if (!root) goto fail;
    if (next_event(&ld, &ev) < 0) { /* DOCUMENT_END */
      json_decref(root);
      goto fail;
    }
    yaml_event_delete(&ev);
    if (json_is_null(root)) {
      json_decref(root);
      continue;
    }
    if (json_array_append_new(docs, root) < 0) {
      fail_at(&ld, ld.parser.mark, "out of memory");
      goto fail;
    }
  }
  yaml_parser_delete(&ld.parser);
  free(ld.anchors);
  return docs;
fail:
  clear_anchors(&ld);
  free(ld.anchors);
  yaml_parser_delete(&ld.parser);
  json_decref(docs);
  return NULL;
}

/* }==================================================================== */

/* {====================================================================
 * Writer
 * ===================================================================== */

static int write_handler(void *data, unsigned char *buffer, size_t size)
{
  struct k8s_buf *b = data;
  k8s_buf_add(b, buffer, size);
  return !b->failed;
}

/* 1 when s must be quoted so that YAML readers (1.2 and 1.1) read a string. */
static int needs_quotes(const char *s, size_t n)
{
  if (classify_plain(s, n) != S_STRING) return 1;
  if (eq_any(s, n, yaml11_bool_words)) return 1;
  if ((n == 2 && memcmp(s, "<<", 2) == 0) || (n == 1 && s[0] == '=')) /* merge / value keys */
    return 1;
  /* number-like text: 0123, 1_000, 1:20, 1.2e3x, +.5 ... */
  int digit = 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    if (isdigit((unsigned char)c))
      digit = 1;
    else if (!strchr("+-._:eExXoO", c))
      return 0;
  }
  return digit;
}

static int emit_scalar(yaml_emitter_t *e, const char *s, size_t n, yaml_scalar_style_t style)
{
  yaml_event_t ev;
  if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)n, 1, 1, style))
    return -1;
  return yaml_emitter_emit(e, &ev) ? 0 : -1;
}

static int emit_string(yaml_emitter_t *e, const char *s, size_t n)
{
  yaml_scalar_style_t style = YAML_PLAIN_SCALAR_STYLE;
  if (n > INT_MAX) return -1;
  if (needs_quotes(s, n))
    style = YAML_DOUBLE_QUOTED_SCALAR_STYLE;
  else if (memchr(s, '\n', n))
    style = YAML_LITERAL_SCALAR_STYLE; /* libyaml falls back to quotes when not allowed */
  return emit_scalar(e, s, n, style);
}

static int emit_value(yaml_emitter_t *e, const json_t *v, int depth)
{
  yaml_event_t ev;
  char num[40];
  if (depth > 4096) return -1;
  switch (json_typeof(v)) {
  case JSON_NULL:
    return emit_scalar(e, "null", 4, YAML_PLAIN_SCALAR_STYLE);
  case JSON_TRUE:
    return emit_scalar(e, "true", 4, YAML_PLAIN_SCALAR_STYLE);
  case JSON_FALSE:
    return emit_scalar(e, "false", 5, YAML_PLAIN_SCALAR_STYLE);
  case JSON_INTEGER: {
    int n = snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    return emit_scalar(e, num, (size_t)n, YAML_PLAIN_SCALAR_STYLE);
  }
  case JSON_REAL: {
    int n = k8s_json_format_real(json_real_value(v), num, sizeof num);
    return emit_scalar(e, num, (size_t)n, YAML_PLAIN_SCALAR_STYLE);
  }
  case JSON_STRING:
    return emit_string(e, json_string_value(v), json_string_length(v));
  case JSON_ARRAY: {
    size_t n = json_array_size(v);
    if (!yaml_sequence_start_event_initialize(
            &ev, NULL, NULL, 1, n ? YAML_BLOCK_SEQUENCE_STYLE : YAML_FLOW_SEQUENCE_STYLE) ||
        !yaml_emitter_emit(e, &ev))
      return -1;
    for (size_t i = 0; i < n; i++)
      if (emit_value(e, json_array_get(v, i), depth + 1) < 0) return -1;
    if (!yaml_sequence_end_event_initialize(&ev) || !yaml_emitter_emit(e, &ev)) return -1;
    return 0;
  }
  case JSON_OBJECT: {
    size_t n = json_object_size(v), i = 0;
    struct k8s_json_member *kvs = NULL;
    if (n && !(kvs = k8s_json_sorted_members(v, NULL, 0, &i))) return -1;
    int rc = -1;
    if (!yaml_mapping_start_event_initialize(
            &ev, NULL, NULL, 1, n ? YAML_BLOCK_MAPPING_STYLE : YAML_FLOW_MAPPING_STYLE) ||
        !yaml_emitter_emit(e, &ev))
      goto done;
    for (size_t j = 0; j < i; j++)
      if (emit_string(e, kvs[j].key, kvs[j].len) < 0 || emit_value(e, kvs[j].value, depth + 1) < 0)
        goto done;
    if (!yaml_mapping_end_event_initialize(&ev) || !yaml_emitter_emit(e, &ev)) goto done;
    rc = 0;
  done:
    free(kvs);
    return rc;
  }
  }
  return -1;
}

static char *dump(const json_t *const *docs, size_t ndocs, int explicit_start, size_t *len)
{
  struct k8s_buf b = {0};
  yaml_emitter_t e;
  yaml_event_t ev;
  if (!yaml_emitter_initialize(&e)) return NULL;
  yaml_emitter_set_output(&e, write_handler, &b);
  yaml_emitter_set_unicode(&e, 1);
  yaml_emitter_set_width(&e, -1);
  yaml_emitter_set_indent(&e, 2);
  int ok =
      yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) && yaml_emitter_emit(&e, &ev);
  for (size_t i = 0; ok && i < ndocs; i++) {
    ok = yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, !explicit_start) &&
         yaml_emitter_emit(&e, &ev) && emit_value(&e, docs[i], 0) == 0 &&
         yaml_document_end_event_initialize(&ev, 1) && yaml_emitter_emit(&e, &ev);
  }
  ok = ok && yaml_stream_end_event_initialize(&ev) && yaml_emitter_emit(&e, &ev) &&
       yaml_emitter_flush(&e);
  yaml_emitter_delete(&e);
  if (!ok) {
    k8s_buf_free(&b);
    return NULL;
  }
  return k8s_buf_steal(&b, len);
}

char *k8s_yaml_dumpn(const json_t *v, size_t *len)
{
  if (!v) return NULL;
  return dump(&v, 1, 0, len);
}

char *k8s_yaml_dump(const json_t *v)
{
  return k8s_yaml_dumpn(v, NULL);
}

char *k8s_yaml_dump_stream(const json_t *docs, size_t *len)
{
  if (!json_is_array(docs)) return NULL;
  size_t n = json_array_size(docs);
  const json_t **arr = malloc((n ? n : 1) * sizeof *arr);
  if (!arr) return NULL;
  for (size_t i = 0; i < n; i++)
    arr[i] = json_array_get(docs, i);
  char *out = dump(arr, n, 1, len);
  free(arr);
  return out;
}

/* }==================================================================== */
