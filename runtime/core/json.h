/* json.h: JSON <-> Lua conversion over jansson, and the two JSON markers every
 * part of the runtime agrees on (doc/architecture.md, "JSON and Lua values").
 *
 *   JSON array   <-> Lua sequence whose metatable is the registry's "k8s.array_mt"
 *                    (a plain table with keys 1..n, n >= 1, also encodes as an array;
 *                    a plain empty table encodes as {})
 *   JSON null    <-> the light userdata k8s.null (one static address)
 *   JSON integer <-> Lua integer (64-bit, json_int_t == lua_Integer)
 *   JSON real    <-> Lua float (non-finite floats cannot be encoded)
 *   JSON string  <-> Lua string, byte-exact (must be valid UTF-8; may contain NUL)
 *
 * Ownership: every function returning `char *` returns a malloc'd buffer the
 * caller frees with free(); every function returning `json_t *` returns a new
 * reference the caller releases with json_decref(). Inputs are borrowed.
 * Errors are reported as -1 / NULL plus a NUL-terminated message in `err`
 * (`errlen` bytes; err may be NULL when errlen is 0). Messages name the path
 * of the offending value, e.g. "spec.containers[2].args: sparse table".
 *
 * Lua-facing functions may raise a Lua error only for memory exhaustion in
 * the Lua allocator where noted; everything else is reported through err. */
#ifndef K8S_CORE_JSON_H
#define K8S_CORE_JSON_H

#include <stddef.h>
#include <jansson.h>
#include <lua.h>

/* Nesting limit for both directions (arrays + objects). Deeper input is an
 * error "nesting deeper than 200". */
#define K8S_JSON_MAX_DEPTH 200

/* Registry name of the shared array metatable. */
#define K8S_JSON_ARRAY_MT "k8s.array_mt"

/* One member of a JSON object, borrowed from it. */
struct k8s_json_member {
  const char *key;
  size_t len;
  json_t *value;
};

/* The members of object o in key byte order (what k8s_json_dump with
 * K8S_JSON_SORT_KEYS and the YAML emitter write), into out[cap] when it is
 * large enough, else into a malloc'd array. Returns the array (out, or one
 * the caller frees when it is not out) and the count in *n; NULL on malloc
 * failure (and for an empty o with out NULL). Keys and values are borrowed
 * from o. */
struct k8s_json_member *k8s_json_sorted_members(const json_t *o, struct k8s_json_member *out,
                                                size_t cap, size_t *n);

/* Flags for k8s_json_dump. */
#define K8S_JSON_SORT_KEYS 0x1 /* object keys in byte order (deterministic, for hashing) */
/* Object members whose value is null are left out. For API objects a null
 * member means the same as an absent one (Go's nil slices and maps without
 * omitempty, e.g. an EndpointSlice's "endpoints": null), so the store writes
 * them without it and scripts never index a k8s.null where a table may be
 * absent. Array elements are kept. */
#define K8S_JSON_OMIT_NULL 0x2

/* ---- plain C (no Lua) ---------------------------------------------------- */

/* Parses one JSON value of any type (flags JSON_DECODE_ANY | JSON_ALLOW_NUL).
 * Returns a new reference, or NULL with "line L column C: text" in err. */
json_t *k8s_json_parse(const char *text, size_t len, char *err, size_t errlen);

/* Compact JSON text of `v` (no spaces). Reals are written in the shortest form
 * that reads back to the same double and always carry a '.' or exponent, so
 * they stay reals. Returns a malloc'd NUL-terminated string (its length in
 * *len when len != NULL), or NULL on malloc failure or a non-UTF-8 string. */
char *k8s_json_dump(const json_t *v, int flags, size_t *len);

/* Writes the shortest round-tripping text of a finite double into buf (at
 * least 32 bytes), always with '.', 'e' or both ("1.0", "1e+300", "0.1").
 * Returns the length. Shared with the YAML writer. */
int k8s_json_format_real(double d, char *buf, size_t buflen);

/* ---- Lua markers --------------------------------------------------------- */

/* Pushes k8s.null (a light userdata; the same address everywhere). */
void k8s_json_push_null(lua_State *L);

/* 1 when the value at idx is k8s.null. */
int k8s_json_is_null(lua_State *L, int idx);

/* Pushes the shared array metatable, creating it in the registry under
 * K8S_JSON_ARRAY_MT on first use (it has __name = "k8s.array_mt"). */
void k8s_json_push_array_mt(lua_State *L);

/* Sets the array metatable on the table at idx (k8s.array(t)). */
void k8s_json_mark_array(lua_State *L, int idx);

/* 1 when the value at idx is a table whose metatable is the array metatable. */
int k8s_json_is_array(lua_State *L, int idx);

/* ---- JSON -> Lua --------------------------------------------------------- */

/* Parses `text` and pushes the value (one stack slot). Returns 0, or -1 with
 * the stack unchanged and err set (syntax error, nesting, memory). Runs the
 * conversion under lua_pcall, so a Lua memory error is reported, not raised. */
int k8s_json_push(lua_State *L, const char *text, size_t len, char *err, size_t errlen);

/* Pushes the Lua value for a borrowed jansson value. Raises a Lua error when
 * `v` nests deeper than K8S_JSON_MAX_DEPTH or Lua runs out of memory; call it
 * from a protected context (a lua_CFunction, or under lua_pcall). */
void k8s_json_push_value(lua_State *L, const json_t *v);

/* ---- Lua -> JSON --------------------------------------------------------- */

/* Converts the Lua value at idx (borrowed; the stack is left unchanged).
 * Accepted: nil and k8s.null (-> null), booleans, integers, finite floats,
 * UTF-8 strings, and tables as described above. Errors (NULL + err, naming
 * the path): mixed or sparse tables, keys that are neither strings nor
 * integers, non-finite numbers, invalid UTF-8, functions/userdata/threads,
 * cycles, nesting deeper than K8S_JSON_MAX_DEPTH. Metatables other than the
 * array metatable are ignored; tables are read raw (no __index/__pairs).
 * Returns a new reference. */
json_t *k8s_json_from_lua(lua_State *L, int idx, char *err, size_t errlen);

/* k8s_json_from_lua + k8s_json_dump(..., K8S_JSON_SORT_KEYS): compact JSON
 * text with sorted keys (the same value always gives the same bytes).
 * Returns malloc'd text (length in *len when len != NULL) or NULL + err. */
char *k8s_json_encode_lua(lua_State *L, int idx, size_t *len, char *err, size_t errlen);

#endif
