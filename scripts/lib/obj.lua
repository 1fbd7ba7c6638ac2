--- Small builders for Kubernetes object fragments: nil-safe reads, arrays,
--- container and Service ports, probes, downward-API env, resources, and the
--- readiness of an observed Deployment.
---
--- Lists are returned marked with `k8s.array` (when the binding exists) so an
--- empty list is still written as `[]`.
local M = {}

--- Mark `t` as a JSON array (no-op when `k8s` is absent).
--- @param t table|nil  default {}
--- @return table
function M.array(t)
  t = t or {}
  if k8s and k8s.array then return k8s.array(t) end
  return t
end

--- Whether `v` is JSON null (`k8s.null`) or nil.
--- @param v any
--- @return boolean
function M.is_null(v)
  return v == nil or (k8s ~= nil and v == k8s.null)
end

--- Nil-safe path read: `M.dig(cr, "spec", "decode", "port")`.
--- JSON null anywhere on the path reads as nil.
--- @param t table|nil
--- @param ... string|integer  keys
--- @return any
function M.dig(t, ...)
  local v = t
  for i = 1, select("#", ...) do
    if type(v) ~= "table" or M.is_null(v) then return nil end
    v = v[select(i, ...)]
  end
  if M.is_null(v) then return nil end
  return v
end

--- First argument that is not nil / JSON null.
--- @param ... any
--- @return any
function M.default(...)
  for i = 1, select("#", ...) do
    local v = select(i, ...)
    if not M.is_null(v) then return v end
  end
  return nil
end

--- Whether `v` is given: not nil, JSON null or the empty string.
--- @param v any
--- @return boolean
function M.is_set(v)
  return v ~= nil and v ~= "" and not M.is_null(v)
end

--- Shallow copy of a table's entries (nil → empty table); no metatable.
--- @generic T: table
--- @param t T|nil
--- @return T
function M.copy(t)
  local out = {}
  for k, v in pairs(t or {}) do out[k] = v end
  return out
end

--- Deep copy; keeps metatables (so `k8s.array` marks survive).
--- @generic T
--- @param v T
--- @return T
function M.deep_copy(v)
  if type(v) ~= "table" or M.is_null(v) then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = M.deep_copy(x) end
  return setmetatable(out, getmetatable(v))
end

--- Whether `t` is nil, JSON null or a table without entries.
--- @param t any
--- @return boolean
function M.empty(t)
  return M.is_null(t) or (type(t) == "table" and next(t) == nil)
end

--- A container port.
--- @param name string|nil     IANA_SVC_NAME (≤ 15 chars), e.g. "http"
--- @param port integer
--- @param protocol string|nil default "TCP"
--- @return table
function M.container_port(name, port, protocol)
  return { name = name, containerPort = port, protocol = protocol or "TCP" }
end

--- A Service port.
--- @param name string
--- @param port integer
--- @param target integer|string|nil   default = port
--- @param opts {protocol?:string, appProtocol?:string, nodePort?:integer}|nil
--- @return table
function M.service_port(name, port, target, opts)
  opts = opts or {}
  return {
    name = name, port = port, targetPort = target or port, protocol = opts.protocol or "TCP",
    appProtocol = opts.appProtocol, nodePort = opts.nodePort,
  }
end

---@class ProbeOpts
---@field initialDelaySeconds integer|nil
---@field periodSeconds integer|nil
---@field timeoutSeconds integer|nil
---@field failureThreshold integer|nil
---@field successThreshold integer|nil
---@field scheme string|nil  "HTTP" | "HTTPS" (httpGet only)

local function timing(p, opts)
  opts = opts or {}
  p.initialDelaySeconds = opts.initialDelaySeconds
  p.periodSeconds = opts.periodSeconds
  p.timeoutSeconds = opts.timeoutSeconds
  p.failureThreshold = opts.failureThreshold
  p.successThreshold = opts.successThreshold
  return p
end

--- An HTTP GET probe.
--- @param path string
--- @param port integer|string  number or container port name
--- @param opts ProbeOpts|nil
--- @return table
function M.http_probe(path, port, opts)
  return timing({ httpGet = { path = path, port = port, scheme = opts and opts.scheme } }, opts)
end

--- A TCP socket probe.
--- @param port integer|string
--- @param opts ProbeOpts|nil
--- @return table
function M.tcp_probe(port, opts)
  return timing({ tcpSocket = { port = port } }, opts)
end

--- A gRPC health probe (`grpc.health.v1`).
--- @param port integer
--- @param service string|nil
--- @param opts ProbeOpts|nil
--- @return table
function M.grpc_probe(port, service, opts)
  return timing({ grpc = { port = port, service = service } }, opts)
end

local DOWNWARD = {
  POD_NAME = "metadata.name",
  POD_NAMESPACE = "metadata.namespace",
  POD_IP = "status.podIP",
  NODE_NAME = "spec.nodeName",
  NAMESPACE = "metadata.namespace",
}

--- Env vars from the downward API. Default: POD_NAME, POD_NAMESPACE, POD_IP.
--- Known names: POD_NAME, POD_NAMESPACE, POD_IP, NODE_NAME, NAMESPACE.
--- @param names string[]|nil
--- @return table  array of EnvVar
function M.downward_env(names)
  names = names or { "POD_NAME", "POD_NAMESPACE", "POD_IP" }
  local out = {}
  for _, n in ipairs(names) do
    local path = DOWNWARD[n]
    assert(path, "obj.downward_env: unknown name " .. tostring(n))
    out[#out + 1] = { name = n, valueFrom = { fieldRef = { fieldPath = path } } }
  end
  return M.array(out)
end

--- A plain env var.
--- @param name string
--- @param value string
--- @return table
function M.env(name, value)
  return { name = name, value = tostring(value) }
end

--- Resource requirements passed through from the CR: a deep copy of
--- `limits`, `requests` (and `claims`), or nil when nothing is set.
--- @param r table|nil  core/v1 ResourceRequirements from the spec
--- @return table|nil
function M.resources(r)
  if M.empty(r) then return nil end
  local out = {}
  for _, k in ipairs({ "limits", "requests", "claims" }) do
    if not M.empty(r[k]) then out[k] = M.deep_copy(r[k]) end
  end
  if next(out) == nil then return nil end
  return out
end

--- `{ apiVersion, kind, metadata = { name, namespace, labels, annotations } }`.
--- @param apiVersion string
--- @param kind string
--- @param name string
--- @param namespace string|nil
--- @param labels table<string,string>|nil
--- @param annotations table<string,string>|nil
--- @return table
function M.object(apiVersion, kind, name, namespace, labels, annotations)
  return {
    apiVersion = apiVersion, kind = kind,
    metadata = { name = name, namespace = namespace, labels = labels, annotations = annotations },
  }
end

---@class DeploymentReadiness
---@field found boolean          the Deployment exists in the cache
---@field desired integer        spec.replicas (default 1)
---@field replicas integer       status.replicas
---@field ready integer          status.readyReplicas
---@field available integer      status.availableReplicas
---@field updated integer        status.updatedReplicas
---@field current boolean        status.observedGeneration ≥ metadata.generation
---@field ready_all boolean      current, updated = ready = desired, no extra old pods
---@field failed string|nil      message of a Progressing=False / ReplicaFailure=True condition

--- Readiness of an observed Deployment (nil → not found).
--- @param dep table|nil
--- @return DeploymentReadiness
function M.deployment_readiness(dep)
  local r = { found = dep ~= nil, desired = 0, replicas = 0, ready = 0, available = 0, updated = 0,
              current = false, ready_all = false }
  if not dep then return r end
  local spec, st = dep.spec or {}, dep.status or {}
  r.desired = M.default(spec.replicas, 1)
  r.replicas = M.default(st.replicas, 0)
  r.ready = M.default(st.readyReplicas, 0)
  r.available = M.default(st.availableReplicas, 0)
  r.updated = M.default(st.updatedReplicas, 0)
  local gen = M.dig(dep, "metadata", "generation")
  local ogen = M.default(st.observedGeneration, 0)
  r.current = gen == nil or ogen >= gen
  for _, c in ipairs(M.default(st.conditions, {})) do
    if c.type == "Progressing" and c.status == "False" then
      r.failed = (c.reason or "") .. ": " .. (c.message or "")
    elseif c.type == "ReplicaFailure" and c.status == "True" then
      r.failed = (c.reason or "") .. ": " .. (c.message or "")
    end
  end
  r.ready_all = r.current and r.updated >= r.desired and r.ready >= r.desired
    and r.available >= r.desired and r.replicas <= r.desired
  return r
end

return M
