#!/usr/bin/env bash
# Instructions per uncontended lock + unlock, counted by callgrind.
#
#   scripts/callgrind-uncontended.sh
#
# Wall-clock timings of a ~10 ns operation on a shared, noisy machine cannot
# resolve 5 %; instruction counts are deterministic. For every lock and mode
# this runs the `uncontended` bench binary in its PHASE_LOCK_CALLGRIND mode
# (a loop of n lock + unlock pairs in one never-inlined function) under
# `valgrind --tool=callgrind`, collecting only inside that function, for two
# values of n; the difference divided by the difference of n is the cost of
# one pair, loop overhead (a compare and a branch) included, set-up excluded.
#
# Prints a markdown table and writes it to target/phase-lock-report/callgrind.md.
# Needs valgrind. Honours CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=$(cargo bench --bench uncontended --no-run --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
[ -x "$bin" ] || { echo "could not build the uncontended bench binary" >&2; exit 1; }

locks=(phase-lock phase-lock-strict std parking_lot ShardedLock group-mutex)
modes=(read intent write)
n1=10000
n2=20000
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Ir collected inside callgrind_loop for PHASE_LOCK_CALLGRIND=$1.
count() {
    local out="$tmp/cg.out"
    PHASE_LOCK_CALLGRIND="$1" valgrind --tool=callgrind --toggle-collect='*callgrind_loop*' \
        --callgrind-out-file="$out" "$bin" >/dev/null 2>&1
    awk '/^(summary|totals):/ { print $2; exit }' "$out"
}

declare -A per
for lock in "${locks[@]}"; do
    for mode in "${modes[@]}"; do
        a=$(count "$lock/$mode/$n1")
        b=$(count "$lock/$mode/$n2")
        per[$lock/$mode]=$(awk -v a="$a" -v b="$b" -v n1="$n1" -v n2="$n2" 'BEGIN { printf "%.1f", (b - a) / (n2 - n1) }')
    done
done

report=target/phase-lock-report
mkdir -p "$report"
{
    echo "Instructions per uncontended lock + unlock (callgrind; commit ${PHASE_LOCK_COMMIT:-$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)})"
    echo
    echo "| lock | read | intent | write |"
    echo "|------|-----:|-------:|------:|"
    for lock in "${locks[@]}"; do
        note=""
        [ "$lock" != phase-lock ] && [ "$lock" != phase-lock-strict ] && [ "$lock" != group-mutex ] && note=" (intent = write)"
        echo "| $lock$note | ${per[$lock/read]} | ${per[$lock/intent]} | ${per[$lock/write]} |"
    done
    echo
    echo "Goal: each mode of ours ≤ 1.05× the fewer of std's and parking_lot's for the same kind (read and intent against their read, write against their write)."
    echo
    echo "| mode | ours | best stock (kind) | ratio | goal ≤ 1.05 |"
    echo "|------|-----:|------------------:|------:|-------------|"
    for pair in read:read intent:read write:write; do
        mode=${pair%%:*}
        kind=${pair##*:}
        awk -v mode="$mode" -v kind="$kind" -v o="${per[phase-lock/$mode]}" \
            -v s="${per[std/$kind]}" -v p="${per[parking_lot/$kind]}" 'BEGIN {
                best = (s < p) ? s : p; who = (s < p) ? "std" : "parking_lot"; r = o / best
                printf "| %s | %s | %s (%s %s) | %.3f | %s |\n", mode, o, best, who, kind, r, (r <= 1.05) ? "met" : "missed"
            }'
    done
} | tee "$report/callgrind.md"
