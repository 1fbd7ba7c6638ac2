#!/usr/bin/env bash
# Runs inside `spec/cluster/run` (KUBECONFIG points at the local control
# plane): installs the CRDs, starts the operator, applies every example and
# prints what the operator created.
set -uo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bin="$root/build/schedsim-operator"
log="${SCHEDSIM_CLUSTER_DIR:-/tmp}/operator.log"

kubectl apply --server-side -f "$root/crds/" >/dev/null
kubectl wait --for=condition=Established crd --all --timeout=60s >/dev/null
# the namespaces, with the grant that opens llm-d-sim to the SchedulerInstalls
# of llm-d-inference-scheduler (doc/security.md)
echo "+ kubectl apply -f examples/namespaces.yaml"
kubectl apply -f "$root/examples/namespaces.yaml"

"$bin" run --scripts "$root/scripts" --metrics-bind-address 127.0.0.1:0 \
  --health-probe-bind-address 127.0.0.1:0 >"$log" 2>&1 &
op=$!
trap 'kill $op 2>/dev/null; wait $op 2>/dev/null' EXIT

# The examples of one kind are alternatives that share child names in the
# same namespaces (applying two gives honest Conflict conditions): the demo
# applies the full SimulatorDeployment and the Service-path SchedulerInstall.
for f in "$root"/examples/simulatordeployment-full.yaml "$root"/examples/schedulerinstall-service.yaml; do
  echo "+ kubectl apply -f examples/$(basename "$f")"
  kubectl apply -f "$f" || true
done

# The SimulatorDeployment becomes Ready once its pods are (kwok readies them
# at once). The SchedulerInstall is reconciled within a second or two, but it
# is Ready only once a gateway implementation accepts its HTTPRoute; say so
# rather than wait for it.
echo "waiting for the SimulatorDeployment to become Ready ..."
kubectl wait --for=condition=Ready simdep --all -A --timeout=60s
echo "waiting for the SchedulerInstall to be reconciled ..."
kubectl wait --for=jsonpath='{.status.observedGeneration}' schedinst --all -A --timeout=30s >/dev/null
echo; echo "+ kubectl get schedinst -A -o jsonpath=... (each condition: type, status, reason, message)"
kubectl get schedinst -A -o jsonpath='{range .items[*]}{range .status.conditions[*]}{.type}{"\t"}{.status}{"\t"}{.reason}{"\t"}{.message}{"\n"}{end}{end}' |
  awk -F'\t' '{ printf "  %-19s %-8s %-22s %s\n", $1, $2, $3, substr($4, 1, 110) }'
kubectl get schedinst -A -o jsonpath='{range .items[*]}{.metadata.namespace}/{.metadata.name}{"\t"}{range .status.conditions[?(@.type=="Ready")]}{.status}{"\t"}{.reason}{end}{"\n"}{end}' |
  while IFS=$'\t' read -r key st reason; do
    [ "$st" = True ] && continue
    echo "SchedulerInstall $key is Ready=$st ($reason): it waits for a gateway implementation to accept"
    echo "  its HTTPRoute (RouteAccepted above), and this control plane runs no gateway controller."
    echo "  HANDS-ON.md step 4 plays the gateway's part (it writes the route's status) and the"
    echo "  SchedulerInstall turns Ready; step 7 shows how to follow conditions, Events and logs."
  done
echo; echo "+ kubectl get simdep,schedinst -A"
kubectl get simdep,schedinst -A
echo; echo "+ kubectl get deploy,svc,cm,sa,role,rolebinding -A -l app.kubernetes.io/managed-by=schedsim-operator"
kubectl get deploy,svc,cm,sa,role,rolebinding -A -l app.kubernetes.io/managed-by=schedsim-operator
echo; echo "+ kubectl get gateway,httproute,referencegrant,inferencepool,envoyfilter,destinationrule -A -l app.kubernetes.io/managed-by=schedsim-operator"
kubectl get gateway,httproute,referencegrant,inferencepool,envoyfilter,destinationrule -A \
  -l app.kubernetes.io/managed-by=schedsim-operator 2>/dev/null || true
echo; echo "operator log: $log"
if [ "${SCHEDSIM_DEMO_HOLD:-0}" = 1 ]; then
  echo "holding; KUBECONFIG=$KUBECONFIG — press Ctrl-C to stop"
  wait $op
fi
