/* cmd_common.h: the setup the offline commands share (render, diff, check):
 * finding and loading the script set (--scripts DIR, default the scripts
 * installed beside the binary) and starting the engine on it, with the same
 * messages and the same exit codes in each command. Reading the CR files of
 * -f is crinput.h's (cr_read_inputs). */
#ifndef SCHEDSIM_CMD_COMMON_H
#define SCHEDSIM_CMD_COMMON_H

#include <stddef.h>

#include "lua/engine.h"
#include "lua/scriptset.h"

/* Loads the script set of --scripts dir; dir NULL: the scripts installed
 * beside the binary (lk_scriptset_default_dir), written into buf (buflen
 * bytes, PATH_MAX is enough). On success *set is the caller's (free it with
 * lk_scriptset_free, or hand it to lk_engine_new, which takes it) and
 * *dir_out the directory used (dir, or buf). Returns 0, or -1 after printing
 * on stderr "<prog>: no scripts beside the binary; use --scripts DIR", or
 * the loader's "file: message" (unreadable directory or module): prefixed
 * "<prog>: ", or bare when bare is 1 (check, whose output is file: lines).
 * Every failure is a usage or input error: the command exits 2. */
int cmd_scripts_load(const char *prog, const char *dir, int bare, char *buf, size_t buflen,
                     const char **dir_out, struct lk_scriptset **set);

/* cmd_scripts_load with an overlay applied (lk_scriptset_load: module keys
 * and "<folder>.fixtures.<name>.yaml" fixture files; origin names it in
 * messages, e.g. "configmap"). ov may be NULL when nov is 0; it is copied. */
int cmd_scripts_load_overlay(const char *prog, const char *dir, int bare,
                             const struct lk_overlay_entry *ov, size_t nov, const char *origin,
                             char *buf, size_t buflen, const char **dir_out,
                             struct lk_scriptset **set);

/* Starts the engine on set with the default sandbox settings; the engine
 * takes set, also on failure (lk_engine_new). The script set's problems
 * (a module that does not compile, a bad controllers.lua) are printed on
 * stderr, one "<dir>/<message>" line each, and do not fail the call: the
 * engine still starts, and cr_check refuses the CRs of a controller that did
 * not load. Returns 0 with *e the caller's (lk_engine_free), or -1 on
 * allocation failure (*e NULL, nothing printed). */
int cmd_engine_new(const char *dir, struct lk_scriptset *set, struct lk_engine **e);

#endif
