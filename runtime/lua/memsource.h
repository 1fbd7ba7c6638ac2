/* memsource.h: the in-memory cache and discovery sources (context.h) used
 * by fixture cases, `render --observed` and k8sengine: a Store per
 * apiVersion+kind filled from JSON objects, and a discovery that serves
 * every kind except the ones marked "without" (a fixture's without_kinds,
 * render's --without-kind).
 *
 * versions(group, kind) answers from the kinds the source knows (declared
 * with lk_memsource_declare or seen in added objects), in the order they
 * were first seen. namespaced() knows the common cluster-scoped kinds and
 * says "namespaced" for everything else.
 *
 * Ownership: the source owns its stores; added objects are copied (borrowed
 * inputs). The vtables point into the source: valid until lk_memsource_free. */
#ifndef SCHEDSIM_LUA_MEMSOURCE_H
#define SCHEDSIM_LUA_MEMSOURCE_H

#include <stddef.h>

#include <jansson.h>

#include "lua/context.h"

struct lk_memsource;

struct lk_memsource *lk_memsource_new(void);
void lk_memsource_free(struct lk_memsource *m);

/* Adds (or replaces) obj, which needs apiVersion, kind and metadata.name.
 * Returns 0, or -1 with err ("<what is missing>"). */
int lk_memsource_add(struct lk_memsource *m, const json_t *obj, char *err, size_t errlen);
/* Makes apiVersion+kind known (for versions()) without adding objects. */
void lk_memsource_declare(struct lk_memsource *m, const char *api_version, const char *kind);
/* Marks a kind as not served. spec is "apiVersion/Kind" ("v1/Service",
 * "networking.istio.io/v1/DestinationRule"). Returns 0, or -1 when spec is
 * not of that form. */
int lk_memsource_without(struct lk_memsource *m, const char *spec);

const struct lk_cache_source *lk_memsource_cache(struct lk_memsource *m);
const struct lk_discovery_source *lk_memsource_discovery(struct lk_memsource *m);

#endif
