-- The Helm chart deploy/helm/schedsim-operator against the kustomize install
-- it mirrors, with helm built from its Go module (spec/cluster/gotool helm):
--   * `helm lint --strict` passes;
--   * `helm template` (CRDs included) applies with --dry-run=server on the
--     local control plane, in both RBAC modes;
--   * it installs what `kubectl kustomize deploy/` installs (the same kinds,
--     CRDs byte-equal to crds/, the ClusterRole's rules and the leader-election
--     rules equal to deploy/rbac/, the same run flags and PodDisruptionBudget);
--   * a wrong rbac.scope, or rbac.scope=namespace without watchNamespace, fails.
--
--   bash cmake/run-spec build spec/e2e/helm_spec.lua
local cluster = require("cluster")
local k8srt = require("k8srt") -- the runtime's own YAML converter

local root, q = cluster.root, cluster.q
local CHART = root .. "/deploy/helm/schedsim-operator"

local function need_cluster() return cluster.need(pending) end

local function docs(text)
  local t = {}
  for _, d in ipairs(assert(k8srt.yaml.load(text))) do
    if type(d) == "table" and d.kind then t[#t + 1] = d end
  end
  return t
end

local function by_kind(list)
  local t = {}
  for _, d in ipairs(list) do
    t[d.kind] = t[d.kind] or {}
    table.insert(t[d.kind], d)
  end
  return t
end

local read = cluster.read_file

describe("Helm chart (e2e)", function()
  local helm, ns

  setup(function()
    local ok, out = cluster.sh_stdout(root .. "/spec/cluster/gotool helm")
    assert(ok, "spec/cluster/gotool helm failed: " .. out)
    helm = out:gsub("%s+$", "")
    if cluster.available() then ns = cluster.namespace("helm") end
  end)

  teardown(function()
    if cluster.available() then cluster.cleanup() end
  end)

  -- stdout only (helm notes the chart's symlinks on stderr), or with merged = true both
  local function template(args, merged)
    local cmd = q(helm) .. " template schedsim-operator " .. q(CHART) .. " -n " .. (ns or "schedsim-system")
    return (merged and cluster.sh or cluster.sh_stdout)(cmd .. " " .. (args or ""))
  end

  it("passes helm lint --strict", function()
    local ok, out = cluster.sh(q(helm) .. " lint --strict " .. q(CHART))
    assert.is_true(ok, out)
  end)

  it("installs what the kustomize install does", function()
    local ok, out = template("--include-crds")
    assert.is_true(ok, out)
    local chart = by_kind(docs(out))
    local kok, kout = cluster.sh_stdout("kubectl kustomize " .. q(root .. "/deploy"))
    assert.is_true(kok, kout)
    local kust = by_kind(docs(kout))
    kust.Namespace = nil -- Helm installs into a namespace (--create-namespace), not the Namespace object
    for kind, list in pairs(kust) do
      assert.equals(#list, #(chart[kind] or {}), kind)
    end
    assert.equals(kust.PodDisruptionBudget[1].spec.maxUnavailable, chart.PodDisruptionBudget[1].spec.maxUnavailable)
    -- CRDs: the files of crds/
    for _, crd in ipairs(chart.CustomResourceDefinition) do
      local file = root .. "/crds/sim.llm-d.io_" .. crd.spec.names.plural .. ".yaml"
      assert.same(docs(read(file))[1], crd)
    end
    -- RBAC: the rules of deploy/rbac/
    assert.same(kust.ClusterRole[1].rules, chart.ClusterRole[1].rules)
    assert.same(kust.Role[1].rules, chart.Role[1].rules)
    -- the Deployment: same flags but for the names the release gives
    local function flags(d)
      local t = {}
      for _, a in ipairs(d.spec.template.spec.containers[1].args) do
        t[#t + 1] = (a:gsub("=.*", ""))
      end
      table.sort(t)
      return t
    end
    local kflags = flags(kust.Deployment[1])
    table.insert(kflags, "--leader-election-id")
    table.sort(kflags)
    assert.same(kflags, flags(chart.Deployment[1]))
    assert.equals(kust.Deployment[1].spec.replicas, chart.Deployment[1].spec.replicas)
    assert.same(kust.Deployment[1].spec.template.spec.containers[1].resources,
      chart.Deployment[1].spec.template.spec.containers[1].resources)
  end)

  it("applies with --dry-run=server, cluster-wide and namespaced RBAC", function()
    if not need_cluster() then return end
    for _, args in ipairs({ "--include-crds", "--set rbac.scope=namespace --set watchNamespace=" .. ns }) do
      local ok, out = template(args)
      assert.is_true(ok, out)
      local aok, aout = cluster.kubectl("apply --dry-run=server -f -", out)
      assert.is_true(aok, args .. ":\n" .. aout)
      assert.matches("deployment.apps/schedsim%-operator created %(server dry run%)", aout)
    end
  end)

  it("metrics.secure installs what deploy/components/metrics-secure does, and applies", function()
    local ok, out = template("--set metrics.secure=true --set metrics.port=8443 "
      .. "--set metrics.serviceMonitor.enabled=true --api-versions monitoring.coreos.com/v1")
    assert.is_true(ok, out)
    local chart = by_kind(docs(out))
    local comp = by_kind(docs(read(root .. "/deploy/components/metrics-secure/metrics_auth_role.yaml")
      .. "\n---\n" .. read(root .. "/deploy/components/metrics-secure/metrics_reader_role.yaml")))
    local function rules_of(list, suffix)
      for _, r in ipairs(list) do
        if r.metadata.name:sub(-#suffix) == suffix then return r.rules end
      end
    end
    for _, suffix in ipairs({ "-metrics-auth", "-metrics-reader" }) do
      assert.same(rules_of(comp.ClusterRole, suffix), rules_of(chart.ClusterRole, suffix), suffix)
    end
    local args = table.concat(chart.Deployment[1].spec.template.spec.containers[1].args, " ")
    assert.matches("--metrics-secure", args, 1, true)
    assert.matches("--metrics-bind-address=:8443", args, 1, true)
    assert.equals("https", chart.Service[1].spec.ports[1].name)
    assert.equals("https", chart.ServiceMonitor[1].spec.endpoints[1].scheme)
    if not need_cluster() then return end
    local tok, tout = template("--set metrics.secure=true")
    assert.is_true(tok, tout)
    local aok, aout = cluster.kubectl("apply --dry-run=server -f -", tout)
    assert.is_true(aok, aout)
  end)

  it("refuses a wrong RBAC mode", function()
    local ok, out = template("--set rbac.scope=everything", true)
    assert.is_false(ok)
    assert.matches("rbac.scope must be cluster or namespace", out, 1, true)
    ok, out = template("--set rbac.scope=namespace", true)
    assert.is_false(ok)
    assert.matches("needs watchNamespace", out, 1, true)
  end)
end)
