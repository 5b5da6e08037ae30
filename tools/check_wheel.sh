#!/usr/bin/env bash
# Build the wheel from this repository, install it (not editable) into a fresh virtual environment, and
# run the demo from an empty temporary folder, as a user who ran 'pip install stressgrid' would.
# Checks that the wheel's top_level.txt names only stressgrid and that 'python -m stressgrid.cli' works.
#
#   bash tools/check_wheel.sh            (PYTHON=python3.11 to choose the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$PY" -m build --wheel --outdir "$work/dist" . >"$work/build.log" 2>&1 || { tail -30 "$work/build.log" >&2; exit 1; }
rm -rf build
wheel="$(ls "$work"/dist/stressgrid-*.whl)"
top="$("$PY" - "$wheel" <<'PYEOF'
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
name = next(n for n in z.namelist() if n.endswith(".dist-info/top_level.txt"))
print(" ".join(z.read(name).decode().split()))
PYEOF
)"
if [ "$top" != "stressgrid" ]; then
    echo "wheel check: top_level.txt names '$top', expected only 'stressgrid'" >&2
    exit 1
fi
"$PY" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --upgrade pip >/dev/null
"$work/venv/bin/python" -m pip install --quiet "$wheel"
mkdir "$work/elsewhere"
cd "$work/elsewhere"
"$work/venv/bin/python" -m stressgrid.cli --help >/dev/null
"$work/venv/bin/stressgrid" demo --quiet --out "$work/elsewhere/tour" 2>/dev/null
test -s "$work/elsewhere/tour/report.html"
"$work/venv/bin/stressgrid" demo --full --serial --quiet --no-report --out "$work/elsewhere/run" 2>/dev/null
test -s "$work/elsewhere/run/risk_metrics.parquet"
test -s "$work/elsewhere/run/manifest.json"
echo "wheel check: $(basename "$wheel") installs only 'stressgrid'; from another folder 'stressgrid demo' wrote $(ls "$work/elsewhere/tour" | grep -c parquet) tables and a report, 'stressgrid demo --full' $(ls "$work/elsewhere/run" | grep -c parquet) tables"
