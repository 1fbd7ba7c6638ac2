-- End-to-end specs of SimulatorDeployment on the local control plane (spec/cluster,
-- kwok fake nodes): CRD validation with the real API server, then the operator
-- (started here: $SCHEDSIM_BIN run --scripts scripts) reconciling the examples
-- and the reference operator's sample CRs.
--
--   spec/cluster/run -- env SCHEDSIM_ROOT=$PWD SCHEDSIM_BIN=build/schedsim-operator \
--     LUA_PATH="spec/support/?.lua;spec/?.lua;scripts/?.lua;;" \
--     lua5.4 /usr/bin/busted spec/e2e/simulatordeployment_spec.lua
-- (cmake/run-spec does this for ctest). Without KUBECONFIG every test is pending;
-- when the operator binary cannot `run` yet, the operator tests are pending.
local fake = require("fake_k8s") -- YAML/JSON helpers (arrays stay arrays)
local cluster = require("cluster")

local root = cluster.root
local bin = cluster.bin
local fixtures = root .. "/scripts/simulatordeployment/fixtures"
local NS = "llm-d-sim"
local q, sh, kubectl, must, eventually = cluster.q, cluster.sh, cluster.kubectl, cluster.must, cluster.eventually

local function get(kind, name, ns)
  local ok, out = cluster.sh_stdout(string.format("kubectl get %s %s -n %s -o json", kind, name, ns or NS))
  if not ok then return nil, out end
  return fake.json_decode(out)
end

local function exists(kind, name, ns)
  return get(kind, name, ns) ~= nil
end

local function yaml_of(v) return fake.yaml_encode(v) end
local function example(name)
  return fake.yaml_load_file(root .. "/examples/simulatordeployment-" .. name .. ".yaml")[1]
end
local function fixture_input(file) return fake.case_input(fixtures .. "/" .. file) end

local function condition(cr, ctype)
  for _, c in ipairs(((cr or {}).status or {}).conditions or {}) do
    if c.type == ctype then return c end
  end
  return nil
end

--- Wait until the CR's Ready condition has `status` (and `reason`) for its current generation.
local function wait_condition(name, ctype, status, reason, timeout)
  return eventually(timeout or 90, name .. " " .. ctype .. "=" .. status, function()
    local cr = get("simulatordeployment", name)
    local c = condition(cr, ctype)
    local ok = c and c.status == status and (reason == nil or c.reason == reason)
      and (cr.status.observedGeneration == nil or cr.status.observedGeneration == cr.metadata.generation)
    return ok and cr, c and (c.status .. " " .. c.reason .. ": " .. c.message) or "no condition"
  end)
end

local function dry_run(cr)
  return kubectl("apply --dry-run=server -f -", yaml_of(cr))
end

-- The kinds a SimulatorDeployment may own, for "every child" listings.
local CHILD_KINDS = "deployments.apps,services,configmaps,serviceaccounts,roles.rbac.authorization.k8s.io,"
  .. "rolebindings.rbac.authorization.k8s.io"
local OPTIONAL_KINDS = { "destinationrules.networking.istio.io", "gateways.gateway.networking.k8s.io",
                         "httproutes.gateway.networking.k8s.io", "inferencepools.inference.networking.k8s.io" }

local function children_of(name)
  local sel = "sim.llm-d.io/owner=simulatordeployment." .. NS .. "." .. name
  local kinds = CHILD_KINDS
  for _, k in ipairs(OPTIONAL_KINDS) do
    if kubectl("get crd " .. k) then kinds = kinds .. "," .. k end
  end
  local out = must(string.format("get %s -n %s -l %s -o json", kinds, NS, sel))
  local list = fake.json_decode(out).items or {}
  local t = {}
  for _, o in ipairs(list) do t[o.kind .. "/" .. o.metadata.name] = o end
  return t, #list
end

describe("SimulatorDeployment e2e", function()
  if not cluster.available() then
    pending("needs the local control plane (spec/cluster/run -- …)")
    return
  end

  setup(function()
    must("apply --server-side --force-conflicts -f " .. q(root .. "/crds/sim.llm-d.io_simulatordeployments.yaml"))
    must("wait --for=condition=Established --timeout=60s crd/simulatordeployments.sim.llm-d.io")
    kubectl("create namespace " .. NS)
  end)

  describe("CRD validation (API server, dry run)", function()
    it("accepts every example and the reference operator's sample CRs unchanged", function()
      for _, ex in ipairs({ "minimal", "istio", "full" }) do
        local ok, out = dry_run(example(ex))
        assert(ok, ex .. ": " .. out)
      end
      for _, f in ipairs({ "reference-llm-sim-full.yaml", "reference-minimal-legacy.yaml",
                           "reference-istio-legacy.yaml" }) do
        local ok, out = dry_run(fixture_input(f))
        assert(ok, f .. ": " .. out)
      end
    end)

    it("applies the CRD defaults (upstream image, EPP port 9002)", function()
      local cr = { apiVersion = "sim.llm-d.io/v1alpha1", kind = "SimulatorDeployment",
                   metadata = { name = "defaults", namespace = NS },
                   spec = { decode = { enabled = true }, epp = { enabled = true } } }
      local ok, out = kubectl("apply --dry-run=server -o json -f -", yaml_of(cr))
      assert(ok, out)
      local got = fake.json_decode(out)
      assert.same("ghcr.io/llm-d/llm-d-inference-sim:v0.10.2", got.spec.image)
      assert.same(9002, got.spec.epp.port)
      assert.same(2, got.spec.decode.replicas)
      assert.same(8200, got.spec.decode.port)
    end)

    local bad = {
      { "replicas 0", { decode = { enabled = true, replicas = 0 } }, "spec.decode.replicas" },
      { "legacy replicas 0", { replicas = 0 }, "spec.replicas" },
      { "unknown algorithm", { loadBalancing = { enabled = true, algorithm = "FASTEST" } },
        "spec.loadBalancing.algorithm" },
      { "port 70000", { decode = { enabled = true, port = 70000 } }, "spec.decode.port" },
      { "service port 0", { service = { port = 0 } }, "spec.service.port" },
      { "contradicting --port (one element)", { decode = { enabled = true, port = 8200, args = { "--port 9000" } } },
        "spec.decode.args" },
      { "contradicting --port=", { prefill = { enabled = true, args = { "--port=9000" } } }, "spec.prefill.args" },
      { "contradicting --v (two elements)", { decode = { enabled = true, logVerbosity = 3, args = { "--v", "7" } } },
        "spec.decode.args" },
      { "EPP port on the metrics port", { epp = { enabled = true, port = 9089 } }, "spec.epp.port" },
      { "EPP --grpc-port contradicting", { epp = { enabled = true, port = 9002, args = { "--grpc-port=9100" } } },
        "spec.epp.args" },
      { "gateway port 19000", { inferenceGateway = { enabled = true, standard = { enabled = true, port = 19000 } } },
        "spec.inferenceGateway.standard.port" },
      { "Istio gateway name collision", { gateway = { enabled = true, className = "istio" },
          inferenceGateway = { enabled = true, istio = { enabled = true } } }, "spec.gateway.routeName" },
      { "unknown service type", { service = { type = "ExternalName" } }, "spec.service.type" },
      { "a Service name that is no DNS label", { service = { name = "Bad_Name" } }, "spec.service.name" },
      { "2147483647 decode replicas", { decode = { enabled = true, replicas = 2147483647 } }, "spec.decode.replicas" },
      { "11 EPP replicas", { epp = { enabled = true, replicas = 11 } }, "spec.epp.replicas" },
    }
    for _, case in ipairs(bad) do
      it("rejects " .. case[1] .. ", naming " .. case[3], function()
        local cr = { apiVersion = "sim.llm-d.io/v1alpha1", kind = "SimulatorDeployment",
                     metadata = { name = "bad", namespace = NS }, spec = case[2] }
        local ok, out = dry_run(cr)
        assert.is_false(ok, "accepted: " .. out)
        assert.matches(case[3], out, 1, true)
      end)
    end

    it("accepts every child the reconciler renders for the examples and reference CRs (dry run)", function()
      local ctl = require("controllers")[1]
      local inputs = { example("minimal"), example("istio"), example("full"),
                       fixture_input("reference-llm-sim-full.yaml"), fixture_input("reference-minimal-legacy.yaml"),
                       fixture_input("reference-istio-legacy.yaml") }
      for _, cr in ipairs(inputs) do
        local saved = _G.k8s
        fake.install()
        local rec = require("simulatordeployment.reconcile")
        local res = rec.reconcile(cr, fake.observed({}, ctl.owns), fake.ctx())
        _G.k8s = saved
        for _, child in ipairs(res.children) do
          local ok, out = kubectl("apply --dry-run=server -f -", fake.json_encode(child))
          assert(ok, cr.metadata.name .. ": " .. child.kind .. "/" .. child.metadata.name .. ": " .. out)
        end
      end
    end)

    it("prints Replicas, Ready, Status and Age columns (Gateway with -o wide)", function()
      must("apply -f -", yaml_of({ apiVersion = "sim.llm-d.io/v1alpha1", kind = "SimulatorDeployment",
                                   metadata = { name = "columns", namespace = NS },
                                   spec = { decode = { enabled = true } } }))
      local out = must("get simulatordeployments columns -n " .. NS)
      local wide = must("get simdep columns -o wide -n " .. NS)
      must("delete simulatordeployment columns -n " .. NS)
      assert.matches("NAME%s+REPLICAS%s+READY%s+STATUS%s+AGE", out)
      assert.matches("GATEWAY", wide)
    end)

    it("explains its fields", function()
      local out = must("explain simulatordeployment.spec.decode.args")
      assert.matches("contradicts", out)
    end)
  end)

  describe("with the operator", function()
    local proc
    local function skip_reason()
      local _, out = sh(q(bin) .. " run --help")
      if out:find("not implemented", 1, true) then return "operator `run` is not implemented yet" end
      return nil
    end

    setup(function()
      if skip_reason() then return end
      -- ephemeral ports: a fixed or random one can be taken by a concurrent spec
      proc = cluster.start_operator({ args = "--log-format json" })
    end)

    teardown(function()
      if proc then
        proc:stop()
        proc:keep_log("operator-simulatordeployment.log")
        proc:cleanup()
      end
    end)

    local function op_it(desc, fn)
      local reason = skip_reason()
      if reason then
        pending(desc .. " (" .. reason .. ")")
        return
      end
      it(desc, function()
        assert(proc and proc:alive(), "the operator is not running: " .. (proc and proc:stderr() or "not started"))
        fn()
      end)
    end

    local function apply(cr)
      must("apply -f -", yaml_of(cr))
    end

    local function delete_cr(name)
      kubectl("delete simulatordeployment " .. name .. " -n " .. NS .. " --wait=true --timeout=60s")
      eventually(60, "children of " .. name .. " deleted", function()
        local _, n = children_of(name)
        return n == 0, n .. " left"
      end)
    end

    op_it("minimal example reaches Ready=True with 2/2 replicas and owned, labelled children", function()
      local cr = example("minimal")
      apply(cr)
      local got = wait_condition(cr.metadata.name, "Ready", "True", "AllReplicasReady")
      assert.same(2, got.status.readyReplicas)
      assert.same(2, got.status.replicas)
      local dep = get("deployment", "ms-sim-llm-d-modelservice-decode")
      assert.same("schedsim-operator", dep.metadata.labels["app.kubernetes.io/managed-by"])
      assert.same("simulatordeployment." .. NS .. ".sim-minimal", dep.metadata.labels["sim.llm-d.io/owner"])
      assert.same("SimulatorDeployment", dep.metadata.ownerReferences[1].kind)
      assert.same(got.metadata.uid, dep.metadata.ownerReferences[1].uid)
      local c = dep.spec.template.spec.containers[1]
      assert.same({ "--model", "random", "--mode", "random", "--v", "5", "--port", "8200" }, c.args)
      assert.same("/health/ready", c.readinessProbe.httpGet.path)
      assert.same("/health", c.livenessProbe.httpGet.path)
      assert.same(8200, c.ports[1].containerPort)
      local svc = get("service", "ms-sim-llm-d-modelservice-decode")
      assert.same(8200, svc.spec.ports[1].targetPort)
      assert.same("decode", svc.spec.selector["llm-d.ai/role"])
      assert.same("SimulatorDeployment", svc.metadata.ownerReferences[1].kind)
      delete_cr(cr.metadata.name)
    end)

    op_it("full example: prefill + decode + EPP + gateway reach Ready with 5/5 and consistent ports", function()
      local cr = example("full")
      apply(cr)
      local got = wait_condition(cr.metadata.name, "Ready", "True", "AllReplicasReady", 120)
      assert.same(5, got.status.readyReplicas)
      assert.same("http://infra-sim-inference-gateway." .. NS .. ".svc.cluster.local:8080", got.status.gatewayURL)
      local kids = children_of(cr.metadata.name)
      for _, k in ipairs({ "Deployment/ms-sim-llm-d-modelservice-prefill",
                           "Service/ms-sim-llm-d-modelservice-prefill",
                           "Deployment/ms-sim-llm-d-modelservice-decode", "Service/ms-sim-llm-d-modelservice-decode",
                           "ServiceAccount/gaie-sim-epp", "Role/gaie-sim-epp", "RoleBinding/gaie-sim-epp",
                           "ConfigMap/gaie-sim-epp", "Deployment/gaie-sim-epp", "Service/gaie-sim-epp",
                           "ConfigMap/infra-sim-inference-gateway", "Deployment/infra-sim-inference-gateway",
                           "Service/infra-sim-inference-gateway" }) do
        assert.is_table(kids[k], k .. " missing")
        assert.same(got.metadata.uid, kids[k].metadata.ownerReferences[1].uid, k)
      end
      local epp = kids["Deployment/gaie-sim-epp"].spec.template.spec.containers[1]
      local svc = kids["Service/gaie-sim-epp"]
      assert.same(epp.ports[1].containerPort, svc.spec.ports[1].targetPort)
      assert.same(9002, svc.spec.ports[1].targetPort)

      -- scaling decode changes only that Deployment
      local before = {}
      for k, o in pairs(kids) do before[k] = (o.metadata.annotations or {})["sim.llm-d.io/desired-hash"] end
      must("patch simulatordeployment sim-full -n " .. NS
        .. " --type merge -p '{\"spec\":{\"decode\":{\"replicas\":4}}}'")
      got = wait_condition("sim-full", "Ready", "True", "AllReplicasReady", 120)
      assert.same(6, got.status.readyReplicas)
      local after = children_of("sim-full")
      for k, o in pairs(after) do
        local h = (o.metadata.annotations or {})["sim.llm-d.io/desired-hash"]
        if k == "Deployment/ms-sim-llm-d-modelservice-decode" then
          assert.are_not.same(before[k], h)
          assert.same(4, o.spec.replicas)
        else
          assert.same(before[k], h, k .. " was rewritten")
        end
      end

      -- disabling prefill prunes its Deployment and Service
      must("patch simulatordeployment sim-full -n " .. NS
        .. " --type merge -p '{\"spec\":{\"prefill\":{\"enabled\":false}}}'")
      eventually(60, "prefill pruned", function()
        return not exists("deployment", "ms-sim-llm-d-modelservice-prefill")
          and not exists("service", "ms-sim-llm-d-modelservice-prefill")
      end)
      got = wait_condition("sim-full", "Ready", "True", nil, 120)
      assert.same(4, got.status.readyReplicas)

      -- deleting the CR removes every child
      delete_cr("sim-full")
    end)

    op_it("Istio example reaches Ready with a DestinationRule and a Gateway API route", function()
      local cr = example("istio")
      apply(cr)
      local got = wait_condition(cr.metadata.name, "Ready", "True", nil, 120)
      assert.same(3, got.status.readyReplicas)
      local dr = get("destinationrule.networking.istio.io", "ms-sim-llm-d-modelservice-decode-lb")
      assert.same("LEAST_REQUEST", dr.spec.trafficPolicy.loadBalancer.simple)
      assert.same("ms-sim-llm-d-modelservice-decode." .. NS .. ".svc.cluster.local", dr.spec.host)
      local route = get("httproute.gateway.networking.k8s.io", "sim-istio-gateway")
      assert.same("ms-sim-llm-d-modelservice-decode", route.spec.rules[1].backendRefs[1].name)
      delete_cr(cr.metadata.name)
    end)

    op_it("the reference operator's sample CRs apply unchanged and reconcile", function()
      for _, f in ipairs({ "reference-minimal-legacy.yaml", "reference-istio-legacy.yaml",
                           "reference-llm-sim-full.yaml" }) do
        local cr = fixture_input(f)
        apply(cr)
        local got = wait_condition(cr.metadata.name, "Ready", "True", nil, 120)
        assert.is_true(got.status.readyReplicas >= 2, f)
        delete_cr(cr.metadata.name)
      end
    end)

    op_it("a contradicting arg the CRD cannot see is InvalidSpec and leaves the running Deployment alone", function()
      local cr = example("minimal")
      apply(cr)
      wait_condition(cr.metadata.name, "Ready", "True")
      local gen = get("deployment", "ms-sim-llm-d-modelservice-decode").metadata.generation
      cr.spec.decode.args = { "-v", "9" } -- single-dash form: not caught by CEL, caught by the reconciler
      apply(cr)
      local got = wait_condition(cr.metadata.name, "Ready", "False", "InvalidSpec")
      assert.matches("spec.decode.args", condition(got, "Ready").message, 1, true)
      assert.same(gen, get("deployment", "ms-sim-llm-d-modelservice-decode").metadata.generation)
      delete_cr(cr.metadata.name)
    end)

    op_it("without the Istio CRDs, loadBalancing gives Degraded IstioNotInstalled and the rest works", function()
      must("delete crd destinationrules.networking.istio.io --wait=true")
      finally(function()
        cluster.ctl("install-crds istio")
      end)
      local cr = example("istio")
      apply(cr)
      local got = wait_condition(cr.metadata.name, "Degraded", "True", "IstioNotInstalled", 120)
      eventually(90, "decode ready", function()
        got = get("simulatordeployment", cr.metadata.name)
        return got.status.readyReplicas == 3, got.status.readyReplicas
      end)
      assert.is_true(exists("deployment", "ms-sim-llm-d-modelservice-decode"))
      assert.is_true(exists("httproute.gateway.networking.k8s.io", "sim-istio-gateway"))
      assert.matches("spec.loadBalancing.enabled", condition(got, "Degraded").message, 1, true)
      delete_cr(cr.metadata.name)
    end)
  end)
end)
