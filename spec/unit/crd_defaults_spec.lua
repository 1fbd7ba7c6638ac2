-- The CRDs' defaults and the scripts' defaults agree. The operator reads CRs
-- the API server defaulted (crds/: `default:` in the structural schema);
-- `render`, `check` and the fixtures read them as written, and the scripts
-- fill in their own defaults (scripts/*/reconcile.lua, normalize). For every
-- example CR, the children and status `render` prints for the example as
-- written must equal those for the example with the CRD's defaults applied
-- the way the API server applies them (a property's default when it is
-- absent and its parent object present, recursively, list items included).
-- A default changed on one side only makes this fail, naming the example.
local fake = require("fake_k8s")
local cluster = require("cluster")

local ROOT = cluster.root
local q = cluster.q

local KINDS = {
  SimulatorDeployment = "crds/sim.llm-d.io_simulatordeployments.yaml",
  SchedulerInstall = "crds/sim.llm-d.io_schedulerinstalls.yaml",
}

local function schema_of(kind)
  local crd = fake.yaml_load_file(ROOT .. "/" .. KINDS[kind])[1]
  for _, v in ipairs(crd.spec.versions) do
    if v.name == "v1alpha1" then return v.schema.openAPIV3Schema end
  end
  error("no v1alpha1 in " .. KINDS[kind])
end

--- Applies the defaults of `schema` to obj in place, as the API server's
--- structural defaulting does; returns the number of defaults applied.
local function apply_defaults(obj, schema)
  local n = 0
  if type(obj) ~= "table" or type(schema) ~= "table" then return 0 end
  if schema.properties then
    for k, sub in pairs(schema.properties) do
      if obj[k] == nil and sub.default ~= nil then
        obj[k] = fake.deep_copy(sub.default)
        n = n + 1
      end
      if obj[k] ~= nil then n = n + apply_defaults(obj[k], sub) end
    end
  end
  if schema.items and fake.is_array(obj) then
    for _, el in ipairs(obj) do n = n + apply_defaults(el, schema.items) end
  end
  return n
end

local function render(cr)
  local path = os.tmpname() .. ".json"
  local f = assert(io.open(path, "w"))
  f:write(fake.json_encode(cr))
  f:close()
  local ok, out = cluster.sh_stdout(("%s render -f %s -o json --now 2026-01-01T00:00:00Z")
    :format(q(cluster.bin), q(path)))
  os.remove(path)
  return ok, out
end

describe("CRD defaults equal the scripts' defaults", function()
  if not cluster.sh("test -x " .. q(cluster.bin)) then
    pending("needs the operator binary " .. cluster.bin)
    return
  end
  local _, list = cluster.sh_stdout("ls " .. q(ROOT .. "/examples") .. "/*.yaml")
  local seen = {}
  for path in list:gmatch("[^\n]+") do
    for _, doc in ipairs(fake.yaml_load_file(path) or {}) do
      if type(doc) == "table" and KINDS[doc.kind] then
        local name = path:match("[^/]+$") .. " " .. doc.kind .. " " .. doc.metadata.name
        seen[doc.kind] = (seen[doc.kind] or 0) + 1
        it(name .. ": render is the same with the CRD's defaults applied", function()
          local defaulted = fake.deep_copy(doc)
          apply_defaults(defaulted, schema_of(doc.kind))
          local ok_a, as_written = render(doc)
          local ok_b, with_defaults = render(defaulted)
          assert(ok_a, "render failed on the example as written:\n" .. as_written)
          assert(ok_b, "render failed on the defaulted example:\n" .. with_defaults)
          -- key order follows the input's: compare the decoded documents
          assert.are.same(fake.json_decode(as_written), fake.json_decode(with_defaults))
        end)
      end
    end
  end

  it("covers both kinds, and the defaulting reaches nested fields", function()
    assert.is_true((seen.SimulatorDeployment or 0) > 0 and (seen.SchedulerInstall or 0) > 0)
    local cr = { spec = {} }
    local n = apply_defaults(cr, schema_of("SimulatorDeployment"))
    assert.is_true(n > 0, "no default in the SimulatorDeployment CRD")
  end)
end)
