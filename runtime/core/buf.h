/* buf.h: a growable byte buffer for the writers of runtime/core (JSON, YAML,
 * metrics, logs). A zeroed struct is an empty buffer. After a malloc failure
 * the buffer is marked failed and further appends are ignored, so writers
 * check once at the end. Not thread-safe. */
#ifndef K8S_CORE_BUF_H
#define K8S_CORE_BUF_H

#include <stddef.h>

struct k8s_buf {
  char *p;    /* NUL-terminated when len > 0 */
  size_t len; /* bytes written, without the NUL */
  size_t cap;
  int failed; /* a malloc failed; contents incomplete */
};

/* Appends n bytes / a C string / one byte / printf-formatted text. */
void k8s_buf_add(struct k8s_buf *b, const void *data, size_t n);
void k8s_buf_adds(struct k8s_buf *b, const char *s);
void k8s_buf_addc(struct k8s_buf *b, char c);
void k8s_buf_printf(struct k8s_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Returns the malloc'd NUL-terminated contents (the caller frees them; length
 * in *len when non-NULL) and empties b; NULL (and b emptied) when failed. */
char *k8s_buf_steal(struct k8s_buf *b, size_t *len);

/* Frees the contents and empties b. */
void k8s_buf_free(struct k8s_buf *b);

#endif
