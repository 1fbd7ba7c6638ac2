-- lib/obj.lua, lib/labels.lua, lib/names.lua: builders and helpers.
local fake = require("fake_k8s")
local null = fake.null

describe("lib.obj", function()
  local obj
  before_each(function()
    fake.install()
    obj = require("lib.obj")
  end)

  it("dig is nil- and null-safe", function()
    local t = { a = { b = null, c = { 1 } } }
    assert.is_nil(obj.dig(t, "a", "b"))
    assert.is_nil(obj.dig(t, "a", "b", "deeper"))
    assert.equal(null, obj.deep_copy(null))
    assert.is_nil(obj.dig(t, "a", "x", "y"))
    assert.is_nil(obj.dig(nil, "a"))
    assert.same(1, obj.dig(t, "a", "c", 1))
    assert.same(5, obj.default(nil, null, 5))
  end)

  it("passes resources through, nil when empty", function()
    assert.is_nil(obj.resources(nil))
    assert.is_nil(obj.resources({}))
    assert.is_nil(obj.resources(null))
    assert.is_nil(obj.resources({ limits = {} }))
    local src = { limits = { cpu = "1" }, requests = { memory = "1Gi" } }
    local r = obj.resources(src)
    assert.same(src, r)
    r.limits.cpu = "2"
    assert.same("1", src.limits.cpu)
  end)

  it("builds downward-API env, ports and probes", function()
    local env = obj.downward_env()
    assert.same({ "POD_NAME", "POD_NAMESPACE", "POD_IP" }, { env[1].name, env[2].name, env[3].name })
    assert.same("status.podIP", env[3].valueFrom.fieldRef.fieldPath)
    assert.equal(fake.array_mt, getmetatable(env))
    assert.has_error(function() obj.downward_env({ "NOPE" }) end)
    assert.same({ name = "http", containerPort = 8200, protocol = "TCP" }, obj.container_port("http", 8200))
    assert.same({ name = "http", port = 80, targetPort = 8080, protocol = "TCP", appProtocol = "http" },
      obj.service_port("http", 80, 8080, { appProtocol = "http" }))
    assert.same({ httpGet = { path = "/health", port = "http" }, periodSeconds = 5 },
      obj.http_probe("/health", "http", { periodSeconds = 5 }))
    assert.same({ tcpSocket = { port = 9003 } }, obj.tcp_probe(9003))
    assert.same({ grpc = { port = 9003, service = "x" } }, obj.grpc_probe(9003, "x"))
  end)

  it("reads Deployment readiness", function()
    assert.is_false(obj.deployment_readiness(nil).found)
    local d = { metadata = { generation = 2 }, spec = { replicas = 2 },
                status = { observedGeneration = 2, replicas = 2, readyReplicas = 2, availableReplicas = 2,
                           updatedReplicas = 2 } }
    assert.is_true(obj.deployment_readiness(d).ready_all)
    d.status.observedGeneration = 1
    assert.is_false(obj.deployment_readiness(d).ready_all)
    d.status.observedGeneration = 2
    d.status.conditions = { { type = "Progressing", status = "False", reason = "ProgressDeadlineExceeded",
                              message = "too slow" } }
    assert.matches("ProgressDeadlineExceeded", obj.deployment_readiness(d).failed)
  end)
end)

describe("lib.labels and lib.names", function()
  local labels, names
  before_each(function()
    fake.install()
    labels = require("lib.labels")
    names = require("lib.names")
  end)

  it("builds standard and serving labels without runtime-owned labels", function()
    local cr = { metadata = { name = "sim", namespace = "ns" } }
    local std = labels.standard(cr, "epp", { a = "b" })
    assert.same({ ["app.kubernetes.io/name"] = "sim", ["app.kubernetes.io/component"] = "epp", a = "b" }, std)
    assert.same({ ["llm-d.ai/role"] = "decode", ["llm-d.ai/inferenceServing"] = "true",
                  ["app.kubernetes.io/name"] = "sim" }, labels.serving_selector(cr, "decode"))
    local pod = labels.serving_pod(cr, "decode", "simulator-decode")
    assert.same("true", pod["llm-d.ai/inference-serving"])
    assert.same("schedsim-operator", pod["app.kubernetes.io/managed-by"])
    assert.is_true(labels.matches(pod, labels.serving_selector(cr, "decode")))
    assert.same({ matchLabels = { x = "1" } }, labels.selector({ x = "1" }))
  end)

  it("names keys, hosts and DNS labels", function()
    assert.same("Deployment.apps/v1", names.kind_key("apps/v1", "Deployment"))
    local observed = { children = { ["Service.v1"] = { ["ns/a"] = { x = 1 } } } }
    assert.same({ x = 1 }, names.observed_child(observed, "v1", "Service", "ns", "a"))
    assert.is_nil(names.observed_child(observed, "apps/v1", "Deployment", "ns", "a"))
    assert.same("a.b.svc.cluster.local", names.service_fqdn("a", "b"))
    local long = names.dns_label(string.rep("Ab_", 40))
    assert.is_true(#long <= 63)
    assert.matches("^ab%-ab%-", long)
    assert.same(long, names.dns_label(string.rep("Ab_", 40)))
    assert.is_true(names.valid_label_value("a.b-c"))
    assert.is_false(names.valid_label_value("-a"))
  end)
end)
