/* floor.c: the bench's bare API client (bench/README.md). Sends a batch of
 * requests to the API server over one HTTP/2 connection (libcurl multi,
 * multiplexed, as the operator does) with bounded concurrency, and reports
 * how many succeeded and how long the batch took. Built by bench/run with
 * plain `cc` into the bench build dir; not part of the CMake build.
 *
 *   bench-floor --server URL --token-file F --cacert F [--creates N]
 *               [--groups N] [--user-agent UA] [--rss] FILE
 *
 * FILE holds one request per line, fields separated by a TAB:
 *   GROUP  PHASE(0|1)  METHOD  PATH  CONTENT-TYPE(json|apply|merge)  BODY
 * A group has at most one phase-0 request (e.g. creating a CR) and any
 * number of phase-1 requests (its children and its status, server-side
 * apply), sent together once the phase-0 request succeeded; "@UID@" in a
 * phase-1 body is replaced by the metadata.uid the phase-0 response returned
 * (for ownerReferences). At most --creates phase-0 requests and --groups
 * groups' phase-1 requests are in flight at once (the operator's defaults:
 * 16 and 16). Output, one line on stdout:
 *   requests=N ok=N errors=N skipped=N wall=SECONDS codes=200:N,201:N
 * and with --rss, after the batch (connection still open), the process's
 * resident set from /proc/self/status in KiB: rss_kib=N anon_kib=N file_kib=N
 * (the bench's floor for the operator's idle RSS: what libcurl and its
 * libraries cost a client that made one TLS connection).
 * Exit 0 when every request got a 2xx, 1 otherwise, 2 on usage errors. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct req {
  int group;
  int phase;
  char *method, *path, *ctype, *body;
  char *resp;
  size_t resp_len, resp_cap;
  struct curl_slist *headers;
};

struct group {
  int first; /* index of its phase-0 request, -1 if none */
  int *deps; /* phase-1 request indexes */
  int ndeps, capdeps;
  int pending; /* phase-1 requests in flight */
  char uid[64];
  char *name;
};

static struct req *reqs;
static int nreqs, capreqs;
static struct group *groups;
static int ngroups, capgroups;
static const char *server, *token_file, *cacert, *user_agent = "schedsim-bench/floor";
static char auth[1024];
static long codes[600];
static int ok_count, err_count, skipped, errors_printed;

static void *xrealloc(void *p, size_t n)
{
  void *q = realloc(p, n);
  if (!q) {
    fprintf(stderr, "bench-floor: out of memory\n");
    exit(1);
  }
  return q;
}

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int group_index(const char *name)
{
  /* groups appear in order; a linear look-back of the last group suffices for
   * files written group by group, with a full scan as the fallback */
  for (int i = ngroups - 1; i >= 0; i--)
    if (!strcmp(groups[i].name, name)) return i;
  if (ngroups == capgroups) {
    capgroups = capgroups ? capgroups * 2 : 256;
    groups = xrealloc(groups, capgroups * sizeof(*groups));
  }
  struct group *g = &groups[ngroups];
  memset(g, 0, sizeof(*g));
  g->first = -1;
  g->name = strdup(name);
  return ngroups++;
}

static int load(const char *file)
{
  FILE *f = fopen(file, "r");
  if (!f) {
    perror(file);
    return -1;
  }
  char *line = NULL;
  size_t cap = 0;
  ssize_t n;
  int lineno = 0;
  while ((n = getline(&line, &cap, f)) > 0) {
    lineno++;
    if (line[n - 1] == '\n') line[--n] = 0;
    if (!n) continue;
    char *field[6];
    char *p = line;
    int k;
    for (k = 0; k < 6 && p; k++) {
      field[k] = p;
      char *tab = k < 5 ? strchr(p, '\t') : NULL;
      if (tab) *tab++ = 0;
      p = tab;
    }
    if (k < 6) {
      fprintf(stderr, "bench-floor: %s:%d: want 6 TAB-separated fields\n", file, lineno);
      return -1;
    }
    if (nreqs == capreqs) {
      capreqs = capreqs ? capreqs * 2 : 1024;
      reqs = xrealloc(reqs, capreqs * sizeof(*reqs));
    }
    struct req *r = &reqs[nreqs];
    memset(r, 0, sizeof(*r));
    r->group = group_index(field[0]);
    r->phase = atoi(field[1]);
    r->method = strdup(field[2]);
    r->path = strdup(field[3]);
    r->ctype = !strcmp(field[4], "apply")   ? "application/apply-patch+yaml"
               : !strcmp(field[4], "merge") ? "application/merge-patch+json"
                                            : "application/json";
    r->body = strdup(field[5]);
    struct group *g = &groups[r->group];
    if (r->phase == 0) {
      if (g->first >= 0) {
        fprintf(stderr, "bench-floor: %s:%d: group %s has two phase-0 requests\n", file, lineno,
                field[0]);
        return -1;
      }
      g->first = nreqs;
    } else {
      if (g->ndeps == g->capdeps) {
        g->capdeps = g->capdeps ? g->capdeps * 2 : 4;
        g->deps = xrealloc(g->deps, g->capdeps * sizeof(int));
      }
      g->deps[g->ndeps++] = nreqs;
    }
    nreqs++;
  }
  free(line);
  fclose(f);
  return 0;
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *ud)
{
  struct req *r = ud;
  size_t n = size * nmemb;
  if (r->resp_len + n + 1 > r->resp_cap) {
    r->resp_cap = (r->resp_len + n + 1) * 2;
    r->resp = xrealloc(r->resp, r->resp_cap);
  }
  memcpy(r->resp + r->resp_len, data, n);
  r->resp_len += n;
  r->resp[r->resp_len] = 0;
  return n;
}

static char *subst_uid(const char *body, const char *uid)
{
  const char *mark = "@UID@";
  size_t count = 0;
  for (const char *p = body; (p = strstr(p, mark)); p += 5)
    count++;
  if (!count) return strdup(body);
  size_t len = strlen(body) + count * strlen(uid) + 1;
  char *out = xrealloc(NULL, len), *o = out;
  const char *p = body, *q;
  while ((q = strstr(p, mark))) {
    memcpy(o, p, q - p);
    o += q - p;
    strcpy(o, uid);
    o += strlen(uid);
    p = q + 5;
  }
  strcpy(o, p);
  return out;
}

static void start(CURLM *multi, int i)
{
  struct req *r = &reqs[i];
  CURL *e = curl_easy_init();
  char url[4096];
  snprintf(url, sizeof(url), "%s%s", server, r->path);
  struct group *g = &groups[r->group];
  if (r->phase == 1 && g->uid[0]) {
    char *b = subst_uid(r->body, g->uid);
    free(r->body);
    r->body = b;
  }
  char ct[128];
  snprintf(ct, sizeof(ct), "Content-Type: %s", r->ctype);
  r->headers = curl_slist_append(NULL, auth);
  r->headers = curl_slist_append(r->headers, ct);
  r->headers = curl_slist_append(r->headers, "Accept: application/json");
  curl_easy_setopt(e, CURLOPT_URL, url);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
  curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
  curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(r->body));
  curl_easy_setopt(e, CURLOPT_USERAGENT, user_agent);
  curl_easy_setopt(e, CURLOPT_CAINFO, cacert);
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
  curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_TIMEOUT, 120L);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)r);
  curl_multi_add_handle(multi, e);
}

/* metadata.uid of a create response: the first "uid" key of the object */
static void take_uid(struct group *g, const char *resp)
{
  const char *p = resp ? strstr(resp, "\"uid\":\"") : NULL;
  if (!p) return;
  p += 7;
  size_t n = strcspn(p, "\"");
  if (n >= sizeof(g->uid)) n = sizeof(g->uid) - 1;
  memcpy(g->uid, p, n);
  g->uid[n] = 0;
}

/* VmRSS, RssAnon and RssFile of this process in KiB (0 when unknown). */
static void print_rss(void)
{
  long rss = 0, anon = 0, file = 0;
  char line[256];
  FILE *f = fopen("/proc/self/status", "r");
  while (f && fgets(line, sizeof(line), f)) {
    sscanf(line, "VmRSS: %ld", &rss);
    sscanf(line, "RssAnon: %ld", &anon);
    sscanf(line, "RssFile: %ld", &file);
  }
  if (f) fclose(f);
  printf(" rss_kib=%ld anon_kib=%ld file_kib=%ld", rss, anon, file);
}

static void usage(void)
{
  fprintf(stderr, "usage: bench-floor --server URL --token-file F --cacert F [--creates N] "
                  "[--groups N] [--user-agent UA] [--rss] FILE\n");
  exit(2);
}

int main(int argc, char **argv)
{
  int max_creates = 16, max_groups = 16, want_rss = 0;
  const char *file = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (i + 1 < argc && !strcmp(a, "--server"))
      server = argv[++i];
    else if (i + 1 < argc && !strcmp(a, "--token-file"))
      token_file = argv[++i];
    else if (i + 1 < argc && !strcmp(a, "--cacert"))
      cacert = argv[++i];
    else if (i + 1 < argc && !strcmp(a, "--creates"))
      max_creates = atoi(argv[++i]);
    else if (i + 1 < argc && !strcmp(a, "--groups"))
      max_groups = atoi(argv[++i]);
    else if (!strcmp(a, "--rss"))
      want_rss = 1;
    else if (i + 1 < argc && !strcmp(a, "--user-agent"))
      user_agent = argv[++i];
    else if (a[0] != '-' && !file)
      file = a;
    else
      usage();
  }
  if (!server || !token_file || !cacert || !file || max_creates < 1 || max_groups < 1) usage();
  FILE *tf = fopen(token_file, "r");
  char token[900] = "";
  if (!tf || !fgets(token, sizeof(token), tf)) {
    fprintf(stderr, "bench-floor: cannot read %s\n", token_file);
    return 2;
  }
  fclose(tf);
  token[strcspn(token, "\r\n")] = 0;
  snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
  if (load(file)) return 2;

  curl_global_init(CURL_GLOBAL_DEFAULT);
  CURLM *multi = curl_multi_init();
  curl_multi_setopt(multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
  curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, 1L);

  int *ready = xrealloc(NULL, (ngroups + 1) * sizeof(int)); /* groups whose deps may start */
  int ready_head = 0, ready_tail = 0;
  int next_group = 0; /* next group whose phase 0 (or, without one, phase 1) is due */
  int creates_inflight = 0, groups_active = 0, done_requests = 0;
  double t0 = now();
  for (;;) {
    /* phase 0: creates, in file order */
    while (creates_inflight < max_creates && next_group < ngroups) {
      struct group *g = &groups[next_group];
      if (g->first >= 0) {
        start(multi, g->first);
        creates_inflight++;
      } else if (g->ndeps) {
        ready[ready_tail++] = next_group;
      }
      next_group++;
    }
    /* phase 1: groups whose create succeeded */
    while (groups_active < max_groups && ready_head < ready_tail) {
      struct group *g = &groups[ready[ready_head++]];
      for (int k = 0; k < g->ndeps; k++)
        start(multi, g->deps[k]);
      g->pending = g->ndeps;
      groups_active++;
    }
    if (done_requests + skipped >= nreqs) break;
    int running;
    curl_multi_perform(multi, &running);
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(multi, &left))) {
      if (m->msg != CURLMSG_DONE) continue;
      CURL *e = m->easy_handle;
      struct req *r;
      long code = 0;
      curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&r);
      curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
      struct group *g = &groups[r->group];
      int good = m->data.result == CURLE_OK && code >= 200 && code < 300;
      if (code > 0 && code < 600) codes[code]++;
      if (good) {
        ok_count++;
      } else {
        err_count++;
        if (errors_printed++ < 5)
          fprintf(stderr, "bench-floor: %s %s: %s %ld %.300s\n", r->method, r->path,
                  curl_easy_strerror(m->data.result), code, r->resp ? r->resp : "");
      }
      done_requests++;
      if (r->phase == 0) {
        creates_inflight--;
        if (good && g->ndeps) {
          take_uid(g, r->resp);
          ready[ready_tail++] = r->group;
        } else if (g->ndeps) {
          skipped += g->ndeps;
        }
      } else if (--g->pending == 0) {
        groups_active--;
      }
      curl_multi_remove_handle(multi, e);
      curl_easy_cleanup(e);
      curl_slist_free_all(r->headers);
      r->headers = NULL;
      free(r->resp);
      r->resp = NULL;
    }
    if (done_requests + skipped >= nreqs) break;
    if (running) curl_multi_poll(multi, NULL, 0, 100, NULL);
  }
  double wall = now() - t0;
  printf("requests=%d ok=%d errors=%d skipped=%d wall=%.3f codes=", nreqs, ok_count, err_count,
         skipped, wall);
  int first = 1;
  for (int c = 0; c < 600; c++)
    if (codes[c]) {
      printf("%s%d:%ld", first ? "" : ",", c, codes[c]);
      first = 0;
    }
  if (want_rss) print_rss();
  printf("\n");
  curl_multi_cleanup(multi);
  curl_global_cleanup();
  return err_count || skipped ? 1 : 0;
}
