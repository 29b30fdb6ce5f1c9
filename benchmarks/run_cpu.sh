#!/usr/bin/env bash
# Install the peer libraries from PyPI into snnlab's venv (without touching torch), then benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
bash run.sh setup
# --no-deps: SpikingJelly 2 declares torchvision/torchaudio/tensorboard, none of which the LIF path imports.
.venv/bin/python -m pip install -q --no-deps snntorch spikingjelly loguru
exec .venv/bin/python benchmarks/cpu_lif.py "$@"
