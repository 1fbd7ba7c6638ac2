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
    echo "  its HTTPRoute (RouteAccepted above); without --dataplane this control plane runs no gateway controller."
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

# ------------------------------------------------------------ real requests
# With the local data plane (.ci/demo runs `spec/cluster/run --dataplane`),
# the simulator and EPP pods are real processes and a local gateway serves
# the Gateway: send chat completions through it on both paths.
gw_url() { # NS GATEWAY -> http://ADDR of its first listener, from $SCHEDSIM_GATEWAYS
  for _ in $(seq 1 60); do
    addr=$(awk -v ns="$1" -v gw="$2" '$1 == ns && $2 == gw { print $4; exit }' "${SCHEDSIM_GATEWAYS:-/dev/null}" 2>/dev/null)
    [ -n "$addr" ] && { echo "http://$addr"; return 0; }
    sleep 0.5
  done
  return 1
}
ask() { # URL PROMPT: one chat completion; prints the pod that served it and the answer
  out=$(curl -s -m 30 -D - "$1/v1/chat/completions" -H 'content-type: application/json' \
    -d "{\"model\":\"random\",\"max_tokens\":6,\"messages\":[{\"role\":\"user\",\"content\":\"$2\"}]}")
  pod=$(printf '%s\n' "$out" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-inference-pod" { print $2 }')
  ep=$(printf '%s\n' "$out" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-schedsim-gateway-endpoint" { print $2 }')
  answer=$(printf '%s\n' "$out" | sed -n 's/.*"content":"\([^"]*\)".*/\1/p' | head -n 1)
  [ -n "$pod" ] || answer=$(printf '%s\n' "$out" | tr -d '\r' | awk 'NR == 1 || tolower($0) ~ /^x-schedsim-gateway-error/' | tr '\n' ' ')
  printf '  %-40s -> %-52s %-16s "%s"\n' "${2:0:40}" "${pod:-FAILED}" "$ep" "${answer:0:40}"
}
gw=infra-inference-scheduling-inference-gateway
if [ "${SCHEDSIM_DATAPLANE:-0}" = 1 ]; then
  echo; echo "== real requests through the local gateway (spec/cluster/README.md, Data plane)"
  url=$(gw_url llm-d-inference-scheduler "$gw") || { echo "no listener for Gateway $gw"; url=; }
  if [ -n "$url" ]; then
    kubectl wait --for=condition=Ready schedinst/sched-service -n llm-d-inference-scheduler --timeout=60s
    echo "Service path (HTTPRoute -> proxy Service gaie-inference-scheduling-proxy, round robin):"
    for i in 1 2 3 4; do ask "$url" "Hello number $i"; done
    if [[ "${SCHEDSIM_DATAPLANE_SERVED:-}" != *llm-d-inference-scheduler* ]]; then
      echo "the EPP did not build (spec/cluster/build-dataplane says why): no InferencePool-path requests"
      url=
    fi
  fi
  if [ -n "$url" ]; then
    echo "+ kubectl delete -f examples/schedulerinstall-service.yaml; kubectl apply -f examples/schedulerinstall-inferencepool.yaml"
    kubectl delete -f "$root/examples/schedulerinstall-service.yaml" --wait=true >/dev/null
    kubectl apply -f "$root/examples/schedulerinstall-inferencepool.yaml"
    kubectl wait --for=condition=Ready schedinst/sched-inferencepool -n llm-d-inference-scheduler --timeout=120s
    url=$(gw_url llm-d-inference-scheduler "$gw")
    for _ in $(seq 1 60); do # the EPP needs its pool's pods before it can pick
      curl -s -o /dev/null -D - -m 10 "$url/v1/completions" -H 'content-type: application/json' \
        -d '{"model":"random","prompt":"warm up","max_tokens":1}' | grep -qi '^x-schedsim-gateway-epp' && break
      sleep 0.5
    done
    prefix="You are a helpful assistant for the llm-d project. Answer briefly and precisely, please."
    echo "InferencePool path (HTTPRoute -> InferencePool -> EPP over ext_proc -> the pod it picks):"
    echo " prompts sharing a long prefix (the prefix-cache scorer keeps them on one pod):"
    for i in 1 2 3 4; do ask "$url" "$prefix Question $i"; done
    echo " distinct prompts (spread by load and KV-cache scores):"
    for w in apples boats clouds dunes embers fjords; do ask "$url" "$w $w $w $w $w $w $w $w"; done
  fi
else
  echo; echo "no data plane (${SCHEDSIM_DATAPLANE_REASON:-the cluster runs without --dataplane}): pods are kwok fakes, no request sent"
fi

echo; echo "operator log: $log"
if [ "${SCHEDSIM_DEMO_HOLD:-0}" = 1 ]; then
  echo "holding; KUBECONFIG=$KUBECONFIG — press Ctrl-C to stop"
  wait $op
fi
