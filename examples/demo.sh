#!/usr/bin/env bash
# Plexus quick demo, no cluster needed. It builds everything, makes a simulated node (a network
# namespace with an uplink) and two "pods" (network namespaces), and runs the `plexus` meta-plugin
# exactly as containerd does (CNI env + JSON on stdin, pod annotations in runtimeConfig) in local
# mode: eth0 comes from the reference bridge plugin, net1 and net2 from two macvlan
# NetworkAttachmentDefinitions read from a directory of YAML manifests. The pods ping each other
# over net1; then DEL removes everything: links, leases, journal, status.
#
#   sudo bash examples/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "the demo creates network namespaces: run it as root" >&2; exit 1; }

need=()
command -v ip >/dev/null || need+=(iproute2)
command -v ping >/dev/null || need+=(iputils-ping)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
if [ ${#need[@]} -gt 0 ]; then
    echo "==> installing ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
echo "==> building Plexus"
cargo build --quiet --workspace --bins
BIN=$PWD/target/debug

NODE=plexus-demo-node
PODS=(plexus-demo-pod1 plexus-demo-pod2)
STATE=$(mktemp -d /tmp/plexus-demo.XXXXXX)
cleanup() {
    for ns in "${PODS[@]}" "$NODE"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$STATE"
}
trap cleanup EXIT

echo "==> a node ($NODE) with an uplink, uplink0, for the macvlan networks"
ip netns add "$NODE"
ip -n "$NODE" link set lo up
ip -n "$NODE" link add uplink0 type veth peer name wire0
ip -n "$NODE" link set uplink0 up
ip -n "$NODE" link set wire0 up
for ns in "${PODS[@]}"; do ip netns add "$ns"; done

mkdir -p "$STATE/net.d" "$STATE/nads"
# the cluster network: what the node's default CNI would be
cat > "$STATE/net.d/10-bridge.conflist" <<JSON
{"cniVersion":"1.0.0","name":"cbr0","plugins":[{"type":"bridge","bridge":"cni0","isGateway":true,
 "ipam":{"type":"host-local","ranges":[[{"subnet":"10.244.1.0/24"}]],"routes":[{"dst":"0.0.0.0/0"}],
         "dataDir":"$STATE/ipam"}}]}
JSON
# two NADs, exactly as `kubectl apply -f` would take them
cat > "$STATE/nads/macvlan.yaml" <<YAML
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: storage
  namespace: default
spec:
  config: '{"cniVersion":"1.0.0","type":"macvlan","master":"uplink0","mode":"bridge",
    "ipam":{"type":"host-local","ranges":[[{"subnet":"10.98.1.0/24"}]],"dataDir":"$STATE/ipam"}}'
---
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: backup
  namespace: default
spec:
  config: '{"cniVersion":"1.0.0","type":"macvlan","master":"uplink0","mode":"bridge",
    "ipam":{"type":"host-local","ranges":[[{"subnet":"10.98.2.0/24"}]],"dataDir":"$STATE/ipam"}}'
YAML
echo "==> NAD manifests ($STATE/nads/macvlan.yaml):"
cat "$STATE/nads/macvlan.yaml"

conf() { # the config containerd hands the plugin, with the pod's annotations in runtimeConfig
    cat <<JSON
{"cniVersion":"1.0.0","name":"plexus","type":"plexus",
 "clusterNetwork":"$STATE/net.d/10-bridge.conflist","nadDir":"$STATE/nads",
 "cniDir":"$STATE/plexus","binDir":"/usr/lib/cni","logFile":"$STATE/plexus.log","logLevel":"verbose",
 "logToStderr":false,
 "capabilities":{"io.kubernetes.cri.pod-annotations":true},
 "runtimeConfig":{"io.kubernetes.cri.pod-annotations":{"k8s.v1.cni.cncf.io/networks":"storage,backup"}}}
JSON
}
cni() { # verb pod [netns]: run plexus inside the node's netns as containerd would
    conf | ip netns exec "$NODE" env -i PATH="$PATH" CNI_COMMAND="$1" \
        CNI_CONTAINERID="demo-$2" CNI_NETNS="${3-/run/netns/$2}" CNI_IFNAME=eth0 \
        CNI_PATH="$BIN:/usr/lib/cni" \
        CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=$2;K8S_POD_INFRA_CONTAINER_ID=demo-$2" \
        "$BIN/plexus"
}

for pod in "${PODS[@]}"; do
    echo "==> ADD $pod (annotation k8s.v1.cni.cncf.io/networks: storage,backup); plexus answers with eth0's result:"
    cni ADD "$pod"
    echo
    echo "--- interfaces of $pod:"
    ip -n "$pod" -brief addr
done
echo "==> network-status of plexus-demo-pod1 (what Multus users read from the pod annotation):"
cat "$STATE/plexus/status/default_${PODS[0]}.json"; echo
peer=$(ip -n "${PODS[1]}" -4 -o addr show net1 | awk '{print $4}' | cut -d/ -f1)
echo "==> ${PODS[0]} pings ${PODS[1]} ($peer) over net1 (the storage network)"
ip netns exec "${PODS[0]}" ping -c 3 -W 2 "$peer"

for pod in "${PODS[@]}"; do
    echo "==> DEL $pod, then containerd's second DEL with no netns"
    cni DEL "$pod"
    cni DEL "$pod" ""
done
echo "==> what is left"
for pod in "${PODS[@]}"; do echo "--- links of $pod:"; ip -n "$pod" -brief link; done
leases=$(find "$STATE/ipam" -type f ! -name lock ! -name 'last_reserved_ip*' -printf '%f ')
echo "leases: ${leases:-(none)}"
# events.log is the local stand-in for Kubernetes Events (kept); .owners.lock is the status dir's
# lock file, kept so no two sandboxes ever race on creating it.
left=$(find "$STATE/plexus" -type f ! -name events.log ! -name .owners.lock -printf '%P ')
echo "journal records, orphans, status files: ${left:-(none)}"
echo "==> the log of every step: $STATE/plexus.log (removed with the demo); last lines:"
tail -n 4 "$STATE/plexus.log"
echo "==> demo done"
