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
    },
    watches = {},
  },
  {
    name = "schedulerinstall",
    for_ = { apiVersion = "sim.llm-d.io/v1alpha1", kind = "SchedulerInstall" },
    module = "schedulerinstall.reconcile",
    owns = {
      { apiVersion = "apps/v1", kind = "Deployment" },
      { apiVersion = "v1", kind = "Service" },
    },
    watches = {},
  },
}
