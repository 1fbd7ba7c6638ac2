-- The sandbox (runtime/lua/sandbox.c) refuses or contains every escape, and
-- the process and the state survive it. Runs in the production sandbox
-- through k8sengine (build/lua/k8sengine.so) with the test script set
-- spec/support/testscripts: `eng:eval(code)` runs a chunk in a fresh call
-- environment; the `probe` controller runs `cr.spec.code` as its reconciler.
local k8sengine = require("k8sengine")

local root = os.getenv("SCHEDSIM_ROOT") or "."
local null = k8sengine.null

local eng

local function probe(code, name)
  return eng:reconcile("probe", {
    apiVersion = "test.sim.llm-d.io/v1alpha1", kind = "Probe",
    metadata = { name = name or "p", namespace = "default" },
    spec = { code = code },
  })
end

--- eval that must fail: returns the message and the error kind.
local function eval_err(code)
  local v, msg, kind = eng:eval(code)
  assert.is_nil(v, "expected an error from: " .. code)
  return msg, kind
end

--- The engine still works: a plain call succeeds.
local function alive()
  assert.equals(3, eng:eval("return 1 + 2"))
end

describe("sandbox", function()
  setup(function()
    local problems
    eng, problems = k8sengine.load(root .. "/spec/support/testscripts",
      { memory_limit = 16 * 1024 * 1024, instruction_budget = 2000000 })
    assert.same({}, problems)
  end)
  teardown(function() eng:close() end)

  describe("refuses", function()
    it("io (io.open)", function()
      assert.equals(null, eng:eval("return io"))
      assert.matches("attempt to index a nil value %(global 'io'%)", (eval_err("return io.open('/etc/passwd')")))
    end)

    it("os.execute and os.getenv; keeps os.time, os.clock, os.date", function()
      assert.equals(null, eng:eval("return os.execute"))
      assert.equals(null, eng:eval("return os.getenv"))
      assert.matches("attempt to call a nil value %(field 'execute'%)", (eval_err("os.execute('true')")))
      assert.is_true(eng:eval("return type(os.time()) == 'number' and type(os.clock()) == 'number'"))
      assert.equals("1970", eng:eval("return os.date('!%Y', 0)"))
    end)

    it("load of a bytecode chunk", function()
      assert.matches("attempt to load a binary chunk %(mode is 't'%)",
        eng:eval("return select(2, load('\\27LuaT\\0\\25\\147\\r\\n\\26\\n'))"))
      assert.matches("binary chunk",
        eng:eval("return select(2, load(function() return '\\27Lua' end))"))
      -- an explicit mode cannot re-enable it
      assert.matches("binary chunk", eng:eval("return select(2, load('\\27Lua', 'x', 'b'))"))
    end)

    it("string.dump, also through the string metatable", function()
      assert.equals(null, eng:eval("return string.dump"))
      assert.equals(null, eng:eval("return ('').dump"))
      assert.matches("attempt to call a nil value", (eval_err("return string.dump(print)")))
    end)

    it("require of anything but the script set's Lua modules (ffi, C modules)", function()
      for _, name in ipairs({ "ffi", "cjson", "lfs", "io", "debug" }) do
        local msg = eval_err("return require '" .. name .. "'")
        assert.matches("module '" .. name .. "' not found", msg)
      end
      assert.equals("table", eng:eval("return type(require 'widget.reconcile')"))
      assert.equals("table", eng:eval("return type(require 'k8s')"))
    end)

    it("package and package.loadlib", function()
      assert.equals(null, eng:eval("return package"))
      assert.matches("attempt to index a nil value %(global 'package'%)",
        (eval_err("return package.loadlib('libc.so.6', 'system')")))
    end)

    it("debug (debug.sethook, debug.getregistry)", function()
      assert.equals(null, eng:eval("return debug"))
      assert.matches("global 'debug'", (eval_err("debug.sethook()")))
    end)

    it("dofile, loadfile, print, collectgarbage", function()
      assert.is_true(eng:eval(
        "return dofile == nil and loadfile == nil and print == nil and collectgarbage == nil"))
    end)

    it("__gc metamethods (a finalizer could run in a later reconcile)", function()
      assert.matches("__gc metamethods are not allowed",
        (eval_err("return setmetatable({}, { __gc = function() end })")))
    end)
  end)

  describe("contains", function()
    it("an infinite loop with the instruction budget", function()
      local msg, kind = eval_err("while true do end")
      assert.equals("budget", kind)
      assert.matches("^eval:1: instruction budget exceeded", msg)
      alive()
    end)

    it("an infinite loop inside pcall: the script cannot swallow the budget error", function()
      local msg, kind = eval_err([[
        for _ = 1, 100 do pcall(function() while true do end end) end
        local ok = pcall(error, "x")
        while true do pcall(function() end) end]])
      assert.equals("budget", kind)
      assert.matches("instruction budget exceeded", msg)
      local _, kind2 = eval_err("xpcall(function() while true do end end, function() while true do end end)")
      assert.equals("budget", kind2)
      alive()
    end)

    it("an infinite loop in a reconcile: Ready=False ReconcileError, next reconcile fine", function()
      local r = probe("while true do end")
      assert.equals("budget", r.error_kind)
      local ready = r.status.conditions[1]
      assert.same({ "Ready", "False", "ReconcileError" }, { ready.type, ready.status, ready.reason })
      assert.matches("probe:1: instruction budget exceeded", ready.message)
      assert.is_nil(probe("return {}").error)
    end)

    it("a memory bomb: not enough memory, the state stays usable", function()
      local before = eng:memory().used
      for _, code in ipairs({
        "local t = {} for i = 1, 1e9 do t[i] = i end",
        "return string.rep('x', 1 << 30)",
        "local s = 'x' for _ = 1, 40 do s = s .. s end",
        "local t = {} for i = 1, 1e8 do t[#t + 1] = {} end",
      }) do
        local msg, kind = eval_err(code)
        assert.equals("memory", kind)
        assert.matches("not enough memory", msg)
        alive()
      end
      assert.is_true(eng:memory().used < before + 1024 * 1024)
      assert.is_true(eng:memory().peak <= 16 * 1024 * 1024 + 1024 * 1024)
    end)

    it("a memory bomb caught by the script's own pcall still fails within the budget", function()
      local _, kind = eval_err([[
        while true do pcall(function() local t = {} for i = 1, 1e9 do t[i] = i end end) end]])
      assert.equals("budget", kind)
      alive()
    end)
  end)

  describe("isolates reconciles", function()
    it("a global written in one reconcile is not seen by the next", function()
      local r1 = probe("leak = 'from the first'; return { status = { seen = tostring(leak) } }")
      assert.equals("from the first", r1.status.seen)
      local r2 = probe("return { status = { seen = tostring(leak) } }")
      assert.equals("nil", r2.status.seen)
      assert.equals(null, eng:eval("return leak"))
    end)

    it("_G is the call's own environment and cannot be re-metatabled", function()
      assert.is_true(eng:eval("return _G == _ENV"))
      assert.matches("cannot change a protected metatable",
        (eval_err("setmetatable(_G, { __index = function() return 'x' end })")))
      assert.equals(false, eng:eval("return getmetatable(_G)"))
      eng:eval("_G.x = 1; rawset(_G, 'y', 2)")
      assert.equals(null, eng:eval("return x or y"))
    end)

    it("changing the string library or the string metatable does not leak", function()
      assert.equals("pwned", eng:eval("string.upper = function() return 'pwned' end; return string.upper('a')"))
      assert.equals("A", eng:eval("return string.upper('a')"))
      assert.equals("A", eng:eval("return ('a'):upper()"))
      assert.equals(false, eng:eval("return getmetatable('')"))
      assert.matches("attempt to index a boolean value",
        (eval_err("getmetatable('').__index = { upper = function() return 'pwned' end }")))
      assert.equals("A", eng:eval("return ('a'):upper()"))
      eng:eval("table.insert = nil; math.pi = 3")
      assert.is_true(eng:eval("return table.insert ~= nil and math.pi > 3.14"))
    end)

    it("changing the k8s module or k8s.array_mt does not leak", function()
      eng:eval("k8s.now = function() return 'pwned' end; k8s.cache.get = nil")
      assert.is_true(eng:eval("return k8s.now() ~= 'pwned' and k8s.cache.get ~= nil"))
      eng:eval("k8s.array_mt.__index = function() return 'pwned' end; k8s.array_mt.extra = 1")
      assert.equals(null, eng:eval("return k8s.array({})[1]"))
      assert.equals(null, eng:eval("return k8s.array_mt.extra"))
      -- pairs over a library gives the call's proxies, never the templates
      eng:eval("for k, v in pairs(k8s) do if type(v) == 'table' and k ~= 'array_mt' then v.x = 1 end end")
      assert.equals(null, eng:eval("return k8s.cache.x"))
    end)

    it("module state is per call: every reconcile gets a fresh instance", function()
      for _ = 1, 3 do
        local r = probe("return { status = { calls = require('probe.state').bump() } }")
        assert.equals(1, r.status.calls)
      end
    end)

    it("a write into a module, a table inside it or a table local to it is not seen by the next reconcile",
      function()
        local r1 = probe([[
          local s = require('probe.state')
          s.injected = 'from the first'
          s.defaults.replicas = 99
          table.insert(s.defaults.ports, 9999)
          s.remember('k', 'from the first')
          s.bump = function() return -1 end
          local again = require('probe.state') -- the same instance within one call
          return { status = { injected = again.injected, replicas = again.defaults.replicas,
            nports = #again.defaults.ports, recalled = again.recall('k'), calls = again.bump() } }
        ]])
        assert.is_nil(r1.error)
        assert.same({ "from the first", 99, 2, "from the first", -1 }, { r1.status.injected, r1.status.replicas,
          r1.status.nports, r1.status.recalled, r1.status.calls })
        local r2 = probe([[
          local s = require('probe.state')
          local keys = {}
          for k in pairs(s) do keys[#keys + 1] = k end
          table.sort(keys)
          return { status = { injected = tostring(s.injected), replicas = s.defaults.replicas,
            ports = s.defaults.ports, recalled = tostring(s.recall('k')), calls = s.bump(), keys = keys } }
        ]])
        assert.is_nil(r2.error)
        assert.same({ "nil", 1, "nil", 1 }, { r2.status.injected, r2.status.replicas, r2.status.recalled,
          r2.status.calls })
        assert.same({ 8000 }, { table.unpack(r2.status.ports) })
        assert.same({ "bump", "calls", "defaults", "recall", "remember" }, { table.unpack(r2.status.keys) })
      end)

    it("math.random is reproducible per call", function()
      assert.equals(eng:eval("return math.random(1 << 30)"), eng:eval("return math.random(1 << 30)"))
    end)
  end)

  describe("errors", function()
    it("carry file:line and a traceback", function()
      local r = probe("local x = nil\nreturn x.field")
      assert.matches("^probe:2: attempt to index a nil value", r.error)
      assert.matches("stack traceback", r.traceback)
      r = eng:reconcile("widget", { apiVersion = "test.sim.llm-d.io/v1alpha1", kind = "Widget",
        metadata = { name = "w", namespace = "ns" }, spec = { fail = "now" } })
      assert.matches("^widget/reconcile.lua:%d+: asked to fail: now", r.error)
    end)

    it("non-string error values", function()
      local msg = eval_err("error({})")
      assert.equals("(error object is a table value)", msg)
      assert.equals("tostring'd",
        (eval_err("error(setmetatable({}, { __tostring = function() return \"tostring'd\" end }))")))
    end)
  end)
end)
