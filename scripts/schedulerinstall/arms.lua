-- A/B routing of SchedulerInstall (spec.routing.arms): the HTTPRoute splits
-- its requests by weight, and optionally by a request header, over up to two
-- InferencePool/EPP pairs, each arm with its own EndpointPickerConfig profile.
--
-- This module is the arms' data: the validated list (resolve), the resolved
-- spec one arm's EPP and pool are built from (instance: reconcile.lua feeds it
-- to the same EPP and pool builders as the single EPP), the HTTPRoute rules,
-- the combined EPPReady condition and status.arms. Names: arm `a` of EPP `e`
-- and pool `p` runs EPP `e-a` (Deployment, Service, ServiceAccount, Role,
-- RoleBinding, ConfigMap `e-a-config`) serving the managed InferencePool `p-a`
-- in the pool namespace. doc/scheduler-workflow.md, "A/B routing".
local obj = require("lib.obj")
local epp = require("lib.epp")

local M = {}

M.MAX_ARMS = 2
M.MAX_NAME = 15    -- arm name length (it suffixes the EPP and pool names)
M.MAX_WEIGHT = 1000
M.MAX_SERVICE_NAME = 63 -- the EPP Service `<epp>-<arm>` is a DNS-1035 label

local dig, array, is_set, copy = obj.dig, obj.array, obj.is_set, obj.copy

-- RFC 9110 token: the characters of an HTTP header name (Gateway API HTTPHeaderName)
local TOKEN = "^[%w!#%$%%&'%*%+%-%.%^_`|~]+$"

--- Step of resolve: arm `a` (spec.routing.arms[i], `i` 0-based in messages)
--- with its defaults, or a terminal error naming the field.
local function resolve_arm(s, a, i)
  local field = ("spec.routing.arms[%d]"):format(i)
  if type(a) ~= "table" then k8s.terminal(field .. ": must be an object") end
  local name = a.name
  if type(name) ~= "string" or #name > M.MAX_NAME or not name:match("^[a-z][-a-z0-9]*$")
    or name:sub(-1) == "-" then
    k8s.terminal(("%s.name %q: want a DNS label of at most %d characters starting with a letter")
      :format(field, tostring(name), M.MAX_NAME))
  end
  field = ("spec.routing.arms[%s]"):format(name)
  local weight = obj.default(a.weight, 1)
  if math.type(weight) ~= "integer" or weight < 0 or weight > M.MAX_WEIGHT then
    k8s.terminal(("%s.weight %s: want an integer from 0 to %d"):format(field, tostring(weight), M.MAX_WEIGHT))
  end
  -- an arm without configProfile takes spec.epp's: its profile, or its inline config
  local own = is_set(a.configProfile)
  local named = own or not s.epp.inline -- runs a profile, not spec.epp.config
  local profile = own and a.configProfile or s.epp.profile
  if named then
    local _, perr = epp.config(profile, field .. ".configProfile")
    if perr then k8s.terminal(perr) end
  end
  local header
  if is_set(a.headerMatch) then
    local h = a.headerMatch
    if type(h.name) ~= "string" or #h.name > 256 or not h.name:match(TOKEN) then
      k8s.terminal(("%s.headerMatch.name %q: not an HTTP header name (RFC 9110 token)")
        :format(field, tostring(h.name)))
    end
    if type(h.value) ~= "string" or h.value == "" or #h.value > 4096 then
      k8s.terminal(("%s.headerMatch.value: want a non-empty string of at most 4096 characters"):format(field))
    end
    header = { name = h.name, value = h.value }
  end
  local epp_name = s.epp.name .. "-" .. name
  if #epp_name > M.MAX_SERVICE_NAME then
    k8s.terminal(("%s: the arm's EPP Service %q (spec.epp.name-<arm>) is longer than %d characters")
      :format(field, epp_name, M.MAX_SERVICE_NAME))
  end
  return { name = name, weight = weight, profile = named and profile or "(spec.epp.config)",
    inline = not named and s.epp.inline or nil, header = header, field = field,
    epp_name = epp_name, pool_name = s.pool.name .. "-" .. name, pool_namespace = s.pool.namespace }
end

--- The arms of spec.routing.arms with their defaults (weight 1, configProfile
--- spec.epp.configProfile), or nil when there are none. Needs s.routing,
--- s.epp, s.pool and s.ef resolved. Raises k8s.terminal naming the field for
--- what the CRD refuses too (a CR stored before a CRD update, a fixture):
--- more than two arms, backendType other than InferencePool, the EPP
--- disabled, an EnvoyFilter (it sends every request to one EPP), a repeated
--- name, every weight 0, two arms matching the same header and value.
--- @return table[]|nil
function M.resolve(s, spec)
  local list = dig(spec, "routing", "arms")
  if list == nil or obj.is_null(list) or #list == 0 then return nil end
  if #list > M.MAX_ARMS then
    k8s.terminal(("spec.routing.arms: %d arms, at most %d"):format(#list, M.MAX_ARMS))
  end
  if s.routing.backend_type ~= "InferencePool" then
    k8s.terminal(("spec.routing.arms needs spec.routing.backendType InferencePool (it is %s): each arm is an "
      .. "InferencePool with its own EPP"):format(s.routing.backend_type))
  end
  if not s.epp.enabled then
    k8s.terminal("spec.routing.arms needs spec.epp.enabled=true: each arm runs its own EPP")
  end
  if s.ef.enabled then
    k8s.terminal("spec.routing.arms cannot be used with spec.envoyFilter.enabled: the EnvoyFilter sends every "
      .. "request to one EPP; the gateway's own InferencePool support asks each arm's EPP")
  end
  local arms, seen, any_weight = {}, {}, false
  for i, a in ipairs(list) do
    local arm = resolve_arm(s, a, i - 1)
    if seen[arm.name] then k8s.terminal(("spec.routing.arms: name %q given twice"):format(arm.name)) end
    seen[arm.name] = true
    any_weight = any_weight or arm.weight > 0
    for _, other in ipairs(arms) do
      if arm.header and other.header and arm.header.name:lower() == other.header.name:lower()
        and arm.header.value == other.header.value then
        k8s.terminal(("%s.headerMatch: arm %q matches the same header %s: %s"):format(arm.field, other.name,
          arm.header.name, arm.header.value))
      end
    end
    arms[#arms + 1] = arm
  end
  if not any_weight then
    k8s.terminal("spec.routing.arms: every weight is 0; at least one arm needs a weight above 0")
  end
  return arms
end

--- The resolved spec of arm `arm`: a copy of `s` whose epp (name, profile,
--- pool) and pool (name, always managed) are the arm's, so the EPP, pool,
--- RBAC, DestinationRule and EPPReady builders of reconcile.lua serve an arm
--- unchanged. Shares the rest of `s` (read only).
function M.instance(s, arm)
  local inst = copy(s)
  inst.epp = copy(s.epp)
  inst.epp.name, inst.epp.profile, inst.epp.inline = arm.epp_name, arm.profile, arm.inline
  inst.epp.pool_name, inst.epp.pool_namespace = arm.pool_name, arm.pool_namespace
  inst.pool = copy(s.pool)
  inst.pool.name, inst.pool.namespace, inst.pool.managed = arm.pool_name, arm.pool_namespace, true
  inst.arm = arm
  return inst
end

--- The HTTPRoute rules: one per arm with a headerMatch (path prefix "/" and
--- the header, Exact; its arm's backendRef alone), then the weighted rule with
--- one backendRef per arm (weight spec.routing.arms[].weight). `refs[i]` is
--- arm i's InferencePool backendRef; `timeouts` goes on every rule.
--- Gateway API precedence already prefers the rule with more header matches;
--- the order only makes the route read as it routes.
function M.route_rules(arms, refs, timeouts)
  local rules = {}
  local function prefix() return { type = "PathPrefix", value = "/" } end
  for i, arm in ipairs(arms) do
    if arm.header then
      local ref = copy(refs[i])
      ref.weight = 1
      rules[#rules + 1] = {
        matches = array({ { path = prefix(),
          headers = array({ { type = "Exact", name = arm.header.name, value = arm.header.value } }) } }),
        backendRefs = array({ ref }),
        timeouts = copy(timeouts),
      }
    end
  end
  local weighted = {}
  for i, arm in ipairs(arms) do
    local ref = copy(refs[i])
    ref.weight = arm.weight
    weighted[i] = ref
  end
  rules[#rules + 1] = { matches = array({ { path = prefix() } }), backendRefs = array(weighted),
    timeouts = copy(timeouts) }
  return rules
end

--- The routing decision over the arms' decisions `ds` (route.decide for each
--- arm's pool and EPP, same order as `arms`): the first arm whose pool check
--- failed decides for the whole route (its fallback, the message naming the
--- arm); when every pool resolved and the backend is InferencePool, `refs`
--- holds each arm's backendRef (`ref` the first, for RouteAccepted's hints).
--- @return RoutingDecision d  with `refs` when the route splits over the arms
function M.decide(arms, ds)
  local msgs = {}
  for i, d in ipairs(ds) do
    if d.pool and d.pool.status ~= "True" then
      local out = copy(d)
      out.pool = copy(d.pool)
      out.pool.message = ("%s: %s"):format(arms[i].field, d.pool.message)
      return out
    end
    msgs[#msgs + 1] = ("arm %s: %s"):format(arms[i].name, d.pool and d.pool.message or "")
  end
  local first = copy(ds[1])
  first.pool = { status = "True", reason = "Resolved", message = table.concat(msgs, "; ") }
  if first.backend == "InferencePool" then
    first.refs = {}
    for i, d in ipairs(ds) do first.refs[i] = d.ref end
  end
  return first
end

--- EPPReady over the arms: `got[i]` is { status, reason, message } of arm i's
--- EPP (reconcile.lua's epp_condition). True when every arm's is; otherwise
--- the first arm that is not, its reason, the message naming the arm.
--- @return string status, string reason, string message
function M.epp_ready(arms, got)
  local parts = {}
  for i, arm in ipairs(arms) do
    local g = got[i]
    if g[1] ~= "True" then
      return g[1], g[2], ("arm %s: EPP %s not ready: %s"):format(arm.name, arm.epp_name, g[3])
    end
    parts[#parts + 1] = ("arm %s: %s"):format(arm.name, g[3])
  end
  return "True", "EPPReady", table.concat(parts, "; ")
end

--- status.arms: for arm i its weight, profile, pool, EPP (`got[i]` its
--- EPPReady triple, `ready_replicas[i]` its Deployment's readyReplicas) and,
--- when something is wrong with it, a message (its pool check `ds[i].pool`
--- failing first, then its EPP). Also status.split, "name=weight,..." for
--- the printer column.
--- @return table[] arms, string split
function M.status(arms, ds, got, ready_replicas)
  local out, split = {}, {}
  for i, arm in ipairs(arms) do
    local pool = ds[i] and ds[i].pool
    local msg
    if pool and pool.status ~= "True" then
      msg = pool.message
    elseif got[i][1] ~= "True" then
      msg = got[i][3]
    end
    out[i] = {
      name = arm.name, weight = arm.weight, configProfile = arm.profile,
      headerMatch = arm.header and { name = arm.header.name, value = arm.header.value } or nil,
      inferencePool = { name = arm.pool_name, namespace = arm.pool_namespace },
      epp = { name = arm.epp_name, ready = got[i][1] == "True", readyReplicas = ready_replicas[i] or 0 },
      message = msg,
    }
    split[i] = ("%s=%d"):format(arm.name, arm.weight)
  end
  return array(out), table.concat(split, ",")
end

return M
