/* tlscert.h: the serving certificate of the secure metrics endpoint: read from
 * files (--metrics-cert-path), or a self-signed one made in memory at start
 * when none is given, as controller-runtime's metrics server does
 * (certwatcher absent: an in-memory self-signed certificate).
 *
 * Ownership: every char * result is malloc'd PEM text the caller frees with
 * free(). Errors: -1 with a message in err (errlen bytes). */
#ifndef K8S_CORE_TLSCERT_H
#define K8S_CORE_TLSCERT_H

#include <stddef.h>

/* Makes an ECDSA P-256 key and a self-signed X.509 v3 certificate for it,
 * subject CN=cn, subjectAltName DNS:cn, DNS:localhost, IP:127.0.0.1, IP:::1,
 * valid from now for `days` days, serverAuth. Returns 0 with *cert_pem and
 * *key_pem (PKCS#8) set. */
int k8s_tls_self_signed(const char *cn, int days, char **cert_pem, char **key_pem, char *err,
                        size_t errlen);

/* Reads dir/cert_name and dir/key_name (PEM). Returns 0 with both set, after
 * checking that the key matches the certificate's public key. */
int k8s_tls_load(const char *dir, const char *cert_name, const char *key_name, char **cert_pem,
                 char **key_pem, char *err, size_t errlen);

#endif
