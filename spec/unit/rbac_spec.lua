-- The shipped RBAC (deploy/rbac/) against what the operator does, without a
-- cluster:
--   * the ClusterRole grants exactly the (apiGroup, resource, verb) triples
--     derived from scripts/controllers.lua (for_ / owns / watches), the
--     runtime's own needs (CR /status and /finalizers, events.k8s.io Events,
--     ConfigMaps for --scripts-configmap) and, for RBAC escalation prevention,
--     every rule of every EPP Role the scripts can emit; no wildcards;
--   * a kind added to controllers.lua without a rule makes this spec fail;
--   * the leader-election Role holds the Lease verbs of the runtime, in one
--     namespace;
--   * `kubectl kustomize deploy/` (and deploy/dev) builds, with the objects
--     users expect, consistent names, and the CRD copies equal to crds/.
-- spec/e2e/rbac_spec.lua proves the same rules sufficient and minimal on a
-- live API server.
local fake = require("fake_k8s")

local ROOT = os.getenv("SCHEDSIM_ROOT") or "."

local shell = require("cluster") -- spec/support/cluster.lua: the shared shell helpers
local q, sh = shell.q, shell.sh

local function load_yaml(path)
  return fake.yaml_load_file(ROOT .. "/" .. path)
end

-- ------------------------------------------------------------ derivation

--- The resource name of a kind (the API's lower-case plural).
local function plural(kind)
  local k = kind:lower()
  if k:match("[^aeiou]y$") then return k:sub(1, -2) .. "ies" end
  if k:match("s$") or k:match("x$") or k:match("ch$") or k:match("sh$") then return k .. "es" end
  return k .. "s"
end

local function group_of(api_version)
  return api_version:match("^(.*)/[^/]+$") or ""
end

local function add(set, group, resource, verbs, why)
  for _, v in ipairs(verbs) do
    local key = group .. "|" .. resource .. "|" .. v
    set[key] = set[key] or why
  end
end

-- What the runtime does per kind role (doc/architecture.md, runtime/controller.c):
local CR_VERBS = { "list", "watch", "patch" }           -- informer; finalizer (apply, merge patch)
local STATUS_VERBS = { "patch" }                         -- server-side apply on /status
local FINALIZERS_VERBS = { "update" }                    -- blockOwnerDeletion (OwnerReferencesPermissionEnforcement)
local OWNS_VERBS = { "get", "list", "watch", "create", "patch", "delete" } -- probe; informer; SSA; prune
local WATCHES_VERBS = { "list", "watch" }                -- informer only
-- Leader election (runtime/kube/leaderelection.c): GET, POST when absent, PUT.
local LEASE_VERBS = { "create", "get", "update" }

-- Lease rights an HA EPP's Role grants live in their own ClusterRole, bound
-- only where HA EPPs run (deploy/rbac/epp_leases_cluster_role.yaml), never
-- in the cluster-wide one.
local LEASES = { ["coordination.k8s.io|leases"] = true }

--- Every EPP Role rule the scripts can emit: the rows of
--- lib.epp (both rule sets: the version rows SchedulerInstall uses and the
--- read-only set of SimulatorDeployment), for one and for several EPP replicas.
local function epp_rules()
  fake.install({})
  local rules = {}
  local epp = require("lib.epp")
  for _, row in ipairs(epp.rows) do
    for _, set in ipairs({ "row", "read-only" }) do
      for _, n in ipairs({ 1, 2 }) do
        for _, r in ipairs(epp.rules(row, n, set)) do rules[#rules + 1] = r end
      end
    end
  end
  return rules
end

--- The triples the ClusterRole must grant: key "group|resource|verb" -> why.
local function expected_triples(controllers)
  local want = {}
  for _, c in ipairs(controllers) do
    local g, r = group_of(c.for_.apiVersion), plural(c.for_.kind)
    add(want, g, r, CR_VERBS, c.name .. " for_")
    add(want, g, r .. "/status", STATUS_VERBS, c.name .. " status")
    add(want, g, r .. "/finalizers", FINALIZERS_VERBS, c.name .. " owner references")
    for _, o in ipairs(c.owns or {}) do
      add(want, group_of(o.apiVersion), plural(o.kind), OWNS_VERBS, c.name .. " owns " .. o.kind)
    end
    for _, w in ipairs(c.watches or {}) do
      add(want, group_of(w.apiVersion), plural(w.kind), WATCHES_VERBS, c.name .. " watches " .. w.kind)
    end
  end
  add(want, "events.k8s.io", "events", { "create", "patch" }, "Events on the CRs, their series")
  add(want, "", "namespaces", { "list", "watch" }, "the grant labels (doc/security.md)")
  add(want, "apiextensions.k8s.io", "customresourcedefinitions", { "list", "watch" },
    "discovery refreshed on CRD changes (runtime/kube/crdwatch.c)")
  add(want, "", "configmaps", { "list", "watch" }, "--scripts-configmap")
  for _, rule in ipairs(epp_rules()) do
    for _, g in ipairs(rule.apiGroups) do
      for _, r in ipairs(rule.resources) do
        if not LEASES[g .. "|" .. r] then add(want, g, r, rule.verbs, "EPP Role (escalation prevention)") end
      end
    end
  end
  return want
end

--- The triples a list of RBAC rules grants.
local function granted(rules)
  local got = {}
  for _, rule in ipairs(rules) do
    for _, g in ipairs(rule.apiGroups or {}) do
      for _, r in ipairs(rule.resources or {}) do
        add(got, g, r, rule.verbs or {}, "granted")
      end
    end
  end
  return got
end

--- Keys of a that are not in b, sorted, with a's reason.
local function minus(a, b)
  local t = {}
  for k, why in pairs(a) do
    if not b[k] then t[#t + 1] = k .. "  (" .. why .. ")" end
  end
  table.sort(t)
  return t
end

local function controllers()
  return dofile(ROOT .. "/scripts/controllers.lua")
end

local function by_kind(docs, kind, name)
  for _, d in ipairs(docs) do
    if d.kind == kind and (not name or d.metadata.name == name) then return d end
  end
  return nil
end

-- ================================================================== specs

describe("the shipped ClusterRole", function()
  local role = load_yaml("deploy/rbac/cluster_role.yaml")[1]

  it("is a ClusterRole without wildcards, resourceNames or nonResourceURLs", function()
    assert.equals("ClusterRole", role.kind)
    assert.equals("schedsim-operator", role.metadata.name)
    for i, rule in ipairs(role.rules) do
      assert.is_nil(rule.nonResourceURLs, "rule " .. i)
      assert.is_nil(rule.resourceNames, "rule " .. i)
      for _, field in ipairs({ "apiGroups", "resources", "verbs" }) do
        assert.is_true(#rule[field] > 0, ("rule %d: empty %s"):format(i, field))
        for _, v in ipairs(rule[field]) do
          assert.is_nil(tostring(v):find("*", 1, true), ("rule %d: wildcard in %s"):format(i, field))
        end
      end
    end
  end)

  it("grants every triple controllers.lua, the runtime and the EPP Roles need", function()
    assert.same({}, minus(expected_triples(controllers()), granted(role.rules)))
  end)

  it("grants nothing else", function()
    assert.same({}, minus(granted(role.rules), expected_triples(controllers())))
  end)

  it("holds no lease right (an HA EPP's leases come from a RoleBinding where it runs)", function()
    for _, rule in ipairs(role.rules) do
      assert.is_nil(table.concat(rule.resources, ","):find("leases", 1, true))
    end
  end)

  it("with the EPP leases ClusterRole holds every permission of every EPP Role the scripts emit", function()
    local got = granted(role.rules)
    for k, v in pairs(granted(load_yaml("deploy/rbac/epp_leases_cluster_role.yaml")[1].rules)) do got[k] = v end
    local missing = {}
    for _, rule in ipairs(epp_rules()) do
      for _, g in ipairs(rule.apiGroups) do
        for _, r in ipairs(rule.resources) do
          for _, v in ipairs(rule.verbs) do
            if not got[g .. "|" .. r .. "|" .. v] then missing[#missing + 1] = g .. "|" .. r .. "|" .. v end
          end
        end
      end
    end
    assert.same({}, missing)
  end)

  it("names each (apiGroup, resource) in one rule per purpose, so each can be removed alone", function()
    -- the e2e minimality spec removes one resource from one rule at a time
    local seen = {}
    for i, rule in ipairs(role.rules) do
      for _, g in ipairs(rule.apiGroups) do
        for _, r in ipairs(rule.resources) do
          local key = g .. "|" .. r .. "|" .. table.concat(rule.verbs, ",")
          assert.is_nil(seen[key], ("rule %d repeats %s"):format(i, key))
          seen[key] = true
        end
      end
    end
  end)

  it("fails this spec when a kind is added to controllers.lua without a rule", function()
    local cs = controllers()
    table.insert(cs[1].owns, { apiVersion = "batch/v1", kind = "Job" })
    table.insert(cs[2].watches, { apiVersion = "policy/v1", kind = "PodDisruptionBudget", map = "x.y" })
    local missing = minus(expected_triples(cs), granted(role.rules))
    local text = table.concat(missing, "\n")
    assert.matches("batch|jobs|create", text, 1, true)
    assert.matches("batch|jobs|delete", text, 1, true)
    assert.matches("policy|poddisruptionbudgets|watch", text, 1, true)
    assert.equals(8, #missing) -- six verbs of the owned kind, two of the watched
  end)

  it("maps kinds to their resource names", function()
    assert.equals("endpointslices", plural("EndpointSlice"))
    assert.equals("httproutes", plural("HTTPRoute"))
    assert.equals("inferencepools", plural("InferencePool"))
    assert.equals("policies", plural("Policy"))
    assert.equals("gateways", plural("Gateway"))
    assert.equals("ingresses", plural("Ingress"))
  end)
end)

describe("the leader-election Role", function()
  local role = load_yaml("deploy/rbac/leader_election_role.yaml")[1]
  local binding = load_yaml("deploy/rbac/leader_election_role_binding.yaml")[1]

  it("is namespaced and grants the Lease verbs the runtime uses, nothing else", function()
    assert.equals("Role", role.kind)
    local want = {}
    add(want, "coordination.k8s.io", "leases", LEASE_VERBS, "leader election")
    assert.same(want, (function()
      local got = granted(role.rules)
      for k in pairs(got) do got[k] = "leader election" end
      return got
    end)())
  end)

  it("is bound to the operator's ServiceAccount", function()
    assert.equals(role.metadata.name, binding.roleRef.name)
    assert.equals("Role", binding.roleRef.kind)
    assert.same({ kind = "ServiceAccount", name = "schedsim-operator", namespace = "schedsim-system" },
      binding.subjects[1])
  end)
end)

describe("deploy/ (kustomize)", function()
  local have_kubectl = (sh("command -v kubectl"))
  local function build(dir)
    local ok, out = sh("kubectl kustomize " .. q(ROOT .. "/" .. dir))
    assert(ok, "kubectl kustomize " .. dir .. " failed:\n" .. out)
    return fake.yaml_load_all(out)
  end

  it("builds, with every object in schedsim-system and the ServiceAccount bound", function()
    if not have_kubectl then
      pending("needs kubectl")
      return
    end
    local docs = build("deploy")
    local kinds = {}
    for _, d in ipairs(docs) do
      kinds[#kinds + 1] = d.kind .. "/" .. d.metadata.name
      if d.kind ~= "Namespace" and d.kind ~= "CustomResourceDefinition" and not d.kind:match("^Cluster") then
        assert.equals("schedsim-system", d.metadata.namespace, d.kind .. "/" .. d.metadata.name)
      end
    end
    table.sort(kinds)
    assert.same({
      "ClusterRole/schedsim-operator",
      "ClusterRole/schedsim-operator-epp-leases",
      "ClusterRoleBinding/schedsim-operator",
      "ConfigMap/schedsim-scripts",
      "CustomResourceDefinition/schedulerinstalls.sim.llm-d.io",
      "CustomResourceDefinition/simulatordeployments.sim.llm-d.io",
      "Deployment/schedsim-operator",
      "Namespace/schedsim-system",
      "PodDisruptionBudget/schedsim-operator",
      "Role/schedsim-operator-leader-election",
      "RoleBinding/schedsim-operator-leader-election",
      "Service/schedsim-operator-metrics",
      "ServiceAccount/schedsim-operator",
    }, kinds)
    local crb = by_kind(docs, "ClusterRoleBinding")
    assert.equals("schedsim-operator", crb.roleRef.name)
    assert.same({ kind = "ServiceAccount", name = "schedsim-operator", namespace = "schedsim-system" },
      crb.subjects[1])
    assert.equals("schedsim-operator", by_kind(docs, "Deployment").spec.template.spec.serviceAccountName)
  end)

  it("runs 2 replicas with leader election, probes, metrics, read-only root, non-root, sized requests", function()
    if not have_kubectl then
      pending("needs kubectl")
      return
    end
    local docs = build("deploy")
    local dep = by_kind(docs, "Deployment")
    local pod = dep.spec.template.spec
    local c = pod.containers[1]
    assert.equals(2, dep.spec.replicas)
    local args = table.concat(c.args, " ")
    assert.matches("^run ", args)
    assert.matches("--leader-elect", args, 1, true)
    assert.matches("--leader-election-namespace=$(POD_NAMESPACE)", args, 1, true)
    assert.equals("metadata.namespace", c.env[1].valueFrom.fieldRef.fieldPath)
    -- the ConfigMap named by --scripts-configmap is shipped
    local cm = args:match("%-%-scripts%-configmap=%$%(POD_NAMESPACE%)/(%S+)")
    assert.is_truthy(cm)
    assert.is_truthy(by_kind(docs, "ConfigMap", cm))
    local ports = {}
    for _, p in ipairs(c.ports) do ports[p.name] = p.containerPort end
    assert.equals(8080, ports.metrics)
    assert.equals(8081, ports.health)
    assert.matches("--metrics-bind-address=:8080", args, 1, true)
    assert.matches("--health-probe-bind-address=:8081", args, 1, true)
    assert.equals("/healthz", c.livenessProbe.httpGet.path)
    assert.equals("/readyz", c.readinessProbe.httpGet.path)
    assert.equals("health", c.livenessProbe.httpGet.port)
    assert.is_true(c.securityContext.readOnlyRootFilesystem)
    assert.is_false(c.securityContext.allowPrivilegeEscalation)
    assert.same({ "ALL" }, c.securityContext.capabilities.drop)
    assert.is_true(pod.securityContext.runAsNonRoot)
    assert.is_true(pod.securityContext.runAsUser > 0)
    assert.is_truthy(c.resources.requests.cpu)
    assert.is_truthy(c.resources.requests.memory)
    assert.is_truthy(c.resources.limits.memory)
    -- the metrics Service selects the pods and targets the metrics port
    local svc = by_kind(docs, "Service", "schedsim-operator-metrics")
    assert.same(dep.spec.selector.matchLabels, svc.spec.selector)
    assert.equals("metrics", svc.spec.ports[1].targetPort)
  end)

  it("ships the CRDs of crds/ unchanged (one source: deploy/crd uses crds/ as a base)", function()
    if not have_kubectl then
      pending("needs kubectl")
      return
    end
    local shipped = {}
    for _, d in ipairs(build("deploy")) do
      if d.kind == "CustomResourceDefinition" then shipped[d.metadata.name] = d end
    end
    local ok, out = sh("ls " .. q(ROOT .. "/crds") .. "/*.yaml")
    assert(ok, out)
    local n = 0
    for f in out:gmatch("[^\n]+") do
      local crd = fake.yaml_load_file(f)[1]
      n = n + 1
      assert.same(crd.spec, shipped[crd.metadata.name] and shipped[crd.metadata.name].spec, f)
    end
    assert.equals(2, n)
    assert.is_false(sh("test -e " .. q(ROOT .. "/deploy/crd/bases")), "deploy/crd/bases: copies are back")
  end)

  it("deploy/dev binds the same roles to the user `operator` for out-of-cluster runs", function()
    if not have_kubectl then
      pending("needs kubectl")
      return
    end
    local docs = build("deploy/dev")
    local crb = by_kind(docs, "ClusterRoleBinding", "schedsim-operator-dev")
    assert.equals("schedsim-operator", crb.roleRef.name)
    assert.same({ apiGroup = "rbac.authorization.k8s.io", kind = "User", name = "operator" }, crb.subjects[1])
    local rb = by_kind(docs, "RoleBinding", "schedsim-operator-leader-election-dev")
    assert.equals("schedsim-system", rb.metadata.namespace)
    assert.equals("schedsim-operator-leader-election", rb.roleRef.name)
    assert.is_truthy(by_kind(docs, "ClusterRole", "schedsim-operator"))
    assert.is_truthy(by_kind(docs, "CustomResourceDefinition", "simulatordeployments.sim.llm-d.io"))
    assert.is_nil(by_kind(docs, "Deployment"))
  end)
end)
