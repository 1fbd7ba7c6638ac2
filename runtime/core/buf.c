/* buf.c: the growable byte buffer of buf.h (doubling growth, sticky failure). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "buf.h"

static int reserve(struct k8s_buf *b, size_t n)
{
  if (b->failed) return -1;
  if (b->len + n + 1 <= b->cap) return 0;
  size_t cap = b->cap ? b->cap : 64;
  while (cap < b->len + n + 1) {
    if (cap > ((size_t)-1) / 2) {
      b->failed = 1;
      return -1;
    }
    cap *= 2;
  }
  char *p = realloc(b->p, cap);
  if (!p) {
    b->failed = 1;
    return -1;
  }
  b->p = p;
  b->cap = cap;
  return 0;
}

void k8s_buf_add(struct k8s_buf *b, const void *data, size_t n)
{
  if (reserve(b, n) < 0) return;
  if (n) memcpy(b->p + b->len, data, n);
  b->len += n;
  b->p[b->len] = '\0';
}

void k8s_buf_adds(struct k8s_buf *b, const char *s)
{
  k8s_buf_add(b, s, strlen(s));
}

void k8s_buf_addc(struct k8s_buf *b, char c)
{
  k8s_buf_add(b, &c, 1);
}

void k8s_buf_printf(struct k8s_buf *b, const char *fmt, ...)
{
  char small[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(small, sizeof small, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if ((size_t)n < sizeof small) {
    k8s_buf_add(b, small, (size_t)n);
    return;
  }
  if (reserve(b, (size_t)n) < 0) return;
  va_start(ap, fmt);
  vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
  va_end(ap);
  b->len += (size_t)n;
}

char *k8s_buf_steal(struct k8s_buf *b, size_t *len)
{
  if (!b->failed && !b->p) reserve(b, 0);
  if (b->failed) {
    k8s_buf_free(b);
    return NULL;
  }
  b->p[b->len] = '\0';
  char *p = b->p;
  if (len) *len = b->len;
  memset(b, 0, sizeof *b);
  return p;
}

void k8s_buf_free(struct k8s_buf *b)
{
  free(b->p);
  memset(b, 0, sizeof *b);
}
