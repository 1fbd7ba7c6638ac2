-- Two operator replicas with leader election, on the shipped RBAC (deploy/dev
-- on the local control plane):
--   * replica A runs as user `operator` (out-of-cluster identity, bound by
--     deploy/dev), replica B as the shipped ServiceAccount schedsim-operator
--     (a token, as in a pod); both hold the ClusterRole and the
--     leader-election Role in schedsim-system;
--   * only the leader writes: while A leads, the audit log shows writes by A
--     and none by B (B only reads the Lease), and B's request metrics count
--     no PATCH, POST, PUT or DELETE;
--   * SIGKILL of A (no release): B takes the Lease once it expired — not
--     earlier than the lease duration after A's last renewal, and within it
--     plus two retry periods of the kill — and finishes reconciling what
--     changed meanwhile.
-- Run: cmake/run-spec BUILD spec/e2e/leader_election_spec.lua
local cluster = require("cluster")
local fake = require("fake_k8s")

local ROOT = cluster.root
local BIN = cluster.bin
local OPKC = os.getenv("SCHEDSIM_OPERATOR_KUBECONFIG")
local NS = "schedsim-system"
local LEASE = "schedsim-operator"
local SA_USER = "system:serviceaccount:" .. NS .. ":schedsim-operator"
local LEASE_DURATION, RETRY = 15, 2 -- runtime defaults (doc/architecture.md, "Leader election")

local q = cluster.q

local function start_operator(kubeconfig)
  return cluster.start_operator({ kubeconfig = kubeconfig, wait = false,
    args = "--leader-elect --leader-election-namespace " .. q(NS) .. " --shutdown-timeout 3s" })
end

local function metrics(p)
  local started = p:log_find("starting manager")
  if not started then return nil end
  local ok, out = cluster.sh_stdout("curl -sf --max-time 10 http://127.0.0.1:" .. started.metricsPort .. "/metrics")
  return ok and out or nil
end

--- Requests counted by rest_client_requests_total for `method` (any code).
local function requests(m, method)
  local n = 0
  for v in m:gmatch('rest_client_requests_total{[^}]*method="' .. method .. '"[^}]*} (%d+)') do
    n = n + tonumber(v)
  end
  return n
end

local function lease()
  return cluster.get("leases.coordination.k8s.io", LEASE, NS)
end

--- RFC 3339 with fraction ("2026-11-29T17:00:01.123456Z") -> seconds (UTC).
local function rfc3339(s)
  local y, mo, d, h, mi, sec, frac = s:match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)%.?(%d*)Z$")
  assert(y, "not RFC 3339: " .. tostring(s))
  local days = os.time({ year = tonumber(y), month = tonumber(mo), day = tonumber(d), hour = 12 }) // 86400
  local t = days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(sec)
  return t + (frac ~= "" and tonumber("0." .. frac) or 0)
end

local function audit_mark()
  local f = io.open(os.getenv("SCHEDSIM_CLUSTER_DIR") .. "/audit.log")
  if not f then return 0 end
  local n = f:seek("end")
  f:close()
  return n
end

--- Write requests (create/update/patch/delete) by `user` after `mark`, as
--- "verb resource ns/name".
local function writes_since(mark, user, with_leases)
  local f = io.open(os.getenv("SCHEDSIM_CLUSTER_DIR") .. "/audit.log")
  if not f then return {} end
  f:seek("set", mark)
  local t = {}
  for l in f:lines() do
    if l:find(user, 1, true) then
      local e = cluster.decode(l)
      local o = e and e.objectRef or {}
      if e and e.user.username == user and (e.verb == "create" or e.verb == "update" or e.verb == "patch"
          or e.verb == "delete" or e.verb == "deletecollection")
          and (with_leases or o.resource ~= "leases") then
        t[#t + 1] = ("%s %s %s/%s"):format(e.verb, tostring(o.resource), tostring(o.namespace), tostring(o.name))
      end
    end
  end
  f:close()
  return t
end

--- A kubeconfig for the ServiceAccount (a bound token, as a pod gets).
local function sa_kubeconfig()
  local token = cluster.must("create token schedsim-operator -n " .. NS .. " --duration 1h"):gsub("%s+$", "")
  local path = os.tmpname()
  local dir = os.getenv("SCHEDSIM_CLUSTER_DIR")
  local kc = ("kubectl --kubeconfig %s config "):format(q(path))
  assert(cluster.sh(kc .. "set-cluster local --embed-certs --certificate-authority " .. q(dir .. "/pki/ca.crt")
    .. " --server " .. q(os.getenv("SCHEDSIM_APISERVER_URL"))))
  assert(cluster.sh(kc .. "set-credentials sa --token " .. q(token)))
  assert(cluster.sh(kc .. "set-context sa --cluster local --user sa"))
  assert(cluster.sh(kc .. "use-context sa"))
  return path
end

local function minimal(ns, name, replicas)
  local cr = fake.yaml_load_file(ROOT .. "/examples/simulatordeployment-minimal.yaml")[1]
  cr.metadata.namespace, cr.metadata.name = ns, name
  cr.spec.decode.replicas = replicas or cr.spec.decode.replicas
  return cr
end

local function ready(ns, name)
  local obj = cluster.get("simulatordeployments.sim.llm-d.io", name, ns)
  for _, c in ipairs(obj and obj.status and obj.status.conditions or {}) do
    if c.type == "Ready" then
      return c.status == "True" and obj.status.observedGeneration == obj.metadata.generation, c.message
    end
  end
  return false, "no Ready condition"
end

describe("leader election with the shipped RBAC", function()
  if not cluster.available() or not OPKC then
    pending("needs the local control plane (cmake/run-spec or spec/cluster/run)")
    return
  end
  if not cluster.sh("test -x " .. q(BIN)) then
    pending("needs the operator binary " .. BIN)
    return
  end

  local a, b, sakc, ns1, ns2

  setup(function()
    cluster.must("apply --server-side --force-conflicts -k " .. q(ROOT .. "/deploy/dev"))
    cluster.must("wait --for condition=Established --timeout=60s crd/simulatordeployments.sim.llm-d.io")
    cluster.kubectl("delete lease " .. LEASE .. " -n " .. NS .. " --ignore-not-found")
    sakc = sa_kubeconfig()
    ns1, ns2 = cluster.namespace("le-a"), cluster.namespace("le-b")
  end)

  teardown(function()
    for _, p in ipairs({ a, b }) do
      if p then
        p:stop(10)
        p:cleanup()
      end
    end
    if sakc then os.remove(sakc) end
    cluster.cleanup()
  end)

  it("only the leader writes; after SIGKILL the other takes over once the lease expired and reconciles", function()
    local mark0 = audit_mark()
    a = start_operator(OPKC)
    local acquired = cluster.eventually(40, "replica A to acquire the Lease", function()
      return a:log_find("leader election: acquired the lease")
    end)
    local id_a = acquired.identity
    assert.equals(id_a, lease().spec.holderIdentity)
    b = start_operator(sakc)
    cluster.eventually(30, "replica B to see A lead", function()
      return b:log_find("leader election: new leader observed")
    end)

    -- work while A leads
    local mark = audit_mark()
    cluster.apply(minimal(ns1, "sim-one"))
    cluster.eventually(60, "sim-one Ready=True", function() return ready(ns1, "sim-one") end, 0.5)
    cluster.must("patch simulatordeployments.sim.llm-d.io sim-one -n " .. ns1
      .. " --type=merge -p '{\"spec\":{\"decode\":{\"replicas\":3}}}'")
    cluster.eventually(60, "sim-one Ready=True with 3 replicas", function()
      local ok, msg = ready(ns1, "sim-one")
      return ok and msg:find("3/3", 1, true), msg
    end, 0.5)
    assert.equals(id_a, lease().spec.holderIdentity)
    assert.is_nil(b:log_find("leader election: acquired the lease"))
    assert.is_true(#writes_since(mark, "operator") > 0, "A wrote nothing")
    assert.same({}, writes_since(mark0, SA_USER, true))
    local mb = assert(metrics(b), "no /metrics from B")
    for _, method in ipairs({ "PATCH", "POST", "PUT", "DELETE" }) do
      assert.equals(0, requests(mb, method), "B sent " .. method)
    end
    assert.is_true(requests(mb, "GET") > 0)
    -- both replicas keep their caches warm and report ready
    for _, p in ipairs({ a, b }) do
      local started = p:log_find("starting manager")
      cluster.eventually(20, "/readyz", function()
        return cluster.sh("curl -sf --max-time 10 http://127.0.0.1:" .. started.healthPort .. "/readyz")
      end)
    end

    -- SIGKILL the leader: nothing is released
    local last_renew = rfc3339(lease().spec.renewTime)
    local t_kill = cluster.now()
    a:signal("KILL")
    assert.is_truthy(a:wait(5))
    local mark2 = audit_mark()
    -- changes while no replica leads
    cluster.apply(minimal(ns2, "sim-two"))
    cluster.must("patch simulatordeployments.sim.llm-d.io sim-one -n " .. ns1
      .. " --type=merge -p '{\"spec\":{\"decode\":{\"replicas\":1}}}'")

    local l = cluster.eventually(LEASE_DURATION + 4 * RETRY * 2.2 + 5, "replica B to take the Lease", function()
      local x = lease()
      return x and x.spec.holderIdentity ~= id_a and x.spec.holderIdentity ~= "" and x
    end, 0.2)
    local took = cluster.now() - t_kill
    local acquired_b = rfc3339(l.spec.acquireTime)
    print(("\n  takeover %.1f s after SIGKILL; %.1f s after A's last renewal (lease %d s, retry %d s)")
      :format(took, acquired_b - last_renew, LEASE_DURATION, RETRY))
    assert.is_truthy(b:log_find("leader election: acquired the lease"))
    assert.is_true(l.spec.leaseTransitions >= 1)
    -- not before the lease expired, and within the lease duration plus two (jittered) retry periods
    assert.is_true(acquired_b - last_renew >= LEASE_DURATION - 0.5,
      ("B took over %.1f s after A's last renewal"):format(acquired_b - last_renew))
    assert.is_true(took <= LEASE_DURATION + 2 * RETRY * 2.2 + 1, ("takeover took %.1f s"):format(took))

    -- B finishes what changed meanwhile
    cluster.eventually(60, "sim-two Ready=True", function() return ready(ns2, "sim-two") end, 0.5)
    cluster.eventually(60, "sim-one Ready=True with 1 replica", function()
      local ok, msg = ready(ns1, "sim-one")
      return ok and msg:find("1/1", 1, true), msg
    end, 0.5)
    assert.is_true(#writes_since(mark2, SA_USER) > 0, "B wrote nothing after taking over")
    assert.same({}, writes_since(mark2, "operator", true))

    -- B releases the Lease on SIGTERM
    assert.equals(0, b:stop(10), b:stderr():sub(-2000))
    assert.equals("", lease().spec.holderIdentity or "")
  end)
end)
