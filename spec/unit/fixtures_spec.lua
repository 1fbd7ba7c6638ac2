-- The fixture walker (doc/architecture.md, "Fixture cases"): every case of
-- every scripts/<folder>/fixtures/*.yaml (and fixtures/contract/*.yaml) runs through the production engine
-- and sandbox (k8sengine, the code `check`, `render` and the operator use),
-- one `it` per case, named by the case's `name`. A controller with a valid
-- reconciler and no case fails. Adding a case needs no test code.
local k8sengine = require("k8sengine")

local root = os.getenv("SCHEDSIM_ROOT") or "."

--- The walker over one script set directory.
local function walk(dir, label)
  describe(label, function()
    local eng, problems = k8sengine.load(dir)

    it("loads without problems", function()
      assert.is_not_nil(eng, table.concat(problems or {}, "\n"))
      assert.same({}, problems)
    end)
    if not eng then return end

    local per_controller = {}
    for _, path in ipairs(k8sengine.fixture_files(dir)) do
      local rel = path:sub(#dir + 2)
      local cases, err = k8sengine.cases(path)
      if not cases then
        it(rel, function() error(err) end)
      else
        for i, case in ipairs(cases) do
          local name = case.name ~= k8sengine.null and case.name or ("case " .. i)
          if case.controller ~= k8sengine.null then
            per_controller[case.controller] = (per_controller[case.controller] or 0) + 1
          end
          it(rel .. ": " .. tostring(name), function()
            local ok, failures = eng:run_case(path, i)
            assert(ok, table.concat(failures, "\n"))
          end)
        end
      end
    end

    for _, c in ipairs(eng:controllers()) do
      if c.valid then
        it("controller " .. c.name .. " has fixture cases", function()
          assert((per_controller[c.name] or 0) > 0,
            "no case names controller " .. c.name .. " (add <folder>/fixtures/<case>.yaml)")
        end)
      end
    end
  end)
end

walk(root .. "/scripts", "scripts")
walk(root .. "/spec/support/testscripts", "spec/support/testscripts")
