--- Command-line arguments: build a container's argv from generated flags plus
--- the user's extra args, and detect user args that contradict a generated
--- flag derived from a spec field.
---
--- Generated flags come in two sorts:
---  * tied to a spec field (`field` set, e.g. `--port` ← `spec.decode.port`):
---    a user arg for the same flag with another value is a *conflict*
---    (reported, message names both fields); the same value is harmless;
---  * defaults (`field` nil, e.g. `--mode random`): a user arg for the same
---    flag replaces the generated one.
---
--- Recognised user forms: `--name=value`, `--name value` (two elements),
--- `--name value` (one element with a space), `-name …`, `--name` (boolean).
local M = {}

---@class GeneratedFlag
---@field flag string           name without dashes, e.g. "port"
---@field value string|integer|boolean|nil   nil or true → a bare boolean flag
---@field field string|nil      spec path the value comes from, e.g. "spec.decode.port"
---@field aliases string[]|nil  other names of the same flag (without dashes)
---@field equals boolean|nil    write this flag as `--flag=value` whatever `opts.style`

---@class ParsedArg
---@field name string    flag name without dashes ("" for a positional)
---@field value string|nil
---@field raw string     the user's text for messages, e.g. "--port 9000"
---@field tokens string[] the original elements

--- Split a user's arg list into flags. `booleans` names flags that never
--- take a separate value.
--- @param list string[]|nil
--- @param booleans table<string,boolean>|nil
--- @return ParsedArg[]
function M.parse(list, booleans)
  booleans = booleans or {}
  local out, i = {}, 1
  list = list or {}
  while i <= #list do
    local t = tostring(list[i])
    local dashes, rest = t:match("^(%-%-?)([^%-].*)$")
    if not dashes then
      out[#out + 1] = { name = "", value = t, raw = t, tokens = { t } }
      i = i + 1
    else
      local name, value = rest:match("^([^=%s]+)=(.*)$")
      if not name then name, value = rest:match("^([^=%s]+)%s+(.-)%s*$") end
      if name then
        out[#out + 1] = { name = name, value = value, raw = t, tokens = { t } }
        i = i + 1
      else
        name = rest
        local nxt = list[i + 1] and tostring(list[i + 1])
        if not booleans[name] and nxt and not nxt:match("^%-%-?[^%-%d]") then
          out[#out + 1] = { name = name, value = nxt, raw = t .. " " .. nxt, tokens = { t, nxt } }
          i = i + 2
        else
          out[#out + 1] = { name = name, value = nil, raw = t, tokens = { t } }
          i = i + 1
        end
      end
    end
  end
  return out
end

local function norm(v)
  if v == nil or v == true then return "true" end
  return tostring(v)
end

---@class BuildOpts
---@field field string|nil   spec path of the user args for messages, e.g. "spec.decode.args"
---@field booleans table<string,boolean>|nil
---@field style "space"|"equals"|nil  how generated flags are written (default "space")

--- Build the argv: generated flags (minus defaults the user overrides), then
--- the user's args unchanged. Returns the argv and the list of conflict
--- messages (`<field>: "<raw>" contradicts <gen.field> (<value>)`).
--- @param generated GeneratedFlag[]
--- @param user string[]|nil
--- @param opts BuildOpts|nil
--- @return string[] argv, string[] conflicts
function M.build(generated, user, opts)
  opts = opts or {}
  local parsed = M.parse(user, opts.booleans)
  local by_name = {}
  for _, g in ipairs(generated) do
    by_name[g.flag] = g
    for _, a in ipairs(g.aliases or {}) do by_name[a] = g end
  end
  local overridden, conflicts = {}, {}
  for _, p in ipairs(parsed) do
    local g = p.name ~= "" and by_name[p.name]
    if g then
      if g.field then
        if norm(p.value) ~= norm(g.value) then
          conflicts[#conflicts + 1] = string.format("%s: %q contradicts %s (%s)",
            opts.field or "args", p.raw, g.field, norm(g.value))
        end
      else
        overridden[g] = true
      end
    end
  end
  local argv = {}
  for _, g in ipairs(generated) do
    if not overridden[g] and g.value ~= false then
      if g.value == nil or g.value == true then
        argv[#argv + 1] = "--" .. g.flag
      elseif g.equals or opts.style == "equals" then
        argv[#argv + 1] = "--" .. g.flag .. "=" .. tostring(g.value)
      else
        argv[#argv + 1] = "--" .. g.flag
        argv[#argv + 1] = tostring(g.value)
      end
    end
  end
  for _, u in ipairs(user or {}) do argv[#argv + 1] = tostring(u) end
  if k8s and k8s.array then argv = k8s.array(argv) end
  return argv, conflicts
end

--- The value of flag `name` (or an alias) in an argv, last one wins; nil if absent.
--- @param argv string[]|nil
--- @param names string|string[]
--- @param booleans table<string,boolean>|nil
--- @return string|nil value, boolean present
function M.value_of(argv, names, booleans)
  if type(names) == "string" then names = { names } end
  local want = {}
  for _, n in ipairs(names) do want[n] = true end
  local value, present = nil, false
  for _, p in ipairs(M.parse(argv, booleans)) do
    if want[p.name] then value, present = p.value or "true", true end
  end
  return value, present
end

return M
