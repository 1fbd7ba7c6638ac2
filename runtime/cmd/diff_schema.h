/* diff_schema.h: a light offline check of CRs against the structural schema
 * (openAPIV3Schema) of their CRD, for `render` (diff has the API server for
 * that). What is checked, at every level below the root (metadata excepted:
 * the API server owns it):
 *   - types: object, array, string, integer (an integral real passes),
 *     number, boolean; x-kubernetes-int-or-string; null passes (the server
 *     drops it);
 *   - fields not declared (properties, additionalProperties,
 *     x-kubernetes-preserve-unknown-fields), as kubectl's strict validation;
 *   - enum, minimum and maximum.
 * Not checked: patterns, lengths, item counts, formats, CEL rules.
 *
 * Ownership: the schemas own the loaded CRDs; inputs are borrowed. */
#ifndef SCHEDSIM_CMD_DIFF_SCHEMA_H
#define SCHEDSIM_CMD_DIFF_SCHEMA_H

#include <stddef.h>

#include <jansson.h>

struct ds_schemas;

/* Loads every CustomResourceDefinition of the .yaml/.yml/.json files of dir
 * (other documents are skipped). Returns NULL with "file:line:col: message"
 * in err when a file cannot be read or parsed. */
struct ds_schemas *ds_load_dir(const char *dir, char *err, size_t errlen);
void ds_free(struct ds_schemas *s);

/* Checks obj against the schema of its apiVersion and kind. Returns 0 when
 * it passes or no CRD defines the kind, -1 with "field.path: problem" in err. */
int ds_check(const struct ds_schemas *s, const json_t *obj, char *err, size_t errlen);

#endif
