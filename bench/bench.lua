--- bench/bench.lua: the phases of the benchmark (bench/README.md). bench/run
--- calls it once per phase; each phase saves its figures as JSON in
--- $BENCH_OUT, and `report` turns them into bench/results/latest.md.
---
---   lua5.4 bench/bench.lua floor      inside spec/cluster/run: the bare-client floor
---   lua5.4 bench/bench.lua operator   inside spec/cluster/run: everything with the operator
---   lua5.4 bench/bench.lua render     offline render time
---   lua5.4 bench/bench.lua report     the Markdown table on stdout
---
--- Sizes (environment, defaults in brackets): BENCH_LATENCY_N [50],
--- BENCH_SMALL_N ["20 100 200": the burst sizes run BENCH_SMALL_RUNS times
--- each, paired with the floor; the largest is "the" small burst of the CPU
--- rows], BENCH_SMALL_RUNS [5], BENCH_LARGE_N [1000],
--- BENCH_STEADY_S [300], BENCH_CONCURRENCY [16], BENCH_FAIRNESS_N [30],
--- BENCH_FAIRNESS_PROBE [10].
local L = require("lib")

local function env_int(name, default)
  return tonumber(os.getenv(name) or "") or default
end

-- "20 100 200" -> {20, 100, 200}, ascending
local function env_sizes(name, default)
  local sizes = {}
  for n in (os.getenv(name) or default):gmatch("%d+") do sizes[#sizes + 1] = tonumber(n) end
  table.sort(sizes)
  return sizes
end

local SMALL_SIZES = env_sizes("BENCH_SMALL_N", "20 100 200")

local CFG = {
  latency_n = env_int("BENCH_LATENCY_N", 50),
  small_sizes = SMALL_SIZES,
  small_n = SMALL_SIZES[#SMALL_SIZES] or 0,
  small_runs = env_int("BENCH_SMALL_RUNS", 5),
  large_n = env_int("BENCH_LARGE_N", 1000),
  steady_s = env_int("BENCH_STEADY_S", 300),
  concurrency = env_int("BENCH_CONCURRENCY", 16),
  fairness_n = env_int("BENCH_FAIRNESS_N", 30),
  noise_cm = env_int("BENCH_NOISE_CONFIGMAPS", 20000),
  noise_svc = env_int("BENCH_NOISE_SERVICES", 5000),
  fairness_probe = env_int("BENCH_FAIRNESS_PROBE", 10),
}

local RUN_LABEL = "bench.sim.llm-d.io/run"
local UA_CREATE = "schedsim-bench/create"
local UA_FLOOR = "schedsim-bench/floor"
local UA_SETUP = "schedsim-bench/setup"
local CR_API = "/apis/sim.llm-d.io/v1alpha1"
local BENCH_NS = "schedsim-bench"
local SCRIPTS_CM = "schedsim-scripts"

--- The benchmark CR: examples/simulatordeployment-minimal.yaml with one
--- replica (a decode Deployment and its Service), one per namespace (the
--- children's names are fixed per namespace).
local function make_cr(ns, run)
  return {
    apiVersion = "sim.llm-d.io/v1alpha1",
    kind = "SimulatorDeployment",
    metadata = { name = "sim", namespace = ns, labels = { [RUN_LABEL] = run } },
    spec = { decode = { enabled = true, replicas = 1 } },
  }
end

local function ns_name(run, i)
  return string.format("%s-%04d", run, i)
end

---------------------------------------------------------------------------
-- the cluster
---------------------------------------------------------------------------

local C = {}

local function cluster_init()
  C.dir = assert(os.getenv("SCHEDSIM_CLUSTER_DIR"), "run under spec/cluster/run")
  C.audit = C.dir .. "/audit.log"
  C.url = assert(os.getenv("SCHEDSIM_APISERVER_URL"))
  C.ca = C.dir .. "/pki/ca.crt"
  C.kubeconfig = assert(os.getenv("KUBECONFIG"))
  C.op_kubeconfig = assert(os.getenv("SCHEDSIM_OPERATOR_KUBECONFIG"))
  local kc = assert(L.read_file(C.kubeconfig))
  local token = assert(kc:match("token:%s*(%S+)"), "no token in the admin kubeconfig")
  C.token_file = L.out .. "/admin.token"
  L.write_file(C.token_file, token .. "\n")
  C.pids = {}
  local ok, out = L.sh("\"$SCHEDSIM_CLUSTER_CTL\" status 2>/dev/null")
  if ok then
    for comp, pid in out:gmatch("([%w-]+) pid=(%d+)") do C.pids[comp] = tonumber(pid) end
  end
  C.pids.launcher = tonumber(os.getenv("SCHEDSIM_CLUSTER_PID") or "")
  local _, v = L.sh("kubectl version -o json 2>/dev/null")
  local ok2, vj = pcall(L.json.decode, v)
  C.version = ok2 and type(vj) == "table" and vj.serverVersion and vj.serverVersion.gitVersion or "?"
end

local function kubectl(args)
  return L.must("kubectl " .. args)
end

--- CPU seconds of the control plane's processes (apiserver, the launcher
--- with the embedded etcd, controller-manager, scheduler, kwok).
local function cp_cpu()
  local t = {}
  for comp, pid in pairs(C.pids) do t[comp] = L.cpu_seconds(pid) end
  return t
end

local function cp_cpu_delta(a, b)
  local d = {}
  for comp, v in pairs(b) do
    if a[comp] then d[comp] = v - a[comp] end
  end
  return d
end

---------------------------------------------------------------------------
-- bare client (bench/floor.c)
---------------------------------------------------------------------------

local function req(group, phase, method, path, ctype, body)
  return table.concat({ group, phase, method, path, ctype, L.json.encode(body) }, "\t")
end

local floor_seq = 0
--- Runs bench-floor over `lines`; returns { requests, ok, errors, wall, codes }.
local function send(lines, ua, creates, groups)
  floor_seq = floor_seq + 1
  local file = string.format("%s/requests-%02d.tsv", L.out, floor_seq)
  L.write_file(file, table.concat(lines, "\n") .. "\n")
  local cmd = string.format("%s --server %s --token-file %s --cacert %s --creates %d --groups %d "
    .. "--user-agent %s %s 2>&1",
    L.q(L.floor_bin), L.q(C.url), L.q(C.token_file), L.q(C.ca), creates or CFG.concurrency,
    groups or CFG.concurrency, L.q(ua), L.q(file))
  local _, out = L.sh(cmd)
  local r = {
    requests = tonumber(out:match("requests=(%d+)")),
    ok = tonumber(out:match(" ok=(%d+)")),
    errors = tonumber(out:match("errors=(%d+)")),
    skipped = tonumber(out:match("skipped=(%d+)")),
    wall = tonumber(out:match("wall=([%d.]+)")),
    codes = out:match("codes=(%S*)"),
  }
  if not r.requests then error("bench-floor failed: " .. out) end
  if r.errors > 0 or r.skipped > 0 then L.log("bench-floor (%s): %s", ua, out:gsub("\n$", "")) end
  return r
end

--- The floor of the idle RSS: bench-floor's resident set (KiB figures) after
--- one GET /version over TLS and HTTP/2 with the connection still open: the
--- pages libcurl and the libraries it loads (OpenSSL, nghttp2, ...) cost any
--- client of this machine's Debian libcurl.
local function client_rss()
  local file = string.format("%s/requests-rss.tsv", L.out)
  L.write_file(file, req("rss", 1, "GET", "/version", "json", {}) .. "\n")
  local _, out = L.sh(string.format("%s --server %s --token-file %s --cacert %s --user-agent %s --rss %s 2>&1",
    L.q(L.floor_bin), L.q(C.url), L.q(C.token_file), L.q(C.ca), L.q(UA_SETUP), L.q(file)))
  local rss = tonumber(out:match("rss_kib=(%d+)"))
  if not rss or rss == 0 then
    L.log("bench-floor --rss: %s", out:gsub("\n$", ""))
    return nil
  end
  return { rss = rss * 1024, anon = tonumber(out:match("anon_kib=(%d+)")) * 1024,
    file = tonumber(out:match("file_kib=(%d+)")) * 1024 }
end

--- Creates namespaces run-0000.. and waits until the controller-manager has
--- populated them (ServiceAccount default, ConfigMap kube-root-ca.crt), so
--- that their creation does not overlap the measurement.
local function create_namespaces(run, n)
  local lines = {}
  for i = 1, n do
    local ns = ns_name(run, i)
    lines[#lines + 1] = req(ns, 0, "POST", "/api/v1/namespaces", "json",
      { apiVersion = "v1", kind = "Namespace", metadata = { name = ns, labels = { [RUN_LABEL] = run } } })
  end
  send(lines, UA_SETUP)
  local deadline = L.now() + 180
  while true do
    local _, out = L.sh("kubectl get configmaps -A --field-selector metadata.name=kube-root-ca.crt "
      .. "-o jsonpath='{range .items[*]}{.metadata.namespace}{\"\\n\"}{end}' 2>/dev/null")
    local _, sa = L.sh("kubectl get serviceaccounts -A --field-selector metadata.name=default "
      .. "-o jsonpath='{range .items[*]}{.metadata.namespace}{\"\\n\"}{end}' 2>/dev/null")
    local c1, c2 = 0, 0
    local pat = "^" .. run:gsub("%-", "%%-") .. "%-"
    for l in out:gmatch("[^\n]+") do if l:find(pat) then c1 = c1 + 1 end end
    for l in sa:gmatch("[^\n]+") do if l:find(pat) then c2 = c2 + 1 end end
    if c1 >= n and c2 >= n then break end
    if L.now() > deadline then
      L.log("namespaces of %s: only %d/%d populated after 180 s; going on", run, math.min(c1, c2), n)
      break
    end
    L.sleep(1)
  end
  L.sleep(2)
end

local function create_lines(run, n)
  local lines = {}
  for i = 1, n do
    local ns = ns_name(run, i)
    lines[#lines + 1] = req(ns, 0, "POST", CR_API .. "/namespaces/" .. ns .. "/simulatordeployments", "json",
      make_cr(ns, run))
  end
  return lines
end

local RESOURCES = {
  ["apps/v1 Deployment"] = "deployments",
  ["v1 Service"] = "services",
  ["v1 ConfigMap"] = "configmaps",
  ["v1 ServiceAccount"] = "serviceaccounts",
  ["rbac.authorization.k8s.io/v1 Role"] = "roles",
  ["rbac.authorization.k8s.io/v1 RoleBinding"] = "rolebindings",
  ["sim.llm-d.io/v1alpha1 SimulatorDeployment"] = "simulatordeployments",
}

local function object_path(o)
  local res = assert(RESOURCES[o.apiVersion .. " " .. o.kind], "no resource for " .. o.kind)
  local base = o.apiVersion:find("/") and ("/apis/" .. o.apiVersion) or ("/api/" .. o.apiVersion)
  return string.format("%s/namespaces/%s/%s/%s", base, o.metadata.namespace, res, o.metadata.name)
end

--- What the operator would write for the CRs of a run: `render` of the same
--- CRs. Returns { [ns] = { children = {...}, status = {...} } } and the
--- number of children per CR.
local function rendered(run, n)
  local docs = {}
  for i = 1, n do docs[#docs + 1] = L.json.encode(make_cr(ns_name(run, i), run)) end
  local file = L.out .. "/crs-" .. run .. ".yaml"
  L.write_file(file, table.concat(docs, "\n---\n") .. "\n")
  local out = L.must(L.q(L.bin) .. " render -o json --scripts " .. L.q(L.root .. "/scripts") .. " -f " .. L.q(file)
    .. " 2>/dev/null")
  local list = L.json.decode(out)
  local by_ns, per_cr = {}, nil
  for _, o in ipairs(list.items) do
    local ns = o.metadata.namespace
    by_ns[ns] = by_ns[ns] or { children = {} }
    if o.kind == "SimulatorDeployment" then
      by_ns[ns].status = o.status
    else
      table.insert(by_ns[ns].children, o)
    end
  end
  local _, first = next(by_ns)
  if first then per_cr = #first.children end
  return by_ns, per_cr
end

---------------------------------------------------------------------------
-- the operator
---------------------------------------------------------------------------

local OP = {}

local function free_port()
  for _ = 1, 50 do
    local p = math.random(20000, 60000)
    if not L.sh(string.format("bash -c 'exec 3<>/dev/tcp/127.0.0.1/%d' 2>/dev/null", p)) then return p end
  end
  error("no free port")
end

local function start_operator(extra)
  OP.mport, OP.hport = free_port(), free_port()
  OP.seq = (OP.seq or 0) + 1
  OP.log = string.format("%s/operator-%d.log", L.out, OP.seq)
  local cmd = string.format("%s run --kubeconfig %s --scripts %s --metrics-bind-address 127.0.0.1:%d "
    .. "--health-probe-bind-address 127.0.0.1:%d %s > %s 2>&1 & echo $!",
    L.q(L.bin), L.q(C.op_kubeconfig), L.q(L.root .. "/scripts"), OP.mport, OP.hport, extra or "", L.q(OP.log))
  local _, out = L.sh(cmd)
  OP.pid = assert(tonumber(out:match("(%d+)")), "no operator pid")
  OP.metrics = string.format("http://127.0.0.1:%d/metrics", OP.mport)
  local deadline = L.now() + 90
  while true do
    local _, r = L.sh(string.format("curl -s --max-time 2 http://127.0.0.1:%d/readyz", OP.hport))
    if r:match("^ok") then break end
    if not L.read_file("/proc/" .. OP.pid .. "/status") then
      error("the operator exited at start:\n" .. (L.read_file(OP.log) or ""))
    end
    if L.now() > deadline then error("the operator did not become ready in 90 s") end
    L.sleep(0.2)
  end
  L.log("operator ready (pid %d)", OP.pid)
end

local function stop_operator()
  if not OP.pid then return end
  os.execute("kill -TERM " .. OP.pid .. " 2>/dev/null")
  for _ = 1, 150 do
    if not L.read_file("/proc/" .. OP.pid .. "/status") then break end
    L.sleep(0.1)
  end
  os.execute("kill -KILL " .. OP.pid .. " 2>/dev/null")
  OP.pid = nil
end

local function rss_median(samples)
  local xs = {}
  for i = 1, samples do
    xs[#xs + 1] = L.rss(OP.pid)
    if i < samples then L.sleep(1) end
  end
  return L.median(xs)
end

local function peak_rss()
  local s = L.read_file("/proc/" .. OP.pid .. "/status")
  local kb = s and s:match("VmHWM:%s*(%d+)")
  return kb and tonumber(kb) * 1024 or nil
end

--- The kinds the operator caches: the CR kinds, `owns` and `watches` of
--- scripts/controllers.lua (count_cached falls back to counting all their
--- objects with kubectl when the operator has no schedsim_cache_objects).
local function cached_kinds()
  local decls = dofile(L.root .. "/scripts/controllers.lua")
  local seen, out = {}, {}
  local function add(g)
    local group = g.apiVersion:match("^(.*)/") or ""
    local key = g.kind:lower() .. (group ~= "" and ("." .. group) or "")
    if not seen[key] then
      seen[key] = true
      out[#out + 1] = key
    end
  end
  for _, d in ipairs(decls) do
    add(d.for_)
    for _, g in ipairs(d.owns or {}) do add(g) end
    for _, g in ipairs(d.watches or {}) do add(g) end
  end
  return out
end

local function count_cached()
  -- what the operator holds, from its own gauge (owned-only kinds are
  -- filtered by its label: counting the cluster's objects would overstate it)
  local m = OP.metrics and L.scrape(OP.metrics)
  local series = m and m.schedsim_cache_objects
  if series and #series > 0 then
    local total, by = 0, {}
    for _, x in ipairs(series) do
      by[x.labels.kind] = (by[x.labels.kind] or 0) + x.value
      total = total + x.value
    end
    return total, by
  end
  local total, by = 0, {}
  for _, r in ipairs(cached_kinds()) do
    local ok, out = L.sh("kubectl get " .. r .. " -A -o name 2>/dev/null")
    local n = 0
    if ok then for _ in out:gmatch("[^\n]+") do n = n + 1 end end
    by[r] = n
    total = total + n
  end
  return total, by
end

local function reconciles(m)
  return L.metric_sum(m, "controller_runtime_reconcile_total", { controller = "simulatordeployment" })
end

---------------------------------------------------------------------------
-- audit analysis
---------------------------------------------------------------------------

local function in_run(ns, run)
  return type(ns) == "string" and ns:sub(1, #run + 1) == run .. "-"
end

local function complete_events(events)
  local out = {}
  for _, e in ipairs(events) do
    if e.stage == "ResponseComplete" then out[#out + 1] = e end
  end
  return out
end

--- The operator's burst of run `run`, from the audit log since `offset`.
local function analyse_burst(run, n, per_cr, offset)
  local events = complete_events((L.audit_read(C.audit, offset, { '"username":"operator"', UA_CREATE })))
  local t_start, create_done = math.huge, {}
  local status_first, child_first, apply_recv = {}, {}, {}
  local writes, failed, reads = {}, {}, {}
  for _, e in ipairs(events) do
    local r = L.ref(e)
    if in_run(r.namespace, run) and L.user(e) == "operator" and not L.is_write(e) and e.verb ~= "watch" then
      local k = e.verb .. " " .. r.resource
      reads[k] = (reads[k] or 0) + 1
    end
    if in_run(r.namespace, run) then
      if e.userAgent == UA_CREATE and e.verb == "create" and r.resource == "simulatordeployments" then
        t_start = math.min(t_start, e.t_recv)
        create_done[r.namespace] = e.t_done
      elseif L.user(e) == "operator" and L.is_write(e) then
        local k = e.verb .. " " .. r.resource .. (r.subresource and ("/" .. r.subresource) or "")
        writes[k] = (writes[k] or 0) + 1
        if not L.ok_code(e) then
          local code = tostring(type(e.responseStatus) == "table" and e.responseStatus.code or "?")
          failed[k .. " " .. code] = (failed[k .. " " .. code] or 0) + 1
        end
        if L.ok_code(e) and e.verb == "patch" then
          if r.resource == "simulatordeployments" and r.subresource == "status" then
            status_first[r.namespace] = math.min(status_first[r.namespace] or math.huge, e.t_done)
          elseif r.resource ~= "simulatordeployments" and r.resource ~= "events" then
            local key = r.namespace .. "/" .. r.resource .. "/" .. r.name
            child_first[key] = math.min(child_first[key] or math.huge, e.t_done)
            apply_recv[r.namespace] = math.min(apply_recv[r.namespace] or math.huge, e.t_recv)
          end
        end
      end
    end
  end
  local t_end, ns_done, children = 0, 0, 0
  for _, t in pairs(status_first) do t_end = math.max(t_end, t); ns_done = ns_done + 1 end
  for _, t in pairs(child_first) do t_end = math.max(t_end, t); children = children + 1 end
  local ev2apply = {}
  for ns, t in pairs(apply_recv) do
    if create_done[ns] then ev2apply[#ev2apply + 1] = t - create_done[ns] end
  end
  return {
    seconds = t_start < math.huge and t_end - t_start or nil,
    complete = ns_done == n and children == n * per_cr,
    crs_with_status = ns_done,
    children = children,
    writes = writes,
    reads = reads,
    failed = failed,
    create_to_first_apply_p50 = L.quantile(ev2apply, 0.5),
    create_to_first_apply_p95 = L.quantile(ev2apply, 0.95),
  }
end

local function analyse_floor(run, offset)
  local events = complete_events((L.audit_read(C.audit, offset, { UA_FLOOR })))
  local t0, t1, n, bad = math.huge, 0, 0, 0
  for _, e in ipairs(events) do
    if e.userAgent == UA_FLOOR and in_run(L.ref(e).namespace, run) then
      t0 = math.min(t0, e.t_recv)
      t1 = math.max(t1, e.t_done)
      n = n + 1
      if not L.ok_code(e) then bad = bad + 1 end
    end
  end
  -- no request found (an audit log that could not be read): no time, not -inf
  return { seconds = n > 0 and t1 - t0 or nil, requests = n, failed = bad }
end

---------------------------------------------------------------------------
-- waiting
---------------------------------------------------------------------------

--- Waits until the Deployments of run have their replica ready (kwok), so
--- that the next measurement does not overlap the previous rollout.
local function wait_rollout(run, n, timeout)
  local deadline = L.now() + timeout
  while true do
    local _, out = L.sh("kubectl get deployments -A -l app.kubernetes.io/managed-by=schedsim-operator "
      .. "-o jsonpath='{range .items[*]}{.metadata.namespace} {.status.readyReplicas}{\"\\n\"}{end}' 2>/dev/null")
    local ready = 0
    for ns, r in out:gmatch("(%S+) (%d+)") do
      if in_run(ns, run) and tonumber(r) >= 1 then ready = ready + 1 end
    end
    if ready >= n then return ready, true end
    if L.now() > deadline then
      L.log("rollout of %s: %d/%d Deployments ready after %d s; going on", run, ready, n, timeout)
      return ready, false
    end
    L.sleep(3)
  end
end

--- Waits until the operator made no write for `quiet` seconds (audit log).
local function wait_operator_quiet(quiet, timeout)
  local offset = L.file_size(C.audit)
  local last = L.now()
  local deadline = last + timeout
  while L.now() < deadline do
    L.sleep(1)
    local events
    events, offset = L.audit_read(C.audit, offset, { '"username":"operator"' })
    for _, e in ipairs(events) do
      if L.user(e) == "operator" and L.is_write(e) and L.ref(e).resource ~= "leases" then
        last = math.max(last, e.t_recv or 0)
      end
    end
    if L.now() - last >= quiet then return true end
  end
  return false
end

--- Polls the operator until the CRs of a burst are reconciled: the
--- reconcile counter moved by n and the queue is empty, then checks with
--- kubectl that every CR has observedGeneration == generation and every
--- child exists.
local function wait_burst(run, n, per_cr, base_recs, timeout)
  local deadline = L.now() + timeout
  local last_check = 0
  while L.now() < deadline do
    local m = L.scrape(OP.metrics)
    local recs = reconciles(m) - base_recs
    local depth = L.metric_sum(m, "workqueue_depth", { name = "simulatordeployment" })
    if recs >= n and (depth == 0 or L.now() - last_check > 10) then
      last_check = L.now()
      local ok, out = L.sh("kubectl get simulatordeployments.sim.llm-d.io -A -l " .. RUN_LABEL .. "=" .. run
        .. " -o json 2>/dev/null")
      local okd, list = pcall(L.json.decode, out)
      if not (ok and okd and type(list) == "table") then list = nil end
      local good = 0
      for _, cr in ipairs(list and list.items or {}) do
        local st = cr.status
        if type(st) == "table" and st.observedGeneration == cr.metadata.generation then good = good + 1 end
      end
      local _, kids = L.sh("kubectl get deployments,services -A -l app.kubernetes.io/managed-by=schedsim-operator "
        .. "-o jsonpath='{range .items[*]}{.metadata.namespace}{\"\\n\"}{end}' 2>/dev/null")
      local nk = 0
      for ns in kids:gmatch("[^\n]+") do if in_run(ns, run) then nk = nk + 1 end end
      if good >= n and nk >= n * per_cr then return true end
      L.sleep(1)
    else
      L.sleep(0.25)
    end
  end
  return false
end

---------------------------------------------------------------------------
-- phase: floor
---------------------------------------------------------------------------

--- The floor's CRs are of a copy of the SimulatorDeployment CRD in group
--- FLOOR_GROUP (same schema, same status subresource): the operator does not
--- watch it, so the floor's CRs never reach its queue.
local FLOOR_GROUP = "floor.bench.sim.llm-d.io"
local FLOOR_API = "/apis/" .. FLOOR_GROUP .. "/v1alpha1"

local function install_floor_crd()
  local src = assert(L.read_file(L.root .. "/crds/sim.llm-d.io_simulatordeployments.yaml"))
  local out, skip = {}, { ["    shortNames:"] = true, ["    - simdep"] = true, ["    categories:"] = true,
                          ["    - llm-d"] = true, ["    - schedsim"] = true }
  for line in src:gmatch("[^\n]*") do
    if not skip[line] then
      line = line:gsub("^(  name: simulatordeployments%.)sim%.llm%-d%.io$", "%1" .. FLOOR_GROUP)
      line = line:gsub("^(  group: )sim%.llm%-d%.io$", "%1" .. FLOOR_GROUP)
      out[#out + 1] = line
    end
  end
  local file = L.out .. "/floor-crd.yaml"
  L.write_file(file, table.concat(out, "\n"))
  kubectl("apply --server-side -f " .. L.q(file) .. " >/dev/null")
end

local function floor_run(run, n)
  create_namespaces(run, n)
  local by_ns = rendered(run, n)
  local api_version = FLOOR_GROUP .. "/v1alpha1"
  local lines = {}
  for i = 1, n do
    local ns = ns_name(run, i)
    local r = by_ns[ns]
    local cr = make_cr(ns, run)
    cr.apiVersion = api_version
    lines[#lines + 1] = req(ns, 0, "POST", FLOOR_API .. "/namespaces/" .. ns .. "/simulatordeployments", "json", cr)
    for _, o in ipairs(r.children) do
      for _, ref in ipairs(o.metadata.ownerReferences or {}) do
        ref.uid = "@UID@"
        ref.apiVersion = api_version
      end
      lines[#lines + 1] = req(ns, 1, "PATCH", object_path(o) .. "?fieldManager=schedsim-operator&force=true",
        "apply", o)
    end
    local st = { apiVersion = api_version, kind = "SimulatorDeployment",
                 metadata = { name = "sim", namespace = ns }, status = r.status }
    lines[#lines + 1] = req(ns, 1, "PATCH", FLOOR_API .. "/namespaces/" .. ns
      .. "/simulatordeployments/sim/status?fieldManager=schedsim-operator&force=true", "apply", st)
  end
  local offset = L.file_size(C.audit)
  local load0 = L.loadavg()
  local cpu0 = cp_cpu()
  local res = send(lines, UA_FLOOR)
  local cpu1 = cp_cpu()
  L.sleep(1)
  local a = analyse_floor(run, offset)
  a.n = n
  a.tool_wall = res.wall
  a.errors = res.errors + res.skipped
  a.cp_cpu = cp_cpu_delta(cpu0, cpu1)
  a.load = { load0, L.loadavg() }
  L.log("floor %s: %d requests in %s (audit), %.3f s (client)", run, a.requests, L.fmt_dur(a.seconds), res.wall)
  return a
end

---------------------------------------------------------------------------
-- phase: operator
---------------------------------------------------------------------------

local function op_burst(run, n, per_cr)
  create_namespaces(run, n)
  L.sleep(1)
  local m0 = L.scrape(OP.metrics)
  local offset = L.file_size(C.audit)
  local cpu0, cp0 = L.cpu_seconds(OP.pid), cp_cpu()
  local load0 = L.loadavg()
  local res = send(create_lines(run, n), UA_CREATE)
  local done = wait_burst(run, n, per_cr, reconciles(m0), 2400)
  local cpu1, cp1 = L.cpu_seconds(OP.pid), cp_cpu()
  local m1 = L.scrape(OP.metrics)
  L.sleep(1)
  local a = analyse_burst(run, n, per_cr, offset)
  a.n = n
  a.load = { load0, L.loadavg() }
  a.done = done
  a.create_errors = res.errors
  a.cpu = cpu1 - cpu0
  a.reconciles = reconciles(m1) - reconciles(m0)
  a.cpu_per_reconcile = a.reconciles > 0 and a.cpu / a.reconciles or nil
  a.cp_cpu = cp_cpu_delta(cp0, cp1)
  local rt = L.metric_sum(m1, "controller_runtime_reconcile_time_seconds_sum", { controller = "simulatordeployment" })
    - L.metric_sum(m0, "controller_runtime_reconcile_time_seconds_sum", { controller = "simulatordeployment" })
  a.reconcile_time_mean = a.reconciles > 0 and rt / a.reconciles or nil
  a.engine_cpu_p50 = L.histogram_quantile(m0, m1, "schedsim_reconcile_engine_cpu_seconds",
    { controller = "simulatordeployment" }, 0.5)
  local ps = L.metric_sum(m1, "rest_client_request_duration_seconds_sum", { verb = "PATCH" })
    - L.metric_sum(m0, "rest_client_request_duration_seconds_sum", { verb = "PATCH" })
  local pc = L.metric_sum(m1, "rest_client_request_duration_seconds_count", { verb = "PATCH" })
    - L.metric_sum(m0, "rest_client_request_duration_seconds_count", { verb = "PATCH" })
  a.patch_latency_mean = pc > 0 and ps / pc or nil
  a.patches = pc
  L.log("operator %s: %s, complete=%s, %d reconciles, %.2f CPU s", run, L.fmt_dur(a.seconds), tostring(a.complete),
    a.reconciles, a.cpu)
  return a
end

local function latency(run, n)
  create_namespaces(run, n)
  local offset = L.file_size(C.audit)
  local confirmed = {}
  for i = 1, n do
    local ns = ns_name(run, i)
    send({ req(ns, 0, "POST", CR_API .. "/namespaces/" .. ns .. "/simulatordeployments", "json", make_cr(ns, run)) },
      UA_CREATE)
    local deadline = L.now() + 60
    while L.now() < deadline do
      local _, s = L.sh("kubectl get simulatordeployments.sim.llm-d.io sim -n " .. ns
        .. " -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}' 2>/dev/null")
      if s:match("True") then
        confirmed[ns] = L.now()
        break
      end
      L.sleep(0.05)
    end
    L.sleep(0.3)
  end
  L.sleep(1)
  local events = complete_events((L.audit_read(C.audit, offset, { '"username":"operator"', UA_CREATE })))
  local created, first_apply, first_write, ready = {}, {}, {}, {}
  for _, e in ipairs(events) do
    local r = L.ref(e)
    local ns = r.namespace
    if in_run(ns, run) then
      if e.userAgent == UA_CREATE and e.verb == "create" then
        created[ns] = e.t_done
      elseif L.user(e) == "operator" and L.is_write(e) and L.ok_code(e) and r.resource ~= "events" then
        first_write[ns] = math.min(first_write[ns] or math.huge, e.t_recv)
        if r.resource ~= "simulatordeployments" then
          first_apply[ns] = math.min(first_apply[ns] or math.huge, e.t_recv)
        elseif r.subresource == "status" and confirmed[ns] and e.t_done <= confirmed[ns] then
          ready[ns] = math.max(ready[ns] or 0, e.t_done)
        end
      end
    end
  end
  local d_apply, d_write, d_ready = {}, {}, {}
  for ns, t in pairs(created) do
    if first_apply[ns] then d_apply[#d_apply + 1] = first_apply[ns] - t end
    if first_write[ns] then d_write[#d_write + 1] = first_write[ns] - t end
    if ready[ns] then d_ready[#d_ready + 1] = ready[ns] - t end
  end
  local out = {
    n = n,
    measured = #d_apply,
    ready_seen = #d_ready,
    apply_p50 = L.quantile(d_apply, 0.5), apply_p95 = L.quantile(d_apply, 0.95),
    write_p50 = L.quantile(d_write, 0.5), write_p95 = L.quantile(d_write, 0.95),
    ready_p50 = L.quantile(d_ready, 0.5), ready_p95 = L.quantile(d_ready, 0.95),
  }
  L.log("latency: first apply p50 %s p95 %s; Ready p50 %s p95 %s", L.fmt_dur(out.apply_p50),
    L.fmt_dur(out.apply_p95), L.fmt_dur(out.ready_p50), L.fmt_dur(out.ready_p95))
  return out
end

local function steady(seconds)
  local m0 = L.scrape(OP.metrics)
  local offset = L.file_size(C.audit)
  local t0, cpu0 = L.now(), L.cpu_seconds(OP.pid)
  L.sleep(seconds)
  local t1, cpu1 = L.now(), L.cpu_seconds(OP.pid)
  local m1 = L.scrape(OP.metrics)
  local events = complete_events((L.audit_read(C.audit, offset, { '"username":"operator"' })))
  local writes, total = {}, 0
  for _, e in ipairs(events) do
    local r = L.ref(e)
    if L.user(e) == "operator" and L.is_write(e) and r.resource ~= "leases" and e.t_recv >= t0 and e.t_recv <= t1 then
      local k = e.verb .. " " .. tostring(r.resource) .. (r.subresource and ("/" .. r.subresource) or "")
      writes[k] = (writes[k] or 0) + 1
      total = total + 1
    end
  end
  local rest = 0
  for _, x in ipairs((m1 or {}).rest_client_requests_total or {}) do
    if x.labels.method ~= "GET" then rest = rest + x.value end
  end
  for _, x in ipairs((m0 or {}).rest_client_requests_total or {}) do
    if x.labels.method ~= "GET" then rest = rest - x.value end
  end
  local recs = reconciles(m1) - reconciles(m0)
  local rt = L.metric_sum(m1, "controller_runtime_reconcile_time_seconds_sum", { controller = "simulatordeployment" })
    - L.metric_sum(m0, "controller_runtime_reconcile_time_seconds_sum", { controller = "simulatordeployment" })
  return {
    seconds = t1 - t0, writes = total, by = writes, rest_client_writes = rest,
    cpu = cpu1 - cpu0, reconciles = recs, reconcile_time_mean = recs > 0 and rt / recs or nil,
  }
end

local function current_revision()
  local m = L.scrape(OP.metrics)
  for _, x in ipairs((m or {}).schedsim_script_revision_info or {}) do
    if x.value == 1 then return x.labels.revision end
  end
  return nil
end

local function scripts_cm(data)
  return {
    apiVersion = "v1", kind = "ConfigMap",
    metadata = { name = SCRIPTS_CM, namespace = BENCH_NS },
    data = data,
  }
end

local function hot_reload(n_crs)
  local log = L.read_file(OP.log) or ""
  if log:find("not supported", 1, true) and log:find("scripts-configmap", 1, true) then
    return { status = "n/a (not implemented)" }
  end
  local old = current_revision()
  local m0 = L.scrape(OP.metrics)
  local reloads0 = L.metric_sum(m0, "schedsim_script_reloads_total")
  local src = assert(L.read_file(L.root .. "/scripts/simulatordeployment/reconcile.lua"))
  local file = L.out .. "/scripts-cm.json"
  L.write_file(file, L.json.encode(scripts_cm({
    ["simulatordeployment.reconcile.lua"] = src .. "\n-- bench reload " .. os.time() .. "\n" })))
  local offset = L.file_size(C.audit)
  kubectl("apply --server-side --field-manager=schedsim-bench -f " .. L.q(file) .. " >/dev/null")
  -- the swap: the revision metric changes
  local seen, new
  local deadline = L.now() + 30
  while L.now() < deadline do
    local m = L.scrape(OP.metrics)
    local rev
    for _, x in ipairs((m or {}).schedsim_script_revision_info or {}) do
      if x.value == 1 then rev = x.labels.revision end
    end
    if rev and rev ~= old then
      seen, new = L.now(), rev
      break
    end
    -- the figure comes from the operator's log line; back-to-back scrapes (a
    -- shell, curl and the parse of 1000 CRs' metrics) would take a core from
    -- the check they wait for
    L.sleep(0.05)
  end
  local t_update
  for _, e in ipairs(complete_events((L.audit_read(C.audit, offset, { SCRIPTS_CM })))) do
    local r = L.ref(e)
    if r.resource == "configmaps" and r.name == SCRIPTS_CM and L.is_write(e) and L.user(e) ~= "operator" then
      t_update = t_update or e.t_done
    end
  end
  if not seen then
    local m = L.scrape(OP.metrics)
    local reloads = L.metric_sum(m, "schedsim_script_reloads_total")
    return { status = reloads > reloads0 and "reloaded, but the revision did not change in 30 s"
      or "n/a (not implemented: no reload within 30 s)" }
  end
  -- a log line naming the new revision gives the swap time to the millisecond
  -- (and, if it says so, how long the check of the new set took)
  local swap_log, check_ms, loop_ms
  for line in (L.read_file(OP.log) or ""):gmatch("[^\n]+") do
    if line:find(new, 1, true) then
      local ts = line:match('"ts":"([^"]+)"')
      local t = ts and L.parse_time(ts)
      if t and (not swap_log or t < swap_log) then
        swap_log = t
        check_ms = tonumber(line:match('"checkMs":"?([%d.]+)'))
        loop_ms = tonumber(line:match('"swapMs":"?([%d.]+)'))
      end
    end
  end
  -- every CR re-reconciled: its status carries the new scriptRevision
  local all_done = false
  deadline = L.now() + 300
  while L.now() < deadline do
    local ok, out = L.sh("kubectl get simulatordeployments.sim.llm-d.io -A "
      .. "-o jsonpath='{range .items[*]}{.status.scriptRevision}{\"\\n\"}{end}' 2>/dev/null")
    local c = 0
    if ok then for l in out:gmatch("[^\n]+") do if l == new then c = c + 1 end end end
    if c >= n_crs then
      all_done = true
      break
    end
    L.sleep(2)
  end
  L.sleep(1)
  local per_cr = {}
  for _, e in ipairs(complete_events((L.audit_read(C.audit, offset, { '"username":"operator"' })))) do
    local r = L.ref(e)
    if L.user(e) == "operator" and e.verb == "patch" and r.subresource == "status" and L.ok_code(e) then
      local k = r.namespace .. "/" .. r.name
      per_cr[k] = per_cr[k] or e.t_done
    end
  end
  local last, count = 0, 0
  for _, t in pairs(per_cr) do
    last = math.max(last, t)
    count = count + 1
  end
  local out = {
    status = "ok",
    swap = t_update and ((swap_log and math.min(swap_log, seen) or seen) - t_update) or nil,
    swap_source = swap_log and "operator log" or "metrics poll",
    check = check_ms and check_ms / 1000 or nil,
    loop = loop_ms and loop_ms / 1000 or nil,
    all = (t_update and all_done) and (last - t_update) or nil,
    crs = count,
  }
  L.log("hot reload: swap %s, all %d CRs %s", L.fmt_dur(out.swap), count, L.fmt_dur(out.all))
  return out
end

--- Cluster noise (#4): objects that are none of the operator's business
--- (BENCH_NOISE_CONFIGMAPS ConfigMaps and BENCH_NOISE_SERVICES Services,
--- whose EndpointSlices the controller-manager adds, in namespaces of their
--- own) must not grow its memory or CPU: its caches of owned kinds select
--- its own label. Returns RSS, cached objects and CPU before and after.
local function noise(n_cm, n_svc)
  local out = { configmaps = n_cm, services = n_svc }
  local per_ns = 1000
  local nns = math.ceil(n_cm / per_ns) + math.ceil(n_svc / per_ns)
  create_namespaces("noise", nns)
  out.rss_before, out.objects_before = rss_median(5), count_cached()
  local m0, offset = L.scrape(OP.metrics), L.file_size(C.audit)
  local cpu0, t0 = L.cpu_seconds(OP.pid), L.now()
  local lines = {}
  for k = 1, n_cm do
    local ns = ns_name("noise", (k - 1) // per_ns + 1)
    lines[#lines + 1] = req(ns .. "/" .. k, 0, "POST", "/api/v1/namespaces/" .. ns .. "/configmaps", "json",
      { apiVersion = "v1", kind = "ConfigMap", metadata = { name = "noise-" .. k, labels = { app = "noise" } },
        data = { payload = string.rep("x", 256) } })
  end
  local i = math.ceil(n_cm / per_ns)
  for k = 1, n_svc do
    local ns = ns_name("noise", i + (k - 1) // per_ns + 1)
    lines[#lines + 1] = req(ns .. "/s" .. k, 0, "POST", "/api/v1/namespaces/" .. ns .. "/services", "json",
      { apiVersion = "v1", kind = "Service", metadata = { name = "noise-" .. k },
        spec = { selector = { app = "noise-" .. k }, ports = { { port = 80, targetPort = 8080 } } } })
  end
  local res = send(lines, UA_SETUP, 32, 32)
  out.created, out.create_errors = res.ok, res.errors
  -- the EndpointSlices follow the Services
  local deadline = L.now() + 300
  while L.now() < deadline do
    local _, n = L.sh("kubectl get endpointslices -A -l kubernetes.io/service-name --no-headers 2>/dev/null | "
      .. "grep -c '^noise-' || true")
    if (tonumber(n) or 0) >= n_svc then break end
    L.sleep(5)
  end
  L.sleep(10)
  out.cpu = L.cpu_seconds(OP.pid) - cpu0
  out.window = L.now() - t0
  out.rss_after, out.objects_after = rss_median(5), count_cached()
  -- what the operator did in the window: its reconciles, and its requests
  -- by verb and resource (audit), so that a change of RSS or CPU has a cause
  out.reconciles = reconciles(L.scrape(OP.metrics)) - reconciles(m0)
  local reqs = {}
  for _, e in ipairs(complete_events((L.audit_read(C.audit, offset, { '"username":"operator"' })))) do
    local r = L.ref(e)
    if L.user(e) == "operator" and r.resource ~= "leases" then
      local k = e.verb .. " " .. tostring(r.resource)
      reqs[k] = (reqs[k] or 0) + 1
    end
  end
  out.requests = reqs
  L.log("noise: %d ConfigMaps, %d Services: RSS %s -> %s, objects cached %d -> %d, operator CPU %.2f s in %.0f s",
    n_cm, n_svc, L.fmt_mib(out.rss_before), L.fmt_mib(out.rss_after), out.objects_before, out.objects_after,
    out.cpu, out.window)
  return out
end

--- Fairness (#8): scripts that loop must not starve the other CRs. The
--- bundled SimulatorDeployment script, overlaid through the scripts
--- ConfigMap so that CRs named loop-* never return (each such reconcile runs
--- until the instruction budget stops it, then backs off 1 s, 2 s, 4 s ...).
--- Convergence of unrelated CRs (latency(): create -> Ready=True, one at a
--- time) is measured without, then while `n_loop` looping CRs were just
--- created. Goal: Ready p50 with ÷ without <= 2.
local LOOP_OVERLAY = [[

-- bench fairness (bench/bench.lua): CRs named loop-* never return
do
  local bundled = M.reconcile
  function M.reconcile(cr, observed, ctx)
    if cr.metadata.name:match("^loop%-") then
      local x = 0
      while true do x = x + 1 end
    end
    return bundled(cr, observed, ctx)
  end
end
]]

local function wait_revision(old, timeout)
  local deadline = L.now() + timeout
  while L.now() < deadline do
    local rev = current_revision()
    if rev and rev ~= old then return rev end
    L.sleep(0.2)
  end
  return nil
end

local function fairness(n_loop, n_probe)
  local out = { n_loop = n_loop, n_probe = n_probe }
  out.without = latency("fb", n_probe)
  local src = assert(L.read_file(L.root .. "/scripts/simulatordeployment/reconcile.lua"))
  local overlay, subs = src:gsub("\nreturn M%s*$", function() return "\n" .. LOOP_OVERLAY .. "\nreturn M\n" end)
  assert(subs == 1, "scripts/simulatordeployment/reconcile.lua does not end in `return M`")
  local old = current_revision()
  local file = L.out .. "/scripts-cm-loop.json"
  L.write_file(file, L.json.encode(scripts_cm({ ["simulatordeployment.reconcile.lua"] = overlay })))
  kubectl("apply --server-side --field-manager=schedsim-bench -f " .. L.q(file) .. " >/dev/null")
  if not wait_revision(old, 30) then
    out.status = "the looping overlay was not swapped in within 30 s"
    return out
  end
  local m0 = L.scrape(OP.metrics)
  create_namespaces("fx", n_loop)
  local lines = {}
  for i = 1, n_loop do
    local ns = ns_name("fx", i)
    local cr = make_cr(ns, "fx")
    cr.metadata.name = "loop-" .. i
    lines[#lines + 1] = req(ns, 0, "POST", CR_API .. "/namespaces/" .. ns .. "/simulatordeployments", "json", cr)
  end
  send(lines, UA_CREATE)
  L.sleep(1)
  local t0, cpu0 = L.now(), L.cpu_seconds(OP.pid)
  out.with = latency("fw", n_probe)
  out.window = L.now() - t0
  out.cpu = L.cpu_seconds(OP.pid) - cpu0
  local m1 = L.scrape(OP.metrics)
  local sd = { controller = "simulatordeployment" }
  out.loop_errors = L.metric_sum(m1, "controller_runtime_reconcile_errors_total", sd)
    - L.metric_sum(m0, "controller_runtime_reconcile_errors_total", sd)
  out.ratio = out.without.ready_p50 and out.with.ready_p50 and out.with.ready_p50 / out.without.ready_p50 or nil
  -- back to the bundled scripts; the looping CRs go
  old = current_revision()
  L.write_file(file, L.json.encode(scripts_cm(nil)))
  kubectl("replace -f " .. L.q(file) .. " >/dev/null")
  wait_revision(old, 30)
  L.sh("kubectl delete simulatordeployments.sim.llm-d.io -A -l " .. RUN_LABEL .. "=fx --wait=false >/dev/null 2>&1")
  out.status = "ok"
  L.log("fairness: Ready p50 %s without, %s with %d looping CRs (x%.2f); %d failed reconciles of theirs",
    L.fmt_dur(out.without.ready_p50), L.fmt_dur(out.with.ready_p50), n_loop, out.ratio or 0, out.loop_errors)
  return out
end

--- A second kwok node with room for every pod of the bench (the launcher's
--- node takes 110).
local function add_node()
  local node = {
    apiVersion = "v1", kind = "Node",
    metadata = {
      name = "kwok-bench-0",
      annotations = { ["kwok.x-k8s.io/node"] = "fake", ["node.alpha.kubernetes.io/ttl"] = "0" },
      labels = { ["kubernetes.io/arch"] = "amd64", ["kubernetes.io/os"] = "linux",
                 ["kubernetes.io/hostname"] = "kwok-bench-0", type = "kwok" },
    },
    status = {
      capacity = { cpu = "1000", memory = "4Ti", pods = "10000" },
      allocatable = { cpu = "1000", memory = "4Ti", pods = "10000" },
    },
  }
  local file = L.out .. "/node.json"
  L.write_file(file, L.json.encode(node))
  kubectl("create -f " .. L.q(file) .. " >/dev/null")
  kubectl("wait --for=condition=Ready node/kwok-bench-0 --timeout=60s >/dev/null")
end

local OP_FLAGS = "--scripts-configmap " .. BENCH_NS .. "/" .. SCRIPTS_CM

--- The floor runs with the operator stopped (so that the API server serves
--- the bare client alone), then the operator is started again and left to
--- settle: its restart lists every object again and writes nothing.
local function floor_between(run, n)
  stop_operator()
  local r = floor_run(run, n)
  wait_rollout(run, n, 180)
  local offset = L.file_size(C.audit)
  start_operator(OP_FLAGS)
  wait_operator_quiet(5, 60)
  -- sanity: the operator leaves the floor's objects alone
  local touched = 0
  for _, e in ipairs(complete_events((L.audit_read(C.audit, offset, { '"username":"operator"' })))) do
    if L.user(e) == "operator" and L.is_write(e) and in_run(L.ref(e).namespace, run) then touched = touched + 1 end
  end
  r.operator_writes_after = touched
  return r
end

local function phase_cluster()
  cluster_init()
  kubectl("apply --server-side -f " .. L.q(L.root .. "/crds") .. " >/dev/null")
  install_floor_crd()
  kubectl("wait --for=condition=Established crd --all --timeout=60s >/dev/null")
  add_node()
  L.sh("kubectl create clusterrolebinding schedsim-bench-operator --clusterrole=cluster-admin --user=operator "
    .. ">/dev/null 2>&1")
  L.sh("kubectl create namespace " .. BENCH_NS .. " >/dev/null 2>&1")
  local cm = L.out .. "/scripts-cm0.json"
  L.write_file(cm, L.json.encode(scripts_cm(nil)))
  kubectl("apply --server-side --field-manager=schedsim-bench -f " .. L.q(cm) .. " >/dev/null")
  local _, per_cr = rendered("probe", 1)
  local out = { version = C.version, per_cr = per_cr, small = {}, floor_small = {}, bursts = {} }
  local t_start = L.now()

  start_operator(OP_FLAGS)
  local ok, err = pcall(function()
    L.sleep(3)
    out.rss_idle = rss_median(5)
    out.rss_idle_parts = L.rss_parts(OP.pid)
    out.objects_idle = count_cached()
    out.client_rss = client_rss()
    L.log("idle RSS %s, %d objects cached", L.fmt_mib(out.rss_idle), out.objects_idle)

    local n = CFG.large_n
    if n > 0 then
      out.large = op_burst("op" .. n, n, per_cr)
      out.ready_before_steady = wait_rollout("op" .. n, n, 300)
      wait_operator_quiet(10, 90)
      L.log("steady state: %d s", CFG.steady_s)
      out.steady = steady(CFG.steady_s)
      L.log("steady state: %d writes, %.2f CPU s", out.steady.writes, out.steady.cpu)
      out.rss_full = rss_median(5)
      out.rss_full_parts = L.rss_parts(OP.pid)
      out.rss_peak = peak_rss()
      local by
      out.objects_full, by = count_cached()
      out.objects_by_kind = by
      -- the gauge's kind label (apiVersion/Kind), or kubectl's resource name
      out.crs_full = by["sim.llm-d.io/v1alpha1/SimulatorDeployment"] or by["simulatordeployment.sim.llm-d.io"]
      L.log("RSS %s with %d objects cached", L.fmt_mib(out.rss_full), out.objects_full)
      out.reload = hot_reload(out.crs_full or n)
      wait_operator_quiet(5, 120)
      out.floor_large = floor_between("fl" .. n, n)
    end

    if CFG.latency_n > 0 then out.latency = latency("lat", CFG.latency_n) end
    wait_operator_quiet(5, 60)

    for _, sn in ipairs(CFG.small_sizes) do
      local b = { n = sn, ops = {}, floors = {} }
      out.bursts[#out.bursts + 1] = b
      for r = 1, CFG.small_runs do
        b.floors[r] = floor_between(string.format("fs%d-%d", sn, r), sn)
        local run = string.format("os%d-%d", sn, r)
        b.ops[r] = op_burst(run, sn, per_cr)
        wait_rollout(run, sn, 180)
        wait_operator_quiet(5, 60)
      end
      if sn == CFG.small_n then out.small, out.floor_small = b.ops, b.floors end
    end
    if CFG.noise_cm + CFG.noise_svc > 0 then
      out.noise = noise(CFG.noise_cm, CFG.noise_svc)
      wait_operator_quiet(5, 60)
    end
    if CFG.fairness_n > 0 then
      out.fairness = fairness(CFG.fairness_n, CFG.fairness_probe)
      wait_operator_quiet(5, 60)
    end
    if not out.rss_full then
      out.rss_full = rss_median(3)
      out.objects_full = count_cached()
    end
    out.operator_version = (select(2, L.sh(L.q(L.bin) .. " version 2>/dev/null")):gsub("%s+$", ""))
  end)
  out.minutes = (L.now() - t_start) / 60
  stop_operator()
  L.save("cluster", out)
  if not ok then error(err, 0) end
end

---------------------------------------------------------------------------
-- phase: render
---------------------------------------------------------------------------

local function phase_render()
  local out = {}
  local script = L.root .. "/bench/render"
  local f = io.open(script, "r")
  if f then
    f:close()
    local ok, text = L.sh("SCHEDSIM_BIN=" .. L.q(L.bin) .. " " .. L.q(script) .. " 2>&1")
    out.script = { ok = ok, output = text }
  end
  -- bash's `time`: wall, user and system seconds of the whole process
  -- (start-up, loading and checking the script set, rendering, printing)
  local example = L.root .. "/examples/simulatordeployment-full.yaml"
  local file = L.out .. "/render-times.sh"
  L.write_file(file, string.format("TIMEFORMAT='%%3R %%3U %%3S'\nfor i in $(seq 1 21); do\n"
    .. "  { time %s render --scripts %s -f %s >/dev/null 2>/dev/null; } 2>&1\ndone\n", L.q(L.bin),
    L.q(L.root .. "/scripts"), L.q(example)))
  local ok, text = L.sh("bash " .. L.q(file))
  local wall, cpu = {}, {}
  if ok then
    for r, u, s in text:gmatch("([%d.]+) ([%d.]+) ([%d.]+)") do
      wall[#wall + 1] = tonumber(r)
      cpu[#cpu + 1] = tonumber(u) + tonumber(s)
    end
  end
  out.median = L.median(wall)
  out.min = L.quantile(wall, 0)
  out.cpu_median = L.median(cpu)
  out.runs = #wall
  out.load = L.loadavg()
  L.save("render", out)
end

---------------------------------------------------------------------------
-- report
---------------------------------------------------------------------------

local function verdict(value, goal, lower_is_better)
  if value == nil or goal == nil then return "" end
  if lower_is_better == false then return value >= goal and "meets" or "misses" end
  if value <= goal then return "meets" end
  return value <= goal * 2 and "misses" or "**far**"
end

local function phase_report()
  local op = L.load("cluster") or {}
  local rd = L.load("render") or {}
  local mach = L.load("machine") or {}
  local lines = {}
  local function p(fmt, ...) lines[#lines + 1] = string.format(fmt, ...) end
  local function f2(x) return x and string.format("%.2f", x) or "—" end
  local function loads(runs)
    local xs = {}
    for _, r in ipairs(runs) do
      for _, v in ipairs(r.load or {}) do xs[#xs + 1] = v end
    end
    if #xs == 0 then return "?" end
    return string.format("%.1f–%.1f", L.quantile(xs, 0), L.quantile(xs, 1))
  end
  local large_n = op.large and op.large.n or CFG.large_n

  p("# schedsim-operator benchmarks")
  p("")
  p("Generated by `bench/run` on %s (tree %s) in %s min. Machine: %s, **%s cores, %s memory**, Linux %s. "
    .. "Control plane: **kube-apiserver %s** (spec/cluster: embedded etcd without fsync, controller-manager, "
    .. "scheduler, kwok) on the same machine as the operator and the clients.",
    mach.date or "?", mach.tree or "?", op.minutes and string.format("%.0f", op.minutes) or "?", mach.cpu or "?",
    mach.cores or "?", mach.memory or "?", mach.kernel or "?", op.version or "?")
  p("")
  local all = {}
  for _, b in ipairs(op.bursts or { { ops = op.small or {}, floors = op.floor_small or {} } }) do
    for _, r in ipairs(b.ops) do all[#all + 1] = r end
    for _, r in ipairs(b.floors) do all[#all + 1] = r end
  end
  all[#all + 1] = op.large
  all[#all + 1] = op.floor_large
  p("Load average (1 min) during the bursts: %s; at render: %s. The machine is shared, so wall-clock figures "
    .. "carry the noise of whatever else runs; the CPU-second figures less so.", loads(all),
    rd.load and string.format("%.1f", rd.load) or "?")
  p("")
  p("Workload: one SimulatorDeployment per namespace, `examples/simulatordeployment-minimal.yaml` with "
    .. "`decode.replicas: 1` → %s children (Deployment, Service); pods run on kwok. Clients send over one "
    .. "HTTP/2 connection with %d requests in flight. Times come from the API server's audit log "
    .. "(request received / response complete); the operator runs as user `operator` (cluster-admin).",
    tostring(op.per_cr or "?"), CFG.concurrency)
  p("")
  p("| # | figure | value | goal | |")
  p("|---|---|---|---|---|")
  local lat = op.latency or {}
  p("| 1 | CR created → first child apply reaches the API server, p50 / p95 (%s CRs one at a time) "
    .. "| %s / %s | p50 ≤ 5 ms | %s |", tostring(lat.measured or 0), L.fmt_dur(lat.apply_p50),
    L.fmt_dur(lat.apply_p95), verdict(lat.apply_p50, 0.005))
  p("| 1 | CR created → first write of any kind, p50 / p95 | %s / %s | | |",
    L.fmt_dur(lat.write_p50), L.fmt_dur(lat.write_p95))
  p("| 1 | CR created → status with Ready=True written, p50 / p95 (kwok pods) | %s / %s | | |",
    L.fmt_dur(lat.ready_p50), L.fmt_dur(lat.ready_p95))
  -- the ratio of each operator run to the floor run next to it (same load),
  -- then the median; and the API server's CPU seconds over both windows
  local function burst_row(label, ops, floors)
    local ot, ft, ratios, oc, fc = {}, {}, {}, {}, {}
    local complete = #ops > 0
    for i, r in ipairs(ops) do
      local f = floors[i]
      ot[#ot + 1] = r.seconds
      complete = complete and r.complete
      if r.seconds and f and f.seconds and f.seconds > 0 then ratios[#ratios + 1] = r.seconds / f.seconds end
      oc[#oc + 1] = (r.cp_cpu or {}).apiserver
      ft[#ft + 1] = f and f.seconds
      fc[#fc + 1] = f and (f.cp_cpu or {}).apiserver
    end
    -- two aggregations, and the goal judged on the worse: the median of the
    -- paired ratios, and the ratio of the two medians printed beside it
    local paired = L.median(ratios)
    local mo, mf = L.median(ot), L.median(ft)
    local of_medians = (mo and mf and mf > 0) and mo / mf or nil
    local worse = (paired and of_medians) and math.max(paired, of_medians) or paired or of_medians
    local co, cf = L.median(oc), L.median(fc)
    p("| 2 | burst %s: operator / floor; **ratio**: median of the paired ratios / ratio of the medians; "
      .. "API-server CPU s operator / floor | %s / %s, **%s / %s**%s; CPU %s / %s (%s) | ratio ≤ 1.2 (the worse) "
      .. "| %s |", label, L.fmt_dur(mo), L.fmt_dur(mf), f2(paired), f2(of_medians),
      complete and "" or " — incomplete!", co and string.format("%.1f", co) or "—",
      cf and string.format("%.1f", cf) or "—", (co and cf and cf > 0) and ("×" .. f2(co / cf)) or "—",
      verdict(worse, 1.2))
  end
  for _, b in ipairs(op.bursts or { { n = CFG.small_n, ops = op.small or {}, floors = op.floor_small or {} } }) do
    burst_row(string.format("N=%d, %d runs", b.n, #b.ops), b.ops, b.floors)
  end
  burst_row(string.format("N=%d, 1 run", large_n), { op.large }, { op.floor_large })
  local st = op.steady or {}
  local by = {}
  for k, v in pairs(st.by or {}) do by[#by + 1] = string.format("%s: %d", k, v) end
  table.sort(by)
  p("| 3 | operator writes in %s with %s reconciled CRs, nothing changing (audit) | %s%s | 0 | %s |",
    st.seconds and string.format("%.0f s", st.seconds) or "—", tostring(op.crs_full or "?"),
    tostring(st.writes or "—"), #by > 0 and (" (" .. table.concat(by, ", ") .. ")") or "", verdict(st.writes, 0))
  local ip = op.rss_idle_parts
  p("| 4 | RSS idle (%s objects cached)%s | %s | ≤ 8 MiB | %s |", tostring(op.objects_idle or "?"),
    ip and string.format("; anonymous %s + file-backed %s (the shared libraries' pages)", L.fmt_mib(ip.anon),
      L.fmt_mib(ip.file)) or "", L.fmt_mib(op.rss_idle), verdict(op.rss_idle, 8 * 1048576))
  local cr = op.client_rss
  if cr then
    p("| 4 | floor of the idle RSS: the bare client (`bench/floor.c`, the same libcurl) after one TLS GET, "
      .. "connection open; anonymous %s + file-backed %s | %s | | |", L.fmt_mib(cr.anon), L.fmt_mib(cr.file),
      L.fmt_mib(cr.rss))
  end
  local per_obj
  if op.rss_full and op.rss_idle and op.objects_full and op.objects_idle and op.objects_full > op.objects_idle then
    per_obj = (op.rss_full - op.rss_idle) / (op.objects_full - op.objects_idle)
  end
  local fp = op.rss_full_parts
  p("| 4 | RSS with %s CRs and their children cached, %s objects in all (peak during the burst %s)%s | %s | | |",
    tostring(op.crs_full or "?"), tostring(op.objects_full or "?"), L.fmt_mib(op.rss_peak),
    fp and string.format("; anonymous %s + file-backed %s", L.fmt_mib(fp.anon), L.fmt_mib(fp.file)) or "",
    L.fmt_mib(op.rss_full))
  p("| 4 | bytes per cached object (ΔRSS / Δobjects) | %s | ≤ 2 KiB | %s |",
    per_obj and string.format("%.2f KiB", per_obj / 1024) or "—", verdict(per_obj, 2048))
  local cpr = {}
  for _, r in ipairs(op.small or {}) do cpr[#cpr + 1] = r.cpu_per_reconcile end
  p("| 5 | operator CPU per reconcile during the burst, N=%d / N=%d | %s / %s | | |", CFG.small_n, large_n,
    L.fmt_dur(L.median(cpr)), L.fmt_dur(op.large and op.large.cpu_per_reconcile))
  local ecp = {}
  for _, r in ipairs(op.small or {}) do ecp[#ecp + 1] = r.engine_cpu_p50 end
  local e_small, e_large = L.median(ecp), op.large and op.large.engine_cpu_p50
  local e_worst = (e_small or e_large) and math.max(e_small or 0, e_large or 0) or nil
  p("| 5 | reconcile CPU, median: the script call alone (schedsim_reconcile_engine_cpu_seconds), N=%d / N=%d "
    .. "| %s / %s | ≤ 1 ms | %s |", CFG.small_n, large_n, L.fmt_dur(e_small), L.fmt_dur(e_large),
    verdict(e_worst, 0.001))
  -- fewer reconciles per CR (batched child events, echoes skipped) raise the per-reconcile
  -- figure while the work per CR falls: both are printed
  local cpc, rpc = {}, {}
  for _, r in ipairs(op.small or {}) do
    cpc[#cpc + 1] = r.cpu / r.n
    rpc[#rpc + 1] = r.reconciles / r.n
  end
  local lg = op.large
  p("| 5 | operator CPU per CR during the burst (reconciles per CR), N=%d / N=%d | %s (%.1f) / %s (%s) | | |",
    CFG.small_n, large_n, L.fmt_dur(L.median(cpc)), L.median(rpc) or 0,
    L.fmt_dur(lg and lg.cpu and lg.cpu / lg.n),
    lg and lg.reconciles and string.format("%.1f", lg.reconciles / lg.n) or "—")
  local rl = op.reload or {}
  if rl.status == "ok" then
    p("| 6 | hot reload: ConfigMap update → script swap (%s)%s | %s | ≤ 100 ms | %s |", rl.swap_source or "",
      rl.check and (", of which checking the new set " .. L.fmt_dur(rl.check)) or "", L.fmt_dur(rl.swap),
      verdict(rl.swap, 0.1))
    if rl.loop then
      p("| 6 | hot reload: the swap itself on the event loop (controllers switch sets, every CR enqueued; "
        .. "the check runs before it on a worker thread while the old set serves) | %s | ≤ 100 ms | %s |",
        L.fmt_dur(rl.loop), verdict(rl.loop, 0.1))
    end
    p("| 6 | hot reload: ConfigMap update → all %s CRs re-reconciled | %s | | |", tostring(rl.crs), L.fmt_dur(rl.all))
  else
    p("| 6 | hot reload | %s | ≤ 100 ms | |", rl.status or "not run")
  end
  p("| 7 | offline `render -f examples/simulatordeployment-full.yaml`: process wall (CPU), median of %s "
    .. "| %s (%s) | < 100 ms | %s |", tostring(rd.runs or 0), L.fmt_dur(rd.median), L.fmt_dur(rd.cpu_median),
    verdict(rd.median, 0.1))
  local nz = op.noise
  if nz then
    p("| 4 | cluster noise: %d ConfigMaps and %d Services (+ EndpointSlices) of others created: operator RSS "
      .. "before → after; objects cached; operator CPU in the %.0f s window | %s → %s; %d → %d; %.2f s "
      .. "| no growth | %s |",
      nz.configmaps, nz.services, nz.window or 0, L.fmt_mib(nz.rss_before), L.fmt_mib(nz.rss_after),
      nz.objects_before or 0, nz.objects_after or 0, nz.cpu or 0,
      (nz.objects_after == nz.objects_before and nz.rss_after and nz.rss_before
        and nz.rss_after - nz.rss_before < 1024 * 1024) and "meets" or "misses")
  end
  local fa = op.fairness
  if fa and fa.status == "ok" then
    p("| 8 | fairness: an unrelated CR's create → Ready p50 with %d CRs whose script loops ÷ without (%s ÷ %s) "
      .. "| ×%.2f | ≤ ×2 | %s |", fa.n_loop, L.fmt_dur(fa.with.ready_p50), L.fmt_dur(fa.without.ready_p50),
      fa.ratio or 0, verdict(fa.ratio, 2))
  else
    p("| 8 | fairness | %s | ≤ ×2 | |", fa and fa.status or "not run")
  end
  if rd.script then
    local last = ""
    for l in (rd.script.output or ""):gmatch("[^\n]+") do last = l end
    p("| 7 | `bench/render` (last line of its output) | %s | < 100 ms | |", (last:gsub("|", "\\|")))
  end
  p("")
  p("## Details")
  p("")
  p("**Floor**: a bare client (`bench/floor.c`: libcurl, HTTP/2, one connection) makes the writes the "
    .. "operator's scenario needs at the least — create the CR, then server-side apply its children as "
    .. "`render` gives them (ownerReferences with the new uid) and its status — %d creates and %d CRs' "
    .. "applies in flight. Its CRs are of a copy of the CRD in group `floor.bench.sim.llm-d.io`, and the "
    .. "operator is stopped while it runs. **Operator**: the same client creates the CRs (%d in flight); the "
    .. "time ends when the last CR has its first status write (observedGeneration) and the last child "
    .. "exists. Every burst runs in fresh namespaces; floor and operator runs alternate on one control plane.",
    CFG.concurrency, CFG.concurrency, CFG.concurrency)
  p("")
  p("| run | operator | floor | ratio | operator CPU | reconciles | CPU / reconcile | mean reconcile "
    .. "(incl. writes) | mean PATCH latency | apiserver CPU op / floor | etcd CPU op / floor | load |")
  p("|---|---|---|---|---|---|---|---|---|---|---|---|")
  local function detail(name, o, f)
    if not o then return end
    local oc, fc = o.cp_cpu or {}, f and f.cp_cpu or {}
    local function cs(x) return x and string.format("%.1f s", x) or "—" end
    p("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s | %s / %s | %s |", name, L.fmt_dur(o.seconds),
      L.fmt_dur(f and f.seconds),
      (o.seconds and f and f.seconds and f.seconds > 0) and f2(o.seconds / f.seconds) or "—",
      cs(o.cpu), o.reconciles and string.format("%d", o.reconciles) or "—", L.fmt_dur(o.cpu_per_reconcile),
      L.fmt_dur(o.reconcile_time_mean), L.fmt_dur(o.patch_latency_mean), cs(oc.apiserver), cs(fc.apiserver),
      cs(oc.launcher), cs(fc.launcher), loads({ o, f }))
  end
  for _, b in ipairs(op.bursts or { { ops = op.small or {}, floors = op.floor_small or {} } }) do
    for i, o in ipairs(b.ops) do detail(string.format("N=%d #%d", o.n, i), o, b.floors[i]) end
  end
  detail(string.format("N=%d", large_n), op.large, op.floor_large)
  p("")
  local function writes_line(name, r)
    if not r or not r.writes then return end
    local w, e = {}, {}
    for k, v in pairs(r.writes) do w[#w + 1] = string.format("%s %d", k, v) end
    for k, v in pairs(r.failed or {}) do e[#e + 1] = string.format("%s ×%d", k, v) end
    table.sort(w)
    table.sort(e)
    local rs = {}
    for k, v in pairs(r.reads or {}) do rs[#rs + 1] = string.format("%s %d", k, v) end
    table.sort(rs)
    p("- operator writes during %s: %s%s; reads: %s; CR created → first child apply p50 %s / p95 %s under load.",
      name, table.concat(w, ", "), #e > 0 and (" (non-2xx: " .. table.concat(e, ", ") .. ")") or "",
      #rs > 0 and table.concat(rs, ", ") or "none", L.fmt_dur(r.create_to_first_apply_p50),
      L.fmt_dur(r.create_to_first_apply_p95))
  end
  writes_line(string.format("burst N=%d", large_n), op.large)
  for _, b in ipairs(op.bursts or { { n = CFG.small_n, ops = op.small or {} } }) do
    writes_line(string.format("burst N=%d #1", b.n), b.ops[1])
  end
  local nz2 = op.noise
  if nz2 and nz2.requests then
    local rq = {}
    for k, v in pairs(nz2.requests) do rq[#rq + 1] = string.format("%s %d", k, v) end
    table.sort(rq)
    p("- cluster noise window: %d reconciles; the operator's requests (audit, leases aside): %s.",
      nz2.reconciles or 0, #rq > 0 and table.concat(rq, ", ") or "none")
  end
  local touched, floors, failed = 0, {}, 0
  for _, b in ipairs(op.bursts or { { floors = op.floor_small or {} } }) do
    for _, r in ipairs(b.floors) do floors[#floors + 1] = r end
  end
  floors[#floors + 1] = op.floor_large
  for _, r in ipairs(floors) do
    touched = touched + (r.operator_writes_after or 0)
    failed = failed + (r.failed or 0)
  end
  p("- floor: every request of its %d runs got a 2xx: %s; operator writes to the floor's namespaces after its "
    .. "restart: %d.", #floors, tostring(#floors > 0 and failed == 0), touched)
  if st.cpu then
    p("- steady state: %.2f operator CPU s in %.0f s (%d reconciles%s%s), rest_client "
      .. "non-GET requests %d; %s of %s Deployments had their pod ready when the window began.", st.cpu, st.seconds,
      st.reconciles or 0, (st.reconciles or 0) > 0 and ": the periodic resync" or "",
      st.reconcile_time_mean and (", mean reconcile " .. L.fmt_dur(st.reconcile_time_mean)
        .. " with nothing to write") or "", st.rest_client_writes or 0, tostring(op.ready_before_steady),
      tostring(large_n))
  end
  if op.objects_by_kind then
    local k = {}
    for name, v in pairs(op.objects_by_kind) do if v > 0 then k[#k + 1] = string.format("%s %d", name, v) end end
    table.sort(k)
    p("- objects cached with %s CRs (the operator's schedsim_cache_objects, by kind): %s.",
      tostring(op.crs_full), table.concat(k, ", "))
  end
  local sizes = {}
  for _, b in ipairs(op.bursts or { { n = CFG.small_n } }) do sizes[#sizes + 1] = "N=" .. b.n end
  p("- runs: %sN=%d ×1 (the N=%d burst dominates the bench time on 2 cores); latency over %d CRs; "
    .. "steady state %d s; figures are medians where there are several runs; a timing never fails the bench.",
    #sizes > 0 and string.format("%s ×%d each and ", table.concat(sizes, ", "), CFG.small_runs) or "",
    large_n, large_n, CFG.latency_n, CFG.steady_s)
  print(table.concat(lines, "\n"))
end

local function phase_machine()
  local function first(cmd)
    local _, out = L.sh(cmd .. " 2>/dev/null")
    return (out:gsub("%s+$", ""))
  end
  local mem = tonumber((L.read_file("/proc/meminfo") or ""):match("MemTotal:%s*(%d+)") or "0")
  local cpu = (L.read_file("/proc/cpuinfo") or ""):match("model name%s*:%s*([^\n]+)") or "?"
  local dirty = first("git -C " .. L.q(L.root) .. " status --porcelain | head -1") ~= ""
  L.save("machine", {
    cores = first("nproc"),
    memory = string.format("%.1f GiB", mem / 1048576),
    cpu = cpu,
    kernel = first("uname -r"),
    date = os.date("!%Y-%m-%d %H:%M UTC"),
    tree = first("git -C " .. L.q(L.root) .. " rev-parse --short HEAD") .. (dirty and " + uncommitted changes" or ""),
  })
end

local phases = { machine = phase_machine, cluster = phase_cluster, render = phase_render, report = phase_report }
local which = arg[1]
if not phases[which] then
  io.stderr:write("usage: bench.lua floor|operator|render|report\n")
  os.exit(2)
end
math.randomseed(os.time())
phases[which]()
