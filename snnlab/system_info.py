"""What this machine offers snnlab: versions, GPUs, the time-loop backends, the extras, the datasets found.

For bug reports and for setting up a class: ``snnlab info`` prints it (``--json`` for a machine-readable copy).

Example:
    >>> info = system_info(data_root="/nonexistent")
    >>> info["torch"]["version"] == __import__("torch").__version__, sorted(info["datasets"])[:3]
    (True, ['dvsgesture', 'fsdd', 'nmnist'])
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import sys
from pathlib import Path
from typing import Any

import torch

from snnlab.extras import EXTRA_PACKAGES
from snnlab.kernels.dispatch import is_ampere_or_newer

__all__ = ["system_info", "format_system_info", "EXTRA_PACKAGES"]


def _version(package: str) -> str | None:
    """The installed distribution's version, None where it is not installed."""
    if importlib.util.find_spec(package) is None:
        return None
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "installed"


def _cpu_has_bfloat16() -> bool | None:
    """Whether the CPU has bfloat16 instructions (AVX512-BF16 or AMX-BF16); None where this cannot be read (not
    Linux)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return None
    return "avx512_bf16" in flags or "amx_bf16" in flags


def _gpus() -> list[dict[str, Any]]:
    if not torch.cuda.is_available():
        return []
    out = []
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        capability = (props.major, props.minor)
        out.append({"index": i, "name": props.name, "capability": f"{props.major}.{props.minor}",
                    "memory_gib": round(props.total_memory / 2**30, 1), "bfloat16": is_ampere_or_newer(capability)})
    return out


def _kernels() -> dict[str, Any]:
    from snnlab.kernels.dispatch import resolve_backend, triton_interpret_enabled
    from snnlab.kernels.lif_cpu import cpu_kernel_disabled, cpu_kernel_error

    cpu_error = cpu_kernel_error()
    auto = {"cpu float32": resolve_backend("auto", "cpu", torch.float32),
            "cpu bfloat16": resolve_backend("auto", "cpu", torch.bfloat16)}
    if torch.cuda.is_available():
        auto["cuda float32"] = resolve_backend("auto", "cuda", torch.float32)
    return {"compiled_cpu_loop": "disabled (SNNLAB_CPU_KERNEL=0)" if cpu_kernel_disabled()
            else "available" if cpu_error is None else f"unavailable: {cpu_error}",
            "triton_interpret": triton_interpret_enabled(), "auto_backend": auto}


def _datasets(root: Path) -> dict[str, str | None]:
    from snnlab.data.audio import find_fsdd
    from snnlab.data.neuromorphic import NEUROMORPHIC_DATASETS, find_dataset

    found: dict[str, str | None] = {}
    for name in NEUROMORPHIC_DATASETS:
        path = find_dataset(name, root)
        found[name] = None if path is None else str(path)
    fsdd = find_fsdd(root)
    found["fsdd"] = None if fsdd is None else str(fsdd)
    return dict(sorted(found.items()))


def system_info(data_root: str | os.PathLike | None = None) -> dict[str, Any]:
    """A JSON-serialisable report of this machine for snnlab: versions (snnlab, Python, PyTorch and its CUDA build,
    Triton), the CPU's torch threads and bfloat16 instructions, each GPU (compute capability, memory, bfloat16
    arithmetic), the LIF backends (the compiled CPU loop and what ``backend="auto"`` picks), the extras installed
    (:data:`EXTRA_PACKAGES`), and the datasets found under ``data_root`` (default
    :func:`~snnlab.data.shared_data_root`), where their loaders look.
    """
    import snnlab
    from snnlab.data.neuromorphic import shared_data_root

    root = shared_data_root() if data_root is None else Path(data_root).expanduser()
    return {
        "snnlab": snnlab.__version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": {"version": torch.__version__, "cuda_build": torch.version.cuda, "threads": torch.get_num_threads()},
        "cpu_bfloat16": _cpu_has_bfloat16(),
        "gpus": _gpus(),
        "triton": _version("triton"),
        "kernels": _kernels(),
        "extras": {extra: {p: _version(p) for p in packages} for extra, packages in EXTRA_PACKAGES.items()},
        "data_root": str(root),
        "datasets": _datasets(root),
    }


def _yes(value: bool | None) -> str:
    return "unknown" if value is None else "yes" if value else "no"


def format_system_info(info: dict[str, Any]) -> str:
    """:func:`system_info` as text, one fact a line.

    Example:
        >>> print(format_system_info(system_info(data_root="/nonexistent")).splitlines()[0])  # doctest: +ELLIPSIS
        snnlab ...
    """
    t = info["torch"]
    lines = [f"snnlab {info['snnlab']}  (Python {info['python']}, {info['platform']})",
             f"PyTorch {t['version']}  (CUDA build: {t['cuda_build'] or 'none, CPU only'}; {t['threads']} CPU threads)",
             f"CPU bfloat16 instructions: {_yes(info['cpu_bfloat16'])}"]
    if info["gpus"]:
        for g in info["gpus"]:
            lines.append(f"GPU {g['index']}: {g['name']}, compute capability {g['capability']}, {g['memory_gib']} GiB, "
                         f"bfloat16 {_yes(g['bfloat16'])}")
    else:
        lines.append("GPU: none visible to PyTorch")
    k = info["kernels"]
    triton = info["triton"] or 'not installed (pip install "snnlab[gpu]")'
    interpreter = "  [TRITON_INTERPRET=1: CPU interpreter]" if k["triton_interpret"] else ""
    lines.append(f"Triton: {triton}{interpreter}")
    lines.append(f"compiled CPU time loop: {k['compiled_cpu_loop']}")
    lines.append("backend='auto' takes: " + ", ".join(f"{where} -> {b}" for where, b in k["auto_backend"].items()))
    for extra, packages in info["extras"].items():
        shown = ", ".join(f"{p} {v}" if v else f"{p} missing" for p, v in packages.items())
        lines.append(f"extra [{extra}]: {shown}")
    lines.append(f"data root: {info['data_root']}")
    for name, path in info["datasets"].items():
        lines.append(f"  {name}: {path or 'not found'}")
    return "\n".join(lines)
