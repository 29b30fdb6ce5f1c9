r"""Recurrent LIF in PyTorch with a hand-written reverse-time backward: the fused path of :class:`snnlab.RecurrentLIF`.

Semantics (``x`` time-major ``[T, P, N]``, ``P`` the batch (and any middle dimensions) flattened, ``v[-1] = 0``,
``o[-1] = 0``, ``W`` the recurrent weight ``[N, N]``)::

    h[t] = beta * v[t-1] + x[t] + o[t-1] @ W^T    (pre-reset membrane)
    s[t] = H(h[t] - threshold) * m[t]             H(u) = 1 if u >= 0 else 0
    m[t] = 1 if (spikes fired before t) < max_spikes else 0   (m = 1 when max_spikes is None)
    v[t] = h[t] - threshold * s[t]                reset="subtract"
    v[t] = h[t] * (1 - s[t])                      reset="zero"
    o[t] = s[t] * k[t]                            the transmitted spikes (k: the keep mask, 1 without masking)

with the noise draws (``s[t] ~ Bernoulli(F((h[t] - threshold) / sigma)) * m[t]``) and keep masks at the counter
indices ``t * numel + i`` of :mod:`snnlab.kernels.counter_rng`, as :mod:`snnlab.kernels.lif_torch`.

The forward runs the loop without an autograd graph (one matmul and a few in-place ops per step) and saves
only ``[T, P, N]`` tensors: the pre-reset membrane ``h``, the neuron's own spikes ``s`` and the output ``o``
(``s`` itself without masking). The backward is a linear recurrence in reverse time once the surrogate is known
(``gh`` = dL/dh, ``go`` = the output gradient, ``sg = surrogate(h - threshold) * m``)::

    gh[t] = a[t] + sgk[t] * (gh[t+1] @ W) + beta * c[t] * gh[t+1],     a = sgk * go,  sgk = sg * k
    c = 1 - threshold * sg  (subtract)   1 (subtract, detach_reset)   (1 - s) - h * sg  (zero)   1 - s  (zero, detach)

so ``a``, ``sgk`` and ``c`` are computed vectorised over cache-sized chunks of time and the loop does one
``[P, N] x [N, N]`` matmul and two fused multiply-adds per step; ``dL/dW = sum_t gh[t+1]^T o[t]`` is one matmul
over all steps after the loop, and the ``beta`` / ``threshold`` gradients are chunked reductions.

Where no gradient is recorded (``evaluate``, ``torch.no_grad``) and the membrane is not asked for, the loop keeps
one step of it instead of ``[T, P, N]``. The backward is itself a Function (:class:`RecurrentLIFBackward`), so
``torch.func.grad`` / ``vjp`` work; differentiating it again raises the error of
:func:`~snnlab.kernels.first_order.refuse_higher_order` (first-order gradients only).

``vmap`` (and per-sample gradients, ``vmap(grad(...))``): the recurrence mixes neurons within a sample only, so the
vmapped dimension (size ``V``) is folded into the batch, ``[T, P, N] -> [T, V * P, N]``, one call (a vmapped
``beta`` / ``threshold`` is expanded to one row per folded sample). As for the LIF
(:func:`~snnlab.kernels.func_transforms.vmap_folded`), noise draws and keep masks are then those of that folded call
(``randomness="same"`` is refused with them). A vmapped recurrent weight (an ensemble of weights) runs one call per
slice, for deterministic neurons only.

No step feeds back at ``T = 1``: the recurrent weight then gets no gradient (None, as the per-step reference loop,
which never calls the weight); an empty sequence gives zeros, as for every parameter.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .counter_rng import cached_mask_key, keep_mask, seed_key, uniform_from_counter
from .dispatch import compute_dtype, surrogate_param_or_default
from .first_order import first_order_backward, refuse_forward_mode
from .lif_common import check_lif_options, check_mask_p, lif_params, param_grads
from .func_transforms import backward_runner, check_vmap_randomness, transforms_active, vmap_by_slices
from .lif_torch import _time_chunk, fire_and_reset_
from .surrogate_math import surrogate_grad_

__all__ = ["RecurrentLIFBackward", "RecurrentLIFFunction", "recurrent_lif"]

_NAME = "RecurrentLIF"


def _noise_chunk(start: int, end: int, step: torch.Size, key: int, like: torch.Tensor) -> torch.Tensor:
    """The noise uniforms of steps ``start..end-1`` (counter indices ``t * numel + i``), in ``like``'s dtype."""
    numel = math.prod(step)
    index = torch.arange(start * numel, end * numel, device=like.device, dtype=torch.int64)
    return uniform_from_counter(index, key).to(like.dtype).view((end - start,) + tuple(step))


class RecurrentLIFFunction(torch.autograd.Function):
    """Autograd function of the recurrent LIF over ``x [T, P, N]``; returns ``(o, h, s or None)``: the transmitted
    spikes, the pre-reset membrane and, only when masking makes them differ from ``o``, the neuron's own spikes
    (the last two not differentiable). Arguments: ``(x, w [N, N], beta, threshold, reset, detach_reset,
    max_spikes, surrogate, surrogate_param, noise, noise_scale, seed, mask_p, mask_seed)``, ``noise`` None for
    deterministic spikes (``surrogate`` is then the noise density's name for a noisy neuron in eval mode).

    Example:
        >>> x = torch.tensor([[[2.0, 0.0]], [[0.0, 0.0]]])                 # neuron 0 fires at t=0
        >>> w = torch.tensor([[0.0, 0.0], [1.5, 0.0]])                     # ... which makes neuron 1 fire at t=1
        >>> args = ("subtract", False, None, "atan", 2.0, None, 0.3, 0, 0.0, 0)
        >>> o, h, _ = RecurrentLIFFunction.apply(x, w, torch.tensor(0.5), torch.tensor(1.0), *args)
        >>> o[:, 0].tolist(), h[1, 0].tolist()
        ([[1.0, 0.0], [0.0, 1.0]], [0.5, 1.5])
    """

    @staticmethod
    def forward(x, w, beta, threshold, reset, detach_reset, max_spikes, surrogate, surrogate_param,
                noise, noise_scale, seed, mask_p, mask_seed):
        with torch.no_grad():  # (as autograd runs a Function's forward; torch.export traces it with grad mode on)
            return _forward_loop(x, w, beta, threshold, reset, max_spikes, noise, noise_scale, seed, mask_p, mask_seed)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, w, beta, threshold, reset, detach_reset, max_spikes, surrogate, surrogate_param = inputs[:9]
        mask_p, mask_seed = inputs[12:14]
        out, membrane, own = output
        ctx.save_for_backward(membrane, out if own is None else own, beta, threshold, w, out)
        masking = (mask_p, mask_seed) if mask_p > 0.0 else None
        ctx.cfg = (reset, detach_reset, max_spikes, surrogate, surrogate_param, masking)
        ctx.mark_non_differentiable(*(t for t in (membrane, own) if t is not None))
        ctx.set_materialize_grads(False)  # no [T, P, N] zeros for the outputs without a gradient

    @staticmethod
    def backward(ctx, grad_out, grad_membrane, grad_own):
        membrane, spikes, beta, threshold, w, out = saved = ctx.saved_tensors
        run = backward_runner(RecurrentLIFBackward, _NAME, saved, (grad_out,))
        if grad_out is None:
            grad_out = torch.zeros_like(out)
        masking = ctx.cfg[5] and (ctx.cfg[5][0], cached_mask_key(ctx.cfg[5][1]))
        cfg = ctx.cfg[:5] + (masking,) + tuple(ctx.needs_input_grad[1:4])
        gx, gw, gb, gt = run(cfg, grad_out, membrane, spikes, beta, threshold, w, out)
        gb, gt = param_grads(gb, gt, beta, threshold, membrane.shape[1:])
        return (gx, gw, gb, gt) + (None,) * 10

    @staticmethod
    def vmap(info, in_dims, x, w, beta, threshold, *options):
        noisy_or_masked = options[5] is not None or options[8] > 0.0
        if in_dims[1] is not None:
            if noisy_or_masked:
                raise ValueError(f"{_NAME} under vmap: a vmapped recurrent weight runs one call per slice, which "
                                 "would give every slice the same noise draws and keep masks; it is supported for "
                                 "deterministic neurons without spike masking only")
            return vmap_by_slices(RecurrentLIFFunction, info, in_dims, (x, w, beta, threshold) + options)
        check_vmap_randomness(info, _NAME, noisy_or_masked)
        n, (T, P, N) = info.batch_size, _logical_shape(x, in_dims[0])
        out = RecurrentLIFFunction.apply(_fold_time(x, in_dims[0], n), w, _fold_param(beta, in_dims[2], n, P, N),
                                         _fold_param(threshold, in_dims[3], n, P, N), *options)
        return tuple(None if o is None else o.view(T, n, P, N) for o in out), tuple(None if o is None else 1
                                                                                    for o in out)


def _logical_shape(t: torch.Tensor, dim: int | None) -> torch.Size:
    """The shape of ``t`` without its vmapped dimension ``dim`` (None: not vmapped)."""
    return t.shape if dim is None else t.shape[:dim] + t.shape[dim + 1:]


def _fold_time(t: torch.Tensor, dim: int | None, n: int) -> torch.Tensor:
    """A ``[T, P, N]`` tensor vmapped at ``dim`` (size ``n``; None: not vmapped, expanded) as ``[T, n * P, N]``."""
    t = t.unsqueeze(1).expand(t.shape[0], n, *t.shape[1:]) if dim is None else t.movedim(dim, 1)
    return t.reshape(t.shape[0], -1, t.shape[-1])


def _fold_param(p: torch.Tensor, dim: int | None, n: int, rows: int, width: int) -> torch.Tensor:
    """``beta`` / ``threshold`` vmapped at ``dim`` as one row per folded sample, ``[n * rows, width]`` (as is when
    not vmapped: it broadcasts to every row)."""
    if dim is None:
        return p
    p = p.movedim(dim, 0)
    if p.dim() > 3:
        raise ValueError(f"{_NAME} under vmap: beta / threshold of shape {tuple(p.shape[1:])} per sample do not "
                         f"broadcast to a step of [{rows}, {width}]")
    p = p.reshape((n,) + (1,) * (3 - p.dim()) + p.shape[1:])
    return torch.broadcast_to(p, (n, rows, width)).reshape(n * rows, width)


def _forward_loop(x: torch.Tensor, w: torch.Tensor, beta: torch.Tensor, threshold: torch.Tensor, reset: str,
                  max_spikes: int | None, noise: str | None, noise_scale: float, seed: int, mask_p: float,
                  mask_seed: int, keep_membrane: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """The forward time loop over ``x [T, P, N]`` (no autograd graph): ``(o, h, s or None)`` as
    :class:`RecurrentLIFFunction`. ``keep_membrane=False`` (no backward to come) keeps one step of the membrane
    (and of the neuron's own spikes when masking): ``h`` is then the last step's, ``[1, P, N]`` (``[0, P, N]``
    for ``T = 0``), and the own spikes None."""
    T, step = x.shape[0], x.shape[1:]
    masking = mask_p > 0.0
    rows = T if keep_membrane else min(T, 1)
    membrane = torch.empty((rows,) + tuple(step), dtype=x.dtype, device=x.device)
    spikes = torch.empty((T if keep_membrane or not masking else rows,) + tuple(step), dtype=x.dtype, device=x.device)
    out = torch.empty_like(x) if masking else spikes
    v = torch.zeros(step, dtype=x.dtype, device=x.device)
    neg_thr = -threshold
    count = torch.zeros_like(v) if max_spikes is not None else None
    allowed = torch.empty_like(v) if max_spikes is not None else None
    n_key = seed_key(seed) if noise is not None else 0
    m_key = cached_mask_key(mask_seed) if masking else 0
    wt = w.t()
    chunk = _time_chunk(v.numel())
    for start in range(0, T, chunk):
        end = min(T, start + chunk)
        rnd = _noise_chunk(start, end, step, n_key, x) if noise is not None else None
        keep = keep_mask(start * v.numel(), (end - start,) + tuple(step), m_key, mask_p, x.device,
                         x.dtype) if masking else None
        for i, t in enumerate(range(start, end)):
            h, s = membrane[t if keep_membrane else 0], spikes[t if spikes.shape[0] == T else 0]
            if t == 0:
                h.copy_(x[0])                        # v[-1] = 0, o[-1] = 0
            else:
                torch.addmm(x[t], out[t - 1], wt, out=h)   # x[t] + o[t-1] @ W^T
                h.addcmul_(v, beta)
            fire_and_reset_(h, s, v, threshold, neg_thr, reset == "subtract", None if rnd is None else rnd[i], noise,
                            noise_scale, count, allowed, max_spikes)
            if keep is not None:
                torch.mul(s, keep[i], out=out[t])
    return out, membrane, spikes if masking and keep_membrane else None


class RecurrentLIFBackward(torch.autograd.Function):
    """The backward of :class:`RecurrentLIFFunction` as a Function (``torch.func`` runs it; differentiating it
    raises): ``(cfg, grad_out, membrane, spikes, beta, threshold, w, out) -> (grad_x, grad_w, grad_beta,
    grad_threshold)``, the parameter gradients per element of a step (None where not needed)."""

    @staticmethod
    def forward(cfg, grad_out, membrane, spikes, beta, threshold, w, out):
        need_w, need_beta, need_thr = cfg[6:9]
        T, N = membrane.shape[0], membrane.shape[-1]
        grad_x = torch.empty_like(membrane)
        if T:
            _reverse_time(cfg, grad_out, membrane, spikes, beta, threshold, w, grad_x)
            g_beta, g_thr = _param_grads(grad_x, membrane, spikes, beta, threshold, cfg[0] == "subtract", need_beta,
                                         need_thr)
        else:  # an empty sequence: nothing flows back
            zeros = membrane.new_zeros(membrane.shape[1:])
            g_beta, g_thr = (zeros if need_beta else None), (zeros.clone() if need_thr else None)
        g_w = None
        # dL/dW[i, j] = sum_t gh[t+1, i] * o[t, j]: one matmul over all steps (T = 1: nothing fed back, no gradient;
        # T = 0: zeros, as for every parameter)
        if need_w and T != 1:
            g_w = grad_x[1:].reshape(-1, N).t() @ out[:-1].reshape(-1, N)
        return grad_x, g_w, g_beta, g_thr

    setup_context, backward = first_order_backward(_NAME)

    @staticmethod
    def vmap(info, in_dims, cfg, *args):
        """Folded as the forward (:meth:`RecurrentLIFFunction.vmap`); the recurrent weight's gradient is summed per
        vmapped sample. One call per slice for a vmapped weight, or for masks whose forward was not vmapped here
        (``jacrev``: the masks were drawn per slice)."""
        grad_out, membrane, spikes, beta, threshold, w, out = args
        if in_dims[6] is not None or (cfg[5] and in_dims[2] is None):
            return vmap_by_slices(RecurrentLIFBackward, info, in_dims, (cfg,) + args)
        n, (T, P, N) = info.batch_size, _logical_shape(membrane, in_dims[2])
        times = [None if t is None else _fold_time(t, d, n) for t, d in zip((grad_out, membrane, spikes, out),
                                                                              in_dims[1:4] + in_dims[7:])]
        params = [_fold_param(p, d, n, P, N) for p, d in zip((beta, threshold), in_dims[4:6])]
        gx, _, gb, gt = RecurrentLIFBackward.apply(cfg[:6] + (False,) + cfg[7:], *times[:3], *params, w, times[3])
        gx = gx.view(T, n, P, N)
        g_w = None
        if cfg[6] and T != 1:  # per sample: sum_t gh[t+1]^T o[t]
            g_w = torch.einsum("tvpi,tvpj->vij", gx[1:], times[3].view(T, n, P, N)[:-1])
        steps = [None if g is None else g.view(n, P, N) for g in (gb, gt)]
        outs = (gx, g_w, *steps)
        return outs, (1,) + tuple(None if o is None else 0 for o in outs[1:])


def _reverse_time(cfg, grad_out, membrane, spikes, beta, threshold, w, grad_x) -> None:
    """The reverse-time recurrence: writes ``grad_x`` (= dL/dh). The chunk's vectorised parts write into buffers
    allocated once (fresh large allocations cost page faults on every call)."""
    reset, detach_reset, max_spikes, surrogate, surrogate_param, masking = cfg[:6]
    T = membrane.shape[0]
    subtract = reset == "subtract"
    fired_after = spikes.sum(0) if max_spikes is not None else None   # spikes fired before `end`, carried back
    chunk = min(T, _time_chunk(membrane[0].numel()))
    sg_buf = torch.empty((chunk,) + membrane.shape[1:], dtype=membrane.dtype, device=membrane.device)
    bc_buf = torch.empty_like(sg_buf)       # beta * c
    sgk_buf = torch.empty_like(sg_buf) if masking else None
    rec = torch.empty_like(membrane[0])     # gh[t+1] @ W: the gradient the recurrence brings back to o[t]
    neg_bt = -beta * threshold
    gh_next = None
    for end in range(T, 0, -chunk):
        start = max(0, end - chunk)
        L = end - start
        h, s, go = membrane[start:end], spikes[start:end], grad_out[start:end]
        sg = surrogate_grad_(surrogate, torch.sub(h, threshold, out=sg_buf[:L]), surrogate_param)
        if fired_after is not None:
            before = fired_after - s.flip(0).cumsum(0).flip(0)
            fired_after = before[0]
            sg.mul_(before < max_spikes)
        if masking:  # the gradient reaches the neuron through kept spikes only
            keep = keep_mask(start * s[0].numel(), s.shape, masking[1], masking[0], s.device, s.dtype)
            sgk = torch.mul(sg, keep, out=sgk_buf[:L])
        else:
            sgk = sg
        gx = grad_x[start:end]
        torch.mul(sgk, go, out=gx)          # a = sg * k * go; the loop adds the rest in place
        bc = _beta_c(subtract, detach_reset, h, s, sg, beta, neg_bt, bc_buf[:L])
        for i in range(L - 1, -1, -1):
            if gh_next is not None:         # (the last step: nothing comes back from t + 1)
                torch.mm(gh_next, w, out=rec)
                gx[i].addcmul_(sgk[i], rec).addcmul_(gh_next, bc if bc is beta else bc[i])
            gh_next = gx[i]


def _beta_c(subtract: bool, detach_reset: bool, h: torch.Tensor, s: torch.Tensor, sg: torch.Tensor,
            beta: torch.Tensor, neg_bt: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``beta * c`` of one chunk (see the module docstring) in ``out``; ``beta`` itself when ``c = 1``."""
    if subtract:
        return beta if detach_reset else torch.mul(sg, neg_bt, out=out).add_(beta)   # beta - beta*thr*sg
    if detach_reset:
        return torch.mul(s, -1.0, out=out).add_(1.0).mul_(beta)                     # beta * (1 - s)
    return torch.mul(h, sg, out=out).add_(s).neg_().add_(1.0).mul_(beta)           # beta * ((1 - s) - h * sg)


def _param_grads(grad_x: torch.Tensor, membrane: torch.Tensor, spikes: torch.Tensor, beta: torch.Tensor,
                 threshold: torch.Tensor, subtract: bool, need_beta: bool,
                 need_thr: bool) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The ``beta`` / ``threshold`` gradients per element of a step, from ``gh`` (= ``grad_x``)::

        dL/dthreshold = -sum_t (gh[t] - beta * gh[t+1] * (1 - s[t]))     (either reset, with or without detach)
        dL/dbeta      =  sum_t gh[t+1] * v[t]

    (``gh[t] - beta * gh[t+1] * (1 - s[t])`` is dL/du[t] plus, for the subtract reset, the reset's own
    ``-dL/dv[t] * s[t]``), summed over cache-sized chunks of time through one buffer."""
    T = grad_x.shape[0]
    g_thr = -grad_x.sum(0) if need_thr else None
    g_beta = torch.zeros_like(grad_x[0]) if need_beta else None
    if T < 2:
        return g_beta, g_thr
    nxt_s = torch.zeros_like(grad_x[0])     # sum_t gh[t+1] * s[t]
    nxt_h = torch.zeros_like(grad_x[0])     # sum_t gh[t+1] * h[t]
    nxt_hs = torch.zeros_like(grad_x[0])    # sum_t gh[t+1] * h[t] * s[t] (zero reset)
    chunk = min(T - 1, _time_chunk(grad_x[0].numel()))
    buf = torch.empty((chunk,) + grad_x.shape[1:], dtype=grad_x.dtype, device=grad_x.device)
    for start in range(0, T - 1, chunk):
        end = min(T - 1, start + chunk)
        nxt, s, h, b = grad_x[start + 1:end + 1], spikes[start:end], membrane[start:end], buf[: end - start]
        nxt_s += torch.mul(nxt, s, out=b).sum(0)
        if need_beta:
            if not subtract:
                nxt_hs += b.mul_(h).sum(0)
            nxt_h += torch.mul(nxt, h, out=b).sum(0)
    if need_thr:
        g_thr += beta * (grad_x[1:].sum(0) - nxt_s)
    if need_beta:
        g_beta += nxt_h - threshold * nxt_s if subtract else nxt_h - nxt_hs
    return g_beta, g_thr


def recurrent_lif(x: torch.Tensor, w: torch.Tensor, beta: torch.Tensor, threshold: torch.Tensor, *,
                  reset: str = "subtract", detach_reset: bool = False, max_spikes: int | None = None,
                  surrogate: str = "atan", surrogate_param: float | None = None, noise: str | None = None,
                  noise_scale: float = 0.3, seed: int = 0, sample: bool = True, mask_p: float = 0.0,
                  mask_seed: int = 0, keep_membrane: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the recurrent LIF over ``x [T, B, ..., N]`` with recurrent weight ``w [N, N]``; returns ``(transmitted
    spikes, pre-reset membrane)``, both of ``x``'s shape and dtype.

    Dimensions between batch and neurons act as more batch. ``beta`` / ``threshold`` broadcast to ``[..., N]``.
    Computed in :func:`~snnlab.kernels.dispatch.compute_dtype` (float32 for float16 / bfloat16 input; ``w``,
    ``beta`` and ``threshold`` are cast to it, their gradients come back in their own dtypes). Options as
    :func:`~snnlab.kernels.lif_torch.lif_torch` (``noise`` with ``sample=True`` draws the spikes; its density is
    the surrogate either way). ``keep_membrane=False``: where no gradient is recorded (no grad mode, or no input
    requires one) only the last step's membrane is kept and returned (``[1, B, ..., N]``; less memory traffic).

    Example:
        >>> x = torch.tensor([[[2.0, 0.0]], [[0.0, 0.0]]])
        >>> o, h = recurrent_lif(x, torch.tensor([[0.0, 0.0], [1.5, 0.0]]), torch.tensor(0.5), torch.tensor(1.0))
        >>> o[:, 0].tolist()
        [[1.0, 0.0], [0.0, 1.0]]
    """
    refuse_forward_mode(_NAME, (x, w, beta, threshold))
    if isinstance(x, torch.Tensor) and (x.dim() < 2 or not isinstance(w, torch.Tensor)
                                        or w.shape != (x.shape[-1], x.shape[-1])):
        raise ValueError(f"recurrent_lif: x must be [T, B, ..., N] and w [N, N], got x {tuple(x.shape)} and w "
                         f"{tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__}")
    work = compute_dtype(x) if isinstance(x, torch.Tensor) else None
    # beta / threshold as lif_torch takes them (tensors or numbers, of shapes that broadcast to a step of x)
    beta, threshold, max_spikes = lif_params("recurrent_lif", x, beta, threshold, max_spikes, work)
    surrogate_param = surrogate_param_or_default("recurrent_lif", surrogate, surrogate_param, noise)
    surrogate, surrogate_param = check_lif_options("recurrent_lif", reset, surrogate, surrogate_param, noise,
                                                   noise_scale)
    # [T, P, N] with explicit sizes (T or B may be 0)
    flat = x.to(work).reshape(x.shape[0], math.prod(x.shape[1:-1]), x.shape[-1]).contiguous()
    args = (flat, w.to(work), beta.to(work), threshold.to(work), reset, bool(detach_reset), max_spikes, surrogate,
            surrogate_param, noise if sample else None, float(noise_scale), int(seed), check_mask_p(mask_p),
            int(mask_seed))
    if keep_membrane or _records_gradient(args[:4]):
        out, membrane, _ = RecurrentLIFFunction.apply(*args)
    else:
        with torch.no_grad():
            out, membrane, _ = _forward_loop(*args[:5], args[6], *args[9:], keep_membrane=False)
    return out.view(x.shape).to(x.dtype), membrane.view(membrane.shape[:1] + x.shape[1:]).to(x.dtype)


def _records_gradient(tensors: Sequence[torch.Tensor]) -> bool:
    """Whether autograd (or a ``torch.func`` transform) would differentiate a function of ``tensors``."""
    return transforms_active() or (
        torch.is_grad_enabled() and any(t.requires_grad for t in tensors))
