/* kubeprobe.c: a small CLI over runtime/kube for the e2e specs (and for
 * measurements). Every command prints JSON lines on stdout; errors are one
 * line {"error":{"code":…,"reason":…,"message":…}} and exit code 1; usage
 * errors exit 2.
 *
 *   kubeprobe [global] watch --api-version V --kind K [-n NS] [-l SEL]
 *             [--field-selector SEL] [--dead-stream-timeout S] [--quiet]
 *             [--stats-interval S] [--exit-after-sync] [--for S] [--objects] [--dump]
 *       one line per informer event {"type":"ADDED|MODIFIED|DELETED","key",
 *       "rv","latency_us"}, {"type":"SYNCED","relist":b,"count":n}, state
 *       changes {"type":"STATE","state":…,"relist":b,"reason":…}; with
 *       --stats-interval periodic {"type":"STATS","count","rss_kb",…}.
 *       Runs until SIGTERM/SIGINT (or --for seconds). --objects adds the cached
 *       object to event lines; --dump prints {"type":"DUMP","items":{key:rv}}
 *       of the whole cache on exit.
 *   kubeprobe [global] get|delete --api-version V --kind K [-n NS] NAME
 *   kubeprobe [global] list --api-version V --kind K [-n NS] [-l SEL] [--limit N]
 *   kubeprobe [global] apply|apply-status|create|update|update-status -f FILE
 *             [--dry-run] [--field-manager M] [--no-force]
 *   kubeprobe [global] discovery [--api-version V --kind K]
 *   kubeprobe [global] bulk-create -n NS --count N [--prefix P] [--parallel P]
 *             [--data-bytes B]
 *   kubeprobe [global] event --api-version V --kind K [-n NS] NAME --reason R
 *             [--note N] [--count N] [--distinct]  (through the EventRecorder;
 *             --distinct numbers the notes so that none aggregates; prints
 *             {"type":"EVENTS","posted":n,"aggregated":n,"dropped":n})
 *   kubeprobe [global] lease --lease-namespace NS --lease-name NAME [--identity ID]
 *             [--hold S]   (campaign, print {"type":"LEADING"}, release after S)
 *   kubeprobe selftest   (no server: loop timers and ticks, kubeconfig parsing,
 *             paths, bind addresses; prints {"selftest":"ok","checks":n} or the
 *             first failure and exits 1)
 * global: --kubeconfig FILE, --context NAME, -v N. FILE "-" is stdin (JSON or
 * YAML, one object). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/yaml.h"
#include "kube/discovery.h"
#include "kube/events.h"
#include "kube/http.h"
#include "kube/informer.h"
#include "kube/kubeconfig.h"
#include "kube/leaderelection.h"
#include "kube/loop.h"
#include "kube/restclient.h"
#include "kube/server.h"

/* ==== state ================================================================ */

struct opts {
  const char *kubeconfig, *context;
  const char *api_version, *kind, *resource, *ns, *labels, *fields, *file, *name;
  const char *field_manager, *prefix, *reason, *note, *lease_ns, *lease_name, *identity;
  double dead_stream_timeout, stats_interval, run_for, hold;
  long limit, count, parallel, data_bytes;
  bool quiet, exit_after_sync, dry_run, no_force, objects, dump, distinct;
  int verbosity;
};

static struct {
  struct opts o;
  struct k8s_loop *loop;
  struct k8s_config *cfg;
  struct k8s_http *http;
  struct k8s_recorder *recorder; /* the event command's */
  struct k8s_client *client;
  struct k8s_discovery *disc;
  struct k8s_metrics *metrics;
  int rc;
  struct k8s_gvr gvr;
  char group[256], version[64];
  /* bulk */
  long sent, done, failed;
  /* watch */
  struct k8s_informer *inf;
  double max_latency, sum_latency;
  long nlatency;
} g;

static void out_json(json_t *v)
{
  char *s = json_dumps(v, JSON_COMPACT);
  if (s) {
    fputs(s, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    free(s);
  }
  json_decref(v);
}

static void out_error(const struct k8s_status *st)
{
  out_json(json_pack("{s:{s:i, s:s, s:s}}", "error", "code", st->code, "reason",
                     st->reason ? st->reason : "", "message", st->message ? st->message : ""));
}

static void fail_usage(const char *msg)
{
  fprintf(stderr, "kubeprobe: %s\n", msg);
  exit(2);
}

static long rss_kb(void)
{
  FILE *f = fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  long kb = -1;
  while (fgets(line, sizeof(line), f))
    if (!strncmp(line, "VmRSS:", 6)) kb = strtol(line + 6, NULL, 10);
  fclose(f);
  return kb;
}

/* ==== setup ================================================================ */

static void connect_client(void)
{
  char err[512];
  struct k8s_config_options co = {
      .kubeconfig = g.o.kubeconfig, .context = g.o.context, .no_in_cluster = true};
  if (k8s_config_load(&co, &g.cfg, err, sizeof(err))) {
    fprintf(stderr, "kubeprobe: %s\n", err);
    exit(2);
  }
  g.loop = k8s_loop_new();
  g.metrics = k8s_metrics_new();
  g.http = k8s_http_new(g.loop, g.cfg, NULL);
  g.client = k8s_client_new(g.http, g.metrics);
  g.disc = k8s_discovery_new(g.client, 30);
  if (!g.loop || !g.http || !g.client || !g.disc) {
    fprintf(stderr, "kubeprobe: cannot set up the client\n");
    exit(1);
  }
}

static void teardown(void)
{
  k8s_discovery_free(g.disc);
  k8s_client_free(g.client);
  k8s_http_free(g.http);
  k8s_loop_free(g.loop);
  k8s_metrics_free(g.metrics);
  k8s_config_free(g.cfg);
}

static void stop_loop(int rc)
{
  g.rc = rc;
  k8s_loop_stop(g.loop);
}

static void disc_done(struct k8s_discovery *d, bool ok, void *data)
{
  *(int *)data = ok ? 1 : -1;
  k8s_loop_stop(g.loop);
}

/* Resolves apiVersion+kind (or --resource) into g.gvr; exits on failure. */
static void resolve_gvr(const char *api_version, const char *kind)
{
  if (!api_version || !kind) fail_usage("--api-version and --kind are required");
  if (k8s_parse_api_version(api_version, g.group, sizeof(g.group), g.version, sizeof(g.version)))
    fail_usage("malformed --api-version");
  if (g.o.resource) {
    g.gvr.group = g.group;
    g.gvr.version = g.version;
    g.gvr.resource = g.o.resource;
    g.gvr.namespaced = g.o.ns != NULL;
    return;
  }
  int state = 0;
  k8s_discovery_refresh(g.disc, disc_done, &state);
  k8s_loop_run(g.loop);
  if (state < 0) {
    struct k8s_status st = {0, "Transport", "discovery failed", NULL};
    out_error(&st);
    exit(1);
  }
  if (k8s_discovery_gvr(g.disc, api_version, kind, &g.gvr)) {
    char msg[512];
    snprintf(msg, sizeof(msg), "the server does not serve %s %s", api_version, kind);
    struct k8s_status st = {404, "NotFound", msg, NULL};
    out_error(&st);
    exit(1);
  }
}

static json_t *load_object(const char *file)
{
  if (!file) fail_usage("-f FILE is required");
  FILE *f = strcmp(file, "-") ? fopen(file, "rb") : stdin;
  if (!f) fail_usage("cannot open -f file");
  size_t cap = 65536, n = 0;
  char *buf = malloc(cap);
  size_t r;
  while ((r = fread(buf + n, 1, cap - n, f)) > 0) {
    n += r;
    if (n == cap) buf = realloc(buf, cap *= 2);
  }
  if (f != stdin) fclose(f);
  char err[256];
  json_t *docs = k8s_yaml_load(buf, n, file, err, sizeof(err));
  free(buf);
  if (!docs) fail_usage(err);
  json_t *obj = json_incref(json_array_get(docs, 0));
  json_decref(docs);
  if (!json_is_object(obj)) fail_usage("-f: no object");
  return obj;
}

/* ==== one-shot verbs ======================================================= */

static void print_result(const struct k8s_result *res, void *data)
{
  if (res->error) {
    out_error(res->error);
    stop_loop(1);
    return;
  }
  json_t *o = res->object ? json_incref(res->object) : json_object();
  out_json(o);
  stop_loop(0);
}

static int cmd_get(bool del)
{
  connect_client();
  resolve_gvr(g.o.api_version, g.o.kind);
  if (!g.o.name) fail_usage("NAME is required");
  int rc =
      del ? k8s_client_delete(g.client, &g.gvr, g.o.ns, g.o.name, "Background", print_result, NULL)
          : k8s_client_get(g.client, &g.gvr, g.o.ns, g.o.name, print_result, NULL);
  if (rc) return 1;
  k8s_loop_run(g.loop);
  return g.rc;
}

static int cmd_list(void)
{
  connect_client();
  resolve_gvr(g.o.api_version, g.o.kind);
  struct k8s_list_opts lo = {
      .label_selector = g.o.labels, .field_selector = g.o.fields, .limit = g.o.limit};
  if (k8s_client_list(g.client, &g.gvr, g.o.ns, &lo, print_result, NULL)) return 1;
  k8s_loop_run(g.loop);
  return g.rc;
}

static int cmd_write(const char *verb)
{
  connect_client();
  json_t *obj = load_object(g.o.file);
  const char *av = json_string_value(json_object_get(obj, "apiVersion"));
  const char *kind = json_string_value(json_object_get(obj, "kind"));
  json_t *meta = json_object_get(obj, "metadata");
  const char *name = json_string_value(json_object_get(meta, "name"));
  const char *ns = json_string_value(json_object_get(meta, "namespace"));
  if (!ns) ns = g.o.ns;
  resolve_gvr(av, kind);
  struct k8s_apply_opts ao = {
      .field_manager = g.o.field_manager, .force = !g.o.no_force, .dry_run = g.o.dry_run};
  int rc;
  if (!strcmp(verb, "apply"))
    rc = k8s_client_apply(g.client, &g.gvr, ns, name, NULL, obj, &ao, print_result, NULL);
  else if (!strcmp(verb, "apply-status"))
    rc = k8s_client_apply(g.client, &g.gvr, ns, name, "status", obj, &ao, print_result, NULL);
  else if (!strcmp(verb, "create"))
    rc = k8s_client_create(g.client, &g.gvr, ns, obj, print_result, NULL);
  else if (!strcmp(verb, "update"))
    rc = k8s_client_update(g.client, &g.gvr, ns, name, NULL, obj, print_result, NULL);
  else
    rc = k8s_client_update(g.client, &g.gvr, ns, name, "status", obj, print_result, NULL);
  json_decref(obj);
  if (rc) {
    fprintf(stderr, "kubeprobe: cannot send (%d)\n", rc);
    return 1;
  }
  k8s_loop_run(g.loop);
  return g.rc;
}

static int cmd_discovery(void)
{
  connect_client();
  int state = 0;
  k8s_discovery_refresh(g.disc, disc_done, &state);
  k8s_loop_run(g.loop);
  if (state < 0) return 1;
  if (g.o.api_version && g.o.kind) {
    const struct k8s_api_resource *r = k8s_discovery_lookup(g.disc, g.o.api_version, g.o.kind);
    if (!r) {
      out_json(json_pack("{s:b}", "served", 0));
      return 1;
    }
    char grp[256], ver[64];
    k8s_parse_api_version(g.o.api_version, grp, sizeof(grp), ver, sizeof(ver));
    const char *vers[16];
    size_t nv = k8s_discovery_versions(g.disc, grp, g.o.kind, vers, 16);
    json_t *va = json_array();
    for (size_t i = 0; i < nv && i < 16; i++)
      json_array_append_new(va, json_string(vers[i]));
    out_json(json_pack("{s:b, s:s, s:b, s:b, s:o}", "served", 1, "resource", r->resource,
                       "namespaced", r->namespaced, "status", r->has_status, "versions", va));
    return 0;
  }
  size_t n;
  const struct k8s_api_resource *rs = k8s_discovery_resources(g.disc, &n);
  for (size_t i = 0; i < n; i++)
    out_json(json_pack("{s:s, s:s, s:s, s:b}", "apiVersion", rs[i].api_version, "kind", rs[i].kind,
                       "resource", rs[i].resource, "namespaced", rs[i].namespaced));
  return 0;
}

/* ==== bulk-create ========================================================== */

static void bulk_send(void);

static void bulk_done(const struct k8s_result *res, void *data)
{
  g.done++;
  if (res->error && res->error->code != 409) {
    if (g.failed++ < 3) out_error(res->error);
  }
  if (g.done == g.o.count) {
    out_json(json_pack("{s:s, s:I, s:I}", "type", "BULK", "done", (json_int_t)g.done, "failed",
                       (json_int_t)g.failed));
    stop_loop(g.failed ? 1 : 0);
    return;
  }
  bulk_send();
}

static void bulk_send(void)
{
  static char *payload;
  if (!payload) {
    payload = malloc((size_t)g.o.data_bytes + 1);
    memset(payload, 'x', (size_t)g.o.data_bytes);
    payload[g.o.data_bytes] = 0;
  }
  while (g.sent < g.o.count && g.sent - g.done < g.o.parallel) {
    char name[256];
    snprintf(name, sizeof(name), "%s%06ld", g.o.prefix, g.sent);
    json_t *cm = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:{s:s}}", "apiVersion", "v1", "kind",
                           "ConfigMap", "metadata", "name", name, "namespace", g.o.ns, "labels",
                           "kubeprobe", "bulk", "data", "payload", payload);
    g.sent++;
    if (k8s_client_create(g.client, &g.gvr, g.o.ns, cm, bulk_done, NULL)) g.done++;
    json_decref(cm);
  }
}

static int cmd_bulk_create(void)
{
  if (!g.o.ns) fail_usage("-n NS is required");
  if (g.o.count <= 0) fail_usage("--count N is required");
  if (!g.o.prefix) g.o.prefix = "cm-";
  if (g.o.parallel <= 0) g.o.parallel = 32;
  connect_client();
  static const struct k8s_gvr cm = {"", "v1", "configmaps", true};
  g.gvr = cm;
  bulk_send();
  k8s_loop_run(g.loop);
  return g.rc;
}

/* ==== events =============================================================== */

static void get_for_event(const struct k8s_result *res, void *data)
{
  if (res->error) {
    out_error(res->error);
    stop_loop(1);
    return;
  }
  long posted = 0, aggregated = 0, dropped = 0;
  /* freed once nothing is in flight (event_wait): it owns its requests */
  struct k8s_recorder *rec = g.recorder = k8s_recorder_new(g.client, "schedsim-operator");
  for (long i = 0; rec && i < g.o.count; i++) {
    const char *base = g.o.note ? g.o.note : "from kubeprobe";
    char note[600];
    if (g.o.distinct)
      snprintf(note, sizeof(note), "%s #%ld", base, i + 1);
    else
      snprintf(note, sizeof(note), "%s", base);
    int rc = k8s_recorder_event(rec, res->object, "Normal", g.o.reason, NULL, note);
    if (rc == -EAGAIN)
      dropped++;
    else if (rc == 0)
      posted++;
    else if (rc == 1)
      aggregated++;
  }
  out_json(json_pack("{s:s, s:I, s:I, s:I}", "type", "EVENTS", "posted", (json_int_t)posted,
                     "aggregated", (json_int_t)aggregated, "dropped", (json_int_t)dropped));
  g.rc = 0;
}

static void event_wait(struct k8s_loop *loop, void *data)
{
  if (k8s_http_inflight(g.http) == 0) {
    k8s_recorder_free(g.recorder);
    g.recorder = NULL;
    k8s_loop_stop(loop);
    return;
  }
  k8s_loop_timer_add(loop, 0.05, event_wait, NULL);
}

static int cmd_event(void)
{
  if (!g.o.reason) fail_usage("--reason is required");
  if (g.o.count <= 0) g.o.count = 1;
  connect_client();
  resolve_gvr(g.o.api_version, g.o.kind);
  if (!g.o.name) fail_usage("NAME is required");
  if (k8s_client_get(g.client, &g.gvr, g.o.ns, g.o.name, get_for_event, NULL)) return 1;
  k8s_loop_timer_add(g.loop, 0.1, event_wait, NULL);
  k8s_loop_run(g.loop);
  return g.rc;
}

/* ==== watch ================================================================ */

static void print_event(const char *type, struct k8s_informer *inf, const struct k8s_object *o)
{
  double lat = 0;
  if (k8s_reflector_state(k8s_informer_reflector(inf)) == K8S_REFLECTOR_WATCHING) {
    lat = k8s_loop_now(g.loop) - k8s_reflector_last_activity(k8s_informer_reflector(inf));
    if (lat > g.max_latency) g.max_latency = lat;
    g.sum_latency += lat;
    g.nlatency++;
  }
  if (g.o.quiet) return;
  json_t *line =
      json_pack("{s:s, s:s, s:s, s:I, s:f}", "type", type, "key", o->key, "rv", o->resource_version,
                "generation", (json_int_t)o->generation, "latency_us", lat * 1e6);
  if (g.o.objects)
    json_object_set_new(line, "object", k8s_object_parse(o, NULL, 0)); /* packed or not */
  out_json(line);
}

/* One line with every cached key and its resourceVersion (--dump). */
static void dump_cache(void)
{
  const struct k8s_object **objs = NULL;
  size_t n = k8s_store_list(k8s_informer_store(g.inf), NULL, &objs);
  json_t *items = json_object();
  for (size_t i = 0; i < n && n != (size_t)-1; i++)
    json_object_set_new(items, objs[i]->key, json_string(objs[i]->resource_version));
  free(objs);
  out_json(json_pack("{s:s, s:o}", "type", "DUMP", "items", items));
}

static void w_add(struct k8s_informer *inf, const struct k8s_object *o, void *data)
{
  print_event("ADDED", inf, o);
}

static void w_update(struct k8s_informer *inf, const struct k8s_object *old,
                     const struct k8s_object *o, void *data)
{
  print_event("MODIFIED", inf, o);
}

static void w_delete(struct k8s_informer *inf, const struct k8s_object *o, void *data)
{
  print_event("DELETED", inf, o);
}

static void w_synced(struct k8s_informer *inf, bool relist, void *data)
{
  out_json(json_pack("{s:s, s:b, s:I, s:I}", "type", "SYNCED", "relist", relist, "count",
                     (json_int_t)k8s_informer_size(inf), "rss_kb", (json_int_t)rss_kb()));
  if (g.o.exit_after_sync) stop_loop(0);
}

static void w_state(struct k8s_informer *inf, enum k8s_reflector_state st,
                    const struct k8s_status *why, bool relist, void *data)
{
  char b[600];
  out_json(json_pack("{s:s, s:s, s:b, s:s?}", "type", "STATE", "state",
                     k8s_reflector_state_name(st), "relist", relist, "reason",
                     why ? k8s_status_format(why, b, sizeof(b)) : NULL));
}

static void w_stats(struct k8s_loop *loop, void *data)
{
  struct k8s_store_stats ss;
  k8s_store_stats(k8s_informer_store(g.inf), &ss);
  struct k8s_reflector_stats rs;
  k8s_reflector_stats(k8s_informer_reflector(g.inf), &rs);
  out_json(json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f}", "type",
                     "STATS", "count", (json_int_t)ss.objects, "rss_kb", (json_int_t)rss_kb(),
                     "object_bytes", (json_int_t)ss.object_bytes, "index_bytes",
                     (json_int_t)ss.index_bytes, "json_bytes", (json_int_t)ss.json_bytes, "lists",
                     (json_int_t)rs.lists, "relists", (json_int_t)rs.relists, "watches",
                     (json_int_t)rs.watches, "dead_streams", (json_int_t)rs.dead_streams,
                     "latency_avg_us", g.nlatency ? g.sum_latency / (double)g.nlatency * 1e6 : 0.0,
                     "latency_max_us", g.max_latency * 1e6));
  if (g.o.stats_interval > 0) k8s_loop_timer_add(loop, g.o.stats_interval, w_stats, NULL);
}

static void w_signal(struct k8s_loop *loop, int signo, void *data)
{
  stop_loop(0);
}

static void w_timeout(struct k8s_loop *loop, void *data)
{
  stop_loop(0);
}

static int cmd_watch(void)
{
  connect_client();
  resolve_gvr(g.o.api_version, g.o.kind);
  struct k8s_reflector_options ro = {
      .gvr = g.gvr,
      .api_version = g.o.api_version,
      .kind = g.o.kind,
      .namespace = g.o.ns,
      .label_selector = g.o.labels,
      .field_selector = g.o.fields,
      .dead_stream_timeout = g.o.dead_stream_timeout,
  };
  g.inf = k8s_informer_new(g.client, &ro);
  static const struct k8s_event_handler h = {.on_add = w_add,
                                             .on_update = w_update,
                                             .on_delete = w_delete,
                                             .on_synced = w_synced,
                                             .on_state = w_state};
  k8s_informer_add_handler(g.inf, &h, NULL);
  k8s_loop_set_signal_handler(g.loop, w_signal, NULL);
  k8s_informer_start(g.inf);
  if (g.o.stats_interval > 0) k8s_loop_timer_add(g.loop, g.o.stats_interval, w_stats, NULL);
  if (g.o.run_for > 0) k8s_loop_timer_add(g.loop, g.o.run_for, w_timeout, NULL);
  k8s_loop_run(g.loop);
  w_stats(g.loop, NULL);
  if (g.o.dump) dump_cache();
  k8s_informer_free(g.inf);
  return g.rc;
}

/* ==== lease ================================================================ */

static void lease_released(struct k8s_leader_elector *le, bool ok, void *data)
{
  out_json(json_pack("{s:s, s:b}", "type", "RELEASED", "ok", ok));
  stop_loop(ok ? 0 : 1);
}

static void lease_hold_over(struct k8s_loop *loop, void *data)
{
  k8s_leader_elector_release(data, lease_released, NULL);
}

static void lease_started(struct k8s_leader_elector *le, void *data)
{
  out_json(json_pack("{s:s, s:s}", "type", "LEADING", "identity", k8s_leader_elector_identity(le)));
  k8s_loop_timer_add(g.loop, g.o.hold, lease_hold_over, le);
}

static void lease_stopped(struct k8s_leader_elector *le, void *data)
{
  out_json(json_pack("{s:s}", "type", "STOPPED_LEADING"));
  stop_loop(1);
}

static void lease_new_leader(struct k8s_leader_elector *le, const char *id, void *data)
{
  out_json(json_pack("{s:s, s:s}", "type", "LEADER", "identity", id));
}

static int cmd_lease(void)
{
  if (!g.o.lease_ns || !g.o.lease_name) fail_usage("--lease-namespace and --lease-name required");
  connect_client();
  struct k8s_leader_election_config lc = {.namespace = g.o.lease_ns,
                                          .name = g.o.lease_name,
                                          .identity = g.o.identity,
                                          .started_leading = lease_started,
                                          .stopped_leading = lease_stopped,
                                          .new_leader = lease_new_leader};
  struct k8s_leader_elector *le = k8s_leader_elector_new(g.client, &lc);
  k8s_leader_elector_start(le);
  k8s_loop_set_signal_handler(g.loop, w_signal, NULL);
  if (g.o.run_for > 0) k8s_loop_timer_add(g.loop, g.o.run_for, w_timeout, NULL);
  k8s_loop_run(g.loop);
  k8s_leader_elector_free(le);
  return g.rc;
}

/* ==== selftest (no server) ================================================== */

static int checks, failures;

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    checks++;                                                                                      \
    if (!(cond)) {                                                                                 \
      failures++;                                                                                  \
      fprintf(stderr, "kubeprobe selftest: %s:%d: %s\n", __FILE__, __LINE__, #cond);               \
    }                                                                                              \
  } while (0)

static char order[64];
static size_t norder;

static void mark(struct k8s_loop *loop, void *data)
{
  order[norder++] = *(const char *)data;
  order[norder] = 0;
}

static void mark_and_tick(struct k8s_loop *loop, void *data)
{
  mark(loop, data);
  static const char t = 't';
  k8s_loop_next_tick(loop, mark, (void *)&t); /* runs on the next iteration */
}

static void count_fire(struct k8s_loop *loop, void *data)
{
  *(double *)data = k8s_loop_now(loop);
}

static void stop_cb(struct k8s_loop *loop, void *data)
{
  k8s_loop_stop(loop);
}

static void selftest_loop(void)
{
  struct k8s_loop *l = k8s_loop_new();
  CHECK(l != NULL);
  static const char a = 'a', b = 'b', c = 'c', d = 'd', x = 'x', n = 'n';
  double t0 = k8s_loop_now(l);
  k8s_loop_timer_add(l, 0.03, mark, (void *)&c);
  k8s_loop_timer_add(l, 0.01, mark, (void *)&a);
  uint64_t cancelled = k8s_loop_timer_add(l, 0.02, mark, (void *)&x);
  k8s_loop_timer_add(l, 0.01, mark_and_tick, (void *)&b); /* same deadline as a: after a */
  k8s_loop_timer_add(l, 0.04, mark, (void *)&d);
  k8s_loop_timer_add(l, 0.05, stop_cb, NULL);
  k8s_loop_next_tick(l, mark, (void *)&n);
  CHECK(k8s_loop_timer_cancel(l, cancelled) == 0);
  CHECK(k8s_loop_timer_cancel(l, cancelled) == -ENOENT);
  CHECK(k8s_loop_timer_cancel(l, 12345) == -ENOENT);
  CHECK(k8s_loop_next_deadline(l) > 0);
  CHECK(k8s_loop_run(l) == 0);
  double took = k8s_loop_now(l) - t0;
  CHECK(!strcmp(order, "nabtcd"));
  CHECK(took >= 0.05 && took < 0.5);
  CHECK(k8s_loop_next_deadline(l) == -1);
  /* many timers, cancel half: the rest fire once each, in deadline order */
  uint64_t ids[200];
  static double fired_at[200];
  for (int i = 0; i < 200; i++)
    ids[i] = k8s_loop_timer_add(l, 0.001 * (i % 7), count_fire, &fired_at[i]);
  for (int i = 0; i < 200; i += 2)
    CHECK(k8s_loop_timer_cancel(l, ids[i]) == 0);
  k8s_loop_timer_add(l, 0.02, stop_cb, NULL);
  k8s_loop_run(l);
  int n_fired = 0;
  for (int i = 0; i < 200; i++)
    if (fired_at[i] > 0) n_fired++;
  CHECK(n_fired == 100);
  for (int i = 0; i < 200; i += 2)
    CHECK(fired_at[i] == 0);
  k8s_loop_free(l);
}

static void selftest_kubeconfig(void)
{
  static const char text[] =
      "apiVersion: v1\n"
      "current-context: two\n"
      "contexts:\n"
      "- {name: one, context: {cluster: c1, user: u1}}\n"
      "- {name: two, context: {cluster: c2, user: u2, namespace: team}}\n"
      "clusters:\n"
      "- {name: c1, cluster: {server: 'https://one:6443'}}\n"
      "- name: c2\n"
      "  cluster:\n"
      "    server: https://two:443/\n"
      "    certificate-authority-data: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCg==\n"
      "users:\n"
      "- {name: u1, user: {token: abc}}\n"
      "- {name: u2, user: {client-certificate-data: Y2VydA==, client-key-data: a2V5}}\n";
  struct k8s_config *cfg = NULL;
  char err[256];
  CHECK(k8s_config_parse(text, sizeof(text) - 1, "/x/config", NULL, &cfg, err, sizeof(err)) == 0);
  if (cfg) {
    CHECK(!strcmp(cfg->server, "https://two:443"));
    CHECK(cfg->ca && !strcmp(cfg->ca, "-----BEGIN CERTIFICATE-----\n"));
    CHECK(cfg->cert_len == 4 && !memcmp(cfg->cert, "cert", 4));
    CHECK(cfg->key_len == 3 && !memcmp(cfg->key, "key", 3));
    CHECK(cfg->token == NULL);
    CHECK(!strcmp(cfg->namespace, "team"));
    k8s_config_free(cfg);
  }
  CHECK(k8s_config_parse(text, sizeof(text) - 1, "/x/config", "one", &cfg, err, sizeof(err)) == 0);
  if (cfg) {
    CHECK(!strcmp(cfg->server, "https://one:6443") && !strcmp(cfg->token, "abc"));
    CHECK(cfg->namespace == NULL && !cfg->insecure);
    k8s_config_free(cfg);
  }
  CHECK(k8s_config_parse(text, sizeof(text) - 1, "/x/config", "three", &cfg, err, sizeof(err)) ==
        -1);
  CHECK(strstr(err, "/x/config: contexts: no context named \"three\"") != NULL);
  static const char exec_user[] = "current-context: a\n"
                                  "contexts: [{name: a, context: {cluster: c, user: u}}]\n"
                                  "clusters: [{name: c, cluster: {server: 'https://h'}}]\n"
                                  "users: [{name: u, user: {exec: {command: x}}}]\n";
  CHECK(k8s_config_parse(exec_user, sizeof(exec_user) - 1, "k", NULL, &cfg, err, sizeof(err)) ==
        -1);
  CHECK(strstr(err, "not supported") != NULL);
  struct k8s_config_options co = {.kubeconfig = "/nonexistent/kubeconfig"};
  CHECK(k8s_config_load(&co, &cfg, err, sizeof(err)) == -1);
  CHECK(strstr(err, "/nonexistent/kubeconfig") != NULL);
}

static void selftest_paths(void)
{
  char buf[256];
  struct k8s_gvr cm = {"", "v1", "configmaps", true};
  struct k8s_gvr dep = {"apps", "v1", "deployments", true};
  struct k8s_gvr ns = {"", "v1", "namespaces", false};
  CHECK(k8s_gvr_path(&cm, "a", "b", NULL, buf, sizeof(buf)) > 0 &&
        !strcmp(buf, "/api/v1/namespaces/a/configmaps/b"));
  CHECK(k8s_gvr_path(&cm, NULL, NULL, NULL, buf, sizeof(buf)) > 0 &&
        !strcmp(buf, "/api/v1/configmaps"));
  CHECK(k8s_gvr_path(&dep, "x", "y", "status", buf, sizeof(buf)) > 0 &&
        !strcmp(buf, "/apis/apps/v1/namespaces/x/deployments/y/status"));
  CHECK(k8s_gvr_path(&ns, "ignored", "n", NULL, buf, sizeof(buf)) > 0 &&
        !strcmp(buf, "/api/v1/namespaces/n"));
  CHECK(k8s_gvr_path(&dep, "x", "y", NULL, buf, 8) == -ENOSPC);
  char grp[64], ver[16];
  CHECK(k8s_parse_api_version("sim.llm-d.io/v1alpha1", grp, sizeof(grp), ver, sizeof(ver)) == 0 &&
        !strcmp(grp, "sim.llm-d.io") && !strcmp(ver, "v1alpha1"));
  CHECK(k8s_parse_api_version("v1", grp, sizeof(grp), ver, sizeof(ver)) == 0 && !grp[0] &&
        !strcmp(ver, "v1"));
  char *e = k8s_http_escape("a in (x,y)");
  CHECK(e && !strcmp(e, "a%20in%20%28x%2Cy%29"));
  free(e);
  char host[64];
  int port = -1;
  CHECK(k8s_parse_bind_address(":8080", host, sizeof(host), &port) == 0 && !host[0] &&
        port == 8080);
  CHECK(k8s_parse_bind_address("127.0.0.1:0", host, sizeof(host), &port) == 0 &&
        !strcmp(host, "127.0.0.1") && port == 0);
  CHECK(k8s_parse_bind_address("[::1]:9", host, sizeof(host), &port) == 0 && !strcmp(host, "::1") &&
        port == 9);
  CHECK(k8s_parse_bind_address("0", host, sizeof(host), &port) == 1);
  CHECK(k8s_parse_bind_address("8080", host, sizeof(host), &port) == -1);
  CHECK(k8s_parse_bind_address(":x", host, sizeof(host), &port) == -1);
  struct k8s_status st = {403, "Forbidden", "nope", NULL};
  CHECK(!strcmp(k8s_status_format(&st, buf, sizeof(buf)), "Forbidden (403): nope"));
}

static int cmd_selftest(void)
{
  selftest_loop();
  selftest_kubeconfig();
  selftest_paths();
  if (failures) {
    out_json(
        json_pack("{s:s, s:i, s:i}", "selftest", "failed", "checks", checks, "failures", failures));
    return 1;
  }
  out_json(json_pack("{s:s, s:i}", "selftest", "ok", "checks", checks));
  return 0;
}

/* ==== main ================================================================= */

static const char *take(int argc, char **argv, int *i)
{
  if (*i + 1 >= argc) {
    fprintf(stderr, "kubeprobe: %s needs a value\n", argv[*i]);
    exit(2);
  }
  return argv[++*i];
}

int main(int argc, char **argv)
{
  if (argc < 2) fail_usage("usage: kubeprobe COMMAND [flags] (see the source's header)");
  const char *cmd = NULL;
  struct opts *o = &g.o;
  o->data_bytes = 16;
  o->hold = 3600;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
#define F(flag) (!strcmp(a, flag))
    if (F("--kubeconfig"))
      o->kubeconfig = take(argc, argv, &i);
    else if (F("--context"))
      o->context = take(argc, argv, &i);
    else if (F("--api-version"))
      o->api_version = take(argc, argv, &i);
    else if (F("--kind"))
      o->kind = take(argc, argv, &i);
    else if (F("--resource"))
      o->resource = take(argc, argv, &i);
    else if (F("-n") || F("--namespace"))
      o->ns = take(argc, argv, &i);
    else if (F("-l") || F("--selector"))
      o->labels = take(argc, argv, &i);
    else if (F("--field-selector"))
      o->fields = take(argc, argv, &i);
    else if (F("-f"))
      o->file = take(argc, argv, &i);
    else if (F("--field-manager"))
      o->field_manager = take(argc, argv, &i);
    else if (F("--prefix"))
      o->prefix = take(argc, argv, &i);
    else if (F("--reason"))
      o->reason = take(argc, argv, &i);
    else if (F("--note"))
      o->note = take(argc, argv, &i);
    else if (F("--lease-namespace"))
      o->lease_ns = take(argc, argv, &i);
    else if (F("--lease-name"))
      o->lease_name = take(argc, argv, &i);
    else if (F("--identity"))
      o->identity = take(argc, argv, &i);
    else if (F("--dead-stream-timeout"))
      o->dead_stream_timeout = atof(take(argc, argv, &i));
    else if (F("--stats-interval"))
      o->stats_interval = atof(take(argc, argv, &i));
    else if (F("--for"))
      o->run_for = atof(take(argc, argv, &i));
    else if (F("--hold"))
      o->hold = atof(take(argc, argv, &i));
    else if (F("--limit"))
      o->limit = atol(take(argc, argv, &i));
    else if (F("--count"))
      o->count = atol(take(argc, argv, &i));
    else if (F("--parallel"))
      o->parallel = atol(take(argc, argv, &i));
    else if (F("--data-bytes"))
      o->data_bytes = atol(take(argc, argv, &i));
    else if (F("-v"))
      o->verbosity = atoi(take(argc, argv, &i));
    else if (F("--quiet"))
      o->quiet = true;
    else if (F("--objects"))
      o->objects = true;
    else if (F("--dump"))
      o->dump = true;
    else if (F("--exit-after-sync"))
      o->exit_after_sync = true;
    else if (F("--distinct"))
      o->distinct = true;
    else if (F("--dry-run"))
      o->dry_run = true;
    else if (F("--no-force"))
      o->no_force = true;
    else if (a[0] == '-')
      fail_usage("unknown flag");
    else if (!cmd)
      cmd = a;
    else if (!o->name)
      o->name = a;
    else
      fail_usage("too many arguments");
#undef F
  }
  if (!cmd) fail_usage("no command");
  k8s_log_init(K8S_LOG_JSON, o->verbosity, stderr);
  int rc;
  if (!strcmp(cmd, "watch"))
    rc = cmd_watch();
  else if (!strcmp(cmd, "get"))
    rc = cmd_get(false);
  else if (!strcmp(cmd, "delete"))
    rc = cmd_get(true);
  else if (!strcmp(cmd, "list"))
    rc = cmd_list();
  else if (!strcmp(cmd, "apply") || !strcmp(cmd, "apply-status") || !strcmp(cmd, "create") ||
           !strcmp(cmd, "update") || !strcmp(cmd, "update-status"))
    rc = cmd_write(cmd);
  else if (!strcmp(cmd, "discovery"))
    rc = cmd_discovery();
  else if (!strcmp(cmd, "bulk-create"))
    rc = cmd_bulk_create();
  else if (!strcmp(cmd, "event"))
    rc = cmd_event();
  else if (!strcmp(cmd, "lease"))
    rc = cmd_lease();
  else if (!strcmp(cmd, "selftest"))
    rc = cmd_selftest();
  else
    fail_usage("unknown command");
  if (g.loop) teardown();
  return rc;
}
