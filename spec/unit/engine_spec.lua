-- The engine (runtime/lua/engine.c): what reconcile receives, how its result
-- is validated (errors name the field), and how children are decorated and
-- classified (doc/architecture.md, the numbered list after "The reconcile
-- contract"). Runs through k8sengine in the production sandbox with the test
-- script set spec/support/testscripts.
local k8sengine = require("k8sengine")

local root = os.getenv("SCHEDSIM_ROOT") or "."
local null = k8sengine.null

local eng

local function widget(spec, meta)
  local md = { name = "w", namespace = "ns1", uid = "uid-1", generation = 2 }
  for k, v in pairs(meta or {}) do md[k] = v end
  return { apiVersion = "test.sim.llm-d.io/v1alpha1", kind = "Widget", metadata = md, spec = spec or {} }
end

local function probe_cr(code, meta)
  local md = { name = "p", namespace = "ns1", uid = "uid-p", generation = 1 }
  for k, v in pairs(meta or {}) do md[k] = v end
  return { apiVersion = "test.sim.llm-d.io/v1alpha1", kind = "Probe", metadata = md, spec = { code = code } }
end

--- Runs the probe controller with `code` as its reconciler.
local function probe(code, opts, meta)
  return eng:reconcile("probe", probe_cr(code, meta), opts)
end

local function child(r, name, ns)
  for _, c in ipairs(r.children) do
    if c.metadata.name == name and (ns == nil or c.metadata.namespace == ns) then return c end
  end
  return nil
end

local function action(r, name)
  for _, a in ipairs(r.actions) do
    if a.name == name then return a end
  end
  return nil
end

local function condition(r, type)
  for _, c in ipairs(r.status.conditions or {}) do
    if c.type == type then return c end
  end
  return nil
end

local CM = [[{ apiVersion = "v1", kind = "ConfigMap", metadata = { name = "%s" } }]]

describe("engine", function()
  setup(function()
    local problems
    eng, problems = k8sengine.load(root .. "/spec/support/testscripts")
    assert.same({}, problems)
  end)
  teardown(function() eng:close() end)

  describe("loading", function()
    it("reads controllers.lua", function()
      local cs = eng:controllers()
      assert.equals(2, #cs)
      assert.same({ apiVersion = "test.sim.llm-d.io/v1alpha1", kind = "Widget" }, cs[1].for_)
      assert.equals("widget.reconcile.map_secret", cs[1].watches[1].map)
      assert.is_true(cs[1].valid and cs[2].valid)
      assert.matches("^sha256:%x+$", eng:revision())
    end)

    it("reports invalid declarations and reconcilers with the file", function()
      local e2, problems = k8sengine.load(nil, { overlay = {
        ["controllers.lua"] = [[return {
          { name = "Bad Name", for_ = { apiVersion = "x/v1", kind = "X" }, module = "m" },
          { name = "ok", for_ = { apiVersion = "x/v1", kind = "Y" }, module = "nomod", owns = { { kind = "A" } } },
          { name = "noexport", for_ = { apiVersion = "x/v1", kind = "Z" }, module = "m", typo = 1 },
          { name = "fine", for_ = { apiVersion = "x/v1", kind = "W" }, module = "m2" },
        }]],
        ["m.lua"] = "return {}",
        ["m2.lua"] = "local M = {} function M.reconcile() return {} end return M",
        ["broken.lua"] = "local x = = 1",
      } })
      local text = table.concat(problems, "\n")
      assert.matches("overlay:broken.lua:1:", text, 1, true)
      assert.matches("controllers.lua: [1].name: must be a lower-case name", text, 1, true)
      assert.matches("controllers.lua: ok.module: no module nomod in the script set", text, 1, true)
      assert.matches("controllers.lua: ok.owns[1].apiVersion: must be a string", text, 1, true)
      assert.matches("controllers.lua: noexport.typo: unknown field", text, 1, true)
      local cs = e2:controllers()
      assert.equals(1, #cs)
      assert.equals("fine", cs[1].name)
      e2:close()
      local e3, p3 = k8sengine.load(nil, { overlay = {
        ["controllers.lua"] = [[return { { name = "a", for_ = { apiVersion = "x/v1", kind = "A" }, module = "m" } }]],
        ["m.lua"] = "return {}",
      } })
      assert.matches("overlay:m.lua: module m does not export a function reconcile", p3[1], 1, true)
      assert.is_false(e3:controllers()[1].valid)
      e3:close()
    end)

    it("an overlay replaces a module of the directory and changes the revision", function()
      local e2 = k8sengine.load(root .. "/spec/support/testscripts", { overlay = {
        ["widget.reconcile.lua"] = [[local M = {}
          function M.reconcile() return { status = { overlaid = true } } end
          return M]],
      } })
      assert.is_true(e2:reconcile("widget", widget()).status.overlaid)
      assert.are_not.equal(eng:revision(), e2:revision())
      e2:close()
    end)
  end)

  describe("reconcile receives", function()
    it("the CR, observed children by Kind.apiVersion and ns/name, and ctx", function()
      local r = probe([[
        local cr, observed, ctx = ...
        local keys = {}
        for kind, objs in pairs(observed.children) do
          for key in pairs(objs) do keys[#keys + 1] = kind .. " " .. key end
        end
        table.sort(keys)
        return { status = { name = cr.metadata.name, keys = table.concat(keys, ","),
          rev = ctx.script_revision, finalizing = ctx.finalizing, now = ctx.now } }]],
        { now = "2026-05-01T00:00:00Z", observed = {
          { apiVersion = "v1", kind = "ConfigMap",
            metadata = { name = "mine", namespace = "other", labels = { ["sim.llm-d.io/owner"] = "probe.ns1.p" } } },
          { apiVersion = "v1", kind = "ConfigMap",
            metadata = { name = "foreign", namespace = "ns1", labels = { ["sim.llm-d.io/owner"] = "probe.ns1.q" } } },
          { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "unlabelled", namespace = "ns1" } },
        } })
      assert.is_nil(r.error)
      assert.equals("p", r.status.name)
      assert.equals("ConfigMap.v1 other/mine", r.status.keys)
      assert.equals(eng:revision(), r.status.rev)
      assert.is_false(r.status.finalizing)
      assert.equals("2026-05-01T00:00:00Z", r.status.now)
    end)

    it("an empty table for every owns kind", function()
      local r = probe([[local _, observed = ...
        return { status = { t = type(observed.children["ConfigMap.v1"]) } }]])
      assert.equals("table", r.status.t)
    end)

    it("k8s.cache reads only declared kinds; an unserved kind reads as absent", function()
      local obs = { observed = {
        { apiVersion = "v1", kind = "Secret", metadata = { name = "s", namespace = "ns1" } } } }
      local r = probe([[return { status = { s = k8s.cache.get("v1", "Secret", "ns1", "s") ~= nil } }]], obs)
      assert.matches("k8s.cache.get: v1 Secret is not declared", r.error, 1, true)
      r = eng:reconcile("widget", widget(), obs)
      assert.is_nil(r.error)
      local w = eng:reconcile("widget", widget({ count = 1 }), {
        observed = obs.observed, without_kinds = { "v1/Secret" } })
      assert.is_nil(w.error)
    end)

    it("k8s.cache.list sorted by namespace/name, filtered by namespace and labels", function()
      local e2 = k8sengine.load(nil, { overlay = {
        ["controllers.lua"] = [[return { { name = "l", for_ = { apiVersion = "x.io/v1", kind = "L" },
          module = "l", watches = { { apiVersion = "v1", kind = "Secret" } } } }]],
        ["l.lua"] = [[local M = {}
          function M.reconcile(cr)
            local function names(list)
              local t = {}
              for _, o in ipairs(list) do t[#t + 1] = o.metadata.namespace .. "/" .. o.metadata.name end
              return table.concat(t, ",")
            end
            return { status = {
              all = names(k8s.cache.list("v1", "Secret")),
              b = names(k8s.cache.list("v1", "Secret", { namespace = "b" })),
              lab = names(k8s.cache.list("v1", "Secret", { labels = { app = "x" } })),
              one = k8s.cache.get("v1", "Secret", "a", "z").metadata.name,
              none = k8s.cache.get("v1", "Secret", "a", "nope") == nil,
              served = k8s.discovery.served("v1", "Secret"),
              versions = table.concat(k8s.discovery.versions("", "Secret"), ","),
            } }
          end
          return M]],
      } })
      local function s(ns, name, labels)
        return { apiVersion = "v1", kind = "Secret", metadata = { namespace = ns, name = name, labels = labels } }
      end
      local r = e2:reconcile("l", { apiVersion = "x.io/v1", kind = "L", metadata = { name = "l", namespace = "a" } },
        { observed = { s("b", "y"), s("a", "z", { app = "x" }), s("b", "a", { app = "x" }) } })
      assert.is_nil(r.error)
      r.status.scriptRevision = nil
      assert.same({ all = "a/z,b/a,b/y", b = "b/a,b/y", lab = "a/z,b/a", one = "z", none = true,
        served = true, versions = "v1" }, r.status)
      e2:close()
    end)

    it("a map function turns a watched object into CR keys", function()
      local keys = eng:map("widget", 1, { apiVersion = "v1", kind = "Secret",
        metadata = { name = "s", namespace = "ns1", labels = { widget = "w" } } })
      assert.same({ "ns1/w" }, keys)
      assert.same({}, eng:map("widget", 1, { apiVersion = "v1", kind = "Secret", metadata = { name = "s" } }))
    end)
  end)

  describe("decorates children", function()
    local r
    setup(function()
      r = eng:reconcile("widget", widget({ count = 1, targetNamespace = "other" }))
      assert.is_nil(r.error)
    end)

    it("with the managed-by and owner labels, keeping the script's", function()
      local labels = child(r, "w-1").metadata.labels
      assert.equals("schedsim-operator", labels["app.kubernetes.io/managed-by"])
      assert.equals("widget.ns1.w", labels["sim.llm-d.io/owner"])
      assert.equals("w-1", labels["app.kubernetes.io/name"])
    end)

    it("with the CR's namespace by default", function()
      assert.equals("ns1", child(r, "w-1").metadata.namespace)
    end)

    it("with a controller ownerReference in the CR's namespace only", function()
      assert.same({ { apiVersion = "test.sim.llm-d.io/v1alpha1", kind = "Widget", name = "w", uid = "uid-1",
        controller = true, blockOwnerDeletion = true } }, child(r, "w-1").metadata.ownerReferences)
      assert.is_nil(child(r, "w-remote").metadata.ownerReferences)
    end)

    it("with the desired-hash of the canonical JSON", function()
      local h = child(r, "w-1").metadata.annotations["sim.llm-d.io/desired-hash"]
      assert.matches("^%x+$", h)
      assert.equals(64, #h)
      local again = eng:reconcile("widget", widget({ count = 1, targetNamespace = "other" }))
      assert.equals(h, child(again, "w-1").metadata.annotations["sim.llm-d.io/desired-hash"])
      local changed = eng:reconcile("widget", widget({ count = 1, payload = "x" }))
      assert.are_not.equal(h, child(changed, "w-1").metadata.annotations["sim.llm-d.io/desired-hash"])
    end)

    it("a script-set desired-hash annotation is replaced", function()
      local r2 = probe(string.format([[return { children = { { apiVersion = "v1", kind = "ConfigMap",
        metadata = { name = "c", annotations = { ["sim.llm-d.io/desired-hash"] = "forged" } } } } }]]))
      assert.are_not.equal("forged", r2.children[1].metadata.annotations["sim.llm-d.io/desired-hash"])
    end)

    it("hashing a long owner label value", function()
      local long = string.rep("n", 70)
      local r2 = eng:reconcile("widget", widget({ count = 1 }, { name = long }))
      local v = r2.children[1].metadata.labels["sim.llm-d.io/owner"]
      assert.is_true(#v <= 63)
      assert.matches("^widget%.ns1%.n+%.%x%x%x%x%x%x%x%x%x%x$", v)
    end)
  end)

  describe("classifies children", function()
    it("apply when missing or changed, unchanged when the hash matches, prune the rest", function()
      local first = eng:reconcile("widget", widget({ count = 2 }))
      local observed = {}
      for _, c in ipairs(first.children) do observed[#observed + 1] = c end
      observed[#observed + 1] = { apiVersion = "v1", kind = "ConfigMap",
        metadata = { name = "w-9", namespace = "ns1", labels = { ["sim.llm-d.io/owner"] = "widget.ns1.w" } } }
      observed[2].metadata.annotations["sim.llm-d.io/desired-hash"] = "old"
      local r = eng:reconcile("widget", widget({ count = 2 }), { observed = observed })
      assert.equals("unchanged", action(r, "w-1").action)
      assert.equals("apply", action(r, "w-2").action)
      assert.same({ { apiVersion = "v1", kind = "ConfigMap", namespace = "ns1", name = "w-9" } }, r.prune)
    end)

    it("conflict for an object without our owner label: Ready=False Conflict naming it", function()
      local r = eng:reconcile("widget", widget({ count = 1 }), { observed = {
        { apiVersion = "v1", kind = "ConfigMap",
          metadata = { name = "w-1", namespace = "ns1", labels = { ["sim.llm-d.io/owner"] = "widget.ns1.x" } } } } })
      assert.equals("conflict", action(r, "w-1").action)
      assert.equals("widget.ns1.x", action(r, "w-1").owner)
      local ready = condition(r, "Ready")
      assert.same({ "False", "Conflict" }, { ready.status, ready.reason })
      assert.matches("ConfigMap ns1/w-1 exists and is owned by widget.ns1.x", ready.message, 1, true)
      assert.same({}, r.prune)
    end)
  end)

  describe("status", function()
    it("gets observedGeneration and scriptRevision", function()
      local r = eng:reconcile("widget", widget())
      assert.equals(2, r.status.observedGeneration)
      assert.equals(eng:revision(), r.status.scriptRevision)
      assert.is_true(r.status_changed)
    end)

    it("is not written when it equals the CR's", function()
      local r = eng:reconcile("widget", widget(), { now = "2026-01-01T00:00:00Z" })
      local cr = widget()
      cr.status = r.status
      local again = eng:reconcile("widget", cr, { now = "2026-02-01T00:00:00Z" })
      assert.is_false(again.status_changed)
    end)

    it("a script error: Ready=False ReconcileError with file:line, nothing applied", function()
      local r = eng:reconcile("widget", widget({ fail = "boom" }), { observed = {
        { apiVersion = "v1", kind = "ConfigMap",
          metadata = { name = "w-9", namespace = "ns1", labels = { ["sim.llm-d.io/owner"] = "widget.ns1.w" } } } } })
      assert.equals("runtime", r.error_kind)
      local ready = condition(r, "Ready")
      assert.same({ "False", "ReconcileError" }, { ready.status, ready.reason })
      assert.matches("^widget/reconcile.lua:%d+: asked to fail: boom$", ready.message)
      assert.same({}, r.children)
      assert.same({}, r.prune)
      assert.is_true(r.status_changed)
    end)

    it("k8s.terminal: Ready=False InvalidSpec", function()
      local r = eng:reconcile("widget", widget({ invalid = "x" }))
      assert.equals("terminal", r.error_kind)
      assert.equals("InvalidSpec", condition(r, "Ready").reason)
      assert.matches("^widget/reconcile.lua:%d+: spec.invalid: x$", condition(r, "Ready").message)
    end)

    it("keeps lastTransitionTime of an unchanged condition", function()
      local cr = widget({ fail = "x" })
      cr.status = { conditions = { { type = "Ready", status = "False", reason = "Old", message = "",
        lastTransitionTime = "2020-01-01T00:00:00Z" } } }
      local r = eng:reconcile("widget", cr)
      assert.equals("2020-01-01T00:00:00Z", condition(r, "Ready").lastTransitionTime)
    end)
  end)

  describe("result validation names the field", function()
    local cases = {
      { "return 42", "result: reconcile must return a table, got number" },
      { "return { requeue = true }", "result.requeue: unknown field" },
      { "return { children = 'x' }", "result.children: must be a list" },
      { "return { children = { { kind = 'ConfigMap', metadata = { name = 'a' } } } }",
        "result.children[0].apiVersion: must be a non-empty string" },
      { "return { children = { " .. CM:format("a") .. ", { apiVersion = 'v1', kind = 'ConfigMap', metadata = {} } } }",
        "result.children[1].metadata.name: must be a non-empty string" },
      { "return { children = { { apiVersion = 'v1', kind = 'ConfigMap', metadata = { name = 'a', namespace = 3 } } } }",
        "result.children[0].metadata.namespace: must be a string" },
      { "return { children = { { apiVersion = 'apps/v1', kind = 'Deployment', metadata = { name = 'a' } } } }",
        "result.children[0]: apps/v1 Deployment is not in owns of controller probe" },
      { "return { children = { " .. CM:format("a") .. ", " .. CM:format("a") .. " } }",
        "result.children[1]: duplicate of children[0] (ConfigMap ns1/a)" },
      { "return { children = { { apiVersion = 'v1', kind = 'ConfigMap', metadata = { name = 'a' }, " ..
        "data = { x = function() end } } } }",
        "result.children[0].data.x:" },
      { "return { status = 'ok' }", "result.status: must be a table" },
      { "return { requeue_after = -1 }", "result.requeue_after: must be a positive number of seconds" },
      { "return { requeue_after = '5' }", "result.requeue_after: must be a positive number of seconds" },
      { "return { events = { { type = 'Info', reason = 'X', message = 'm' } } }",
        "result.events[0].type: must be \"Normal\" or \"Warning\"" },
      { "return { events = { { type = 'Normal', reason = 'not camel', message = 'm' } } }",
        "result.events[0].reason: must be a CamelCase string" },
      { "return { finalized = 'yes' }", "result.finalized: must be a boolean" },
    }
    for _, case in ipairs(cases) do
      it(case[2], function()
        local r = probe(case[1])
        assert.equals("result", r.error_kind)
        assert.matches("probe/reconcile.lua: " .. case[2], r.error, 1, true)
        assert.equals("ReconcileError", condition(r, "Ready").reason)
      end)
    end

    it("a child of a kind the server does not serve", function()
      local r = probe("return { children = { " .. CM:format("a") .. " } }", { without_kinds = { "v1/ConfigMap" } })
      assert.matches("result.children[0]: v1 ConfigMap is not served by the API server", r.error, 1, true)
    end)

    it("accepts requeue_after, events and an empty list of children", function()
      local r = probe("return { children = k8s.array(), requeue_after = 2.5, " ..
        "events = { { type = 'Warning', reason = 'Slow', message = 'm' } } }")
      assert.is_nil(r.error)
      assert.equals(2.5, r.requeue_after)
      assert.same({ { type = "Warning", reason = "Slow", message = "m" } }, r.events)
    end)
  end)

  describe("finalizing", function()
    it("passes ctx.finalizing, applies nothing and prunes every observed child", function()
      local cr = widget({ count = 2 },
        { deletionTimestamp = "2026-01-01T00:00:00Z", finalizers = { "sim.llm-d.io/cleanup" } })
      local r = eng:reconcile("widget", cr, { observed = {
        { apiVersion = "v1", kind = "ConfigMap",
          metadata = { name = "w-1", namespace = "ns1", labels = { ["sim.llm-d.io/owner"] = "widget.ns1.w" } } },
        { apiVersion = "v1", kind = "ConfigMap",
          metadata = { name = "w-remote", namespace = "other", labels = { ["sim.llm-d.io/owner"] = "widget.ns1.w" } } },
      } })
      assert.is_nil(r.error)
      assert.is_true(r.finalizing)
      assert.is_true(r.finalized)
      assert.same({}, r.children)
      assert.equals(2, #r.prune)
      assert.is_false(r.status_changed)
      assert.equals("finalizing", r.logs[1].msg)
      assert.equals(2, r.logs[1].children)
    end)

    it("finalized = false makes the runtime wait", function()
      local cr = widget({ holdFinalizer = true }, { deletionTimestamp = "2026-01-01T00:00:00Z" })
      assert.is_false(eng:reconcile("widget", cr).finalized)
    end)
  end)

  describe("k8s module", function()
    it("k8s.log records carry the fields, tables as JSON", function()
      local r = probe([[k8s.log.warn("hello", { n = 1, f = 1.5, b = true, s = "x", t = { a = k8s.array({ 1 }) } })
        k8s.log.error("plain")
        return {}]])
      assert.same({ level = "warn", msg = "hello", n = 1, f = 1.5, b = true, s = "x", t = { a = { 1 } } }, r.logs[1])
      assert.equals("error", r.logs[2].level)
    end)

    it("k8s.json round-trips the markers; decode failures are nil, err", function()
      assert.equals('{"a":[],"b":{},"c":null}',
        eng:eval("return k8s.json.encode({ a = k8s.array(), b = {}, c = k8s.null })"))
      assert.is_true(eng:eval([[local v = k8s.json.decode('{"a":[],"n":null}')
        return getmetatable(v.a) == k8s.array_mt and v.n == k8s.null]]))
      assert.is_true(eng:eval([[local v, err = k8s.json.decode('{bad')
        return v == nil and err.reason == "InvalidJSON" and err.code == 0 and #err.message > 0]]))
      assert.matches("k8s.json.encode:", (select(2, eng:eval("return k8s.json.encode({ f = function() end })"))))
    end)

    it("k8s.yaml.encode, k8s.sha256, k8s.now", function()
      assert.equals("a: 1\nb:\n- x\n", eng:eval("return k8s.yaml.encode({ a = 1, b = { 'x' } })"))
      assert.equals("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        eng:eval("return k8s.sha256('')"))
      assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", eng:eval("return k8s.now()"))
      assert.equals("2026-07-01T00:00:00Z",
        probe("return { status = { now = k8s.now() } }", { now = "2026-07-01T00:00:00Z" }).status.now)
    end)

    it("misuse raises", function()
      assert.matches("bad argument #1 to 'get'", (select(2, eng:eval("return k8s.cache.get({})"))))
      assert.matches("bad argument #3 to 'list'",
        (probe("return { status = { x = #k8s.cache.list('v1', 'ConfigMap', { nope = 1 }) } }").error))
      assert.matches("bad argument #1 to 'terminal'", (select(2, eng:eval("k8s.terminal()"))))
    end)

    it("k8s.null and k8s.array", function()
      assert.equals(null, eng:eval("return k8s.null"))
      assert.is_true(eng:eval("local t = k8s.array({ 1 }) return getmetatable(t) == k8s.array_mt"))
    end)
  end)
end)
