-- k8srt.json: JSON <-> Lua with the k8s markers (runtime/core/json.c), as the
-- sandbox and the Store use it: [] stays [], {} stays {}, null is k8s.null,
-- 64-bit integers stay exact, and Kubernetes objects round-trip.
local k8srt = require("k8srt")
local json = k8srt.json

local function is_array(t)
  return getmetatable(t) == k8srt.array_mt
end

describe("k8srt.json", function()
  local deployment = [[
{"apiVersion":"apps/v1","kind":"Deployment",
 "metadata":{"name":"sim-decode","namespace":"team-a","labels":{"app":"sim"},"annotations":{},
   "managedFields":[{"manager":"kubectl","fieldsV1":{"f:spec":{}}}]},
 "spec":{"replicas":2,"selector":{},
   "template":{"metadata":{"labels":{"app":"sim"}},
     "spec":{"containers":[{"name":"vllm","image":"ghcr.io/llm-d/llm-d-inference-sim:v0.5.1",
       "args":[],"env":[{"name":"X","value":""}],"resources":{}}],"volumes":[]}}},
 "status":{"conditions":null,"observedGeneration":9007199254740993}}]]

  it("round-trips a Deployment with args: [] and selector: {}", function()
    local d = assert(json.decode(deployment))
    local c = d.spec.template.spec.containers[1]
    assert.is_true(is_array(c.args))
    assert.equal(0, #c.args)
    assert.is_nil(getmetatable(d.spec.selector))
    assert.equal(k8srt.null, d.status.conditions)
    assert.equal(math.tointeger(9007199254740993), d.status.observedGeneration)
    local text = json.encode(d)
    assert.truthy(text:find('"args":[]', 1, true))
    assert.truthy(text:find('"selector":{}', 1, true))
    assert.truthy(text:find('"volumes":[]', 1, true))
    assert.truthy(text:find('"conditions":null', 1, true))
    assert.truthy(text:find('"observedGeneration":9007199254740993', 1, true))
    assert.same(d, json.decode(text))
  end)

  it("encodes keys sorted, so equal values give equal text", function()
    local a = json.encode({ b = 1, a = { d = 2, c = 3 } })
    local b = json.encode({ a = { c = 3, d = 2 }, b = 1 })
    assert.equal('{"a":{"c":3,"d":2},"b":1}', a)
    assert.equal(a, b)
    assert.equal(k8srt.sha256(a), k8srt.sha256(b))
  end)

  it("tells arrays from objects", function()
    assert.equal("[1,2,3]", json.encode({ 1, 2, 3 }))
    assert.equal("{}", json.encode({}))
    assert.equal("[]", json.encode(k8srt.array({})))
    assert.equal("[]", json.encode(setmetatable({}, k8srt.array_mt)))
    assert.equal('{"x":null}', json.encode({ x = k8srt.null }))
  end)

  it("keeps integers and floats apart", function()
    assert.equal("[9223372036854775807,-9223372036854775808,2.0,0.1,1e+300]",
      json.encode({ math.maxinteger, math.mininteger, 4 / 2, 0.1, 1e300 }))
    local v = json.decode("[1, 1.0, 9223372036854775807]")
    assert.equal("integer", math.type(v[1]))
    assert.equal("float", math.type(v[2]))
    assert.equal(math.maxinteger, v[3])
  end)

  it("passes UTF-8 and NUL byte-exact", function()
    local s = "caf\u{e9} \u{1F600} a\0b"
    assert.equal(s, json.decode(json.encode({ s = s })).s)
    assert.equal('"a\\u0000b"', json.encode("a\0b"))
  end)

  it("names the path of values it cannot encode", function()
    local function err(v)
      local ok, msg = pcall(json.encode, v)
      assert.is_false(ok)
      return msg
    end
    local sparse = { spec = { containers = { { args = { 1, nil, 3 } } } } }
    assert.matches("spec.containers%[0%].args: sparse table", err(sparse))
    assert.matches("mixed table", err({ 1, a = 2 }))
    assert.matches("x: number NaN", err({ x = 0 / 0 }))
    assert.matches("cannot encode a function", err({ f = print }))
    assert.matches("not valid UTF%-8", err({ s = "\xff" }))
    local t = {}
    t.self = t
    assert.matches("self: cycle", err(t))
  end)

  it("returns nil and a message for bad JSON", function()
    local v, msg = json.decode('{"a":')
    assert.is_nil(v)
    assert.matches("line 1", msg)
    assert.is_nil((json.decode("[" .. string.rep("[", 300) .. string.rep("]", 301))))
  end)

  it("decodes every read into a fresh table", function()
    local a = json.decode(deployment)
    a.spec.replicas = 99
    assert.equal(2, json.decode(deployment).spec.replicas)
  end)
end)

describe("k8srt helpers", function()
  it("computes sha256", function()
    assert.equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", k8srt.sha256("abc"))
  end)

  it("builds owner label values", function()
    assert.equal("simulatordeployment.default.sim", k8srt.owner_label_value("SimulatorDeployment", "default", "sim"))
    local long = k8srt.owner_label_value("SchedulerInstall", string.rep("n", 60), string.rep("x", 60))
    assert.is_true(#long <= 63)
    assert.is_true(k8srt.is_label_value(long))
    assert.matches("^schedulerinstall%.n+%.[0-9a-f]+$", long)
  end)

  it("formats RFC 3339 times", function()
    assert.equal("2026-01-01T00:00:00Z", k8srt.rfc3339(1767225600))
  end)
end)
