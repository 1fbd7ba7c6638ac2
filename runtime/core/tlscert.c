/* tlscert.c: a self-signed serving certificate made with OpenSSL, or one read
 * from files and checked against its key (tlscert.h). Owns nothing beyond the
 * call: every OpenSSL object is freed before return. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "tlscert.h"
#include "util.h"

/* The text of a memory BIO, malloc'd and NUL-terminated, or NULL. */
static char *bio_text(BIO *b)
{
  char *data = NULL;
  long n = BIO_get_mem_data(b, &data);
  if (n < 0) return NULL;
  char *out = malloc((size_t)n + 1);
  if (!out) return NULL;
  memcpy(out, data, (size_t)n);
  out[n] = 0;
  return out;
}

static int openssl_err(char *err, size_t errlen, const char *what)
{
  char e[256];
  ERR_error_string_n(ERR_get_error(), e, sizeof e);
  k8s_seterr(err, errlen, "%s: %s", what, e);
  return -1;
}

static int add_ext(X509 *crt, int nid, const char *value)
{
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, crt, crt, NULL, NULL, 0);
  X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
  if (!ext) return -1;
  int ok = X509_add_ext(crt, ext, -1);
  X509_EXTENSION_free(ext);
  return ok ? 0 : -1;
}

int k8s_tls_self_signed(const char *cn, int days, char **cert_pem, char **key_pem, char *err,
                        size_t errlen)
{
  *cert_pem = *key_pem = NULL;
  int rc = -1;
  EVP_PKEY *key = EVP_EC_gen("P-256");
  X509 *crt = X509_new();
  BIO *cb = BIO_new(BIO_s_mem()), *kb = BIO_new(BIO_s_mem());
  if (!key || !crt || !cb || !kb) {
    openssl_err(err, errlen, "self-signed certificate");
    goto out;
  }
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof serial) != 1) {
    openssl_err(err, errlen, "certificate serial");
    goto out;
  }
  serial[0] &= 0x7f; /* positive */
  BIGNUM *bn = BN_bin2bn(serial, sizeof serial, NULL);
  int ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(crt)) != NULL;
  BN_free(bn);
  char san[512];
  snprintf(san, sizeof san, "DNS:%s,DNS:localhost,IP:127.0.0.1,IP:::1", cn);
  X509_NAME *name = X509_get_subject_name(crt);
  ok = ok && X509_set_version(crt, 2) && X509_gmtime_adj(X509_getm_notBefore(crt), -60) != NULL &&
       X509_gmtime_adj(X509_getm_notAfter(crt), (long)days * 86400) != NULL &&
       X509_set_pubkey(crt, key) &&
       X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0) &&
       X509_set_issuer_name(crt, name) && add_ext(crt, NID_subject_alt_name, san) == 0 &&
       add_ext(crt, NID_basic_constraints, "critical,CA:FALSE") == 0 &&
       add_ext(crt, NID_key_usage, "critical,digitalSignature") == 0 &&
       add_ext(crt, NID_ext_key_usage, "serverAuth") == 0 && X509_sign(crt, key, EVP_sha256()) &&
       PEM_write_bio_X509(cb, crt) && PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL);
  if (!ok) {
    openssl_err(err, errlen, "self-signed certificate");
    goto out;
  }
  *cert_pem = bio_text(cb);
  *key_pem = bio_text(kb);
  if (!*cert_pem || !*key_pem) {
    free(*cert_pem);
    free(*key_pem);
    *cert_pem = *key_pem = NULL;
    k8s_seterr(err, errlen, "self-signed certificate: out of memory");
    goto out;
  }
  rc = 0;
out:
  BIO_free(cb);
  BIO_free(kb);
  X509_free(crt);
  EVP_PKEY_free(key);
  return rc;
}

static char *read_text(const char *path, char *err, size_t errlen)
{
  char *text = k8s_read_file(path, 1 << 20, NULL);
  if (!text) k8s_seterr(err, errlen, "cannot read %s: %s", path, strerror(errno));
  return text;
}

int k8s_tls_load(const char *dir, const char *cert_name, const char *key_name, char **cert_pem,
                 char **key_pem, char *err, size_t errlen)
{
  char cp[4096], kp[4096];
  snprintf(cp, sizeof cp, "%s/%s", dir, cert_name);
  snprintf(kp, sizeof kp, "%s/%s", dir, key_name);
  *cert_pem = read_text(cp, err, errlen);
  *key_pem = *cert_pem ? read_text(kp, err, errlen) : NULL;
  if (!*key_pem) {
    free(*cert_pem);
    *cert_pem = NULL;
    return -1;
  }
  BIO *cb = BIO_new_mem_buf(*cert_pem, -1), *kb = BIO_new_mem_buf(*key_pem, -1);
  X509 *crt = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
  EVP_PKEY *key = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
  int rc = 0;
  if (!crt) {
    rc = openssl_err(err, errlen, cp);
  } else if (!key) {
    rc = openssl_err(err, errlen, kp);
  } else if (X509_check_private_key(crt, key) != 1) {
    k8s_seterr(err, errlen, "%s does not belong to the certificate %s", kp, cp);
    rc = -1;
  }
  X509_free(crt);
  EVP_PKEY_free(key);
  BIO_free(cb);
  BIO_free(kb);
  if (rc) {
    free(*cert_pem);
    free(*key_pem);
    *cert_pem = *key_pem = NULL;
  }
  return rc;
}
