-- Version tables for SchedulerInstall: what each EPP image version accepts
-- (arguments, RBAC rules, ext_proc processing mode, HA probes) and which
-- KV-cache metric name each simulator version exports.
--
-- Edit the tables, not the code: rows are ordered newest first and the first
-- row whose `since` is <= the image's version applies. Untagged images
-- ("latest", "dev", a digest) get the newest row.
-- Sources (doc/configuration.md "Versions" summarises them): EPP flags from
-- gateway-api-inference-extension v1.2.0 cmd/epp/runner/runner.go and v1.4.0
-- pkg/epp/server/options.go (Validate refuses the metric-name flags); EPP RBAC from
-- llm-d-inference-scheduler v0.4.0 deploy/components/inference-gateway/rbac.yaml and
-- llm-d/llm-d-benchmark#775 (inferencemodelrewrites); the KV gauge rename in
-- llm-d-inference-sim v0.7.0 (llm-d/llm-d-inference-sim#307).
local M = {}

-- ---------------------------------------------------------------- parsing

--- The tag of an image reference ("repo/name:tag@sha256:..." -> "tag"), or nil.
function M.image_tag(image)
  if type(image) ~= "string" then return nil end
  local ref = image:gsub("@.*$", "")
  local last = ref:match("[^/]*$")
  return last:match(":([^:]+)$")
end

--- Parses "v0.4.0", "0.7", "v0.5.0-rc.1" into { major, minor, patch }, or nil.
function M.parse(tag)
  if type(tag) ~= "string" then return nil end
  local a, b, c = tag:match("^v?(%d+)%.(%d+)%.?(%d*)")
  if not a then return nil end
  return { tonumber(a), tonumber(b), tonumber(c) or 0 }
end

--- -1, 0, 1 like strcmp, for two parsed versions.
function M.compare(x, y)
  for i = 1, 3 do
    if x[i] ~= y[i] then return x[i] < y[i] and -1 or 1 end
  end
  return 0
end

local function pick(rows, version)
  if not version then return rows[1] end
  for _, row in ipairs(rows) do
    if M.compare(version, M.parse(row.since)) >= 0 then return row end
  end
  return rows[#rows]
end

-- ------------------------------------------------------------------- EPP

-- Metric-name flags GAIE >= v1.4 (llm-d-inference-scheduler >= v0.7) refuses
-- at startup ("flag ... is deprecated and cannot be used").
M.metric_flags = {
  "--total-queued-requests-metric",
  "--total-running-requests-metric",
  "--kv-cache-usage-percentage-metric",
  "--lora-info-metric",
  "--cache-info-metric",
}

local read = { "get", "list", "watch" }
local write = { "get", "list", "watch", "update", "patch" }

-- ext_proc processing mode the EPP speaks (EnvoyFilter template).
local full_duplex = {
  request_header_mode = "SEND",
  request_body_mode = "FULL_DUPLEX_STREAMED",
  request_trailer_mode = "SEND",
  response_header_mode = "SEND",
  response_body_mode = "FULL_DUPLEX_STREAMED",
  response_trailer_mode = "SEND",
}
local buffered = {
  request_header_mode = "SEND",
  request_body_mode = "BUFFERED",
  response_header_mode = "SKIP",
  response_body_mode = "NONE",
}

--- Rows keyed by llm-d-inference-scheduler version (GAIE EPP images are
--- mapped onto these rows by `gaie` below).
---   metric_flags:  "accepted" (pass --kv-cache-usage-percentage-metric) or "rejected"
---   default_kv_metric: what the EPP reads when not told
---   ha: leader-election flag and gRPC health service names for replicas > 1
---   rules: the Role rules, in the pool namespace
---   metrics_auth_flag: the EPP has --metrics-endpoint-auth (default true). We
---     pass false: with auth on, every /metrics scrape needs the EPP's own
---     ServiceAccount to create cluster-scoped tokenreviews and
---     subjectaccessreviews, which the namespaced Role cannot grant, so every
---     scrape failed (HTTP 401/500, found on the local data plane). The port
---     is the pod's metrics port, as plain as the simulator's /metrics.
M.epp = {
  -- GAIE v1.6.0 has no --metrics-endpoint-auth flag (none in its module), so
  -- it is not passed from here on; that llm-d-inference-scheduler v0.8.0 is
  -- the first on such a GAIE is not verified (it does not build here).
  {
    since = "0.8.0", gaie = "1.6.0",
    metric_flags = "rejected",
    default_kv_metric = "vllm:kv_cache_usage_perc",
    ha = { flag = "--ha-enable-leader-election", liveness = "liveness", readiness = "readiness" },
    ext_proc = full_duplex,
    rules = {
      { apiGroups = { "" }, resources = { "pods", "services", "endpoints" }, verbs = read },
      { apiGroups = { "inference.networking.k8s.io" }, resources = { "inferencepools", "inferenceobjectives" },
        verbs = write },
      { apiGroups = { "inference.networking.x-k8s.io" },
        resources = { "inferencepools", "inferenceobjectives", "inferencemodelrewrites" }, verbs = write },
    },
  },
  {
    since = "0.7.0", metrics_auth_flag = true, gaie = "1.4.0",
    metric_flags = "rejected",
    default_kv_metric = "vllm:kv_cache_usage_perc",
    ha = { flag = "--ha-enable-leader-election", liveness = "liveness", readiness = "readiness" },
    ext_proc = full_duplex,
    rules = {
      { apiGroups = { "" }, resources = { "pods", "services", "endpoints" }, verbs = read },
      { apiGroups = { "inference.networking.k8s.io" }, resources = { "inferencepools", "inferenceobjectives" },
        verbs = write },
      { apiGroups = { "inference.networking.x-k8s.io" },
        resources = { "inferencepools", "inferenceobjectives", "inferencemodelrewrites" }, verbs = write },
    },
  },
  {
    since = "0.5.0", metrics_auth_flag = true, gaie = "1.3.0",
    metric_flags = "accepted",
    default_kv_metric = "vllm:kv_cache_usage_perc",
    ha = { flag = "--ha-enable-leader-election", liveness = "liveness", readiness = "readiness" },
    ext_proc = full_duplex,
    rules = {
      { apiGroups = { "" }, resources = { "pods", "services", "endpoints" }, verbs = read },
      { apiGroups = { "inference.networking.k8s.io" }, resources = { "inferencepools", "inferenceobjectives" },
        verbs = write },
      { apiGroups = { "inference.networking.x-k8s.io" }, resources = { "inferencepools", "inferenceobjectives" },
        verbs = write },
    },
  },
  {
    since = "0.4.0", metrics_auth_flag = true, gaie = "1.2.0",
    metric_flags = "accepted",
    default_kv_metric = "vllm:gpu_cache_usage_perc",
    ha = { flag = "--ha-enable-leader-election", liveness = "liveness", readiness = "readiness" },
    ext_proc = full_duplex,
    rules = {
      { apiGroups = { "" }, resources = { "pods", "services", "endpoints" }, verbs = read },
      { apiGroups = { "inference.networking.k8s.io" }, resources = { "inferencepools", "inferenceobjectives" },
        verbs = write },
      { apiGroups = { "inference.networking.x-k8s.io" }, resources = { "inferencepools", "inferenceobjectives" },
        verbs = write },
    },
  },
  {
    since = "0.0.0", gaie = "0.0.0",
    metric_flags = "accepted",
    default_kv_metric = "vllm:gpu_cache_usage_perc",
    ha = nil,
    ext_proc = buffered,
    rules = {
      { apiGroups = { "" }, resources = { "pods", "services", "endpoints" }, verbs = read },
      { apiGroups = { "inference.networking.x-k8s.io" },
        resources = { "inferencepools", "inferencemodels", "inferenceobjectives" }, verbs = write },
    },
  },
}

-- Images whose tag is a GAIE version rather than a scheduler version.
M.gaie_images = { "gateway%-api%-inference%-extension/epp" }

--- The EPP row for an image, plus `version` (the tag or "unknown").
function M.epp_for(image)
  local tag = M.image_tag(image)
  local v = M.parse(tag)
  local row
  for _, pat in ipairs(M.gaie_images) do
    if type(image) == "string" and image:find(pat) then
      row = M.epp[#M.epp]
      if not v then row = M.epp[1] end
      for _, r in ipairs(M.epp) do
        if v and M.compare(v, M.parse(r.gaie)) >= 0 then row = r; break end
      end
    end
  end
  row = row or pick(M.epp, v)
  local out = setmetatable({}, { __index = row })
  out.version = v and tag or "unknown"
  out.known = v ~= nil
  return out
end

--- The EPP arguments, in the reference operator's order, for row `row` and
--- parameters p = { pool_name, pool_namespace, pool_group, config_file,
--- kv_metric, secure, port, health_port, metrics_port, verbosity, replicas }.
function M.epp_args(row, p)
  local args = {
    "--pool-name", p.pool_name,
    "--pool-namespace", p.pool_namespace,
    "--pool-group", p.pool_group,
    "--zap-encoder", "json",
    "--config-file", p.config_file,
  }
  if row.metric_flags == "accepted" and p.kv_metric then
    args[#args + 1] = "--kv-cache-usage-percentage-metric"
    args[#args + 1] = p.kv_metric
  end
  args[#args + 1] = p.secure and "--secure-serving=true" or "--secure-serving=false"
  args[#args + 1] = "--grpc-port"
  args[#args + 1] = tostring(p.port)
  args[#args + 1] = "--grpc-health-port"
  args[#args + 1] = tostring(p.health_port)
  if p.metrics_port ~= 9090 then
    args[#args + 1] = "--metrics-port"
    args[#args + 1] = tostring(p.metrics_port)
  end
  args[#args + 1] = "--v"
  args[#args + 1] = tostring(p.verbosity)
  args[#args + 1] = "--tracing=false"
  if row.metrics_auth_flag then
    args[#args + 1] = "--metrics-endpoint-auth=false"
  end
  if p.replicas > 1 and row.ha then
    args[#args + 1] = row.ha.flag
  end
  return args
end

--- The Role rule an EPP electing a leader needs (client-go's leaselock:
--- get, create, update of its Lease; list and watch for the informer).
M.HA_LEASE_RULE = { apiGroups = { "coordination.k8s.io" }, resources = { "leases" },
  verbs = { "get", "list", "watch", "create", "update", "patch" } }

--- Liveness and readiness probes on the health port: TCP for one replica
--- (as the reference), gRPC health services when several replicas elect a
--- leader (only the leader is ready).
function M.epp_probes(row, health_port, replicas)
  if replicas > 1 and row.ha then
    return {
      livenessProbe = { grpc = { port = health_port, service = row.ha.liveness },
        initialDelaySeconds = 5, periodSeconds = 10, timeoutSeconds = 1, successThreshold = 1, failureThreshold = 3 },
      readinessProbe = { grpc = { port = health_port, service = row.ha.readiness },
        periodSeconds = 2, timeoutSeconds = 1, successThreshold = 1, failureThreshold = 3 },
    }
  end
  return {
    livenessProbe = { tcpSocket = { port = health_port },
      initialDelaySeconds = 5, periodSeconds = 10, timeoutSeconds = 1, successThreshold = 1, failureThreshold = 3 },
    readinessProbe = { tcpSocket = { port = health_port },
      periodSeconds = 2, timeoutSeconds = 1, successThreshold = 1, failureThreshold = 3 },
  }
end

--- The flags of `args` this EPP version refuses at startup (a list, maybe empty).
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

-- -------------------------------------------------------------- simulator

--- KV-cache usage gauge by llm-d-inference-sim version (renamed in v0.7.0,
--- llm-d/llm-d-inference-sim#307).
M.simulator = {
  { since = "0.7.0", kv_metric = "vllm:kv_cache_usage_perc" },
  { since = "0.0.0", kv_metric = "vllm:gpu_cache_usage_perc" },
}
-- Untagged or local builds (the reference's llm-d-simulator:local): current name.
M.simulator_default_kv_metric = "vllm:kv_cache_usage_perc"

--- KV metric name and version ("unknown" when untagged) for a simulator image.
function M.sim_kv_metric(image)
  local tag = M.image_tag(image)
  local v = M.parse(tag)
  if not v then return M.simulator_default_kv_metric, "unknown" end
  return pick(M.simulator, v).kv_metric, tag
end

return M
