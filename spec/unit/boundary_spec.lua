-- The security boundary the runtime enforces on every child a script emits
-- (runtime/lua/boundary.c, doc/security.md), whatever the script: a hostile
-- reconciler (as a scripts ConfigMap overlay could carry) emits each escape,
-- and the engine must refuse it, hold the rest of the set, and say why in
-- Ready. Also: conflicts hold the set, drift is seen through the field set
-- our field manager owns. Runs in the production engine through k8sengine.
local k8sengine = require("k8sengine")

local eng

-- A controller whose reconciler is the Lua chunk in spec.code (as the probe
-- of spec/support/testscripts), owning every kind an escape could use.
local CONTROLLERS = [[return { {
  name = "hostile",
  for_ = { apiVersion = "test.sim.llm-d.io/v1alpha1", kind = "Probe" },
  module = "hostile",
  owns = {
    { apiVersion = "v1", kind = "ConfigMap" },
    { apiVersion = "v1", kind = "Secret" },
    { apiVersion = "v1", kind = "Service" },
    { apiVersion = "v1", kind = "ServiceAccount" },
    { apiVersion = "apps/v1", kind = "Deployment" },
    { apiVersion = "rbac.authorization.k8s.io/v1", kind = "Role" },
    { apiVersion = "rbac.authorization.k8s.io/v1", kind = "RoleBinding" },
    { apiVersion = "rbac.authorization.k8s.io/v1", kind = "ClusterRoleBinding" },
  },
} }]]
local HOSTILE = [[local M = {}
function M.reconcile(cr, observed, ctx)
  local f = assert(load(cr.spec.code, "=hostile"))
  return f(cr, observed, ctx) or {}
end
return M]]

local function cr(code)
  return { apiVersion = "test.sim.llm-d.io/v1alpha1", kind = "Probe",
    metadata = { name = "p", namespace = "tenant", uid = "uid-p", generation = 1 }, spec = { code = code } }
end

local function ns(name, labels)
  return { apiVersion = "v1", kind = "Namespace", metadata = { name = name, labels = labels } }
end

--- Reconciles children (Lua table constructor text) with grants read from labels.
local function run(children, observed)
  return eng:reconcile("hostile", cr("return { children = { " .. children .. " } }"),
    { grants = "labels", observed = observed or { ns("tenant"), ns("other") } })
end

local function act(r, name, kind)
  for _, a in ipairs(r.actions) do
    if a.name == name and (not kind or a.kind == kind) then return a end
  end
  error("no action for " .. name)
end

local function ready(r)
  for _, c in ipairs(r.status.conditions or {}) do
    if c.type == "Ready" then return c end
  end
end

local SA = [[{ apiVersion = "v1", kind = "ServiceAccount", metadata = { name = "epp" } }]]
local function deploy(podspec)
  return ([[{ apiVersion = "apps/v1", kind = "Deployment", metadata = { name = "d" },
    spec = { selector = { matchLabels = { a = "b" } }, template = { metadata = { labels = { a = "b" } },
      spec = %s } } }]]):format(podspec)
end
local CONTAINER = [[containers = { { name = "c", image = "i" } }]]

--- Asserts that r refused child `name` with reason, held the others, and says so in Ready.
local function refused(r, name, reason, text)
  assert.is_nil(r.error)
  local a = act(r, name)
  assert.equals("refused", a.action, "action of " .. name)
  assert.equals(reason, a.reason)
  if text then assert.matches(text, a.message, 1, true) end
  for _, other in ipairs(r.actions) do
    assert.is_true(other.action == "refused" or other.action == "held" or other.action == "unchanged",
      other.name .. " is " .. other.action .. " while the set has a refused child")
  end
  local c = ready(r)
  assert.equals("False", c.status)
  assert.equals(reason, c.reason)
  assert.matches("nothing of this set is written", c.message, 1, true)
  assert.same({}, r.prune)
end

describe("the security boundary", function()
  setup(function()
    local problems
    eng, problems = k8sengine.load(nil, { overlay = { ["controllers.lua"] = CONTROLLERS, ["hostile.lua"] = HOSTILE } })
    assert.same({}, problems)
  end)
  teardown(function() eng:close() end)

  describe("namespaces", function()
    it("the CR's own namespace needs no grant", function()
      local r = run([[{ apiVersion = "v1", kind = "ConfigMap", metadata = { name = "c" } }]])
      assert.equals("apply", act(r, "c").action)
    end)

    it("another namespace without the grant label is refused, naming the label to set", function()
      refused(run([[{ apiVersion = "v1", kind = "ConfigMap", metadata = { name = "c", namespace = "other" } },
        { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "mine" } }]]),
        "c", "NamespaceNotGranted", "kubectl label namespace other allow-from.sim.llm-d.io/tenant=true")
    end)

    it("a grant for another source namespace does not count", function()
      refused(run([[{ apiVersion = "v1", kind = "ConfigMap", metadata = { name = "c", namespace = "other" } }]],
        { ns("tenant"), ns("other", { ["allow-from.sim.llm-d.io/someone-else"] = "true" }) }),
        "c", "NamespaceNotGranted")
    end)

    it("the grant label opens the namespace", function()
      local r = run([[{ apiVersion = "v1", kind = "ConfigMap", metadata = { name = "c", namespace = "other" } }]],
        { ns("tenant"), ns("other", { ["allow-from.sim.llm-d.io/tenant"] = "true" }) })
      assert.equals("apply", act(r, "c").action)
      assert.equals("other", r.children[1].metadata.namespace)
    end)

    it("a namespace that does not exist is named as such", function()
      refused(run([[{ apiVersion = "v1", kind = "ConfigMap", metadata = { name = "c", namespace = "nowhere" } }]]),
        "c", "TargetNamespaceNotFound", "namespace nowhere does not exist")
    end)

    it("grants = all (render, fixtures) opens every namespace", function()
      local r = eng:reconcile("hostile", cr([[return { children = {
        { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "c", namespace = "other" } } } }]]))
      assert.equals("apply", act(r, "c").action)
    end)
  end)

  describe("kinds", function()
    it("a cluster-scoped kind is never written", function()
      refused(run([[{ apiVersion = "rbac.authorization.k8s.io/v1", kind = "ClusterRoleBinding",
        metadata = { name = "take-over" }, roleRef = { apiGroup = "rbac.authorization.k8s.io", kind = "ClusterRole",
        name = "cluster-admin" }, subjects = { { kind = "User", name = "mallory" } } }]]),
        "take-over", "KindRefused", "cluster-scoped")
    end)

    it("a Secret is never written", function()
      refused(run([[{ apiVersion = "v1", kind = "Secret", metadata = { name = "s" } }]]), "s", "KindRefused")
    end)
  end)

  describe("identities", function()
    it("a pod may run as a ServiceAccount the same reconcile emits", function()
      local r = run(SA .. ", " .. deploy("{ serviceAccountName = 'epp', " .. CONTAINER .. " }"))
      assert.equals("apply", act(r, "d").action)
      r = run(deploy("{ " .. CONTAINER .. " }"))
      assert.equals("apply", act(r, "d").action, "no ServiceAccount: the namespace default")
    end)

    it("a pod may not borrow another ServiceAccount", function()
      refused(run(deploy("{ serviceAccountName = 'powerful', " .. CONTAINER .. " }")), "d",
        "IdentityRefused", "serviceAccountName powerful")
      refused(run(deploy("{ serviceAccount = 'default', " .. CONTAINER .. " }")), "d", "IdentityRefused")
    end)

    local ROLE = [[{ apiVersion = "rbac.authorization.k8s.io/v1", kind = "Role", metadata = { name = "r" },
      rules = { { apiGroups = { "" }, resources = { "pods" }, verbs = { "get", "list", "watch" } } } }]]
    local function binding(ref_kind, ref_name, subject)
      return ([[{ apiVersion = "rbac.authorization.k8s.io/v1", kind = "RoleBinding", metadata = { name = "b" },
        roleRef = { apiGroup = "rbac.authorization.k8s.io", kind = %q, name = %q }, subjects = { %s } }]])
        :format(ref_kind, ref_name, subject)
    end
    local OWN_SA = [[{ kind = "ServiceAccount", name = "epp", namespace = "tenant" }]]

    it("a RoleBinding of the CR's own Role to its own ServiceAccount is fine", function()
      local r = run(table.concat({ SA, ROLE, binding("Role", "r", OWN_SA) }, ", "))
      assert.equals("apply", act(r, "b").action)
    end)

    it("a ClusterRole is never bound", function()
      refused(run(table.concat({ SA, binding("ClusterRole", "cluster-admin", OWN_SA) }, ", ")), "b",
        "IdentityRefused", "roleRef.kind ClusterRole")
    end)

    it("a Role the reconcile does not emit is never bound", function()
      refused(run(table.concat({ SA, binding("Role", "admin", OWN_SA) }, ", ")), "b", "IdentityRefused",
        "roleRef.name admin")
    end)

    it("a user, a group or a foreign ServiceAccount is never a subject", function()
      for _, subject in ipairs({ [[{ kind = "User", name = "mallory" }]],
        [[{ kind = "Group", name = "system:masters" }]],
        [[{ kind = "ServiceAccount", name = "default", namespace = "kube-system" }]] }) do
        refused(run(table.concat({ SA, ROLE, binding("Role", "r", subject) }, ", ")), "b", "IdentityRefused",
          "subjects[0]")
      end
    end)
  end)

  describe("pod templates", function()
    local cases = {
      { "a Secret volume", "{ volumes = { { name = 's', secret = { secretName = 'x' } } }, " .. CONTAINER .. " }",
        "volumes[0] (s).secret" },
      { "a projected Secret", "{ volumes = { { name = 'p', projected = { sources = "
        .. "{ { secret = { name = 'x' } } } } } }, " .. CONTAINER .. " }", "projected.sources[0].secret" },
      { "a hostPath volume", "{ volumes = { { name = 'h', hostPath = { path = '/' } } }, " .. CONTAINER .. " }",
        "hostPath" },
      { "the host network", "{ hostNetwork = true, " .. CONTAINER .. " }", "hostNetwork" },
      { "a privileged container", "{ containers = { { name = 'c', image = 'i', "
        .. "securityContext = { privileged = true } } } }", "privileged" },
      { "added capabilities", "{ containers = { { name = 'c', image = 'i', "
        .. "securityContext = { capabilities = { add = { 'SYS_ADMIN' } } } } } }", "capabilities.add" },
      { "env from a Secret", "{ containers = { { name = 'c', image = 'i', "
        .. "envFrom = { { secretRef = { name = 'x' } } } } } }", "envFrom[0].secretRef" },
      { "a Secret key in env", "{ initContainers = { { name = 'i', image = 'i', env = { { name = 'T', valueFrom = "
        .. "{ secretKeyRef = { name = 'x', key = 'k' } } } } } }, " .. CONTAINER .. " }", "initContainers[0]" },
    }
    for _, c in ipairs(cases) do
      it("refuses " .. c[1], function()
        refused(run(deploy(c[2])), "d", "PodSpecRefused", c[3])
      end)
    end
  end)

  describe("Role rules", function()
    local function role(rule)
      return ([[{ apiVersion = "rbac.authorization.k8s.io/v1", kind = "Role", metadata = { name = "r" },
        rules = { %s } }]]):format(rule)
    end

    it("the rights an EPP needs are fine (pods, pools, objectives, leases)", function()
      local r = run(role([[{ apiGroups = { "" }, resources = { "pods", "services", "endpoints" },
          verbs = { "get", "list", "watch" } },
        { apiGroups = { "inference.networking.k8s.io", "inference.networking.x-k8s.io" },
          resources = { "inferencepools" }, verbs = { "get", "list", "watch", "update", "patch" } },
        { apiGroups = { "coordination.k8s.io" }, resources = { "leases" }, verbs = { "get", "create", "update" } }]]))
      assert.equals("apply", act(r, "r").action)
    end)

    for _, c in ipairs({
      { "secrets", [[{ apiGroups = { "" }, resources = { "secrets" }, verbs = { "get" } }]], "get on secrets" },
      { "a wildcard", [[{ apiGroups = { "*" }, resources = { "*" }, verbs = { "*" } }]], "* on */*" },
      { "writing Deployments", [[{ apiGroups = { "apps" }, resources = { "deployments" }, verbs = { "create" } }]],
        "create on apps/deployments" },
      { "creating RoleBindings", [[{ apiGroups = { "rbac.authorization.k8s.io" }, resources = { "rolebindings" },
        verbs = { "create" } }]], "rbac.authorization.k8s.io/rolebindings" },
      { "deleting pods", [[{ apiGroups = { "" }, resources = { "pods" }, verbs = { "delete" } }]], "delete on pods" },
    }) do
      it("refuses " .. c[1], function()
        refused(run(role(c[2])), "r", "RoleRuleRefused", c[3])
      end)
    end
  end)

  describe("conflicts and drift", function()
    local CM = [[{ apiVersion = "v1", kind = "ConfigMap", metadata = { name = "c" }, data = { k = "v" } }]]
    local function existing(labels)
      return { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "c", namespace = "tenant", labels = labels } }
    end

    it("an object owned by another CR is not taken over, and the rest of the set is held", function()
      local r = run(CM .. ", " .. SA, { ns("tenant"), existing({ ["sim.llm-d.io/owner"] = "probe.tenant.other" }) })
      assert.equals("conflict", act(r, "c").action)
      assert.equals("probe.tenant.other", act(r, "c").owner)
      assert.equals("held", act(r, "epp").action)
      assert.equals("Conflict", ready(r).reason)
      assert.matches("owned by probe.tenant.other", ready(r).message, 1, true)
    end)

    it("an unmanaged object is not taken over", function()
      local r = run(CM, { ns("tenant"), existing(nil) })
      assert.equals("conflict", act(r, "c").action)
      assert.matches("not managed by schedsim-operator", ready(r).message, 1, true)
    end)

    --- The observed child as the operator applied it, with `fields` as our field set.
    local function ours(hash, fields)
      local o = existing({ ["sim.llm-d.io/owner"] = "probe.tenant.p",
        ["app.kubernetes.io/managed-by"] = "schedsim-operator" })
      o.metadata.annotations = { ["sim.llm-d.io/desired-hash"] = hash }
      o.data = { k = "v" }
      o.metadata.managedFields = { { manager = "schedsim-operator", operation = "Apply", apiVersion = "v1",
        fieldsType = "FieldsV1", fieldsV1 = fields } }
      return o
    end

    it("drift: a field our field manager no longer owns is applied again; owned fields are unchanged", function()
      local first = run(CM)
      local hash = first.children[1].metadata.annotations["sim.llm-d.io/desired-hash"]
      local owner_fields = {
        ["f:metadata"] = { ["f:annotations"] = { ["f:sim.llm-d.io/desired-hash"] = {} },
          ["f:labels"] = { ["f:app.kubernetes.io/managed-by"] = {}, ["f:sim.llm-d.io/owner"] = {} },
          ["f:ownerReferences"] = { ['k:{"uid":"uid-p"}'] = {} } },
        ["f:data"] = { ["f:k"] = {} },
      }
      local r = run(CM, { ns("tenant"), ours(hash, owner_fields) })
      assert.equals("unchanged", act(r, "c").action)
      owner_fields["f:data"] = { ["f:garbage"] = {} } -- someone replaced data
      r = run(CM, { ns("tenant"), ours(hash, owner_fields) })
      assert.equals("apply", act(r, "c").action)
      assert.equals("Drift", act(r, "c").reason)
      assert.matches("data.k was changed by another writer", act(r, "c").message, 1, true)
    end)

    it("without a field set (render, fixtures) the desired hash alone decides", function()
      local first = run(CM)
      local o = ours(first.children[1].metadata.annotations["sim.llm-d.io/desired-hash"], nil)
      o.metadata.managedFields = nil
      assert.equals("unchanged", act(run(CM, { ns("tenant"), o }), "c").action)
    end)
  end)
end)
