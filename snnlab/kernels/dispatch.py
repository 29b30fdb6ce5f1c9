"""Choose the LIF backend: the PyTorch reference loop, the compiled CPU loop or the fused Triton kernels.

- ``"torch"``: pure PyTorch (:mod:`snnlab.kernels.lif_torch`), any device and dtype; the reference.
- ``"cpu"``: the time loop compiled with the system C compiler (:mod:`snnlab.kernels.lif_cpu`),
  float32 CPU tensors.
- ``"triton"``: fused Triton kernels (:mod:`snnlab.kernels.lif_triton`), CUDA tensors (or CPU tensors
  under ``TRITON_INTERPRET=1``, for testing).
- ``"auto"``: Triton on CUDA tensors when it is installed; on the CPU the compiled loop for float32
  when it builds here (and ``SNNLAB_CPU_KERNEL`` is not ``0``); otherwise PyTorch.

A backend asked for by name that cannot run raises a :class:`RuntimeError` saying what is missing -
never a silent fallback.

Graph capture: under ``torch.export`` ``"auto"`` takes the PyTorch loop (the one it can trace; the same results).
Under ``torch.compile`` ``"auto"`` keeps the fast loop (the C loop on the CPU: a LIF layer of T=200, B=16, N=512 took
0.2 s per forward+backward with it, 7.2 s with inductor's code for the PyTorch loop, after a 57 s first call). The C
loop, which neither can capture, leaves the graph there (:func:`leave_graph`): a graph break under
``torch.compile`` (so ``fullgraph=True`` raises naming the layer and ``backend="torch"``) and a ``RuntimeError``
under ``torch.export``.
"""
from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable

import torch

from .neuron_choices import SURROGATE_DEFAULTS
from .surrogate_math import CUSTOM_SURROGATES, check_known_surrogate

BACKENDS = ("auto", "torch", "cpu", "triton")
#: the dtypes the Triton kernels take (they compute in float32); ``auto`` sends others (float64) to PyTorch
TRITON_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
#: half-precision dtypes: every path computes them in float32 (:func:`compute_dtype`)
HALF_DTYPES = (torch.float16, torch.bfloat16)


def float32_if_half(dtype: torch.dtype) -> torch.dtype:
    """float32 for float16 / bfloat16, else ``dtype``: the dtype snnlab computes a half-precision time loop in, and
    keeps the constants of a half-precision layer in (time constants, thresholds, delay positions).

    Example:
        >>> float32_if_half(torch.bfloat16), float32_if_half(torch.float64)
        (torch.float32, torch.float64)
    """
    return torch.float32 if dtype in HALF_DTYPES else dtype


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype a time loop or a delay convolution computes ``x`` in: float32 for float16 / bfloat16 (a
    half-precision membrane would round the leak and the sums), else ``x``'s own."""
    return float32_if_half(x.dtype)


#: the first NVIDIA compute capability (Ampere) with bfloat16 and TF32 arithmetic in hardware
AMPERE_CAPABILITY = (8, 0)


def is_ampere_or_newer(capability: tuple[int, int]) -> bool:
    """Whether a CUDA device of compute ``capability`` (``torch.cuda.get_device_capability``) has bfloat16 and TF32
    arithmetic in hardware (``torch.cuda.is_bf16_supported()`` also says yes for older GPUs, which emulate it slowly).

    Example:
        >>> is_ampere_or_newer((9, 0)), is_ampere_or_newer((7, 5))
        (True, False)
    """
    return tuple(capability) >= AMPERE_CAPABILITY


@functools.lru_cache(maxsize=1)
def triton_available() -> bool:
    """Whether the ``triton`` package can be imported (asked once: every LIF forward resolves its backend,
    and searching ``sys.path`` costs about 60 us)."""
    try:
        return importlib.util.find_spec("triton") is not None
    except (ImportError, ValueError):
        return False


def triton_interpret_enabled() -> bool:
    """Whether ``TRITON_INTERPRET`` is set to a true value (Triton's CPU interpreter)."""
    return os.environ.get("TRITON_INTERPRET", "").strip().lower() in ("1", "true", "yes", "on")


_IS_COMPILING = getattr(torch.compiler, "is_compiling", lambda: False)
_IS_EXPORTING = getattr(torch.compiler, "is_exporting", lambda: False)


def graph_capture_active() -> bool:
    """Whether ``torch.compile`` (Dynamo) or ``torch.export`` (strict or not) is tracing this call into a graph, where
    host-side checks that read tensor values back (NaN checks) cannot run and are skipped; False in eager code and
    under ``torch.jit.trace``.

    Example:
        >>> graph_capture_active()
        False
    """
    return bool(_IS_COMPILING())


def leave_graph(message: str) -> None:
    """Where a graph is being captured, stop at what it cannot hold (``message`` says what, naming the layer, and
    what to do instead): under ``torch.export`` a ``RuntimeError(message)``; under ``torch.compile`` a graph break
    (the code after it runs between graphs, as before; with ``fullgraph=True`` PyTorch raises its ``Unsupported``
    error, which shows ``message``). Nothing in eager code.

    Example:
        >>> leave_graph("LIF: backend='cpu' cannot be captured")   # eager: nothing to leave
    """
    if not graph_capture_active():
        return
    if _IS_EXPORTING():
        raise RuntimeError(message)
    torch._dynamo.graph_break(msg=message)


def c_loop_capture_message(layer: str, backend: str = "cpu") -> str:
    """The error for the C loop (``backend`` ``"cpu"``, or ``"auto"`` that chose it) under
    ``torch.compile(fullgraph=True)`` / ``torch.export`` (``layer``: who).

    Example:
        >>> c_loop_capture_message("LIF")[:40]
        "LIF: backend='cpu' runs snnlab's compile"
    """
    return (f"{layer}: backend={backend!r} runs snnlab's compiled C time loop here, which torch.compile(fullgraph=True) "
            "and torch.export cannot capture in a graph (plain torch.compile runs it between graphs: the fast path on "
            "the CPU); for fullgraph=True use backend='torch' (the PyTorch loop, same results; compiled step by step, "
            "far slower on the CPU), for torch.export backend='torch' or 'auto'")


def refuse_jit_trace(layer: str, what: str) -> None:
    """``RuntimeError`` under ``torch.jit.trace`` for a call of ``layer`` that draws random numbers (``what``, in
    words) through a seed taken on the host: the trace would keep this call's seed as a constant, so every call of
    the traced module would draw the same noise / masks. Nothing outside tracing.

    Example:
        >>> refuse_jit_trace("LIF", "noise")   # not tracing: nothing to refuse
    """
    if torch.jit.is_tracing():
        raise RuntimeError(f"{layer}: torch.jit.trace cannot record this call's random {what}: the seed is drawn on the "
                           "host, so the trace would keep it as a constant and every call would draw the same "
                           f"{what}. Use torch.compile instead, or trace the model in eval mode without noise or "
                           "masking (noisy_eval=False, mask_at_inference=False)")


def surrogate_param_or_default(who: str, surrogate: str, surrogate_param: float | None,
                               noise: str | None = None) -> float | None:
    """``surrogate_param``, or for None the default parameter of ``surrogate`` (:data:`SURROGATE_DEFAULTS`, the one
    ``snnlab.surrogates.get(surrogate)`` and the layers take): how every functional LIF reads its ``surrogate_param``
    before :func:`~snnlab.kernels.lif_common.check_lif_options` checks it. A noisy neuron (``noise`` set), whose
    surrogate is its noise density of scale ``noise_scale``, and a name that is not a known surrogate (which
    ``check_lif_options`` refuses) get ``surrogate_param`` back as it is. ``ValueError`` naming ``who`` for None with a
    surrogate put in ``CUSTOM_SURROGATES`` by hand, not with ``snnlab.surrogates.register`` (no default known).

    Example:
        >>> surrogate_param_or_default("f", "fast_sigmoid", None), surrogate_param_or_default("f", "fast_sigmoid", 3)
        (10.0, 3)
    """
    if surrogate_param is not None or noise is not None or not isinstance(surrogate, str):
        return surrogate_param
    if surrogate in SURROGATE_DEFAULTS:
        return SURROGATE_DEFAULTS[surrogate]
    if surrogate in CUSTOM_SURROGATES:
        raise ValueError(f"{who}: surrogate {surrogate!r} has no default parameter (it was not added with "
                         "snnlab.surrogates.register, which takes one): pass surrogate_param")
    return surrogate_param  # (an unknown name: check_lif_options names it)


def cpu_kernel_usable() -> bool:
    """Whether ``auto`` may take the compiled CPU loop (it builds here and is not switched off)."""
    from .lif_cpu import cpu_kernel_available, cpu_kernel_disabled

    return not cpu_kernel_disabled() and cpu_kernel_available()


def resolve_backend(backend: str, device: torch.device | str, dtype: torch.dtype = torch.float32,
                    surrogate: str | None = None, layer: str | None = None) -> str:
    """Return ``"torch"``, ``"cpu"`` or ``"triton"`` for ``backend`` in :data:`BACKENDS`.

    Example:
        >>> resolve_backend("torch", torch.device("cpu"))
        'torch'
        >>> resolve_backend("auto", torch.device("cpu"), torch.float64)
        'torch'

    ``auto`` takes Triton for CUDA tensors of :data:`TRITON_DTYPES`, the compiled CPU loop for float32 CPU tensors,
    else PyTorch (float64 anywhere, e.g. for ``gradcheck``, and a ``surrogate`` registered by the user, which only
    the PyTorch path computes). A ``surrogate`` neither built in nor registered in this process is a ``ValueError``
    on every backend (:func:`~snnlab.kernels.surrogate_math.unknown_surrogate_message`).

    While ``torch.export`` captures a graph, ``auto`` takes PyTorch (the path it can trace); under ``torch.compile``
    ``auto`` keeps its choice. The C loop leaves a captured graph (:func:`leave_graph`, with
    :func:`c_loop_capture_message` naming ``layer``).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {list(BACKENDS)}")
    if surrogate is not None:  # every backend: a custom surrogate not registered again in this process, or a typo
        check_known_surrogate(f"resolve_backend({backend!r})", surrogate)
    device = torch.device(device)
    if backend == "torch":
        return "torch"
    is_cuda = device.type == "cuda"
    if backend == "auto":
        if _IS_EXPORTING():  # the PyTorch loop: the one torch.export can trace
            return "torch"
        if surrogate is not None and surrogate in CUSTOM_SURROGATES:
            return "torch"
        if is_cuda:
            return "triton" if dtype in TRITON_DTYPES and triton_available() else "torch"
        if device.type != "cpu" or dtype != torch.float32:
            return "torch"
        # (before cpu_kernel_usable(), whose file checks a graph cannot hold: torch.compile runs the rest between
        # graphs, fullgraph=True raises the message)
        leave_graph(c_loop_capture_message(layer or "resolve_backend", "auto"))
        return "cpu" if cpu_kernel_usable() else "torch"
    if backend == "cpu":
        from .lif_cpu import cpu_kernel_error

        leave_graph(c_loop_capture_message(layer or "resolve_backend"))

        if device.type != "cpu":
            raise RuntimeError(f"backend='cpu' was requested for a tensor on device '{device}'; it runs on CPU "
                               "tensors. Use backend='auto' or 'triton' on CUDA, or move the tensors to the CPU.")
        if dtype != torch.float32:
            raise TypeError(f"backend='cpu' runs float32 tensors, got {dtype}; use backend='torch' or 'auto' for "
                            "other dtypes, or convert the input with .float().")
        err = cpu_kernel_error()
        if err is not None:
            raise RuntimeError(f"backend='cpu' was requested but snnlab's compiled CPU kernel is not available: "
                               f"{err}\nUse backend='torch' or 'auto'.")
        return "cpu"
    # backend == "triton": explicit request, fail loudly if it cannot run
    if not triton_available():
        raise RuntimeError(
            "backend='triton' was requested but the 'triton' package is not installed. "
            "Install it (pip install 'snnlab[gpu]' or pip install triton), or use backend='torch' / 'auto'.")
    if not (is_cuda or triton_interpret_enabled()):
        raise RuntimeError(
            f"backend='triton' was requested for a tensor on device '{device}', but the Triton kernels need "
            "a CUDA device. Move the model and data to CUDA, use backend='torch' / 'auto', or (for CPU "
            "testing only) set the environment variable TRITON_INTERPRET=1 before importing triton.")
    return "triton"


def lif_impl(backend: str, device: torch.device | str, dtype: torch.dtype = torch.float32,
             surrogate: str | None = None, layer: str | None = None) -> Callable:
    """The LIF function (the signature of :func:`~snnlab.kernels.lif_torch.lif_torch`) for ``backend`` (``layer``: who
    asks, named in the errors of :func:`resolve_backend`).

    Example:
        >>> lif_impl("torch", "cpu").__name__
        'lif_torch'
    """
    chosen = resolve_backend(backend, device, dtype, surrogate, layer)
    if chosen == "triton":
        from .lif_triton import lif_triton
        return lif_triton
    if chosen == "cpu":
        from .lif_cpu import lif_cpu
        return lif_cpu
    from .lif_torch import lif_torch
    return lif_torch


def lif(x: torch.Tensor, beta: torch.Tensor | float, threshold: torch.Tensor | float, backend: str = "auto", **kw):
    """Multi-step LIF on the backend chosen by :func:`resolve_backend`; returns ``(spikes, membrane)``.

    Keyword arguments are those of :func:`snnlab.kernels.lif_torch.lif_torch`; every backend takes and refuses the
    same arguments (``beta`` / ``threshold`` tensors or numbers, ``max_spikes`` None or an int >= 0; the options as
    :func:`~snnlab.kernels.lif_common.check_lif_options` checks them) and gives the same spikes for them. Non-finite
    inputs are outside that contract (see :func:`~snnlab.kernels.lif_torch.lif_torch`). ``surrogate_param`` None (the
    default) is the surrogate's own default parameter (:func:`surrogate_param_or_default`), as in ``snnlab.LIF``.

    Example:
        >>> s, h = lif(torch.ones(5, 1, 2), torch.tensor(0.5), torch.tensor(1.5), backend="torch")
        >>> s[:, 0, 0].tolist()
        [0.0, 1.0, 0.0, 1.0, 0.0]
        >>> int(lif(torch.ones(5, 1, 2), 0.5, 1.5, backend="auto", max_spikes=0)[0].sum())   # never fires
        0
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"lif: x must be a time-major tensor [T, B, ...], got {type(x).__name__}")
    surrogate = kw.get("surrogate", "atan") if kw.get("noise") is None else None  # (noise: its density, built in)
    return lif_impl(backend, x.device, x.dtype, surrogate)(x, beta, threshold, **kw)
