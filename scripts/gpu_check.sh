#!/usr/bin/env bash
# The GPU paths in one command and one table (scripts/gpu_check.py says what each step checks):
#   bash scripts/gpu_check.sh                        # on one GPU
#   bash scripts/gpu_check.sh --dry-run              # compose and validate the commands only
#   bash scripts/gpu_check.sh --device cpu --quick   # toy sizes on a CPU
#   PYTHON=.venv/bin/python bash scripts/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python}" scripts/gpu_check.py "$@"
