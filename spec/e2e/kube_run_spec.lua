-- End-to-end specs of `schedsim-operator run` (runtime/kube/manager.c and
-- leaderelection.c) against the local control plane:
--   * /healthz, /readyz and /metrics are served (ephemeral ports from the log);
--   * with --leader-elect it takes the Lease; on SIGTERM it exits 0 within
--     --shutdown-timeout and releases the Lease (holderIdentity cleared), so a
--     second replica takes over at once instead of after the lease duration.
--
--   spec/cluster/run -- env SCHEDSIM_BUILD=$PWD/build-kube LUA_PATH="spec/support/?.lua;;" \
--     lua5.4 /usr/bin/busted spec/e2e/kube_run_spec.lua
local cluster = require("cluster")

local LEASE = "schedsim-operator"

local function start_operator(ns, extra)
  local p = cluster.start_operator({ scripts = false, wait = false,
    args = "--leader-elect --leader-election-namespace " .. ns .. " --shutdown-timeout 5s " .. (extra or "") })
  finally(function()
    if p:alive() then p:stop(10) end
    p:cleanup()
  end)
  return p
end

local function holder(ns)
  local lease = cluster.get("lease", LEASE, ns)
  if not lease then return nil end
  return lease.spec.holderIdentity or ""
end

local function http_get(port, path)
  local _, out, code = cluster.sh_stdout("curl -s --max-time 10 -o /dev/stdout -w '\\n%{http_code}' " ..
    "http://127.0.0.1:" .. port .. path)
  if code ~= 0 then return nil, "" end
  local body, status = out:match("^(.*)\n(%d+)$")
  return tonumber(status), body
end

describe("schedsim-operator run", function()
  local ns

  setup(function()
    if cluster.available() then ns = cluster.namespace("kube-run") end
  end)
  teardown(function()
    if cluster.available() then cluster.cleanup() end
  end)

  it("serves /healthz, /readyz and /metrics", function()
    if not cluster.available() then
      pending("needs the local control plane (spec/cluster/run)")
      return
    end
    local p = start_operator(ns, "--leader-election-id probe-endpoints")
    local started = cluster.eventually(20, "the start log line", function()
      return p:log_find("starting manager")
    end)
    local mport, hport = tonumber(started.metricsPort), tonumber(started.healthPort)
    assert.is_true(mport > 0 and hport > 0 and mport ~= hport)
    assert.equals(200, (http_get(hport, "/healthz")))
    cluster.eventually(30, "/readyz 200", function() return http_get(hport, "/readyz") == 200 end)
    local status, body = http_get(mport, "/metrics")
    assert.equals(200, status)
    assert.matches('rest_client_requests_total{code="200",method="GET"}', body, 1, true)
    assert.matches("rest_client_request_duration_seconds_bucket", body, 1, true)
    assert.equals(0, p:stop(10))
  end)

  it("--leader-elect: SIGTERM exits within the bound and releases the Lease", function()
    if not cluster.available() then
      pending("needs the local control plane (spec/cluster/run)")
      return
    end
    local a = start_operator(ns)
    local id_a = cluster.eventually(30, "replica A to hold the Lease", function()
      local h = holder(ns)
      return h ~= nil and h ~= "" and h
    end)
    -- a second replica campaigns but does not lead
    local b = start_operator(ns)
    cluster.eventually(20, "replica B to observe A", function()
      return b:log_find("leader election: new leader observed")
    end)
    cluster.sleep(2.5) -- longer than the retry period: B tried and failed at least once
    assert.equals(id_a, holder(ns))
    assert.is_nil(b:log_find("leader election: acquired the lease"))

    local t0 = cluster.now()
    a:signal("TERM")
    local code = a:wait(5 + 2) -- --shutdown-timeout 5s, plus process exit slack
    local took = cluster.now() - t0
    assert.equals(0, code, a:stderr())
    assert.is_true(took < 6, "took " .. took .. " s")
    assert.is_truthy(a:log_find("leader election: released the lease"), a:stderr())

    -- released: B takes over within a few retry periods, not after the 15 s lease
    local t1 = cluster.now()
    local id_b = cluster.eventually(10, "replica B to take the Lease", function()
      local h = holder(ns)
      return h ~= nil and h ~= "" and h ~= id_a and h
    end)
    assert.is_true(cluster.now() - t1 < 8)
    assert.are_not.equal(id_a, id_b)

    b:signal("TERM")
    assert.equals(0, b:wait(8), b:stderr())
    assert.equals("", holder(ns))
    local lease = cluster.get("lease", LEASE, ns)
    assert.is_true(lease.spec.leaseTransitions >= 1)
  end)
end)
