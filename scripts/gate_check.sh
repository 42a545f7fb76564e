#!/usr/bin/env bash
# Measures the CI gate on real data: PAIRS back-to-back sweeps of the same build (each pair should
# pass), then SLOW pairs where the candidate's worker cost is 10% higher (each should fail).
# usage: scripts/gate_check.sh BALLAST_BINARY [PAIRS=10] [SLOW=3]
set -euo pipefail
ballast=${1:?usage: scripts/gate_check.sh BALLAST_BINARY [PAIRS] [SLOW]}
pairs=${2:-10}
slow=${3:-3}
work=$(mktemp -d /tmp/ballast-gate-check.XXXXXX)
trap 'rm -rf "$work"' EXIT
sed 's/block:200us/block:220us/' Experiments/gate-check.yaml > "$work/slower.yaml"
sweep() { "$ballast" sweep "$1" --out "$2" > /dev/null 2>> "$work/sweeps.log"; }
gate() { "$ballast" gate --baseline "$1/gate-check" --candidate "$2/gate-check" --max-regression 5% --metric qps,p90 > "$work/gate.md" 2>&1; }
passed=0
for i in $(seq 1 "$pairs"); do
    sweep Experiments/gate-check.yaml "$work/a$i"
    sweep Experiments/gate-check.yaml "$work/b$i"
    if gate "$work/a$i" "$work/b$i"; then passed=$((passed + 1)); echo "same build pair $i: pass"; else echo "same build pair $i: FAIL"; sed 's/^/    /' "$work/gate.md"; fi
done
caught=0
for i in $(seq 1 "$slow"); do
    sweep Experiments/gate-check.yaml "$work/s$i"
    sweep "$work/slower.yaml" "$work/t$i"
    if gate "$work/s$i" "$work/t$i"; then echo "10% slower pair $i: pass (missed)"; sed 's/^/    /' "$work/gate.md"; else caught=$((caught + 1)); echo "10% slower pair $i: fail (caught)"; fi
done
echo "same build: $passed/$pairs pairs passed the gate; worker cost +10%: $caught/$slow pairs failed it"
