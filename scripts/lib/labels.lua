--- Standard labels and selectors of the objects the operator creates
--- (doc/architecture.md, "What the runtime does with a result").
---
--- The runtime itself stamps `app.kubernetes.io/managed-by` and
--- `sim.llm-d.io/owner` on every child's metadata: `M.standard` does NOT add them.
--- Pod templates are not children, so `M.pod` adds `managed-by` there.
local copy = require("lib.obj").copy

local M = {}

M.NAME = "app.kubernetes.io/name"
M.COMPONENT = "app.kubernetes.io/component"
M.PART_OF = "app.kubernetes.io/part-of"
M.MANAGED_BY = "app.kubernetes.io/managed-by"
M.MANAGER = "schedsim-operator"
M.OWNER = "sim.llm-d.io/owner"
M.ROLE = "llm-d.ai/role"
--- camel-case serving flag: the reference operator and llm-d-modelservice ≤ v0.4.4
M.SERVING_LEGACY = "llm-d.ai/inferenceServing"
--- hyphenated serving flag: llm-d-modelservice ≥ v0.4.5 and the llm-d guides
M.SERVING = "llm-d.ai/inference-serving"

--- Merge string maps left to right into a new table (later wins; nil args skipped).
--- @param ... table<string,string>|nil
--- @return table<string,string>
function M.merge(...)
  local out = {}
  for i = 1, select("#", ...) do
    for k, v in pairs(select(i, ...) or {}) do out[k] = v end
  end
  return out
end

--- Labels for a child's metadata: `app.kubernetes.io/name: <CR name>`,
--- `app.kubernetes.io/component: <component>` plus `extra`.
--- @param cr table                the CR (metadata.name is used)
--- @param component string|nil    e.g. "simulator-decode", "epp", "gateway"
--- @param extra table<string,string>|nil
--- @return table<string,string>
function M.standard(cr, component, extra)
  local out = { [M.NAME] = cr.metadata.name }
  if component then out[M.COMPONENT] = component end
  for k, v in pairs(extra or {}) do out[k] = v end
  return out
end

--- Labels the EPP and the reference's selectors use on serving pods, in
--- their selector form (exactly the reference operator's, so selectors stay
--- compatible): role, camel-case serving flag, CR name.
--- @param cr table
--- @param role string  "prefill" | "decode"
--- @return table<string,string>
function M.serving_selector(cr, role)
  return { [M.ROLE] = role, [M.SERVING_LEGACY] = "true", [M.NAME] = cr.metadata.name }
end

--- Full label set of a serving pod template: the selector labels, both
--- spellings of the serving flag, component and managed-by.
--- @param cr table
--- @param role string
--- @param component string|nil
--- @return table<string,string>
function M.serving_pod(cr, role, component)
  local out = M.serving_selector(cr, role)
  out[M.SERVING] = "true"
  out[M.MANAGED_BY] = M.MANAGER
  if component then out[M.COMPONENT] = component end
  return out
end

--- Pod-template labels: `selector` plus managed-by, component and `extra`.
--- @param selector table<string,string>
--- @param component string|nil
--- @param extra table<string,string>|nil
--- @return table<string,string>
function M.pod(selector, component, extra)
  local out = copy(selector)
  out[M.MANAGED_BY] = M.MANAGER
  if component then out[M.COMPONENT] = component end
  for k, v in pairs(extra or {}) do out[k] = v end
  return out
end

--- `{ matchLabels = labels }` (a copy).
--- @param labels table<string,string>
--- @return table
function M.selector(labels)
  return { matchLabels = copy(labels) }
end

--- A label set as a selector's text form, keys sorted ("a=1,b=2"): what a
--- scale subresource's labelSelectorPath gives an autoscaler.
--- @param labels table<string,string>
--- @return string
function M.selector_text(labels)
  local keys = {}
  for k in pairs(labels) do keys[#keys + 1] = k end
  table.sort(keys)
  for i, k in ipairs(keys) do keys[i] = k .. "=" .. labels[k] end
  return table.concat(keys, ",")
end

--- Whether `labels` contains every key/value of `want`.
--- @param labels table<string,string>|nil
--- @param want table<string,string>
--- @return boolean
function M.matches(labels, want)
  labels = labels or {}
  for k, v in pairs(want) do
    if labels[k] ~= v then return false end
  end
  return true
end

return M
