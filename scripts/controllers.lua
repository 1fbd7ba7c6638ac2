-- The controller registry of the script set: which CR kinds are reconciled,
-- by which module, and which child kinds they own or watch.
-- Contract: doc/architecture.md ("The script set").
return {
  {
    name = "simulatordeployment",
    for_ = { apiVersion = "sim.llm-d.io/v1alpha1", kind = "SimulatorDeployment" },
    module = "simulatordeployment.reconcile",
    owns = {
      { apiVersion = "apps/v1", kind = "Deployment" },
      { apiVersion = "v1", kind = "Service" },
      { apiVersion = "v1", kind = "ConfigMap" },
      { apiVersion = "v1", kind = "ServiceAccount" },
      { apiVersion = "rbac.authorization.k8s.io/v1", kind = "Role" },
      { apiVersion = "rbac.authorization.k8s.io/v1", kind = "RoleBinding" },
      { apiVersion = "inference.networking.k8s.io/v1", kind = "InferencePool" },
      { apiVersion = "gateway.networking.k8s.io/v1", kind = "Gateway" },
      { apiVersion = "gateway.networking.k8s.io/v1", kind = "HTTPRoute" },
      { apiVersion = "networking.istio.io/v1", kind = "DestinationRule" },
    },
    watches = {},
  },
  {
    name = "schedulerinstall",
    for_ = { apiVersion = "sim.llm-d.io/v1alpha1", kind = "SchedulerInstall" },
    module = "schedulerinstall.reconcile",
    -- every kind schedulerinstall.reconcile emits (one apiVersion per kind)
    owns = {
      { apiVersion = "v1", kind = "ServiceAccount" },
      { apiVersion = "v1", kind = "ConfigMap" },
      { apiVersion = "v1", kind = "Service" },
      { apiVersion = "apps/v1", kind = "Deployment" },
      { apiVersion = "rbac.authorization.k8s.io/v1", kind = "Role" },
      { apiVersion = "rbac.authorization.k8s.io/v1", kind = "RoleBinding" },
      { apiVersion = "gateway.networking.k8s.io/v1", kind = "Gateway" },
      { apiVersion = "gateway.networking.k8s.io/v1", kind = "HTTPRoute" },
      { apiVersion = "gateway.networking.k8s.io/v1beta1", kind = "ReferenceGrant" },
      { apiVersion = "inference.networking.k8s.io/v1", kind = "InferencePool" },
      { apiVersion = "inference.networking.x-k8s.io/v1alpha2", kind = "InferencePool" },
      { apiVersion = "networking.istio.io/v1", kind = "DestinationRule" },
      { apiVersion = "networking.istio.io/v1alpha3", kind = "EnvoyFilter" },
    },
    -- read through k8s.cache besides the children: pools we do not manage,
    -- the EPP Service's endpoints, the simulator image (KV metric name)
    watches = {
      { apiVersion = "inference.networking.k8s.io/v1", kind = "InferencePool",
        map = "schedulerinstall.reconcile.map_pool" },
      { apiVersion = "inference.networking.x-k8s.io/v1alpha2", kind = "InferencePool",
        map = "schedulerinstall.reconcile.map_pool" },
      -- only the slices of the EPP Services it made (they carry the Service's labels)
      { apiVersion = "discovery.k8s.io/v1", kind = "EndpointSlice", owned_only = true,
        map = "schedulerinstall.reconcile.map_endpointslice" },
      { apiVersion = "sim.llm-d.io/v1alpha1", kind = "SimulatorDeployment",
        map = "schedulerinstall.reconcile.map_simulator" },
    },
  },
}
