--- SimulatorDeployment reconciler: from the CR (and the observed children)
--- to the desired children and status. Contract: doc/architecture.md; the
--- fields, defaults and deviations from the reference operator:
--- doc/configuration.md ("SimulatorDeployment").
---
--- Children (all in the CR's namespace):
---   * per enabled stage (prefill, decode): Deployment + Service
---     `ms-sim-llm-d-modelservice-<stage>`;
---   * no stage enabled (legacy): Deployment `ms-sim-<CR>-decode` and the
---     proxy Service `spec.service.name`;
---   * spec.epp.enabled: ServiceAccount, Role, RoleBinding, ConfigMap,
---     Deployment, Service `gaie-sim-epp`, and the InferencePool `gaie-sim`
---     the EPP watches;
---   * spec.gateway.enabled: Gateway API Gateway + HTTPRoute `spec.gateway.routeName`;
---   * spec.inferenceGateway.{standard,istio}: self-managed Envoy
---     (ConfigMap, Deployment, Service) `infra-sim-inference-gateway[-istio]`;
---   * spec.loadBalancing.enabled: Istio DestinationRule `<backend Service>-lb`.
--- Optional kinds the cluster does not serve are left out and reported in
--- `Degraded` (IstioNotInstalled, GatewayAPINotInstalled, InferencePoolNotInstalled).
--- Invalid input (that the CRD did not already refuse) is a terminal error
--- (`Ready=False`, reason `InvalidSpec`): nothing is applied or pruned.
local conditions = require("lib.conditions")
local labels = require("lib.labels")
local names = require("lib.names")
local obj = require("lib.obj")
local args = require("lib.args")
local versions = require("simulatordeployment.versions")
local epp = require("lib.epp")

local M = {}

M.STAGES = { "prefill", "decode" }
M.EPP_NAME = "gaie-sim-epp"
M.POOL_NAME = "gaie-sim"
M.STANDARD_GATEWAY = "infra-sim-inference-gateway"
M.ISTIO_GATEWAY = "infra-sim-inference-gateway-istio"
M.ALGORITHMS = { "ROUND_ROBIN", "LEAST_REQUEST", "RANDOM", "LEAST_CONN" }
M.SERVICE_TYPES = { "ClusterIP", "NodePort", "LoadBalancer" }
M.EPP_METRICS_PORT = 9090
M.ENVOY_ADMIN_PORT = 19000
M.CONFIG_HASH = "sim.llm-d.io/config-hash"
local COMPONENT_LABEL = "llm-d.ai/component"
local GATEWAY_TYPE_LABEL = "llm-d.ai/gateway-type"

local KINDS = {
  DestinationRule = { apiVersion = "networking.istio.io/v1", kind = "DestinationRule" },
  Gateway = { apiVersion = "gateway.networking.k8s.io/v1", kind = "Gateway" },
  HTTPRoute = { apiVersion = "gateway.networking.k8s.io/v1", kind = "HTTPRoute" },
  InferencePool = { apiVersion = "inference.networking.k8s.io/v1", kind = "InferencePool" },
}
M.KINDS = KINDS

--- Name of a stage's Deployment and Service.
--- @param stage string
--- @return string
function M.stage_name(stage)
  return "ms-sim-llm-d-modelservice-" .. stage
end

--- Name of the legacy Deployment.
--- @param cr table
--- @return string
function M.legacy_name(cr)
  return "ms-sim-" .. cr.metadata.name .. "-decode"
end

---------------------------------------------------------------------------
-- Spec: defaults and validation
---------------------------------------------------------------------------

local dig, default = obj.dig, obj.default

local function contains(list, v)
  for _, x in ipairs(list) do if x == v then return true end end
  return false
end

--- A validation context: collects messages naming the field.
local function checker()
  local errs = {}
  local c = { errs = errs }
  function c.int(field, v, lo, hi)
    if math.type(v) ~= "integer" then
      if type(v) == "number" and v == math.floor(v) then return math.tointeger(v) end
      errs[#errs + 1] = string.format("%s: must be an integer (got %s)", field, tostring(v))
      return nil
    end
    if lo and v < lo then
      errs[#errs + 1] = hi and string.format("%s: must be between %d and %d (got %d)", field, lo, hi, v)
        or string.format("%s: must be at least %d (got %d)", field, lo, v)
    elseif hi and v > hi then
      errs[#errs + 1] = string.format("%s: must be between %d and %d (got %d)", field, lo, hi, v)
    end
    return v
  end
  function c.port(field, v) return c.int(field, v, 1, 65535) end
  function c.enum(field, v, allowed)
    if not contains(allowed, v) then
      errs[#errs + 1] = string.format("%s: unsupported value %q (supported: %s)", field, tostring(v),
        table.concat(allowed, ", "))
    end
    return v
  end
  function c.str(field, v)
    if type(v) ~= "string" or v == "" then
      errs[#errs + 1] = string.format("%s: must be a non-empty string (got %s)", field, tostring(v))
    end
    return v
  end
  function c.list(field, v)
    if obj.is_null(v) then return {} end
    if type(v) ~= "table" then
      errs[#errs + 1] = string.format("%s: must be a list of strings", field)
      return {}
    end
    for i, x in ipairs(v) do
      if type(x) ~= "string" then
        errs[#errs + 1] = string.format("%s[%d]: must be a string (got %s)", field, i - 1, tostring(x))
      end
    end
    return v
  end
  function c.add(msg) errs[#errs + 1] = msg end
  return c
end

--- Step of normalize: the image, verbosity, replicas and resources shared by
--- the stages, and spec.service (the legacy proxy Service).
local function normalize_simulator(s, spec, c)
  s.image = c.str("spec.image", default(spec.image, versions.SIM_IMAGE))
  s.log_verbosity = c.int("spec.logVerbosity", default(spec.logVerbosity, 5), 0)
  s.replicas = c.int("spec.replicas", default(spec.replicas, 2), 1)
  s.resources = spec.resources

  s.service = {
    name = c.str("spec.service.name", default(dig(spec, "service", "name"), "gaie-inference-scheduling-proxy")),
    port = c.port("spec.service.port", default(dig(spec, "service", "port"), 8200)),
    type = c.enum("spec.service.type", default(dig(spec, "service", "type"), "ClusterIP"), M.SERVICE_TYPES),
  }
end

--- Step of normalize: the enabled stages (prefill, decode) in M.STAGES order; none is the legacy layout.
local function normalize_stages(s, spec, c)
  s.stages = {}
  for _, stage in ipairs(M.STAGES) do
    local st = default(spec[stage], {})
    if st.enabled == true then
      local f = "spec." .. stage
      s.stages[#s.stages + 1] = {
        stage = stage, field = f,
        replicas = c.int(f .. ".replicas", default(st.replicas, 2), 1),
        image = c.str(f .. ".image", default(st.image, s.image)),
        port = c.port(f .. ".port", default(st.port, 8200)),
        verbosity = c.int(f .. ".logVerbosity", default(st.logVerbosity, s.log_verbosity), 0),
        resources = st.resources,
        args = c.list(f .. ".args", st.args),
      }
    end
  end
  s.legacy = #s.stages == 0
end

--- Step of normalize: spec.loadBalancing (the Istio DestinationRule).
local function normalize_lb(s, spec, c)
  local lb = default(spec.loadBalancing, {})
  s.lb = {
    enabled = lb.enabled == true,
    algorithm = c.enum("spec.loadBalancing.algorithm", default(lb.algorithm, "ROUND_ROBIN"), M.ALGORITHMS),
    pending = c.int("spec.loadBalancing.connectionPool.http1MaxPendingRequests",
      default(dig(lb, "connectionPool", "http1MaxPendingRequests"), 1), 0),
    per_conn = c.int("spec.loadBalancing.connectionPool.maxRequestsPerConnection",
      default(dig(lb, "connectionPool", "maxRequestsPerConnection"), 1), 0),
  }
end

--- Step of normalize: spec.epp; its port and health port (port + 1) must miss the metrics port,
--- and an inline config (spec.epp.config) must suit the EPP version (lib.epp.fragment_problem).
local function normalize_epp(s, spec, c)
  local epp_spec = default(spec.epp, {})
  s.epp = { enabled = epp_spec.enabled == true }
  if s.epp.enabled then
    s.epp.replicas = c.int("spec.epp.replicas", default(epp_spec.replicas, 1), 1)
    s.epp.image = c.str("spec.epp.image", default(epp_spec.image, epp.knobs.image))
    s.epp.port = c.int("spec.epp.port", default(epp_spec.port, 9002), 1, 65534)
    s.epp.verbosity = c.int("spec.epp.verbosity", default(epp_spec.verbosity, 1), 0)
    s.epp.args = c.list("spec.epp.args", epp_spec.args)
    s.epp.resources = epp_spec.resources
    -- an inline EndpointPickerConfig instead of the profile the stages pick
    if epp_spec.config ~= nil and not obj.is_null(epp_spec.config) and s.epp.image then
      local problem = epp.fragment_problem(epp_spec.config, epp.epp_for(s.epp.image), "spec.epp.config")
      if problem then c.add(problem) else s.epp.inline = epp_spec.config end
    end
    if s.epp.port and (s.epp.port == M.EPP_METRICS_PORT or s.epp.port + 1 == M.EPP_METRICS_PORT) then
      c.add(string.format("spec.epp.port: %d and its health port %d must not use the metrics port %d",
        s.epp.port, s.epp.port + 1, M.EPP_METRICS_PORT))
    end
  end
end

--- Step of normalize: spec.gateway (Gateway API) and spec.inferenceGateway
--- (self-managed Envoy); their names and ports must not collide.
local function normalize_gateways(s, spec, c)
  local gw = default(spec.gateway, {})
  s.gateway = {
    enabled = gw.enabled == true,
    class = c.str("spec.gateway.className", default(gw.className, "istio")),
    name = c.str("spec.gateway.routeName", default(gw.routeName, "infra-sim-inference-gateway")),
  }

  local ig = default(spec.inferenceGateway, {})
  s.gateways = {}
  for _, kind in ipairs({ "standard", "istio" }) do
    local g = default(ig[kind], {})
    if ig.enabled == true and g.enabled == true then
      local f = "spec.inferenceGateway." .. kind
      local inst = {
        kind = kind, field = f,
        name = kind == "istio" and M.ISTIO_GATEWAY or M.STANDARD_GATEWAY,
        replicas = c.int(f .. ".replicas", default(g.replicas, 1), 1),
        image = c.str(f .. ".image", default(g.image, kind == "istio" and versions.ISTIO_GATEWAY_IMAGE
          or versions.STANDARD_GATEWAY_IMAGE)),
        port = c.port(f .. ".port", default(g.port, 8080)),
        resources = g.resources,
      }
      if inst.port == M.ENVOY_ADMIN_PORT then
        c.add(string.format("%s.port: %d is the gateway's Envoy admin port; choose another", f, inst.port))
      end
      s.gateways[#s.gateways + 1] = inst
    end
  end
  -- Istio deploys a programmed Gateway as Deployment/Service "<name>-istio":
  -- that must not be the self-managed Istio gateway's name.
  if s.gateway.enabled and s.gateway.class == "istio" and s.gateway.name .. "-istio" == M.ISTIO_GATEWAY then
    for _, g in ipairs(s.gateways) do
      if g.kind == "istio" then
        c.add(string.format("spec.gateway.routeName: Istio would deploy Gateway %q as %q, the name "
          .. "spec.inferenceGateway.istio uses; choose another routeName", s.gateway.name, M.ISTIO_GATEWAY))
      end
    end
  end
end

--- The CR's spec with every default applied (the CRD's defaults, repeated
--- here for objects that bypassed them), validated. Raises a terminal error
--- naming the fields when the spec is invalid (every message, in the order
--- of the steps below).
--- @param cr table
--- @return table s   the normalised spec
function M.normalize(cr)
  local spec = default(cr.spec, {})
  local c = checker()
  local s = { name = cr.metadata.name, namespace = cr.metadata.namespace }
  normalize_simulator(s, spec, c)
  normalize_stages(s, spec, c)
  normalize_lb(s, spec, c)
  normalize_epp(s, spec, c)
  normalize_gateways(s, spec, c)
  if #c.errs == 0 then M.build_args(s, c) end
  if #c.errs > 0 then k8s.terminal(table.concat(c.errs, "; ")) end
  return s
end

---------------------------------------------------------------------------
-- Arguments
---------------------------------------------------------------------------

--- Simulator args for a stage: `--model random --mode random --v N --port P`
--- then the user's args. `--model`/`--mode` are defaults the user may
--- override; `--port`/`--v` come from spec fields and must not be contradicted.
local function sim_args(st, c)
  local gen = {
    { flag = "model", value = "random" },
    { flag = "mode", value = "random" },
    { flag = "v", value = st.verbosity, field = st.field .. ".logVerbosity" },
    { flag = "port", value = st.port, field = st.field .. ".port" },
  }
  local argv, conflicts = args.build(gen, st.args, { field = st.field .. ".args" })
  for _, m in ipairs(conflicts) do c.add(m) end
  -- data-parallel ranks serve on --port + rank (llm-d-inference-sim
  -- --data-parallel-size, 1..8): the Service and the pool carry one port,
  -- so more than one rank would be half-served; refused, naming the field
  for _, p in ipairs(args.parse(st.args)) do
    local n = (p.name == "data-parallel-size" or p.name == "dp") and tonumber(p.value)
    if n and n > 1 then
      c.add(string.format("%s.args: %s asks for %d data-parallel ranks on ports %d-%d; the Service and the "
        .. "InferencePool expose one serving port (%s.port): run %d replicas instead", st.field, p.raw, n,
        st.port, st.port + n - 1, st.field, n))
    end
  end
  return argv
end

--- EPP flags that take no separate value (pflag booleans).
local EPP_BOOLEANS = { ["secure-serving"] = true, tracing = true, ["ha-enable-leader-election"] = true,
                       ["metrics-endpoint-auth"] = true, ["enable-pprof"] = true, ["health-checking"] = true }

--- EPP args, version-aware (see versions.epp): pool and config defaults the
--- user may override, ports and verbosity tied to spec fields, then the
--- user's args.
local function epp_args(s, c)
  local e = s.epp
  local row = epp.epp_for(e.image)
  local gen = {
    { flag = "pool-name", value = M.POOL_NAME },
    { flag = "pool-namespace", value = s.namespace },
    { flag = "pool-group", value = "inference.networking.k8s.io" },
    { flag = "zap-encoder", value = "json" },
    { flag = "config-file", value = "/config/default-plugins.yaml" },
  }
  if row.metric_flags == "accepted" then
    local sim_image = s.legacy and s.image or s.stages[#s.stages].image
    gen[#gen + 1] = { flag = "kv-cache-usage-percentage-metric", value = versions.sim(sim_image).kv_metric }
  else
    for _, p in ipairs(args.parse(e.args, EPP_BOOLEANS)) do
      if epp.METRIC_FLAG_NAMES[p.name] then
        c.add(string.format("spec.epp.args: %q is refused by EPP image %s (llm-d-inference-scheduler >= v0.7 "
          .. "configures metrics in the EndpointPickerConfig); remove it", p.raw, e.image))
      end
    end
  end
  for _, g in ipairs({
    { flag = "grpc-port", value = e.port, field = "spec.epp.port" },
    { flag = "grpc-health-port", value = e.port + 1, field = "spec.epp.port (+1)" },
    { flag = "metrics-port", value = M.EPP_METRICS_PORT, field = "the EPP metrics port" },
    { flag = "v", value = e.verbosity, field = "spec.epp.verbosity" },
    { flag = "secure-serving", value = "false", equals = true },
    { flag = "tracing", value = "false", equals = true },
  }) do gen[#gen + 1] = g end
  if row.metrics_auth_flag then
    gen[#gen + 1] = { flag = "metrics-endpoint-auth", value = "false", equals = true }
  end
  if e.replicas > 1 then gen[#gen + 1] = { flag = "ha-enable-leader-election" } end
  local argv, conflicts = args.build(gen, e.args, { field = "spec.epp.args", booleans = EPP_BOOLEANS })
  for _, m in ipairs(conflicts) do c.add(m) end
  return argv
end

--- Fill `st.argv` for every stage and `s.epp.argv`.
--- @param s table normalised spec
--- @param c table checker
function M.build_args(s, c)
  for _, st in ipairs(s.stages) do st.argv = sim_args(st, c) end
  if s.legacy then
    s.legacy_stage = {
      stage = "decode", field = "spec", port = s.service.port, verbosity = s.log_verbosity,
      image = s.image, replicas = s.replicas, resources = s.resources, args = {},
    }
    s.legacy_stage.argv = sim_args(s.legacy_stage, c)
  end
  if s.epp.enabled then s.epp.argv = epp_args(s, c) end
end

---------------------------------------------------------------------------
-- Children
---------------------------------------------------------------------------

local function stage_labels(cr, stage)
  return labels.standard(cr, "simulator-" .. stage, {
    [labels.ROLE] = stage, [labels.SERVING_LEGACY] = "true", [labels.SERVING] = "true",
  })
end

--- The simulator container of a stage (or of the legacy Deployment).
local function sim_container(st)
  local traits = versions.sim(st.image)
  local ready, live
  if traits.readiness then
    ready = obj.http_probe(traits.readiness, st.port, { periodSeconds = 5, timeoutSeconds = 2, failureThreshold = 3 })
    live = obj.http_probe(traits.liveness, st.port,
      { initialDelaySeconds = 10, periodSeconds = 10, timeoutSeconds = 2, failureThreshold = 3 })
  else
    ready = obj.tcp_probe(st.port, { periodSeconds = 5 })
    live = obj.tcp_probe(st.port, { initialDelaySeconds = 10, periodSeconds = 10 })
  end
  return {
    name = st.stage,
    image = st.image,
    imagePullPolicy = "IfNotPresent",
    args = st.argv,
    ports = obj.array({ obj.container_port("http", st.port) }),
    env = obj.downward_env(),
    resources = obj.resources(st.resources),
    readinessProbe = ready,
    livenessProbe = live,
  }
end

local function deployment(name, ns, meta_labels, replicas, selector, pod_labels, pod_spec, pod_annotations)
  local d = obj.object("apps/v1", "Deployment", name, ns, meta_labels)
  d.spec = {
    replicas = replicas,
    selector = labels.selector(selector),
    template = { metadata = { labels = pod_labels, annotations = pod_annotations }, spec = pod_spec },
  }
  return d
end

local function service(name, ns, meta_labels, selector, ports, svc_type)
  local svc = obj.object("v1", "Service", name, ns, meta_labels)
  svc.spec = { type = svc_type or "ClusterIP", selector = selector, ports = obj.array(ports) }
  return svc
end

local function stage_children(cr, s, st, out)
  local name, ns = M.stage_name(st.stage), s.namespace
  local meta = stage_labels(cr, st.stage)
  local sel = labels.serving_selector(cr, st.stage)
  out[#out + 1] = deployment(name, ns, meta, st.replicas, sel,
    labels.serving_pod(cr, st.stage, "simulator-" .. st.stage),
    { containers = obj.array({ sim_container(st) }) })
  out[#out + 1] = service(name, ns, meta, sel, { obj.service_port("http", st.port, st.port) })
end

local function legacy_children(cr, s, out)
  local st, ns = s.legacy_stage, s.namespace
  local meta = stage_labels(cr, "decode")
  -- the reference operator's selector for this Deployment and the proxy Service
  local sel = { [labels.ROLE] = "decode", [labels.NAME] = cr.metadata.name }
  out[#out + 1] = deployment(M.legacy_name(cr), ns, meta, st.replicas, sel,
    labels.serving_pod(cr, "decode", "simulator-decode"), { containers = obj.array({ sim_container(st) }) })
  out[#out + 1] = service(s.service.name, ns, labels.standard(cr, "proxy"), sel,
    { obj.service_port("http", s.service.port, s.service.port) }, s.service.type)
end

--- The Service that carries serving traffic (gateways, DestinationRule):
--- the decode Service, else the prefill one, else (legacy) the proxy Service.
--- @return string name, integer port
function M.backend(s)
  if s.legacy then return s.service.name, s.service.port end
  local pick = s.stages[#s.stages]
  return M.stage_name(pick.stage), pick.port
end

local function serving_ports(s)
  if s.legacy then return { s.service.port } end
  local seen, out = {}, {}
  for i = #s.stages, 1, -1 do
    local p = s.stages[i].port
    if not seen[p] then seen[p] = true; out[#out + 1] = p end
  end
  return out
end

--- The EPP's profile: lib/epp.lua's `pd_profile` when prefill is enabled,
--- else its `default_profile` (the reference operator's plugin sets; a
--- policy overlay patches both).
--- @param s table normalised spec
--- @return string
function M.epp_profile(s)
  for _, st in ipairs(s.stages) do
    if st.stage == "prefill" then return epp.knobs.pd_profile end
  end
  return epp.knobs.default_profile
end

local function epp_children(cr, s, out, pool_served)
  local e, ns, name = s.epp, s.namespace, M.EPP_NAME
  local meta = labels.standard(cr, "epp", { [COMPONENT_LABEL] = "epp" })
  local sel = { [COMPONENT_LABEL] = "epp", [labels.NAME] = cr.metadata.name }

  local sa = obj.object("v1", "ServiceAccount", name, ns, meta)
  out[#out + 1] = sa
  local role = obj.object("rbac.authorization.k8s.io/v1", "Role", name, ns, meta)
  role.rules = epp.rules(epp.epp_for(e.image), e.replicas, "read-only")
  out[#out + 1] = role
  local rb = obj.object("rbac.authorization.k8s.io/v1", "RoleBinding", name, ns, meta)
  rb.roleRef = { apiGroup = "rbac.authorization.k8s.io", kind = "Role", name = name }
  rb.subjects = obj.array({ { kind = "ServiceAccount", name = name, namespace = ns } })
  out[#out + 1] = rb

  local config_text, perr
  if e.inline then
    config_text = epp.render_fragment(e.inline)
  else
    config_text, perr = epp.render(M.epp_profile(s), "the EPP profile (lib/epp.lua knobs default_profile, pd_profile)")
    if not config_text then error(perr) end
  end
  local cm = obj.object("v1", "ConfigMap", name, ns, meta)
  cm.data = { ["default-plugins.yaml"] = config_text }
  out[#out + 1] = cm

  local probes = epp.probes(epp.epp_for(e.image), e.port + 1, e.replicas, "grpc")
  local container = {
    name = "epp", image = e.image, imagePullPolicy = "IfNotPresent",
    args = e.argv,
    env = obj.downward_env({ "NAMESPACE", "POD_NAME" }),
    ports = obj.array({
      obj.container_port("grpc", e.port), obj.container_port("grpc-health", e.port + 1),
      obj.container_port("metrics", M.EPP_METRICS_PORT),
    }),
    -- with leader election only the leader serves "inference-extension"
    -- and "readiness"; "liveness" answers on every replica, so a follower is
    -- not ready but not restarted either
    livenessProbe = probes.livenessProbe,
    readinessProbe = probes.readinessProbe,
    resources = obj.resources(e.resources),
    volumeMounts = obj.array({ { name = "plugins-config", mountPath = "/config" } }),
  }
  out[#out + 1] = deployment(name, ns, meta, e.replicas, sel, labels.pod(sel, "epp"), {
    serviceAccountName = name,
    terminationGracePeriodSeconds = 130,
    containers = obj.array({ container }),
    volumes = obj.array({ { name = "plugins-config", configMap = { name = name } } }),
  }, { ["sidecar.istio.io/inject"] = "false", [M.CONFIG_HASH] = k8s.sha256(config_text):sub(1, 16) })

  out[#out + 1] = service(name, ns, meta, sel, {
    obj.service_port("grpc", e.port, e.port, { appProtocol = "http2" }),
    obj.service_port("metrics", M.EPP_METRICS_PORT, M.EPP_METRICS_PORT),
  })

  if pool_served then
    local pool = obj.object(KINDS.InferencePool.apiVersion, "InferencePool", M.POOL_NAME, ns,
      labels.standard(cr, "inference-pool"))
    local ports = {}
    for _, p in ipairs(serving_ports(s)) do ports[#ports + 1] = { number = p } end
    pool.spec = {
      selector = { matchLabels = { [labels.SERVING_LEGACY] = "true", [labels.NAME] = cr.metadata.name } },
      targetPorts = obj.array(ports),
      endpointPickerRef = { kind = "Service", name = name, port = { number = e.port } },
    }
    out[#out + 1] = pool
  end
end

local LB_POLICY = { ROUND_ROBIN = "ROUND_ROBIN", LEAST_REQUEST = "LEAST_REQUEST", RANDOM = "RANDOM",
                    LEAST_CONN = "LEAST_REQUEST" }

--- Static Envoy bootstrap of a self-managed gateway: listener on `port`,
--- admin on 19000, one route to the backend Service.
function M.envoy_config(s, g)
  local A = obj.array
  local backend, bport = M.backend(s)
  local host = names.service_fqdn(backend, s.namespace)
  return {
    admin = { address = { socket_address = { address = "0.0.0.0", port_value = M.ENVOY_ADMIN_PORT } } },
    static_resources = {
      listeners = A({ {
        name = "http",
        address = { socket_address = { address = "0.0.0.0", port_value = g.port } },
        filter_chains = A({ { filters = A({ {
          name = "envoy.filters.network.http_connection_manager",
          typed_config = {
            ["@type"] = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
              .. ".HttpConnectionManager",
            stat_prefix = "ingress_http",
            route_config = { name = "local_route", virtual_hosts = A({ {
              name = "simulator", domains = A({ "*" }),
              routes = A({ { match = { prefix = "/" },
                             route = { cluster = "simulator", timeout = "300s" } } }),
            } }) },
            http_filters = A({ { name = "envoy.filters.http.router", typed_config = {
              ["@type"] = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" } } }),
          },
        } }) } }),
      } }),
      clusters = A({ {
        name = "simulator", connect_timeout = "5s", type = "STRICT_DNS",
        lb_policy = LB_POLICY[s.lb.algorithm] or "ROUND_ROBIN",
        load_assignment = { cluster_name = "simulator", endpoints = A({ { lb_endpoints = A({ {
          endpoint = { address = { socket_address = { address = host, port_value = bport } } },
        } }) } }) },
      } }),
    },
  }
end

local function gateway_instance_children(cr, s, g, out)
  local ns = s.namespace
  local sel = { [COMPONENT_LABEL] = "gateway", [labels.NAME] = cr.metadata.name, [GATEWAY_TYPE_LABEL] = g.kind }
  local meta = labels.standard(cr, "gateway", { [COMPONENT_LABEL] = "gateway", [GATEWAY_TYPE_LABEL] = g.kind })
  local text = k8s.yaml.encode(M.envoy_config(s, g))
  local cm = obj.object("v1", "ConfigMap", g.name, ns, meta)
  cm.data = { ["envoy.yaml"] = text }
  out[#out + 1] = cm

  local container = {
    image = g.image, imagePullPolicy = "IfNotPresent",
    ports = obj.array({ obj.container_port("http", g.port), obj.container_port("admin", M.ENVOY_ADMIN_PORT) }),
    env = obj.downward_env({ "POD_NAME", "POD_NAMESPACE" }),
    readinessProbe = obj.http_probe("/ready", M.ENVOY_ADMIN_PORT, { periodSeconds = 5, failureThreshold = 3 }),
    livenessProbe = obj.tcp_probe(M.ENVOY_ADMIN_PORT, { initialDelaySeconds = 10, periodSeconds = 10 }),
    resources = obj.resources(g.resources),
    volumeMounts = obj.array({ { name = "envoy-config", mountPath = "/etc/envoy", readOnly = true } }),
  }
  if g.kind == "istio" then
    -- the Envoy inside the proxyv2 image, with the static config (no istiod needed)
    container.name = "istio-proxy"
    container.command = obj.array({ "/usr/local/bin/envoy" })
    container.args = obj.array({ "-c", "/etc/envoy/envoy.yaml", "--disable-hot-restart", "--log-level", "warn",
                                 "--service-node", "$(POD_NAME).$(POD_NAMESPACE)", "--service-cluster", g.name })
  else
    -- kgateway's envoy-wrapper reads /etc/envoy/envoy.yaml
    container.name = "kgateway-proxy"
    container.args = obj.array({ "--disable-hot-restart", "--service-node", "$(POD_NAME).$(POD_NAMESPACE)",
                                 "--log-level", "warn" })
  end
  out[#out + 1] = deployment(g.name, ns, meta, g.replicas, sel, labels.pod(sel, "gateway"), {
    containers = obj.array({ container }),
    volumes = obj.array({ { name = "envoy-config", configMap = { name = g.name } } }),
  }, { ["sidecar.istio.io/inject"] = "false", [M.CONFIG_HASH] = k8s.sha256(text):sub(1, 16) })
  out[#out + 1] = service(g.name, ns, meta, sel, { obj.service_port("http", g.port, g.port) })
end

local function gateway_api_children(cr, s, out)
  local ns, name = s.namespace, s.gateway.name
  local meta = labels.standard(cr, "gateway")
  local gw = obj.object(KINDS.Gateway.apiVersion, "Gateway", name, ns, meta)
  gw.spec = {
    gatewayClassName = s.gateway.class,
    listeners = obj.array({ { name = "http", port = 80, protocol = "HTTP",
                              allowedRoutes = { namespaces = { from = "Same" } } } }),
  }
  out[#out + 1] = gw
  local backend, bport = M.backend(s)
  local route = obj.object(KINDS.HTTPRoute.apiVersion, "HTTPRoute", name, ns, meta)
  route.spec = {
    parentRefs = obj.array({ { name = name } }),
    rules = obj.array({ {
      matches = obj.array({ { path = { type = "PathPrefix", value = "/" } } }),
      backendRefs = obj.array({ { name = backend, port = bport } }),
      timeouts = { request = "300s" },
    } }),
  }
  out[#out + 1] = route
end

local function destination_rule(cr, s, out)
  local backend = M.backend(s)
  local dr = obj.object(KINDS.DestinationRule.apiVersion, "DestinationRule", backend .. "-lb", s.namespace,
    labels.standard(cr, "load-balancing"))
  dr.spec = {
    host = names.service_fqdn(backend, s.namespace),
    trafficPolicy = {
      loadBalancer = { simple = s.lb.algorithm },
      connectionPool = { http = { http1MaxPendingRequests = s.lb.pending,
                                  maxRequestsPerConnection = s.lb.per_conn } },
    },
  }
  out[#out + 1] = dr
end

---------------------------------------------------------------------------
-- Status
---------------------------------------------------------------------------

local function gateway_url(s, observed)
  if s.gateway.enabled then
    local gw = names.observed_child(observed, KINDS.Gateway.apiVersion, "Gateway", s.namespace, s.gateway.name)
    local addr = dig(gw, "status", "addresses", 1, "value")
    if addr then return "http://" .. addr end
    if s.gateway.class == "istio" then
      return "http://" .. names.service_fqdn(s.gateway.name .. "-istio", s.namespace)
    end
  end
  local g = s.gateways[1]
  if g then return string.format("http://%s:%d", names.service_fqdn(g.name, s.namespace), g.port) end
  return nil
end

local function endpoints(s, url)
  local out = {}
  local function add(name, port, scheme)
    out[#out + 1] = string.format("%s://%s:%d", scheme or "http", names.service_fqdn(name, s.namespace), port)
  end
  if s.legacy then
    add(s.service.name, s.service.port)
  else
    for i = #s.stages, 1, -1 do add(M.stage_name(s.stages[i].stage), s.stages[i].port) end
  end
  if s.epp.enabled then add(M.EPP_NAME, s.epp.port, "grpc") end
  for _, g in ipairs(s.gateways) do add(g.name, g.port) end
  if url and s.gateway.enabled then out[#out + 1] = url end
  return obj.array(out)
end

--- Step of reconcile: the EPP's children and its InferencePool; Degraded
--- (InferencePoolNotInstalled) when InferencePool is not served.
local function reconcile_epp(cr, s, children, degraded)
  local pool_served = k8s.discovery.served(KINDS.InferencePool.apiVersion, "InferencePool")
  epp_children(cr, s, children, pool_served)
  if not pool_served then
    degraded[#degraded + 1] = { "InferencePoolNotInstalled",
      "spec.epp.enabled: kind InferencePool (inference.networking.k8s.io/v1) is not served; the EPP runs "
      .. "but cannot find its pool " .. M.POOL_NAME .. " until the Gateway API Inference Extension CRDs "
      .. "are installed" }
  end
end

--- Step of reconcile: the Gateway API Gateway and HTTPRoute; Degraded
--- (GatewayAPINotInstalled) naming the kinds not served.
local function reconcile_gateway_api(cr, s, children, degraded)
  local missing = {}
  for _, k in ipairs({ "Gateway", "HTTPRoute" }) do
    if not k8s.discovery.served(KINDS[k].apiVersion, k) then missing[#missing + 1] = k end
  end
  if #missing == 0 then
    gateway_api_children(cr, s, children)
  else
    degraded[#degraded + 1] = { "GatewayAPINotInstalled",
      string.format("spec.gateway.enabled: kind %s (gateway.networking.k8s.io/v1) is not served; install the "
        .. "Gateway API CRDs", table.concat(missing, ", ")) }
  end
end

--- Step of reconcile: the load-balancing DestinationRule; Degraded
--- (IstioNotInstalled) when DestinationRule is not served.
local function reconcile_lb(cr, s, children, degraded)
  if k8s.discovery.served(KINDS.DestinationRule.apiVersion, "DestinationRule") then
    destination_rule(cr, s, children)
  else
    degraded[#degraded + 1] = { "IstioNotInstalled",
      "spec.loadBalancing.enabled: kind DestinationRule (networking.istio.io/v1) is not served; install "
      .. "Istio to apply the " .. s.lb.algorithm .. " load-balancing policy" }
  end
end

--- Step of readiness: the Deployments to check: serving ones (counted in
--- replicas and the Ready summary) and the others (EPP, gateways).
local function watched_deployments(cr, s)
  local serving, others = {}, {}
  if s.legacy then
    serving[1] = { name = M.legacy_name(cr), want = s.replicas }
  else
    for _, st in ipairs(s.stages) do
      serving[#serving + 1] = { name = M.stage_name(st.stage), want = st.replicas, stage = st.stage }
    end
  end
  if s.epp.enabled then others[#others + 1] = { name = M.EPP_NAME, want = s.epp.replicas } end
  for _, g in ipairs(s.gateways) do others[#others + 1] = { name = g.name, want = g.replicas } end
  return serving, others
end

--- Step of reconcile: readiness from the observed Deployments: replica
--- totals, the decode view (what the scale subresource reads: kubectl
--- scale, HPA), and the waiting, failed and summary messages.
local function readiness(cr, s, observed)
  local serving, others = watched_deployments(cr, s)
  local rd = { replicas = 0, ready = 0, waiting = {}, failed = {}, summary = {}, decode = nil }
  local function check(d, count)
    local dep = names.observed_child(observed, "apps/v1", "Deployment", s.namespace, d.name)
    local r = obj.deployment_readiness(dep)
    if d.stage == "decode" then
      rd.decode = { replicas = r.replicas, readyReplicas = r.ready,
                    selector = labels.selector_text(labels.serving_selector(cr, "decode")) }
    end
    if count then
      rd.replicas = rd.replicas + r.replicas
      rd.ready = rd.ready + r.ready
      rd.summary[#rd.summary + 1] = string.format("%s %d/%d", d.name, r.ready, d.want)
    end
    if not r.found then
      rd.waiting[#rd.waiting + 1] = string.format("Deployment %s: not created yet", d.name)
    elseif r.failed then
      rd.failed[#rd.failed + 1] = string.format("Deployment %s: %s", d.name, r.failed)
    elseif not (r.ready_all and r.desired == d.want) then
      rd.waiting[#rd.waiting + 1] = string.format("Deployment %s: %d/%d ready", d.name, r.ready, d.want)
    end
  end
  for _, d in ipairs(serving) do check(d, true) end
  for _, d in ipairs(others) do check(d, false) end
  return rd
end

--- Step of reconcile: Progressing, Degraded (a failed Deployment is one more
--- reason, after the unserved kinds) and Ready; returns the condition list.
--- @return Condition[]
local function condition_list(cr, ctx, rd, degraded)
  for _, f in ipairs(rd.failed) do degraded[#degraded + 1] = { "DeploymentFailed", f } end
  local cs = conditions.new_set(cr)
  if #rd.waiting > 0 then
    cs:set("Progressing", true, "RollingOut", table.concat(rd.waiting, "; "))
  else
    cs:set("Progressing", false, "RolloutComplete", "every Deployment has its desired ready replicas")
  end
  if #degraded > 0 then
    local msgs = {}
    for _, d in ipairs(degraded) do msgs[#msgs + 1] = d[2] end
    cs:set("Degraded", true, degraded[1][1], table.concat(msgs, "; "))
  else
    cs:set("Degraded", false, "AsExpected", "all requested components are applied")
  end
  cs:summarize({ reason = "AllReplicasReady", message = table.concat(rd.summary, ", ") .. " ready" })
  return cs:list(ctx and ctx.now)
end

--- Step of reconcile: Events on the transitions a person should see: Ready
--- regained after a problem (it was False with a reason that is not progress),
--- Ready lost, Degraded raised. A new CR's first readiness and the end of a
--- rollout are routine: the Ready condition says so, without an Event write
--- per CR.
local function transition_events(cr, list)
  local events = {}
  local prev = dig(cr, "status", "conditions")
  for _, t in ipairs(conditions.transitions(prev, list)) do
    if t.type == "Ready" and t.to == "True" then
      local old = conditions.find(prev, "Ready")
      if old and old.status == "False" and not conditions.PROGRESS_REASONS[old.reason] then
        events[#events + 1] = { type = "Normal", reason = "Ready", message = t.message }
      end
    elseif t.type == "Ready" and t.from == "True" then
      events[#events + 1] = { type = conditions.event_type(t), reason = t.reason, message = t.message }
    elseif t.type == "Degraded" and t.to == "True" then
      events[#events + 1] = { type = "Warning", reason = t.reason, message = t.message }
    end
  end
  return events
end

--- Step of reconcile: a Pruned Event (appended to `events`) for each observed
--- Deployment in the CR's namespace that is no longer desired, sorted by name.
local function prune_events(s, observed, children, events)
  local desired = {}
  for _, ch in ipairs(children) do desired[ch.kind .. "/" .. ch.metadata.name] = true end
  local deps = dig(observed, "children", names.kind_key("apps/v1", "Deployment")) or {}
  local removed = {}
  for _, d in pairs(deps) do
    if d.metadata and d.metadata.namespace == s.namespace and not desired["Deployment/" .. d.metadata.name] then
      removed[#removed + 1] = d.metadata.name
    end
  end
  table.sort(removed)
  for _, n in ipairs(removed) do
    events[#events + 1] = { type = "Normal", reason = "Pruned",
                            message = "Deployment " .. n .. " is no longer desired and is deleted" }
  end
end

--- The reconcile entry point (doc/architecture.md, "The reconcile contract"):
--- the desired children and the status for one SimulatorDeployment. Raises
--- k8s.terminal for a spec no reconcile can fix (Ready=False InvalidSpec).
--- @param cr k8s.Object      the SimulatorDeployment as the cache holds it
--- @param observed k8s.Observed  the children the runtime found (owner label)
--- @param ctx k8s.Ctx|nil
--- @return k8s.Result
function M.reconcile(cr, observed, ctx)
  if ctx and ctx.finalizing then
    return { children = obj.array({}), finalized = true }
  end
  local s = M.normalize(cr)
  local children = {}
  local degraded = {} -- { reason, message }: kinds not served, then failed Deployments

  if s.legacy then
    legacy_children(cr, s, children)
  else
    for _, st in ipairs(s.stages) do stage_children(cr, s, st, children) end
  end
  if s.epp.enabled then reconcile_epp(cr, s, children, degraded) end
  for _, g in ipairs(s.gateways) do gateway_instance_children(cr, s, g, children) end
  if s.gateway.enabled then reconcile_gateway_api(cr, s, children, degraded) end
  if s.lb.enabled then reconcile_lb(cr, s, children, degraded) end

  local rd = readiness(cr, s, observed)
  local list = condition_list(cr, ctx, rd, degraded)
  local url = gateway_url(s, observed)
  local status = {
    replicas = rd.replicas,
    readyReplicas = rd.ready,
    decode = rd.decode,
    endpoints = endpoints(s, url),
    gatewayURL = url,
    conditions = list,
  }

  local events = transition_events(cr, list)
  prune_events(s, observed, children, events)
  local result = { children = obj.array(children), status = status }
  if #events > 0 then result.events = obj.array(events) end
  return result
end

return M
