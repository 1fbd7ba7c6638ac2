/* cmd_render.c: `schedsim-operator render`: what the scripts would apply for
 * CR files, offline. No cluster: discovery says every kind is served except
 * the --without-kind ones, and the cache holds the CRs given with -f and the
 * objects of --observed (files or a directory of YAML/JSON; `kind: List`
 * documents are expanded). Each CR goes through lk_engine_reconcile, the
 * same call the operator makes, so the children printed are exactly the ones
 * it would apply (decorated: labels, owner reference, desired-hash).
 *
 * Output (-o yaml, the default, or json): the children of every CR sorted by
 * kind, namespace and name, then one status document per CR (apiVersion,
 * kind, metadata.name/namespace and the status the operator would write).
 * Exit codes: 0; 1 when a reconcile failed (the status document carries the
 * ReconcileError condition); 2 for usage and input errors (a message names
 * the file and, when known, the field or the kind), also for a terminal
 * error (InvalidSpec) of a script. */
#include <dirent.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cmd/cmd.h"
#include "cmd/cmd_common.h"
#include "cmd/crinput.h"
#include "cmd/diff_schema.h"
#include "core/json.h"
#include "core/yaml.h"
#include "lua/engine.h"
#include "lua/fixture.h"
#include "lua/memsource.h"

#define MAX_ARGS 64

struct input {
  const char *file;
  size_t doc;
  json_t *cr;
  const struct lk_controller_decl *c;
};

static void usage(FILE *out)
{
  fprintf(out, "usage: schedsim-operator render -f CR.yaml [-f MORE.yaml]... [--scripts DIR]\n"
               "         [--observed DIR|FILE]... [--without-kind apiVersion/Kind]...\n"
               "         [-o yaml|json] [--now RFC3339] [--crds DIR]\n\n"
               "Prints the children the scripts would apply for the CRs, and the status they\n"
               "would write, without a cluster. --observed adds objects to the cache (children\n"
               "with status, pools, routes ...); --without-kind makes discovery say a kind is\n"
               "not served. The CRs are checked against the structural schema of their CRD\n"
               "(types, unknown fields, enums, bounds) from --crds DIR, default the crds/\n"
               "directory beside the script set, when there is one.\n\n"
               "-f takes a file (YAML or JSON, several documents, List), - for standard\n"
               "input, or a directory: every .yaml, .yml and .json file below it, sorted;\n"
               "there, documents of kinds no controller reconciles are skipped with a note.\n"
               "Unquoted yes/no/on/off/y/n are booleans, as kubectl reads them.\n");
}

static int has_ext(const char *n)
{
  size_t l = strlen(n);
  return (l > 5 && !strcmp(n + l - 5, ".yaml")) || (l > 4 && !strcmp(n + l - 4, ".yml")) ||
         (l > 5 && !strcmp(n + l - 5, ".json"));
}

static int cmp_names(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* --observed: a file, or every .yaml, .yml and .json file of a directory (sorted). */
static int load_observed(const char *path, json_t *out)
{
  struct stat st;
  if (stat(path, &st) != 0) {
    fprintf(stderr, "schedsim-operator render: --observed %s: no such file or directory\n", path);
    return -1;
  }
  if (!S_ISDIR(st.st_mode)) return cr_load_docs("schedsim-operator render", path, out);
  DIR *d = opendir(path);
  if (!d) {
    fprintf(stderr, "schedsim-operator render: --observed %s: cannot open\n", path);
    return -1;
  }
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.' || !has_ext(e->d_name)) continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 16;
      char **nn = realloc(names, cap * sizeof(*nn));
      if (!nn) break;
      names = nn;
    }
    names[n++] = strdup(e->d_name);
  }
  closedir(d);
  if (n > 1) qsort(names, n, sizeof(*names), cmp_names);
  int rc = 0;
  for (size_t i = 0; i < n; i++) {
    char p[2 * PATH_MAX];
    snprintf(p, sizeof(p), "%s/%s", path, names[i]);
    if (rc == 0 && cr_load_docs("schedsim-operator render", p, out) != 0) rc = -1;
    free(names[i]);
  }
  free(names);
  return rc;
}

/* Sort key of a child: kind, namespace, name (then apiVersion). */
static int cmp_children(const void *a, const void *b)
{
  const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
  const json_t *mx = json_object_get(x, "metadata"), *my = json_object_get(y, "metadata");
  int c = strcmp(cr_sget(x, "kind"), cr_sget(y, "kind"));
  if (!c) c = strcmp(cr_sget(mx, "namespace"), cr_sget(my, "namespace"));
  if (!c) c = strcmp(cr_sget(mx, "name"), cr_sget(my, "name"));
  if (!c) c = strcmp(cr_sget(x, "apiVersion"), cr_sget(y, "apiVersion"));
  return c;
}

/* {====================================================================
 * Steps of cmd_render
 * ===================================================================== */

static const char *const prog = "schedsim-operator render";

struct render_flags {
  const char *files[MAX_ARGS], *observed[MAX_ARGS], *without[MAX_ARGS];
  size_t nfiles, nobserved, nwithout;
  const char *dir, *output, *now, *crds;
};

/* One render: its inputs, the engine and cache they go through, and the
 * documents it prints. Everything here is owned and freed by render_free. */
struct render {
  struct render_flags f;
  const char *dir; /* the script set's directory: f.dir or dirbuf */
  char dirbuf[PATH_MAX];
  struct ds_schemas *schemas; /* NULL: no CRD to check the CRs against */
  struct lk_engine *e;
  struct lk_memsource *ms;
  json_t *obs, *children, *statuses;
  struct input *inputs;
  size_t ninputs;
  struct cr_file *paths; /* the -f files; inputs[].file points into them */
  size_t npaths;
};

/* Reads the flags into *f. Returns -1 to go on, or the exit code: 0 after
 * --help, 2 after a usage error (message and usage printed). */
static int parse_flags(int argc, char **argv, struct render_flags *f)
{
  static const struct option opts[] = {{"filename", required_argument, NULL, 'f'},
                                       {"scripts", required_argument, NULL, 's'},
                                       {"observed", required_argument, NULL, 'O'},
                                       {"without-kind", required_argument, NULL, 'w'},
                                       {"output", required_argument, NULL, 'o'},
                                       {"now", required_argument, NULL, 'n'},
                                       {"crds", required_argument, NULL, 'c'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  int c;
  f->output = "yaml";
  optind = 1;
  while ((c = getopt_long(argc, argv, "f:o:h", opts, NULL)) != -1) {
    switch (c) {
    case 'f':
      if (f->nfiles < MAX_ARGS) f->files[f->nfiles++] = optarg;
      break;
    case 's':
      f->dir = optarg;
      break;
    case 'O':
      if (f->nobserved < MAX_ARGS) f->observed[f->nobserved++] = optarg;
      break;
    case 'w':
      if (f->nwithout < MAX_ARGS) f->without[f->nwithout++] = optarg;
      break;
    case 'o':
      f->output = optarg;
      break;
    case 'n':
      f->now = optarg;
      break;
    case 'c':
      f->crds = optarg;
      break;
    case 'h':
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return 2;
    }
  }
  if (optind < argc || !f->nfiles || (strcmp(f->output, "yaml") && strcmp(f->output, "json"))) {
    if (optind < argc)
      fprintf(stderr, "%s: unexpected argument %s\n", prog, argv[optind]);
    else if (!f->nfiles)
      fprintf(stderr, "%s: give at least one -f CR.yaml\n", prog);
    else
      fprintf(stderr, "%s: -o must be yaml or json\n", prog);
    usage(stderr);
    return 2;
  }
  return -1;
}

/* CRD schemas: --crds, else crds/ beside the script set (repo, build tree),
 * else none. Returns 0, or -1 after a message. */
static int load_schemas(struct render *r)
{
  char crdbuf[PATH_MAX + 8], err[1024];
  const char *crds = r->f.crds;
  struct stat cst;
  snprintf(crdbuf, sizeof(crdbuf), "%s/../crds", r->dir);
  if (!crds && stat(crdbuf, &cst) == 0 && S_ISDIR(cst.st_mode)) crds = crdbuf;
  if (crds && !(r->schemas = ds_load_dir(crds, err, sizeof(err)))) {
    fprintf(stderr, "%s: --crds %s\n", prog, err);
    return -1;
  }
  return 0;
}

/* The script set, the CRD schemas and the engine. Returns 0, or the exit
 * code after a message. */
static int setup_engine(struct render *r)
{
  struct lk_scriptset *set;
  if (cmd_scripts_load(prog, r->f.dir, 0, r->dirbuf, sizeof(r->dirbuf), &r->dir, &set) != 0)
    return 2;
  if (load_schemas(r) != 0) {
    lk_scriptset_free(set);
    return 2;
  }
  if (cmd_engine_new(r->dir, set, &r->e) != 0) return 1;
  return 0;
}

/* The offline cache and discovery: every kind the controllers declare is
 * served but the --without-kind ones; the cache holds the --observed
 * objects. Returns 0, or 2 after a message. */
static int setup_cache(struct render *r)
{
  char err[1024];
  int rc = 0;
  const struct lk_engine *e = r->e;
  for (size_t i = 0; i < e->ncontrollers; i++)
    for (size_t k = 0; k < e->controllers[i].nkinds; k++)
      lk_memsource_declare(r->ms, e->controllers[i].kinds[k].api_version,
                           e->controllers[i].kinds[k].kind);
  for (size_t i = 0; i < r->f.nwithout; i++)
    if (lk_memsource_without(r->ms, r->f.without[i]) != 0) {
      fprintf(stderr, "%s: --without-kind %s: expected apiVersion/Kind\n", prog, r->f.without[i]);
      rc = 2;
    }
  for (size_t i = 0; rc == 0 && i < r->f.nobserved; i++)
    if (load_observed(r->f.observed[i], r->obs) != 0) rc = 2;
  size_t k;
  json_t *o;
  json_array_foreach(r->obs, k, o)
  {
    if (rc == 0 && lk_memsource_add(r->ms, o, err, sizeof(err)) != 0) {
      fprintf(stderr, "%s: --observed: object %zu: %s\n", prog, k, err);
      rc = 2;
    }
  }
  return rc;
}

/* cr_input_fn: checks a CR against its CRD schema, defaults its namespace
 * and generation, keeps it as an input and adds it to the cache. */
static int add_input(void *ud, const struct cr_file *f, size_t doc, const json_t *d,
                     const struct lk_controller_decl *ctl)
{
  struct render *r = ud;
  char err[1024];
  if (ds_check(r->schemas, d, err, sizeof(err)) != 0) {
    fprintf(stderr, "%s: %s: document %zu: %s\n", prog, f->name, doc, err);
    return 2;
  }
  json_t *cr = json_deep_copy(d);
  json_t *md = json_object_get(cr, "metadata");
  if (!json_object_get(md, "namespace"))
    json_object_set_new(md, "namespace", json_string("default"));
  if (!json_is_integer(json_object_get(md, "generation")))
    json_object_set_new(md, "generation", json_integer(1));
  struct input *ni = realloc(r->inputs, (r->ninputs + 1) * sizeof(*ni));
  if (!ni) {
    json_decref(cr);
    return 1;
  }
  r->inputs = ni;
  r->inputs[r->ninputs++] = (struct input){f->name, doc, cr, ctl};
  if (lk_memsource_add(r->ms, cr, err, sizeof(err)) != 0) {
    fprintf(stderr, "%s: %s: document %zu: %s\n", prog, f->name, doc, err);
    return 2;
  }
  return 0;
}

/* Reconciles one CR as the operator would, appending its children and its
 * status document. Returns rc raised to 2 for a terminal error, to 1 for
 * another failed reconcile (message printed). */
static int reconcile_one(struct render *r, const struct input *in, int rc)
{
  struct lk_reconcile_in ri = {.controller = in->c,
                               .cr = in->cr,
                               .cache = lk_memsource_cache(r->ms),
                               .discovery = lk_memsource_discovery(r->ms),
                               .now = r->f.now,
                               /* offline: no Namespace labels to read */
                               .grants = LK_GRANTS_ALL};
  struct lk_result res;
  int st = lk_engine_reconcile(r->e, &ri, &res);
  const json_t *md = json_object_get(in->cr, "metadata");
  if (st != 0) {
    fprintf(stderr, "%s: %s: %s %s/%s: %s\n", prog, in->file, cr_sget(in->cr, "kind"),
            cr_sget(md, "namespace"), cr_sget(md, "name"),
            res.err.message ? res.err.message : "reconcile failed");
    if (res.err.kind == LK_ERR_TERMINAL)
      rc = 2;
    else if (rc == 0)
      rc = 1;
  }
  for (size_t j = 0; j < res.nchildren; j++)
    json_array_append(r->children, res.children[j].obj);
  json_array_append_new(r->statuses,
                        json_pack("{s:s, s:s, s:{s:s, s:s}, s:O}", "apiVersion",
                                  cr_sget(in->cr, "apiVersion"), "kind", cr_sget(in->cr, "kind"),
                                  "metadata", "name", cr_sget(md, "name"), "namespace",
                                  cr_sget(md, "namespace"), "status", res.status));
  lk_result_free(&res);
  return rc;
}

/* Prints the children sorted (cmp_children), then the status documents:
 * a YAML stream, or with -o json one List. */
static void print_documents(const struct render *r)
{
  size_t n = json_array_size(r->children);
  json_t **v = calloc(n + 1, sizeof(*v));
  for (size_t i = 0; i < n; i++)
    v[i] = json_array_get(r->children, i);
  if (n > 1) qsort(v, n, sizeof(*v), cmp_children);
  json_t *all = json_array();
  for (size_t i = 0; i < n; i++)
    json_array_append(all, v[i]);
  free(v);
  json_array_extend(all, r->statuses);
  char *text;
  if (!strcmp(r->f.output, "json")) {
    json_t *list = json_pack("{s:s, s:s, s:O}", "apiVersion", "v1", "kind", "List", "items", all);
    text = json_dumps(list, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(list);
    if (text) printf("%s\n", text);
  } else {
    text = k8s_yaml_dump_stream(all, NULL);
    if (text) fputs(text, stdout);
  }
  free(text);
  json_decref(all);
}

static void render_free(struct render *r)
{
  for (size_t i = 0; i < r->ninputs; i++)
    json_decref(r->inputs[i].cr);
  free(r->inputs);
  cr_free_files(r->paths, r->npaths);
  json_decref(r->obs);
  json_decref(r->children);
  json_decref(r->statuses);
  lk_memsource_free(r->ms);
  lk_engine_free(r->e);
  ds_free(r->schemas);
}

/* }==================================================================== */

int cmd_render(int argc, char **argv)
{
  struct render r = {0};
  int rc = parse_flags(argc, argv, &r.f);
  if (rc >= 0) return rc;
  if ((rc = setup_engine(&r)) != 0) {
    ds_free(r.schemas);
    return rc;
  }
  r.ms = lk_memsource_new();
  r.obs = json_array();
  r.children = json_array();
  r.statuses = json_array();
  rc = setup_cache(&r);
  /* -f: files, "-" (stdin) and directories (recursively) */
  if (rc == 0) {
    rc = cr_read_inputs(prog, r.e, (char *const *)r.f.files, r.f.nfiles, &r.paths, &r.npaths,
                        add_input, &r);
    if (rc < 0) rc = 2;
  }
  for (size_t i = 0; rc != 2 && i < r.ninputs; i++)
    rc = reconcile_one(&r, &r.inputs[i], rc);
  if (rc != 2) print_documents(&r);
  render_free(&r);
  return rc;
}
