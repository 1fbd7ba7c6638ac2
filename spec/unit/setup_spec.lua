-- .ci/setup is the first step of both README commands (.ci/demo, .ci/run):
-- a failed configure or build must stop it with a non-zero exit and the
-- compiler's error in its output, so that neither command goes on with
-- binaries left over from an older build. The spec copies the tracked tree,
-- breaks one C file and runs the copy's .ci/setup against a fresh build dir.
local shell = require("cluster") -- spec/support/cluster.lua: the shared shell helpers
local q, sh = shell.q, shell.sh
local ROOT = shell.root

--- A copy of the tree git knows (tracked and untracked-but-not-ignored files).
local function copy_tree()
  local ok, dir = sh("mktemp -d ${TMPDIR:-/tmp}/setup-spec.XXXXXX")
  assert(ok, dir)
  dir = dir:gsub("%s+$", "")
  local cp_ok, out = sh(("cd %s && git ls-files -co --exclude-standard -z | tar --null -cf - -T - | tar -C %s -xf -")
    :format(q(ROOT), q(dir)))
  assert(cp_ok, out)
  return dir
end

describe(".ci/setup", function()
  local dir
  after_each(function()
    if dir then sh("rm -rf " .. q(dir)) end
  end)

  it("exits non-zero and shows the compiler's error when a C file does not compile", function()
    dir = copy_tree()
    local victim = dir .. "/runtime/core/util.c"
    local f = assert(io.open(victim, "a"))
    f:write("\n#error deliberately broken by spec/unit/setup_spec.lua\n")
    f:close()
    local ok, out, code = sh(("bash %s/.ci/setup %s/build"):format(q(dir), q(dir)))
    assert.is_false(ok, "setup succeeded on a broken tree:\n" .. out:sub(-2000))
    assert.is_true(code ~= 0)
    assert.matches("deliberately broken by spec/unit/setup_spec.lua", out, 1, true)
    assert.matches("util.c", out, 1, true)
  end)

  it("exits non-zero when CMake cannot configure the tree", function()
    dir = copy_tree()
    local f = assert(io.open(dir .. "/CMakeLists.txt", "a"))
    f:write("\nmessage(FATAL_ERROR \"deliberately broken by spec/unit/setup_spec.lua\")\n")
    f:close()
    local ok, out = sh(("bash %s/.ci/setup %s/build"):format(q(dir), q(dir)))
    assert.is_false(ok, "setup succeeded with a broken CMakeLists.txt:\n" .. out:sub(-2000))
    assert.matches("deliberately broken by spec/unit/setup_spec.lua", out, 1, true)
  end)
end)
