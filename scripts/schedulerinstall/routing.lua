-- The routing policy of SchedulerInstall as knobs with their defaults: what
-- an experiment changes. The mechanism that applies them (the bundled pool
-- checks, backendRef, ReferenceGrant, RouteAccepted) is schedulerinstall/route.lua;
-- doc/scheduler-workflow.md describes the policy. Change a knob without a
-- rebuild from the scripts ConfigMap, key "policy.lua", section `routing`
-- (doc/hot-reload.md, "Policy overlays"), e.g.
--   return { routing = { fallback_default = "None" } }
---@class RoutingKnobs
---@field fallback_default "ProxyService"|"None"
---@field portless_pool_classes table<string, boolean>
---@field gateway_hints RouteHint[]
---@field extra_checks (fun(f: RoutingFacts): boolean, string?, string?)[]
---@field backend_type fun(f: RoutingFacts): "Service"|"InferencePool"
local M = {}

-- spec.routing.fallback when unset: what the route does when backendType is
-- InferencePool and a check fails. "ProxyService": route to the proxy Service
-- (requests bypass the EPP) and say why; "None": withhold the HTTPRoute.
M.fallback_default = "ProxyService"

-- Gateway classes whose InferencePool support ignores or rejects a port on
-- the backendRef (kgateway PR #11450): the port is left out for them.
M.portless_pool_classes = { kgateway = true, agentgateway = true }

-- Pool checks run before the bundled ones (route.lua, M.checks), in order.
-- Each is function(f) returning true, or false, reason, message; the first
-- failure decides PoolResolved and the fallback.
M.extra_checks = {}

-- The backend the route asks for: "Service" or "InferencePool". Default:
-- spec.routing.backendType. `f` are the facts without `pool` (route.lua,
-- RoutingFacts), e.g. `f.cr.metadata.labels` to route by a label.
function M.backend_type(f) return f.backend_type end

---@class RouteHint
---@field match string|nil      plain text searched in the gateway's message
---@field reason_is string|nil  the gateway's reason
---@field reason string|nil     replaces the gateway's reason
---@field pool_only boolean|nil only for an InferencePool backendRef
---@field hint string           appended to the RouteAccepted message

-- Hints appended to RouteAccepted messages, by pattern on the gateway's
-- message or reason (doc/trouble-shooting.md, RouteAccepted). A list without
-- merge keys: an overlay gives the whole list.
M.gateway_hints = {
  { match = "InferencePool is not enabled", reason = "InferencePoolUnsupportedByGateway",
    hint = "set ENABLE_GATEWAY_API_INFERENCE_EXTENSION=true in istiod" },
  { reason_is = "RefNotPermitted",
    hint = "a ReferenceGrant in the backend namespace must allow HTTPRoute from the route namespace "
      .. "for the backend's exact group and kind" },
  { reason_is = "BackendNotFound", pool_only = true,
    hint = "for kgateway/agentgateway, install the gateway with inferenceExtension.enabled=true" },
}

return require("lib.policy").apply("routing", M)
