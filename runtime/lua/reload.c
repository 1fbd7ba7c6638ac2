/* reload.c: hot reload of the script set from a ConfigMap (see reload.h).
 *
 * Loop side: an informer on the one ConfigMap, the serving revision, and at
 * most one check in flight (a change during a check marks it dirty). Worker
 * side: one detached thread per check, which loads directory + overlay,
 * checks the set (lk_check) and posts the outcome to the loop
 * (k8s_loop_post, the loop's one thread-safe entry); the Lua state it builds
 * is touched by that thread only until the loop takes it. A channel (mutex,
 * reference count, closed flag) outlives both sides: once the Runnable
 * stopped, a worker frees its outcome instead of posting it.
 *
 * This is the one file of runtime/lua that uses runtime/kube (manager,
 * informer, Events); runtime/core gives JSON, logs, metrics and the clock. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/json.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/util.h"
#include "lua/check.h"
#include "lua/reload.h"

#define GATE "scripts-configmap"
#define ORIGIN "configmap" /* overlay chunk names: "configmap:<key>" */
#define MAX_NOTE 1000      /* events.k8s.io note: at most 1 kB */
#define MAX_LOGGED 50      /* problems logged one per line */
#define NOTE_PROBLEMS 3    /* problems quoted in the Event */

/* {====================================================================
 * The channel between the loop and the workers
 * ===================================================================== */

struct chan {
  pthread_mutex_t mu;
  int refs;
  bool closed; /* the Runnable stopped: post nothing more */
  struct k8s_loop *loop;
};

static struct chan *chan_new(struct k8s_loop *loop)
{
  struct chan *ch = calloc(1, sizeof(*ch));
  if (!ch) return NULL;
  pthread_mutex_init(&ch->mu, NULL);
  ch->refs = 1;
  ch->loop = loop;
  return ch;
}

static void chan_ref(struct chan *ch)
{
  pthread_mutex_lock(&ch->mu);
  ch->refs++;
  pthread_mutex_unlock(&ch->mu);
}

static void chan_release(struct chan *ch)
{
  if (!ch) return;
  pthread_mutex_lock(&ch->mu);
  int left = --ch->refs;
  pthread_mutex_unlock(&ch->mu);
  if (left) return;
  pthread_mutex_destroy(&ch->mu);
  free(ch);
}

static void chan_close(struct chan *ch)
{
  pthread_mutex_lock(&ch->mu);
  ch->closed = true;
  pthread_mutex_unlock(&ch->mu);
}

/* }==================================================================== */

/* {====================================================================
 * Jobs: one check of one input
 * ===================================================================== */

enum outcome { OUT_UNCHANGED, OUT_PASSED, OUT_REFUSED };

struct job {
  struct k8s_reload *r; /* loop side only */
  struct chan *ch;      /* worker side: released by the worker */
  /* input (owned) */
  char *input; /* canonical text of the ConfigMap's data ("" when absent) */
  char *dir;
  struct lk_overlay_entry *ov;
  size_t nov;
  char serving[80];
  struct lk_engine_opts eo;
  double t_event; /* when the change reached the operator (monotonic) */
  /* outcome */
  enum outcome outcome;
  struct lk_engine *engine; /* OUT_PASSED: the checked engine */
  struct lk_messages msgs;  /* OUT_REFUSED: the problems */
  char revision[80];
  double check_seconds;     /* load + check */
  struct lk_check_stats st; /* the check's breakdown (check.h) */
};

static void job_free(struct job *j)
{
  if (!j) return;
  for (size_t i = 0; i < j->nov; i++) {
    free((char *)j->ov[i].key);
    free((char *)j->ov[i].source);
  }
  free(j->ov);
  free(j->input);
  free(j->dir);
  lk_engine_free(j->engine);
  lk_messages_free(&j->msgs);
  free(j);
}

/* Loads directory + overlay and checks the set, unless its revision is the
 * serving one. Runs on a worker thread (or the loop, as a fallback): it
 * touches nothing but the job. */
static void run_check(struct job *j)
{
  double t0 = k8s_monotonic();
  char err[1024];
  struct lk_scriptset *set = NULL;
  if (lk_scriptset_load(j->dir, j->ov, j->nov, ORIGIN, &set, err, sizeof(err)) != 0) {
    lk_messages_add(&j->msgs, "%s", err);
    j->outcome = OUT_REFUSED;
    return;
  }
  snprintf(j->revision, sizeof(j->revision), "%s", set->revision);
  if (!strcmp(set->revision, j->serving)) {
    lk_scriptset_free(set);
    j->outcome = OUT_UNCHANGED;
    return;
  }
  int problems = lk_check(set, &j->eo, &j->msgs, &j->st, &j->engine); /* takes set */
  if (problems < 0) lk_messages_add(&j->msgs, "out of memory while checking the script set");
  j->outcome = problems == 0 && j->engine ? OUT_PASSED : OUT_REFUSED;
  j->check_seconds = k8s_monotonic() - t0;
}

static void checked(struct k8s_loop *loop, void *data);

static void *worker(void *arg)
{
  struct job *j = arg;
  struct chan *ch = j->ch;
  run_check(j);
  j->ch = NULL;
  pthread_mutex_lock(&ch->mu);
  bool posted = !ch->closed && k8s_loop_post(ch->loop, checked, j) == 0;
  pthread_mutex_unlock(&ch->mu);
  if (!posted) job_free(j);
  chan_release(ch);
  return NULL;
}

/* }==================================================================== */

/* {====================================================================
 * The loop side
 * ===================================================================== */

struct k8s_reload {
  struct k8s_manager *m;
  char *ns, *name, *key, *selector, *dir;
  struct lk_engine_opts eo;
  struct k8s_reload_hooks h;
  struct k8s_informer *inf; /* between start() and stop() */
  struct chan *ch;
  struct k8s_metric *reloads;
  char serving[80];
  char *last_input; /* input of the last check started; NULL: none */
  bool listed, synced, checking, dirty, stopping;
  double t_event;
  struct k8s_runnable runnable;
};

/* The ConfigMap as cached (new reference), or NULL when there is none. */
static json_t *current_cm(struct k8s_reload *r)
{
  const struct k8s_object *o = r->inf ? k8s_informer_get(r->inf, r->key) : NULL;
  return o ? k8s_object_parse(o, NULL, 0) : NULL;
}

/* What a check depends on, as text: "" without a ConfigMap, else its data
 * and binaryData (sorted keys). NULL on allocation failure. */
static char *input_of(const json_t *cm)
{
  if (!cm) return strdup("");
  json_t *v = json_pack("{s:O?, s:O?}", "data", json_object_get(cm, "data"), "binaryData",
                        json_object_get(cm, "binaryData"));
  char *s = v ? k8s_json_dump(v, K8S_JSON_SORT_KEYS, NULL) : NULL;
  json_decref(v);
  return s;
}

static void mark_synced(struct k8s_reload *r)
{
  if (r->synced) return;
  r->synced = true;
  /* logged before the gate opens, so the Manager's "ready" line follows it */
  k8s_log(K8S_LOG_INFO, "scripts ConfigMap synced; reconciles may start", "configmap", r->key,
          "revision", r->serving, NULL);
  k8s_manager_set_ready(r->m, GATE, true);
  if (r->h.ready) r->h.ready(r->h.data);
}

/* Posts an Event on the ConfigMap (leader only: followers reload silently). */
static void post_event(struct k8s_reload *r, const char *type, const char *reason, const char *note)
{
  if (!k8s_manager_is_leader(r->m)) return;
  json_t *cm = current_cm(r);
  if (!cm) return;
  k8s_recorder_event(k8s_manager_recorder(r->m), cm, type, reason, "Reload", note);
  json_decref(cm);
}

/* A problem as shown: the directory prefix dropped (fixtures are named by
 * absolute path), so "schedulerinstall/fixtures/x.yaml: ..." reads as in
 * `check`. NULL for the echo of a load error in every fixture case of a
 * controller that did not load (counted instead). */
static const char *shown(const struct k8s_reload *r, const char *m)
{
  static const char skipped[] = "did not load (see the errors above)";
  size_t n = strlen(m), k = sizeof(skipped) - 1;
  if (n >= k && !strcmp(m + n - k, skipped)) return NULL;
  size_t dl = strlen(r->dir);
  return !strncmp(m, r->dir, dl) && m[dl] == '/' ? m + dl + 1 : m;
}

/* How many fixture cases a problem stands for: n for a grouped
 * "<file>: <n> fixture cases: <message>" (fixture.h), else 1. */
static size_t cases_of(const char *m)
{
  const char *p = strstr(m, " fixture cases: ");
  if (!p) return 1;
  const char *q = p;
  while (q > m && q[-1] >= '0' && q[-1] <= '9')
    q--;
  return q < p && q >= m + 2 && q[-1] == ' ' && q[-2] == ':' ? strtoul(q, NULL, 10) : 1;
}

static void refuse(struct k8s_reload *r, struct job *j)
{
  const char *lv[] = {"refused"};
  k8s_metric_inc(r->reloads, lv);
  size_t nshown = 0, nskipped = 0;
  for (size_t i = 0; i < j->msgs.n; i++)
    shown(r, j->msgs.v[i]) ? nshown++ : (nskipped += cases_of(j->msgs.v[i]));
  char count[16], skipped[16];
  snprintf(count, sizeof(count), "%zu", nshown);
  snprintf(skipped, sizeof(skipped), "%zu", nskipped);
  k8s_log(K8S_LOG_WARN, "script set refused; the serving set stays", "configmap", r->key,
          "revision", j->revision[0] ? j->revision : "", "serving", r->serving, K8S_NUM("problems"),
          count, K8S_NUM("casesNotRun"), skipped, NULL);
  char note[MAX_NOTE + 1];
  int n = snprintf(note, sizeof(note), "%zu problem%s; %.19s keeps serving:", nshown,
                   nshown == 1 ? "" : "s", r->serving);
  size_t logged = 0, quoted = 0;
  for (size_t i = 0; i < j->msgs.n; i++) {
    const char *m = shown(r, j->msgs.v[i]);
    if (!m) continue;
    if (logged++ < MAX_LOGGED)
      k8s_log(K8S_LOG_WARN, "script set problem", "configmap", r->key, "problem", m, NULL);
    if (quoted < NOTE_PROBLEMS && n < MAX_NOTE)
      n += snprintf(note + n, sizeof(note) - (size_t)n, "%s %s", quoted++ ? ";" : "", m);
  }
  if (nshown > quoted && n < MAX_NOTE)
    n += snprintf(note + n, sizeof(note) - (size_t)n, " (+%zu more in the operator's log)",
                  nshown - quoted);
  if (nskipped && n < MAX_NOTE)
    n += snprintf(note + n, sizeof(note) - (size_t)n,
                  "; %zu fixture case%s not run (controller did not load)", nskipped,
                  nskipped == 1 ? "" : "s");
  if (n >= MAX_NOTE) memcpy(note + MAX_NOTE - 3, "...", 4);
  post_event(r, "Warning", "ScriptSetRefused", note);
}

static void handle(struct k8s_reload *r, struct job *j)
{
  if (j->outcome == OUT_UNCHANGED) {
    k8s_log_v(1, "script set unchanged", "configmap", r->key, "revision", j->revision, NULL);
    return;
  }
  if (j->outcome == OUT_REFUSED) {
    refuse(r, j);
    return;
  }
  char why[512] = "";
  char previous[sizeof(r->serving)];
  memcpy(previous, r->serving, sizeof(previous));
  double t_swap = k8s_monotonic();
  int swapped = r->h.swap(j->engine, r->h.data, why, sizeof(why));
  t_swap = k8s_monotonic() - t_swap;
  if (swapped != 0) {
    lk_messages_add(&j->msgs, "%s", why[0] ? why : "the controllers refused the script set");
    refuse(r, j);
    return;
  }
  j->engine = NULL; /* the controllers own it now */
  memcpy(r->serving, j->revision, sizeof(r->serving));
  const char *lv[] = {"success"};
  k8s_metric_inc(r->reloads, lv);
  char check_ms[32], since_ms[32], swap_ms[32], keys[16], compile_ms[32], cases_ms[32], cases[16],
      threads[8];
  snprintf(check_ms, sizeof(check_ms), "%.1f", j->check_seconds * 1000);
  snprintf(compile_ms, sizeof(compile_ms), "%.1f", j->st.compile * 1000);
  snprintf(cases_ms, sizeof(cases_ms), "%.1f", j->st.fixtures * 1000);
  snprintf(cases, sizeof(cases), "%zu", j->st.cases);
  snprintf(threads, sizeof(threads), "%zu", j->st.times.threads);
  snprintf(swap_ms, sizeof(swap_ms), "%.2f", t_swap * 1000);
  snprintf(since_ms, sizeof(since_ms), "%.1f", (k8s_monotonic() - j->t_event) * 1000);
  snprintf(keys, sizeof(keys), "%zu", j->nov);
  k8s_log(K8S_LOG_INFO, "script set swapped", "configmap", r->key, "revision", r->serving,
          "previous", previous, K8S_NUM("overlaid"), keys, K8S_NUM("checkMs"), check_ms,
          K8S_NUM("compileMs"), compile_ms, K8S_NUM("fixtureCases"), cases, K8S_NUM("casesMs"),
          cases_ms, K8S_NUM("checkThreads"), threads, K8S_NUM("swapMs"), swap_ms,
          K8S_NUM("sinceEventMs"), since_ms, NULL);
  char note[MAX_NOTE + 1];
  snprintf(note, sizeof(note),
           "%s serves now (%zu module%s from this ConfigMap, previous %.19s); every CR is "
           "reconciled again",
           r->serving, j->nov, j->nov == 1 ? "" : "s", previous);
  post_event(r, "Normal", "ScriptSetLoaded", note);
}

static void kick(struct k8s_reload *r);

/* A worker's outcome, on the loop. */
static void checked(struct k8s_loop *loop, void *data)
{
  struct job *j = data;
  struct k8s_reload *r = j->r;
  r->checking = false;
  if (r->stopping) {
    job_free(j);
    return;
  }
  if (r->dirty) { /* the ConfigMap changed during the check: is the outcome stale? */
    r->dirty = false;
    json_t *cm = current_cm(r);
    char *now = input_of(cm);
    json_decref(cm);
    bool stale = !now || strcmp(now, j->input);
    free(now);
    if (stale) {
      k8s_log_v(1, "scripts ConfigMap changed during the check; checking the latest", "configmap",
                r->key, NULL);
      free(r->last_input);
      r->last_input = NULL;
      job_free(j);
      kick(r);
      return;
    }
  }
  handle(r, j);
  job_free(j);
  mark_synced(r);
}

/* Adds the data entries of cm to j's overlay; binaryData keys are problems. */
static int fill_overlay(struct job *j, const json_t *cm)
{
  const char *k;
  json_t *v;
  json_object_foreach(json_object_get(cm, "binaryData"), k, v)
  {
    lk_messages_add(&j->msgs, "%s:%s: binaryData is not read; put scripts under data", ORIGIN, k);
  }
  const json_t *d = json_object_get(cm, "data");
  size_t n = json_object_size(d);
  if (n == 0) return 0;
  if (!(j->ov = calloc(n, sizeof(*j->ov)))) return -1;
  json_object_foreach((json_t *)d, k, v)
  {
    const char *s = json_string_value(v);
    if (!s) continue;
    size_t len = json_string_length(v);
    char *key = strdup(k), *src = malloc(len + 1);
    if (!key || !src) {
      free(key), free(src);
      return -1;
    }
    memcpy(src, s, len + 1);
    j->ov[j->nov++] = (struct lk_overlay_entry){key, src, len};
  }
  return 0;
}

/* Starts a check of the ConfigMap as cached, unless one runs (then the
 * outcome is marked possibly stale) or the input is the one last checked. */
static void kick(struct k8s_reload *r)
{
  if (r->stopping || !r->listed) return;
  if (r->checking) {
    r->dirty = true;
    return;
  }
  json_t *cm = current_cm(r);
  char *input = input_of(cm);
  if (!input || (r->last_input && !strcmp(input, r->last_input))) {
    free(input);
    json_decref(cm);
    if (input) mark_synced(r);
    return;
  }
  free(r->last_input);
  r->last_input = input;
  struct job *j = calloc(1, sizeof(*j));
  if (!j || !(j->input = strdup(input)) || !(j->dir = strdup(r->dir)) ||
      (cm && fill_overlay(j, cm) != 0)) {
    k8s_log(K8S_LOG_ERROR, "cannot check the scripts ConfigMap: out of memory", "configmap", r->key,
            NULL);
    job_free(j);
    json_decref(cm);
    free(r->last_input);
    r->last_input = NULL;
    return;
  }
  j->r = r;
  j->eo = r->eo;
  j->t_event = r->t_event;
  memcpy(j->serving, r->serving, sizeof(j->serving));
  const char *rv =
      cm ? json_string_value(json_object_get(json_object_get(cm, "metadata"), "resourceVersion"))
         : NULL;
  char keys[16];
  snprintf(keys, sizeof(keys), "%zu", j->nov);
  k8s_log(K8S_LOG_INFO,
          cm ? "scripts ConfigMap changed; checking"
             : "no scripts ConfigMap; checking the directory alone",
          "configmap", r->key, "resourceVersion", rv ? rv : "", K8S_NUM("keys"), keys, NULL);
  json_decref(cm);
  if (j->msgs.n) { /* binaryData: refused without a check */
    j->outcome = OUT_REFUSED;
    handle(r, j);
    job_free(j);
    mark_synced(r);
    return;
  }
  r->checking = true;
  j->ch = r->ch;
  chan_ref(r->ch);
  pthread_attr_t attr;
  pthread_t tid;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  int rc = pthread_create(&tid, &attr, worker, j);
  pthread_attr_destroy(&attr);
  if (rc != 0) { /* no thread: check on the loop */
    k8s_log(K8S_LOG_WARN, "cannot start a check thread; checking on the event loop", NULL);
    chan_release(j->ch);
    j->ch = NULL;
    run_check(j);
    checked(k8s_manager_loop(r->m), j);
  }
}

/* }==================================================================== */

/* {====================================================================
 * Informer handlers and the Runnable
 * ===================================================================== */

static void changed(struct k8s_reload *r)
{
  r->t_event = k8s_monotonic();
  kick(r);
}

static void h_add(struct k8s_informer *inf, const struct k8s_object *o, void *data)
{
  changed(data);
}

static void h_update(struct k8s_informer *inf, const struct k8s_object *old,
                     const struct k8s_object *o, void *data)
{
  changed(data);
}

static void h_delete(struct k8s_informer *inf, const struct k8s_object *o, void *data)
{
  changed(data);
}

static void h_synced(struct k8s_informer *inf, bool relist, void *data)
{
  struct k8s_reload *r = data;
  if (!r->listed) r->t_event = k8s_monotonic();
  r->listed = true;
  kick(r);
}

static void h_state(struct k8s_informer *inf, enum k8s_reflector_state st,
                    const struct k8s_status *why, bool relist, void *data)
{
  struct k8s_reload *r = data;
  if (st != K8S_REFLECTOR_BACKOFF || !why) return;
  char buf[512];
  k8s_log(K8S_LOG_WARN, "cannot list or watch the scripts ConfigMap; retrying", "configmap", r->key,
          "error", k8s_status_format(why, buf, sizeof(buf)), NULL);
}

static const struct k8s_event_handler handler = {.on_add = h_add,
                                                 .on_update = h_update,
                                                 .on_delete = h_delete,
                                                 .on_synced = h_synced,
                                                 .on_state = h_state};

static int reload_start(struct k8s_manager *m, void *data)
{
  struct k8s_reload *r = data;
  struct k8s_reflector_options ro = {
      .gvr = {.group = "", .version = "v1", .resource = "configmaps", .namespaced = true},
      .api_version = "v1",
      .kind = "ConfigMap",
      .namespace = r->ns,
      .field_selector = r->selector,
  };
  r->inf = k8s_informer_new(k8s_manager_client(m), &ro);
  if (!r->inf || !k8s_informer_add_handler(r->inf, &handler, r)) return -1;
  k8s_log(K8S_LOG_INFO, "watching the scripts ConfigMap", "configmap", r->key, "revision",
          r->serving, NULL);
  return k8s_informer_start(r->inf) < 0 ? -1 : 0;
}

static void reload_stop(struct k8s_manager *m, void *data)
{
  struct k8s_reload *r = data;
  r->stopping = true;
  chan_close(r->ch);
  if (r->inf) {
    k8s_informer_stop(r->inf);
    k8s_informer_free(r->inf);
    r->inf = NULL;
  }
}

/* }==================================================================== */

int k8s_reload_new(struct k8s_manager *m, const struct k8s_reload_options *o,
                   const struct k8s_reload_hooks *h, struct k8s_reload **out, char *err,
                   size_t errlen)
{
  *out = NULL;
  const char *slash = o->configmap ? strchr(o->configmap, '/') : NULL;
  if (!slash || slash == o->configmap || !slash[1] || strchr(slash + 1, '/')) {
    snprintf(err, errlen, "--scripts-configmap: want NAMESPACE/NAME, got \"%s\"",
             o->configmap ? o->configmap : "");
    return 2;
  }
  struct k8s_reload *r = calloc(1, sizeof(*r));
  if (!r) return 1;
  r->m = m;
  r->h = *h;
  r->eo = o->engine;
  r->ns = strndup(o->configmap, (size_t)(slash - o->configmap));
  r->name = strdup(slash + 1);
  r->key = strdup(o->configmap);
  r->dir = strdup(o->dir);
  r->ch = chan_new(k8s_manager_loop(m));
  if (r->name && asprintf(&r->selector, "metadata.name=%s", r->name) < 0) r->selector = NULL;
  if (!r->ns || !r->name || !r->key || !r->dir || !r->ch || !r->selector) goto fail;
  snprintf(r->serving, sizeof(r->serving), "%s", o->revision ? o->revision : "");
  static const char *const labels[] = {"result", NULL};
  r->reloads = k8s_metrics_counter(k8s_manager_metrics(m), "schedsim_script_reloads_total",
                                   "Script sets from the scripts ConfigMap, by result "
                                   "(success: swapped in; refused: failed the check)",
                                   labels);
  if (r->reloads) {
    const char *ok[] = {"success"}, *no[] = {"refused"};
    k8s_metric_add(r->reloads, ok, 0);
    k8s_metric_add(r->reloads, no, 0);
  }
  r->runnable = (struct k8s_runnable){.name = "scripts-configmap",
                                      .needs_leader = false,
                                      .start = reload_start,
                                      .stop = reload_stop,
                                      .data = r};
  k8s_manager_set_ready(m, GATE, false);
  if (k8s_manager_add_runnable(m, &r->runnable) != 0) goto fail;
  *out = r;
  return 0;
fail:
  k8s_reload_free(r);
  return 1;
}

bool k8s_reload_synced(const struct k8s_reload *r)
{
  return r->synced;
}

const char *k8s_reload_revision(const struct k8s_reload *r)
{
  return r->serving;
}

void k8s_reload_free(struct k8s_reload *r)
{
  if (!r) return;
  if (r->ch) chan_close(r->ch);
  chan_release(r->ch);
  free(r->ns);
  free(r->name);
  free(r->key);
  free(r->selector);
  free(r->dir);
  free(r->last_input);
  free(r);
}
