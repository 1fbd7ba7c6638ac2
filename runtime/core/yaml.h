/* yaml.h: YAML (libyaml) <-> jansson values, with Kubernetes' scalar rules.
 *
 * Loading resolves plain scalars like sigs.k8s.io/yaml with the YAML 1.2 core
 * schema: true/True/TRUE/false/..., null/Null/NULL/~/empty -> null, decimal
 * integers (with sign; 0x.. and 0o.. too) -> integers (beyond int64 -> real),
 * floats (1.5, .5, 1e3, -2.0E-3) -> reals; everything else, every quoted or
 * block scalar, and plain numbers with leading zeros ("0123") -> strings.
 * yes/no/on/off/y/n stay strings (booleans with K8S_YAML_11_BOOLS, below). Explicit tags !!str
 * !!int !!float !!bool
 * !!null are honoured. Anchors, aliases and merge keys (<<) are supported;
 * mapping keys that are scalars become their text; non-scalar keys, duplicate
 * keys, .inf/.nan and alias bombs are errors.
 *
 * Ownership: k8s_yaml_load returns a new reference (json_decref it); the dump
 * functions return malloc'd text (free it). Inputs are borrowed. */
#ifndef K8S_CORE_YAML_H
#define K8S_CORE_YAML_H

#include <stddef.h>
#include <jansson.h>

/* Parses a YAML stream of one or more documents ("---" separated) and returns
 * a JSON array with one element per non-empty document (a document that is
 * empty or just null is skipped, as kubectl does). On error returns NULL with
 * "filename:line:column: problem" in err (1-based line and column; filename
 * may be NULL, then "<input>" is used). */
json_t *k8s_yaml_load(const char *text, size_t len, const char *filename, char *err, size_t errlen);

/* K8S_YAML_11_BOOLS: plain (unquoted, untagged) values y, Y, yes, Yes, YES,
 * on, On, ON load as true and n, N, no, No, NO, off, Off, OFF as false, as
 * kubectl reads a manifest (sigs.k8s.io/yaml on go-yaml v2, YAML 1.1);
 * mapping keys keep their text. For user manifests (render, diff -f). */
#define K8S_YAML_11_BOOLS 1u
/* k8s_yaml_load with flags (K8S_YAML_*; 0 is k8s_yaml_load). */
json_t *k8s_yaml_load_flags(const char *text, size_t len, const char *filename, unsigned flags,
                            char *err, size_t errlen);

/* YAML text for one value: block style, keys in byte order, empty arrays and
 * objects as [] and {}, strings double-quoted when plain text would resolve
 * to something else (or is ambiguous under YAML 1.1: yes/no/on/off, 0123),
 * multi-line strings as literal blocks (|) when YAML allows. Ends with "\n".
 * Returns malloc'd text (length in *len when len != NULL), NULL on failure. */
char *k8s_yaml_dump(const json_t *v);
char *k8s_yaml_dumpn(const json_t *v, size_t *len);

/* A multi-document stream for a JSON array of documents: each document is
 * preceded by "---\n". An empty array gives "". NULL when docs is not an
 * array. */
char *k8s_yaml_dump_stream(const json_t *docs, size_t *len);

#endif
