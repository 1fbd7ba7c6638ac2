/* json.c: JSON <-> Lua over jansson (json.h). Owns the two JSON markers
 * (k8s.null, the array metatable), the compact writer used for stored and
 * hashed text, and both conversion directions with their depth, cycle and
 * shape checks. Depends on jansson and the Lua C API only. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include "buf.h"
#include "json.h"
#include "util.h"

/* {====================================================================
 * Plain C: parse, compact writer, reals
 * ===================================================================== */

json_t *k8s_json_parse(const char *text, size_t len, char *err, size_t errlen)
{
  json_error_t e;
  json_t *v = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
  if (!v) k8s_seterr(err, errlen, "line %d column %d: %s", e.line, e.column, e.text);
  return v;
}

int k8s_json_format_real(double d, char *buf, size_t buflen)
{
  /* Shortest significant digits that read back, then positional notation
   * for exponents in [-7, 21) as JavaScript does, else d.ddde+XX. */
  char e[40];
  int prec = 1;
  for (; prec < 17; prec++) {
    snprintf(e, sizeof e, "%.*e", prec - 1, d);
    if (strtod(e, NULL) == d) break;
  }
  snprintf(e, sizeof e, "%.*e", prec - 1, d);
  const char *x = strchr(e, 'e');
  int exp10 = x ? atoi(x + 1) : 0;
  int n;
  if (exp10 >= -7 && exp10 < 21) {
    int decimals = prec - 1 - exp10;
    n = snprintf(buf, buflen, "%.*f", decimals > 0 ? decimals : 0, d);
  } else {
    n = snprintf(buf, buflen, "%.*g", prec, d);
  }
  if (n < 0 || (size_t)n >= buflen) return n;
  for (char *p = buf; *p; p++)
    if (*p == ',') /* a locale with decimal comma */
      *p = '.';
  if (!strpbrk(buf, ".eEni") && (size_t)n + 2 < buflen) {
    memcpy(buf + n, ".0", 3);
    n += 2;
  }
  return n;
}

static void dump_string(struct k8s_buf *b, const char *s, size_t len)
{
  static const char hex[] = "0123456789abcdef";
  k8s_buf_addc(b, '"');
  size_t run = 0; /* start of the pending unescaped run */
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    k8s_buf_add(b, s + run, i - run);
    run = i + 1;
    switch (c) {
    case '"':
      k8s_buf_add(b, "\\\"", 2);
      break;
    case '\\':
      k8s_buf_add(b, "\\\\", 2);
      break;
    case '\n':
      k8s_buf_add(b, "\\n", 2);
      break;
    case '\r':
      k8s_buf_add(b, "\\r", 2);
      break;
    case '\t':
      k8s_buf_add(b, "\\t", 2);
      break;
    case '\b':
      k8s_buf_add(b, "\\b", 2);
      break;
    case '\f':
      k8s_buf_add(b, "\\f", 2);
      break;
    default: {
      char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
      k8s_buf_add(b, u, 6);
    }
    }
  }
  k8s_buf_add(b, s + run, len - run);
  k8s_buf_addc(b, '"');
}

static int member_cmp(const void *a, const void *b)
{
  const struct k8s_json_member *x = a, *y = b;
  size_t n = x->len < y->len ? x->len : y->len;
  int c = memcmp(x->key, y->key, n);
  if (c) return c;
  return x->len < y->len ? -1 : x->len > y->len;
}

/* The members of o in iteration order (see k8s_json_sorted_members). */
static struct k8s_json_member *members(const json_t *o, struct k8s_json_member *out, size_t cap,
                                       size_t *n)
{
  size_t want = json_object_size(o), i = 0;
  struct k8s_json_member *m = want > cap ? malloc(want * sizeof *m) : out;
  if (!m) return NULL;
  for (void *it = json_object_iter((json_t *)o); it && i < want;
       it = json_object_iter_next((json_t *)o, it), i++)
    m[i] = (struct k8s_json_member){json_object_iter_key(it), json_object_iter_key_len(it),
                                    json_object_iter_value(it)};
  *n = i;
  return m;
}

struct k8s_json_member *k8s_json_sorted_members(const json_t *o, struct k8s_json_member *out,
                                                size_t cap, size_t *n)
{
  struct k8s_json_member *m = members(o, out, cap, n);
  if (m && *n > 1) qsort(m, *n, sizeof *m, member_cmp);
  return m;
}

static void dump_value(struct k8s_buf *b, const json_t *v, int flags, int depth)
{
  char num[40];
  if (depth > 4096) { /* jansson's parser stops at 2048; anything deeper is a bug */
    b->failed = 1;
    return;
  }
  switch (json_typeof(v)) {
  case JSON_NULL:
    k8s_buf_add(b, "null", 4);
    break;
  case JSON_TRUE:
    k8s_buf_add(b, "true", 4);
    break;
  case JSON_FALSE:
    k8s_buf_add(b, "false", 5);
    break;
  case JSON_INTEGER:
    k8s_buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    break;
  case JSON_REAL: {
    int n = k8s_json_format_real(json_real_value(v), num, sizeof num);
    k8s_buf_add(b, num, (size_t)n);
    break;
  }
  case JSON_STRING:
    dump_string(b, json_string_value(v), json_string_length(v));
    break;
  case JSON_ARRAY: {
    k8s_buf_addc(b, '[');
    for (size_t i = 0; i < json_array_size(v); i++) {
      if (i) k8s_buf_addc(b, ',');
      dump_value(b, json_array_get(v, i), flags, depth + 1);
    }
    k8s_buf_addc(b, ']');
    break;
  }
  case JSON_OBJECT: {
    struct k8s_json_member stack_kv[16], *kvs;
    size_t i;
    kvs = (flags & K8S_JSON_SORT_KEYS) ? k8s_json_sorted_members(v, stack_kv, 16, &i)
                                       : members(v, stack_kv, 16, &i);
    if (!kvs) {
      b->failed = 1;
      return;
    }
    k8s_buf_addc(b, '{');
    int written = 0;
    for (size_t j = 0; j < i; j++) {
      if ((flags & K8S_JSON_OMIT_NULL) && json_is_null(kvs[j].value)) continue;
      if (written++) k8s_buf_addc(b, ',');
      dump_string(b, kvs[j].key, kvs[j].len);
      k8s_buf_addc(b, ':');
      dump_value(b, kvs[j].value, flags, depth + 1);
    }
    k8s_buf_addc(b, '}');
    if (kvs != stack_kv) free(kvs);
    break;
  }
  }
}

char *k8s_json_dump(const json_t *v, int flags, size_t *len)
{
  struct k8s_buf b = {0};
  if (!v) return NULL;
  dump_value(&b, v, flags, 0);
  return k8s_buf_steal(&b, len);
}

/* }==================================================================== */

/* {====================================================================
 * Lua markers
 * ===================================================================== */

static const char null_sentinel = 0; /* its address is k8s.null */

void k8s_json_push_null(lua_State *L)
{
  lua_pushlightuserdata(L, (void *)&null_sentinel);
}

int k8s_json_is_null(lua_State *L, int idx)
{
  return lua_type(L, idx) == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == &null_sentinel;
}

void k8s_json_push_array_mt(lua_State *L)
{
  if (luaL_getmetatable(L, K8S_JSON_ARRAY_MT) == LUA_TTABLE) return;
  lua_pop(L, 1);
  luaL_newmetatable(L, K8S_JSON_ARRAY_MT); /* sets __name */
}

void k8s_json_mark_array(lua_State *L, int idx)
{
  idx = lua_absindex(L, idx);
  k8s_json_push_array_mt(L);
  lua_setmetatable(L, idx);
}

int k8s_json_is_array(lua_State *L, int idx)
{
  if (lua_type(L, idx) != LUA_TTABLE || !lua_getmetatable(L, idx)) return 0;
  k8s_json_push_array_mt(L);
  int same = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return same;
}

/* }==================================================================== */

/* {====================================================================
 * JSON -> Lua
 * ===================================================================== */

static void push_value(lua_State *L, const json_t *v, int depth)
{
  if (depth > K8S_JSON_MAX_DEPTH) luaL_error(L, "nesting deeper than %d", K8S_JSON_MAX_DEPTH);
  if (!lua_checkstack(L, 4)) luaL_error(L, "Lua stack overflow");
  switch (json_typeof(v)) {
  case JSON_NULL:
    k8s_json_push_null(L);
    break;
  case JSON_TRUE:
    lua_pushboolean(L, 1);
    break;
  case JSON_FALSE:
    lua_pushboolean(L, 0);
    break;
  case JSON_INTEGER:
    lua_pushinteger(L, (lua_Integer)json_integer_value(v));
    break;
  case JSON_REAL:
    lua_pushnumber(L, (lua_Number)json_real_value(v));
    break;
  case JSON_STRING:
    lua_pushlstring(L, json_string_value(v), json_string_length(v));
    break;
  case JSON_ARRAY: {
    size_t n = json_array_size(v);
    lua_createtable(L, n > INT32_MAX ? 0 : (int)n, 0);
    for (size_t i = 0; i < n; i++) {
      push_value(L, json_array_get(v, i), depth + 1);
      lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    k8s_json_mark_array(L, -1);
    break;
  }
  case JSON_OBJECT: {
    size_t n = json_object_size(v);
    lua_createtable(L, 0, n > INT32_MAX ? 0 : (int)n);
    for (void *it = json_object_iter((json_t *)v); it;
         it = json_object_iter_next((json_t *)v, it)) {
      lua_pushlstring(L, json_object_iter_key(it), json_object_iter_key_len(it));
      push_value(L, json_object_iter_value(it), depth + 1);
      lua_rawset(L, -3);
    }
    break;
  }
  }
}

void k8s_json_push_value(lua_State *L, const json_t *v)
{
  push_value(L, v, 0);
}

static int push_protected(lua_State *L)
{
  const json_t *v = lua_touserdata(L, 1);
  push_value(L, v, 0);
  return 1;
}

int k8s_json_push(lua_State *L, const char *text, size_t len, char *err, size_t errlen)
{
  json_t *v = k8s_json_parse(text, len, err, errlen);
  if (!v) return -1;
  if (!lua_checkstack(L, 3)) {
    json_decref(v);
    k8s_seterr(err, errlen, "Lua stack overflow");
    return -1;
  }
  lua_pushcfunction(L, push_protected);
  lua_pushlightuserdata(L, v);
  int rc = lua_pcall(L, 1, 1, 0);
  json_decref(v);
  if (rc != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    k8s_seterr(err, errlen, "%s", msg ? msg : "error decoding JSON");
    lua_pop(L, 1);
    return -1;
  }
  return 0;
}

/* }==================================================================== */

/* {====================================================================
 * Lua -> JSON
 * ===================================================================== */

/* The path to the value being converted, for error messages; segments point
 * at Lua strings that stay on the stack while the segment is in use. */
struct seg {
  const char *key; /* NULL: array index */
  size_t klen;
  lua_Integer index; /* 0-based, Kubernetes field-path style */
  const void *table; /* the table entered at this depth (cycle check) */
};

struct conv {
  lua_State *L;
  struct seg path[K8S_JSON_MAX_DEPTH + 2];
  int depth;
  char *err;
  size_t errlen;
};

static json_t *conv_fail(struct conv *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static json_t *conv_fail(struct conv *c, const char *fmt, ...)
{
  if (!c->err || !c->errlen) return NULL;
  struct k8s_buf b = {0};
  for (int i = 1; i <= c->depth; i++) {
    const struct seg *s = &c->path[i];
    if (s->key) {
      if (b.len) k8s_buf_addc(&b, '.');
      k8s_buf_add(&b, s->key, s->klen);
    } else {
      k8s_buf_printf(&b, "[%lld]", (long long)s->index);
    }
  }
  char msg[200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  const char *path = b.len ? b.p : "(root)";
  if (b.len > 100) /* keep the end of a long path: the part that helps */
    snprintf(c->err, c->errlen, "...%s: %s", b.p + b.len - 97, msg);
  else
    snprintf(c->err, c->errlen, "%s: %s", path, msg);
  k8s_buf_free(&b);
  return NULL;
}

static json_t *conv_value(struct conv *c, int idx);

/* Shape of the table at idx: returns 0 object, 1 array (n set), or -1 with
 * the error set. Plain empty tables are objects; marked ones are arrays. */
static int table_shape(struct conv *c, int idx, int marked, lua_Integer *n)
{
  lua_State *L = c->L;
  lua_Integer count = 0, nstr = 0, maxk = 0;
  int bad = 0;
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    lua_pop(L, 1); /* value */
    count++;
    int kt = lua_type(L, -1);
    if (kt == LUA_TSTRING) {
      nstr++;
    } else if (kt == LUA_TNUMBER && lua_isinteger(L, -1)) {
      lua_Integer k = lua_tointeger(L, -1);
      if (k < 1)
        bad = 1;
      else if (k > maxk)
        maxk = k;
    } else {
      const char *tn = kt == LUA_TNUMBER ? "float" : luaL_typename(L, -1);
      lua_pop(L, 1);
      conv_fail(c, "table key of type %s", tn);
      return -1;
    }
  }
  if (nstr && nstr != count) {
    conv_fail(c, "mixed table (both string and integer keys)");
    return -1;
  }
  if (nstr) {
    if (marked) {
      conv_fail(c, "array has string keys");
      return -1;
    }
    return 0;
  }
  if (count == 0) {
    *n = 0;
    return marked ? 1 : 0;
  }
  if (bad || maxk != count) {
    conv_fail(c, "sparse table (%lld integer keys, largest %lld)", (long long)count,
              (long long)maxk);
    return -1;
  }
  *n = count;
  return 1;
}

static json_t *conv_table(struct conv *c, int idx)
{
  lua_State *L = c->L;
  const void *self = lua_topointer(L, idx);
  for (int i = 0; i < c->depth; i++) /* the ancestors */
    if (c->path[i].table == self) return conv_fail(c, "cycle: the table contains itself");
  if (c->depth >= K8S_JSON_MAX_DEPTH)
    return conv_fail(c, "nesting deeper than %d", K8S_JSON_MAX_DEPTH);
  if (!lua_checkstack(L, 6)) return conv_fail(c, "Lua stack overflow");
  c->path[c->depth].table = self;

  lua_Integer n = 0;
  int shape = table_shape(c, idx, k8s_json_is_array(L, idx), &n);
  if (shape < 0) return NULL;
  struct seg *s = &c->path[c->depth + 1];
  s->table = NULL;
  json_t *out;
  if (shape == 1) {
    out = json_array();
    if (!out) return conv_fail(c, "out of memory");
    for (lua_Integer i = 1; i <= n; i++) {
      s->key = NULL;
      s->index = i - 1;
      c->depth++;
      lua_rawgeti(L, idx, i);
      json_t *e = conv_value(c, lua_gettop(L));
      lua_pop(L, 1);
      c->depth--;
      if (!e || json_array_append_new(out, e) < 0) {
        if (e) conv_fail(c, "out of memory");
        json_decref(out);
        return NULL;
      }
    }
    return out;
  }
  out = json_object();
  if (!out) return conv_fail(c, "out of memory");
  lua_pushnil(L);
  while (lua_next(L, idx)) {
    size_t klen;
    const char *key = lua_tolstring(L, -2, &klen); /* a string: no conversion */
    s->key = key;
    s->klen = klen;
    c->depth++;
    json_t *e = conv_value(c, lua_gettop(L));
    if (e && json_object_setn_new(out, key, klen, e) < 0) {
      conv_fail(c, "key is not valid UTF-8");
      e = NULL;
    }
    c->depth--;
    lua_pop(L, 1);
    if (!e) {
      lua_pop(L, 1);
      json_decref(out);
      return NULL;
    }
  }
  return out;
}

static json_t *conv_value(struct conv *c, int idx)
{
  lua_State *L = c->L;
  json_t *v = NULL;
  switch (lua_type(L, idx)) {
  case LUA_TNIL:
    v = json_null();
    break;
  case LUA_TBOOLEAN:
    v = json_boolean(lua_toboolean(L, idx));
    break;
  case LUA_TNUMBER:
    if (lua_isinteger(L, idx)) {
      v = json_integer((json_int_t)lua_tointeger(L, idx));
    } else {
      double d = (double)lua_tonumber(L, idx);
      if (!isfinite(d))
        return conv_fail(c, "number %s cannot be encoded", isnan(d) ? "NaN" : "inf");
      v = json_real(d);
    }
    break;
  case LUA_TSTRING: {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    v = json_stringn(s, len);
    if (!v) return conv_fail(c, "string is not valid UTF-8");
    break;
  }
  case LUA_TTABLE:
    return conv_table(c, idx);
  case LUA_TLIGHTUSERDATA:
    if (k8s_json_is_null(L, idx)) {
      v = json_null();
      break;
    }
    /* fallthrough */
  default:
    return conv_fail(c, "cannot encode a %s", luaL_typename(L, idx));
  }
  if (!v) return conv_fail(c, "out of memory");
  return v;
}

json_t *k8s_json_from_lua(lua_State *L, int idx, char *err, size_t errlen)
{
  struct conv *c = malloc(sizeof *c);
  if (!c) {
    k8s_seterr(err, errlen, "out of memory");
    return NULL;
  }
  c->L = L;
  c->depth = 0;
  c->err = err;
  c->errlen = errlen;
  c->path[0].key = NULL;
  c->path[0].table = NULL;
  json_t *v = conv_value(c, lua_absindex(L, idx));
  free(c);
  return v;
}

char *k8s_json_encode_lua(lua_State *L, int idx, size_t *len, char *err, size_t errlen)
{
  json_t *v = k8s_json_from_lua(L, idx, err, errlen);
  if (!v) return NULL;
  char *text = k8s_json_dump(v, K8S_JSON_SORT_KEYS, len);
  json_decref(v);
  if (!text) k8s_seterr(err, errlen, "out of memory");
  return text;
}

/* }==================================================================== */
