#!/usr/bin/env bash
# Static checks for the IsaacGym path (IsaacGym itself cannot be installed in CI):
#  (a) vermin: tasks/, poselib_utils/, tools/ and train.py parse and run on Python 3.8 (IsaacGym's newest);
#  (b) mypy: tasks/engines/isaacgym_engine.py against isaacgym-stubs (gymapi only; gymtorch has a
#      narrow ignore in the module). Fails on wrong gymapi names, argument counts or types.
# Installs its tools into the active Python environment (PYTHON, default: python).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
"$PY" -m pip install -q vermin mypy "isaacgym-stubs==1.1rc4"

echo "== vermin --target=3.8- (tasks/ poselib_utils/ tools/ train.py)"
"$("$PY" -c "import sys, os; print(os.path.join(os.path.dirname(sys.executable), 'vermin'))")" -q --no-tips --target=3.8- --violations --eval-annotations --backport typing \
    tasks/ poselib_utils/ tools/ train.py

echo "== mypy tasks/engines/isaacgym_engine.py against isaacgym-stubs"
# isaacgym-stubs 1.1rc4's gymapi.pyi declares two properties named `lambda` (a keyword), which
# mypy cannot parse: check against a copy with them renamed.
STUBS="$(mktemp -d)"
trap 'rm -rf "$STUBS"' EXIT
SRC="$("$PY" -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/isaacgym-stubs"
mkdir -p "$STUBS/isaacgym"
sed -E 's/def lambda\(/def lambda_(/' "$SRC/gymapi.pyi" > "$STUBS/isaacgym/gymapi.pyi"
printf 'from . import gymapi as gymapi\n' > "$STUBS/isaacgym/__init__.pyi"
export MYPYPATH="$STUBS"
printf '[mypy]\n[mypy-isaacgym.*]\nignore_errors = True\n' > "$STUBS/mypy.ini"  # the stubs' own errors
# Only the engine module is checked (--follow-imports=silent: imported project modules are read
# for types but not reported); torch and other untyped deps resolve to Any if absent.
"$PY" -m mypy --config-file "$STUBS/mypy.ini" --follow-imports=silent --ignore-missing-imports --no-error-summary \
    --warn-unused-ignores tasks/engines/isaacgym_engine.py
echo "static checks passed"
