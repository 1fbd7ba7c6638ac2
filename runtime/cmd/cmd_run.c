/* cmd_run.c: `schedsim-operator run`, the controller process. Owns the flag
 * parsing (controller-runtime's flag names, doc/development.md) and the
 * wiring: logger, Manager (runtime/kube/manager.h), then the controllers
 * (k8s_controllers_add, runtime/controller/). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "cmd/settings.h"
#include "core/log.h"
#include "kube/manager.h"

/* ==== flags ================================================================ */

struct run_flags {
  struct k8s_manager_options mo;
  struct k8s_controllers_options co;
  struct settings st;
  const char *log_format;
  int verbosity;
};

static void usage(FILE *out)
{
  fprintf(
      out,
      "usage: schedsim-operator run [flags]\n\n"
      "flags:\n"
      "  --kubeconfig FILE                  kubeconfig (default: $KUBECONFIG, in-cluster, "
      "~/.kube/config)\n"
      "  --context NAME                     kubeconfig context (default: current-context)\n"
      "  --namespace, -n NS[,NS...]         watch only these namespaces, one list+watch each\n"
      "                                     (default: all; the namespaced install mode)\n"
      "  --leader-elect                     elect a leader through a Lease before "
      "reconciling\n"
      "  --leader-election-namespace NS     namespace of the Lease (default: in-cluster or "
      "context namespace)\n"
      "  --leader-election-id NAME          name of the Lease (default: schedsim-operator)\n"
      "  --metrics-bind-address ADDR        /metrics address (default :8080; 0 disables)\n"
      "  --metrics-secure                   serve /metrics over HTTPS, each scrape authorized\n"
      "                                     by the API server (TokenReview and\n"
      "                                     SubjectAccessReview for get /metrics)\n"
      "  --metrics-cert-path DIR            serving certificate for --metrics-secure (default:\n"
      "                                     self-signed at start)\n"
      "  --metrics-cert-name NAME           certificate file in DIR (default tls.crt)\n"
      "  --metrics-cert-key NAME            key file in DIR (default tls.key)\n"
      "  --health-probe-bind-address ADDR   /healthz and /readyz address (default :8081; 0 "
      "disables)\n"
      "  --scripts DIR                      script set directory (default: bundled)\n"
      "  --scripts-configmap NS/NAME        ConfigMap overlaying the script set\n"
      "  --shutdown-timeout DURATION        graceful shutdown bound (default 10s)\n"
      "  --sync-period DURATION             reconcile every CR this often (default 10m; env "
      "SCHEDSIM_SYNC_PERIOD)\n"
      "  --max-concurrent-reconciles N      CRs with writes in flight per controller "
      "(default 16;\n"
      "                                     env SCHEDSIM_MAX_CONCURRENT_RECONCILES)\n"
      "  --child-events-batch-period DURATION  fold a CR's child events of this period into\n"
      "                                     one reconcile (default 100ms, 0 off; env\n"
      "                                     SCHEDSIM_CHILD_EVENTS_BATCH_PERIOD)\n"
      "  --lua-memory-limit BYTES           memory cap of the script set (default 64Mi; env\n"
      "                                     SCHEDSIM_LUA_MEMORY_LIMIT)\n"
      "  --lua-instruction-budget N         Lua instructions per reconcile (default 1000000;\n"
      "                                     env SCHEDSIM_LUA_INSTRUCTION_BUDGET)\n"
      "  --log-format json|text             log format (default json)\n"
      "  -v N                               log verbosity (default 0)\n");
}

/* Matches "--name VALUE" and "--name=VALUE"; advances *i past the value. */
static int flag_value(int argc, char **argv, int *i, const char *name, const char **value)
{
  const char *a = argv[*i];
  size_t n = strlen(name);
  if (strncmp(a, name, n) != 0) return 0;
  if (a[n] == '=') {
    *value = a + n + 1;
    return 1;
  }
  if (a[n] != 0) return 0;
  if (*i + 1 >= argc) {
    fprintf(stderr, "schedsim-operator run: %s needs a value\n", name);
    return -1;
  }
  *value = argv[++*i];
  return 1;
}

/* Matches a boolean flag as Go's flag package spells it: "--name",
 * "--name=true", "--name=false"; sets *value and returns 1, else 0. */
static int bool_flag(const char *a, const char *name, bool *value)
{
  size_t n = strlen(name);
  if (strncmp(a, name, n) != 0) return 0;
  if (!a[n] || !strcmp(a + n, "=true")) {
    *value = true;
    return 1;
  }
  if (!strcmp(a + n, "=false")) {
    *value = false;
    return 1;
  }
  return 0;
}

/* The flag at argv[*i] (and its value, *i advanced past it) into f.
 * Returns 1 when it was one of run's flags, 0 when unknown, -1 after a
 * message on a bad value. */
static int parse_flag(int argc, char **argv, int *i, struct run_flags *f)
{
  const char *a = argv[*i], *v = NULL;
  int r;
#define STR_FLAG(name, field)                                                                      \
  if ((r = flag_value(argc, argv, i, name, &v)) != 0) {                                            \
    if (r < 0) return -1;                                                                          \
    field = v;                                                                                     \
    return 1;                                                                                      \
  }
  STR_FLAG("--kubeconfig", f->mo.kubeconfig)
  STR_FLAG("--context", f->mo.context)
  STR_FLAG("--namespace", f->mo.namespace)
  STR_FLAG("-n", f->mo.namespace)
  STR_FLAG("--leader-election-namespace", f->mo.leader_election_namespace)
  STR_FLAG("--leader-election-id", f->mo.leader_election_id)
  STR_FLAG("--metrics-bind-address", f->mo.metrics_addr)
  STR_FLAG("--health-probe-bind-address", f->mo.health_addr)
  STR_FLAG("--metrics-cert-path", f->mo.metrics_cert_path)
  STR_FLAG("--metrics-cert-name", f->mo.metrics_cert_name)
  STR_FLAG("--metrics-cert-key", f->mo.metrics_cert_key)
  STR_FLAG("--scripts-configmap", f->co.scripts_configmap)
  STR_FLAG("--scripts", f->co.scripts_dir)
  STR_FLAG("--log-format", f->log_format)
#undef STR_FLAG
  if (bool_flag(a, "--leader-elect", &f->mo.leader_elect) ||
      bool_flag(a, "--metrics-secure", &f->mo.metrics_secure))
    return 1;
  if ((r = flag_value(argc, argv, i, "--shutdown-timeout", &v)) != 0) {
    if (r < 0 || settings_parse_duration(v, &f->mo.shutdown_timeout)) {
      fprintf(stderr, "schedsim-operator run: --shutdown-timeout: bad duration \"%s\"\n",
              v ? v : "");
      return -1;
    }
    return 1;
  }
  if ((r = settings_flag("run", argc, argv, i, 1, &f->st)) != 0) return r < 0 ? -1 : 1;
  if ((r = flag_value(argc, argv, i, "-v", &v)) != 0 ||
      (r = flag_value(argc, argv, i, "--v", &v)) != 0) {
    char *end;
    long n = r > 0 ? strtol(v, &end, 10) : -1;
    if (r < 0 || *end || n < 0) {
      fprintf(stderr, "schedsim-operator run: -v: want a number >= 0\n");
      return -1;
    }
    f->verbosity = (int)n;
    return 1;
  }
  return 0;
}

/* Checks the flags together, after the last one: the log format, the
 * settings (environment fallbacks, settings_finish) copied into the
 * controller options, and the ConfigMap reference. Returns 0, or -1 after
 * a message. */
static int finish_flags(struct run_flags *f)
{
  if (strcmp(f->log_format, "json") && strcmp(f->log_format, "text")) {
    fprintf(stderr, "schedsim-operator run: --log-format: want json or text, got \"%s\"\n",
            f->log_format);
    return -1;
  }
  if (settings_finish("run", 1, &f->st) != 0) return -1;
  f->co.lua_memory_limit = f->st.lua_memory_limit;
  f->co.lua_instruction_budget = f->st.lua_instruction_budget;
  f->co.sync_period = f->st.sync_period;
  f->co.max_concurrent = f->st.max_concurrent;
  f->co.child_batch = f->st.child_batch;
  if (f->co.scripts_configmap && !strchr(f->co.scripts_configmap, '/')) {
    fprintf(stderr, "schedsim-operator run: --scripts-configmap: want NAMESPACE/NAME\n");
    return -1;
  }
  return 0;
}

/* Reads run's flags into f. Returns 0 to run, 1 after --help, -1 after a
 * message on a usage error. */
static int parse_flags(int argc, char **argv, struct run_flags *f)
{
  memset(f, 0, sizeof(*f));
  f->log_format = "json";
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
      usage(stdout);
      return 1;
    }
    int r = parse_flag(argc, argv, &i, f);
    if (r < 0) return -1;
    if (r == 0) {
      fprintf(stderr, "schedsim-operator run: unknown flag %s\n", argv[i]);
      return -1;
    }
  }
  return finish_flags(f);
}

/* ==== run ================================================================== */

int cmd_run(int argc, char **argv)
{
  struct run_flags f;
  int rc = parse_flags(argc, argv, &f);
  if (rc > 0) return 0;
  if (rc < 0) {
    usage(stderr);
    return 2;
  }
  k8s_log_init(!strcmp(f.log_format, "text") ? K8S_LOG_TEXT : K8S_LOG_JSON, f.verbosity, NULL);

  struct k8s_manager *m = NULL;
  char err[1024] = "";
  rc = k8s_manager_new(&f.mo, &m, err, sizeof(err));
  if (rc) {
    fprintf(stderr, "schedsim-operator run: %s\n", err);
    return rc;
  }
  rc = k8s_controllers_add(m, &f.co, err, sizeof(err));
  if (rc) {
    fprintf(stderr, "schedsim-operator run: %s\n", err[0] ? err : "cannot set up the controllers");
    k8s_manager_free(m);
    return rc;
  }
  rc = k8s_manager_run(m);
  k8s_log(K8S_LOG_INFO, "exiting", K8S_NUM("code"), rc ? "1" : "0", NULL);
  k8s_manager_free(m);
  return rc;
}
