"""Multi-step LIF with the time loop compiled for the CPU (``backend="cpu"``).

Same functions and gradients as :func:`snnlab.kernels.lif_torch.lif_torch` (see its docstring for the
semantics); the loops live in ``lif_cpu.c``, which snnlab compiles with the system C compiler on first
use (cached, see :mod:`snnlab.kernels.c_build`) and calls through :mod:`ctypes`. Each forward and
backward is one pass over the ``[T, M]`` tensors, split over ``torch.get_num_threads()`` threads by
blocks of neurons, instead of a few PyTorch operations per time step.

The deterministic forward and the atan, fast-sigmoid and triangle backward round exactly as the
PyTorch path does on x86-64 (same operations in the same order, fused multiply-adds where PyTorch's
``addcmul`` has them); the sigmoid, gaussian and logistic formulas and the noise CDFs use the
kernel's own branch-free ``exp`` / ``erf`` (within 2 ulp, so the loops using them vectorise too; see
:func:`math_approx`) and agree with PyTorch to float32 rounding.

The time goes to memory traffic and fresh pages, not arithmetic, so the forward keeps the membrane
only every 32 steps, and the backward re-runs the forward chunk by chunk from those checkpoints,
``x`` and the saved spikes (into a cache-sized scratch) instead of reading a saved membrane.

Spike masking (``mask_p``) is fused too: the forward also writes the transmitted spikes ``s * keep``
(keep from the counter hash, as :func:`~snnlab.kernels.counter_rng.keep_mask`) while the saved
spikes stay the neuron's own; the backward masks each step's output gradient with the same keep.

float32 only. ``backend="auto"`` takes this path for float32 CPU tensors when the kernel builds (set
``SNNLAB_CPU_KERNEL=0`` to keep the PyTorch path); ``backend="cpu"`` raises if it cannot.
"""
from __future__ import annotations

import ctypes
import functools
import os
from collections.abc import Callable
from pathlib import Path

import torch

from .c_build import CBuildError, load_c_library
from .counter_rng import cached_mask_key, seed_key
from .dispatch import surrogate_param_or_default
from .first_order import first_order_backward, refuse_forward_mode
from .func_transforms import (PARAM, STEP, TIME, backward_cfg, backward_runner, check_vmap_randomness,
                              fixed_signature, graph_tie, vmap_by_slices, vmap_folded)
from .lif_common import (LIFOptions, SURROGATE_CODES, check_fused_args, check_lif_options, check_mask_p,
                         constant_value, flat_param, lif_params, noise_divisor, param_grads, steps_and_width)

SOURCE = Path(__file__).with_name("lif_cpu.c")
_NOISE_CODES = {None: 0, "gaussian": 1, "logistic": 2}
_MIN_NEURONS_PER_THREAD = 256
_MIN_ELEMENTS_FOR_THREADS = 1 << 19
CHECKPOINT_EVERY = 32  # steps between the membrane checkpoints the forward keeps (CHUNK in lif_cpu.c)

_P, _I64, _INT, _DBL = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.c_double
_U32, _FLT = ctypes.c_uint32, ctypes.c_float


def cpu_kernel_disabled() -> bool:
    """Whether ``SNNLAB_CPU_KERNEL`` is set to a false value (keep ``auto`` on the PyTorch path)."""
    return os.environ.get("SNNLAB_CPU_KERNEL", "").strip().lower() in ("0", "false", "no", "off")


@functools.lru_cache(maxsize=1)
def _library() -> ctypes.CDLL | CBuildError:
    try:
        lib = load_c_library(SOURCE)
    except CBuildError as exc:
        return exc
    lib.snnlab_lif_forward.argtypes = [_P, _P, _P, _P, _P, _P, _P, _P, _I64, _I64, _INT, _INT, _INT, _INT, _DBL,
                                       _U32, _FLT, _U32, _INT]
    lib.snnlab_lif_backward.argtypes = [_P, _P, _P, _P, _DBL, _P, _P, _P, _P, _P, _P, _I64, _I64, _INT, _INT,
                                        _INT, _INT, _DBL, _FLT, _U32, _INT]
    for fn in (lib.snnlab_lif_forward, lib.snnlab_lif_backward):
        fn.restype = _INT
    for fn in (lib.snnlab_exp_approx, lib.snnlab_erf_approx):
        fn.argtypes, fn.restype = [_P, _P, _I64], None
    return lib


def cpu_kernel_error() -> str | None:
    """None when the compiled CPU kernel is usable, else why not (builds it on first call)."""
    lib = _library()
    return str(lib) if isinstance(lib, CBuildError) else None


def cpu_kernel_available() -> bool:
    """Whether ``backend="cpu"`` can run here (a C compiler built the kernel)."""
    return cpu_kernel_error() is None


def _lib() -> ctypes.CDLL:
    lib = _library()
    if isinstance(lib, CBuildError):
        raise CBuildError(f"backend='cpu' needs snnlab's compiled CPU kernel, which is not available: {lib}. "
                          "Use backend='torch' or 'auto'.")
    return lib


def math_approx(name: str, x: torch.Tensor) -> torch.Tensor:
    """The kernel's vectorisable ``exp`` or ``erf`` (``name``) of a float32 CPU tensor (for tests)."""
    if name not in ("exp", "erf"):
        raise ValueError(f"name must be 'exp' or 'erf', got {name!r}")
    x = x.detach().to(torch.float32).contiguous()
    y = torch.empty_like(x)
    getattr(_lib(), f"snnlab_{name}_approx")(_ptr(x), _ptr(y), x.numel())
    return y


def c_spike_cap(max_spikes: int | None, T: int, none: int) -> int:
    """``max_spikes`` as the C loops' ``int`` argument: ``none`` (their "no cap") where it cannot bind in ``T`` steps,
    so a cap past ``2**31`` is not cut to a wrong 32-bit value.

    Example:
        >>> c_spike_cap(None, 50, -1), c_spike_cap(2**40, 50, -1), c_spike_cap(3, 50, -1)
        (-1, -1, 3)
    """
    return none if max_spikes is None or max_spikes >= T else int(max_spikes)


def _threads(T: int, M: int) -> int:
    """Threads for a ``[T, M]`` loop: one below ~0.5M elements (starting threads would cost more)."""
    if T * M < _MIN_ELEMENTS_FOR_THREADS:
        return 1
    return max(1, min(torch.get_num_threads(), M // _MIN_NEURONS_PER_THREAD))


def _ptr(t: torch.Tensor | None) -> int | None:
    return t.data_ptr() if t is not None else None


def _check_cpu(x: torch.Tensor) -> None:
    if x.device.type != "cpu":
        raise RuntimeError(f"lif_cpu got a tensor on '{x.device}'; backend='cpu' runs on CPU tensors. Use "
                           "backend='auto' (Triton on CUDA) or move the tensors to the CPU.")


def _calls_c(forward: Callable) -> Callable:
    """A Function's forward that calls C: run outside ``torch.compile`` (Dynamo would split it at the C call and free
    the tensors not used after the call before it runs, leaving C the addresses of freed memory), its signature
    looked up once (:func:`~snnlab.kernels.func_transforms.fixed_signature`)."""
    return fixed_signature(torch.compiler.disable(forward))


class LIFCpuFunction(torch.autograd.Function):
    """Autograd function for the compiled CPU LIF; returns ``(spikes, membrane_pre_reset)`` and what the backward
    reads (non-differentiable): the neuron's own spikes when masking, the contiguous copy of ``x`` when one was
    made, the membrane checkpoints, the ``max_spikes`` counts (None where absent) and beta and the threshold
    expanded to a step.

    Same arguments as :class:`snnlab.kernels.lif_torch.LIFFunction`; the backward is :class:`LIFCpuBackward` (see
    :mod:`snnlab.kernels.lif_torch` for ``torch.func``).
    """

    @staticmethod
    @_calls_c
    def forward(x, beta, threshold, opts):
        reset, max_spikes, noise, noise_scale, mask_p, keep_membrane = (
            opts.reset, opts.max_spikes, opts.noise, opts.noise_scale, opts.mask_p, opts.keep_membrane)
        check_fused_args("lif_cpu", x, reset, opts.surrogate, noise, (torch.float32,))
        _check_cpu(x)
        lib = _lib()
        x_in, x = x, x.contiguous()
        T, M = steps_and_width(x)
        spikes = torch.empty_like(x)
        membrane = torch.empty_like(x) if keep_membrane or T == 0 else x.new_empty((1,) + x.shape[1:])
        checkpoints = x.new_empty((-(-T // CHECKPOINT_EVERY),) + x.shape[1:])  # [T / 32, M] for the kernel
        counts = x.new_zeros(x.shape[1:]) if max_spikes is not None else None  # the max_spikes mask of the backward
        sampling = opts.sampling()
        masking = mask_p > 0.0
        out = torch.empty_like(x) if masking else spikes  # transmitted spikes; `spikes` stay the neuron's own
        m_key = cached_mask_key(opts.mask_seed) if masking else 0
        # every tensor whose address goes to C is held in a local until the call returns
        beta_f, thr_f = flat_param(beta, x), flat_param(threshold, x)  # [M] float32, kept for the backward
        if T > 0 and M > 0:
            lib.snnlab_lif_forward(
                _ptr(x), _ptr(beta_f), _ptr(thr_f), _ptr(membrane), _ptr(spikes), _ptr(checkpoints), _ptr(counts),
                _ptr(out) if masking else None, T, M, int(bool(keep_membrane)), int(reset == "zero"),
                c_spike_cap(max_spikes, T, -1), _NOISE_CODES[noise] if sampling else 0,
                noise_divisor(noise, noise_scale) if sampling else 1.0, seed_key(opts.seed) if sampling else 0,
                mask_p, m_key, _threads(T, M))
        # the backward re-runs the forward from x, the spikes and the checkpoints (cheaper than storing
        # the membrane: one fresh [T, B, ...] tensor fewer)
        step = x.shape[1:]
        return (out, membrane, spikes if masking else None, None if x is x_in else x, checkpoints, counts,
                beta_f.view(step), thr_f.view(step))

    @staticmethod
    def setup_context(ctx, inputs, output):
        out, membrane, own, x_copy, checkpoints, counts, beta_f, thr_f = output
        ctx.save_for_backward(inputs[0] if x_copy is None else x_copy, out if own is None else own, checkpoints,
                              counts, beta_f, thr_f, graph_tie(out), inputs[1], inputs[2])
        ctx.opts = inputs[3]
        ctx.mark_non_differentiable(*(t for t in output[1:] if t is not None))
        ctx.set_materialize_grads(False)  # no zeros for the outputs without a gradient (all but the spikes)

    @staticmethod
    def backward(ctx, grad_spikes, *_):
        saved = ctx.saved_tensors
        run = backward_runner(LIFCpuBackward, "LIF (backend='cpu')", saved, (grad_spikes,))
        grad_x, g_beta, g_thr = run(backward_cfg(ctx), grad_spikes, *saved[:7])
        x, beta, threshold = saved[0], saved[7], saved[8]
        gb, gt = param_grads(g_beta, g_thr, beta, threshold, x.shape[1:])
        return grad_x, gb, gt, None

    @staticmethod
    def vmap(info, in_dims, *args):
        check_vmap_randomness(info, "LIF (backend='cpu')", args[3].draws())
        return vmap_folded(LIFCpuFunction, info, in_dims, args, (TIME, PARAM, PARAM, None),
                           (TIME,) * 5 + (STEP,) * 3)


class LIFCpuBackward(torch.autograd.Function):
    """The backward of :class:`LIFCpuFunction` as a Function (``torch.func`` runs it; differentiating it raises):
    ``(cfg, grad_spikes, x, spikes, checkpoints, counts, beta_f, thr_f, out) -> (grad_x, grad_beta,
    grad_threshold)`` (``beta_f`` / ``thr_f``: the parameters expanded to a step), the parameter gradients per
    element of a step (None where not needed); ``out`` is not read, it ties the backward to the graph under
    ``torch.func``, None elsewhere (see :class:`snnlab.kernels.lif_torch.LIFBackward`)."""

    @staticmethod
    @_calls_c
    def forward(cfg, grad_spikes, x, spikes, checkpoints, counts, beta_f, thr_f, out):
        reset, detach_reset, max_spikes, surrogate, surrogate_param, mask_p, m_key, need_beta, need_thr = cfg
        x, spikes, checkpoints = x.contiguous(), spikes.contiguous(), checkpoints.contiguous()
        counts = counts.contiguous() if counts is not None else None
        beta_f, thr_f = beta_f.contiguous().view(-1), thr_f.contiguous().view(-1)  # [M] float32
        T, M = steps_and_width(x)
        grad_x = torch.empty_like(x)
        g_beta = torch.zeros(M, dtype=torch.float32) if need_beta else None
        g_thr = torch.zeros(M, dtype=torch.float32) if need_thr else None
        if T > 0 and M > 0:
            gs_const = 0.0 if grad_spikes is None else constant_value(grad_spikes)
            gs = None if gs_const is not None else grad_spikes.to(torch.float32).contiguous()
            _lib().snnlab_lif_backward(
                _ptr(x), _ptr(spikes), _ptr(checkpoints), _ptr(gs), gs_const or 0.0, _ptr(beta_f), _ptr(thr_f),
                _ptr(counts), _ptr(grad_x), _ptr(g_beta), _ptr(g_thr),
                T, M, int(reset == "zero"), int(detach_reset), c_spike_cap(max_spikes, T, -1), SURROGATE_CODES[surrogate],
                surrogate_param, mask_p, m_key, _threads(T, M))
        step = x.shape[1:]
        return grad_x, (g_beta.view(step) if need_beta else None), (g_thr.view(step) if need_thr else None)

    setup_context, backward = first_order_backward("LIF (backend='cpu')")

    @staticmethod
    def vmap(info, in_dims, *args):
        if args[0][5] > 0.0 and in_dims[3] is None:  # masks, forward not vmapped here: drawn per slice
            return vmap_by_slices(LIFCpuBackward, info, in_dims, args)
        return vmap_folded(LIFCpuBackward, info, in_dims, args, (None,) + (TIME,) * 4 + (STEP,) * 3 + (TIME,),
                           (TIME, STEP, STEP))


def lif_cpu(x: torch.Tensor, beta: torch.Tensor | float, threshold: torch.Tensor | float, *, reset: str = "subtract",
            detach_reset: bool = False, max_spikes: int | None = None, surrogate: str = "atan",
            surrogate_param: float | None = None, noise: str | None = None, noise_scale: float = 0.3,
            seed: int = 0, sample: bool = True, mask_p: float = 0.0, mask_seed: int = 0,
            keep_membrane: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Compiled CPU multi-step LIF over float32 ``x [T, B, ...]``; returns ``(spikes, pre-reset membrane)``.

    Drop-in for :func:`snnlab.kernels.lif_torch.lif_torch` (same arguments, checks, results and gradients;
    ``beta`` / ``threshold`` may be numbers; ``max_spikes=0``: a neuron that never fires).
    With ``keep_membrane=False`` only the last step's membrane is written and returned (``[1, B, ...]``):
    the backward does not need it (it re-runs the forward from ``x`` and the spikes), so a layer that
    does not record its membrane saves writing a ``[T, B, ...]`` tensor.
    Raises :class:`RuntimeError` when the kernel cannot be built here (no C compiler) or ``x`` is not
    on the CPU, :class:`TypeError` for dtypes other than float32.

    Example:
        >>> x = torch.ones(5, 1, 2)
        >>> s, h = lif_cpu(x, torch.tensor(0.5), torch.tensor(1.5))   # doctest: +SKIP
        >>> s[:, 0, 0].tolist()                                          # doctest: +SKIP
        [0.0, 1.0, 0.0, 1.0, 0.0]
    """
    refuse_forward_mode("LIF (backend='cpu')", (x, beta, threshold))
    beta, threshold, max_spikes = lif_params("lif_cpu", x, beta, threshold, max_spikes, torch.float32)
    surrogate_param = surrogate_param_or_default("lif_cpu", surrogate, surrogate_param, noise)
    surrogate, surrogate_param = check_lif_options("lif_cpu", reset, surrogate, surrogate_param, noise, noise_scale)
    opts = LIFOptions(reset, bool(detach_reset), max_spikes, surrogate, surrogate_param, noise,
                      float(noise_scale), int(seed), bool(sample), check_mask_p(mask_p), int(mask_seed),
                      bool(keep_membrane))
    spikes, membrane, *_ = LIFCpuFunction.apply(x, beta, threshold, opts)
    return spikes, membrane

