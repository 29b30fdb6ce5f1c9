"""Inputs, option cases and comparisons shared by the tests of the fused LIF kernels (Triton, compiled CPU)."""
from __future__ import annotations

import torch

T = 6


def make_inputs(shape, per_neuron, seed=0, dtype=torch.float32, steps=T, device="cpu"):
    """Random ``(x [steps, *shape], beta, threshold, output gradient)`` on ``device``; per-neuron or scalar
    parameters. The values depend on the seed only (drawn on the CPU), not on the device."""
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn((steps,) + tuple(shape), generator=g) * 1.2 + 0.3).to(dtype)
    n = shape[-1]
    if per_neuron:
        beta = torch.rand(n, generator=g) * 0.5 + 0.4
        thr = torch.rand(n, generator=g) * 0.6 + 0.6
    else:
        beta, thr = torch.tensor(0.8), torch.tensor(0.9)
    grad = torch.randn((steps,) + tuple(shape), generator=g)
    return tuple(t.to(device) for t in (x, beta, thr, grad))


def run_lif(fn, x, beta, thr, grad, grad_params=True, **kw):
    """Forward ``fn`` and backward ``sum(spikes * grad)``; returns spikes, membrane and the three gradients."""
    x = x.clone().requires_grad_()
    beta = beta.clone().requires_grad_(grad_params)
    thr = thr.clone().requires_grad_(grad_params)
    s, h = fn(x, beta, thr, **kw)
    (s * grad.to(s.dtype)).sum().backward()
    return s.detach(), h.detach(), x.grad, beta.grad, thr.grad


def assert_sum_loss_grads_match(ref_fn, fn, x, beta, thr, **kw):
    """``spikes.sum()`` as the loss (its gradient is one value expanded, which the fused kernels read once):
    the input gradients of ``fn`` and ``ref_fn`` agree within float32 tolerance."""
    xs = [x.clone().requires_grad_() for _ in range(2)]
    for f, xi in zip((ref_fn, fn), xs):
        f(xi, beta, thr, **kw)[0].sum().backward()
    torch.testing.assert_close(xs[1].grad, xs[0].grad, atol=1e-5, rtol=1e-4)


def assert_lif_matches(ref, out, atol=1e-5, rtol=1e-4):
    """Spikes identical; membrane and gradients within float32 tolerance (parameter sums 10x looser)."""
    s_r, h_r, gx_r, gb_r, gt_r = ref
    s, h, gx, gb, gt = out
    assert torch.equal(s, s_r)
    torch.testing.assert_close(h, h_r, atol=atol, rtol=rtol)
    torch.testing.assert_close(gx, gx_r, atol=atol, rtol=rtol)
    for a, b in ((gb, gb_r), (gt, gt_r)):
        if b is None:
            assert a is None
        else:
            assert a.shape == b.shape
            torch.testing.assert_close(a, b, atol=atol * 10, rtol=rtol * 10)


# every value of each option appears; step sizes that are not multiples of a block (M = 74, 130, 37)
CASES = [
    # reset, detach_reset, max_spikes, surrogate, param, per_neuron, step shape
    ("subtract", False, None, "atan", 2.0, False, (2, 37)),
    ("subtract", True, 1, "fast_sigmoid", 3.0, True, (2, 65)),
    ("subtract", False, 2, "triangle", 1.0, True, (37,)),
    ("subtract", True, None, "sigmoid", 4.0, True, (2, 37)),
    ("subtract", False, 1, "gaussian", 0.5, False, (2, 65)),
    ("subtract", True, 2, "logistic", 0.3, True, (2, 37)),
    ("zero", False, None, "sigmoid", 4.0, True, (2, 65)),
    ("zero", True, 1, "atan", 2.0, False, (2, 37)),
    ("zero", False, 2, "fast_sigmoid", 3.0, True, (2, 37)),
    ("zero", True, None, "triangle", 1.0, True, (37,)),
    ("zero", False, 1, "logistic", 0.3, True, (2, 65)),
    ("zero", True, 2, "gaussian", 0.5, False, (2, 37)),
]


# spike masking, fused into the kernels: (reset, max_spikes, noise, step shape); masked spikes with
# and without noise (the Triton backward recomputes the neuron's own spikes or reads them back)
MASK_CASES = [
    ("subtract", None, None, (2, 37)),
    ("zero", 1, None, (2, 65)),
    ("subtract", 2, "gaussian", (37,)),
    ("zero", None, "logistic", (2, 37)),
]


def mask_kwargs(reset, max_spikes, noise, mask_p=0.4, mask_seed=5):
    """LIF keyword arguments of one :data:`MASK_CASES` row."""
    kw = dict(reset=reset, max_spikes=max_spikes, mask_p=mask_p, mask_seed=mask_seed)
    if noise is not None:
        kw.update(noise=noise, noise_scale=0.4, seed=9)
    return kw
