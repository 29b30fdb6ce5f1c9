r"""The feed-forward adaptive LIF (ALIF) with its time loop compiled for the CPU: the same function and gradients as
:func:`snnlab.kernels.adaptive_lif.adaptive_lif` with ``w=None`` (see its docstring for the semantics and the
reverse-time recurrence in the two states ``gh`` and ``ga``).

The loops are ``snnlab_alif_forward`` / ``snnlab_alif_backward`` in ``lif_cpu.c``, the library of the compiled LIF
(:mod:`snnlab.kernels.lif_cpu`: one build, the same threads over blocks of neurons, the same branch-free ``exp`` /
``erf``, counter hash and surrogate formulas). Without a recurrent weight every neuron's time loop is independent,
so ``x [T, B, ..., N]`` is viewed as ``[T, M]`` and each thread runs whole time loops over blocks of neurons:

* forward: writes the transmitted spikes ``o``, the pre-reset membrane ``h`` and the effective threshold ``theta``
  (every step, or with ``keep_membrane=False`` the last one only), the neuron's own spikes apart from ``o`` when
  masking, and keeps the membrane and the trace ``(v, a)`` every 32 steps (checkpoints) for the backward;
* backward: for each block of neurons and each chunk of 32 steps from the last, re-runs the forward from the
  checkpoint, ``x`` and the saved spikes (the same operations on the same values: the same membrane and trace), then
  runs the chunk backwards in ``gh`` / ``ga``, summing the ``beta``, ``threshold``, ``rho`` and ``strength``
  gradients per element (reduced to the parameters' shapes here).

Rounding follows the PyTorch path step by step (``h = fma(v, beta, x)``, ``theta = strength * a + threshold`` in two
roundings, ``a = fma(a, rho, s)``, the backward's ``addcmul`` as fused multiply-adds), so in float32 on x86-64 the
deterministic spikes, membrane and threshold are the PyTorch path's bit for bit; the sigmoid, gaussian and logistic
surrogates and the noise CDFs use the kernel's own ``exp`` / ``erf`` (within 2 ulp) and the parameter gradients are
summed in another order: equal to float32 rounding. Noise draws and spike masks come from the counter hash at
``t * M + m`` with the PyTorch path's keys: the same seed gives the same spikes.

float32 CPU tensors only (``TypeError`` / ``RuntimeError`` otherwise); first-order gradients only; no ``torch.func``
support (``RuntimeError`` under its transforms).
"""
from __future__ import annotations

import torch

from .counter_rng import cached_mask_key, seed_key
from .dispatch import surrogate_param_or_default
from .first_order import refuse_forward_mode, refuse_higher_order
from .func_transforms import refuse_transforms
from .lif_common import (ADAPTIVE_PARAMS, LIFOptions, SURROGATE_CODES, adaptive_gradients, adaptive_param_tensors,
                         check_cap_and_params, check_fused_args, check_lif_options, check_mask_p, constant_value,
                         flat_param, keep_for_adaptive_backward, noise_divisor, steps_and_width)
from .lif_cpu import _DBL, _FLT, _I64, _INT, _P, _U32, _lib, _ptr, _threads, c_spike_cap

__all__ = ["AdaptiveLIFCpuFunction", "adaptive_lif_cpu"]

_NAME = "adaptive_lif_cpu"
_NOISE_CODES = {None: 0, "gaussian": 1, "logistic": 2}
CHECKPOINT_EVERY = 32  # steps between the checkpoints of (v, a) (CHUNK in lif_cpu.c)
_FWD_ARGS = [_P] * 12 + [_I64, _I64, _INT, _INT, _INT, _INT, _DBL, _U32, _FLT, _U32, _INT]
_BWD_ARGS = [_P] * 5 + [_DBL] + [_P] * 10 + [_I64, _I64, _INT, _INT, _INT, _INT, _DBL, _FLT, _U32, _INT]
_configured: set[int] = set()


def _alif_lib():
    """The compiled library (:func:`snnlab.kernels.lif_cpu._lib`, built once) with the adaptive LIF's signatures."""
    lib = _lib()
    if id(lib) not in _configured:
        lib.snnlab_alif_forward.argtypes, lib.snnlab_alif_forward.restype = _FWD_ARGS, _INT
        lib.snnlab_alif_backward.argtypes, lib.snnlab_alif_backward.restype = _BWD_ARGS, _INT
        _configured.add(id(lib))
    return lib


def _refuse_transforms() -> None:
    refuse_transforms(_NAME, "compiled adaptive LIF")


@torch.compiler.disable  # (Dynamo must not split it at the C call, also on the no-gradient path: lif_cpu._calls_c)
def _forward(x: torch.Tensor, flat: tuple[torch.Tensor, ...], opts: LIFOptions,
             for_backward: bool) -> tuple[torch.Tensor | None, ...]:
    """Run the forward loop over contiguous float32 ``x [T, *step]`` (``flat``: the four parameters as ``[M]``):
    ``(o, h, theta, own spikes, checkpoints, counts)``; ``h`` / ``theta`` ``[1, *step]`` (``[0, *step]`` for
    ``T = 0``) unless ``opts.keep_membrane``; the own spikes are ``o`` without masking; checkpoints ``[2, ceil(T /
    32), *step]`` (None unless ``for_backward``), counts (spikes per neuron) None without ``max_spikes``."""
    T, M = steps_and_width(x)
    step = x.shape[1:]
    rows = T if opts.keep_membrane else min(T, 1)
    h, theta = x.new_empty((rows,) + step), x.new_empty((rows,) + step)
    masking, sampling = opts.mask_p > 0.0, opts.sampling()
    spikes = torch.empty_like(x)
    out = torch.empty_like(x) if masking else spikes
    ck = x.new_empty((2, -(-T // CHECKPOINT_EVERY)) + step) if for_backward else None
    counts = x.new_zeros(step) if opts.max_spikes is not None else None
    if T > 0 and M > 0:
        # every tensor whose address goes to C is held in a local until the call returns
        _alif_lib().snnlab_alif_forward(
            _ptr(x), *(_ptr(p) for p in flat), _ptr(h), _ptr(theta), _ptr(spikes), _ptr(out) if masking else None,
            _ptr(ck[0]) if ck is not None else None, _ptr(ck[1]) if ck is not None else None, _ptr(counts), T, M,
            int(opts.keep_membrane), int(opts.reset == "zero"),
            c_spike_cap(opts.max_spikes, T, -1), _NOISE_CODES[opts.noise] if sampling else 0,
            noise_divisor(opts.noise, opts.noise_scale) if sampling else 1.0, seed_key(opts.seed) if sampling else 0,
            opts.mask_p, cached_mask_key(opts.mask_seed) if masking else 0, _threads(T, M))
    return out, h, theta, spikes, ck, counts


def _backward(opts: LIFOptions, need: tuple[bool, ...], grad_o: torch.Tensor | None, x: torch.Tensor,
              spikes: torch.Tensor, ck: torch.Tensor, counts: torch.Tensor | None,
              flat: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor | None, ...]:
    """Run the backward loop: ``(grad_x, and the beta, threshold, rho, strength gradients per element [M])``, None
    where not ``need``-ed."""
    T, M = steps_and_width(x)
    grad_x = torch.zeros_like(x) if T == 0 or M == 0 or grad_o is None else torch.empty_like(x)
    grads = tuple(torch.zeros(M, dtype=torch.float32) if n else None for n in need)
    if T == 0 or M == 0 or grad_o is None:
        return (grad_x,) + grads
    gs_const = constant_value(grad_o)
    gs = None if gs_const is not None else grad_o.to(torch.float32).contiguous()
    _alif_lib().snnlab_alif_backward(
        _ptr(x), _ptr(spikes), _ptr(ck[0]), _ptr(ck[1]), _ptr(gs), gs_const or 0.0, *(_ptr(p) for p in flat),
        _ptr(counts), _ptr(grad_x), *(_ptr(g) for g in grads), T, M, int(opts.reset == "zero"),
        int(opts.detach_reset), c_spike_cap(opts.max_spikes, T, -1),
        SURROGATE_CODES[opts.surrogate], float(opts.surrogate_param), opts.mask_p,
        cached_mask_key(opts.mask_seed) if opts.mask_p > 0.0 else 0, _threads(T, M))
    return (grad_x,) + grads


class AdaptiveLIFCpuFunction(torch.autograd.Function):
    """Autograd function of the compiled feed-forward adaptive LIF: ``(x [T, *step] float32 contiguous, beta,
    threshold, rho, strength, opts) -> (o, h, theta)`` (parameters broadcastable to ``step``, ``opts`` a
    :class:`~snnlab.kernels.lif_common.LIFOptions` whose ``noise`` is None unless sampling and whose ``surrogate`` is
    the noise density for a noisy neuron); only ``o`` is differentiable. Call :func:`adaptive_lif_cpu`."""

    @staticmethod
    @torch.compiler.disable  # (Dynamo must not split the forward at the C call: see lif_cpu._calls_c)
    def forward(ctx, x, beta, threshold, rho, strength, opts):
        _refuse_transforms()
        flat = tuple(flat_param(p, x) for p in (beta, threshold, rho, strength))   # [M] float32
        o, h, theta, spikes, ck, counts = _forward(x, flat, opts, for_backward=True)
        keep_for_adaptive_backward(ctx, (x, spikes, ck, counts, *flat), opts, x, (beta, threshold, rho, strength), h,
                                   theta)
        return o, h, theta

    @staticmethod
    def backward(ctx, grad_o, *unused):
        _refuse_transforms()
        refuse_higher_order("ALIF (adaptive_lif_cpu)", (grad_o,))  # (a tangent on grad_o: forward over reverse)
        x, spikes, ck, counts, *flat = ctx.saved_tensors
        need = tuple(bool(n) for n in ctx.needs_input_grad[1:5])
        grad_x, *grads = _backward(ctx.opts, need, grad_o, x, spikes, ck, counts, tuple(flat))
        return adaptive_gradients(ctx, grad_x, grads, x.shape[0])


def _check_args(x: torch.Tensor, params: tuple[torch.Tensor, ...], opts: LIFOptions, noise: str | None) -> None:
    """``ValueError`` / ``TypeError`` / ``RuntimeError`` for inputs and options the kernel cannot take."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"{_NAME}: x must be a float32 tensor, got {type(x).__name__}"
                        f"{' of dtype ' + str(x.dtype) if isinstance(x, torch.Tensor) else ''}")
    check_fused_args(_NAME, x, opts.reset, opts.surrogate, noise, (torch.float32,))
    if x.dim() < 2:
        raise ValueError(f"{_NAME}: x must be time-major [T, B, ..., N], got shape {tuple(x.shape)}")
    if x.device.type != "cpu":
        raise RuntimeError(f"{_NAME} got a tensor on '{x.device}'; the compiled loop runs on CPU tensors. Use "
                           "adaptive_lif_triton on CUDA (or adaptive_lif), or move the tensors to the CPU.")
    check_cap_and_params(_NAME, x, opts.max_spikes, dict(zip(ADAPTIVE_PARAMS, params)))


def adaptive_lif_cpu(x: torch.Tensor, beta: torch.Tensor, threshold: torch.Tensor, rho: torch.Tensor,
                     strength: torch.Tensor, *, reset: str = "subtract", detach_reset: bool = False,
                     max_spikes: int | None = None, surrogate: str = "atan", surrogate_param: float | None = None,
                     noise: str | None = None, noise_scale: float = 0.3, seed: int = 0, sample: bool = True,
                     mask_p: float = 0.0, mask_seed: int = 0,
                     keep_membrane: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The compiled feed-forward adaptive LIF over float32 CPU ``x [T, B, ..., N]``: ``(transmitted spikes, pre-reset
    membrane, effective threshold)``, as ``adaptive_lif(x, None, beta, threshold, rho, strength, ...)`` with the same
    options and gradients (for ``x`` and the four parameters, which broadcast to ``[..., N]``).

    ``keep_membrane=False`` writes and returns only the last step's membrane and threshold (``[1, B, ..., N]``), with
    or without a gradient to come (the backward does not read them), as :func:`snnlab.kernels.lif_cpu.lif_cpu`.
    Raises :class:`RuntimeError` when the C kernel cannot be built here or ``x`` is not on the CPU, under
    ``torch.func`` transforms, and for second-order gradients; :class:`TypeError` for dtypes other than float32.

    Example:
        >>> x = torch.full((5, 1, 1), 1.2)
        >>> o, h, theta = adaptive_lif_cpu(x, 0.5, 1.0, 0.5, 0.5)   # doctest: +SKIP
        >>> o[:, 0, 0].tolist(), theta[:, 0, 0].tolist()              # doctest: +SKIP
        ([1.0, 0.0, 1.0, 0.0, 1.0], [1.0, 1.5, 1.25, 1.625, 1.3125])
    """
    refuse_forward_mode("ALIF (adaptive_lif_cpu)", (x, beta, threshold, rho, strength))
    _refuse_transforms()
    surrogate_param = surrogate_param_or_default(_NAME, surrogate, surrogate_param, noise)
    surrogate, surrogate_param = check_lif_options(_NAME, reset, surrogate, surrogate_param, noise, noise_scale)
    opts = LIFOptions(reset, bool(detach_reset), max_spikes, surrogate, surrogate_param,
                      noise if sample else None, float(noise_scale), int(seed), bool(sample), check_mask_p(mask_p),
                      int(mask_seed), bool(keep_membrane))
    params = adaptive_param_tensors(_NAME, x, torch.float32, (beta, threshold, rho, strength))
    _check_args(x, params, opts, noise)
    x = x.contiguous()
    if torch.is_grad_enabled() and any(t.requires_grad for t in (x,) + params):
        return AdaptiveLIFCpuFunction.apply(x, *params, opts)
    flat = tuple(flat_param(p, x) for p in params)
    o, h, theta, *_ = _forward(x, flat, opts, for_backward=False)
    return o, h, theta
