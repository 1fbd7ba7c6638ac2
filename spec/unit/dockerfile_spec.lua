-- The Dockerfile cannot be built here (no container runtime), so this spec
-- checks what can go wrong without building it:
--   * every COPY source (of the build context) exists;
--   * both stages use the Debian release of this host, so that `dpkg -S` and
--     `ldd` here say what the image will hold;
--   * the runtime stage installs exactly the packages that hold the libraries
--     in the binary's DT_NEEDED list (minus libc6, part of every Debian
--     image), and those packages' dependencies provide every library `ldd`
--     shows;
--   * the install layout the image gets (`cmake --install` into the stage's
--     prefix, plus the runtime stage's COPYs) passes `schedsim-operator check`,
--     which `run` performs before it starts.
-- The binary: $SCHEDSIM_BIN (cmake/run-spec sets it), else build/schedsim-operator.
local ROOT = os.getenv("SCHEDSIM_ROOT") or "."
local BIN = os.getenv("SCHEDSIM_BIN") or (ROOT .. "/build/schedsim-operator")
local BUILD = os.getenv("SCHEDSIM_BUILD") or BIN:match("^(.*)/[^/]+$")

local shell = require("cluster") -- spec/support/cluster.lua: the shared shell helpers
local q, sh = shell.q, shell.sh

local function exists(path) return (sh("test -e " .. q(path))) end

local function sorted_keys(set)
  local t = {}
  for k in pairs(set) do t[#t + 1] = k end
  table.sort(t)
  return t
end

local function set_string(set) return "{" .. table.concat(sorted_keys(set), ", ") .. "}" end

-- ------------------------------------------------------------ the Dockerfile

--- Instructions of a Dockerfile, continuation lines joined, comments dropped:
--- list of { stage = n, op = "COPY", args = "…" }, and the stages
--- { { image = "debian:bookworm", name = "build" }, … }.
local function parse_dockerfile(path)
  local f = assert(io.open(path))
  local text = f:read("a")
  f:close()
  local lines, cur = {}, nil
  for raw in (text .. "\n"):gmatch("([^\n]*)\n") do
    -- comment lines are dropped, also inside a continued instruction
    if not raw:match("^%s*#") then
      local body = raw:match("^(.-)%s*\\%s*$")
      if body then
        cur = (cur and (cur .. " ") or "") .. body
      else
        local line = (cur and (cur .. " ") or "") .. raw
        cur = nil
        if line:match("%S") then lines[#lines + 1] = line end
      end
    end
  end
  local stages, instrs = {}, {}
  for _, line in ipairs(lines) do
    local op, args = line:match("^%s*(%u+)%s+(.*)$")
    assert(op, "Dockerfile: cannot parse: " .. line)
    if op == "FROM" then
      local image, name = args:match("^(%S+)%s+[Aa][Ss]%s+(%S+)")
      stages[#stages + 1] = { image = image or args:match("^(%S+)"), name = name }
    end
    instrs[#instrs + 1] = { stage = #stages, op = op, args = args }
  end
  return stages, instrs
end

--- COPY/ADD arguments: flags (--from=…, --chown=…), sources, destination.
local function copy_args(args)
  local words = {}
  for w in args:gmatch("%S+") do words[#words + 1] = w end
  local flags = {}
  while words[1] and words[1]:match("^%-%-") do
    local k, v = table.remove(words, 1):match("^%-%-([%w-]+)=?(.*)$")
    flags[k] = v
  end
  local dest = table.remove(words)
  return flags, words, dest
end

--- Packages named by `apt-get install` in a RUN's text.
local function apt_packages(run)
  local out = {}
  for cmd in (run .. "&&"):gmatch("(.-)&&") do
    local rest = cmd:match("apt%-get%s+install%s+(.*)$")
    if rest then
      for w in rest:gmatch("%S+") do
        if not w:match("^%-") then out[w] = true end
      end
    end
  end
  return out
end

-- ------------------------------------------------------------ dpkg / ldd

--- path -> package for each path (one `dpkg -S` over the paths and their
--- link targets; /lib and /usr/lib are the same directory on merged /usr).
local function packages_of(paths)
  local cands, out = {}, {}
  for _, p in ipairs(paths) do
    local _, real = sh("readlink -f " .. q(p))
    real = real:gsub("%s+$", "")
    local forms = { p, real, (p:gsub("^/lib/", "/usr/lib/")), (real:gsub("^/lib/", "/usr/lib/")) }
    for _, c in ipairs(forms) do cands[c] = cands[c] or {} ; table.insert(cands[c], p) end
  end
  local args = {}
  for c in pairs(cands) do args[#args + 1] = q(c) end
  local _, text = sh("dpkg -S " .. table.concat(args, " "))
  for pkg, file in text:gmatch("([^\n:,]+)[^\n]-: (/[^\n]+)") do
    for _, p in ipairs(cands[file] or {}) do out[p] = out[p] or pkg end
  end
  return out
end

--- soname -> resolved path, from ldd.
local function ldd(bin)
  local ok, out = sh("ldd " .. q(bin))
  assert(ok, "ldd failed: " .. out)
  local libs = {}
  for name, path in out:gmatch("\n?%s*(%S+)%s+=>%s+(%S+)") do libs[name] = path end
  return libs
end

--- The DT_NEEDED sonames (objdump -p).
local function needed(bin)
  local ok, out = sh("objdump -p " .. q(bin))
  assert(ok, "objdump failed: " .. out)
  local t = {}
  for name in out:gmatch("NEEDED%s+(%S+)") do t[#t + 1] = name end
  return t
end

--- Installed packages reachable from `roots` through Depends/Pre-Depends
--- (alternatives "a | b": every one that is installed).
local function closure(roots)
  local ok, text = sh("dpkg-query -W -f='${Package}\t${Depends}, ${Pre-Depends}\n'")
  assert(ok, text)
  local deps = {}
  for name, list in text:gmatch("([^\t\n]+)\t([^\n]*)") do
    local t = deps[name] or {}
    for dep in list:gmatch("[^,|]+") do
      local d = dep:match("^%s*([%w.+-]+)")
      if d then t[#t + 1] = d end
    end
    deps[name] = t
  end
  local seen, todo = {}, {}
  for p in pairs(roots) do todo[#todo + 1] = p end
  while #todo > 0 do
    local p = table.remove(todo)
    if not seen[p] and deps[p] then
      seen[p] = true
      for _, d in ipairs(deps[p]) do todo[#todo + 1] = d end
    end
  end
  return seen
end

-- ================================================================== specs

describe("Dockerfile", function()
  local stages, instrs = parse_dockerfile(ROOT .. "/Dockerfile")
  local final = #stages

  it("is multi-stage on Debian, the runtime stage on -slim", function()
    assert.is_true(#stages >= 2, "want a build stage and a runtime stage")
    for _, s in ipairs(stages) do
      assert.matches("^debian:", s.image)
    end
    assert.matches("%-slim$", stages[final].image)
  end)

  it("uses the Debian release of this host (so dpkg and ldd here describe the image)", function()
    local f = io.open("/etc/os-release")
    if not f then
      pending("no /etc/os-release")
      return
    end
    local codename = f:read("a"):match("VERSION_CODENAME=(%S+)")
    f:close()
    for _, s in ipairs(stages) do
      assert.equals(codename, s.image:match("^debian:([%a]+)"), s.image)
    end
  end)

  it("copies only sources that exist in the build context", function()
    local n = 0
    for _, ins in ipairs(instrs) do
      if ins.op == "COPY" or ins.op == "ADD" then
        local flags, srcs = copy_args(ins.args)
        if not flags.from then
          for _, src in ipairs(srcs) do
            n = n + 1
            assert.is_false(src:match("^/") ~= nil or src:match("%.%.") ~= nil, "outside the context: " .. src)
            assert.is_true(exists(ROOT .. "/" .. src), "COPY source missing: " .. src)
          end
        end
      end
    end
    assert.is_true(n > 0)
  end)

  it("copies from stages that exist", function()
    local names = {}
    for i, s in ipairs(stages) do
      if s.name then names[s.name] = i end
    end
    for _, ins in ipairs(instrs) do
      if ins.op == "COPY" then
        local flags = copy_args(ins.args)
        if flags.from then
          assert.is_truthy(names[flags.from], "COPY --from=" .. flags.from .. ": no such stage")
          assert.is_true(names[flags.from] < ins.stage)
        end
      end
    end
  end)

  it("runs as a numeric non-root user", function()
    local user
    for _, ins in ipairs(instrs) do
      if ins.stage == final and ins.op == "USER" then user = ins.args end
    end
    assert.is_truthy(user, "no USER in the runtime stage")
    local uid = tonumber(user:match("^(%d+)"))
    assert.is_truthy(uid, "USER must be numeric for runAsNonRoot")
    assert.is_true(uid ~= 0)
    -- the Deployment runs with the same UID
    local f = assert(io.open(ROOT .. "/deploy/manager/deployment.yaml"))
    local dep = f:read("a")
    f:close()
    assert.equals(uid, tonumber(dep:match("runAsUser:%s*(%d+)")))
  end)

  describe("the runtime packages", function()
    local have_bin = exists(BIN) and (sh("command -v ldd && command -v dpkg && command -v objdump"))
    local installed = {}
    for _, ins in ipairs(instrs) do
      if ins.stage == final and ins.op == "RUN" then
        for p in pairs(apt_packages(ins.args)) do installed[p] = true end
      end
    end

    it("are exactly the packages of the binary's DT_NEEDED libraries (libc6: base image)", function()
      if not have_bin then
        pending("needs " .. BIN .. ", ldd, dpkg and objdump")
        return
      end
      local libs, paths = ldd(BIN), {}
      for _, soname in ipairs(needed(BIN)) do
        paths[#paths + 1] = assert(libs[soname], "ldd does not resolve " .. soname)
      end
      local pkgs, want = packages_of(paths), {}
      for _, path in ipairs(paths) do
        local pkg = assert(pkgs[path], "no package holds " .. path)
        if pkg ~= "libc6" then want[pkg] = true end
      end
      assert.equals(set_string(want), set_string(installed))
    end)

    it("and their dependencies provide every library ldd shows", function()
      if not have_bin then
        pending("needs " .. BIN .. ", ldd, dpkg and objdump")
        return
      end
      local provided = closure(installed)
      provided.libc6 = true
      local libs, paths, missing = ldd(BIN), {}, {}
      for _, path in pairs(libs) do paths[#paths + 1] = path end
      local pkgs = packages_of(paths)
      for soname, path in pairs(libs) do
        local pkg = pkgs[path]
        assert.is_truthy(pkg, "no package holds " .. path .. " (" .. soname .. ")")
        if not provided[pkg] then missing[#missing + 1] = soname .. " (" .. pkg .. ")" end
      end
      table.sort(missing)
      assert.same({}, missing)
    end)
  end)

  it("gives an install layout whose bundled script set passes `check` (as `run` does)", function()
    if not (exists(BIN) and exists(BUILD .. "/cmake_install.cmake")) then
      pending("needs a build dir with cmake_install.cmake and " .. BIN)
      return
    end
    -- the build stage: cmake --install into its prefix
    local prefix
    for _, ins in ipairs(instrs) do
      if ins.stage < final and ins.op == "RUN" then
        prefix = prefix or ins.args:match("CMAKE_INSTALL_PREFIX=(%S+)")
      end
    end
    assert.is_truthy(prefix, "no CMAKE_INSTALL_PREFIX in the build stage")
    local root = os.tmpname()
    os.remove(root)
    assert(sh("mkdir -p " .. q(root)))
    local ok, out = sh("DESTDIR=" .. q(root) .. " cmake --install " .. q(BUILD) .. " --prefix " .. q(prefix))
    assert(ok, out)
    -- the runtime stage: its COPYs from the context, and what it takes from the build stage
    local entry
    for _, ins in ipairs(instrs) do
      if ins.stage == final and ins.op == "COPY" then
        local flags, srcs, dest = copy_args(ins.args)
        if flags.from then
          assert.equals(prefix, srcs[1], "the runtime stage should take the install prefix")
        else
          for _, src in ipairs(srcs) do
            assert(sh(("mkdir -p %s && cp -r %s/. %s"):format(q(root .. dest), q(ROOT .. "/" .. src),
              q(root .. dest))))
          end
        end
      elseif ins.stage == final and ins.op == "ENTRYPOINT" then
        entry = ins.args:match('^%["([^"]+)"')
      end
    end
    assert.is_truthy(entry, "no exec-form ENTRYPOINT")
    assert.is_true(exists(root .. entry), entry .. " is not in the install layout")
    local ok2, out2 = sh(q(root .. entry) .. " check")
    sh("rm -rf " .. q(root))
    assert(ok2, "check of the installed script set failed:\n" .. out2:sub(-3000))
  end)
end)
