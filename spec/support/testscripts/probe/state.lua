--- Module-level state: the sandbox re-runs a module's main chunk in every
--- call's environment, so `calls` is 1 in every reconcile, and what one
--- reconcile writes into the module table, into `defaults` or into the
--- module's local `memo` is gone in the next (spec/unit/sandbox_spec.lua).
local M = { calls = 0, defaults = { replicas = 1, ports = { 8000 } } }

local memo = {}

function M.bump()
  M.calls = M.calls + 1
  return M.calls
end

--- Remembers v under k in a table local to the module.
---@param k string
---@param v any
function M.remember(k, v)
  memo[k] = v
end

--- What remember stored under k in this module instance, or nil.
---@param k string
---@return any
function M.recall(k)
  return memo[k]
end

return M
