-- kubectl habits of the CRDs in crds/ (issue: `kubectl get llm-d`, `kubectl
-- explain`, `kubectl scale`), no cluster needed:
--   * both kinds are in the category llm-d (and schedsim);
--   * every field (each property of an object, the items of object arrays)
--     has a description, written on one line (kubectl explain wraps it) and
--     naming no repository path (doc/…, scripts/…, *.lua, *.md);
--   * SimulatorDeployment's scale subresource points at fields its schema has
--     (spec.decode.replicas, status.decode.replicas, status.decode.selector).
local k8srt = require("k8srt") -- the runtime's own YAML converter

local ROOT = os.getenv("SCHEDSIM_ROOT") or "."

local function load(rel)
  local f = assert(io.open(ROOT .. "/" .. rel, "r"))
  local s = f:read("a")
  f:close()
  return assert(k8srt.yaml.load(s, rel))[1]
end

local FILES = { "crds/sim.llm-d.io_simulatordeployments.yaml", "crds/sim.llm-d.io_schedulerinstalls.yaml" }

--- Problems of a schema node and below: missing, wrapped or path-naming descriptions.
local function check(node, path, out)
  if type(node) ~= "table" then return out end
  local d = node.description
  if path ~= "" and path ~= "metadata" then
    if type(d) ~= "string" or d == "" then
      out[#out + 1] = path .. ": no description"
    else
      if d:find("\n") then out[#out + 1] = path .. ": description wrapped by hand" end
      for _, pat in ipairs({ "doc/", "scripts/", "runtime/", "spec/", "%.lua", "%.md" }) do
        if d:find(pat) then out[#out + 1] = path .. ": description names a repository path (" .. pat .. ")" end
      end
    end
  end
  for k, v in pairs(node.properties or {}) do check(v, path == "" and k or path .. "." .. k, out) end
  if type(node.items) == "table" and node.items.type == "object" then check(node.items, path .. "[]", out) end
  return out
end

--- The schema node of a dotted path (".spec.decode.replicas"), or nil.
local function at(schema, path)
  local n = schema
  for part in path:gmatch("[^.]+") do
    n = n and n.properties and n.properties[part]
  end
  return n
end

describe("CRDs for kubectl users", function()
  for _, file in ipairs(FILES) do
    local crd = load(file)
    local kind = crd.spec.names.kind
    local version = crd.spec.versions[1]

    it(kind .. " is in the llm-d category", function()
      local cats = {}
      for _, c in ipairs(crd.spec.names.categories or {}) do cats[c] = true end
      assert.is_true(cats["llm-d"] and cats.schedsim, file .. ": categories llm-d and schedsim")
    end)

    it(kind .. ": every field has a one-line description without repository paths", function()
      local problems = check(version.schema.openAPIV3Schema, "", {})
      table.sort(problems)
      assert.same({}, problems)
    end)
  end

  it("SimulatorDeployment scales its decode stage", function()
    local crd = load(FILES[1])
    local version = crd.spec.versions[1]
    local scale = assert(version.subresources.scale, "no scale subresource")
    local schema = version.schema.openAPIV3Schema
    assert.equals(".spec.decode.replicas", scale.specReplicasPath)
    for _, p in ipairs({ scale.specReplicasPath, scale.statusReplicasPath, scale.labelSelectorPath }) do
      assert.is_not_nil(at(schema, p), FILES[1] .. ": " .. p .. " is not in the schema")
    end
    assert.equals("integer", at(schema, scale.statusReplicasPath).type)
    assert.equals("string", at(schema, scale.labelSelectorPath).type)
  end)
end)
