#!/usr/bin/env bash
# Plexus quick demo, no cluster needed: two "pods" (network namespaces) on a simulated uplink get a
# macvlan interface each from the standalone plexus-macvlan plugin with host-local IPAM, exactly as
# a container runtime would call it (env + stdin); they ping each other; DEL leaves nothing behind.
#
#   sudo bash examples/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "the demo creates network namespaces: run it as root" >&2; exit 1; }

if ! command -v ip >/dev/null || ! command -v ping >/dev/null; then
    echo "==> installing iproute2 and ping"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 iputils-ping
fi
echo "==> building the plugins"
cargo build --quiet -p plexus-delegates --bins
BIN=$PWD/target/debug

NODE=plexus-demo-node
PODS=(plexus-demo-pod1 plexus-demo-pod2)
STATE=$(mktemp -d /tmp/plexus-demo.XXXXXX)
cleanup() {
    for ns in "${PODS[@]}" "$NODE"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$STATE"
}
trap cleanup EXIT

echo "==> a node ($NODE) with an uplink, uplink0, to macvlan on"
ip netns add "$NODE"
ip -n "$NODE" link add uplink0 type veth peer name wire0
ip -n "$NODE" link set uplink0 up
ip -n "$NODE" link set wire0 up
for ns in "${PODS[@]}"; do ip netns add "$ns"; done

CONF=$(cat <<JSON
{"cniVersion":"1.0.0","name":"demo-macvlan","type":"macvlan","master":"uplink0","mode":"bridge",
 "ipam":{"type":"host-local","ranges":[[{"subnet":"10.99.0.0/24"}]],"dataDir":"$STATE/ipam"}}
JSON
)
cni() { # verb pod: run the plugin inside the node's netns as a runtime would
    echo "$CONF" | ip netns exec "$NODE" env -i PATH="$PATH" CNI_COMMAND="$1" \
        CNI_CONTAINERID="demo-$2" CNI_NETNS="/run/netns/$2" CNI_IFNAME=net1 \
        CNI_PATH="$BIN:/usr/lib/cni" CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=demo;K8S_POD_NAME=$2" \
        "$BIN/plexus-macvlan"
}

for pod in "${PODS[@]}"; do
    echo "==> ADD net1 to $pod; the plugin answers:"
    cni ADD "$pod"
    echo
    ip -n "$pod" -brief addr show net1
done
peer=$(ip -n "${PODS[1]}" -4 -o addr show net1 | awk '{print $4}' | cut -d/ -f1)
echo "==> ${PODS[0]} pings ${PODS[1]} ($peer) over the macvlan network"
ip netns exec "${PODS[0]}" ping -c 3 -W 2 "$peer"

echo "==> leases on disk while the pods run:"
ls "$STATE/ipam/demo-macvlan"
for pod in "${PODS[@]}"; do
    echo "==> DEL net1 from $pod (twice: DEL is idempotent)"
    cni DEL "$pod"; cni DEL "$pod"
done
echo "==> what is left: links in the pods, and leases"
for pod in "${PODS[@]}"; do ip -n "$pod" -brief link; done
leases=$(find "$STATE/ipam/demo-macvlan" -type f ! -name lock ! -name 'last_reserved_ip*' -printf '%f ')
echo "leases: ${leases:-(none)}"
echo "==> demo done"
