-- Fixture cases that travel with the overlay (runtime/lua/scriptset.c,
-- runtime/lua/fixture.c; doc/hot-reload.md, "Fixtures in the overlay"): a
-- scripts ConfigMap key "<folder>.fixtures.<name>.yaml" replaces the bundled
-- scripts/<folder>/fixtures/<name>.yaml or adds a file. The same set is checked
-- in process (k8sengine, what the operator's reload runs) and by
-- `schedsim-operator check --overlay` offline. Contract fixtures
-- (<folder>/fixtures/contract/) run against every overlay: a key that would
-- replace one is refused. Also: `check` prints one line per distinct problem,
-- and a module that does not compile is named so.
local k8sengine = require("k8sengine")
local fake = require("fake_k8s")

local ROOT = os.getenv("SCHEDSIM_ROOT") or "."
local BIN = os.getenv("SCHEDSIM_BIN") or (ROOT .. "/build/schedsim-operator")
local SCRIPTS = ROOT .. "/scripts"
local CASE = "route-backend-not-found-kgateway"
local FIXTURE_KEY = "schedulerinstall.fixtures." .. CASE .. ".yaml"

local function read(path)
  local f = assert(io.open(path))
  local s = f:read("a")
  f:close()
  return s
end

-- A deliberate policy change: the site's own hint when kgateway answers
-- BackendNotFound for a pool (the bundled fixture asserts the bundled hint).
-- gateway_hints is a list without merge keys: the overlay gives all of it.
local POLICY = [[
return { routing = { gateway_hints = {
  { match = "InferencePool is not enabled", reason = "InferencePoolUnsupportedByGateway",
    hint = "set ENABLE_GATEWAY_API_INFERENCE_EXTENSION=true in istiod" },
  { reason_is = "RefNotPermitted", hint = "a ReferenceGrant must allow the route" },
  { reason_is = "BackendNotFound", pool_only = true, hint = "ask #mesh-team to enable the inference extension" },
} } }
]]

--- The bundled fixture, expecting the policy's hint instead.
local function changed_fixture()
  local text = read(SCRIPTS .. "/schedulerinstall/fixtures/" .. CASE .. ".yaml")
  local out, n = text:gsub('inferenceExtension%.enabled=true', 'ask #mesh-team')
  assert(n == 1, "the bundled fixture changed: update this spec")
  return out
end

local function check(overlay)
  local eng, problems = k8sengine.load(SCRIPTS, { overlay = overlay })
  assert(eng, table.concat(problems or {}, "\n"))
  local ok, msgs, ncases = eng:check()
  eng:close()
  return ok, table.concat(msgs, "\n"), ncases
end

--- Runs the binary; returns exit code and stderr+stdout.
local function run(args)
  local out = os.tmpname()
  local ok, _, code = os.execute(("%q %s >%q 2>&1"):format(BIN, args, out))
  local text = read(out)
  os.remove(out)
  return ok and 0 or code, text
end

local function write_dir(files)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute(("mkdir -p %q"):format(dir)))
  for name, text in pairs(files) do
    local f = assert(io.open(dir .. "/" .. name, "w"))
    f:write(text)
    f:close()
  end
  return dir
end

describe("fixtures in the overlay", function()
  local _, _, bundled_cases = check({})

  it("a deliberate policy change fails the check without its fixture", function()
    local ok, msgs = check({ ["policy.lua"] = POLICY })
    assert.is_false(ok)
    assert.matches("schedulerinstall/fixtures/" .. CASE .. ".yaml", msgs, 1, true)
    assert.matches("inferenceExtension.enabled=true", msgs, 1, true)
  end)

  it("passes with the fixture in the overlay, which replaces the bundled case", function()
    local ok, msgs, ncases = check({ ["policy.lua"] = POLICY, [FIXTURE_KEY] = changed_fixture() })
    assert.is_true(ok, msgs)
    assert.equals(bundled_cases, ncases, "replaced, not added")
  end)

  it("the overlay's fixture runs: a wrong expectation fails, named by its key", function()
    local wrong = changed_fixture():gsub("ask #mesh%-team", "ask someone else")
    local ok, msgs = check({ ["policy.lua"] = POLICY, [FIXTURE_KEY] = wrong })
    assert.is_false(ok)
    assert.matches(":" .. FIXTURE_KEY .. ": ", msgs, 1, true) -- "<origin>:<key>: <case>: …"
  end)

  it("a fixture under a new name is added to the bundled cases", function()
    local cm = fake.yaml_load_file(ROOT .. "/examples/scripts-configmap-route-by-label.yaml")[1]
    local ok, msgs, ncases = check(cm.data)
    assert.is_true(ok, msgs)
    assert.equals(bundled_cases + 2, ncases)
  end)

  it("check --overlay offline: a manifest or a directory, the same verdicts", function()
    local code, out = run(("check --scripts %q --overlay %q"):format(SCRIPTS,
      ROOT .. "/examples/scripts-configmap-route-by-label.yaml"))
    assert.equals(0, code, out)
    assert.matches(("%d fixture cases passed"):format(bundled_cases + 2), out, 1, true)
    local without = write_dir({ ["policy.lua"] = POLICY })
    code, out = run(("check --scripts %q --overlay %q"):format(SCRIPTS, without))
    assert.equals(1, code, out)
    assert.matches(CASE .. ".yaml", out, 1, true)
    local with = write_dir({ ["policy.lua"] = POLICY, [FIXTURE_KEY] = changed_fixture() })
    code, out = run(("check --scripts %q --overlay %q"):format(SCRIPTS, with))
    assert.equals(0, code, out)
    os.execute(("rm -rf %q %q"):format(without, with))
  end)
end)

describe("contract fixtures (scripts/<folder>/fixtures/contract/)", function()
  local CONTRACT = "cross-namespace-service-grant"
  local contract_text = read(SCRIPTS .. "/schedulerinstall/fixtures/contract/" .. CONTRACT .. ".yaml")

  it("are found and run with the bundled cases", function()
    local eng = assert(k8sengine.load(SCRIPTS, {}))
    local files = eng:fixtures()
    eng:close()
    local found = false
    for _, f in ipairs(files) do
      if f:find("/schedulerinstall/fixtures/contract/" .. CONTRACT .. ".yaml", 1, true) then found = true end
    end
    assert.is_true(found, "contract file not among the fixture files")
  end)

  it("still run when an overlay replaces other fixture files", function()
    local _, _, bundled = check({})
    local overlay = { ["policy.lua"] = POLICY, [FIXTURE_KEY] = changed_fixture() }
    local eng = assert(k8sengine.load(SCRIPTS, { overlay = overlay }))
    local n = 0
    for _, f in ipairs(eng:fixtures()) do
      if f:find("/fixtures/contract/", 1, true) then n = n + 1 end
    end
    local ok, msgs, ncases = eng:check()
    eng:close()
    assert.is_true(ok, table.concat(msgs, "\n"))
    assert.is_true(n > 0)
    assert.equals(bundled, ncases)
  end)

  for _, key in ipairs({ "schedulerinstall.fixtures." .. CONTRACT .. ".yaml",
    "schedulerinstall.fixtures." .. CONTRACT .. ".yml" }) do
    it("cannot be replaced: the set with key " .. key .. " is refused naming it", function()
      local eng, problems = k8sengine.load(SCRIPTS, { overlay = { [key] = contract_text } })
      assert.is_nil(eng)
      local text = table.concat(problems or {}, "\n")
      assert.matches(key .. ": would replace the contract fixture file schedulerinstall/fixtures/contract/"
        .. CONTRACT .. ".yaml", text, 1, true)
      assert.matches("cannot be replaced", text, 1, true)
    end)
  end

  it("cannot be named by a key into the contract folder either", function()
    local key = "schedulerinstall.fixtures.contract." .. CONTRACT .. ".yaml"
    local eng, problems = k8sengine.load(SCRIPTS, { overlay = { [key] = contract_text } })
    assert.is_nil(eng)
    assert.matches(key .. ": names a file of a contract fixture folder", table.concat(problems or {}, "\n"), 1, true)
  end)

  it("check --overlay refuses the overlay offline with the same message", function()
    local key = "simulatordeployment.fixtures.invalid-port.yaml"
    local dir = write_dir({ [key] = read(SCRIPTS .. "/simulatordeployment/fixtures/contract/invalid-port.yaml") })
    local code, out = run(("check --scripts %q --overlay %q"):format(SCRIPTS, dir))
    os.execute(("rm -rf %q"):format(dir))
    assert.is_not.equals(0, code, out)
    assert.matches(key .. ": would replace the contract fixture file "
      .. "simulatordeployment/fixtures/contract/invalid-port.yaml", out, 1, true)
  end)
end)

describe("check's report", function()
  it("names a module that does not compile, and groups the cases it stops", function()
    local dir = write_dir({ ["policy.lua"] = "return {\n" })
    local code, out = run(("check --scripts %q --overlay %q"):format(SCRIPTS, dir))
    os.execute(("rm -rf %q"):format(dir))
    assert.equals(1, code, out)
    assert.matches("configmap:policy.lua:2: unexpected symbol near <eof>", out, 1, true)
    assert.matches("module 'policy' does not compile: configmap:policy.lua:2:", out, 1, true)
    assert.is_nil(out:find("module 'policy' not found", 1, true))
    assert.matches("schedulerinstall/fixtures/%*%.yaml: %d+ fixture cases: controller schedulerinstall did not load",
      out)
    local lines = 0
    for _ in out:gmatch("[^\n]+") do lines = lines + 1 end
    assert.is_true(lines <= 6, "one line per distinct problem, got:\n" .. out)
  end)

  it("groups one failure shared by many cases into one line with the count", function()
    -- every EPP gets a profile that does not exist: every case with an EPP fails alike
    local dir = write_dir({ ["policy.lua"] = 'return { epp = { default_profile = "nope" } }\n' })
    local code, out = run(("check --scripts %q --overlay %q"):format(SCRIPTS, dir))
    os.execute(("rm -rf %q"):format(dir))
    assert.equals(1, code, out)
    local n = tonumber(out:match(": (%d+) fixture cases: "))
    assert.is_true(n and n > 1, out)
  end)
end)

-- `check` runs the fixture cases on two threads on a machine with two CPUs
-- (runtime/lua/check.c, fixture.c: a second engine runs about half the cases;
-- the operator's reload check is the same lk_check). Every case still runs
-- against the new set, and the verdict and the messages must not depend on
-- which thread ran which case: --jobs 1 and --jobs 2 give the same output.
describe("check on two threads", function()
  local function check_jobs(jobs, files)
    local dir = write_dir(files)
    local code, out = run(("check --scripts %q --overlay %q --jobs %d"):format(SCRIPTS, dir, jobs))
    os.execute(("rm -rf %q"):format(dir))
    return code, out
  end

  it("refuses a lib module that fails in some cases of both kinds, naming file and line", function()
    -- lib/names.lua's observed_child fails, naming what it was asked for: many
    -- distinct messages, in cases of both controllers (a lib change re-runs them all)
    local text, n = read(SCRIPTS .. "/lib/names.lua"):gsub("\n  local children = observed and observed%.children\n",
      '\n  error("broken on purpose: " .. tostring(kind) .. " " .. tostring(name))\n')
    assert(n == 1, "lib/names.lua changed: update this spec")
    local line = 0
    for l in (text .. "\n"):gmatch("([^\n]*)\n") do
      line = line + 1
      if l:find("broken on purpose", 1, true) then break end
    end
    local files = { ["lib.names.lua"] = text }
    local code1, out1 = check_jobs(1, files)
    local code2, out2 = check_jobs(2, files)
    assert.equals(1, code2, out2)
    assert.matches(("configmap:lib.names.lua:%d: broken on purpose"):format(line), out2, 1, true)
    assert.matches("scripts/simulatordeployment/fixtures/[^\n]*broken on purpose", out2)
    assert.matches("scripts/schedulerinstall/fixtures/[^\n]*broken on purpose", out2)
    local lines = select(2, out2:gsub("\n", ""))
    assert.is_true(lines > 5, "several distinct problems, got:\n" .. out2)
    assert.equals(code1, code2)
    assert.equals(out1, out2)
  end)

  it("refuses a module that does not compile the same way on one thread and on two", function()
    local files = { ["simulatordeployment.reconcile.lua"] = "local M = {}\nfunction M.reconcile(\nreturn M\n" }
    local code1, out1 = check_jobs(1, files)
    local code2, out2 = check_jobs(2, files)
    assert.equals(1, code2, out2)
    assert.matches("configmap:simulatordeployment.reconcile.lua:3:", out2, 1, true)
    assert.equals(code1, code2)
    assert.equals(out1, out2)
  end)

  it("an overlay fixture that fails refuses the set, named by its key, on two threads", function()
    local wrong = changed_fixture():gsub("ask #mesh%-team", "ask someone else")
    local files = { ["policy.lua"] = POLICY, [FIXTURE_KEY] = wrong }
    local code1, out1 = check_jobs(1, files)
    local code2, out2 = check_jobs(2, files)
    assert.equals(1, code2, out2)
    assert.matches("configmap:" .. FIXTURE_KEY .. ": ", out2, 1, true)
    assert.matches("1 problem", out2, 1, true)
    assert.equals(code1, code2)
    assert.equals(out1, out2)
  end)

  it("a good overlay passes on two threads with every case run", function()
    local files = { ["policy.lua"] = POLICY, [FIXTURE_KEY] = changed_fixture() }
    local code1, out1 = check_jobs(1, files)
    local code2, out2 = check_jobs(2, files)
    assert.equals(0, code2, out2)
    assert.equals(0, code1, out1)
    assert.equals(out1, out2)
    local _, _, bundled = check({})
    assert.matches(("%d fixture cases passed"):format(bundled), out2, 1, true)
  end)

  it("runs on two threads by default on a machine with two CPUs", function()
    local p = assert(io.popen("nproc"))
    local ncpu = tonumber(p:read("a"))
    p:close()
    if not ncpu or ncpu < 2 then
      pending("one CPU: check runs on one thread")
      return
    end
    local code, out = run(("check --scripts %q --timings"):format(SCRIPTS))
    assert.equals(0, code, out)
    assert.matches("wall on 2 threads", out, 1, true)
  end)
end)

-- The second thread's sandbox has a quarter of the memory cap (check.c): a
-- case that fails there runs again on the first engine, whose verdict counts,
-- so a set that needs more than the quarter passes as on one thread.
describe("check's second thread and the memory cap", function()
  local N = 8

  --- A script set whose reconcile needs 20 MiB (the cap is 64 MiB; the second
  --- thread's 16 MiB), with N fixture files of one case each.
  local function big_set()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute(("mkdir -p %q/widget/fixtures"):format(dir)))
    local function put(rel, text)
      local f = assert(io.open(dir .. "/" .. rel, "w"))
      f:write(text)
      f:close()
    end
    put("controllers.lua", [[
return { {
  name = "widget",
  for_ = { apiVersion = "sim.llm-d.io/v1alpha1", kind = "SimulatorDeployment" },
  module = "widget.reconcile",
  owns = { { apiVersion = "v1", kind = "ConfigMap" } },
  watches = {},
} }
]])
    put("widget/reconcile.lua", [[
local M = {}
function M.reconcile(cr)
  local big = string.rep("x", 20 << 20)
  return { children = { { apiVersion = "v1", kind = "ConfigMap",
    metadata = { name = cr.metadata.name }, data = { n = tostring(#big) } } } }
end
return M
]])
    for i = 1, N do
      put(("widget/fixtures/case-%d.yaml"):format(i), ([[
name: case %d needs 20 MiB
controller: widget
input:
  apiVersion: sim.llm-d.io/v1alpha1
  kind: SimulatorDeployment
  metadata: {name: w%d}
  spec: {}
expect:
  children:
    - {apiVersion: v1, kind: ConfigMap, metadata: {name: w%d}, data: {n: "20971520"}}
]]):format(i, i, i))
    end
    return dir
  end

  it("passes on two threads what passes on one, running again there what failed on the second", function()
    local dir = big_set()
    local code1, out1 = run(("check --scripts %q --jobs 1"):format(dir))
    local code2, out2 = run(("check --scripts %q --jobs 2 --timings"):format(dir))
    os.execute(("rm -rf %q"):format(dir))
    assert.equals(0, code1, out1)
    assert.equals(0, code2, out2)
    assert.matches(("%d fixture cases passed"):format(N), out2, 1, true)
    local ran, again = out2:match("second thread: (%d+) cases? run, (%d+) failed there")
    assert.is_not_nil(ran, out2)
    -- every case the second thread ran needed more than its cap: each ran again
    assert.equals(tonumber(ran), tonumber(again), out2)
  end)
end)
