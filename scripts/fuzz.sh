#!/usr/bin/env bash
# Builds the libFuzzer targets of Fuzz/ (instrumented: -sanitize=fuzzer,address) and runs each for
# SECONDS (default 60) on its committed seed corpus (Fuzz/Corpus/<target>); new inputs go to
# Fuzz/.work/ (gitignored), crashes to Fuzz/.work/crashes/. Prints executions and crashes per
# target; exits 1 when any target crashed.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/../Fuzz"
seconds="${1:-60}"
shift || true
all=(FuzzRequestHead FuzzResponseHead FuzzChunked FuzzBootstrapYAML FuzzAccessLogFormat FuzzProxyConnection FuzzListenerInspectors)
targets=("${@:-${all[@]}}")
[ ${#targets[@]} -eq 0 ] && targets=("${all[@]}")
config="${FUZZ_CONFIG:-release}"
# -enable-testing: FuzzProxyConnection drives internal types of Proxy through `@testable import`;
# -DBALLAST_TESTABLE gives Tests/ProxyTestSupport its content in this release build.
flags=(-c "$config" -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library -Xswiftc -enable-testing -Xswiftc -DBALLAST_TESTABLE)
for t in "${targets[@]}"; do swift build "${flags[@]}" --product "$t"; done
bin="$(swift build "${flags[@]}" --show-bin-path)"
mkdir -p .work/crashes
status=0
printf '%-22s %14s %8s\n' target executions crashes
for t in "${targets[@]}"; do
    mkdir -p ".work/corpus/$t" "Corpus/$t"
    log=".work/$t.log"
    # Whole bootstraps (the seeds include Envoy's examples as our configs) run to ~8 KiB.
    max_len=4096; [ "$t" = FuzzBootstrapYAML ] && max_len=16384
    set +e
    ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}" "$bin/$t" ".work/corpus/$t" "Corpus/$t" \
        -max_total_time="$seconds" -print_final_stats=1 -artifact_prefix=".work/crashes/$t-" -max_len="$max_len" >"$log" 2>&1
    rc=$?
    set -e
    execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)"
    crashes="$(ls .work/crashes/ 2>/dev/null | grep -c "^$t-" || true)"
    printf '%-22s %14s %8s\n' "$t" "${execs:-?}" "$crashes"
    if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then status=1; echo "  $t: exit $rc, see Fuzz/$log and Fuzz/.work/crashes/"; fi
done
exit $status
