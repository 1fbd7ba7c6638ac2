-- Runs every case of scripts/schedulerinstall/fixtures/ through the reconciler
-- with the pure-Lua fake `k8s` (spec/support/fake_k8s.lua), following the
-- fixture format of doc/architecture.md ("Fixture cases"). The walker spec
-- (spec/unit/fixtures_spec.lua) runs the same cases through the production
-- engine; this one checks the cases and the scripts without the C runtime.
local fake = require("fake_k8s")

local DIR = "scripts/schedulerinstall/fixtures"

local function list_cases()
  local p = assert(io.popen("ls " .. DIR .. "/*.yaml 2>/dev/null"))
  local out = {}
  for line in p:lines() do out[#out + 1] = line end
  p:close()
  table.sort(out)
  return out
end

local function controller(name)
  local list = dofile("scripts/controllers.lua")
  for _, c in ipairs(list) do
    if c.name == name then return c end
  end
  error("no controller " .. name)
end

local function fresh_module(name)
  for k in pairs(package.loaded) do
    if k:match("^schedulerinstall%.") or k:match("^lib%.") then package.loaded[k] = nil end
  end
  return require(name)
end

-- expected ⊆ actual; lists element-wise and of the same length
local function subset(exp, act, path)
  if type(exp) ~= "table" or exp == fake.null then
    if exp == fake.null then
      if act ~= nil and act ~= fake.null then return false, path .. ": expected null, got " .. tostring(act) end
      return true
    end
    if exp ~= act then
      return false, ("%s: expected %s, got %s"):format(path, tostring(exp), tostring(act))
    end
    return true
  end
  if type(act) ~= "table" then return false, path .. ": expected a table, got " .. tostring(act) end
  if fake.is_array(exp) then
    if #exp ~= #act then
      return false, ("%s: expected %d elements, got %d (%s)"):format(path, #exp, #act, fake.json_encode(act))
    end
    for i, x in ipairs(exp) do
      local ok, why = subset(x, act[i], ("%s[%d]"):format(path, i - 1))
      if not ok then return false, why end
    end
    return true
  end
  for k, x in pairs(exp) do
    local ok, why = subset(x, act[k], path .. "." .. tostring(k))
    if not ok then return false, why end
  end
  return true
end

local function find_child(children, apiVersion, kind, ns, name)
  for _, c in ipairs(children) do
    if c.apiVersion == apiVersion and c.kind == kind and c.metadata.name == name
      and (c.metadata.namespace or "") == (ns or "") then
      return c
    end
  end
  return nil
end

local function child_list(children)
  local out = {}
  for _, c in ipairs(children) do
    out[#out + 1] = ("%s/%s %s/%s"):format(c.apiVersion, c.kind, c.metadata.namespace or "", c.metadata.name)
  end
  return table.concat(out, "\n  ")
end

local function run_case(path)
  local case = fake.yaml_load_file(path)[1]
  local ctl = controller(case.controller)
  local k = fake.install({ objects = case.observed or {}, without_kinds = case.without_kinds, now = case.now })
  local input = case.input
  if case.input_path then
    input = fake.yaml_load_file(path:match("^(.*/)") .. case.input_path)[1]
  end
  local cr_ns = input.metadata.namespace
  local children = {}
  for _, o in ipairs(case.observed or {}) do
    if not o.metadata.namespace then o.metadata.namespace = cr_ns end
    children[#children + 1] = o
  end
  local observed = fake.observed(children, ctl.owns)
  local rec = fresh_module(ctl.module)
  local ok, res = pcall(rec.reconcile, input, observed, fake.ctx({ now = case.now }))
  local ex = case.expect or {}
  if ex.error then
    assert(not ok, "expected an error matching " .. ex.error)
    local msg = fake.error_message(res)
    assert(msg:match(ex.error), ("error %q does not match %q"):format(msg, ex.error))
    if ex.terminal ~= nil then assert.equal(ex.terminal, fake.is_terminal(res)) end
    return
  end
  assert(ok, "reconcile failed: " .. fake.error_message(res))
  -- defaults the runtime applies: namespace of the CR
  for _, c in ipairs(res.children or {}) do
    c.metadata.namespace = c.metadata.namespace or cr_ns
  end
  -- round-trip through JSON like the runtime does (markers, integers)
  res = fake.json_decode(fake.json_encode(res))
  local got = res.children or {}
  if ex.children_count then
    assert(#got == ex.children_count, ("expected %d children, got %d:\n  %s")
      :format(ex.children_count, #got, child_list(got)))
  end
  for _, want in ipairs(ex.children or {}) do
    local ns = want.metadata.namespace or cr_ns
    local c = find_child(got, want.apiVersion, want.kind, ns, want.metadata.name)
    assert(c, ("missing child %s/%s %s/%s; emitted:\n  %s"):format(want.apiVersion, want.kind, ns,
      want.metadata.name, child_list(got)))
    local same, why = subset(want, c, want.kind .. " " .. want.metadata.name)
    assert(same, why)
  end
  for _, a in ipairs(ex.absent or {}) do
    local c = find_child(got, a.apiVersion, a.kind, a.namespace or cr_ns, a.name)
    assert(c == nil, ("child %s/%s %s/%s must not be emitted"):format(a.apiVersion, a.kind, a.namespace or cr_ns,
      a.name))
  end
  if ex.status then
    local same, why = subset(ex.status, res.status, "status")
    assert(same, why)
  end
  for t, want in pairs(ex.conditions or {}) do
    local c
    for _, x in ipairs(res.status.conditions or {}) do
      if x.type == t then c = x end
    end
    if want == fake.null then
      assert(c == nil, "condition " .. t .. " must not be set")
    else
      assert(c, "no condition " .. t .. " in " .. fake.json_encode(res.status.conditions))
      for key, v in pairs(want) do
        if key == "message_contains" then
          assert(c.message:find(v, 1, true), ("%s message %q does not contain %q"):format(t, c.message, v))
        else
          assert(c[key] == v, ("%s.%s: expected %s, got %s (%s)"):format(t, key, tostring(v), tostring(c[key]),
            c.message))
        end
      end
    end
  end
  return k
end

describe("schedulerinstall fixtures", function()
  local cases = list_cases()
  it("has cases", function()
    assert.is_true(#cases >= 1)
  end)
  for _, path in ipairs(cases) do
    local ok, case = pcall(function() return fake.yaml_load_file(path)[1] end)
    local title = ok and case and case.name or path
    it(path:match("[^/]+$") .. ": " .. tostring(title), function()
      assert(ok, "cannot load " .. path .. ": " .. tostring(case))
      assert.equal("schedulerinstall", case.controller)
      run_case(path)
    end)
  end
end)
