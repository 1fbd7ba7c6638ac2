-- fixture.lua: the matcher of fixture cases (trusted runtime Lua, embedded in
-- the binary; see fixture.h). Runs in a plain lua_State of its own, never in
-- the sandbox. Compares a case's `expect` with the engine's result and
-- returns the list of failures (empty when the case passes).
--
-- Globals provided by fixture.c: `null` (k8s.null) and `array_mt`.
local M = {}

local null, array_mt = null, array_mt -- luacheck: ignore 113

local function is_array(t)
  if getmetatable(t) == array_mt then return true end
  local n = #t
  if n == 0 then return false end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

local function show(v)
  if v == nil then return "nothing" end
  if v == null then return "null" end
  if type(v) == "string" then return string.format("%q", v) end
  if type(v) == "table" then
    if is_array(v) then return "a list of " .. #v end
    return "a table"
  end
  return tostring(v)
end

local function join(path, key)
  if type(key) == "number" then return string.format("%s[%d]", path, key - 1) end
  if path == "" then return key end
  return path .. "." .. key
end

--- Subset match: every field of `want` must be in `got`; lists element-wise
--- with equal lengths; `null` matches an absent or null field.
local function subset(want, got, path, fails)
  if want == null then
    if got ~= nil and got ~= null then
      fails[#fails + 1] = string.format("%s: expected null or absent, got %s", path, show(got))
    end
    return
  end
  if type(want) == "table" then
    if type(got) ~= "table" then
      fails[#fails + 1] = string.format("%s: expected %s, got %s", path, show(want), show(got))
      return
    end
    if is_array(want) or (next(want) == nil and getmetatable(want) == array_mt) then
      if not is_array(got) and next(got) ~= nil then
        fails[#fails + 1] = string.format("%s: expected a list, got a table", path)
        return
      end
      if #want ~= #got then
        fails[#fails + 1] = string.format("%s: expected %d elements, got %d", path, #want, #got)
        return
      end
      for i = 1, #want do subset(want[i], got[i], join(path, i), fails) end
      return
    end
    local keys = {}
    for k in pairs(want) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
    for _, k in ipairs(keys) do subset(want[k], got[k], join(path, k), fails) end
    return
  end
  if want ~= got then
    fails[#fails + 1] = string.format("%s: expected %s, got %s", path, show(want), show(got))
  end
end
M.subset = subset

local function child_id(c, default_ns)
  local md = c.metadata or {}
  local ns = md.namespace
  if ns == nil or ns == null then ns = default_ns end
  return string.format("%s %s %s/%s", tostring(c.apiVersion), tostring(c.kind), tostring(ns),
    tostring(md.name))
end

local function ref_id(r, default_ns)
  local ns = r.namespace
  if ns == nil or ns == null then ns = default_ns end
  return string.format("%s %s %s/%s", tostring(r.apiVersion), tostring(r.kind), tostring(ns),
    tostring(r.name))
end

local function find_condition(status, ctype)
  local conds = type(status) == "table" and status.conditions
  if type(conds) ~= "table" then return nil end
  for _, c in ipairs(conds) do
    if c.type == ctype then return c end
  end
  return nil
end

local known = {
  children = true, absent = true, children_count = true, status = true, conditions = true,
  error = true, terminal = true, requeue_after = true, events = true, finalized = true,
}

--- @param expect table   the case's expect
--- @param result table   lk_result_to_json of the reconcile
--- @param cr table       the input CR
--- @return string[]      failures
function M.run(expect, result, cr)
  local fails = {}
  if type(expect) ~= "table" then
    return { "expect: must be a table" }
  end
  for k in pairs(expect) do
    if not known[k] then fails[#fails + 1] = string.format("expect.%s: unknown field", tostring(k)) end
  end
  if #fails > 0 then return fails end
  local default_ns = cr.metadata and cr.metadata.namespace or "default"

  if expect.error ~= nil then
    if result.error == nil then
      fails[#fails + 1] = string.format("expected an error matching %q, the reconcile succeeded",
        tostring(expect.error))
    elseif not string.find(result.error, expect.error) then
      fails[#fails + 1] = string.format("error %q does not match %q", result.error, expect.error)
    end
    if expect.terminal ~= nil and (result.error_kind == "terminal") ~= (expect.terminal == true) then
      fails[#fails + 1] = string.format("expected terminal = %s, the error is %s",
        tostring(expect.terminal), tostring(result.error_kind))
    end
  elseif result.error ~= nil then
    fails[#fails + 1] = "reconcile failed: " .. result.error
    return fails
  end

  local emitted = {}
  for _, c in ipairs(result.children or {}) do emitted[child_id(c, default_ns)] = c end

  for i, want in ipairs(expect.children or {}) do
    local id = child_id(want, default_ns)
    local got = emitted[id]
    if not got then
      local names = {}
      for k in pairs(emitted) do names[#names + 1] = k end
      table.sort(names)
      fails[#fails + 1] = string.format("expect.children[%d]: %s was not emitted (emitted: %s)",
        i - 1, id, #names > 0 and table.concat(names, ", ") or "none")
    else
      subset(want, got, "children[" .. id .. "]", fails)
    end
  end
  for i, ref in ipairs(expect.absent or {}) do
    local id = ref_id(ref, default_ns)
    if emitted[id] then
      fails[#fails + 1] = string.format("expect.absent[%d]: %s was emitted", i - 1, id)
    end
  end
  if expect.children_count ~= nil and expect.children_count ~= #(result.children or {}) then
    fails[#fails + 1] = string.format("expected %d children, got %d", expect.children_count,
      #(result.children or {}))
  end
  if expect.status ~= nil then subset(expect.status, result.status, "status", fails) end
  if type(expect.conditions) == "table" then
    local types = {}
    for t in pairs(expect.conditions) do types[#types + 1] = t end
    table.sort(types)
    for _, t in ipairs(types) do
      local want = expect.conditions[t]
      local got = find_condition(result.status, t)
      if not got then
        fails[#fails + 1] = string.format("conditions.%s: no such condition in status", t)
      else
        local rest = {}
        for k, v in pairs(want) do if k ~= "message_contains" then rest[k] = v end end
        subset(rest, got, "conditions." .. t, fails)
        if want.message_contains ~= nil and
          not string.find(tostring(got.message), want.message_contains, 1, true) then
          fails[#fails + 1] = string.format("conditions.%s.message: %q does not contain %q", t,
            tostring(got.message), want.message_contains)
        end
      end
    end
  end
  if expect.requeue_after ~= nil and expect.requeue_after ~= result.requeue_after then
    fails[#fails + 1] = string.format("requeue_after: expected %s, got %s",
      tostring(expect.requeue_after), tostring(result.requeue_after))
  end
  if expect.events ~= nil then subset(expect.events, result.events, "events", fails) end
  if expect.finalized ~= nil and expect.finalized ~= result.finalized then
    fails[#fails + 1] = string.format("finalized: expected %s, got %s", tostring(expect.finalized),
      tostring(result.finalized))
  end
  return fails
end

return M
