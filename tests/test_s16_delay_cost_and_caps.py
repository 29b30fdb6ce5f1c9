"""DelayedLinear's method choice (time and memory of every path), the reachable taps only, and the float32 spike cap."""
import pytest
import torch

import snnlab as sl
from snnlab.core import delays as D
from snnlab.kernels.lif_common import MAX_EXACT_SPIKE_COUNT, check_cap_and_params, spike_cap_for_call


def _choice(T, B, IN, OUT, K):
    return D._choose_method(T, K, torch.zeros(T, B, IN), OUT * IN * K, OUT)


@pytest.mark.parametrize("shape", [
    (3000, 1, 140, 256, 25),   # SHD layer, batch 1, long sequence: FFT 2.7 GB / 33 s vs taps 0.09 GB / 1.1 s
    (1000, 2, 700, 256, 25),   # 4.5 GB / 65 s vs 0.11 GB / 3.1 s
    (100, 64, 700, 512, 25),   # kernel over conv1d's limit: 1.21 GB vs 0.34 GB
    (100, 1, 2048, 2048, 25),  # 13.5 GB vs 2.2 GB
])
def test_auto_avoids_the_kernel_spectrum_where_it_dominates(shape):
    assert _choice(*shape) == "taps"


def test_shd_training_configuration_keeps_its_choice():
    assert _choice(100, 256, 140, 256, 25) == "fft"


def test_cost_model_counts_the_spectrum_whatever_the_batch():
    small = D._method_costs(3000, 25, 1, 140, 256, conv1d=False)["fft"][1]
    assert small >= 12 * (D._fast_fft_size(3024) // 2 + 1) * 140 * 256  # kf + k2 with gradients


def test_memory_guard(monkeypatch):
    # the FFT made slightly faster but far heavier: the lighter taps win
    monkeypatch.setattr(D, "_method_costs", lambda *a: {"fft": (1.0, 1e9), "taps": (1.5, 1e6)})
    assert _choice(100, 4, 8, 8, 5) == "taps"
    monkeypatch.setattr(D, "_method_costs", lambda *a: {"fft": (1.0, 1e9), "taps": (5.0, 1e6)})
    assert _choice(100, 4, 8, 8, 5) == "fft"  # far faster: kept


@pytest.mark.parametrize("method", ["taps", "fft"])
def test_short_sequence_uses_reachable_taps_with_exact_gradients(method):
    torch.manual_seed(0)
    T, K = 3, 9
    w = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    # some positions with their Gaussian mass on unreachable taps (>= T)
    p = torch.tensor([[0.5, 7.0, 8.0, 2.2, 5.5]] * 4, dtype=torch.float64, requires_grad=True)
    x = torch.randn(T, 2, 5, dtype=torch.float64)
    y = D.delayed_linear(x, w, p, 1.3, K, method=method)
    ct = torch.randn(T, 2, 4, dtype=torch.float64)
    gw, gp = torch.autograd.grad((y * ct).sum(), (w, p))
    ref = D.delayed_linear_reference(x, w, p, 1.3, K)
    gw_r, gp_r = torch.autograd.grad((ref * ct).sum(), (w, p))
    torch.testing.assert_close(y, ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(gw, gw_r, rtol=0, atol=1e-12)
    torch.testing.assert_close(gp, gp_r, rtol=0, atol=1e-12)
    assert gp[0, 2].abs() > 0  # mass mostly beyond T, still a gradient through the reachable taps


def test_short_sequence_builds_only_reachable_taps(monkeypatch):
    seen = []
    real = D._conv_taps
    monkeypatch.setattr(D, "_conv_taps", lambda x, kernel, **kw: seen.append(kernel.shape[-1]) or real(x, kernel, **kw))
    layer = sl.DelayedLinear(6, 3, max_delay=20, seed=0, backend="torch")
    layer(torch.rand(2, 1, 6)).sum().backward()
    assert seen == [2]


def test_spike_cap_resolution():
    assert spike_cap_for_call("LIF", None, 10) is None
    assert spike_cap_for_call("LIF", 10, 10) is None  # cannot bind
    assert spike_cap_for_call("LIF", 17_000_000, 17_000_000) is None
    assert spike_cap_for_call("LIF", 2**24, 2**25) == 2**24
    assert spike_cap_for_call("LIF", 4, 10) == 4
    with pytest.raises(ValueError, match=r"LIF: max_spikes=17000000 with T=20000000.*float32"):
        spike_cap_for_call("LIF", 17_000_000, 20_000_000)
    assert MAX_EXACT_SPIKE_COUNT == 2**24


def test_shared_check_refuses_a_float32_unreachable_cap():
    x = torch.zeros(1, 1)  # T is all the check reads
    with pytest.raises(ValueError, match="lif_cpu: max_spikes=16777217"):
        check_cap_and_params("lif_cpu", x.expand(2**24 + 5, 1), 2**24 + 1, {})
    assert check_cap_and_params("lif_cpu", x.expand(2, 1), 5, {}) is None


@pytest.mark.parametrize("cls", [sl.LIF, sl.ALIF])
def test_layers_refuse_and_name_themselves(cls, monkeypatch):
    layer = cls(max_spikes=2**24 + 1)
    x = torch.zeros(1, 1, 1).expand(2**24 + 2, 1, 1)
    with pytest.raises(ValueError, match=rf"{cls.__name__}: max_spikes=16777217 with T=16777218"):
        layer(x)


@pytest.mark.parametrize("backend", ["torch", "cpu"])
def test_cap_at_or_above_T_is_no_cap(backend):
    x = torch.rand(12, 3, 4) * 3
    a = sl.LIF(max_spikes=12, backend=backend)(x)
    b = sl.LIF(max_spikes=None, backend=backend)(x)
    assert torch.equal(a, b) and a.sum() > 12 * 0  # fires


def test_recurrent_lif_names_itself_when_a_spike_cap_cannot_be_honoured():
    import snnlab as sl
    from unittest import mock

    layer = sl.RecurrentLIF(2, max_spikes=2**24 + 1, backend="torch")
    x = torch.zeros(1, 1, 2).expand(2**24 + 2, 1, 2)  # (a view: no memory; refused before any step runs)
    with mock.patch("snnlab.kernels.recurrent_lif._forward_loop", side_effect=AssertionError("ran")):
        with pytest.raises(ValueError, match=r"^RecurrentLIF: max_spikes=16777217 with T=16777218 steps"):
            layer(x)
