/* kubeconfig.c: loads the API server address and credentials (kubeconfig.h):
 * kubeconfig files (parsed with runtime/core/yaml.h, i.e. libyaml) and the
 * in-cluster service account. Owns nothing after a load but the returned
 * k8s_config. Never logs or prints a token. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/yaml.h"
#include "kube/kubeconfig.h"
#include "core/util.h"

#define SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

/* ==== small helpers ======================================================== */

static void wipe_free(char *p, size_t n)
{
  if (!p) return;
  volatile char *v = p;
  while (n--)
    *v++ = 0;
  free(p);
}

static int b64val(int c)
{
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}

/* Decodes base64 (whitespace ignored, padding optional) into a malloc'd
 * NUL-terminated buffer. NULL on invalid input. */
static char *b64decode(const char *s, size_t *outlen)
{
  size_t n = strlen(s);
  char *out = malloc(n / 4 * 3 + 4);
  if (!out) return NULL;
  size_t o = 0;
  unsigned acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    int c = (unsigned char)s[i];
    if (c == '=' || c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    int v = b64val(c);
    if (v < 0) {
      free(out);
      return NULL;
    }
    acc = (acc << 6) | (unsigned)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (char)((acc >> bits) & 0xff);
    }
  }
  out[o] = 0;
  *outlen = o;
  return out;
}

static const char *jstr(json_t *obj, const char *key)
{
  json_t *v = json_object_get(obj, key);
  return json_is_string(v) ? json_string_value(v) : NULL;
}

/* An empty object kept alive by `owner` (an array), so callers borrow it. */
static json_t *empty_in(json_t *owner)
{
  json_t *e = json_object();
  json_array_append_new(owner, e);
  return e;
}

/* The entry of list `arr` (of {name, <field>: {...}}) named `name`; a missing
 * <field> gives an empty object owned by `owner`. */
static json_t *named(json_t *arr, const char *name, const char *field, json_t *owner)
{
  size_t i;
  json_t *e;
  json_array_foreach(arr, i, e)
  {
    const char *n = jstr(e, "name");
    if (n && !strcmp(n, name)) {
      json_t *v = json_object_get(e, field);
      return json_is_object(v) ? v : empty_in(owner);
    }
  }
  return NULL;
}

/* A path relative to the kubeconfig's directory. Returns malloc'd. */
static char *resolve_path(const char *base, const char *p)
{
  if (p[0] == '/' || !base) return strdup(p);
  const char *slash = strrchr(base, '/');
  if (!slash) return strdup(p);
  size_t dl = (size_t)(slash - base);
  char *out = malloc(dl + strlen(p) + 2);
  if (!out) return NULL;
  memcpy(out, base, dl);
  out[dl] = '/';
  strcpy(out + dl + 1, p);
  return out;
}

/* Loads a PEM/byte field: "<field>-data" (base64) or "<field>" (a file). */
static int load_blob(json_t *obj, const char *field, const char *path, char **out, size_t *len,
                     char *err, size_t errlen)
{
  char key[96];
  snprintf(key, sizeof(key), "%s-data", field);
  const char *data = jstr(obj, key);
  if (data && *data) {
    *out = b64decode(data, len);
    if (!*out) {
      k8s_seterr(err, errlen, "%s: %s: invalid base64", path ? path : "<kubeconfig>", key);
      return -1;
    }
    return 0;
  }
  const char *file = jstr(obj, field);
  if (file && *file) {
    char *p = resolve_path(path, file);
    *out = p ? k8s_read_file(p, 0, len) : NULL;
    if (!*out) {
      k8s_seterr(err, errlen, "%s: %s: cannot read %s: %s", path ? path : "<kubeconfig>", field,
                 p ? p : file, strerror(errno));
      free(p);
      return -1;
    }
    free(p);
  }
  return 0;
}

/* Trims trailing whitespace (token files end with a newline). */
static void rtrim(char *s)
{
  size_t n = strlen(s);
  while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
    s[--n] = 0;
}

static int read_token_file(struct k8s_config *cfg)
{
  struct stat st;
  if (stat(cfg->token_file, &st) != 0) return -1;
  size_t len = 0;
  char *t = k8s_read_file(cfg->token_file, 0, &len);
  if (!t) return -1;
  rtrim(t);
  if (cfg->token) wipe_free(cfg->token, strlen(cfg->token));
  cfg->token = t;
  cfg->token_mtime = st.st_mtim;
  return 0;
}

/* ==== kubeconfig =========================================================== */

int k8s_config_parse(const char *text, size_t len, const char *path, const char *context,
                     struct k8s_config **out, char *err, size_t errlen)
{
  const char *where = path ? path : "<kubeconfig>";
  char yerr[256];
  json_t *docs = k8s_yaml_load(text, len, where, yerr, sizeof(yerr));
  if (!docs) {
    k8s_seterr(err, errlen, "%s", yerr);
    return -1;
  }
  json_t *root = json_array_get(docs, 0);
  struct k8s_config *cfg = calloc(1, sizeof(*cfg));
  int rc = -1;
  if (!cfg) goto done;
  if (!json_is_object(root)) {
    k8s_seterr(err, errlen, "%s: not a kubeconfig (empty or not a mapping)", where);
    goto done;
  }
  const char *ctxname = context && *context ? context : jstr(root, "current-context");
  if (!ctxname || !*ctxname) {
    k8s_seterr(err, errlen, "%s: current-context: not set (use --context)", where);
    goto done;
  }
  json_t *ctx = named(json_object_get(root, "contexts"), ctxname, "context", docs);
  if (!ctx) {
    k8s_seterr(err, errlen, "%s: contexts: no context named \"%s\"", where, ctxname);
    goto done;
  }
  const char *cluster_name = jstr(ctx, "cluster");
  const char *user_name = jstr(ctx, "user");
  json_t *cluster =
      cluster_name ? named(json_object_get(root, "clusters"), cluster_name, "cluster", docs) : NULL;
  if (!cluster) {
    k8s_seterr(err, errlen, "%s: contexts[%s].cluster: no cluster named \"%s\"", where, ctxname,
               cluster_name ? cluster_name : "");
    goto done;
  }
  json_t *user = user_name ? named(json_object_get(root, "users"), user_name, "user", docs) : NULL;
  if (!user) user = empty_in(docs); /* anonymous */

  const char *server = jstr(cluster, "server");
  if (!server || !*server) {
    k8s_seterr(err, errlen, "%s: clusters[%s].server: missing", where, cluster_name);
    goto done;
  }
  cfg->server = strdup(server);
  size_t sl = strlen(cfg->server);
  while (sl && cfg->server[sl - 1] == '/')
    cfg->server[--sl] = 0;
  json_t *ins = json_object_get(cluster, "insecure-skip-tls-verify");
  cfg->insecure = json_is_true(ins);
  const char *sni = jstr(cluster, "tls-server-name");
  if (sni && *sni) {
    for (const char *c = sni; *c; c++)
      if (!(isalnum((unsigned char)*c) || *c == '-' || *c == '.')) {
        k8s_seterr(err, errlen, "%s: clusters[%s].tls-server-name: \"%s\" is not a host name",
                   where, cluster_name, sni);
        goto done;
      }
    cfg->tls_server_name = strdup(sni);
  }
  if (load_blob(cluster, "certificate-authority", path, &cfg->ca, &cfg->ca_len, err, errlen))
    goto done;
  if (load_blob(user, "client-certificate", path, &cfg->cert, &cfg->cert_len, err, errlen))
    goto done;
  if (load_blob(user, "client-key", path, &cfg->key, &cfg->key_len, err, errlen)) goto done;
  if (!cfg->cert != !cfg->key) {
    k8s_seterr(err, errlen, "%s: users[%s]: client-certificate and client-key must come together",
               where, user_name);
    goto done;
  }
  if (json_object_get(user, "exec") || json_object_get(user, "auth-provider")) {
    k8s_seterr(err, errlen, "%s: users[%s]: exec and auth-provider credentials are not supported",
               where, user_name);
    goto done;
  }
  const char *token = jstr(user, "token");
  const char *token_file = jstr(user, "tokenFile");
  if (token && *token) {
    cfg->token = strdup(token);
  } else if (token_file && *token_file) {
    cfg->token_file = resolve_path(path, token_file);
    if (!cfg->token_file || read_token_file(cfg)) {
      k8s_seterr(err, errlen, "%s: users[%s].tokenFile: cannot read %s", where, user_name,
                 token_file);
      goto done;
    }
  }
  const char *ns = jstr(ctx, "namespace");
  if (ns && *ns) cfg->namespace = strdup(ns);
  cfg->context = strdup(ctxname);
  if (user_name) cfg->user = strdup(user_name);
  cfg->source = strdup(where);
  rc = 0;
done:
  json_decref(docs);
  if (rc == 0) {
    *out = cfg;
  } else {
    k8s_config_free(cfg);
    *out = NULL;
  }
  return rc;
}

static int load_file(const char *path, const char *context, struct k8s_config **out, char *err,
                     size_t errlen)
{
  size_t len = 0;
  char *text = k8s_read_file(path, 0, &len);
  if (!text) {
    k8s_seterr(err, errlen, "%s: cannot read kubeconfig: %s", path, strerror(errno));
    return -1;
  }
  int rc = k8s_config_parse(text, len, path, context, out, err, errlen);
  free(text);
  return rc;
}

/* ==== in-cluster =========================================================== */

static int load_in_cluster(struct k8s_config **out, char *err, size_t errlen)
{
  const char *host = getenv("KUBERNETES_SERVICE_HOST");
  const char *port = getenv("KUBERNETES_SERVICE_PORT");
  struct k8s_config *cfg = calloc(1, sizeof(*cfg));
  if (!cfg) return -1;
  char buf[512];
  if (strchr(host, ':'))
    snprintf(buf, sizeof(buf), "https://[%s]:%s", host, port);
  else
    snprintf(buf, sizeof(buf), "https://%s:%s", host, port);
  cfg->server = strdup(buf);
  cfg->token_file = strdup(SA_DIR "/token");
  if (read_token_file(cfg)) {
    k8s_seterr(err, errlen, "in-cluster: cannot read %s/token: %s", SA_DIR, strerror(errno));
    k8s_config_free(cfg);
    return -1;
  }
  cfg->ca = k8s_read_file(SA_DIR "/ca.crt", 0, &cfg->ca_len);
  if (!cfg->ca) {
    k8s_seterr(err, errlen, "in-cluster: cannot read %s/ca.crt: %s", SA_DIR, strerror(errno));
    k8s_config_free(cfg);
    return -1;
  }
  char *ns = k8s_read_file(SA_DIR "/namespace", 0, NULL);
  if (ns) {
    rtrim(ns);
    cfg->namespace = ns;
  }
  cfg->source = strdup("in-cluster");
  *out = cfg;
  return 0;
}

/* ==== public =============================================================== */

int k8s_config_load(const struct k8s_config_options *opts, struct k8s_config **out, char *err,
                    size_t errlen)
{
  const char *context = opts ? opts->context : NULL;
  *out = NULL;
  if (opts && opts->kubeconfig && *opts->kubeconfig)
    return load_file(opts->kubeconfig, context, out, err, errlen);

  const char *env = getenv("KUBECONFIG");
  if (env && *env) {
    char *list = strdup(env), *save = NULL;
    for (char *p = strtok_r(list, ":", &save); p; p = strtok_r(NULL, ":", &save)) {
      struct stat st;
      if (stat(p, &st) == 0) {
        int rc = load_file(p, context, out, err, errlen);
        free(list);
        return rc;
      }
    }
    free(list);
  }
  if (!(opts && opts->no_in_cluster) && getenv("KUBERNETES_SERVICE_HOST") &&
      getenv("KUBERNETES_SERVICE_PORT") && !(context && *context))
    return load_in_cluster(out, err, errlen);

  const char *home = getenv("HOME");
  if (home && *home) {
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/.kube/config", home);
    struct stat st;
    if (stat(path, &st) == 0) return load_file(path, context, out, err, errlen);
  }
  k8s_seterr(err, errlen,
             "no kubeconfig: pass --kubeconfig, set KUBECONFIG, run in a cluster, or create "
             "~/.kube/config");
  return -1;
}

int k8s_config_refresh_token(struct k8s_config *cfg)
{
  if (!cfg || !cfg->token_file) return 0;
  struct stat st;
  if (stat(cfg->token_file, &st) != 0) return -1;
  if (st.st_mtim.tv_sec == cfg->token_mtime.tv_sec &&
      st.st_mtim.tv_nsec == cfg->token_mtime.tv_nsec)
    return 0;
  char *old = cfg->token ? strdup(cfg->token) : NULL;
  if (read_token_file(cfg)) {
    free(old);
    return -1;
  }
  int changed = !old || strcmp(old, cfg->token) != 0;
  if (old) wipe_free(old, strlen(old));
  return changed;
}

void k8s_config_free(struct k8s_config *cfg)
{
  if (!cfg) return;
  free(cfg->server);
  free(cfg->tls_server_name);
  free(cfg->ca);
  free(cfg->cert);
  wipe_free(cfg->key, cfg->key_len);
  if (cfg->token) wipe_free(cfg->token, strlen(cfg->token));
  free(cfg->token_file);
  free(cfg->namespace);
  free(cfg->context);
  free(cfg->user);
  free(cfg->source);
  free(cfg);
}
