-- experiments/experiment.py without a cluster (the runs themselves: spec/e2e/experiment_spec.lua):
--   * a bad experiment file stops `run` before any cluster access, naming the field;
--   * the figures count every request (failed ones, a response that broke midway), take
--     nearest-rank percentiles over successful requests, give every simulator pod a share
--     (0 when it served none), and measure prefix affinity per shared-prefix group;
--   * the recorder in front of an HTTP upstream records each request with its
--     x-inference-pod, and a refused connection as a failed request (502 to the client);
--   * `compare` prints B - A per figure and writes three PNGs.
local cluster = require("cluster")
local json = require("k8srt").json -- the runtime's own converter (cluster.lua uses it too)

local ROOT = os.getenv("SCHEDSIM_ROOT") or "."
local TOOL = ROOT .. "/experiments/experiment.py"

local q, sh = cluster.q, cluster.sh -- sh: ok, stdout+stderr

local write = cluster.write_file

--- Runs a Python snippet with the experiment module imported as `ex`; returns its JSON output.
local function py(code)
  local ok, out = sh(("python3 -c %s"):format(q("import sys, json; sys.path.insert(0, " .. string.format("%q", ROOT ..
    "/experiments") .. "); import experiment as ex\n" .. code)))
  assert(ok, out)
  return assert(json.decode(out))
end

local have_python = sh("python3 -c 'import yaml'")
local have_gnuplot = sh("command -v gnuplot")

describe("experiments/experiment.py", function()
  local dir

  before_each(function()
    dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. q(dir)))
  end)

  after_each(function()
    os.execute("rm -rf " .. q(dir))
  end)

  local function py_it(desc, fn)
    if not have_python then pending(desc .. " (no python3 with PyYAML: bash .ci/setup)") return end
    it(desc, fn)
  end

  py_it("refuses a bad experiment file, naming the field, before touching a cluster", function()
    local cases = {
      { "schedulerInstall: a/b\n", "simulatorDeployment must be NAMESPACE/NAME" },
      { "simulatorDeployment: a/b\nschedulerInstall: a/b\nworkload: {driver: locust}\n",
        "workload.driver must be inference-perf or builtin" },
      { "simulatorDeployment: a/b\nschedulerInstall: a/b\nworkload: {load: {stages: [{rate: 0, duration: 5}]}}\n",
        "workload.load.stages[0] needs rate > 0" },
      { "simulatorDeployment: a/b\nschedulerInstall: a/b\nworkload: {data: {type: shareGPT}}\n",
        "workload.data.type must be random or shared_prefix" },
      { "simulatorDeployment: a/b\nschedulerInstall: a/b\nscripts: {edit: {module: x}}\n",
        "scripts.edit needs module" },
      { "simulatorDeployment: a/b\nschedulerInstall: a/b\nworkload: {seed: abc}\n",
        "workload.seed must be an integer" },
    }
    for _, c in ipairs(cases) do
      write(dir .. "/e.yaml", c[1])
      -- no KUBECONFIG: the run must stop at the file, not at kubectl
      local ok, out = sh(("env -u KUBECONFIG python3 %s run %s %s"):format(q(TOOL), q(dir .. "/e.yaml"),
        q(dir .. "/out")))
      assert.is_false(ok, c[1])
      assert.truthy(out:find(c[2], 1, true), "want '" .. c[2] .. "' in: " .. out)
    end
  end)

  py_it("counts every request and computes the figures from the successful ones", function()
    local fig = py([[
recs = [
  {"start": 0.0, "status": 200, "ttft": 0.1, "e2e": 0.2, "pod": "p-a", "prefixKey": "g1"},
  {"start": 0.1, "status": 200, "ttft": 0.3, "e2e": 0.4, "pod": "p-a", "prefixKey": "g1"},
  {"start": 0.2, "status": 200, "ttft": 0.5, "e2e": 0.6, "pod": "p-b", "prefixKey": "g1"},
  {"start": 0.3, "status": 200, "ttft": 0.7, "e2e": 0.8, "pod": "p-b", "prefixKey": "g2"},
  {"start": 0.4, "status": 503, "e2e": 0.1, "error": "no endpoint"},
  {"start": 0.5, "status": 200, "ttft": 9.0, "e2e": 9.0, "pod": "p-a", "broken": True, "error": "reset"},
]
sims = [("p-a", "10.0.0.1", 8200), ("p-b", "10.0.0.2", 8200), ("p-c", "10.0.0.3", 8200)]
before = {"p-a": {}, "p-b": {'vllm:request_success_total{finish_reason="length"}': 5.0}, "p-c": None}
after = {"p-a": {'vllm:request_success_total{finish_reason="length"}': 2.0},
         "p-b": {'vllm:request_success_total{finish_reason="length"}': 7.0}, "p-c": None}
print(json.dumps(ex.figures(recs, 10.0, sims, before, after, None, None, "p-b")))
]])
    assert.same({ sent = 6, succeeded = 4, failed = 2 }, fig.requests)
    assert.same({ ["503 no endpoint"] = 1, ["200 reset"] = 1 }, fig.failures)
    -- nearest rank over 4 values: p50 is the 2nd, p95 and p99 the 4th; the broken one is out
    assert.same({ p50 = 0.3, p95 = 0.7, p99 = 0.7 }, fig.ttftSeconds)
    assert.same({ ["p-a"] = 2, ["p-b"] = 2, ["p-c"] = 0 }, fig.podRequests)
    assert.same({ ["p-a"] = 0.5, ["p-b"] = 0.5, ["p-c"] = 0 }, fig.podShare)
    assert.equal(0.5, fig.saturatedPodShare)
    -- a counter that appears only after is counted from 0; an unscraped pod has no figure
    assert.equal(2, fig.simulatorMetrics.requestSuccessByPod["p-a"])
    assert.equal(2, fig.simulatorMetrics.requestSuccessByPod["p-b"])
    assert.equal(cluster.null, fig.simulatorMetrics.requestSuccessByPod["p-c"])
    assert.equal(2, fig.simulatorMetrics.scraped)
    -- group g1 (3 requests: 2 on p-a) counts; g2 has one request and does not
    assert.same({ groups = 1, requests = 3, onGroupPod = 0.6667 }, fig.prefixAffinity)
    -- throughput over the span from the first start to the last end (0.0 .. 9.5)
    assert.near(4 / 9.5, fig.throughputRps, 0.001)
  end)

  py_it("the recorder records each request with its pod, and a refused upstream as a 502", function()
    local out = py([[
import http.server, threading, urllib.request, socket
class Up(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_POST(self):
        self.rfile.read(int(self.headers["content-length"]))
        body = b'data: {"x": 1}\n\n'
        self.send_response(200)
        self.send_header("x-inference-pod", "pod-" + self.path.strip("/"))
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
up = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Up)
threading.Thread(target=up.serve_forever, daemon=True).start()
rec = ex.Recorder(f"http://127.0.0.1:{up.server_address[1]}")
threading.Thread(target=rec.serve_forever, daemon=True).start()
bodies = []
for p in ("a", "b", "a"):
    r = urllib.request.urlopen(urllib.request.Request(rec.url + "/" + p, data=b'{"prompt": "hello", "stream": true}',
                                                      headers={"content-type": "application/json"}))
    bodies.append(r.read().decode())
rec.drain(); rec.shutdown()
s = socket.socket(); s.bind(("127.0.0.1", 0)); dead = s.getsockname()[1]; s.close()
rec2 = ex.Recorder(f"http://127.0.0.1:{dead}")
threading.Thread(target=rec2.serve_forever, daemon=True).start()
status, _, _ = ex.post(rec2.url + "/v1/completions", {"prompt": "x"})
rec2.drain(); rec2.shutdown()
print(json.dumps({"records": rec.records, "bodies": bodies, "refused": rec2.records, "status": status}))
]])
    assert.equal(3, #out.records)
    local pods = {}
    for _, r in ipairs(out.records) do
      assert.equal(200, r.status)
      assert.is_true(r.stream)
      assert.is_true(r.ttft <= r.e2e)
      pods[#pods + 1] = r.pod
    end
    table.sort(pods)
    assert.same({ "pod-a", "pod-a", "pod-b" }, pods)
    assert.equal('data: {"x": 1}\n\n', out.bodies[1]) -- the body passes through unchanged
    assert.equal(502, out.status)
    assert.equal(1, #out.refused)
    assert.equal(0, out.refused[1].status)
    assert.truthy(out.refused[1].error:find("Connection", 1, true), out.refused[1].error)
  end)

  py_it("compare prints B - A per figure and draws three PNGs", function()
    local function folder(name, share_a, ttft95)
      local d = dir .. "/" .. name
      assert(os.execute("mkdir -p " .. q(d)))
      local lines = {}
      for i = 1, 10 do
        lines[#lines + 1] = json.encode({ start = i * 0.1, status = 200, ttft = ttft95 * i / 10, e2e = ttft95 * i / 10,
          pod = i <= share_a * 10 and "pod-a" or "pod-b" })
      end
      write(d .. "/requests.jsonl", table.concat(lines, "\n") .. "\n")
      local recs = py(("recs = [json.loads(l) for l in open(%q)]\n"):format(d .. "/requests.jsonl")
        .. "sims = [('pod-a', '', 0), ('pod-b', '', 0)]\n"
        .. "print(json.dumps(ex.figures(recs, 1.0, sims, {}, {}, None, None, 'pod-a')))")
      write(d .. "/record.json", json.encode({ name = name, figures = recs,
        scriptRevision = { schedulerInstall = "sha256:" .. name } }))
      return d
    end
    local a, b = folder("A", 0.4, 2.0), folder("B", 0.1, 1.0)
    local args = have_gnuplot and (" --plots " .. q(dir .. "/plots")) or ""
    local ok, out = sh(("python3 %s compare %s %s%s"):format(q(TOOL), q(a), q(b), args))
    assert(ok, out)
    assert.truthy(out:match("saturated pod share%s+0%.4%s+0%.1%s+%-0%.3"), out)
    assert.truthy(out:match("TTFT p95 %(s%)%s+2%s+1%s+%-1"), out)
    assert.truthy(out:match("requests failed%s+0%s+0%s+%+0"), out)
    if not have_gnuplot then pending("no gnuplot (experiments/setup): plots not drawn") return end
    for _, png in ipairs({ "pod-share.png", "latency-cdf.png", "latency-over-time.png" }) do
      local f = assert(io.open(dir .. "/plots/" .. png, "rb"), png)
      assert.equal("\137PNG", f:read(4))
      f:close()
    end
  end)
end)
