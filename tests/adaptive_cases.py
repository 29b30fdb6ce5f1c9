"""Inputs, option sets and test bodies shared by the tests of the adaptive LIF's kernels (fused PyTorch, compiled C,
Triton): the ``check_*`` functions run one test against a :class:`Backend`."""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

from snnlab.kernels.counter_rng import seed_key

NOISES = ("gaussian", "logistic")


def adaptive_inputs(shape, steps, per_neuron, seed=0, dtype=torch.float32):
    """``(x [steps, *shape], (beta, threshold, rho, strength), output gradient)`` on the CPU, drawn in float32 (``x``
    then cast to ``dtype``); the trace's decay and strength are drawn so that adaptation changes the spikes."""
    g = torch.Generator().manual_seed(seed)
    n = shape[-1]
    x = (torch.randn((steps,) + tuple(shape), generator=g) * 0.8 + 0.5).to(dtype)
    if per_neuron:
        params = (torch.rand(n, generator=g) * 0.5 + 0.4, torch.rand(n, generator=g) * 0.5 + 0.7,
                  torch.rand(n, generator=g) * 0.3 + 0.65, torch.rand(n, generator=g) * 0.6 + 0.1)
    else:
        params = tuple(torch.tensor(v) for v in (0.8, 0.9, 0.85, 0.4))
    grad = torch.randn((steps,) + tuple(shape), generator=g)
    return x, params, grad


def adaptive_options(reset, detach, max_spikes, surrogate, param, mask_p=0.0, sample=True):
    """The kernels' keyword arguments for one case of ``lif_cases.CASES`` (a noise name as the surrogate: a noisy
    neuron), with fixed noise and mask seeds."""
    kw = dict(reset=reset, detach_reset=detach, max_spikes=max_spikes, mask_p=mask_p, mask_seed=7, seed=3)
    if surrogate in NOISES:
        kw.update(noise=surrogate, noise_scale=param, sample=sample)
    else:
        kw.update(surrogate=surrogate, surrogate_param=param)
    return kw


class Backend(NamedTuple):
    """A fused adaptive-LIF kernel (compiled C, Triton) as the shared test bodies below run it against the PyTorch path.

    ``run(fused, x, params, grad, grad_params=True, sum_loss=False, **kw)``: forward and backward of ``sum(o * grad)``
    (or ``o.sum()``) through the kernel (``fused``) or :func:`snnlab.kernels.adaptive_lif.adaptive_lif`, returning
    ``(o, h, theta, [gradients of x, beta, threshold, rho, strength])`` on the CPU; ``assert_match(ref, got)``: the
    kernel's run matches the PyTorch path's; ``steps``: the length of the sequences.
    """

    run: Callable[..., tuple]
    assert_match: Callable[[tuple, tuple], None]
    steps: int


Run = tuple  # (o, h, theta, [gradients of x, beta, threshold, rho, strength]), as Backend.run returns it


def check_every_option(backend: Backend, reset, detach, max_spikes, surrogate, param, per_neuron, shape,
                       mask_p) -> tuple[Run, Run]:
    """One case of ``lif_cases.CASES`` with ``mask_p``: the kernel matches the PyTorch path, fires, respects the cap and
    (unless one spike is allowed) gets every gradient and fires differently without adaptation; ``(ref, got)``."""
    x, params, grad = adaptive_inputs(shape, backend.steps, per_neuron, seed=len(shape) + shape[-1] + int(detach))
    kw = adaptive_options(reset, detach, max_spikes, surrogate, param, mask_p)
    ref = backend.run(False, x, params, grad, **kw)
    got = backend.run(True, x, params, grad, **kw)
    backend.assert_match(ref, got)
    assert ref[0].sum() > 0 and got[3][0].abs().sum() > 0
    if max_spikes is not None:
        assert got[0].sum(0).max() <= max_spikes
    if max_spikes != 1:  # (one spike allowed: silent once the threshold has moved, so no trace gradient)
        assert all(g.abs().sum() > 0 for g in got[3])
        # the adaptation changes the spikes: the same neurons without it fire differently
        assert not torch.equal(got[0], backend.run(True, x, params[:3] + (params[3] * 0,), grad, **kw)[0])
    return ref, got


def check_noise_without_sampling(backend: Backend, noise: str) -> None:
    """Noise with ``sample=False``: the PyTorch path's results; the spikes of a neuron without noise, the gradient of
    the noise density's surrogate."""
    x, params, grad = adaptive_inputs((2, 37), backend.steps, per_neuron=True, seed=4)
    kw = dict(noise=noise, noise_scale=0.4, sample=False, seed=5)
    ref, got = backend.run(False, x, params, grad, **kw), backend.run(True, x, params, grad, **kw)
    backend.assert_match(ref, got)
    det = backend.run(True, x, params, grad)   # the same spikes as a neuron without noise; another surrogate
    assert torch.equal(got[0], det[0]) and not torch.allclose(got[3][0], det[3][0])


def check_noisy_spikes_for_each_seed(backend: Backend, noise: str, reset: str, max_spikes: int | None) -> None:
    """Noisy spikes identical to the PyTorch path's for seeds whose keys lie on both sides of 2**31; other seeds (and
    no noise) give other spikes."""
    x, params, grad = adaptive_inputs((2, 65), backend.steps, per_neuron=True, seed=11)
    seeds = [0, 1, 12345]
    assert any(seed_key(s) >= 2 ** 31 for s in seeds) and any(seed_key(s) < 2 ** 31 for s in seeds)
    spikes = {}
    for seed in seeds:
        kw = dict(noise=noise, noise_scale=0.4, reset=reset, max_spikes=max_spikes, seed=seed)
        got = backend.run(True, x, params, grad, **kw)
        backend.assert_match(backend.run(False, x, params, grad, **kw), got)
        spikes[seed] = got[0]
    assert not torch.equal(spikes[0], spikes[1]) and not torch.equal(spikes[0], spikes[12345])
    assert not torch.equal(spikes[0], backend.run(True, x, params, grad, reset=reset, max_spikes=max_spikes)[0])


def check_random_shapes_and_parameter_layouts(backend: Backend, caps: tuple[int | None, ...],
                                              max_steps: int) -> list[tuple[Run, Run]]:
    """Random step shapes and 1 to ``max_steps - 1`` steps, one case per ``max_spikes`` of ``caps`` (alternating
    per-neuron and scalar parameters, resets, masks 0 / 0.2 / 0.4), a broadcast ``[1, ..., N]`` decay summed back to
    its shape; the ``(ref, got)`` of each case."""
    g = torch.Generator().manual_seed(99)
    runs = []
    for i, cap in enumerate(caps):
        shape = tuple(int(n) for n in torch.randint(1, 9, (int(torch.randint(1, 4, (1,), generator=g)),),
                                                    generator=g))
        steps = int(torch.randint(1, max_steps, (1,), generator=g))
        x, params, grad = adaptive_inputs(shape, steps, per_neuron=i % 2 == 0, seed=i)
        if len(shape) > 1:   # broadcast shapes [1, ..., N] are summed back to their own shape
            params = (params[0].expand(shape[-1]).reshape((1,) * (len(shape) - 1) + (shape[-1],)),) + params[1:]
        kw = dict(reset=("subtract", "zero")[i % 2], max_spikes=cap, mask_p=0.2 * (i % 3))
        ref, got = backend.run(False, x, params, grad, **kw), backend.run(True, x, params, grad, **kw)
        backend.assert_match(ref, got)
        assert got[3][1].shape == params[0].shape
        runs.append((ref, got))
    return runs


def check_sum_loss_gradient_of_one_value(backend: Backend, max_spikes: int | None, mask_p: float) -> None:
    """``o.sum()`` hands the backward a gradient expanded from one number (stride 0), read as that number: the PyTorch
    path's gradients."""
    x, params, grad = adaptive_inputs((2, 37), backend.steps, per_neuron=True, seed=21)
    kw = dict(reset="zero", max_spikes=max_spikes, mask_p=mask_p)
    backend.assert_match(backend.run(False, x, params, grad, sum_loss=True, **kw),
                         backend.run(True, x, params, grad, sum_loss=True, **kw))


def check_one_step_and_empty_sequence(backend: Backend) -> tuple[Run, Run]:
    """One step (no rho gradient: the trace is never read, as the PyTorch path) and no step (empty outputs, zero
    gradients, also with a cap and masks); the one step's ``(ref, got)``."""
    x, params, grad = adaptive_inputs((2, 37), 1, per_neuron=True, seed=5)
    ref, got = backend.run(False, x, params, grad, max_spikes=1), backend.run(True, x, params, grad, max_spikes=1)
    backend.assert_match(ref, got)
    assert got[3][3] is None
    x, params, grad = adaptive_inputs((2, 37), 0, per_neuron=True, seed=5)
    for kw in (dict(), dict(max_spikes=1, mask_p=0.3)):
        ref0, got0 = backend.run(False, x, params, grad, **kw), backend.run(True, x, params, grad, **kw)
        backend.assert_match(ref0, got0)
        assert got0[0].shape == (0, 2, 37) and all(g is not None and not g.any() for g in got0[3])
    return ref, got
