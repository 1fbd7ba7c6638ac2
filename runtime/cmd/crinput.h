/* crinput.h: reading CR files for the offline commands (render, diff).
 * Both commands take `-f FILE` documents, expand `kind: List`, and check each
 * document names a kind some controller in controllers.lua reconciles. */
#ifndef SCHEDSIM_CMD_CRINPUT_H
#define SCHEDSIM_CMD_CRINPUT_H

#include <stddef.h>

#include <jansson.h>

#include "lua/engine.h"

/* Returns the string member k of object o, or "" (never NULL; borrowed). */
const char *cr_sget(const json_t *o, const char *k);

/* Loads the YAML/JSON documents of path into the array out (List documents
 * expanded into their items; out gains new references). Returns 0, or -1
 * after printing "<prog>: file:line:col: error" to stderr. */
int cr_load_docs(const char *prog, const char *path, json_t *out);

/* Checks document number doc (1-based) of file is a CR some controller of e
 * reconciles: a mapping with apiVersion, kind, metadata.name and a string
 * metadata.namespace if any. Returns that controller (borrowed from e), or
 * NULL after printing "<prog>: file: document N: field: problem" (an unknown
 * kind lists the known ones). */
const struct lk_controller_decl *cr_check(const char *prog, struct lk_engine *e, const char *file,
                                          size_t doc, const json_t *cr);

#endif
