#!/usr/bin/env bash
# Builds every fuzz target and runs each for a short time from its seed corpus.
#
#   fuzz/smoke.sh [SECONDS_PER_TARGET]      (default 20)
#
# Each target starts from a temporary copy of fuzz/seeds/<target>/, so the committed seeds
# are never modified. Exits non-zero if a build fails or any target crashes; crash inputs are
# kept under fuzz/artifacts/<target>/ and printed in base64.
#
# Environment:
#   CARGO_BUILD_JOBS   parallel rustc jobs (default 1: the dev machines have 2 cores)
#   FUZZ_FEATURES      cargo features of the fuzz crate, e.g. "strict" (default none)
#   FUZZ_TARGETS       space-separated subset of targets (default: all, from `cargo fuzz list`)
set -euo pipefail

secs="${1:-20}"
if ! [[ "$secs" =~ ^[0-9]+$ ]] || [ "$secs" -lt 1 ]; then
    echo "usage: $0 [SECONDS_PER_TARGET]" >&2
    exit 2
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "smoke: the nightly toolchain is required (rustup toolchain install nightly)" >&2
    exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "smoke: cargo-fuzz missing, installing it" >&2
    cargo install cargo-fuzz --locked
fi

feature_args=()
if [ -n "${FUZZ_FEATURES:-}" ]; then
    feature_args=(--features "$FUZZ_FEATURES")
fi

echo "smoke: building all fuzz targets (jobs=$CARGO_BUILD_JOBS)"
cargo +nightly fuzz build "${feature_args[@]}"

if [ -n "${FUZZ_TARGETS:-}" ]; then
    read -r -a targets <<<"$FUZZ_TARGETS"
else
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/peercam-fuzz-smoke.XXXXXX")"
trap 'rm -rf "$work"' EXIT

failed=()
summary=()
for t in "${targets[@]}"; do
    corpus="$work/corpus-$t"
    mkdir -p "$corpus" "artifacts/$t"
    if [ -d "seeds/$t" ]; then
        cp -R "seeds/$t/." "$corpus/"
    else
        echo "smoke: warning: no seeds/$t, starting from an empty corpus" >&2
    fi
    log="$work/$t.log"
    echo "smoke: running $t for ${secs}s"
    status=ok
    if ! cargo +nightly fuzz run "${feature_args[@]}" "$t" "$corpus" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1; then
        status=CRASH
        failed+=("$t")
        echo "---- $t: what failed" >&2
        grep -E -A2 'panicked at|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|^SUMMARY:' "$log" \
            | head -n 30 >&2 || true
        echo "---- $t: last lines of the log ($log is removed on exit)" >&2
        tail -n 12 "$log" >&2
        # libFuzzer names the input it stopped on in its last "Test unit written to" line.
        unit="$(grep -o 'Test unit written to .*' "$log" | tail -n 1 | sed 's/^Test unit written to //')"
        if [ -n "$unit" ] && [ -f "$unit" ]; then
            echo "---- $t: crashing input $unit (base64):" >&2
            base64 -w0 "$unit" >&2
            echo >&2
            echo "---- reproduce: cargo +nightly fuzz run $t $unit" >&2
        fi
    fi
    runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    rate="$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)"
    cov="$(grep -Eo 'cov: [0-9]+' "$log" | tail -n 1 | cut -d' ' -f2)"
    corp="$(find "$corpus" -type f | wc -l)"
    summary+=("$(printf '%-20s %-6s %10s runs %8s exec/s  cov %6s  corpus %5s' \
        "$t" "$status" "${runs:-?}" "${rate:-?}" "${cov:-?}" "$corp")")
done

echo
echo "smoke: summary (${secs}s per target)"
printf '  %s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
    echo "smoke: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "smoke: all ${#targets[@]} targets ran without a crash"
