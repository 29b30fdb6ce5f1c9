"""Multi-step LIF in pure PyTorch with a hand-written reverse-time backward.

This is the reference every other LIF backend is tested against, and the path for dtypes other
than float32 and for machines without a C compiler (the compiled loop, :mod:`snnlab.kernels.lif_cpu`,
is faster on the CPU).
The forward runs the time loop without recording an autograd graph and saves only the
pre-reset membrane ``h`` and the spikes ``s``; the backward recomputes everything else.

Semantics (``x`` time-major ``[T, B, ...]``, ``v[-1] = 0``)::

    h[t] = beta * v[t-1] + x[t]
    s[t] = H(h[t] - threshold) * m[t]            H(u) = 1 if u >= 0 else 0
    m[t] = 1 if (spikes fired before t) < max_spikes else 0   (m = 1 when max_spikes is None)
    v[t] = h[t] - threshold * s[t]               reset="subtract"
    v[t] = h[t] * (1 - s[t])                     reset="zero"

Noisy neurons (``noise`` set and ``sample=True``): ``s[t] ~ Bernoulli(F((h - threshold) / sigma)) * m[t]``
with the uniform numbers drawn from :mod:`snnlab.kernels.counter_rng`. The backward replaces
``dH/du`` by the surrogate (for noise, its density), masked by ``m[t]``; with ``detach_reset``
the spike in the reset term carries no gradient (the threshold of the subtract reset still does).

Spike masking (``mask_p > 0``, masked spike training): the layer outputs ``o[t] = s[t] * k[t]`` with
``k[t] = 1`` where the counter hash under :func:`~snnlab.kernels.counter_rng.mask_key` of ``mask_seed``
is ``>= mask_p`` (each spike dropped with probability ``mask_p``, kept spikes stay 1). The neuron
itself still fires and resets with ``s``: masking acts on what is transmitted, exactly as a
:class:`~snnlab.SpikeMask` after the layer, and the output gradient reaches the neuron through kept
spikes only (``grad_s = k * grad_o``).

``torch.func``: every LIF Function (this one, the compiled CPU and the Triton one) and the leaky integrator
work under ``torch.func.grad`` / ``vjp`` / ``vmap`` and their compositions (per-sample gradients with
``vmap(grad(...))``). Their backward is itself a Function (:class:`LIFBackward`...), so that the transforms can
run it, and differentiating it again raises the error of :func:`~snnlab.kernels.first_order.refuse_higher_order`.
Under ``vmap`` the vmapped dimension is folded into the step shape (``[T, V, B, ...]``, one call; a batched
``beta`` / ``threshold`` of per-sample shape ``P`` broadcasts as ``[V, 1.., *P]``); see :func:`~snnlab.kernels.func_transforms.vmap_folded`
for what that does to the counter-based noise and masks.
"""
from __future__ import annotations

import torch

from .counter_rng import cached_mask_key, keep_mask, seed_key, uniform_from_counter
from .dispatch import compute_dtype, surrogate_param_or_default
from .first_order import first_order_backward, refuse_forward_mode
from .func_transforms import (PARAM, STEP, TIME, backward_cfg, backward_runner, check_vmap_randomness,
                              fixed_signature, graph_tie, vmap_by_slices, vmap_folded)
from .lif_common import LIFOptions, check_lif_options, check_mask_p, lif_params, param_grads, reduce_to
from .surrogate_math import noise_cdf, surrogate_grad_


def _time_chunk(step_numel: int) -> int:
    """Steps per chunk of the backward's vectorised part (~256K elements, i.e. 1 MB of float32).

    The chunk buffers are allocated once per backward and reused, so the size only trades Python
    overhead against cache reuse; on the 2-core reference machine (T=500, B=16, N=4096) chunks of
    256K elements and more were fastest.
    """
    return max(1, (1 << 18) // max(1, step_numel))


def fire_and_reset_(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor, threshold: torch.Tensor,
                    neg_thr: torch.Tensor, subtract: bool, rnd: torch.Tensor | None, noise: str | None,
                    noise_scale: float, count: torch.Tensor | None, allowed: torch.Tensor | None,
                    max_spikes: int | None) -> None:
    """One LIF step after its pre-reset membrane ``h``, in place: the spikes ``s`` (``h >= threshold``, or drawn
    with the uniform numbers ``rnd`` for noise), capped by ``max_spikes`` (``count`` / ``allowed``: the spikes so
    far and the step's allowance), and the reset membrane ``v`` (``neg_thr = -threshold``)."""
    if rnd is not None:
        torch.lt(rnd, noise_cdf(noise, h - threshold, noise_scale), out=s)
    else:
        torch.ge(h, threshold, out=s)
    if count is not None:
        torch.lt(count, max_spikes, out=allowed)
        s.mul_(allowed)
        count.add_(s)
    if subtract:
        torch.addcmul(h, s, neg_thr, out=v)          # v = h - threshold * s
    else:
        torch.addcmul(h, h, s, value=-1.0, out=v)    # v = h * (1 - s)


class LIFFunction(torch.autograd.Function):
    """Autograd function for the multi-step LIF; returns ``(spikes, membrane_pre_reset)``.

    The backward is a linear recurrence once the surrogate is known::

        gh[t] = a[t] + beta * c[t] * gh[t+1],   a = sg * grad_s,   sg = surrogate(h - threshold) * m
        c = 1 - threshold * sg        (subtract)      c = (1 - s) - h * sg     (zero)
        c = 1                         (subtract, detach_reset)      c = 1 - s  (zero, detach_reset)

    so ``a`` and ``c`` are computed vectorised over cache-sized chunks of time, and the loop does one
    fused multiply-add per step.

    Arguments ``(x, beta, threshold, opts)`` (``opts`` a :class:`LIFOptions`); besides the spikes and the membrane
    it returns the neuron's own spikes when masking makes them differ from the output (else None), for the
    backward (:class:`LIFBackward`).
    """

    @staticmethod
    @fixed_signature
    def forward(x, beta, threshold, opts):
        reset, max_spikes, noise, noise_scale, seed, sample, mask_p = (
            opts.reset, opts.max_spikes, opts.noise, opts.noise_scale, opts.seed, opts.sample, opts.mask_p)
        T = x.shape[0]
        step_shape = x.shape[1:]
        membrane = torch.empty_like(x)
        spikes = torch.empty_like(x)
        # Preallocated step buffers: every op below writes in place (no allocation per step).
        v = torch.zeros(step_shape, dtype=x.dtype, device=x.device)
        neg_thr = -threshold
        count = torch.zeros(step_shape, dtype=x.dtype, device=x.device) if max_spikes is not None else None
        allowed = torch.empty(step_shape, dtype=x.dtype, device=x.device) if max_spikes is not None else None
        sampling = noise is not None and sample
        if sampling:
            numel = v.numel()
            base = torch.arange(numel, device=x.device, dtype=torch.int64).view(step_shape)
            key = seed_key(seed)
        subtract = reset == "subtract"
        masking = mask_p > 0.0
        out = torch.empty_like(x) if masking else spikes  # the transmitted (masked) spikes
        m_key = cached_mask_key(opts.mask_seed) if masking else 0
        with torch.no_grad():  # (as autograd runs a Function's forward; torch.export traces it with grad mode on)
            for t in range(T):
                h = torch.addcmul(x[t], v, beta, out=membrane[t])
                s = spikes[t]
                rnd = uniform_from_counter(base + t * numel, key).to(x.dtype) if sampling else None
                fire_and_reset_(h, s, v, threshold, neg_thr, subtract, rnd, noise, noise_scale, count, allowed,
                                max_spikes)
            if masking:  # the transmitted spikes, in cache-sized chunks of time
                chunk = _time_chunk(spikes[0].numel()) if T else 1
                for start in range(0, T, chunk):
                    s = spikes[start:start + chunk]
                    torch.mul(s, keep_mask(start * s[0].numel(), s.shape, m_key, mask_p, x.device, x.dtype),
                              out=out[start:start + chunk])
        # the neuron's own spikes are an output of their own only when masking makes them differ from `out`
        return out, membrane, spikes if masking else None

    @staticmethod
    def setup_context(ctx, inputs, output):
        opts = inputs[3]
        out, membrane, own = output
        ctx.save_for_backward(membrane, out if own is None else own, inputs[1], inputs[2], graph_tie(out))
        ctx.opts = opts
        ctx.mark_non_differentiable(*(t for t in (membrane, own) if t is not None))
        ctx.set_materialize_grads(False)  # no zeros for the outputs without a gradient (all but the spikes)

    @staticmethod
    def backward(ctx, grad_spikes, grad_membrane, grad_own):
        membrane, spikes, beta, threshold, out = saved = ctx.saved_tensors
        run = backward_runner(LIFBackward, "LIF (backend='torch')", saved, (grad_spikes,))
        if grad_spikes is None:
            grad_spikes = torch.zeros_like(spikes)
        cfg = backward_cfg(ctx)
        masking = (cfg[5], cfg[6]) if cfg[5] > 0.0 else None
        cfg = cfg[:5] + (masking,) + cfg[7:]
        grad_x, g_beta, g_thr = run(cfg, grad_spikes, membrane, spikes, beta, threshold, out)
        gb, gt = param_grads(g_beta, g_thr, beta, threshold, membrane.shape[1:])
        return grad_x, gb, gt, None

    @staticmethod
    def vmap(info, in_dims, *args):
        check_vmap_randomness(info, "LIF (backend='torch')", args[3].draws())
        return vmap_folded(LIFFunction, info, in_dims, args, (TIME, PARAM, PARAM, None), (TIME,) * 3)


class LIFBackward(torch.autograd.Function):
    """The backward of :class:`LIFFunction` as a Function of its own (``torch.func`` runs it; differentiating
    it raises): ``(cfg, grad_spikes, membrane, spikes, beta, threshold, out) -> (grad_x, grad_beta,
    grad_threshold)``, the parameter gradients per element of a step (None where not needed). The output ``out``
    is not read: under ``torch.func`` it ties the backward to the graph of ``x``, so that differentiating it raises
    instead of giving zeros (the membrane and the neuron's own spikes are not differentiable); None elsewhere
    (:func:`~snnlab.kernels.func_transforms.graph_tie`).
    """

    @staticmethod
    @fixed_signature
    def forward(cfg, grad_spikes, membrane, spikes, beta, threshold, out):
        reset, detach_reset, max_spikes, surrogate, surrogate_param, masking, need_beta, need_thr = cfg
        T = membrane.shape[0]
        if T == 0:  # an empty sequence: nothing flows back
            zeros = membrane.new_zeros(membrane.shape[1:])
            return torch.zeros_like(membrane), zeros if need_beta else None, zeros.clone() if need_thr else None
        subtract = reset == "subtract"
        grad_x = torch.empty_like(membrane)
        g_beta = torch.zeros_like(membrane[0]) if need_beta else None
        g_thr = torch.zeros_like(membrane[0]) if need_thr else None
        # spikes fired before each step (for the max_spikes mask), carried backwards chunk by chunk
        fired_after = spikes.sum(0) if max_spikes is not None else None
        gh_next = torch.zeros_like(membrane[0])
        chunk = min(T, _time_chunk(membrane[0].numel()))
        sg_buf = torch.empty((chunk,) + membrane.shape[1:], dtype=membrane.dtype, device=membrane.device)
        fast = not (need_thr or need_beta)
        neg_bt = -beta * threshold
        if fast and not subtract:
            one_minus_s = torch.empty_like(sg_buf)
        for end in range(T, 0, -chunk):
            start = max(0, end - chunk)
            h, s, gs = membrane[start:end], spikes[start:end], grad_spikes[start:end]
            if masking is not None:  # the gradient reaches the neuron through kept spikes only
                mask_p, m_key = masking
                gs = gs * keep_mask(start * s[0].numel(), s.shape, m_key, mask_p, s.device, s.dtype)
            gx = grad_x[start:end]
            sg = surrogate_grad_(surrogate, torch.sub(h, threshold, out=sg_buf[: end - start]), surrogate_param)
            if fired_after is not None:
                before = fired_after - s.flip(0).cumsum(0).flip(0)
                fired_after = before[0]
                sg.mul_(before < max_spikes)
            if fast:
                # gx holds a = sg * grad_s, then the recurrence adds beta * c * gh[t+1] in place;
                # sg's buffer is reused for bc = beta * c (no allocation per chunk).
                torch.mul(sg, gs, out=gx)
                if subtract:
                    bc = beta if detach_reset else sg.mul_(neg_bt).add_(beta)  # beta - beta*thr*sg
                else:
                    oms = torch.sub(1.0, s, out=one_minus_s[: end - start])
                    bc = oms.mul_(beta) if detach_reset else sg.mul_(h).neg_().add_(oms).mul_(beta)
                for i in range(end - start - 1, -1, -1):
                    gh_next = gx[i].addcmul_(gh_next, bc if bc is beta else bc[i])
                continue
            a = sg * gs
            if subtract:
                c = None if detach_reset else 1.0 - threshold * sg
            else:
                c = 1.0 - s if detach_reset else (1.0 - s) - h * sg
            bc = beta * c if c is not None else None
            for i in range(end - start - 1, -1, -1):
                if bc is None:
                    gh_next = torch.addcmul(a[i], gh_next, beta, out=gx[i])
                else:
                    gh_next = torch.addcmul(a[i], gh_next, bc[i], out=gx[i])
            if need_thr or need_beta:
                # gv[t] = beta * gh[t+1]: the gradient reaching v[t] from the next step
                gv = torch.empty_like(gx)
                gv[:-1] = gx[1:]
                gv[-1] = grad_x[end] if end < T else 0.0
                gv.mul_(beta)
                if need_thr:
                    if subtract:
                        g_thr -= ((sg * gs if detach_reset else sg * (gs - threshold * gv)) + gv * s).sum(0)
                    else:
                        g_thr -= (sg * gs if detach_reset else sg * (gs - h * gv)).sum(0)
                if need_beta:
                    # dL/dbeta = sum_t gh[t] * v[t-1] = sum_t gv[t] * v[t] / beta, written without division
                    v = h - threshold * s if subtract else h * (1.0 - s)
                    nxt = torch.empty_like(gx)
                    nxt[:-1] = gx[1:]
                    nxt[-1] = grad_x[end] if end < T else 0.0
                    g_beta += (nxt * v).sum(0)
        return grad_x, g_beta, g_thr

    setup_context, backward = first_order_backward("LIF (backend='torch')")

    @staticmethod
    def vmap(info, in_dims, *args):
        layouts = (None, TIME, TIME, TIME, PARAM, PARAM, TIME)
        if args[0][5] is not None and in_dims[2] is None:  # masks, forward not vmapped here: drawn per slice
            return vmap_by_slices(LIFBackward, info, in_dims, args)
        return vmap_folded(LIFBackward, info, in_dims, args, layouts, (TIME, STEP, STEP))


def lif_torch(x: torch.Tensor, beta: torch.Tensor | float, threshold: torch.Tensor | float, *, reset: str = "subtract",
              detach_reset: bool = False, max_spikes: int | None = None, surrogate: str = "atan",
              surrogate_param: float | None = None, noise: str | None = None, noise_scale: float = 0.3,
              seed: int = 0, sample: bool = True, mask_p: float = 0.0, mask_seed: int = 0,
              keep_membrane: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the multi-step LIF over ``x [T, B, ...]``; returns ``(spikes, pre-reset membrane)``.

    ``beta`` and ``threshold`` are tensors broadcastable to ``x.shape[1:]`` (scalars or per neuron), or numbers;
    this path computes in ``x``'s dtype (float32 for float16 / bfloat16 input, as the fused kernels) and casts
    them to it; spikes and membrane come back in ``x``'s dtype.
    ``max_spikes`` is None (no cap) or an int >= 0 (0: the neuron never fires, and no gradient reaches it through
    its spikes); the other backends agree on every such cap.
    Raises ``ValueError`` for another ``max_spikes`` and for a parameter that does not broadcast to a step of ``x``,
    ``TypeError`` for one that is neither a tensor nor a number (the checks of
    :func:`~snnlab.kernels.lif_common.lif_params`).
    ``surrogate`` is the spike's pseudo-derivative (a built-in name, or one added with ``snnlab.surrogates.register``)
    and ``surrogate_param`` its parameter: None (the default) takes that surrogate's own default, the one
    ``snnlab.surrogates.get(surrogate)`` and the layers take (the table in :mod:`snnlab.core.surrogates`, or the one
    given to ``register``; :func:`~snnlab.kernels.dispatch.surrogate_param_or_default`).
    With ``noise`` set, the surrogate is the noise density of scale ``noise_scale``.
    ``mask_p > 0`` drops each output spike with that probability (keep mask from ``mask_seed``; see
    the module docstring): the returned spikes are the masked ones.
    ``keep_membrane=False`` allows a backend to return only the last step's membrane; this path
    saves the whole membrane for its backward anyway and always returns it.
    Raises ``ValueError`` naming the function for an unknown ``reset``, ``surrogate`` or ``noise`` and a
    ``surrogate_param`` (``noise_scale`` for a noisy neuron) that is not a finite number > 0, as every backend
    (:func:`~snnlab.kernels.lif_common.check_lif_options`).
    Non-finite inputs (NaN or +-inf in ``x``) are outside the backends' common contract: their spikes agree, but the
    membrane after such a step may differ (``x = -inf`` with ``reset="zero"``: NaN here and on the CPU loop, which
    compute ``h - h * s``, ``-inf`` on Triton's ``h * (1 - s)``) and the gradients are NaN. The layers refuse them.

    Example:
        >>> x = torch.ones(5, 1, 2)
        >>> s, h = lif_torch(x, torch.tensor(0.5), torch.tensor(1.5))
        >>> s[:, 0, 0].tolist()
        [0.0, 1.0, 0.0, 1.0, 0.0]
        >>> lif_torch(x, 0.5, 1.5, max_spikes=1)[0][:, 0, 0].tolist()   # numbers for the parameters; one spike at most
        [0.0, 1.0, 0.0, 0.0, 0.0]
        >>> xg = torch.tensor([[[0.9, 0.7]]], requires_grad=True)   # one step, u = x - 1 = -0.1 and -0.3
        >>> lif_torch(xg, 0.5, 1.0, surrogate="fast_sigmoid")[0].sum().backward()
        >>> [round(g, 4) for g in xg.grad.flatten().tolist()]   # 1 / (alpha |u| + 1)^2, fast_sigmoid's own alpha
        [0.25, 0.0625]
    """
    refuse_forward_mode("LIF (backend='torch')", (x, beta, threshold))
    work = compute_dtype(x) if isinstance(x, torch.Tensor) else None
    beta, threshold, max_spikes = lif_params("lif_torch", x, beta, threshold, max_spikes, work)
    surrogate_param = surrogate_param_or_default("lif_torch", surrogate, surrogate_param, noise)
    surrogate, surrogate_param = check_lif_options("lif_torch", reset, surrogate, surrogate_param, noise, noise_scale)
    beta, threshold = beta.to(work), threshold.to(work)  # no-ops when they match
    opts = LIFOptions(reset, bool(detach_reset), max_spikes, surrogate, surrogate_param, noise,
                      float(noise_scale), int(seed), bool(sample), check_mask_p(mask_p), int(mask_seed))
    spikes, membrane, _ = LIFFunction.apply(x.to(work), beta, threshold, opts)
    return spikes.to(x.dtype), membrane.to(x.dtype)  # no-ops unless x is float16 / bfloat16


class LIFunction(torch.autograd.Function):
    """Leaky integrator ``h[t] = beta * h[t-1] + x[t]`` with a reverse-time backward (:class:`LIBackward`)."""

    @staticmethod
    @fixed_signature
    def forward(x, beta):
        out = torch.empty_like(x)
        h = x.new_zeros(x.shape[1:])
        with torch.no_grad():  # (as autograd runs a Function's forward; torch.export traces it with grad mode on)
            for t in range(x.shape[0]):
                h = torch.addcmul(x[t], h, beta, out=out[t])
        return out

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(output, inputs[1])

    @staticmethod
    def backward(ctx, grad_out):
        out, beta = saved = ctx.saved_tensors
        grad_x, g_beta = backward_runner(LIBackward, "LI", saved, (grad_out,))(ctx.needs_input_grad[1], grad_out, out, beta)
        return grad_x, (reduce_to(g_beta, beta.shape) if g_beta is not None else None)

    @staticmethod
    def vmap(info, in_dims, x, beta):
        return vmap_folded(LIFunction, info, in_dims, (x, beta), (TIME, PARAM), (TIME,))


class LIBackward(torch.autograd.Function):
    """The backward of :class:`LIFunction` as a Function (``torch.func`` runs it; differentiating it raises):
    ``(need_beta, grad_out, out, beta) -> (grad_x, grad_beta per element of a step or None)``."""

    @staticmethod
    @fixed_signature
    def forward(need_beta, grad_out, out, beta):
        grad_x = torch.empty_like(out)
        g = out.new_zeros(out.shape[1:])
        g_beta = out.new_zeros(out.shape[1:]) if need_beta else None
        for t in range(out.shape[0] - 1, -1, -1):
            g = torch.addcmul(grad_out[t], g, beta, out=grad_x[t])
            if g_beta is not None and t > 0:
                g_beta += g * out[t - 1]
        return grad_x, g_beta

    setup_context, backward = first_order_backward("LI")

    @staticmethod
    def vmap(info, in_dims, *args):
        return vmap_folded(LIBackward, info, in_dims, args, (None, TIME, TIME, PARAM), (TIME, STEP))


def li_torch(x: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
    """Non-spiking leaky integrator over ``x [T, B, ...]``; returns the membrane ``[T, B, ...]``.

    Example:
        >>> li_torch(torch.ones(3, 1, 1), torch.tensor(0.5))[:, 0, 0].tolist()
        [1.0, 1.5, 1.75]
    """
    refuse_forward_mode("LI", (x, beta))
    work = compute_dtype(x)  # float32 for half-precision input, as the LIF
    return LIFunction.apply(x.to(work), beta.to(work)).to(x.dtype)
