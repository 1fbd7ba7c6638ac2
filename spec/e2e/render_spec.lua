-- End-to-end specs of `schedsim-operator render` (runtime/cmd/cmd_render.c)
-- against the operator on the local control plane. For every example
-- (the CRs of examples/*.yaml, one at a time: several share child names), with the
-- operator running the bundled scripts:
--   * `render -f EXAMPLE` (offline) prints the same children the operator
--     creates: the same set (apiVersion, kind, namespace, name) and every
--     rendered field equal in the live object, ignoring what only the server
--     knows (the owner reference's uid and, through it, the desired-hash);
--   * `render -f LIVE-CR` (the CR as the server holds it: uid, defaults)
--     gives exactly the objects the operator applied: every desired-hash
--     equals the live annotation;
--   * `render --observed ALL -f LIVE-CR`, the cache the operator reads dumped
--     from the cluster, prints the status the operator wrote.
-- Invalid input is covered too: not YAML, an unknown kind, and fields the CRD
-- schema rejects give exit 2 and a message naming the file and the field.
--
--   spec/cluster/run -- env SCHEDSIM_ROOT=$PWD SCHEDSIM_BIN=build/schedsim-operator \
--     LUA_PATH="spec/support/?.lua;spec/?.lua;scripts/?.lua;;" lua5.4 /usr/bin/busted spec/e2e/render_spec.lua
local cluster = require("cluster")
local fake = require("fake_k8s")

local root, bin, q = cluster.root, cluster.bin, cluster.q
local HASH = "sim.llm-d.io/desired-hash"
local OWNER = "sim.llm-d.io/owner"
local NAMESPACES = { "llm-d-sim", "llm-d-inference-scheduler", "llm-d-vllm" }

local function tmpfile(text, ext)
  local path = os.tmpname() .. (ext or ".yaml")
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  return path
end

--- render ARGS -o json: ok, { children = {...}, status = { [kind] = doc } } or error text.
local function render(args)
  local err = os.tmpname()
  local ok, out = cluster.sh_stdout(q(bin) .. " render -o json --scripts " .. q(root .. "/scripts") .. " "
    .. args .. " 2>" .. q(err))
  local f = io.open(err)
  local stderr = f and f:read("a") or ""
  if f then f:close() end
  os.remove(err)
  if not ok then return false, stderr end
  local res = { children = {}, status = {} }
  for _, o in ipairs(fake.json_decode(out).items) do
    if o.kind == "SimulatorDeployment" or o.kind == "SchedulerInstall" then
      res.status[o.kind .. "/" .. o.metadata.namespace .. "/" .. o.metadata.name] = o
    else
      res.children[#res.children + 1] = o
    end
  end
  return true, res
end

local function key_of(o)
  return o.apiVersion .. " " .. o.kind .. " " .. (o.metadata.namespace or "") .. "/" .. o.metadata.name
end

local function by_key(list)
  local t, keys = {}, {}
  for _, o in ipairs(list) do
    t[key_of(o)] = o
    keys[#keys + 1] = key_of(o)
  end
  table.sort(keys)
  return t, keys
end

--- "deployments.v1.apps" style names of the served kinds of a list of { apiVersion, kind }.
local function served_resources(kinds)
  local names, seen = {}, {}
  for _, k in ipairs(kinds) do
    local group, version = k.apiVersion:match("^(.*)/(.*)$")
    if not group then group, version = "", k.apiVersion end
    local plural = k.kind:lower() .. "s"
    local name = group == "" and plural or (plural .. "." .. version .. "." .. group)
    local path = group == "" and "/api/" .. version or "/apis/" .. group .. "/" .. version
    local ok, out = cluster.sh_stdout("kubectl get --raw " .. q(path))
    if not seen[name] and ok and out:find('"name":"' .. plural .. '"', 1, true) then
      names[#names + 1] = name
      seen[name] = true
    end
  end
  return names
end

local function get_json(args)
  local ok, out = cluster.sh_stdout("kubectl get " .. args .. " -o json")
  if not ok then return nil end
  return fake.json_decode(out)
end

--- nil when every field of `want` is in `got` with the same value (lists
--- element-wise and of equal length, null matches absent), else a message
--- naming the first path that differs.
local function subset(want, got, path)
  if want == fake.null then
    if got == nil or got == fake.null then return nil end
    return path .. ": expected null, got " .. fake.json_encode(got)
  end
  if type(want) ~= "table" then
    if want == got then return nil end
    return ("%s: expected %s, got %s"):format(path, fake.json_encode(want),
      got == nil and "nothing" or fake.json_encode(got))
  end
  if type(got) ~= "table" then
    return ("%s: expected %s, got %s"):format(path, fake.json_encode(want), tostring(got))
  end
  if fake.is_array(want) then
    if #want ~= #got then
      return ("%s: expected %d elements, got %d: %s"):format(path, #want, #got, fake.json_encode(got))
    end
    for i, x in ipairs(want) do
      local err = subset(x, got[i], ("%s[%d]"):format(path, i - 1))
      if err then return err end
    end
    return nil
  end
  local keys = {}
  for k in pairs(want) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local err = subset(want[k], got[k], path .. "." .. k)
    if err then return err end
  end
  return nil
end

local function strip_server_known(child)
  local c = fake.deep_copy(child)
  if c.metadata.annotations then c.metadata.annotations[HASH] = nil end
  for _, ref in ipairs(c.metadata.ownerReferences or {}) do ref.uid = nil end
  return c
end

describe("render (e2e)", function()
  if not cluster.available() then
    pending("needs the local control plane (spec/cluster/run)")
    return
  end

  local controllers = dofile(root .. "/scripts/controllers.lua")
  local owned, all_kinds = {}, {}
  for _, c in ipairs(controllers) do
    all_kinds[#all_kinds + 1] = c.for_
    for _, k in ipairs(c.owns) do owned[#owned + 1] = k; all_kinds[#all_kinds + 1] = k end
    for _, k in ipairs(c.watches or {}) do all_kinds[#all_kinds + 1] = k end
  end
  local op, owned_res, all_res

  setup(function()
    cluster.must("apply --server-side --force-conflicts -f " .. q(root .. "/crds"))
    cluster.must("wait --for condition=established --timeout=60s crd/simulatordeployments.sim.llm-d.io "
      .. "crd/schedulerinstalls.sim.llm-d.io")
    -- the examples' namespaces, with their grants (doc/security.md)
    cluster.must("apply -f " .. q(root .. "/examples/namespaces.yaml"))
    for _, ns in ipairs(NAMESPACES) do cluster.kubectl("create namespace " .. ns) end
    owned_res = table.concat(served_resources(owned), ",")
    all_res = table.concat(served_resources(all_kinds), ",")
    op = cluster.spawn(q(bin) .. " run --scripts " .. q(root .. "/scripts")
      .. " --metrics-bind-address 127.0.0.1:0 --health-probe-bind-address 127.0.0.1:0")
  end)

  teardown(function()
    if op then
      op:stop(15)
      op:cleanup()
    end
  end)

  -- the CR examples (examples/ also holds script ConfigMaps for hot reload)
  local cr_kinds = {}
  for _, c in ipairs(controllers) do cr_kinds[c.for_.kind] = true end
  local examples = {}
  for f in io.popen("ls " .. q(root .. "/examples")):lines() do
    local doc = f:match("%.yaml$") and fake.yaml_load_file(root .. "/examples/" .. f)[1]
    if doc and cr_kinds[doc.kind] then examples[#examples + 1] = f end
  end
  table.sort(examples)

  for _, name in ipairs(examples) do
    it("render of examples/" .. name .. " prints the objects the operator creates", function()
      local path = root .. "/examples/" .. name
      local cleanups = {} -- busted keeps one finally per test: run them all from it
      finally(function()
        for i = #cleanups, 1, -1 do cleanups[i]() end
      end)
      local cr = fake.yaml_load_file(path)[1]
      local kind, ns, crname = cr.kind, cr.metadata.namespace, cr.metadata.name
      local ok, offline = render("-f " .. q(path))
      assert(ok, offline)
      assert.is_true(#offline.children > 0)
      local owner = offline.children[1].metadata.labels[OWNER]
      local function live_children()
        local list = get_json(owned_res .. " -A -l " .. q(OWNER .. "=" .. owner))
        return list and list.items or {}
      end

      cluster.must("apply --server-side --field-manager=spec -f " .. q(path))
      cleanups[#cleanups + 1] = function()
        cluster.kubectl("delete -f " .. q(path) .. " --wait=true --timeout=60s")
        cluster.eventually(90, "the children of " .. name .. " deleted", function()
          return #live_children() == 0
        end)
      end

      -- the operator's result, once it stopped changing: every child carries
      -- the desired-hash render computes from the live CR
      local live_cr_file
      cleanups[#cleanups + 1] = function() if live_cr_file then os.remove(live_cr_file) end end
      local live, from_live = cluster.eventually(120, name .. " reconciled", function()
        local crjson = get_json(kind .. " " .. q(crname) .. " -n " .. q(ns))
        if not crjson or not crjson.status or crjson.status.observedGeneration ~= crjson.metadata.generation then
          return nil, "status not written for the generation"
        end
        if live_cr_file then os.remove(live_cr_file) end
        live_cr_file = tmpfile(fake.json_encode(crjson), ".json")
        local rok, r = render("-f " .. q(live_cr_file))
        if not rok then return nil, r end
        local want, wkeys = by_key(r.children)
        local got, gkeys = by_key(live_children())
        if table.concat(wkeys, ",") ~= table.concat(gkeys, ",") then
          return nil, "children differ: rendered " .. table.concat(wkeys, ", ")
            .. " / live " .. table.concat(gkeys, ", ")
        end
        for k, o in pairs(want) do
          local lh = (got[k].metadata.annotations or {})[HASH]
          if lh ~= o.metadata.annotations[HASH] then return nil, k .. ": desired-hash differs" end
        end
        return got, r
      end)

      -- offline render of the example file: the same set, every field equal
      local want, wkeys = by_key(offline.children)
      local lkeys = {}
      for k in pairs(live) do lkeys[#lkeys + 1] = k end
      table.sort(lkeys)
      assert.same(wkeys, lkeys)
      for k, o in pairs(want) do
        local err = subset(strip_server_known(o), live[k], k)
        assert.is_nil(err, err)
      end
      assert.equals(#offline.children, #from_live.children)

      -- with the operator's cache dumped as --observed: the status it wrote
      local dump = get_json(all_res .. " -A")
      local obs = tmpfile(fake.json_encode(dump), ".json")
      cleanups[#cleanups + 1] = function() os.remove(obs) end
      local crnow = get_json(kind .. " " .. q(crname) .. " -n " .. q(ns))
      local crfile = tmpfile(fake.json_encode(crnow), ".json")
      cleanups[#cleanups + 1] = function() os.remove(crfile) end
      local sok, withobs = render("--observed " .. q(obs) .. " -f " .. q(crfile))
      assert(sok, withobs)
      local st = withobs.status[kind .. "/" .. ns .. "/" .. crname]
      assert.same(crnow.status, st.status)
    end)
  end
end)

-- no cluster needed
describe("render: invalid input gives exit 2, naming the file and the field", function()
  local cases = {
    { "not YAML", "spec: [\n", ":2:" },
    { "an unknown kind", "apiVersion: v1\nkind: Foo\nmetadata: {name: x}\n", "unknown kind v1 Foo" },
    { "a field the CRD does not declare",
      "apiVersion: sim.llm-d.io/v1alpha1\nkind: SimulatorDeployment\nmetadata: {name: x}\n"
        .. "spec:\n  decode: {enabled: true, bogus: 1}\n", "spec.decode.bogus: unknown field" },
    { "a wrong scalar type",
      "apiVersion: sim.llm-d.io/v1alpha1\nkind: SimulatorDeployment\nmetadata: {name: x}\n"
        .. "spec:\n  decode: {enabled: true, replicas: two}\n", "spec.decode.replicas: must be integer" },
    { "a value outside the enum",
      "apiVersion: sim.llm-d.io/v1alpha1\nkind: SchedulerInstall\nmetadata: {name: x}\n"
        .. "spec:\n  routing: {backendType: Nothing}\n", "spec.routing.backendType: unsupported value" },
  }
  for _, case in ipairs(cases) do
    it(case[1], function()
      local path = tmpfile(case[2])
      local ok, err = render("-f " .. q(path))
      os.remove(path)
      assert.is_false(ok)
      assert.matches(path, err, 1, true)
      assert.matches(case[3], err, 1, true)
    end)
  end
end)
