-- k8srt.yaml: YAML <-> values with Kubernetes' scalar rules
-- (runtime/core/yaml.c): multi-document files, errors naming file:line:column,
-- and dump -> load round trips of the repository's own manifests.
local k8srt = require("k8srt")
local yaml = k8srt.yaml

local root = os.getenv("SCHEDSIM_ROOT") or "."

local function read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

describe("k8srt.yaml", function()
  it("loads documents, skipping empty ones", function()
    local docs = assert(yaml.load("---\na: 1\n---\n---\nb: [x, 'y']\n", "t.yaml"))
    assert.equal(2, #docs)
    assert.equal(1, docs[1].a)
    assert.same({ "x", "y" }, docs[2].b)
    assert.equal(k8srt.array_mt, getmetatable(docs))
  end)

  it("resolves scalars like Kubernetes", function()
    local d = assert(yaml.load([[
t: true
n: null
e:
i: -42
f: 1.5
oct: "0123"
plain_oct: 0123
word: yes
s: 'true'
ver: 1.2.3
args: []
selector: {}
]]))[1]
    assert.equal(true, d.t)
    assert.equal(k8srt.null, d.n)
    assert.equal(k8srt.null, d.e)
    assert.equal(-42, d.i)
    assert.equal("integer", math.type(d.i))
    assert.equal(1.5, d.f)
    assert.equal("0123", d.oct)
    assert.equal("0123", d.plain_oct)
    assert.equal("yes", d.word)
    assert.equal("true", d.s)
    assert.equal("1.2.3", d.ver)
    assert.equal(k8srt.array_mt, getmetatable(d.args))
    assert.is_nil(getmetatable(d.selector))
    assert.equal('{"args":[],"selector":{}}', k8srt.json.encode({ args = d.args, selector = d.selector }))
  end)

  it("reports errors with file:line:column", function()
    local v, err = yaml.load("a: 1\nb: [1, 2\n", "deploy.yaml")
    assert.is_nil(v)
    assert.matches("^deploy%.yaml:3:1: ", err)
    v, err = yaml.load("a: 1\na: 2\n", "dup.yaml")
    assert.is_nil(v)
    assert.equal('dup.yaml:2:1: duplicate key "a"', err)
  end)

  it("dumps with sorted keys and quotes ambiguous strings", function()
    assert.equal('a: "true"\nb: "0123"\nc: |\n  x\n  y\nd: []\ne: {}\nf: 1.0\n',
      yaml.dump({ b = "0123", a = "true", c = "x\ny\n", d = k8srt.array({}), e = {}, f = 1.0 }))
  end)

  it("round-trips the repository's CRDs and examples", function()
    local files = {}
    for _, dir in ipairs({ "crds", "examples" }) do
      local p = io.popen('ls "' .. root .. "/" .. dir .. '" 2>/dev/null')
      for name in p:lines() do
        if name:match("%.ya?ml$") then
          files[#files + 1] = root .. "/" .. dir .. "/" .. name
        end
      end
      p:close()
    end
    assert.is_true(#files > 0, "no YAML files found under " .. root)
    for _, path in ipairs(files) do
      local docs = assert(yaml.load(read(path), path))
      local again = assert(yaml.load(yaml.dump(docs, true), path .. " (dumped)"))
      assert.same(docs, again)
      assert.equal(k8srt.json.encode(docs), k8srt.json.encode(again))
    end
  end)
end)
