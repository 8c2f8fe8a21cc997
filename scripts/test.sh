#!/usr/bin/env bash
# The one test command (README "Testing"): lint gates, every suite on this host, then the suites
# that need kernel features this host lacks (ipvlan, netdevsim) inside the shared QEMU guest.
#
#   bash scripts/test.sh            everything
#   PLEXUS_SKIP_VM=1 bash ...       host only (the VM suites are then reported as not run)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VM_RUNNER=${PLEXUS_VM_RUNNER:-$ROOT/../shared/vm/run-in-vm.sh}

step() { printf '\n==> %s\n' "$*"; }

step "format and lint gates"
cargo fmt --all -- --check
# every shell script of the repository (CI, tests, examples)
find . -name '*.sh' -not -path './target/*' -not -path './.git/*' -print0 | xargs -0 shellcheck .ci/run
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "build every binary (the end-to-end suites execute them)"
cargo build --workspace --bins --quiet

step "host suites (privileged ones need root; ipvlan/netdevsim ones skip here and run in the VM)"
cargo nextest run --workspace --no-fail-fast

if [ "${PLEXUS_SKIP_VM:-0}" = 1 ]; then
    echo "PLEXUS_SKIP_VM=1: the VM kernel suites (ipvlan, netdevsim) were NOT run"
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "not root: the VM kernel suites (ipvlan, netdevsim) were NOT run"
    exit 0
fi
[ -x "$VM_RUNNER" ] || { echo "missing $VM_RUNNER (the shared VM runner)"; exit 1; }

step "VM kernel suites (ipvlan, netdevsim) in one QEMU boot"
# Test binaries are built here; the guest only runs them. In the guest a test that would skip
# for a missing kernel feature fails instead (PLEXUS_REQUIRE_KERNEL=1).
mapfile -t bins < <(cargo test --workspace --no-run --message-format=json 2>/dev/null \
    | jq -r 'select(.reason == "compiler-artifact" and .profile.test == true and .executable != null) | .executable')
printf '%s\n' "${bins[@]}" > target/vm-test-bins.txt
"$VM_RUNNER" --timeout 1200 -- bash "$ROOT/scripts/vm-suites.sh" "$ROOT/target/vm-test-bins.txt"
