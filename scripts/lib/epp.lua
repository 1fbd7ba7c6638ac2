--- Everything the operator knows about the EPP (llm-d-inference-scheduler, or
--- the GAIE `epp` image), for both kinds that run one (SchedulerInstall and
--- SimulatorDeployment's spec.epp): the image default, which profile a CR gets
--- (the profiles are lib/epp_profiles.lua), the checks and rendering of an
--- EndpointPickerConfig (a profile, or an inline spec.epp.config), the plugin
--- types, flags and RBAC rules by version, and the probes. The knobs (image,
--- profile selection) take the `epp` section of a policy overlay, the profiles
--- its `profiles` section (lib/policy.lua, doc/hot-reload.md), so a weight
--- changed there reaches every EPP.
---
--- Sources (doc/configuration.md "Versions" and "Inline EPP config" summarise
--- them): plugin types above the version rows; EPP flags from GAIE v1.2.0
--- cmd/epp/runner/runner.go and v1.4.0 pkg/epp/server/options.go (Validate
--- refuses the metric-name flags); EPP RBAC from llm-d-inference-scheduler
--- v0.4.0 deploy/components/inference-gateway/rbac.yaml and
--- llm-d/llm-d-benchmark#775 (inferencemodelrewrites).
local policy = require("lib.policy")
local semver = require("lib.version")

local M = {}

-- ------------------------------------------------------------------ knobs

---@class EPPKnobs
---@field image string            spec.epp.image when unset (the reference operator's; GAIE v1.2 based)
---@field default_profile string  spec.epp.configProfile when unset; SimulatorDeployment without prefill
---@field pd_profile string       SimulatorDeployment with a prefill stage
local knobs = policy.apply("epp", {
  image = "ghcr.io/llm-d/llm-d-inference-scheduler:v0.4.0",
  default_profile = "default",
  pd_profile = "pd",
})
M.knobs = knobs

--- EndpointPickerConfig profiles by name (lib/epp_profiles.lua, with the
--- policy's `profiles` merged in).
---@type table<string, { plugins: table[], schedulingProfiles: table[] }>
M.profiles = require("lib.epp_profiles")

-- -------------------------------------------------------------- profiles

local function sorted_keys(t)
  local out = {}
  for k in pairs(t) do out[#out + 1] = tostring(k) end
  table.sort(out)
  return out
end

-- The shape and references every EndpointPickerConfig needs; `at` names a
-- place: at() the config, at(i) its plugins[i], at(i, j, sp) plugin j of
-- scheduling profile i (`sp`); `of` names the plugins in a ref message.
local function config_problem(p, at, of)
  if type(p) ~= "table" or type(p.plugins) ~= "table" or #p.plugins == 0
    or type(p.schedulingProfiles) ~= "table" or #p.schedulingProfiles == 0 then
    return at() .. ": needs plugins and schedulingProfiles (non-empty lists)"
  end
  local defined = {}
  for i, pl in ipairs(p.plugins) do
    if type(pl) ~= "table" or type(pl.type) ~= "string" or pl.type == "" then
      return at(i) .. ": needs a type"
    end
    defined[pl.name or pl.type] = true
  end
  for i, sp in ipairs(p.schedulingProfiles) do
    local refs = type(sp) == "table" and type(sp.plugins) == "table" and sp.plugins or {}
    for j, ref in ipairs(refs) do
      local name = type(ref) == "table" and ref.pluginRef or nil
      if not defined[name] then
        return ("%s: pluginRef %q names no plugin of %s (%s)")
          :format(at(i, j, sp), tostring(name), of, table.concat(sorted_keys(defined), ", "))
      end
    end
  end
  return nil
end

--- Why profile `p` (named `name`) cannot be an EndpointPickerConfig, or nil:
--- `plugins` and `schedulingProfiles` must be non-empty lists, every plugin
--- needs a `type`, and every `pluginRef` must name a plugin of the profile
--- (its `name`, else its `type`), so a misspelt ref in a policy overlay (which
--- merges as a new entry) fails `check` instead of the EPP at startup.
--- @param name string
--- @param p table
--- @return string|nil
function M.profile_problem(name, p)
  local where = ("profile %q (lib/epp_profiles.lua and the policy's profiles)"):format(name)
  return config_problem(p, function(i, j, sp)
    if j then return ("%s: schedulingProfiles %q plugins[%d]"):format(where, tostring(sp.name), j) end
    if i then return ("%s: plugins[%d]"):format(where, i) end
    return where
  end, "the profile")
end

for _, name in ipairs((function()
  local names = {}
  for k in pairs(M.profiles) do names[#names + 1] = k end
  table.sort(names)
  return names
end)()) do
  local problem = M.profile_problem(name, M.profiles[name])
  if problem then error(problem, 0) end
end

M.CONFIG_API = "inference.networking.x-k8s.io/v1alpha1"
M.CONFIG_KIND = "EndpointPickerConfig"

-- Deep copy, marking every sequence (and every table decoded from a JSON
-- array, even empty) as a JSON/YAML array; a whole float becomes an integer
-- (`weight: 2`, not `2.0`: GAIE before v1.4 reads weights into an int).
local function copy(v)
  if type(v) == "number" then return math.tointeger(v) or v end
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = copy(x) end
  if #v > 0 or getmetatable(v) == k8s.array_mt then k8s.array(out) end
  return out
end

--- The profile names, sorted.
--- @return string[]
function M.profile_names()
  local known = {}
  for k in pairs(M.profiles) do known[#known + 1] = k end
  table.sort(known)
  return known
end

--- The EndpointPickerConfig table of profile `name` (a fresh copy), or nil,
--- message naming `field` (default "spec.epp.configProfile") and the known names.
--- @param name string
--- @param field string|nil
--- @return table|nil, string|nil
function M.config(name, field)
  local p = M.profiles[name]
  if not p then
    return nil, ("%s %q is not one of %s (the profiles of the script set: lib/epp_profiles.lua and the policy's "
      .. "profiles)"):format(field or "spec.epp.configProfile", tostring(name), table.concat(M.profile_names(), ", "))
  end
  return M.with_kind(p)
end

--- A fresh copy of `p` (`plugins`, `schedulingProfiles`) with apiVersion and
--- kind: the EndpointPickerConfig the EPP reads.
--- @param p { plugins: table[], schedulingProfiles: table[] }
--- @return table
function M.with_kind(p)
  local cfg = copy(p)
  cfg.apiVersion = M.CONFIG_API
  cfg.kind = M.CONFIG_KIND
  return cfg
end

--- The profile as YAML text for the EPP's ConfigMap, or nil, message.
--- @param name string
--- @param field string|nil
--- @return string|nil, string|nil
function M.render(name, field)
  local cfg, err = M.config(name, field)
  if not cfg then return nil, err end
  return k8s.yaml.encode(cfg)
end

--- An inline EndpointPickerConfig fragment (spec.epp.config, checked by
--- fragment_problem) as YAML text for the EPP's ConfigMap, rendered as
--- render renders a profile.
--- @param p { plugins: table[], schedulingProfiles: table[] }
--- @return string
function M.render_fragment(p)
  return k8s.yaml.encode(M.with_kind(p))
end

--- Why inline EndpointPickerConfig fragment `p` (at `field`, e.g.
--- "spec.epp.config") cannot run on EPP `row` (an epp_for result), or nil.
--- Places are named as the API server names them (`field`.plugins[0], lists
--- from 0). The checks: profile_problem's (shape, every pluginRef names a
--- plugin); every plugin type is one `row` registers (`row.plugin_types`; a
--- row without a table checks no types); weights are whole numbers before
--- GAIE v1.4 (its SchedulingPlugin.Weight was *int, a float64 from v1.4).
--- @param p table
--- @param row EPPRow
--- @param field string
--- @return string|nil
function M.fragment_problem(p, row, field)
  local problem = config_problem(p, function(i, j)
    if j then return ("%s.schedulingProfiles[%d].plugins[%d]"):format(field, i - 1, j - 1) end
    if i then return ("%s.plugins[%d]"):format(field, i - 1) end
    return field
  end, field .. ".plugins")
  if problem then return problem end
  local who = ("%s %s"):format(row.project or "llm-d-inference-scheduler", row.version or "unknown")
  if row.plugin_types then
    for i, pl in ipairs(p.plugins) do
      if not row.plugin_types[pl.type] then
        return ("%s.plugins[%d].type %q is not a plugin type of %s (known: %s)")
          :format(field, i - 1, pl.type, who, table.concat(sorted_keys(row.plugin_types), ", "))
      end
    end
  end
  for i, sp in ipairs(p.schedulingProfiles) do
    for j, ref in ipairs(sp.plugins) do
      local w = ref.weight
      if w ~= nil and (type(w) ~= "number" or (not row.float_weights and w % 1 ~= 0)) then
        return ("%s.schedulingProfiles[%d].plugins[%d].weight %s: %s takes whole-number weights (fractions from "
          .. "llm-d-inference-scheduler v0.7, GAIE v1.4)"):format(field, i - 1, j - 1, tostring(w), who)
      end
    end
  end
  return nil
end

-- ---------------------------------------------------------------- versions

-- image tags and versions: lib/version.lua (also used by schedulerinstall/versions.lua)
M.image_tag, M.parse, M.compare = semver.image_tag, semver.parse, semver.compare

-- Metric-name flags GAIE >= v1.4 (llm-d-inference-scheduler >= v0.7) refuses
-- at startup ("flag ... is deprecated and cannot be used").
M.metric_flags = {
  "--total-queued-requests-metric", "--total-running-requests-metric", "--kv-cache-usage-percentage-metric",
  "--lora-info-metric", "--cache-info-metric",
}
--- The same, by flag name without dashes (a set).
M.METRIC_FLAG_NAMES = {}
for _, f in ipairs(M.metric_flags) do M.METRIC_FLAG_NAMES[f:sub(3)] = true end

local read = { "get", "list", "watch" }
local write = { "get", "list", "watch", "update", "patch" }

-- ext_proc processing mode the EPP speaks (EnvoyFilter template).
local full_duplex = {
  request_header_mode = "SEND", request_body_mode = "FULL_DUPLEX_STREAMED", request_trailer_mode = "SEND",
  response_header_mode = "SEND", response_body_mode = "FULL_DUPLEX_STREAMED", response_trailer_mode = "SEND",
}
local buffered = {
  request_header_mode = "SEND", request_body_mode = "BUFFERED", response_header_mode = "SKIP",
  response_body_mode = "NONE",
}
local ha = { flag = "--ha-enable-leader-election", liveness = "liveness", readiness = "readiness" }
local rules_v07 = {
  { apiGroups = { "" }, resources = { "pods", "services", "endpoints" }, verbs = read },
  { apiGroups = { "inference.networking.k8s.io" }, resources = { "inferencepools", "inferenceobjectives" },
    verbs = write },
  { apiGroups = { "inference.networking.x-k8s.io" },
    resources = { "inferencepools", "inferenceobjectives", "inferencemodelrewrites" }, verbs = write },
}
local rules_v04 = {
  { apiGroups = { "" }, resources = { "pods", "services", "endpoints" }, verbs = read },
  { apiGroups = { "inference.networking.k8s.io" }, resources = { "inferencepools", "inferenceobjectives" },
    verbs = write },
  { apiGroups = { "inference.networking.x-k8s.io" }, resources = { "inferencepools", "inferenceobjectives" },
    verbs = write },
}

-- Plugin types each EPP registers: what an inline spec.epp.config may name
-- (fragment_problem). Confirmed from the tagged sources:
--   * llm-d-inference-scheduler v0.4.0 pkg/plugins/register.go (RegisterAllPlugins; the same
--     twelve are documented in its docs/architecture.md "Plugin Configuration");
--   * gateway-api-inference-extension v1.2.0, v1.3.0 and v1.4.0 cmd/epp/runner/runner.go
--     (registerInTreePlugins), GAIE_V12/V13/V14 below.
-- Not confirmed at a tag: that llm-d-inference-scheduler v0.5-v0.7 register the same twelve as
-- v0.4.0 (seen unchanged in a January 2026 tree on a post-v1.3 GAIE:
-- opendatahub-io/llm-d-inference-scheduler b0730f75 pkg/plugins/register.go). The v0.8 (GAIE
-- v1.6) and pre-v0.4 rows have no table: their plugin types are not checked.
local function type_set(...)
  local out = {}
  for _, list in ipairs({ ... }) do
    for _, t in ipairs(list) do out[t] = true end
  end
  return out
end
local LLMD_V04 = {
  "by-label", "by-label-selector", "decode-filter", "prefill-filter", "prefill-header-handler",
  "data-parallel-profile-handler", "pd-profile-handler", "precise-prefix-cache-scorer", "load-aware-scorer",
  "session-affinity-scorer", "active-request-scorer", "no-hit-lru-scorer",
}
local GAIE_V12 = {
  "prefix-cache-scorer", "max-score-picker", "random-picker", "weighted-random-picker", "single-profile-handler",
  "kv-cache-utilization-scorer", "queue-scorer", "lora-affinity-scorer",
  -- registered "for test purpose only (used in conformance tests)", but registered
  "header-based-testing-filter", "destination-endpoint-served-verifier",
}
local GAIE_V13 = { "running-requests-size-scorer", "predicted-latency-scorer", "metrics-data-source",
  "model-server-protocol-metrics" }
local GAIE_V14 = { "global-strict-fairness-policy", "round-robin-fairness-policy", "fcfs-ordering-policy",
  "edf-ordering-policy", "k8s-notification-source", "request-attribute-reporter" }
local types_v04 = { gaie = type_set(GAIE_V12), llmd = type_set(LLMD_V04) }
local types_v05 = { gaie = type_set(GAIE_V12, GAIE_V13), llmd = type_set(LLMD_V04) }
local types_v07 = { gaie = type_set(GAIE_V12, GAIE_V13, GAIE_V14), llmd = type_set(LLMD_V04) }

---@class EPPRow
---@field since string              first llm-d-inference-scheduler version of the row
---@field gaie string               the GAIE version it is built on (GAIE epp images map by it)
---@field metric_flags "accepted"|"rejected"  whether --kv-cache-usage-percentage-metric & co. are accepted
---@field default_kv_metric string  what the EPP reads when not told
---@field metrics_auth_flag boolean|nil  --metrics-endpoint-auth exists (passed as false, see below)
---@field ha { flag: string, liveness: string, readiness: string }|nil  leader election, replicas > 1
---@field ext_proc table            the ext_proc processing mode
---@field rules table[]             the Role rules, in the pool namespace
---@field types { gaie: table<string, true>, llmd: table<string, true> }|nil  plugin types it registers
---@field float_weights boolean|nil  scheduling profile weights may be fractions (GAIE >= v1.4)
---@field plugin_types table<string, true>|nil  (epp_for) the image's plugin types: GAIE's, plus llm-d's
---@field project string            (epp_for) "llm-d-inference-scheduler" or "gateway-api-inference-extension epp"
---@field version string            (epp_for) the tag, or "unknown"
---@field known boolean             (epp_for) the tag is a version

--- Rows keyed by llm-d-inference-scheduler version, newest first: the first
--- row whose `since` is <= the image's version applies; untagged images get
--- the newest. metrics_auth_flag: the EPP has --metrics-endpoint-auth (default
--- true); we pass false: with auth on every /metrics scrape needs the EPP's
--- ServiceAccount to create cluster-scoped tokenreviews and
--- subjectaccessreviews, which a namespaced Role cannot grant (every scrape
--- failed, found on the local data plane). GAIE v1.6.0 has no such flag; that
--- llm-d-inference-scheduler v0.8.0 is the first on it is not verified.
---@type EPPRow[]
M.rows = {
  { since = "0.8.0", gaie = "1.6.0", metric_flags = "rejected", default_kv_metric = "vllm:kv_cache_usage_perc",
    ha = ha, ext_proc = full_duplex, rules = rules_v07 },
  { since = "0.7.0", gaie = "1.4.0", metrics_auth_flag = true, metric_flags = "rejected",
    default_kv_metric = "vllm:kv_cache_usage_perc", ha = ha, ext_proc = full_duplex, rules = rules_v07,
    types = types_v07, float_weights = true },
  { since = "0.5.0", gaie = "1.3.0", metrics_auth_flag = true, metric_flags = "accepted",
    default_kv_metric = "vllm:kv_cache_usage_perc", ha = ha, ext_proc = full_duplex, rules = rules_v04,
    types = types_v05 },
  { since = "0.4.0", gaie = "1.2.0", metrics_auth_flag = true, metric_flags = "accepted",
    default_kv_metric = "vllm:gpu_cache_usage_perc", ha = ha, ext_proc = full_duplex, rules = rules_v04,
    types = types_v04 },
  { since = "0.0.0", gaie = "0.0.0", metric_flags = "accepted", default_kv_metric = "vllm:gpu_cache_usage_perc",
    ha = nil, ext_proc = buffered,
    rules = {
      { apiGroups = { "" }, resources = { "pods", "services", "endpoints" }, verbs = read },
      { apiGroups = { "inference.networking.x-k8s.io" },
        resources = { "inferencepools", "inferencemodels", "inferenceobjectives" }, verbs = write },
    } },
}

-- Images whose tag is a GAIE version rather than a scheduler version.
M.gaie_images = { "gateway%-api%-inference%-extension/epp" }

--- The EPP row for an image, plus `version` (the tag or "unknown") and `known`.
--- @param image string
--- @return EPPRow
function M.epp_for(image)
  local tag = M.image_tag(image)
  local v = M.parse(tag)
  local row, gaie_image
  for _, pat in ipairs(M.gaie_images) do
    if type(image) == "string" and image:find(pat) then
      gaie_image = true
      row = v and M.rows[#M.rows] or M.rows[1]
      for _, r in ipairs(M.rows) do
        if v and M.compare(v, M.parse(r.gaie)) >= 0 then row = r; break end
      end
    end
  end
  if not row then
    row = M.rows[1]
    for _, r in ipairs(v and M.rows or {}) do
      row = r
      if M.compare(v, M.parse(r.since)) >= 0 then break end
    end
  end
  local out = setmetatable({}, { __index = row })
  out.version = v and tag or "unknown"
  out.known = v ~= nil
  out.project = gaie_image and "gateway-api-inference-extension epp" or "llm-d-inference-scheduler"
  -- the GAIE image registers GAIE's plugins only; llm-d's adds its own
  out.plugin_types = row.types and (gaie_image and row.types.gaie or type_set(sorted_keys(row.types.gaie),
    sorted_keys(row.types.llmd)))
  return out
end

--- The EPP arguments, in the reference operator's order, for row `row` and
--- parameters p = { pool_name, pool_namespace, pool_group, config_file,
--- kv_metric, secure, port, health_port, metrics_port, verbosity, replicas }.
--- @param row EPPRow
--- @param p table
--- @return string[]
function M.args(row, p)
  local args = {
    "--pool-name", p.pool_name, "--pool-namespace", p.pool_namespace, "--pool-group", p.pool_group,
    "--zap-encoder", "json", "--config-file", p.config_file,
  }
  local function add(...) for _, a in ipairs({ ... }) do args[#args + 1] = a end end
  if row.metric_flags == "accepted" and p.kv_metric then add("--kv-cache-usage-percentage-metric", p.kv_metric) end
  add(p.secure and "--secure-serving=true" or "--secure-serving=false")
  add("--grpc-port", tostring(p.port), "--grpc-health-port", tostring(p.health_port))
  if p.metrics_port ~= 9090 then add("--metrics-port", tostring(p.metrics_port)) end
  add("--v", tostring(p.verbosity), "--tracing=false")
  if row.metrics_auth_flag then add("--metrics-endpoint-auth=false") end
  if p.replicas > 1 and row.ha then add(row.ha.flag) end
  return args
end

--- The flags of `args` this EPP version refuses at startup (a list, maybe empty).
--- @param row EPPRow
--- @param args string[]|nil
--- @return string[]
function M.rejected_args(row, args)
  local bad = {}
  if row.metric_flags ~= "rejected" or type(args) ~= "table" then return bad end
  for _, a in ipairs(args) do
    for _, f in ipairs(M.metric_flags) do
      if a == f or a:sub(1, #f + 1) == f .. "=" then bad[#bad + 1] = a end
    end
  end
  return bad
end

--- The Role rule an EPP electing a leader needs (client-go's leaselock:
--- get, create, update of its Lease; list and watch for the informer).
M.HA_LEASE_RULE = { apiGroups = { "coordination.k8s.io" }, resources = { "leases" },
  verbs = { "get", "list", "watch", "create", "update", "patch" } }

--- The read-only rules SimulatorDeployment's EPP gets in its own namespace
--- (pods, both InferencePool groups, InferenceObjective /
--- InferenceModelRewrite): it only watches, the pool being the operator's.
M.READ_ONLY_RULES = {
  { apiGroups = { "" }, resources = { "pods" }, verbs = read },
  { apiGroups = { "inference.networking.k8s.io" }, resources = { "inferencepools" }, verbs = read },
  { apiGroups = { "inference.networking.x-k8s.io" },
    resources = { "inferencepools", "inferenceobjectives", "inferencemodelrewrites" }, verbs = read },
}

--- The Role rules of an EPP: the row's (`set` "row", SchedulerInstall, in the
--- pool namespace) or READ_ONLY_RULES (`set` "read-only", SimulatorDeployment),
--- plus the Lease rule when several replicas elect a leader. Fresh tables,
--- lists marked as arrays.
--- @param row EPPRow
--- @param replicas integer
--- @param set "row"|"read-only"
--- @return table[]
function M.rules(row, replicas, set)
  local list = {}
  for _, r in ipairs(set == "read-only" and M.READ_ONLY_RULES or row.rules) do list[#list + 1] = r end
  if replicas > 1 and (row.ha or set == "read-only") then list[#list + 1] = M.HA_LEASE_RULE end
  local out = {}
  for i, r in ipairs(list) do
    out[i] = { apiGroups = copy(r.apiGroups), resources = copy(r.resources), verbs = copy(r.verbs) }
  end
  return k8s.array(out)
end

--- Liveness and readiness probes on the health port. Several replicas that
--- elect a leader: the gRPC health services `liveness` (every replica) and
--- `readiness` (only the leader). One replica: `single` "tcp" (SchedulerInstall,
--- as the reference operator) or "grpc" (SimulatorDeployment: the
--- `inference-extension` health service, which answers once the EPP serves).
--- @param row EPPRow
--- @param health_port integer
--- @param replicas integer
--- @param single "tcp"|"grpc"
--- @return { livenessProbe: table, readinessProbe: table }
function M.probes(row, health_port, replicas, single)
  local live = { initialDelaySeconds = 5, periodSeconds = 10, timeoutSeconds = 1, successThreshold = 1,
    failureThreshold = 3 }
  local ready = { periodSeconds = 2, timeoutSeconds = 1, successThreshold = 1, failureThreshold = 3 }
  local h = replicas > 1 and (row.ha or ha)
  local function with(t, how)
    local out = { }
    for k, v in pairs(t) do out[k] = v end
    for k, v in pairs(how) do out[k] = v end
    return out
  end
  if h then
    return { livenessProbe = with(live, { grpc = { port = health_port, service = h.liveness } }),
      readinessProbe = with(ready, { grpc = { port = health_port, service = h.readiness } }) }
  end
  if single == "grpc" then
    return { livenessProbe = with(live, { grpc = { port = health_port, service = "inference-extension" } }),
      readinessProbe = with(ready, { grpc = { port = health_port, service = "inference-extension" } }) }
  end
  return { livenessProbe = with(live, { tcpSocket = { port = health_port } }),
    readinessProbe = with(ready, { tcpSocket = { port = health_port } }) }
end

return M
