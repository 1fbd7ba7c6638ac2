--- A pure-Lua stand-in for the `k8s` module (doc/architecture.md, "The k8s
--- module") for unit specs that call a script's functions directly, plus thin
--- data helpers. It fakes only the API server side (cache, discovery, clock,
--- logs, terminal errors); JSON, YAML and SHA-256 are the runtime's own
--- converters (the busted module `k8srt`, runtime/luamod/k8srt.c), so specs
--- see exactly what the operator sees. Fixture cases run through the
--- production engine (`k8sengine`, spec/unit/fixtures_spec.lua), not here.
---
---   local fake = require("fake_k8s")
---   _G.k8s = fake.new({ objects = { pool }, without_kinds = { "networking.istio.io/v1/DestinationRule" },
---                       now = "2026-01-01T00:00:00Z" })
---   local rec = require("simulatordeployment.reconcile")
---   local res = rec.reconcile(cr, fake.observed(children, owns), fake.ctx())
---
--- One JSON path: Lua-side spec helpers encode and decode with k8srt.json
--- (sorted keys, integers stay integers, `[]` vs `{}` kept through
--- `k8srt.array_mt`, JSON null is the light userdata `k8srt.null`).
--- `k8s.terminal(msg)` raises a table error `{ terminal = true, message = msg }`
--- (see `fake.is_terminal`).
local rt = require("k8srt")

local M = {}

local null, array_mt = rt.null, rt.array_mt
M.null, M.array_mt = null, array_mt

local function array(t)
  return rt.array(t or {})
end

--- Whether t is a JSON array: marked with `array_mt`, or a non-empty sequence.
--- @param t table
--- @return boolean
function M.is_array(t)
  if getmetatable(t) == array_mt then return true end
  local n = #t
  if n == 0 then return false end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end

---------------------------------------------------------------------------
-- Data helpers: the runtime's converters (k8srt), raising on bad input
---------------------------------------------------------------------------

--- Compact JSON with sorted keys (k8srt.json.encode; raises for values with
--- no JSON form).
--- @param v any
--- @return string
function M.json_encode(v)
  return rt.json.encode(v)
end

--- Decode JSON text (arrays marked, null → k8srt.null); raises on bad text.
--- @param s string
--- @return any
function M.json_decode(s)
  local v, err = rt.json.decode(s)
  if v == nil then error("json: " .. tostring(err), 2) end
  return v
end

--- Every document of a YAML text as the runtime loads it (k8srt.yaml.load:
--- YAML 1.2 core schema, so `0123` is a string and `0o17` is 15; empty
--- documents are skipped); raises on bad text.
--- @param text string
--- @param filename string|nil  named in error messages
--- @return any[] docs
function M.yaml_load_all(text, filename)
  local docs, err = rt.yaml.load(text, filename)
  if not docs then error("yaml: " .. tostring(err), 2) end
  return docs
end

--- Every non-null document of a YAML file (raises when unreadable or invalid).
--- @param path string
--- @return any[]
function M.yaml_load_file(path)
  local f = assert(io.open(path, "r"))
  local text = f:read("a")
  f:close()
  local out = {}
  for _, d in ipairs(M.yaml_load_all(text, path)) do
    if d ~= null then out[#out + 1] = d end
  end
  return out
end

--- Block-style YAML with sorted keys, as `k8s.yaml.encode` writes it.
--- @param v any
--- @return string
function M.yaml_encode(v)
  return rt.yaml.dump(v)
end

--- Hex SHA-256 of a string (k8srt.sha256).
--- @param s string
--- @return string
function M.sha256(s)
  return rt.sha256(s)
end

--- The input CR of document i (default 1) of a fixture case file, with
--- `input_path` resolved relative to the case file.
--- @param path string
--- @param i integer|nil
--- @return table
function M.case_input(path, i)
  local case = assert(M.yaml_load_file(path)[i or 1], path .. ": no such case")
  if case.input_path then
    local dir = path:match("^(.*)/[^/]*$") or "."
    return assert(M.yaml_load_file(dir .. "/" .. case.input_path)[1], case.input_path .. ": empty")
  end
  return case.input
end

---------------------------------------------------------------------------
-- The fake module
---------------------------------------------------------------------------
--- "apps/v1/Deployment" style key (core: "v1/Service").
local function gvk(apiVersion, kind) return apiVersion .. "/" .. kind end

--- A deep copy of a value; tables keep their metatable (array_mt).
--- @param v any
--- @return any
local function deep_copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = deep_copy(x) end
  return setmetatable(out, getmetatable(v))
end
M.deep_copy = deep_copy

--- Whether a value raised by `pcall` is a terminal error of the fake.
--- @param err any
--- @return boolean
function M.is_terminal(err)
  return type(err) == "table" and err.terminal == true
end

--- The message of an error raised by a reconcile (terminal or not).
--- @param err any
--- @return string
function M.error_message(err)
  if type(err) == "table" then return tostring(err.message) end
  return tostring(err)
end

---@class FakeOpts
---@field objects table[]|nil        objects in the cache
---@field served string[]|nil        "apiVersion/Kind" served; nil → everything served
---@field without_kinds string[]|nil "apiVersion/Kind" not served (fixture format)
---@field now string|nil             fixed clock (default 2026-01-01T00:00:00Z)

--- A fresh fake `k8s` module. Extra fields for specs: `logs` (captured log
--- lines), `objects` (the cache list; may be edited between calls).
--- @param opts FakeOpts|nil
--- @return table k8s
function M.new(opts)
  opts = opts or {}
  local k = { null = null, array_mt = array_mt, array = array, logs = {}, objects = opts.objects or {} }
  local served, without = nil, {}
  if opts.served then
    served = {}
    for _, s in ipairs(opts.served) do served[s] = true end
  end
  for _, s in ipairs(opts.without_kinds or {}) do without[s] = true end
  local now = opts.now or "2026-01-01T00:00:00Z"

  local function matches(o, apiVersion, kind, sel)
    if o.apiVersion ~= apiVersion or o.kind ~= kind then return false end
    sel = sel or {}
    local md = o.metadata or {}
    if sel.namespace and md.namespace ~= sel.namespace then return false end
    for lk, lv in pairs(sel.labels or {}) do
      if not md.labels or md.labels[lk] ~= lv then return false end
    end
    return true
  end

  k.cache = {
    get = function(apiVersion, kind, namespace, name)
      for _, o in ipairs(k.objects) do
        if matches(o, apiVersion, kind, { namespace = namespace }) and o.metadata.name == name then
          return deep_copy(o)
        end
      end
      return nil
    end,
    list = function(apiVersion, kind, sel)
      local out = {}
      for _, o in ipairs(k.objects) do
        if matches(o, apiVersion, kind, sel) then out[#out + 1] = deep_copy(o) end
      end
      table.sort(out, function(a, b)
        local ka = (a.metadata.namespace or "") .. "/" .. a.metadata.name
        local kb = (b.metadata.namespace or "") .. "/" .. b.metadata.name
        return ka < kb
      end)
      return array(out)
    end,
  }
  k.discovery = {
    served = function(apiVersion, kind)
      local key = gvk(apiVersion, kind)
      if without[key] then return false end
      if served then return served[key] == true end
      return true
    end,
    versions = function(group, kind)
      local out = {}
      local candidates = { "v1", "v1beta1", "v1alpha3", "v1alpha2", "v1alpha1" }
      for _, v in ipairs(candidates) do
        local av = group == "" and v or (group .. "/" .. v)
        if k.discovery.served(av, kind) and (served or v == "v1") then out[#out + 1] = v end
      end
      return array(out)
    end,
  }
  local function logger(level)
    return function(msg, fields) k.logs[#k.logs + 1] = { level = level, msg = msg, fields = fields } end
  end
  k.log = { info = logger("info"), debug = logger("debug"), warn = logger("warn"), error = logger("error") }
  k.now = function() return now end
  k.terminal = function(msg)
    error(setmetatable({ terminal = true, message = msg }, { __tostring = function(e) return e.message end }), 2)
  end
  -- the sandbox's converters: decode fails as data, like runtime/lua/lib_json.c
  k.json = {
    encode = rt.json.encode,
    decode = function(s)
      local v, err = rt.json.decode(s)
      if v == nil then return nil, { reason = "InvalidJSON", code = 0, message = err } end
      return v
    end,
  }
  k.yaml = { encode = M.yaml_encode }
  k.sha256 = rt.sha256
  return k
end

--- Install a fresh fake as the global `k8s` and return it.
--- @param opts FakeOpts|nil
--- @return table
function M.install(opts)
  local k = M.new(opts)
  _G.k8s = k
  return k
end

--- Build reconcile's `observed` argument from a list of objects: objects of
--- the `owns` kinds become children (`["Kind.apiVersion"]["ns/name"]`); every
--- `owns` kind has an entry, maybe empty.
--- @param objects table[]|nil
--- @param owns {apiVersion:string, kind:string}[]|nil  nil → every object's kind
--- @return table
function M.observed(objects, owns)
  local children = {}
  local wanted
  if owns then
    wanted = {}
    for _, o in ipairs(owns) do
      wanted[o.kind .. "." .. o.apiVersion] = true
      children[o.kind .. "." .. o.apiVersion] = {}
    end
  end
  for _, o in ipairs(objects or {}) do
    local key = o.kind .. "." .. o.apiVersion
    if not wanted or wanted[key] then
      children[key] = children[key] or {}
      children[key][(o.metadata.namespace or "") .. "/" .. o.metadata.name] = deep_copy(o)
    end
  end
  return { children = children }
end

--- A reconcile ctx.
--- @param over table|nil
--- @return table
function M.ctx(over)
  local c = { script_revision = "sha256:fake", finalizing = false, now = "2026-01-01T00:00:00Z" }
  for key, v in pairs(over or {}) do c[key] = v end
  return c
end

return M
