--- A pure-Lua stand-in for the `k8s` module (doc/architecture.md, "The k8s
--- module") for unit specs of scripts, plus helpers to load YAML the way the
--- runtime does and to run fixture cases without the C engine.
---
---   local fake = require("fake_k8s")
---   _G.k8s = fake.new({ objects = { pool }, without_kinds = { "networking.istio.io/v1/DestinationRule" },
---                       now = "2026-01-01T00:00:00Z" })
---   local rec = require("simulatordeployment.reconcile")
---   local res = rec.reconcile(cr, fake.observed(children, owns), fake.ctx())
---
--- Markers follow the runtime: JSON arrays are tables with metatable
--- `k8s.array_mt`, JSON null is `k8s.null` (here a unique table that raises
--- when indexed, like the runtime's light userdata). `k8s.terminal(msg)` raises a table error
--- `{ terminal = true, message = msg }` (see `fake.is_terminal`).
local M = {}

local array_mt = { __name = "k8s.array" }
-- JSON null: the runtime's is a light userdata, which cannot be indexed; this
-- stand-in raises on index/newindex/len the same way so specs catch such bugs.
local null = setmetatable({}, {
  __name = "k8s.null",
  __tostring = function() return "null" end,
  __index = function(_, k) error("attempt to index a k8s.null value (field '" .. tostring(k) .. "')", 2) end,
  __newindex = function() error("attempt to index a k8s.null value", 2) end,
  __len = function() error("attempt to get length of a k8s.null value", 2) end,
})
M.array_mt, M.null = array_mt, null

local function array(t)
  return setmetatable(t or {}, array_mt)
end

local function is_array(t)
  if getmetatable(t) == array_mt then return true end
  local n = #t
  if n == 0 then return false end
  local count = 0
  for _ in pairs(t) do count = count + 1 end
  return count == n
end
M.is_array = is_array

---------------------------------------------------------------------------
-- JSON (same markers as runtime/core/json.c)
---------------------------------------------------------------------------
local escapes = { ['"'] = '\\"', ['\\'] = '\\\\', ['\b'] = '\\b', ['\f'] = '\\f', ['\n'] = '\\n',
                  ['\r'] = '\\r', ['\t'] = '\\t' }
local function json_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    return escapes[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function encode(v, out)
  local t = type(v)
  if v == null or v == nil then out[#out + 1] = "null"
  elseif t == "boolean" then out[#out + 1] = tostring(v)
  elseif t == "number" then
    if math.type(v) == "integer" then out[#out + 1] = string.format("%d", v)
    elseif v ~= v or v == math.huge or v == -math.huge then error("json: cannot encode " .. tostring(v))
    elseif v == math.floor(v) and math.abs(v) < 1e15 then out[#out + 1] = string.format("%.1f", v)
    else out[#out + 1] = string.format("%.17g", v) end
  elseif t == "string" then out[#out + 1] = json_string(v)
  elseif t == "table" then
    if is_array(v) then
      out[#out + 1] = "["
      for i, x in ipairs(v) do
        if i > 1 then out[#out + 1] = "," end
        encode(x, out)
      end
      out[#out + 1] = "]"
    else
      local keys = {}
      for k in pairs(v) do
        if type(k) ~= "string" then error("json: non-string key " .. tostring(k)) end
        keys[#keys + 1] = k
      end
      table.sort(keys)
      out[#out + 1] = "{"
      for i, k in ipairs(keys) do
        if i > 1 then out[#out + 1] = "," end
        out[#out + 1] = json_string(k)
        out[#out + 1] = ":"
        encode(v[k], out)
      end
      out[#out + 1] = "}"
    end
  else error("json: cannot encode a " .. t) end
end

--- Compact JSON with sorted keys.
--- @param v any
--- @return string
function M.json_encode(v)
  local out = {}
  encode(v, out)
  return table.concat(out)
end

--- Decode JSON text (arrays marked, null → k8s.null).
--- @param s string
--- @return any
function M.json_decode(s)
  local pos = 1
  local function ws() pos = s:find("[^ \t\r\n]", pos) or #s + 1 end
  local function fail(msg) error(string.format("json: %s at %d", msg, pos), 0) end
  local value
  local function str()
    pos = pos + 1
    local buf = {}
    while true do
      local c = s:sub(pos, pos)
      if c == "" then fail("unterminated string") end
      if c == '"' then pos = pos + 1; break end
      if c == "\\" then
        local e = s:sub(pos + 1, pos + 1)
        local map = { b = "\b", f = "\f", n = "\n", r = "\r", t = "\t", ['"'] = '"', ["\\"] = "\\", ["/"] = "/" }
        if map[e] then buf[#buf + 1] = map[e]; pos = pos + 2
        elseif e == "u" then
          local cp = tonumber(s:sub(pos + 2, pos + 5), 16) or fail("bad \\u")
          pos = pos + 6
          if cp >= 0xD800 and cp <= 0xDBFF and s:sub(pos, pos + 1) == "\\u" then
            local lo = tonumber(s:sub(pos + 2, pos + 5), 16)
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
            pos = pos + 6
          end
          buf[#buf + 1] = utf8.char(cp)
        else fail("bad escape") end
      else
        buf[#buf + 1] = c
        pos = pos + 1
      end
    end
    return table.concat(buf)
  end
  function value()
    ws()
    local c = s:sub(pos, pos)
    if c == "{" then
      pos = pos + 1
      local t = {}
      ws()
      if s:sub(pos, pos) == "}" then pos = pos + 1; return t end
      while true do
        ws()
        if s:sub(pos, pos) ~= '"' then fail("expected key") end
        local k = str()
        ws()
        if s:sub(pos, pos) ~= ":" then fail("expected ':'") end
        pos = pos + 1
        t[k] = value()
        ws()
        local d = s:sub(pos, pos)
        pos = pos + 1
        if d == "}" then return t end
        if d ~= "," then fail("expected ',' or '}'") end
      end
    elseif c == "[" then
      pos = pos + 1
      local t = array({})
      ws()
      if s:sub(pos, pos) == "]" then pos = pos + 1; return t end
      while true do
        t[#t + 1] = value()
        ws()
        local d = s:sub(pos, pos)
        pos = pos + 1
        if d == "]" then return t end
        if d ~= "," then fail("expected ',' or ']'") end
      end
    elseif c == '"' then return str()
    elseif s:sub(pos, pos + 3) == "true" then pos = pos + 4; return true
    elseif s:sub(pos, pos + 4) == "false" then pos = pos + 5; return false
    elseif s:sub(pos, pos + 3) == "null" then pos = pos + 4; return null
    else
      local num = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
      if not num or num == "" then fail("unexpected character") end
      pos = pos + #num
      return math.tointeger(tonumber(num)) or tonumber(num)
    end
  end
  local v = value()
  ws()
  if pos <= #s then fail("trailing characters") end
  return v
end

---------------------------------------------------------------------------
-- YAML: loading through libyaml's event parser (keeps [] vs {}), and a
-- small block-style emitter for ConfigMap payloads.
---------------------------------------------------------------------------
local function plain_scalar(v)
  if v == "" or v == "~" or v == "null" or v == "Null" or v == "NULL" then return null end
  if v == "true" or v == "True" or v == "TRUE" then return true end
  if v == "false" or v == "False" or v == "FALSE" then return false end
  if v:match("^[-+]?%d+$") then return math.tointeger(tonumber(v)) end
  if v:match("^0x%x+$") then return tonumber(v) end
  if v:match("^[-+]?%d*%.?%d+[eE][-+]?%d+$") or v:match("^[-+]?%d*%.%d+$") or v:match("^[-+]?%d+%.%d*$") then
    return tonumber(v)
  end
  if v == ".inf" or v == "+.inf" then return math.huge end
  if v == "-.inf" then return -math.huge end
  return v
end

--- Load every document of a YAML text.
--- @param text string
--- @return any[] docs
function M.yaml_load_all(text)
  local yaml = require("yaml")
  local parser = yaml.parser(text)
  local docs, anchors = {}, {}
  local function node(e)
    local v
    if e.type == "SCALAR" then
      if e.style == "PLAIN" and not e.tag then v = plain_scalar(e.value)
      elseif e.tag == "tag:yaml.org,2002:int" then v = math.tointeger(tonumber(e.value))
      else v = e.value end
    elseif e.type == "ALIAS" then
      return anchors[e.anchor]
    elseif e.type == "SEQUENCE_START" then
      v = array({})
      while true do
        local n = parser()
        if n.type == "SEQUENCE_END" then break end
        v[#v + 1] = node(n)
      end
    elseif e.type == "MAPPING_START" then
      v = {}
      while true do
        local k = parser()
        if k.type == "MAPPING_END" then break end
        local key = node(k)
        local val = node(parser())
        if key == "<<" and type(val) == "table" then
          for mk, mv in pairs(val) do if v[mk] == nil then v[mk] = mv end end
        else
          v[tostring(key)] = val
        end
      end
    else
      error("yaml: unexpected event " .. tostring(e.type))
    end
    if e.anchor then anchors[e.anchor] = v end
    return v
  end
  while true do
    local e = parser()
    if not e or e.type == "STREAM_END" then break end
    if e.type == "DOCUMENT_START" then
      local n = parser()
      if n.type == "DOCUMENT_END" then
        docs[#docs + 1] = null
      else
        docs[#docs + 1] = node(n)
        parser() -- DOCUMENT_END
      end
    end
  end
  return docs
end

--- Load a YAML file: every non-null document.
--- @param path string
--- @return any[]
function M.yaml_load_file(path)
  local f = assert(io.open(path, "r"))
  local text = f:read("a")
  f:close()
  local out = {}
  for _, d in ipairs(M.yaml_load_all(text)) do
    if d ~= null then out[#out + 1] = d end
  end
  return out
end

local function yaml_scalar(v)
  if v == null or v == nil then return "null" end
  if type(v) == "boolean" then return tostring(v) end
  if type(v) == "number" then return M.json_encode(v) end
  local s = tostring(v)
  if s == "" or s:match("^[%s]") or s:match("[%s]$") or s:match("[:#{}%[%],&*!|>'\"%%@`\n]")
     or s:match("^[-?]") or plain_scalar(s) ~= s then
    return json_string(s)
  end
  return s
end

local function yaml_emit(v, indent, out)
  local pad = string.rep("  ", indent)
  if type(v) == "table" and v ~= null then
    if is_array(v) then
      if #v == 0 then out[#out] = out[#out] .. " []"; return end
      for _, x in ipairs(v) do
        if type(x) == "table" and x ~= null and next(x) ~= nil then
          out[#out + 1] = pad .. "-"
          local mark = #out
          yaml_emit(x, indent + 1, out)
          -- pull the first line of the element onto the dash line
          local first = out[mark + 1]
          if first then
            out[mark] = pad .. "- " .. first:gsub("^%s+", "")
            table.remove(out, mark + 1)
          end
        else
          out[#out + 1] = pad .. "- " .. (type(x) == "table" and x ~= null and "{}" or yaml_scalar(x))
        end
      end
    else
      local keys = {}
      for k in pairs(v) do keys[#keys + 1] = k end
      table.sort(keys)
      if #keys == 0 then out[#out] = out[#out] .. " {}"; return end
      for _, k in ipairs(keys) do
        local x = v[k]
        if type(x) == "table" and x ~= null then
          out[#out + 1] = pad .. yaml_scalar(k) .. ":"
          yaml_emit(x, indent + 1, out)
        else
          out[#out + 1] = pad .. yaml_scalar(k) .. ": " .. yaml_scalar(x)
        end
      end
    end
  else
    out[#out + 1] = pad .. yaml_scalar(v)
  end
end

--- Block-style YAML with sorted keys.
--- @param v any
--- @return string
function M.yaml_encode(v)
  local out = { "" }
  yaml_emit(v, 0, out)
  if out[1] == "" then table.remove(out, 1) end
  return table.concat(out, "\n") .. "\n"
end

---------------------------------------------------------------------------
-- SHA-256 (pure Lua 5.4 integers)
---------------------------------------------------------------------------
local K = {
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
}

--- Hex SHA-256 of a string.
--- @param msg string
--- @return string
function M.sha256(msg)
  local M32 = 0xffffffff
  local function rotr(x, n) return ((x >> n) | (x << (32 - n))) & M32 end
  local h = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 }
  local ml = #msg * 8
  msg = msg .. "\128" .. string.rep("\0", (55 - #msg) % 64) .. string.pack(">I8", ml)
  local w = {}
  for chunk = 1, #msg, 64 do
    for i = 0, 15 do w[i] = string.unpack(">I4", msg, chunk + i * 4) end
    for i = 16, 63 do
      local s0 = rotr(w[i - 15], 7) ~ rotr(w[i - 15], 18) ~ (w[i - 15] >> 3)
      local s1 = rotr(w[i - 2], 17) ~ rotr(w[i - 2], 19) ~ (w[i - 2] >> 10)
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) & M32
    end
    local a, b, c, d, e, f, g, hh = h[1], h[2], h[3], h[4], h[5], h[6], h[7], h[8]
    for i = 0, 63 do
      local S1 = rotr(e, 6) ~ rotr(e, 11) ~ rotr(e, 25)
      local ch = (e & f) ~ ((~e) & g)
      local t1 = (hh + S1 + ch + K[i + 1] + w[i]) & M32
      local S0 = rotr(a, 2) ~ rotr(a, 13) ~ rotr(a, 22)
      local maj = (a & b) ~ (a & c) ~ (b & c)
      local t2 = (S0 + maj) & M32
      hh, g, f, e, d, c, b, a = g, f, e, (d + t1) & M32, c, b, a, (t1 + t2) & M32
    end
    h[1], h[2], h[3], h[4] = (h[1] + a) & M32, (h[2] + b) & M32, (h[3] + c) & M32, (h[4] + d) & M32
    h[5], h[6], h[7], h[8] = (h[5] + e) & M32, (h[6] + f) & M32, (h[7] + g) & M32, (h[8] + hh) & M32
  end
  return string.format(string.rep("%08x", 8), table.unpack(h))
end

---------------------------------------------------------------------------
-- The fake module
---------------------------------------------------------------------------

--- "apps/v1/Deployment" style key (core: "v1/Service").
local function gvk(apiVersion, kind) return apiVersion .. "/" .. kind end

local function deep_copy(v)
  if type(v) ~= "table" or v == null then return v end
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
  k.json = { encode = M.json_encode, decode = M.json_decode }
  k.yaml = { encode = M.yaml_encode }
  k.sha256 = M.sha256
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

---------------------------------------------------------------------------
-- Fixture cases (doc/architecture.md "Fixture cases") without the C engine
---------------------------------------------------------------------------

--- Compare `expected` as a subset of `actual` (maps by key, lists
--- element-wise with equal length). Returns nil, or a message with the path.
--- @param expected any
--- @param actual any
--- @param path string|nil
--- @return string|nil
function M.subset(expected, actual, path)
  path = path or "$"
  if expected == null then
    if actual == nil or actual == null then return nil end
    return path .. ": expected null, got " .. M.json_encode(actual)
  end
  if type(expected) ~= "table" then
    if expected == actual then return nil end
    return string.format("%s: expected %s, got %s", path, M.json_encode(expected),
      actual == nil and "nothing" or (pcall(M.json_encode, actual) and M.json_encode(actual) or tostring(actual)))
  end
  if type(actual) ~= "table" or actual == null then
    return string.format("%s: expected %s, got %s", path, M.json_encode(expected), tostring(actual))
  end
  if getmetatable(expected) == array_mt or (is_array(expected) and #expected > 0) then
    if #expected ~= #actual then
      return string.format("%s: expected %d elements, got %d: %s", path, #expected, #actual, M.json_encode(actual))
    end
    for i, x in ipairs(expected) do
      local err = M.subset(x, actual[i], path .. "[" .. (i - 1) .. "]")
      if err then return err end
    end
    return nil
  end
  local keys = {}
  for k in pairs(expected) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local err = M.subset(expected[k], actual[k], path .. "." .. k)
    if err then return err end
  end
  return nil
end

local function dirname(p) return p:match("^(.*)/[^/]*$") or "." end

--- Load a fixture case; `input_path` is resolved relative to the case file.
--- @param path string
--- @return table case
function M.load_case(path)
  local case = assert(M.yaml_load_file(path)[1], path .. ": empty")
  if case.input_path then
    case.input = assert(M.yaml_load_file(dirname(path) .. "/" .. case.input_path)[1], case.input_path)
  end
  return case
end

--- Run one fixture case through the reconciler with this fake (not the C
--- engine). Returns a list of failure messages (empty when the case passes)
--- and the result (JSON round-tripped, like the engine) or the error.
--- @param path string            the case file
--- @param controllers table|nil  the registry (default: require "controllers")
--- @return string[] failures, table|nil result, any err
function M.run_case(path, controllers)
  local case = M.load_case(path)
  local fails = {}
  local function fail(msg) fails[#fails + 1] = msg end
  controllers = controllers or require("controllers")
  local ctl
  for _, c in ipairs(controllers) do if c.name == case.controller then ctl = c end end
  if not ctl then return { "unknown controller " .. tostring(case.controller) } end
  local now = case.now or "2026-01-01T00:00:00Z"
  local objects = deep_copy(case.observed or {})
  local k = M.install({ objects = objects, without_kinds = case.without_kinds, now = now })
  local mod = require(ctl.module)
  local cr = deep_copy(case.input)
  cr.metadata = cr.metadata or {}
  cr.metadata.namespace = cr.metadata.namespace or "default"
  local observed = M.observed(objects, ctl.owns)
  local ok, res = pcall(mod.reconcile, cr, observed, M.ctx({ now = now }))
  local expect = case.expect or {}
  if not ok then
    if not expect.error then
      fail("reconcile failed: " .. M.error_message(res))
    else
      if not M.error_message(res):find(expect.error) then
        fail(string.format("error %q does not match %q", M.error_message(res), expect.error))
      end
      if expect.terminal == true and not M.is_terminal(res) then fail("error is not terminal") end
      if expect.terminal == false and M.is_terminal(res) then fail("error is terminal") end
    end
    return fails, nil, res
  end
  if expect.error then
    fail("expected an error matching " .. expect.error .. ", reconcile succeeded")
    return fails, res
  end
  local okj, encoded = pcall(M.json_encode, res)
  if not okj then return { "result is not JSON-encodable: " .. tostring(encoded) }, res end
  res = M.json_decode(encoded)
  local children = res.children or {}
  local function key(av, kind, ns, name) return table.concat({ av, kind, ns or cr.metadata.namespace, name }, " ") end
  local by_key = {}
  for _, c in ipairs(children) do
    local md = c.metadata or {}
    local kk = key(c.apiVersion, c.kind, md.namespace, md.name)
    if by_key[kk] then fail("child emitted twice: " .. kk) end
    by_key[kk] = c
  end
  for _, want in ipairs(expect.children or {}) do
    local md = want.metadata or {}
    local kk = key(want.apiVersion, want.kind, md.namespace, md.name)
    local got = by_key[kk]
    if not got then
      fail("missing child " .. kk)
    else
      local err = M.subset(want, got, kk)
      if err then fail(err) end
    end
  end
  for _, a in ipairs(expect.absent or {}) do
    local kk = key(a.apiVersion, a.kind, a.namespace, a.name)
    if by_key[kk] then fail("child should be absent: " .. kk) end
  end
  if expect.children_count and expect.children_count ~= #children then
    local list = {}
    for _, c in ipairs(children) do list[#list + 1] = c.kind .. "/" .. c.metadata.name end
    fail(string.format("children_count: expected %d, got %d (%s)", expect.children_count, #children,
      table.concat(list, ", ")))
  end
  if expect.status then
    local err = M.subset(expect.status, res.status or {}, "status")
    if err then fail(err) end
  end
  for ctype, want in pairs(expect.conditions or {}) do
    local got
    for _, c in ipairs((res.status or {}).conditions or {}) do if c.type == ctype then got = c end end
    if not got then
      fail("missing condition " .. ctype)
    else
      local w = deep_copy(want)
      local contains = w.message_contains
      w.message_contains = nil
      local err = M.subset(w, got, "conditions." .. ctype)
      if err then fail(err) end
      if contains and not tostring(got.message):find(contains, 1, true) then
        fail(string.format("conditions.%s.message %q does not contain %q", ctype, got.message, contains))
      end
    end
  end
  _G.k8s = k
  return fails, res
end

return M
