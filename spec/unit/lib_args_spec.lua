-- lib/args.lua: argv building, overrides and contradictions.
local fake = require("fake_k8s")

describe("lib.args", function()
  local args
  before_each(function()
    fake.install()
    args = require("lib.args")
  end)

  local gen = {
    { flag = "model", value = "random" },
    { flag = "port", value = 8200, field = "spec.decode.port" },
    { flag = "v", value = 5, field = "spec.decode.logVerbosity" },
  }

  it("parses the usual forms", function()
    local p = args.parse({ "--a=1", "--b", "2", "-c", "--d 4", "--flag", "--e", "-1", "pos" }, { flag = true })
    assert.same({ "a", "1" }, { p[1].name, p[1].value })
    assert.same({ "b", "2", "--b 2" }, { p[2].name, p[2].value, p[2].raw })
    assert.same({ "c" }, { p[3].name, p[3].value }) -- the next element is a flag: "-c" is boolean
    assert.same({ "d", "4" }, { p[4].name, p[4].value })
    assert.same({ "flag" }, { p[5].name, p[5].value })
    assert.same({ "e", "-1" }, { p[6].name, p[6].value })
    assert.same({ "", "pos" }, { p[7].name, p[7].value })
  end)

  it("builds argv: generated then user, defaults overridden", function()
    local argv, conflicts = args.build(gen, { "--model", "m1", "--seed=1" }, { field = "spec.decode.args" })
    assert.same({ "--port", "8200", "--v", "5", "--model", "m1", "--seed=1" }, argv)
    assert.same({}, conflicts)
    assert.equal(fake.array_mt, getmetatable(argv))
  end)

  it("reports a contradiction naming both fields", function()
    local _, conflicts = args.build(gen, { "--port 9000" }, { field = "spec.decode.args" })
    assert.same({ 'spec.decode.args: "--port 9000" contradicts spec.decode.port (8200)' }, conflicts)
    _, conflicts = args.build(gen, { "--port=8200", "--v", "5" }, { field = "spec.decode.args" })
    assert.same({}, conflicts)
  end)

  it("value_of finds the last value", function()
    assert.same("3", (args.value_of({ "--v", "1", "--v=3" }, { "v" })))
    assert.is_nil((args.value_of({ "--x" }, "v")))
  end)
end)
