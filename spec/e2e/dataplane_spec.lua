-- needs: dataplane
-- The real data path on the local control plane (spec/cluster/run --dataplane,
-- which cmake/run-spec uses for spec files whose first line is the one above):
-- the examples are applied with the operator running, the simulator and EPP
-- pods run as real processes (pod runner), and OpenAI-style requests go
-- through the local gateway:
--   (a) the proxy-Service path serves over all decode pods;
--   (b) the InferencePool path goes through the EPP: the gateway forwards to
--       the endpoint the EPP picked, a pool member; the EPP counts the
--       requests; a repeated prompt sticks to one pod, distinct prompts spread;
--   (c) scaling the decode stage: the EPP picks from the new pod once it is
--       ready, and no request fails on the way;
--   (e) the EPP's /metrics answers a ServiceAccount token (it failed with 401
--       before the scripts turned --metrics-endpoint-auth off).
-- Every request is counted: sent = answered + failed, and failed must be 0.
-- Without the data plane (no unshare privilege, or the build failed) the
-- cases are pending with the reason.
local cluster = require("cluster")
local q, sh, must = cluster.q, cluster.sh, cluster.must

local ROOT = cluster.root
local SCHED, SIM = "llm-d-inference-scheduler", "llm-d-sim"
local GW = "infra-inference-scheduling-inference-gateway"

local function reason()
  if not cluster.available() then return "no local control plane" end
  if os.getenv("SCHEDSIM_DATAPLANE") ~= "1" then
    return "no data plane: " .. (os.getenv("SCHEDSIM_DATAPLANE_REASON") or "not started with --dataplane")
  end
  local served = os.getenv("SCHEDSIM_DATAPLANE_SERVED") or ""
  if not (served:find("llm-d-inference-sim", 1, true) and served:find("llm-d-inference-scheduler", 1, true)) then
    return "the data plane serves only '" .. served .. "' (see spec/cluster/build-dataplane's output)"
  end
  return nil
end

local stats = { sent = 0, answered = 0, failed = 0 }

--- POSTs body to url; returns status, headers (lower-case keys), body.
--- Counted in `stats` unless `uncounted` (warm-up probes).
local function post(url, body, uncounted)
  local hdr = os.tmpname()
  local ok, out = sh(("curl -s -m 30 -D %s -H 'content-type: application/json' --data-binary @- %s")
    :format(q(hdr), q(url)), cluster.json.encode(body))
  local f = io.open(hdr)
  local text = f and f:read("a") or ""
  if f then f:close() end
  os.remove(hdr)
  local status = tonumber(text:match("HTTP/[%d.]+ (%d+)")) or 0
  local headers = {}
  for k, v in text:gmatch("([%w%-]+):%s*([^\r\n]*)") do headers[k:lower()] = v end
  if uncounted then return status, headers, out end
  stats.sent = stats.sent + 1
  if ok and status == 200 then stats.answered = stats.answered + 1 else stats.failed = stats.failed + 1 end
  return status, headers, out
end

local function gateway_url()
  return cluster.eventually(60, "a listener of Gateway " .. GW .. " in $SCHEDSIM_GATEWAYS", function()
    local f = io.open(os.getenv("SCHEDSIM_GATEWAYS") or "")
    if not f then return nil end
    for line in f:lines() do
      local ns, name, _, addr = line:match("^(%S+) (%S+) (%S+) (%S+)$")
      if ns == SCHED and name == GW then f:close(); return "http://" .. addr end
    end
    f:close()
  end)
end

local function ready_pods(selector)
  local out = must("get pods -n " .. SIM .. " -l " .. q(selector) .. " -o json")
  local ips, names = {}, {}
  for _, p in ipairs(cluster.decode(out).items) do
    for _, c in ipairs(p.status.conditions or {}) do
      if c.type == "Ready" and c.status == "True" and p.status.podIP then
        ips[p.status.podIP] = p.metadata.name
        names[#names + 1] = p.metadata.name
      end
    end
  end
  return ips, names
end

--- Ready addresses of a Service's EndpointSlices (what the gateway balances over):
--- a set ip -> true. The EndpointSlice controller follows pod readiness with a lag.
local function ready_endpoints(ns, svc)
  local out = must("get endpointslices -n " .. ns .. " -l " .. q("kubernetes.io/service-name=" .. svc) .. " -o json")
  local set = {}
  for _, s in ipairs(cluster.decode(out).items) do
    for _, e in ipairs(s.endpoints or {}) do
      if not (e.conditions and e.conditions.ready == false) then
        for _, a in ipairs(e.addresses or {}) do set[a] = true end
      end
    end
  end
  return set
end

local function condition(kind, name, ns, ctype)
  local o = cluster.get(kind, name, ns)
  for _, c in ipairs(o and o.status and o.status.conditions or {}) do
    if c.type == ctype then return c end
  end
end

local function chat(prompt)
  return { model = "random", max_tokens = 4, messages = { { role = "user", content = prompt } } }
end

local function epp_metrics(token)
  local out = must("get pods -n " .. SCHED .. " -l app=gaie-inference-scheduling-epp -o json")
  local ip
  for _, p in ipairs(cluster.decode(out).items) do
    if not p.metadata.deletionTimestamp and p.status.podIP then ip = p.status.podIP end
  end
  assert(ip, "no EPP pod with an IP")
  local ok, text = sh(("curl -s -m 10 -w '\\nHTTP %%{http_code}' %s http://%s:9090/metrics")
    :format(token and ("-H " .. q("Authorization: Bearer " .. token)) or "", ip))
  assert(ok, text)
  return tonumber(text:match("HTTP (%d+)%s*$")), text
end

describe("the local data plane", function()
  local why = reason()
  local op

  setup(function()
    if why then return end
    must("apply -f " .. q(ROOT .. "/crds/"))
    must("wait --for condition=Established --timeout=60s crd/simulatordeployments.sim.llm-d.io "
      .. "crd/schedulerinstalls.sim.llm-d.io")
    op = cluster.spawn(string.format("%s run --scripts %s --metrics-bind-address 127.0.0.1:0 "
      .. "--health-probe-bind-address 127.0.0.1:0 --log-format json", q(cluster.bin), q(ROOT .. "/scripts")))
    must("apply -f " .. q(ROOT .. "/examples/namespaces.yaml"))
    must("apply -f " .. q(ROOT .. "/examples/simulatordeployment-minimal.yaml"))
  end)

  teardown(function()
    if op then
      op:stop()
      local dir = os.getenv("SCHEDSIM_CLUSTER_LOGS_TO")
      if dir then
        local f = io.open(dir .. "/operator-dataplane.log", "w")
        if f then f:write(op:stdout(), op:stderr()); f:close() end
        sh("cp -r " .. q(os.getenv("SCHEDSIM_CLUSTER_DIR") .. "/pods") .. " " .. q(dir .. "/dataplane-pods"))
      end
      op:cleanup()
    end
    print(("dataplane_spec: requests sent %d, answered %d, failed %d"):format(stats.sent, stats.answered, stats.failed))
  end)

  local function dp_it(desc, fn)
    if why then pending(desc .. " (" .. why .. ")") return end
    it(desc, fn)
  end

  dp_it("(a) the proxy-Service path serves over all decode pods", function()
    must("apply -f " .. q(ROOT .. "/examples/schedulerinstall-service.yaml"))
    -- (b) uses the same EPP and pool names: this CR goes even when a check here fails
    finally(function()
      must("delete -f " .. q(ROOT .. "/examples/schedulerinstall-service.yaml") .. " --wait=true --timeout=60s")
    end)
    local ips = cluster.eventually(120, "2 ready decode pods", function()
      local ips, names = ready_pods("llm-d.ai/role=decode")
      return #names == 2 and ips, #names .. " ready"
    end)
    cluster.eventually(60, "RouteAccepted=True from the local gateway", function()
      local c = condition("schedulerinstall", "sched-service", SCHED, "RouteAccepted")
      return c and c.status == "True", c and c.message
    end)
    -- the gateway balances over the proxy Service's ready endpoints: wait until both pods are there
    cluster.eventually(60, "both decode pods ready in the proxy Service's EndpointSlices", function()
      local eps, n = ready_endpoints(SIM, "gaie-inference-scheduling-proxy"), 0
      for ip in pairs(ips) do if eps[ip] then n = n + 1 end end
      return n == 2, n .. " of 2"
    end)
    local url = gateway_url()
    local before = stats.failed
    local served = {}
    for i = 1, 12 do
      local status, h, body = post(url .. "/v1/chat/completions", chat("service path request " .. i))
      assert.equal(200, status, body)
      assert.equal("Service/" .. SIM .. "/gaie-inference-scheduling-proxy", h["x-schedsim-gateway-backend"])
      local ip = h["x-schedsim-gateway-endpoint"]:match("^([%d.]+):8200$")
      assert.is_not_nil(ips[ip], "endpoint " .. tostring(h["x-schedsim-gateway-endpoint"]) .. " is not a decode pod")
      assert.equal(ips[ip], h["x-inference-pod"]) -- the simulator process of that pod answered
      assert.truthy(cluster.decode(body).choices[1].message)
      served[ips[ip]] = (served[ips[ip]] or 0) + 1
    end
    local n = 0
    for _ in pairs(served) do n = n + 1 end
    assert.equal(2, n, "requests spread over both decode pods")
    assert.equal(before, stats.failed)
    local c = condition("schedulerinstall", "sched-service", SCHED, "Ready")
    assert.equal("True", c.status, c.message)
  end)

  dp_it("(b) the InferencePool path goes through the EPP to a pool member; prefixes stick, distinct prompts spread",
    function()
      must("apply -f " .. q(ROOT .. "/examples/schedulerinstall-inferencepool.yaml"))
      cluster.eventually(120, "SchedulerInstall Ready=True (route accepted by the local gateway, EPP ready)", function()
        local c = condition("schedulerinstall", "sched-inferencepool", SCHED, "Ready")
        return c and c.status == "True", c and c.message
      end)
      local url = gateway_url()
      local members = ready_pods("llm-d.ai/role=decode,llm-d.ai/inferenceServing=true")
      -- the EPP needs its pool's pods before it can pick: the first answers may be 503 from the EPP
      cluster.eventually(60, "the EPP picks an endpoint", function()
        local _, h = post(url .. "/v1/completions", { model = "random", prompt = "warm up", max_tokens = 1 }, true)
        return h["x-schedsim-gateway-epp"] ~= nil, h["x-schedsim-gateway-error"]
      end)
      local before = stats.failed
      local sticky = {}
      local prompt = string.rep("The same long system prompt shared by every request of one user. ", 8)
      for i = 1, 6 do
        local status, h, body = post(url .. "/v1/chat/completions", chat(prompt .. " turn " .. i))
        assert.equal(200, status, body)
        assert.equal("InferencePool/" .. SIM .. "/gaie-inference-scheduling", h["x-schedsim-gateway-backend"])
        local ip = h["x-schedsim-gateway-endpoint"]:match("^([%d.]+):8200$")
        assert.is_not_nil(members[ip], "picked endpoint " .. h["x-schedsim-gateway-endpoint"] .. " is a pool member")
        assert.equal(members[ip], h["x-inference-pod"])
        sticky[h["x-inference-pod"]] = true
      end
      local n = 0
      for _ in pairs(sticky) do n = n + 1 end
      assert.equal(1, n, "prefix-sharing prompts stay on one pod")
      local spread = {}
      for i = 1, 12 do
        local status, h = post(url .. "/v1/completions",
          { model = "random", max_tokens = 3,
            prompt = ("distinct %d %s"):format(i, string.rep(string.char(97 + i), 40)) })
        assert.equal(200, status)
        spread[h["x-inference-pod"]] = true
      end
      n = 0
      for _ in pairs(spread) do n = n + 1 end
      assert.equal(2, n, "distinct prompts spread over both pods")
      assert.equal(before, stats.failed)
      -- the EPP itself saw every request (its own counter)
      local code, text = epp_metrics()
      assert.equal(200, code)
      local total = 0
      for v in text:gmatch('inference_objective_request_total{[^}]*} (%d+)') do total = total + tonumber(v) end
      assert.is_true(total >= 18, "EPP request counter " .. total .. " >= 18")
      -- the pool gauges are refreshed periodically by the EPP (every 5 s in GAIE v1.2)
      cluster.eventually(30, "the EPP's inference_pool_ready_pods gauge says 2", function()
        local _, t = epp_metrics()
        return t:find('inference_pool_ready_pods{name="gaie-inference-scheduling"} 2', 1, true),
          t:match("inference_pool_ready_pods[^\n]*")
      end)
    end)

  dp_it("(c) scaling the decode stage adds the new pod to the EPP's picks, with no failed request", function()
    local url = gateway_url()
    local before = stats.failed
    must("patch simulatordeployment sim-minimal -n " .. SIM
      .. [[ --type merge -p '{"spec":{"decode":{"replicas":3}}}']])
    local seen, not_ready, errors = {}, {}, {}
    -- keep sending while the pod starts: none may fail or reach a pod that is not ready
    cluster.eventually(120, "the third pod serves through the EPP", function()
      local status, h = post(url .. "/v1/completions",
        { model = "random", prompt = "scale " .. stats.sent .. string.rep("x", 30), max_tokens = 2 })
      if status ~= 200 then
        errors[#errors + 1] = status .. " " .. tostring(h["x-schedsim-gateway-error"])
        return false
      end
      local ip = h["x-schedsim-gateway-endpoint"]:match("^([%d.]+):")
      if not ready_pods("llm-d.ai/role=decode")[ip] then not_ready[#not_ready + 1] = ip end
      seen[h["x-inference-pod"]] = true
      local n = 0
      for _ in pairs(seen) do n = n + 1 end
      return n == 3, n .. " pods seen"
    end, 0.1)
    assert.same({}, errors)
    assert.same({}, not_ready)
    assert.equal(before, stats.failed)
  end)

  dp_it("(e) the EPP's /metrics answers a ServiceAccount token", function()
    must("create serviceaccount prometheus -n " .. SCHED)
    local token = must("create token prometheus -n " .. SCHED):gsub("%s+$", "")
    local code, text = epp_metrics(token)
    assert.equal(200, code, text:sub(1, 300))
    assert.truthy(text:find("inference_objective_request_total", 1, true), text:sub(1, 300))
  end)

  dp_it("counts every request: none lost", function()
    assert.is_true(stats.sent > 0)
    assert.equal(stats.sent, stats.answered + stats.failed)
    assert.equal(0, stats.failed)
  end)
end)
