-- Convergence and honest status end to end (doc/trouble-shooting.md, "Drift";
-- doc/architecture.md, the ordered writes), with the operator under its
-- shipped RBAC (deploy/dev) and the examples' namespaces and grants:
--   * drift comes back: a child Deployment scaled by hand or given another
--     image, the EPP ConfigMap's data replaced, another field manager's
--     EnvoyFilter applied over ours — each restored within seconds; `diff`
--     shows drift while the operator is stopped; then a minute of resyncs
--     makes zero writes;
--   * a namespace that does not exist is Ready=False TargetNamespaceNotFound,
--     never Ready=True;
--   * writes are ordered: a new SchedulerInstall with an EPP logs no failed
--     write (its RoleBinding follows its Role); when the cleanup finalizer
--     cannot be added, no child outside the CR's namespace is written;
--   * a child whose owner CR is gone (a lost finalizer) is swept;
--   * CRDs installed after the operator started are used without touching
--     the CR;
--   * of two CRs that want the same children, one gets all of them and the
--     other none, with Conflict naming the owner.
--
--   cmake/run-spec build spec/e2e/convergence_spec.lua      (starts a cluster)
local cluster = require("cluster")

local ROOT = cluster.root
local SCHED, SIM = "llm-d-inference-scheduler", "llm-d-sim"
local EPP = "gaie-inference-scheduling-epp"
local WRITES = { create = true, update = true, patch = true, delete = true }

local function need_cluster() return cluster.need(pending) end

local function condition(obj, t)
  for _, c in ipairs(((obj or {}).status or {}).conditions or {}) do
    if c.type == t then return c end
  end
end

local function utc_now()
  local _, out = cluster.sh_stdout("date -u +%Y-%m-%dT%H:%M:%S.%6NZ")
  return (out:gsub("%s+$", ""))
end

local function operator_writes(since, pred)
  return cluster.audit(function(e)
    return (e.user or {}).username == "operator" and WRITES[e.verb] and e.stage == "ResponseComplete" and
      (e.requestReceivedTimestamp or "") >= since and (not pred or pred(e))
  end)
end

local function example(name)
  return cluster.decode(cluster.must("create --dry-run=client -o json -f " ..
    cluster.q(ROOT .. "/examples/" .. name)))
end

describe("convergence (e2e)", function()
  local op

  local function start_operator()
    op = cluster.start_operator({ kubeconfig = true, args = "--sync-period 5s -v 1", wait = false })
    cluster.eventually(60, "the workers to start", function() return op:log_find("starting workers") end)
  end

  local function stop_operator()
    if op then
      op:stop(15)
      if os.getenv("SCHEDSIM_E2E_VERBOSE") then io.stderr:write(op:stderr()) end
      op:cleanup()
      op = nil
    end
  end

  local function ready(kind, ns, name, timeout)
    return cluster.eventually(timeout or 90, kind .. " " .. name .. " reconciled", function()
      local obj = cluster.get(kind, name, ns)
      local st = obj and obj.status or {}
      return st.observedGeneration == (obj and obj.metadata.generation) and obj, st
    end)
  end

  setup(function()
    if not cluster.available() then return end
    cluster.must("apply --server-side --force-conflicts -k " .. cluster.q(ROOT .. "/deploy/dev"))
    cluster.must("wait --for condition=established --timeout=60s crd/schedulerinstalls.sim.llm-d.io " ..
      "crd/simulatordeployments.sim.llm-d.io")
    cluster.must("apply -f " .. cluster.q(ROOT .. "/examples/namespaces.yaml"))
    start_operator()
  end)

  teardown(function()
    if not cluster.available() then return end
    stop_operator()
  end)

  describe("writes are ordered", function()
    it("a new SchedulerInstall with an EPP logs no failed write", function()
      if not need_cluster() then return end
      cluster.must("apply -f " .. cluster.q(ROOT .. "/examples/simulatordeployment-full.yaml"))
      cluster.must("apply -f " .. cluster.q(ROOT .. "/examples/schedulerinstall-service.yaml"))
      ready("schedinst", SCHED, "sched-service")
      cluster.eventually(60, "the EPP RoleBinding", function()
        return cluster.get("rolebinding", EPP, SIM)
      end)
      assert.same({}, op:log("write failed"))
    end)
  end)

  describe("one write per change", function()
    it("a new SimulatorDeployment: every status write a change, none before its children exist, "
      .. "the echoes of its own writes not reconciled", function()
      if not need_cluster() then return end
      local name = "sim-one-write"
      local ns = cluster.namespace("one-write") -- the examples' simulators hold llm-d-sim's names
      local port = assert(op:log_find("starting manager"), "manager line").metricsPort
      local function echoes()
        local _, body = cluster.sh_stdout("curl -sf --max-time 10 http://127.0.0.1:" .. port .. "/metrics")
        return tonumber(body:match('schedsim_status_echoes_skipped_total{controller="simulatordeployment"} (%d+)'))
      end
      local before = assert(echoes(), "the echo counter is exposed")
      -- a list watch of the (fresh) namespace: a watch of one name fails while it does not exist
      local watch = cluster.spawn("kubectl get simdep -n " .. ns .. " -w -o jsonpath="
        .. cluster.q('{.metadata.resourceVersion}{" "}{.status}{"\\n"}'))
      cluster.eventually(30, "the watch to start", function() return watch:alive() end)
      local since = utc_now()
      cluster.must("apply -f -", ([[
apiVersion: sim.llm-d.io/v1alpha1
kind: SimulatorDeployment
metadata: {name: %s, namespace: %s}
spec:
  decode: {enabled: true, replicas: 1}
]]):format(name, ns))
      local ok, err = pcall(function()
        cluster.eventually(90, name .. " Ready", function()
          local c = condition(cluster.get("simdep", name, ns), "Ready")
          return c and c.status == "True"
        end)
        -- the watch and the audit log lag the writes by different amounts: compare once both
        -- show Ready (a write that changed nothing would never be matched by a watch event)
        local statuses, writes = {}, {}
        local function seen()
          statuses = {}
          local previous
          for _, l in ipairs(watch:lines()) do
            local st = l:match("^%d+ (.*)$")
            if st and st ~= "" and st ~= previous then statuses[#statuses + 1] = st end
            previous = st
          end
          writes = operator_writes(since, function(e)
            local o = e.objectRef or {}
            return o.resource == "simulatordeployments" and o.subresource == "status" and o.name == name
          end)
          local last = statuses[#statuses] or ""
          return last:find('"status":"True","type":"Ready"', 1, true) and #statuses == #writes,
            ("%d status changes watched, %d status writes audited"):format(#statuses, #writes)
        end
        cluster.eventually(30, "one status write per status change the watch saw", seen)
        for _, st in ipairs(statuses) do
          assert.falsy(st:find("not created yet", 1, true), "a status written before its children: " .. st)
        end
        assert.is_true(echoes() > before, "the echoes of its status writes were not reconciled")
      end)
      watch:stop(5)
      watch:cleanup()
      cluster.kubectl("delete namespace " .. ns .. " --wait=false")
      assert(ok, err)
    end)
  end)

  describe("drift comes back", function()
    local function wait_restored(what, fn)
      return cluster.eventually(30, what .. " restored", fn)
    end

    it("a Deployment scaled by hand", function()
      if not need_cluster() then return end
      cluster.must("scale deployment " .. EPP .. " -n " .. SCHED .. " --replicas=7")
      wait_restored("replicas", function()
        local d = cluster.get("deployment", EPP, SCHED)
        return d and d.spec.replicas == 1, d and d.spec.replicas
      end)
    end)

    it("a Deployment given another image", function()
      if not need_cluster() then return end
      local want = cluster.get("deployment", EPP, SCHED).spec.template.spec.containers[1].image
      cluster.must("set image deployment/" .. EPP .. " -n " .. SCHED .. " epp=evil:latest")
      wait_restored("the image", function()
        local d = cluster.get("deployment", EPP, SCHED)
        local image = d and d.spec.template.spec.containers[1].image
        return image == want, image
      end)
    end)

    it("the EPP ConfigMap's data replaced", function()
      if not need_cluster() then return end
      local cm = EPP .. "-config"
      local want = cluster.get("configmap", cm, SCHED).data["epp-config.yaml"]
      cluster.must("patch configmap " .. cm .. " -n " .. SCHED ..
        [[ --type json -p '[{"op":"replace","path":"/data","value":{"garbage":"true"}}]']])
      wait_restored("epp-config.yaml", function()
        local c = cluster.get("configmap", cm, SCHED)
        return c and c.data["epp-config.yaml"] == want
      end)
    end)

    it("another field manager's EnvoyFilter applied over ours", function()
      if not need_cluster() then return end
      local si = example("schedulerinstall-service.yaml")
      si.spec.envoyFilter = { enabled = true }
      cluster.apply(si)
      local ef = cluster.eventually(60, "the EnvoyFilter", function()
        return cluster.get("envoyfilter", "epp-ext-proc", SCHED)
      end)
      local want = cluster.json.encode(ef.spec.configPatches)
      cluster.must("apply --server-side --force-conflicts --field-manager=intruder -f -", cluster.json.encode({
        apiVersion = "networking.istio.io/v1alpha3", kind = "EnvoyFilter",
        metadata = { name = "epp-ext-proc", namespace = SCHED },
        spec = { configPatches = { { applyTo = "CLUSTER", patch = { operation = "ADD",
          value = { name = "hijack" } } } } } }))
      wait_restored("the configPatches", function()
        local e = cluster.get("envoyfilter", "epp-ext-proc", SCHED)
        return e and cluster.json.encode(e.spec.configPatches) == want
      end)
    end)

    it("diff shows drift while the operator is stopped", function()
      if not need_cluster() then return end
      stop_operator()
      cluster.must("scale deployment " .. EPP .. " -n " .. SCHED .. " --replicas=5")
      local ok, out, code = cluster.sh(cluster.q(cluster.bin) .. " diff --scripts " .. cluster.q(ROOT .. "/scripts") ..
        " -f " .. cluster.q(ROOT .. "/examples/schedulerinstall-service.yaml"))
      start_operator()
      assert.is_false(ok, out)
      assert.equals(1, code, out)
      assert.matches("replicas", out, 1, true)
      cluster.eventually(30, "replicas restored", function()
        return cluster.get("deployment", EPP, SCHED).spec.replicas == 1
      end)
    end)

    it("then a minute of resyncs writes nothing", function()
      if not need_cluster() then return end
      cluster.sleep(10) -- settle
      local since = utc_now()
      cluster.sleep(60)
      local list = {}
      for _, e in ipairs(operator_writes(since)) do list[#list + 1] = e.verb .. " " .. (e.requestURI or "") end
      assert.same({}, list)
      assert.is_true(#op:log("reconciled") > 20, "resyncs reconciled")
    end)
  end)

  describe("honest status", function()
    it("a simulator namespace that does not exist: Ready=False TargetNamespaceNotFound", function()
      if not need_cluster() then return end
      local si = example("schedulerinstall-service.yaml")
      si.metadata.name = "nowhere"
      si.spec.simulatorNamespace = "no-such-namespace"
      si.spec.gateway.name, si.spec.routing.httpRouteName = "gw-nowhere", "route-nowhere"
      si.spec.epp.name = "epp-nowhere"
      cluster.apply(si)
      local c = cluster.eventually(60, "Ready=False TargetNamespaceNotFound", function()
        local r = condition(cluster.get("schedinst", "nowhere", SCHED), "Ready")
        return r and r.reason == "TargetNamespaceNotFound" and r, r
      end)
      assert.equals("False", c.status)
      assert.matches("namespace no-such-namespace does not exist", c.message, 1, true)
      cluster.sleep(6) -- a resync later it still says so
      assert.equals("TargetNamespaceNotFound", condition(cluster.get("schedinst", "nowhere", SCHED), "Ready").reason)
      cluster.must("delete schedinst nowhere -n " .. SCHED)
    end)

    it("no child outside the CR's namespace is written when the finalizer cannot be added", function()
      if not need_cluster() then return end
      -- take `patch` on the CRs away from the operator: the finalizer apply fails (403)
      local role = cluster.decode(cluster.must("get clusterrole schedsim-operator -o json"))
      local saved = cluster.json.encode(role.rules)
      for _, r in ipairs(role.rules) do
        if r.resources[1] == "simulatordeployments" then r.verbs = { "list", "watch" } end
      end
      cluster.must("patch clusterrole schedsim-operator --type merge -p " ..
        cluster.q(cluster.json.encode({ rules = role.rules })))
      finally(function()
        cluster.must("patch clusterrole schedsim-operator --type merge -p " ..
          cluster.q('{"rules":' .. saved .. "}"))
      end)
      cluster.must("create namespace fin-sched")
      cluster.grant(SIM, "fin-sched")
      local si = example("schedulerinstall-service.yaml")
      si.metadata.namespace, si.metadata.name = "fin-sched", "fin"
      si.spec.schedulerNamespace = "fin-sched"
      si.spec.proxyService.name = "fin-proxy"
      si.spec.epp.enabled = false
      si.spec.gateway.enabled = false
      si.spec.routing.enabled = false
      si.spec.destinationRule.enabled = false
      cluster.apply(si)
      local c = cluster.eventually(60, "Ready=False WriteForbidden naming the finalizer", function()
        local r = condition(cluster.get("schedinst", "fin", "fin-sched"), "Ready")
        return r and r.reason == "WriteForbidden" and r, r
      end)
      assert.matches("add finalizer", c.message, 1, true)
      assert.is_nil(cluster.get("service", "fin-proxy", SIM), "a child in another namespace was written")
      cluster.must("patch clusterrole schedsim-operator --type merge -p " ..
        cluster.q('{"rules":' .. saved .. "}"))
      cluster.eventually(60, "the proxy Service once the finalizer could be added", function()
        return cluster.get("service", "fin-proxy", SIM)
      end)
      local obj = cluster.get("schedinst", "fin", "fin-sched")
      assert.same({ "sim.llm-d.io/cleanup" }, obj.metadata.finalizers)
      cluster.must("delete schedinst fin -n fin-sched")
      assert.is_nil(cluster.get("service", "fin-proxy", SIM))
    end)

    it("a child whose owner CR is gone is swept; one another kind controls is left alone", function()
      if not need_cluster() then return end
      local labels = { ["app.kubernetes.io/managed-by"] = "schedsim-operator",
        ["sim.llm-d.io/owner"] = "schedulerinstall." .. SCHED .. ".ghost" }
      -- controlled by a ConfigMap (any kind not ours): someone else's object wearing our labels
      cluster.apply({ apiVersion = "v1", kind = "ConfigMap", metadata = { name = "holder", namespace = SIM },
        data = { a = "b" } })
      local holder = assert(cluster.get("configmap", "holder", SIM))
      cluster.apply({ apiVersion = "v1", kind = "ConfigMap", metadata = { name = "foreign", namespace = SIM,
        labels = labels, ownerReferences = { { apiVersion = "v1", kind = "ConfigMap", name = "holder",
          uid = holder.metadata.uid, controller = true } } }, data = { a = "b" } })
      cluster.apply({ apiVersion = "v1", kind = "ConfigMap", metadata = { name = "leftover", namespace = SIM,
        labels = labels }, data = { a = "b" } })
      cluster.eventually(30, "the orphan deleted", function()
        return not cluster.get("configmap", "leftover", SIM)
      end)
      assert.is_not_nil(cluster.get("service", "gaie-inference-scheduling-proxy", SIM), "a live CR's child stays")
      -- the sweep that deleted the orphan saw it (one sweep covers every ConfigMap of ours)
      assert.is_not_nil(cluster.get("configmap", "foreign", SIM), "another controller's object stays")
      cluster.kubectl("delete configmap holder foreign -n " .. SIM)
    end)
  end)

  describe("one clean winner", function()
    it("of two CRs that want the same children, one gets all and the other none", function()
      if not need_cluster() then return end
      cluster.must("create namespace twins")
      local function twin(name)
        return { apiVersion = "sim.llm-d.io/v1alpha1", kind = "SimulatorDeployment",
          metadata = { name = name, namespace = "twins" },
          spec = { decode = { enabled = true, replicas = 1 }, prefill = { enabled = true, replicas = 1 } } }
      end
      cluster.must("apply -f -", cluster.json.encode({ apiVersion = "v1", kind = "List",
        items = { twin("left"), twin("right") } }))
      local winner, loser
      cluster.eventually(90, "one Ready=False Conflict", function()
        for _, pair in ipairs({ { "left", "right" }, { "right", "left" } }) do
          local c = condition(cluster.get("simdep", pair[2], "twins"), "Ready")
          if c and c.reason == "Conflict" then winner, loser = pair[1], pair[2] return true end
        end
      end)
      local c = condition(cluster.get("simdep", loser, "twins"), "Ready")
      assert.matches("owned by simulatordeployment.twins." .. winner, c.message, 1, true)
      local ok, out = cluster.sh_stdout("kubectl get deploy,svc -n twins -o json")
      assert.is_true(ok)
      local items = cluster.decode(out).items
      assert.is_true(#items >= 4, "the winner's children")
      for _, o in ipairs(items) do
        assert.equals("simulatordeployment.twins." .. winner, o.metadata.labels["sim.llm-d.io/owner"],
          o.kind .. " " .. o.metadata.name .. " belongs to the loser")
      end
    end)
  end)

  describe("discovery", function()
    it("an InferencePool CRD installed after start is used without touching the CR", function()
      if not need_cluster() then return end
      stop_operator()
      cluster.must("delete crd inferencepools.inference.networking.k8s.io inferencepools.inference.networking.x-k8s.io")
      start_operator()
      cluster.must("create namespace late")
      cluster.grant(SIM, "late")
      local si = example("schedulerinstall-service.yaml")
      si.metadata.namespace, si.metadata.name = "late", "late"
      si.spec.schedulerNamespace = "late"
      si.spec.proxyService.name = "late-proxy"
      si.spec.epp.name = "late-epp"
      si.spec.epp.poolName = "late-pool"
      si.spec.routing.inferencePool.name = "late-pool"
      si.spec.gateway.enabled = false
      si.spec.routing.httpRouteName = "late-route"
      cluster.apply(si)
      ready("schedinst", "late", "late")
      assert.is_nil(cluster.get("service", "late-epp", SIM), "no pool yet, so no EPP alias Service")
      local installed, out = cluster.sh(cluster.q(os.getenv("SCHEDSIM_CLUSTER_CTL")) .. " install-crds inference-v1")
      assert(installed, out)
      cluster.eventually(90, "the managed InferencePool", function()
        local ok = cluster.sh("kubectl get inferencepools.inference.networking.k8s.io late-pool -n " .. SIM)
        return ok
      end)
      -- noticed through the CRD watch, not the poll (deploy/rbac grants it)
      assert.is_truthy(op:log_find("CRDs changed; refreshing discovery"),
        "discovery was not refreshed by the CRD watch")
      assert.is_nil(op:log_find("cannot watch CustomResourceDefinitions; discovery polls instead"))
    end)
  end)
end)
