-- k8srt.watchframe: framing of watch streams (runtime/core/watchframe.c) from
-- Lua: chunks split anywhere, bookmarks, 410 Expired, garbage.
local k8srt = require("k8srt")

local added = '{"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"5"},"spec":{"args":[]}}}\n'

describe("k8srt.watchframe", function()
  it("joins events split across chunks", function()
    for cut = 0, #added do
      local f = k8srt.watchframe()
      local e1 = f:feed(added:sub(1, cut))
      local e2 = f:feed(added:sub(cut + 1))
      local all = {}
      for _, e in ipairs(e1) do all[#all + 1] = e end
      for _, e in ipairs(e2) do all[#all + 1] = e end
      assert.equal(1, #all)
      assert.equal("ADDED", all[1].type)
      assert.equal("5", all[1].resource_version)
      assert.equal(k8srt.array_mt, getmetatable(all[1].object.spec.args))
    end
  end)

  it("decodes bookmarks and 410 errors", function()
    local f = k8srt.watchframe()
    local events = f:feed('{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"77"}}}\n' ..
      '{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"too old"}}\n')
    assert.equal(2, #events)
    assert.equal("77", events[1].resource_version)
    assert.equal(410, events[2].code)
    assert.is_true(events[2].expired)
    assert.equal("too old", events[2].message)
  end)

  it("reports garbage and keeps going", function()
    local f = k8srt.watchframe(200)
    local events, errors = f:feed("garbage\n" .. string.rep("x", 300) .. "\n" .. added)
    assert.equal(1, #events)
    assert.equal(2, #errors)
    assert.equal("json", errors[1].code)
    assert.equal("oversize", errors[2].code)
    events = f:feed('{"type":"ADDED"')
    assert.equal(0, #events)
    assert.equal(15, f:pending())
    events, errors = f:finish()
    assert.equal(0, #events)
    assert.equal("truncated", errors[1].code)
  end)
end)
