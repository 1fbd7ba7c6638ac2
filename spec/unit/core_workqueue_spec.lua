-- k8srt.workqueue: the WorkQueue with a fake clock (runtime/core/workqueue.c):
-- the client-go guarantees a controller relies on, seen from Lua.
local k8srt = require("k8srt")

describe("k8srt.workqueue", function()
  it("deduplicates and never hands out a key twice at once", function()
    local q = k8srt.workqueue("t")
    assert.equal(1, q:add("ns/a"))
    assert.equal(0, q:add("ns/a"))
    assert.equal("ns/a", q:get())
    assert.equal(1, q:add("ns/a"))
    assert.is_nil(q:get())
    assert.is_true(q:done("ns/a"))
    assert.equal("ns/a", q:get())
    assert.is_true(q:done("ns/a"))
    assert.is_false(q:done("ns/a"))
  end)

  it("serves HIGH before LOW", function()
    local q = k8srt.workqueue()
    q:add("resync", "low")
    q:add("event", "high")
    assert.equal("event", q:get())
    assert.equal("resync", q:get())
  end)

  it("delays with add_after on the fake clock", function()
    local q = k8srt.workqueue("t", { now = 100 })
    q:add_after("ns/a", 30)
    assert.equal(130, q:next_deadline())
    assert.equal(0, q:advance(29.9))
    assert.is_nil(q:get())
    assert.equal(1, q:advance(0.1))
    assert.equal("ns/a", q:get())
  end)

  it("backs off exponentially and forgets", function()
    local q = k8srt.workqueue("t", { qps = 0 })
    local want = 0.005
    for _ = 1, 10 do
      assert.near(want, q:add_rate_limited("ns/a"), 1e-12)
      want = want * 2
    end
    assert.equal(10, q:num_requeues("ns/a"))
    for _ = 1, 30 do
      q:add_rate_limited("ns/a")
    end
    assert.equal(1000, q:add_rate_limited("ns/a"))
    q:forget("ns/a")
    assert.equal(0, q:num_requeues("ns/a"))
    assert.near(0.005, q:add_rate_limited("ns/a"), 1e-12)
    local st = q:stats()
    assert.equal(42, st.retries)
    assert.equal(1, st.waiting)
  end)

  it("refuses adds after shut_down", function()
    local q = k8srt.workqueue()
    q:add("a")
    q:shut_down()
    assert.equal(-1, q:add("b"))
    assert.equal("a", q:get())
    assert.is_nil(q:get())
  end)
end)
