-- The EPP module (scripts/lib/epp.lua: version rows, args, profiles) and the
-- simulator version table of schedulerinstall.versions.
local fake = require("fake_k8s")

describe("lib.epp versions", function()
  local versions, sim
  before_each(function()
    fake.install({})
    package.loaded["lib.epp"] = nil
    package.loaded["schedulerinstall.versions"] = nil
    versions = require("lib.epp")
    sim = require("schedulerinstall.versions")
  end)

  it("reads image tags", function()
    assert.equal("v0.4.0", versions.image_tag("ghcr.io/llm-d/llm-d-inference-scheduler:v0.4.0"))
    assert.equal("v1", versions.image_tag("localhost:5000/x:v1@sha256:abc"))
    assert.is_nil(versions.image_tag("localhost:5000/x"))
    assert.same({ 0, 5, 0 }, versions.parse("v0.5.0-rc.1"))
    assert.is_nil(versions.parse("latest"))
  end)

  it("picks the row by scheduler version, GAIE EPP version, or the newest for untagged images", function()
    assert.equal("accepted", versions.epp_for("ghcr.io/llm-d/llm-d-inference-scheduler:v0.4.0").metric_flags)
    assert.equal("vllm:gpu_cache_usage_perc",
      versions.epp_for("ghcr.io/llm-d/llm-d-inference-scheduler:v0.4.0").default_kv_metric)
    assert.equal("vllm:kv_cache_usage_perc",
      versions.epp_for("ghcr.io/llm-d/llm-d-inference-scheduler:v0.5.0").default_kv_metric)
    assert.equal("rejected", versions.epp_for("ghcr.io/llm-d/llm-d-inference-scheduler:v0.8.0").metric_flags)
    local latest = versions.epp_for("ghcr.io/llm-d/llm-d-inference-scheduler:latest")
    assert.equal("rejected", latest.metric_flags)
    assert.equal("unknown", latest.version)
    assert.equal("accepted",
      versions.epp_for("registry.k8s.io/gateway-api-inference-extension/epp:v1.2.0").metric_flags)
    assert.equal("rejected",
      versions.epp_for("registry.k8s.io/gateway-api-inference-extension/epp:v1.4.0").metric_flags)
  end)

  it("builds the reference's argument list for v0.4.0", function()
    local row = versions.epp_for("ghcr.io/llm-d/llm-d-inference-scheduler:v0.4.0")
    local args = versions.args(row, { pool_name = "p", pool_namespace = "ns",
      pool_group = "inference.networking.k8s.io", config_file = "/etc/epp/epp-config.yaml",
      kv_metric = "vllm:kv_cache_usage_perc", secure = false, port = 9002, health_port = 9003,
      metrics_port = 9090, verbosity = 1, replicas = 1 })
    assert.same({ "--pool-name", "p", "--pool-namespace", "ns", "--pool-group", "inference.networking.k8s.io",
      "--zap-encoder", "json", "--config-file", "/etc/epp/epp-config.yaml",
      "--kv-cache-usage-percentage-metric", "vllm:kv_cache_usage_perc", "--secure-serving=false",
      "--grpc-port", "9002", "--grpc-health-port", "9003", "--v", "1", "--tracing=false",
      "--metrics-endpoint-auth=false" }, args)
  end)

  it("never passes metric flags to versions that reject them, and finds the user's", function()
    local row = versions.epp_for("ghcr.io/llm-d/llm-d-inference-scheduler:v0.7.0")
    local args = versions.args(row, { pool_name = "p", pool_namespace = "ns", pool_group = "g",
      config_file = "f", kv_metric = "vllm:kv_cache_usage_perc", secure = true, port = 9002, health_port = 9003,
      metrics_port = 9191, verbosity = 2, replicas = 3 })
    for _, a in ipairs(args) do
      local metric_name_flag = a:find("metric", 1, true) and a ~= "--metrics-port"
        and a ~= "--metrics-endpoint-auth=false"
      assert.is_nil(metric_name_flag or nil)
    end
    assert.truthy(table.concat(args, " "):find("--secure-serving=true", 1, true))
    assert.truthy(table.concat(args, " "):find("--metrics-port 9191", 1, true))
    assert.equal("--ha-enable-leader-election", args[#args])
    assert.same({ "--lora-info-metric=x", "--cache-info-metric" },
      versions.rejected_args(row, { "--lora-info-metric=x", "--v=3", "--cache-info-metric", "y" }))
    local old = versions.epp_for("ghcr.io/llm-d/llm-d-inference-scheduler:v0.4.0")
    assert.same({}, versions.rejected_args(old, { "--lora-info-metric=x" }))
  end)

  it("turns the EPP's metrics auth off where the flag exists (v0.4-v0.7), not on GAIE v1.6 rows", function()
    local p = { pool_name = "p", pool_namespace = "ns", pool_group = "g", config_file = "f", secure = false,
      port = 9002, health_port = 9003, metrics_port = 9090, verbosity = 1, replicas = 1 }
    local function has(image)
      local args = versions.args(versions.epp_for(image), p)
      return table.concat(args, " "):find("--metrics-endpoint-auth=false", 1, true) ~= nil
    end
    assert.is_true(has("ghcr.io/llm-d/llm-d-inference-scheduler:v0.4.0"))
    assert.is_true(has("ghcr.io/llm-d/llm-d-inference-scheduler:v0.7.1"))
    assert.is_false(has("ghcr.io/llm-d/llm-d-inference-scheduler:v0.8.0"))
    assert.is_false(has("ghcr.io/llm-d/llm-d-inference-scheduler:v0.3.0"))
  end)

  it("maps simulator versions to the KV-cache metric name", function()
    assert.equal("vllm:gpu_cache_usage_perc", (sim.sim_kv_metric("ghcr.io/llm-d/llm-d-inference-sim:v0.6.1")))
    assert.equal("vllm:kv_cache_usage_perc", (sim.sim_kv_metric("ghcr.io/llm-d/llm-d-inference-sim:v0.7.0")))
    assert.equal("vllm:kv_cache_usage_perc", (sim.sim_kv_metric("docker.io/library/llm-d-simulator:local")))
    assert.equal("vllm:kv_cache_usage_perc", (sim.sim_kv_metric(nil)))
  end)
end)

describe("lib.epp profiles", function()
  local profiles
  before_each(function()
    fake.install({})
    package.loaded["lib.epp"], package.loaded["lib.epp_profiles"] = nil, nil
    profiles = require("lib.epp")
  end)

  local function load(name)
    local text = assert(profiles.render(name))
    return fake.yaml_load_all(text)[1]
  end

  it("renders the default profile as the reference's EndpointPickerConfig", function()
    local cfg = load("default")
    assert.equal("inference.networking.x-k8s.io/v1alpha1", cfg.apiVersion)
    assert.equal("EndpointPickerConfig", cfg.kind)
    local types = {}
    for _, p in ipairs(cfg.plugins) do types[#types + 1] = p.type end
    assert.same({ "load-aware-scorer", "prefix-cache-scorer", "kv-cache-utilization-scorer", "decode-filter",
      "max-score-picker", "single-profile-handler" }, types)
    assert.same({ blockSize = 64, maxPrefixBlocksToMatch = 256, lruCapacityPerServer = 31250 },
      cfg.plugins[2].parameters)
    assert.equal("default", cfg.schedulingProfiles[1].name)
    assert.equal(5, #cfg.schedulingProfiles[1].plugins)
    assert.equal(2, cfg.schedulingProfiles[1].plugins[4].weight)
  end)

  it("renders proxy-performance and proxy-performance-by-backend", function()
    local pp = load("proxy-performance")
    assert.equal("active-request-scorer", pp.plugins[1].type)
    assert.equal("2m", pp.plugins[1].parameters.requestTimeout)
    local pb = load("proxy-performance-by-backend")
    assert.equal("by-kv-backend", pb.plugins[2].name)
    assert.same({ ["llm-d.ai/kv-backend"] = "nvlink" }, pb.plugins[2].parameters.matchLabels)
    assert.equal("by-kv-backend", pb.schedulingProfiles[1].plugins[1].pluginRef)
  end)

  it("refuses an unknown profile naming the field", function()
    local text, err = profiles.render("fastest")
    assert.is_nil(text)
    assert.truthy(err:find("spec.epp.configProfile", 1, true))
  end)
end)

describe("lib.epp inline EndpointPickerConfig fragments", function()
  local epp
  before_each(function()
    fake.install({})
    package.loaded["lib.epp"], package.loaded["lib.epp_profiles"] = nil, nil
    epp = require("lib.epp")
  end)

  it("every bundled profile passes as a fragment on the EPPs it is meant for (the type tables cover them)", function()
    for _, image in ipairs({ "ghcr.io/llm-d/llm-d-inference-scheduler:v0.4.0",
      "ghcr.io/llm-d/llm-d-inference-scheduler:v0.5.0", "ghcr.io/llm-d/llm-d-inference-scheduler:v0.7.1" }) do
      local row = epp.epp_for(image)
      for _, name in ipairs(epp.profile_names()) do
        assert.is_nil(epp.fragment_problem(epp.profiles[name], row, "spec.epp.config"), name .. " on " .. image)
      end
    end
  end)

  it("knows llm-d's types for its images, GAIE's only for the GAIE epp image, none for unchecked rows", function()
    local llmd = epp.epp_for("ghcr.io/llm-d/llm-d-inference-scheduler:v0.4.0")
    assert.is_true(llmd.plugin_types["decode-filter"] and llmd.plugin_types["queue-scorer"])
    assert.is_nil(llmd.plugin_types["running-requests-size-scorer"])
    local gaie = epp.epp_for("registry.k8s.io/gateway-api-inference-extension/epp:v1.3.0")
    assert.equal("gateway-api-inference-extension epp", gaie.project)
    assert.is_true(gaie.plugin_types["running-requests-size-scorer"])
    assert.is_nil(gaie.plugin_types["decode-filter"])
    assert.is_nil(epp.epp_for("ghcr.io/llm-d/llm-d-inference-scheduler:v0.8.0").plugin_types)
    local problem = epp.fragment_problem({ plugins = { { type = "anything-new" } },
      schedulingProfiles = { { name = "default", plugins = { { pluginRef = "anything-new" } } } } },
      epp.epp_for("ghcr.io/llm-d/llm-d-inference-scheduler:v0.8.0"), "spec.epp.config")
    assert.is_nil(problem, "a row without a type table checks refs only")
  end)

  it("names the place of a shape problem from 0, as the API server does", function()
    local row = epp.epp_for("ghcr.io/llm-d/llm-d-inference-scheduler:v0.4.0")
    assert.equal("spec.epp.config: needs plugins and schedulingProfiles (non-empty lists)",
      epp.fragment_problem({ plugins = {} }, row, "spec.epp.config"))
    assert.equal("spec.epp.config.plugins[1]: needs a type", epp.fragment_problem({
      plugins = { { type = "queue-scorer" }, { name = "x" } },
      schedulingProfiles = { { name = "d", plugins = { { pluginRef = "x" } } } } }, row, "spec.epp.config"))
  end)

  it("renders a fragment as a profile is rendered, keeping empty lists and whole weights as integers", function()
    local frag = fake.json_decode('{"plugins":[{"type":"by-label","parameters":{"validValues":[]}}],'
      .. '"schedulingProfiles":[{"name":"default","plugins":[{"pluginRef":"by-label","weight":2.0}]}]}')
    local cfg = fake.yaml_load_all(epp.render_fragment(frag))[1]
    assert.equal("EndpointPickerConfig", cfg.kind)
    assert.matches("validValues: %[%]", epp.render_fragment(frag))
    assert.matches("weight: 2\n", epp.render_fragment(frag))
    assert.equal(epp.render("default"), epp.render_fragment(epp.profiles.default))
  end)
end)
