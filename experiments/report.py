"""The figures of a run and the comparison of two (doc/experiments.md, "The result folder",
"Compare"): percentiles, per-pod shares, prefix affinity, metric deltas; the side-by-side
table and the gnuplot PNGs. Standard library only (gnuplot for the plots)."""
import json
import math
import os
import shutil
import subprocess
import tempfile

from common import ExperimentError, metric_sum

# ---------------------------------------------------------------- figures

def percentile(sorted_vals, p):
    """Nearest-rank percentile of an ascending list (None when empty)."""
    if not sorted_vals:
        return None
    k = max(0, math.ceil(p / 100.0 * len(sorted_vals)) - 1)
    return sorted_vals[k]


def succeeded(r):
    """A request succeeded when it got a 200 and its whole body."""
    return r["status"] == 200 and not r.get("broken")


def figures(records, duration, sims, before, after, epp_before, epp_after, saturated):
    """The run's figures (doc/experiments.md, "The result folder") from the recorder's
    records, the driver's duration (s), the simulator pods [(name, ip, port)], their metrics
    before/after ({name: {series: value} or None}), the EPP's, and the saturated pod's name."""
    ok = [r for r in records if succeeded(r)]
    # throughput over the span the requests were in flight (the driver's start-up excluded)
    span = (max(r["start"] + r["e2e"] for r in records) - min(r["start"] for r in records)) if records else 0
    fig = {"requests": {"sent": len(records), "succeeded": len(ok), "failed": len(records) - len(ok)},
           "driverSeconds": round(duration, 3), "spanSeconds": round(span, 3),
           "throughputRps": round(len(ok) / span, 3) if span > 0 else None}
    for key in ("ttft", "e2e"):
        vals = sorted(r[key] for r in ok if r.get(key) is not None)
        fig[key + "Seconds"] = {f"p{p}": (round(percentile(vals, p), 4) if vals else None) for p in (50, 95, 99)}
    share = {}
    for r in ok:
        share[r.get("pod") or "(no x-inference-pod)"] = share.get(r.get("pod") or "(no x-inference-pod)", 0) + 1
    for name, _, _ in sims:
        share.setdefault(name, 0)
    fig["podRequests"] = dict(sorted(share.items()))
    fig["podShare"] = {k: round(v / len(ok), 4) if ok else 0 for k, v in sorted(share.items())}
    if saturated:
        fig["saturatedPod"] = saturated
        fig["saturatedPodShare"] = fig["podShare"].get(saturated, 0)
    # prefix affinity: of the requests whose first 64 characters another request shares,
    # the fraction served by their group's most used pod (1.0: every group on one pod)
    groups = {}
    for r in ok:
        if r.get("prefixKey"):
            groups.setdefault(r["prefixKey"], []).append(r.get("pod"))
    shared = [g for g in groups.values() if len(g) > 1]
    on_top = sum(max(g.count(p) for p in set(g)) for g in shared)
    fig["prefixAffinity"] = {"groups": len(shared), "requests": sum(len(g) for g in shared),
                             "onGroupPod": round(on_top / sum(len(g) for g in shared), 4) if shared else None}
    errors = {}
    for r in records:
        if not succeeded(r):
            e = f"{r['status']} {r.get('error', '')}".strip()
            errors[e] = errors.get(e, 0) + 1
    fig["failures"] = errors

    def delta(a, b, name, where=None):
        """Counter increase between two scrapes; a series that appears only in the second
        scrape started at 0 (Prometheus clients create a labelled series on first use)."""
        if a is None or b is None:
            return None
        x, y = metric_sum(a, name, where), metric_sum(b, name, where)
        if y is None:
            return None
        return round(y - (x or 0), 4)

    # simulator metrics, summed over the pods (vLLM names the simulator exports)
    sim = {"scraped": sum(1 for n, _, _ in sims if before.get(n) is not None and after.get(n) is not None)}
    hits = queries = 0.0
    have = False
    for n, _, _ in sims:
        h = delta(before.get(n), after.get(n), "vllm:prefix_cache_hits_total") \
            or delta(before.get(n), after.get(n), "vllm:prefix_cache_hits")
        q = delta(before.get(n), after.get(n), "vllm:prefix_cache_queries_total") \
            or delta(before.get(n), after.get(n), "vllm:prefix_cache_queries")
        if q is not None:
            have = True
            hits += h or 0
            queries += q
    sim["prefixCacheHitRatio"] = round(hits / queries, 4) if have and queries > 0 else None
    sim["requestSuccessByPod"] = {n: delta(before.get(n), after.get(n), "vllm:request_success_total")
                                  for n, _, _ in sims}
    fig["simulatorMetrics"] = sim
    epp = {"scraped": epp_before is not None and epp_after is not None}
    if epp["scraped"]:
        epp["requests"] = delta(epp_before, epp_after, "inference_objective_request_total")
        epp["requestErrors"] = delta(epp_before, epp_after, "inference_objective_request_error_total")
        epp["schedulingDecisions"] = delta(epp_before, epp_after, "inference_extension_scheduler_e2e_duration_seconds_count")
        hs = delta(epp_before, epp_after, "inference_extension_prefix_indexer_hit_ratio_sum")
        hc = delta(epp_before, epp_after, "inference_extension_prefix_indexer_hit_ratio_count")
        epp["prefixIndexerMeanHitRatio"] = round(hs / hc, 4) if hs is not None and hc else None
    fig["eppMetrics"] = epp
    return fig


def print_summary(rec):
    """A few lines on stdout: counts, latencies, per-pod shares."""
    f = rec["figures"]
    r = f["requests"]
    print(f"{rec.get('name')}: sent {r['sent']}, succeeded {r['succeeded']}, failed {r['failed']}, "
          f"{f['throughputRps']} req/s; TTFT p50/p95/p99 {fmt3(f['ttftSeconds'])} s; "
          f"e2e {fmt3(f['e2eSeconds'])} s; took {rec['wallSeconds']} s")
    for pod, s in f["podShare"].items():
        print(f"  {pod:<60} {s * 100:5.1f} %  ({f['podRequests'][pod]})")


def fmt3(d):
    """p50/p95/p99 of a percentile dict as text."""
    return "/".join("-" if d[k] is None else f"{d[k]:.3f}" for k in ("p50", "p95", "p99"))


# ---------------------------------------------------------------- compare

def flat(rec):
    """The figures of a record as ordered (label, value) rows for the side-by-side table."""
    f = rec["figures"]
    rows = [("requests sent", f["requests"]["sent"]), ("requests succeeded", f["requests"]["succeeded"]),
            ("requests failed", f["requests"]["failed"]), ("throughput (req/s)", f["throughputRps"])]
    for key, label in (("ttftSeconds", "TTFT"), ("e2eSeconds", "end-to-end")):
        for p in ("p50", "p95", "p99"):
            rows.append((f"{label} {p} (s)", f[key][p]))
    if "saturatedPodShare" in f:
        rows.append(("saturated pod share", f["saturatedPodShare"]))
    for pod, s in f["podShare"].items():
        rows.append((f"share {pod}", s))
    pa = f.get("prefixAffinity") or {}
    rows.append(("prefix groups (>1 request)", pa.get("groups")))
    rows.append(("prefix affinity (on group's pod)", pa.get("onGroupPod")))
    sm, em = f["simulatorMetrics"], f["eppMetrics"]
    rows.append(("simulator prefix-cache hit ratio", sm.get("prefixCacheHitRatio")))
    for k in ("requests", "requestErrors", "schedulingDecisions", "prefixIndexerMeanHitRatio"):
        rows.append((f"EPP {k}", em.get(k)))
    rows.append(("scripts revision", (rec.get("scriptRevision") or {}).get("schedulerInstall")))
    return rows


def compare(args):
    """`compare A B [--plots DIR]`: the figures side by side with B - A for numbers."""
    recs = []
    for d in (args.a, args.b):
        try:
            with open(os.path.join(d, "record.json")) as f:
                recs.append(json.load(f))
        except (OSError, ValueError) as e:
            raise ExperimentError(f"{d}: no readable record.json ({e})")
    a, b = dict(flat(recs[0])), dict(flat(recs[1]))
    labels = list(dict.fromkeys([k for k, _ in flat(recs[0])] + [k for k, _ in flat(recs[1])]))
    w = max(len(x) for x in labels)
    print(f"{'':<{w}}  {'A':>14}  {'B':>14}  {'B - A':>12}")
    print(f"{'':<{w}}  {os.path.basename(os.path.normpath(args.a))[:14]:>14}  "
          f"{os.path.basename(os.path.normpath(args.b))[:14]:>14}")
    for k in labels:
        va, vb = a.get(k), b.get(k)
        d = ""
        if isinstance(va, (int, float)) and isinstance(vb, (int, float)):
            d = f"{vb - va:+.4g}"
        show = [str(v)[:19] if isinstance(v, str) else ("-" if v is None else f"{v:.4g}") for v in (va, vb)]
        print(f"{k:<{w}}  {show[0]:>14}  {show[1]:>14}  {d:>12}")
    if args.plots:
        plots(args, recs)


def plots(args, recs):
    """PNGs with gnuplot: per-pod share (bars, A and B), latency CDFs (TTFT and e2e), and
    e2e latency over the run."""
    if not shutil.which("gnuplot"):
        raise ExperimentError("gnuplot is not installed: run experiments/setup")
    os.makedirs(args.plots, exist_ok=True)
    tmp = tempfile.mkdtemp()
    pods = sorted(set(recs[0]["figures"]["podShare"]) | set(recs[1]["figures"]["podShare"]))
    with open(os.path.join(tmp, "share.dat"), "w") as f:
        for p in pods:
            f.write(f"\"{p[-24:]}\" {recs[0]['figures']['podShare'].get(p, 0) * 100} "
                    f"{recs[1]['figures']['podShare'].get(p, 0) * 100}\n")
    for i, d in enumerate((args.a, args.b)):
        reqs = []
        with open(os.path.join(d, "requests.jsonl")) as f:
            reqs = [json.loads(line) for line in f if line.strip()]
        ok = [r for r in reqs if succeeded(r)]
        for key in ("ttft", "e2e"):
            vals = sorted(r[key] for r in ok if r.get(key) is not None)
            with open(os.path.join(tmp, f"{key}{i}.dat"), "w") as f:
                for j, v in enumerate(vals):
                    f.write(f"{v} {(j + 1) / len(vals)}\n")
        with open(os.path.join(tmp, f"time{i}.dat"), "w") as f:
            for r in ok:
                f.write(f"{r['start']} {r['e2e']}\n")
    na, nb = (os.path.basename(os.path.normpath(x)) for x in (args.a, args.b))
    script = f"""
set terminal pngcairo size 900,500 noenhanced
set datafile separator whitespace
set output '{args.plots}/pod-share.png'
set title 'Per-pod request share'
set ylabel 'share of successful requests (%)'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set yrange [0:100]
set xtics rotate by -20
plot '{tmp}/share.dat' using 2:xtic(1) title '{na}', '' using 3 title '{nb}'
unset style
set style data lines
set xtics norotate
set yrange [0:1]
set ylabel 'fraction of requests'
set key bottom right
set output '{args.plots}/latency-cdf.png'
set title 'Latency CDF (TTFT through a buffering gateway equals e2e: doc/experiments.md)'
set xlabel 'seconds (log scale)'
set logscale x
plot '{tmp}/ttft0.dat' using 1:2 with steps lw 2 title 'TTFT {na}', \\
     '{tmp}/ttft1.dat' using 1:2 with steps lw 2 title 'TTFT {nb}', \\
     '{tmp}/e2e0.dat' using 1:2 with steps dt 2 lw 2 title 'e2e {na}', \\
     '{tmp}/e2e1.dat' using 1:2 with steps dt 2 lw 2 title 'e2e {nb}'
set output '{args.plots}/latency-over-time.png'
set title 'End-to-end latency over the run'
set xlabel 'request start (s since the workload began)'
set ylabel 'seconds'
unset logscale x
set autoscale y
set key top right
plot '{tmp}/time0.dat' using 1:2 with points pt 7 ps 0.5 title '{na}', \\
     '{tmp}/time1.dat' using 1:2 with points pt 7 ps 0.5 title '{nb}'
"""
    p = subprocess.run(["gnuplot"], input=script, capture_output=True, text=True)
    shutil.rmtree(tmp, ignore_errors=True)
    if p.returncode != 0:
        raise ExperimentError(f"gnuplot: {p.stderr.strip()}")
    print(f"plots: {args.plots}/pod-share.png {args.plots}/latency-cdf.png {args.plots}/latency-over-time.png")
