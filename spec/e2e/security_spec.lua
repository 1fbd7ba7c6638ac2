-- The security boundary end to end (doc/security.md): an operator running
-- with only its shipped RBAC (deploy/dev: deploy/rbac's ClusterRole bound to
-- the local control plane's user "operator") is attacked the ways a CR author
-- and a scripts ConfigMap editor could try, and every attempt must be refused
-- or contained, with nothing created outside the boundary:
--   * CRs (bundled scripts): children into kube-system with the EPP running as
--     a cluster-admin ServiceAccount; a proxy Service in another team's
--     namespace selecting that team's pods; an EPP named after an existing
--     cluster-admin ServiceAccount of the CR's own namespace;
--   * a scripts overlay that passes `check` (it misbehaves only for CRs named
--     evil-*): a RoleBinding in kube-system for user mallory, a RoleBinding of
--     cluster-admin, a Deployment in kube-system or in the CR's namespace
--     running as a borrowed cluster-admin ServiceAccount, a ConfigMap in an
--     unrelated namespace, a Role granting Secrets, pods mounting a Secret or
--     the host; an infinite loop, a memory bomb and requeue_after = 1 µs in
--     reconcile.
-- At the end the audit log must show no successful write by the operator in
-- kube-system or the other team's namespace. Prints "tried N, contained N".
--
--   cmake/run-spec build spec/e2e/security_spec.lua      (starts a cluster)
local cluster = require("cluster")

local ROOT = cluster.root
local CM = "schedsim-scripts"
local SYS = "schedsim-system" -- deploy/dev's namespace
local WRITES = { create = true, update = true, patch = true, delete = true }

local function need_cluster() return cluster.need(pending) end

local read = cluster.read_file

local function condition(obj, t)
  for _, c in ipairs(((obj or {}).status or {}).conditions or {}) do
    if c.type == t then return c end
  end
end

-- The hostile overlay: simulatordeployment.reconcile as bundled, plus extra
-- children (or worse) for CRs named evil-*. Every bundled fixture still
-- passes, so the set is checked and swapped in.
local HOSTILE = [[

-- ---- hostile additions (spec/e2e/security_spec.lua) ----
do
  local bundled = M.reconcile
  local function rb(ns, kind, role, subject)
    return { apiVersion = "rbac.authorization.k8s.io/v1", kind = "RoleBinding",
      metadata = { name = "evil-binding", namespace = ns },
      roleRef = { apiGroup = "rbac.authorization.k8s.io", kind = kind, name = role }, subjects = { subject } }
  end
  local function deploy(ns, podspec)
    podspec.containers = podspec.containers or { { name = "c", image = "evil:latest" } }
    return { apiVersion = "apps/v1", kind = "Deployment", metadata = { name = "evil", namespace = ns },
      spec = { selector = { matchLabels = { evil = "yes" } },
        template = { metadata = { labels = { evil = "yes" } }, spec = podspec } } }
  end
  local attacks = {
    ["evil-rb-kube-system"] = function()
      return { rb("kube-system", "ClusterRole", "schedsim-operator", { kind = "User", name = "mallory" }) }
    end,
    ["evil-rb-cluster-admin"] = function(cr)
      return { rb(cr.metadata.namespace, "ClusterRole", "cluster-admin",
        { kind = "ServiceAccount", name = "default", namespace = cr.metadata.namespace }) }
    end,
    ["evil-deploy-kube-system"] = function()
      return { deploy("kube-system", { serviceAccountName = "powerful" }) }
    end,
    ["evil-borrow"] = function(cr) return { deploy(cr.metadata.namespace, { serviceAccountName = "powerful" }) } end,
    ["evil-cm-other-team"] = function()
      return { { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "evil", namespace = "other-team" },
        data = { pwned = "yes" } } }
    end,
    ["evil-role-secrets"] = function(cr)
      return { { apiVersion = "rbac.authorization.k8s.io/v1", kind = "Role",
        metadata = { name = "evil", namespace = cr.metadata.namespace },
        rules = { { apiGroups = { "" }, resources = { "secrets" }, verbs = { "get", "list" } } } } }
    end,
    ["evil-secret-volume"] = function(cr)
      return { deploy(cr.metadata.namespace, { volumes = { { name = "s", secret = { secretName = "token" } } } }) }
    end,
    ["evil-host"] = function(cr)
      return { deploy(cr.metadata.namespace, { hostNetwork = true,
        volumes = { { name = "root", hostPath = { path = "/" } } } }) }
    end,
  }
  function M.reconcile(cr, observed, ctx)
    local name = cr.metadata.name
    if name:match("^evil%-loop") then while true do end end
    if name == "evil-memory" then
      local t = {}
      while true do t[#t + 1] = string.rep("x", 1 << 20) .. #t end
    end
    local r = bundled(cr, observed, ctx)
    if name == "evil-requeue" then r.requeue_after = 0.000001 end
    local add = attacks[name]
    for _, c in ipairs(add and add(cr) or {}) do r.children[#r.children + 1] = c end
    return r
  end
end
]]

describe("security (e2e)", function()
  local op, tried, contained = nil, 0, 0
  local tenant, tenant_sim = "tenant", "tenant-sim"

  local function simdep(name)
    return { apiVersion = "sim.llm-d.io/v1alpha1", kind = "SimulatorDeployment",
      metadata = { name = name, namespace = tenant }, spec = { replicas = 1, service = { name = name .. "-proxy" } } }
  end

  local function schedinst(name, spec)
    return { apiVersion = "sim.llm-d.io/v1alpha1", kind = "SchedulerInstall",
      metadata = { name = name, namespace = tenant }, spec = spec }
  end

  --- Waits for Ready=False with reason on the CR; counts the attempt.
  local function refused(kind, name, reason, message)
    tried = tried + 1
    local c = cluster.eventually(60, kind .. " " .. name .. " Ready=False " .. reason, function()
      local c = condition(cluster.get(kind, name, tenant), "Ready")
      return c and c.status == "False" and c.reason == reason and c, c and (c.reason .. ": " .. c.message)
    end)
    if message then assert.matches(message, c.message, 1, true) end
    contained = contained + 1
    return c
  end

  local function no_object(resource, name, ns)
    assert.is_nil(cluster.get(resource, name, ns), resource .. " " .. ns .. "/" .. name .. " exists")
  end

  local function rss_kib()
    local f = assert(io.open("/proc/" .. op.pid .. "/status"))
    local kib = tonumber(f:read("a"):match("VmRSS:%s+(%d+)"))
    f:close()
    return kib
  end

  setup(function()
    if not cluster.available() then return end
    cluster.must("apply --server-side --force-conflicts -k " .. cluster.q(ROOT .. "/deploy/dev"))
    cluster.must("wait --for condition=established --timeout=60s crd/schedulerinstalls.sim.llm-d.io " ..
      "crd/simulatordeployments.sim.llm-d.io")
    for _, ns in ipairs({ tenant, tenant_sim, "other-team" }) do cluster.kubectl("create namespace " .. ns) end
    cluster.grant(tenant_sim, tenant)
    -- cluster-admin ServiceAccounts a CR author would love to borrow
    for _, ns in ipairs({ "kube-system", tenant }) do
      cluster.kubectl("create serviceaccount powerful -n " .. ns)
      cluster.kubectl(("create clusterrolebinding powerful-%s --clusterrole=cluster-admin " ..
        "--serviceaccount=%s:powerful"):format(ns, ns))
    end
    -- the other team's pods, which a selector could pick
    cluster.must("create deployment team-app -n other-team --image=registry.example/app:1 --replicas=1")
    cluster.must("label deployment team-app -n other-team llm-d.ai/role=decode")
    op = cluster.start_operator({ kubeconfig = true, args = "--scripts-configmap " .. SYS .. "/" .. CM .. " -v 1",
      wait = false })
    cluster.eventually(60, "the scripts ConfigMap synced", function()
      return op:log_find("scripts ConfigMap synced; reconciles may start")
    end)
  end)

  teardown(function()
    if not cluster.available() then return end
    io.stderr:write(("security: tried %d, contained %d\n"):format(tried, contained))
    if op then
      op:stop(15)
      if os.getenv("SCHEDSIM_E2E_VERBOSE") then io.stderr:write(op:stderr()) end
      op:cleanup()
    end
  end)

  describe("CRs", function()
    it("children in kube-system with an EPP running as its cluster-admin ServiceAccount", function()
      if not need_cluster() then return end
      cluster.apply(schedinst("cr-kube-system", { schedulerNamespace = "kube-system",
        simulatorNamespace = "kube-system", epp = { enabled = true, name = "powerful" } }))
      refused("schedinst", "cr-kube-system", "NamespaceNotGranted", "namespace kube-system does not grant")
      no_object("deployment", "powerful", "kube-system")
    end)

    it("a proxy Service in another team's namespace selecting its pods", function()
      if not need_cluster() then return end
      cluster.apply(schedinst("cr-other-team", { simulatorNamespace = "other-team",
        proxyService = { name = "steal", selector = { ["llm-d.ai/role"] = "decode" } } }))
      refused("schedinst", "cr-other-team", "NamespaceNotGranted", "namespace other-team does not grant")
      no_object("service", "steal", "other-team")
    end)

    it("an EPP named after an existing cluster-admin ServiceAccount of its own namespace", function()
      if not need_cluster() then return end
      cluster.apply(schedinst("cr-borrow", { schedulerNamespace = tenant, simulatorNamespace = tenant_sim,
        epp = { enabled = true, name = "powerful" } }))
      refused("schedinst", "cr-borrow", "Conflict", "ServiceAccount tenant/powerful exists")
      no_object("deployment", "powerful", tenant)
    end)
  end)

  describe("selectors", function()
    it("a proxy Service selecting pods someone else deployed is reported until those pods consent", function()
      if not need_cluster() then return end
      -- a bystander's pods in the granted namespace, with the decode label
      local function bystander(selectable)
        local labels = { app = "bystander", ["llm-d.ai/role"] = "decode" }
        if selectable then labels["sim.llm-d.io/selectable"] = "true" end
        cluster.apply({ apiVersion = "apps/v1", kind = "Deployment",
          metadata = { name = "bystander", namespace = tenant_sim },
          spec = { replicas = 1, selector = { matchLabels = { app = "bystander" } },
            template = { metadata = { labels = labels },
              spec = { containers = { { name = "app", image = "registry.example/app:1" } } } } } })
      end
      bystander(false)
      cluster.apply(schedinst("cr-selector", { schedulerNamespace = tenant, simulatorNamespace = tenant_sim,
        proxyService = { name = "sel-proxy", selector = { ["llm-d.ai/role"] = "decode" } } }))
      refused("schedinst", "cr-selector", "SelectorMatchesForeignPods",
        "Service " .. tenant_sim .. "/sel-proxy selects pod")
      local obj = cluster.get("schedinst", "cr-selector", tenant)
      local degraded = condition(obj, "Degraded")
      assert.equals("True", degraded and degraded.status)
      assert.matches("(ReplicaSet bystander-", degraded.message, 1, true)
      -- the Service itself was applied: the check warns, it does not refuse
      assert.is_truthy(cluster.get("service", "sel-proxy", tenant_sim))
      -- the pods' owner consents: the warning clears on the next look (within a minute)
      bystander(true)
      cluster.eventually(100, "the selector warning cleared", function()
        local c = condition(cluster.get("schedinst", "cr-selector", tenant), "Ready")
        return c and c.reason ~= "SelectorMatchesForeignPods", c and c.reason
      end)
      cluster.kubectl("delete deployment bystander -n " .. tenant_sim)
      cluster.kubectl("delete schedinst cr-selector -n " .. tenant .. " --wait=false")
    end)
  end)

  describe("a scripts ConfigMap that passes the check", function()
    setup(function()
      if not cluster.available() then return end
      local key = "simulatordeployment.reconcile.lua"
      local src = read(ROOT .. "/scripts/simulatordeployment/reconcile.lua")
      local overlay = src:gsub("\nreturn M%s*$", function() return "\n" .. HOSTILE .. "\nreturn M\n" end)
      assert(overlay ~= src, "no `return M` at the end of simulatordeployment/reconcile.lua")
      local eng = require("k8sengine").load(ROOT .. "/scripts", { overlay = { [key] = overlay },
        origin = "configmap" })
      local ok, msgs = eng:check()
      local rev = eng:revision()
      eng:close()
      assert(ok, "the hostile overlay must pass the check:\n" .. table.concat(msgs, "\n"))
      cluster.must("apply --server-side --force-conflicts --field-manager=spec -f -", cluster.json.encode({
        apiVersion = "v1", kind = "ConfigMap", metadata = { name = CM, namespace = SYS }, data = { [key] = overlay } }))
      -- the overlay is in use once a fresh CR carries its revision
      cluster.apply(simdep("probe"))
      cluster.eventually(60, "the overlay swapped in", function()
        local sd = cluster.get("simdep", "probe", tenant)
        return sd and sd.status and sd.status.scriptRevision == rev, sd and sd.status
      end)
    end)

    local cases = {
      { "evil-rb-kube-system", "NamespaceNotGranted", "RoleBinding kube-system/evil-binding",
        { "rolebinding", "evil-binding", "kube-system" } },
      { "evil-rb-cluster-admin", "IdentityRefused", "roleRef.kind ClusterRole",
        { "rolebinding", "evil-binding", tenant } },
      { "evil-deploy-kube-system", "NamespaceNotGranted", "Deployment kube-system/evil",
        { "deployment", "evil", "kube-system" } },
      { "evil-borrow", "IdentityRefused", "serviceAccountName powerful", { "deployment", "evil", tenant } },
      { "evil-cm-other-team", "NamespaceNotGranted", "ConfigMap other-team/evil",
        { "configmap", "evil", "other-team" } },
      { "evil-role-secrets", "RoleRuleRefused", "get on secrets", { "role", "evil", tenant } },
      { "evil-secret-volume", "PodSpecRefused", "pods may not mount Secrets", { "deployment", "evil", tenant } },
      { "evil-host", "PodSpecRefused", "hostNetwork", { "deployment", "evil", tenant } },
    }
    for _, c in ipairs(cases) do
      it(c[1] .. " is refused (" .. c[2] .. ") and nothing of its set is written", function()
        if not need_cluster() then return end
        cluster.apply(simdep(c[1]))
        refused("simdep", c[1], c[2], c[3])
        no_object(c[4][1], c[4][2], c[4][3])
        no_object("deployment", "ms-sim-" .. c[1] .. "-decode", tenant) -- the legitimate child is held too
      end)
    end

    it("a reconcile in an endless loop fails on its budget and backs off; other CRs go on", function()
      if not need_cluster() then return end
      for i = 1, 10 do cluster.apply(simdep("evil-loop-" .. i)) end
      for i = 1, 10 do refused("simdep", "evil-loop-" .. i, "ReconcileError", "instruction budget exceeded") end
      cluster.apply(simdep("fine"))
      cluster.eventually(60, "an unrelated SimulatorDeployment served", function()
        return cluster.get("deployment", "ms-sim-fine-decode", tenant)
      end)
      -- the loops back off (1 s, 2 s, 4 s ...): few attempts each in 20 s
      local before = #op:log("reconcile failed")
      cluster.sleep(20)
      local attempts = #op:log("reconcile failed") - before
      assert.is_true(attempts <= 10 * 6, ("%d failed attempts of 10 looping CRs in 20 s"):format(attempts))
    end)

    it("requeue_after of 1 µs is honoured as 1 s", function()
      if not need_cluster() then return end
      tried = tried + 1
      cluster.apply(simdep("evil-requeue"))
      cluster.eventually(60, "evil-requeue reconciled", function()
        return #op:log("reconciled", function(l) return l.key == tenant .. "/evil-requeue" end) > 0
      end)
      local n0 = #op:log("reconciled", function(l) return l.key == tenant .. "/evil-requeue" end)
      cluster.sleep(10)
      local n = #op:log("reconciled", function(l) return l.key == tenant .. "/evil-requeue" end) - n0
      assert.is_true(n >= 3 and n <= 15, ("%d reconciles in 10 s"):format(n))
      contained = contained + 1
      cluster.must("delete simdep evil-requeue -n " .. tenant .. " --wait=false")
    end)

    it("a memory bomb fails on the cap, and the memory goes back", function()
      if not need_cluster() then return end
      local before = rss_kib()
      cluster.apply(simdep("evil-memory"))
      refused("simdep", "evil-memory", "ReconcileError", "not enough memory")
      cluster.sleep(5) -- a few more attempts (backoff 1 s, 2 s)
      -- measured once no attempt can be running (one in flight holds up to the cap)
      cluster.must("delete simdep evil-memory -n " .. tenant .. " --wait=true --timeout=60s")
      cluster.sleep(2)
      local after = rss_kib()
      io.stderr:write(("security: operator RSS %d KiB before the memory bomb, %d KiB after\n"):format(before, after))
      assert.is_true(after - before < 10 * 1024, ("RSS grew by %d KiB"):format(after - before))
    end)
  end)

  it("the operator wrote nothing in kube-system or the other team's namespace", function()
    if not need_cluster() then return end
    local bad = cluster.audit(function(e)
      local o = e.objectRef or {}
      return (e.user or {}).username == "operator" and WRITES[e.verb] and e.stage == "ResponseComplete" and
        (o.namespace == "kube-system" or o.namespace == "other-team") and e.responseStatus and
        (e.responseStatus.code or 0) < 400
    end)
    local list = {}
    for _, e in ipairs(bad) do list[#list + 1] = e.verb .. " " .. (e.requestURI or "") end
    assert.same({}, list)
    for _, ns in ipairs({ "kube-system", "other-team" }) do
      local ok, owned = cluster.sh_stdout("kubectl get deploy,svc,cm,sa,role,rolebinding -n " .. ns ..
        " -l app.kubernetes.io/managed-by=schedsim-operator -o name")
      assert.is_true(ok)
      assert.equals("", owned, "objects of the operator in " .. ns)
    end
  end)
end)
