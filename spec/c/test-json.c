/* test-json.c: JSON <-> Lua conversion (runtime/core/json.c): the markers,
 * round trips of Kubernetes shapes (args: [], selector: {}), 64-bit
 * integers, reals, UTF-8 and NUL, large documents, and every error path. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <lauxlib.h>
#include <lualib.h>
#include "core/buf.h"
#include "core/json.h"
#include "testhelp.h"

/* text -> Lua -> text (sorted); returns malloc'd text or NULL. */
static char *lua_round_trip(lua_State *L, const char *text)
{
  char err[256];
  if (k8s_json_push(L, text, strlen(text), err, sizeof err) < 0) {
    printf("  decode error: %s\n", err);
    return NULL;
  }
  char *out = k8s_json_encode_lua(L, -1, NULL, err, sizeof err);
  if (!out) printf("  encode error: %s\n", err);
  lua_pop(L, 1);
  return out;
}

static int round_trips_as(lua_State *L, const char *in, const char *expect)
{
  char *out = lua_round_trip(L, in);
  int ok = out && strcmp(out, expect) == 0;
  if (!ok) printf("  in:  %s\n  out: %s\n  exp: %s\n", in, out ? out : "(null)", expect);
  free(out);
  return ok;
}

/* Runs Lua code returning one value and encodes it; NULL + err on failure. */
static char *encode_chunk(lua_State *L, const char *chunk, char *err, size_t errlen)
{
  if (luaL_dostring(L, chunk) != LUA_OK) {
    snprintf(err, errlen, "lua: %s", lua_tostring(L, -1));
    lua_pop(L, 1);
    return NULL;
  }
  char *out = k8s_json_encode_lua(L, -1, NULL, err, errlen);
  lua_pop(L, 1);
  return out;
}

static int encodes_as(lua_State *L, const char *chunk, const char *expect)
{
  char err[256] = "";
  char *out = encode_chunk(L, chunk, err, sizeof err);
  int ok = out && strcmp(out, expect) == 0;
  if (!ok)
    printf("  chunk: %s\n  out:   %s (%s)\n  exp:   %s\n", chunk, out ? out : "(null)", err,
           expect);
  free(out);
  return ok;
}

static int encode_fails(lua_State *L, const char *chunk, const char *expect_err)
{
  char err[256] = "";
  char *out = encode_chunk(L, chunk, err, sizeof err);
  int ok = !out && strstr(err, expect_err) != NULL;
  if (!ok)
    printf("  chunk: %s\n  out: %s err: %s (want %s)\n", chunk, out ? out : "(null)", err,
           expect_err);
  free(out);
  return ok;
}

static void test_markers(lua_State *L)
{
  char err[256];
  const char *doc = "{\"a\":[],\"b\":{},\"c\":null,\"d\":[1,2]}";
  test_cond("decode succeeds", k8s_json_push(L, doc, strlen(doc), err, sizeof err) == 0);
  lua_getfield(L, -1, "a");
  test_cond("[] becomes a table with the array metatable", k8s_json_is_array(L, -1));
  test_cond("[] has no elements", lua_rawlen(L, -1) == 0);
  lua_pop(L, 1);
  lua_getfield(L, -1, "b");
  test_cond("{} becomes a plain table", lua_istable(L, -1) && !lua_getmetatable(L, -1));
  lua_pop(L, 1);
  lua_getfield(L, -1, "c");
  test_cond("null becomes k8s.null", k8s_json_is_null(L, -1));
  lua_pop(L, 1);
  test_cond("a key holding null exists", lua_getfield(L, -1, "c") == LUA_TLIGHTUSERDATA);
  lua_pop(L, 2);

  k8s_json_push_array_mt(L);
  luaL_getmetatable(L, K8S_JSON_ARRAY_MT);
  test_cond("array metatable lives in the registry", lua_rawequal(L, -1, -2));
  lua_getfield(L, -1, "__name");
  test_cond("array metatable has __name", strcmp(lua_tostring(L, -1), K8S_JSON_ARRAY_MT) == 0);
  lua_pop(L, 3);

  k8s_json_push_null(L);
  k8s_json_push_null(L);
  test_cond("k8s.null is one address", lua_rawequal(L, -1, -2));
  lua_pop(L, 2);
  lua_pushlightuserdata(L, &err);
  test_cond("other light userdata is not null", !k8s_json_is_null(L, -1));
  lua_pop(L, 1);
}

static void test_round_trips(lua_State *L)
{
  test_cond("args: [] and selector: {} survive",
            round_trips_as(L, "{\"args\":[],\"selector\":{}}", "{\"args\":[],\"selector\":{}}"));
  test_cond("nested empty containers", round_trips_as(L, "[[],{},[[]],[{}]]", "[[],{},[[]],[{}]]"));
  test_cond("null in arrays and objects", round_trips_as(L, "{\"a\":null,\"b\":[null,1,null]}",
                                                         "{\"a\":null,\"b\":[null,1,null]}"));
  test_cond("2^53+1 stays exact", round_trips_as(L, "9007199254740993", "9007199254740993"));
  test_cond("INT64 max", round_trips_as(L, "9223372036854775807", "9223372036854775807"));
  test_cond("INT64 min", round_trips_as(L, "-9223372036854775808", "-9223372036854775808"));
  test_cond("reals keep a fraction",
            round_trips_as(L, "[1.0,0.1,-2.5,1e300,5e-324]", "[1.0,0.1,-2.5,1e+300,5e-324]"));
  test_cond("keys are sorted", round_trips_as(L, "{\"b\":1,\"a\":2,\"B\":3,\"aa\":4}",
                                              "{\"B\":3,\"a\":2,\"aa\":4,\"b\":1}"));
  test_cond("4-byte UTF-8 passes byte-exact",
            round_trips_as(L, "\"\xf0\x9f\x98\x80 \xe2\x82\xac \xc3\xa9\"",
                           "\"\xf0\x9f\x98\x80 \xe2\x82\xac \xc3\xa9\""));
  test_cond("surrogate pair escapes decode to UTF-8",
            round_trips_as(L, "\"\\ud83d\\ude00\"", "\"\xf0\x9f\x98\x80\""));
  test_cond("escaped \\u0000 survives", round_trips_as(L, "\"a\\u0000b\"", "\"a\\u0000b\""));
  test_cond("control characters are escaped",
            round_trips_as(L, "\"\\n\\t\\r\\b\\f\\u001f\\\"\\\\/\"",
                           "\"\\n\\t\\r\\b\\f\\u001f\\\"\\\\/\""));
  char err0[256];
  test_cond("key with NUL is refused by jansson, not crashed on",
            k8s_json_push(L, "{\"a\\u0000b\":1}", 13, err0, sizeof err0) < 0);
  test_cond("scalars at top level", round_trips_as(L, "true", "true") &&
                                        round_trips_as(L, "\"s\"", "\"s\"") &&
                                        round_trips_as(L, "null", "null"));

  /* A Deployment as the API server sends it. */
  const char *deploy =
      "{\"apiVersion\":\"apps/v1\",\"kind\":\"Deployment\",\"metadata\":{\"name\":\"d\","
      "\"namespace\":\"ns\",\"labels\":{\"app\":\"x\"},\"annotations\":{}},\"spec\":{\"replicas\":"
      "2,\"selector\":{\"matchLabels\":{\"app\":\"x\"}},\"template\":{\"metadata\":{\"labels\":{"
      "\"app\":\"x\"}},\"spec\":{\"containers\":[{\"name\":\"c\",\"image\":\"i\",\"args\":[],"
      "\"resources\":{}}]}}},\"status\":{}}";
  char *out = lua_round_trip(L, deploy);
  char err[256];
  json_t *a = k8s_json_parse(deploy, strlen(deploy), err, sizeof err);
  json_t *b = out ? k8s_json_parse(out, strlen(out), err, sizeof err) : NULL;
  test_cond("Deployment round trip is equal", a && b && json_equal(a, b));
  json_decref(a);
  json_decref(b);
  free(out);
}

static void test_lua_to_json(lua_State *L)
{
  test_cond("plain sequence is an array", encodes_as(L, "return {1,2,3}", "[1,2,3]"));
  test_cond("plain empty table is {}", encodes_as(L, "return {}", "{}"));
  test_cond("marked empty table is []",
            encodes_as(L, "return setmetatable({}, k8s_array_mt)", "[]"));
  test_cond("integer-valued float stays a real", encodes_as(L, "return {n = 4/2}", "{\"n\":2.0}"));
  test_cond("math.maxinteger", encodes_as(L, "return math.maxinteger", "9223372036854775807"));
  test_cond("nested", encodes_as(L, "return {a = {b = {1, {c = true}}}}",
                                 "{\"a\":{\"b\":[1,{\"c\":true}]}}"));
  test_cond("k8s.null encodes null", encodes_as(L, "return {x = k8s_null}", "{\"x\":null}"));
  test_cond("nil at top encodes null", encodes_as(L, "return nil", "null"));
  test_cond("other metatables are ignored",
            encodes_as(L, "return setmetatable({a=1}, {__index = function() return 9 end})",
                       "{\"a\":1}"));
  test_cond("a shared (non-cyclic) table is fine",
            encodes_as(L, "local t = {1} return {a = t, b = t}", "{\"a\":[1],\"b\":[1]}"));

  test_cond("sparse table fails", encode_fails(L, "return {1, nil, 3}", "sparse table"));
  test_cond("mixed table fails", encode_fails(L, "return {1, a = 2}", "mixed table"));
  test_cond("error names the path",
            encode_fails(L, "return {spec = {containers = {{args = {1, nil, 3}}}}}",
                         "spec.containers[0].args: sparse"));
  test_cond("zero index fails", encode_fails(L, "return {[0] = 1}", "sparse"));
  test_cond("float key fails", encode_fails(L, "return {[1.5] = 1}", "table key of type float"));
  test_cond("boolean key fails",
            encode_fails(L, "return {[true] = 1}", "table key of type boolean"));
  test_cond("marked array with string keys fails",
            encode_fails(L, "return setmetatable({a = 1}, k8s_array_mt)", "array has string keys"));
  test_cond("NaN fails", encode_fails(L, "return {x = 0/0}", "x: number NaN"));
  test_cond("inf fails", encode_fails(L, "return {x = {math.huge}}", "x[0]: number inf"));
  test_cond("function fails", encode_fails(L, "return {f = print}", "f: cannot encode a function"));
  test_cond("invalid UTF-8 fails",
            encode_fails(L, "return {s = '\\xff'}", "s: string is not valid"));
  test_cond("invalid UTF-8 key fails",
            encode_fails(L, "return {['\\xff'] = 1}", "not valid UTF-8"));
  test_cond("cycle fails", encode_fails(L, "local t = {} t.self = t return t", "self: cycle"));
  test_cond("deep cycle fails",
            encode_fails(L, "local t = {a = {b = {}}} t.a.b.c = t return t", "a.b.c: cycle"));
  test_cond("nesting limit",
            encode_fails(L,
                         "local t = {} local c = t for i = 1, 250 do c.x = {} c = c.x end "
                         "return t",
                         "nesting deeper than 200"));
  test_cond("200 levels are fine",
            encodes_as(L,
                       "local t = {} local c = t for i = 1, 199 do c[1] = {} c = c[1] end "
                       "return c and 1",
                       "1"));
  test_cond("stack is balanced after errors", lua_gettop(L) == 0);
}

static void test_decode_errors(lua_State *L)
{
  char err[256] = "";
  int top = lua_gettop(L);
  test_cond("syntax error reports position",
            k8s_json_push(L, "{\"a\":", 5, err, sizeof err) < 0 && strstr(err, "line 1"));
  test_cond("invalid UTF-8 is rejected", k8s_json_push(L, "\"\xff\"", 3, err, sizeof err) < 0);
  test_cond("integer overflow is rejected",
            k8s_json_push(L, "9223372036854775808", 19, err, sizeof err) < 0);
  struct k8s_buf b = {0};
  for (int i = 0; i < 300; i++)
    k8s_buf_addc(&b, '[');
  for (int i = 0; i < 300; i++)
    k8s_buf_addc(&b, ']');
  test_cond("nesting deeper than 200 fails",
            k8s_json_push(L, b.p, b.len, err, sizeof err) < 0 && strstr(err, "deeper"));
  k8s_buf_free(&b);
  test_cond("stack unchanged after decode errors", lua_gettop(L) == top);
}

static void test_large(lua_State *L)
{
  struct k8s_buf b = {0};
  k8s_buf_adds(&b, "{\"blob\":\"");
  for (int i = 0; i < 1 << 20; i++)
    k8s_buf_addc(&b, (char)('a' + i % 26));
  k8s_buf_adds(&b, "\",\"items\":[");
  for (int i = 0; i < 20000; i++)
    k8s_buf_printf(&b, "%s{\"n\":%d,\"name\":\"item-%d\",\"x\":[],\"y\":{}}", i ? "," : "", i, i);
  k8s_buf_adds(&b, "]}");
  char *out = lua_round_trip(L, b.p);
  test_cond("20k items + 1 MiB string round trip", out && strcmp(out, b.p) == 0);
  free(out);
  k8s_buf_free(&b);
}

static void test_format_real(void)
{
  char buf[40];
  k8s_json_format_real(0.1, buf, sizeof buf);
  test_cond("0.1 is shortest", strcmp(buf, "0.1") == 0);
  k8s_json_format_real(3.0, buf, sizeof buf);
  test_cond("3.0 keeps .0", strcmp(buf, "3.0") == 0);
  k8s_json_format_real(1e21, buf, sizeof buf);
  test_cond("1e21 uses an exponent", strcmp(buf, "1e+21") == 0);
  k8s_json_format_real(-0.0, buf, sizeof buf);
  test_cond("-0.0", strcmp(buf, "-0.0") == 0);
  double vals[] = {1.0 / 3, 2.0 / 3, 1e-7, 123456789.123456789, 5e-324, 1.7976931348623157e308};
  int ok = 1;
  for (size_t i = 0; i < sizeof vals / sizeof *vals; i++) {
    k8s_json_format_real(vals[i], buf, sizeof buf);
    ok &= strtod(buf, NULL) == vals[i];
  }
  test_cond("reals read back exactly", ok);
}

int main(void)
{
  lua_State *L = luaL_newstate();
  luaL_openlibs(L);
  k8s_json_push_array_mt(L);
  lua_setglobal(L, "k8s_array_mt");
  k8s_json_push_null(L);
  lua_setglobal(L, "k8s_null");

  test_markers(L);
  test_round_trips(L);
  test_lua_to_json(L);
  test_decode_errors(L);
  test_large(L);
  test_format_real();

  lua_close(L);
  test_report();
  return 0;
}
