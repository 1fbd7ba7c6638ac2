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

int cmd_render(int argc, char **argv)
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
  const char *files[MAX_ARGS], *observed[MAX_ARGS], *without[MAX_ARGS];
  size_t nfiles = 0, nobserved = 0, nwithout = 0;
  const char *dir = NULL, *output = "yaml", *now = NULL, *crds = NULL;
  int c;
  optind = 1;
  while ((c = getopt_long(argc, argv, "f:o:h", opts, NULL)) != -1) {
    switch (c) {
    case 'f':
      if (nfiles < MAX_ARGS) files[nfiles++] = optarg;
      break;
    case 's':
      dir = optarg;
      break;
    case 'O':
      if (nobserved < MAX_ARGS) observed[nobserved++] = optarg;
      break;
    case 'w':
      if (nwithout < MAX_ARGS) without[nwithout++] = optarg;
      break;
    case 'o':
      output = optarg;
      break;
    case 'n':
      now = optarg;
      break;
    case 'c':
      crds = optarg;
      break;
    case 'h':
      usage(stdout);
      return 0;
    default:
      usage(stderr);
      return 2;
    }
  }
  if (optind < argc || !nfiles || (strcmp(output, "yaml") && strcmp(output, "json"))) {
    if (optind < argc)
      fprintf(stderr, "schedsim-operator render: unexpected argument %s\n", argv[optind]);
    else if (!nfiles)
      fprintf(stderr, "schedsim-operator render: give at least one -f CR.yaml\n");
    else
      fprintf(stderr, "schedsim-operator render: -o must be yaml or json\n");
    usage(stderr);
    return 2;
  }
  char buf[PATH_MAX], err[1024];
  if (!dir && !(dir = lk_scriptset_default_dir(buf, sizeof(buf)))) {
    fprintf(stderr, "schedsim-operator render: no scripts beside the binary; use --scripts DIR\n");
    return 2;
  }
  struct lk_scriptset *set;
  if (lk_scriptset_load(dir, NULL, 0, NULL, &set, err, sizeof(err)) != 0) {
    fprintf(stderr, "schedsim-operator render: %s\n", err);
    return 2;
  }
  /* CRD schemas: --crds, else crds/ beside the script set (repo, build tree) */
  struct ds_schemas *schemas = NULL;
  char crdbuf[PATH_MAX + 8];
  struct stat cst;
  snprintf(crdbuf, sizeof(crdbuf), "%s/../crds", dir);
  if (!crds && stat(crdbuf, &cst) == 0 && S_ISDIR(cst.st_mode)) crds = crdbuf;
  if (crds && !(schemas = ds_load_dir(crds, err, sizeof(err)))) {
    fprintf(stderr, "schedsim-operator render: --crds %s\n", err);
    lk_scriptset_free(set);
    return 2;
  }
  struct lk_engine *e;
  struct lk_messages msgs = {0};
  if (lk_engine_new(set, NULL, &e, &msgs) < 0) {
    ds_free(schemas);
    return 1;
  }
  for (size_t i = 0; i < msgs.n; i++)
    fprintf(stderr, "%s/%s\n", dir, msgs.v[i]);
  lk_messages_free(&msgs);

  int rc = 0;
  struct lk_memsource *ms = lk_memsource_new();
  json_t *obs = json_array(), *children = json_array(), *statuses = json_array();
  struct input *inputs = NULL;
  size_t ninputs = 0;
  for (size_t i = 0; i < e->ncontrollers; i++)
    for (size_t k = 0; k < e->controllers[i].nkinds; k++)
      lk_memsource_declare(ms, e->controllers[i].kinds[k].api_version,
                           e->controllers[i].kinds[k].kind);
  for (size_t i = 0; i < nwithout; i++)
    if (lk_memsource_without(ms, without[i]) != 0) {
      fprintf(stderr, "schedsim-operator render: --without-kind %s: expected apiVersion/Kind\n",
              without[i]);
      rc = 2;
    }
  for (size_t i = 0; rc == 0 && i < nobserved; i++)
    if (load_observed(observed[i], obs) != 0) rc = 2;
  size_t k;
  json_t *o;
  json_array_foreach(obs, k, o)
  {
    if (rc == 0 && lk_memsource_add(ms, o, err, sizeof(err)) != 0) {
      fprintf(stderr, "schedsim-operator render: --observed: object %zu: %s\n", k, err);
      rc = 2;
    }
  }
  /* -f: files, "-" (stdin) and directories (recursively) */
  struct cr_file *paths = NULL;
  size_t npaths = 0;
  if (rc == 0 && cr_expand_files("schedsim-operator render", (char *const *)files, nfiles, &paths,
                                 &npaths) != 0)
    rc = 2;
  for (size_t f = 0; rc == 0 && f < npaths; f++) {
    json_t *docs = json_array();
    if (cr_load_docs("schedsim-operator render", paths[f].path, docs) != 0) rc = 2;
    json_t *d;
    json_array_foreach(docs, k, d)
    {
      if (rc) break;
      if (cr_skip_foreign("schedsim-operator render", e, &paths[f], k + 1, d)) continue;
      const struct lk_controller_decl *ctl =
          cr_check("schedsim-operator render", e, paths[f].name, k + 1, d);
      if (!ctl) {
        rc = 2;
        break;
      }
      if (ds_check(schemas, d, err, sizeof(err)) != 0) {
        fprintf(stderr, "schedsim-operator render: %s: document %zu: %s\n", paths[f].name, k + 1,
                err);
        rc = 2;
        break;
      }
      json_t *cr = json_deep_copy(d);
      json_t *md = json_object_get(cr, "metadata");
      if (!json_object_get(md, "namespace"))
        json_object_set_new(md, "namespace", json_string("default"));
      if (!json_is_integer(json_object_get(md, "generation")))
        json_object_set_new(md, "generation", json_integer(1));
      struct input *ni = realloc(inputs, (ninputs + 1) * sizeof(*ni));
      if (!ni) {
        json_decref(cr);
        rc = 1;
        break;
      }
      inputs = ni;
      inputs[ninputs++] = (struct input){paths[f].name, k + 1, cr, ctl};
      if (lk_memsource_add(ms, cr, err, sizeof(err)) != 0) {
        fprintf(stderr, "schedsim-operator render: %s: document %zu: %s\n", paths[f].name, k + 1,
                err);
        rc = 2;
      }
    }
    json_decref(docs);
  }

  for (size_t i = 0; rc != 2 && i < ninputs; i++) {
    struct input *in = &inputs[i];
    struct lk_reconcile_in ri = {.controller = in->c,
                                 .cr = in->cr,
                                 .cache = lk_memsource_cache(ms),
                                 .discovery = lk_memsource_discovery(ms),
                                 .now = now,
                                 /* offline: no Namespace labels to read */
                                 .grants = LK_GRANTS_ALL};
    struct lk_result r;
    int st = lk_engine_reconcile(e, &ri, &r);
    const json_t *md = json_object_get(in->cr, "metadata");
    if (st != 0) {
      fprintf(stderr, "schedsim-operator render: %s: %s %s/%s: %s\n", in->file,
              cr_sget(in->cr, "kind"), cr_sget(md, "namespace"), cr_sget(md, "name"),
              r.err.message ? r.err.message : "reconcile failed");
      if (r.err.kind == LK_ERR_TERMINAL)
        rc = 2;
      else if (rc == 0)
        rc = 1;
    }
    for (size_t j = 0; j < r.nchildren; j++)
      json_array_append(children, r.children[j].obj);
    json_array_append_new(statuses,
                          json_pack("{s:s, s:s, s:{s:s, s:s}, s:O}", "apiVersion",
                                    cr_sget(in->cr, "apiVersion"), "kind", cr_sget(in->cr, "kind"),
                                    "metadata", "name", cr_sget(md, "name"), "namespace",
                                    cr_sget(md, "namespace"), "status", r.status));
    lk_result_free(&r);
  }

  if (rc != 2) {
    size_t n = json_array_size(children);
    json_t **v = calloc(n + 1, sizeof(*v));
    for (size_t i = 0; i < n; i++)
      v[i] = json_array_get(children, i);
    if (n > 1) qsort(v, n, sizeof(*v), cmp_children);
    json_t *all = json_array();
    for (size_t i = 0; i < n; i++)
      json_array_append(all, v[i]);
    free(v);
    json_array_extend(all, statuses);
    char *text;
    if (!strcmp(output, "json")) {
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
  for (size_t i = 0; i < ninputs; i++)
    json_decref(inputs[i].cr);
  free(inputs);
  cr_free_files(paths, npaths);
  json_decref(obs);
  json_decref(children);
  json_decref(statuses);
  lk_memsource_free(ms);
  lk_engine_free(e);
  ds_free(schemas);
  return rc;
}
