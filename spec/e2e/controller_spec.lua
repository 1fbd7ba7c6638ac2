-- End-to-end specs of the Reconciler driver (runtime/controller/) against
-- the local control plane, with the test script set spec/support/testscripts
-- (controller "widget": spec.count ConfigMaps in the CR's namespace, one more
-- in spec.targetNamespace) and its CRDs (crds/test.sim.llm-d.io.yaml):
--   * children are applied (labels, owner reference, desired-hash);
--   * the status is written with observedGeneration and scriptRevision;
--   * a child dropped from the desired set is pruned;
--   * an object of the same name that is not ours gives Ready=False Conflict;
--   * a child the API server refuses gives Ready=False WriteInvalid naming it;
--   * a minute of resyncs (every 5 s) with nothing changed makes zero write
--     requests (apiserver audit log, user "operator");
--   * the finalizer is added only with a child in another namespace (same-
--     namespace children go by garbage collection of owner references);
--   * deleting the CR removes its cross-namespace child, then the finalizer.
--
--   spec/cluster/run -- env SCHEDSIM_BUILD=$PWD/build LUA_PATH="spec/support/?.lua;;" \
--     lua5.4 /usr/bin/busted spec/e2e/controller_spec.lua
local cluster = require("cluster")

local TESTSCRIPTS = cluster.root .. "/spec/support/testscripts"
local WRITE_VERBS = { create = true, update = true, patch = true, delete = true, deletecollection = true }

local function need_cluster() return cluster.need(pending) end

local function widget(ns, name, spec)
  return { apiVersion = "test.sim.llm-d.io/v1alpha1", kind = "Widget",
    metadata = { name = name, namespace = ns }, spec = spec }
end

local function condition(obj, type)
  for _, c in ipairs(((obj or {}).status or {}).conditions or {}) do
    if c.type == type then return c end
  end
  return nil
end

local function metric(port, name)
  local _, body = cluster.sh_stdout("curl -s --max-time 10 http://127.0.0.1:" .. port .. "/metrics")
  local total = 0
  for line in body:gmatch("[^\n]+") do
    local value = line:match("^" .. name:gsub("_", "%%_") .. "[{ ].-(%S+)$")
    if value then total = total + tonumber(value) end
  end
  return total
end

--- Write requests by the operator's user since `since` (RFC 3339, UTC).
local function operator_writes(since)
  return cluster.audit(function(e)
    return (e.user or {}).username == "operator" and WRITE_VERBS[e.verb] and
      (e.requestReceivedTimestamp or "") >= since and e.stage == "ResponseComplete"
  end)
end

local function utc_now()
  local _, out = cluster.sh_stdout("date -u +%Y-%m-%dT%H:%M:%S.%6NZ")
  return (out:gsub("%s+$", ""))
end

describe("controller (e2e)", function()
  local ns, other, op, metrics_port

  setup(function()
    if not cluster.available() then return end
    cluster.must("apply --server-side -f " .. cluster.q(TESTSCRIPTS .. "/crds/test.sim.llm-d.io.yaml"))
    cluster.must("wait --for condition=established --timeout=60s crd/widgets.test.sim.llm-d.io")
    cluster.kubectl("create clusterrolebinding schedsim-e2e-operator --clusterrole=cluster-admin --user=operator")
    ns = cluster.namespace("ctl")
    other = cluster.namespace("ctl-other")
    cluster.grant(other, ns) -- open `other` to the CRs of `ns` (doc/security.md)
    op = cluster.start_operator({ scripts = TESTSCRIPTS, kubeconfig = true, args = "-v 1 --sync-period 5s" })
    metrics_port = tonumber(op.started.metricsPort)
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

  it("applies the children of a CR", function()
    if not need_cluster() then return end
    cluster.apply(widget(ns, "w", { count = 3, targetNamespace = other }))
    for i = 1, 3 do
      local cm = cluster.eventually(30, "ConfigMap w-" .. i, function()
        return cluster.get("configmap", "w-" .. i, ns)
      end)
      assert.equals(tostring(i), cm.data.index)
      assert.equals("schedsim-operator", cm.metadata.labels["app.kubernetes.io/managed-by"])
      assert.equals("widget." .. ns .. ".w", cm.metadata.labels["sim.llm-d.io/owner"])
      assert.equals("Widget", cm.metadata.ownerReferences[1].kind)
      assert.is_true(cm.metadata.ownerReferences[1].controller)
      assert.matches("^%x+$", cm.metadata.annotations["sim.llm-d.io/desired-hash"])
    end
    local remote = cluster.eventually(30, "the cross-namespace child", function()
      return cluster.get("configmap", "w-remote", other)
    end)
    assert.is_nil(remote.metadata.ownerReferences)
    assert.equals("widget." .. ns .. ".w", remote.metadata.labels["sim.llm-d.io/owner"])
  end)

  it("writes the status with observedGeneration and scriptRevision, and adds the finalizer", function()
    if not need_cluster() then return end
    local w = cluster.eventually(30, "status.observedGeneration", function()
      local obj = cluster.get("widget", "w", ns)
      return obj and obj.status and obj.status.observedGeneration == obj.metadata.generation and obj
    end)
    assert.equals(4, w.status.children)
    assert.matches("^sha256:%x+$", w.status.scriptRevision)
    assert.equals("True", condition(w, "Ready").status)
    assert.same({ "sim.llm-d.io/cleanup" }, w.metadata.finalizers)
  end)

  it("adds the finalizer only with a child in another namespace; owner references do the rest", function()
    if not need_cluster() then return end
    cluster.apply(widget(ns, "local", { count = 2 }))
    local w = cluster.eventually(30, "widget local observed", function()
      local obj = cluster.get("widget", "local", ns)
      return obj and obj.status and obj.status.observedGeneration == obj.metadata.generation and obj
    end)
    assert.equals("True", condition(w, "Ready").status)
    assert.is_nil(w.metadata.finalizers)
    assert.is_not_nil(cluster.get("configmap", "local-2", ns))
    -- a cross-namespace child appears: the finalizer comes with it
    cluster.must("patch widget local -n " .. ns .. " --type merge -p '{\"spec\":{\"targetNamespace\":\"" ..
      other .. "\"}}'")
    cluster.eventually(30, "local-remote and the finalizer", function()
      local obj = cluster.get("widget", "local", ns)
      return cluster.get("configmap", "local-remote", other) and obj and obj.metadata.finalizers
        and obj.metadata.finalizers[1] == "sim.llm-d.io/cleanup"
    end)
    cluster.must("delete widget local -n " .. ns .. " --wait=false")
    cluster.eventually(30, "local-remote deleted and the Widget gone", function()
      return not cluster.get("configmap", "local-remote", other) and not cluster.get("widget", "local", ns)
    end)
    -- same-namespace children go by garbage collection (owner references)
    cluster.apply(widget(ns, "plain", { count = 1 }))
    local plain = cluster.eventually(30, "plain-1 and the status", function()
      local obj = cluster.get("widget", "plain", ns)
      return cluster.get("configmap", "plain-1", ns) and obj and obj.status
        and obj.status.observedGeneration == obj.metadata.generation and obj
    end)
    assert.is_nil(plain.metadata.finalizers)
    cluster.must("delete widget plain -n " .. ns .. " --wait=false")
    cluster.eventually(60, "plain-1 garbage-collected", function()
      return not cluster.get("configmap", "plain-1", ns)
    end)
  end)

  it("reports a write the API server refuses as Ready=False WriteInvalid, and recovers", function()
    if not need_cluster() then return end
    cluster.apply(widget(ns, "refused", { count = 1, label = "not a label value!" }))
    local w = cluster.eventually(30, "Ready=False WriteInvalid", function()
      local obj = cluster.get("widget", "refused", ns)
      local ready = condition(obj, "Ready")
      return ready and ready.reason == "WriteInvalid" and obj
    end)
    local msg = condition(w, "Ready").message
    assert.matches("apply ConfigMap " .. ns .. "/refused-1: ", msg, 1, true)
    assert.matches("Invalid (422)", msg, 1, true)
    assert.matches('metadata.labels: Invalid value: "not a label value!"', msg, 1, true)
    assert.is_nil(cluster.get("configmap", "refused-1", ns))
    cluster.must("patch widget refused -n " .. ns .. " --type merge -p '{\"spec\":{\"label\":\"fine\"}}'")
    cluster.eventually(30, "Ready=True after the fix", function()
      local obj = cluster.get("widget", "refused", ns)
      local ready = condition(obj, "Ready")
      return ready and ready.status == "True" and obj.status.observedGeneration == obj.metadata.generation
    end)
    assert.equals("fine", cluster.get("configmap", "refused-1", ns).metadata.labels["test.sim.llm-d.io/label"])
    cluster.must("delete widget refused -n " .. ns .. " --wait=false")
  end)

  it("prunes a child dropped from the desired set", function()
    if not need_cluster() then return end
    cluster.must("patch widget w -n " .. ns .. " --type merge -p '{\"spec\":{\"count\":1}}'")
    cluster.eventually(30, "w-2 and w-3 deleted", function()
      return not cluster.get("configmap", "w-2", ns) and not cluster.get("configmap", "w-3", ns)
    end)
    assert.is_not_nil(cluster.get("configmap", "w-1", ns))
    local w = cluster.eventually(30, "the new generation observed", function()
      local obj = cluster.get("widget", "w", ns)
      return obj and obj.status.observedGeneration == obj.metadata.generation and obj
    end)
    assert.equals(2, w.status.children)
  end)

  it("refuses to take over an object it does not own (Ready=False Conflict)", function()
    if not need_cluster() then return end
    cluster.must("create configmap c-1 -n " .. ns .. " --from-literal=mine=yes")
    cluster.apply(widget(ns, "c", { count = 1 }))
    local c = cluster.eventually(30, "Ready=False Conflict", function()
      local obj = cluster.get("widget", "c", ns)
      local ready = condition(obj, "Ready")
      return ready and ready.reason == "Conflict" and obj
    end)
    assert.matches("ConfigMap " .. ns .. "/c-1 exists and is not managed by schedsim-operator",
      condition(c, "Ready").message, 1, true)
    local cm = cluster.get("configmap", "c-1", ns)
    assert.equals("yes", cm.data.mine)
    assert.is_nil((cm.metadata.labels or {})["sim.llm-d.io/owner"])
    cluster.must("delete widget c -n " .. ns .. " --wait=false")
  end)

  it("makes no write request during a minute of resyncs with nothing changed", function()
    if not need_cluster() then return end
    -- settle: every CR observed, no write for a few seconds
    cluster.eventually(30, "widget w settled", function()
      local obj = cluster.get("widget", "w", ns)
      return obj and obj.status.observedGeneration == obj.metadata.generation
    end)
    cluster.eventually(60, "widget c gone", function() return not cluster.get("widget", "c", ns) end)
    cluster.sleep(5)
    local since = utc_now()
    local before = metric(metrics_port, "controller_runtime_reconcile_total")
    cluster.sleep(60)
    local writes = operator_writes(since)
    local after = metric(metrics_port, "controller_runtime_reconcile_total")
    local list = {}
    for _, e in ipairs(writes) do list[#list + 1] = e.verb .. " " .. (e.requestURI or "") end
    assert.equals(0, #writes, "writes during resync:\n" .. table.concat(list, "\n"))
    assert.is_true(after - before >= 10, "expected resync reconciles, got " .. (after - before))
  end)

  it("removes the cross-namespace child, then the finalizer, when the CR is deleted", function()
    if not need_cluster() then return end
    assert.is_not_nil(cluster.get("configmap", "w-remote", other))
    cluster.must("delete widget w -n " .. ns .. " --wait=false")
    cluster.eventually(30, "w-remote deleted", function()
      return not cluster.get("configmap", "w-remote", other)
    end)
    cluster.eventually(30, "the Widget gone (finalizer removed)", function()
      return not cluster.get("widget", "w", ns)
    end)
  end)
end)
