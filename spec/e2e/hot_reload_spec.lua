-- Hot reload of the script set from a ConfigMap (runtime/lua/reload.c,
-- doc/hot-reload.md), end to end on the local control plane with the bundled
-- scripts and one operator process for the whole file (same PID throughout):
--   * both examples/scripts-configmap-*.yaml (a policy.lua overlay each) pass
--     the check when overlaid
--     (production engine in process, k8sengine; no cluster needed);
--   * a scorer weight edited in the ConfigMap updates the EPP ConfigMap and
--     rolls the EPP Deployment (config hash in the pod template) within
--     seconds; status.scriptRevision is the overlaid set's revision;
--   * the routing example sends a route behind another gateway class to the
--     proxy Service (PoolResolved=False GatewayClassNotAllowed);
--   * a syntax error, a runtime error at load, an infinite loop at load and a
--     require of a missing module are each refused: a Warning Event on the
--     ConfigMap names file and line, schedsim_script_reloads_total{result=
--     "refused"} counts it, /readyz stays 200, the children are untouched;
--   * a change of the controllers' kinds (controllers.lua) is refused;
--   * a set that fails at reconcile time for one CR fails only that CR;
--   * 100 CRs all carry the new revision after a change (timings printed);
--   * deleting the ConfigMap restores the bundled behaviour.
--
--   cmake/run-spec build spec/e2e/hot_reload_spec.lua      (starts a cluster)
local cluster = require("cluster")

local ROOT = cluster.root
local SCRIPTS = ROOT .. "/scripts"
local CM = "schedsim-scripts"
local POLICY_KEY = "policy.lua"
local SIMDEP_KEY = "simulatordeployment.reconcile.lua"
local EPP = "gaie-inference-scheduling-epp"
local N = 100

local function need_cluster() return cluster.need(pending) end

local read = cluster.read_file

--- The data of an example ConfigMap (examples/scripts-configmap-*.yaml).
local function example_data(name)
  local docs = assert(require("k8srt").yaml.load(read(ROOT .. "/examples/" .. name)))
  return docs[1].data
end

--- src with `text` inserted after line n (so `text` is line n + 1).
local function insert_after(src, n, text)
  local out, i = {}, 0
  for line in (src .. (src:sub(-1) == "\n" and "" or "\n")):gmatch("(.-)\n") do
    i = i + 1
    out[#out + 1] = line
    if i == n then out[#out + 1] = text end
  end
  return table.concat(out, "\n") .. "\n"
end

--- Line number of the first line of src containing `plain`.
local function line_of(src, plain)
  local i = 0
  for line in src:gmatch("([^\n]*)\n?") do
    i = i + 1
    if line:find(plain, 1, true) then return i end
  end
  error("not found: " .. plain)
end

--- The revision (and check outcome) of the bundled set overlaid with data.
local function checked_revision(data)
  local eng = require("k8sengine").load(SCRIPTS, { overlay = data, origin = "configmap" })
  local ok, msgs, ncases = eng:check()
  local rev = eng:revision()
  eng:close()
  return rev, ok, msgs, ncases
end

--- "2026-01-02T03:04:05.678901Z" -> seconds since the epoch (UTC).
local function epoch(ts)
  local y, mo, d, h, mi, s = ts:match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):([%d.]+)Z$")
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  if mo <= 2 then y, mo = y - 1, mo + 12 end -- days from civil (Howard Hinnant)
  local era = y // 400
  local yoe = y - era * 400
  local doy = (153 * (mo - 3) + 2) // 5 + d - 1
  local days = era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
  return days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(s)
end

--- A SimulatorDeployment whose children are named after it (legacy single
--- Deployment ms-sim-<name>-decode and Service <name>-proxy), so many of them
--- share a namespace without conflicts.
local function simdep(ns, name)
  return { apiVersion = "sim.llm-d.io/v1alpha1", kind = "SimulatorDeployment",
    metadata = { name = name, namespace = ns }, spec = { replicas = 1, service = { name = name .. "-proxy" } } }
end

local function report(fmt, ...)
  io.stderr:write(("hot_reload: " .. fmt .. "\n"):format(...))
end

describe("hot reload (e2e)", function()
  local op, start_time, ports = nil, nil, {}
  local sys, a, a_sim, b, b_sim, many, boom
  local bundled = checked_revision(nil)
  local revs = {}

  local function metric(name, label)
    local _, body = cluster.sh_stdout("curl -s --max-time 10 http://127.0.0.1:" .. ports.metrics .. "/metrics")
    for line in body:gmatch("[^\n]+") do
      local l, v = line:match("^" .. name:gsub("_", "%%_") .. "(%S*) (%S+)$")
      if l and (not label or l:find(label, 1, true)) then return tonumber(v) end
    end
    return 0
  end

  local function readyz()
    local _, out = cluster.sh_stdout("curl -s --max-time 10 -o /dev/null -w '%{http_code}' http://127.0.0.1:" ..
      ports.health .. "/readyz")
    return out
  end

  --- CPU seconds the operator used so far (utime + stime, 100 ticks a second).
  local function op_cpu()
    local f = assert(io.open("/proc/" .. op.pid .. "/stat"))
    local u, st = f:read("a"):match("^%d+ %b() %S+" .. (" %S+"):rep(10) .. " (%d+) (%d+)")
    f:close()
    return (tonumber(u) + tonumber(st)) / 100
  end

  local function same_process()
    local f = io.open("/proc/" .. op.pid .. "/stat")
    local st = f and f:read("a")
    if f then f:close() end
    return st ~= nil and st:match("^%d+ %b() %S+" .. (" %S+"):rep(18) .. " (%d+)") == start_time
  end

  --- Server-side applies the scripts ConfigMap with exactly these keys.
  local function set_scripts(data)
    cluster.must("apply --server-side --force-conflicts --field-manager=spec -f -", cluster.json.encode({
      apiVersion = "v1", kind = "ConfigMap", metadata = { name = CM, namespace = sys }, data = data }))
  end

  local function condition(obj, type_)
    for _, c in ipairs(((obj or {}).status or {}).conditions or {}) do
      if c.type == type_ then return c end
    end
    return nil
  end

  --- Audit log: the latest `field` (a timestamp) of the requests by `user`
  --- with `verb` on the object resource/ns/name, as seconds since the epoch (0: none).
  local function audit_time(user, verb, resource, ns, name, field)
    local t = 0
    for _, e in ipairs(cluster.audit(function(e)
      local o = e.objectRef or {}
      return (e.user or {}).username == user and e.verb == verb and e.stage == "ResponseComplete" and
        o.resource == resource and o.namespace == ns and o.name == name and o.subresource == nil
    end)) do
      local v = epoch(e[field])
      if v > t then t = v end
    end
    return t
  end

  local function revision_of(kind, ns, name)
    local obj = cluster.get(kind, name, ns)
    return obj and obj.status and obj.status.scriptRevision
  end

  local function wait_revision(kind, ns, name, rev, timeout)
    return cluster.eventually(timeout or 30, kind .. " " .. name .. " at " .. rev, function()
      local got = revision_of(kind, ns, name)
      return got == rev, got
    end)
  end

  --- The EPP's config text and pod-template hash in namespace ns.
  local function epp_state(ns)
    local cm = cluster.get("configmap", EPP .. "-config", ns)
    local dep = cluster.get("deployment", EPP, ns)
    if not cm or not dep then return nil end
    return { config = cm.data["epp-config.yaml"], cm_rv = cm.metadata.resourceVersion,
      hash = dep.spec.template.metadata.annotations["sim.llm-d.io/config-hash"],
      generation = dep.metadata.generation, dep_rv = dep.metadata.resourceVersion, dep = dep }
  end

  local function load_aware_weight(config)
    return tonumber((config or ""):match("pluginRef: load%-aware%-scorer%s+weight: (%d+)"))
  end

  local function route_backend()
    local route = cluster.get("httproute.gateway.networking.k8s.io", "llm-d-inference-scheduling", b)
    local ref = route and route.spec.rules[1].backendRefs[1]
    return ref and ref.kind, route
  end

  --- Warning Events ScriptSetRefused on the scripts ConfigMap whose note has `plain`.
  local function refused_events(plain)
    local obj = cluster.decode(cluster.must("get events.v1.events.k8s.io -n " .. sys .. " -o json"))
    local t = {}
    for _, e in ipairs(obj.items) do
      if e.regarding.name == CM and e.reason == "ScriptSetRefused" and e.type == "Warning" and
        (not plain or (e.note or ""):find(plain, 1, true)) then
        t[#t + 1] = e
      end
    end
    return t
  end

  setup(function()
    if not cluster.available() then return end
    cluster.must("apply --server-side -f " .. cluster.q(ROOT .. "/crds/sim.llm-d.io_schedulerinstalls.yaml") ..
      " -f " .. cluster.q(ROOT .. "/crds/sim.llm-d.io_simulatordeployments.yaml"))
    cluster.must("wait --for condition=established --timeout=60s crd/schedulerinstalls.sim.llm-d.io " ..
      "crd/simulatordeployments.sim.llm-d.io")
    cluster.kubectl("create clusterrolebinding schedsim-e2e-operator --clusterrole=cluster-admin --user=operator")
    sys, a, a_sim = cluster.namespace("hr-sys"), cluster.namespace("hr-a"), cluster.namespace("hr-a-sim")
    b, b_sim = cluster.namespace("hr-b"), cluster.namespace("hr-b-sim")
    many, boom = cluster.namespace("hr-many"), cluster.namespace("hr-boom")
    cluster.grant(a_sim, a) -- the simulator namespaces are opened to the schedulers' (doc/security.md)
    cluster.grant(b_sim, b)
    op = cluster.start_operator({ kubeconfig = true, scripts = false,
      args = "--scripts-configmap " .. sys .. "/" .. CM })
    ports.metrics, ports.health = op.started.metricsPort, op.started.healthPort
    cluster.eventually(60, "the scripts ConfigMap synced", function()
      return op:log_find("scripts ConfigMap synced; reconciles may start")
    end)
    local f = assert(io.open("/proc/" .. op.pid .. "/stat"))
    start_time = f:read("a"):match("^%d+ %b() %S+" .. (" %S+"):rep(18) .. " (%d+)")
    f:close()
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

  it("passes the check with each example ConfigMap overlaid", function()
    for _, name in ipairs({ "scripts-configmap-scorer-weights.yaml", "scripts-configmap-routing.yaml",
      "scripts-configmap-route-by-label.yaml" }) do
      local rev, ok, msgs, ncases = checked_revision(example_data(name))
      assert.is_true(ok, name .. ":\n" .. table.concat(msgs, "\n"))
      assert.is_true(ncases > 0)
      assert.are_not.equal(bundled, rev)
      revs[name] = rev
    end
  end)

  it("starts with the bundled set when there is no ConfigMap", function()
    if not need_cluster() then return end
    cluster.apply({ apiVersion = "sim.llm-d.io/v1alpha1", kind = "SchedulerInstall",
      metadata = { name = "weights", namespace = a },
      spec = { schedulerNamespace = a, simulatorNamespace = a_sim, epp = { enabled = true },
        gateway = { enabled = false }, routing = { enabled = false },
        destinationRule = { enabled = false }, envoyFilter = { enabled = false } } })
    cluster.apply({ apiVersion = "sim.llm-d.io/v1alpha1", kind = "SchedulerInstall",
      metadata = { name = "routed", namespace = b },
      spec = { schedulerNamespace = b, simulatorNamespace = b_sim,
        epp = { enabled = true, poolName = "gaie-inference-scheduling", poolNamespace = b_sim },
        gateway = { enabled = true, className = "agentgateway" },
        routing = { enabled = true, backendType = "InferencePool",
          inferencePool = { name = "gaie-inference-scheduling", namespace = b_sim, managed = true } },
        destinationRule = { enabled = false }, envoyFilter = { enabled = false } } })
    wait_revision("schedulerinstall", a, "weights", bundled)
    wait_revision("schedulerinstall", b, "routed", bundled)
    local epp = cluster.eventually(30, "the EPP", function() return epp_state(a) end)
    assert.equals(1, load_aware_weight(epp.config))
    assert.equals("InferencePool", cluster.eventually(30, "the HTTPRoute", route_backend))
    assert.equals(1, metric("schedsim_script_revision_info", bundled))
    assert.equals("200", readyz())
  end)

  it("rolls the EPP within seconds when a scorer weight changes in the ConfigMap", function()
    if not need_cluster() then return end
    local before = epp_state(a)
    local t0 = cluster.now()
    set_scripts(example_data("scripts-configmap-scorer-weights.yaml"))
    local after = cluster.eventually(15, "the EPP ConfigMap with load-aware-scorer weight 10", function()
      local s = epp_state(a)
      return s and load_aware_weight(s.config) == 10 and s.hash ~= before.hash and s
    end, 0.1)
    local elapsed = cluster.now() - t0
    assert.is_true(elapsed < 10, ("took %.1f s"):format(elapsed))
    assert.is_true(after.generation > before.generation)
    cluster.eventually(60, "the EPP Deployment rolled out", function()
      local d = cluster.get("deployment", EPP, a)
      local st = d and d.status or {}
      return st.observedGeneration == d.metadata.generation and st.updatedReplicas == d.spec.replicas
    end)
    wait_revision("schedulerinstall", a, "weights", revs["scripts-configmap-scorer-weights.yaml"])
    local swapped = op:log("script set swapped")
    assert.equals(1, #swapped)
    local t_update = audit_time("admin", "patch", "configmaps", sys, CM, "requestReceivedTimestamp")
    local t_cm = audit_time("operator", "patch", "configmaps", a, EPP .. "-config", "stageTimestamp")
    local t_dep = audit_time("operator", "patch", "deployments", a, EPP, "stageTimestamp")
    assert.is_true(t_update > 0 and t_cm > t_update and t_dep > t_update)
    report("scorer weight: ConfigMap update received by the API server -> EPP ConfigMap written %.2f s, " ..
      "EPP Deployment written %.2f s (audit log); operator: event -> swap %s ms (check %s ms); " ..
      "kubectl apply -> both observed by polling %.2f s", t_cm - t_update, t_dep - t_update,
      swapped[1].sinceEventMs, swapped[1].checkMs, elapsed)
    assert.equals(1, metric("schedsim_script_reloads_total", 'result="success"'))
    assert.equals(1, metric("schedsim_script_revision_info", revs["scripts-configmap-scorer-weights.yaml"]))
    assert.equals(0, metric("schedsim_script_revision_info", bundled))
    assert.is_true(same_process())
  end)

  it("applies the routing example: a pool route behind another gateway class falls back", function()
    if not need_cluster() then return end
    set_scripts(example_data("scripts-configmap-routing.yaml"))
    local rev = revs["scripts-configmap-routing.yaml"]
    wait_revision("schedulerinstall", b, "routed", rev)
    assert.equals("Service", cluster.eventually(30, "the route on the proxy Service", function()
      local kind = route_backend()
      return kind == "Service" and kind, kind
    end))
    local pool = condition(cluster.get("schedulerinstall", "routed", b), "PoolResolved")
    assert.equals("GatewayClassNotAllowed", pool.reason)
    assert.matches('spec.gateway.className "agentgateway" may not route', pool.message, 1, true)
    -- the ConfigMap is the whole overlay: the profiles are the bundled ones again
    cluster.eventually(30, "bundled weights", function() return load_aware_weight(epp_state(a).config) == 1 end)
  end)

  describe("refuses a set that fails the check", function()
    local routing_src = example_data("scripts-configmap-routing.yaml")[POLICY_KEY]
    local at = 2 -- the broken line is line 3 of policy.lua, after `local allowed = ...`
    local cases = {
      { "a syntax error", "local x = = 1", "unexpected symbol near '='" },
      { "a runtime error at load", 'error("boom at load")', "boom at load" },
      { "an infinite loop at load", "while true do end", "instruction budget exceeded" },
      { "a require of a missing module", 'local nope = require("schedulerinstall.nope")',
        "module 'schedulerinstall.nope' not found" },
    }
    for _, case in ipairs(cases) do
      it(case[1] .. ", naming file and line, and leaves the children alone", function()
        if not need_cluster() then return end
        local rev = revs["scripts-configmap-routing.yaml"]
        local epp, kind, route = epp_state(a), route_backend()
        local refused = metric("schedsim_script_reloads_total", 'result="refused"')
        set_scripts({ [POLICY_KEY] = insert_after(routing_src, at, case[2]) })
        local want = ("configmap:%s:%d: %s"):format(POLICY_KEY, at + 1, case[3])
        local ev = cluster.eventually(30, "a Warning Event naming " .. want, function()
          return refused_events(want)[1]
        end)
        assert.matches(rev:sub(1, 19) .. " keeps serving", ev.note, 1, true)
        assert.equals(refused + 1, metric("schedsim_script_reloads_total", 'result="refused"'))
        assert.equals("200", readyz())
        cluster.sleep(2) -- nothing follows a refusal
        local epp2, kind2, route2 = epp_state(a), route_backend()
        assert.equals(epp.cm_rv, epp2.cm_rv)
        assert.equals(epp.dep_rv, epp2.dep_rv)
        assert.equals(kind, kind2)
        assert.equals(route.metadata.resourceVersion, route2.metadata.resourceVersion)
        assert.equals(rev, revision_of("schedulerinstall", a, "weights"))
        assert.equals(rev, revision_of("schedulerinstall", b, "routed"))
        assert.equals(1, metric("schedsim_script_revision_info", rev))
        assert.is_true(same_process())
      end)
    end

    it("a fixture key that would replace a contract fixture file, naming the key", function()
      if not need_cluster() then return end
      local key = "schedulerinstall.fixtures.cross-namespace-service-grant.yaml"
      local rev = revs["scripts-configmap-routing.yaml"]
      set_scripts({ [POLICY_KEY] = routing_src,
        [key] = read(SCRIPTS .. "/schedulerinstall/fixtures/contract/cross-namespace-service-grant.yaml") })
      local ev = cluster.eventually(30, "a Warning Event naming " .. key, function()
        return refused_events("configmap: " .. key .. ": would replace the contract fixture file "
          .. "schedulerinstall/fixtures/contract/cross-namespace-service-grant.yaml")[1]
      end)
      assert.matches(rev:sub(1, 19) .. " keeps serving", ev.note, 1, true)
      assert.equals(rev, revision_of("schedulerinstall", b, "routed"))
      assert.is_true(same_process())
    end)

    it("a change of the controllers' kinds (controllers.lua), asking for a restart", function()
      if not need_cluster() then return end
      local src = read(SCRIPTS .. "/controllers.lua")
      local n = line_of(src, 'map = "schedulerinstall.reconcile.map_simulator" },')
      set_scripts({ ["controllers.lua"] = insert_after(src, n, '      { apiVersion = "v1", kind = "Secret" },') })
      local ev = cluster.eventually(30, "the Warning Event", function()
        return refused_events("controllers.lua: controller schedulerinstall: watches differs")[1]
      end)
      assert.matches("needs a restart of the operator", ev.note, 1, true)
      assert.equals(revs["scripts-configmap-routing.yaml"], revision_of("schedulerinstall", b, "routed"))
    end)
  end)

  it("fails only the CR a checked set fails to reconcile, with file and line", function()
    if not need_cluster() then return end
    local src = read(SCRIPTS .. "/simulatordeployment/reconcile.lua")
    local n = line_of(src, "function M.reconcile(cr, observed, ctx)")
    local data = { [SIMDEP_KEY] = insert_after(src, n,
      '  if cr.metadata.name == "sim-explode" then error("exploding on purpose") end') }
    local rev, ok = checked_revision(data)
    assert.is_true(ok)
    for _, name in ipairs({ "sim-explode", "sim-fine" }) do cluster.apply(simdep(boom, name)) end
    wait_revision("simulatordeployment", boom, "sim-explode", revs["scripts-configmap-routing.yaml"])
    set_scripts(data)
    wait_revision("simulatordeployment", boom, "sim-fine", rev)
    local ready = cluster.eventually(30, "sim-explode Ready=False ReconcileError", function()
      local c = condition(cluster.get("simulatordeployment", "sim-explode", boom), "Ready")
      return c and c.reason == "ReconcileError" and c
    end)
    assert.matches(("configmap:%s:%d: exploding on purpose"):format(SIMDEP_KEY, n + 1), ready.message, 1, true)
    local fine = condition(cluster.get("simulatordeployment", "sim-fine", boom), "Ready") or {}
    assert.are_not.equal("ReconcileError", fine.reason)
    assert.equals(rev, revision_of("schedulerinstall", a, "weights"))
    assert.is_true(same_process())
  end)

  it("re-reconciles every CR after a change: " .. N .. " CRs carry the new revision", function()
    if not need_cluster() then return end
    local items = {}
    for i = 1, N do items[i] = simdep(many, ("sim-%03d"):format(i)) end
    cluster.must("apply --server-side --field-manager=spec -f -",
      cluster.json.encode({ apiVersion = "v1", kind = "List", items = items }))
    local current = revision_of("schedulerinstall", a, "weights")
    local function at_revision(rev, ready)
      local ok, out = cluster.sh_stdout("kubectl get simulatordeployments -n " .. many .. " -o json")
      local list = ok and cluster.decode(out)
      local n = 0
      for _, o in ipairs(list and list.items or {}) do
        local is_ready = (condition(o, "Ready") or {}).status == "True"
        if (o.status or {}).scriptRevision == rev and (is_ready or not ready) then n = n + 1 end
      end
      return n == N, n
    end
    -- settle first (children applied, pods ready), so only the change is measured
    cluster.eventually(180, N .. " CRs Ready at the current revision", function()
      return at_revision(current, true)
    end, 1)
    cluster.sleep(3)
    local rev = revs["scripts-configmap-scorer-weights.yaml"]
    local nswapped = #op:log("script set swapped")
    local t0, cpu0 = cluster.now(), op_cpu()
    set_scripts(example_data("scripts-configmap-scorer-weights.yaml"))
    cluster.eventually(60, N .. " CRs at the new revision", function() return at_revision(rev) end, 0.1)
    local observed, cpu = cluster.now() - t0, op_cpu() - cpu0
    local swapped = op:log("script set swapped")
    assert.equals(nswapped + 1, #swapped)
    local changed = op:log("scripts ConfigMap changed; checking")
    local t_event = epoch(changed[#changed].ts)
    local last = 0
    for _, e in ipairs(cluster.audit(function(e)
      return (e.user or {}).username == "operator" and e.verb == "patch" and e.stage == "ResponseComplete" and
        (e.requestURI or ""):find("/namespaces/" .. many .. "/simulatordeployments/", 1, true) and
        (e.requestURI or ""):find("/status", 1, true) ~= nil
    end)) do
      local t = epoch(e.stageTimestamp)
      if t > last then last = t end
    end
    local t_update = audit_time("admin", "patch", "configmaps", sys, CM, "requestReceivedTimestamp")
    report("%d CRs: ConfigMap update received by the API server -> event at the operator %.0f ms; " ..
      "event -> swap %s ms (check %s ms); event -> last of the %d status writes %.0f ms; " ..
      "kubectl apply -> all %d observed with the new revision %.2f s; operator CPU meanwhile %.2f s",
      N, (t_event - t_update) * 1000, swapped[#swapped].sinceEventMs, swapped[#swapped].checkMs, N,
      (last - t_event) * 1000, N, observed, cpu)
    assert.is_true(last > t_event)
    assert.is_true(same_process())
  end)

  it("returns to the bundled behaviour when the ConfigMap is deleted", function()
    if not need_cluster() then return end
    local before = epp_state(a)
    cluster.must("delete configmap " .. CM .. " -n " .. sys)
    wait_revision("schedulerinstall", a, "weights", bundled)
    wait_revision("schedulerinstall", b, "routed", bundled)
    local s = cluster.eventually(30, "bundled weights", function()
      local s = epp_state(a)
      return s and load_aware_weight(s.config) == 1 and s
    end)
    assert.are_not.equal(before.hash, s.hash)
    assert.equals("InferencePool", cluster.eventually(30, "the pool route back", function()
      local kind = route_backend()
      return kind == "InferencePool" and kind, kind
    end))
    wait_revision("simulatordeployment", many, "sim-001", bundled)
    assert.equals(1, metric("schedsim_script_revision_info", bundled))
    assert.equals("200", readyz())
    assert.is_true(same_process())
  end)
end)
