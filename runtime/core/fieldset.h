/* fieldset.h: server-side apply's field sets (metadata.managedFields[].fieldsV1)
 * read the way the API server writes them, for drift detection: does the set
 * of fields a field manager owns on a live object still cover every field of
 * the object that manager wants to apply?
 *
 * The format (Kubernetes "Server-Side Apply", structured-merge-diff's
 * fieldpath serialisation): a JSON object whose keys are path elements and
 * whose values are the children of that element —
 *   "f:<name>"        a field of a map (struct or map value);
 *   "k:<json object>" an element of an associative list, by its key fields
 *                     (e.g. k:{"name":"epp"} for containers,
 *                     k:{"containerPort":8200,"protocol":"TCP"} for ports);
 *   "v:<json value>"  an element of a set list (scalar values);
 *   "i:<index>"       an element by position (rare);
 *   "."               the element itself.
 * A field whose value is an atomic list or map is a leaf ({}): whoever owns
 * the field owns the whole value.
 *
 * Why ownership and not values: when another writer changes a field this
 * manager applied (kubectl edit/scale/replace, another controller's update, a
 * forced apply), the API server moves that field's ownership to the writer,
 * so the field disappears from this manager's set; server-side defaulting and
 * normalisation (quantities, defaults inside list elements) do not. Comparing
 * ownership therefore sees drift without false positives from normalisation.
 *
 * Pure functions; inputs are borrowed. */
#ifndef K8S_CORE_FIELDSET_H
#define K8S_CORE_FIELDSET_H

#include <stddef.h>

#include <jansson.h>

/* 1 when fields (a fieldsV1 object) covers every field of obj, the object as
 * it would be applied; 0 when a field is not covered, with its path written
 * to path (e.g. "spec.replicas", "spec.template.spec.containers[name=epp].image"),
 * truncated to pathlen. Not compared: apiVersion, kind, metadata.name,
 * metadata.namespace, status, and JSON null values (a null in an applied
 * object removes the field). An element of a list matches a "k:" entry when
 * every key field the entry names either equals the element's value or is
 * absent from the element (the server defaulted it, e.g. a port's protocol).
 * obj or fields that are not objects give 0 with path "(root)". */
int k8s_fieldset_covers(const json_t *obj, const json_t *fields, char *path, size_t pathlen);

/* The same with fields as struct k8s_object.managed keeps them: fieldsV1
 * JSON text, or packed by the store (core/store.h, k8s_managed_text; valid
 * as long as its object). Text that does not parse or unpack gives 0 with
 * path "(unreadable field set)". */
int k8s_fieldset_covers_text(const json_t *obj, const char *fields, size_t len, char *path,
                             size_t pathlen);

#endif
