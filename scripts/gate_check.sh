#!/usr/bin/env bash
# Measures the CI gate on real data: PAIRS back-to-back sweeps of the same build (each pair should
# pass), then SLOW pairs where the candidate's worker cost is 10% higher in the variants under test
# (each should fail). Each pair is judged twice: by the default rule (figures divided by the
# experiment's reference variant of the same run) and with --normalize-by none (absolute figures).
# usage: scripts/gate_check.sh BALLAST_BINARY [PAIRS=20] [SLOW=20]
set -euo pipefail
ballast=${1:?usage: scripts/gate_check.sh BALLAST_BINARY [PAIRS] [SLOW]}
pairs=${2:-20}
slow=${3:-20}
work=$(mktemp -d /tmp/ballast-gate-check.XXXXXX)
trap 'rm -rf "$work"' EXIT
sed 's/block:200us/block:220us/' Experiments/gate-check.yaml > "$work/slower.yaml"
sweep() { "$ballast" sweep "$1" --out "$2" > /dev/null 2>> "$work/sweeps.log"; }
# gate BASE CAND RULE -> exit status of the gate; RULE is auto (reference) or none.
gate() { "$ballast" gate --baseline "$1/gate-check" --candidate "$2/gate-check" --max-regression 5% --metric qps,p90 \
    --normalize-by "$3" > "$work/gate-$3.md" 2>&1; }
passed=0; passed_abs=0; caught=0; caught_abs=0
# Same-build and slowed-down pairs alternate, so a run cut short still measures both.
for i in $(seq 1 $((pairs > slow ? pairs : slow))); do
    if [ "$i" -le "$pairs" ]; then
        sweep Experiments/gate-check.yaml "$work/a$i"
        sweep Experiments/gate-check.yaml "$work/b$i"
        verdict=FAIL; verdict_abs=FAIL
        if gate "$work/a$i" "$work/b$i" auto; then passed=$((passed + 1)); verdict=pass; fi
        if gate "$work/a$i" "$work/b$i" none; then passed_abs=$((passed_abs + 1)); verdict_abs=pass; fi
        echo "same build pair $i: $verdict (absolute figures: $verdict_abs)"
        if [ "$verdict" = FAIL ]; then sed 's/^/    /' "$work/gate-auto.md"; fi
    fi
    if [ "$i" -le "$slow" ]; then
        sweep Experiments/gate-check.yaml "$work/s$i"
        sweep "$work/slower.yaml" "$work/t$i"
        verdict=missed; verdict_abs=missed
        if ! gate "$work/s$i" "$work/t$i" auto; then caught=$((caught + 1)); verdict=caught; fi
        if ! gate "$work/s$i" "$work/t$i" none; then caught_abs=$((caught_abs + 1)); verdict_abs=caught; fi
        echo "10% slower pair $i: $verdict (absolute figures: $verdict_abs)"
        if [ "$verdict" = missed ]; then sed 's/^/    /' "$work/gate-auto.md"; fi
    fi
done
echo "normalised by the reference: same build $passed/$pairs pairs passed; worker cost +10%: $caught/$slow caught"
echo "absolute figures:            same build $passed_abs/$pairs pairs passed; worker cost +10%: $caught_abs/$slow caught"
