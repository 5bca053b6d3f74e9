#!/usr/bin/env bash
# Create .venv with the pinned environment (requirements/lock.txt, installed --no-deps) and the package.
# Idempotent: re-runs only when the lock file or pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
key=$(cat requirements/lock.txt pyproject.toml | sha256sum | cut -c1-16)
stamp=".venv/.bootstrap-$key"
if [ -f "$stamp" ]; then exit 0; fi
echo "[bootstrap] creating .venv from requirements/lock.txt (torch 2.13.0 CPU, aihwkit 1.1.0 without its declared deps)"
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -r requirements/lock.txt
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .
.venv/bin/python - <<'PY'
import importlib.util, torch, aihwkit, transformers, peft  # noqa: F401  (fail early if the stack does not import)
from transformers import BertForSequenceClassification  # noqa: F401  (breaks if torchvision sneaks in)
assert importlib.util.find_spec("torchvision") is None, "torchvision must not be installed (breaks transformers)"
print(f"[bootstrap] torch {torch.__version__}, aihwkit {aihwkit.__version__}, transformers {transformers.__version__}, "
      f"peft {peft.__version__}")
PY
rm -f .venv/.bootstrap-*
touch "$stamp"
