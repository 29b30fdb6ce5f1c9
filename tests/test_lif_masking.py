"""Spike masking fused into the LIF (``mask_p``): the reference semantics and the module."""
import pytest
import torch

import snnlab as sl
from lif_cases import make_inputs, run_lif
from snnlab.kernels.counter_rng import keep_mask, mask_key, seed_key, uniform_from_counter
from snnlab.kernels.lif_torch import lif_torch


def _composed(x, beta, thr, grad, mask_p, mask_seed, **kw):
    """The unmasked LIF followed by the keep mask as a separate multiplication (what SpikeMask does)."""
    x = x.clone().requires_grad_()
    beta, thr = beta.clone().requires_grad_(), thr.clone().requires_grad_()
    s, h = lif_torch(x, beta, thr, **kw)
    keep = keep_mask(0, s.shape, mask_key(mask_seed), mask_p)
    (s * keep * grad).sum().backward()
    return (s * keep).detach(), h, x.grad, beta.grad, thr.grad


@pytest.mark.parametrize("reset,max_spikes,noise", [("subtract", None, None), ("zero", 1, None),
                                                    ("subtract", 2, "gaussian"), ("zero", None, "logistic")])
def test_fused_mask_equals_lif_then_mask(reset, max_spikes, noise):
    # 150 steps of 2 x 2048: the reference backward runs in several time chunks
    x, beta, thr, grad = make_inputs((2, 2048), per_neuron=True, seed=4, steps=150)
    kw = dict(reset=reset, max_spikes=max_spikes)
    if noise:
        kw.update(noise=noise, noise_scale=0.4, seed=3)
    fused = run_lif(lif_torch, x, beta, thr, grad, mask_p=0.3, mask_seed=7, **kw)
    composed = _composed(x, beta, thr, grad, 0.3, 7, **kw)
    assert torch.equal(fused[0], composed[0])
    # the neuron fires and resets as without masking: the same membrane
    assert torch.equal(fused[1], composed[1])
    for a, b in zip(fused[2:], composed[2:]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_keep_mask_rate_seeds_and_independence_from_noise():
    shape = torch.Size([50, 4, 100])
    keep = keep_mask(0, shape, mask_key(0), 0.3)
    assert keep.shape == shape and set(keep.unique().tolist()) == {0.0, 1.0}
    assert abs(keep.mean().item() - 0.7) < 0.01
    assert torch.equal(keep, keep_mask(0, shape, mask_key(0), 0.3))
    assert not torch.equal(keep, keep_mask(0, shape, mask_key(1), 0.3))
    # a later window of the same stream
    assert torch.equal(keep[10:], keep_mask(10 * 400, torch.Size([40, 4, 100]), mask_key(0), 0.3))
    # the same seed gives other numbers for masking than for the noise
    assert mask_key(5) != seed_key(5)
    idx = torch.arange(20000)
    corr = torch.corrcoef(torch.stack([uniform_from_counter(idx, mask_key(5)), uniform_from_counter(idx, seed_key(5))]))
    assert abs(corr[0, 1].item()) < 0.03


def test_no_mask_at_zero_and_bad_mask_p():
    x, beta, thr, _ = make_inputs((2, 30), per_neuron=False, seed=1)
    assert torch.equal(lif_torch(x, beta, thr, mask_p=0.0, mask_seed=3)[0], lif_torch(x, beta, thr)[0])
    for bad in (-0.1, 1.0, float("nan"), True, "0.2"):
        with pytest.raises(ValueError, match="mask_p"):
            lif_torch(x, beta, thr, mask_p=bad)
        with pytest.raises(ValueError, match="mask_p"):
            sl.LIF(mask_p=bad)


def test_module_masks_in_training_only_unless_asked():
    x = torch.rand(60, 8, 50, generator=torch.Generator().manual_seed(0)) * 0.6
    plain = sl.LIF(tau_mem=5.0, backend="torch")
    masked = sl.LIF(tau_mem=5.0, mask_p=0.5, seed=1, backend="torch")
    full = plain(x)
    out = masked(x)
    assert torch.equal(out * full, out) and 0.4 < out.sum().item() / full.sum().item() < 0.6
    assert torch.equal(masked.eval()(x), full)  # eval: no masking
    at_inference = sl.LIF(tau_mem=5.0, mask_p=0.5, mask_at_inference=True, seed=1, backend="torch").eval()
    assert not torch.equal(at_inference(x), full)
    # seeded: the same masks from a fresh layer with the same seed, new masks call after call
    again = sl.LIF(tau_mem=5.0, mask_p=0.5, seed=1, backend="torch")
    first = again(x)
    assert torch.equal(first, out) and not torch.equal(again(x), first)
    assert "mask_p=0.5" in repr(masked)


def test_module_backends_agree_with_mask_and_noise():
    from snnlab.kernels.dispatch import cpu_kernel_usable

    if not cpu_kernel_usable():
        pytest.skip("compiled CPU kernel not available")
    x = torch.rand(40, 4, 30, generator=torch.Generator().manual_seed(2)) * 0.8
    results = []
    for backend in ("torch", "cpu"):
        layer = sl.LIF(tau_mem=5.0, noise="gaussian", noise_scale=0.3, mask_p=0.2, seed=4, learn_threshold=True,
                       backend=backend)
        xi = x.clone().requires_grad_()
        out = layer(xi)
        (out * torch.linspace(-1, 1, 30)).sum().backward()
        results.append((out.detach(), xi.grad, layer.threshold.grad))
    assert torch.equal(results[0][0], results[1][0])
    for a, b in zip(results[0][1:], results[1][1:]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_keep_cutoff_is_uniform_at_least_p_in_float32_on_every_backend():
    # p exactly on a drawn uniform keeps that element; the next float32 above drops it
    from snnlab.kernels.lif_cpu import cpu_kernel_available, lif_cpu

    key = mask_key(3)
    u = uniform_from_counter(torch.arange(4 * 50), key)
    k = int(torch.argmin((u - 0.3).abs()))
    on = float(u[k])
    above = float(torch.nextafter(u[k], torch.tensor(1.0)))
    for p, kept in ((on, 1.0), (above, 0.0)):
        assert keep_mask(0, torch.Size([4 * 50]), key, p)[k].item() == kept
        assert torch.equal(keep_mask(0, torch.Size([4 * 50]), key, p), (u >= torch.tensor(p)).float())
        # every neuron fires at every step (threshold below the input): the output is the keep mask itself
        x, beta, thr = torch.full((4, 1, 50), 2.0), torch.tensor(0.0), torch.tensor(1.0)
        backends = [lif_torch] + ([lif_cpu] if cpu_kernel_available() else [])
        for fn in backends:
            out = fn(x, beta, thr, mask_p=p, mask_seed=3)[0]
            assert torch.equal(out.reshape(-1), (u >= torch.tensor(p)).float()), fn.__name__


def test_draws_repeat_after_the_counter_period_and_the_lif_warns_before(monkeypatch):
    """Science audit: the 32-bit counter repeats one call's draws after 2**32 elements (documented limit)."""
    import warnings

    import snnlab.core.neurons as neurons
    from snnlab.kernels.counter_rng import COUNTER_PERIOD

    idx = torch.arange(5)
    assert torch.equal(uniform_from_counter(idx, seed_key(3)), uniform_from_counter(idx + COUNTER_PERIOD, seed_key(3)))
    monkeypatch.setattr(neurons, "COUNTER_PERIOD", 100)  # a call over more elements than the period
    x = torch.rand(10, 2, 6)                             # 120 > 100
    for kw in ({"noise": "gaussian"}, {"mask_p": 0.2}):
        with pytest.warns(RuntimeWarning, match="repeat every 100 elements"):
            sl.LIF(**kw).train()(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sl.LIF(noise="gaussian", mask_p=0.2).eval()(x)  # no draws in eval mode: nothing to warn about
        sl.LIF(noise="gaussian").train()(x[:8])         # 96 elements
