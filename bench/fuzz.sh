#!/usr/bin/env bash
# Fuzz everything gatehouse parses from the network: each target of fuzz/ runs for
# SECONDS_EACH seconds (default 60) under libFuzzer (cargo fuzz, nightly toolchain),
# starting from the corpus kept in fuzz/corpus/<target>/. Inputs that reach new code
# are merged (minimised) into that corpus; tests/fuzz_corpora.rs replays it in the normal
# suite. A crash stops the script with the input in fuzz/artifacts/<target>/: fix it,
# then copy the input into fuzz/corpus/<target>/ so that it stays a regression test.
#
#   bench/fuzz.sh                      # every target, 60 s each
#   SECONDS_EACH=600 bench/fuzz.sh manifest archive
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
each=${SECONDS_EACH:-60}
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir .)
fi
cargo +nightly fuzz build -O --fuzz-dir .
printf '%-16s %10s %10s %8s %8s %s\n' target runs exec/s cov corpus result
for t in "${targets[@]}"; do
    scratch=$(mktemp -d)
    log=$(mktemp)
    mkdir -p "corpus/$t"
    status=0
    cargo +nightly fuzz run -O --fuzz-dir . "$t" "$scratch" "corpus/$t" -- \
        -max_total_time="$each" -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 >"$log" 2>&1 || status=$?
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo 0)
    if [ "$status" -ne 0 ]; then
        printf '%-16s %10s %10s %8s %8s %s\n' "$t" "$runs" "$speed" "$cov" - "CRASH (fuzz/artifacts/$t/)"
        grep -E 'panicked|ERROR|SUMMARY' "$log" | head -5
        exit 1
    fi
    # Keep what reached new code, minimised.
    cargo +nightly fuzz run -O --fuzz-dir . "$t" "corpus/$t" "$scratch" -- -merge=1 >/dev/null 2>&1 || true
    printf '%-16s %10s %10s %8s %8s %s\n' "$t" "$runs" "$speed" "$cov" "$(ls "corpus/$t" | wc -l)" ok
    rm -rf "$scratch" "$log"
done
