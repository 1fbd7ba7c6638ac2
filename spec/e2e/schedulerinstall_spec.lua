-- SchedulerInstall end to end, on the local control plane (spec/cluster):
--   * the CRD: examples and the reference operator's samples apply unchanged,
--     the CEL rules refuse what the reference only refused in code;
--   * every object the reconciler emits for the fixture cases passes
--     server-side dry-run against the real third-party CRDs (Gateway API
--     v1.4.0, InferencePool v1/v1alpha2, Istio 1.28);
--   * with the operator ($SCHEDSIM_BIN run --scripts scripts, started here):
--     examples and reference samples produce their fixtures' objects field for
--     field; Service <-> InferencePool changes only the HTTPRoute and the grant;
--     PortMismatch; RouteAccepted mirrors a stand-in gateway controller;
--     deletion cleans both namespaces; clusters started without the
--     InferencePool CRDs, or with only v1alpha2.
-- Run: cmake/run-spec BUILD spec/e2e/schedulerinstall_spec.lua (starts the
-- cluster), or inside `spec/cluster/run -- busted spec/e2e/schedulerinstall_spec.lua`.
-- Parts that need what is not there yet (cluster, operator binary) are pending.
local fake = require("fake_k8s")

local ROOT = os.getenv("SCHEDSIM_ROOT") or "."
local BIN = os.getenv("SCHEDSIM_BIN") or (ROOT .. "/build/schedsim-operator")
local SCHED, SIM, VLLM = "llm-d-inference-scheduler", "llm-d-sim", "llm-d-vllm"
local CR_RESOURCE = "schedulerinstalls.sim.llm-d.io"

-- ------------------------------------------------------------ shell helpers

local cluster = require("cluster") -- spec/support/cluster.lua: shell, processes
local q, sh, sleep = cluster.q, cluster.sh, cluster.sleep

local function tmpfile(text)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

local function eventually(timeout, what, fn)
  local deadline = os.time() + timeout
  local last
  while true do
    local v, info = fn()
    if v then return v end
    last = info
    if os.time() >= deadline then
      error(("timed out after %ds waiting for %s (last: %s)"):format(timeout, what, tostring(last)), 2)
    end
    sleep(0.5)
  end
end

-- kubectl against one cluster
local Kube = {}
Kube.__index = Kube

local function kube(kubeconfig) return setmetatable({ kc = kubeconfig }, Kube) end

function Kube:run(args, stdin_text)
  local cmd = "kubectl --kubeconfig " .. q(self.kc) .. " " .. args
  if stdin_text then
    local path = tmpfile(stdin_text)
    cmd = cmd .. " -f " .. q(path)
    local ok, out, code = sh(cmd)
    os.remove(path)
    return ok, out, code
  end
  return sh(cmd)
end

function Kube:must(args, stdin_text)
  local ok, out = self:run(args, stdin_text)
  assert(ok, "kubectl " .. args .. " failed:\n" .. out)
  return out
end

function Kube:get(resource, ns, name)
  local ok, out = self:run(("get %s %s -o json%s"):format(resource, q(name), ns and (" -n " .. q(ns)) or ""))
  if not ok then return nil, out end
  return fake.json_decode(out)
end

function Kube:apply(obj, extra)
  obj = fake.deep_copy(obj)
  obj.metadata.generation = nil
  return self:must("apply " .. (extra or ""), fake.json_encode(obj))
end

local function resource_of(obj)
  local group = obj.apiVersion:match("^(.*)/[^/]+$")
  local plural = obj.kind:lower() .. (obj.kind:match("s$") and "es" or "s")
  if obj.kind == "EndpointSlice" then plural = "endpointslices" end
  return group and (plural .. "." .. group) or plural
end

function Kube:condition(ns, name, type_)
  local cr = self:get(CR_RESOURCE, ns, name)
  for _, c in ipairs(cr and cr.status and cr.status.conditions or {}) do
    if c.type == type_ then return c, cr end
  end
  return nil, cr
end

function Kube:wait_condition(ns, name, type_, want, timeout)
  return eventually(timeout or 60, ("%s/%s %s=%s"):format(ns, name, type_, fake.json_encode(want)), function()
    local c = self:condition(ns, name, type_)
    if not c then return nil, "no condition" end
    for k, v in pairs(want) do
      if k == "message_contains" then
        if not c.message:find(v, 1, true) then return nil, fake.json_encode(c) end
      elseif c[k] ~= v then
        return nil, fake.json_encode(c)
      end
    end
    return c
  end)
end

--- Creates the namespaces of list and opens each to the CRs of the others
--- (the grant label of doc/security.md).
function Kube:namespaces(list)
  for _, ns in ipairs(list) do
    self:run("create namespace " .. q(ns))
  end
  for _, target in ipairs(list) do
    for _, source in ipairs(list) do
      if source ~= target then
        self:must(("label namespace %s allow-from.sim.llm-d.io/%s=true --overwrite"):format(q(target), source))
      end
    end
  end
end

function Kube:install_crds()
  self:must("apply -f " .. q(ROOT .. "/crds/sim.llm-d.io_schedulerinstalls.yaml"))
  -- the SimulatorDeployment CRD only feeds the KV-metric lookup: optional here
  self:run("apply -f " .. q(ROOT .. "/crds/sim.llm-d.io_simulatordeployments.yaml"))
  self:must("wait --for condition=Established --timeout=60s crd/" .. CR_RESOURCE)
end

-- ------------------------------------------------------------- fixtures

local FIXTURES = ROOT .. "/scripts/schedulerinstall/fixtures/"

-- file: "<name>.yaml" or "contract/<name>.yaml" (the contract cases, doc/hot-reload.md)
local function load_case(file)
  local case = fake.yaml_load_file(FIXTURES .. file)[1]
  local dir = (FIXTURES .. file):match("^(.*/)")
  case.input = case.input or fake.yaml_load_file(dir .. case.input_path)[1]
  return case
end

local function all_cases()
  local out = {}
  for _, sub in ipairs({ "", "contract/" }) do
    local p = assert(io.popen("ls " .. q(FIXTURES .. sub)))
    for f in p:lines() do
      if f:match("%.yaml$") then out[#out + 1] = sub .. f end
    end
    p:close()
  end
  table.sort(out)
  return out
end

-- expected ⊆ actual, lists element-wise
local function subset(exp, act, path)
  if type(exp) ~= "table" then
    if exp ~= act then return false, ("%s: expected %s, got %s"):format(path, tostring(exp), tostring(act)) end
    return true
  end
  if type(act) ~= "table" then return false, path .. ": missing" end
  if fake.is_array(exp) then
    if #exp ~= #act then return false, ("%s: %d elements, want %d"):format(path, #act, #exp) end
  end
  for k, v in pairs(exp) do
    local ok, why = subset(v, act[k], path .. "." .. tostring(k))
    if not ok then return false, why end
  end
  return true
end

-- The children the reconciler emits for a case, through the pure-Lua fake.
local function render(case)
  fake.install({ objects = case.observed or {}, without_kinds = case.without_kinds, now = case.now })
  for k in pairs(package.loaded) do
    if k:match("^schedulerinstall%.") or k:match("^lib%.") then package.loaded[k] = nil end
  end
  local rec = require("schedulerinstall.reconcile")
  local owns
  for _, c in ipairs(dofile(ROOT .. "/scripts/controllers.lua")) do
    if c.name == "schedulerinstall" then owns = c.owns end
  end
  local res = rec.reconcile(case.input, fake.observed({}, owns), fake.ctx())
  for _, c in ipairs(res.children) do
    c.metadata.namespace = c.metadata.namespace or case.input.metadata.namespace
  end
  return fake.json_decode(fake.json_encode(res.children))
end

-- ------------------------------------------------------------ the operator

local function operator_available()
  local ok, out = sh(q(BIN) .. " run --help")
  return ok and not out:find("not implemented", 1, true)
end

-- Processes are started with spec/support/cluster.lua's spawn (own process,
-- logs in files, stop = SIGTERM then SIGKILL).
local spawn = cluster.spawn

local function start_operator(kubeconfig)
  -- ephemeral ports: a fixed or random one can be taken by a concurrent spec
  return cluster.start_operator({ args = "--log-format json -v 2", env = { KUBECONFIG = kubeconfig },
    wait = false })
end

local function stop_operator(op)
  if op then op:stop(15) end
end

local function operator_log_tail(op)
  if not op then return "" end
  return (op:stdout() .. op:stderr()):sub(-4000)
end

-- A second control plane with other CRD sets (same binary as the main one).
local function start_cluster(crds)
  local exe = os.getenv("SCHEDSIM_CLUSTER_EXE")
  assert(exe, "SCHEDSIM_CLUSTER_EXE not set")
  -- spec/cluster/run exports SCHEDSIM_THIRDPARTY_CRDS, the launcher's default CRD dir
  assert(os.getenv("SCHEDSIM_THIRDPARTY_CRDS"), "SCHEDSIM_THIRDPARTY_CRDS not set (run under spec/cluster/run)")
  local p = spawn(("%s up --crds %s"):format(q(exe), q(crds)))
  local line = eventually(240, "second control plane (" .. crds .. ")", function()
    assert(p:alive(), "launcher exited:\n" .. p:stderr():sub(-2000))
    return p:stdout():match("schedsim%-cluster ready:[^\n]*"), p:stderr():sub(-300)
  end)
  p.kubeconfig = line:match("kubeconfig=(%S+)")
  return p
end

local function stop_cluster(c)
  if c then c:stop(60) end
end

-- ================================================================= specs

local KC = os.getenv("KUBECONFIG")
local have_cluster = KC ~= nil and os.getenv("SCHEDSIM_CLUSTER_DIR") ~= nil

describe("SchedulerInstall e2e", function()
  if not have_cluster then
    pending("needs the local control plane: run through cmake/run-spec or spec/cluster/run")
    return
  end
  local k = kube(KC)

  setup(function()
    k:install_crds()
    k:namespaces({ SCHED, SIM, VLLM })
  end)

  describe("the CRD", function()
    local function dry(obj)
      obj = fake.deep_copy(obj)
      obj.metadata.generation = nil
      return k:run("apply --dry-run=server", fake.json_encode(obj))
    end

    it("accepts every example unchanged", function()
      for _, f in ipairs({ "service", "inferencepool", "proxy-performance", "proxy-performance-by-backend", "ab" }) do
        k:must("apply --dry-run=server -f " .. q(ROOT .. "/examples/schedulerinstall-" .. f .. ".yaml"))
      end
    end)

    it("accepts the reference operator's samples unchanged", function()
      for _, f in ipairs({ "reference-sample.yaml", "reference-proxy-performance.yaml",
        "reference-proxy-performance-by-backend.yaml" }) do
        local ok, out = dry(load_case(f).input)
        assert(ok, f .. ": " .. out)
      end
    end)

    local function variant(mut)
      local cr = load_case("reference-sample.yaml").input
      mut(cr.spec, cr)
      return cr
    end
    local refused = {
      { "spec.simulatorNamespace is required", function(s) s.simulatorNamespace = nil end },
      { "spec.envoyFilter.enabled needs spec.epp.enabled=true", function(s) s.epp.enabled = false end },
      { "spec.routing.backendType InferencePool needs a pool", function(s)
        s.epp = nil
        s.envoyFilter = nil
        s.routing.inferencePool.name = nil
      end },
      { "spec.epp.healthPort must differ from spec.epp.port", function(s) s.epp.healthPort = 9002 end },
      { "spec.epp.metricsPort must differ", function(s) s.epp.metricsPort = 9003; s.epp.healthPort = 9003 end },
      { "spec.epp.args sets --secure-serving against spec.epp.secureServing",
        function(s) s.epp.args = fake.json_decode('["--secure-serving=true"]') end },
      { "should be less than or equal to 65535", function(s) s.proxyService.targetPort = 70000 end },
      { "should be greater than or equal to 1", function(s) s.epp.port = 0 end },
      { "Unsupported value", function(s) s.routing.fallback = "Random" end },
      -- child names and counts are checked at apply, naming the field
      { "spec.proxyService.name: Invalid value", function(s) s.proxyService.name = "Bad_Name" end },
      { "spec.epp.name: Invalid value", function(s) s.epp.name = "9epp" end },
      { "spec.gateway.className: Invalid value", function(s) s.gateway.className = "Not A Class" end },
      { "spec.gateway.listenerProtocol: Unsupported value", function(s) s.gateway.listenerProtocol = "QUIC" end },
      { "spec.epp.replicas: Invalid value", function(s) s.epp.replicas = 2147483647 end },
      -- an inline EndpointPickerConfig: not with a profile, and every pluginRef names a plugin
      { "spec.epp.config and spec.epp.configProfile are mutually exclusive", function(s)
        s.epp.configProfile = "default"
        s.epp.config = load_case("epp-inline-config.yaml").input.spec.epp.config
      end },
      { "every schedulingProfiles[].plugins[].pluginRef must name one of plugins", function(s)
        s.epp.configProfile = nil
        s.epp.config = load_case("contract/epp-inline-bad-pluginref.yaml").input.spec.epp.config
      end },
    }
    for _, r in ipairs(refused) do
      it("refuses: " .. r[1], function()
        local ok, out = dry(variant(r[2]))
        assert(not ok, "accepted but should be refused: " .. r[1])
        assert(out:find(r[1], 1, true), "message does not name it:\n" .. out)
      end)
    end

    it("accepts a managed pool without a name and the new fields", function()
      local ok, out = dry(variant(function(s)
        s.routing.inferencePool = { managed = true, apiVersion = "inference.networking.x-k8s.io/v1alpha2",
          failureMode = "FailOpen", selector = { app = "x" } }
        s.routing.fallback = "None"
        s.epp.secureServing = true
        s.epp.args = fake.json_decode('["--secure-serving=true"]')
        s.epp.healthPort = 9100
        s.epp.metricsPort = 9200
        s.simulatorImage = "ghcr.io/llm-d/llm-d-inference-sim:v0.7.0"
      end))
      assert(ok, out)
      -- an inline config instead of the profile, parameters passed through
      ok, out = dry(variant(function(s)
        s.epp.configProfile = nil
        s.epp.config = load_case("epp-inline-config.yaml").input.spec.epp.config
      end))
      assert(ok, out)
    end)

    it("has the printer columns and the short name", function()
      local out = k:must("get crd " .. CR_RESOURCE .. " -o json")
      local crd = fake.json_decode(out)
      local cols = {}
      for _, c in ipairs(crd.spec.versions[1].additionalPrinterColumns) do cols[#cols + 1] = c.name end
      assert.same({ "Backend", "Ready", "Reason", "Pool", "EPP", "Split", "Age" }, cols)
      assert.same({ "schedinst" }, crd.spec.names.shortNames)
    end)
  end)

  describe("children against the third-party CRDs (server-side dry-run)", function()
    for _, f in ipairs(all_cases()) do
      local case = load_case(f)
      if not (case.expect and case.expect.error) then
        it(f, function()
          k:namespaces({ case.input.metadata.namespace, SIM, VLLM })
          local children = render(case)
          local ok, out = k:run("apply --server-side --field-manager=schedsim-operator --dry-run=server",
            fake.json_encode({ apiVersion = "v1", kind = "List", items = children }))
          assert(ok, "refused:\n" .. out)
          local _, n = out:gsub("serverside%-applied %(server dry run%)", "")
          assert.equal(#children, n, out)
        end)
      end
    end
  end)

  describe("with the operator", function()
    local op
    local runnable = operator_available()
    if not runnable then
      pending("needs the operator binary's `run` ($SCHEDSIM_BIN = " .. BIN .. ")")
      return
    end

    setup(function() op = start_operator(KC) end)
    teardown(function() stop_operator(op) end)

    local function delete_and_wait(case, children)
      local ns, name = case.input.metadata.namespace, case.input.metadata.name
      k:must(("delete %s %s -n %s --wait=false"):format(CR_RESOURCE, q(name), q(ns)))
      eventually(120, "children of " .. name .. " deleted", function()
        for _, c in ipairs(children) do
          if k:get(resource_of(c), c.metadata.namespace, c.metadata.name) then
            return nil, c.kind .. " " .. c.metadata.namespace .. "/" .. c.metadata.name
          end
        end
        return not k:get(CR_RESOURCE, ns, name), "the CR"
      end)
    end

    -- applies a fixture case live and compares the live children with its expectations
    local function live_case(file, keep)
      local case = load_case(file)
      for _, o in ipairs(case.observed or {}) do
        if o.kind == "InferencePool" or o.kind == "SimulatorDeployment" then k:apply(o) end
      end
      k:apply(case.input)
      local ex = case.expect or {}
      for _, want in ipairs(ex.children or {}) do
        local ns = want.metadata.namespace or case.input.metadata.namespace
        eventually(60, want.kind .. " " .. ns .. "/" .. want.metadata.name, function()
          local got = k:get(resource_of(want), ns, want.metadata.name)
          if not got then return nil, "absent; operator log:\n" .. operator_log_tail(op) end
          return subset(want, got, want.kind)
        end)
      end
      for _, a in ipairs(ex.absent or {}) do
        assert.is_nil(k:get(resource_of(a), a.namespace or case.input.metadata.namespace, a.name))
      end
      local rendered = render(case)
      if not keep then
        delete_and_wait(case, rendered)
        for _, o in ipairs(case.observed or {}) do
          if o.kind == "InferencePool" then k:run(("delete %s %s -n %s"):format(resource_of(o), o.metadata.name,
            o.metadata.namespace)) end
        end
      end
      return case, rendered
    end

    for _, f in ipairs({ "reference-sample.yaml", "reference-proxy-performance.yaml",
      "reference-proxy-performance-by-backend.yaml", "example-service.yaml", "example-inferencepool.yaml",
      "example-proxy-performance.yaml", "example-proxy-performance-by-backend.yaml" }) do
      it("produces the objects of " .. f .. " and removes them in both namespaces on delete", function()
        live_case(f)
      end)
    end

    it("switching backendType Service <-> InferencePool changes only the HTTPRoute and the grant", function()
      local case, rendered = live_case("example-service.yaml", true)
      local ns, name = case.input.metadata.namespace, case.input.metadata.name
      k:wait_condition(ns, name, "PoolResolved", { status = "True" })
      -- what the operator wrote: its hash annotation, and the generation (or, for kinds
      -- without one, the resourceVersion: no controller writes to those here)
      local function versions()
        local out = {}
        for _, c in ipairs(rendered) do
          local got = assert(k:get(resource_of(c), c.metadata.namespace, c.metadata.name))
          local md = got.metadata
          out[c.kind .. " " .. c.metadata.namespace .. "/" .. c.metadata.name] =
            tostring((md.annotations or {})["sim.llm-d.io/desired-hash"]) .. "@"
            .. tostring(md.generation or md.resourceVersion)
        end
        return out
      end
      sleep(3) -- let the first reconciles settle
      local before = versions()
      for _, bt in ipairs({ "InferencePool", "Service" }) do
        k:must(("patch %s %s -n %s --type=merge -p %s"):format(CR_RESOURCE, name, ns,
          q('{"spec":{"routing":{"backendType":"' .. bt .. '"}}}')))
        eventually(60, "route to " .. bt, function()
          local r = k:get("httproutes.gateway.networking.k8s.io", ns, "llm-d-inference-scheduling")
          local ref = r and r.spec.rules[1].backendRefs[1]
          local g = k:get("referencegrants.gateway.networking.k8s.io", SIM,
            "allow-" .. ns .. "-llm-d-inference-scheduling")
          return ref and ref.kind == bt and g and g.spec.to[1].kind == bt, ref and ref.kind
        end)
        sleep(3)
        local after = versions()
        for key, rv in pairs(before) do
          if not key:match("^HTTPRoute ") and not key:match("^ReferenceGrant ") then
            assert.equal(rv, after[key], key .. " was rewritten")
          end
        end
      end
      delete_and_wait(case, rendered)
    end)

    it("an inline spec.epp.config with an unknown plugin type is InvalidSpec; fixed, it is rendered; "
      .. "broken again, the ConfigMap stays", function()
      local case = load_case("epp-inline-config.yaml")
      local good = case.input
      local ns, name = good.metadata.namespace, good.metadata.name
      local cm_name = "gaie-inference-scheduling-epp-config"
      local want = case.expect.children[1].data["epp-config.yaml"]
      local bad = fake.deep_copy(good)
      table.insert(bad.spec.epp.config.plugins, 3, { type = "foo-scorer" })
      local message = 'spec.epp.config.plugins[2].type "foo-scorer" is not a plugin type of '
        .. "llm-d-inference-scheduler v0.4.0 (known: active-request-scorer"

      -- 1. the API server takes it (types are the EPP version's business), the reconciler refuses it
      k:apply(bad)
      k:wait_condition(ns, name, "Ready", { status = "False", reason = "InvalidSpec", message_contains = message })
      assert.is_nil(k:get("configmaps", ns, cm_name), "nothing is applied for an invalid spec")

      -- 2. fixed: the fragment is the EPP's config, as the fixture renders it
      k:apply(good)
      local cm = eventually(60, "ConfigMap " .. cm_name .. " with the inline config", function()
        local got = k:get("configmaps", ns, cm_name)
        if not got then return nil, "absent; operator log:\n" .. operator_log_tail(op) end
        return got.data["epp-config.yaml"] == want and got, got.data["epp-config.yaml"]
      end)
      local ready = eventually(60, "Ready no longer InvalidSpec", function()
        local c = k:condition(ns, name, "Ready")
        return c and c.reason ~= "InvalidSpec" and c, c and c.reason
      end)
      assert.is_not_equal("InvalidSpec", ready.reason)

      -- 3. broken again: InvalidSpec, and the running EPP keeps the ConfigMap it had
      k:apply(bad)
      k:wait_condition(ns, name, "Ready", { status = "False", reason = "InvalidSpec", message_contains = message })
      local after = assert(k:get("configmaps", ns, cm_name))
      assert.equal(want, after.data["epp-config.yaml"])
      assert.equal(cm.metadata.resourceVersion, after.metadata.resourceVersion, "the ConfigMap was rewritten")
      delete_and_wait(case, render(case))
    end)

    it("a misaligned pool port gives PortMismatch naming both ports", function()
      local case = load_case("pool-port-mismatch.yaml")
      for _, o in ipairs(case.observed) do k:apply(o) end
      k:apply(case.input)
      local ns, name = case.input.metadata.namespace, case.input.metadata.name
      k:wait_condition(ns, name, "PoolResolved", { status = "False", reason = "PortMismatch",
        message_contains = "targetPorts[0].number 8000 != decode serving port 8200 (spec.proxyService.targetPort)" })
      k:wait_condition(ns, name, "Ready", { status = "False", reason = "PortMismatch" })
      delete_and_wait(case, render(case))
      k:run("delete inferencepools.inference.networking.k8s.io gaie-inference-scheduling -n " .. SIM)
    end)

    it("RouteAccepted mirrors ResolvedRefs=False RefNotPermitted written by the gateway controller", function()
      local case, rendered = live_case("example-inferencepool.yaml", true)
      local ns, name = case.input.metadata.namespace, case.input.metadata.name
      local route = eventually(60, "HTTPRoute", function()
        return k:get("httproutes.gateway.networking.k8s.io", ns, "llm-d-inference-scheduling")
      end)
      local status = { status = { parents = { {
        parentRef = { group = "gateway.networking.k8s.io", kind = "Gateway",
          name = "infra-inference-scheduling-inference-gateway", namespace = ns },
        controllerName = "example.com/stand-in-gateway",
        conditions = {
          { type = "Accepted", status = "True", reason = "Accepted", message = "accepted",
            observedGeneration = route.metadata.generation, lastTransitionTime = "2026-01-01T00:00:00Z" },
          { type = "ResolvedRefs", status = "False", reason = "RefNotPermitted",
            message = "backendRef not permitted by any ReferenceGrant",
            observedGeneration = route.metadata.generation, lastTransitionTime = "2026-01-01T00:00:00Z" },
        },
      } } } }
      k:must(("patch httproutes.gateway.networking.k8s.io llm-d-inference-scheduling -n %s --subresource=status "
        .. "--type=merge -p %s"):format(ns, q(fake.json_encode(status))))
      k:wait_condition(ns, name, "RouteAccepted", { status = "False", reason = "RefNotPermitted",
        message_contains = "not permitted by any ReferenceGrant" })
      local ready = k:condition(ns, name, "Ready")
      assert.is_not_equal("True", ready.status)
      delete_and_wait(case, rendered)
    end)
  end)

  describe("on other control planes", function()
    if not operator_available() or not os.getenv("SCHEDSIM_CLUSTER_EXE") then
      pending("needs the operator binary's `run` and SCHEDSIM_CLUSTER_EXE")
      return
    end

    it("without the InferencePool CRDs: InferencePoolUnsupported, and the Service path still works", function()
      local c = start_cluster("gateway,istio")
      local k2 = kube(c.kubeconfig)
      local op2
      local ok, err = pcall(function()
        k2:install_crds()
        k2:namespaces({ SCHED, SIM })
        op2 = start_operator(c.kubeconfig)
        local case = load_case("inferencepool-unsupported.yaml")
        k2:apply(case.input)
        local ns, name = case.input.metadata.namespace, case.input.metadata.name
        k2:wait_condition(ns, name, "PoolResolved", { status = "False", reason = "InferencePoolUnsupported" })
        local r = eventually(60, "HTTPRoute to the proxy Service", function()
          local route = k2:get("httproutes.gateway.networking.k8s.io", ns, "llm-d-inference-scheduling")
          return route and route.spec.rules[1].backendRefs[1].kind == "Service" and route
        end)
        assert.equal("gaie-inference-scheduling-proxy", r.spec.rules[1].backendRefs[1].name)
        local svc = load_case("service-path-without-pool-crds.yaml").input
        svc.metadata.name = "sched-service-path"
        svc.spec.routing.httpRouteName = "service-path"
        svc.spec.proxyService = { name = "service-path-proxy" }
        svc.spec.gateway.enabled = false -- the first CR owns the Gateway
        -- a route of its own into the same simulator namespace: a ReferenceGrant of its own
        k2:apply(svc)
        eventually(60, "Service-path HTTPRoute", function()
          return k2:get("httproutes.gateway.networking.k8s.io", ns, "service-path")
        end)
        local c2 = k2:wait_condition(ns, "sched-service-path", "Degraded", { status = "False" })
        assert.equal("AsExpected", c2.reason)
      end)
      stop_operator(op2)
      stop_cluster(c)
      assert(ok, tostring(err) .. "\n" .. operator_log_tail(op2))
    end)

    it("with only inference.networking.x-k8s.io/v1alpha2 served the managed pool is v1alpha2", function()
      local c = start_cluster("gateway,inference-v1alpha2,istio")
      local k2 = kube(c.kubeconfig)
      local op2
      local ok, err = pcall(function()
        k2:install_crds()
        k2:namespaces({ SCHED, SIM })
        op2 = start_operator(c.kubeconfig)
        local case = load_case("v1alpha2-only-managed-pool.yaml")
        k2:apply(case.input)
        local pool = eventually(60, "v1alpha2 pool", function()
          return k2:get("inferencepools.inference.networking.x-k8s.io", SIM, "gaie-inference-scheduling")
        end)
        assert.equal(8200, pool.spec.targetPortNumber)
        local ns, name = case.input.metadata.namespace, case.input.metadata.name
        k2:wait_condition(ns, name, "PoolResolved", { status = "True" })
        local dep = eventually(60, "EPP Deployment", function()
          return k2:get("deployments.apps", ns, "gaie-inference-scheduling-epp")
        end)
        assert.truthy(table.concat(dep.spec.template.spec.containers[1].args, " ")
          :find("--pool-group inference.networking.x-k8s.io", 1, true))
      end)
      stop_operator(op2)
      stop_cluster(c)
      assert(ok, tostring(err) .. "\n" .. operator_log_tail(op2))
    end)
  end)
end)
