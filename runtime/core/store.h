/* store.h: the Store / Indexer of one informer (client-go vocabulary): key ->
 * cached object, plus named indexes.
 *
 * Keys are "namespace/name", or "name" for cluster-scoped objects. Each cached
 * object is a read-only `struct k8s_object` in a single allocation: the compact
 * JSON text of the object (metadata.managedFields removed; packed, see
 * K8S_STORE_PACK_MIN), the few fields the runtime indexes and, when the store
 * has a field manager, the field set that manager applied (drift detection;
 * packed the same way). Label keys, owner apiVersions and kinds are interned
 * per store.
 * Where the bytes of a cached object go: doc/architecture.md ("Memory per
 * cached object").
 *
 * Indexes (IndexFunc name -> value -> keys):
 *   "namespace"     built in: metadata.namespace ("" for cluster-scoped)
 *   "owner-uid"     built in: every metadata.ownerReferences[].uid
 *   "label:<key>"   created on demand (first by_index/add_index call): the
 *                   value of label <key>; objects without it are not indexed
 *   any other name  through k8s_store_add_indexer with an index function
 *
 * Ownership: the store owns every k8s_object; pointers it hands out are
 * borrowed and stay valid until the next mutation of the store (upsert,
 * delete, replace, free) — copy what must outlive that. Handler callbacks run
 * during the mutation, after the store changed and before the old object is
 * freed. Arrays returned by list functions are malloc'd; the caller frees the
 * array (not the objects) with free(). Input json_t are borrowed.
 * Not thread-safe: one event loop owns a store. */
#ifndef K8S_CORE_STORE_H
#define K8S_CORE_STORE_H

#include <stddef.h>
#include <jansson.h>
#include <lua.h>

struct k8s_label {
  const char *key;   /* interned by the store */
  const char *value; /* inside the object */
};

struct k8s_owner_ref {
  const char *api_version;
  const char *kind;
  const char *name;
  const char *uid;
  int controller; /* ownerReferences[].controller == true */
};

struct k8s_pack_dict; /* a store's preset dictionary (store.c) */

struct k8s_object {
  const char *key;              /* "ns/name" or "name" */
  const char *ns;               /* "" for cluster-scoped */
  const char *name;             /* metadata.name */
  const char *uid;              /* metadata.uid, "" when absent */
  const char *resource_version; /* metadata.resourceVersion, "" when absent */
  long long generation;         /* metadata.generation, 0 when absent */
  int deleting;                 /* metadata.deletionTimestamp is set */
  /* The compact JSON text, NUL-terminated, or NULL when the store keeps it
   * packed (raw deflate, K8S_STORE_PACK_MIN bytes and over): read it with
   * k8s_object_json. json_len is the text's length either way. */
  const char *json;
  size_t json_len;
  const unsigned char *packed; /* the packed text, or NULL */
  size_t packed_len;
  const struct k8s_pack_dict *dict; /* the dictionary it was packed against, or NULL */
  const struct k8s_label *labels;   /* sorted by key (byte order) */
  size_t nlabels;
  const struct k8s_owner_ref *owners; /* in ownerReferences order */
  size_t nowners;
  /* The fields the store's field manager owns (k8s_store_set_field_manager):
   * the compact JSON of metadata.managedFields[].fieldsV1 of its "Apply"
   * entry on the main resource (server-side apply's field set: "f:<field>",
   * "k:<key json>", "v:<value json>", "."), or NULL when the object has no
   * such entry or the store keeps none. Kept as the text (NUL-terminated,
   * managed_len its length) or packed like the object's text when that
   * gains (then managed[0] is 0, which no JSON text starts with, and
   * managed_len counts the packed bytes): read it with k8s_managed_text;
   * k8s_fieldset_covers_text takes either. */
  const char *managed;
  size_t managed_len;
};

/* Texts (objects' JSON, field sets) this long or longer are kept packed
 * with zlib's raw deflate at K8S_STORE_PACK_LEVEL against a preset
 * dictionary of the store (one for object texts, one for field sets) made
 * of typical texts: the first text of K8S_STORE_DICT_MIN bytes or more, and
 * later ones the dictionary did not help (packed to more than a quarter of
 * their length), at most K8S_STORE_DICT_SHAPES of them, within deflate's
 * 32 KiB window. Objects of one kind made by one script set differ mostly
 * in names, uids, versions and times: a Deployment's 3.3 KiB of text become
 * about 0.2 KiB (a third of the text without a dictionary), its 1.4 KiB
 * field set about 40 bytes. Texts that would not shrink stay as they are.
 * Figures: doc/architecture.md ("Memory per cached object"). */
#define K8S_STORE_PACK_MIN 64
#define K8S_STORE_DICT_MIN 256
#define K8S_STORE_DICT_SHAPES 8
#define K8S_STORE_PACK_LEVEL 9

/* The compact JSON text of o (NUL-terminated) and its length in *len: o->json,
 * or the packed text inflated into a buffer this returns in *scratch (owned
 * by the caller, who frees it; NULL when o->json was returned). NULL when
 * inflating failed (out of memory). */
const char *k8s_object_json(const struct k8s_object *o, size_t *len, char **scratch);

/* The field set `managed` (managed_len bytes, as struct k8s_object keeps
 * it: text or packed) as JSON text, its length in *len: managed itself, or
 * the unpacked text in a buffer this returns in *scratch (the caller frees
 * it; NULL when managed was returned). NULL when unpacking failed (out of
 * memory). A packed field set is valid as long as its object. */
const char *k8s_managed_text(const char *managed, size_t managed_len, size_t *len, char **scratch);

/* o's JSON as a new jansson value (the caller owns the reference), or NULL
 * with a message in err. */
json_t *k8s_object_parse(const struct k8s_object *o, char *err, size_t errlen);

/* Pushes o's JSON as a Lua value (k8s_json_push); 0, or -1 with a message in
 * err and nothing pushed. Raises no Lua error, so the caller may. */
int k8s_object_push(lua_State *L, const struct k8s_object *o, char *err, size_t errlen);

enum k8s_store_event {
  K8S_STORE_ADDED = 0,     /* old NULL, new set */
  K8S_STORE_UPDATED = 1,   /* old and new set (resourceVersion changed) */
  K8S_STORE_UNCHANGED = 2, /* same resourceVersion: store kept old; old == new */
  K8S_STORE_DELETED = 3    /* old set, new NULL */
};

/* Called once per change; `old`/`new_obj` are borrowed for the call only.
 * The handler must not mutate the store. */
typedef void (*k8s_store_handler)(void *ud, enum k8s_store_event ev, const struct k8s_object *old,
                                  const struct k8s_object *new_obj);

/* An index function: writes up to `max` values for obj into values[] and
 * returns how many it would write (values beyond max are dropped). The value
 * strings are borrowed for the call (point into obj or static storage). */
typedef size_t (*k8s_index_func)(const struct k8s_object *obj, const char **values, size_t max,
                                 void *ud);

struct k8s_store_stats {
  size_t objects;      /* number of cached objects */
  size_t object_bytes; /* bytes held by the objects (malloc_usable_size) */
  size_t index_bytes;  /* bytes of the key map, indexes and interned strings
                        * (label keys, owner apiVersions and kinds) */
  size_t json_bytes;   /* sum of json_len */
  size_t packed_bytes; /* what the texts take as kept (packed or not) */
  size_t dict_bytes;   /* the preset dictionaries alive (current or kept by
                        * objects packed against an older one) */
};

/* Returns a new empty store (NULL on malloc failure); free with k8s_store_free. */
struct k8s_store *k8s_store_new(void);

/* Frees the store, its objects and indexes. NULL is a no-op. */
void k8s_store_free(struct k8s_store *s);

/* When set, every stored object carries these apiVersion and kind (list
 * responses omit them on items). Strings are copied. Call before inserting. */
int k8s_store_set_kind(struct k8s_store *s, const char *api_version, const char *kind);

/* Keeps, for every object stored from now on, the fields that manager owns
 * by server-side apply (struct k8s_object.managed); NULL keeps none (the
 * default). The name is copied. Returns 0 or -1 on malloc failure. */
int k8s_store_set_field_manager(struct k8s_store *s, const char *manager);

/* The key of a JSON object ("ns/name" / "name") into buf. Returns its length,
 * or -1 when metadata.name is missing/empty or buf is too small. */
int k8s_store_key_of(const json_t *obj, char *buf, size_t buflen);

/* Inserts or replaces the object `obj` (borrowed). Returns the event
 * (ADDED/UPDATED/UNCHANGED) after calling cb (when non-NULL), or -1 with err
 * (not an object, missing metadata.name, malloc failure); the store is then
 * unchanged and cb not called. */
int k8s_store_upsert(struct k8s_store *s, const json_t *obj, k8s_store_handler cb, void *ud,
                     char *err, size_t errlen);

/* Removes `key`. Returns 1 after calling cb(DELETED, old, NULL), or 0 when
 * the key is absent (cb not called). */
int k8s_store_delete(struct k8s_store *s, const char *key, k8s_store_handler cb, void *ud);

/* Relist: upserts every element of the JSON array `items` (events as for
 * upsert), then deletes every cached key not among them (DELETED events).
 * Invalid items are skipped; returns the number skipped (first error in err),
 * or -1 when `items` is not an array (store unchanged). */
int k8s_store_replace(struct k8s_store *s, const json_t *items, k8s_store_handler cb, void *ud,
                      char *err, size_t errlen);

/* Borrowed object for key, or NULL. */
const struct k8s_object *k8s_store_get(const struct k8s_store *s, const char *key);

/* Number of cached objects. */
size_t k8s_store_len(const struct k8s_store *s);

/* All objects (ns NULL) or those of one namespace ("" = cluster-scoped),
 * sorted by (namespace, name). *out is a malloc'd array of borrowed pointers
 * (NULL when the result is empty). Returns the count, or (size_t)-1 on
 * malloc failure. */
size_t k8s_store_list(const struct k8s_store *s, const char *ns, const struct k8s_object ***out);

/* Like list, keeping objects whose labels contain every sel[i].key with value
 * sel[i].value (equality-based selector; nsel 0 matches all). Uses a
 * "label:<key>" index when one exists. */
size_t k8s_store_select(const struct k8s_store *s, const char *ns, const struct k8s_label *sel,
                        size_t nsel, const struct k8s_object ***out);

/* Objects whose index `name` has `value`, sorted by (namespace, name).
 * "label:<key>" indexes are created on first use. Returns (size_t)-1 for an
 * unknown index name or malloc failure. */
size_t k8s_store_by_index(struct k8s_store *s, const char *name, const char *value,
                          const struct k8s_object ***out);

/* Creates index `name` now ("label:<key>" only; others need add_indexer).
 * Returns 0 (also when it exists) or -1. */
int k8s_store_add_index(struct k8s_store *s, const char *name);

/* Registers a custom index and indexes the cached objects. Returns 0, or -1
 * when the name is taken or on malloc failure. */
int k8s_store_add_indexer(struct k8s_store *s, const char *name, k8s_index_func fn, void *ud);

/* Value of label `key` on obj, or NULL. */
const char *k8s_object_label(const struct k8s_object *obj, const char *key);

/* The controller owner reference of obj (controller == true), or NULL. */
const struct k8s_owner_ref *k8s_object_controller(const struct k8s_object *obj);

/* Memory figures (see struct). */
void k8s_store_stats(const struct k8s_store *s, struct k8s_store_stats *st);

#endif
