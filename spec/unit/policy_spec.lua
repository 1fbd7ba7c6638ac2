-- Policy overlays (scripts/lib/policy.lua): the merge rules a `policy.lua`
-- overlay is patched over the bundled knobs with, and the errors for a
-- misspelt section or knob (doc/hot-reload.md, "Policy overlays").
local fake = require("fake_k8s")

--- Loads module `name` afresh with `policy` returning `overrides`.
local function with_policy(overrides, name)
  for k in pairs(package.loaded) do
    if k == "policy" or k:match("^lib%.") or k:match("^schedulerinstall%.") or k:match("^simulatordeployment%.") then
      package.loaded[k] = nil
    end
  end
  package.loaded["policy"] = overrides
  return require(name)
end

describe("lib.policy", function()
  local policy
  before_each(function()
    fake.install({})
    policy = with_policy({}, "lib.policy")
  end)
  after_each(function() package.loaded["policy"] = nil end)

  it("merges maps by key and replaces scalars, functions and plain lists", function()
    local f = function() end
    local got = policy.merge({ a = 1, m = { x = 1, y = 2 }, l = { "a", "b" }, fn = print },
      { a = 2, m = { y = 3, z = 4 }, l = { "c" }, fn = f }, "p")
    assert.same({ a = 2, m = { x = 1, y = 3, z = 4 }, l = { "c" }, fn = f }, got)
  end)

  it("deletes a map key set to k8s.null, and replaces a table marked $patch replace", function()
    local got = policy.merge({ m = { x = 1, y = 2 }, n = { x = 1 } },
      { m = { x = fake.null }, n = { ["$patch"] = "replace", z = 9 } }, "p")
    assert.same({ m = { y = 2 }, n = { z = 9 } }, got)
  end)

  it("merges lists of records on pluginRef, name or type; appends new keys; deletes with $patch delete", function()
    local base = { { pluginRef = "a", weight = 1 }, { pluginRef = "b", weight = 2 }, { pluginRef = "c" } }
    local got = policy.merge(base, { { pluginRef = "b", weight = 5 }, { pluginRef = "d", weight = 1 },
      { pluginRef = "a", ["$patch"] = "delete" } }, "p")
    assert.same({ { pluginRef = "b", weight = 5 }, { pluginRef = "c" }, { pluginRef = "d", weight = 1 } }, got)
    assert.same({ { pluginRef = "a", weight = 1 }, { pluginRef = "b", weight = 2 }, { pluginRef = "c" } }, base,
      "the defaults are left alone")
    local plugins = { { type = "x" }, { type = "y", name = "y1", parameters = { p = 1 } } }
    assert.same({ { type = "x" }, { type = "y", name = "y1", parameters = { p = 2 } } },
      policy.merge(plugins, { { name = "y1", parameters = { p = 2 } } }, "p"))
  end)

  it("names the element a $patch delete does not find", function()
    local ok, err = pcall(policy.merge, { { name = "a" } }, { { name = "zz", ["$patch"] = "delete" } }, "policy.x")
    assert.is_false(ok)
    assert.matches('policy.x[name="zz"]: $patch delete: no such element', err, 1, true)
  end)

  it("refuses an unknown section and a misspelt knob, naming them", function()
    local ok, err = pcall(with_policy, { routng = {} }, "schedulerinstall.routing")
    assert.is_false(ok)
    assert.matches("policy.routng: no such section", err, 1, true)
    ok, err = pcall(with_policy, { routing = { fallback_defualt = "None" } }, "schedulerinstall.routing")
    assert.is_false(ok)
    assert.matches("policy.routing.fallback_defualt: no such knob", err, 1, true)
    assert.matches("fallback_default", err, 1, true)
  end)

  it("patches the routing knobs", function()
    local routing = with_policy({ routing = { fallback_default = "None", portless_pool_classes = { istio = true,
      kgateway = fake.null } } }, "schedulerinstall.routing")
    assert.equals("None", routing.fallback_default)
    assert.same({ istio = true, agentgateway = true }, routing.portless_pool_classes)
    assert.equals(3, #routing.gateway_hints)
  end)
end)

describe("a policy overlay's profiles", function()
  after_each(function() package.loaded["policy"] = nil end)

  --- The EPP ConfigMap text of a reconcile result.
  local function epp_config(res)
    for _, c in ipairs(res.children) do
      if c.kind == "ConfigMap" and c.data and (c.data["epp-config.yaml"] or c.data["default-plugins.yaml"]) then
        return fake.yaml_load_all(c.data["epp-config.yaml"] or c.data["default-plugins.yaml"])[1]
      end
    end
  end

  local function weight(cfg, profile, ref)
    for _, sp in ipairs(cfg.schedulingProfiles) do
      if sp.name == profile then
        for _, p in ipairs(sp.plugins) do if p.pluginRef == ref then return p.weight end end
      end
    end
  end

  it("reach the EPPs of both kinds (lib.epp is the one place)", function()
    local function reconcile(module, example)
      local rec = require(module)
      local cr = fake.yaml_load_file((os.getenv("SCHEDSIM_ROOT") or ".") .. "/examples/" .. example)[1]
      return epp_config(rec.reconcile(cr, fake.observed({}, {}), fake.ctx()))
    end
    fake.install({})
    local overlay = { profiles = {
      default = { schedulingProfiles = { { name = "default", plugins = { { pluginRef = "load-aware-scorer",
        weight = 7 } } } } },
      pd = { schedulingProfiles = { { name = "decode", plugins = { { pluginRef = "prefix-cache-scorer",
        weight = 5 } } } } },
    } }
    with_policy(overlay, "lib.epp")
    local si = reconcile("schedulerinstall.reconcile", "schedulerinstall-service.yaml")
    assert.equals(7, weight(si, "default", "load-aware-scorer"))
    assert.equals(2, weight(si, "default", "prefix-cache-scorer"), "the other plugins stay")
    local sd = reconcile("simulatordeployment.reconcile", "simulatordeployment-full.yaml")
    assert.equals(5, weight(sd, "decode", "prefix-cache-scorer"))
    assert.equals(2, weight(sd, "prefill", "prefix-cache-scorer"))
    with_policy({}, "lib.epp")
    si = reconcile("schedulerinstall.reconcile", "schedulerinstall-service.yaml")
    assert.equals(1, weight(si, "default", "load-aware-scorer"))
  end)

  it("patch the image default and the profile a CR gets, and refuse a misspelt epp knob", function()
    fake.install({})
    local epp = with_policy({ epp = { image = "ghcr.io/llm-d/llm-d-inference-scheduler:v0.7.1",
      default_profile = "proxy-performance" } }, "lib.epp")
    assert.equals("ghcr.io/llm-d/llm-d-inference-scheduler:v0.7.1", epp.knobs.image)
    assert.equals("pd", epp.knobs.pd_profile)
    local ok, err = pcall(with_policy, { epp = { imgae = "x" } }, "lib.epp")
    assert.is_false(ok)
    assert.matches("policy.epp.imgae: no such knob", err, 1, true)
  end)
end)

describe("a policy overlay in the production engine", function()
  local k8sengine = require("k8sengine")
  local root = os.getenv("SCHEDSIM_ROOT") or "."

  it("routes by a CR label (examples/scripts-configmap-route-by-label.yaml)", function()
    local cm = fake.yaml_load_file(root .. "/examples/scripts-configmap-route-by-label.yaml")[1]
    local eng = assert(k8sengine.load(root .. "/scripts", { overlay = { ["policy.lua"] = cm.data["policy.lua"] } }))
    finally(function() eng:close() end)
    local cr = fake.yaml_load_file(root .. "/examples/schedulerinstall-service.yaml")[1]
    cr.metadata.namespace = cr.metadata.namespace or "default"
    local function backend(labels)
      cr.metadata.labels = labels
      local res = eng:reconcile("schedulerinstall", cr, {})
      assert.is_nil(res.error, res.error)
      return res.status.backend
    end
    assert.equals("Service", cr.spec.routing.backendType)
    assert.equals("Service", backend({}))
    assert.equals("InferencePool", backend({ ["sim.llm-d.io/route"] = "epp" }))
    assert.equals("Service", backend({ ["sim.llm-d.io/route"] = "proxy" }))
  end)
end)

describe("a policy overlay's profiles are checked when lib.epp loads", function()
  after_each(function() package.loaded["policy"] = nil end)

  it("refuses a pluginRef that names no plugin (a misspelt weight patch), naming profile and ref", function()
    fake.install({})
    local ok, err = pcall(with_policy, { profiles = { default = { schedulingProfiles = {
      { name = "default", plugins = { { pluginRef = "load-awre-scorer", weight = 3 } } } } } } }, "lib.epp")
    assert.is_false(ok)
    assert.matches('profile "default"', err, 1, true)
    assert.matches('pluginRef "load-awre-scorer" names no plugin of the profile', err, 1, true)
  end)

  it("refuses a new profile without plugins (a misspelt profile name)", function()
    fake.install({})
    local ok, err = pcall(with_policy, { profiles = { defualt = { schedulingProfiles = {
      { name = "default", plugins = { { pluginRef = "load-aware-scorer", weight = 3 } } } } } } }, "lib.epp")
    assert.is_false(ok)
    assert.matches('profile "defualt"', err, 1, true)
    assert.matches("needs plugins and schedulingProfiles", err, 1, true)
  end)
end)
