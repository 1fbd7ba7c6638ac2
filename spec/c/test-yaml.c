/* test-yaml.c: YAML loading with Kubernetes' scalar rules and YAML writing
 * (runtime/core/yaml.c): scalar resolution, multi-document streams, errors
 * with file:line:column, anchors and merge keys, limits, and dump -> load
 * round trips of every awkward string. */
#include <string.h>
#include "core/buf.h"
#include "core/json.h"
#include "core/yaml.h"
#include "testhelp.h"

/* Loads yaml and compares the JSON of the documents with expect. */
static int loads_as(const char *yaml, const char *expect)
{
  char err[256] = "";
  json_t *docs = k8s_yaml_load(yaml, strlen(yaml), "t.yaml", err, sizeof err);
  char *out = docs ? k8s_json_dump(docs, K8S_JSON_SORT_KEYS, NULL) : NULL;
  int ok = out && strcmp(out, expect) == 0;
  if (!ok)
    printf("  yaml: %s\n  got:  %s (%s)\n  want: %s\n", yaml, out ? out : "(null)", err, expect);
  free(out);
  json_decref(docs);
  return ok;
}

static int load_fails(const char *yaml, const char *expect_err)
{
  char err[256] = "";
  json_t *docs = k8s_yaml_load(yaml, strlen(yaml), "t.yaml", err, sizeof err);
  int ok = !docs && strstr(err, expect_err) != NULL;
  if (!ok) printf("  yaml: %s\n  err: %s (want %s)\n", yaml, err, expect_err);
  json_decref(docs);
  return ok;
}

/* JSON value -> YAML -> JSON must be equal; returns the YAML when dump_out. */
static int dump_round_trips(const char *json, char **dump_out)
{
  char err[256] = "";
  json_t *v = k8s_json_parse(json, strlen(json), err, sizeof err);
  char *y = v ? k8s_yaml_dump(v) : NULL;
  json_t *docs = y ? k8s_yaml_load(y, strlen(y), "dump", err, sizeof err) : NULL;
  int ok = docs && json_array_size(docs) == 1 && json_equal(json_array_get(docs, 0), v);
  if (!ok) printf("  json: %s\n  yaml: %s\n  err: %s\n", json, y ? y : "(null)", err);
  if (dump_out)
    *dump_out = y;
  else
    free(y);
  json_decref(v);
  json_decref(docs);
  return ok;
}

static int dumps_as(const char *json, const char *expect)
{
  char *y = NULL;
  int ok = dump_round_trips(json, &y) && y && strcmp(y, expect) == 0;
  if (!ok) printf("  json: %s\n  got:\n%s  want:\n%s", json, y ? y : "(null)\n", expect);
  free(y);
  return ok;
}

static void test_scalars(void)
{
  test_cond("booleans", loads_as("[true, True, TRUE, false, False, FALSE]",
                                 "[[true,true,true,false,false,false]]"));
  test_cond("nulls", loads_as("{a: null, b: Null, c: NULL, d: ~, e: }",
                              "[{\"a\":null,\"b\":null,\"c\":null,\"d\":null,\"e\":null}]"));
  test_cond("integers", loads_as("[0, 7, -7, +7, 0x1F, 0o17, 9223372036854775807, "
                                 "-9223372036854775808]",
                                 "[[0,7,-7,7,31,15,9223372036854775807,-9223372036854775808]]"));
  test_cond("integers beyond int64 become reals",
            loads_as("[9223372036854775808]", "[[9223372036854775808.0]]"));
  test_cond("floats",
            loads_as("[1.5, -2.0, .5, 1e3, 2.5E-3, 1.]", "[[1.5,-2.0,0.5,1000.0,0.0025,1.0]]"));
  test_cond("YAML 1.1 words stay strings",
            loads_as("[yes, no, on, off, y, n, Yes, OFF]",
                     "[[\"yes\",\"no\",\"on\",\"off\",\"y\",\"n\",\"Yes\",\"OFF\"]]"));
  test_cond("leading zeros stay strings",
            loads_as("[0123, -0123, 00]", "[[\"0123\",\"-0123\",\"00\"]]"));
  test_cond("quoted scalars are strings",
            loads_as("['1', \"true\", 'null', \"\"]", "[[\"1\",\"true\",\"null\",\"\"]]"));
  test_cond(
      "other plain text is a string",
      loads_as("[1.2.3, 1_000, 12:30, 2024-01-01, 0x, 1e, .inf.x, -]",
               "[[\"1.2.3\",\"1_000\",\"12:30\",\"2024-01-01\",\"0x\",\"1e\",\".inf.x\",\"-\"]]"));
  test_cond("explicit tags", loads_as("[!!str 1, !!str true, !!int \"5\", !!float 2, !!null x]",
                                      "[[\"1\",\"true\",5,2.0,null]]"));
  test_cond("block scalars", loads_as("a: |\n  x\n  y\nb: >\n  p\n  q\nc: |-\n  z\n",
                                      "[{\"a\":\"x\\ny\\n\",\"b\":\"p q\\n\",\"c\":\"z\"}]"));
  test_cond("non-string keys become their text",
            loads_as("{1: a, true: b, null: c, 1.5: d}",
                     "[{\"1\":\"a\",\"1.5\":\"d\",\"null\":\"c\",\"true\":\"b\"}]"));
  test_cond("UTF-8 and escapes", loads_as("[\"\\u00e9\\0\", \xf0\x9f\x98\x80]",
                                          "[[\"\xc3\xa9\\u0000\",\"\xf0\x9f\x98\x80\"]]"));
  test_cond(".inf is an error", load_fails("x: .inf", ".inf cannot be represented"));
  test_cond(".nan is an error", load_fails("x: [.NaN]", "cannot be represented"));
  test_cond("bad explicit int", load_fails("x: !!int abc", "cannot read \"abc\""));
}

static void test_documents(void)
{
  test_cond(
      "multi-document with empty ones skipped",
      loads_as("---\na: 1\n---\n---\n# only a comment\n---\nb: 2\n...\n", "[{\"a\":1},{\"b\":2}]"));
  test_cond("empty input gives no documents", loads_as("", "[]"));
  test_cond("a null document is skipped", loads_as("null\n---\n~\n", "[]"));
  test_cond("scalar document", loads_as("--- hello\n", "[\"hello\"]"));
  test_cond(
      "Kubernetes shapes keep [] and {}",
      loads_as("spec:\n  selector: {}\n  template:\n    spec:\n      containers:\n"
               "      - name: c\n        args: []\n",
               "[{\"spec\":{\"selector\":{},\"template\":{\"spec\":{\"containers\":[{\"args\":"
               "[],\"name\":\"c\"}]}}}}]"));
  test_cond("anchors and aliases",
            loads_as("a: &x [1, 2]\nb: *x\n", "[{\"a\":[1,2],\"b\":[1,2]}]"));
  test_cond("merge keys, explicit keys win",
            loads_as("base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  y: 3\n",
                     "[{\"base\":{\"x\":1,\"y\":2},\"d\":{\"x\":1,\"y\":3}}]"));
  test_cond("merge of a list, earlier wins",
            loads_as("a: &a {x: 1}\nb: &b {x: 2, z: 2}\nc:\n  <<: [*a, *b]\n",
                     "[{\"a\":{\"x\":1},\"b\":{\"x\":2,\"z\":2},\"c\":{\"x\":1,\"z\":2}}]"));
  test_cond("anchors do not cross documents",
            load_fails("a: &x 1\n---\nb: *x\n", "unknown anchor"));
}

static void test_errors(void)
{
  char err[256];
  json_t *v = k8s_yaml_load("a: 1\nb: [1, 2\n", 14, "deploy.yaml", err, sizeof err);
  test_cond("syntax error fails", v == NULL);
  test_cond("error names file:line:column", strncmp(err, "deploy.yaml:3:1:", 16) == 0);
  printf("    (%s)\n", err);
  test_cond("duplicate keys", load_fails("a: 1\nb: 2\na: 3\n", "t.yaml:3:1: duplicate key \"a\""));
  test_cond("complex keys", load_fails("? [1, 2]\n: x\n", "mapping keys must be scalars"));
  test_cond("tabs", load_fails("a:\n\tb: 1\n", "t.yaml:2:"));
  test_cond("invalid UTF-8", load_fails("a: \xff\n", "t.yaml:"));
  test_cond("bad merge", load_fails("a:\n  <<: 1\n", "merge key"));
  v = k8s_yaml_load("x: 1", 4, NULL, err, sizeof err);
  test_cond("no filename is fine", v && json_array_size(v) == 1);
  json_decref(v);

  /* An alias bomb: 9 levels of 10 aliases = 10^9 nodes when expanded. */
  struct k8s_buf b = {0};
  k8s_buf_adds(&b, "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
  for (int i = 1; i < 10; i++) {
    k8s_buf_printf(&b, "a%d: &a%d [", i, i);
    for (int j = 0; j < 10; j++)
      k8s_buf_printf(&b, "%s*a%d", j ? ", " : "", i - 1);
    k8s_buf_adds(&b, "]\n");
  }
  test_cond("alias bomb is refused", load_fails(b.p, "aliases expanded"));
  k8s_buf_free(&b);

  for (int i = 0; i < 300; i++)
    k8s_buf_addc(&b, '[');
  test_cond("deep nesting is refused", load_fails(b.p, "t.yaml:1:"));
  k8s_buf_free(&b);
}

static void test_dump(void)
{
  test_cond("block style, sorted keys",
            dumps_as("{\"b\":1,\"a\":{\"y\":[1,\"two\"],\"x\":null}}",
                     "a:\n  x: null\n  \"y\":\n  - 1\n  - two\nb: 1\n"));
  test_cond("empty containers",
            dumps_as("{\"args\":[],\"selector\":{}}", "args: []\nselector: {}\n"));
  test_cond(
      "ambiguous strings are quoted",
      dumps_as("[\"true\",\"null\",\"~\",\"\",\"1\",\"1.5\",\"0123\",\"yes\",\"off\",\"1_000\","
               "\"12:30\",\"0x1F\",\".inf\",\"<<\",\"=\"]",
               "- \"true\"\n- \"null\"\n- \"~\"\n- \"\"\n- \"1\"\n- \"1.5\"\n- \"0123\"\n"
               "- \"yes\"\n- \"off\"\n- \"1_000\"\n- \"12:30\"\n- \"0x1F\"\n- \".inf\"\n"
               "- \"<<\"\n- \"=\"\n"));
  test_cond("multi-line strings are literal blocks",
            dumps_as("{\"config\":\"a: 1\\nb: 2\\n\"}", "config: |\n  a: 1\n  b: 2\n"));
  test_cond("numbers and booleans", dumps_as("[1,-2,1.0,0.1,true,false,null]",
                                             "- 1\n- -2\n- 1.0\n- 0.1\n- true\n- false\n- null\n"));
  test_cond("long strings are not folded",
            dumps_as("[\"aaaaaaaaaa bbbbbbbbbb cccccccccc dddddddddd "
                     "eeeeeeeeee ffffffffff gggggggggg hhhhhhhhhh\"]",
                     "- aaaaaaaaaa bbbbbbbbbb cccccccccc dddddddddd "
                     "eeeeeeeeee ffffffffff gggggggggg hhhhhhhhhh\n"));
  const char *awkward[] = {
      "[\"- x\",\": y\",\"# z\",\"a: b\",\"a #b\",\"[x]\",\"{x}\",\"&a\",\"*a\",\"!t\",\"|\",\">\","
      "\"%x\",\"@x\",\"`x\",\"'q'\",\"\\\"dq\\\"\",\" lead\",\"trail \",\"\\t\"]",
      "[\"a\\u0000b\",\"\\u0007\",\"\xc3\xa9\xf0\x9f\x98\x80\",\"\\ufeff\",\"\\r\\n\",\"x\\n\","
      "\"\\n\",\"  indented\\nlines\\n\",\"trailing space \\nline\",\"a\\n\\n\\nb\"]",
      "{\"\":1,\"true\":2,\"1\":3,\"a b\":4,\"multi\\nline\":5,\"- k\":6,\"<<\":7}",
      "[[[]],[{}],{\"a\":[{\"b\":[]}]},[1.5e300,-0.0,5e-324]]",
  };
  for (size_t i = 0; i < sizeof awkward / sizeof *awkward; i++)
    test_cond("awkward values round trip", dump_round_trips(awkward[i], NULL));

  char err[256];
  json_t *docs = k8s_json_parse("[{\"a\":1},{\"b\":2}]", 17, err, sizeof err);
  size_t len;
  char *y = k8s_yaml_dump_stream(docs, &len);
  test_cond("stream dump separates documents", y && strcmp(y, "---\na: 1\n---\nb: 2\n") == 0);
  json_t *back = y ? k8s_yaml_load(y, len, "s", err, sizeof err) : NULL;
  test_cond("stream dump loads back", back && json_equal(back, docs));
  free(y);
  json_decref(back);
  json_decref(docs);
}

int main(void)
{
  test_scalars();
  test_documents();
  test_errors();
  test_dump();
  test_report();
  return 0;
}
