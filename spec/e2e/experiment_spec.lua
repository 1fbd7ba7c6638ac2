-- needs: dataplane
-- Experiment runs (experiments/, doc/experiments.md) on the local data plane, with the
-- operator watching the scripts ConfigMap:
--   (a) the default experiment with the built-in driver: every request is counted, and the
--       per-pod counts read from x-inference-pod are the simulators' own counts
--       (vllm:request_success_total) and the EPP's;
--   (b) two runs that differ only in the load-aware scorer's weight (0, then 5, through a
--       scripts ConfigMap overlay), with one simulator pod saturated by requests sent
--       straight to it: with weight 0 the EPP keeps sending it a share of the workload,
--       with weight 5 it avoids it, and the TTFT tail shrinks; `experiments/compare`
--       shows both and draws its PNGs.
-- The saturated runs use inference-perf when experiments/setup installed it, else the
-- built-in driver (said in the output). Without the data plane the cases are pending.
local cluster = require("cluster")
local q, sh, must = cluster.q, cluster.sh, cluster.must

local ROOT = cluster.root

local reason = cluster.dataplane_missing

local venv = os.getenv("SCHEDSIM_EXPERIMENT_VENV") or (os.getenv("HOME") .. "/.cache/schedsim/experiment-venv")
local have_inference_perf = io.open(venv .. "/bin/inference-perf") ~= nil
  and io.open(venv .. "/tokenizer/tokenizer.json") ~= nil

--- Runs one experiment into dir; returns its record (record.json) and the command's output.
local function run(file, dir, env)
  local ok, out = sh(("%s%s/experiments/run %s %s"):format(env or "", ROOT, q(ROOT .. "/" .. file), q(dir)))
  assert(ok, "experiments/run " .. file .. " failed:\n" .. out)
  return cluster.decode(cluster.read_file(dir .. "/record.json")), out
end

--- The rows of `experiments/compare` output: label -> {a, b} (strings as printed).
local function compare_rows(text)
  local rows = {}
  for line in text:gmatch("[^\n]+") do
    local label, a, b = line:match("^(%S.-)%s%s+(%S+)%s+(%S+)%s+[%+%-]%S*%s*$")
    if label then rows[label] = { tonumber(a) or a, tonumber(b) or b } end
  end
  return rows
end

describe("experiment runs", function()
  local why = reason()
  local op, work

  setup(function()
    if why then return end
    work = os.tmpname()
    os.remove(work)
    assert(os.execute("mkdir -p " .. q(work)))
    cluster.install_crds()
    must("create namespace schedsim-system")
    op = cluster.start_operator({ args = "--scripts-configmap schedsim-system/schedsim-scripts" })
  end)

  teardown(function()
    if op then op:finish("operator-experiment.log", { [work] = "experiments" }) end
    if work then os.execute("rm -rf " .. q(work)) end
  end)

  local function dp_it(desc, fn)
    if why then pending(desc .. " (" .. why .. ")") return end
    it(desc, fn)
  end

  dp_it("(a) the default experiment counts every request, and the pods' own counters agree", function()
    local rec = run("experiments/default/experiment.yaml", work .. "/default", "SCHEDSIM_EXPERIMENT_DRIVER=builtin ")
    local fig = rec.figures
    assert.equal("builtin", rec.workload.driver)
    assert.equal(200, fig.requests.sent)
    assert.equal(fig.requests.sent, fig.requests.sentByDriver)
    assert.equal(fig.requests.sent, fig.requests.succeeded + fig.requests.failed)
    assert.equal(0, fig.requests.failed)
    -- three simulator pods, each named by the header, each counted by itself the same
    local pods, total = 0, 0
    for pod, n in pairs(fig.podRequests) do
      pods = pods + 1
      total = total + n
      assert.equal(n, fig.simulatorMetrics.requestSuccessByPod[pod], "vllm:request_success_total of " .. pod)
    end
    assert.equal(3, pods)
    assert.equal(200, total)
    assert.equal(200, fig.eppMetrics.requests) -- inference_objective_request_total grew by the workload
    -- the record holds what is needed to run it again
    assert.truthy(rec.scriptRevision.schedulerInstall:match("^sha256:%x+$"))
    assert.truthy(rec.versions.localDataPlaneBinaries["llm-d-inference-sim"])
    assert.equal(42, rec.workload.seed)
    for _, f in ipairs({ "experiment.yaml", "requests.jsonl", "pods.json", "metrics.json",
      "crs/schedulerinstall-sched-experiment.yaml", "crs/simulatordeployment-sim-experiment.yaml" }) do
      assert.truthy(io.open(work .. "/default/" .. f), f)
    end
    print(("experiment_spec (a): %d requests, took %.1f s"):format(fig.requests.sent, rec.wallSeconds))
  end)

  dp_it("(b) the load-aware weight shifts the saturated pod's share and the TTFT tail", function()
    local env = have_inference_perf and "" or "SCHEDSIM_EXPERIMENT_DRIVER=builtin "
    if not have_inference_perf then print("experiment_spec: no inference-perf (experiments/setup): built-in driver") end
    local a = run("experiments/saturated/load-aware-0.yaml", work .. "/la0", env)
    local b = run("experiments/saturated/load-aware-5.yaml", work .. "/la5", env)
    -- the runs differ in the scripts revision (the overlay), not in the pods or the workload
    assert.are_not.equal(a.scriptRevision.schedulerInstall, b.scriptRevision.schedulerInstall)
    assert.equal(a.figures.saturatedPod, b.figures.saturatedPod)
    assert.same(a.workload, b.workload)
    for _, r in ipairs({ a, b }) do
      assert.equal(0, r.figures.requests.failed)
      assert.equal(r.figures.requests.sent, r.figures.requests.sentByDriver)
      assert.is_true(r.saturator.sent > 0 and r.saturator.failed == 0)
    end
    local ok, out = sh(("%s/experiments/compare %s %s --plots %s"):format(ROOT, q(work .. "/la0"), q(work .. "/la5"),
      q(work .. "/plots")))
    assert(ok, out)
    print(out)
    local rows = compare_rows(out)
    local share, p95 = rows["saturated pod share"], rows["TTFT p95 (s)"]
    assert.is_table(share, out)
    -- weight 0: random tie-breaking gives the saturated pod about a third; weight 5: ~none
    assert.is_true(share[1] >= 0.15, "weight 0: saturated pod share " .. share[1])
    assert.is_true(share[2] <= share[1] - 0.15, "weight 5 moves share off the saturated pod: " .. share[2])
    -- the requests it no longer takes no longer wait in its queue
    assert.is_true(p95[2] < p95[1], "TTFT p95 " .. p95[1] .. " -> " .. p95[2])
    for _, png in ipairs({ "pod-share.png", "latency-cdf.png", "latency-over-time.png" }) do
      local f = assert(io.open(work .. "/plots/" .. png, "rb"), png)
      assert.equal("\137PNG", f:read(4), png)
      f:close()
    end
  end)
end)
