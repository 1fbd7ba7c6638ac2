-- luacheck: read globals k8s
--- Widget: `spec.count` ConfigMaps named <prefix>-<i> in the CR's namespace
--- (`spec.prefix`, default the CR's name: two Widgets with one prefix want the
--- same children), and one more in `spec.targetNamespace` when set (a
--- cross-namespace child).
--- Status: { children = n, conditions = { Ready } }. `spec.fail` raises,
--- `spec.invalid` raises a terminal error, `spec.requeue` sets requeue_after,
--- `spec.label` labels the ConfigMaps (an invalid value makes the API server
--- refuse them: 422).
local M = {}

local function ready(cr, now)
  local old
  for _, c in ipairs((cr.status or {}).conditions or {}) do
    if c.type == "Ready" then old = c end
  end
  return {
    type = "Ready", status = "True", reason = "ChildrenApplied",
    message = "all children applied",
    lastTransitionTime = (old and old.status == "True") and old.lastTransitionTime or now,
    observedGeneration = cr.metadata.generation,
  }
end

local function configmap(name, namespace, data, label)
  return {
    apiVersion = "v1", kind = "ConfigMap",
    metadata = { name = name, namespace = namespace,
      labels = { ["app.kubernetes.io/name"] = name, ["test.sim.llm-d.io/label"] = label } },
    data = data,
  }
end

function M.reconcile(cr, observed, ctx)
  local spec = cr.spec or {}
  if spec.fail then error("asked to fail: " .. tostring(spec.fail)) end
  if spec.invalid then k8s.terminal("spec.invalid: " .. tostring(spec.invalid)) end
  local children = {}
  for i = 1, spec.count or 1 do
    children[#children + 1] = configmap(string.format("%s-%d", spec.prefix or cr.metadata.name, i), nil,
      { index = tostring(i), payload = spec.payload or "" }, spec.label)
  end
  if spec.targetNamespace then
    children[#children + 1] = configmap(cr.metadata.name .. "-remote", spec.targetNamespace,
      { owner = cr.metadata.namespace .. "/" .. cr.metadata.name })
  end
  local seen = 0
  for _ in pairs(observed.children["ConfigMap.v1"]) do seen = seen + 1 end
  if ctx.finalizing then
    k8s.log.info("finalizing", { children = seen })
    return { finalized = not spec.holdFinalizer }
  end
  k8s.log.debug("reconciled", { desired = #children, observed = seen })
  return {
    children = children,
    status = { children = #children, conditions = { ready(cr, ctx.now) } },
    requeue_after = spec.requeue,
    events = spec.event and { { type = "Normal", reason = "Reconciled", message = spec.event } } or nil,
  }
end

--- Secrets labelled widget=<name> re-reconcile that Widget.
function M.map_secret(secret)
  local w = ((secret.metadata or {}).labels or {}).widget
  if not w then return {} end
  return { { namespace = secret.metadata.namespace, name = w } }
end

return M
