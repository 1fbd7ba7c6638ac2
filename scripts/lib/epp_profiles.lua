--- The EndpointPickerConfig profiles of both kinds' EPPs by name (the reference operator's):
--- `plugins` and `schedulingProfiles`. lib/epp.lua checks them when it loads and adds apiVersion
--- and kind when it renders one. A policy overlay patches this table (section `profiles`,
--- lib/policy.lua; doc/hot-reload.md "Policy overlays"): a weight, a parameter, a new profile.
local policy = require("lib.policy")

-- GAIE's prefix-cache-scorer (v1.2 pkg/epp/scheduling/framework/plugins/multi/prefix/plugin.go)
-- reads `blockSize` (characters; 16 tokens x 4 on the simulator). The reference operator's
-- `hashBlockSize = 5` is no field of it (silently ignored); pd-profile-handler does read it.
local prefix_cache = { type = "prefix-cache-scorer",
  parameters = { blockSize = 64, maxPrefixBlocksToMatch = 256, lruCapacityPerServer = 31250 } }
local function ref(name, weight) return { pluginRef = name, weight = weight } end
local function types(...)
  local out = {}
  for i, t in ipairs({ ... }) do out[i] = type(t) == "table" and t or { type = t } end
  return out
end

---@type table<string, { plugins: table[], schedulingProfiles: table[] }>
return policy.apply("profiles", {
  -- decode-oriented: load, prefix-cache and KV-cache utilisation scorers
  default = {
    plugins = types("load-aware-scorer", prefix_cache, "kv-cache-utilization-scorer", "decode-filter",
      "max-score-picker", "single-profile-handler"),
    schedulingProfiles = {
      { name = "default", plugins = { ref("decode-filter"), ref("max-score-picker"), ref("load-aware-scorer", 1),
        ref("prefix-cache-scorer", 2), ref("kv-cache-utilization-scorer", 1) } },
    },
  },
  -- prefill/decode disaggregation (SimulatorDeployment with a prefill stage)
  pd = {
    plugins = types("prefill-header-handler", "prefill-filter", "decode-filter", prefix_cache, "max-score-picker",
      { type = "pd-profile-handler", parameters = { threshold = 10, hashBlockSize = 5 } }),
    schedulingProfiles = {
      { name = "prefill", plugins = { ref("prefill-filter"), ref("max-score-picker"), ref("prefix-cache-scorer", 2) } },
      { name = "decode", plugins = { ref("decode-filter"), ref("max-score-picker"), ref("prefix-cache-scorer", 2) } },
    },
  },
  -- proxy endpoints: score by in-flight requests only
  ["proxy-performance"] = {
    plugins = types({ type = "active-request-scorer", parameters = { requestTimeout = "2m" } }, "max-score-picker",
      "single-profile-handler"),
    schedulingProfiles = {
      { name = "default", plugins = { ref("max-score-picker"), ref("active-request-scorer", 1) } },
    },
  },
  -- as proxy-performance, after keeping only NVLink-backed proxies
  ["proxy-performance-by-backend"] = {
    plugins = types({ type = "active-request-scorer", parameters = { requestTimeout = "2m" } },
      { type = "by-label-selector", name = "by-kv-backend",
        parameters = { matchLabels = { ["llm-d.ai/kv-backend"] = "nvlink" } } },
      "max-score-picker", "single-profile-handler"),
    schedulingProfiles = {
      { name = "default", plugins = { ref("by-kv-backend"), ref("max-score-picker"),
        ref("active-request-scorer", 1) } },
    },
  },
})
