/* crinput.c: loading and checking the CR documents given to render and diff
 * (see crinput.h). Owns nothing beyond each call. */
#include <stdio.h>
#include <string.h>

#include "cmd/crinput.h"
#include "lua/fixture.h"

const char *cr_sget(const json_t *o, const char *k)
{
  const char *s = json_string_value(json_object_get(o, k));
  return s ? s : "";
}

int cr_load_docs(const char *prog, const char *path, json_t *out)
{
  char err[1024];
  json_t *docs = lk_fixture_load(path, err, sizeof(err));
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
