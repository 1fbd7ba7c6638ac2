-- The routing mechanism of SchedulerInstall: the pool checks, which backend
-- the HTTPRoute uses, when a ReferenceGrant is needed, and how the gateway's
-- verdict on the HTTPRoute reads as the RouteAccepted condition.
--
-- The knobs it applies (fallback, portless gateway classes, hints, extra
-- checks, the backend choice) are schedulerinstall/routing.lua, patched by the
-- `routing` section of a policy overlay (doc/hot-reload.md). This module is
-- pure: reconcile.lua gathers the facts (spec, discovery, cache) and applies
-- what `decide` returns. doc/scheduler-workflow.md describes the policy.
local knobs = require("schedulerinstall.routing")

local M = {}

-- Name of the ReferenceGrant in the backend's namespace (the reference's).
--- The ReferenceGrant of a route: one per HTTPRoute (named after its
--- namespace and name), so the routes of several SchedulerInstalls into one
--- backend namespace never share (and fight over) a grant.
function M.grant_name(route_ns, route_name)
  local name = ("allow-%s-%s"):format(route_ns, route_name)
  if #name <= 253 then return name end
  return name:sub(1, 236) .. "-" .. k8s.sha256(name):sub(1, 16)
end

local function pool_key(p) return p.namespace .. "/" .. p.name end

local function ports_text(p)
  if p.version == "v1alpha2" then return "targetPortNumber" end
  return "targetPorts[0].number"
end

--- The bundled checks an InferencePool must pass, in order (after the
--- policy's `routing.extra_checks`). Each returns true, or false, reason,
--- message. `f` are the facts (RoutingFacts).
---@type (fun(f: RoutingFacts): boolean, string?, string?)[]
M.checks = {
  ---@param f RoutingFacts
  function(f) -- the pool's kind is served
    local p = f.pool
    if p.served then return true end
    if p.requested_apiVersion then
      return false, "InferencePoolUnsupported",
        ("spec.routing.inferencePool.apiVersion %s: InferencePool is not served by the API server")
          :format(p.requested_apiVersion)
    end
    return false, "InferencePoolUnsupported",
      "InferencePool is not served by the API server (neither inference.networking.k8s.io/v1 nor "
        .. "inference.networking.x-k8s.io/v1alpha2); install the Gateway API Inference Extension CRDs"
  end,
  ---@param f RoutingFacts
  function(f) -- the pool exists, or we create it
    local p = f.pool
    if p.managed or p.object then return true end
    return false, "InferencePoolNotFound",
      ("InferencePool %s (%s) not found; create it or set spec.routing.inferencePool.managed: true")
        :format(pool_key(p), p.apiVersion)
  end,
  ---@param f RoutingFacts
  function(f) -- it targets the decode serving port
    local p = f.pool
    if p.port and p.port ~= f.serving_port then
      return false, "PortMismatch",
        ("spec.routing.inferencePool.port %d != decode serving port %d (%s)")
          :format(p.port, f.serving_port, f.serving_port_field)
    end
    local ports = p.target_ports or {}
    for _, n in ipairs(ports) do
      if n == f.serving_port then return true end
    end
    return false, "PortMismatch",
      ("InferencePool %s %s %s != decode serving port %d (%s)")
        :format(pool_key(p), ports_text(p), tostring(ports[1] or "(none)"), f.serving_port, f.serving_port_field)
  end,
  ---@param f RoutingFacts
  function(f) -- an EPP serves it
    if f.epp.enabled then return true end
    return false, "EPPDisabled",
      ("spec.epp.enabled is false: no endpoint picker serves InferencePool %s"):format(pool_key(f.pool))
  end,
  ---@param f RoutingFacts
  function(f) -- and it is the pool this EPP watches
    local p = f.pool
    if f.epp.pool_name == p.name and f.epp.pool_namespace == p.namespace then return true end
    return false, "EPPPoolMismatch",
      ("the EPP serves InferencePool %s/%s (spec.epp.poolNamespace/poolName) but the route uses %s")
        :format(f.epp.pool_namespace, f.epp.pool_name, pool_key(p))
  end,
  ---@param f RoutingFacts
  function(f) -- and an existing pool sends its requests to this EPP
    local p, ref = f.pool, f.pool.epp_ref
    if p.managed or not p.object or not ref then return true end
    if ref.name == f.epp.name and (ref.port == nil or ref.port == f.epp.port) then return true end
    return false, "EPPRefMismatch",
      ("InferencePool %s %s names Service %s port %s, but this EPP is Service %s port %d "
        .. "(spec.epp.name, spec.epp.port)"):format(pool_key(p), ref.field, tostring(ref.name),
        tostring(ref.port or "(none)"), f.epp.name, f.epp.port)
  end,
}

--- Runs the policy's extra checks, then M.checks: true, "Resolved", message
--- on success; false, reason, message on the first failure.
--- @param f RoutingFacts
--- @return boolean ok
--- @return string reason
--- @return string message
function M.check_pool(f)
  for _, list in ipairs({ knobs.extra_checks, M.checks }) do
    for _, check in ipairs(list) do
      local ok, reason, message = check(f)
      if not ok then return false, reason, message end
    end
  end
  local p = f.pool
  return true, "Resolved",
    ("InferencePool %s (%s, %s) targets decode serving port %d")
      :format(pool_key(p), p.apiVersion, p.managed and "managed" or "existing", f.serving_port)
end

--- The HTTPRoute backendRef for `kind` ("Service" or "InferencePool").
function M.backend_ref(kind, f)
  if kind == "Service" then
    return { group = "", kind = "Service", name = f.service.name, namespace = f.service.namespace,
      port = f.service.port, weight = 1 }
  end
  local p = f.pool
  local ref = { group = p.group, kind = "InferencePool", name = p.name, namespace = p.namespace, weight = 1 }
  if p.port and not knobs.portless_pool_classes[f.gateway_class] then ref.port = p.port end
  return ref
end

--- The ReferenceGrant a route in `route_ns` needs for `ref`, or nil when the
--- backend is in the route's namespace. Names the exact group, kind and name.
--- `ref` is one backendRef or a list of them in one namespace (the pools of
--- spec.routing.arms): one grant naming each.
function M.grant(route_ns, ref, route_name)
  local refs = (type(ref) == "table" and ref.kind == nil) and ref or { ref }
  local first = refs[1]
  if not first or first.namespace == nil or first.namespace == route_ns then return nil end
  local to = {}
  for _, r in ipairs(refs) do to[#to + 1] = { group = r.group, kind = r.kind, name = r.name } end
  return {
    name = M.grant_name(route_ns, route_name),
    namespace = first.namespace,
    from = { { group = "gateway.networking.k8s.io", kind = "HTTPRoute", namespace = route_ns } },
    to = to,
  }
end

---@class RoutingCR                 a copy of the SchedulerInstall (changing it changes nothing)
---@field metadata RoutingCRMeta
---@field spec table                 the CR's spec as the API server holds it (no defaults applied)

---@class RoutingCRMeta
---@field name string
---@field namespace string
---@field labels table<string, string>
---@field annotations table<string, string>

---@class RoutingService
---@field name string
---@field namespace string
---@field port integer

---@class RoutingEPP
---@field enabled boolean
---@field name string                spec.epp.name (the EPP Service)
---@field port integer               spec.epp.port
---@field pool_name string
---@field pool_namespace string

---@class RoutingPool
---@field name string
---@field namespace string
---@field group string               "inference.networking.k8s.io" | "inference.networking.x-k8s.io"
---@field version string             "v1" | "v1alpha2"
---@field apiVersion string
---@field served boolean             the API server serves the kind
---@field requested_apiVersion string|nil  spec.routing.inferencePool.apiVersion
---@field managed boolean            the operator creates the pool
---@field object table|nil           the pool as the cache holds it
---@field target_ports integer[]
---@field port integer|nil           spec.routing.inferencePool.port
---@field epp_ref { name: string?, port: integer?, field: string }|nil  where an existing pool sends requests

--- The facts reconcile.lua gathers for the policy (routing.backend_type gets
--- them without `pool`, pool_applies; decide gets them all).
---@class RoutingFacts
---@field cr RoutingCR
---@field backend_type "Service"|"InferencePool"  spec.routing.backendType, then routing.backend_type's choice
---@field fallback "ProxyService"|"None"|nil      spec.routing.fallback
---@field route_namespace string
---@field route_name string
---@field gateway_class string                    spec.gateway.className
---@field service RoutingService                  the proxy Service
---@field serving_port integer                    the decode serving port
---@field serving_port_field string               the field it came from
---@field epp RoutingEPP
---@field pool RoutingPool      spec.routing.inferencePool when the route uses a pool, else the EPP's pool
---@field pool_applies boolean  evaluate the pool (backend InferencePool, or an EPP that needs it)

---@class RoutingDecision
---@field backend "Service"|"InferencePool"|"None"
---@field ref table|nil               the HTTPRoute backendRef
---@field refs table[]|nil            with spec.routing.arms: each arm's backendRef (schedulerinstall/arms.lua)
---@field grant table|nil             the ReferenceGrant, when the backend is in another namespace
---@field fallback boolean            the route fell back to the proxy Service
---@field pool { status: string, reason: string, message: string }|nil  PoolResolved, nil when the pool does not apply

--- The decision for facts `f`.
--- @param f RoutingFacts
--- @return RoutingDecision
function M.decide(f)
  local d = { fallback = false }
  local ok, reason, message
  if f.pool_applies or f.backend_type == "InferencePool" then
    ok, reason, message = M.check_pool(f)
    d.pool = { status = ok and "True" or "False", reason = reason, message = message }
  end
  if f.backend_type == "InferencePool" and ok then
    d.backend = "InferencePool"
    d.ref = M.backend_ref("InferencePool", f)
  elseif f.backend_type == "InferencePool" then
    local mode = f.fallback or knobs.fallback_default
    if mode == "ProxyService" then
      d.backend, d.fallback = "Service", true
      d.ref = M.backend_ref("Service", f)
      d.pool.message = ("%s; the route falls back to Service %s/%s (spec.routing.fallback: ProxyService)")
        :format(d.pool.message, f.service.namespace, f.service.name)
    else
      d.backend = "None"
      d.pool.message = ("%s; the HTTPRoute is withheld (spec.routing.fallback: None)"):format(d.pool.message)
    end
  else
    d.backend = "Service"
    d.ref = M.backend_ref("Service", f)
  end
  d.grant = M.grant(f.route_namespace, d.ref, f.route_name)
  return d
end

-- ------------------------------------------------- the gateway's verdict

local function find_parent(route, parent)
  local st = type(route) == "table" and route.status
  local parents = type(st) == "table" and st.parents
  if type(parents) ~= "table" then return nil end
  for _, p in ipairs(parents) do
    local ref = p.parentRef or {}
    local ns = ref.namespace or (route.metadata or {}).namespace
    if ref.name == parent.name and ns == parent.namespace then return p end
  end
  return nil
end

--- RouteAccepted from the HTTPRoute's status.parents entry for `parent`
--- ({ name, namespace }): { status, reason, message }. `route` is the observed
--- HTTPRoute (nil before it exists), `key` its "namespace/name", `ref` the
--- backendRef.
function M.route_condition(route, parent, ref, key)
  if not route then
    return { status = "Unknown", reason = "Pending", message = ("HTTPRoute %s not created yet"):format(key) }
  end
  local entry = find_parent(route, parent)
  if not entry then
    return { status = "Unknown", reason = "Pending",
      message = ("HTTPRoute %s: no status from the controller of Gateway %s/%s yet")
        :format(key, parent.namespace, parent.name) }
  end
  local gen = (route.metadata or {}).generation
  for _, c in ipairs(entry.conditions or {}) do
    if type(gen) == "number" and type(c.observedGeneration) == "number" and c.observedGeneration < gen then
      return { status = "Unknown", reason = "Pending",
        message = ("HTTPRoute %s: the gateway's status is for generation %d, the route is at %d")
          :format(key, c.observedGeneration, gen) }
    end
  end
  local conds = {}
  for _, c in ipairs(entry.conditions or {}) do conds[c.type] = c end
  for _, t in ipairs({ "Accepted", "ResolvedRefs" }) do
    local c = conds[t]
    if c and c.status == "False" then
      local reason, text = c.reason or t, c.message or ""
      local hint
      for _, h in ipairs(knobs.gateway_hints) do
        local hit = (h.match and text:find(h.match, 1, true)) or (h.reason_is and h.reason_is == c.reason)
        if hit and (not h.pool_only or (ref and ref.kind == "InferencePool")) then
          reason = h.reason or reason
          hint = h.hint
          break
        end
      end
      local msg = ("HTTPRoute %s parent Gateway %s/%s (%s): %s=False %s: %s")
        :format(key, parent.namespace, parent.name, tostring(entry.controllerName or "?"), t,
          tostring(c.reason), text)
      if hint then msg = msg .. " (" .. hint .. ")" end
      return { status = "False", reason = reason, message = msg }
    end
  end
  local acc = conds.Accepted
  if not acc or acc.status ~= "True" then
    return { status = "Unknown", reason = "Pending",
      message = ("HTTPRoute %s: Gateway %s/%s has not accepted it yet"):format(key, parent.namespace, parent.name) }
  end
  return { status = "True", reason = "Accepted",
    message = ("HTTPRoute %s accepted by Gateway %s/%s (%s)")
      :format(key, parent.namespace, parent.name, tostring(entry.controllerName or "?")) }
end

return M
