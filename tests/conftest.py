"""Test set-up: make tests/reference.py importable and run Triton on the CPU interpreter by default
(``SNNLAB_TEST_DEVICE=cuda`` leaves Triton compiled for the GPU: see tests/triton_device.py)."""
import os
import sys
from pathlib import Path

if os.environ.get("SNNLAB_TEST_DEVICE", "cpu").strip().lower() in ("", "cpu"):
    os.environ.setdefault("TRITON_INTERPRET", "1")
sys.path.insert(0, str(Path(__file__).parent))

SHARED_DATA = Path(os.environ.get("SNNLAB_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
