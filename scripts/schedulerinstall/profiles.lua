-- EPP EndpointPickerConfig profiles, selected by spec.epp.configProfile and
-- written (YAML, through k8s.yaml.encode) to the ConfigMap <epp.name>-config,
-- key epp-config.yaml. The three profiles are the reference operator's; patch
-- them from the scripts ConfigMap, key "policy.lua", section `profiles`
-- (doc/hot-reload.md, "Policy overlays") to change how the EPP scores endpoints.
-- Plugin types: llm-d-inference-scheduler v0.4.0 docs/architecture.md ("Configuration")
-- and the plugin type constants of gateway-api-inference-extension v1.2.0 (pkg/epp);
-- doc/scheduler-workflow.md lists them.
local M = {}

M.apiVersion = "inference.networking.x-k8s.io/v1alpha1"
M.kind = "EndpointPickerConfig"
M.config_key = "epp-config.yaml"
M.mount_path = "/etc/epp"

M.profiles = require("lib.policy").apply("profiles", {
  -- decode-oriented: load, prefix-cache and KV-cache utilisation scorers
  default = {
    plugins = {
      { type = "load-aware-scorer" },
      { type = "prefix-cache-scorer",
        parameters = { hashBlockSize = 5, maxPrefixBlocksToMatch = 256, lruCapacityPerServer = 31250 } },
      { type = "kv-cache-utilization-scorer" },
      { type = "decode-filter" },
      { type = "max-score-picker" },
      { type = "single-profile-handler" },
    },
    schedulingProfiles = {
      { name = "default", plugins = {
        { pluginRef = "decode-filter" },
        { pluginRef = "max-score-picker" },
        { pluginRef = "load-aware-scorer", weight = 1 },
        { pluginRef = "prefix-cache-scorer", weight = 2 },
        { pluginRef = "kv-cache-utilization-scorer", weight = 1 },
      } },
    },
  },
  -- proxy endpoints: score by in-flight requests only
  ["proxy-performance"] = {
    plugins = {
      { type = "active-request-scorer", parameters = { requestTimeout = "2m" } },
      { type = "max-score-picker" },
      { type = "single-profile-handler" },
    },
    schedulingProfiles = {
      { name = "default", plugins = {
        { pluginRef = "max-score-picker" },
        { pluginRef = "active-request-scorer", weight = 1 },
      } },
    },
  },
  -- as proxy-performance, after keeping only NVLink-backed proxies
  ["proxy-performance-by-backend"] = {
    plugins = {
      { type = "active-request-scorer", parameters = { requestTimeout = "2m" } },
      { type = "by-label-selector", name = "by-kv-backend",
        parameters = { matchLabels = { ["llm-d.ai/kv-backend"] = "nvlink" } } },
      { type = "max-score-picker" },
      { type = "single-profile-handler" },
    },
    schedulingProfiles = {
      { name = "default", plugins = {
        { pluginRef = "by-kv-backend" },
        { pluginRef = "max-score-picker" },
        { pluginRef = "active-request-scorer", weight = 1 },
      } },
    },
  },
})

-- Deep copy, marking every sequence as a JSON/YAML array.
local function copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = copy(x) end
  if #v > 0 then k8s.array(out) end
  return out
end

--- The EndpointPickerConfig table of profile `name`, or nil, message.
function M.config(name)
  local p = M.profiles[name]
  if not p then
    local known = {}
    for k in pairs(M.profiles) do known[#known + 1] = k end
    table.sort(known)
    return nil, ("spec.epp.configProfile %q is not one of %s (the profiles of the script set: "
      .. "schedulerinstall.profiles and the policy's profiles)")
      :format(tostring(name), table.concat(known, ", "))
  end
  local cfg = copy(p)
  cfg.apiVersion = M.apiVersion
  cfg.kind = M.kind
  return cfg
end

--- The profile as YAML text for the ConfigMap, or nil, message.
function M.render(name)
  local cfg, err = M.config(name)
  if not cfg then return nil, err end
  return k8s.yaml.encode(cfg)
end

return M
