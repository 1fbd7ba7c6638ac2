--- Status conditions (Kubernetes API convention) for the reconcilers.
---
--- A reconcile computes the conditions it means *now* (type, status, reason,
--- message); `merge` turns them into the list to write: `lastTransitionTime`
--- is kept from the CR's previous condition of the same type when its status
--- did not change, set to `now` otherwise; every condition carries the CR's
--- `metadata.generation` as `observedGeneration`.
---
--- `ready_summary` derives `Ready` from the others: True only when no other
--- applicable condition is bad. Polarity: `Degraded` and `Progressing` are bad
--- when True, every other type is bad when not True (False or Unknown).
---
--- Usage:
---   local cs = conditions.new_set(cr)
---   cs:set("Degraded", true, "IstioNotInstalled", "spec.loadBalancing: ...")
---   cs:set("Progressing", false, "DeploymentsReady", "...")
---   cs:summarize({ reason = "AllReplicasReady", message = "2/2 ready" })
---   status.conditions = cs:list()
local M = {}

---@class Condition
---@field type string
---@field status "True"|"False"|"Unknown"
---@field reason string              CamelCase
---@field message string
---@field lastTransitionTime string|nil  RFC 3339
---@field observedGeneration integer|nil

--- Types that are bad when True ("abnormal-true" polarity).
M.NEGATIVE = { Degraded = true, Progressing = true }

--- Fixed order of the well-known types in the written list; others follow in
--- the order they were set.
M.ORDER = { "Ready", "Progressing", "Degraded" }

--- "True" / "False" / "Unknown" from a boolean or a status string.
--- @param v boolean|string|nil  nil → "Unknown"
--- @return "True"|"False"|"Unknown"
function M.status_string(v)
  if v == true or v == "True" then return "True" end
  if v == false or v == "False" then return "False" end
  return "Unknown"
end

--- A condition without timestamps.
--- @param type string
--- @param status boolean|string|nil
--- @param reason string
--- @param message string|nil
--- @return Condition
function M.new(type, status, reason, message)
  return { type = type, status = M.status_string(status), reason = reason, message = message or "" }
end

--- The condition of `type` in a list, or nil.
--- @param list Condition[]|nil
--- @param type string
--- @return Condition|nil
function M.find(list, type)
  if type == nil or list == nil or (k8s and list == k8s.null) then return nil end
  for _, c in ipairs(list) do
    if c.type == type then return c end
  end
  return nil
end

--- Whether the condition of `type` has status "True".
--- @param list Condition[]|nil
--- @param type string
--- @return boolean
function M.is_true(list, type)
  local c = M.find(list, type)
  return c ~= nil and c.status == "True"
end

--- Whether a condition is bad under the polarity rule (see module doc).
--- @param c Condition
--- @param negative table<string,boolean>|nil  types bad when True (default M.NEGATIVE)
--- @return boolean
function M.is_bad(c, negative)
  negative = negative or M.NEGATIVE
  if negative[c.type] then return c.status == "True" end
  return c.status ~= "True"
end

local function now_default(now)
  if now then return now end
  if k8s and k8s.now then return k8s.now() end
  return os.date("!%Y-%m-%dT%H:%M:%SZ")
end

--- Merge freshly computed conditions with the previous ones.
--- Only types in `desired` are written (a type the reconciler no longer sets
--- disappears). `lastTransitionTime` is kept when the status is unchanged.
--- @param previous Condition[]|nil   e.g. cr.status.conditions
--- @param desired Condition[]        as built with `new`
--- @param now string|nil             default k8s.now()
--- @param generation integer|nil     default: none written
--- @return Condition[]               ordered: Ready, Progressing, Degraded, others
function M.merge(previous, desired, now, generation)
  now = now_default(now)
  local merged, by_type = {}, {}
  for _, d in ipairs(desired) do
    local old = M.find(previous, d.type)
    local c = {
      type = d.type, status = M.status_string(d.status), reason = d.reason or "Unknown",
      message = d.message or "",
      observedGeneration = generation,
    }
    if old and old.status == c.status and old.lastTransitionTime and old.lastTransitionTime ~= "" then
      c.lastTransitionTime = old.lastTransitionTime
    else
      c.lastTransitionTime = now
    end
    if by_type[c.type] then -- a later set of the same type wins
      merged[by_type[c.type]] = c
    else
      merged[#merged + 1] = c
      by_type[c.type] = #merged
    end
  end
  local rank = {}
  for i, t in ipairs(M.ORDER) do rank[t] = i end
  local idx = {}
  for i, c in ipairs(merged) do idx[c] = i end
  table.sort(merged, function(a, b)
    local ra, rb = rank[a.type] or 100, rank[b.type] or 100
    if ra ~= rb then return ra < rb end
    return idx[a] < idx[b]
  end)
  if k8s and k8s.array then merged = k8s.array(merged) end
  return merged
end

---@class ReadySummaryOpts
---@field reason string|nil      reason when Ready=True (default "Ready")
---@field message string|nil     message when Ready=True (default "all conditions are fine")
---@field ignore string[]|nil    types not taken into account
---@field negative table<string,boolean>|nil  polarity override (default M.NEGATIVE)

--- The `Ready` condition derived from the others: True only when no other
--- condition (except `ignore`d ones) is bad; otherwise False with the reason of
--- the first bad condition (Degraded first, then others in list order, then
--- Progressing) and its message.
--- @param list Condition[]
--- @param opts ReadySummaryOpts|nil
--- @return Condition
function M.ready_summary(list, opts)
  opts = opts or {}
  local ignore = {}
  for _, t in ipairs(opts.ignore or {}) do ignore[t] = true end
  local bad = {}
  for _, c in ipairs(list) do
    if c.type ~= "Ready" and not ignore[c.type] and M.is_bad(c, opts.negative) then
      bad[#bad + 1] = c
    end
  end
  if #bad == 0 then
    return M.new("Ready", true, opts.reason or "Ready", opts.message or "all conditions are fine")
  end
  local function weight(c)
    if c.type == "Degraded" then return 0 end
    if c.type == "Progressing" then return 2 end
    return 1
  end
  local order = {}
  for i, c in ipairs(bad) do order[c] = i end
  table.sort(bad, function(a, b)
    if weight(a) ~= weight(b) then return weight(a) < weight(b) end
    return order[a] < order[b]
  end)
  local first = bad[1]
  local status = "False"
  if first.status == "Unknown" and first.type ~= "Degraded" and first.type ~= "Progressing" then
    status = "Unknown"
  end
  local msg = first.message or ""
  if #bad > 1 then
    local others = {}
    for i = 2, #bad do others[#others + 1] = bad[i].type end
    msg = msg .. " (also: " .. table.concat(others, ", ") .. ")"
  end
  return M.new("Ready", status, first.reason, msg)
end

---@class ConditionSet
---@field cr table
---@field items Condition[]
local Set = {}
Set.__index = Set

--- A condition builder bound to a CR (its previous conditions and generation).
--- @param cr table
--- @return ConditionSet
function M.new_set(cr)
  return setmetatable({ cr = cr, items = {} }, Set)
end

--- Set (or replace) a condition of `type`.
--- @param type string
--- @param status boolean|string|nil
--- @param reason string
--- @param message string|nil
--- @return ConditionSet self
function Set:set(type, status, reason, message)
  local c = M.new(type, status, reason, message)
  for i, old in ipairs(self.items) do
    if old.type == type then
      self.items[i] = c
      return self
    end
  end
  self.items[#self.items + 1] = c
  return self
end

--- The condition set so far of `type`, or nil.
--- @param type string
--- @return Condition|nil
function Set:get(type)
  return M.find(self.items, type)
end

--- Set `Ready` from the others (`ready_summary`).
--- @param opts ReadySummaryOpts|nil
--- @return Condition ready
function Set:summarize(opts)
  local r = M.ready_summary(self.items, opts)
  self:set("Ready", r.status, r.reason, r.message)
  return r
end

--- The list to write into status.conditions (see `merge`).
--- @param now string|nil
--- @return Condition[]
function Set:list(now)
  local null = k8s and k8s.null
  local status, meta = self.cr.status, self.cr.metadata
  local prev = type(status) == "table" and status ~= null and status.conditions or nil
  local gen = type(meta) == "table" and meta.generation or nil
  if gen == null then gen = nil end
  return M.merge(prev, self.items, now, gen)
end

--- Reasons that say "on its way", not "something is wrong": a Ready=False
--- transition with one of them is a Normal Event, never a Warning (Events
--- are Warnings only for what a person should look at).
M.PROGRESS_REASONS = { Pending = true, RollingOut = true, EPPDeploymentPending = true,
  EPPRollingOut = true, NoEPPEndpoints = true }

--- The Event type for a transition `t` (see M.transitions): Normal when the
--- condition became True or its reason is progress, else Warning.
--- @param t table
--- @return string
function M.event_type(t)
  if t.to == "True" or M.PROGRESS_REASONS[t.reason] then return "Normal" end
  return "Warning"
end

--- Conditions whose status changed against `previous` (for Events): a list of
--- `{ type, from, to, reason, message }`, `from` nil when the type is new.
--- @param previous Condition[]|nil
--- @param current Condition[]
--- @return table[]
function M.transitions(previous, current)
  local out = {}
  for _, c in ipairs(current) do
    local old = M.find(previous, c.type)
    if not old or old.status ~= c.status or old.reason ~= c.reason then
      out[#out + 1] = { type = c.type, from = old and old.status, to = c.status,
                        reason = c.reason, message = c.message }
    end
  end
  return out
end

return M
