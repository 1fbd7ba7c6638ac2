"""What sends and records an experiment's requests (doc/experiments.md): the recorder (a
local HTTP proxy in front of the gateway that keeps one record per request), the
saturating requests sent straight to one pod, and the two workload drivers (inference-perf
in its venv, and the small built-in generator). Standard library plus PyYAML."""
import hashlib
import http.client
import http.server
import json
import os
import random
import socketserver
import subprocess
import threading
import time
import urllib.parse

import yaml

from common import VENV, ExperimentError, log, post

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
    """One request through the recorder: forwards it upstream, streams the answer back
    (chunked), appends its record."""
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
    """Runs inference-perf against `target` with the config written to OUT/inference-perf/;
    returns its count of requests (its per-request records) and its own summary. Raises
    ExperimentError when it is not installed or exits non-zero."""
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
