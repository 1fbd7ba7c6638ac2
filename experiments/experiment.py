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

Every workload request passes the recorder (a local HTTP proxy in this process, in front of
the gateway): it keeps one record per request (start, time to first body byte, end, status,
x-inference-pod, the gateway's endpoint header), so the figures count every request,
whichever driver sent it. Pod and EPP metrics are scraped on pod IPs (reachable on the local
data plane; elsewhere the record says why they are missing).
"""
import argparse
import hashlib
import http.client
import http.server
import json
import math
import os
import random
import re
import shutil
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.environ.get("SCHEDSIM_EXPERIMENT_VENV",
                      os.path.join(os.path.expanduser("~"), ".cache", "schedsim", "experiment-venv"))


def log(msg):
    print("experiment: " + msg, file=sys.stderr, flush=True)


class ExperimentError(Exception):
    """A problem with the experiment file or the cluster, worded for the user."""


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
                                                  isinstance(scripts.get("edit"), dict)):
            raise ExperimentError(f"{path}: scripts needs overlay (a ConfigMap manifest path, or \"bundled\") "
                                  "or edit (module, replace)")
        ed = scripts.get("edit")
        if ed is not None and not (isinstance(ed.get("module"), str) and isinstance(ed.get("replace"), dict)
                                   and ed["replace"]):
            raise ExperimentError(f"{path}: scripts.edit needs module (e.g. schedulerinstall.profiles) and "
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
    return json.loads(kubectl("get", *args, "-o", "json"))


def condition(obj, ctype):
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
    ConfigMap's keys, as doc/hot-reload.md describes), computed with `schedsim-operator check`;
    None when the binary is not built."""
    binary = os.environ.get("SCHEDSIM_BIN", os.path.join(ROOT, "build", "schedsim-operator"))
    if not os.access(binary, os.X_OK):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(os.path.join(ROOT, "scripts"), os.path.join(tmp, "scripts"))
        shutil.copytree(os.path.join(ROOT, "examples"), os.path.join(tmp, "examples"))  # fixtures read them
        for key, src in data.items():
            mod = key[:-len(".lua")].replace(".", "/") + ".lua"
            os.makedirs(os.path.dirname(os.path.join(tmp, "scripts", mod)), exist_ok=True)
            with open(os.path.join(tmp, "scripts", mod), "w") as f:
                f.write(src)
        p = subprocess.run([binary, "check", "--scripts", os.path.join(tmp, "scripts")], capture_output=True, text=True)
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
        if scripts.get("edit"):
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
        log(f"scripts ConfigMap {cm_ref}: " + ("edit of " + scripts["edit"]["module"] if scripts.get("edit")
                                               else scripts["overlay"]))
        # the revision to wait for: the repo's scripts plus the overlay (off with
        # scripts.waitForRevision: false, e.g. for an operator running other bundled scripts)
        want = scripts_revision(manifest.get("data") or {}) if scripts.get("waitForRevision", True) else None
        rec["scripts"] = {"configMap": cm_ref, "overlay": scripts.get("overlay"), "edit": scripts.get("edit"),
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


# ---------------------------------------------------------------- HTTP helpers

def post(url, body, timeout=120):
    """POSTs JSON; returns (status, headers dict lower-case, body bytes); status 0 and the
    error text as body when the connection fails."""
    u = urllib.parse.urlsplit(url)
    try:
        conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
        conn.request("POST", u.path or "/", json.dumps(body), {"content-type": "application/json"})
        r = conn.getresponse()
        data = r.read()
        conn.close()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, data
    except OSError as e:
        return 0, {}, str(e).encode()


def scrape(url, timeout=5):
    """GETs a Prometheus text endpoint; returns {series: value} or None on failure."""
    u = urllib.parse.urlsplit(url)
    try:
        conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=timeout)
        conn.request("GET", u.path)
        r = conn.getresponse()
        text = r.read().decode(errors="replace")
        conn.close()
        if r.status != 200:
            return None
    except OSError:
        return None
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^(\S+?(?:\{.*\})?)\s+(\S+)(?:\s+\d+)?$", line)
        if m:
            try:
                out[m.group(1)] = float(m.group(2))
            except ValueError:
                pass
    return out


def metric_sum(metrics, name, where=None):
    """Sum of every series of metric `name` (optionally whose labels contain `where`)."""
    total, found = 0.0, False
    for k, v in (metrics or {}).items():
        if k == name or k.startswith(name + "{"):
            if where and where not in k:
                continue
            total += v
            found = True
    return total if found else None


# ---------------------------------------------------------------- the recorder

class Recorder(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """A local HTTP/1.1 proxy in front of the gateway that records every request
    (see the module docstring). records: list of dicts; times in seconds since t0."""
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, upstream):
        super().__init__(("127.0.0.1", 0), RecorderHandler)
        u = urllib.parse.urlsplit(upstream)
        self.upstream = (u.hostname, u.port or 80)
        self.records = []
        self.lock = threading.Lock()
        self.idle = threading.Condition(self.lock)
        self.inflight = 0
        self.t0 = time.monotonic()

    def drain(self, timeout=60):
        """Waits until no request is between arrival and its record (the client may see the
        end of a response before the handler has appended its record). True when drained."""
        with self.idle:
            return self.idle.wait_for(lambda: self.inflight == 0, timeout)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "proxy-connection", "upgrade"}


class RecorderHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self.forward()

    def do_POST(self):
        self.forward()

    def forward(self):
        srv = self.server
        with srv.lock:
            srv.inflight += 1
        rec = {"start": time.monotonic() - srv.t0, "path": self.path, "status": 0}
        try:
            n = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(n) if n else b""
        except (OSError, ValueError) as e:  # a client that went away: still one request, failed
            body = b""
            rec["error"] = f"reading the request: {e}"
        try:
            req = json.loads(body) if body else {}
            rec["stream"] = bool(req.get("stream"))
            rec["maxTokens"] = req.get("max_tokens")
            text = req.get("prompt") or "".join(str(m.get("content", "")) for m in req.get("messages") or [])
            if isinstance(text, str):  # the first 64 characters name a shared-prefix group
                rec["prefixKey"] = hashlib.sha1(text[:64].encode()).hexdigest()[:12]
        except ValueError:
            pass
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        t_start = time.monotonic()
        try:
            conn = http.client.HTTPConnection(*srv.upstream, timeout=300)
            conn.request(self.command, self.path, body, headers)
            resp = conn.getresponse()
            rec["status"] = resp.status
            rec["pod"] = resp.getheader("x-inference-pod")
            rec["endpoint"] = resp.getheader("x-schedsim-gateway-endpoint")
            if resp.getheader("x-schedsim-gateway-error"):
                rec["error"] = resp.getheader("x-schedsim-gateway-error")
            self.send_response(resp.status)
            for k, v in resp.getheaders():
                if k.lower() not in HOP:
                    self.send_header(k, v)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            size = 0
            while True:
                chunk = resp.read1(65536)
                if not chunk:
                    break
                if "ttft" not in rec:
                    rec["ttft"] = time.monotonic() - t_start
                size += len(chunk)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            rec["e2e"] = time.monotonic() - t_start  # the last byte, before the client can see the end
            self.wfile.write(b"0\r\n\r\n")
            rec["bytes"] = size
            conn.close()
        except Exception as e:  # noqa: BLE001 — whatever broke, the request is recorded as failed
            rec["error"] = f"{type(e).__name__}: {e}"
            rec["broken"] = rec["status"] != 0  # the response started, then broke: failed too
            if rec["status"] == 0:
                try:
                    msg = rec["error"].encode()
                    self.send_response(502)
                    self.send_header("Content-Length", str(len(msg)))
                    self.end_headers()
                    self.wfile.write(msg)
                except OSError:
                    pass
        rec.setdefault("e2e", time.monotonic() - t_start)
        with srv.idle:
            srv.records.append(rec)
            srv.inflight -= 1
            srv.idle.notify_all()


# ---------------------------------------------------------------- saturation

class Saturator:
    """Keeps `concurrency` long requests in flight at one simulator pod, straight to its
    IP (past the gateway and the EPP), so its waiting queue stays long. Counts its own
    requests (they are not workload requests)."""

    def __init__(self, ip, port, concurrency, max_tokens, model):
        self.url = f"http://{ip}:{port}/v1/completions"
        self.body = {"model": model, "prompt": "saturate " * 8, "max_tokens": max_tokens, "ignore_eos": True}
        self.stop_flag = threading.Event()
        self.stats = {"sent": 0, "succeeded": 0, "failed": 0}
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.loop, daemon=True) for _ in range(concurrency)]

    def loop(self):
        while not self.stop_flag.is_set():
            with self.lock:
                self.stats["sent"] += 1
            status, _, _ = post(self.url, self.body, timeout=600)
            with self.lock:
                self.stats["succeeded" if status == 200 else "failed"] += 1

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join(timeout=600)
        return dict(self.stats)


# ---------------------------------------------------------------- drivers

def inference_perf_config(wl, base_url, model, out):
    """The inference-perf config for this workload (its own schema: api, data, load, server,
    tokenizer, report, storage), targeting the recorder."""
    cfg = {"api": wl["api"], "data": json.loads(json.dumps(wl["data"])),
           "load": {"type": "constant", "stages": wl["load"]["stages"], "num_workers": 1,
                    "base_seed": wl["seed"]},
           "server": {"type": "vllm", "model_name": model, "base_url": base_url, "ignore_eos": True},
           "tokenizer": {"pretrained_model_name_or_path": os.path.join(VENV, "tokenizer")},
           "report": {"request_lifecycle": {"summary": True, "per_stage": False, "per_request": True}},
           "storage": {"local_storage": {"path": out}}}
    if cfg["data"]["type"] == "shared_prefix":
        cfg["data"].setdefault("shared_prefix", {}).setdefault("seed", wl["seed"])
    for k, v in (wl.get("inferencePerf") or {}).items():  # anything else, passed through
        cfg[k] = v
    return cfg


def run_inference_perf(wl, target, model, out):
    exe = os.path.join(VENV, "bin", "inference-perf")
    if not os.access(exe, os.X_OK):
        raise ExperimentError(f"{exe} is missing: run experiments/setup (or set workload.driver: builtin)")
    d = os.path.join(out, "inference-perf")
    os.makedirs(d, exist_ok=True)
    cfg = inference_perf_config(wl, target, model, d)
    with open(os.path.join(d, "config.yaml"), "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               TRANSFORMERS_VERBOSITY="error")
    log(f"inference-perf -c {d}/config.yaml")
    with open(os.path.join(d, "stdout.log"), "w") as f:
        p = subprocess.run([exe, "-c", os.path.join(d, "config.yaml")], stdout=f, stderr=subprocess.STDOUT,
                           env=env, cwd=d)
    if p.returncode != 0:
        raise ExperimentError(f"inference-perf exited {p.returncode}; see {d}/stdout.log")
    res = {"requests": None}
    try:
        with open(os.path.join(d, "per_request_lifecycle_metrics.json")) as f:
            res["requests"] = len(json.load(f))
        # inference-perf's own view, kept beside the recorder's (its TTFT is measured at
        # the client, in front of the recorder)
        with open(os.path.join(d, "summary_lifecycle_metrics.json")) as f:
            summ = json.load(f)
        lat = (summ.get("successes") or {}).get("latency") or {}
        res["summary"] = {"successes": (summ.get("successes") or {}).get("count"),
                          "failures": (summ.get("failures") or {}).get("count"),
                          "benchmarkSeconds": summ.get("benchmark_time_seconds"),
                          "ttftSeconds": {k: (lat.get("time_to_first_token") or {}).get(k)
                                          for k in ("median", "p95", "p99")},
                          "requestLatencySeconds": {k: (lat.get("request_latency") or {}).get(k)
                                                    for k in ("median", "p95", "p99")}}
    except (OSError, ValueError, AttributeError):
        pass
    return res


WORDS = [a + b for a in ("ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "po", "da", "fe", "gu", "hi", "ja", "ko")
         for b in ("ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "po", "da", "fe", "gu", "hi", "ja", "ko")]


def builtin_prompts(wl, n):
    """n prompts for the built-in driver from workload.data and the seed: `random` (words
    drawn at random, input length between min and max) or `shared_prefix` (num_groups
    system prompts of system_prompt_len words, each followed by question_len words)."""
    rng = random.Random(wl["seed"])
    d = wl["data"]
    if d["type"] == "shared_prefix":
        sp = d.get("shared_prefix", {})
        groups = [" ".join(rng.choice(WORDS) for _ in range(sp.get("system_prompt_len", 100)))
                  for _ in range(sp.get("num_groups", 4))]
        return [groups[i % len(groups)] + " " + " ".join(rng.choice(WORDS) for _ in range(sp.get("question_len", 20)))
                for i in range(n)]
    dist = d.get("input_distribution", {})
    lo, hi = dist.get("min", 20), dist.get("max", 60)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi))) for _ in range(n)]


def run_builtin(wl, target, model):
    """Open-loop load: each stage sends `rate` requests per second for `duration` seconds,
    one thread per request in flight. Returns the driver's own counts."""
    stages = wl["load"]["stages"]
    total = sum(int(s["rate"] * s["duration"]) for s in stages)
    prompts = builtin_prompts(wl, total)
    out_len = (wl["data"].get("output_distribution") or {}).get("max", 8)
    chat = wl["api"].get("type") == "chat"
    stats = {"sent": 0, "succeeded": 0, "failed": 0}
    lock = threading.Lock()

    def one(prompt):
        body = {"model": model, "max_tokens": out_len, "ignore_eos": True, "stream": bool(wl["api"].get("streaming"))}
        if chat:
            body["messages"] = [{"role": "user", "content": prompt}]
        else:
            body["prompt"] = prompt
        status, _, _ = post(target + ("/v1/chat/completions" if chat else "/v1/completions"), body, timeout=300)
        with lock:
            stats["succeeded" if status == 200 else "failed"] += 1

    threads, i, t0 = [], 0, time.monotonic()
    offset = 0.0
    for s in stages:
        n = int(s["rate"] * s["duration"])
        for k in range(n):
            due = t0 + offset + k / s["rate"]
            time.sleep(max(0.0, due - time.monotonic()))
            t = threading.Thread(target=one, args=(prompts[i],), daemon=True)
            stats["sent"] += 1
            t.start()
            threads.append(t)
            i += 1
        offset += s["duration"]
    for t in threads:
        t.join()
    return stats


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


# ---------------------------------------------------------------- run

def run(args):
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


def print_summary(rec):
    f = rec["figures"]
    r = f["requests"]
    print(f"{rec.get('name')}: sent {r['sent']}, succeeded {r['succeeded']}, failed {r['failed']}, "
          f"{f['throughputRps']} req/s; TTFT p50/p95/p99 {fmt3(f['ttftSeconds'])} s; "
          f"e2e {fmt3(f['e2eSeconds'])} s; took {rec['wallSeconds']} s")
    for pod, s in f["podShare"].items():
        print(f"  {pod:<60} {s * 100:5.1f} %  ({f['podRequests'][pod]})")


def fmt3(d):
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


def main():
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
