/* process_metrics.c: the Go client's process_* metrics read from /proc/self
 * (process_metrics.h). Owns no state: the families live in the registry and
 * each scrape reads /proc afresh. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "process_metrics.h"

/* Soft limit of the /proc/self/limits row starting with `row` into *out;
 * -1 for "unlimited" (the Go collector reports it so for the address space).
 * Returns 0, or -1 when the row is not there. */
static int read_limit(const char *row, double *out)
{
  FILE *f = fopen("/proc/self/limits", "r");
  if (!f) return -1;
  char line[256];
  int rc = -1;
  size_t n = strlen(row);
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, row, n)) continue;
    const char *p = line + n;
    while (*p == ' ')
      p++;
    *out = strncmp(p, "unlimited", 9) ? strtod(p, NULL) : -1;
    rc = 0;
    break;
  }
  fclose(f);
  return rc;
}

/* btime of /proc/stat: the boot time in Unix seconds, or -1. */
static double boot_time(void)
{
  FILE *f = fopen("/proc/stat", "r");
  if (!f) return -1;
  char line[256];
  double bt = -1;
  while (fgets(line, sizeof line, f))
    if (!strncmp(line, "btime ", 6)) {
      bt = strtod(line + 6, NULL);
      break;
    }
  fclose(f);
  return bt;
}

int k8s_process_stats_read(struct k8s_process_stats *st)
{
  FILE *f = fopen("/proc/self/stat", "r");
  if (!f) return -1;
  char buf[1024];
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  /* fields after the command: the command may hold spaces and ')' */
  char *p = strrchr(buf, ')');
  if (!p) return -1;
  p += 2; /* field 3 (state) */
  double fields[25] = {0};
  /* fields 3..25 of proc(5); index i = field number - 3 */
  for (int i = 0; i < 23 && *p; i++) {
    char *end;
    fields[i] = i == 0 ? 0 : strtod(p, &end);
    if (i == 0) end = strchr(p, ' ');
    if (!end) break;
    p = end;
    while (*p == ' ')
      p++;
  }
  double ticks = (double)sysconf(_SC_CLK_TCK), page = (double)sysconf(_SC_PAGESIZE);
  if (ticks <= 0) ticks = 100;
  st->cpu_seconds = (fields[14 - 3] + fields[15 - 3]) / ticks; /* utime + stime */
  st->vsize = fields[23 - 3];
  st->rss = fields[24 - 3] * page;
  double bt = boot_time();
  if (bt >= 0) st->start_time = bt + fields[22 - 3] / ticks;
  DIR *d = opendir("/proc/self/fd");
  if (d) {
    double nfd = 0;
    struct dirent *e;
    while ((e = readdir(d)))
      if (e->d_name[0] != '.') nfd++;
    closedir(d);
    st->open_fds = nfd - 1; /* the directory stream's own descriptor */
  }
  read_limit("Max open files", &st->max_fds);
  read_limit("Max address space", &st->vsize_max);
  return 0;
}

struct families {
  struct k8s_metric *cpu, *fds, *max_fds, *vsize, *vsize_max, *rss, *start;
};

static void collect(struct k8s_metrics *m, void *data)
{
  (void)data;
  struct families f = {
      k8s_metrics_counter(m, "process_cpu_seconds_total", "", NULL),
      k8s_metrics_gauge(m, "process_open_fds", "", NULL),
      k8s_metrics_gauge(m, "process_max_fds", "", NULL),
      k8s_metrics_gauge(m, "process_virtual_memory_bytes", "", NULL),
      k8s_metrics_gauge(m, "process_virtual_memory_max_bytes", "", NULL),
      k8s_metrics_gauge(m, "process_resident_memory_bytes", "", NULL),
      k8s_metrics_gauge(m, "process_start_time_seconds", "", NULL),
  };
  struct k8s_process_stats st = {0};
  if (k8s_process_stats_read(&st) != 0) return;
  /* a counter only goes up: add what passed since the last scrape */
  double was = k8s_metric_value(f.cpu, NULL);
  if (st.cpu_seconds > was) k8s_metric_add(f.cpu, NULL, st.cpu_seconds - was);
  k8s_metric_set(f.fds, NULL, st.open_fds);
  k8s_metric_set(f.max_fds, NULL, st.max_fds);
  k8s_metric_set(f.vsize, NULL, st.vsize);
  k8s_metric_set(f.vsize_max, NULL, st.vsize_max);
  k8s_metric_set(f.rss, NULL, st.rss);
  k8s_metric_set(f.start, NULL, st.start_time);
}

int k8s_process_metrics_register(struct k8s_metrics *reg)
{
  /* help texts as the Go collector's */
  int ok =
      k8s_metrics_counter(reg, "process_cpu_seconds_total",
                          "Total user and system CPU time spent in seconds.", NULL) &&
      k8s_metrics_gauge(reg, "process_open_fds", "Number of open file descriptors.", NULL) &&
      k8s_metrics_gauge(reg, "process_max_fds", "Maximum number of open file descriptors.", NULL) &&
      k8s_metrics_gauge(reg, "process_virtual_memory_bytes", "Virtual memory size in bytes.",
                        NULL) &&
      k8s_metrics_gauge(reg, "process_virtual_memory_max_bytes",
                        "Maximum amount of virtual memory available in bytes.", NULL) &&
      k8s_metrics_gauge(reg, "process_resident_memory_bytes", "Resident memory size in bytes.",
                        NULL) &&
      k8s_metrics_gauge(reg, "process_start_time_seconds",
                        "Start time of the process since unix epoch in seconds.", NULL);
  if (!ok) return -1;
  return k8s_metrics_add_collector(reg, collect, NULL);
}
