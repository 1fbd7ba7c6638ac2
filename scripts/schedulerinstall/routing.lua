-- The routing policy of SchedulerInstall: which backend the HTTPRoute uses,
-- when a ReferenceGrant is needed, and how the gateway's verdict on the
-- HTTPRoute reads as the RouteAccepted condition.
--
-- This module is pure: reconcile.lua gathers the facts (spec, discovery,
-- cache) and applies what `decide` returns. Editing this file (or overlaying
-- it from the scripts ConfigMap under the key "schedulerinstall.routing.lua")
-- is enough to change the policy: reorder, drop or add entries of M.checks,
-- change M.fallback_default, M.portless_pool_classes or M.gateway_hints.
-- doc/scheduler-workflow.md describes the policy.
local M = {}

-- spec.routing.fallback when unset: what the route does when backendType is
-- InferencePool and a check fails. "ProxyService": route to the proxy Service
-- (requests bypass the EPP) and say why; "None": withhold the HTTPRoute.
M.fallback_default = "ProxyService"

-- Gateway classes whose InferencePool support ignores or rejects a port on
-- the backendRef (kgateway PR #11450): the port is left out for them.
M.portless_pool_classes = { kgateway = true, agentgateway = true }

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

--- The checks an InferencePool must pass, in order. Each returns true, or
--- false, reason, message. `f` are the facts (see M.decide).
M.checks = {
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
  function(f) -- the pool exists, or we create it
    local p = f.pool
    if p.managed or p.object then return true end
    return false, "InferencePoolNotFound",
      ("InferencePool %s (%s) not found; create it or set spec.routing.inferencePool.managed: true")
        :format(pool_key(p), p.apiVersion)
  end,
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
  function(f) -- an EPP serves it
    if f.epp.enabled then return true end
    return false, "EPPDisabled",
      ("spec.epp.enabled is false: no endpoint picker serves InferencePool %s"):format(pool_key(f.pool))
  end,
  function(f) -- and it is the pool this EPP watches
    local p = f.pool
    if f.epp.pool_name == p.name and f.epp.pool_namespace == p.namespace then return true end
    return false, "EPPPoolMismatch",
      ("the EPP serves InferencePool %s/%s (spec.epp.poolNamespace/poolName) but the route uses %s")
        :format(f.epp.pool_namespace, f.epp.pool_name, pool_key(p))
  end,
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

--- Runs M.checks: true, nil, message on success; false, reason, message on
--- the first failure.
function M.check_pool(f)
  for _, check in ipairs(M.checks) do
    local ok, reason, message = check(f)
    if not ok then return false, reason, message end
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
  if p.port and not M.portless_pool_classes[f.gateway_class] then ref.port = p.port end
  return ref
end

--- The ReferenceGrant a route in `route_ns` needs for `ref`, or nil when the
--- backend is in the route's namespace. Names the exact group, kind and name.
function M.grant(route_ns, ref, route_name)
  if not ref or ref.namespace == nil or ref.namespace == route_ns then return nil end
  return {
    name = M.grant_name(route_ns, route_name),
    namespace = ref.namespace,
    from = { { group = "gateway.networking.k8s.io", kind = "HTTPRoute", namespace = route_ns } },
    to = { { group = ref.group, kind = ref.kind, name = ref.name } },
  }
end

--- The decision. Facts `f`:
---   cr             { metadata = { name, namespace, labels, annotations }, spec }: a
---                  copy of the SchedulerInstall, e.g. to route by a label
---   backend_type   "Service" | "InferencePool" (spec.routing.backendType)
---   fallback       "ProxyService" | "None" | nil (spec.routing.fallback)
---   route_namespace, route_name, gateway_class
---   service        { name, namespace, port }              the proxy Service
---   serving_port, serving_port_field                      decode serving port and the field it came from
---   epp            { enabled, pool_name, pool_namespace }
---   pool           { name, namespace, group, version, apiVersion, served, requested_apiVersion,
---                    managed, object, target_ports = { n, ... }, port }
---   pool_applies   evaluate the pool (backendType InferencePool, or an EPP that needs it)
--- Returns { backend = "Service"|"InferencePool"|"None", ref, grant, fallback = bool,
---           pool = { status, reason, message } or nil when the pool does not apply }.
function M.decide(f)
  local d = { fallback = false }
  local ok, reason, message
  if f.pool_applies then
    ok, reason, message = M.check_pool(f)
    d.pool = { status = ok and "True" or "False", reason = reason, message = message }
  end
  if f.backend_type == "InferencePool" and ok then
    d.backend = "InferencePool"
    d.ref = M.backend_ref("InferencePool", f)
  elseif f.backend_type == "InferencePool" then
    local mode = f.fallback or M.fallback_default
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

-- Hints appended to RouteAccepted messages, by pattern on the gateway's
-- message or reason (doc/trouble-shooting.md, RouteAccepted). `reason` replaces the
-- gateway's reason when set.
M.gateway_hints = {
  { match = "InferencePool is not enabled", reason = "InferencePoolUnsupportedByGateway",
    hint = "set ENABLE_GATEWAY_API_INFERENCE_EXTENSION=true in istiod" },
  { reason_is = "RefNotPermitted",
    hint = "a ReferenceGrant in the backend namespace must allow HTTPRoute from the route namespace "
      .. "for the backend's exact group and kind" },
  { reason_is = "BackendNotFound", pool_only = true,
    hint = "for kgateway/agentgateway, install the gateway with inferenceExtension.enabled=true" },
}

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
      for _, h in ipairs(M.gateway_hints) do
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
