-- End-to-end spec of secure metrics (--metrics-secure, doc/metrics.md "Secure
-- metrics", deploy/components/metrics-secure) on the local control plane. The
-- operator runs as the user `operator` with the install's own ClusterRole
-- (deploy/rbac/cluster_role.yaml) and, once bound, the component's
-- schedsim-operator-metrics-auth; scrapers are ServiceAccounts with tokens
-- from `kubectl create token`:
--   * /metrics is HTTPS only; without a token 401, with a token of a
--     ServiceAccount that may not get /metrics 403, with one bound to
--     schedsim-operator-metrics-reader 200 and the metric families;
--   * without the metrics-auth binding the operator cannot ask the API
--     server: 500 and a log line naming the refused review;
--   * verdicts are cached: repeated scrapes with one token make one
--     TokenReview (the audit log counts them);
--   * the probes stay on their own HTTP address (no /metrics there), the
--     metrics address serves nothing else;
--   * the self-signed certificate names 127.0.0.1 and localhost; one given
--     with --metrics-cert-path is served instead, and a key that does not
--     match it stops the start with a message naming both files;
--   * the operator stops cleanly after serving (exit 0, no sanitizer report:
--     the sanitizer build runs this spec).
--
--   bash cmake/run-spec build spec/e2e/metrics_secure_spec.lua
local cluster = require("cluster")
local q, must = cluster.q, cluster.must

local ROOT = cluster.root
local COMPONENT = ROOT .. "/deploy/components/metrics-secure"

local function need_cluster() return cluster.need(pending) end

--- GET url with curl; returns the HTTP code (0 when no answer) and the body.
local function get(url, token, extra)
  local hdr = token and ("-H " .. q("Authorization: Bearer " .. token) .. " ") or ""
  local _, out = cluster.sh(("curl -s -m 15 -w '\\n%%{http_code}' %s%s %s"):format(hdr, extra or "-k", q(url)))
  local body, code = out:match("^(.*)\n(%d+)%s*$")
  return tonumber(code) or 0, body or out
end

local function tokenreviews()
  return #cluster.audit(function(e)
    return e.stage == "ResponseComplete" and e.verb == "create" and e.user and e.user.username == "operator"
      and e.objectRef and e.objectRef.resource == "tokenreviews"
  end)
end

local function start(args)
  return cluster.start_operator({ kubeconfig = true,
    args = "--metrics-secure --log-format json " .. (args or "") })
end

describe("secure metrics (e2e)", function()
  local ns, op, mport, hport, reader, nobody

  setup(function()
    if not cluster.available() then return end
    must("apply -f " .. q(ROOT .. "/crds/"))
    must("apply -f " .. q(ROOT .. "/deploy/rbac/cluster_role.yaml"))
    cluster.kubectl("create clusterrolebinding schedsim-e2e-secure-operator --clusterrole=schedsim-operator "
      .. "--user=operator")
    must("apply -f " .. q(COMPONENT .. "/metrics_reader_role.yaml"))
    ns = cluster.namespace("metrics-secure")
    must("create serviceaccount prometheus -n " .. ns)
    must("create serviceaccount nobody -n " .. ns)
    must(("create clusterrolebinding schedsim-e2e-prometheus --clusterrole=schedsim-operator-metrics-reader "
      .. "--serviceaccount=%s:prometheus"):format(ns))
    reader = must("create token prometheus -n " .. ns):gsub("%s+$", "")
    nobody = must("create token nobody -n " .. ns):gsub("%s+$", "")
    op = start()
    mport, hport = op.started.metricsPort, op.started.healthPort
  end)

  teardown(function()
    if op then op:stop(); op:cleanup() end
    if cluster.available() then
      cluster.kubectl("delete clusterrolebinding schedsim-e2e-secure-operator schedsim-e2e-prometheus "
        .. "schedsim-e2e-metrics-auth --ignore-not-found")
    end
    cluster.cleanup()
  end)

  it("logs the https scheme and refuses plain HTTP on the metrics port", function()
    need_cluster()
    assert.equal("https", op.started.metricsScheme)
    local code = get("http://127.0.0.1:" .. mport .. "/metrics", reader, "")
    assert.is_not.equal(200, code)
  end)

  it("answers 500 and logs the refused review while the operator may not create TokenReviews", function()
    need_cluster()
    local code, body = get("https://127.0.0.1:" .. mport .. "/metrics", reader)
    assert.equal(500, code, body)
    local line = cluster.eventually(10, "the log line", function()
      return op:log("metrics authorization failed")[1]
    end)
    assert.equal("TokenReview", line.review)
    assert.matches("forbidden", line.error)
  end)

  it("with the component's metrics-auth role: 401 without a token, 403 for a stranger, 200 for the reader",
    function()
      need_cluster()
      -- the component's role (its binding names the in-cluster ServiceAccount), bound here to the
      -- user the operator runs as
      must("apply -f " .. q(COMPONENT .. "/metrics_auth_role.yaml"))
      must("create clusterrolebinding schedsim-e2e-metrics-auth --clusterrole=schedsim-operator-metrics-auth "
        .. "--user=operator")
      local url = "https://127.0.0.1:" .. mport .. "/metrics"
      assert.equal(401, (get(url)))
      assert.equal(401, (get(url, "not-a-token")))
      local code = cluster.eventually(20, "the reader's scrape answered 200", function()
        local c = get(url, reader)
        return c == 200 and c, tostring(c)
      end)
      assert.equal(200, code)
      assert.equal(403, (get(url, nobody)))
      local _, body = get(url, reader)
      assert.matches("\ncontroller_runtime_reconcile_total{", body, 1, true)
      assert.matches("\nprocess_resident_memory_bytes ", body, 1, true)
    end)

  it("caches a verdict: repeated scrapes with one token make at most one TokenReview", function()
    need_cluster()
    local url = "https://127.0.0.1:" .. mport .. "/metrics"
    local token = must("create token prometheus -n " .. ns .. " --duration 10m"):gsub("%s+$", "")
    assert.equal(200, (get(url, token)))
    local before = cluster.eventually(10, "the audit log has the review", function()
      local n = tokenreviews()
      return n > 0 and n
    end)
    for _ = 1, 5 do assert.equal(200, (get(url, token))) end
    cluster.sleep(1) -- the audit log is written asynchronously: any review would be there by now
    assert.equal(before, tokenreviews())
  end)

  it("keeps the probes on their own address, and /metrics only on the secure one", function()
    need_cluster()
    assert.equal(200, (get("http://127.0.0.1:" .. hport .. "/healthz", nil, "")))
    assert.equal(404, (get("http://127.0.0.1:" .. hport .. "/metrics", reader, "")))
    assert.equal(404, (get("https://127.0.0.1:" .. mport .. "/healthz", reader)))
  end)

  it("serves a self-signed certificate for 127.0.0.1 and localhost", function()
    need_cluster()
    local ok, pem = cluster.sh("openssl s_client -connect 127.0.0.1:" .. mport .. " </dev/null 2>/dev/null"
      .. " | openssl x509")
    assert.is_true(ok, pem)
    local f = os.tmpname()
    cluster.sh("cat > " .. q(f), pem)
    -- verifying against itself checks the names: curl fails on a host the certificate does not name
    assert.equal(200, (get("https://127.0.0.1:" .. mport .. "/metrics", reader, "--cacert " .. q(f))))
    assert.equal(200, (get("https://localhost:" .. mport .. "/metrics", reader, "--cacert " .. q(f))))
    os.remove(f)
  end)

  it("shuts down cleanly after serving scrapes (exit 0, no sanitizer report)", function()
    need_cluster()
    local url = "https://127.0.0.1:" .. mport .. "/metrics"
    assert.equal(200, (get(url, reader)))
    local code = op:stop()
    local err = op:stderr()
    op:cleanup()
    op = nil
    assert.equal(0, code, err:sub(-2000))
    assert.is_nil(err:find("Sanitizer", 1, true), err:sub(-2000))
  end)

  it("serves the certificate of --metrics-cert-path, and refuses a key that is not its own", function()
    need_cluster()
    local dir = os.tmpname()
    os.remove(dir)
    local req = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
    assert.is_true((cluster.sh(("mkdir -p %s && cd %s && %s -keyout tls.key -out tls.crt -subj /CN=given "
      .. "-addext subjectAltName=IP:127.0.0.1 2>/dev/null && %s -keyout other.key -out other.crt -subj /CN=other "
      .. "2>/dev/null"):format(q(dir), q(dir), req, req))))
    local p = start("--metrics-cert-path " .. q(dir))
    local code = get("https://127.0.0.1:" .. p.started.metricsPort .. "/metrics", reader,
      "--cacert " .. q(dir .. "/tls.crt"))
    p:stop()
    p:cleanup()
    assert.equal(200, code)

    local bad = cluster.spawn(("%s run --kubeconfig %s --metrics-secure --metrics-cert-path %s "
      .. "--metrics-cert-key other.key --metrics-bind-address 127.0.0.1:0 --health-probe-bind-address 127.0.0.1:0")
      :format(q(cluster.bin), q(os.getenv("SCHEDSIM_OPERATOR_KUBECONFIG")), q(dir)))
    cluster.eventually(20, "the operator exits", function() return not bad:alive() end)
    assert.matches("other.key does not belong to the certificate", bad:stderr(), 1, true)
    bad:cleanup()
    cluster.sh("rm -rf " .. q(dir))
  end)
end)
