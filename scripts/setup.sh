#!/usr/bin/env bash
# Create .venv and install mapograph with the extras that pip alone can install.
# torch is pinned to 2.13.0 first: on machines with a local CPU wheel that picks it,
# and a looser requirement would download a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
EXTRAS=${EXTRAS:-dev,mpe,vmas}
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
# shellcheck disable=SC1091
. "$VENV/bin/activate"
python -m pip install -q --upgrade pip 2>&1 | grep -v -i warning || true
python -m pip install -q "torch==2.13.0" 2>&1 | grep -v -i "warning" || true
python -m pip install -q -e ".[${EXTRAS}]" 2>&1 | grep -v -i "warning" || true
python -c "import mapograph, torch, torch_geometric; print('mapograph', mapograph.__version__, '| torch', torch.__version__, '| pyg', torch_geometric.__version__)"
