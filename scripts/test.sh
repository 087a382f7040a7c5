#!/usr/bin/env bash
# Set up .venv (if needed) and run the default test suite (slow tests excluded).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
# The models under test are tiny: one intra-op thread per process is faster, and
# several threads per process oversubscribe 2 cores (20x slower under load).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
python -m pytest -q "$@"
