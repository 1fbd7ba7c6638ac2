/* store.c: the Store / Indexer (store.h). Owns every cached object (one
 * allocation each: the struct, its label and owner arrays, its strings and
 * its compact JSON text), the key map, the named indexes and the interned
 * label keys and field sets, and the store's preset dictionary. Objects die
 * in exactly one place: free_object(), called when a newer version replaced
 * them, when they are deleted, or with the store. Texts of K8S_STORE_PACK_MIN
 * bytes and more are kept deflated (raw deflate, against the store's preset
 * dictionary once it has one). Depends on jansson, json.c's compact writer,
 * strmap.c and zlib. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "json.h"
#include "store.h"
#include "strmap.h"
#include "util.h"

#define LABEL_PREFIX "label:"
#define INDEX_VALUES_MAX 64 /* values per object and index before a heap array */

struct intern {
  size_t refs;
  char str[]; /* the interned label key, owner apiVersion or kind */
};

/* A preset dictionary texts are packed against (zlib's deflateSetDictionary):
 * typical texts of the store, so that the rest of a text becomes
 * back-references into it. Objects of one kind made by one script set
 * differ mostly in names, uids, versions and times. Reference-counted: the
 * packer holds one reference while the dictionary is current, every object
 * packed against it one (free_object drops it). */
struct k8s_pack_dict {
  size_t refs;
  size_t len;
  unsigned char data[];
};

/* What packs one sort of text of a store (object texts, field sets): its
 * current dictionary and how often it learned a new shape. */
struct packer {
  struct k8s_pack_dict *dict; /* NULL until a text of K8S_STORE_DICT_MIN bytes came */
  int learned;
};

/* Most owner-uid and owner-label buckets hold one object: it sits in `one`
 * and the member map stays unallocated until a second object arrives. */
struct bucket {
  const struct k8s_object *one; /* the only member, or NULL */
  struct k8s_strmap members;    /* object key -> object, when more than one */
  char value[];                 /* the index value */
};

struct index {
  struct index *next;
  char *name;
  k8s_index_func fn;
  void *ud;
  const char *label_key;     /* for "label:<key>": points into name */
  struct k8s_strmap buckets; /* value -> struct bucket */
};

struct k8s_store {
  struct k8s_strmap objects;  /* key -> struct k8s_object */
  struct k8s_strmap interned; /* label key -> struct intern */
  struct index *indexes;
  char *api_version, *kind; /* injected into stored objects when set */
  char *field_manager;      /* whose applied field set objects keep, or NULL */
  struct packer texts, field_sets;
  unsigned char *scratch; /* the packing buffer, kept between objects */
  size_t scratch_cap;
  size_t object_bytes, json_bytes, packed_bytes, dict_bytes;
};

/* {====================================================================
 * Interned label keys
 * ===================================================================== */

static const char *intern(struct k8s_store *s, const char *key)
{
  struct intern *in = k8s_strmap_get(&s->interned, key);
  if (!in) {
    size_t n = strlen(key);
    in = malloc(sizeof *in + n + 1);
    if (!in) return NULL;
    in->refs = 0;
    memcpy(in->str, key, n + 1);
    if (k8s_strmap_put(&s->interned, in->str, in) < 0) {
      free(in);
      return NULL;
    }
  }
  in->refs++;
  return in->str;
}

static void unintern(struct k8s_store *s, const char *key)
{
  struct intern *in = k8s_strmap_get(&s->interned, key);
  if (in && --in->refs == 0) {
    k8s_strmap_del(&s->interned, key);
    free(in);
  }
}

/* }==================================================================== */

/* {====================================================================
 * Objects: building one from JSON, and its single place of death
 * ===================================================================== */

static const char *str_or(const json_t *v, const char *dflt)
{
  return json_is_string(v) ? json_string_value(v) : dflt;
}

int k8s_store_key_of(const json_t *obj, char *buf, size_t buflen)
{
  const json_t *md = json_object_get(obj, "metadata");
  const char *name = str_or(json_object_get(md, "name"), "");
  const char *ns = str_or(json_object_get(md, "namespace"), "");
  if (!*name) return -1;
  int n = *ns ? snprintf(buf, buflen, "%s/%s", ns, name) : snprintf(buf, buflen, "%s", name);
  return n < 0 || (size_t)n >= buflen ? -1 : n;
}

/* The JSON text to store: managedFields removed, null object members left
 * out (K8S_JSON_OMIT_NULL: null means absent in API objects), apiVersion/kind
 * injected when the store has them. Shallow copies only; obj is not modified. */
static char *stored_text(const struct k8s_store *s, const json_t *obj, size_t *len)
{
  json_t *top = json_object();
  if (!top) return NULL;
  int rc = 0;
  if (s->api_version) {
    const json_t *av = json_object_get(obj, "apiVersion");
    const json_t *k = json_object_get(obj, "kind");
    rc |= json_object_set_new(
        top, "apiVersion",
        json_string(json_is_string(av) ? json_string_value(av) : s->api_version));
    rc |= json_object_set_new(top, "kind",
                              json_string(json_is_string(k) ? json_string_value(k) : s->kind));
  }
  for (void *it = json_object_iter((json_t *)obj); it && !rc;
       it = json_object_iter_next((json_t *)obj, it)) {
    const char *key = json_object_iter_key(it);
    json_t *v = json_object_iter_value(it);
    if (s->api_version && (!strcmp(key, "apiVersion") || !strcmp(key, "kind"))) continue;
    if (!strcmp(key, "metadata") && json_is_object(v) && json_object_get(v, "managedFields")) {
      json_t *md = json_copy(v); /* shallow */
      rc |= !md || json_object_del(md, "managedFields") < 0;
      rc |= json_object_set_new(top, key, md);
    } else {
      rc |= json_object_setn(top, key, json_object_iter_key_len(it), v);
    }
  }
  char *text = rc ? NULL : k8s_json_dump(top, K8S_JSON_OMIT_NULL, len);
  json_decref(top);
  return text;
}

/* The fieldsV1 text of manager's Apply entry on the main resource (no
 * subresource) in metadata.managedFields, malloc'd, or NULL (none, or manager
 * NULL). *len gets its length. */
static char *managed_text(const json_t *md, const char *manager, size_t *len)
{
  *len = 0;
  if (!manager) return NULL;
  size_t i;
  const json_t *e;
  json_array_foreach(json_object_get(md, "managedFields"), i, e)
  {
    const char *sub = str_or(json_object_get(e, "subresource"), "");
    if (strcmp(str_or(json_object_get(e, "manager"), ""), manager) ||
        strcmp(str_or(json_object_get(e, "operation"), ""), "Apply") || *sub)
      continue;
    const json_t *f = json_object_get(e, "fieldsV1");
    return json_is_object(f) ? k8s_json_dump(f, 0, len) : NULL;
  }
  return NULL;
}

static int label_cmp(const void *a, const void *b)
{
  return strcmp(((const struct k8s_label *)a)->key, ((const struct k8s_label *)b)->key);
}

/* Raw deflate (no zlib header or trailer: the length check on inflate
 * stands in for the checksum) with deflate's full 32 KiB window. Memory
 * level 6 (a 16 KiB hash table): the same sizes as the default 8 on cached
 * objects, and setting up the stream, which dominates for texts this
 * short, costs half as much CPU. */
#define PACK_WBITS (-15)
#define PACK_MEMLEVEL 6
#define DICT_MAX 32768

static void dict_unref(struct k8s_store *s, struct k8s_pack_dict *d)
{
  if (d && --d->refs == 0) {
    s->dict_bytes -= d->len;
    free(d);
  }
}

/* Deflates text (len bytes) against d (or none) into s->scratch from
 * offset off: the packed length, or 0 (no gain, or out of memory). */
static size_t deflate_into(struct k8s_store *s, size_t off, const struct k8s_pack_dict *d,
                           const char *text, size_t len)
{
  z_stream z = {0}; /* zlib's default allocator */
  if (deflateInit2(&z, K8S_STORE_PACK_LEVEL, Z_DEFLATED, PACK_WBITS, PACK_MEMLEVEL,
                   Z_DEFAULT_STRATEGY) != Z_OK)
    return 0;
  size_t n = 0, bound = off + deflateBound(&z, (uLong)len);
  if (bound > s->scratch_cap) {
    unsigned char *b = realloc(s->scratch, bound);
    if (!b) goto out;
    s->scratch = b;
    s->scratch_cap = bound;
  }
  if (d && deflateSetDictionary(&z, d->data, (uInt)d->len) != Z_OK) goto out;
  z.next_in = (Bytef *)text;
  z.avail_in = (uInt)len;
  z.next_out = s->scratch + off;
  z.avail_out = (uInt)(s->scratch_cap - off);
  if (deflate(&z, Z_FINISH) == Z_STREAM_END && z.total_out < len) n = z.total_out;
out:
  deflateEnd(&z);
  return n;
}

/* The packer learns the shape of text: its new dictionary is the old one
 * followed by text, cut to deflate's window (the last 32 KiB). Objects
 * packed against the old one keep it alive. 0, or -1 (out of memory: the
 * packer keeps its dictionary). */
static int learn(struct k8s_store *s, struct packer *p, const char *text, size_t len)
{
  size_t old = p->dict ? p->dict->len : 0;
  size_t n = old + len > DICT_MAX ? DICT_MAX : old + len;
  struct k8s_pack_dict *d = malloc(sizeof *d + n);
  if (!d) return -1;
  d->refs = 1;
  d->len = n;
  s->dict_bytes += n;
  size_t keep = n - (len < n ? len : n); /* bytes of the old dictionary kept */
  if (keep) memcpy(d->data, p->dict->data + old - keep, keep);
  memcpy(d->data + keep, text + len - (n - keep), n - keep);
  dict_unref(s, p->dict);
  p->dict = d;
  p->learned++;
  return 0;
}

/* Packs text (len bytes) into s->scratch from offset off when it is long
 * enough to gain: the packed length and, in *dict, the dictionary it was
 * packed against (NULL: none; the caller owns the reference), or 0 (keep
 * the text as it is). A text of
 * K8S_STORE_DICT_MIN bytes or more that the dictionary did not help (packed
 * to more than a quarter) teaches the packer its shape first, at most
 * K8S_STORE_DICT_SHAPES times per packer: a store of dissimilar objects
 * then packs them as it can without growing dictionaries. */
static size_t pack(struct k8s_store *s, size_t off, struct packer *p, const char *text, size_t len,
                   struct k8s_pack_dict **dict)
{
  *dict = NULL;
  if (len < K8S_STORE_PACK_MIN) return 0;
  size_t n = deflate_into(s, off, p->dict, text, len);
  if ((!n || n * 4 > len) && len >= K8S_STORE_DICT_MIN && p->learned < K8S_STORE_DICT_SHAPES &&
      learn(s, p, text, len) == 0)
    n = deflate_into(s, off, p->dict, text, len);
  if (n && p->dict) {
    p->dict->refs++;
    *dict = p->dict;
  }
  return n;
}

/* Inflates packed (packed_len bytes, raw deflate against d or none) into a
 * new NUL-terminated buffer of len bytes; NULL when it does not inflate to
 * exactly len bytes or on malloc failure. */
static char *unpack(const unsigned char *packed, size_t packed_len, const struct k8s_pack_dict *d,
                    size_t len)
{
  char *buf = malloc(len + 1);
  if (!buf) return NULL;
  z_stream z = {0};
  int ok = inflateInit2(&z, PACK_WBITS) == Z_OK;
  if (ok && d) ok = inflateSetDictionary(&z, d->data, (uInt)d->len) == Z_OK;
  if (ok) {
    z.next_in = (Bytef *)packed;
    z.avail_in = (uInt)packed_len;
    z.next_out = (Bytef *)buf;
    z.avail_out = (uInt)len;
    ok = inflate(&z, Z_FINISH) == Z_STREAM_END && z.total_out == len;
  }
  inflateEnd(&z);
  if (!ok) {
    free(buf);
    return NULL;
  }
  buf[len] = '\0';
  return buf;
}

const char *k8s_object_json(const struct k8s_object *o, size_t *len, char **scratch)
{
  *scratch = NULL;
  *len = o->json_len;
  if (!o->packed) return o->json;
  *scratch = unpack(o->packed, o->packed_len, o->dict, o->json_len);
  return *scratch;
}

/* A packed field set (struct k8s_object.managed) is a 0 byte (no JSON text
 * starts with one), the dictionary's address and the text's length (byte
 * copies of these, unaligned), then the raw deflate stream. The object
 * holds a reference on the dictionary, so the address stays valid as long
 * as the object. */
struct packed_fields {
  const struct k8s_pack_dict *dict;
  size_t len;
};
#define PACKED_FIELDS_HEAD (1 + sizeof(void *) + sizeof(size_t))

static struct packed_fields fields_head(const char *managed)
{
  struct packed_fields h = {0};
  memcpy(&h.dict, managed + 1, sizeof h.dict);
  memcpy(&h.len, managed + 1 + sizeof h.dict, sizeof h.len);
  return h;
}

const char *k8s_managed_text(const char *managed, size_t len, size_t *text_len, char **scratch)
{
  *scratch = NULL;
  if (len < PACKED_FIELDS_HEAD || managed[0] != '\0') {
    *text_len = len;
    return managed;
  }
  struct packed_fields h = fields_head(managed);
  *text_len = h.len;
  *scratch = unpack((const unsigned char *)managed + PACKED_FIELDS_HEAD, len - PACKED_FIELDS_HEAD,
                    h.dict, h.len);
  return *scratch;
}

static void free_object(struct k8s_store *s, struct k8s_object *o)
{
  if (!o) return;
  for (size_t i = 0; i < o->nlabels; i++)
    unintern(s, o->labels[i].key);
  for (size_t i = 0; i < o->nowners; i++) {
    unintern(s, o->owners[i].api_version);
    unintern(s, o->owners[i].kind);
  }
  dict_unref(s, (struct k8s_pack_dict *)o->dict);
  if (o->managed && o->managed_len >= PACKED_FIELDS_HEAD && o->managed[0] == '\0')
    dict_unref(s, (struct k8s_pack_dict *)fields_head(o->managed).dict);
  s->object_bytes -= malloc_usable_size(o);
  s->json_bytes -= o->json_len;
  s->packed_bytes -= o->packed ? o->packed_len : o->json_len;
  free(o);
}

/* Appends a copy of str to the blob cursor and returns the copy. */
static const char *put_str(char **cur, const char *str)
{
  size_t n = strlen(str) + 1;
  char *p = *cur;
  memcpy(p, str, n);
  *cur += n;
  return p;
}

static struct k8s_object *build_object(struct k8s_store *s, const json_t *obj, char *err,
                                       size_t errlen)
{
  if (!json_is_object(obj)) {
    k8s_seterr(err, errlen, "not a JSON object");
    return NULL;
  }
  const json_t *md = json_object_get(obj, "metadata");
  const char *name = str_or(json_object_get(md, "name"), "");
  const char *ns = str_or(json_object_get(md, "namespace"), "");
  if (!json_is_object(md) || !*name) {
    k8s_seterr(err, errlen, "metadata.name is missing");
    return NULL;
  }
  const char *uid = str_or(json_object_get(md, "uid"), "");
  const char *rv = str_or(json_object_get(md, "resourceVersion"), "");
  const json_t *gen = json_object_get(md, "generation");
  const json_t *dts = json_object_get(md, "deletionTimestamp");
  const json_t *labels = json_object_get(md, "labels");
  const json_t *owners = json_object_get(md, "ownerReferences");

  size_t nlabels = 0, nowners = 0;
  size_t strbytes = strlen(uid) + strlen(rv) + 2;
  strbytes += *ns ? strlen(ns) * 2 + strlen(name) + 3 : strlen(name) + 1;
  const char *lkey;
  json_t *lval;
  if (json_is_object(labels)) json_object_foreach((json_t *)labels, lkey, lval)
    {
      if (json_is_string(lval)) {
        nlabels++;
        strbytes += json_string_length(lval) + 1;
      }
    }
  if (json_is_array(owners))
    for (size_t i = 0; i < json_array_size(owners); i++) {
      const json_t *r = json_array_get(owners, i);
      if (!json_is_object(r)) continue;
      nowners++;
      strbytes += strlen(str_or(json_object_get(r, "name"), "")) +
                  strlen(str_or(json_object_get(r, "uid"), "")) + 2;
    }

  size_t json_len = 0, managed_len = 0;
  char *text = stored_text(s, obj, &json_len);
  if (!text) {
    k8s_seterr(err, errlen, "cannot encode the object (out of memory)");
    return NULL;
  }
  char *managed = managed_text(md, s->field_manager, &managed_len);
  struct k8s_pack_dict *text_dict, *fields_dict;
  size_t packed_len = pack(s, 0, &s->texts, text, json_len, &text_dict);
  size_t fields_packed =
      managed ? pack(s, packed_len, &s->field_sets, managed, managed_len, &fields_dict) : 0;
  if (fields_packed && PACKED_FIELDS_HEAD + fields_packed > managed_len) { /* no gain */
    dict_unref(s, fields_dict);
    fields_packed = 0;
  }
  size_t kept = packed_len ? packed_len : json_len + 1;
  size_t fields_kept = !managed        ? 0
                       : fields_packed ? PACKED_FIELDS_HEAD + fields_packed
                                       : managed_len + 1;
  size_t size = sizeof(struct k8s_object) + nlabels * sizeof(struct k8s_label) +
                nowners * sizeof(struct k8s_owner_ref) + strbytes + kept + fields_kept;
  struct k8s_object *o = malloc(size);
  if (!o) {
    free(text);
    free(managed);
    if (packed_len) dict_unref(s, text_dict);
    if (fields_packed) dict_unref(s, fields_dict);
    k8s_seterr(err, errlen, "out of memory");
    return NULL;
  }
  struct k8s_label *lab = (struct k8s_label *)(o + 1);
  struct k8s_owner_ref *own = (struct k8s_owner_ref *)(lab + nlabels);
  char *cur = (char *)(own + nowners);

  memset(o, 0, sizeof *o);
  if (*ns) { /* key "ns/name"; name points into it */
    char *key = cur;
    cur += sprintf(cur, "%s/%s", ns, name) + 1;
    o->key = key;
    o->name = key + strlen(ns) + 1;
    o->ns = put_str(&cur, ns);
  } else {
    o->key = o->name = put_str(&cur, name);
    o->ns = "";
  }
  o->uid = put_str(&cur, uid);
  o->resource_version = put_str(&cur, rv);
  o->generation = json_is_integer(gen) ? (long long)json_integer_value(gen) : 0;
  o->deleting = dts && !json_is_null(dts);

  size_t li = 0;
  if (json_is_object(labels)) json_object_foreach((json_t *)labels, lkey, lval)
    {
      if (!json_is_string(lval)) continue;
      lab[li].key = intern(s, lkey);
      lab[li].value = put_str(&cur, json_string_value(lval));
      if (!lab[li].key) {
        o->labels = lab;
        o->nlabels = li;
        free(text);
        free(managed);
        if (packed_len) dict_unref(s, text_dict);
        if (fields_packed) dict_unref(s, fields_dict);
        for (size_t j = 0; j < li; j++)
          unintern(s, lab[j].key);
        free(o);
        k8s_seterr(err, errlen, "out of memory");
        return NULL;
      }
      li++;
    }
  if (li > 1) qsort(lab, li, sizeof *lab, label_cmp);
  o->labels = lab;
  o->nlabels = li;

  size_t oi = 0;
  int oom = 0;
  if (json_is_array(owners))
    for (size_t i = 0; i < json_array_size(owners); i++) {
      const json_t *r = json_array_get(owners, i);
      if (!json_is_object(r)) continue;
      own[oi].api_version = intern(s, str_or(json_object_get(r, "apiVersion"), ""));
      own[oi].kind = intern(s, str_or(json_object_get(r, "kind"), ""));
      if (!own[oi].api_version || !own[oi].kind) { /* keep what was interned, drop the rest */
        if (own[oi].api_version) unintern(s, own[oi].api_version);
        if (own[oi].kind) unintern(s, own[oi].kind);
        oom = 1;
        break;
      }
      own[oi].name = put_str(&cur, str_or(json_object_get(r, "name"), ""));
      own[oi].uid = put_str(&cur, str_or(json_object_get(r, "uid"), ""));
      own[oi].controller = json_is_true(json_object_get(r, "controller"));
      oi++;
    }
  o->owners = own;
  o->nowners = oi;

  o->json_len = json_len;
  if (packed_len) {
    memcpy(cur, s->scratch, packed_len);
    o->packed = (const unsigned char *)cur;
    o->packed_len = packed_len;
    o->dict = text_dict;
  } else {
    memcpy(cur, text, json_len + 1);
    o->json = cur;
  }
  cur += kept;
  size_t text_bytes = packed_len ? packed_len : json_len; /* what the text takes as kept */
  free(text);
  if (fields_packed) {
    struct packed_fields h = {.dict = fields_dict, .len = managed_len};
    cur[0] = '\0';
    memcpy(cur + 1, &h.dict, sizeof h.dict);
    memcpy(cur + 1 + sizeof h.dict, &h.len, sizeof h.len);
    memcpy(cur + PACKED_FIELDS_HEAD, s->scratch + packed_len, fields_packed);
  } else if (managed) {
    memcpy(cur, managed, managed_len + 1);
  }
  if (managed) {
    o->managed = cur;
    o->managed_len = fields_kept - !fields_packed; /* a text's NUL is not counted */
  }
  free(managed);
  s->object_bytes += malloc_usable_size(o);
  s->json_bytes += json_len;
  s->packed_bytes += text_bytes;
  if (oom) {
    free_object(s, o);
    k8s_seterr(err, errlen, "out of memory");
    return NULL;
  }
  return o;
}

const char *k8s_object_label(const struct k8s_object *obj, const char *key)
{
  size_t lo = 0, hi = obj->nlabels;
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    int c = strcmp(obj->labels[mid].key, key);
    if (c == 0) return obj->labels[mid].value;
    if (c < 0)
      lo = mid + 1;
    else
      hi = mid;
  }
  return NULL;
}

const struct k8s_owner_ref *k8s_object_controller(const struct k8s_object *obj)
{
  for (size_t i = 0; i < obj->nowners; i++)
    if (obj->owners[i].controller) return &obj->owners[i];
  return NULL;
}

/* }==================================================================== */

/* {====================================================================
 * Indexes
 * ===================================================================== */

static size_t index_namespace(const struct k8s_object *o, const char **values, size_t max, void *ud)
{
  if (max) values[0] = o->ns;
  return 1;
}

static size_t index_owner_uid(const struct k8s_object *o, const char **values, size_t max, void *ud)
{
  size_t n = 0;
  for (size_t i = 0; i < o->nowners; i++) {
    if (!*o->owners[i].uid) continue;
    if (n < max) values[n] = o->owners[i].uid;
    n++;
  }
  return n;
}

static size_t index_label(const struct k8s_object *o, const char **values, size_t max, void *ud)
{
  const char *v = k8s_object_label(o, ((struct index *)ud)->label_key);
  if (!v) return 0;
  if (max) values[0] = v;
  return 1;
}

static struct index *find_index(const struct k8s_store *s, const char *name)
{
  for (struct index *ix = s->indexes; ix; ix = ix->next)
    if (strcmp(ix->name, name) == 0) return ix;
  return NULL;
}

/* Calls fn(ix, obj, value) for every value of obj in ix; stops on -1. */
static int index_values(struct index *ix, const struct k8s_object *o,
                        int (*fn)(struct index *, const struct k8s_object *, const char *))
{
  const char *small[INDEX_VALUES_MAX], **vals = small;
  size_t n = ix->fn(o, small, INDEX_VALUES_MAX, ix->ud);
  if (n > INDEX_VALUES_MAX) {
    vals = malloc(n * sizeof *vals);
    if (!vals) return -1;
    n = ix->fn(o, vals, n, ix->ud);
  }
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++)
    rc = fn(ix, o, vals[i]);
  if (vals != small) free(vals);
  return rc;
}

static int bucket_add(struct index *ix, const struct k8s_object *o, const char *value)
{
  struct bucket *b = k8s_strmap_get(&ix->buckets, value);
  if (!b) {
    size_t n = strlen(value);
    b = calloc(1, sizeof *b + n + 1);
    if (!b) return -1;
    memcpy(b->value, value, n + 1);
    if (k8s_strmap_put(&ix->buckets, b->value, b) < 0) {
      free(b);
      return -1;
    }
    b->one = o;
    return 0;
  }
  if (b->one == o) return 0;
  if (b->one) { /* a second member: switch to the map */
    if (k8s_strmap_put(&b->members, b->one->key, (void *)b->one) < 0) return -1;
    b->one = NULL;
  }
  return k8s_strmap_put(&b->members, o->key, (void *)o);
}

static int bucket_remove(struct index *ix, const struct k8s_object *o, const char *value)
{
  struct bucket *b = k8s_strmap_get(&ix->buckets, value);
  if (!b) return 0;
  if (b->one == o)
    b->one = NULL;
  else if (k8s_strmap_get(&b->members, o->key) == o)
    k8s_strmap_del(&b->members, o->key);
  if (!b->one && b->members.len == 0) {
    k8s_strmap_del(&ix->buckets, b->value);
    k8s_strmap_clear(&b->members);
    free(b);
  }
  return 0;
}

static int index_insert(struct k8s_store *s, const struct k8s_object *o)
{
  for (struct index *ix = s->indexes; ix; ix = ix->next)
    if (index_values(ix, o, bucket_add) < 0) return -1;
  return 0;
}

static void index_remove(struct k8s_store *s, const struct k8s_object *o)
{
  for (struct index *ix = s->indexes; ix; ix = ix->next)
    index_values(ix, o, bucket_remove);
}

static void free_index(struct index *ix)
{
  size_t it = 0;
  void *v;
  while (k8s_strmap_next(&ix->buckets, &it, NULL, &v)) {
    struct bucket *b = v;
    k8s_strmap_clear(&b->members);
    free(b);
  }
  k8s_strmap_clear(&ix->buckets);
  free(ix->name);
  free(ix);
}

static struct index *new_index(struct k8s_store *s, const char *name, k8s_index_func fn, void *ud)
{
  struct index *ix = calloc(1, sizeof *ix);
  if (!ix || !(ix->name = strdup(name))) {
    free(ix);
    return NULL;
  }
  ix->fn = fn;
  ix->ud = ud;
  if (fn == index_label) {
    ix->label_key = ix->name + strlen(LABEL_PREFIX);
    ix->ud = ix;
  }
  size_t it = 0;
  void *v;
  while (k8s_strmap_next(&s->objects, &it, NULL, &v))
    if (index_values(ix, v, bucket_add) < 0) {
      free_index(ix);
      return NULL;
    }
  ix->next = s->indexes;
  s->indexes = ix;
  return ix;
}

int k8s_store_add_indexer(struct k8s_store *s, const char *name, k8s_index_func fn, void *ud)
{
  if (!fn || find_index(s, name)) return -1;
  return new_index(s, name, fn, ud) ? 0 : -1;
}

int k8s_store_add_index(struct k8s_store *s, const char *name)
{
  if (find_index(s, name)) return 0;
  if (strncmp(name, LABEL_PREFIX, strlen(LABEL_PREFIX)) != 0 || !name[strlen(LABEL_PREFIX)])
    return -1;
  return new_index(s, name, index_label, NULL) ? 0 : -1;
}

/* }==================================================================== */

/* {====================================================================
 * The store
 * ===================================================================== */

struct k8s_store *k8s_store_new(void)
{
  struct k8s_store *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  if (!new_index(s, "owner-uid", index_owner_uid, NULL) ||
      !new_index(s, "namespace", index_namespace, NULL)) {
    k8s_store_free(s);
    return NULL;
  }
  return s;
}

void k8s_store_free(struct k8s_store *s)
{
  if (!s) return;
  while (s->indexes) {
    struct index *ix = s->indexes;
    s->indexes = ix->next;
    free_index(ix);
  }
  size_t it = 0;
  void *v;
  while (k8s_strmap_next(&s->objects, &it, NULL, &v))
    free_object(s, v);
  k8s_strmap_clear(&s->objects);
  k8s_strmap_clear(&s->interned); /* emptied by free_object */
  free(s->api_version);
  free(s->kind);
  free(s->field_manager);
  dict_unref(s, s->texts.dict); /* the objects dropped theirs */
  dict_unref(s, s->field_sets.dict);
  free(s->scratch);
  free(s);
}

int k8s_store_set_field_manager(struct k8s_store *s, const char *manager)
{
  char *m = manager ? strdup(manager) : NULL;
  if (manager && !m) return -1;
  free(s->field_manager);
  s->field_manager = m;
  return 0;
}

int k8s_store_set_kind(struct k8s_store *s, const char *api_version, const char *kind)
{
  char *av = strdup(api_version), *k = strdup(kind);
  if (!av || !k) {
    free(av);
    free(k);
    return -1;
  }
  free(s->api_version);
  free(s->kind);
  s->api_version = av;
  s->kind = k;
  return 0;
}

json_t *k8s_object_parse(const struct k8s_object *o, char *err, size_t errlen)
{
  char *scratch;
  size_t len;
  const char *text = k8s_object_json(o, &len, &scratch);
  if (!text) {
    k8s_seterr(err, errlen, "cannot unpack the cached object (out of memory)");
    return NULL;
  }
  json_t *v = k8s_json_parse(text, len, err, errlen);
  free(scratch);
  return v;
}

int k8s_object_push(lua_State *L, const struct k8s_object *o, char *err, size_t errlen)
{
  char *scratch;
  size_t len;
  const char *text = k8s_object_json(o, &len, &scratch);
  if (!text) {
    k8s_seterr(err, errlen, "cannot unpack the cached object (out of memory)");
    return -1;
  }
  int rc = k8s_json_push(L, text, len, err, errlen);
  free(scratch);
  return rc < 0 ? -1 : rc;
}

/* Whether a and b keep the same text. Packed texts are compared as packed
 * bytes when both were packed against the same dictionary (deflate at one
 * level is deterministic), else as texts. */
static int same_text(const struct k8s_object *a, const struct k8s_object *b)
{
  if (a->json_len != b->json_len) return 0;
  if (a->packed && b->packed && a->dict == b->dict)
    return a->packed_len == b->packed_len && !memcmp(a->packed, b->packed, a->packed_len);
  char *sa, *sb;
  size_t la, lb;
  const char *ta = k8s_object_json(a, &la, &sa), *tb = k8s_object_json(b, &lb, &sb);
  int same = ta && tb && !memcmp(ta, tb, la);
  free(sa);
  free(sb);
  return same;
}

int k8s_store_upsert(struct k8s_store *s, const json_t *obj, k8s_store_handler cb, void *ud,
                     char *err, size_t errlen)
{
  char key[1024];
  if (!json_is_object(obj)) {
    k8s_seterr(err, errlen, "not a JSON object");
    return -1;
  }
  if (k8s_store_key_of(obj, key, sizeof key) < 0) {
    k8s_seterr(err, errlen, "metadata.name is missing or too long");
    return -1;
  }
  struct k8s_object *old = k8s_strmap_get(&s->objects, key);
  if (old && *old->resource_version) {
    const char *rv =
        str_or(json_object_get(json_object_get(obj, "metadata"), "resourceVersion"), "");
    if (strcmp(rv, old->resource_version) == 0) {
      if (cb) cb(ud, K8S_STORE_UNCHANGED, old, old);
      return K8S_STORE_UNCHANGED;
    }
  }
  struct k8s_object *o = build_object(s, obj, err, errlen);
  if (!o) return -1;
  if (old && !*old->resource_version && same_text(old, o)) { /* no resourceVersion: compare text */
    free_object(s, o);
    if (cb) cb(ud, K8S_STORE_UNCHANGED, old, old);
    return K8S_STORE_UNCHANGED;
  }
  if (old) index_remove(s, old);
  if (k8s_strmap_put(&s->objects, o->key, o) < 0 || index_insert(s, o) < 0) {
    /* out of memory: put the old object back as well as we can */
    index_remove(s, o);
    if (old) {
      k8s_strmap_put(&s->objects, old->key, old); /* replaces in place: cannot fail */
      index_insert(s, old);
    } else {
      k8s_strmap_del(&s->objects, o->key);
    }
    free_object(s, o);
    k8s_seterr(err, errlen, "out of memory");
    return -1;
  }
  enum k8s_store_event ev = old ? K8S_STORE_UPDATED : K8S_STORE_ADDED;
  if (cb) cb(ud, ev, old, o);
  free_object(s, old);
  return ev;
}

int k8s_store_delete(struct k8s_store *s, const char *key, k8s_store_handler cb, void *ud)
{
  struct k8s_object *o = k8s_strmap_get(&s->objects, key);
  if (!o) return 0;
  index_remove(s, o);
  k8s_strmap_del(&s->objects, o->key);
  if (cb) cb(ud, K8S_STORE_DELETED, o, NULL);
  free_object(s, o);
  return 1;
}

int k8s_store_replace(struct k8s_store *s, const json_t *items, k8s_store_handler cb, void *ud,
                      char *err, size_t errlen)
{
  if (!json_is_array(items)) {
    k8s_seterr(err, errlen, "items is not an array");
    return -1;
  }
  struct k8s_strmap seen = {0};
  int skipped = 0;
  char key[1024], e[256];
  for (size_t i = 0; i < json_array_size(items); i++) {
    const json_t *item = json_array_get(items, i);
    if (k8s_store_key_of(item, key, sizeof key) >= 0)
      k8s_strmap_del(&seen, key); /* its key pointer dies if upsert replaces it */
    int rc = k8s_store_upsert(s, item, cb, ud, e, sizeof e);
    const struct k8s_object *o = rc < 0 ? NULL : k8s_store_get(s, key);
    if (!o || k8s_strmap_put(&seen, o->key, (void *)o) < 0) {
      if (!skipped) k8s_seterr(err, errlen, "items[%zu]: %s", i, o ? "out of memory" : e);
      skipped++;
    }
  }
  /* Deletions: keys cached but not listed. */
  size_t n = 0, it = 0;
  void *v;
  struct k8s_object **gone = malloc((s->objects.len + 1) * sizeof *gone);
  if (gone) {
    while (k8s_strmap_next(&s->objects, &it, NULL, &v))
      if (!k8s_strmap_get(&seen, ((struct k8s_object *)v)->key)) gone[n++] = v;
    for (size_t i = 0; i < n; i++)
      k8s_store_delete(s, gone[i]->key, cb, ud);
    free(gone);
  } else {
    skipped++;
    k8s_seterr(err, errlen, "out of memory");
  }
  k8s_strmap_clear(&seen);
  return skipped;
}

const struct k8s_object *k8s_store_get(const struct k8s_store *s, const char *key)
{
  return k8s_strmap_get(&s->objects, key);
}

size_t k8s_store_len(const struct k8s_store *s)
{
  return s->objects.len;
}

static int obj_cmp(const void *a, const void *b)
{
  const struct k8s_object *x = *(const struct k8s_object *const *)a;
  const struct k8s_object *y = *(const struct k8s_object *const *)b;
  int c = strcmp(x->ns, y->ns);
  return c ? c : strcmp(x->name, y->name);
}

static int label_match(const struct k8s_object *o, const struct k8s_label *sel, size_t nsel)
{
  for (size_t i = 0; i < nsel; i++) {
    const char *v = k8s_object_label(o, sel[i].key);
    if (!v || strcmp(v, sel[i].value) != 0) return 0;
  }
  return 1;
}

/* Collects the objects of map m (or the single object one) that are in ns
 * (NULL: any) and match sel, sorted. */
static size_t collect(const struct k8s_strmap *m, const struct k8s_object *one, const char *ns,
                      const struct k8s_label *sel, size_t nsel, const struct k8s_object ***out)
{
  *out = NULL;
  size_t total = (m ? m->len : 0) + (one != NULL);
  if (!total) return 0;
  const struct k8s_object **arr = malloc(total * sizeof *arr);
  if (!arr) return (size_t)-1;
  size_t n = 0, it = 0;
  void *v;
  if (one && (!ns || strcmp(one->ns, ns) == 0) && label_match(one, sel, nsel)) arr[n++] = one;
  while (m && k8s_strmap_next(m, &it, NULL, &v)) {
    const struct k8s_object *o = v;
    if ((!ns || strcmp(o->ns, ns) == 0) && label_match(o, sel, nsel)) arr[n++] = o;
  }
  if (!n) {
    free(arr);
    return 0;
  }
  if (n > 1) qsort(arr, n, sizeof *arr, obj_cmp);
  *out = arr;
  return n;
}

/* The members of bucket `value` of ix, through collect(). */
static size_t collect_bucket(const struct index *ix, const char *value, const char *ns,
                             const struct k8s_label *sel, size_t nsel,
                             const struct k8s_object ***out)
{
  const struct bucket *b = ix ? k8s_strmap_get(&ix->buckets, value) : NULL;
  if (!b) {
    *out = NULL;
    return 0;
  }
  return collect(&b->members, b->one, ns, sel, nsel, out);
}

size_t k8s_store_list(const struct k8s_store *s, const char *ns, const struct k8s_object ***out)
{
  if (ns) return collect_bucket(find_index(s, "namespace"), ns, NULL, NULL, 0, out);
  return collect(&s->objects, NULL, NULL, NULL, 0, out);
}

size_t k8s_store_select(const struct k8s_store *s, const char *ns, const struct k8s_label *sel,
                        size_t nsel, const struct k8s_object ***out)
{
  char name[512];
  for (size_t i = 0; i < nsel; i++) {
    snprintf(name, sizeof name, LABEL_PREFIX "%s", sel[i].key);
    const struct index *ix = find_index(s, name);
    if (ix) return collect_bucket(ix, sel[i].value, ns, sel, nsel, out);
  }
  if (ns) return collect_bucket(find_index(s, "namespace"), ns, NULL, sel, nsel, out);
  return collect(&s->objects, NULL, NULL, sel, nsel, out);
}

size_t k8s_store_by_index(struct k8s_store *s, const char *name, const char *value,
                          const struct k8s_object ***out)
{
  *out = NULL;
  const struct index *ix = find_index(s, name);
  if (!ix && k8s_store_add_index(s, name) == 0) ix = find_index(s, name);
  if (!ix) return (size_t)-1;
  return collect_bucket(ix, value, NULL, NULL, 0, out);
}

void k8s_store_stats(const struct k8s_store *s, struct k8s_store_stats *st)
{
  memset(st, 0, sizeof *st);
  st->objects = s->objects.len;
  st->object_bytes = s->object_bytes;
  st->json_bytes = s->json_bytes;
  st->packed_bytes = s->packed_bytes;
  st->dict_bytes = s->dict_bytes;
  size_t bytes = k8s_strmap_bytes(&s->objects) + k8s_strmap_bytes(&s->interned);
  size_t it = 0;
  void *v;
  while (k8s_strmap_next(&s->interned, &it, NULL, &v))
    bytes += malloc_usable_size(v);
  for (const struct index *ix = s->indexes; ix; ix = ix->next) {
    bytes += malloc_usable_size((void *)ix) + k8s_strmap_bytes(&ix->buckets);
    it = 0;
    while (k8s_strmap_next(&ix->buckets, &it, NULL, &v))
      bytes += malloc_usable_size(v) + k8s_strmap_bytes(&((struct bucket *)v)->members);
  }
  st->index_bytes = bytes;
}

/* }==================================================================== */
