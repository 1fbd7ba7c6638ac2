-- SchedulerInstall reconciler: from the CR and what the cache holds to the
-- desired children and the status (doc/architecture.md, "The reconcile
-- contract"). The runtime adds the managed-by/owner labels, owner references
-- or the cleanup finalizer, and the desired-hash annotation; nothing here
-- sets them.
--
--   scheduler namespace  ServiceAccount, ConfigMap <epp>-config, EPP Deployment
--                        and Service, Gateway, HTTPRoute, EPP DestinationRule (TLS)
--   gateway namespace    EnvoyFilter (istio)
--   pool namespace       Role + RoleBinding for the EPP, managed InferencePool,
--                        EPP alias Service (ExternalName) for a managed pool
--   backend namespace    ReferenceGrant when the route crosses namespaces
--   simulator namespace  proxy Service, its DestinationRule (istio)
--
-- The routing policy's knobs live in schedulerinstall.routing (applied by
-- schedulerinstall.route), everything EPP (profiles, version rows, RBAC,
-- probes) in lib.epp, the simulator version table in schedulerinstall.versions;
-- a policy overlay (scripts/policy.lua) patches the knobs. With
-- spec.routing.arms (A/B routing, schedulerinstall.arms) every arm gets the
-- EPP children and managed pool the single EPP would, built by the same
-- functions from the arm's resolved spec, instead of the single EPP and pool.
local conditions = require("lib.conditions")
local labels = require("lib.labels")
local names = require("lib.names")
local obj = require("lib.obj")
local argslib = require("lib.args")
local routing = require("schedulerinstall.routing")
local routes = require("schedulerinstall.route")
local armslib = require("schedulerinstall.arms")
local epp = require("lib.epp")
local versions = require("schedulerinstall.versions")

local M = {}

M.API = "sim.llm-d.io/v1alpha1"
M.KIND = "SchedulerInstall"
M.POOL_V1 = "inference.networking.k8s.io/v1"
M.POOL_V1ALPHA2 = "inference.networking.x-k8s.io/v1alpha2"
M.GATEWAY_API = "gateway.networking.k8s.io/v1"
M.GRANT_API = "gateway.networking.k8s.io/v1beta1"
M.DR_API = "networking.istio.io/v1"
M.EF_API = "networking.istio.io/v1alpha3"
M.GATEWAY_NAME_LABEL = "gateway.networking.k8s.io/gateway-name"
M.DEFAULT_POOL = "gaie-inference-scheduling"
M.DEFAULT_GATEWAY = "infra-inference-scheduling-inference-gateway"
M.EF_CLUSTER = "epp-cluster"
M.EPP_CONFIG_KEY = "epp-config.yaml" -- key of ConfigMap <epp.name>-config
M.EPP_CONFIG_DIR = "/etc/epp"        -- where the EPP container mounts it

local dig, default, array = obj.dig, obj.default, obj.array

local is_set, copy_map = obj.is_set, obj.copy
local function str_default(v, d) if is_set(v) then return v end return d end

local function map_text(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = {}
  for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. tostring(t[k]) end
  return table.concat(parts, ",")
end

-- Cache reads: a kind that is not served reads as absent (nil, an empty
-- list); a kind not declared in controllers.lua raises (a programming error,
-- reported as a script error naming the kind), so no pcall here.
local function cache_get(apiVersion, kind, ns, name)
  return k8s.cache.get(apiVersion, kind, ns, name)
end

local function cache_list(apiVersion, kind, sel)
  return k8s.cache.list(apiVersion, kind, sel) or {}, true
end

local function served(apiVersion, kind)
  return k8s.discovery.served(apiVersion, kind) == true
end

-- --------------------------------------------------------------- the spec

--- Step of resolve: spec.proxyService (the simulator-facing Service) and the serving port.
local function resolve_proxy(s, spec)
  local ps = spec.proxyService or {}
  local port = default(ps.port, 8200)
  s.proxy = {
    name = str_default(ps.name, "gaie-inference-scheduling-proxy"),
    port = port,
    target_port = default(ps.targetPort, port),
    selector = not obj.empty(ps.selector) and copy_map(ps.selector)
      or { [labels.ROLE] = "decode", [labels.SERVING_LEGACY] = "true" },
  }
  s.serving_port, s.serving_port_field = s.proxy.target_port, "spec.proxyService.targetPort"
end

--- Step of resolve: spec.epp with its defaults; refuses an unknown profile, an inline config
--- (spec.epp.config) the EPP version cannot run, and clashing ports.
local function resolve_epp(s, spec)
  local e = spec.epp
  local epp_port = default(dig(e, "port"), 9002)
  s.epp = {
    present = e ~= nil and not obj.is_null(e),
    enabled = dig(e, "enabled") == true,
    name = str_default(dig(e, "name"), "gaie-inference-scheduling-epp"),
    replicas = default(dig(e, "replicas"), 1),
    image = str_default(dig(e, "image"), epp.knobs.image),
    port = epp_port,
    health_port = default(dig(e, "healthPort"), epp_port + 1),
    metrics_port = default(dig(e, "metricsPort"), 9090),
    secure = dig(e, "secureServing") == true,
    verbosity = default(dig(e, "verbosity"), 1),
    args = default(dig(e, "args"), {}),
    pool_name = str_default(dig(e, "poolName"), M.DEFAULT_POOL),
    pool_namespace = str_default(dig(e, "poolNamespace"), s.sim_ns),
    profile = str_default(dig(e, "configProfile"), epp.knobs.default_profile),
    resources = obj.resources(dig(e, "resources")),
  }
  local inline = dig(e, "config")
  if s.epp.enabled and is_set(inline) then
    -- an inline EndpointPickerConfig instead of a profile (the CRD refuses both)
    if is_set(dig(e, "configProfile")) then
      k8s.terminal("spec.epp.config and spec.epp.configProfile are mutually exclusive; give one")
    end
    local problem = epp.fragment_problem(inline, epp.epp_for(s.epp.image), "spec.epp.config")
    if problem then k8s.terminal(problem) end
    s.epp.inline = inline
  elseif s.epp.enabled then
    -- profiles are data (lib/epp_profiles.lua, patched by a policy overlay):
    -- the CRD takes any name, an unknown one is refused here naming the field
    local _, perr = epp.config(s.epp.profile)
    if perr then k8s.terminal(perr) end
  end
  if s.epp.health_port == s.epp.port then
    k8s.terminal(("spec.epp.healthPort %d must differ from spec.epp.port"):format(s.epp.health_port))
  end
  if s.epp.metrics_port == s.epp.port or s.epp.metrics_port == s.epp.health_port then
    k8s.terminal(("spec.epp.metricsPort %d must differ from spec.epp.port and spec.epp.healthPort")
      :format(s.epp.metrics_port))
  end
end

--- Step of resolve: spec.gateway (the Gateway this CR may create).
local function resolve_gateway(s, spec)
  local g = spec.gateway
  s.gateway = {
    enabled = dig(g, "enabled") == true,
    name = str_default(dig(g, "name"), M.DEFAULT_GATEWAY),
    class = str_default(dig(g, "className"), "istio"),
    listener_port = default(dig(g, "listenerPort"), 80),
    listener_protocol = str_default(dig(g, "listenerProtocol"), "HTTP"),
  }
end

--- Step of resolve: spec.routing (the HTTPRoute and its parent Gateway); after resolve_gateway.
local function resolve_routing(s, spec)
  local r = spec.routing or {}
  s.routing = {
    enabled = r.enabled == true,
    backend_type = str_default(r.backendType, "Service"),
    fallback = is_set(r.fallback) and r.fallback or nil,
    route_name = str_default(r.httpRouteName, "llm-d-inference-scheduling"),
    parent = {
      name = str_default(dig(r, "parentGateway", "name"), s.gateway.name),
      namespace = str_default(dig(r, "parentGateway", "namespace"), s.sched_ns),
    },
  }
end

--- Step of resolve: spec.routing.inferencePool; a managed pool is the EPP's (one name for both).
local function resolve_pool(s, spec)
  local e = spec.epp
  local rp = (spec.routing or {}).inferencePool or {}
  local managed = rp.managed == true
  s.pool = {
    name = str_default(rp.name, s.epp.present and s.epp.pool_name or M.DEFAULT_POOL),
    namespace = str_default(rp.namespace, s.epp.present and s.epp.pool_namespace or s.sim_ns),
    port = is_set(rp.port) and rp.port or nil,
    managed = managed,
    requested_apiVersion = is_set(rp.apiVersion) and rp.apiVersion or nil,
    selector = not obj.empty(rp.selector) and copy_map(rp.selector) or copy_map(s.proxy.selector),
    failure_mode = str_default(rp.failureMode, "FailClose"),
  }
  -- a managed pool is the EPP's pool: the operator keeps both names in step,
  -- and two different names given for it are a contradiction, not a choice
  if managed and s.epp.present then
    for _, f in ipairs({ { "poolName", "name" }, { "poolNamespace", "namespace" } }) do
      local given = dig(e, f[1])
      if is_set(given) and is_set(rp[f[2]]) and given ~= rp[f[2]] then
        k8s.terminal(("spec.epp.%s %q differs from spec.routing.inferencePool.%s %q; a managed pool is the "
          .. "EPP's pool: give one of them (or the same value)"):format(f[1], given, f[2], rp[f[2]]))
      end
    end
  end
  if managed then
    s.epp.pool_name, s.epp.pool_namespace = s.pool.name, s.pool.namespace
  end
  if s.routing.enabled and s.routing.backend_type == "InferencePool" and not is_set(rp.name)
    and not managed and not s.epp.present then
    k8s.terminal("spec.routing.backendType InferencePool needs spec.routing.inferencePool.name, "
      .. "spec.epp.poolName or spec.routing.inferencePool.managed: true")
  end
end

--- Step of resolve: spec.destinationRule and spec.envoyFilter (Istio); the filter needs the EPP.
local function resolve_istio(s, spec)
  local dr = spec.destinationRule or {}
  local cp = dr.connectionPool
  s.dr = {
    enabled = dr.enabled == true,
    algorithm = str_default(dr.algorithm, "ROUND_ROBIN"),
    pending = default(dig(cp, "http1MaxPendingRequests"), 1),
    per_conn = default(dig(cp, "maxRequestsPerConnection"), 1),
  }

  local ef = spec.envoyFilter or {}
  s.ef = {
    enabled = ef.enabled == true,
    name = str_default(ef.name, "epp-ext-proc"),
    selector = not obj.empty(ef.workloadSelector) and copy_map(ef.workloadSelector)
      or { [M.GATEWAY_NAME_LABEL] = s.routing.parent.name },
    namespace = s.routing.parent.namespace,
  }
  if s.ef.enabled and not s.epp.enabled then
    k8s.terminal("spec.envoyFilter.enabled needs spec.epp.enabled=true")
  end
end

--- The spec with every default applied (the reference's setDefaults plus
--- ours). Raises a terminal error for a spec no reconcile can fix, naming the
--- first invalid field in the order of the steps below.
function M.resolve(cr)
  local spec = cr.spec or {}
  local ns = cr.metadata.namespace
  local s = { cr_name = cr.metadata.name, ns = ns }
  s.sched_ns = str_default(spec.schedulerNamespace, ns)
  s.sim_ns = spec.simulatorNamespace
  if not is_set(s.sim_ns) then k8s.terminal("spec.simulatorNamespace is required") end
  resolve_proxy(s, spec)
  resolve_epp(s, spec)
  resolve_gateway(s, spec)
  resolve_routing(s, spec)
  resolve_pool(s, spec)
  resolve_istio(s, spec)
  s.arms = armslib.resolve(s, spec)
  s.sim_image = is_set(spec.simulatorImage) and spec.simulatorImage or nil
  return s
end

-- -------------------------------------------------------------- the facts

--- Which InferencePool API to use and what the cache says about the pool.
local function pool_facts(s, name, namespace)
  local p = { name = name, namespace = namespace, managed = s.pool.managed,
    requested_apiVersion = s.pool.requested_apiVersion, port = s.pool.port }
  local api
  if p.requested_apiVersion then
    api = p.requested_apiVersion
    p.served = served(api, "InferencePool")
    if p.served and not p.managed then p.object = cache_get(api, "InferencePool", p.namespace, p.name) end
  else
    local v1, v1a2 = served(M.POOL_V1, "InferencePool"), served(M.POOL_V1ALPHA2, "InferencePool")
    p.served = v1 or v1a2
    api = v1 and M.POOL_V1 or (v1a2 and M.POOL_V1ALPHA2 or M.POOL_V1)
    if not p.managed then
      -- an existing pool decides the API when only one version holds it
      for _, cand in ipairs({ M.POOL_V1, M.POOL_V1ALPHA2 }) do
        if served(cand, "InferencePool") then
          local o = cache_get(cand, "InferencePool", p.namespace, p.name)
          if o then api, p.object = cand, o; break end
        end
      end
    end
  end
  p.apiVersion = api
  p.group, p.version = api:match("^(.*)/([^/]+)$")
  if p.managed then
    p.target_ports = { s.serving_port }
  elseif p.object then
    local ports = {}
    if p.version == "v1alpha2" then
      ports[1] = dig(p.object, "spec", "targetPortNumber")
    else
      for _, tp in ipairs(dig(p.object, "spec", "targetPorts") or {}) do ports[#ports + 1] = tp.number end
    end
    p.target_ports = ports
    -- the EPP the pool names (v1 endpointPickerRef, v1alpha2 extensionRef)
    local ref = dig(p.object, "spec", "endpointPickerRef") or dig(p.object, "spec", "extensionRef")
    if type(ref) == "table" then
      local port = dig(ref, "port", "number") or dig(ref, "portNumber")
      p.epp_ref = { name = ref.name, port = port,
        field = p.version == "v1alpha2" and "spec.extensionRef" or "spec.endpointPickerRef" }
    end
  end
  return p
end

--- The simulator image whose tag picks the KV metric: spec.simulatorImage,
--- else a SimulatorDeployment in the simulator namespace.
local function simulator_image(s)
  if s.sim_image then return s.sim_image, "spec.simulatorImage" end
  local sds = cache_list(M.API, "SimulatorDeployment", { namespace = s.sim_ns })
  for _, sd in ipairs(sds) do
    local img = dig(sd, "spec", "decode", "image")
    if not is_set(img) then img = dig(sd, "spec", "image") end
    if is_set(img) then
      return img, ("SimulatorDeployment %s/%s"):format(s.sim_ns, sd.metadata.name)
    end
  end
  return nil, nil
end

-- ------------------------------------------------------------- children

local function meta(name, namespace, lbls, annotations)
  return { name = name, namespace = namespace, labels = lbls, annotations = annotations }
end

local function epp_labels(s, cr)
  return { app = s.epp.name, [labels.NAME] = cr.metadata.name }
end

--- Step of epp_children: spec.epp.args without the flags EPP `row` refuses
--- (a dropped flag takes its value along: "--flag value" as well as "--flag=value").
local function epp_user_args(row, args)
  local user_args = {}
  local rejected = {}
  for _, bad in ipairs(epp.rejected_args(row, args)) do rejected[bad] = true end
  local skip = false
  for _, a in ipairs(args) do
    if skip then
      skip = false
      if a:sub(1, 1) ~= "-" then goto continue end
    end
    if rejected[a] then
      skip = not a:find("=", 1, true)
    else
      user_args[#user_args + 1] = a
    end
    ::continue::
  end
  return user_args
end

--- Step of epp_children: the EPP Deployment running `argv`, mounting ConfigMap
--- `config_name`, restarted when the configuration `text` changes.
local function epp_deployment(s, cr, row, kv_metric, argv, config_name, text)
  local e = s.epp
  local probes = epp.probes(row, e.health_port, e.replicas, "tcp")
  local sel = epp_labels(s, cr)
  local pod_labels = labels.pod(sel, "epp", { ["sidecar.istio.io/inject"] = "false" })
  return {
    apiVersion = "apps/v1", kind = "Deployment",
    metadata = meta(e.name, s.sched_ns, labels.merge(labels.standard(cr, "epp"), sel), {
      ["sim.llm-d.io/epp-version"] = row.version,
      ["sim.llm-d.io/kv-cache-metric"] = kv_metric,
    }),
    spec = {
      replicas = e.replicas,
      selector = labels.selector(sel),
      template = {
        metadata = {
          labels = pod_labels,
          -- restart the EPP when its plugin configuration changes
          annotations = { ["sim.llm-d.io/config-hash"] = k8s.sha256(text):sub(1, 16) },
        },
        spec = {
          serviceAccountName = e.name,
          containers = array({ {
            name = "epp",
            image = e.image,
            imagePullPolicy = "IfNotPresent",
            args = array(argv),
            ports = array({
              obj.container_port("grpc", e.port),
              obj.container_port("grpc-health", e.health_port),
              obj.container_port("metrics", e.metrics_port),
            }),
            livenessProbe = probes.livenessProbe,
            readinessProbe = probes.readinessProbe,
            volumeMounts = array({ { name = "epp-config", mountPath = M.EPP_CONFIG_DIR } }),
            resources = e.resources,
          } }),
          volumes = array({ { name = "epp-config", configMap = { name = config_name } } }),
        },
      },
    },
  }
end

--- Step of epp_children: the EPP Service (gRPC ext_proc and metrics) in the scheduler namespace.
local function epp_service(s, cr)
  local e = s.epp
  return {
    apiVersion = "v1", kind = "Service",
    metadata = meta(e.name, s.sched_ns, labels.merge(labels.standard(cr, "epp"), epp_labels(s, cr))),
    spec = {
      type = "ClusterIP",
      selector = { app = e.name },
      ports = array({
        obj.service_port("grpc", e.port, e.port, { appProtocol = "http2" }),
        obj.service_port("metrics", e.metrics_port, e.metrics_port),
      }),
    },
  }
end

--- Step of epp_children: Role and RoleBinding in the pool's namespace, bound
--- only to the Role created here (with leader election, the pool namespace's Lease).
local function epp_rbac(s, cr, row, add)
  local e = s.epp
  local rbac_labels = labels.standard(cr, "epp-rbac")
  add({ apiVersion = "rbac.authorization.k8s.io/v1", kind = "Role",
    metadata = meta(e.name, e.pool_namespace, rbac_labels), rules = epp.rules(row, e.replicas, "row") })
  add({ apiVersion = "rbac.authorization.k8s.io/v1", kind = "RoleBinding",
    metadata = meta(e.name, e.pool_namespace, rbac_labels),
    roleRef = { apiGroup = "rbac.authorization.k8s.io", kind = "Role", name = e.name },
    subjects = array({ { kind = "ServiceAccount", name = e.name, namespace = s.sched_ns } }) })
end

--- The EPP's children: ServiceAccount, ConfigMap, Deployment and Service in
--- the scheduler namespace, RBAC in the pool's. Returns the argv, the refused
--- user flags and the user flags kept.
local function epp_children(s, cr, row, p, kv_metric, add)
  local e = s.epp
  local std = labels.standard(cr, "epp")
  local config_name = e.name .. "-config"
  local text = e.inline and epp.render_fragment(e.inline) or assert(epp.render(e.profile))

  add({ apiVersion = "v1", kind = "ServiceAccount", metadata = meta(e.name, s.sched_ns, std) })
  add({ apiVersion = "v1", kind = "ConfigMap", metadata = meta(config_name, s.sched_ns, std),
    data = { [M.EPP_CONFIG_KEY] = text } })

  local user_args = epp_user_args(row, e.args)
  local argv = epp.args(row, {
    pool_name = e.pool_name, pool_namespace = e.pool_namespace, pool_group = p.group,
    config_file = M.EPP_CONFIG_DIR .. "/" .. M.EPP_CONFIG_KEY, kv_metric = kv_metric,
    secure = e.secure, port = e.port, health_port = e.health_port, metrics_port = e.metrics_port,
    verbosity = e.verbosity, replicas = e.replicas,
  })
  for _, a in ipairs(user_args) do argv[#argv + 1] = a end
  add(epp_deployment(s, cr, row, kv_metric, argv, config_name, text))
  add(epp_service(s, cr))
  epp_rbac(s, cr, row, add)

  return { argv = argv, rejected = epp.rejected_args(row, e.args), user_args = user_args }
end

--- Step of reconcile: the managed InferencePool (v1 or v1alpha2 shape) and,
--- in another namespace than the EPP's, the EPP alias Service.
local function managed_pool(s, cr, p, add)
  local std = labels.standard(cr, "inference-pool")
  local e = s.epp
  local spec
  if p.version == "v1alpha2" then
    spec = {
      selector = copy_map(s.pool.selector),
      targetPortNumber = s.serving_port,
      extensionRef = { group = "", kind = "Service", name = e.name, portNumber = e.port,
        failureMode = s.pool.failure_mode },
    }
  else
    spec = {
      selector = { matchLabels = copy_map(s.pool.selector) },
      targetPorts = array({ { number = s.serving_port } }),
      endpointPickerRef = { group = "", kind = "Service", name = e.name, port = { number = e.port },
        failureMode = s.pool.failure_mode },
    }
  end
  add({ apiVersion = p.apiVersion, kind = "InferencePool", metadata = meta(p.name, p.namespace, std), spec = spec })
  -- the pool's endpoint picker reference has no namespace: alias the EPP
  -- Service into the pool's namespace when they differ
  if p.namespace ~= s.sched_ns then
    add({
      apiVersion = "v1", kind = "Service", metadata = meta(e.name, p.namespace, labels.standard(cr, "epp")),
      spec = {
        type = "ExternalName",
        externalName = names.service_fqdn(e.name, s.sched_ns),
        ports = array({ obj.service_port("grpc", e.port, e.port, { appProtocol = "http2" }) }),
      },
    })
  end
end

--- The EnvoyFilter: ext_proc to the EPP (replacing Istio's own for an
--- InferencePool route), its cluster, and the per-route override.
local function envoy_filter(s, cr, row, d)
  local e = s.epp
  local host = names.service_fqdn(e.name, s.sched_ns)
  local ext_proc = {
    ["@type"] = "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor",
    grpc_service = { envoy_grpc = { cluster_name = M.EF_CLUSTER }, timeout = "10s" },
    processing_mode = copy_map(row.ext_proc),
    failure_mode_allow = s.pool.failure_mode == "FailOpen",
    message_timeout = "1000s",
  }
  -- Istio inserts its own ext_proc filter for an InferencePool route: replace
  -- it; otherwise insert ours before the router
  local native = d.backend == "InferencePool"
  local filter_patch = {
    applyTo = "HTTP_FILTER",
    match = { context = "GATEWAY", listener = { filterChain = { filter = {
      name = "envoy.filters.network.http_connection_manager",
      subFilter = { name = native and "envoy.filters.http.ext_proc" or "envoy.filters.http.router" },
    } } } },
    patch = { operation = native and "REPLACE" or "INSERT_BEFORE",
      value = { name = "envoy.filters.http.ext_proc", typed_config = ext_proc } },
  }
  local cluster = {
    name = M.EF_CLUSTER,
    type = "STRICT_DNS",
    connect_timeout = "2s",
    lb_policy = "ROUND_ROBIN",
    typed_extension_protocol_options = {
      ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"] = {
        ["@type"] = "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        explicit_http_config = { http2_protocol_options = {} },
      },
    },
    load_assignment = {
      cluster_name = M.EF_CLUSTER,
      endpoints = array({ { lb_endpoints = array({ { endpoint = { address = {
        socket_address = { address = host, port_value = e.port } } } } }) } }),
    },
  }
  if e.secure then
    cluster.transport_socket = {
      name = "envoy.transport_sockets.tls",
      typed_config = {
        ["@type"] = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        sni = host,
      },
    }
  end
  local route_patch = {
    applyTo = "HTTP_ROUTE",
    match = { context = "GATEWAY" },
    patch = { operation = "MERGE", value = { typed_per_filter_config = {
      ["envoy.filters.http.ext_proc"] = {
        ["@type"] = "type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExtProcPerRoute",
        overrides = { grpc_service = { envoy_grpc = { cluster_name = M.EF_CLUSTER } },
          processing_mode = copy_map(row.ext_proc) },
      },
    } } },
  }
  return {
    apiVersion = M.EF_API, kind = "EnvoyFilter",
    metadata = meta(s.ef.name, s.ef.namespace, labels.standard(cr, "envoy-filter")),
    spec = {
      workloadSelector = { labels = copy_map(s.ef.selector) },
      configPatches = array({
        filter_patch,
        { applyTo = "CLUSTER", match = { context = "GATEWAY" }, patch = { operation = "ADD", value = cluster } },
        route_patch,
      }),
    },
  }
end

-- -------------------------------------------------------------- conditions

local function eps_ready(s)
  local slices, ok = cache_list("discovery.k8s.io/v1", "EndpointSlice",
    { namespace = s.sched_ns, labels = { ["kubernetes.io/service-name"] = s.epp.name } })
  if not ok then return nil end
  local n = 0
  for _, sl in ipairs(slices) do
    for _, ep in ipairs(sl.endpoints or {}) do
      local ready = dig(ep, "conditions", "ready")
      if ready ~= false then n = n + (type(ep.addresses) == "table" and #ep.addresses > 0 and 1 or 0) end
    end
  end
  return n
end

local function epp_condition(s, observed, row)
  local e = s.epp
  local key = e.name
  local dep = names.observed_child(observed, "apps/v1", "Deployment", s.sched_ns, key)
  local dkey = s.sched_ns .. "/" .. key
  if not dep then
    return "False", "EPPDeploymentPending", ("Deployment %s not created yet"):format(dkey)
  end
  local rd = obj.deployment_readiness(dep)
  if rd.failed then
    return "False", "EPPDeploymentFailed", ("Deployment %s: %s"):format(dkey, rd.failed)
  end
  local ha = e.replicas > 1 and row.ha ~= nil
  local need = ha and 1 or rd.desired
  -- a rollout in progress says so, rather than "n/n ready, not available"
  if not rd.current then
    return "False", "EPPRollingOut", ("Deployment %s: generation %s not yet observed by its controller")
      :format(dkey, tostring(dig(dep, "metadata", "generation")))
  end
  if rd.updated < rd.desired then
    return "False", "EPPRollingOut", ("Deployment %s: rolling out, %d/%d replicas updated")
      :format(dkey, rd.updated, rd.desired)
  end
  -- old replicas not scaled down yet still answer requests (kubectl rollout status waits for them too)
  if rd.replicas > rd.updated then
    return "False", "EPPRollingOut", ("Deployment %s: rolling out, %d old replicas pending termination")
      :format(dkey, rd.replicas - rd.updated)
  end
  if rd.ready < need then
    return "False", "EPPNotAvailable",
      ("Deployment %s: %d/%d replicas ready%s"):format(dkey, rd.ready, rd.desired,
        ha and " (leader election: one ready leader suffices)" or "")
  end
  local n = eps_ready(s)
  if n == 0 then
    return "False", "NoEPPEndpoints",
      ("Service %s has no ready endpoints (EndpointSlices kubernetes.io/service-name=%s)"):format(dkey, key)
  end
  return "True", "EPPReady", ("Deployment %s: %d/%d ready%s"):format(dkey, rd.ready, rd.desired,
    n and ("; Service %s: %d ready endpoint(s)"):format(dkey, n) or "")
end

local function programmed(gw)
  for _, c in ipairs(dig(gw, "status", "conditions") or {}) do
    if c.type == "Programmed" then return c end
  end
  return nil
end

-- --------------------------------------------------------------- reconcile

--- What one reconcile collects: the children (in apply order), the
--- conditions known only after the fact (RouteAccepted, EnvoyFilterApplied)
--- and the reasons for Degraded, in the order they were found (`once`: a
--- reason and message found again is not repeated, for the arms' EPPs).
local function collector(once)
  local r = { children = {}, later = {}, degraded = {} }
  function r.add(o) r.children[#r.children + 1] = o end
  function r.set_later(type_, status, reason, message) r.later[type_] = { status, reason, message } end
  function r.degrade(reason, message)
    for _, x in ipairs(once and r.degraded or {}) do
      if x.reason == reason and x.message == message then return end
    end
    r.degraded[#r.degraded + 1] = { reason = reason, message = message }
  end
  return r
end

--- Step of reconcile: the EPP's version row (from its image) and the KV
--- metric the simulator exports (with the simulator version and its source).
local function version_facts(s)
  local row = epp.epp_for(s.epp.image)
  local sim_image, sim_source = simulator_image(s)
  local kv_metric, sim_version = versions.sim_kv_metric(sim_image)
  return { row = row, kv_metric = kv_metric, sim_version = sim_version, sim_source = sim_source }
end

--- Step of reconcile: the RoutingFacts the policy reads, without the pool.
--- @return RoutingFacts
local function routing_facts(s, cr)
  ---@type RoutingFacts
  local facts = {
    -- the CR as the policy may read it (a copy: the policy cannot change it)
    cr = { metadata = { name = cr.metadata.name, namespace = cr.metadata.namespace,
      labels = copy_map(dig(cr, "metadata", "labels") or {}),
      annotations = copy_map(dig(cr, "metadata", "annotations") or {}) },
      spec = k8s.json.decode(k8s.json.encode(cr.spec or {})) },
    backend_type = s.routing.backend_type,
    fallback = s.routing.fallback,
    route_namespace = s.sched_ns,
    route_name = s.routing.route_name,
    gateway_class = s.gateway.class,
    service = { name = s.proxy.name, namespace = s.sim_ns, port = s.proxy.port },
    serving_port = s.serving_port,
    serving_port_field = s.serving_port_field,
    epp = { enabled = s.epp.enabled, pool_name = s.epp.pool_name, pool_namespace = s.epp.pool_namespace,
      name = s.epp.name, port = s.epp.port },
  }
  return facts
end

--- Step of routing_decision: with spec.routing.arms, each arm's pool and EPP
--- checked as the single ones are (route.decide on a copy of `facts`), then
--- combined (arms.decide; the grant names every arm's pool).
--- @return RoutingDecision d
--- @return table[] states  per arm: inst (arms.instance), p (pool_facts), d (its own decision)
local function arms_decision(s, facts)
  local states, ds = {}, {}
  for i, arm in ipairs(s.arms) do
    local inst = armslib.instance(s, arm)
    local fa = copy_map(facts)
    fa.pool = pool_facts(inst, inst.pool.name, inst.pool.namespace)
    fa.epp = { enabled = true, pool_name = inst.epp.pool_name, pool_namespace = inst.epp.pool_namespace,
      name = inst.epp.name, port = inst.epp.port }
    fa.pool_applies = true
    ds[i] = routes.decide(fa)
    states[i] = { inst = inst, p = fa.pool, d = ds[i] }
  end
  local d = armslib.decide(s.arms, ds)
  if d.refs then d.grant = routes.grant(facts.route_namespace, d.refs, facts.route_name) end
  return d, states
end

--- Step of reconcile: the routing decision. The policy picks the backend
--- from the facts without the pool, then the pool of the route (when it uses
--- one, else the EPP's pool) is looked up and checked; with arms, each arm's.
--- @return RoutingFacts facts
--- @return table p          pool_facts of that pool
--- @return RoutingDecision d
--- @return table[]|nil states  with arms: see arms_decision
local function routing_decision(s, cr)
  local facts = routing_facts(s, cr)
  local backend = routing.backend_type(facts)
  if backend ~= "Service" and backend ~= "InferencePool" then
    error(("routing.backend_type returned %s; want \"Service\" or \"InferencePool\""):format(tostring(backend)))
  end
  facts.backend_type = backend
  local routed = s.routing.enabled and backend == "InferencePool"
  local p = routed and pool_facts(s, s.pool.name, s.pool.namespace)
    or pool_facts(s, s.epp.pool_name, s.epp.pool_namespace)
  facts.pool = p
  facts.pool_applies = routed or s.epp.enabled
  if s.arms then
    local d, states = arms_decision(s, facts)
    return facts, p, d, states
  end
  return facts, p, routes.decide(facts)
end

--- Step of reconcile: the EPP's children (scheduler namespace), Degraded for
--- refused or contradicting spec.epp.args and for a KV metric the EPP cannot read.
local function reconcile_epp(s, cr, v, p, r)
  local row, kv_metric = v.row, v.kv_metric
  local got = epp_children(s, cr, row, p, kv_metric, r.add)
  for _, bad in ipairs(got.rejected) do
    r.degrade("DeprecatedEPPFlag", ("spec.epp.args: %s is refused by EPP %s (%s) at startup and was dropped; "
      .. "configure metrics in the EndpointPickerConfig"):format(bad, row.version, s.epp.image))
  end
  local tied = {
    ["grpc-port"] = { tostring(s.epp.port), "spec.epp.port" },
    ["grpc-health-port"] = { tostring(s.epp.health_port), "spec.epp.healthPort" },
    ["metrics-port"] = { tostring(s.epp.metrics_port), "spec.epp.metricsPort" },
    ["pool-name"] = { s.epp.pool_name, "spec.epp.poolName" },
    ["pool-namespace"] = { s.epp.pool_namespace, "spec.epp.poolNamespace" },
    ["pool-group"] = { p.group, "spec.routing.inferencePool.apiVersion" },
  }
  for _, a in ipairs(argslib.parse(got.user_args, { ["secure-serving"] = true, ["tracing"] = true })) do
    local t = tied[a.name]
    if t and tostring(a.value) ~= t[1] then
      r.degrade("EPPArgsConflict", ("spec.epp.args: %q contradicts %s (%s)"):format(a.raw, t[2], t[1]))
    end
  end
  if row.metric_flags == "rejected" and row.default_kv_metric ~= kv_metric then
    r.degrade("KVCacheMetricMismatch", ("simulator %s (%s) exports %s but EPP %s reads %s and refuses "
      .. "--kv-cache-usage-percentage-metric; the kv-cache-utilization-scorer sees no load")
      :format(v.sim_version, v.sim_source or "spec.simulatorImage", kv_metric, row.version, row.default_kv_metric))
  end
end

--- Step of reconcile: the proxy Service in the simulator namespace (always, as the reference).
local function proxy_service(s, cr)
  return {
    apiVersion = "v1", kind = "Service",
    metadata = meta(s.proxy.name, s.sim_ns, labels.standard(cr, "proxy")),
    spec = {
      type = "ClusterIP",
      selector = copy_map(s.proxy.selector),
      ports = array({ obj.service_port("http", s.proxy.port, s.proxy.target_port) }),
    },
  }
end

--- Step of reconcile: the Gateway of spec.gateway, or Degraded when Gateway is not served.
local function reconcile_gateway(s, cr, r)
  if served(M.GATEWAY_API, "Gateway") then
    r.add({
      apiVersion = M.GATEWAY_API, kind = "Gateway",
      metadata = meta(s.gateway.name, s.sched_ns, labels.standard(cr, "gateway")),
      spec = {
        gatewayClassName = s.gateway.class,
        listeners = array({ { name = "default", port = s.gateway.listener_port,
          protocol = s.gateway.listener_protocol } }),
      },
    })
  else
    r.degrade("GatewayAPIUnsupported", ("spec.gateway.enabled: %s Gateway is not served (install the Gateway API "
      .. "CRDs); Gateway %s/%s not created"):format(M.GATEWAY_API, s.sched_ns, s.gateway.name))
  end
end

--- Step of reconcile_route: the ReferenceGrant a cross-namespace backend
--- needs, or Degraded when ReferenceGrant is not served.
local function reconcile_grant(cr, d, route_key, r)
  if served(M.GRANT_API, "ReferenceGrant") then
    r.add({
      apiVersion = M.GRANT_API, kind = "ReferenceGrant",
      metadata = meta(d.grant.name, d.grant.namespace, labels.standard(cr, "routing")),
      spec = { from = array(d.grant.from), to = array(d.grant.to) },
    })
  else
    r.degrade("ReferenceGrantUnsupported", ("%s ReferenceGrant is not served: the cross-namespace backend "
      .. "%s %s/%s of HTTPRoute %s cannot be permitted"):format(M.GRANT_API, d.ref.kind, d.ref.namespace,
      d.ref.name, route_key))
  end
end

--- Step of reconcile: the HTTPRoute to the decided backend (and its
--- ReferenceGrant) and RouteAccepted. Returns whether HTTPRoute is served.
local function reconcile_route(s, cr, observed, d, r)
  local route_served = served(M.GATEWAY_API, "HTTPRoute")
  local route_key = s.sched_ns .. "/" .. s.routing.route_name
  if not s.routing.enabled then return route_served end
  if not route_served then
    r.set_later("RouteAccepted", false, "GatewayAPIUnsupported",
      ("%s HTTPRoute is not served (install the Gateway API CRDs); HTTPRoute %s not created")
        :format(M.GATEWAY_API, route_key))
  elseif d.backend == "None" then
    r.set_later("RouteAccepted", false, "RouteWithheld",
      ("HTTPRoute %s withheld: %s"):format(route_key, d.pool and d.pool.reason or "no usable backend"))
  else
    local timeouts = { backendRequest = "0s", request = "0s" }
    local rules = d.refs and armslib.route_rules(s.arms, d.refs, timeouts) or { {
      matches = array({ { path = { type = "PathPrefix", value = "/" } } }),
      backendRefs = array({ copy_map(d.ref) }),
      timeouts = timeouts,
    } }
    r.add({
      apiVersion = M.GATEWAY_API, kind = "HTTPRoute",
      metadata = meta(s.routing.route_name, s.sched_ns, labels.standard(cr, "routing")),
      spec = {
        parentRefs = array({ { group = "gateway.networking.k8s.io", kind = "Gateway",
          name = s.routing.parent.name, namespace = s.routing.parent.namespace } }),
        rules = array(rules),
      },
    })
    if d.grant then reconcile_grant(cr, d, route_key, r) end
    local route = names.observed_child(observed, M.GATEWAY_API, "HTTPRoute", s.sched_ns, s.routing.route_name)
    local rc = routes.route_condition(route, s.routing.parent, d.ref, route_key)
    r.set_later("RouteAccepted", rc.status, rc.reason, rc.message)
  end
  return route_served
end

--- Step of reconcile: the Istio DestinationRules: load balancing of the proxy
--- Service (spec.destinationRule) and TLS to a secureServing EPP (each
--- arm's, with `states` from arms_decision).
local function reconcile_destination_rules(s, cr, p, r, states)
  local is_istio = s.gateway.class == "istio"
  local dr_served = served(M.DR_API, "DestinationRule")
  if s.dr.enabled then
    if not is_istio then
      r.degrade("DestinationRuleNotApplicable", ("spec.destinationRule.enabled: gateway class %q is not istio; "
        .. "no DestinationRule for Service %s/%s"):format(s.gateway.class, s.sim_ns, s.proxy.name))
    elseif not dr_served then
      r.degrade("IstioNotInstalled", ("spec.destinationRule.enabled: %s DestinationRule is not served (is Istio "
        .. "installed?); load balancing of Service %s/%s left to the default"):format(M.DR_API, s.sim_ns,
        s.proxy.name))
    else
      r.add({
        apiVersion = M.DR_API, kind = "DestinationRule",
        metadata = meta(s.proxy.name .. "-lb", s.sim_ns, labels.standard(cr, "proxy")),
        spec = {
          host = names.service_fqdn(s.proxy.name, s.sim_ns),
          trafficPolicy = {
            loadBalancer = { simple = s.dr.algorithm },
            connectionPool = { http = { http1MaxPendingRequests = s.dr.pending,
              maxRequestsPerConnection = s.dr.per_conn } },
          },
        },
      })
    end
  end
  if s.epp.enabled and s.epp.secure and is_istio then
    if dr_served then
      for _, e in ipairs(states or { { inst = s, p = p } }) do
        local name = e.inst.epp.name
        local hosts = { { s.sched_ns } }
        if e.inst.pool.managed and e.p.served and e.p.namespace ~= s.sched_ns then hosts[2] = { e.p.namespace } end
        for _, h in ipairs(hosts) do
          r.add({
            apiVersion = M.DR_API, kind = "DestinationRule",
            metadata = meta(name, h[1], labels.standard(cr, "epp")),
            spec = {
              host = names.service_fqdn(name, h[1]),
              trafficPolicy = { tls = { mode = "SIMPLE", insecureSkipVerify = true } },
            },
          })
        end
      end
    else
      r.degrade("IstioNotInstalled", ("spec.epp.secureServing: %s DestinationRule is not served, so the istio "
        .. "gateway cannot originate TLS to EPP %s/%s"):format(M.DR_API, s.sched_ns, s.epp.name))
    end
  end
end

--- Step of reconcile: the EnvoyFilter of spec.envoyFilter and EnvoyFilterApplied
--- (from the gateway class, the kind being served, the selector, the Gateway's Programmed).
local function reconcile_envoy_filter(s, cr, observed, row, d, r)
  local ef_key = s.ef.namespace .. "/" .. s.ef.name
  local gw_sel = s.ef.selector[M.GATEWAY_NAME_LABEL]
  if s.gateway.class ~= "istio" then
    r.set_later("EnvoyFilterApplied", false, "GatewayClassNotIstio",
      ("spec.envoyFilter.enabled: gateway class %q is not istio; it reads the InferencePool's endpoint "
        .. "picker itself, no EnvoyFilter created"):format(s.gateway.class))
    return
  end
  if not served(M.EF_API, "EnvoyFilter") then
    r.set_later("EnvoyFilterApplied", false, "EnvoyFilterUnsupported",
      ("spec.envoyFilter.enabled: %s EnvoyFilter is not served (is Istio installed?); EnvoyFilter %s not created")
        :format(M.EF_API, ef_key))
    return
  end
  r.add(envoy_filter(s, cr, row, d))
  local gw = s.gateway.enabled and s.routing.parent.name == s.gateway.name
    and s.routing.parent.namespace == s.sched_ns
    and names.observed_child(observed, M.GATEWAY_API, "Gateway", s.sched_ns, s.gateway.name)
  local prog = gw and programmed(gw)
  if gw_sel and gw_sel ~= s.routing.parent.name then
    r.set_later("EnvoyFilterApplied", false, "WorkloadSelectorMismatch",
      ("spec.envoyFilter.workloadSelector %s=%s does not select the pods of Gateway %s/%s the HTTPRoute "
        .. "attaches to"):format(M.GATEWAY_NAME_LABEL, gw_sel, s.routing.parent.namespace, s.routing.parent.name))
  elseif not names.observed_child(observed, M.EF_API, "EnvoyFilter", s.ef.namespace, s.ef.name) then
    r.set_later("EnvoyFilterApplied", "Unknown", "Pending", ("EnvoyFilter %s not applied yet"):format(ef_key))
  elseif prog and prog.status == "False" then
    r.set_later("EnvoyFilterApplied", false, "GatewayNotProgrammed",
      ("Gateway %s/%s is not Programmed (%s: %s): no gateway pods carry EnvoyFilter %s")
        :format(s.sched_ns, s.gateway.name, tostring(prog.reason), tostring(prog.message), ef_key))
  else
    r.set_later("EnvoyFilterApplied", true, "Applied",
      ("EnvoyFilter %s applied to pods with %s; ext_proc to %s:%d (%s)"):format(ef_key, map_text(s.ef.selector),
        names.service_fqdn(s.epp.name, s.sched_ns), s.epp.port, s.epp.secure and "TLS" or "plain HTTP/2"))
  end
end

--- Step of reconcile: the conditions, set in the order Ready's reason is taken from.
--- `arm_epp`: with arms, each arm's EPPReady triple (EPPReady accounts for all).
--- @return Condition[]
local function condition_list(s, cr, ctx, observed, row, d, r, arm_epp)
  local cs = conditions.new_set(cr)
  if d.pool then cs:set("PoolResolved", d.pool.status, d.pool.reason, d.pool.message) end
  if arm_epp then
    cs:set("EPPReady", armslib.epp_ready(s.arms, arm_epp))
  elseif s.epp.enabled then
    local st, reason, msg = epp_condition(s, observed, row)
    cs:set("EPPReady", st, reason, msg)
  end
  for _, t in ipairs({ "RouteAccepted", "EnvoyFilterApplied" }) do
    local c = r.later[t]
    if c then cs:set(t, c[1], c[2], c[3]) end
  end
  if #r.degraded > 0 then
    local msgs = {}
    for _, x in ipairs(r.degraded) do msgs[#msgs + 1] = x.message end
    cs:set("Degraded", true, r.degraded[1].reason, table.concat(msgs, "; "))
  else
    cs:set("Degraded", false, "AsExpected", "every requested component is supported and configured")
  end
  local split = s.arms and d.refs and (", split over %d arms"):format(#s.arms) or ""
  cs:summarize({ reason = "Ready", message = ("SchedulerInstall ready: backend %s%s"):format(d.backend, split) })
  return cs:list(ctx and ctx.now)
end

--- Step of reconcile: the status: backend and its ref, pool, versions,
--- conditions; with arms, status.arms and status.split instead of the single
--- pool (`arm_epp` each arm's EPPReady triple, `states` from arms_decision).
local function build_status(s, facts, p, v, d, route_served, list, observed, states, arm_epp)
  local status = {
    backend = s.routing.enabled and route_served and d.backend or "None",
    inferencePool = facts.pool_applies and not s.arms and { apiVersion = p.apiVersion, name = p.name,
      namespace = p.namespace, managed = s.pool.managed } or nil,
    eppVersion = s.epp.enabled and v.row.version or nil,
    kvCacheMetric = v.kv_metric,
    conditions = list,
  }
  if s.routing.enabled and route_served and d.ref and not d.refs then
    status.backendRef = { group = d.ref.group, kind = d.ref.kind, name = d.ref.name,
      namespace = d.ref.namespace, port = d.ref.port }
  end
  if s.arms then
    local ds, ready = {}, {}
    for i, st in ipairs(states) do
      ds[i] = st.d
      local dep = names.observed_child(observed, "apps/v1", "Deployment", s.sched_ns, st.inst.epp.name)
      ready[i] = dig(dep, "status", "readyReplicas")
    end
    status.arms, status.split = armslib.status(s.arms, ds, arm_epp, ready)
  end
  return status
end

--- Step of reconcile: the reference operator's labels on children outside
--- the CR's namespace (it had no owner references there); kept so its selectors still work.
local function add_reference_labels(cr, children)
  for _, c in ipairs(children) do
    if c.metadata.namespace ~= cr.metadata.namespace and names.valid_label_value(cr.metadata.name) then
      c.metadata.labels = labels.merge(c.metadata.labels, {
        ["sim.llm-d.io/schedulerInstall"] = cr.metadata.name,
        ["sim.llm-d.io/schedulerNamespace"] = cr.metadata.namespace,
      })
    end
  end
end

--- Step of reconcile: an Event for each transition of Ready.
local function ready_events(cr, list)
  local events = {}
  local prev = dig(cr, "status", "conditions")
  for _, t in ipairs(conditions.transitions(prev, list)) do
    if t.type == "Ready" then
      events[#events + 1] = { type = conditions.event_type(t), reason = t.reason, message = t.message }
    end
  end
  return events
end

--- The reconcile entry point (doc/architecture.md, "The reconcile contract"):
--- the desired children in every namespace the CR reaches and the status.
--- The routing decision is the policy's (schedulerinstall.routing knobs,
--- applied by schedulerinstall.route to the RoutingFacts gathered here).
--- Raises k8s.terminal for a spec no reconcile can fix (Ready=False InvalidSpec).
--- @param cr k8s.Object      the SchedulerInstall as the cache holds it
--- @param observed k8s.Observed  the children the runtime found (owner label)
--- @param ctx k8s.Ctx|nil
--- @return k8s.Result
function M.reconcile(cr, observed, ctx)
  if ctx and ctx.finalizing then return { finalized = true } end
  local s = M.resolve(cr)
  local r = collector(s.arms ~= nil) -- the arms' EPPs share spec.epp: say its problems once
  local v = version_facts(s)
  local facts, p, d, states = routing_decision(s, cr)

  -- children in apply order: scheduler namespace (EPP), simulator namespace
  -- (proxy Service), pool namespace, Gateway, route, Istio; with arms, each
  -- arm's EPP and managed pool in place of the single ones
  local arm_epp
  if states then
    arm_epp = {}
    for i, st in ipairs(states) do
      reconcile_epp(st.inst, cr, v, st.p, r)
      arm_epp[i] = { epp_condition(st.inst, observed, v.row) }
    end
  elseif s.epp.enabled then
    reconcile_epp(s, cr, v, p, r)
  end
  r.add(proxy_service(s, cr))
  if states then
    for _, st in ipairs(states) do
      if st.p.served then managed_pool(st.inst, cr, st.p, r.add) end
    end
  elseif s.pool.managed and s.epp.enabled and p.served then
    managed_pool(s, cr, p, r.add)
  end
  if s.gateway.enabled then reconcile_gateway(s, cr, r) end
  local route_served = reconcile_route(s, cr, observed, d, r)
  reconcile_destination_rules(s, cr, p, r, states)
  if s.ef.enabled then reconcile_envoy_filter(s, cr, observed, v.row, d, r) end

  local list = condition_list(s, cr, ctx, observed, v.row, d, r, arm_epp)
  local status = build_status(s, facts, p, v, d, route_served, list, observed, states, arm_epp)
  add_reference_labels(cr, r.children)
  return { children = r.children, status = status, events = ready_events(cr, list) }
end

-- ---------------------------------------------------- watch map functions

local function each_install(fn)
  local out = {}
  for _, cr in ipairs(cache_list(M.API, M.KIND, nil)) do
    local ok, s = pcall(M.resolve, cr)
    if ok and fn(s, cr) then out[#out + 1] = cr.metadata.namespace .. "/" .. cr.metadata.name end
  end
  return array(out)
end

--- InferencePool (either API) -> the SchedulerInstalls that route to it or
--- whose EPP serves it.
function M.map_pool(pool)
  local ns, name = dig(pool, "metadata", "namespace"), dig(pool, "metadata", "name")
  return each_install(function(s)
    for _, a in ipairs(s.arms or {}) do
      if a.pool_namespace == ns and a.pool_name == name then return true end
    end
    return (s.pool.namespace == ns and s.pool.name == name)
      or (s.epp.pool_namespace == ns and s.epp.pool_name == name)
  end)
end

--- EndpointSlice -> the SchedulerInstalls whose EPP Service it belongs to.
function M.map_endpointslice(slice)
  local ns = dig(slice, "metadata", "namespace")
  local svc = dig(slice, "metadata", "labels", "kubernetes.io/service-name")
  if not svc then return array({}) end
  return each_install(function(s)
    if not s.epp.enabled or s.sched_ns ~= ns then return false end
    for _, a in ipairs(s.arms or {}) do
      if a.epp_name == svc then return true end
    end
    return s.epp.name == svc
  end)
end

--- SimulatorDeployment -> the SchedulerInstalls that take the simulator
--- version (KV metric name) from their simulator namespace.
function M.map_simulator(sd)
  local ns = dig(sd, "metadata", "namespace")
  return each_install(function(s) return s.sim_ns == ns and not s.sim_image end)
end

return M
