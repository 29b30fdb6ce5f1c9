#!/usr/bin/env bash
# Fetch the peer libraries of the GPU benchmark as wheels into .whl/ (gitignored), to carry to a GPU
# machine that cannot reach PyPI (the device tool: carry ".whl"). All are pure-Python wheels; norse
# publishes only a source archive, so it is built into a wheel here. Versions pinned for comparable runs.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
rm -rf .whl && mkdir -p .whl
"$PY" -m pip download -q --no-deps --only-binary=:all: -d .whl \
    snntorch==1.0.0 spikingjelly==2.0.0 loguru nir nirtorch dcls==0.1.1
"$PY" -m pip wheel -q --no-deps -w .whl norse==1.1.0
ls -l .whl
du -sh .whl
