-- Version table for SchedulerInstall's simulator side: which KV-cache metric
-- name each simulator version exports (the EPP's version rows are lib/epp.lua).
--
-- Edit the table, not the code: rows are ordered newest first and the first
-- row whose `since` is <= the image's version applies. Untagged images
-- ("latest", "dev", a digest) get the current name.
-- Source: the KV gauge rename in llm-d-inference-sim v0.7.0 (llm-d/llm-d-inference-sim#307).
local semver = require("lib.version")

local M = {}

-- ---------------------------------------------------------------- parsing

-- image tags and versions: lib/version.lua (shared with lib/epp.lua)
M.image_tag, M.parse, M.compare = semver.image_tag, semver.parse, semver.compare

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
