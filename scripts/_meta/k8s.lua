---@meta
-- LuaCATS stubs for the C bindings of the `k8s` module (runtime/lua/lib_*.c).
-- Not loaded by the runtime (the loader skips _meta/); for editors and
-- lua-language-server. Reference: doc/lua-api.md.

---@class k8s.Error
---@field reason string   CamelCase reason, e.g. "InvalidJSON"
---@field code integer    HTTP-like code, 0 when none applies
---@field message string

---@class k8s.GVK
---@field apiVersion string
---@field kind string

---@class k8s.Object
---@field apiVersion string
---@field kind string
---@field metadata table
---@field spec table|nil
---@field status table|nil
---@field [string] any              other top-level fields (data, rules, endpoints, …)

---@class k8s.Observed
---@field children table<string, table<string, k8s.Object>>  ["Kind.apiVersion"]["ns/name"]

---@class k8s.Ctx
---@field script_revision string  "sha256:<hex>" of the script set
---@field finalizing boolean      the CR has a deletionTimestamp
---@field now string              RFC 3339 UTC (fixed in fixtures)

---@class k8s.Event
---@field type "Normal"|"Warning"
---@field reason string   CamelCase
---@field message string  at most 1024 bytes are posted

---@class k8s.Result
---@field children k8s.Object[]|nil  desired children (only the fields this controller owns)
---@field status table|nil           the CR's status minus observedGeneration and scriptRevision
---@field requeue_after number|nil   seconds (> 0): reconcile again after this delay
---@field events k8s.Event[]|nil     Events to post on the CR
---@field finalized boolean|nil      when ctx.finalizing: false to wait (default true)

---@class k8s.ListOpts
---@field namespace string|nil            only this namespace
---@field labels table<string,string>|nil equality selector: every label must match

---@class k8s
k8s = {}

--- JSON null (a light userdata): what `null` decodes to, what encodes as `null`.
---@type lightuserdata
k8s.null = nil

--- The metatable of JSON arrays: decoded arrays carry it; `setmetatable(t,
--- k8s.array_mt)` (or `k8s.array(t)`) makes an empty table encode as `[]`.
---@type table
k8s.array_mt = {}

--- Marks `t` (or a new table) as a JSON array and returns it.
---@generic T: table
---@param t T|nil
---@return T
function k8s.array(t) end

--- The current time, RFC 3339 UTC ("2026-01-01T00:00:00Z"); fixed by a
--- fixture's `now` and by `render --now`.
---@return string
function k8s.now() end

--- Raises a terminal error: Ready=False reason InvalidSpec with "file:line:
--- msg", and no retry until the CR changes.
---@param msg string
function k8s.terminal(msg) end

--- Lower-case hex SHA-256 of `s`.
---@param s string
---@return string
function k8s.sha256(s) end

---@class k8s.cache
k8s.cache = {}

--- An object from the informer cache (a fresh table: modify it freely), or
--- nil. Only kinds in for_, owns or watches of the controller may be read
--- (others raise); a kind the server does not serve reads as absent.
---@param apiVersion string
---@param kind string
---@param namespace string|nil  nil or "" for cluster-scoped objects
---@param name string
---@return k8s.Object|nil
function k8s.cache.get(apiVersion, kind, namespace, name) end

--- Objects of a kind, sorted by namespace/name (an array).
---@param apiVersion string
---@param kind string
---@param opts k8s.ListOpts|nil
---@return k8s.Object[]
function k8s.cache.list(apiVersion, kind, opts) end

---@class k8s.discovery
k8s.discovery = {}

--- Whether the API server serves apiVersion+kind.
---@param apiVersion string
---@param kind string
---@return boolean
function k8s.discovery.served(apiVersion, kind) end

--- Served versions of group ("" for core) that have kind, preferred first.
---@param group string
---@param kind string
---@return string[]
function k8s.discovery.versions(group, kind) end

---@class k8s.log
k8s.log = {}

--- Structured log records with the reconcile's fields (controller, key,
--- reconcileID) and `fields` (tables are written as JSON). debug prints with -v 1.
---@param msg string
---@param fields table<string, any>|nil
function k8s.log.debug(msg, fields) end
---@param msg string
---@param fields table<string, any>|nil
function k8s.log.info(msg, fields) end
---@param msg string
---@param fields table<string, any>|nil
function k8s.log.warn(msg, fields) end
---@param msg string
---@param fields table<string, any>|nil
function k8s.log.error(msg, fields) end

---@class k8s.json
k8s.json = {}

--- Compact JSON text, keys sorted. Raises for values without a JSON form
--- (functions, sparse or mixed tables, NaN, invalid UTF-8, cycles).
---@param v any
---@return string
function k8s.json.encode(v) end

--- The value of JSON text (arrays carry k8s.array_mt, null is k8s.null), or
--- nil, err (reason "InvalidJSON").
---@param s string
---@return any|nil
---@return k8s.Error|nil
function k8s.json.decode(s) end

---@class k8s.yaml
k8s.yaml = {}

--- YAML text (block style, keys sorted, ambiguous scalars quoted), for
--- ConfigMap payloads. Raises like k8s.json.encode.
---@param v any
---@return string
function k8s.yaml.encode(v) end

return k8s
