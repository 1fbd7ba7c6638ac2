--- Image tags and versions: the parsing the version tables (lib/epp.lua,
--- schedulerinstall/versions.lua, simulatordeployment/versions.lua) share.
--- A version is { major, minor, patch } (integers); pre-release suffixes
--- ("-rc.1") are ignored, so "v0.5.0-rc.1" compares equal to "v0.5.0".
local M = {}

--- The tag of an image reference ("repo/name:tag@sha256:..." -> "tag"), or nil.
--- @param image string|nil
--- @return string|nil
function M.image_tag(image)
  if type(image) ~= "string" then return nil end
  local ref = image:gsub("@.*$", "")
  local last = ref:match("[^/]*$")
  return last:match(":([^:]+)$")
end

--- Parses "v0.4.0", "0.7", "v0.5.0-rc.1" into { major, minor, patch }, or nil.
--- @param tag string|nil
--- @return integer[]|nil
function M.parse(tag)
  if type(tag) ~= "string" then return nil end
  local a, b, c = tag:match("^v?(%d+)%.(%d+)%.?(%d*)")
  if not a then return nil end
  return { tonumber(a), tonumber(b), tonumber(c) or 0 }
end

--- -1, 0, 1 like strcmp, for two parsed versions.
--- @param x integer[]
--- @param y integer[]
--- @return integer
function M.compare(x, y)
  for i = 1, 3 do
    if x[i] ~= y[i] then return x[i] < y[i] and -1 or 1 end
  end
  return 0
end

return M
