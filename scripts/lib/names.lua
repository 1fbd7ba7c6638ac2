--- Naming helpers shared by the reconcilers: cache keys, observed-children
--- lookups, DNS-safe names and in-cluster host names.
--- Pure functions; `k8s.sha256` is used only when a name must be shortened.
local M = {}

--- Key of an `owns` kind in `observed.children`: `"Deployment.apps/v1"`.
--- @param apiVersion string  e.g. "apps/v1", "v1"
--- @param kind string        e.g. "Deployment"
--- @return string
function M.kind_key(apiVersion, kind)
  return kind .. "." .. apiVersion
end

--- Key of one object in a children map: `"namespace/name"`.
--- @param namespace string
--- @param name string
--- @return string
function M.obj_key(namespace, name)
  return (namespace or "") .. "/" .. name
end

--- The observed child of a kind, or nil (nil-safe on every level).
--- @param observed table|nil  the `observed` argument of reconcile
--- @param apiVersion string
--- @param kind string
--- @param namespace string
--- @param name string
--- @return table|nil
function M.observed_child(observed, apiVersion, kind, namespace, name)
  local children = observed and observed.children
  local of_kind = children and children[M.kind_key(apiVersion, kind)]
  return of_kind and of_kind[M.obj_key(namespace, name)] or nil
end

--- In-cluster DNS name of a Service: `<name>.<namespace>.svc.cluster.local`.
--- @param name string
--- @param namespace string
--- @param domain string|nil  cluster domain, default "cluster.local"
--- @return string
function M.service_fqdn(name, namespace, domain)
  return name .. "." .. namespace .. ".svc." .. (domain or "cluster.local")
end

local function short_hash(s, n)
  local h
  if k8s and k8s.sha256 then
    h = k8s.sha256(s)
  else -- no binding (plain Lua): a stable 32-bit FNV-1a, good enough for a suffix
    local x = 2166136261
    for i = 1, #s do x = ((x ~ s:byte(i)) * 16777619) & 0xffffffff end
    h = string.format("%08x%08x", x, (x * 2654435761) & 0xffffffff)
  end
  return h:sub(1, n)
end

--- A DNS-1123 label (≤ 63 chars, lower-case alphanumerics and '-').
--- Longer names keep their first characters and end in `-<10 hex of sha256>`.
--- @param s string
--- @param max integer|nil  default 63
--- @return string
function M.dns_label(s, max)
  max = max or 63
  local out = s:lower():gsub("[^a-z0-9%-]", "-"):gsub("^%-+", ""):gsub("%-+$", "")
  if #out <= max then return out end
  local head = out:sub(1, max - 11):gsub("%-+$", "")
  return head .. "-" .. short_hash(s, 10)
end

--- A DNS-1123 subdomain name (≤ 253 chars, lower-case, '-' and '.').
--- @param s string
--- @return string
function M.dns_subdomain(s)
  local out = s:lower():gsub("[^a-z0-9%-%.]", "-")
  if #out <= 253 then return out end
  return out:sub(1, 242) .. "-" .. short_hash(s, 10)
end

--- Whether `s` is a valid label value (≤ 63 chars, alphanumeric at both ends).
--- @param s string
--- @return boolean
function M.valid_label_value(s)
  if type(s) ~= "string" then return false end
  if s == "" then return true end
  return #s <= 63 and s:match("^[A-Za-z0-9_.%-]+$") ~= nil and s:match("^[A-Za-z0-9]") ~= nil
    and s:match("[A-Za-z0-9]$") ~= nil
end

return M
