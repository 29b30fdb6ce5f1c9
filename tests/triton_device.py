"""Where the Triton kernel tests run: Triton's CPU interpreter (the default, as in CI) or a CUDA GPU.

``SNNLAB_TEST_DEVICE=cuda pytest tests/test_kernels_triton.py tests/test_kernels_delays_triton.py``
runs the same tests on the GPU (compiled kernels, bf16 tolerances unchanged). Import this module
before anything imports Triton: on the CPU it sets ``TRITON_INTERPRET=1``, which Triton reads when
the kernels are decorated.
"""
from __future__ import annotations

import os
import sys

DEVICE_NAME = os.environ.get("SNNLAB_TEST_DEVICE", "cpu").strip().lower() or "cpu"
if DEVICE_NAME not in ("cpu", "cuda"):
    raise ValueError(f"SNNLAB_TEST_DEVICE must be 'cpu' or 'cuda', got {DEVICE_NAME!r}")
if DEVICE_NAME == "cpu":
    os.environ["TRITON_INTERPRET"] = "1"

import pytest  # noqa: E402
import torch  # noqa: E402

DEVICE = torch.device(DEVICE_NAME)
ON_GPU = DEVICE.type == "cuda"


def kernel_module_ready(tl, module_name: str) -> tuple[bool, str]:
    """Whether the kernels of ``module_name`` can run on ``DEVICE``; the reason when they cannot.

    On the CPU, Triton must be bound to its interpreter (it is not when something imported Triton
    before ``TRITON_INTERPRET=1`` was set); a kernel module decorated before the flag is dropped from
    ``sys.modules``, with the other kernel modules decorated then, so that importing it again decorates
    its kernels for the interpreter.
    """
    if ON_GPU:
        if not torch.cuda.is_available():
            return False, "SNNLAB_TEST_DEVICE=cuda but torch sees no CUDA device"
        return True, ""
    if type(tl.zeros).__name__ != "InterpretedFunction":
        return False, "triton was imported before TRITON_INTERPRET=1 was set; set it in the environment"
    already = sys.modules.get(module_name)
    if already is not None and getattr(already, "_INTERPRETED", True) is False:
        _drop_compiled_kernel_modules()
    return True, ""


def _drop_compiled_kernel_modules() -> None:
    """Forget every ``snnlab.kernels`` module whose kernels were decorated for the GPU (the module and the
    modules it imports kernels from, e.g. the shared blocks of the delay kernels), also as attributes
    of the package, so that importing them again decorates them for the interpreter."""
    package = sys.modules.get("snnlab.kernels")
    for name, module in list(sys.modules.items()):
        if name.startswith("snnlab.kernels.") and getattr(module, "_INTERPRETED", True) is False:
            del sys.modules[name]
            short = name.rpartition(".")[2]
            if package is not None and getattr(package, short, None) is module:
                delattr(package, short)


def skip_unless_ready(tl, module_name: str) -> pytest.MarkDecorator:
    """A ``skipif`` mark for tests that launch the kernels of ``module_name`` on ``DEVICE``."""
    ready, reason = kernel_module_ready(tl, module_name)
    return pytest.mark.skipif(not ready, reason=reason)


def triton_kernels_ready(module_name: str) -> tuple[bool, str]:
    """:func:`kernel_module_ready` for tests that may run without Triton installed (its reason then says so)."""
    try:
        import triton.language as tl
    except ImportError:
        return False, "triton is not installed"
    return kernel_module_ready(tl, module_name)
