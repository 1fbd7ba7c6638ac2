-- The shipped RBAC on a live API server (spec/cluster): the operator runs as
-- the local control plane's user `operator` (no rights of its own) bound to
-- deploy/rbac's ClusterRole through deploy/dev, like `run` outside the
-- cluster (doc/installation.md).
--   * sufficient: every example (plus variants that reach the rules the
--     examples do not: an HA EPP, a v0.7 EPP with an EnvoyFilter and a
--     v1alpha2 pool, a pre-v0.4 EPP) reconciles, the examples to Ready=True,
--     and deleting them cleans up; the API server's audit log shows no 403
--     for user `operator` and the operator's own request metrics count none;
--   * minimal: for each resource of each ClusterRole rule, a copy of the role
--     without it makes the operator hit Forbidden on that resource (or, for
--     the rules held for escalation prevention, on the EPP Role that needs
--     it), seen in the audit log. One operator, fresh namespaces and a fresh
--     copy of the workload per case (pods held back by a ResourceQuota), on
--     one cluster: about 5-10 s a case. The /finalizers rule is pending: only
--     the OwnerReferencesPermissionEnforcement admission plugin checks it.
--     SCHEDSIM_RBAC_VERBS=1 checks every (apiGroup, resource, verb) instead
--     (~115 cases; the SSA `create`, each `delete`, `watch` apart from `list`).
-- A stand-in gateway controller writes HTTPRoute status (no gateway runs here).
-- Run: cmake/run-spec BUILD spec/e2e/rbac_spec.lua (starts a control plane);
-- SCHEDSIM_SPEC_VERBOSE=1 prints the time of each phase of a case.
local cluster = require("cluster")
local fake = require("fake_k8s")

local ROOT = cluster.root
local BIN = cluster.bin
local OPKC = os.getenv("SCHEDSIM_OPERATOR_KUBECONFIG")
local USER = "operator"
local CASE_LABEL = "rbac-spec.sim.llm-d.io/case"

local q = cluster.q

local VERBOSE = os.getenv("SCHEDSIM_SPEC_VERBOSE") == "1"
local t_phase = cluster.now()
local function phase(what)
  if VERBOSE then
    local t = cluster.now()
    io.stderr:write(("  [%6.2f s] %s\n"):format(t - t_phase, what))
    t_phase = t
  end
end

-- ------------------------------------------------------------------ workload

--- The examples, and variants of them for rules no example reaches.
local WORKLOAD = {
  { id = "sd-min", file = "simulatordeployment-minimal.yaml", example = true },
  { id = "sd-full", file = "simulatordeployment-full.yaml", example = true },
  { id = "sd-istio", file = "simulatordeployment-istio.yaml", example = true },
  { id = "si-svc", file = "schedulerinstall-service.yaml", example = true },
  { id = "si-pool", file = "schedulerinstall-inferencepool.yaml", example = true },
  { id = "si-pp", file = "schedulerinstall-proxy-performance.yaml", example = true },
  { id = "si-ppb", file = "schedulerinstall-proxy-performance-by-backend.yaml", example = true },
  -- EPP with 2 replicas: its Role grants coordination.k8s.io leases, which
  -- the operator holds only where the lease rights are bound
  { id = "sd-ha", file = "simulatordeployment-full.yaml", leases = true, patch = function(cr)
    cr.spec.epp.replicas = 2
  end },
  -- newest EPP row (inferencemodelrewrites writes), an EnvoyFilter, a v1alpha2 pool
  { id = "si-new", file = "schedulerinstall-inferencepool.yaml", patch = function(cr)
    cr.spec.epp.image = "ghcr.io/llm-d/llm-d-inference-scheduler:v0.7.0"
    cr.spec.envoyFilter = { enabled = true }
    cr.spec.routing.inferencePool.apiVersion = "inference.networking.x-k8s.io/v1alpha2"
  end },
  -- oldest EPP row (inferencemodels)
  { id = "si-old", file = "schedulerinstall-service.yaml", patch = function(cr)
    cr.spec.epp.image = "ghcr.io/llm-d/llm-d-inference-scheduler:v0.3.0"
  end },
}

--- Replaces every string equal to a key of `map` (namespace names) in v.
local function rename(v, map)
  if type(v) == "string" then return map[v] or v end
  if type(v) == "table" then
    for k, x in pairs(v) do v[k] = rename(x, map) end
  end
  return v
end

--- The workload's CRs for case `prefix`, each in namespaces of its own.
--- Returns items (Namespaces first, then CRs) and crs { {w, kind, ns, name} }.
local function workload(prefix, opts)
  opts = opts or {}
  local nss, crs, grants = {}, {}, {}
  for _, w in ipairs(WORKLOAD) do
    local cr = fake.yaml_load_file(ROOT .. "/examples/" .. w.file)[1]
    if w.patch then w.patch(cr) end
    local base = prefix .. "-" .. w.id
    local map = { ["llm-d-sim"] = base, ["llm-d-vllm"] = base }
    if cr.kind == "SchedulerInstall" then
      map = { ["llm-d-inference-scheduler"] = base .. "-s", ["llm-d-sim"] = base .. "-m",
        ["llm-d-vllm"] = base .. "-m" }
    end
    rename(cr, map)
    cr.metadata.labels = { [CASE_LABEL] = prefix }
    local seen = {}
    for _, ns in pairs(map) do
      if not seen[ns] then
        seen[ns] = true
        nss[#nss + 1] = ns
        -- opened to the CR's namespace (doc/security.md)
        if ns ~= cr.metadata.namespace then grants[ns] = cr.metadata.namespace end
      end
    end
    crs[#crs + 1] = { w = w, kind = cr.kind, ns = cr.metadata.namespace, name = cr.metadata.name, obj = cr }
  end
  table.sort(nss)
  local items = {}
  for _, ns in ipairs(nss) do
    items[#items + 1] = { apiVersion = "v1", kind = "Namespace", metadata = { name = ns,
      labels = grants[ns] and { ["allow-from.sim.llm-d.io/" .. grants[ns]] = "true" } or nil } }
    if opts.no_pods and not ns:match("%-sd%-min$") then
      -- keeps the single fake node free: the minimality cases need no pods
      -- (sd-min keeps its two, for the Ready transition)
      items[#items + 1] = { apiVersion = "v1", kind = "ResourceQuota",
        metadata = { name = "no-pods", namespace = ns }, spec = { hard = { pods = "0" } } }
    end
  end
  for _, c in ipairs(crs) do
    if c.w.leases then
      -- an HA EPP's Role grants leases: the administrator binds the lease
      -- rights where HA EPPs run (deploy/rbac/epp_leases_cluster_role.yaml)
      items[#items + 1] = { apiVersion = "rbac.authorization.k8s.io/v1", kind = "RoleBinding",
        metadata = { name = "schedsim-operator-epp-leases", namespace = c.ns },
        roleRef = { apiGroup = "rbac.authorization.k8s.io", kind = "ClusterRole",
          name = "schedsim-operator-epp-leases" },
        subjects = { { apiGroup = "rbac.authorization.k8s.io", kind = "User", name = USER } } }
    end
  end
  for _, c in ipairs(crs) do items[#items + 1] = c.obj end
  return items, crs, nss
end

local function apply_items(items)
  local list = { apiVersion = "v1", kind = "List", items = fake.json_decode(fake.json_encode(items)) }
  return cluster.must("apply --server-side --field-manager=spec -f -", fake.json_encode(list))
end

local function resource_of(kind)
  return kind == "SimulatorDeployment" and "simulatordeployments.sim.llm-d.io" or "schedulerinstalls.sim.llm-d.io"
end

local function condition(obj, t)
  for _, c in ipairs(obj and obj.status and obj.status.conditions or {}) do
    if c.type == t then return c end
  end
  return nil
end

--- Stand-in gateway controller: Accepted/ResolvedRefs on every parent of the
--- managed HTTPRoutes in `nss` that has no status for the current generation.
local function gateway_standin(nss)
  local mine = {}
  for _, ns in ipairs(nss) do mine[ns] = true end
  local ok, out = cluster.sh_stdout("kubectl get httproutes.gateway.networking.k8s.io -A -o json "
    .. "-l app.kubernetes.io/managed-by=schedsim-operator")
  if not ok then return end
  local list = cluster.decode(out)
  for _, r in ipairs(list and list.items or {}) do
    if mine[r.metadata.namespace] then
      local gen = r.metadata.generation
      local current = true
      for _, p in ipairs(r.status and r.status.parents or {}) do
        for _, c in ipairs(p.conditions or {}) do
          if c.observedGeneration ~= gen then current = false end
        end
      end
      if not (r.status and r.status.parents and #r.status.parents > 0) then current = false end
      if not current then
        local parents = {}
        for _, ref in ipairs(r.spec.parentRefs) do
          local pr = { group = ref.group or "gateway.networking.k8s.io", kind = ref.kind or "Gateway",
            name = ref.name, namespace = ref.namespace or r.metadata.namespace }
          local conds = {}
          for _, t in ipairs({ "Accepted", "ResolvedRefs" }) do
            conds[#conds + 1] = { type = t, status = "True", reason = t, message = "stand-in",
              observedGeneration = gen, lastTransitionTime = "2026-01-01T00:00:00Z" }
          end
          parents[#parents + 1] = { parentRef = pr, controllerName = "example.com/stand-in", conditions = conds }
        end
        cluster.kubectl(("patch httproutes.gateway.networking.k8s.io %s -n %s --subresource=status --type=merge -p %s")
          :format(q(r.metadata.name), q(r.metadata.namespace),
            q(cluster.json.encode({ status = { parents = parents } }))))
      end
    end
  end
end

-- ------------------------------------------------------------------ operator

local function start_operator(extra)
  return cluster.start_operator({ kubeconfig = OPKC, args = "--shutdown-timeout 2s " .. (extra or ""), wait = false })
end

local function metrics(p)
  local started = p:log_find("starting manager")
  if not started then return nil end
  local ok, out = cluster.sh_stdout("curl -sf --max-time 10 http://127.0.0.1:" .. started.metricsPort .. "/metrics")
  return ok and out or nil
end

-- ------------------------------------------------------------------ audit log

local function audit_path() return os.getenv("SCHEDSIM_CLUSTER_DIR") .. "/audit.log" end

--- Current size of the audit log (bytes): entries after it belong to what follows.
local function audit_mark()
  local f = io.open(audit_path())
  if not f then return 0 end
  local n = f:seek("end")
  f:close()
  return n
end

--- Entries of user `operator` written after `mark` that `pred` accepts
--- (`must`: a plain substring every such line has, to skip decoding the rest).
local function entries_since(mark, pred, must)
  local f = io.open(audit_path())
  if not f then return {} end
  f:seek("set", mark)
  local t = {}
  for l in f:lines() do
    if l:find('"' .. USER .. '"', 1, true) and (not must or l:find(must, 1, true)) then
      local e = cluster.decode(l)
      if e and e.user and e.user.username == USER and pred(e) then t[#t + 1] = e end
    end
  end
  f:close()
  return t
end

--- Entries of user `operator` with code 403 written after `mark`.
local function forbidden_since(mark)
  return entries_since(mark, function() return true end, '"code":403')
end

local function describe_entry(e)
  local o = e.objectRef or {}
  return ("%s %s%s%s %s/%s: %s"):format(e.verb, o.apiGroup and (o.apiGroup .. "/") or "", o.resource or e.requestURI,
    o.subresource and ("/" .. o.subresource) or "", o.namespace or "", o.name or "",
    (e.responseStatus and e.responseStatus.message or ""):gsub("\n", " "))
end

-- ------------------------------------------------------------------ RBAC

local function install_rbac()
  cluster.must("apply --server-side --force-conflicts -k " .. q(ROOT .. "/deploy/dev"))
  cluster.must("wait --for condition=Established --timeout=60s crd/simulatordeployments.sim.llm-d.io "
    .. "crd/schedulerinstalls.sim.llm-d.io")
end

local function shipped_role()
  return fake.yaml_load_file(ROOT .. "/deploy/rbac/cluster_role.yaml")[1]
end

local function put_role(role)
  local obj = fake.json_decode(fake.json_encode(role))
  obj.metadata.resourceVersion = nil
  cluster.must("replace -f -", fake.json_encode(obj))
end

local CRS = "simulatordeployments.sim.llm-d.io,schedulerinstalls.sim.llm-d.io"

--- The CRs matching label selector `sel` (one kubectl call).
local function crs_by(sel)
  local ok, out = cluster.sh_stdout("kubectl get " .. CRS .. " -A -o json -l " .. q(sel))
  local list = ok and cluster.decode(out)
  return list and list.items or {}
end

--- Removes the CRs matching `sel` without waiting for our finalizer (no
--- operator runs any more), so that the next case's operator finds none of
--- them, then the namespaces `nss` in the background. Three kubectl calls.
local function teardown_cases(sel, nss)
  local ok, out = cluster.sh_stdout("kubectl get " .. CRS .. " -A -o json -l " .. q(sel))
  local list = ok and cluster.decode(out)
  if list and #list.items > 0 then
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write(out)
    f:close()
    cluster.kubectl("patch -f " .. q(path) .. " --type=merge -p '{\"metadata\":{\"finalizers\":null}}'")
    cluster.kubectl("delete --wait=false --ignore-not-found -f " .. q(path))
    os.remove(path)
  end
  for i = 1, #nss, 100 do
    cluster.kubectl("delete namespace --wait=false " .. table.concat(nss, " ", i, math.min(#nss, i + 99)))
  end
end

-- ================================================================== specs

describe("shipped RBAC", function()
  if not cluster.available() or not OPKC then
    pending("needs the local control plane (cmake/run-spec or spec/cluster/run)")
    return
  end
  if not cluster.sh("test -x " .. q(BIN)) then
    pending("needs the operator binary " .. BIN)
    return
  end

  setup(function()
    install_rbac()
  end)

  teardown(function()
    put_role(shipped_role())
  end)

  it("is sufficient: every example reconciles to Ready=True and deletes cleanly, with no Forbidden", function()
    put_role(shipped_role())
    local items, crs, nss = workload("rb")
    local mark = audit_mark()
    local op = start_operator()
    local ok, err = pcall(function()
      apply_items(items)
      cluster.eventually(180, "every example Ready=True, every variant reconciled", function()
        gateway_standin(nss)
        local waiting = {}
        for _, c in ipairs(crs) do
          local obj = cluster.get(resource_of(c.kind), c.name, c.ns)
          local ready = condition(obj, "Ready")
          local done = obj and obj.status and obj.status.observedGeneration == obj.metadata.generation
          if c.w.example and not (ready and ready.status == "True") then
            waiting[#waiting + 1] = c.w.id .. ": " .. cluster.json.encode(ready or "no Ready")
          elseif not done then
            waiting[#waiting + 1] = c.w.id .. ": not reconciled"
          end
        end
        return #waiting == 0, table.concat(waiting, "; ")
      end, 1)
      -- the variants did create what they are there for
      local function exists(res, name, ns) return cluster.get(res, name, ns) ~= nil end
      assert.is_true(exists("roles.rbac.authorization.k8s.io", "gaie-sim-epp", "rb-sd-ha"))
      local role = cluster.get("roles.rbac.authorization.k8s.io", "gaie-sim-epp", "rb-sd-ha")
      assert.matches("leases", cluster.json.encode(role.rules), 1, true)
      assert.is_true(exists("envoyfilters.networking.istio.io", "epp-ext-proc", "rb-si-new-s"))
      assert.is_true(exists("inferencepools.inference.networking.x-k8s.io", "gaie-inference-scheduling",
        "rb-si-new-m"))
      local old = cluster.get("roles.rbac.authorization.k8s.io", "gaie-inference-scheduling-epp", "rb-si-old-m")
      assert.matches("inferencemodels", cluster.json.encode(old and old.rules or {}), 1, true)

      -- deleting cleans up both namespaces of each CR (finalizer, cross-namespace children)
      for _, c in ipairs(crs) do
        cluster.must(("delete %s %s -n %s --wait=false"):format(resource_of(c.kind), q(c.name), q(c.ns)))
      end
      cluster.eventually(90, "every CR gone", function()
        local left = {}
        for _, c in ipairs(crs) do
          if cluster.get(resource_of(c.kind), c.name, c.ns) then left[#left + 1] = c.w.id end
        end
        return #left == 0, table.concat(left, ", ")
      end, 1)
      local grant = cluster.get("referencegrants.gateway.networking.k8s.io",
        "allow-rb-si-pool-s-llm-d-inference-scheduling", "rb-si-pool-m")
      assert.is_nil(grant, "the cross-namespace ReferenceGrant was not removed")

      local m = metrics(op)
      assert.is_truthy(m, "no /metrics")
      assert.matches('rest_client_requests_total{code="200",method="PATCH"}', m, 1, true)
      assert.is_nil(m:find('code="403"', 1, true), "the operator counted 403 responses")
    end)
    local forbidden = forbidden_since(mark)
    op:stop(10)
    local tail = op:stderr():sub(-3000)
    op:cleanup()
    teardown_cases(CASE_LABEL .. "=rb", nss)
    assert(ok, tostring(err) .. "\noperator log tail:\n" .. tail)
    local lines = {}
    for _, e in ipairs(forbidden) do lines[#lines + 1] = describe_entry(e) end
    assert.same({}, lines)
  end)

  describe("is minimal: without", function()
    if os.getenv("SCHEDSIM_SANITIZED") == "1" then
      -- what the rules allow does not depend on the build; the sufficiency
      -- case above runs the instrumented operator through every path
      pending("minimality runs with the normal build only (31 operator runs)")
      return
    end
    local role = shipped_role()
    -- One case per resource of each rule. SCHEDSIM_RBAC_VERBS=1: one case per
    -- granted (apiGroup, resource, verb), removed from every rule that grants
    -- it (about 4x as many cases; deletes are provoked by deleting the CRs).
    local per_verb = os.getenv("SCHEDSIM_RBAC_VERBS") == "1"
    local cases, seen = {}, {}
    for i, rule in ipairs(role.rules) do
      for j, res in ipairs(rule.resources) do
        for _, verb in ipairs(per_verb and rule.verbs or { false }) do
          local key = verb and (rule.apiGroups[1] .. "|" .. res .. "|" .. verb) or (i .. "|" .. res)
          if not seen[key] then
            seen[key] = true
            cases[#cases + 1] = { rule = i, res = j, group = rule.apiGroups[1], resource = res, verbs = rule.verbs,
              verb = verb or nil }
          end
        end
      end
    end

    --- The shipped role without `case`: its resource in its rule, or (per
    --- verb) its verb on that resource in every rule.
    local function without(case)
      local variant = fake.json_decode(fake.json_encode(role))
      if not case.verb then
        local r = variant.rules[case.rule]
        table.remove(r.resources, case.res)
        if #r.resources == 0 then table.remove(variant.rules, case.rule) end
        return variant
      end
      local rules = {}
      for _, r in ipairs(variant.rules) do
        local rest, hit = {}, false
        for _, res in ipairs(r.resources) do
          if r.apiGroups[1] == case.group and res == case.resource then hit = true else rest[#rest + 1] = res end
        end
        if #rest > 0 then rules[#rules + 1] = { apiGroups = r.apiGroups, resources = rest, verbs = r.verbs } end
        if hit then
          local verbs = {}
          for _, v in ipairs(r.verbs) do
            if v ~= case.verb then verbs[#verbs + 1] = v end
          end
          if #verbs > 0 then
            rules[#rules + 1] = { apiGroups = r.apiGroups, resources = { case.resource }, verbs = verbs }
          end
        end
      end
      variant.rules = rules
      return variant
    end
    local conditions_seen = {}

    for n, case in ipairs(cases) do
      local label = ("rule %d %s/%s [%s]"):format(case.rule, case.group == "" and "core" or case.group,
        case.resource, case.verb or table.concat(case.verbs, ","))
      it(label .. ", some example fails with Forbidden", function()
        local variant = without(case)
        phase("start " .. label)
        put_role(variant)
        phase("role replaced")
        -- checked only under the OwnerReferencesPermissionEnforcement admission plugin
        local admission_only = case.resource:match("/finalizers$") ~= nil

        local prefix = ("m%d"):format(n)
        local items, _, nss = workload(prefix, { no_pods = true })
        local mine = {}
        for _, ns in ipairs(nss) do mine[ns] = true end
        local base, sub = case.resource:match("^([^/]+)/?(.*)$")
        -- a 403 on the resource itself, or (rules held for escalation
        -- prevention) on an EPP Role or RoleBinding that grants it
        local function expected(e)
          local o = e.objectRef or {}
          local msg = e.responseStatus and e.responseStatus.message or ""
          if o.namespace and not mine[o.namespace] then return false end
          if o.apiGroup == "rbac.authorization.k8s.io" and (o.resource == "roles" or o.resource == "rolebindings")
              and msg:find("not currently held", 1, true) then
            return msg:find('"' .. base .. '"', 1, true) ~= nil and msg:find('"' .. case.group .. '"', 1, true) ~= nil
              and (not case.verb or msg:find('"' .. case.verb .. '"', 1, true) ~= nil)
          end
          if case.verb and not msg:find("cannot " .. case.verb .. " resource", 1, true) then return false end
          return (o.apiGroup or "") == case.group and o.resource == base and (o.subresource or "") == sub
        end

        local mark = audit_mark()
        local op = start_operator()
        local hit
        local ok, err = pcall(function()
          apply_items(items)
          phase("workload applied")
          local function wait_hit(timeout)
            pcall(cluster.eventually, timeout, "a 403 on " .. case.resource, function()
              for _, e in ipairs(forbidden_since(mark)) do
                if expected(e) then
                  hit = e
                  return true
                end
              end
              return false
            end, 0.3)
          end
          if case.verb == "delete" then
            -- deletes happen on clean-up: let the children be created, then delete the CRs
            wait_hit(20)
            if not hit then
              cluster.kubectl(("delete %s -A -l %s=%s --wait=false"):format(CRS, CASE_LABEL, prefix))
              wait_hit(40)
            end
          else
            wait_hit(admission_only and 10 or 60)
          end
          phase(hit and "403 seen" or "no 403")
          -- a condition on a CR naming the refusal, where the runtime reports one
          for _, obj in ipairs(crs_by(CASE_LABEL .. "=" .. prefix)) do
            for _, cond in ipairs(obj.status and obj.status.conditions or {}) do
              local text = (cond.reason or "") .. " " .. (cond.message or "")
              if text:find('ser "' .. USER .. '"', 1, true) then
                conditions_seen[label] = obj.metadata.namespace .. "/" .. obj.metadata.name .. " " .. cond.type
                  .. "=" .. cond.status .. " " .. text
              end
            end
          end
        end)
        op:signal("KILL")
        op:wait(5)
        local all = forbidden_since(mark)
        op:cleanup()
        phase("conditions read, operator stopped")
        teardown_cases(CASE_LABEL .. "=" .. prefix, nss)
        phase("torn down")
        assert(ok, tostring(err))
        if not hit and admission_only then
          pending(case.resource .. " is checked only by the OwnerReferencesPermissionEnforcement admission plugin, "
            .. "which this API server does not run")
          return
        end
        local got = {}
        for _, e in ipairs(all) do got[#got + 1] = describe_entry(e):sub(1, 200) end
        assert.is_truthy(hit, "no 403 on " .. case.resource .. "; 403s seen: " .. table.concat(got, " | "))
        print(("\n  %s -> %s"):format(label, describe_entry(hit):sub(1, 200)))
      end)
    end

    it("(report) conditions on the CRs that name the refusal", function()
      local n = 0
      for label, text in pairs(conditions_seen) do
        n = n + 1
        print(("\n  %s: %s"):format(label, text:sub(1, 200)))
      end
      assert.is_true(n > 0, "no CR condition named a refused write (WriteForbidden)")
    end)
  end)

  describe("in the namespaced mode (deploy/components/namespaced)", function()
    --- The component rendered with deploy/ (kubectl kustomize, as a user
    --- would), its bindings' subject rewritten to the user `operator`.
    local function namespaced_install()
      local dir = os.tmpname()
      os.remove(dir)
      assert(cluster.sh("mkdir -p " .. q(dir)))
      local _, rel = cluster.sh_stdout("realpath --relative-to=" .. q(dir) .. " " .. q(ROOT .. "/deploy"))
      assert(rel, "realpath failed")
      rel = rel:gsub("%s+$", "")
      local f = assert(io.open(dir .. "/kustomization.yaml", "w"))
      f:write(("resources: [%s]\ncomponents: [%s/components/namespaced]\n"):format(rel, rel))
      f:close()
      local ok = cluster.sh("kubectl kustomize " .. q(dir) .. " > " .. q(dir .. "/out.yaml"))
      local objs = ok and fake.yaml_load_file(dir .. "/out.yaml")
      cluster.sh("rm -rf " .. q(dir))
      assert(ok and objs, "kubectl kustomize failed")
      return objs
    end

    it("serves its namespaces with no right outside them; kubectl auth can-i says no to the escapes", function()
      local objs = namespaced_install()
      local bindings, served = {}, nil
      for _, o in ipairs(objs) do
        if (o.kind == "RoleBinding" or o.kind == "ClusterRoleBinding") and o.subjects then
          o.metadata.name = o.metadata.name .. "-nsmode"
          o.subjects = { { apiGroup = "rbac.authorization.k8s.io", kind = "User", name = USER } }
          bindings[#bindings + 1] = o
        elseif (o.kind == "ClusterRole" and o.metadata.name ~= "schedsim-operator") or o.kind == "Role" then
          bindings[#bindings + 1] = o
        elseif o.kind == "Deployment" then
          for _, a in ipairs(o.spec.template.spec.containers[1].args) do
            served = served or a:match("^%-%-namespace=(.+)$")
          end
        end
      end
      assert.is_truthy(served, "the component sets no --namespace")
      local function can(args)
        local _, out = cluster.sh_stdout("kubectl auth can-i --as " .. USER .. " " .. args .. " 2>/dev/null")
        return (out or ""):match("^%s*(%a+)")
      end
      -- the cluster-wide default already holds no lease rights of other components
      assert.equals("no", can("update leases -n kube-system"))
      assert.equals("no", can("create leases -n kube-system"))

      put_role(shipped_role())
      cluster.must("delete clusterrolebinding schedsim-operator-dev")
      local op
      finally(function()
        if op then
          op:stop(10)
          op:cleanup()
        end
        cluster.kubectl("delete simulatordeployments.sim.llm-d.io,schedulerinstalls.sim.llm-d.io -A "
          .. "-l rbac-spec.sim.llm-d.io/nsmode=1 --wait=false")
        for _, o in ipairs(bindings) do
          if o.metadata.name:match("%-nsmode$") then
            cluster.kubectl(("delete %s %s %s --ignore-not-found"):format(o.kind:lower(), q(o.metadata.name),
              o.metadata.namespace and ("-n " .. q(o.metadata.namespace)) or ""))
          end
        end
        install_rbac()
      end)
      cluster.must("apply --server-side --force-conflicts -f " .. q(ROOT .. "/examples/namespaces.yaml"))
      apply_items(bindings)

      -- the escapes of a cluster-wide binding are gone; the served namespaces work
      assert.equals("no", can("create deployments -n kube-system"))
      assert.equals("no", can("create rolebindings -n kube-system"))
      assert.equals("no", can("list configmaps --all-namespaces"))
      assert.equals("no", can("update leases -n kube-system"))
      assert.equals("no", can("list secrets -n llm-d-sim"))
      assert.equals("yes", can("create deployments -n llm-d-sim"))
      assert.equals("yes", can("list namespaces"))

      local crs = {}
      for _, file in ipairs({ "simulatordeployment-minimal.yaml", "schedulerinstall-service.yaml" }) do
        local cr = fake.yaml_load_file(ROOT .. "/examples/" .. file)[1]
        cr.metadata.labels = { ["rbac-spec.sim.llm-d.io/nsmode"] = "1" }
        crs[#crs + 1] = cr
      end
      local mark = audit_mark()
      op = start_operator("--namespace " .. q(served) .. " --scripts-configmap schedsim-system/schedsim-scripts")
      apply_items(crs)
      cluster.eventually(120, "both examples Ready=True", function()
        gateway_standin({ "llm-d-sim", "llm-d-inference-scheduler" })
        local waiting = {}
        for _, cr in ipairs(crs) do
          local obj = cluster.get(resource_of(cr.kind), cr.metadata.name, cr.metadata.namespace)
          local ready = condition(obj, "Ready")
          if not (ready and ready.status == "True") then
            waiting[#waiting + 1] = cr.metadata.name .. ": " .. cluster.json.encode(ready or "no Ready")
          end
        end
        return #waiting == 0, table.concat(waiting, "; ")
      end, 1)
      local lines = {}
      for _, e in ipairs(forbidden_since(mark)) do lines[#lines + 1] = describe_entry(e) end
      assert.same({}, lines)
      -- one list+watch per served namespace, none across all namespaces
      local lists = entries_since(mark, function(e)
        return e.verb == "list" and e.objectRef and e.objectRef.resource == "deployments"
      end)
      local where = {}
      for _, e in ipairs(lists) do where[e.objectRef.namespace or "(all)"] = true end
      assert.is_nil(where["(all)"], "a Deployment list across all namespaces")
      assert.is_true(where["llm-d-sim"] ~= nil, "no Deployment list in llm-d-sim")
    end)
  end)
end)
