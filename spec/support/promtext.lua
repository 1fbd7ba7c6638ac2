--- promtext: a strict reader of the Prometheus text exposition format 0.0.4
--- (prometheus/common expfmt, the rules `promtool check metrics` applies on
--- top): used where promtool cannot be built, and besides it always.
---
---   local fams, problems = promtext.parse(text)
---   fams[name] = { type = "counter"|"gauge"|"histogram"|..., help = "...",
---                  samples = { { name =, labels = { k = v }, value = number, text = "1e+06" } } }
---   problems: list of "line N: ..." strings (empty when the text is clean)
---
--- Checked: HELP/TYPE at most once per family and TYPE before its samples;
--- a family's samples contiguous; metric and label names; label values
--- escaped (\\, \", \n only); values as Go writes them (no "1e+01" where Go
--- prints "10"); counters named *_total; histogram buckets with ascending
--- `le`, cumulative counts, a +Inf bucket equal to _count, and _sum/_count;
--- no duplicate series; a trailing newline.
local M = {}

local NAME = "^[a-zA-Z_:][a-zA-Z0-9_:]*$"
local LABEL = "^[a-zA-Z_][a-zA-Z0-9_]*$"

--- True when `s` is written as Go's strconv.FormatFloat(v, 'g', -1, 64)
--- writes it (prometheus/common expfmt writeFloat): shortest digits, plain
--- notation for decimal exponents -4..5 ("10", "0.005", "123456"),
--- e-notation with a two-digit exponent outside ("1e+06", "1.5e-05").
local function go_like(s)
  if s == "NaN" or s == "+Inf" or s == "-Inf" then return true end
  if not s:match("^%-?%d+%.?%d*$") and not s:match("^%-?%d%.?%d*e[%+%-]%d%d%d?$") then return false end
  local e = s:match("e([%+%-]%d+)$")
  if e then
    local n = tonumber(e)
    if n >= -4 and n < 6 then return false end
    if not s:match("^%-?%de") and not s:match("^%-?%d%.%d*[1-9]e") then return false end
  else
    local int = s:match("^%-?(%d+)")
    if #int > 1 and int:sub(1, 1) == "0" then return false end
    if #int > 6 and tonumber(s) ~= 0 then return false end -- Go switches to e+06 at 1e6
    if s:match("%.%d*0$") or s:match("%.$") then return false end
    if s:match("^%-?0%.0000") then return false end -- 1e-05 and below are e-notation
  end
  return true
end
M.go_like = go_like

local function parse_labels(s, problem)
  local labels, order = {}, {}
  local i = 1
  while i <= #s do
    local name, rest = s:match("^([^=]*)=\"()", i)
    if not name then
      problem("malformed labels {" .. s .. "}")
      return labels, order
    end
    if not name:match(LABEL) or name:match("^__") then problem("bad label name " .. name) end
    local j, value = rest, {}
    while true do
      local c = s:sub(j, j)
      if c == "" then
        problem("unterminated label value")
        return labels, order
      elseif c == "\\" then
        local n = s:sub(j + 1, j + 1)
        if n == "\\" then value[#value + 1] = "\\"
        elseif n == "\"" then value[#value + 1] = "\""
        elseif n == "n" then value[#value + 1] = "\n"
        else problem("bad escape \\" .. n) end
        j = j + 2
      elseif c == "\"" then
        break
      else
        value[#value + 1] = c
        j = j + 1
      end
    end
    if labels[name] then problem("duplicate label " .. name) end
    labels[name] = table.concat(value)
    order[#order + 1] = name
    i = j + 1
    if s:sub(i, i) == "," then i = i + 1 elseif i <= #s then
      problem("expected , in labels {" .. s .. "}")
      return labels, order
    end
  end
  return labels, order
end

local function family_of(fams, name)
  if fams[name] then return name end
  for _, suffix in ipairs({ "_bucket", "_sum", "_count", "_total", "_created" }) do
    local base = name:sub(1, #name - #suffix)
    if name:sub(-#suffix) == suffix and fams[base] then return base end
  end
  return name
end

local function check_histograms(fams, problem)
  for name, f in pairs(fams) do
    if f.type == "histogram" then
      local series = {}
      for _, s in ipairs(f.samples) do
        local key = {}
        for k, v in pairs(s.labels) do if k ~= "le" then key[#key + 1] = k .. "=" .. v end end
        table.sort(key)
        local id = table.concat(key, ",")
        series[id] = series[id] or { buckets = {} }
        local suffix = s.name:sub(#name + 1)
        if suffix == "_bucket" then
          if not s.labels.le then problem(name .. ": bucket without le") end
          table.insert(series[id].buckets, s)
        elseif suffix == "_sum" then series[id].sum = s
        elseif suffix == "_count" then series[id].count = s
        else problem(name .. ": unexpected sample " .. s.name) end
      end
      for id, se in pairs(series) do
        local prev_le, prev_v = -math.huge, 0
        for _, b in ipairs(se.buckets) do
          local le = b.labels.le == "+Inf" and math.huge or tonumber(b.labels.le)
          if not le or not go_like(b.labels.le) then
            problem(name .. ": le=\"" .. b.labels.le .. "\" not as Go writes it")
          end
          if le and le <= prev_le then problem(name .. "{" .. id .. "}: le not ascending") end
          if b.value < prev_v then problem(name .. "{" .. id .. "}: buckets not cumulative") end
          prev_le, prev_v = le or prev_le, b.value
        end
        if prev_le ~= math.huge then problem(name .. "{" .. id .. "}: no +Inf bucket") end
        if not se.sum or not se.count then problem(name .. "{" .. id .. "}: _sum or _count missing")
        elseif se.count.value ~= prev_v then problem(name .. "{" .. id .. "}: +Inf bucket differs from _count") end
      end
    end
  end
end

--- parse(text) -> families, problems (see the top of the file)
function M.parse(text)
  local fams, problems, seen, finished = {}, {}, {}, {}
  local lineno, current = 0, nil
  local function problem(msg) problems[#problems + 1] = "line " .. lineno .. ": " .. msg end
  if text:sub(-1) ~= "\n" then problems[#problems + 1] = "no trailing newline" end
  for line in text:gmatch("([^\n]*)\n?") do
    lineno = lineno + 1
    if line == "" then goto continue end
    local kw, name, rest = line:match("^# (%u+) (%S+) ?(.*)$")
    if kw == "HELP" or kw == "TYPE" then
      if not name:match(NAME) then problem("bad metric name " .. name) end
      local f = fams[name]
      if not f then
        if finished[name] then problem(name .. ": family split") end
        f = { samples = {} }
        fams[name] = f
      end
      if current and current ~= name then finished[current] = true end
      current = name
      if kw == "HELP" then
        if f.help then problem(name .. ": second HELP") end
        if rest == "" then problem(name .. ": empty HELP") end
        f.help = rest
      else
        if f.type then problem(name .. ": second TYPE") end
        if #f.samples > 0 then problem(name .. ": TYPE after samples") end
        if not ({ counter = 1, gauge = 1, histogram = 1, summary = 1, untyped = 1 })[rest] then
          problem(name .. ": unknown type " .. rest)
        end
        f.type = rest
        if rest == "counter" and not name:match("_total$") then
          problem(name .. ": counter metrics should have \"_total\" suffix")
        end
      end
    elseif line:sub(1, 1) ~= "#" then -- not a comment: a sample
      local sname, lbl, value = line:match("^([^{%s]+){(.*)} (%S+)$")
      if not sname then sname, value = line:match("^([^{%s]+) (%S+)$") end
      if not sname then
        problem("malformed sample: " .. line)
        goto continue
      end
      if not sname:match(NAME) then problem("bad metric name " .. sname) end
      local labels, order = {}, {}
      if lbl then labels, order = parse_labels(lbl, problem) end
      local num = value == "+Inf" and math.huge or value == "-Inf" and -math.huge or
        value == "NaN" and 0 / 0 or tonumber(value)
      if not num then problem("bad value " .. value) elseif not go_like(value) then
        problem(sname .. ": value " .. value .. " not as Go writes it")
      end
      local fname = family_of(fams, sname)
      local f = fams[fname]
      if not f then
        f = { samples = {}, type = "untyped" }
        fams[fname] = f
      end
      if current ~= fname then
        if current then finished[current] = true end
        if finished[fname] then problem(fname .. ": family split") end
        current = fname
      end
      local id = { sname }
      for _, k in ipairs(order) do id[#id + 1] = k .. "=" .. labels[k] end
      table.sort(id, function(a, b) return a < b end)
      id = table.concat(id, "|")
      if seen[id] then problem("duplicate series " .. line) end
      seen[id] = true
      f.samples[#f.samples + 1] = { name = sname, labels = labels, value = num, text = value }
    end
    ::continue::
  end
  for name, f in pairs(fams) do
    if not f.help then problems[#problems + 1] = name .. ": no HELP" end
  end
  check_histograms(fams, function(msg) problems[#problems + 1] = msg end)
  return fams, problems
end

--- The first sample of family `name` whose labels include `want`, or nil.
function M.sample(fams, name, want)
  local base = family_of(fams, name)
  for _, s in ipairs((fams[base] or { samples = {} }).samples) do
    if s.name == name then
      local ok = true
      for k, v in pairs(want or {}) do if s.labels[k] ~= v then ok = false end end
      if ok then return s end
    end
  end
  return nil
end

return M
