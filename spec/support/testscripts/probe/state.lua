--- Module-level state: the sandbox re-runs a module's main chunk in every
--- call's environment, so `calls` is 1 in every reconcile (spec/unit/
--- sandbox_spec.lua).
local M = { calls = 0 }

function M.bump()
  M.calls = M.calls + 1
  return M.calls
end

return M
