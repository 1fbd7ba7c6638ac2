-- End-to-end spec of /metrics (doc/metrics.md) on a running operator with
-- leader election and the test script set (spec/support/testscripts):
--   * every family of controller-runtime's set, client-go's workqueue and
--     leader metrics and the Go process collector is exposed, with the
--     `result` series and the workqueue series at 0 before any reconcile;
--   * a CR whose script raises counts a panic and an error, a terminal error
--     (k8s.terminal) a terminal error, a good CR a success;
--   * logs: numbers as JSON numbers, controller-runtime's object keys
--     (controllerGroup, controllerKind, <Kind> {name, namespace}, namespace, name);
--   * "ready" is logged after "scripts ConfigMap synced" (--scripts-configmap);
--   * numbers print as the Go client prints them (le="10", never 1e+01);
--   * the text passes `promtool check metrics` (promtool built from its Go
--     module by spec/cluster/gotool) and the strict reader
--     spec/support/promtext.lua.
--
--   bash cmake/run-spec build spec/e2e/metrics_spec.lua
local cluster = require("cluster")
local promtext = require("promtext")

local TESTSCRIPTS = cluster.root .. "/spec/support/testscripts"

local function need_cluster() return cluster.need(pending) end

local function scrape(port)
  local ok, body = cluster.sh_stdout("curl -sf --max-time 10 http://127.0.0.1:" .. port .. "/metrics")
  assert.is_true(ok, "GET /metrics")
  return body
end

local function widget(ns, name, spec)
  return { apiVersion = "test.sim.llm-d.io/v1alpha1", kind = "Widget",
    metadata = { name = name, namespace = ns }, spec = spec }
end

local FAMILIES = {
  "controller_runtime_reconcile_total", "controller_runtime_reconcile_errors_total",
  "controller_runtime_terminal_reconcile_errors_total", "controller_runtime_reconcile_panics_total",
  "controller_runtime_reconcile_time_seconds", "controller_runtime_max_concurrent_reconciles",
  "controller_runtime_active_workers",
  "workqueue_depth", "workqueue_adds_total", "workqueue_retries_total",
  "workqueue_queue_duration_seconds", "workqueue_work_duration_seconds",
  "workqueue_unfinished_work_seconds", "workqueue_longest_running_processor_seconds",
  "leader_election_master_status", "rest_client_requests_total",
  "process_cpu_seconds_total", "process_open_fds", "process_max_fds",
  "process_virtual_memory_bytes", "process_virtual_memory_max_bytes",
  "process_resident_memory_bytes", "process_start_time_seconds",
  "schedsim_script_revision_info",
}

describe("/metrics (e2e)", function()
  local ns, op, port

  setup(function()
    if not cluster.available() then return end
    cluster.must("apply --server-side -f " .. cluster.q(TESTSCRIPTS .. "/crds/test.sim.llm-d.io.yaml"))
    cluster.must("wait --for condition=established --timeout=60s crd/widgets.test.sim.llm-d.io")
    cluster.kubectl("create clusterrolebinding schedsim-e2e-operator --clusterrole=cluster-admin --user=operator")
    ns = cluster.namespace("metrics")
    op = cluster.spawn(cluster.bin .. " run --scripts " .. cluster.q(TESTSCRIPTS) ..
      " --kubeconfig " .. cluster.q(os.getenv("SCHEDSIM_OPERATOR_KUBECONFIG")) ..
      " --leader-elect --leader-election-namespace " .. ns .. " --leader-election-id metrics-spec" ..
      " --max-concurrent-reconciles 3 --scripts-configmap " .. ns .. "/no-such-scripts" ..
      " --metrics-bind-address 127.0.0.1:0 --health-probe-bind-address 127.0.0.1:0")
    local started = cluster.eventually(30, "the operator to start", function()
      return op:log_find("starting manager")
    end)
    port = tonumber(started.metricsPort)
    cluster.eventually(60, "the workers to start", function() return op:log_find("starting workers") end)
  end)

  teardown(function()
    if not cluster.available() then return end
    if op then
      op:stop(15)
      if os.getenv("SCHEDSIM_E2E_VERBOSE") then io.stderr:write(op:stderr()) end
      op:cleanup()
    end
    cluster.cleanup()
  end)

  it("exposes controller-runtime's series at 0 before the first reconcile", function()
    if not need_cluster() then return end
    local fams, problems = promtext.parse(scrape(port))
    assert.same({}, problems)
    for _, result in ipairs({ "success", "error", "requeue", "requeue_after" }) do
      local s = promtext.sample(fams, "controller_runtime_reconcile_total",
        { controller = "probe", result = result })
      assert.is_not_nil(s, "reconcile_total{controller=probe,result=" .. result .. "}")
      assert.equals(0, s.value)
    end
    for _, c in ipairs({ "widget", "probe" }) do
      assert.equals(3, promtext.sample(fams, "controller_runtime_max_concurrent_reconciles", { controller = c }).value)
      assert.is_not_nil(promtext.sample(fams, "workqueue_unfinished_work_seconds", { name = c, controller = c }))
      assert.is_not_nil(promtext.sample(fams, "workqueue_queue_duration_seconds_count", { name = c, controller = c }))
    end
    assert.equals(1, promtext.sample(fams, "leader_election_master_status", { name = "metrics-spec" }).value)
  end)

  it("counts successes, panics and terminal errors, with every family present", function()
    if not need_cluster() then return end
    cluster.apply(widget(ns, "good", { count = 1 }))
    cluster.apply(widget(ns, "raises", { fail = "on purpose" }))
    cluster.apply(widget(ns, "terminal", { invalid = "on purpose" }))
    local fams = cluster.eventually(60, "a success, a panic and a terminal error", function()
      local f = promtext.parse(scrape(port))
      local w = { controller = "widget" }
      local function v(name, labels) return (promtext.sample(f, name, labels) or { value = 0 }).value end
      if v("controller_runtime_reconcile_panics_total", w) >= 1 and
        v("controller_runtime_terminal_reconcile_errors_total", w) >= 1 and
        v("controller_runtime_reconcile_total", { controller = "widget", result = "success" }) >= 1 then
        return f
      end
    end)
    for _, name in ipairs(FAMILIES) do assert.is_not_nil(fams[name], name) end
    local w = { controller = "widget" }
    local errors = promtext.sample(fams, "controller_runtime_reconcile_errors_total", w).value
    local panics = promtext.sample(fams, "controller_runtime_reconcile_panics_total", w).value
    local terminal = promtext.sample(fams, "controller_runtime_terminal_reconcile_errors_total", w).value
    assert.is_true(errors >= panics + terminal, "a panic and a terminal error are errors too")
    assert.is_true(promtext.sample(fams, "workqueue_work_duration_seconds_count",
      { name = "widget", controller = "widget" }).value >= 3)
    assert.is_true(promtext.sample(fams, "process_resident_memory_bytes").value > 1e6)
    assert.is_true(promtext.sample(fams, "process_open_fds").value >= 3)
    local start = promtext.sample(fams, "process_start_time_seconds").value
    assert.is_true(math.abs(start - os.time()) < 3600, "start time in Unix seconds")
  end)

  it("logs numbers as numbers and the reconcile's object keys as controller-runtime does", function()
    if not need_cluster() then return end
    local started = op:log_find("starting manager")
    assert.equals("number", type(started.metricsPort))
    local failed = cluster.eventually(30, "the failing Widget's log line", function()
      return op:log("reconcile failed", function(l) return l.name == "raises" end)[1]
    end)
    assert.equals("widget", failed.controller)
    assert.equals("test.sim.llm-d.io", failed.controllerGroup)
    assert.equals("Widget", failed.controllerKind)
    assert.same({ name = "raises", namespace = ns }, failed.Widget)
    assert.equals(ns, failed.namespace)
    assert.equals(ns .. "/raises", failed.key)
    assert.matches("^%x+$", failed.reconcileID)
  end)

  it("logs ready after the scripts ConfigMap is synced", function()
    if not need_cluster() then return end
    local order = {}
    for i, l in ipairs(op:log()) do
      if l.msg == "ready" or l.msg:match("^scripts ConfigMap synced") then order[#order + 1] = l.msg end
      order.n = i
    end
    assert.same("scripts ConfigMap synced; reconciles may start", order[1])
    assert.same("ready", order[2])
  end)

  it("prints numbers as the Go client does and passes promtool check metrics", function()
    if not need_cluster() then return end
    local text = scrape(port)
    assert.matches('controller_runtime_reconcile_time_seconds_bucket{controller="widget",le="10"}', text, 1, true)
    assert.is_nil(text:match(' %d[%.%d]*e%+0[0-5]\n'), "no %g-style small exponents")
    local _, problems = promtext.parse(text)
    assert.same({}, problems)
    local ok, promtool = cluster.sh_stdout(cluster.root .. "/spec/cluster/gotool promtool")
    assert.is_true(ok, "spec/cluster/gotool promtool: " .. promtool)
    promtool = promtool:gsub("%s+$", "")
    local pok, out, code = cluster.sh(cluster.q(promtool) .. " check metrics", text)
    assert.is_true(pok, "promtool check metrics (exit " .. tostring(code) .. "):\n" .. out)
  end)
end)
