--- A small busted helper for specs that run against the local control plane
--- (spec/cluster/run exports KUBECONFIG, SCHEDSIM_OPERATOR_KUBECONFIG,
--- SCHEDSIM_CLUSTER_CTL, SCHEDSIM_CLUSTER_DIR). Generic: shell, kubectl,
--- JSON, polling, background processes, the audit log.
---
---   local cluster = require("cluster")
---   if not cluster.available() then pending("no cluster") return end
---   local ns = cluster.namespace("kube-watch")         -- fresh namespace, deleted by cluster.cleanup()
---   cluster.must("create configmap a -n " .. ns)
---   local p = cluster.spawn(cluster.tool("kubeprobe") .. " watch --api-version v1 --kind ConfigMap -n " .. ns)
---   cluster.eventually(20, "synced", function() return p:find(function(l) return l.type == "SYNCED" end) end)
---   p:stop()                                              -- SIGTERM, then wait; returns the exit code
local M = {}

-- JSON through the runtime's own converter (jansson, k8srt.json), the one the
-- operator and spec/support/fake_k8s.lua use: [] stays [], {} stays {}, whole
-- numbers are integers. cmake/run-spec puts build/lua on LUA_CPATH.
local k8srt = require("k8srt")

M.json = k8srt.json
M.null = k8srt.null
M.array = k8srt.array

--- Shell-quotes s.
function M.q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- Sleeps `s` seconds (fractions allowed).
function M.sleep(s)
  os.execute("sleep " .. string.format("%.3f", s))
end

--- Monotonic-enough wall clock with sub-second resolution.
function M.now()
  local p = io.popen("date +%s.%N")
  local t = tonumber(p:read("l"))
  p:close()
  return t
end

--- True when the specs run under spec/cluster/run (or an equivalent env).
function M.available()
  return os.getenv("KUBECONFIG") ~= nil and os.getenv("SCHEDSIM_CLUSTER_DIR") ~= nil
end

M.root = os.getenv("SCHEDSIM_ROOT") or "."
M.build = os.getenv("SCHEDSIM_BUILD") or (M.root .. "/build")
M.bin = os.getenv("SCHEDSIM_BIN") or (M.build .. "/schedsim-operator")

--- Path of a spec helper executable built from spec/tools/NAME.c.
--- For the first line of a cluster spec's `it`: false after calling
--- pending_fn (busted's `pending`, which only the spec file sees) when no
--- local control plane is there, else true.
function M.need(pending_fn)
  if not M.available() then
    pending_fn("needs the local control plane (spec/cluster/run)")
    return false
  end
  return true
end

--- The whole content of file `path` (raises when it cannot be read).
function M.read_file(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

--- Writes text to path (replacing it); raises when it cannot.
function M.write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

function M.tool(name)
  return M.build .. "/tools/" .. name
end

--- sh(cmd[, input]) -> ok, output (stdout and stderr), exit code.
function M.sh(cmd, input)
  local tmp
  if input then
    tmp = os.tmpname()
    local f = assert(io.open(tmp, "w"))
    f:write(input)
    f:close()
    cmd = "(" .. cmd .. ") < " .. M.q(tmp)
  end
  local p = assert(io.popen("(" .. cmd .. ") 2>&1; echo \"__rc=$?\""))
  local out = p:read("a")
  p:close()
  if tmp then os.remove(tmp) end
  local code = tonumber(out:match("__rc=(%d+)%s*$")) or -1
  return code == 0, (out:gsub("__rc=%d+%s*$", "")), code
end

--- Like sh but only stdout (stderr discarded).
function M.sh_stdout(cmd)
  local p = assert(io.popen("(" .. cmd .. ") 2>/dev/null; echo \"__rc=$?\""))
  local out = p:read("a")
  p:close()
  local code = tonumber(out:match("__rc=(%d+)%s*$")) or -1
  return code == 0, (out:gsub("__rc=%d+%s*$", "")), code
end

--- kubectl(args[, input[, kubeconfig]]) -> ok, output, code. kubeconfig defaults to $KUBECONFIG (admin).
function M.kubectl(args, input, kubeconfig)
  local kc = kubeconfig and ("--kubeconfig " .. M.q(kubeconfig) .. " ") or ""
  return M.sh("kubectl " .. kc .. args, input)
end

--- kubectl that must succeed; returns its output.
function M.must(args, input, kubeconfig)
  local ok, out = M.kubectl(args, input, kubeconfig)
  assert(ok, "kubectl " .. args .. " failed:\n" .. out)
  return out
end

--- Decodes JSON text (nil, err on failure); whole numbers as Lua integers.
function M.decode(text)
  return k8srt.json.decode(text)
end

--- The object as a table, or nil, error text. ns may be nil (cluster-scoped).
function M.get(kind, name, ns)
  local args = "get " .. kind .. " " .. M.q(name) .. (ns and (" -n " .. M.q(ns)) or "") .. " -o json"
  local ok, out = M.sh_stdout("kubectl " .. args)
  if not ok then return nil, out end
  return M.decode(out)
end

--- Applies a Lua table (encoded as JSON) with kubectl apply --server-side.
function M.apply(obj, extra)
  return M.must("apply --server-side --field-manager=spec -f - " .. (extra or ""), k8srt.json.encode(obj))
end

--- Polls fn every `interval` (default 0.2 s) until it returns a truthy first
--- value (returned), or fails after `timeout` seconds naming `what` and the
--- last value or error.
function M.eventually(timeout, what, fn, interval)
  local deadline = M.now() + timeout
  local last
  while true do
    local ok, v, extra = pcall(fn)
    if ok and v then return v, extra end
    last = ok and tostring(extra or v) or tostring(v)
    if M.now() > deadline then
      error(string.format("timed out after %ss waiting for %s (last: %s)", timeout, what, last), 2)
    end
    M.sleep(interval or 0.2)
  end
end

--- Runs $SCHEDSIM_CLUSTER_CTL with args; returns its output, fails on error.
function M.ctl(args)
  local ctl = assert(os.getenv("SCHEDSIM_CLUSTER_CTL"), "SCHEDSIM_CLUSTER_CTL not set")
  local ok, out = M.sh(ctl .. " " .. args)
  assert(ok, "ctl " .. args .. " failed:\n" .. out)
  return out
end

---------------------------------------------------------------------------
-- namespaces
---------------------------------------------------------------------------
local created = {}
local counter = 0

--- Creates a fresh namespace named PREFIX-<random> and returns its name.
function M.namespace(prefix)
  counter = counter + 1
  local name = string.format("%s-%d-%d", prefix, os.time() % 100000, counter)
  M.must("create namespace " .. name)
  created[#created + 1] = name
  return name
end

--- Opens namespace `target` to the CRs of namespace `source`: the label an
--- administrator sets (doc/security.md).
function M.grant(target, source)
  M.must(("label namespace %s allow-from.sim.llm-d.io/%s=true --overwrite"):format(target, source))
end

--- Applies the operator's CRDs (crds/, server-side) the way a user installs
--- them and waits until both are Established.
function M.install_crds()
  M.must("apply --server-side --force-conflicts -f " .. M.q(M.root .. "/crds/"))
  M.must("wait --for condition=Established --timeout=60s crd/simulatordeployments.sim.llm-d.io "
    .. "crd/schedulerinstalls.sim.llm-d.io")
end

--- Deletes the namespaces created by M.namespace (without waiting).
function M.cleanup()
  for _, ns in ipairs(created) do
    M.kubectl("delete namespace " .. ns .. " --wait=false")
  end
  created = {}
end

---------------------------------------------------------------------------
-- background processes
---------------------------------------------------------------------------
local Proc = {}
Proc.__index = Proc

--- Starts `cmd` in the background (its own process, stdout and stderr to
--- files). Returns a Proc: p.pid, p:lines() (stdout lines), p:json()
--- (stdout lines decoded, non-JSON skipped), p:find(pred), p:stderr(),
--- p:log(msg, pred) / p:log_find(msg) (the operator's JSON log on stderr),
--- p:alive(), p:signal(sig), p:wait(timeout) -> exit code or nil, p:stop(timeout).
function M.spawn(cmd, env)
  local base = os.tmpname()
  local self = setmetatable({ out = base .. ".out", err = base .. ".err", rcfile = base .. ".rc",
                              pidfile = base .. ".pid", base = base }, Proc)
  local prefix = ""
  for k, v in pairs(env or {}) do prefix = prefix .. k .. "=" .. M.q(v) .. " " end
  local script = string.format("%s%s > %s 2> %s & p=$!; echo $p > %s; wait $p; echo $? > %s",
    prefix ~= "" and ("env " .. prefix) or "", cmd, M.q(self.out), M.q(self.err), M.q(self.pidfile),
    M.q(self.rcfile))
  os.execute("sh -c " .. M.q(script) .. " >/dev/null 2>&1 &")
  self.pid = M.eventually(10, "pid of " .. cmd, function()
    local f = io.open(self.pidfile)
    if not f then return nil end
    local pid = tonumber(f:read("l") or "")
    f:close()
    return pid
  end, 0.05)
  return self
end

--- Starts the operator binary (`schedsim-operator run`) the way every e2e
--- spec does: metrics and health on free loopback ports, the bundled
--- scripts, the admin kubeconfig of the environment unless told otherwise.
--- opts (all optional): kubeconfig (path; `true`: the operator user's,
--- $SCHEDSIM_OPERATOR_KUBECONFIG), scripts (dir; false: none given, the
--- binary's default), args (extra flags, a string), env (table), wait
--- (a log message to wait for, default "starting manager"; false: do not
--- wait), timeout (seconds, default 60). Returns the Proc (cluster.spawn);
--- p.started is the "starting manager" log line (metricsPort, healthPort)
--- once waited for.
function M.start_operator(opts)
  opts = opts or {}
  local kc = opts.kubeconfig == true and os.getenv("SCHEDSIM_OPERATOR_KUBECONFIG") or opts.kubeconfig
  local parts = { M.q(M.bin), "run", "--metrics-bind-address 127.0.0.1:0", "--health-probe-bind-address 127.0.0.1:0" }
  if kc then parts[#parts + 1] = "--kubeconfig " .. M.q(kc) end
  if opts.scripts ~= false then parts[#parts + 1] = "--scripts " .. M.q(opts.scripts or (M.root .. "/scripts")) end
  if opts.args then parts[#parts + 1] = opts.args end
  local p = M.spawn(table.concat(parts, " "), opts.env)
  local wait = opts.wait == nil and "starting manager" or opts.wait
  if wait then
    local line = M.eventually(opts.timeout or 60, "the operator log line " .. wait, function()
      if not p:alive() then error("the operator exited at start:\n" .. p:stderr(), 0) end
      return p:log_find(wait)
    end)
    if wait == "starting manager" then p.started = line else p.started = p:log_find("starting manager") end
  end
  return p
end

local function read_all(path)
  local f = io.open(path)
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

function Proc:stdout() return read_all(self.out) end
function Proc:stderr() return read_all(self.err) end

function Proc:lines()
  local t = {}
  for l in self:stdout():gmatch("[^\n]+") do t[#t + 1] = l end
  return t
end

--- stdout lines decoded as JSON (lines that are not JSON are skipped).
function Proc:json()
  local t = {}
  for _, l in ipairs(self:lines()) do
    local v = M.decode(l)
    if type(v) == "table" then t[#t + 1] = v end
  end
  return t
end

--- The first decoded line for which pred(line) is true (or nil).
function Proc:find(pred)
  for _, v in ipairs(self:json()) do
    if pred(v) then return v end
  end
  return nil
end

--- Every decoded line for which pred(line) is true.
function Proc:filter(pred)
  local t = {}
  for _, v in ipairs(self:json()) do
    if pred(v) then t[#t + 1] = v end
  end
  return t
end

--- The JSON log records on stderr (the operator's log; other lines skipped),
--- only those whose `msg` is `msg` (when given) and for which pred(record)
--- is true (when given).
function Proc:log(msg, pred)
  local t = {}
  for l in self:stderr():gmatch("[^\n]+") do
    local v = M.decode(l)
    if type(v) == "table" and (msg == nil or v.msg == msg) and (not pred or pred(v)) then t[#t + 1] = v end
  end
  return t
end

--- The first log record whose `msg` is `msg`, or nil.
function Proc:log_find(msg)
  return self:log(msg)[1]
end

function Proc:alive()
  return read_all(self.rcfile) == "" and os.execute("kill -0 " .. self.pid .. " 2>/dev/null") == true
end

function Proc:signal(sig)
  os.execute("kill -" .. (sig or "TERM") .. " " .. self.pid .. " 2>/dev/null")
end

--- Waits up to `timeout` seconds for the exit; returns the exit code (128+N when killed by signal N), or nil.
function Proc:wait(timeout)
  local ok, code = pcall(M.eventually, timeout or 10, "exit", function()
    local s = read_all(self.rcfile)
    return tonumber(s:match("%d+"))
  end, 0.05)
  if ok then return code end
  return nil
end

--- SIGTERM, wait (default 10 s), SIGKILL if still running. Returns the exit code.
function Proc:stop(timeout)
  self:signal("TERM")
  local code = self:wait(timeout or 10)
  if code == nil then
    self:signal("KILL")
    code = self:wait(5)
  end
  return code
end

--- With SCHEDSIM_CLUSTER_LOGS_TO set (spec/cluster/run), keeps the process's
--- stdout and stderr there as `name`, and copies each of `dirs` (a table
--- {source = dest-name}) beside it, for a failed CI run to be read later.
function Proc:keep_log(name, dirs)
  local dest = os.getenv("SCHEDSIM_CLUSTER_LOGS_TO")
  if not dest then return end
  local f = io.open(dest .. "/" .. name, "w")
  if f then f:write(self:stdout(), self:stderr()); f:close() end
  for src, to in pairs(dirs or {}) do M.sh("cp -r " .. M.q(src) .. " " .. M.q(dest .. "/" .. to)) end
end

--- Removes the temporary files.
--- Stops the process, keeps its log (keep_log) and removes its files.
function Proc:finish(name, dirs)
  self:stop()
  self:keep_log(name, dirs)
  self:cleanup()
end

function Proc:cleanup()
  for _, f in ipairs({ self.out, self.err, self.rcfile, self.pidfile, self.base }) do os.remove(f) end
end

--- Why the local data plane cannot serve a spec (nil when it can): no control
--- plane, not started with --dataplane (or unshare refused), or the simulator
--- or the EPP did not build (spec/cluster/run sets SCHEDSIM_DATAPLANE,
--- SCHEDSIM_DATAPLANE_REASON and SCHEDSIM_DATAPLANE_SERVED).
function M.dataplane_missing()
  if not M.available() then return "no local control plane" end
  if os.getenv("SCHEDSIM_DATAPLANE") ~= "1" then
    return "no data plane: " .. (os.getenv("SCHEDSIM_DATAPLANE_REASON") or "not started with --dataplane")
  end
  local served = os.getenv("SCHEDSIM_DATAPLANE_SERVED") or ""
  if not (served:find("llm-d-inference-sim", 1, true) and served:find("llm-d-inference-scheduler", 1, true)) then
    return "the data plane serves only '" .. served .. "' (see spec/cluster/build-dataplane's output)"
  end
  return nil
end

--- busted's `it` for a spec that needs the data plane: its `pending` with
--- the reason when `why` (M.dataplane_missing()'s answer) is set. busted's
--- `it` and `pending` are given: they live in the spec file's environment,
--- not in this module's.
function M.dataplane_it(why, it, pending)
  return function(desc, fn)
    if why then pending(desc .. " (" .. why .. ")") return end
    it(desc, fn)
  end
end

--- The URL (http://ADDR) of Gateway ns/name's first listener on the local
--- data plane: the local gateway lists each listener it serves in the file
--- $SCHEDSIM_GATEWAYS ("NS GATEWAY LISTENER ADDR" per line,
--- spec/cluster/README.md). Waits up to `timeout` seconds (default 60).
function M.gateway_url(ns, name, timeout)
  return M.eventually(timeout or 60, "a listener of Gateway " .. ns .. "/" .. name .. " in $SCHEDSIM_GATEWAYS",
    function()
      local f = io.open(os.getenv("SCHEDSIM_GATEWAYS") or "")
      if not f then return nil end
      for line in f:lines() do
        local lns, lname, _, addr = line:match("^(%S+) (%S+) (%S+) (%S+)$")
        if lns == ns and lname == name then f:close(); return "http://" .. addr end
      end
      f:close()
    end)
end

---------------------------------------------------------------------------
-- audit log
---------------------------------------------------------------------------

--- Audit log entries (decoded JSON lines of $SCHEDSIM_CLUSTER_DIR/audit.log)
--- for which pred(entry) is true (all when pred is nil).
function M.audit(pred)
  local dir = assert(os.getenv("SCHEDSIM_CLUSTER_DIR"), "SCHEDSIM_CLUSTER_DIR not set")
  local t = {}
  local f = io.open(dir .. "/audit.log")
  if not f then return t end
  for l in f:lines() do
    local v = M.decode(l)
    if type(v) == "table" and (not pred or pred(v)) then t[#t + 1] = v end
  end
  f:close()
  return t
end

return M
