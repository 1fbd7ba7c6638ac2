-- k8srt.store: the informer cache's Store and indexes (runtime/core/store.c)
-- seen from Lua: events, managedFields removal, indexes and label selection,
-- relists, fresh tables on every read, and packed objects reading back as
-- they were sent.
local k8srt = require("k8srt")

local function cm(ns, name, rv, labels, owner_uid)
  return {
    apiVersion = "v1",
    kind = "ConfigMap",
    metadata = {
      name = name,
      namespace = ns,
      resourceVersion = rv,
      labels = labels,
      ownerReferences = owner_uid and { { apiVersion = "sim.llm-d.io/v1alpha1", kind = "SchedulerInstall",
        name = "si", uid = owner_uid, controller = true } } or nil,
      managedFields = { { manager = "kubectl" } },
    },
    data = { k = "v" },
  }
end

local function names(list)
  local out = {}
  for i, o in ipairs(list) do
    out[i] = (o.metadata.namespace or "") .. "/" .. o.metadata.name
  end
  return table.concat(out, ",")
end

describe("k8srt.store", function()
  local s
  before_each(function()
    s = k8srt.store()
  end)

  it("reports ADDED, UNCHANGED, UPDATED", function()
    assert.equal("ADDED", s:upsert(cm("a", "x", "1")))
    assert.equal("UNCHANGED", s:upsert(cm("a", "x", "1")))
    assert.equal("UPDATED", s:upsert(cm("a", "x", "2")))
    assert.is_nil((s:upsert({ metadata = {} })))
    assert.equal(1, s:len())
  end)

  it("stores objects without managedFields and decodes fresh tables", function()
    s:upsert(cm("a", "x", "1", { app = "p" }, "uid-1"))
    local o = s:get("a/x")
    assert.is_nil(o.metadata.managedFields)
    assert.equal("v", o.data.k)
    o.data.k = "changed"
    assert.equal("v", s:get("a/x").data.k)
    local m = s:meta("a/x")
    assert.equal("a", m.namespace)
    assert.equal("1", m.resource_version)
    assert.equal("p", m.labels.app)
    assert.equal("uid-1", m.owners[1].uid)
    assert.is_true(m.owners[1].controller)
  end)

  it("accepts JSON text and injects apiVersion/kind for list items", function()
    local d = k8srt.store("apps/v1", "Deployment")
    d:upsert('{"metadata":{"name":"d","namespace":"n"},"spec":{"selector":{},"template":{"spec":{"containers":[]}}}}')
    local o = d:get("n/d")
    assert.equal("apps/v1", o.apiVersion)
    assert.equal("Deployment", o.kind)
    assert.equal('{"selector":{},"template":{"spec":{"containers":[]}}}', k8srt.json.encode(o.spec))
  end)

  it("lists sorted, by namespace, by index and by labels", function()
    s:upsert(cm("b", "y", "1", { app = "p", tier = "web" }, "o1"))
    s:upsert(cm("a", "z", "1", { app = "p" }, "o1"))
    s:upsert(cm("a", "x", "1", { app = "q", tier = "web" }, "o2"))
    assert.equal("a/x,a/z,b/y", names(s:list()))
    assert.equal("a/x,a/z", names(s:list("a")))
    assert.equal("a/z,b/y", names(s:by_index("owner-uid", "o1")))
    assert.equal("a/x,a/z", names(s:by_index("namespace", "a")))
    assert.equal("a/x,b/y", names(s:by_index("label:tier", "web")))
    assert.equal("a/z,b/y", names(s:select({ app = "p" })))
    assert.equal("b/y", names(s:select({ app = "p", tier = "web" })))
    assert.equal("a/z", names(s:select({ app = "p" }, "a")))
    assert.equal("", names(s:select({ app = "none" })))
    assert.has_error(function() s:by_index("nope", "x") end)
    assert.is_true(s:delete("a/z"))
    assert.is_false(s:delete("a/z"))
    assert.equal("b/y", names(s:by_index("owner-uid", "o1")))
  end)

  it("replaces on relist and reports deletions", function()
    s:upsert(cm("a", "x", "1"))
    s:upsert(cm("a", "y", "1"))
    local events, skipped = s:replace(k8srt.array({ cm("a", "x", "1"), cm("a", "z", "1") }))
    assert.equal(0, skipped)
    local got = {}
    for i, e in ipairs(events) do
      got[i] = e.type .. ":" .. e.key
    end
    assert.equal("UNCHANGED:a/x,ADDED:a/z,DELETED:a/y", table.concat(got, ","))
    assert.equal("a/x,a/z", names(s:list()))
  end)

  it("gives a script the object as sent, minus managedFields, when it keeps it packed", function()
    local function deployment(i)
      local c = cm("team-" .. i, "sim-decode", tostring(100 + i),
        { ["app.kubernetes.io/name"] = "sim-" .. i, ["llm-d.ai/role"] = "decode" }, "uid-" .. i)
      c.apiVersion, c.kind, c.data = "apps/v1", "Deployment", nil
      c.spec = { replicas = 1, selector = { matchLabels = { ["llm-d.ai/role"] = "decode" } },
        template = { spec = { containers = k8srt.json.decode(
          '[{"name":"vllm","image":"ghcr.io/llm-d/llm-d-inference-sim:v0.5.1","args":["--port","8000"],'
          .. '"ports":[{"containerPort":8000,"protocol":"TCP"}],"resources":{}}]') } } }
      c.status = { conditions = k8srt.json.decode('[{"type":"Available","status":"True"}]'), empty = {} }
      return c
    end
    for i = 1, 20 do s:upsert(deployment(i)) end
    local st = s:stats()
    assert.is_true(st.packed_bytes * 4 < st.json_bytes, "texts are kept packed")
    assert.is_true(st.dict_bytes > 0, "against a dictionary")
    local want = deployment(7)
    want.metadata.managedFields = nil
    local got = s:get("team-7/sim-decode")
    assert.same(want, got)
    -- JSON's [] and {} survive: the same text as the input's
    assert.equal(k8srt.json.encode(want), k8srt.json.encode(got))
  end)

  it("keeps a typical object small", function()
    for i = 1, 200 do
      s:upsert(cm("team-" .. (i % 5), "cm-" .. i, tostring(i), { ["app.kubernetes.io/name"] = "x" .. i }, "u" .. i))
    end
    local st = s:stats()
    assert.equal(200, st.objects)
    assert.is_true((st.object_bytes + st.index_bytes) / st.objects < 3072)
  end)
end)
