-- The LuaCATS check of the lint (cmake/lint: emmylua_check over scripts/ with
-- scripts/.emmyrc.json): the bundled scripts pass, and a misspelt field of an
-- annotated class fails, e.g. `f.epp.enabeld` on RoutingFacts in a pool check
-- (issue #19: it passed check, luacheck and the fixtures, and failed at run time).
local ROOT = os.getenv("SCHEDSIM_ROOT") or "."

local function emmylua()
  local p = io.popen("command -v emmylua_check 2>/dev/null")
  local path = p:read("l")
  p:close()
  if path and path ~= "" then return path end
  local home = (os.getenv("HOME") or "") .. "/.cargo/bin/emmylua_check"
  local f = io.open(home)
  if f then f:close(); return home end
  return nil
end

--- emmylua_check --warnings-as-errors on a copy of scripts/ after `edit`: ok, output.
local function check_copy(edit)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute(("mkdir -p %q && cp -r %q/scripts/. %q/"):format(dir, ROOT, dir)))
  if edit then edit(dir) end
  local out = os.tmpname()
  local ok = os.execute(("cd %q && %q --warnings-as-errors . >%q 2>&1"):format(dir, emmylua(), out))
  local f = assert(io.open(out))
  local text = f:read("a")
  f:close()
  os.remove(out)
  os.execute(("rm -rf %q"):format(dir))
  return ok == true, text
end

describe("emmylua_check over scripts/", function()
  if not emmylua() then
    pending("emmylua_check is not installed (bash .ci/setup builds it; the lint test fails without it)")
    return
  end

  it("passes the bundled scripts", function()
    local ok, out = check_copy(nil)
    assert.is_true(ok, out)
  end)

  it("fails a misspelt field of RoutingFacts, naming it", function()
    local ok, out = check_copy(function(dir)
      local path = dir .. "/schedulerinstall/route.lua"
      local f = assert(io.open(path))
      local src = f:read("a")
      f:close()
      local typo, n = src:gsub("if f%.epp%.enabled then", "if f.epp.enabeld then")
      assert(n == 1, "route.lua changed: update this spec")
      f = assert(io.open(path, "w"))
      f:write(typo)
      f:close()
    end)
    assert.is_false(ok)
    assert.matches("Undefined field `enabeld`", out, 1, true)
  end)
end)
