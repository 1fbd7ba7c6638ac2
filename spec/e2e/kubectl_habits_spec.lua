-- kubectl habits against the CRDs of crds/ on the local control plane (no
-- operator needed):
--   * `kubectl get llm-d` lists both kinds (the category);
--   * `kubectl scale simdep` sets spec.decode.replicas through the scale
--     subresource, and the scale reads status.decode (replicas, selector);
--   * `kubectl explain` shows status fields with their one-line descriptions.
--
--   bash cmake/run-spec build spec/e2e/kubectl_habits_spec.lua
local cluster = require("cluster")

local function need_cluster() return cluster.need(pending) end

describe("kubectl habits (e2e)", function()
  local ns

  setup(function()
    if not cluster.available() then return end
    for _, f in ipairs({ "sim.llm-d.io_simulatordeployments.yaml", "sim.llm-d.io_schedulerinstalls.yaml" }) do
      cluster.must("apply --server-side -f " .. cluster.q(cluster.root .. "/crds/" .. f))
    end
    cluster.must("wait --for condition=established --timeout=60s crd/simulatordeployments.sim.llm-d.io " ..
      "crd/schedulerinstalls.sim.llm-d.io")
    ns = cluster.namespace("habits")
  end)

  teardown(function()
    if cluster.available() then cluster.cleanup() end
  end)

  it("lists both kinds under the llm-d category", function()
    if not need_cluster() then return end
    cluster.apply({ apiVersion = "sim.llm-d.io/v1alpha1", kind = "SimulatorDeployment",
      metadata = { name = "s", namespace = ns }, spec = { decode = { enabled = true, replicas = 2 } } })
    cluster.apply({ apiVersion = "sim.llm-d.io/v1alpha1", kind = "SchedulerInstall",
      metadata = { name = "i", namespace = ns }, spec = { simulatorNamespace = ns } })
    local out = cluster.must("get llm-d -n " .. ns .. " -o name")
    assert.matches("simulatordeployment.sim.llm%-d.io/s", out)
    assert.matches("schedulerinstall.sim.llm%-d.io/i", out)
  end)

  it("scales the decode stage through the scale subresource", function()
    if not need_cluster() then return end
    cluster.must("scale simdep s -n " .. ns .. " --replicas 4")
    assert.equals(4, cluster.get("simdep", "s", ns).spec.decode.replicas)
    cluster.must("patch simdep s -n " .. ns .. " --subresource status --type merge -p " ..
      cluster.q('{"status":{"decode":{"replicas":4,"readyReplicas":1,"selector":"llm-d.ai/role=decode"}}}'))
    local scale = cluster.decode(cluster.must("get --raw /apis/sim.llm-d.io/v1alpha1/namespaces/" .. ns ..
      "/simulatordeployments/s/scale"))
    assert.equals(4, scale.spec.replicas)
    assert.equals(4, scale.status.replicas)
    assert.equals("llm-d.ai/role=decode", scale.status.selector)
  end)

  it("explains status fields on one line each", function()
    if not need_cluster() then return end
    -- the API server publishes a new CRD's OpenAPI a little after Established: wait for it
    local out = cluster.eventually(60, "kubectl explain schedulerinstall.status.backendRef", function()
      local ok, text = cluster.kubectl("explain schedulerinstall.status.backendRef")
      return ok and text, text
    end)
    for _, f in ipairs({ "group", "kind", "name", "namespace", "port" }) do
      assert.matches("\n  " .. f .. "%s+<[^>]+>\n%s+%S", out, nil, "backendRef." .. f .. " has a description")
    end
    assert.is_nil(out:find("scripts/", 1, true))
  end)
end)
