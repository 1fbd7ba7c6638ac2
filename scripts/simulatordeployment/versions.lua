--- Image → behaviour tables for the images a SimulatorDeployment runs:
--- the llm-d inference simulator (health endpoints, KV-cache metric name);
--- the EPP's are lib/epp.lua, shared with SchedulerInstall.
--- Sources: doc/configuration.md ("Versions"); llm-d-inference-sim v0.10.2
--- pkg/common/parser.go and pkg/communication/http.go (flags, /health, /health/ready).
local M = {}

--- The pinned upstream simulator image (newest release in the reference table).
M.SIM_IMAGE = "ghcr.io/llm-d/llm-d-inference-sim:v0.10.2"
--- Self-managed gateway images (the reference operator's defaults).
M.STANDARD_GATEWAY_IMAGE = "cr.kgateway.dev/kgateway-dev/envoy-wrapper:v2.1.1"
M.ISTIO_GATEWAY_IMAGE = "docker.io/istio/proxyv2:1.28.1"

--- The tag of an image reference, or nil (none, or a digest).
--- @param image string
--- @return string|nil
function M.tag(image)
  if type(image) ~= "string" or image:find("@", 1, true) then return nil end
  local last = image:match("[^/]*$")
  return last:match(":([^:]+)$")
end

--- Semantic version of an image tag ("v0.9.1", "0.4.0", "v0.7.0-rc.1"), or nil
--- for tags such as latest, dev, local.
--- @param image string
--- @return integer[]|nil  { major, minor, patch }
function M.version(image)
  local t = M.tag(image)
  if not t then return nil end
  local a, b, c = t:match("^v?(%d+)%.(%d+)%.?(%d*)")
  if not a then return nil end
  return { tonumber(a), tonumber(b), tonumber(c) or 0 }
end

--- Whether version `v` ≥ `{major, minor, patch}` (nil `v` counts as newest).
--- @param v integer[]|nil
--- @param major integer
--- @param minor integer
--- @param patch integer|nil
--- @return boolean
function M.at_least(v, major, minor, patch)
  if not v then return true end
  local want = { major, minor, patch or 0 }
  for i = 1, 3 do
    if v[i] ~= want[i] then return v[i] > want[i] end
  end
  return true
end

---@class SimTraits
---@field known boolean           the tag is a release version
---@field liveness string|nil     HTTP path of the liveness probe (nil → TCP probe)
---@field readiness string|nil    HTTP path of the readiness probe (nil → TCP probe)
---@field kv_metric string        name of the KV-cache usage gauge

--- What a simulator image serves.
---  * ≥ v0.9.0: `/health` (liveness) and `/health/ready` (readiness);
---  * v0.3.0 … v0.8.x: `/health` and `/ready`;
---  * older releases: TCP probes on the serving port;
---  * tags that are not a version (latest, dev, local, digests): `/health` for
---    both, the one endpoint every release since v0.3.0 serves.
--- KV gauge: `vllm:kv_cache_usage_perc` from v0.7.0, `vllm:gpu_cache_usage_perc` before.
--- @param image string
--- @return SimTraits
function M.sim(image)
  local v = M.version(image)
  local t = { known = v ~= nil }
  if not v then
    t.liveness, t.readiness = "/health", "/health"
  elseif M.at_least(v, 0, 9, 0) then
    t.liveness, t.readiness = "/health", "/health/ready"
  elseif M.at_least(v, 0, 3, 0) then
    t.liveness, t.readiness = "/health", "/ready"
  end
  t.kv_metric = M.at_least(v, 0, 7, 0) and "vllm:kv_cache_usage_perc" or "vllm:gpu_cache_usage_perc"
  return t
end

return M
