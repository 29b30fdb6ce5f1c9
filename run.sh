#!/usr/bin/env bash
# snnlab's one entry point: sets everything up on a fresh machine (Python >= 3.11 + pip), then
#   bash run.sh lab    -> the lab: the Panel dashboard on http://localhost:5006/app (embedded digits)
#   bash run.sh test   -> the whole test suite (unit, browser and notebook tests)
#   bash run.sh notebooks -> JupyterLab on the tutorials in notebooks/
#   bash run.sh demo   -> train a small SNN on the embedded digits and print accuracy and spikes
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
VENV=${SNNLAB_VENV:-.venv}

setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
  fi
  local stamp="$VENV/.snnlab-installed" want
  want=$(cat pyproject.toml run.sh | sha256sum | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    "$VENV/bin/python" -m pip install -q --upgrade pip
    # torch pinned first, so that pip does not resolve a bare 'torch' requirement on its own: pip takes a local
    # CPU wheel where its configuration provides one (find-links, as on the project's machines), else PyPI's
    # build (CUDA on Linux). CPU-only or GPU users: install the torch build you want first; this line keeps it.
    "$VENV/bin/python" -c "import torch" 2>/dev/null || "$VENV/bin/python" -m pip install -q "torch==2.13.0"
    "$VENV/bin/python" -m pip install -q -e ".[dev]"
    # the compiled CPU time loop, built now rather than at the first training step (skipped without a C compiler)
    "$VENV/bin/python" -c "from snnlab.kernels.lif_cpu import cpu_kernel_available; cpu_kernel_available()" || true
    echo "$want" > "$stamp"
  fi
}

cmd=${1:-lab}
shift || true
setup
case "$cmd" in
  lab) exec "$VENV/bin/snnlab" dashboard "$@" ;;
  notebooks) exec "$VENV/bin/jupyter" lab notebooks/ "$@" ;;
  demo) exec "$VENV/bin/snnlab" demo "$@" ;;
  test)
    # Triton kernels run on the CPU interpreter when no GPU is present (set TRITON_INTERPRET=0 on a GPU).
    export TRITON_INTERPRET=${TRITON_INTERPRET:-1}
    # tests/ and the tutorials in notebooks/ (nbval, see pyproject.toml); browser tests skip without chromium
    exec "$VENV/bin/python" -m pytest "$@" ;;
  setup) echo "snnlab is installed in $VENV" ;;
  *) echo "usage: bash run.sh [lab|notebooks|demo|test|setup]" >&2; exit 2 ;;
esac
