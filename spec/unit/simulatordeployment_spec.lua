-- The SimulatorDeployment reconciler in plain Lua with spec/support/fake_k8s.lua:
-- properties that fixtures cannot express (determinism, events, isolation).
-- Its fixture cases (scripts/simulatordeployment/fixtures/) run through the
-- production engine in spec/unit/fixtures_spec.lua, one `it` per case.
local fake = require("fake_k8s")

local root = os.getenv("SCHEDSIM_ROOT") or "."
local ctl = require("controllers")[1]
assert(ctl.name == "simulatordeployment")

describe("simulatordeployment.reconcile", function()
  local rec
  local function load(path)
    return fake.yaml_load_file(root .. "/" .. path)[1]
  end
  local function run(cr, objects, opts)
    opts = opts or {}
    fake.install({ objects = objects, without_kinds = opts.without_kinds })
    return rec.reconcile(cr, fake.observed(objects, ctl.owns), fake.ctx())
  end
  local function by_name(res)
    local t = {}
    for _, c in ipairs(res.children) do t[c.kind .. "/" .. c.metadata.name] = c end
    return t
  end

  before_each(function()
    fake.install()
    rec = require("simulatordeployment.reconcile")
  end)

  it("owns every kind it emits", function()
    local owned = {}
    for _, o in ipairs(ctl.owns) do owned[o.apiVersion .. "/" .. o.kind] = true end
    for _, ex in ipairs({ "minimal", "istio", "full" }) do
      local res = run(load("examples/simulatordeployment-" .. ex .. ".yaml"))
      for _, c in ipairs(res.children) do
        assert.is_true(owned[c.apiVersion .. "/" .. c.kind], c.apiVersion .. "/" .. c.kind .. " not in owns")
      end
    end
  end)

  it("never sets the labels the runtime owns on a child's metadata", function()
    local res = run(load("examples/simulatordeployment-full.yaml"))
    for _, c in ipairs(res.children) do
      local l = c.metadata.labels or {}
      assert.is_nil(l["app.kubernetes.io/managed-by"], c.metadata.name)
      assert.is_nil(l["sim.llm-d.io/owner"], c.metadata.name)
      assert.is_nil(c.metadata.ownerReferences)
      assert.is_nil((c.metadata.annotations or {})["sim.llm-d.io/desired-hash"])
    end
  end)

  it("is deterministic and JSON-clean", function()
    local cr = load("examples/simulatordeployment-full.yaml")
    local a = fake.json_encode(run(fake.deep_copy(cr)))
    local b = fake.json_encode(run(fake.deep_copy(cr)))
    assert.same(a, b)
  end)

  it("scaling decode changes only the decode Deployment", function()
    local cr = load("examples/simulatordeployment-full.yaml")
    local before = by_name(run(fake.deep_copy(cr)))
    cr.spec.decode.replicas = 7
    local after = by_name(run(cr))
    for k, c in pairs(after) do
      if k == "Deployment/ms-sim-llm-d-modelservice-decode" then
        assert.same(7, c.spec.replicas)
        assert.are_not.same(fake.json_encode(before[k]), fake.json_encode(c))
      else
        assert.same(fake.json_encode(before[k]), fake.json_encode(c), k .. " changed")
      end
    end
  end)

  it("disabling prefill drops its Deployment and Service and posts a Pruned event", function()
    local cr = load("examples/simulatordeployment-full.yaml")
    local first = run(fake.deep_copy(cr))
    cr.spec.prefill.enabled = false
    local res = run(cr, first.children)
    local t = by_name(res)
    assert.is_nil(t["Deployment/ms-sim-llm-d-modelservice-prefill"])
    assert.is_nil(t["Service/ms-sim-llm-d-modelservice-prefill"])
    assert.is_table(t["Deployment/ms-sim-llm-d-modelservice-decode"])
    local found
    for _, e in ipairs(res.events or {}) do
      if e.reason == "Pruned" and e.message:find("ms-sim-llm-d-modelservice-prefill", 1, true) then found = e end
    end
    assert.is_table(found)
  end)

  it("posts Normal Ready when Ready comes back after a problem (not after a rollout) and Warning when "
    .. "Degraded turns True", function()
    local cr = load("examples/simulatordeployment-minimal.yaml")
    cr.status = { conditions = { { type = "Ready", status = "False", reason = "RollingOut", message = "",
                                   lastTransitionTime = "T0" } } }
    local ready = { apiVersion = "apps/v1", kind = "Deployment",
                    metadata = { name = "ms-sim-llm-d-modelservice-decode", namespace = "llm-d-sim" },
                    spec = { replicas = 2 },
                    status = { replicas = 2, readyReplicas = 2, availableReplicas = 2, updatedReplicas = 2 } }
    assert.same(0, #(run(cr, { ready }).events or {}), "the end of a rollout is no Event")
    cr.status.conditions[1].reason = "DeploymentFailed"
    local dep = { apiVersion = "apps/v1", kind = "Deployment",
                  metadata = { name = "ms-sim-llm-d-modelservice-decode", namespace = "llm-d-sim" },
                  spec = { replicas = 2 },
                  status = { replicas = 2, readyReplicas = 2, availableReplicas = 2, updatedReplicas = 2 } }
    local res = run(cr, { dep })
    assert.same({ type = "Normal", reason = "Ready" }, { type = res.events[1].type, reason = res.events[1].reason })
    local ist = load("examples/simulatordeployment-istio.yaml")
    res = run(ist, {}, { without_kinds = { "networking.istio.io/v1/DestinationRule" } })
    local warn
    for _, e in ipairs(res.events) do if e.reason == "IstioNotInstalled" then warn = e end end
    assert.same("Warning", warn.type)
  end)

  it("returns finalized with no children when finalizing", function()
    local res = rec.reconcile(load("examples/simulatordeployment-minimal.yaml"), fake.observed({}, ctl.owns),
      fake.ctx({ finalizing = true }))
    assert.is_true(res.finalized)
    assert.same(0, #res.children)
  end)

  it("raises terminal errors naming every bad field at once", function()
    local cr = load("examples/simulatordeployment-full.yaml")
    cr.spec.decode.replicas = 0
    cr.spec.prefill.port = 70000
    cr.spec.loadBalancing.algorithm = "FASTEST"
    local ok, err = pcall(run, cr)
    assert.is_false(ok)
    assert.is_true(fake.is_terminal(err))
    local msg = fake.error_message(err)
    assert.matches("spec.decode.replicas: must be at least 1 (got 0)", msg, 1, true)
    assert.matches("spec.prefill.port: must be between 1 and 65535 (got 70000)", msg, 1, true)
    assert.matches('spec.loadBalancing.algorithm: unsupported value "FASTEST"', msg, 1, true)
  end)

  it("chooses probes by simulator tag", function()
    local v = require("simulatordeployment.versions")
    assert.same("/health/ready", v.sim("ghcr.io/llm-d/llm-d-inference-sim:v0.9.0").readiness)
    assert.same("/ready", v.sim("ghcr.io/llm-d/llm-d-inference-sim:v0.8.2").readiness)
    assert.is_nil(v.sim("ghcr.io/llm-d/llm-d-inference-sim:v0.2.0").readiness)
    assert.same("/health", v.sim("docker.io/library/llm-d-simulator:local").readiness)
    assert.same("/health", v.sim("localhost:5000/sim@sha256:abc").readiness)
    assert.same("vllm:gpu_cache_usage_perc", v.sim("x/sim:v0.6.1").kv_metric)
    local epp = require("lib.epp")
    local function accepts(image) return epp.epp_for(image).metric_flags == "accepted" end
    assert.is_true(accepts("ghcr.io/llm-d/llm-d-inference-scheduler:v0.4.0"))
    assert.is_false(accepts("ghcr.io/llm-d/llm-d-inference-scheduler:v0.7.0"))
    assert.is_false(accepts("ghcr.io/llm-d/llm-d-inference-scheduler:latest"))
    assert.is_true(accepts("registry.k8s.io/gateway-api-inference-extension/epp:v1.2.0"))
  end)
end)
