--- Policy overlays: the table module `policy` returns (scripts/policy.lua,
--- bundled empty; overlaid from the scripts ConfigMap under key `policy.lua`)
--- patched over the bundled defaults of the knob modules. Each knob module
--- ends with `return require("lib.policy").apply("<section>", M)`.
--- doc/hot-reload.md ("Policy overlays") documents the shape for users.
---
--- Sections and their knob modules:
---   routing   schedulerinstall.routing (fallback, portless classes, hints, extra checks, backend choice)
---   profiles  lib.epp_profiles: the EndpointPickerConfig profiles (both kinds' EPPs)
---   epp       the knobs of lib.epp (image default, which profile a CR gets)
---
--- Merge rules (Kubernetes' strategic merge patch, spelt in Lua):
---   * a map merges key by key, recursively; a key set to `k8s.null` is deleted;
---   * a list of records that each carry `name`, `pluginRef` or `type` (the
---     first present is the merge key) merges element by element on that key:
---     a patch element whose key matches merges into that element, a new key is
---     appended, and an element with `["$patch"] = "delete"` removes its match;
---   * any other list, a scalar or a function replaces the default;
---   * a patch table with `["$patch"] = "replace"` replaces the default table
---     (the marker itself is dropped);
---   * at the top of a section (but `profiles`, whose keys are profile names) a
---     key the knob module does not define is an error naming it, so a
---     misspelt knob fails `check` instead of being ignored.
local M = {}

--- The sections `policy` may have, and the module whose knobs each patches.
M.SECTIONS = { routing = "schedulerinstall.routing", profiles = "lib.epp_profiles", epp = "lib.epp" }

--- Sections whose keys are names the user picks (new profiles), not knobs.
M.OPEN = { profiles = true }

local PATCH = "$patch"

local function is_null(v) return k8s ~= nil and v == k8s.null end

local function is_list(t)
  return type(t) == "table" and (#t > 0 or (k8s ~= nil and getmetatable(t) == k8s.array_mt))
end

local function merge_key(e)
  if type(e) ~= "table" then return nil end
  local k = e.pluginRef or e.name or e.type
  if k == nil then return nil end
  return (e.pluginRef and "pluginRef") or (e.name and "name") or "type", k
end

-- Whether every element of list `t` is a record with a merge key.
local function keyed(t)
  for _, e in ipairs(t) do
    if not merge_key(e) then return false end
  end
  return true
end

local merge

-- A copy of patch value `v` without `$patch` markers (it becomes a default).
local function plain(v)
  if type(v) ~= "table" or is_null(v) then return v end
  local out = {}
  for k, x in pairs(v) do
    if k ~= PATCH then out[k] = plain(x) end
  end
  return setmetatable(out, getmetatable(v))
end

local function merge_list(base, patch, path)
  local out = {}
  for i, e in ipairs(base) do out[i] = e end
  for i, p in ipairs(patch) do
    local field, key = merge_key(p)
    local at
    for j, e in ipairs(out) do
      local f2, k2 = merge_key(e)
      if f2 == field and k2 == key then at = j; break end
    end
    local where = ("%s[%s=%q]"):format(path, field, tostring(key))
    if p[PATCH] == "delete" then
      if not at then error(("policy %s: $patch delete: no such element"):format(where), 0) end
      table.remove(out, at)
    elseif p[PATCH] ~= nil and p[PATCH] ~= "replace" then
      error(("policy %s[%d]: $patch %q: want \"delete\" or \"replace\""):format(path, i, tostring(p[PATCH])), 0)
    elseif at then
      out[at] = merge(out[at], p, where)
    else
      out[#out + 1] = plain(p)
    end
  end
  return setmetatable(out, getmetatable(base))
end

--- `patch` merged over `base` (both left unchanged; shared subtables are
--- fine, the result is only read). `path` names the place in errors.
--- @param base any
--- @param patch any
--- @param path string
--- @return any
function merge(base, patch, path)
  if type(patch) ~= "table" or is_null(patch) or type(base) ~= "table" then return plain(patch) end
  if patch[PATCH] == "replace" then return plain(patch) end
  if patch[PATCH] ~= nil then
    error(("policy %s: $patch %q: only \"replace\" applies to a table (\"delete\" to a list element)")
      :format(path, tostring(patch[PATCH])), 0)
  end
  if is_list(patch) or (next(patch) == nil and is_list(base)) then
    if is_list(base) and #patch > 0 and keyed(base) and keyed(patch) then return merge_list(base, patch, path) end
    return plain(patch)
  end
  local out = {}
  for k, v in pairs(base) do out[k] = v end
  for k, v in pairs(patch) do
    if is_null(v) then
      out[k] = nil
    else
      out[k] = merge(base[k], v, ("%s.%s"):format(path, tostring(k)))
    end
  end
  return setmetatable(out, getmetatable(base))
end
M.merge = merge

--- The `policy` module's table, checked: a table whose keys are sections.
--- Raises naming the bad key.
--- @return table
function M.overrides()
  local p = require("policy")
  if type(p) ~= "table" then error("policy.lua must return a table of overrides (doc/hot-reload.md)", 0) end
  for k in pairs(p) do
    if not M.SECTIONS[k] then
      local known = {}
      for s in pairs(M.SECTIONS) do known[#known + 1] = s end
      table.sort(known)
      error(("policy.%s: no such section (sections: %s)"):format(tostring(k), table.concat(known, ", ")), 0)
    end
  end
  return p
end

--- `defaults` (a knob module's table) with section `section` of the policy
--- merged over it. Every top-level key of the section must be a knob of
--- `defaults`; raises naming the first that is not. Typed as returning what
--- it is given, so a knob module keeps its class for an editor.
--- @generic T: table
--- @param section string  "routing" | "profiles" | "epp"
--- @param defaults T
--- @return T
function M.apply(section, defaults)
  local patch = M.overrides()[section]
  if patch == nil then return defaults end
  if type(patch) ~= "table" then
    error(("policy.%s: want a table of knobs, got %s"):format(section, type(patch)), 0)
  end
  for k in pairs(patch) do
    if not M.OPEN[section] and defaults[k] == nil and k ~= PATCH then
      local known = {}
      for n in pairs(defaults) do known[#known + 1] = tostring(n) end
      table.sort(known)
      error(("policy.%s.%s: no such knob (%s has: %s)"):format(section, tostring(k), M.SECTIONS[section],
        table.concat(known, ", ")), 0)
    end
  end
  return merge(defaults, patch, "policy." .. section)
end

return M
