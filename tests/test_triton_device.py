"""tests/triton_device.py: kernel modules decorated for the GPU before ``TRITON_INTERPRET=1`` are imported
again for the interpreter, with the modules they import kernels from (run in a fresh interpreter)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")

SCRIPT = """
import os
import triton_device  # sets TRITON_INTERPRET=1 for the CPU run
import triton.language as tl
os.environ["TRITON_INTERPRET"] = "0"
import snnlab.kernels.delays_triton as stale  # decorated for the GPU, with the modules it imports
from snnlab.kernels import delay_blocks_triton
assert not stale._INTERPRETED and not delay_blocks_triton._INTERPRETED
os.environ["TRITON_INTERPRET"] = "1"
assert triton_device.kernel_module_ready(tl, "snnlab.kernels.delays_triton") == (True, "")
from snnlab.kernels import delay_blocks_triton, delay_taps_triton, delays_triton
assert delays_triton is not stale
print(delays_triton._INTERPRETED, delay_taps_triton._INTERPRETED, delay_blocks_triton._INTERPRETED)
"""


def test_stale_kernel_modules_are_decorated_again_for_the_interpreter():
    env = {**os.environ, "TRITON_INTERPRET": "1", "SNNLAB_TEST_DEVICE": "cpu"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=Path(__file__).parent, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True", "True"]
