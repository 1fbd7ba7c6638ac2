/* crinput.h: reading CR files for the offline commands (render, diff).
 * Both commands take `-f FILE` documents (`-f -` reads stdin, `-f DIR` every
 * .yaml/.yml/.json file below DIR), read them as kubectl does (YAML 1.1
 * booleans: enabled: yes is true), expand `kind: List`, and check each
 * document names a kind some controller in controllers.lua reconciles.
 * cr_read_inputs is the whole of it; the other functions are its steps. */
#ifndef SCHEDSIM_CMD_CRINPUT_H
#define SCHEDSIM_CMD_CRINPUT_H

#include <stddef.h>

#include <jansson.h>

#include "lua/engine.h"

/* Returns the string member k of object o, or "" (never NULL; borrowed). */
const char *cr_sget(const json_t *o, const char *k);

/* Loads the YAML/JSON documents of path ("-": standard input, read once per
 * process; error messages name it "<stdin>") into the array out (List
 * documents expanded into their items; out gains new references), with YAML
 * 1.1 booleans (K8S_YAML_11_BOOLS). Returns 0, or -1 after printing
 * "<prog>: file:line:col: error" to stderr. */
int cr_load_docs(const char *prog, const char *path, json_t *out);

/* One input file of -f: path to read ("-" for stdin), name for messages
 * ("<stdin>" for stdin), in_dir when it was found in a -f directory. */
struct cr_file {
  char *path;
  const char *name;
  int in_dir;
};

/* Expands -f arguments into files: "-" stays; a directory becomes every
 * regular .yaml, .yml and .json file below it, recursively, sorted by path
 * (hidden entries skipped, as kubectl -R); a file stays. *files is a
 * malloc'd array (free with cr_free_files). Returns 0, or -1 after printing
 * "<prog>: PATH: problem" (missing path, a directory with no such file, "-"
 * given twice, out of memory). */
int cr_expand_files(const char *prog, char *const *args, size_t nargs, struct cr_file **files,
                    size_t *nfiles);
void cr_free_files(struct cr_file *files, size_t nfiles);

/* 1 when document d of a file found in a -f directory is of a kind no
 * controller of e reconciles (a Namespace, a ConfigMap beside the CRs):
 * render and diff skip it with a note on stderr, as a directory holds more
 * than CRs; given as a file, such a document stays an error (cr_check). */
int cr_skip_foreign(const char *prog, struct lk_engine *e, const struct cr_file *f, size_t doc,
                    const json_t *d);

/* Checks document number doc (1-based) of file is a CR some controller of e
 * reconciles: a mapping with apiVersion, kind, metadata.name and a string
 * metadata.namespace if any. Returns that controller (borrowed from e), or
 * NULL after printing "<prog>: file: document N: field: problem" (an unknown
 * kind lists the known ones). */
const struct lk_controller_decl *cr_check(const char *prog, struct lk_engine *e, const char *file,
                                          size_t doc, const json_t *cr);

/* Called by cr_read_inputs for each checked CR: document doc (1-based) of
 * file f, d the document as read (borrowed for the call: deep-copy what is
 * kept), c its controller (borrowed from the engine). f lives until
 * cr_free_files, so f->name may be kept. Returns 0 to go on, or a nonzero
 * code (the command's exit code) that stops the reading. */
typedef int (*cr_input_fn)(void *ud, const struct cr_file *f, size_t doc, const json_t *d,
                           const struct lk_controller_decl *c);

/* Reads the CRs of the -f arguments args: expands them (cr_expand_files),
 * loads each file's documents in order (cr_load_docs), skips documents of
 * foreign kinds found in directories (cr_skip_foreign), checks each
 * (cr_check) and calls fn(ud, ...) for each CR. *files and *nfiles receive
 * the expanded files (NULL, 0 when the expansion failed); the caller frees
 * them with cr_free_files, also after an error. Returns 0; -1 after a
 * message naming the file, document and field (an input error, exit 2); or
 * fn's nonzero return, which stopped the reading. */
int cr_read_inputs(const char *prog, struct lk_engine *e, char *const *args, size_t nargs,
                   struct cr_file **files, size_t *nfiles, cr_input_fn fn, void *ud);

#endif
