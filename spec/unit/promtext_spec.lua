-- The strict exposition-format reader of the metrics specs
-- (spec/support/promtext.lua): it accepts what the Go client writes and
-- refuses each rule's violation, so a metrics spec that relies on it can fail.
local promtext = require("promtext")

local GOOD = table.concat({
  "# HELP c_total A counter.",
  "# TYPE c_total counter",
  "c_total{controller=\"a\",result=\"success\"} 100",
  "c_total{controller=\"a\",result=\"error\"} 0",
  "# HELP h Latency.",
  "# TYPE h histogram",
  "h_bucket{le=\"0.005\"} 0",
  "h_bucket{le=\"10\"} 2",
  "h_bucket{le=\"1e+06\"} 3",
  "h_bucket{le=\"+Inf\"} 3",
  "h_sum 12.5",
  "h_count 3",
  "# HELP g A gauge with \\\\ and \\n.",
  "# TYPE g gauge",
  "g{v=\"a\\\"b\\\\c\\nd\"} 1.71234567891e+09",
  "",
}, "\n")

describe("promtext", function()
  it("accepts what the Go client writes", function()
    local fams, problems = promtext.parse(GOOD)
    assert.same({}, problems)
    assert.equals("counter", fams.c_total.type)
    assert.equals(100, promtext.sample(fams, "c_total", { result = "success" }).value)
    assert.equals("a\"b\\c\nd", fams.g.samples[1].labels.v)
    assert.equals(3, promtext.sample(fams, "h_count").value)
  end)

  it("knows Go's number texts", function()
    for _, s in ipairs({ "0", "10", "100", "0.005", "123456", "1e+06", "1.5e-05", "0.0001", "-1.5",
      "9.999999999999999e-06", "+Inf", "NaN" }) do
      assert.is_true(promtext.go_like(s), s)
    end
    for _, s in ipairs({ "1e+01", "1e+02", "1000000", "0.00001", "1.50", "01", "1.0e+06", "1e+6" }) do
      assert.is_false(promtext.go_like(s), s)
    end
  end)

  local function problems_of(text)
    local _, problems = promtext.parse(text)
    return table.concat(problems, "\n")
  end

  for _, case in ipairs({
    { "a %g bound", GOOD:gsub("le=\"10\"", "le=\"1e+01\""), "not as Go writes it" },
    { "a %g counter", GOOD:gsub("} 100\n", "} 1e+02\n"), "not as Go writes it" },
    { "a counter without _total", GOOD:gsub("c_total", "c"), "_total" },
    { "no HELP", GOOD:gsub("# HELP g [^\n]*\n", ""), "g: no HELP" },
    { "TYPE after samples", GOOD .. "# TYPE g gauge\n", "second TYPE" },
    { "a split family", GOOD .. "c_total{controller=\"b\",result=\"success\"} 1\n", "family split" },
    { "a duplicate series", GOOD:gsub("result=\"error\"", "result=\"success\""), "duplicate series" },
    { "a bad escape", GOOD:gsub("\\nd", "\\td"), "bad escape" },
    { "non-cumulative buckets", GOOD:gsub("le=\"10\"} 2", "le=\"10\"} 4"), "not cumulative" },
    { "+Inf differing from _count", GOOD:gsub("h_count 3", "h_count 4"), "differs from _count" },
    { "no +Inf bucket", GOOD:gsub("h_bucket{le=\"%+Inf\"} 3\n", ""), "no %+Inf" },
    { "a malformed sample", GOOD .. "x{a=b} 1\n", "malformed" },
    { "no trailing newline", GOOD:sub(1, -2), "trailing newline" },
  }) do
    it("refuses " .. case[1], function()
      assert.matches(case[3], problems_of(case[2]))
    end)
  end
end)
