/* decl.c: controllers.lua's declarations (engine.h, struct
 * lk_controller_decl): validates what the module returns — names, for_,
 * module, owns and watches (with their map functions) — with a message per
 * problem naming the field, and frees them. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "core/json.h"
#include "core/util.h"
#include "lua/engine_int.h"

/* {====================================================================
 * Declarations
 * ===================================================================== */

static void free_gvk(struct lk_gvk *g)
{
  free(g->api_version);
  free(g->kind);
}

void lk_decl_free(struct lk_controller_decl *c)
{
  free(c->name);
  free_gvk(&c->for_);
  free(c->module);
  for (size_t i = 0; i < c->nowns; i++)
    free_gvk(&c->owns[i]);
  for (size_t i = 0; i < c->nwatches; i++) {
    free_gvk(&c->watches[i].gvk);
    free(c->watches[i].map);
    free(c->watches[i].map_module);
    free(c->watches[i].map_fn);
  }
  for (size_t i = 0; i < c->nkinds; i++)
    free_gvk(&c->kinds[i]);
  free(c->owns);
  free(c->watches);
  free(c->kinds);
}

static int valid_name(const char *s)
{
  if (!nonempty(s) || strlen(s) > 63) return 0;
  for (const char *p = s; *p; p++)
    if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '-')) return 0;
  return isalnum((unsigned char)s[0]) && isalnum((unsigned char)s[strlen(s) - 1]);
}

static int valid_kind(const char *s)
{
  if (!nonempty(s) || !isupper((unsigned char)s[0])) return 0;
  for (const char *p = s; *p; p++)
    if (!isalnum((unsigned char)*p)) return 0;
  return 1;
}

static int valid_api_version(const char *s)
{
  if (!nonempty(s)) return 0;
  for (const char *p = s; *p; p++)
    if (!(isalnum((unsigned char)*p) || *p == '.' || *p == '-' || *p == '/')) return 0;
  const char *slash = strchr(s, '/');
  return !slash || (slash != s && slash[1] && !strchr(slash + 1, '/'));
}

/* Parses { apiVersion, kind [, map, owned_only] } at where; returns 0 or -1
 * (message added). */
static int parse_gvk(const json_t *v, const char *where, int allow_map, struct lk_gvk *out,
                     char **map, struct lk_messages *msgs)
{
  int bad = 0;
  if (!json_is_object(v)) {
    lk_messages_add(msgs, "controllers.lua: %s: must be a table { apiVersion = ..., kind = ... }",
                    where);
    return -1;
  }
  const char *key;
  json_t *val;
  json_object_foreach((json_t *)v, key, val)
  {
    if (strcmp(key, "apiVersion") && strcmp(key, "kind") &&
        !(allow_map && (!strcmp(key, "map") || !strcmp(key, "owned_only")))) {
      lk_messages_add(msgs, "controllers.lua: %s.%s: unknown field", where, key);
      bad = 1;
    }
  }
  const char *av = jstr(v, "apiVersion"), *kind = jstr(v, "kind");
  if (!valid_api_version(av)) {
    lk_messages_add(msgs, "controllers.lua: %s.apiVersion: must be a string like \"apps/v1\"",
                    where);
    bad = 1;
  }
  if (!valid_kind(kind)) {
    lk_messages_add(msgs, "controllers.lua: %s.kind: must be a CamelCase kind name", where);
    bad = 1;
  }
  if (allow_map && json_object_get(v, "map")) {
    const char *m = jstr(v, "map");
    if (!nonempty(m) || !strchr(m, '.')) {
      lk_messages_add(msgs,
                      "controllers.lua: %s.map: must be a string \"module.function\" naming a "
                      "function of the script set",
                      where);
      bad = 1;
    } else if (map)
      *map = strdup(m);
  }
  if (bad) return -1;
  out->api_version = strdup(av);
  out->kind = strdup(kind);
  return 0;
}

int lk_gvk_is(const struct lk_gvk *a, const char *av, const char *kind)
{
  return !strcmp(a->api_version, av) && !strcmp(a->kind, kind);
}

static void add_kind(struct lk_controller_decl *c, const struct lk_gvk *g)
{
  for (size_t i = 0; i < c->nkinds; i++)
    if (lk_gvk_is(&c->kinds[i], g->api_version, g->kind)) return;
  c->kinds[c->nkinds].api_version = strdup(g->api_version);
  c->kinds[c->nkinds].kind = strdup(g->kind);
  c->nkinds++;
}

/* Unknown fields of declaration d (named where). Returns 1 when there are
 * (a message each), else 0. */
static int check_fields(const json_t *d, const char *where, struct lk_messages *msgs)
{
  static const char *const known[] = {"name", "for_", "module", "owns", "watches", NULL};
  int bad = 0;
  const char *key;
  json_t *val;
  json_object_foreach((json_t *)d, key, val)
  {
    int ok = 0;
    for (int k = 0; known[k]; k++)
      ok |= !strcmp(key, known[k]);
    if (!ok) {
      lk_messages_add(msgs, "controllers.lua: %s.%s: unknown field", where, key);
      bad = 1;
    }
  }
  return bad;
}

/* name (valid, unique among e's controllers), for_ (valid, reconciled by
 * no other controller; parsed into c->for_) and module (in the script
 * set). Returns 1 when one is wrong (a message each), else 0. */
static int check_identity(struct lk_engine *e, const json_t *d, const char *where,
                          struct lk_controller_decl *c, struct lk_messages *msgs)
{
  int bad = 0;
  const char *name = jstr(d, "name"), *module = jstr(d, "module");
  if (!valid_name(name)) {
    lk_messages_add(msgs, "controllers.lua: %s.name: must be a lower-case name ([a-z0-9-])", where);
    bad = 1;
  } else {
    for (size_t j = 0; j < e->ncontrollers; j++)
      if (!strcmp(e->controllers[j].name, name)) {
        lk_messages_add(msgs, "controllers.lua: %s: duplicate controller name", where);
        bad = 1;
      }
  }
  char w[128];
  snprintf(w, sizeof(w), "%s.for_", where);
  if (parse_gvk(json_object_get(d, "for_"), w, 0, &c->for_, NULL, msgs) != 0)
    bad = 1;
  else
    for (size_t j = 0; j < e->ncontrollers; j++)
      if (lk_gvk_is(&e->controllers[j].for_, c->for_.api_version, c->for_.kind)) {
        lk_messages_add(msgs, "controllers.lua: %s.for_: %s %s is already reconciled by %s", where,
                        c->for_.api_version, c->for_.kind, e->controllers[j].name);
        bad = 1;
      }
  if (!nonempty(module)) {
    lk_messages_add(msgs, "controllers.lua: %s.module: must be a module name", where);
    bad = 1;
  } else if (!lk_scriptset_find(e->set, module)) {
    lk_messages_add(msgs, "controllers.lua: %s.module: no module %s in the script set", where,
                    module);
    bad = 1;
  }
  return bad;
}

/* Field field (owns, watches) of d: a list, absent, or {} (an empty Lua
 * table). Returns it (borrowed), or NULL after a message (*bad set) when it
 * is something else. */
static const json_t *list_field(const json_t *d, const char *field, const char *where, int *bad,
                                struct lk_messages *msgs)
{
  const json_t *v = json_object_get(d, field);
  if (v && !json_is_array(v) && !(json_is_object(v) && !json_object_size(v))) {
    lk_messages_add(msgs, "controllers.lua: %s.%s: must be a list", where, field);
    *bad = 1;
    return NULL;
  }
  return v;
}

/* The owns list into c->owns (room for every item). Returns 1 when an item
 * is wrong or listed twice (a message each), else 0. */
static int parse_owns(const json_t *owns, const char *where, struct lk_controller_decl *c,
                      struct lk_messages *msgs)
{
  int bad = 0;
  char w[128];
  for (size_t j = 0; j < json_array_size(owns); j++) {
    snprintf(w, sizeof(w), "%s.owns[%zu]", where, j + 1);
    struct lk_gvk g = {0};
    if (parse_gvk(json_array_get(owns, j), w, 0, &g, NULL, msgs) != 0) {
      bad = 1;
      continue;
    }
    for (size_t k = 0; k < c->nowns; k++)
      if (lk_gvk_is(&c->owns[k], g.api_version, g.kind)) {
        lk_messages_add(msgs, "controllers.lua: %s: %s %s listed twice", w, g.api_version, g.kind);
        bad = 1;
      }
    c->owns[c->nowns++] = g;
  }
  return bad;
}

/* The watches list into c->watches (room for every item), with owned_only
 * and the map function split into module and function. Returns 1 when an
 * item is wrong (a message each), else 0. */
static int parse_watches(struct lk_engine *e, const json_t *watches, const char *where,
                         struct lk_controller_decl *c, struct lk_messages *msgs)
{
  int bad = 0;
  char w[128];
  for (size_t j = 0; j < json_array_size(watches); j++) {
    snprintf(w, sizeof(w), "%s.watches[%zu]", where, j + 1);
    struct lk_watch_decl wd = {0};
    if (parse_gvk(json_array_get(watches, j), w, 1, &wd.gvk, &wd.map, msgs) != 0) {
      bad = 1;
      free(wd.map);
      continue;
    }
    const json_t *oo = json_object_get(json_array_get(watches, j), "owned_only");
    if (oo && !json_is_boolean(oo)) {
      lk_messages_add(msgs, "controllers.lua: %s.owned_only: must be a boolean", w);
      bad = 1;
    }
    wd.owned_only = json_is_true(oo);
    if (wd.map) {
      char *dot = strrchr(wd.map, '.');
      wd.map_module = strndup(wd.map, (size_t)(dot - wd.map));
      wd.map_fn = strdup(dot + 1);
      if (!lk_scriptset_find(e->set, wd.map_module)) {
        lk_messages_add(msgs, "controllers.lua: %s.map: no module %s in the script set", w,
                        wd.map_module);
        bad = 1;
      }
    }
    c->watches[c->nwatches++] = wd;
  }
  return bad;
}

/* Declaration number i (0-based) of the list: appended to e->controllers
 * when valid (returns 0), else freed (returns 1; a message per problem). */
static int parse_decl(struct lk_engine *e, const json_t *d, size_t i, struct lk_messages *msgs)
{
  struct lk_controller_decl c = {0};
  char where[64];
  snprintf(where, sizeof(where), "[%zu]", i + 1);
  if (!json_is_object(d)) {
    lk_messages_add(msgs, "controllers.lua: %s: must be a table", where);
    return 1;
  }
  if (valid_name(jstr(d, "name"))) snprintf(where, sizeof(where), "%s", jstr(d, "name"));
  int bad = check_fields(d, where, msgs);
  bad |= check_identity(e, d, where, &c, msgs);
  const json_t *owns = list_field(d, "owns", where, &bad, msgs);
  const json_t *watches = list_field(d, "watches", where, &bad, msgs);
  size_t no = json_array_size(owns), nw = json_array_size(watches);
  c.owns = calloc(no + 1, sizeof(*c.owns));
  c.watches = calloc(nw + 1, sizeof(*c.watches));
  c.kinds = calloc(no + nw + 1, sizeof(*c.kinds));
  bad |= parse_owns(owns, where, &c, msgs);
  bad |= parse_watches(e, watches, where, &c, msgs);
  if (bad) {
    lk_decl_free(&c);
    return 1;
  }
  c.name = strdup(jstr(d, "name"));
  c.module = strdup(jstr(d, "module"));
  add_kind(&c, &c.for_);
  for (size_t j = 0; j < c.nowns; j++)
    add_kind(&c, &c.owns[j]);
  for (size_t j = 0; j < c.nwatches; j++)
    add_kind(&c, &c.watches[j].gvk);
  e->controllers[e->ncontrollers++] = c;
  return 0;
}

/* Validates the JSON form of controllers.lua into e->controllers. */
int lk_decl_parse(struct lk_engine *e, const json_t *list, struct lk_messages *msgs)
{
  int problems = 0;
  if (!json_is_array(list)) {
    lk_messages_add(msgs, "controllers.lua: must return a list of controller declarations");
    return 1;
  }
  size_t n = json_array_size(list);
  e->controllers = calloc(n ? n : 1, sizeof(*e->controllers));
  if (!e->controllers) return 1;
  for (size_t i = 0; i < n; i++)
    problems += parse_decl(e, json_array_get(list, i), i, msgs);
  return problems;
}

/* }==================================================================== */
