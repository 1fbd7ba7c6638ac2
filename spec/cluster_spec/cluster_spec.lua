-- Specs for the local control plane (spec/cluster). Run inside it:
--   spec/cluster/run -- env LUA_PATH="spec/support/?.lua;;" lua5.4 /usr/bin/busted spec/cluster_spec
-- Needs KUBECONFIG, SCHEDSIM_OPERATOR_KUBECONFIG, SCHEDSIM_CLUSTER_DIR and
-- SCHEDSIM_APISERVER_URL from spec/cluster/run, and kubectl on PATH.

local shell = require("cluster") -- spec/support/cluster.lua: the shared shell helpers
local q, sh, sleep = shell.q, shell.sh, shell.sleep

local function must(cmd)
  local ok, out, code = sh(cmd)
  assert(ok, ("command failed (exit %s): %s\n%s"):format(code, cmd, out))
  return out
end

local function trim(s) return (s:gsub("^%s+", ""):gsub("%s+$", "")) end

-- eventually(timeout_s, what, fn): fn returns truthy (done) and a description
local function eventually(timeout, what, fn)
  local deadline = os.time() + timeout
  local last
  while true do
    local done, info = fn()
    if done then return done end
    last = info
    if os.time() >= deadline then
      error(("timed out after %ds waiting for %s (last: %s)"):format(timeout, what, tostring(last)), 2)
    end
    sleep(0.5)
  end
end

local function write_file(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
end

local function read_file(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

local function env(name)
  local v = os.getenv(name)
  assert(v and v ~= "", name .. " is not set; run as: spec/cluster/run -- busted spec/cluster_spec")
  return v
end

local function apply(yaml)
  local f = os.tmpname()
  write_file(f, yaml)
  local out = must("kubectl apply -f " .. q(f))
  os.remove(f)
  return out
end

local spec_dir = (debug.getinfo(1, "S").source:sub(2):match("^(.*)/[^/]*$")) or "."
local repo = trim(must("cd " .. q(spec_dir) .. "/../.. && pwd"))
local run_script = repo .. "/spec/cluster/run"
local tmpbase = os.getenv("TMPDIR") or "/tmp"

describe("local control plane", function()
  local opkubeconfig, dir, ctl

  setup(function()
    env("KUBECONFIG")
    opkubeconfig = env("SCHEDSIM_OPERATOR_KUBECONFIG")
    dir = env("SCHEDSIM_CLUSTER_DIR")
    ctl = os.getenv("SCHEDSIM_CLUSTER_CTL") or (repo .. "/spec/cluster/ctl")
    must("kubectl create namespace cluster-spec")
  end)

  teardown(function()
    sh("kubectl delete namespace cluster-spec --wait=false")
  end)

  it("serves v1.36 and has one Ready fake node", function()
    local v = must("kubectl version -o json")
    assert.truthy(v:find('"gitVersion": "v1.36.', 1, true), v)
    local ready = must("kubectl get node kwok-node-0 -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}'")
    assert.are.equal("True", trim(ready))
  end)

  it("runs a Deployment of 2 replicas to readyReplicas: 2", function()
    apply([[
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: cluster-spec
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: registry.invalid/web:1
        ports: [{containerPort: 8080}]
        readinessProbe:
          httpGet: {path: /healthz, port: 8080}
]])
    eventually(300, "deployment web readyReplicas=2", function()
      local _, out = sh("kubectl -n cluster-spec get deploy web -o jsonpath='{.status.readyReplicas}'")
      return trim(out) == "2", out
    end)
    local pods = must("kubectl -n cluster-spec get pods -l app=web"
      .. " -o jsonpath='{range .items[*]}{.spec.nodeName} {.status.phase}{\"\\n\"}{end}'")
    local n = 0
    for line in pods:gmatch("[^\n]+") do
      assert.are.equal("kwok-node-0 Running", trim(line))
      n = n + 1
    end
    assert.are.equal(2, n)
  end)

  it("garbage-collects a ConfigMap whose owner is deleted", function()
    must("kubectl -n cluster-spec create configmap owner --from-literal=a=b")
    local uid = trim(must("kubectl -n cluster-spec get configmap owner -o jsonpath='{.metadata.uid}'"))
    assert.truthy(uid:match("^[%x-]+$"), uid)
    apply(([[
apiVersion: v1
kind: ConfigMap
metadata:
  name: owned
  namespace: cluster-spec
  ownerReferences:
  - apiVersion: v1
    kind: ConfigMap
    name: owner
    uid: %s
data: {x: "z"}
]]):format(uid))
    must("kubectl -n cluster-spec get configmap owned")
    must("kubectl -n cluster-spec delete configmap owner")
    eventually(300, "configmap owned to be garbage-collected", function()
      local ok, out = sh("kubectl -n cluster-spec get configmap owned")
      return (not ok) and out:find("NotFound", 1, true), out
    end)
  end)

  it("forbids the operator user to list Secrets until a RoleBinding grants it", function()
    local cmd = "kubectl --kubeconfig " .. q(opkubeconfig) .. " -n cluster-spec get secrets"
    local ok, out = sh(cmd)
    assert.is_false(ok)
    assert.truthy(out:find("Forbidden", 1, true) or out:find("forbidden", 1, true), out)
    assert.truthy(out:find('User "operator" cannot list resource "secrets"', 1, true), out)

    apply([[
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: secret-reader, namespace: cluster-spec}
rules:
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: operator-secret-reader, namespace: cluster-spec}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: secret-reader}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: operator}
]])
    eventually(30, "operator to be allowed to list secrets", function()
      local ok2, out2 = sh(cmd)
      return ok2, out2
    end)
    -- still nothing outside the granted namespace
    local ok3 = sh("kubectl --kubeconfig " .. q(opkubeconfig) .. " -n default get secrets")
    assert.is_false(ok3)

    -- the audit log has the operator's Forbidden list (JSON lines, Metadata level)
    local audit = read_file(dir .. "/audit.log") or ""
    local found = false
    for line in audit:gmatch("[^\n]+") do
      if line:find('"username":"operator"', 1, true) and line:find('"verb":"list"', 1, true)
        and line:find('"resource":"secrets"', 1, true) and line:find('"code":403', 1, true) then
        found = true
        break
      end
    end
    assert.is_true(found, "no 403 list secrets line for user operator in " .. dir .. "/audit.log")
  end)

  it("restarts the apiserver and forces 410 Gone on old resourceVersions", function()
    must("kubectl -n cluster-spec create configmap rv-probe --from-literal=v=1")
    local list = must("kubectl get --raw /api/v1/namespaces/cluster-spec/configmaps")
    local rv = list:match('"resourceVersion":"(%d+)"') or list
    assert.truthy(rv:match("^%d+$"), rv)
    -- a watch held open across a restart is cut
    local wlog = os.tmpname()
    must("kubectl -n cluster-spec get configmaps --watch --output-watch-events >" .. q(wlog)
      .. " 2>&1 & echo $! >" .. q(wlog .. ".pid"))
    sleep(1)
    must(q(ctl) .. " restart-apiserver")
    local pid = trim(read_file(wlog .. ".pid") or "")
    eventually(60, "kubectl watch to end after the restart", function()
      return not sh("kill -0 " .. pid), pid
    end)
    must("kubectl get --raw /readyz")
    must("kubectl -n cluster-spec patch configmap rv-probe -p '{\"data\":{\"v\":\"2\"}}'")
    -- after compact, watching or listing from the old resourceVersion gets 410 Gone
    local out = must(q(ctl) .. " compact")
    assert.truthy(out:find("compacted at revision", 1, true), out)
    local base = "/api/v1/namespaces/cluster-spec/configmaps?resourceVersion=" .. rv
    local _, wout = sh("kubectl get --raw '" .. base .. "&watch=1&timeoutSeconds=3'")
    assert.truthy(wout:find("too old resource version", 1, true) or wout:find("410", 1, true), wout)
    local ok2, lout = sh("kubectl get --raw '" .. base .. "&resourceVersionMatch=Exact'")
    assert.is_false(ok2)
    assert.truthy(lout:find("Expired", 1, true) or lout:find("410", 1, true) or lout:find("compacted", 1, true), lout)
    must("kubectl -n cluster-spec get configmap rv-probe")
    os.remove(wlog)
    os.remove(wlog .. ".pid")
  end)

  it("installs a chosen CRD set on demand", function()
    local names = {
      "gateways.gateway.networking.k8s.io", "httproutes.gateway.networking.k8s.io",
      "inferencepools.inference.networking.k8s.io", "inferencepools.inference.networking.x-k8s.io",
      "inferenceobjectives.inference.networking.x-k8s.io",
      "destinationrules.networking.istio.io", "envoyfilters.networking.istio.io",
    }
    local have = {}
    local _, list = sh("kubectl get crd -o name")
    for n in list:gmatch("customresourcedefinition[^/]*/([^\n]+)") do have[n] = true end
    if not have["gateways.gateway.networking.k8s.io"] then
      must(q(ctl) .. " install-crds gateway")
    end
    must(q(ctl) .. " install-crds gateway") -- idempotent
    must("kubectl get crd gateways.gateway.networking.k8s.io")
    if have[names[3]] then
      for _, n in ipairs(names) do
        assert.is_true(have[n] == true, "missing CRD " .. n)
      end
    end
  end)

  it("runs a second instance at the same time without clashing", function()
    must("kubectl -n default create configmap outer-marker --from-literal=a=b")
    local outer_url = env("SCHEDSIM_APISERVER_URL")
    local inner = [[
set -e
test "$SCHEDSIM_APISERVER_URL" != "$OUTER_URL"
test "$SCHEDSIM_CLUSTER_DIR" != "$OUTER_DIR"
if kubectl -n default get configmap outer-marker >/dev/null 2>&1; then echo "inner sees outer-marker"; exit 1; fi
kubectl -n default create configmap inner-marker --from-literal=a=b
kubectl get node kwok-node-0 >/dev/null
echo INNER-OK
]]
    local out = must("OUTER_URL=" .. q(outer_url) .. " OUTER_DIR=" .. q(dir) .. " " .. q(run_script)
      .. " --crds none -- sh -c " .. q(inner))
    assert.truthy(out:find("INNER-OK", 1, true), out)
    local ok = sh("kubectl -n default get configmap inner-marker")
    assert.is_false(ok)
    must("kubectl -n default get configmap outer-marker")
    must("kubectl -n default delete configmap outer-marker")
  end)

  it("starts cleanly after a killed run left its state dir behind", function()
    local exe = os.getenv("SCHEDSIM_CLUSTER_EXE")
      or (trim(must(q(repo .. "/spec/cluster/build"))) .. "/schedsim-cluster")
    -- a private TMPDIR, so that other clusters starting on this machine
    -- (which also clean stale dirs) do not remove ours before we look
    local base = trim(must("mktemp -d " .. q(tmpbase .. "/cluster-spec-tmp.XXXXXX")))
    local stale = trim(must("mktemp -d " .. q(base .. "/schedsim-cluster.XXXXXX")))
    local pid = trim(must("TMPDIR=" .. q(base) .. " " .. q(exe) .. " up --dir " .. q(stale)
      .. " --crds none --die-with-parent=false >/dev/null 2>&1 </dev/null & echo $!"))
    eventually(600, "the instance to be killed to become ready", function()
      return read_file(stale .. "/ready") ~= nil, stale
    end)
    local pids = read_file(stale .. "/pids") or ""
    must("kill -9 " .. pid)
    -- its components die with it (PDEATHSIG); its dir stays behind
    for p in pids:gmatch("%d+") do
      eventually(15, "component " .. p .. " of the killed run to exit", function()
        return not sh("kill -0 " .. p), p
      end)
    end
    assert.truthy(read_file(stale .. "/lock"), "stale dir should still be there: " .. stale)

    -- the next start cleans it up and works
    local out = must("TMPDIR=" .. q(base) .. " " .. q(run_script)
      .. " --crds none -- kubectl get node kwok-node-0 -o name")
    assert.truthy(out:find("node/kwok-node-0", 1, true), out)
    assert.is_nil(read_file(stale .. "/lock"), "stale dir was not removed: " .. stale)
    local _, ps = sh("ps -eo args | grep -F " .. q(stale) .. " | grep -v grep")
    assert.are.equal("", trim(ps))
    must("rmdir " .. q(base))
  end)
end)
