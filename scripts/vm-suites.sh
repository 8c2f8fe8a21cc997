#!/usr/bin/env bash
# Runs inside the QEMU guest (see scripts/test.sh): every test whose name marks it as needing the
# guest kernel, from the prebuilt test binaries listed in $1.
set -uo pipefail
export PLEXUS_REQUIRE_KERNEL=1
FILTERS=(ipvlan netdevsim)
failed=0
ran_ipvlan=0
while read -r bin; do
    [ -x "$bin" ] || continue
    for f in "${FILTERS[@]}"; do
        # list first: run a binary only if it has matching tests, so the log stays readable
        listing=$("$bin" --list "$f" 2>/dev/null) || true
        if grep -q ': test$' <<<"$listing"; then
            echo "--- $(basename "$bin") [$f]"
            "$bin" "$f" --test-threads=1 || failed=1
            [ "$f" = ipvlan ] && ran_ipvlan=1
        fi
    done
done < "$1"
if [ "$ran_ipvlan" = 0 ]; then
    echo "no ipvlan test found in the test binaries: the guest phase would prove nothing" >&2
    failed=1
fi
exit $failed
