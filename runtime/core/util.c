/* util.c: SHA-256 hex digests (libcrypto EVP), label-value validation and the
 * owner label value, RFC 3339 formatting, the two clocks, the error-buffer
 * formatter and the file reader (util.h). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <openssl/evp.h>
#include "util.h"

void k8s_sha256_hex(const void *data, size_t len, char out[K8S_SHA256_HEX_LEN])
{
  static const char hex[] = "0123456789abcdef";
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32) {
    memset(out, '0', 64); /* libcrypto failed (no memory): a visible, stable value */
    out[64] = '\0';
    return;
  }
  for (unsigned int i = 0; i < 32; i++) {
    out[2 * i] = hex[md[i] >> 4];
    out[2 * i + 1] = hex[md[i] & 15];
  }
  out[64] = '\0';
}

static int label_inner(int c)
{
  return isalnum(c) || c == '-' || c == '_' || c == '.';
}

int k8s_is_label_value(const char *s)
{
  size_t n = strlen(s);
  if (n == 0) return 1;
  if (n > K8S_LABEL_VALUE_MAX) return 0;
  if (!isalnum((unsigned char)s[0]) || !isalnum((unsigned char)s[n - 1])) return 0;
  for (size_t i = 0; i < n; i++)
    if (!label_inner((unsigned char)s[i])) return 0;
  return 1;
}

/* Appends src to out[*n..cap) sanitised: ASCII lower-cased when `lower`, chars
 * outside [-_.a-zA-Z0-9] replaced by '-', at most max chars. */
static void append_sanitised(char *out, size_t *n, const char *src, size_t max, int lower)
{
  for (size_t i = 0; src[i] && i < max; i++) {
    unsigned char c = (unsigned char)src[i];
    if (lower && c < 128) c = (unsigned char)tolower(c);
    out[(*n)++] = label_inner(c) && c < 128 ? (char)c : '-';
  }
}

/* sha256 of "<kind-lowercase>.<ns>.<name>" (or "<kind>.<name>"), streamed. */
static void owner_digest(const char *kindlc, const char *ns, const char *name,
                         char out[K8S_SHA256_HEX_LEN])
{
  static const char hex[] = "0123456789abcdef";
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
           EVP_DigestUpdate(ctx, kindlc, strlen(kindlc)) && EVP_DigestUpdate(ctx, ".", 1);
  if (ok && ns && *ns) ok = EVP_DigestUpdate(ctx, ns, strlen(ns)) && EVP_DigestUpdate(ctx, ".", 1);
  ok = ok && EVP_DigestUpdate(ctx, name, strlen(name)) && EVP_DigestFinal_ex(ctx, md, &mdlen);
  EVP_MD_CTX_free(ctx);
  if (!ok || mdlen != 32) {
    memset(out, '0', 64);
    out[64] = '\0';
    return;
  }
  for (unsigned int i = 0; i < 32; i++) {
    out[2 * i] = hex[md[i] >> 4];
    out[2 * i + 1] = hex[md[i] & 15];
  }
  out[64] = '\0';
}

size_t k8s_owner_label_value(const char *kind, const char *ns, const char *name,
                             char out[K8S_LABEL_VALUE_BUF])
{
  char kindlc[256];
  size_t kn = 0;
  for (; kind[kn] && kn < sizeof kindlc - 1; kn++)
    kindlc[kn] = (char)tolower((unsigned char)kind[kn]);
  kindlc[kn] = '\0';
  int cluster = !ns || !*ns;
  size_t natural = kn + 1 + (cluster ? 0 : strlen(ns) + 1) + strlen(name);
  if (natural <= K8S_LABEL_VALUE_MAX && kn < sizeof kindlc - 1) {
    size_t n = 0;
    memcpy(out, kindlc, kn);
    n += kn;
    out[n++] = '.';
    if (!cluster) {
      memcpy(out + n, ns, strlen(ns));
      n += strlen(ns);
      out[n++] = '.';
    }
    memcpy(out + n, name, strlen(name) + 1);
    if (k8s_is_label_value(out)) return natural;
  }

  /* Hashed form: <kind>.<middle>.<hash10>, always within 63 characters. */
  char digest[K8S_SHA256_HEX_LEN];
  owner_digest(kindlc, ns, name, digest);
  size_t n = 0;
  append_sanitised(out, &n, kindlc, 20, 1);
  while (n > 0 && !isalnum((unsigned char)out[0])) /* must start alphanumeric */
    memmove(out, out + 1, --n);
  if (n == 0) out[n++] = 'x';
  out[n++] = '.';
  size_t room = K8S_LABEL_VALUE_MAX - n - 1 - 10; /* leave room for ".hash10" */
  if (room > 40) room = 40;
  size_t start = n;
  if (!cluster) {
    append_sanitised(out, &n, ns, room, 0);
    if (n - start < room) out[n++] = '.';
  }
  if (n - start < room) append_sanitised(out, &n, name, room - (n - start), 0);
  out[n++] = '.';
  memcpy(out + n, digest, 10);
  n += 10;
  out[n] = '\0';
  return n;
}

static size_t format_time(double epoch, int ms, char out[K8S_TIME_BUF])
{
  long long total_ms = llround(epoch * 1000.0);
  long long sec = total_ms / 1000, millis = total_ms % 1000;
  if (millis < 0) {
    millis += 1000;
    sec--;
  }
  if (!ms) sec = (long long)floor(epoch); /* metav1.Time drops the fraction */
  time_t t = (time_t)sec;
  struct tm tm;
  if (!gmtime_r(&t, &tm)) {
    t = 0;
    gmtime_r(&t, &tm);
  }
  size_t n = strftime(out, K8S_TIME_BUF, "%Y-%m-%dT%H:%M:%S", &tm);
  if (ms) {
    n += (size_t)snprintf(out + n, K8S_TIME_BUF - n, ".%03dZ", (int)millis);
  } else {
    out[n++] = 'Z';
    out[n] = '\0';
  }
  return n;
}

size_t k8s_rfc3339(double epoch, char out[K8S_TIME_BUF])
{
  return format_time(epoch, 0, out);
}

size_t k8s_rfc3339_ms(double epoch, char out[K8S_TIME_BUF])
{
  return format_time(epoch, 1, out);
}

double k8s_monotonic(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double k8s_wallclock(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void k8s_seterr(char *err, size_t errlen, const char *fmt, ...)
{
  if (!err || !errlen) return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

char *k8s_read_stream(FILE *f, size_t max, size_t *len)
{
  size_t n = 0, cap = 0;
  char *buf = NULL;
  for (;;) {
    if (cap - n < 4096) {
      size_t nc = cap ? cap * 2 : 8192;
      char *nb = realloc(buf, nc + 1);
      if (!nb) {
        free(buf);
        errno = ENOMEM;
        return NULL;
      }
      buf = nb, cap = nc;
    }
    size_t got = fread(buf + n, 1, cap - n, f);
    n += got;
    if (max && n > max) {
      free(buf);
      errno = EFBIG;
      return NULL;
    }
    if (got == 0) break;
  }
  if (ferror(f)) {
    free(buf);
    errno = errno ? errno : EIO;
    return NULL;
  }
  buf[n] = '\0';
  if (len) *len = n;
  return buf;
}

char *k8s_read_file(const char *path, size_t max, size_t *len)
{
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = k8s_read_stream(f, max, len);
  int saved = errno;
  fclose(f);
  errno = saved;
  return buf;
}
