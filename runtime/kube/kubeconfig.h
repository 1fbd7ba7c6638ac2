/* kubeconfig.h: where the API server is and how to authenticate to it.
 *
 * Resolution order (kubectl / client-go habits):
 *   1. --kubeconfig FILE (opts->kubeconfig),
 *   2. $KUBECONFIG (the first existing file of a colon-separated list; no merging),
 *   3. in-cluster: $KUBERNETES_SERVICE_HOST/$KUBERNETES_SERVICE_PORT and
 *      /var/run/secrets/kubernetes.io/serviceaccount/{token,ca.crt,namespace},
 *   4. ~/.kube/config.
 * From a kubeconfig the context is opts->context or current-context; of its
 * cluster: server, certificate-authority-data | certificate-authority,
 * insecure-skip-tls-verify, tls-server-name; of its user: token | tokenFile,
 * client-certificate-data | client-certificate, client-key-data | client-key.
 * Relative file paths are resolved against the kubeconfig's directory.
 * exec and auth-provider users are refused with a clear error.
 *
 * Ownership: k8s_config_load returns an owned config; every string and blob in
 * it is owned by the config and freed by k8s_config_free. The token is a secret:
 * no function here logs it, and callers must not either. */
#ifndef SCHEDSIM_KUBE_KUBECONFIG_H
#define SCHEDSIM_KUBE_KUBECONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

struct k8s_config_options {
  const char *kubeconfig; /* --kubeconfig, or NULL */
  const char *context;    /* --context, or NULL for current-context */
  bool no_in_cluster;     /* skip step 3 (tools and tests) */
};

struct k8s_config {
  char *server;     /* "https://host:port", no trailing slash */
  char *ca;         /* PEM bundle (decoded), or NULL: the system CA store */
  size_t ca_len;    /* bytes in ca */
  char *cert;       /* PEM client certificate, or NULL */
  size_t cert_len;  /* bytes in cert */
  char *key;        /* PEM client key, or NULL */
  size_t key_len;   /* bytes in key */
  char *token;      /* bearer token, or NULL (never log it) */
  char *token_file; /* file the token came from, re-read by k8s_config_refresh_token; or NULL */
  bool insecure;    /* insecure-skip-tls-verify */
  char *tls_server_name;       /* tls-server-name: the name for SNI and the certificate check,
                                  while the connection goes to server's address; or NULL */
  char *namespace;             /* the context's namespace, or the in-cluster namespace; or NULL */
  char *context;               /* context name used, or NULL for in-cluster */
  char *user;                  /* user name of the context (for logs), or NULL */
  char *source;                /* where it came from, for logs: a file path, or "in-cluster" */
  struct timespec token_mtime; /* mtime of token_file when last read */
};

/* Loads the configuration following the order above. On success returns 0 and
 * stores an owned config in *out. On failure returns -1 (usage/input error:
 * missing file, unknown context, malformed YAML, unsupported auth) with a
 * message naming the file and field in err. */
int k8s_config_load(const struct k8s_config_options *opts, struct k8s_config **out, char *err,
                    size_t errlen);

/* Parses a kubeconfig from memory (path is used in messages and to resolve
 * relative file paths; may be NULL). Same contract as k8s_config_load. */
int k8s_config_parse(const char *text, size_t len, const char *path, const char *context,
                     struct k8s_config **out, char *err, size_t errlen);

/* Re-reads cfg->token_file if its mtime changed (a projected service-account
 * token is rotated by the kubelet). Returns 1 if the token changed, 0 if not
 * (or there is no token file), -1 if the file cannot be read (the old token is
 * kept). Cheap: one stat(2) when nothing changed. */
int k8s_config_refresh_token(struct k8s_config *cfg);

/* Frees the config and wipes the token and key bytes. NULL is a no-op. */
void k8s_config_free(struct k8s_config *cfg);

#endif
