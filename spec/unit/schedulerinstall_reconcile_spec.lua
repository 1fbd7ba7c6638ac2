-- schedulerinstall.reconcile beyond single fixture cases: what changes when
-- the backend type flips, finalizing, the watch map functions, and the
-- status bookkeeping across reconciles.
local fake = require("fake_k8s")

local function load_example(name)
  return fake.yaml_load_file("examples/" .. name)[1]
end

local function owns()
  for _, c in ipairs(dofile("scripts/controllers.lua")) do
    if c.name == "schedulerinstall" then return c.owns, c end
  end
end

local function by_key(children)
  local out = {}
  for _, c in ipairs(children) do
    out[("%s/%s %s/%s"):format(c.apiVersion, c.kind, c.metadata.namespace or "", c.metadata.name)] =
      fake.json_encode(c)
  end
  return out
end

describe("schedulerinstall.reconcile", function()
  local rec
  before_each(function()
    fake.install({})
    for k in pairs(package.loaded) do
      if k:match("^schedulerinstall%.") or k:match("^lib%.") then package.loaded[k] = nil end
    end
    rec = require("schedulerinstall.reconcile")
  end)

  it("hands the routing policy a copy of the CR (labels, annotations, spec): a policy can route by a label",
    function()
      local routing = require("schedulerinstall.routing")
      local bundled = routing.backend_type
      local seen
      -- a policy edit: CRs labelled experiment=service always take the proxy Service
      routing.backend_type = function(f)
        seen = f.cr
        if f.cr.metadata.labels.experiment == "service" then return "Service" end
        return bundled(f)
      end
      finally(function() routing.backend_type = bundled end)
      local cr = load_example("schedulerinstall-inferencepool.yaml")
      cr.metadata.labels = { experiment = "service" }
      local res = rec.reconcile(cr, fake.observed({}, owns()), fake.ctx())
      assert.equals("service", seen.metadata.labels.experiment)
      assert.equals("InferencePool", seen.spec.routing.backendType)
      assert.equals("Service", res.status.backend)
      seen.spec.routing.backendType = "changed"
      assert.equals("InferencePool", cr.spec.routing.backendType, "the policy got the CR itself, not a copy")
    end)

  it("switching backendType Service <-> InferencePool changes only the HTTPRoute and the grant", function()
    local svc = load_example("schedulerinstall-service.yaml")
    local pool = load_example("schedulerinstall-inferencepool.yaml")
    pool.metadata.name = svc.metadata.name -- same CR, only spec.routing.backendType differs
    local a = by_key(rec.reconcile(svc, fake.observed({}, owns()), fake.ctx()).children)
    local b = by_key(rec.reconcile(pool, fake.observed({}, owns()), fake.ctx()).children)
    local changed = {}
    for k, v in pairs(a) do
      assert.is_not_nil(b[k], "child disappeared: " .. k)
      if b[k] ~= v then changed[#changed + 1] = k end
    end
    for k in pairs(b) do assert.is_not_nil(a[k], "child appeared: " .. k) end
    table.sort(changed)
    assert.same({
      "gateway.networking.k8s.io/v1/HTTPRoute llm-d-inference-scheduler/llm-d-inference-scheduling",
      "gateway.networking.k8s.io/v1beta1/ReferenceGrant llm-d-sim/"
        .. "allow-llm-d-inference-scheduler-llm-d-inference-scheduling",
    }, changed)
  end)

  it("every emitted kind is listed in owns, with that apiVersion", function()
    local list = owns()
    local owned = {}
    for _, o in ipairs(list) do owned[o.kind .. "." .. o.apiVersion] = true end
    local cr = load_example("schedulerinstall-inferencepool.yaml")
    cr.spec.envoyFilter = { enabled = true }
    cr.spec.epp.secureServing = true
    for _, c in ipairs(rec.reconcile(cr, fake.observed({}, list), fake.ctx()).children) do
      assert.is_true(owned[c.kind .. "." .. c.apiVersion] == true, c.kind .. "." .. c.apiVersion .. " not in owns")
      -- the runtime's labels and annotations are not the script's business
      local l = c.metadata.labels or {}
      assert.is_nil(l["app.kubernetes.io/managed-by"])
      assert.is_nil(l["sim.llm-d.io/owner"])
      assert.is_nil((c.metadata.annotations or {})["sim.llm-d.io/desired-hash"])
      assert.is_nil(c.metadata.ownerReferences)
    end
  end)

  it("finalizing returns finalized without work", function()
    local cr = load_example("schedulerinstall-service.yaml")
    local res = rec.reconcile(cr, fake.observed({}, owns()), fake.ctx({ finalizing = true }))
    assert.is_true(res.finalized)
  end)

  it("keeps lastTransitionTime when a condition's status is unchanged and posts an Event on Ready changes", function()
    local k = fake.install({ now = "2026-01-01T00:00:00Z" })
    local cr = load_example("schedulerinstall-service.yaml")
    cr.metadata.generation = 1
    local res = rec.reconcile(cr, fake.observed({}, owns()), fake.ctx())
    assert.equal(1, #res.events)
    cr.status = res.status
    k.now = function() return "2026-01-02T00:00:00Z" end
    local again = rec.reconcile(cr, fake.observed({}, owns()), fake.ctx({ now = "2026-01-02T00:00:00Z" }))
    for _, c in ipairs(again.status.conditions) do
      assert.equal("2026-01-01T00:00:00Z", c.lastTransitionTime, c.type)
    end
    assert.equal(0, #again.events)
  end)

  it("never reports Ready=True while another condition is not True", function()
    local cr = load_example("schedulerinstall-inferencepool.yaml")
    local res = rec.reconcile(cr, fake.observed({}, owns()), fake.ctx())
    local ready
    for _, c in ipairs(res.status.conditions) do
      if c.type == "Ready" then ready = c end
    end
    assert.is_not_equal("True", ready.status)
  end)

  describe("map functions", function()
    local cr
    before_each(function()
      cr = load_example("schedulerinstall-inferencepool.yaml")
      cr.spec.routing.inferencePool.managed = false
      fake.install({ objects = { cr } })
    end)

    it("map_pool names the CRs routing to or serving a pool", function()
      assert.same({ "llm-d-inference-scheduler/sched-inferencepool" },
        rec.map_pool({ metadata = { namespace = "llm-d-sim", name = "gaie-inference-scheduling" } }))
      assert.same({}, rec.map_pool({ metadata = { namespace = "llm-d-sim", name = "other" } }))
    end)

    it("map_endpointslice names the CRs whose EPP Service owns the slice", function()
      assert.same({ "llm-d-inference-scheduler/sched-inferencepool" }, rec.map_endpointslice({
        metadata = { namespace = "llm-d-inference-scheduler", name = "x",
          labels = { ["kubernetes.io/service-name"] = "gaie-inference-scheduling-epp" } } }))
      assert.same({}, rec.map_endpointslice({ metadata = { namespace = "llm-d-sim", name = "x" } }))
    end)

    it("map_simulator names the CRs that read the simulator version from that namespace", function()
      assert.same({ "llm-d-inference-scheduler/sched-inferencepool" },
        rec.map_simulator({ metadata = { namespace = "llm-d-sim", name = "sim" } }))
    end)
  end)
end)
