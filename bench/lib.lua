--- bench/lib.lua: helpers of the benchmark harness (bench/README.md): shell,
--- clocks, JSON (the runtime's own converter, k8srt.json, so [] stays []),
--- the audit log, Prometheus text, /proc, statistics.
local M = {}

M.root = assert(os.getenv("BENCH_ROOT"), "BENCH_ROOT not set (run bench/run)")
M.build = assert(os.getenv("BENCH_BUILD"), "BENCH_BUILD not set (run bench/run)")
M.out = assert(os.getenv("BENCH_OUT"), "BENCH_OUT not set (run bench/run)")
M.bin = M.build .. "/schedsim-operator"
M.floor_bin = M.build .. "/bench-floor"
package.cpath = M.build .. "/lua/?.so;" .. package.cpath

local found, k8srt = pcall(require, "k8srt")
if not found then
  error("bench: cannot load k8srt.so from " .. M.build .. "/lua (built by cmake --build " .. M.build .. "): "
    .. tostring(k8srt), 0)
end
M.json = k8srt.json
M.array = k8srt.array
M.null = k8srt.null

---------------------------------------------------------------------------
-- shell and clocks
---------------------------------------------------------------------------

--- Shell-quotes s.
function M.q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- Runs cmd; returns ok, stdout (stderr goes to the bench log unless redirected).
function M.sh(cmd)
  local p = assert(io.popen("(" .. cmd .. "); echo \"__rc=$?\""))
  local out = p:read("a")
  p:close()
  local rc = tonumber(out:match("__rc=(%d+)%s*$")) or -1
  return rc == 0, (out:gsub("__rc=%d+%s*$", "")), rc
end

--- Runs cmd, failing the bench when it fails; returns stdout.
function M.must(cmd)
  local ok, out, rc = M.sh(cmd .. " 2>&1")
  if not ok then error(string.format("command failed (%d): %s\n%s", rc, cmd, out), 2) end
  return out
end

--- Wall clock, seconds since the epoch, with sub-millisecond resolution
--- (the audit log's clock: same machine).
function M.now()
  local p = io.popen("date +%s.%N")
  local t = tonumber(p:read("l"))
  p:close()
  return t
end

function M.sleep(s)
  os.execute(string.format("sleep %.3f", s))
end

--- Progress line on stderr.
function M.log(fmt, ...)
  io.stderr:write(os.date("!%H:%M:%S "), "bench: ", string.format(fmt, ...), "\n")
  io.stderr:flush()
end

function M.read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

function M.write_file(path, text)
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
end

---------------------------------------------------------------------------
-- time
---------------------------------------------------------------------------

local function days_from_civil(y, m, d)
  y = m <= 2 and y - 1 or y
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * (m + (m > 2 and -3 or 9)) + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

--- "2026-11-29T17:31:00.844260Z" (or with a ±hh:mm offset) -> epoch seconds.
function M.parse_time(s)
  if type(s) ~= "string" then return nil end
  local y, mo, d, h, mi, sec, frac, zone = s:match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)(%.?%d*)(.*)$")
  if not y then return nil end
  local t = days_from_civil(tonumber(y), tonumber(mo), tonumber(d)) * 86400
    + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(sec)
  if frac ~= "" and frac ~= "." then t = t + tonumber("0" .. frac) end
  local sign, zh, zm = zone:match("^([+-])(%d+):(%d+)$")
  if sign then
    local off = tonumber(zh) * 3600 + tonumber(zm) * 60
    t = sign == "+" and t - off or t + off
  end
  return t
end

---------------------------------------------------------------------------
-- audit log
---------------------------------------------------------------------------

--- Reads audit events appended to `path` since byte `offset`, keeping lines
--- that contain one of `needles` (plain substrings, to skip decoding the
--- control plane's own traffic). Returns the events (each with `t_recv`,
--- `t_done` in epoch seconds) and the new offset.
function M.audit_read(path, offset, needles)
  local events = {}
  offset = offset or 0
  -- the API server rotates its audit log (--audit-log-maxsize): a file
  -- shorter than offset is a new one, and the rest of the old one is in the
  -- newest backup beside it (audit-<time>.log)
  if M.file_size(path) < offset then
    local dir, base = path:match("^(.*)/([^/]+)%.log$")
    local _, list = M.sh(string.format("ls -1t %s/%s-*.log 2>/dev/null | head -1", M.q(dir or "."), base or "audit"))
    local backup = list:match("[^\n]+")
    if backup then
      local old = M.audit_read(backup, offset, needles)
      for _, e in ipairs(old) do events[#events + 1] = e end
    end
    offset = 0
  end
  local f = assert(io.open(path, "rb"))
  f:seek("set", offset)
  local pos = offset
  while true do
    local line = f:read("L")
    if not line then break end
    if line:sub(-1) ~= "\n" then break end -- a line being written: read it next time
    pos = pos + #line
    local keep = false
    for _, n in ipairs(needles) do
      if line:find(n, 1, true) then keep = true break end
    end
    if keep then
      local ok, e = pcall(M.json.decode, line)
      if ok and type(e) == "table" then
        e.t_recv = M.parse_time(e.requestReceivedTimestamp)
        e.t_done = M.parse_time(e.stageTimestamp)
        events[#events + 1] = e
      end
    end
  end
  f:close()
  return events, pos
end

--- Size of a file in bytes (the audit offset "now").
function M.file_size(path)
  local f = io.open(path, "rb")
  if not f then return 0 end
  local n = f:seek("end")
  f:close()
  return n
end

local WRITE = { create = true, update = true, patch = true, delete = true, deletecollection = true }
M.WRITE_VERBS = WRITE

function M.is_write(e)
  return WRITE[e.verb] == true
end

function M.user(e)
  return type(e.user) == "table" and e.user.username or nil
end

function M.ok_code(e)
  local c = type(e.responseStatus) == "table" and e.responseStatus.code or 0
  return c >= 200 and c < 300
end

function M.ref(e)
  return type(e.objectRef) == "table" and e.objectRef or {}
end

---------------------------------------------------------------------------
-- metrics and /proc
---------------------------------------------------------------------------

--- Scrapes a Prometheus text endpoint; returns { [name] = { {labels=..., value=...}, ... } } or nil.
function M.scrape(url)
  local ok, text = M.sh("curl -s --max-time 5 " .. M.q(url))
  if not ok or text == "" then return nil end
  local out = {}
  for line in text:gmatch("[^\n]+") do
    if line:sub(1, 1) ~= "#" then
      local name, labels, value = line:match("^([%w_:]+)(%b{})%s+(%S+)")
      if not name then
        name, value = line:match("^([%w_:]+)%s+(%S+)")
        labels = ""
      end
      if name then
        local l = {}
        for k, v in labels:gmatch('([%w_]+)="([^"]*)"') do l[k] = v end
        out[name] = out[name] or {}
        table.insert(out[name], { labels = l, value = tonumber(value) })
      end
    end
  end
  return out
end

--- Sum of a metric's samples whose labels include `match` (all if nil).
function M.metric_sum(m, name, match)
  local s = 0
  for _, x in ipairs((m and m[name]) or {}) do
    local ok = true
    for k, v in pairs(match or {}) do
      if x.labels[k] ~= v then ok = false end
    end
    if ok and x.value then s = s + x.value end
  end
  return s
end

--- Quantile q (0..1) of histogram `name` (labels including `match`) over the
--- observations between scrapes m0 and m1, by linear interpolation inside the
--- bucket it falls in (Prometheus' histogram_quantile); nil without observations.
function M.histogram_quantile(m0, m1, name, match, q)
  local function buckets(m)
    local t = {}
    for _, x in ipairs((m and m[name .. "_bucket"]) or {}) do
      local ok = true
      for k, v in pairs(match or {}) do
        if x.labels[k] ~= v then ok = false end
      end
      if ok then
        local le = x.labels.le == "+Inf" and math.huge or tonumber(x.labels.le)
        t[le] = (t[le] or 0) + x.value
      end
    end
    return t
  end
  local b0, b1 = buckets(m0), buckets(m1)
  local les = {}
  for le in pairs(b1) do les[#les + 1] = le end
  table.sort(les)
  local total = #les > 0 and (b1[les[#les]] - (b0[les[#les]] or 0)) or 0
  if total <= 0 then return nil end
  local rank, prev_le, prev_n = q * total, 0, 0
  for _, le in ipairs(les) do
    local n = b1[le] - (b0[le] or 0)
    if n >= rank then
      if le == math.huge then return prev_le end
      return prev_le + (le - prev_le) * (rank - prev_n) / math.max(n - prev_n, 1e-12)
    end
    prev_le, prev_n = le, n
  end
  return prev_le
end

--- CPU seconds (user + system) a process has used, or nil.
function M.cpu_seconds(pid)
  local s = M.read_file("/proc/" .. pid .. "/stat")
  if not s then return nil end
  local rest = s:match("%) (.*)$")
  local f = {}
  for w in rest:gmatch("%S+") do f[#f + 1] = w end
  -- fields after the command: state(1) ... utime(12) stime(13)
  return (tonumber(f[12]) + tonumber(f[13])) / M.clk_tck()
end

local tck
function M.clk_tck()
  if not tck then
    local ok, out = M.sh("getconf CLK_TCK")
    tck = ok and tonumber(out) or 100
  end
  return tck
end

--- { anon = bytes, file = bytes } of a process (RssAnon, RssFile), or nil.
function M.rss_parts(pid)
  local s = M.read_file("/proc/" .. pid .. "/status")
  if not s then return nil end
  local a, f = s:match("RssAnon:%s*(%d+)"), s:match("RssFile:%s*(%d+)")
  if not a or not f then return nil end
  return { anon = tonumber(a) * 1024, file = tonumber(f) * 1024 }
end

--- The 1-minute load average.
function M.loadavg()
  local s = M.read_file("/proc/loadavg") or ""
  return tonumber(s:match("^(%S+)"))
end

--- Resident set size in bytes, or nil.
function M.rss(pid)
  local s = M.read_file("/proc/" .. pid .. "/status")
  local kb = s and s:match("VmRSS:%s*(%d+)")
  return kb and tonumber(kb) * 1024 or nil
end

---------------------------------------------------------------------------
-- statistics and formatting
---------------------------------------------------------------------------

--- q-quantile (0..1) of a list of numbers, nearest rank; nil when empty.
function M.quantile(xs, q)
  if #xs == 0 then return nil end
  local s = {}
  for i, x in ipairs(xs) do s[i] = x end
  table.sort(s)
  local idx = math.max(1, math.ceil(q * #s))
  return s[idx]
end

--- Median (mean of the middle two for an even count).
function M.median(xs)
  if #xs == 0 then return nil end
  local s = {}
  for i, x in ipairs(xs) do s[i] = x end
  table.sort(s)
  local n = #s
  if n % 2 == 1 then return s[(n + 1) // 2] end
  return (s[n // 2] + s[n // 2 + 1]) / 2
end

--- "12.3 ms" / "1.23 s" for a duration in seconds; "—" for nil.
function M.fmt_dur(s)
  if s == nil then return "—" end
  if s < 0.001 then return string.format("%.0f µs", s * 1e6) end
  if s < 1 then return string.format("%.1f ms", s * 1000) end
  return string.format("%.2f s", s)
end

function M.fmt_mib(b)
  if b == nil then return "—" end
  return string.format("%.1f MiB", b / 1048576)
end

function M.save(name, value)
  M.write_file(M.out .. "/" .. name .. ".json", M.json.encode(value))
end

function M.load(name)
  local s = M.read_file(M.out .. "/" .. name .. ".json")
  if not s then return nil end
  local ok, v = pcall(M.json.decode, s)
  return ok and v or nil
end

return M
