-- lib/conditions.lua: merge keeps lastTransitionTime, ready_summary polarity.
local fake = require("fake_k8s")
local null = fake.null

describe("lib.conditions", function()
  local conditions
  before_each(function()
    fake.install({ now = "2026-02-02T00:00:00Z" })
    conditions = require("lib.conditions")
  end)

  it("keeps lastTransitionTime when the status did not change", function()
    local prev = { { type = "Ready", status = "True", reason = "A", message = "", lastTransitionTime = "T0" },
                   { type = "Degraded", status = "False", reason = "B", message = "", lastTransitionTime = "T0" } }
    local out = conditions.merge(prev, { conditions.new("Ready", true, "Other", "m"),
                                         conditions.new("Degraded", true, "Bad", "x") }, nil, 7)
    assert.same("T0", out[1].lastTransitionTime)
    assert.same("Other", out[1].reason)
    assert.same("2026-02-02T00:00:00Z", out[2].lastTransitionTime)
    assert.same(7, out[1].observedGeneration)
    assert.equal(fake.array_mt, getmetatable(out))
  end)

  it("orders Ready, Progressing, Degraded first and drops types not set", function()
    local prev = { { type = "Old", status = "True", reason = "X", message = "", lastTransitionTime = "T0" } }
    local out = conditions.merge(prev, {
      conditions.new("EPPReady", true, "R"), conditions.new("Degraded", false, "R"),
      conditions.new("Ready", true, "R"), conditions.new("Progressing", false, "R") })
    local types = {}
    for _, c in ipairs(out) do types[#types + 1] = c.type end
    assert.same({ "Ready", "Progressing", "Degraded", "EPPReady" }, types)
  end)

  it("ready_summary is True only when nothing else is bad", function()
    local ok = conditions.ready_summary({
      conditions.new("Degraded", false, "R"), conditions.new("Progressing", false, "R"),
      conditions.new("EPPReady", true, "R") }, { reason = "AllGood" })
    assert.same({ "True", "AllGood" }, { ok.status, ok.reason })
    local bad = conditions.ready_summary({ conditions.new("Progressing", true, "Rolling", "1/2"),
                                           conditions.new("Degraded", true, "IstioNotInstalled", "no DR") })
    assert.same({ "False", "IstioNotInstalled" }, { bad.status, bad.reason })
    assert.matches("also: Progressing", bad.message)
    local unk = conditions.ready_summary({ conditions.new("PoolResolved", nil, "Waiting") })
    assert.same("Unknown", unk.status)
    local ign = conditions.ready_summary({ conditions.new("RouteAccepted", false, "X") },
      { ignore = { "RouteAccepted" } })
    assert.same("True", ign.status)
  end)

  it("a set summarizes and lists with the CR's generation", function()
    local cr = { metadata = { generation = 3 }, status = { conditions = {
      { type = "Ready", status = "False", reason = "X", message = "", lastTransitionTime = "T0" } } } }
    local cs = conditions.new_set(cr)
    cs:set("Degraded", false, "AsExpected"):set("Progressing", false, "Done")
    cs:set("Degraded", false, "AsExpected2")
    local r = cs:summarize({ reason = "Ready" })
    assert.same("True", r.status)
    local list = cs:list()
    assert.same(3, #list)
    assert.same("2026-02-02T00:00:00Z", list[1].lastTransitionTime)
    assert.same(3, list[1].observedGeneration)
    assert.same("AsExpected2", cs:get("Degraded").reason)
    local tr = conditions.transitions(cr.status.conditions, list)
    assert.same("Ready", tr[1].type)
    assert.same("False", tr[1].from)
  end)

  it("find and is_true are nil-safe", function()
    assert.is_nil(conditions.find(nil, "Ready"))
    assert.is_nil(conditions.find(null, "Ready"))
    assert.is_false(conditions.is_true({}, "Ready"))
  end)
end)
