--- Probe: runs the Lua chunk in `spec.code` (text, loaded with the sandbox's
--- load) as the reconciler: it gets (cr, observed, ctx) as `...` and returns
--- a result. Used by the sandbox specs to run escapes in the production
--- sandbox.
local M = {}

function M.reconcile(cr, observed, ctx)
  local f = assert(load(cr.spec.code, "=probe"))
  return f(cr, observed, ctx) or {}
end

return M
