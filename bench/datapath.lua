--- bench/datapath.lua — what the local data path costs a request (bench/README.md,
--- figure 9). Runs inside `spec/cluster/run --dataplane` (bench/run --dataplane):
--- applies examples/simulatordeployment-minimal.yaml (two real simulator
--- processes) and examples/schedulerinstall-inferencepool.yaml (the real EPP),
--- starts the operator, and sends the same small completion three ways:
---   direct   — to a decode pod's IP:8200 (the simulator alone);
---   service  — through the local gateway to the proxy Service (no EPP);
---   epp      — through the local gateway, which asks the EPP over ext_proc.
--- Each way: BENCH_DP_SEQ (200) sequential requests on one kept-alive
--- connection, timed by curl itself (time_total, seconds; no process start-up
--- in the figure), then BENCH_DP_REQS (400) requests with BENCH_DP_CONC (16) in
--- flight (one curl, --parallel) for requests/s. The EPP's own scheduling
--- latency comes from its metrics (inference_extension_scheduler_e2e_duration_seconds,
--- the GAIE histogram: mean, and p50/p95 interpolated from the buckets).
--- Prints a Markdown table on stdout; every request is counted (sent = ok + failed).
local cluster = require("cluster")
local L = require("lib") -- bench/lib.lua: quantiles as every figure of the bench takes them
local q, must = cluster.q, cluster.must

local SEQ = tonumber(os.getenv("BENCH_DP_SEQ") or "") or 200
local REQS = tonumber(os.getenv("BENCH_DP_REQS") or "") or 400
local CONC = tonumber(os.getenv("BENCH_DP_CONC") or "") or 16
local SCHED, SIM = "llm-d-inference-scheduler", "llm-d-sim"
local GW = "infra-inference-scheduling-inference-gateway"
local BODY = '{"model":"random","prompt":"bench","max_tokens":1}'

local function log(fmt, ...) io.stderr:write("bench datapath: ", fmt:format(...), "\n") end

--- Writes a curl config (-K) with n transfers of BODY to url; each prints
--- "<http_code> <time_total>" on its own line.
local function curl_config(url, n)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  for i = 1, n do
    if i > 1 then f:write("next\n") end
    f:write(('url = "%s"\nrequest = "POST"\nheader = "content-type: application/json"\n'):format(url))
    f:write(("data = %q\noutput = \"/dev/null\"\nwrite-out = \"%%{http_code} %%{time_total}\\n\"\n"):format(BODY))
    f:write("max-time = 30\n")
  end
  f:close()
  return path
end

--- Runs n requests to url (conc in flight when conc > 1); returns
--- { sent, ok, failed, times = sorted seconds of the 200s, wall = seconds,
--- codes = { [http_code] = count } of the others (000: no response) }.
local function run(url, n, conc)
  local cfg = curl_config(url, n)
  local par = conc > 1 and ("--parallel --parallel-immediate --parallel-max " .. conc .. " ") or ""
  local t0 = cluster.now()
  local _, out = cluster.sh("curl -s --no-progress-meter " .. par .. "-K " .. q(cfg) .. " 2>/dev/null")
  local wall = cluster.now() - t0
  os.remove(cfg)
  local r = { sent = n, ok = 0, failed = 0, times = {}, wall = wall, codes = {} }
  for line in out:gmatch("[^\n]+") do
    local code, t = line:match("^(%d%d%d) ([%d.]+)$")
    if not code then
      io.stderr:write("bench datapath: unexpected curl output line: ", line:sub(1, 200), "\n")
      code = "malformed"
    end
    if code == "200" then
      r.ok = r.ok + 1
      r.times[#r.times + 1] = tonumber(t)
    else
      r.codes[code] = (r.codes[code] or 0) + 1
    end
  end
  r.failed = n - r.ok
  table.sort(r.times)
  return r
end


local function ready_condition(kind, name, ns)
  local o = cluster.get(kind, name, ns)
  for _, c in ipairs(o and o.status and o.status.conditions or {}) do
    if c.type == "Ready" then return c end
  end
end

local function epp_ip()
  local out = must("get pods -n " .. SCHED .. " -l app=gaie-inference-scheduling-epp -o json")
  for _, p in ipairs(cluster.decode(out).items) do
    if not p.metadata.deletionTimestamp and p.status.podIP then return p.status.podIP end
  end
end

--- The EPP's scheduling histogram: { count, mean, p50, p95 } in seconds
--- (p50/p95 by linear interpolation inside the bucket, as histogram_quantile does).
local function epp_scheduler_latency()
  local _, text = cluster.sh("curl -s -m 10 http://" .. epp_ip() .. ":9090/metrics")
  local name = "inference_extension_scheduler_e2e_duration_seconds"
  local buckets = {}
  for le, v in text:gmatch(name .. '_bucket{[^}]*le="([^"]+)"[^}]*} ([%d.e+]+)') do
    buckets[#buckets + 1] = { le = le == "+Inf" and math.huge or tonumber(le), n = tonumber(v) }
  end
  local sum = tonumber(text:match(name .. "_sum[^\n]* ([%d.e+-]+)\n") or "")
  local count = tonumber(text:match(name .. "_count[^\n]* ([%d.e+-]+)\n") or "")
  if not count or count == 0 then return nil end
  table.sort(buckets, function(a, b) return a.le < b.le end)
  local function hq(p)
    local rank, prev_le, prev_n = p * count, 0, 0
    for _, b in ipairs(buckets) do
      if b.n >= rank then
        if b.le == math.huge then return prev_le end
        return prev_le + (b.le - prev_le) * (rank - prev_n) / math.max(b.n - prev_n, 1e-9)
      end
      prev_le, prev_n = b.le, b.n
    end
  end
  return { count = count, mean = sum / count, p50 = hq(0.5), p95 = hq(0.95) }
end

local function ms(s) return s and ("%.2f"):format(s * 1000) or "n/a" end

local function main()
  if os.getenv("SCHEDSIM_DATAPLANE") ~= "1" then
    print("| 9 | data path | n/a: " .. (os.getenv("SCHEDSIM_DATAPLANE_REASON") or "no data plane") .. " |")
    return
  end
  local root = cluster.root
  must("apply -f " .. q(root .. "/crds/"))
  must("wait --for condition=Established --timeout=60s crd/simulatordeployments.sim.llm-d.io "
    .. "crd/schedulerinstalls.sim.llm-d.io")
  local op = cluster.start_operator({ args = "--log-format json" })
  must("apply -f " .. q(root .. "/examples/namespaces.yaml"))
  must("apply -f " .. q(root .. "/examples/simulatordeployment-minimal.yaml"))
  must("apply -f " .. q(root .. "/examples/schedulerinstall-inferencepool.yaml"))
  log("waiting for SchedulerInstall Ready and the EPP's first pick")
  cluster.eventually(180, "SchedulerInstall Ready=True", function()
    local c = ready_condition("schedulerinstall", "sched-inferencepool", SCHED)
    return c and c.status == "True", c and c.message
  end)
  local gw = cluster.gateway_url(SCHED, GW)
  cluster.eventually(60, "the EPP picks an endpoint", function()
    local _, h = cluster.sh("curl -s -o /dev/null -D - -m 10 -H 'content-type: application/json' -d "
      .. q(BODY) .. " " .. q(gw .. "/v1/completions"))
    return h:lower():find("x-schedsim-gateway-epp", 1, true) ~= nil
  end)
  local pod
  for _, p in ipairs(cluster.decode(must("get pods -n " .. SIM .. " -l llm-d.ai/role=decode -o json")).items) do
    if p.status.podIP then pod = p.status.podIP end
  end
  -- the gateway's Service path (no EPP): a Gateway and HTTPRoute of the bench's own,
  -- served by the same local gateway, to the proxy Service the SchedulerInstall made
  -- (in the Service's namespace: no ReferenceGrant needed)
  cluster.apply({ apiVersion = "gateway.networking.k8s.io/v1", kind = "Gateway",
    metadata = { name = "bench-service-path", namespace = SIM },
    spec = { gatewayClassName = "schedsim-local",
             listeners = { { name = "http", port = 80, protocol = "HTTP" } } } })
  cluster.apply({ apiVersion = "gateway.networking.k8s.io/v1", kind = "HTTPRoute",
    metadata = { name = "bench-service-path", namespace = SIM },
    spec = { parentRefs = { { name = "bench-service-path" } },
             rules = { { backendRefs = { { name = "gaie-inference-scheduling-proxy", port = 8200 } } } } } })
  local svc_gw = cluster.gateway_url(SIM, "bench-service-path")
  local ways = {
    { "direct (simulator pod)", "http://" .. pod .. ":8200/v1/completions" },
    { "gateway → Service", svc_gw .. "/v1/completions" },
    { "gateway → EPP → pod", gw .. "/v1/completions" },
  }
  -- warm each way (connections, the EPP's first scrape) and check it answers at all
  for _, w in ipairs(ways) do
    local r = run(w[2], 5, 1)
    if r.ok == 0 then log("%s (%s) does not answer; its figures will show the failures", w[1], w[2]) end
  end
  local epp_before = epp_scheduler_latency()
  local rows, totals = {}, { sent = 0, ok = 0, failed = 0 }
  for _, w in ipairs(ways) do
    log("%s: %d sequential, then %d with %d in flight", w[1], SEQ, REQS, CONC)
    local s = run(w[2], SEQ, 1)
    local c = run(w[2], REQS, CONC)
    for _, r in ipairs({ s, c }) do
      totals.sent, totals.ok, totals.failed = totals.sent + r.sent, totals.ok + r.ok, totals.failed + r.failed
    end
    rows[#rows + 1] = { name = w[1], s = s, c = c }
  end
  local epp = epp_scheduler_latency()
  op:stop()
  op:cleanup()

  local direct = rows[1].s
  print("| way | p50 ms | p95 ms | p99 ms | added p50 / p95 ms | req/s at " .. CONC .. " in flight | failed |")
  print("|---|---|---|---|---|---|---|")
  for _, r in ipairs(rows) do
    local t = r.s.times
    local added = r == rows[1] and "—" or ("%s / %s"):format(
      ms(L.quantile(t, 0.5) and L.quantile(t, 0.5) - L.quantile(direct.times, 0.5)),
      ms(L.quantile(t, 0.95) and L.quantile(t, 0.95) - L.quantile(direct.times, 0.95)))
    local codes = {}
    for _, x in ipairs({ r.s, r.c }) do
      for code, k in pairs(x.codes) do codes[#codes + 1] = ("%s×%d"):format(code, k) end
    end
    print(("| %s | %s | %s | %s | %s | %.0f | %d of %d%s |"):format(r.name, ms(L.quantile(t, 0.5)),
      ms(L.quantile(t, 0.95)), ms(L.quantile(t, 0.99)), added, r.c.ok / r.c.wall, r.s.failed + r.c.failed,
      r.s.sent + r.c.sent, #codes > 0 and (" (" .. table.concat(codes, ", ") .. ")") or ""))
  end
  print()
  if epp then
    local n = epp.count - (epp_before and epp_before.count or 0)
    print(("EPP scheduling latency (its histogram %s, all %d decisions since start, %d in this run): "
      .. "mean %s ms, p50 %s ms, p95 %s ms (bucket-interpolated)."):format(
      "inference_extension_scheduler_e2e_duration_seconds", epp.count, n, ms(epp.mean), ms(epp.p50), ms(epp.p95)))
  else
    print("EPP scheduling latency: n/a (the EPP's /metrics has no inference_extension_scheduler_e2e_duration_seconds)")
  end
  local f = io.open("/proc/loadavg")
  local load = f and f:read("l"):match("^(%S+ %S+ %S+)") or "?"
  if f then f:close() end
  print(("Load average at the end: %s (the machine is shared: figures carry its noise)."):format(load))
  print(("Requests: sent %d, answered 200 %d, failed %d. Sequential figures are curl's time_total "
    .. "on one kept-alive connection per way; the gateway is spec/cluster/dataplane (Go, not Envoy)."):format(
    totals.sent, totals.ok, totals.failed))
end

main()
