/* fixture.c: fixture cases (see fixture.h). Reads the case (core/yaml.h),
 * fills an in-memory source, runs lk_engine_reconcile, and hands the result
 * to the embedded matcher fixture.lua in a trusted lua_State. */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lualib.h>

#include "core/json.h"
#include "core/yaml.h"
#include "lua/embedded.h"
#include "lua/fixture.h"
#include "lua/memsource.h"
#include "core/util.h"

#define FIXTURE_DEFAULT_NOW "2026-01-01T00:00:00Z"

const struct schedsim_embedded *lk_embedded(const char *name)
{
  for (const struct schedsim_embedded *e = schedsim_embedded_lua; e->name; e++)
    if (!strcmp(e->name, name)) return e;
  return NULL;
}

json_t *lk_fixture_load(const char *path, char *err, size_t errlen)
{
  size_t len;
  char *text = k8s_read_file(path, 0, &len);
  if (!text) {
    snprintf(err, errlen, "%s: %s", path, strerror(errno));
    return NULL;
  }
  json_t *docs = k8s_yaml_load(text, len, path, err, errlen);
  free(text);
  return docs;
}

/* {====================================================================
 * Log capture
 * ===================================================================== */

static void capture_log(void *ud, enum k8s_log_level level, int v, const char *msg,
                        const struct k8s_log_field *fields, size_t nfields)
{
  json_t *rec = json_pack("{s:s, s:s}", "level", k8s_log_level_name(level), "msg", msg);
  for (size_t i = 0; i < nfields; i++) {
    const struct k8s_log_field *f = &fields[i];
    json_t *val = NULL;
    switch (f->type) {
    case K8S_LOG_STR:
      val = f->s ? json_string(f->s) : json_null();
      break;
    case K8S_LOG_INT:
      val = json_integer(f->i);
      break;
    case K8S_LOG_REAL:
      val = json_real(f->d);
      break;
    case K8S_LOG_BOOL:
      val = json_boolean(f->i);
      break;
    case K8S_LOG_RAW_JSON:
    case K8S_LOG_NUMBER: /* a number's text parses as the number */
      val = f->s ? k8s_json_parse(f->s, strlen(f->s), NULL, 0) : NULL;
      if (!val && f->s && f->type == K8S_LOG_NUMBER) val = json_string(f->s);
      break;
    }
    json_object_set_new(rec, f->key, val ? val : json_null());
  }
  json_array_append_new(ud, rec);
}

/* }==================================================================== */

/* {====================================================================
 * The matcher state
 * ===================================================================== */

/* One matcher state serves every case of a check: opening the libraries and
 * loading fixture.lua once instead of once a case saved ~0.3 ms a case
 * (timings of `check --timings`). fixture.lua keeps nothing between calls
 * (M.run builds its failures afresh), so cases cannot see each other. */
struct matcher {
  lua_State *L;  /* stack: [1] = fixture.lua's run; NULL when it did not open */
  char err[512]; /* why it did not open */
};

struct match_args {
  const json_t *expect, *result, *cr;
  json_t *fails;
  char err[512];
};

static int p_matcher_open(lua_State *L)
{
  luaL_openlibs(L);
  k8s_json_push_null(L);
  lua_setglobal(L, "null");
  k8s_json_push_array_mt(L);
  lua_setglobal(L, "array_mt");
  const struct schedsim_embedded *m = lk_embedded("fixture");
  if (!m) return luaL_error(L, "fixture.lua is not embedded");
  if (luaL_loadbufferx(L, m->source, m->len, "@fixture.lua", "t") != LUA_OK) return lua_error(L);
  lua_call(L, 0, 1);
  lua_getfield(L, -1, "run");
  return 1;
}

/* Opens the matcher state: 0, or -1 with m->err set (every match then
 * fails with it). */
static int matcher_open(struct matcher *m)
{
  if (!(m->L = luaL_newstate())) {
    snprintf(m->err, sizeof(m->err), "matcher: out of memory");
    return -1;
  }
  lua_pushcfunction(m->L, p_matcher_open);
  if (lua_pcall(m->L, 0, 1, 0) != LUA_OK) {
    snprintf(m->err, sizeof(m->err), "matcher: %s", lua_tostring(m->L, -1));
    lua_close(m->L);
    m->L = NULL;
    return -1;
  }
  return 0;
}

static void matcher_close(struct matcher *m)
{
  if (m->L) lua_close(m->L);
  m->L = NULL;
}

static int p_match(lua_State *L)
{
  struct match_args *a = lua_touserdata(L, 2);
  lua_pushvalue(L, 1);
  k8s_json_push_value(L, a->expect);
  k8s_json_push_value(L, a->result);
  k8s_json_push_value(L, a->cr);
  lua_call(L, 3, 1);
  a->fails = k8s_json_from_lua(L, -1, a->err, sizeof(a->err));
  return 0;
}

/* The matcher's failures as a JSON array of strings, or NULL (err set). */
static json_t *match(struct matcher *m, const json_t *expect, const json_t *result,
                     const json_t *cr, char *err, size_t errlen)
{
  struct match_args a = {expect, result, cr, NULL, ""};
  lua_State *L = m->L;
  if (!L) {
    snprintf(err, errlen, "%s", m->err);
    return NULL;
  }
  lua_settop(L, 1); /* [1] = run */
  lua_pushcfunction(L, p_match);
  lua_pushvalue(L, 1);
  lua_pushlightuserdata(L, &a);
  if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
    snprintf(err, errlen, "matcher: %s", lua_tostring(L, -1));
    lua_settop(L, 1);
    json_decref(a.fails);
    return NULL;
  }
  lua_settop(L, 1);
  if (!a.fails) snprintf(err, errlen, "matcher: %s", a.err);
  if (a.fails && json_is_object(a.fails)) { /* an empty list */
    json_decref(a.fails);
    a.fails = json_array();
  }
  return a.fails;
}

/* }==================================================================== */

/* Reads input_path (relative to the fixture file): the first document whose
 * kind is the controller's. */
static json_t *load_input(const char *fixture, const char *rel, const struct lk_controller_decl *c,
                          char *err, size_t errlen)
{
  char dir[PATH_MAX], path[2 * PATH_MAX];
  snprintf(dir, sizeof(dir), "%s", fixture);
  snprintf(path, sizeof(path), "%s/%s", dirname(dir), rel);
  char e2[400];
  json_t *docs = lk_fixture_load(path, e2, sizeof(e2));
  if (!docs) {
    snprintf(err, errlen, "input_path: %s", e2);
    return NULL;
  }
  json_t *found = NULL, *d;
  size_t i;
  json_array_foreach(docs, i, d)
  {
    const char *kind = json_string_value(json_object_get(d, "kind"));
    if (!found && kind && !strcmp(kind, c->for_.kind)) found = json_incref(d);
  }
  json_decref(docs);
  if (!found) snprintf(err, errlen, "input_path: %.300s has no %s", path, c->for_.kind);
  return found;
}

/* An observed object of an owns kind without an owner label is taken as a
 * child of the case's CR: a copy with our labels (a fixture need not spell
 * out the owner value). Returns a new reference. */
static json_t *adopt(json_t *obj, const struct lk_controller_decl *c, const char *owner)
{
  const char *av = json_string_value(json_object_get(obj, "apiVersion"));
  const char *kind = json_string_value(json_object_get(obj, "kind"));
  json_t *md = json_object_get(obj, "metadata");
  json_t *labels = json_object_get(md, "labels");
  int owned = 0;
  for (size_t i = 0; av && kind && i < c->nowns; i++)
    owned |= !strcmp(c->owns[i].api_version, av) && !strcmp(c->owns[i].kind, kind);
  if (!owned || !*owner || !json_is_object(md) || json_object_get(labels, LK_LABEL_OWNER))
    return json_incref(obj);
  json_t *copy = json_deep_copy(obj);
  md = json_object_get(copy, "metadata");
  labels = json_object_get(md, "labels");
  if (!json_is_object(labels)) {
    labels = json_object();
    json_object_set_new(md, "labels", labels);
  }
  json_object_set_new(labels, LK_LABEL_OWNER, json_string(owner));
  json_object_set_new(labels, LK_LABEL_MANAGED_BY, json_string(LK_MANAGED_BY));
  return copy;
}

/* Defaults a CR read from a file the way the API server would on create. */
static void default_cr(json_t *cr)
{
  json_t *md = json_object_get(cr, "metadata");
  if (!json_is_object(md)) return;
  if (!json_is_string(json_object_get(md, "namespace")))
    json_object_set_new(md, "namespace", json_string("default"));
  if (!json_is_integer(json_object_get(md, "generation")))
    json_object_set_new(md, "generation", json_integer(1));
}

/* "<file>: <case name>", the prefix of every message about a case (a longer
 * one is cut at len - 1 bytes: it only prefixes messages, and every label of
 * a case is made here, so they agree). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-truncation"
static void case_label(char *label, size_t len, const char *file, const json_t *doc)
{
  const char *name = json_string_value(json_object_get(doc, "name"));
  snprintf(label, len, "%s: %s", file, name ? name : "(case without a name)");
}
#pragma GCC diagnostic pop

/* lk_fixture_run with the file named `file` in messages (an overlay fixture
 * is named by its origin) while input_path is resolved against `path`. */
static int run_case(struct lk_engine *e, struct matcher *mt, const char *path, const char *file,
                    const json_t *doc, struct lk_messages *fails, json_t **result,
                    struct lk_fixture_times *t)
{
  double t0 = k8s_monotonic();
  static const char *const fields[] = {"name",  "controller", "now",      "without_kinds", "grants",
                                       "input", "input_path", "observed", "expect",        NULL};
  if (result) *result = NULL;
  const char *name = json_string_value(json_object_get(doc, "name"));
  char label[300];
  case_label(label, sizeof(label), file, doc);
  if (!json_is_object(doc)) {
    lk_messages_add(fails, "%s: a case must be a mapping", label);
    return 1;
  }
  int bad = 0;
  const char *key;
  json_t *val;
  json_object_foreach((json_t *)doc, key, val)
  {
    int ok = 0;
    for (int i = 0; fields[i]; i++)
      ok |= !strcmp(key, fields[i]);
    if (!ok) {
      lk_messages_add(fails, "%s: %s: unknown field", label, key);
      bad = 1;
    }
  }
  if (!name) {
    lk_messages_add(fails, "%s: name: missing (one line shown by busted)", label);
    bad = 1;
  }
  const char *cname = json_string_value(json_object_get(doc, "controller"));
  const struct lk_controller_decl *c = cname ? lk_engine_controller(e, cname) : NULL;
  if (!c) {
    lk_messages_add(fails, "%s: controller: %s%s", label,
                    cname ? "no controller named " : "missing", cname ? cname : "");
    return 1;
  }
  if (!c->valid) {
    lk_messages_add(fails, "%s: controller %s did not load (see the errors above)", label, cname);
    return 1;
  }
  if (!json_object_get(doc, "expect")) {
    lk_messages_add(fails, "%s: expect: missing", label);
    bad = 1;
  }
  json_t *cr = NULL;
  const json_t *input = json_object_get(doc, "input");
  const char *input_path = json_string_value(json_object_get(doc, "input_path"));
  char err[600];
  if (input && input_path) {
    lk_messages_add(fails, "%s: give input or input_path, not both", label);
    bad = 1;
  } else if (json_is_object(input))
    cr = json_deep_copy(input);
  else if (input_path) {
    double tp = k8s_monotonic();
    cr = load_input(path, input_path, c, err, sizeof(err));
    if (t) t->parse += k8s_monotonic() - tp, t0 += k8s_monotonic() - tp;
    if (!cr) {
      lk_messages_add(fails, "%s: %s", label, err);
      bad = 1;
    } else {
      json_t *copy = json_deep_copy(cr);
      json_decref(cr);
      cr = copy;
    }
  } else {
    lk_messages_add(fails, "%s: input: missing (a CR, or input_path)", label);
    bad = 1;
  }
  if (cr) default_cr(cr);
  struct lk_memsource *ms = lk_memsource_new();
  for (size_t i = 0; i < c->nkinds; i++)
    lk_memsource_declare(ms, c->kinds[i].api_version, c->kinds[i].kind);
  if (cr && lk_memsource_add(ms, cr, err, sizeof(err)) != 0) {
    lk_messages_add(fails, "%s: input: %s", label, err);
    bad = 1;
  }
  size_t i;
  char owner[64] = "";
  if (cr) lk_owner_value(cr, owner);
  json_array_foreach(json_object_get(doc, "observed"), i, val)
  {
    json_t *obj = adopt(val, c, owner);
    int rc = lk_memsource_add(ms, obj, err, sizeof(err));
    json_decref(obj);
    if (rc != 0) {
      lk_messages_add(fails, "%s: observed[%zu]: %s", label, i, err);
      bad = 1;
    }
  }
  json_array_foreach(json_object_get(doc, "without_kinds"), i, val)
  {
    const char *spec = json_string_value(val);
    if (!spec || lk_memsource_without(ms, spec) != 0) {
      lk_messages_add(fails, "%s: without_kinds[%zu]: expected \"apiVersion/Kind\"", label, i);
      bad = 1;
    }
  }
  const char *now = json_string_value(json_object_get(doc, "now"));
  /* offline by default; "labels" reads the grant labels of observed Namespaces */
  const char *grants = json_string_value(json_object_get(doc, "grants"));
  if (json_object_get(doc, "grants") &&
      (!grants || (strcmp(grants, "all") && strcmp(grants, "labels")))) {
    lk_messages_add(fails, "%s: grants: want \"all\" or \"labels\"", label);
    bad = 1;
  }
  if (bad) {
    lk_memsource_free(ms);
    json_decref(cr);
    return 1;
  }

  double t1 = k8s_monotonic();
  json_t *logs = json_array();
  struct lk_reconcile_in in = {.controller = c,
                               .cr = cr,
                               .cache = lk_memsource_cache(ms),
                               .discovery = lk_memsource_discovery(ms),
                               .now = now ? now : FIXTURE_DEFAULT_NOW,
                               .log = capture_log,
                               .log_data = logs,
                               .grants = grants && !strcmp(grants, "labels") ? LK_GRANTS_LABELS
                                                                             : LK_GRANTS_ALL};
  struct lk_result r;
  int rc = lk_engine_reconcile(e, &in, &r);
  double t2 = k8s_monotonic();
  json_t *rj = lk_result_to_json(&r);
  json_object_set_new(rj, "logs", logs);
  lk_result_free(&r);
  lk_memsource_free(ms);
  int failed = 0;
  if (rc < 0) {
    lk_messages_add(fails, "%s: input: %s", label, json_string_value(json_object_get(rj, "error")));
    failed = 1;
  } else {
    json_t *list = match(mt, json_object_get(doc, "expect"), rj, cr, err, sizeof(err));
    if (!list) {
      lk_messages_add(fails, "%s: %s", label, err);
      failed = 1;
    }
    json_array_foreach(list, i, val)
    {
      lk_messages_add(fails, "%s: %s", label, json_string_value(val));
      failed = 1;
    }
    json_decref(list);
  }
  json_decref(cr);
  if (result)
    *result = rj;
  else
    json_decref(rj);
  if (t) {
    double t3 = k8s_monotonic();
    t->setup += t1 - t0;
    t->reconcile += t2 - t1;
    t->match += t3 - t2;
    if (t3 - t0 > t->slowest) {
      t->slowest = t3 - t0;
      case_label(t->slowest_case, sizeof(t->slowest_case), file, doc);
    }
  }
  return failed;
}

int lk_fixture_run(struct lk_engine *e, const char *path, const json_t *doc,
                   struct lk_messages *fails, json_t **result)
{
  struct matcher mt = {0};
  matcher_open(&mt);
  int rc = run_case(e, &mt, path, path, doc, fails, result, NULL);
  matcher_close(&mt);
  return rc;
}

/* {====================================================================
 * Grouping: one message per distinct failure
 * ===================================================================== */

struct group {
  char *detail;     /* the message without "<file>: <case name>: " */
  char *first;      /* the first whole message */
  char *file;       /* the first case's file; once they span files, the folder they share */
  size_t n, nfiles; /* cases with this detail, and whether they span files */
};

struct groups {
  struct group *v;
  size_t n;
};

/* Cuts folder (a path) to the longest folder it shares with file. */
static void common_folder(char *folder, const char *file)
{
  size_t k = 0, cut = 0;
  while (folder[k] && folder[k] == file[k]) {
    if (file[k] == '/') cut = k;
    k++;
  }
  if (!folder[k] && file[k] == '/') cut = k;
  folder[cut] = '\0';
}

static void group_add(struct groups *g, const char *file, const char *label, const char *msg)
{
  size_t ll = strlen(label);
  const char *detail = !strncmp(msg, label, ll) && !strncmp(msg + ll, ": ", 2) ? msg + ll + 2 : msg;
  for (size_t i = 0; i < g->n; i++)
    if (!strcmp(g->v[i].detail, detail)) {
      struct group *x = &g->v[i];
      if (x->n++ && x->file && strcmp(x->file, file)) {
        common_folder(x->file, file); /* fixtures/ and fixtures/contract/ give fixtures */
        x->nfiles = 2;
      }
      return;
    }
  struct group *v = realloc(g->v, (g->n + 1) * sizeof(*v));
  if (!v) return;
  g->v = v;
  g->v[g->n++] = (struct group){strdup(detail), strdup(msg), strdup(file), 1, 1};
}

/* Adds the groups to fails: a failure of one case as it was, a failure
 * shared by several as "<file, or the folder they share + /\*.yaml>: <n> fixture cases:
 * <detail>". */
static void group_flush(struct groups *g, struct lk_messages *fails)
{
  for (size_t i = 0; i < g->n; i++) {
    struct group *x = &g->v[i];
    if (x->detail && x->first && x->file) {
      if (x->n == 1) {
        lk_messages_add(fails, "%s", x->first);
      } else {
        lk_messages_add(fails, "%s%s: %zu fixture cases: %s", x->file,
                        x->nfiles > 1 ? "/*.yaml" : "", x->n, x->detail);
      }
    }
    free(x->detail), free(x->first), free(x->file);
  }
  free(g->v);
  *g = (struct groups){0};
}

/* }==================================================================== */

/* {====================================================================
 * Running every case, on one thread or several
 * ===================================================================== */

enum { FILE_WAITING, FILE_PARSING, FILE_PARSED };

/* A fixture file of the set: parsed by whichever worker claims it. */
struct ffile {
  char path[2 * PATH_MAX]; /* input_path is resolved against it */
  char *origin;            /* overlay fixture: how messages name it (owned), else NULL */
  char *text;              /* overlay fixture: its text (owned), else NULL */
  size_t len;
  int state;                /* FILE_*, under mu */
  json_t *docs;             /* its cases, or NULL when it did not parse */
  char err[600];            /* why it did not parse */
  struct lk_messages *msgs; /* per case */
  int *failed;              /* per case */
  char *again;              /* per case: failed on a secondary worker, to run on the primary */
};

/* The work the workers share, under mu: files to parse (claimed in order),
 * and the cases of parsed files (handed out in file order, one at a time).
 * A case's outcome lands in its own slot and is read in file order by
 * lk_fixture_finish, so the messages do not depend on which worker ran
 * what. Each reconcile runs in a fresh environment with its own instance of
 * every module (sandbox.c, sb_require), so the order in which an engine runs
 * cases does not change their outcome. */
struct lk_fixture_run {
  struct ffile *files;
  size_t nfiles;
  char *dir; /* for the "has no fixture case" message */
  pthread_mutex_t mu;
  pthread_cond_t parsed; /* a file went FILE_PARSED */
  size_t next_file;      /* the next file to parse */
  size_t case_file, case_doc;
  size_t workers;
};

static const char *ffile_name(const struct ffile *f)
{
  return f->origin ? f->origin : f->path;
}

static void parse_file(struct ffile *f)
{
  if (f->origin)
    f->docs = k8s_yaml_load(f->text, f->len, f->origin, f->err, sizeof(f->err));
  else
    f->docs = lk_fixture_load(f->path, f->err, sizeof(f->err));
  size_t n = json_array_size(f->docs);
  f->msgs = calloc(n + 1, sizeof(*f->msgs));
  f->failed = calloc(n + 1, sizeof(*f->failed));
  f->again = calloc(n + 1, sizeof(*f->again));
}

struct lk_fixture_run *lk_fixture_start(const struct lk_scriptset *set)
{
  struct lk_fixture_run *r = calloc(1, sizeof(*r));
  if (!r) return NULL;
  r->nfiles = set->nfixtures + set->nofixtures;
  r->files = calloc(r->nfiles + 1, sizeof(*r->files));
  r->dir = strdup(set->dir ? set->dir : "scripts");
  int ok = r->files && r->dir;
  for (size_t f = 0; ok && f < set->nfixtures; f++)
    snprintf(r->files[f].path, sizeof(r->files[f].path), "%s/%s", set->dir, set->fixtures[f]);
  for (size_t f = 0; ok && f < set->nofixtures; f++) {
    const struct lk_overlay_fixture *o = &set->ofixtures[f];
    struct ffile *x = &r->files[set->nfixtures + f];
    snprintf(x->path, sizeof(x->path), "%s/%s", set->dir ? set->dir : ".", o->rel);
    x->origin = strdup(o->origin);
    x->text = malloc(o->len + 1);
    if (x->text) memcpy(x->text, o->text, o->len + 1);
    x->len = o->len;
    ok = x->origin && x->text;
  }
  if (!ok) {
    for (size_t f = 0; r->files && f < r->nfiles; f++)
      free(r->files[f].origin), free(r->files[f].text);
    free(r->files);
    free(r->dir);
    free(r);
    return NULL;
  }
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->parsed, NULL);
  return r;
}

void lk_fixture_times_add(struct lk_fixture_times *t, const struct lk_fixture_times *more)
{
  t->parse += more->parse;
  t->setup += more->setup;
  t->reconcile += more->reconcile;
  t->match += more->match;
  t->again += more->again;
  t->nagain += more->nagain;
  t->cases += more->cases;
  if (more->slowest > t->slowest) {
    t->slowest = more->slowest;
    memcpy(t->slowest_case, more->slowest_case, sizeof(t->slowest_case));
  }
}

void lk_fixture_work(struct lk_fixture_run *r, struct lk_engine *e, bool primary,
                     struct lk_fixture_times *t)
{
  struct lk_fixture_times mine = {0};
  struct matcher mt = {0};
  matcher_open(&mt);
  pthread_mutex_lock(&r->mu);
  r->workers++;
  for (;;) {
    while (r->case_file < r->nfiles && r->files[r->case_file].state == FILE_PARSED &&
           r->case_doc >= json_array_size(r->files[r->case_file].docs)) {
      r->case_file++;
      r->case_doc = 0;
    }
    if (r->case_file >= r->nfiles) break;
    struct ffile *f = &r->files[r->case_file];
    if (f->state == FILE_PARSED) { /* a case to run */
      size_t i = r->case_doc++;
      pthread_mutex_unlock(&r->mu);
      if (f->msgs && f->failed && f->again) {
        f->failed[i] = run_case(e, &mt, f->path, ffile_name(f), json_array_get(f->docs, i),
                                &f->msgs[i], NULL, &mine);
        mine.cases++;
        if (f->failed[i] && !primary) { /* its verdict is the primary engine's */
          lk_messages_free(&f->msgs[i]);
          f->again[i] = 1;
        }
      }
      pthread_mutex_lock(&r->mu);
      continue;
    }
    if (r->next_file < r->nfiles) { /* a file to parse */
      struct ffile *p = &r->files[r->next_file++];
      p->state = FILE_PARSING;
      pthread_mutex_unlock(&r->mu);
      double tp = k8s_monotonic();
      parse_file(p);
      mine.parse += k8s_monotonic() - tp;
      pthread_mutex_lock(&r->mu);
      p->state = FILE_PARSED;
      pthread_cond_broadcast(&r->parsed);
      continue;
    }
    pthread_cond_wait(&r->parsed, &r->mu); /* the next file is being parsed */
  }
  pthread_mutex_unlock(&r->mu);
  matcher_close(&mt);
  if (t) lk_fixture_times_add(t, &mine);
}

void lk_fixture_finish(struct lk_fixture_run *r, struct lk_engine *e, struct lk_messages *fails,
                       size_t *ncases, size_t *nfailed, struct lk_fixture_times *t)
{
  *ncases = *nfailed = 0;
  if (!r) {
    lk_messages_add(fails, "out of memory while running the fixture cases");
    (*nfailed)++;
    return;
  }
  size_t *per = e ? calloc(e->ncontrollers + 1, sizeof(*per)) : NULL;
  struct groups g = {0};
  struct matcher mt = {0};
  for (size_t k = 0; k < r->nfiles; k++) {
    struct ffile *f = &r->files[k];
    const char *file = ffile_name(f);
    if (f->state != FILE_PARSED) { /* no worker came */
      lk_messages_add(fails, "%s: not run", file);
      (*nfailed)++;
    } else if (!f->docs) {
      lk_messages_add(fails, "%s", f->err);
      (*nfailed)++;
    }
    size_t i;
    json_t *doc;
    json_array_foreach(f->docs, i, doc)
    {
      char label[300];
      (*ncases)++;
      if (!f->msgs || !f->failed || !f->again) {
        lk_messages_add(fails, "%s: out of memory while running its cases", file);
        (*nfailed)++;
        break;
      }
      if (f->again[i] && e) { /* failed on a secondary worker: the primary engine decides */
        if (!mt.L && !mt.err[0]) matcher_open(&mt);
        double t0 = k8s_monotonic();
        f->failed[i] = run_case(e, &mt, f->path, file, doc, &f->msgs[i], NULL, NULL);
        if (t) t->again += k8s_monotonic() - t0, t->nagain++;
      }
      if (f->failed[i]) (*nfailed)++;
      case_label(label, sizeof(label), file, doc);
      for (size_t m = 0; m < f->msgs[i].n; m++)
        group_add(&g, file, label, f->msgs[i].v[m]);
      lk_messages_free(&f->msgs[i]);
      const char *cname = json_string_value(json_object_get(doc, "controller"));
      for (size_t c = 0; cname && per && c < e->ncontrollers; c++)
        if (!strcmp(e->controllers[c].name, cname)) per[c]++;
    }
    json_decref(f->docs);
    free(f->msgs);
    free(f->failed);
    free(f->again);
    free(f->origin);
    free(f->text);
  }
  matcher_close(&mt);
  group_flush(&g, fails);
  for (size_t k = 0; e && per && k < e->ncontrollers; k++)
    if (e->controllers[k].valid && per[k] == 0) {
      lk_messages_add(fails, "%s: controller %s has no fixture case (add <folder>/fixtures/*.yaml)",
                      r->dir, e->controllers[k].name);
      (*nfailed)++;
    }
  free(per);
  if (t) t->threads = r->workers;
  pthread_cond_destroy(&r->parsed);
  pthread_mutex_destroy(&r->mu);
  free(r->files);
  free(r->dir);
  free(r);
}

void lk_fixture_run_all(struct lk_engine *e, struct lk_messages *fails, size_t *ncases,
                        size_t *nfailed)
{
  struct lk_fixture_run *r = lk_fixture_start(e->set);
  if (r) lk_fixture_work(r, e, true, NULL);
  lk_fixture_finish(r, e, fails, ncases, nfailed, NULL);
}

/* }==================================================================== */
