/* util.h: small pure helpers shared by every layer: SHA-256 hex digests
 * (libcrypto EVP), the owner label value of doc/architecture.md, Kubernetes
 * label-value validation, RFC 3339 UTC time formatting and the clocks.
 * Nothing here allocates; outputs go to caller buffers of the stated size. */
#ifndef K8S_CORE_UTIL_H
#define K8S_CORE_UTIL_H

#include <stddef.h>
#include <stdio.h>

/* Bytes needed for a SHA-256 hex digest plus NUL. */
#define K8S_SHA256_HEX_LEN 65
/* Max length of a Kubernetes label value, and a buffer that holds one. */
#define K8S_LABEL_VALUE_MAX 63
#define K8S_LABEL_VALUE_BUF 64
/* Buffer size for k8s_rfc3339 / k8s_rfc3339_ms. */
#define K8S_TIME_BUF 32

/* Lower-case hex SHA-256 of data[0..len) into out (65 bytes, NUL-terminated). */
void k8s_sha256_hex(const void *data, size_t len, char out[K8S_SHA256_HEX_LEN]);

/* 1 when s is a valid label value: empty, or at most 63 chars of
 * [-_.a-zA-Z0-9] beginning and ending with an alphanumeric character. */
int k8s_is_label_value(const char *s);

/* The value of the label sim.llm-d.io/owner for a CR (see doc/architecture.md):
 *   "<kind-lowercase>.<namespace>.<name>" when that is a valid label value;
 *   otherwise "<kind>.<middle>.<hash10>" where <kind> is the lower-cased kind
 *   (sanitised, at most 20 chars), <middle> the first characters of
 *   "<namespace>.<name>" with every char outside [-_.a-zA-Z0-9] replaced by
 *   '-' (at most 40 chars, fewer when needed to stay within 63), and <hash10>
 *   the first 10 hex digits of sha256("<kind-lowercase>.<namespace>.<name>").
 * For a cluster-scoped CR (ns NULL or "") the natural form is "<kind>.<name>".
 * The result is always a valid, non-empty label value. Writes out (64 bytes)
 * and returns its length. */
size_t k8s_owner_label_value(const char *kind, const char *ns, const char *name,
                             char out[K8S_LABEL_VALUE_BUF]);

/* RFC 3339 UTC time, seconds precision ("2026-01-01T00:00:00Z", the format of
 * metav1.Time). `epoch` is seconds since the Unix epoch (fraction dropped).
 * Writes out (32 bytes) and returns the length. */
size_t k8s_rfc3339(double epoch, char out[K8S_TIME_BUF]);

/* The same with milliseconds ("2026-01-01T00:00:00.123Z"), used by logs. */
size_t k8s_rfc3339_ms(double epoch, char out[K8S_TIME_BUF]);

/* Formats an error message into the caller's buffer err[errlen] (the
 * `char *err, size_t errlen` convention of every fallible runtime function);
 * truncates to fit; does nothing when err is NULL or errlen is 0. */
void k8s_seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Reads all of f (a file or a pipe: no seeking) into a malloc'd buffer with
 * a NUL after the last byte (the caller frees it); its length in *len when
 * len is not NULL. max > 0 bounds the size: more is an error EFBIG. Returns
 * NULL with errno set (EIO, ENOMEM, EFBIG) on failure; f is not closed. */
char *k8s_read_stream(FILE *f, size_t max, size_t *len);

/* k8s_read_stream of the file at path (opened and closed here); NULL with
 * errno from fopen (ENOENT, EACCES, ...) when it cannot be opened. The one
 * file reader of the runtime: kubeconfig, script sets, fixtures, overlays,
 * certificates. */
char *k8s_read_file(const char *path, size_t max, size_t *len);

/* Monotonic clock in seconds (CLOCK_MONOTONIC); the `now` of the WorkQueue,
 * the RateLimiter and the event loop's timers. */
double k8s_monotonic(void);

/* Wall clock in seconds since the Unix epoch (CLOCK_REALTIME). */
double k8s_wallclock(void);

#endif
