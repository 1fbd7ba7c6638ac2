-- A small script set for the engine, sandbox and controller specs
-- (spec/unit/engine_*_spec.lua, spec/unit/sandbox_*_spec.lua,
-- spec/e2e/controller_*_spec.lua). CRD: crds/test.sim.llm-d.io.yaml.
return {
  {
    name = "widget",
    for_ = { apiVersion = "test.sim.llm-d.io/v1alpha1", kind = "Widget" },
    module = "widget.reconcile",
    owns = {
      { apiVersion = "v1", kind = "ConfigMap" },
    },
    watches = {
      { apiVersion = "v1", kind = "Secret", map = "widget.reconcile.map_secret" },
    },
  },
  {
    name = "probe",
    for_ = { apiVersion = "test.sim.llm-d.io/v1alpha1", kind = "Probe" },
    module = "probe.reconcile",
    owns = {
      { apiVersion = "v1", kind = "ConfigMap" },
    },
  },
}
