-- The routing mechanism (scripts/schedulerinstall/route.lua) with the knobs of
-- scripts/schedulerinstall/routing.lua: checks, fallback, backendRef,
-- ReferenceGrant and the gateway's verdict.
local fake = require("fake_k8s")

local function facts(over)
  local f = {
    backend_type = "InferencePool",
    route_namespace = "sched",
    gateway_class = "istio",
    service = { name = "proxy", namespace = "sim", port = 8200 },
    serving_port = 8200,
    serving_port_field = "spec.proxyService.targetPort",
    epp = { enabled = true, pool_name = "pool", pool_namespace = "sim" },
    pool = { name = "pool", namespace = "sim", group = "inference.networking.k8s.io", version = "v1",
      apiVersion = "inference.networking.k8s.io/v1", served = true, managed = false,
      object = { metadata = { name = "pool" } }, target_ports = { 8200 } },
    pool_applies = true,
  }
  for k, v in pairs(over or {}) do f[k] = v end
  return f
end

describe("schedulerinstall.route", function()
  local routing, knobs
  before_each(function()
    fake.install({})
    package.loaded["schedulerinstall.routing"] = nil
    package.loaded["schedulerinstall.route"] = nil
    knobs = require("schedulerinstall.routing")
    routing = require("schedulerinstall.route")
  end)

  it("routes to a served, existing pool on the serving port with an EPP", function()
    local d = routing.decide(facts())
    assert.equal("InferencePool", d.backend)
    assert.same({ group = "inference.networking.k8s.io", kind = "InferencePool", name = "pool", namespace = "sim",
      weight = 1 }, d.ref)
    assert.equal("True", d.pool.status)
    assert.same({ { group = "inference.networking.k8s.io", kind = "InferencePool", name = "pool" } }, d.grant.to)
    assert.same({ { group = "gateway.networking.k8s.io", kind = "HTTPRoute", namespace = "sched" } }, d.grant.from)
    assert.equal("sim", d.grant.namespace)
  end)

  it("names the first failing check and both ports", function()
    local f = facts()
    f.pool.target_ports = { 8000 }
    local d = routing.decide(f)
    assert.equal("PortMismatch", d.pool.reason)
    assert.truthy(d.pool.message:find("InferencePool sim/pool targetPorts[0].number 8000 != decode serving port 8200 "
      .. "(spec.proxyService.targetPort)", 1, true))
    assert.equal("Service", d.backend)
    assert.is_true(d.fallback)
    assert.same({ { group = "", kind = "Service", name = "proxy" } }, d.grant.to)
  end)

  it("reports InferencePoolUnsupported, InferencePoolNotFound, EPPDisabled in that order", function()
    local f = facts()
    f.pool.served = false
    f.pool.object = nil
    f.epp.enabled = false
    assert.equal("InferencePoolUnsupported", routing.decide(f).pool.reason)
    f.pool.served = true
    assert.equal("InferencePoolNotFound", routing.decide(f).pool.reason)
    f.pool.managed = true
    assert.equal("EPPDisabled", routing.decide(f).pool.reason)
  end)

  it("withholds the route with fallback None", function()
    local f = facts({ fallback = "None" })
    f.pool.object = nil
    local d = routing.decide(f)
    assert.equal("None", d.backend)
    assert.is_nil(d.ref)
    assert.is_nil(d.grant)
    assert.truthy(d.pool.message:find("withheld", 1, true))
  end)

  it("routes to the proxy Service for backendType Service whatever the pool", function()
    local f = facts({ backend_type = "Service" })
    f.pool.target_ports = { 1 }
    local d = routing.decide(f)
    assert.equal("Service", d.backend)
    assert.is_false(d.fallback)
    assert.same({ group = "", kind = "Service", name = "proxy", namespace = "sim", port = 8200, weight = 1 }, d.ref)
    assert.equal("PortMismatch", d.pool.reason)
  end)

  it("needs no grant in the route's namespace", function()
    local f = facts({ backend_type = "Service", route_namespace = "sim" })
    assert.is_nil(routing.decide(f).grant)
  end)

  it("keeps the backendRef port for istio, drops it for kgateway and agentgateway", function()
    local f = facts()
    f.pool.port = 8200
    assert.equal(8200, routing.decide(f).ref.port)
    f.gateway_class = "kgateway"
    assert.is_nil(routing.decide(f).ref.port)
    f.gateway_class = "agentgateway"
    assert.is_nil(routing.decide(f).ref.port)
  end)

  it("changes policy when the knobs change", function()
    knobs.fallback_default = "None"
    local f = facts()
    f.pool.object = nil
    assert.equal("None", routing.decide(f).backend)
    knobs.extra_checks = { function() return false, "Vetoed", "a site rule" end }
    local d = routing.decide(facts())
    assert.equal("Vetoed", d.pool.reason)
    assert.equal("None", d.backend)
  end)

  describe("route_condition", function()
    local parent = { name = "gw", namespace = "sched" }
    local function route(conds, gen)
      return { metadata = { name = "r", namespace = "sched", generation = gen or 1 },
        status = { parents = { { parentRef = { name = "gw", namespace = "sched" }, controllerName = "c",
          conditions = conds } } } }
    end

    it("is Unknown before the route exists or has status", function()
      assert.equal("Unknown", routing.route_condition(nil, parent, nil, "sched/r").status)
      assert.equal("Unknown", routing.route_condition({ metadata = {} }, parent, nil, "sched/r").status)
    end)

    it("mirrors ResolvedRefs=False RefNotPermitted", function()
      local c = routing.route_condition(route({
        { type = "Accepted", status = "True", reason = "Accepted" },
        { type = "ResolvedRefs", status = "False", reason = "RefNotPermitted", message = "not allowed" },
      }), parent, nil, "sched/r")
      assert.equal("False", c.status)
      assert.equal("RefNotPermitted", c.reason)
      assert.truthy(c.message:find("ResolvedRefs=False RefNotPermitted: not allowed", 1, true))
    end)

    it("maps Istio's 'InferencePool is not enabled' to InferencePoolUnsupportedByGateway", function()
      local c = routing.route_condition(route({
        { type = "Accepted", status = "False", reason = "InvalidKind",
          message = "InferencePool is not enabled. To enable, set ENABLE_GATEWAY_API_INFERENCE_EXTENSION to true" },
      }), parent, { kind = "InferencePool" }, "sched/r")
      assert.equal("InferencePoolUnsupportedByGateway", c.reason)
    end)

    it("is True when accepted with resolved refs, Unknown on stale generations", function()
      local ok = { { type = "Accepted", status = "True", reason = "Accepted", observedGeneration = 2 },
        { type = "ResolvedRefs", status = "True", reason = "ResolvedRefs", observedGeneration = 2 } }
      assert.equal("True", routing.route_condition(route(ok, 2), parent, nil, "sched/r").status)
      assert.equal("Unknown", routing.route_condition(route(ok, 3), parent, nil, "sched/r").status)
    end)
  end)
end)
