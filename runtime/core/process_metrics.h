/* process_metrics.h: the process_* families of the Go client's process
 * collector (prometheus/client_golang prometheus/process_collector.go, which
 * controller-runtime registers), read from /proc/self at every scrape:
 *
 *   process_cpu_seconds_total           counter  user + system CPU seconds
 *   process_open_fds                    gauge    entries of /proc/self/fd
 *   process_max_fds                     gauge    soft "Max open files" limit
 *   process_virtual_memory_bytes        gauge    VmSize (stat field vsize)
 *   process_virtual_memory_max_bytes    gauge    "Max address space" soft limit
 *                                                (-1 when unlimited, as Go)
 *   process_resident_memory_bytes       gauge    rss pages * page size
 *   process_start_time_seconds          gauge    Unix seconds the process started
 *                                                (boot time + starttime ticks)
 *
 * A value /proc cannot give (not Linux, a read error) is left at its last
 * value (0 at first). */
#ifndef K8S_CORE_PROCESS_METRICS_H
#define K8S_CORE_PROCESS_METRICS_H

#include "metrics.h"

/* Registers the families in reg and a collector that refreshes them before
 * every render (k8s_metrics_add_collector; it runs on the rendering thread
 * and reads only /proc). Returns 0, or -1 when a family exists with other
 * labels or type, or on malloc failure. Nothing to free: the registry owns
 * the families and the collector has no state. */
int k8s_process_metrics_register(struct k8s_metrics *reg);

/* Reads the current values from /proc/self (for tests): returns 0 and fills
 * what it could, -1 when /proc/self/stat cannot be read. Units as above. */
struct k8s_process_stats {
  double cpu_seconds, open_fds, max_fds, vsize, vsize_max, rss, start_time;
};
int k8s_process_stats_read(struct k8s_process_stats *st);

#endif
