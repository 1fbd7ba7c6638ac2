-- The documentation against the code it describes (no cluster needed):
--   * every condition and Event reason the scripts and the runtime can set is
--     documented in doc/trouble-shooting.md (as `Reason`, in backticks);
--   * every spec field path of crds/*.yaml is in the "### Fields" table of its
--     kind's section of doc/configuration.md, and every path in those tables
--     is a field of the CRD;
--   * every relative link in README.md, HANDS-ON.md and doc/*.md points at an
--     existing file (and, for a #fragment into a Markdown file, a heading);
--   * README.md links every guide; Mermaid blocks name a diagram type.
local k8srt = require("k8srt") -- the runtime's own YAML converter

local ROOT = os.getenv("SCHEDSIM_ROOT") or "."

local function read(rel)
  local f = assert(io.open(ROOT .. "/" .. rel, "r"), "cannot read " .. rel)
  local s = f:read("a")
  f:close()
  return s
end

local function exists(rel)
  local f = io.open(ROOT .. "/" .. rel, "r")
  if f then f:close() end
  return f ~= nil
end

--- Files under ROOT matching a shell glob (sorted, relative paths).
local function glob(pattern)
  local p = assert(io.popen(("cd '%s' && find %s -type f 2>/dev/null | sort"):format(ROOT, pattern)))
  local t = {}
  for l in p:lines() do t[#t + 1] = (l:gsub("^%./", "")) end
  p:close()
  return t
end

local function sorted_keys(set)
  local t = {}
  for k in pairs(set) do t[#t + 1] = k end
  table.sort(t)
  return t
end

-- ------------------------------------------------------------ reasons

-- Words that look like reasons but are condition types, statuses, Event types
-- or kinds (they appear as literals next to reasons in the calls we scan).
local NOT_REASONS = {
  True = true, False = true, Unknown = true, Normal = true, Warning = true,
  ConfigMap = true, SimulatorDeployment = true, SchedulerInstall = true,
}

--- Reasons set by the Lua scripts: the literals in the positions a reason
--- takes in scripts/ (lib/conditions.lua's Set:set, the reconcilers' own
--- helpers, the routing checks, Event tables).
local function script_reasons()
  local found = {}
  local files = glob("scripts -name '*.lua' -not -path 'scripts/_meta/*' -not -path '*/fixtures/*'")
  local patterns = {
    'reason%s*=%s*"(%u%w+)"',                              -- { reason = "X" }
    'reason_is%s*=%s*"(%u%w+)"',                           -- gateway reasons mirrored (routing.lua)
    ':set%(%s*"%w+"%s*,%s*[^,]-,%s*"(%u%w+)"',             -- cs:set("Type", status, "X", …)
    'set_later%(%s*"%w+"%s*,%s*[^,]-,%s*"(%u%w+)"',        -- set_later("Type", status, "X", …)
    'degrade%(%s*"(%u%w+)"',                               -- degrade("X", …)
    'degraded%[#degraded%s*%+%s*1%]%s*=%s*{%s*"(%u%w+)"',  -- degraded[#degraded + 1] = { "X", … }
    'return%s+[%w"]+%s*,%s*"(%u%w+)"',                     -- return false, "X" / return "False", "X"
  }
  for _, file in ipairs(files) do
    local code = {}
    for line in (read(file) .. "\n"):gmatch("([^\n]*)\n") do
      if not line:match("^%s*%-%-") then code[#code + 1] = line end
    end
    local text = table.concat(code, "\n")
    for _, pat in ipairs(patterns) do
      for r in text:gmatch(pat) do
        if not NOT_REASONS[r] then found[r] = found[r] or file end
      end
    end
  end
  return found
end

--- Reasons set by the C runtime: CamelCase literals in lk_status_condition(…)
--- calls (after the type), the first literal of refuse(…) (boundary.c) and
--- set_why(…) (result.c) calls, literals returned as reasons (writer.c
--- failure_reason), and in calls of functions whose name contains "event"
--- (Events the runtime posts, e.g. on the scripts ConfigMap).
local function runtime_reasons()
  local found = {}
  local function add(lit, file)
    if not NOT_REASONS[lit] then found[lit] = found[lit] or file end
  end
  for _, file in ipairs(glob("runtime -name '*.c'")) do
    local text = read(file):gsub("/%*.-%*/", "")
    for args in text:gmatch("lk_status_condition%s*(%b())") do
      local lits = {}
      for lit in args:gmatch('"(%u%w+)"') do lits[#lits + 1] = lit end
      for i = 2, #lits do add(lits[i], file) end -- the first literal is the condition type
    end
    for _, fn in ipairs({ "refuse", "set_why" }) do
      for args in text:gmatch("[^%w_]" .. fn .. "%s*(%b())") do
        local lit = args:match('"(%u%l+%u%w*)"')
        if lit then add(lit, file) end
      end
    end
    for rhs in text:gmatch("[%s*]reason%s*=%s*([^;]+);") do -- const char *reason = … ? "X" : "Y";
      for lit in rhs:gmatch('"(%u%l+%u%w*)"') do add(lit, file) end
    end
    for body in text:gmatch("failure_reason%s*%b()%s*(%b{})") do
      for lit in body:gmatch('return%s+"(%u%l+%u%w*)";') do add(lit, file) end
    end
    for name, args in text:gmatch("([%w_]*event[%w_]*)%s*(%b())") do
      if not name:match("^json_") then
        for lit in args:gmatch('"(%u%l+%u%w*)"') do
          if not NOT_REASONS[lit] then found[lit] = found[lit] or file end
        end
      end
    end
  end
  return found
end

describe("doc/trouble-shooting.md", function()
  local doc = read("doc/trouble-shooting.md")

  local function documented(reason)
    return doc:find("`" .. reason .. "`", 1, true) ~= nil
  end

  it("documents every reason the scripts can set", function()
    local found = script_reasons()
    local n = #sorted_keys(found)
    assert.is_true(n >= 30, ("only %d reasons found in scripts/: has the way reasons are set changed? "
      .. "update script_reasons() in this spec"):format(n))
    local missing = {}
    for _, r in ipairs(sorted_keys(found)) do
      if not documented(r) then missing[#missing + 1] = ("`%s` (%s)"):format(r, found[r]) end
    end
    assert.are.same({}, missing, "reasons not in doc/trouble-shooting.md:\n  " .. table.concat(missing, "\n  "))
  end)

  it("documents every reason the runtime can set", function()
    local found = runtime_reasons()
    for _, r in ipairs({ "ReconcileError", "InvalidSpec", "Conflict" }) do
      assert.is_truthy(found[r], ("reason %s not found in runtime/: has the way the runtime sets conditions "
        .. "changed? update runtime_reasons() in this spec"):format(r))
    end
    local missing = {}
    for _, r in ipairs(sorted_keys(found)) do
      if not documented(r) then missing[#missing + 1] = ("`%s` (%s)"):format(r, found[r]) end
    end
    assert.are.same({}, missing, "reasons not in doc/trouble-shooting.md:\n  " .. table.concat(missing, "\n  "))
  end)

  it("documents every condition type", function()
    for _, t in ipairs({ "Ready", "Progressing", "Degraded", "EPPReady", "PoolResolved", "RouteAccepted",
      "EnvoyFilterApplied" }) do
      assert.is_true(documented(t), "condition type " .. t .. " not in doc/trouble-shooting.md")
    end
  end)
end)

-- ------------------------------------------------------------ CRD fields

--- Spec field paths of a CRD's schema (first served version): leaves, plus
--- the objects above them in `all`. ResourceRequirements and maps are leaves.
local function crd_paths(schema)
  local leaves, all = {}, {}
  local function walk(path, s)
    if path ~= "" then all[path] = true end
    local props = s.properties
    local opaque = props and props.limits and props.requests -- ResourceRequirements
    if props and not opaque then
      for k, sub in pairs(props) do walk(path == "" and k or (path .. "." .. k), sub) end
    elseif path ~= "" then
      leaves[path] = true
    end
  end
  walk("", schema)
  return leaves, all
end

local PLACEHOLDERS = {
  ["<stage>"] = { "prefill", "decode" },
  ["<instance>"] = { "standard", "istio" },
}

--- Expands one documented token: placeholders become each of their values.
local function expand(token, out)
  for ph, values in pairs(PLACEHOLDERS) do
    local i = token:find(ph, 1, true)
    if i then
      for _, v in ipairs(values) do
        expand(token:sub(1, i - 1) .. v .. token:sub(i + #ph), out)
      end
      return
    end
  end
  out[#out + 1] = token
end

--- Field paths named in the first column of the "### Fields" table of the
--- "## <kind>" section: `a.b` / `.c` means a.b and a.c; `x`, `y` two fields.
local function documented_paths(doc, kind)
  local section = doc:match("\n## " .. kind .. "%s*\n(.-)\n## ") or doc:match("\n## " .. kind .. "%s*\n(.*)$")
  assert(section, "doc/configuration.md has no section ## " .. kind)
  local fields = section:match("\n### Fields[^\n]*\n(.-)\n### ") or section:match("\n### Fields[^\n]*\n(.*)$")
  assert(fields, "doc/configuration.md ## " .. kind .. " has no ### Fields table")
  local paths = {}
  for line in fields:gmatch("[^\n]+") do
    local cell = line:match("^|%s*(.-)%s*|")
    if cell and not cell:match("^%-+$") and cell ~= "field" then
      local prev
      for token in cell:gmatch("`([^`]+)`") do
        if token:match("^[%w%.<>]+$") then
          if token:sub(1, 1) == "." and prev then
            token = prev:gsub("[^%.]+$", "") .. token:sub(2)
          end
          if token:sub(1, 1) ~= "." then
            prev = token
            local list = {}
            expand(token, list)
            for _, p in ipairs(list) do paths[p] = line end
          end
        end
      end
    end
  end
  return paths
end

describe("doc/configuration.md", function()
  local doc = read("doc/configuration.md")
  local crds = glob("crds -name '*.yaml'")

  it("has the CRDs to check", function()
    assert.is_true(#crds >= 2, "no CRDs found under crds/")
  end)

  for _, file in ipairs(crds) do
    local crd = assert(k8srt.yaml.load(read(file), file))[1]
    local kind = crd.spec.names.kind
    local version = crd.spec.versions[1]
    local spec_schema = version.schema.openAPIV3Schema.properties.spec

    it(("documents every spec field of %s (%s)"):format(kind, file), function()
      local leaves = crd_paths(spec_schema)
      local docpaths = documented_paths(doc, kind)
      local missing = {}
      for _, p in ipairs(sorted_keys(leaves)) do
        if not docpaths[p] then missing[#missing + 1] = "spec." .. p end
      end
      assert.are.same({}, missing, ("fields of %s not in the ### Fields table of ## %s in doc/configuration.md:\n  %s")
        :format(file, kind, table.concat(missing, "\n  ")))
    end)

    it(("names only real fields of %s in its table"):format(kind), function()
      local _, all = crd_paths(spec_schema)
      local docpaths = documented_paths(doc, kind)
      local unknown = {}
      for _, p in ipairs(sorted_keys(docpaths)) do
        if not all[p] then unknown[#unknown + 1] = p .. "   <- " .. docpaths[p] end
      end
      assert.are.same({}, unknown, ("doc/configuration.md ## %s names fields %s does not have:\n  %s")
        :format(kind, file, table.concat(unknown, "\n  ")))
    end)
  end
end)

-- ------------------------------------------------------------ links

--- GitHub's heading anchors of a Markdown text (ASCII approximation).
local function anchors(text)
  local set, seen = {}, {}
  local in_code = false
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    if line:match("^%s*```") then
      in_code = not in_code
    elseif not in_code then
      local h = line:match("^#+%s+(.-)%s*#*%s*$")
      if h then
        local slug = h:lower():gsub("[^%w%s_%-]", ""):gsub("%s", "-")
        local base = slug
        if seen[base] then
          slug = base .. "-" .. seen[base]
          seen[base] = seen[base] + 1
        else
          seen[base] = 1
        end
        set[slug] = true
      end
    end
  end
  return set
end

--- Normalises "a/./b/../c" to "a/c".
local function normalize(path)
  local parts = {}
  for part in path:gmatch("[^/]+") do
    if part == ".." then
      if #parts == 0 then return nil end
      parts[#parts] = nil
    elseif part ~= "." then
      parts[#parts + 1] = part
    end
  end
  return table.concat(parts, "/")
end

--- The Markdown links of a text outside code blocks and code spans.
local function links(text)
  local out, in_code, n = {}, false, 0
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    if line:match("^%s*```") then
      in_code = not in_code
    elseif not in_code then
      local plain = line:gsub("`[^`]*`", "")
      for target in plain:gmatch("%]%(([^)%s]+)[^)]*%)") do out[#out + 1] = { target = target, line = n } end
    end
  end
  return out
end

describe("links", function()
  local docs = { "README.md", "HANDS-ON.md" }
  for _, f in ipairs(glob("doc -maxdepth 1 -name '*.md'")) do docs[#docs + 1] = f end

  for _, file in ipairs(docs) do
    it("of " .. file .. " point at existing files and headings", function()
      if not exists(file) then
        error(file .. " does not exist", 0)
      end
      local text = read(file)
      local dir = file:match("^(.*)/[^/]+$") or ""
      local broken = {}
      for _, l in ipairs(links(text)) do
        local t = l.target
        if not t:match("^%a[%w+.-]*:") then -- not http:, https:, mailto: …
          local path, frag = t:match("^([^#]*)#?(.*)$")
          local target = path == "" and file or normalize((dir ~= "" and (dir .. "/") or "") .. path)
          if not target or not exists(target) and not exists(target .. "/.") then
            broken[#broken + 1] = ("%s:%d: %s (no such file)"):format(file, l.line, t)
          elseif frag ~= "" and target:match("%.md$") and not anchors(read(target))[frag] then
            broken[#broken + 1] = ("%s:%d: %s (no heading #%s in %s)"):format(file, l.line, t, frag, target)
          end
        end
      end
      assert.are.same({}, broken, "broken links:\n  " .. table.concat(broken, "\n  "))
    end)
  end

  it("README.md links HANDS-ON.md and every guide in doc/", function()
    local readme = read("README.md")
    local want = { "HANDS-ON.md" }
    for _, f in ipairs(glob("doc -maxdepth 1 -name '*.md'")) do want[#want + 1] = f end
    local missing = {}
    for _, f in ipairs(want) do
      if not readme:find("](" .. f .. ")", 1, true) then missing[#missing + 1] = f end
    end
    assert.are.same({}, missing, "README.md does not link: " .. table.concat(missing, ", "))
  end)

  it("Mermaid blocks start with a diagram type", function()
    local bad = {}
    for _, file in ipairs(docs) do
      if exists(file) then
        local text = read(file)
        for first in text:gmatch("```mermaid%s*\n%s*([^\n]*)") do
          local kind = first:match("^(%S+)")
          if not (kind == "flowchart" or kind == "graph" or kind == "sequenceDiagram"
              or kind == "stateDiagram-v2" or kind == "stateDiagram" or kind == "classDiagram") then
            bad[#bad + 1] = file .. ": " .. first
          end
        end
      end
    end
    assert.are.same({}, bad)
  end)
end)
