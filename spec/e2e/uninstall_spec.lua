-- The uninstall order of doc/installation.md ("Uninstall"), run on the local
-- control plane with the test kind Widget (spec/support/testscripts: a child
-- in another namespace gives the CR the cleanup finalizer
-- sim.llm-d.io/cleanup, as SchedulerInstalls with a simulatorNamespace get):
--   * the documented order — delete the CRs while the operator runs, then the
--     operator, then the CRDs — removes every child and the CRD at once;
--   * deleting the CRD while the operator is stopped hangs on the finalizer
--     (the CRD stays Terminating, the CR stays), as the doc warns;
--   * the documented way out — delete the children by the managed-by label,
--     then drop the finalizers — lets the CRD go.
--
--   bash cmake/run-spec build spec/e2e/uninstall_spec.lua
local cluster = require("cluster")

local TESTSCRIPTS = cluster.root .. "/spec/support/testscripts"
local CRD = "widgets.test.sim.llm-d.io"

local function need_cluster() return cluster.need(pending) end

describe("uninstall (e2e)", function()
  local ns, other, op

  local function install_crd()
    cluster.must("apply --server-side -f " .. cluster.q(TESTSCRIPTS .. "/crds/test.sim.llm-d.io.yaml"))
    cluster.must("wait --for condition=established --timeout=60s crd/" .. CRD)
  end

  local function start_operator()
    op = cluster.spawn(cluster.bin .. " run --scripts " .. cluster.q(TESTSCRIPTS) ..
      " --kubeconfig " .. cluster.q(os.getenv("SCHEDSIM_OPERATOR_KUBECONFIG")) ..
      " --metrics-bind-address 127.0.0.1:0 --health-probe-bind-address 127.0.0.1:0")
    cluster.eventually(60, "the workers to start", function() return op:log_find("starting workers") end)
  end

  local function stop_operator()
    if op then
      op:stop(15)
      op:cleanup()
      op = nil
    end
  end

  local function widget_with_remote_child(name)
    cluster.apply({ apiVersion = "test.sim.llm-d.io/v1alpha1", kind = "Widget",
      metadata = { name = name, namespace = ns }, spec = { count = 1, targetNamespace = other } })
    cluster.eventually(60, "the cross-namespace child and the finalizer", function()
      local w = cluster.get("widget", name, ns)
      return cluster.get("configmap", name .. "-remote", other) and w and w.metadata.finalizers
    end)
  end

  setup(function()
    if not cluster.available() then return end
    install_crd()
    cluster.kubectl("create clusterrolebinding schedsim-e2e-operator --clusterrole=cluster-admin --user=operator")
    ns = cluster.namespace("uninst")
    other = cluster.namespace("uninst-other")
    cluster.grant(other, ns)
  end)

  teardown(function()
    if not cluster.available() then return end
    stop_operator()
    cluster.cleanup()
  end)

  it("documented order: CRs while the operator runs, then the operator, then the CRDs", function()
    if not need_cluster() then return end
    start_operator()
    widget_with_remote_child("w1")
    local t0 = cluster.now()
    cluster.must("delete widgets -A --all --wait --timeout=60s")
    assert.is_nil(cluster.get("configmap", "w1-remote", other), "the operator removed the remote child")
    stop_operator()
    cluster.must("delete crd " .. CRD .. " --timeout=30s")
    assert.is_true(cluster.now() - t0 < 60)
  end)

  it("CRDs deleted with the operator stopped wait for the finalizer; the documented way out frees them", function()
    if not need_cluster() then return end
    install_crd()
    start_operator()
    widget_with_remote_child("w2")
    stop_operator()
    cluster.must("delete crd " .. CRD .. " --wait=false")
    cluster.sleep(8)
    local crd = cluster.get("crd", CRD)
    assert.is_not_nil(crd, "the CRD waits")
    assert.is_not_nil(crd.metadata.deletionTimestamp)
    assert.is_not_nil(cluster.get("widget", "w2", ns), "the CR waits for its finalizer")
    -- the way out, as doc/installation.md writes it (children: ConfigMaps here)
    cluster.must("delete configmaps -A -l app.kubernetes.io/managed-by=schedsim-operator")
    local _, list = cluster.kubectl("get widgets -A -o jsonpath=" ..
      cluster.q('{range .items[*]}{.metadata.namespace} {.metadata.name}{"\\n"}{end}'))
    for wns, name in list:gmatch("(%S+) (%S+)") do
      cluster.must("-n " .. wns .. " patch widget " .. name .. " --type=merge -p " ..
        cluster.q('{"metadata":{"finalizers":null}}'))
    end
    cluster.eventually(30, "the CRD gone", function() return cluster.get("crd", CRD) == nil end)
    assert.is_nil(cluster.get("configmap", "w2-remote", other))
  end)
end)
