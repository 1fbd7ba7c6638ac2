-- How render reads its -f inputs, as kubectl users pipe and point at
-- folders (runtime/cmd/crinput.c), no cluster needed:
--   * `-f -` reads stdin (once; a second `-f -` is a usage error);
--   * `-f DIR` reads every .yaml/.yml/.json file below DIR, recursively and
--     sorted, skipping documents of kinds the operator does not reconcile
--     (Namespaces, ConfigMaps) with a note; a plain file keeps refusing them;
--   * YAML 1.1 booleans as kubectl reads them (enabled: yes is true).
local cluster = require("cluster")

local root, bin, q = cluster.root, cluster.bin, cluster.q

local function render(args, stdin)
  local err = os.tmpname()
  local cmd = q(bin) .. " render --scripts " .. q(root .. "/scripts") .. " " .. args .. " 2>" .. q(err)
  if stdin then cmd = "printf '%s' " .. q(stdin) .. " | " .. cmd end
  local _, out, code = cluster.sh_stdout(cmd)
  local f = io.open(err)
  local stderr = f and f:read("a") or ""
  if f then f:close() end
  os.remove(err)
  return code, out, stderr
end

local SIM = [[
apiVersion: sim.llm-d.io/v1alpha1
kind: SimulatorDeployment
metadata: {name: piped, namespace: sims}
spec:
  decode: {enabled: yes, replicas: 1}
  prefill: {enabled: no}
]]

describe("render -f", function()
  it("reads stdin with -f -, and yes/no as booleans", function()
    local code, out, err = render("-f -", SIM)
    assert.equals(0, code, err)
    assert.matches("name: ms%-sim%-llm%-d%-modelservice%-decode\n", out)
    assert.is_nil(out:find("modelservice-prefill", 1, true))
  end)

  it("names stdin <stdin> in errors", function()
    local code, _, err = render("-f -", "apiVersion: v1\n")
    assert.equals(2, code)
    assert.matches("<stdin>: document 1: kind: missing", err, 1, true)
  end)

  it("refuses -f - twice", function()
    local code, _, err = render("-f - -f -", SIM)
    assert.equals(2, code)
    assert.matches("standard input can be given once", err, 1, true)
  end)

  it("reads a directory recursively, sorted, skipping kinds it does not reconcile", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. q(dir .. "/b/c")))
    local function write(path, text)
      local f = assert(io.open(dir .. "/" .. path, "w"))
      f:write(text)
      f:close()
    end
    write("b/c/one.yml", (SIM:gsub("piped", "one")))
    write("a.yaml", (SIM:gsub("piped", "two")) .. "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: sims}\n")
    write("notes.txt", "not a manifest")
    local code, out, err = render("-f " .. q(dir))
    assert.equals(0, code, err)
    assert.matches("a.yaml: document 2: skipping v1 Namespace", err, 1, true)
    local two, one = out:find("name: two\n", 1, true), out:find("name: one\n", 1, true)
    assert.is_truthy(one and two, out)
    -- a plain file still refuses a foreign kind
    local fcode, _, ferr = render("-f " .. q(dir .. "/a.yaml"))
    assert.equals(2, fcode)
    assert.matches("unknown kind v1 Namespace", ferr, 1, true)
    os.execute("rm -rf " .. q(dir))
  end)

  it("says so for a directory without manifests", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. q(dir)))
    local code, _, err = render("-f " .. q(dir))
    os.execute("rm -rf " .. q(dir))
    assert.equals(2, code)
    assert.matches("no .yaml, .yml or .json file", err, 1, true)
  end)
end)
