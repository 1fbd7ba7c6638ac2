#!/usr/bin/env python3
"""Experiment runs (doc/experiments.md): drive load through the scheduler, record what
happened, compare two runs.

  experiment.py run EXPERIMENT.yaml OUTDIR     apply/read the CRs, wait for Ready, run the
                                               workload through the gateway, write OUTDIR
  experiment.py compare A B [--plots DIR]      print A's and B's figures side by side with
                                               the difference; draw PNGs with gnuplot

Needs kubectl and KUBECONFIG (the cluster's CRs, pods, the scripts ConfigMap); the gateway
URL comes from the experiment file, or from $SCHEDSIM_GATEWAYS on the local data plane.
Python 3 standard library plus PyYAML (Debian python3-yaml). The workload runs with
inference-perf from the venv `experiments/setup` makes, or with the small built-in driver.

Modules: this one (the experiment file, the cluster, the run), loadgen.py (the recorder,
the saturating requests, the drivers), report.py (figures, compare, plots), common.py.

Every workload request passes the recorder (a local HTTP proxy in this process, in front of
the gateway): it keeps one record per request (start, time to first body byte, end, status,
x-inference-pod, the gateway's endpoint header), so the figures count every request,
whichever driver sent it. Pod and EPP metrics are scraped on pod IPs (reachable on the local
data plane; elsewhere the record says why they are missing).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import yaml

from common import ROOT, ExperimentError, log, metric_sum, post, scrape
from loadgen import Recorder, Saturator, run_builtin, run_inference_perf
from report import compare, figures, print_summary


# ---------------------------------------------------------------- experiment file

def load_experiment(path):
    """Reads and checks EXPERIMENT.yaml; returns (dict, directory). Raises ExperimentError
    naming the field on bad input. Paths in `apply` and `scripts.overlay` are relative to
    the file's directory."""
    try:
        with open(path) as f:
            exp = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise ExperimentError(f"{path}: {e}")
    if not isinstance(exp, dict):
        raise ExperimentError(f"{path}: not a mapping")
    base = os.path.dirname(os.path.abspath(path))

    def ref(field):
        v = exp.get(field)
        if not isinstance(v, str) or not re.fullmatch(r"[a-z0-9-]+/[a-z0-9.-]+", v):
            raise ExperimentError(f"{path}: {field} must be NAMESPACE/NAME, got {v!r}")
        return v.split("/", 1)

    exp["_simdep"] = ref("simulatorDeployment")
    exp["_schedinst"] = ref("schedulerInstall")
    if not isinstance(exp.get("apply", []), list):
        raise ExperimentError(f"{path}: apply must be a list of manifest paths")
    wl = exp.setdefault("workload", {})
    if not isinstance(wl, dict):
        raise ExperimentError(f"{path}: workload must be a mapping")
    if wl.setdefault("driver", "inference-perf") not in ("inference-perf", "builtin"):
        raise ExperimentError(f"{path}: workload.driver must be inference-perf or builtin, got {wl['driver']!r}")
    if not isinstance(wl.setdefault("seed", 1), int):
        raise ExperimentError(f"{path}: workload.seed must be an integer")
    wl.setdefault("api", {"type": "completion", "streaming": True})
    wl.setdefault("data", {"type": "random"})
    if wl["data"].get("type") not in ("random", "shared_prefix"):
        raise ExperimentError(f"{path}: workload.data.type must be random or shared_prefix "
                              f"(other inference-perf data types: use workload.inferencePerf), got {wl['data'].get('type')!r}")
    stages = wl.setdefault("load", {}).setdefault("stages", [{"rate": 20, "duration": 10}])
    for i, s in enumerate(stages):
        if not (isinstance(s, dict) and s.get("rate", 0) > 0 and s.get("duration", 0) > 0):
            raise ExperimentError(f"{path}: workload.load.stages[{i}] needs rate > 0 and duration > 0")
    sat = exp.get("saturate")
    if sat is not None:
        if not isinstance(sat, dict):
            raise ExperimentError(f"{path}: saturate must be a mapping")
        sat.setdefault("pod", 0)
        sat.setdefault("concurrency", 16)
        sat.setdefault("maxTokens", 100)
        sat.setdefault("minWaiting", 4)
    scripts = exp.get("scripts")
    if scripts is not None:
        if not isinstance(scripts, dict) or not (isinstance(scripts.get("overlay"), str) or
                                                  isinstance(scripts.get("edit"), dict) or
                                                  isinstance(scripts.get("policy"), str)):
            raise ExperimentError(f"{path}: scripts needs policy (the source of a policy.lua overlay), overlay "
                                  "(a ConfigMap manifest path, or \"bundled\") or edit (module, replace)")
        ed = scripts.get("edit")
        if ed is not None and not (isinstance(ed.get("module"), str) and isinstance(ed.get("replace"), dict)
                                   and ed["replace"]):
            raise ExperimentError(f"{path}: scripts.edit needs module (e.g. lib.epp) and "
                                  "replace (a mapping: text in the bundled module -> its replacement)")
    return exp, base


# ---------------------------------------------------------------- cluster

def kubectl(*args, input=None, check=True):
    """Runs kubectl ARGS; returns stdout. Raises ExperimentError with kubectl's stderr."""
    p = subprocess.run(["kubectl", *args], input=input, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise ExperimentError(f"kubectl {' '.join(args)}: {p.stderr.strip()}")
    return p.stdout


def get_json(*args):
    """kubectl get ARGS -o json, decoded."""
    return json.loads(kubectl("get", *args, "-o", "json"))


def condition(obj, ctype):
    """The status condition of type ctype of a Kubernetes object, or None."""
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


def eventually(timeout, what, fn, interval=0.5):
    """Calls fn until it returns a truthy value (returned) or timeout seconds pass
    (ExperimentError naming `what` and fn's last second value, if any)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        r = fn()
        if isinstance(r, tuple):
            r, last = r
        if r:
            return r
        if time.monotonic() > deadline:
            raise ExperimentError(f"timed out after {timeout}s waiting for {what}" + (f" ({last})" if last else ""))
        time.sleep(interval)


def scripts_revision(data):
    """The revision the operator will serve with this overlay (the bundled scripts plus the
    ConfigMap's keys, as doc/hot-reload.md describes), computed with `schedsim-operator check
    --overlay` on a directory of the keys; None when the binary is not built."""
    binary = os.environ.get("SCHEDSIM_BIN", os.path.join(ROOT, "build", "schedsim-operator"))
    if not os.access(binary, os.X_OK):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        for key, src in data.items():  # one file per key, as the ConfigMap's
            with open(os.path.join(tmp, key), "w") as f:
                f.write(src)
        p = subprocess.run([binary, "check", "--scripts", os.path.join(ROOT, "scripts"), "--overlay", tmp],
                           capture_output=True, text=True)
        m = re.search(r"sha256:[0-9a-f]+", p.stdout)
        if p.returncode != 0 or not m:
            raise ExperimentError(f"the scripts overlay does not pass `schedsim-operator check`: {p.stdout}{p.stderr}")
        return m.group(0)


def prepare(exp, base, out, rec):
    """Applies the manifests and the scripts overlay, then waits until both CRs are Ready
    (for the overlay's scripts revision when one is given). Fills rec['scripts']."""
    for m in exp.get("apply", []):
        log(f"kubectl apply -f {m}")
        kubectl("apply", "-f", os.path.join(base, m))
    scripts = exp.get("scripts")
    want = None
    if scripts:
        cm_ref = scripts.get("configMap", "schedsim-system/schedsim-scripts")
        ns, name = cm_ref.split("/", 1)
        manifest = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": {}}
        if scripts.get("policy"):
            # a policy overlay: the ConfigMap key policy.lua (doc/hot-reload.md, "Policy overlays")
            manifest["data"]["policy.lua"] = scripts["policy"]
        elif scripts.get("edit"):
            # the bundled module with textual replacements, as the ConfigMap key <module>.lua
            ed = scripts["edit"]
            src_path = os.path.join(ROOT, "scripts", ed["module"].replace(".", "/") + ".lua")
            with open(src_path) as f:
                src = f.read()
            for old, new in ed["replace"].items():
                if src.count(old) != 1:
                    raise ExperimentError(f"scripts.edit.replace: {old!r} occurs {src.count(old)} times in {src_path}, "
                                          "want exactly once")
                src = src.replace(old, new)
            manifest["data"][ed["module"] + ".lua"] = src
        elif scripts["overlay"] != "bundled":
            with open(os.path.join(base, scripts["overlay"])) as f:
                manifest = yaml.safe_load(f)
            manifest.setdefault("metadata", {}).update(name=name, namespace=ns)
        kubectl("apply", "-f", "-", input=json.dumps(manifest))
        with open(os.path.join(out, "scripts-configmap.yaml"), "w") as f:
            yaml.safe_dump(manifest, f, sort_keys=False)
        log(f"scripts ConfigMap {cm_ref}: " + ("policy.lua" if scripts.get("policy") else
                                               "edit of " + scripts["edit"]["module"] if scripts.get("edit")
                                               else scripts["overlay"]))
        # the revision to wait for: the repo's scripts plus the overlay (off with
        # scripts.waitForRevision: false, e.g. for an operator running other bundled scripts)
        want = scripts_revision(manifest.get("data") or {}) if scripts.get("waitForRevision", True) else None
        rec["scripts"] = {"configMap": cm_ref, "overlay": scripts.get("overlay"), "edit": scripts.get("edit"),
                          "policy": scripts.get("policy"),
                          "expectedRevision": want}
    sns, sname = exp["_schedinst"]
    dns, dname = exp["_simdep"]

    def ready(kind, ns, name, revision=None):
        def check():
            o = json.loads(kubectl("get", kind, name, "-n", ns, "-o", "json", check=False) or "{}")
            c = condition(o, "Ready")
            st = o.get("status") or {}
            if revision and st.get("scriptRevision") != revision:
                return False, f"scriptRevision {st.get('scriptRevision')}"
            ok = c and c["status"] == "True" and st.get("observedGeneration") == o["metadata"].get("generation")
            return ok, c and f"{c.get('reason')}: {c.get('message')}"
        return check

    log(f"waiting for SimulatorDeployment {dns}/{dname} Ready")
    eventually(300, f"SimulatorDeployment {dns}/{dname} Ready", ready("simulatordeployment", dns, dname))
    sd = get_json("simulatordeployment", dname, "-n", dns)
    want_pods = ((sd.get("spec") or {}).get("decode") or {}).get("replicas")
    sel = exp.get("simulatorSelector", "llm-d.ai/role=decode")

    def settled():
        # after a change of the simulator args the old pods go away: wait for one
        # pod template, every pod of it ready, as many as the CR asks for
        pods = [p for p in get_json("pods", "-n", dns, "-l", sel)["items"]]
        hashes = {p["metadata"].get("labels", {}).get("pod-template-hash") for p in pods}
        nready = sum(1 for p in pods if (condition(p, "Ready") or {}).get("status") == "True"
                     and not p["metadata"].get("deletionTimestamp"))
        ok = len(hashes) == 1 and len(pods) == nready and (want_pods is None or nready == want_pods)
        return ok, f"{len(pods)} pods, {nready} ready, {len(hashes)} templates, want {want_pods}"
    eventually(300, f"the simulator pods ({sel}) of one template, all ready", settled)
    log(f"waiting for SchedulerInstall {sns}/{sname} Ready" + (f" at scripts {want[:19]}" if want else ""))
    eventually(300, f"SchedulerInstall {sns}/{sname} Ready", ready("schedulerinstall", sns, sname, want))


def record_cluster(exp, out, rec):
    """Writes the CRs (crs/*.yaml) and the pods' images, commands and args (pods.json);
    returns (schedinst, simulator pods [(name, ip, port)], epp pods [ip]) for the run."""
    os.makedirs(os.path.join(out, "crs"), exist_ok=True)
    sns, sname = exp["_schedinst"]
    dns, dname = exp["_simdep"]
    si = get_json("schedulerinstall", sname, "-n", sns)
    sd = get_json("simulatordeployment", dname, "-n", dns)
    for kind, o in (("schedulerinstall", si), ("simulatordeployment", sd)):
        with open(os.path.join(out, "crs", f"{kind}-{o['metadata']['name']}.yaml"), "w") as f:
            yaml.safe_dump(o, f, sort_keys=False)
    rec["scriptRevision"] = {"schedulerInstall": (si.get("status") or {}).get("scriptRevision"),
                             "simulatorDeployment": (sd.get("status") or {}).get("scriptRevision")}
    spec = si.get("spec", {})
    sim_ns = spec.get("simulatorNamespace", dns)
    sel = exp.get("simulatorSelector", "llm-d.ai/role=decode")
    # the operator names the EPP <poolName>-epp and labels its pods app=<that>
    pool = (spec.get("epp") or {}).get("poolName") or ((spec.get("routing") or {}).get("inferencePool") or {}).get(
        "name") or "gaie-inference-scheduling"
    epp_sel = exp.get("eppSelector", f"app={pool}-epp")
    pods = {"simulators": [], "epp": []}
    sims, epps = [], []
    for key, ns, s in (("simulators", sim_ns, sel), ("epp", spec.get("schedulerNamespace", sns), epp_sel)):
        for p in get_json("pods", "-n", ns, "-l", s)["items"]:
            if p["metadata"].get("deletionTimestamp"):
                continue
            c = p["spec"]["containers"][0]
            ready = (condition(p, "Ready") or {}).get("status") == "True"
            st = (p.get("status") or {}).get("containerStatuses") or [{}]
            pods[key].append({"name": p["metadata"]["name"], "ip": p["status"].get("podIP"), "ready": ready,
                              "image": c.get("image"), "imageID": st[0].get("imageID"),
                              "command": c.get("command"), "args": c.get("args"),
                              "ports": [x.get("containerPort") for x in c.get("ports") or []]})
            if ready and p["status"].get("podIP"):
                if key == "simulators":
                    port = next((x["containerPort"] for x in c.get("ports") or []), 8200)
                    sims.append((p["metadata"]["name"], p["status"]["podIP"], port))
                else:
                    epps.append(p["status"]["podIP"])
    sims.sort()
    # the local data plane runs built binaries whatever the image tag says: their versions
    bindir = os.environ.get("SCHEDSIM_DATAPLANE_BIN_DIR")
    if bindir and os.path.isdir(bindir):
        pods["localDataPlaneBinaries"] = {}
        for fn in sorted(os.listdir(bindir)):
            if fn.endswith(".version"):
                with open(os.path.join(bindir, fn)) as f:
                    pods["localDataPlaneBinaries"][fn[:-len(".version")]] = f.read().strip()
    with open(os.path.join(out, "pods.json"), "w") as f:
        json.dump(pods, f, indent=1)
    rec["versions"] = {"simulatorImages": sorted({p["image"] for p in pods["simulators"]}),
                       "eppImages": sorted({p["image"] for p in pods["epp"]}),
                       "localDataPlaneBinaries": pods.get("localDataPlaneBinaries")}
    return si, sims, epps


def gateway_url(exp, si):
    """The workload's target: gateway.url from the experiment file, else the listener of the
    SchedulerInstall's Gateway in $SCHEDSIM_GATEWAYS (the local data plane)."""
    gw = exp.get("gateway") or {}
    if gw.get("url"):
        return gw["url"].rstrip("/")
    spec = si.get("spec", {})
    ns = spec.get("schedulerNamespace", si["metadata"]["namespace"])
    name = (spec.get("gateway") or {}).get("name")
    path = os.environ.get("SCHEDSIM_GATEWAYS")
    if not path:
        raise ExperimentError("no gateway.url in the experiment file and no $SCHEDSIM_GATEWAYS (local data plane)")

    def find():
        try:
            with open(path) as f:
                for line in f:
                    parts = line.split()
                    if len(parts) == 4 and parts[0] == ns and parts[1] == name:
                        return "http://" + parts[3]
        except OSError:
            return None
    return eventually(60, f"a listener of Gateway {ns}/{name} in {path}", find)


# ---------------------------------------------------------------- run

def run(args):
    """`run EXPERIMENT OUTDIR`: the whole run (doc/experiments.md, "What a run does")."""
    exp, base = load_experiment(args.experiment)
    out = args.outdir
    if os.path.exists(out) and os.listdir(out):
        raise ExperimentError(f"{out} exists and is not empty")
    os.makedirs(out, exist_ok=True)
    t_begin = time.monotonic()
    rec = {"experiment": os.path.abspath(args.experiment), "name": exp.get("name"),
           "startedAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    shutil.copy(args.experiment, os.path.join(out, "experiment.yaml"))
    for m in exp.get("apply", []):
        os.makedirs(os.path.join(out, "applied"), exist_ok=True)
        shutil.copy(os.path.join(base, m), os.path.join(out, "applied", os.path.basename(m)))
    try:
        rec["repoRevision"] = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True,
                                             text=True).stdout.strip() or None
    except OSError:
        rec["repoRevision"] = None
    prepare(exp, base, out, rec)
    si, sims, epps = record_cluster(exp, out, rec)
    if not sims:
        raise ExperimentError("no ready simulator pod (simulatorSelector " +
                              exp.get("simulatorSelector", "llm-d.ai/role=decode") + ")")
    target = gateway_url(exp, si)
    rec["gatewayUrl"] = target
    wl = exp["workload"]
    if os.environ.get("SCHEDSIM_EXPERIMENT_DRIVER"):  # e.g. builtin where inference-perf is not set up
        wl["driver"] = os.environ["SCHEDSIM_EXPERIMENT_DRIVER"]
    model = wl.get("model", "random")
    # warm-up: the EPP must know its pool before it can pick (not counted in the figures)
    warm = {"sent": 0}

    def answered():
        warm["sent"] += 1
        st, h, _ = post(target + "/v1/completions", {"model": model, "prompt": "warm up", "max_tokens": 1}, timeout=30)
        return st == 200 and bool(h.get("x-inference-pod")), f"{st} {h.get('x-schedsim-gateway-error', '')}"
    log(f"warming up through {target}")
    eventually(120, "the gateway answers from a simulator pod", answered)
    rec["warmupRequests"] = warm["sent"]

    def sim_metrics():
        return {n: scrape(f"http://{ip}:{port}/metrics") for n, ip, port in sims}

    def epp_metrics():
        port = exp.get("eppMetricsPort", 9090)
        return scrape(f"http://{epps[0]}:{port}/metrics") if epps else None

    saturator, saturated = None, None
    sat = exp.get("saturate")
    if sat:
        if sat["pod"] >= len(sims):
            raise ExperimentError(f"saturate.pod {sat['pod']}: only {len(sims)} ready simulator pods")
        saturated, ip, port = sims[sat["pod"]]
        log(f"saturating {saturated} ({ip}:{port}) with {sat['concurrency']} requests in flight")
        saturator = Saturator(ip, port, sat["concurrency"], sat["maxTokens"], model)
        saturator.start()

        def queued():
            m = scrape(f"http://{ip}:{port}/metrics")
            w = metric_sum(m, "vllm:num_requests_waiting")
            return (w or 0) >= sat["minWaiting"], f"vllm:num_requests_waiting {w}"
        eventually(60, f"{saturated} has >= {sat['minWaiting']} waiting requests", queued, 0.2)
    sim_before, epp_before = sim_metrics(), epp_metrics()
    recorder = Recorder(target)
    threading.Thread(target=recorder.serve_forever, daemon=True).start()
    log(f"workload: {wl['driver']}, seed {wl['seed']}, stages {wl['load']['stages']}")
    t0 = time.monotonic()
    try:
        if wl["driver"] == "inference-perf":
            driver = run_inference_perf(wl, recorder.url, model, out)
        else:
            driver = run_builtin(wl, recorder.url, model)
    finally:
        duration = time.monotonic() - t0
        if not recorder.drain():
            log("the recorder still has requests in flight after 60 s; they are not in the figures")
        recorder.shutdown()
    sim_after, epp_after = sim_metrics(), epp_metrics()
    if saturator:
        log("stopping the saturating requests")
        rec["saturator"] = dict(saturator.stop(), pod=saturated, **{k: sat[k] for k in ("concurrency", "maxTokens")})
    records = sorted(recorder.records, key=lambda r: r["start"])
    with open(os.path.join(out, "requests.jsonl"), "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    with open(os.path.join(out, "metrics.json"), "w") as f:
        json.dump({"simulators": {"before": sim_before, "after": sim_after},
                   "epp": {"before": epp_before, "after": epp_after}}, f)
    rec["workload"] = wl
    rec["driver"] = driver
    fig = figures(records, duration, sims, sim_before, sim_after, epp_before, epp_after, saturated)
    # every request counted: what the driver says it sent must be what the recorder saw
    sent_by_driver = driver.get("sent", driver.get("requests"))
    fig["requests"]["sentByDriver"] = sent_by_driver
    rec["figures"] = fig
    rec["wallSeconds"] = round(time.monotonic() - t_begin, 1)
    with open(os.path.join(out, "record.json"), "w") as f:
        json.dump(rec, f, indent=1)
    print_summary(rec)
    if sent_by_driver is not None and sent_by_driver != fig["requests"]["sent"]:
        raise ExperimentError(f"the driver sent {sent_by_driver} requests but the recorder saw {fig['requests']['sent']}")


def main():
    """Command line: run or compare; an ExperimentError exits 1 with its message."""
    ap = argparse.ArgumentParser(prog="experiment.py", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run an experiment and write its result folder")
    r.add_argument("experiment")
    r.add_argument("outdir")
    c = sub.add_parser("compare", help="compare two result folders")
    c.add_argument("a")
    c.add_argument("b")
    c.add_argument("--plots", metavar="DIR", help="write PNG plots there (gnuplot)")
    args = ap.parse_args()
    try:
        (run if args.cmd == "run" else compare)(args)
    except ExperimentError as e:
        print(f"experiment: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
