-- `schedsim-operator version` and `--version` (runtime/cmd/cmd_version.c,
-- cmake/buildinfo.cmake): the release, the commit the binary was built
-- from, the build date; -o json|yaml with Kubernetes' version.Info names.
local cluster = require("cluster")

local bin, q = cluster.bin, cluster.q

describe("version", function()
  it("prints the release, commit, build date and Lua", function()
    local ok, out = cluster.sh_stdout(q(bin) .. " version")
    assert.is_true(ok)
    assert.matches("^schedsim%-operator v%d+%.%d+%.%d+ %(commit %x+%S*, built %d%d%d%d%-%d%d%-%d%dT[%d:]+Z, Lua 5%.4",
      out)
  end)

  it("takes --version as a synonym", function()
    local _, a = cluster.sh_stdout(q(bin) .. " version")
    local ok, b = cluster.sh_stdout(q(bin) .. " --version")
    assert.is_true(ok)
    assert.equals(a, b)
  end)

  it("prints version.Info fields with -o json, the commit being the one built", function()
    local ok, out = cluster.sh_stdout(q(bin) .. " version -o json")
    assert.is_true(ok)
    local v = cluster.decode(out)
    assert.matches("^v%d+%.%d+%.%d+$", v.gitVersion)
    assert.matches("^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%dZ$", v.buildDate)
    assert.matches("^linux/", v.platform)
    assert.matches("^Lua 5%.4", v.luaVersion)
    -- the full commit hash (or "unknown" for a build without .git and SCHEDSIM_GIT_COMMIT)
    assert.is_truthy(v.gitCommit == "unknown" or v.gitCommit:match("^%x+$") and #v.gitCommit == 40, v.gitCommit)
    assert.is_truthy(({ clean = 1, dirty = 1, [""] = 1 })[v.gitTreeState], v.gitTreeState)
  end)

  it("prints YAML with -o yaml and refuses other formats", function()
    local ok, out = cluster.sh_stdout(q(bin) .. " version -o yaml")
    assert.is_true(ok)
    assert.matches("\ngitCommit: ", "\n" .. out)
    local bad, _, code = cluster.sh_stdout(q(bin) .. " version -o wide")
    assert.is_false(bad)
    assert.equals(2, code)
  end)
end)
