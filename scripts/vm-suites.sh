#!/usr/bin/env bash
# Runs inside the QEMU guest (see scripts/test.sh): every test whose name marks it as needing the
# guest kernel, from the prebuilt test binaries listed in $1.
set -uo pipefail
export PLEXUS_REQUIRE_KERNEL=1
FILTERS=(ipvlan netdevsim)
failed=0
while read -r bin; do
    [ -x "$bin" ] || continue
    for f in "${FILTERS[@]}"; do
        # --list first: run a binary only if it has matching tests, so the log stays readable
        if "$bin" --list "$f" 2>/dev/null | grep -q ': test$'; then
            echo "--- $(basename "$bin") [$f]"
            "$bin" "$f" --test-threads=1 || failed=1
        fi
    done
done < "$1"
exit $failed
