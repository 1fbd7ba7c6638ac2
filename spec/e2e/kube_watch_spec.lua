-- End-to-end specs of the Reflector and Informer (runtime/kube) against the
-- local control plane, driven through build/tools/kubeprobe:
--   * a watch survives a kube-apiserver restart, and no change made while it
--     was disconnected is missed;
--   * a forced 410 Gone (etcd compaction) leads to a relist, and the cache is
--     right afterwards (including a delete only the relist can notice).
-- The watcher is frozen with SIGSTOP while the API server restarts and the
-- changes are made, so they happen while it is disconnected.
--
--   spec/cluster/run -- env SCHEDSIM_BUILD=$PWD/build-kube LUA_PATH="spec/support/?.lua;;" \
--     lua5.4 /usr/bin/busted spec/e2e/kube_watch_spec.lua
local cluster = require("cluster")

local probe = cluster.tool("kubeprobe")

--- key -> resourceVersion of every ConfigMap in ns, as the API server sees it.
local function server_state(ns)
  local ok, out = cluster.sh_stdout("kubectl get configmaps -n " .. ns .. " -o json")
  assert(ok, out)
  local t = {}
  for _, item in ipairs(cluster.decode(out).items) do
    if item.metadata.name ~= "kube-root-ca.crt" then
      t[ns .. "/" .. item.metadata.name] = item.metadata.resourceVersion
    end
  end
  return t
end

--- The watcher's cache (its DUMP line at exit), without kube-root-ca.crt.
local function cache_state(p, ns)
  local dump = assert(p:find(function(l) return l.type == "DUMP" end), "no DUMP line:\n" .. p:stdout())
  dump.items[ns .. "/kube-root-ca.crt"] = nil
  return dump.items
end

local function cm(ns, name, value)
  return cluster.json.encode({
    apiVersion = "v1", kind = "ConfigMap",
    metadata = { name = name, namespace = ns }, data = { v = value },
  })
end

local function start_watch(ns)
  local p = cluster.spawn(probe .. " watch --api-version v1 --kind ConfigMap -n " .. ns .. " --dump")
  finally(function()
    if p:alive() then p:signal("CONT") p:stop(5) end
    p:cleanup()
  end)
  cluster.eventually(30, "the informer to sync", function()
    return p:find(function(l) return l.type == "SYNCED" end)
  end)
  return p
end

local function event_with(p, typ, key, rv)
  return p:find(function(l) return l.type == typ and l.key == key and (rv == nil or l.rv == rv) end)
end

describe("kube watch", function()
  local ns

  setup(function()
    if cluster.available() then ns = cluster.namespace("kube-watch") end
  end)
  teardown(function()
    if cluster.available() then cluster.cleanup() end
  end)

  it("survives a kube-apiserver restart and misses no change made while disconnected", function()
    if not cluster.available() then
      pending("needs the local control plane (spec/cluster/run)")
      return
    end
    for _, n in ipairs({ "a", "b", "c" }) do cluster.must("apply -f -", cm(ns, n, "1")) end
    local p = start_watch(ns)
    cluster.eventually(10, "the initial objects in the cache", function()
      return event_with(p, "ADDED", ns .. "/a") and event_with(p, "ADDED", ns .. "/b")
        and event_with(p, "ADDED", ns .. "/c")
    end)

    p:signal("STOP")
    cluster.ctl("restart-apiserver")
    -- changes while the watcher is frozen (its stream is already cut)
    cluster.must("apply -f -", cm(ns, "a", "2"))
    cluster.must("delete configmap b -n " .. ns)
    cluster.must("apply -f -", cm(ns, "d", "1"))
    local want = server_state(ns)
    p:signal("CONT")

    cluster.eventually(60, "the changes made during the outage", function()
      return event_with(p, "MODIFIED", ns .. "/a", want[ns .. "/a"])
        and event_with(p, "DELETED", ns .. "/b")
        and event_with(p, "ADDED", ns .. "/d", want[ns .. "/d"])
    end)
    -- the stream was really cut and re-established
    local states = p:filter(function(l) return l.type == "STATE" end)
    assert.is_true(#states >= 3, "expected a reconnect, got:\n" .. p:stdout())
    assert.equals("Watching", states[#states].state)

    -- and it keeps watching after the restart
    cluster.must("apply -f -", cm(ns, "e", "1"))
    want = server_state(ns)
    cluster.eventually(20, "an event after the restart", function()
      return event_with(p, "ADDED", ns .. "/e", want[ns .. "/e"])
    end)
    assert.equals(0, p:stop())
    assert.same(want, cache_state(p, ns))
  end)

  it("relists after a forced 410 Gone and the cache is right afterwards", function()
    if not cluster.available() then
      pending("needs the local control plane (spec/cluster/run)")
      return
    end
    local ns2 = cluster.namespace("kube-gone")
    for _, n in ipairs({ "a", "b", "c" }) do cluster.must("apply -f -", cm(ns2, n, "1")) end
    local p = start_watch(ns2)
    cluster.eventually(10, "initial objects", function()
      return event_with(p, "ADDED", ns2 .. "/c")
    end)

    p:signal("STOP")
    cluster.ctl("compact") -- etcd compacted past our resourceVersion, apiserver restarted
    cluster.must("delete configmap b -n " .. ns2)
    cluster.must("apply -f -", cm(ns2, "a", "2"))
    cluster.must("apply -f -", cm(ns2, "f", "1"))
    local want = server_state(ns2)
    p:signal("CONT")

    local relisted = cluster.eventually(60, "a relist", function()
      return p:find(function(l) return l.type == "SYNCED" and l.relist == true end)
    end)
    -- a, c, f, and kube-root-ca.crt once the controller-manager has published it
    assert.is_true(relisted.count >= 3, "relist count " .. relisted.count)
    local why = p:find(function(l) return l.type == "STATE" and l.state == "Listing" and l.relist end)
    assert.is_truthy(why, "no relist STATE line:\n" .. p:stdout())
    assert.matches("410", why.reason)
    -- the relist's diff was notified: the delete only a relist can see, the update and the add
    assert.is_truthy(event_with(p, "DELETED", ns2 .. "/b"))
    assert.is_truthy(event_with(p, "MODIFIED", ns2 .. "/a", want[ns2 .. "/a"]))
    assert.is_truthy(event_with(p, "ADDED", ns2 .. "/f", want[ns2 .. "/f"]))
    -- c did not change: no event for it after the first ADDED
    local c_events = p:filter(function(l) return l.key == ns2 .. "/c" end)
    assert.equals(1, #c_events)

    -- the watch resumes after the relist
    cluster.must("apply -f -", cm(ns2, "g", "1"))
    want = server_state(ns2)
    cluster.eventually(20, "an event after the relist", function()
      return event_with(p, "ADDED", ns2 .. "/g", want[ns2 .. "/g"])
    end)
    assert.equals(0, p:stop())
    assert.same(want, cache_state(p, ns2))
  end)
end)
