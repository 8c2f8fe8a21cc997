#!/usr/bin/env bash
# Plexus end to end on a two-node kind cluster, with macvlan.
#
# Builds the image, loads it into kind, applies deploy/ exactly as a user would, then creates a
# macvlan NetworkAttachmentDefinition on the nodes' eth0 and two pods on different nodes that
# ask for it, and checks that:
#   - each pod has net1 with an address, and the two ping each other over net1;
#   - each pod's k8s.v1.cni.cncf.io/network-status lists eth0 (default) and net1;
#   - after the pods are deleted, no host-local lease and no journal record of theirs is left on
#     either node.
#
#   bash tests/e2e-kind/run.sh
#
# Needs docker (a running engine), kind, kubectl and jq. Environment:
#   PLEXUS_E2E_CLUSTER=name  kind cluster to use (default plexus-e2e); created from
#                            kind-config.yaml when it does not exist, and then deleted at the end
#   PLEXUS_E2E_KEEP=1        keep a cluster this script created (to look around afterwards)
#   PLEXUS_E2E_NO_BUILD=1    do not build the image (it must already be in the local docker)
set -euo pipefail
cd "$(dirname "$0")/../.."
HERE=tests/e2e-kind
CLUSTER=${PLEXUS_E2E_CLUSTER:-plexus-e2e}
NS=plexus-e2e
NAD=macvlan-e2e
LEASE_DIR=/var/lib/cni/networks/$NAD
TIMEOUT=${PLEXUS_E2E_TIMEOUT:-180s}

step() { printf '\n==> %s\n' "$*"; }
fail() {
    printf '\nFAIL: %s\n' "$*" >&2
    exit 1
}

for tool in docker kind kubectl jq; do
    command -v "$tool" >/dev/null || fail "$tool is not installed (see the README: kind e2e)"
done

# The one image every DaemonSet in deploy/ runs (the manifest tests check there is only one).
mapfile -t images < <(sed -n 's/^[[:space:]]*image:[[:space:]]*//p' deploy/*.yaml | sort -u)
[ "${#images[@]}" = 1 ] || fail "deploy/ must reference exactly one image, found: ${images[*]}"
IMAGE=${images[0]}

created=0
diagnose() {
    echo "---- diagnostics ----" >&2
    k get pods -A -o wide >&2 || true
    k -n "$NS" describe pods >&2 || true
    k -n plexus-system logs --all-containers --prefix -l app.kubernetes.io/part-of=plexus --tail=200 >&2 || true
    for node in $(kind get nodes --name "$CLUSTER" 2>/dev/null); do
        echo "---- $node: /etc/cni/net.d and the plugin log ----" >&2
        docker exec "$node" sh -c 'ls -l /etc/cni/net.d; cat /etc/cni/net.d/00-plexus.conflist; tail -n 100 /var/log/plexus.log' >&2 || true
    done
}
finish() {
    local rc=$?
    if [ "$rc" != 0 ] && kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
        diagnose
    fi
    if [ "$created" = 1 ] && [ "${PLEXUS_E2E_KEEP:-0}" != 1 ]; then
        kind delete cluster --name "$CLUSTER" || true
    fi
    exit "$rc"
}
trap finish EXIT

k() { kubectl --context "kind-$CLUSTER" "$@"; }

if [ "${PLEXUS_E2E_NO_BUILD:-0}" != 1 ]; then
    step "building $IMAGE"
    docker build -t "$IMAGE" .
fi

if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    step "using the existing kind cluster $CLUSTER"
else
    step "creating the kind cluster $CLUSTER (two nodes)"
    created=1
    kind create cluster --name "$CLUSTER" --config "$HERE/kind-config.yaml" --wait "$TIMEOUT"
fi
mapfile -t nodes < <(kind get nodes --name "$CLUSTER" | sort)
[ "${#nodes[@]}" -ge 2 ] || fail "the cluster has ${#nodes[@]} node(s), the e2e needs two"

step "loading $IMAGE into the nodes"
kind load docker-image "$IMAGE" --name "$CLUSTER"

step "kubectl apply -f deploy/"
k apply -f deploy/
k -n plexus-system rollout status daemonset/plexus --timeout="$TIMEOUT"
k -n plexus-system rollout status daemonset/plexus-device-plugin --timeout="$TIMEOUT"
for node in "${nodes[@]}"; do
    docker exec "$node" test -s /etc/cni/net.d/00-plexus.conflist \
        || fail "$node has no /etc/cni/net.d/00-plexus.conflist although the DaemonSet is ready"
done

# Plexus's journal dir (cniDir) on the nodes, as the installer configured it, and what is in it
# before the test pods exist: after they are deleted, nothing of theirs may be left there either.
CNI_DIR=$(docker exec "${nodes[0]}" cat /etc/cni/net.d/00-plexus.conflist | jq -r '.plugins[0].cniDir')
if [ -z "$CNI_DIR" ] || [ "$CNI_DIR" = null ]; then
    fail "00-plexus.conflist names no cniDir"
fi
journal() { docker exec "$1" sh -c "ls -1 '$CNI_DIR' 2>/dev/null || true" | sort; }
declare -A journal_before
for node in "${nodes[@]}"; do
    journal_before[$node]=$(journal "$node")
done

step "the macvlan network and two pods on different nodes"
k apply -f "$HERE/macvlan-nad.yaml"
k apply -f "$HERE/macvlan-pods.yaml"
k -n "$NS" wait --for=condition=Ready pod/macvlan-a pod/macvlan-b --timeout="$TIMEOUT"

node_a=$(k -n "$NS" get pod macvlan-a -o jsonpath='{.spec.nodeName}')
node_b=$(k -n "$NS" get pod macvlan-b -o jsonpath='{.spec.nodeName}')
if [ -z "$node_a" ] || [ "$node_a" = "$node_b" ]; then
    fail "the pods must run on different nodes (a on '$node_a', b on '$node_b')"
fi
echo "macvlan-a on $node_a, macvlan-b on $node_b"

# The IPv4 address (no prefix) of net1 in a pod.
net1_ip() {
    k -n "$NS" exec "$1" -- ip -o -4 addr show dev net1 \
        | sed -n 's/.* inet \([0-9.]*\)\/.*/\1/p' | head -n 1
}
ip_a=$(net1_ip macvlan-a)
ip_b=$(net1_ip macvlan-b)
[ -n "$ip_a" ] || fail "macvlan-a has no IPv4 address on net1"
[ -n "$ip_b" ] || fail "macvlan-b has no IPv4 address on net1"
[ "$ip_b" = 10.99.0.50 ] || fail "macvlan-b asked for 10.99.0.50 on net1 and got $ip_b"
echo "net1: macvlan-a $ip_a, macvlan-b $ip_b"

step "ping over net1, both ways"
k -n "$NS" exec macvlan-a -- ping -c 3 -W 2 -I net1 "$ip_b"
k -n "$NS" exec macvlan-b -- ping -c 3 -W 2 -I net1 "$ip_a"

step "network-status lists both networks"
for pod in macvlan-a macvlan-b; do
    ip=$ip_a
    [ "$pod" = macvlan-b ] && ip=$ip_b
    status=$(k -n "$NS" get pod "$pod" -o json \
        | jq -r '.metadata.annotations["k8s.v1.cni.cncf.io/network-status"] // empty')
    [ -n "$status" ] || fail "$pod has no k8s.v1.cni.cncf.io/network-status annotation"
    echo "$pod: $status"
    echo "$status" | jq -e --arg net "$NS/$NAD" --arg ip "$ip" '
        length == 2
        and .[0].interface == "eth0" and .[0].default == true and (.[0].ips | length) > 0
        and .[1].name == $net and .[1].interface == "net1" and any(.[1].ips[]; . == $ip)
        and (.[1] | has("default") | not)' >/dev/null \
        || fail "$pod: network-status must list eth0 (default) then $NS/$NAD on net1 with $ip"
done

# The lease files (named by address) in the network's host-local dir on a node.
leases() {
    docker exec "$1" sh -c "ls -1 $LEASE_DIR 2>/dev/null || true" \
        | grep -E '^[0-9a-f.:]+$' || true
}
[ "$(leases "$node_a")" = "$ip_a" ] || fail "$node_a should hold exactly the lease of $ip_a, has: $(leases "$node_a")"
[ "$(leases "$node_b")" = "$ip_b" ] || fail "$node_b should hold exactly the lease of $ip_b, has: $(leases "$node_b")"

step "deleting the pods: no lease is left"
k -n "$NS" delete pod macvlan-a macvlan-b --wait=true --timeout="$TIMEOUT"
# The pod objects go once kubelet has torn the sandboxes down (CNI DEL included); allow a few
# seconds more for a runtime that finishes the teardown asynchronously.
new_records() { comm -13 <(echo "${journal_before[$1]}") <(journal "$1"); }
for node in "${nodes[@]}"; do
    for _ in $(seq 30); do
        [ -z "$(leases "$node")" ] && [ -z "$(new_records "$node")" ] && break
        sleep 1
    done
    left=$(leases "$node")
    [ -z "$left" ] || fail "$node still holds host-local leases in $LEASE_DIR after the pods were deleted: $left"
    left=$(new_records "$node")
    [ -z "$left" ] || fail "$node still holds journal records in $CNI_DIR after the pods were deleted: $left"
done
k delete namespace "$NS" --wait=true --timeout="$TIMEOUT"

printf '\nPASS: kind e2e (macvlan across two nodes)\n'
