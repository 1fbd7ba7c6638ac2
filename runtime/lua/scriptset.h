/* scriptset.h: a script set (doc/architecture.md, "The script set"): the Lua
 * modules of a directory, optionally overlaid by a map of module name ->
 * source (a ConfigMap), its fixture files, and its content hash.
 *
 * Module names map to paths the usual Lua way: module "a.b" is file "a/b.lua"
 * (and "a/init.lua" is also module "a"). In a ConfigMap the key is the module
 * name plus ".lua": key "schedulerinstall.routing.lua" is module
 * "schedulerinstall.routing". Name components are [A-Za-z0-9_-]+. The loader
 * skips "_meta/" (LuaCATS stubs) and hidden entries, and collects
 * "<folder>/fixtures/<case>.yaml" as fixture files.
 *
 * An overlay key "<folder>.fixtures.<name>.yaml" (or .yml) is a fixture file,
 * not a module: it stands for "<folder>/fixtures/<name>.yaml", replacing the
 * directory's file of that path or adding one (doc/hot-reload.md, "Fixtures
 * in the overlay"). Its cases run with the directory's (input_path is
 * relative to "<dir>/<folder>/fixtures").
 *
 * Contract fixtures: "<folder>/fixtures/contract/<name>.yaml" files hold the
 * cases no policy may change (security containment, ownership, status
 * honesty, input validation). They run against every overlay: a key that
 * would replace one ("<folder>.fixtures.<name>.yaml" with the same <name>, or
 * a key naming the contract folder) makes lk_scriptset_load fail naming the
 * key (doc/hot-reload.md, "Contract fixtures").
 *
 * The revision ("sha256:<hex>") hashes every module of the effective set
 * (after the overlay) in name order: name, NUL, source length, NUL, source.
 * Fixtures are not part of it: they do not change what a reconcile does.
 *
 * Ownership: lk_scriptset_load returns an owned set (lk_scriptset_free);
 * everything it points to belongs to it. Overlay inputs are copied. */
#ifndef SCHEDSIM_LUA_SCRIPTSET_H
#define SCHEDSIM_LUA_SCRIPTSET_H

#include <stddef.h>

/* The subfolder of "<folder>/fixtures" that holds the contract fixture files. */
#define LK_CONTRACT_DIR "contract"

struct lk_module {
  char *name;   /* "simulatordeployment.reconcile" */
  char *path;   /* chunk name: "simulatordeployment/reconcile.lua", or the
                   overlay origin, e.g. "configmap:schedulerinstall.routing.lua" */
  char *source; /* NUL-terminated */
  size_t len;
  int overlay; /* came from the overlay */
};

struct lk_overlay_entry {
  const char *key;    /* "a.b.lua" or "a.b" */
  const char *source; /* borrowed */
  size_t len;
};

/* A fixture file from the overlay. */
struct lk_overlay_fixture {
  char *rel;    /* "schedulerinstall/fixtures/route-by-label.yaml" */
  char *origin; /* chunk-style name: "configmap:schedulerinstall.fixtures.route-by-label.yaml" */
  char *text;   /* NUL-terminated */
  size_t len;
};

struct lk_scriptset {
  char *dir;              /* absolute or as given; NULL for an overlay-only set */
  struct lk_module *mods; /* sorted by name */
  size_t nmods;
  char **fixtures; /* paths relative to dir, sorted; without those the overlay replaces */
  size_t nfixtures;
  struct lk_overlay_fixture *ofixtures; /* from the overlay, in key order */
  size_t nofixtures;
  size_t nreplaced;  /* directory fixture files an overlay fixture replaced */
  char revision[80]; /* "sha256:<64 hex>" */
  size_t bytes;      /* total source bytes */
};

/* Loads dir (may be NULL: overlay only) and applies the overlay (origin
 * names the overlay in chunk names, e.g. "configmap:ns/name"; may be NULL).
 * Returns 0, or -1 with "file: message" in err (unreadable directory or file,
 * invalid module file name, invalid overlay key, an overlay key that would
 * replace a contract fixture file). */
int lk_scriptset_load(const char *dir, const struct lk_overlay_entry *overlay, size_t noverlay,
                      const char *origin, struct lk_scriptset **out, char *err, size_t errlen);
void lk_scriptset_free(struct lk_scriptset *set);

/* The module named name (or name.init), or NULL. */
const struct lk_module *lk_scriptset_find(const struct lk_scriptset *set, const char *name);

/* Fixture path for a ConfigMap key: "<folder>.fixtures.<name>.yaml" (or
 * .yml) -> "<folder>/fixtures/<name>.yaml". Returns 0, or -1 when the key is
 * not of that shape (components [A-Za-z0-9_-]+). */
int lk_fixture_path_from_key(const char *key, char *out, size_t outlen);

/* Module name for a ConfigMap key: "a.b.lua" -> "a.b". Returns 0, or -1 when
 * the key is not "<name>.lua" with valid components. */
int lk_module_name_from_key(const char *key, char *out, size_t outlen);

/* The bundled scripts directory: "<dir of the binary>/scripts" when it holds
 * controllers.lua, else "<dir of the binary>/../share/schedsim-operator/scripts".
 * Writes buf and returns it, or NULL when neither exists. */
const char *lk_scriptset_default_dir(char *buf, size_t buflen);

#endif
