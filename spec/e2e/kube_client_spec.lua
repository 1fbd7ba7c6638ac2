-- End-to-end specs of the REST client (runtime/kube/restclient.c) and
-- discovery against the local control plane, driven through
-- build/tools/kubeprobe:
--   * server-side apply is idempotent: a second identical apply leaves the
--     resourceVersion unchanged; dryRun=All changes nothing;
--   * a status write (apply or update on /status) changes neither spec nor
--     generation (a tiny test CRD with the status subresource);
--   * a user without rights gets the API server's Forbidden Status, naming
--     the verb and the resource, unchanged;
--   * Events are rate-limited per object (burst 25), repeats go into a series;
--   * a kubeconfig's tls-server-name is honoured;
--   * discovery maps kinds to resources and sees CRDs;
-- and, without a server, `kubeprobe selftest` (the loop, kubeconfig parsing).
--
--   spec/cluster/run -- env SCHEDSIM_BUILD=$PWD/build-kube LUA_PATH="spec/support/?.lua;;" \
--     lua5.4 /usr/bin/busted spec/e2e/kube_client_spec.lua
local cluster = require("cluster")

local probe = cluster.tool("kubeprobe")

local CRD = [[
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.probe.schedsim.test
spec:
  group: probe.schedsim.test
  names: {plural: widgets, singular: widget, kind: Widget, listKind: WidgetList}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties: {size: {type: integer}}
          status:
            type: object
            properties:
              phase: {type: string}
              observedGeneration: {type: integer}
]]

--- Runs kubeprobe with args and the object (a table) on stdin; returns the
--- decoded first output line, the exit code and the raw output.
local function kubeprobe(args, obj, kubeconfig)
  local kc = kubeconfig and ("--kubeconfig " .. cluster.q(kubeconfig) .. " ") or ""
  local cmd = probe .. " " .. kc .. args
  local input = obj and cluster.json.encode(obj) or nil
  local tmp
  if input then
    tmp = os.tmpname()
    local f = assert(io.open(tmp, "w"))
    f:write(input)
    f:close()
    cmd = cmd .. " -f - < " .. cluster.q(tmp)
  end
  local _, out, code = cluster.sh_stdout(cmd)
  if tmp then os.remove(tmp) end
  local line = out:match("[^\n]+")
  return line and cluster.decode(line) or nil, code, out
end

local function need_cluster() return cluster.need(pending) end

describe("runtime/kube without a server", function()
  it("passes kubeprobe selftest (loop timers and ticks, kubeconfig, paths, addresses)", function()
    local ok, out = cluster.sh(probe .. " selftest")
    assert.is_true(ok, out)
    assert.matches('"selftest":"ok"', out, 1, true)
  end)
end)

describe("kube client", function()
  local ns

  setup(function()
    if not cluster.available() then return end
    ns = cluster.namespace("kube-client")
    cluster.must("apply -f -", CRD)
    cluster.must("wait --for condition=established --timeout=60s crd/widgets.probe.schedsim.test")
  end)
  teardown(function()
    if not cluster.available() then return end
    cluster.kubectl("delete crd widgets.probe.schedsim.test --wait=false")
    cluster.cleanup()
  end)

  it("server-side apply: a second identical apply leaves resourceVersion unchanged", function()
    if not need_cluster() then return end
    local obj = { apiVersion = "v1", kind = "ConfigMap",
                  metadata = { name = "ssa", namespace = ns, labels = { a = "1" } },
                  data = { k = "v" } }
    local first, code, out = kubeprobe("apply", obj)
    assert.equals(0, code, out)
    local second
    second, code, out = kubeprobe("apply", obj)
    assert.equals(0, code, out)
    assert.equals(first.metadata.resourceVersion, second.metadata.resourceVersion)
    -- owned by our field manager, through Apply
    local live = cluster.decode(cluster.must("get configmap ssa -n " .. ns .. " -o json --show-managed-fields"))
    local managers = {}
    for _, mf in ipairs(live.metadata.managedFields) do managers[mf.manager] = mf.operation end
    assert.equals("Apply", managers["schedsim-operator"])
    assert.equals(first.metadata.resourceVersion, live.metadata.resourceVersion)

    -- dryRun=All answers with the result but changes nothing
    obj.data.k = "changed"
    local dry
    dry, code, out = kubeprobe("apply --dry-run", obj)
    assert.equals(0, code, out)
    assert.equals("changed", dry.data.k)
    live = cluster.get("configmap", "ssa", ns)
    assert.equals("v", live.data.k)
    assert.equals(first.metadata.resourceVersion, live.metadata.resourceVersion)
  end)

  it("a status write changes neither spec nor generation", function()
    if not need_cluster() then return end
    local w = { apiVersion = "probe.schedsim.test/v1", kind = "Widget",
                metadata = { name = "w1", namespace = ns }, spec = { size = 1 } }
    local created = cluster.eventually(30, "the Widget kind to be served", function()
      local res, code = kubeprobe("apply", w)
      return code == 0 and res or nil, res and cluster.json.encode(res)
    end)
    assert.equals(1, created.metadata.generation)

    -- apply on /status, also trying to change spec: only status moves
    local st, code, out = kubeprobe("apply-status", {
      apiVersion = "probe.schedsim.test/v1", kind = "Widget",
      metadata = { name = "w1", namespace = ns },
      spec = { size = 5 }, status = { phase = "Ready", observedGeneration = 1 },
    })
    assert.equals(0, code, out)
    assert.equals("Ready", st.status.phase)
    assert.equals(1, st.spec.size)
    assert.equals(1, st.metadata.generation)
    assert.are_not.equal(created.metadata.resourceVersion, st.metadata.resourceVersion)

    -- update (PUT) on /status with the object just read
    local live = cluster.get("widget.probe.schedsim.test", "w1", ns)
    live.status.phase = "Done"
    live.spec.size = 7
    local upd
    upd, code, out = kubeprobe("update-status", live)
    assert.equals(0, code, out)
    assert.equals("Done", upd.status.phase)
    assert.equals(1, upd.spec.size)
    assert.equals(1, upd.metadata.generation)

    -- a spec change does bump generation (the check above means something)
    local spec
    spec, code, out = kubeprobe("apply", { apiVersion = "probe.schedsim.test/v1", kind = "Widget",
                                           metadata = { name = "w1", namespace = ns }, spec = { size = 2 } })
    assert.equals(0, code, out)
    assert.equals(2, spec.metadata.generation)
    assert.equals("Done", spec.status.phase)
  end)

  it("a user without rights gets a Forbidden error naming verb and resource", function()
    if not need_cluster() then return end
    local kc = assert(os.getenv("SCHEDSIM_OPERATOR_KUBECONFIG"), "SCHEDSIM_OPERATOR_KUBECONFIG not set")
    local obj = { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "nope", namespace = ns } }
    -- --resource: the operator user may not even read discovery's resource lists in this test
    local res, code, out = kubeprobe("apply --resource configmaps -n " .. ns, obj, kc)
    assert.equals(1, code, out)
    assert.equals(403, res.error.code)
    assert.equals("Forbidden", res.error.reason)
    assert.matches('User "operator" cannot patch resource "configmaps"', res.error.message, 1, true)
    assert.matches('in the namespace "' .. ns .. '"', res.error.message, 1, true)

    res, code, out = kubeprobe("list --api-version v1 --kind ConfigMap --resource configmaps -n " .. ns, nil, kc)
    assert.equals(1, code, out)
    assert.equals(403, res.error.code)
    assert.matches('cannot list resource "configmaps"', res.error.message, 1, true)

    -- an informer surfaces it as a backoff with the server's reason, and keeps trying
    local p = cluster.spawn(probe .. " --kubeconfig " .. cluster.q(kc) ..
      " watch --api-version v1 --kind ConfigMap --resource configmaps -n " .. ns)
    finally(function()
      if p:alive() then p:stop(5) end
      p:cleanup()
    end)
    local backoff = cluster.eventually(20, "a Forbidden backoff", function()
      return p:find(function(l) return l.type == "STATE" and l.state == "Backoff" end)
    end)
    assert.matches("Forbidden (403)", backoff.reason, 1, true)
    assert.matches('cannot list resource "configmaps"', backoff.reason, 1, true)
    assert.equals(0, p:stop())

    -- the API server's audit log agrees
    local denied = cluster.audit(function(e)
      return e.user and e.user.username == "operator" and e.verb == "patch"
        and e.responseStatus and e.responseStatus.code == 403
        and e.objectRef and e.objectRef.resource == "configmaps" and e.objectRef.namespace == ns
    end)
    assert.is_true(#denied >= 1)
  end)

  it("rate-limits Events per object (burst 25)", function()
    if not need_cluster() then return end
    cluster.must("create configmap noisy -n " .. ns)
    local res, code, out = kubeprobe("event --api-version v1 --kind ConfigMap -n " .. ns ..
      " noisy --reason ProbeTest --note hello --count 30 --distinct")
    assert.equals(0, code, out)
    assert.equals(25, res.posted)
    assert.equals(0, res.aggregated)
    assert.equals(5, res.dropped)
    cluster.eventually(20, "25 Events", function()
      local ok, o = cluster.sh_stdout("kubectl get events.events.k8s.io -n " .. ns ..
        " --field-selector reason=ProbeTest -o json")
      if not ok then return nil end
      local items = cluster.decode(o).items
      if #items ~= 25 then return nil, #items end
      local e = items[1]
      return e.regarding.name == "noisy" and e.regarding.kind == "ConfigMap"
        and e.reportingController == "schedsim-operator" and e.note:match("^hello #%d+$") ~= nil
    end)
  end)

  it("counts repeats of an Event into its series instead of posting them again", function()
    if not need_cluster() then return end
    cluster.must("create configmap repeated -n " .. ns)
    local res, code, out = kubeprobe("event --api-version v1 --kind ConfigMap -n " .. ns ..
      " repeated --reason ProbeRepeat --note same --count 4")
    assert.equals(0, code, out)
    assert.equals(1, res.posted)
    assert.equals(3, res.aggregated)
    cluster.eventually(20, "one Event with series.count 4", function()
      local ok, o = cluster.sh_stdout("kubectl get events.events.k8s.io -n " .. ns ..
        " --field-selector reason=ProbeRepeat -o json")
      if not ok then return nil end
      local items = cluster.decode(o).items
      if #items ~= 1 then return nil, #items end
      return items[1].series and items[1].series.count == 4, items[1].series
    end)
  end)

  it("honours a kubeconfig's tls-server-name (SNI and the certificate check), refusing a wrong one", function()
    if not need_cluster() then return end
    local dir = os.tmpname()
    os.remove(dir)
    assert(cluster.sh("mkdir -p " .. cluster.q(dir)))
    finally(function() cluster.sh("rm -rf " .. cluster.q(dir)) end)
    local function kubeconfig(name, server_name)
      local path = dir .. "/" .. name
      cluster.must("config view --raw --minify > " .. cluster.q(path))
      local _, cname = cluster.sh_stdout("kubectl config view --kubeconfig " .. cluster.q(path) ..
        " -o jsonpath='{.clusters[0].name}'")
      cluster.must(("config set-cluster %s --tls-server-name=%s --kubeconfig %s"):format(
        cname, server_name, cluster.q(path)))
      return path
    end
    -- the serving certificate names kubernetes.default (spec/cluster/pki.go), not the address
    local res, code, out = kubeprobe("get --api-version v1 --kind Namespace default", nil,
      kubeconfig("good", "kubernetes.default"))
    assert.equals(0, code, out)
    assert.equals("default", res.object and res.object.metadata.name or res.metadata.name)
    local _, bad_code, bad_out = kubeprobe("get --api-version v1 --kind Namespace default", nil,
      kubeconfig("bad", "wrong.example"))
    assert.are_not.equal(0, bad_code)
    assert.matches("Transport", bad_out, 1, true)
  end)

  it("discovery maps kinds to resources and sees CRDs", function()
    if not need_cluster() then return end
    local d, code, out = kubeprobe("discovery --api-version apps/v1 --kind Deployment")
    assert.equals(0, code, out)
    assert.same({ served = true, resource = "deployments", namespaced = true, status = true,
                  versions = { "v1" } }, d)
    d = kubeprobe("discovery --api-version v1 --kind Namespace")
    assert.is_false(d.namespaced)
    d = kubeprobe("discovery --api-version probe.schedsim.test/v1 --kind Widget")
    assert.equals("widgets", d.resource)
    assert.is_true(d.status)
    d, code = kubeprobe("discovery --api-version probe.schedsim.test/v9 --kind Widget")
    assert.equals(1, code)
    assert.is_false(d.served)
  end)
end)
