-- needs: dataplane (gateway classes: schedsim-local)
-- HANDS-ON.md, run: every ```sh block of the walkthrough, in order, in one
-- bash session against the local control plane (KUBECONFIG and
-- SCHEDSIM_OPERATOR_KUBECONFIG from spec/cluster/run), so the guide stays true.
--
-- Markers (an HTML comment on the last non-blank line before a block):
--   <!-- handson: skip-in-spec -->      not run: the blocks that build, start
--                                       the local control plane or leave its shell
--                                       (the spec already runs inside one);
--   <!-- handson: pending: REASON -->   not run, reported with busted's pending()
--                                       (a step written against an interface
--                                       that is not in the operator yet).
--
-- The control plane: a second instance of the local control plane of its own
-- ($SCHEDSIM_CLUSTER_EXE up, every third-party CRD), because the walkthrough
-- uses fixed names (namespaces llm-d-sim and llm-d-inference-scheduler, the
-- reference operator's child names) and an operator that watches every
-- namespace as user "operator": in the cluster `.ci/test` shares between
-- specs running in parallel (ctest -j2) it would meet the other specs' CRs,
-- operators and audit counts. SCHEDSIM_HANDSON_SHARED=1 uses the given
-- cluster instead (KUBECONFIG etc. from spec/cluster/run).
--
-- The session: one `bash` reading commands from a FIFO, started in its own
-- process group in the repository root, with $SCHEDSIM_BUILD first on the PATH
-- (the guide's skipped block puts build/ there). Each block is written to a
-- file and sourced with stdin from /dev/null and its output to a file; an ERR
-- trap (errtrace on) stops the block at the first failing command, as `set -e`
-- would, without ending the session, so variables, functions and background
-- jobs (the operator) carry over to the next block. A failing block fails its
-- `it` with the command, the line and the output; later blocks still run
-- (cleanup included). At the end the session's process group is killed, so
-- an operator left running by a failed block does not outlive the spec.
--
--   cmake/run-spec BUILD spec/e2e/handson_spec.lua     (starts the control plane)
local cluster = require("cluster")

local ROOT = cluster.root
local BLOCK_TIMEOUT = tonumber(os.getenv("SCHEDSIM_HANDSON_BLOCK_TIMEOUT") or "") or 300

local function read(path)
  local f = assert(io.open(path, "r"))
  local s = f:read("a")
  f:close()
  return s
end

local write = cluster.write_file

local function exists(path)
  local f = io.open(path, "r")
  if f then f:close() end
  return f ~= nil
end

--- The ```sh blocks of a Markdown text: { line, code, section, marker, reason }.
local function sh_blocks(text)
  local blocks, section, last_nonblank = {}, "", nil
  local in_block, buf, start, fence = false, nil, nil, nil
  local n = 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    if in_block then
      if line:match("^%s*" .. fence .. "%s*$") then
        in_block = false
        if buf then
          local marker, reason
          if last_nonblank then
            if last_nonblank:match("<!%-%-%s*handson:%s*skip%-in%-spec%s*%-%->") then
              marker = "skip"
            else
              reason = last_nonblank:match("<!%-%-%s*handson:%s*pending:?%s*(.-)%s*%-%->")
              if reason then marker = "pending" end
            end
          end
          blocks[#blocks + 1] = { line = start, code = table.concat(buf, "\n") .. "\n", section = section,
            marker = marker, reason = reason }
        end
        last_nonblank = nil
      elseif buf then
        buf[#buf + 1] = line
      end
    else
      local f, lang = line:match("^%s*(```+)%s*([%w_+-]*)")
      if f then
        in_block, fence, start = true, f, n
        buf = (lang == "sh") and {} or nil
      else
        local h = line:match("^#+%s+(.-)%s*$")
        if h then section = h end
        if line:match("%S") then last_nonblank = line end
      end
    end
  end
  return blocks
end

-- ------------------------------------------------------------ the session

local Session = {}
Session.__index = Session

local PRELUDE = [[
cd "$HANDSON_ROOT" || exit 1
export PATH="$HANDSON_BIN_DIR:$PATH"
__handson_fail=
__handson_trap() {
  [ -n "$__handson_fail" ] || __handson_fail="line $2 of the block: exit $1: $3"
}
__handson_run() {
  __handson_fail=
  set -E
  trap '__handson_trap "$?" "$LINENO" "$BASH_COMMAND"; [ "${#FUNCNAME[@]}" -eq 0 ] || return 1' ERR
  source "$HANDSON_DIR/block_$1.sh" < /dev/null > "$HANDSON_DIR/out_$1" 2>&1
}
__handson_report() {
  trap - ERR
  set +E
  printf '%s' "$__handson_fail" > "$HANDSON_DIR/err_$1"
  echo done > "$HANDSON_DIR/rc_$1"
}
]]

--- Starts a control plane of our own; returns the launcher Proc with
--- .env = { KUBECONFIG, SCHEDSIM_OPERATOR_KUBECONFIG, SCHEDSIM_CLUSTER_DIR }.
local function start_cluster()
  local exe = assert(os.getenv("SCHEDSIM_CLUSTER_EXE"), "SCHEDSIM_CLUSTER_EXE not set")
  -- spec/cluster/run exports SCHEDSIM_THIRDPARTY_CRDS, the launcher's default CRD dir
  assert(os.getenv("SCHEDSIM_THIRDPARTY_CRDS"), "SCHEDSIM_THIRDPARTY_CRDS not set (run under spec/cluster/run)")
  local p = cluster.spawn(("%s up --crds all"):format(cluster.q(exe)))
  local line = cluster.eventually(300, "a control plane for HANDS-ON.md", function()
    assert(p:alive(), "launcher exited:\n" .. p:stderr():sub(-2000))
    return p:stdout():match("schedsim%-cluster ready:[^\n]*"), p:stderr():sub(-300)
  end, 0.5)
  p.env = {
    KUBECONFIG = assert(line:match(" kubeconfig=(%S+)"), line),
    SCHEDSIM_OPERATOR_KUBECONFIG = assert(line:match(" operator%-kubeconfig=(%S+)"), line),
    SCHEDSIM_CLUSTER_DIR = assert(line:match(" dir=(%S+)"), line),
  }
  return p
end

local function start_session(env)
  local ok, dir = cluster.sh_stdout("mktemp -d \"${TMPDIR:-/tmp}/handson.XXXXXX\"")
  assert(ok, "mktemp failed")
  dir = dir:gsub("%s+$", "")
  assert(cluster.sh("mkfifo " .. cluster.q(dir .. "/in")))
  write(dir .. "/prelude.sh", PRELUDE)
  local bin_dir = (cluster.bin:match("^(.*)/[^/]+$")) or cluster.build
  -- setsid: its own process group (pgid = its pid), killed as a whole at the end;
  -- `bash -s` executes each command as it arrives on the FIFO
  local vars = ("HANDSON_ROOT=%s HANDSON_DIR=%s HANDSON_BIN_DIR=%s"):format(cluster.q(ROOT), cluster.q(dir),
    cluster.q(bin_dir))
  for k, v in pairs(env or {}) do vars = vars .. " " .. k .. "=" .. cluster.q(v) end
  os.execute(("env %s setsid bash --norc --noprofile -s < %s > %s 2>&1 &")
    :format(vars, cluster.q(dir .. "/in"), cluster.q(dir .. "/session.log")))
  local self = setmetatable({ dir = dir, n = 0 }, Session)
  self.fifo = assert(io.open(dir .. "/in", "w")) -- blocks until bash has opened it
  self.fifo:write('echo $$ > "$HANDSON_DIR/pid"; . "$HANDSON_DIR/prelude.sh"\n')
  self.fifo:flush()
  self.pid = cluster.eventually(10, "session pid", function()
    local f = io.open(dir .. "/pid")
    if not f then return nil end
    local pid = tonumber(f:read("l") or "")
    f:close()
    return pid
  end, 0.05)
  return self
end

function Session:alive()
  return os.execute("kill -0 " .. self.pid .. " 2>/dev/null") == true
end

--- Runs one block; returns ok, failure text (command and line), output.
function Session:run(code, timeout)
  self.n = self.n + 1
  local n = self.n
  write(("%s/block_%d.sh"):format(self.dir, n), code)
  self.fifo:write(("__handson_run %d; __handson_report %d\n"):format(n, n))
  self.fifo:flush()
  local rc_file = ("%s/rc_%d"):format(self.dir, n)
  local deadline = cluster.now() + timeout
  while not exists(rc_file) do
    if not self:alive() then
      return false, "the bash session ended", self:output(n)
    end
    if cluster.now() > deadline then
      self.dead = true
      return false, ("timed out after %ds"):format(timeout), self:output(n)
    end
    cluster.sleep(0.2)
  end
  local err = read(("%s/err_%d"):format(self.dir, n))
  return err == "", err, self:output(n)
end

function Session:output(n)
  local f = io.open(("%s/out_%d"):format(self.dir, n))
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

function Session:stop()
  if self.fifo then
    self.fifo:close()
    self.fifo = nil
  end
  cluster.sleep(0.5)
  os.execute("kill -TERM -- -" .. self.pid .. " 2>/dev/null")
  cluster.sleep(1)
  os.execute("kill -KILL -- -" .. self.pid .. " 2>/dev/null")
  if os.getenv("SCHEDSIM_HANDSON_KEEP") then
    print("handson session files kept in " .. self.dir)
  else
    os.execute("rm -rf " .. cluster.q(self.dir))
  end
end

local function tail(text, lines)
  local t = {}
  for l in text:gmatch("[^\n]*") do t[#t + 1] = l end
  local from = math.max(1, #t - lines + 1)
  return table.concat(t, "\n", from)
end

local function first_line(code)
  for l in code:gmatch("[^\n]+") do
    if l:match("%S") and not l:match("^%s*#") then return (l:gsub("^%s+", "")) end
  end
  return ""
end

-- ------------------------------------------------------------ the spec

describe("HANDS-ON.md", function()
  local blocks = sh_blocks(read(ROOT .. "/HANDS-ON.md"))

  it("has runnable sh blocks, and marks the ones that start and leave the control plane", function()
    local run, skip = 0, 0
    for _, b in ipairs(blocks) do
      if b.marker == "skip" then skip = skip + 1 elseif not b.marker then run = run + 1 end
    end
    assert.is_true(run >= 10, "expected at least 10 runnable sh blocks, found " .. run)
    assert.is_true(skip >= 1, "the block that starts the local control plane must be marked skip-in-spec")
    for _, b in ipairs(blocks) do
      if b.code:match("spec/cluster/run") or b.code:match("^%s*exit%s*$") or b.code:match("\n%s*exit%s*\n") then
        assert.equal("skip", b.marker, ("HANDS-ON.md line %d starts or leaves the control plane but is not "
          .. "marked <!-- handson: skip-in-spec -->"):format(b.line))
      end
    end
  end)

  if not cluster.available() then
    it("runs on the local control plane", function()
      pending("needs the local control plane (spec/cluster/run; cmake/run-spec starts one)")
    end)
    return
  end
  if not exists(cluster.bin) then
    it("runs with the operator binary", function()
      pending("no operator binary at " .. cluster.bin)
    end)
    return
  end

  local session, own
  setup(function()
    local env
    if os.getenv("SCHEDSIM_CLUSTER_EXE") and not os.getenv("SCHEDSIM_HANDSON_SHARED") then
      own = start_cluster()
      env = own.env
    end
    session = start_session(env)
  end)
  teardown(function()
    if session then session:stop() end
    if own then
      own:stop(60)
      own:cleanup()
    end
  end)

  local index = 0
  for _, b in ipairs(blocks) do
    if b.marker ~= "skip" then
      index = index + 1
      local title = ("block %d (line %d, %s): %s"):format(index, b.line, b.section, first_line(b.code))
      it(title, function()
        if b.marker == "pending" then
          pending(b.reason ~= "" and b.reason or "marked pending in HANDS-ON.md")
          return
        end
        assert.is_truthy(session, "the session did not start")
        assert.is_falsy(session.dead, "the session is gone (an earlier block timed out)")
        local t0 = cluster.now()
        local ok, err, out = session:run(b.code, BLOCK_TIMEOUT)
        if os.getenv("SCHEDSIM_HANDSON_TIMES") then
          io.stderr:write(("\nHANDS-ON.md line %d: %.1f s\n"):format(b.line, cluster.now() - t0))
        end
        if not ok then
          -- "line N of the block" -> the line in HANDS-ON.md (the fence is line b.line)
          err = err:gsub("^line (%d+) of the block", function(l)
            return ("HANDS-ON.md line %d"):format(b.line + tonumber(l))
          end)
          error(("block at HANDS-ON.md line %d failed: %s\n--- output (last 40 lines) ---\n%s")
            :format(b.line, err, tail(out, 40)), 0)
        end
      end)
    end
  end
end)
