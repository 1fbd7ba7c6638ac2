-- needs: dataplane
-- A/B routing (spec.routing.arms) on the real local data plane (see
-- dataplane_spec.lua for what runs): examples/schedulerinstall-ab.yaml is
-- applied with the operator running; its two arms (stable: weight 3, profile
-- default; canary: weight 1, profile proxy-performance, and every request with
-- "x-llm-d-arm: canary") each get a managed InferencePool and a real EPP
-- process. Then, through the local gateway:
--   * N requests without the header: each is counted for the arm whose pool
--     the gateway routed it to (x-schedsim-gateway-backend), checked to have
--     been picked by that arm's EPP pod (x-schedsim-gateway-epp) for a member
--     of the pool; each arm's EPP counts exactly the requests routed to it
--     (its own inference_objective_request_total, before and after);
--   * the stable share lies within EXPECTED +- TOLERANCE (below: the binomial
--     spread of a 3:1 split, and far from what 1:1 or one arm would give);
--   * H requests with the header all go to the canary arm;
--   * `kubectl get -o yaml` shows status.arms, `-o wide` the Split column;
-- and the API server refuses arms with the wrong combinations (CEL).
-- Without the data plane the cases are pending with the reason.
local cluster = require("cluster")
local q, sh, must = cluster.q, cluster.sh, cluster.must

local ROOT = cluster.root
local SCHED, SIM = "llm-d-inference-scheduler", "llm-d-sim"
local GW = "infra-inference-scheduling-inference-gateway"
local CR = "sched-ab"
local EXAMPLE = ROOT .. "/examples/schedulerinstall-ab.yaml"
local ARMS = {
  stable = { pool = "gaie-inference-scheduling-stable", epp = "gaie-inference-scheduling-epp-stable",
    profile = "default", scorer = "load-aware-scorer" },
  canary = { pool = "gaie-inference-scheduling-canary", epp = "gaie-inference-scheduling-epp-canary",
    profile = "proxy-performance", scorer = "active-request-scorer" },
}
local HEADER, HEADER_VALUE = "x-llm-d-arm", "canary"

-- The split: N requests, each independently to stable with p = 3/4 (the local
-- gateway draws rand.Int64N over the summed weights per request). The stable
-- count is Binomial(N, p): mean 150, standard deviation sqrt(N p (1-p)) = 6.1
-- for N = 200. TOLERANCE 30 is ~4.9 standard deviations: a correct 3:1 split
-- fails with probability ~1e-6, while a 1:1 split (mean 100) or every request
-- on one arm (200 or 0) lies 8 or more standard deviations outside the band.
local N, P_STABLE, H = 200, 3 / 4, 20
local EXPECTED = N * P_STABLE
local TOLERANCE = 30

local reason = cluster.dataplane_missing

--- POSTs a completion to the gateway (with the canary header when `header`);
--- returns status, headers (lower-case keys), body.
local function post(url, prompt, header)
  local hdr = os.tmpname()
  local ok, out = sh(("curl -s -m 30 -D %s -H 'content-type: application/json' %s --data-binary @- %s")
    :format(q(hdr), header and ("-H " .. q(HEADER .. ": " .. HEADER_VALUE)) or "", q(url .. "/v1/completions")),
    cluster.json.encode({ model = "random", prompt = prompt, max_tokens = 2 }))
  local text = cluster.read_file(hdr) or ""
  os.remove(hdr)
  local headers = {}
  for k, v in text:gmatch("([%w%-]+):%s*([^\r\n]*)") do headers[k:lower()] = v end
  return ok and tonumber(text:match("HTTP/[%d.]+ (%d+)")) or 0, headers, out
end

--- ip -> arm name for the live EPP pods of both arms.
local function epp_pods()
  local out = {}
  for arm, a in pairs(ARMS) do
    for _, p in ipairs(cluster.decode(must("get pods -n " .. SCHED .. " -l app=" .. a.epp .. " -o json")).items) do
      if p.status.podIP and not p.metadata.deletionTimestamp then out[p.status.podIP] = arm end
    end
  end
  return out
end

--- The sum of inference_objective_request_total over every series of the
--- EPP at `ip` (its /metrics on 9090; the scripts turn metrics auth off).
local function epp_requests(ip)
  local ok, text = sh(("curl -s -m 10 http://%s:9090/metrics"):format(ip))
  assert(ok, text)
  local total = 0
  for v in text:gmatch("\ninference_objective_request_total{[^}]*} (%S+)") do total = total + tonumber(v) end
  return total
end

--- Per arm: the sum of epp_requests over its EPP pods.
local function epp_counts(pods)
  local c = { stable = 0, canary = 0 }
  for ip, arm in pairs(pods) do c[arm] = c[arm] + epp_requests(ip) end
  return c
end

--- The arm a gateway response went to, from x-schedsim-gateway-backend
--- ("InferencePool/<ns>/<pool>"), or nil.
local function arm_of(h)
  for arm, a in pairs(ARMS) do
    if h["x-schedsim-gateway-backend"] == "InferencePool/" .. SIM .. "/" .. a.pool then return arm end
  end
end

describe("A/B routing on the local data plane", function()
  local why = reason()
  local op

  setup(function()
    if why then return end
    cluster.install_crds()
    op = cluster.start_operator({ args = "--log-format json", wait = false })
    must("apply -f " .. q(ROOT .. "/examples/namespaces.yaml"))
    must("apply -f " .. q(ROOT .. "/examples/simulatordeployment-minimal.yaml"))
  end)

  teardown(function()
    local pods = os.getenv("SCHEDSIM_CLUSTER_DIR") .. "/pods"
    if op then op:finish("operator-ab-routing.log", { [pods] = "ab-routing-pods" }) end
  end)

  local dp_it = cluster.dataplane_it(why, it, pending)

  dp_it("splits the requests 3:1 over two arms, each picked by its own EPP; the header selects the canary arm",
    function()
      must("apply -f " .. q(EXAMPLE))
      finally(function() must("delete -f " .. q(EXAMPLE) .. " --wait=true --timeout=90s") end)
      cluster.eventually(180, "SchedulerInstall " .. CR .. " Ready=True (both arms' EPPs ready, route accepted)",
        function()
          local o = cluster.get("schedulerinstall", CR, SCHED)
          for _, c in ipairs(o and o.status and o.status.conditions or {}) do
            if c.type == "Ready" then return c.status == "True", c.message end
          end
        end, 0.5)

      -- status.arms as kubectl shows it
      local yaml = must("get schedulerinstall " .. CR .. " -n " .. SCHED .. " -o yaml")
      assert.truthy(yaml:find("\n  arms:\n", 1, true), yaml)
      local st = cluster.get("schedulerinstall", CR, SCHED).status
      assert.equal(2, #st.arms)
      for i, name in ipairs({ "stable", "canary" }) do
        local a, want = st.arms[i], ARMS[name]
        assert.equal(name, a.name)
        assert.equal(want.profile, a.configProfile)
        assert.same({ name = want.pool, namespace = SIM }, a.inferencePool)
        assert.same({ name = want.epp, ready = true, readyReplicas = 1 }, a.epp)
        -- each EPP runs its arm's profile and serves its arm's pool
        local cfg = cluster.get("configmap", want.epp .. "-config", SCHED).data["epp-config.yaml"]
        assert.truthy(cfg:find("type: " .. want.scorer, 1, true), cfg)
        local dep = cluster.get("deployment", want.epp, SCHED)
        local args = table.concat(dep.spec.template.spec.containers[1].args, " ")
        assert.truthy(args:find("--pool-name " .. want.pool, 1, true)
          or args:find("--pool-name=" .. want.pool, 1, true), args)
      end
      assert.equal(3, st.arms[1].weight)
      assert.same({ name = HEADER, value = HEADER_VALUE }, st.arms[2].headerMatch)
      local wide = must("get schedulerinstall " .. CR .. " -n " .. SCHED .. " -o wide")
      assert.truthy(wide:find("stable=3,canary=1", 1, true), wide)

      -- both EPPs pick before counting (an EPP answers 503 until it has listed its pool's pods)
      local url = cluster.gateway_url(SCHED, GW)
      local members = {}
      for _, p in ipairs(cluster.decode(must("get pods -n " .. SIM
        .. " -l llm-d.ai/role=decode,llm-d.ai/inferenceServing=true -o json")).items) do
        if p.status.podIP then members[p.status.podIP] = p.metadata.name end
      end
      local warm = {}
      cluster.eventually(90, "each arm's EPP picks an endpoint", function()
        for _, header in ipairs({ true, false }) do
          local status, h = post(url, "warm up", header)
          if status == 200 and arm_of(h) then warm[arm_of(h)] = true end
        end
        return warm.stable and warm.canary, ("stable %s, canary %s"):format(warm.stable, warm.canary)
      end, 0.5)

      local pods = epp_pods()
      local before = epp_counts(pods)
      local routed = { stable = 0, canary = 0 }
      local function send(prompt, header)
        local status, h, body = post(url, prompt, header)
        assert.equal(200, status, tostring(h["x-schedsim-gateway-error"]) .. " " .. body)
        local arm = arm_of(h)
        assert.is_not_nil(arm, "backend " .. tostring(h["x-schedsim-gateway-backend"]))
        local epp_ip = (h["x-schedsim-gateway-epp"] or ""):match("^([%d.]+):9002$")
        assert.equal(arm, pods[epp_ip], "the gateway asked " .. tostring(h["x-schedsim-gateway-epp"])
          .. ", an EPP pod of arm " .. arm)
        local ip = (h["x-schedsim-gateway-endpoint"] or ""):match("^([%d.]+):8200$")
        assert.is_not_nil(members[ip], "picked endpoint " .. tostring(h["x-schedsim-gateway-endpoint"]))
        assert.equal(members[ip], h["x-inference-pod"])
        routed[arm] = routed[arm] + 1
        return arm
      end
      for i = 1, N do send(("weighted request %d %s"):format(i, string.rep("w", 24))) end
      local weighted = { stable = routed.stable, canary = routed.canary }
      local header_arms = {}
      for i = 1, H do
        local arm = send(("header request %d %s"):format(i, string.rep("h", 24)), true)
        header_arms[arm] = (header_arms[arm] or 0) + 1
      end
      -- each arm's EPP counted exactly the requests routed to its pool
      local counted = cluster.eventually(30, "each EPP's request counter moved by the requests routed to its arm",
        function()
          local now = epp_counts(pods)
          local d = { stable = now.stable - before.stable, canary = now.canary - before.canary }
          return d.stable == routed.stable and d.canary == routed.canary and d,
            ("EPP counters moved stable %d, canary %d; routed stable %d, canary %d"):format(d.stable, d.canary,
              routed.stable, routed.canary)
        end, 0.5)
      print(("ab_routing_spec: %d requests without the header: stable %d, canary %d (expected stable %.0f +- %d); "
        .. "%d with %s: %s; EPP counters stable +%d, canary +%d"):format(N, weighted.stable, weighted.canary, EXPECTED,
        TOLERANCE, H, HEADER, cluster.json.encode(header_arms), counted.stable, counted.canary))
      assert.equal(N, weighted.stable + weighted.canary)
      assert.is_true(math.abs(weighted.stable - EXPECTED) <= TOLERANCE,
        ("stable got %d of %d, want %.0f +- %d"):format(weighted.stable, N, EXPECTED, TOLERANCE))
      assert.is_true(weighted.canary > 0, "the canary arm served requests without the header")
      assert.same({ canary = H }, header_arms)
    end)

  dp_it("the API server refuses arms without an InferencePool backend, with an EnvoyFilter, or all weights 0",
    function()
      local function cr(routing, extra)
        local o = { apiVersion = "sim.llm-d.io/v1alpha1", kind = "SchedulerInstall",
          metadata = { name = "ab-invalid", namespace = SCHED },
          spec = { simulatorNamespace = SIM, epp = { enabled = true }, routing = routing } }
        for k, v in pairs(extra or {}) do o.spec[k] = v end
        return cluster.json.encode(o)
      end
      local two = { { name = "a" }, { name = "b" } }
      for _, c in ipairs({
        { cr({ enabled = true, backendType = "Service", arms = two }),
          "spec.routing.arms needs spec.routing.backendType InferencePool" },
        { cr({ enabled = true, backendType = "InferencePool", inferencePool = { managed = true }, arms = two },
          { envoyFilter = { enabled = true } }), "spec.routing.arms cannot be used with spec.envoyFilter.enabled" },
        { cr({ enabled = true, backendType = "InferencePool", inferencePool = { managed = true },
          arms = { { name = "a", weight = 0 }, { name = "b", weight = 0 } } }),
          "at least one arm needs a weight above 0" },
        { cr({ enabled = true, backendType = "InferencePool", inferencePool = { managed = true },
          arms = { { name = "a", headerMatch = { name = "bad header", value = "1" } }, { name = "b" } } }),
          "spec.routing.arms[0].headerMatch.name" },
      }) do
        local ok, out = cluster.kubectl("create --dry-run=server -f -", c[1])
        assert.is_false(ok, out)
        assert.truthy(out:find(c[2], 1, true), out)
      end
    end)
end)
