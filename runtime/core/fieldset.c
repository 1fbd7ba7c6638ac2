/* fieldset.c: does a server-side apply field set cover an object (fieldset.h). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fieldset.h"
#include "core/json.h"
#include "core/store.h"

/* A path being walked, for the message when something is not covered. */
struct walk {
  char *path;
  size_t len;
};

#define PATH_MAX_LEN 512

/* snprintf into a path buffer; a path too long for it is cut (it only names
 * the field in a message). */
static void fmt(char *buf, const char *f, ...) __attribute__((format(printf, 2, 3)));
static void fmt(char *buf, const char *f, ...)
{
  va_list ap;
  va_start(ap, f);
  vsnprintf(buf, PATH_MAX_LEN, f, ap);
  va_end(ap);
}

static void path_set(struct walk *w, const char *here)
{
  if (w->path && w->len) snprintf(w->path, w->len, "%s", here);
}

static int covers_value(struct walk *w, const char *at, const json_t *v, const json_t *node);

/* The child "<prefix><name>" of node, or NULL. */
static const json_t *child(const json_t *node, char prefix, const char *name)
{
  char key[PATH_MAX_LEN];
  fmt(key, "%c:%s", prefix, name);
  return json_object_get(node, key);
}

/* 1 for the fields the API server does not track in field sets (the
 * object's identity) or that apply does not set (status, nulls). */
static int untracked(const char *at, const char *key, const json_t *v)
{
  if (json_is_null(v)) return 1;
  if (!*at) return !strcmp(key, "apiVersion") || !strcmp(key, "kind") || !strcmp(key, "status");
  return !strcmp(at, "metadata") && (!strcmp(key, "name") || !strcmp(key, "namespace"));
}

/* 1 when v (the value of at.key) holds a field a field set would track: a
 * scalar, a list, an empty map (it sets the field), or a map with a tracked
 * field (metadata with only name and namespace holds none, nor does a map of
 * nulls). */
static int tracked_content(const char *at, const char *key, const json_t *v)
{
  if (untracked(at, key, v)) return 0;
  if (!json_is_object(v) || !json_object_size(v)) return 1;
  char here[PATH_MAX_LEN];
  fmt(here, "%s%s%s", at, *at ? "." : "", key);
  const char *k;
  const json_t *x;
  json_object_foreach((json_t *)v, k, x) if (tracked_content(here, k, x)) return 1;
  return 0;
}

static int covers_map(struct walk *w, const char *at, const json_t *obj, const json_t *node)
{
  const char *key;
  const json_t *v;
  json_object_foreach((json_t *)obj, key, v)
  {
    if (!tracked_content(at, key, v)) continue;
    char here[PATH_MAX_LEN];
    fmt(here, "%s%s%s", at, *at ? "." : "", key);
    const json_t *sub = child(node, 'f', key);
    if (!sub) {
      path_set(w, here);
      return 0;
    }
    if (!covers_value(w, here, v, sub)) return 0;
  }
  return 1;
}

/* 1 when the parsed key map of a "k:" entry matches element e. */
static int key_matches(const json_t *keys, const json_t *e)
{
  const char *k;
  const json_t *want;
  int named = 0;
  json_object_foreach((json_t *)keys, k, want)
  {
    const json_t *have = json_object_get(e, k);
    if (!have) continue; /* defaulted by the server */
    named++;
    if (!json_equal((json_t *)have, (json_t *)want)) return 0;
  }
  return named > 0;
}

/* "[name=epp]" for a message, from the element's first key field. */
static void elem_label(const json_t *keys, char *buf, size_t len)
{
  const char *k;
  const json_t *v;
  buf[0] = '\0';
  json_object_foreach((json_t *)keys, k, v)
  {
    char *text = k8s_json_dump(v, 0, NULL);
    snprintf(buf, len, "[%s=%s]", k, text ? text : "?");
    free(text);
    break;
  }
}

static int covers_list(struct walk *w, const char *at, const json_t *list, const json_t *node)
{
  size_t i;
  const json_t *e;
  json_array_foreach(list, i, e)
  {
    char here[PATH_MAX_LEN];
    fmt(here, "%s[%zu]", at, i);
    if (json_is_null(e)) continue;
    const json_t *sub = NULL;
    if (json_is_object(e)) {
      const char *key;
      const json_t *v;
      json_object_foreach((json_t *)node, key, v)
      {
        if (strncmp(key, "k:", 2)) continue;
        json_t *keys = k8s_json_parse(key + 2, strlen(key + 2), NULL, 0);
        int hit = json_is_object(keys) && key_matches(keys, e);
        if (hit) {
          char label[256];
          elem_label(keys, label, sizeof(label));
          fmt(here, "%s%s", at, label);
          sub = v;
        }
        json_decref(keys);
        if (hit) break;
      }
    } else {
      char *text = k8s_json_dump(e, 0, NULL);
      if (text) sub = child(node, 'v', text);
      free(text);
    }
    if (!sub) {
      char idx[32];
      snprintf(idx, sizeof(idx), "%zu", i);
      sub = child(node, 'i', idx);
    }
    if (!sub) {
      path_set(w, here);
      return 0;
    }
    /* an element recorded without fields is atomic (e.g. ownerReferences) */
    if (json_is_object(e) && json_object_size(sub) && !covers_map(w, here, e, sub)) return 0;
  }
  return 1;
}

static int covers_value(struct walk *w, const char *at, const json_t *v, const json_t *node)
{
  /* a field recorded without children is a leaf: an atomic map or list (a
   * LabelSelector, args), owned as a whole */
  if (!json_object_size(node)) return 1;
  if (json_is_object(v)) return covers_map(w, at, v, node);
  if (json_is_array(v)) return covers_list(w, at, v, node);
  return 1; /* a scalar: owning the field is owning the value */
}

int k8s_fieldset_covers(const json_t *obj, const json_t *fields, char *path, size_t pathlen)
{
  struct walk w = {path, pathlen};
  if (path && pathlen) path[0] = '\0';
  if (!json_is_object(obj) || !json_is_object(fields)) {
    path_set(&w, "(root)");
    return 0;
  }
  return covers_map(&w, "", obj, fields);
}

int k8s_fieldset_covers_text(const json_t *obj, const char *fields, size_t len, char *path,
                             size_t pathlen)
{
  char *scratch = NULL;
  size_t text_len = 0;
  const char *text = fields ? k8s_managed_text(fields, len, &text_len, &scratch) : NULL;
  json_t *f = text ? k8s_json_parse(text, text_len, NULL, 0) : NULL;
  free(scratch);
  if (!f) {
    if (path && pathlen) snprintf(path, pathlen, "(unreadable field set)");
    return 0;
  }
  int rc = k8s_fieldset_covers(obj, f, path, pathlen);
  json_decref(f);
  return rc;
}
