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
--   (d) scorer weights edited in the scripts ConfigMap (the operator runs with
--       --scripts-configmap; a policy.lua overlay with load-aware 10,
--       prefix-cache 1 instead of 1 and 2) move status.scriptRevision
--       and roll the EPP, and change where it routes: one decode pod is kept
--       loaded (50 requests in flight sent to it directly, ~45 waiting, which the
--       EPP scrapes as vllm:num_requests_waiting); prompts sharing a prefix held
--       by that pod stay on it with the bundled weights (>= 7 of 8, expected 8)
--       and leave it with the overlay (<= 1 of 8, expected 0); deleting the
--       ConfigMap rolls the EPP back to the bundled weights and it serves. The
--       score arithmetic that makes the outcome certain is in the case;
--   (e) the EPP's /metrics answers a ServiceAccount token (it failed with 401
--       before the scripts turned --metrics-endpoint-auth off).
-- Every request is counted: sent = answered + failed (the load (d) sends
-- straight to a pod included), and failed must be 0; warm-up probes sent
-- while an EPP may not know its pool yet are counted apart and printed.
-- Without the data plane (no unshare privilege, or the build failed) the
-- cases are pending with the reason.
local cluster = require("cluster")
local q, sh, must = cluster.q, cluster.sh, cluster.must

local ROOT = cluster.root
local SCHED, SIM = "llm-d-inference-scheduler", "llm-d-sim"
local GW = "infra-inference-scheduling-inference-gateway"
local EPP = "gaie-inference-scheduling-epp"
local SCRIPTS_NS, SCRIPTS_CM = "schedsim-system", "schedsim-scripts"

local reason = cluster.dataplane_missing

-- warmup: probes sent while an EPP may still answer 503 (it has not listed its
-- pool yet); printed, not in sent/answered/failed
local stats = { sent = 0, answered = 0, failed = 0, warmup = 0 }

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
  if uncounted then stats.warmup = stats.warmup + 1; return status, headers, out end
  stats.sent = stats.sent + 1
  if ok and status == 200 then stats.answered = stats.answered + 1 else stats.failed = stats.failed + 1 end
  return status, headers, out
end

local function gateway_url() return cluster.gateway_url(SCHED, GW) end

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

--- The waiting queue the EPP at epp_ip last scraped from decode pod `pod`
--- (its gauge inference_pool_per_pod_queue_size; the pod label carries a
--- data-parallel rank suffix, "-rank-0"), or nil.
local function epp_pod_queue(epp_ip, pod)
  local _, text = sh(("curl -s -m 10 http://%s:9090/metrics"):format(epp_ip))
  for line in text:gmatch("[^\n]+") do
    if line:find("inference_pool_per_pod_queue_size{", 1, true)
      and line:find('model_server_pod="' .. pod .. '-rank-', 1, true) then
      return tonumber(line:match("} (%S+)$"))
    end
  end
end

--- The value of a simulator's gauge `metric` (e.g. vllm:num_requests_waiting)
--- from GET http://ip:8200/metrics, what the EPP scrapes; nil when unreadable.
local function sim_gauge(ip, metric)
  local ok, text = sh(("curl -s -m 5 http://%s:8200/metrics"):format(ip))
  if not ok then return nil end
  return tonumber(text:match("\n" .. metric:gsub("%p", "%%%0") .. "{[^}]*} (%S+)"))
end

--- POSTs a partial configuration to the simulator's /admin/config (llm-d-inference-sim
--- v0.10.2: latency fields such as time-to-first-token change at run time).
local function sim_admin(ip, body)
  local ok, out = sh(("curl -s -m 10 -w '\nHTTP %%{http_code}' -H 'content-type: application/json' "
    .. "--data-binary @- http://%s:8200/admin/config"):format(ip), cluster.json.encode(body))
  assert(ok and out:match("HTTP (%d+)%s*$") == "200", "POST /admin/config on " .. ip .. ": " .. out)
end

--- Keeps `n` completion requests in flight against the simulator at ip,
--- directly (not through the gateway, so the EPP learns of them only from the
--- simulator's metrics): n shell loops, each sending the next request when
--- its last one is answered. Returns a handle for stop_load.
local function start_load(ip, n)
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir " .. q(dir)))
  local body = cluster.json.encode({ model = "random", prompt = "load", max_tokens = 1 })
  local script = ([[for i in $(seq %d); do
  (while [ ! -e %s/stop ]; do
     curl -s -o /dev/null -m 120 -w '%%{http_code}\n' -H 'content-type: application/json' -d %s \
       http://%s:8200/v1/completions >> %s/codes.$i
   done) & echo $! >> %s/pids
done
wait]]):format(n, q(dir), q(body), ip, q(dir), q(dir))
  return { dir = dir, n = n, proc = cluster.spawn("sh -c " .. q(script)) }
end

--- Stops the load of start_load: every loop finishes its request in flight
--- and exits; each request is counted in `stats` (its HTTP status from curl,
--- 000 when it failed to connect). Returns sent, answered. Idempotent.
local function stop_load(load)
  if not load or load.stopped then return 0, 0 end
  load.stopped = true
  io.open(load.dir .. "/stop", "w"):close()
  if not load.proc:wait(180) then
    -- only the loops this spec started, by pid
    for pid in cluster.read_file(load.dir .. "/pids"):gmatch("%d+") do os.execute("kill " .. pid .. " 2>/dev/null") end
    load.proc:stop()
  end
  local sent, answered = 0, 0
  for i = 1, load.n do
    local f = io.open(("%s/codes.%d"):format(load.dir, i))
    if f then
      for code in f:lines() do
        sent = sent + 1
        if code == "200" then answered = answered + 1 end
      end
      f:close()
    end
  end
  stats.sent, stats.answered = stats.sent + sent, stats.answered + answered
  stats.failed = stats.failed + (sent - answered)
  load.proc:cleanup()
  sh("rm -rf " .. q(load.dir))
  return sent, answered
end

describe("the local data plane", function()
  local why = reason()
  local op

  setup(function()
    if why then return end
    cluster.install_crds()
    -- (d) overlays a module from the scripts ConfigMap (doc/hot-reload.md); absent until then
    must("create namespace " .. SCRIPTS_NS)
    op = cluster.spawn(string.format("%s run --scripts %s --scripts-configmap %s/%s --metrics-bind-address 127.0.0.1:0 "
      .. "--health-probe-bind-address 127.0.0.1:0 --log-format json", q(cluster.bin), q(ROOT .. "/scripts"),
      SCRIPTS_NS, SCRIPTS_CM))
    must("apply -f " .. q(ROOT .. "/examples/namespaces.yaml"))
    must("apply -f " .. q(ROOT .. "/examples/simulatordeployment-minimal.yaml"))
  end)

  teardown(function()
    local pods = os.getenv("SCHEDSIM_CLUSTER_DIR") .. "/pods"
    if op then op:finish("operator-dataplane.log", { [pods] = "dataplane-pods" }) end
    print(("dataplane_spec: requests sent %d, answered %d, failed %d; warm-up probes %d"):format(stats.sent,
      stats.answered, stats.failed, stats.warmup))
  end)

  local dp_it = cluster.dataplane_it(why, it, pending)

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

  dp_it("(d) raising the load-aware weight in the scripts ConfigMap rolls the EPP; prefix-affine prompts "
    .. "leave a loaded pod", function()
    -- Why the outcome is fixed, not a matter of chance (llm-d-inference-scheduler v0.4.0 on GAIE v1.2.0):
    -- a pod's score is the weighted sum of
    --   load-aware-scorer:   0.5 with no request waiting, else 0.5 * (1 - min(waiting, 128) / 128)
    --                        (pkg/plugins/scorer/load_aware.go, threshold 128; it reads only
    --                        vllm:num_requests_waiting, nothing of the running ones);
    --   prefix-cache-scorer: matched / total 64-character blocks of the prompt, from the EPP's own
    --                        index of where it sent earlier prompts (multi/prefix/plugin.go; autoTune:
    --                        the simulator's block_size 16 x 4 characters; the profile's blockSize
    --                        64 says the same when autoTune has no block size);
    --   kv-cache-utilization-scorer: 1 - kv usage, which the simulator reports as 0 (no
    --                        --enable-kvcache): equal on every pod;
    -- and max-score-picker takes the highest (random among equal ones). The probes share a
    -- 1280-character prefix (20 whole blocks; the short distinct tail is a partial block the
    -- hash ignores), so the pod holding it scores 1 on prefix, the others 0. With W waiting on
    -- that pod:
    --   bundled (load 1, prefix 2):  2 + 0.5 (1 - W/128)  vs 0.5  -> it wins for every W;
    --   overlay (load 10, prefix 1): 1 + 5 (1 - W/128)    vs 5    -> it loses once W > 25.6,
    -- and after one probe lands elsewhere that pod holds the prefix too and wins from then on.
    -- The loaded pod gets ~45 waiting (50 requests kept in flight, --max-num-seqs 5 running).
    local WORKERS, MIN_WAITING, PROBES = 50, 40, 8
    local t0 = cluster.now()
    local url = gateway_url()
    local before = stats.failed
    local load, slowed, overlay_cm, bundled

    --- The EPP pods: names (a set) of all, and ip -> name of those not being deleted.
    local function epp_pods()
      local names, live = {}, {}
      for _, p in ipairs(cluster.decode(must("get pods -n " .. SCHED .. " -l app=" .. EPP .. " -o json")).items) do
        names[p.metadata.name] = true
        if p.status.podIP and not p.metadata.deletionTimestamp then live[p.status.podIP] = p.metadata.name end
      end
      return names, live
    end
    --- The EPP pod the gateway asked for h (its IP and name), when it is a live EPP pod.
    local function asked(h)
      local ip = (h["x-schedsim-gateway-epp"] or ""):match("^([%d.]+):")
      local _, live = epp_pods()
      return ip, ip and live[ip]
    end

    --- One measurement with the weights the EPP serves now: seed a prefix (where it lands is
    --- the affine pod), check it sticks there without load, load that pod, send PROBES
    --- prompts with the prefix through the gateway (epp_ip: the EPP the gateway must ask).
    --- Prints where they went; returns the affine (loaded) pod's name and how many it got.
    local function measure(label, epp_ip)
      local members = ready_pods("llm-d.ai/role=decode,llm-d.ai/inferenceServing=true")
      local prefix = ("[%s] A system prompt every request of this tenant shares. "):format(label)
      prefix = string.rep(prefix, 1280 // #prefix + 1):sub(1, 1280)
      local function send(tail)
        local status, h, body = post(url .. "/v1/completions",
          { model = "random", max_tokens = 2, prompt = prefix .. " " .. tail })
        assert.equal(200, status, tostring(h["x-schedsim-gateway-error"]) .. " " .. body)
        assert.equal(epp_ip .. ":9002", h["x-schedsim-gateway-epp"], "the gateway asked the serving EPP")
        local ip = h["x-schedsim-gateway-endpoint"]:match("^([%d.]+):8200$")
        assert.is_not_nil(members[ip], "endpoint " .. h["x-schedsim-gateway-endpoint"] .. " is a pool member")
        assert.equal(members[ip], h["x-inference-pod"])
        return ip, h["x-inference-pod"]
      end
      local ip, pod = send("seed")
      local _, again = send("no load yet")
      assert.equal(pod, again, label .. ": the prefix sticks to its pod while no pod is loaded")
      -- each loaded request holds a slot for 500 ms, so the queue moves and a probe sent
      -- to this pod waits ~45 * 0.5 / 5 s, not forever
      sim_admin(ip, { ["time-to-first-token"] = "500ms" })
      slowed = ip
      load = start_load(ip, WORKERS)
      local waiting = cluster.eventually(90, label .. ": " .. pod .. " loaded, the others idle, the EPP sees it",
        function()
          local w = sim_gauge(ip, "vllm:num_requests_waiting") or 0
          for other in pairs(members) do
            if other ~= ip and sim_gauge(other, "vllm:num_requests_waiting") ~= 0 then
              return false, other .. " has requests waiting"
            end
          end
          -- the EPP's own view of that pod (inference_pool_per_pod_queue_size, refreshed every 5 s)
          local seen = epp_pod_queue(epp_ip, pod)
          return w >= MIN_WAITING and (seen or 0) >= MIN_WAITING and w,
            ("%s waiting on %s, the EPP's gauge says %s"):format(w, pod, tostring(seen))
        end, 0.5)
      local on, where = 0, {}
      for i = 1, PROBES do
        local _, to = send("probe " .. i)
        where[to] = (where[to] or 0) + 1
        if to == pod then on = on + 1 end
      end
      assert.is_true((sim_gauge(ip, "vllm:num_requests_waiting") or 0) >= MIN_WAITING,
        label .. ": " .. pod .. " was still loaded after the probes")
      local sent, answered = stop_load(load)
      assert.equal(sent, answered, label .. ": every load request answered")
      sim_admin(ip, { ["time-to-first-token"] = "0s" })
      slowed = nil
      local parts = {}
      for k, v in pairs(where) do parts[#parts + 1] = k .. "=" .. v end
      table.sort(parts)
      print(("dataplane_spec (d) %s: %d of %d prefix probes on the loaded pod %s (%d waiting before); "
        .. "all: %s; load requests %d"):format(label, on, PROBES, pod, waiting, table.concat(parts, " "), sent))
      return pod, on
    end

    local function revision()
      return cluster.get("schedulerinstall", "sched-inferencepool", SCHED).status.scriptRevision
    end
    local function weights()
      local cfg = cluster.get("configmap", EPP .. "-config", SCHED).data["epp-config.yaml"]
      return tonumber(cfg:match("pluginRef: load%-aware%-scorer%s+weight: (%d+)")),
        tonumber(cfg:match("pluginRef: prefix%-cache%-scorer%s+weight: (%d+)"))
    end
    --- After a change of the scripts ConfigMap: waits for the CR's revision `rev`, the EPP
    --- ConfigMap with weights load/prefix, the EPP rollout, Ready=True, and the gateway asking
    --- an EPP pod whose name is not in the set `old` (and that EPP picking). Returns its IP.
    local function rolled(rev, load_w, prefix_w, old)
      cluster.eventually(60, "status.scriptRevision " .. rev, function()
        local r = revision()
        return r == rev, r
      end)
      cluster.eventually(30, ("the EPP ConfigMap with load-aware %d, prefix-cache %d"):format(load_w, prefix_w),
        function()
          local l, p = weights()
          return l == load_w and p == prefix_w, ("%s, %s"):format(l, p)
        end)
      must("rollout status deployment/" .. EPP .. " -n " .. SCHED .. " --timeout=180s")
      cluster.eventually(120, "SchedulerInstall Ready=True with the rolled EPP", function()
        local c = condition("schedulerinstall", "sched-inferencepool", SCHED, "Ready")
        return c and c.status == "True", c and c.message
      end)
      return cluster.eventually(90, "the gateway asks the new EPP, which picks", function()
        local status, h = post(url .. "/v1/completions", { model = "random", prompt = "warm up", max_tokens = 1 },
          true)
        local ip, name = asked(h)
        return status == 200 and name and not old[name] and ip,
          ("%s (%s) %s"):format(ip, name, h["x-schedsim-gateway-error"])
      end)
    end

    finally(function()
      stop_load(load)
      if slowed then pcall(sim_admin, slowed, { ["time-to-first-token"] = "0s" }) end
      if overlay_cm then
        -- the case failed with its overlay in place: remove it and wait for the bundled EPP
        -- to serve, so that (e) meets a settled EPP that has counted requests
        cluster.kubectl("delete configmap " .. SCRIPTS_CM .. " -n " .. SCRIPTS_NS)
        local ok, err = pcall(rolled, bundled, 1, 2, epp_pods())
        if not ok then print("dataplane_spec (d): the bundled EPP did not come back: " .. tostring(err)) end
      end
    end)

    -- 1. the bundled weights (lib/epp.lua: load-aware 1, prefix-cache 2)
    bundled = revision()
    assert.same({ 1, 2 }, { weights() })
    local first_epp = epp_pods()
    local serving = cluster.eventually(60, "the gateway asks a running EPP", function()
      local status, h = post(url .. "/v1/completions", { model = "random", prompt = "warm up", max_tokens = 1 }, true)
      local ip, name = asked(h)
      return status == 200 and name and ip, ("%s (%s) %s"):format(ip, name, h["x-schedsim-gateway-error"])
    end)
    local pod1, on1 = measure("load-aware 1, prefix 2", serving)

    -- 2. a policy overlay with load-aware 10, prefix-cache 1 (the lists merge on pluginRef)
    local policy = [[
return { profiles = { default = { schedulingProfiles = { { name = "default", plugins = {
  { pluginRef = "load-aware-scorer", weight = 10 }, { pluginRef = "prefix-cache-scorer", weight = 1 },
} } } } } }
]]
    must("create -f -", cluster.json.encode({ apiVersion = "v1", kind = "ConfigMap",
      metadata = { name = SCRIPTS_CM, namespace = SCRIPTS_NS },
      data = { ["policy.lua"] = policy } }))
    overlay_cm = true
    local overlaid = cluster.eventually(60, "status.scriptRevision moves to the overlaid set", function()
      local r = revision()
      return r ~= bundled and r, r
    end)
    local second_epp = epp_pods()
    serving = rolled(overlaid, 10, 1, first_epp)
    local pod2, on2 = measure("load-aware 10, prefix 1", serving)

    -- the stated margin: with the bundled weights at least 7 of 8 probes stay on the loaded pod
    -- (the arithmetic above says all 8), with load-aware 10 at most 1 of 8 does (it says none)
    assert.is_true(on1 >= PROBES - 1, ("bundled weights: %d of %d on the loaded pod %s"):format(on1, PROBES, pod1))
    assert.is_true(on2 <= 1, ("load-aware 10: %d of %d on the loaded pod %s"):format(on2, PROBES, pod2))

    -- 3. deleting the ConfigMap returns the bundled set: the EPP rolls back and serves
    for name in pairs(epp_pods()) do second_epp[name] = true end
    must("delete configmap " .. SCRIPTS_CM .. " -n " .. SCRIPTS_NS)
    overlay_cm = nil
    serving = rolled(bundled, 1, 2, second_epp)
    local status, h = post(url .. "/v1/completions", { model = "random", prompt = "after the revert", max_tokens = 2 })
    assert.equal(200, status)
    assert.equal(serving .. ":9002", h["x-schedsim-gateway-epp"])
    assert.equal(before, stats.failed)
    print(("dataplane_spec (d): %.0f s"):format(cluster.now() - t0))
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
