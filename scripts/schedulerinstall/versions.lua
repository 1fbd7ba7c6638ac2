-- Version table for SchedulerInstall's simulator side: which KV-cache metric
-- name each simulator version exports (the EPP's version rows are lib/epp.lua).
--
-- Edit the table, not the code: rows are ordered newest first and the first
-- row whose `since` is <= the image's version applies. Untagged images
-- ("latest", "dev", a digest) get the current name.
-- Source: the KV gauge rename in llm-d-inference-sim v0.7.0 (llm-d/llm-d-inference-sim#307).
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
