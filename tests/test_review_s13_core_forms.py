"""Review s13 (core flags, max_spikes, forms, widgets): regressions found by an attacking review."""
import numpy as np
import pytest
import torch

import snnlab as sl
from snnlab.kernels.adaptive_lif import adaptive_lif
from snnlab.kernels.lif_common import check_max_spikes
from snnlab.kernels.lif_cpu import cpu_kernel_available
from snnlab.kernels.recurrent_lif import recurrent_lif


def _raster_explorer():
    """The widget (only its tests need ipywidgets: the cap tests run without it)."""
    pytest.importorskip("ipywidgets")
    from snnlab.widgets.raster_explorer import RasterExplorer
    return RasterExplorer


def _net():
    return sl.Sequential(torch.nn.Linear(4, 8), sl.LIF())


@pytest.mark.parametrize("labels", [torch.tensor([[1], [2], [0]]), torch.tensor([[[1]], [[2]], [[0]]])])
def test_raster_explorer_column_labels_get_a_hint_that_keeps_them(labels):
    RasterExplorer = _raster_explorer()
    # [B, 1] labels are refused (one scalar per sample is shown), and the hint must not be argmax(-1): that turns a
    # column of labels into zeros, which the explorer would then show without complaint
    x = torch.rand(10, 3, 4) * 3
    with pytest.raises(ValueError, match=r"labels must hold one scalar per sample") as info:
        RasterExplorer(_net(), (x, labels))
    assert "argmax" not in str(info.value) and "labels.reshape(-1)" in str(info.value)
    assert RasterExplorer(_net(), (x, labels.reshape(-1))).labels.tolist() == [1, 2, 0]  # the hint works


def test_raster_explorer_one_hot_labels_keep_the_argmax_hint():
    RasterExplorer = _raster_explorer()
    with pytest.raises(ValueError, match=r"got shape \(3, 3\) \(for one-hot labels pass labels.argmax\(-1\)\)"):
        RasterExplorer(_net(), (torch.rand(10, 3, 4) * 3, torch.eye(3)))


# ------------------------------------------------------------------ max_spikes too large for a tensor comparison
@pytest.mark.parametrize("make", [lambda cap: sl.LIF(beta=0.5, max_spikes=cap, backend="torch"),
                                  lambda cap: sl.ALIF(beta=0.5, max_spikes=cap, backend="torch"),
                                  lambda cap: sl.ALIF(beta=0.5, max_spikes=cap, n_neurons=3, recurrent=True),
                                  lambda cap: sl.RecurrentLIF(3, beta=0.5, max_spikes=cap)])
@pytest.mark.parametrize("cap", [2**70, np.uint64(2**63)])
def test_a_cap_past_int64_computes_as_no_cap(make, cap):
    # the layers take any integer >= 1; one that no int64 holds overflowed torch.lt in the PyTorch kernels
    torch.manual_seed(0)
    x = torch.randn(6, 2, 3) * 2
    layer, free = make(cap), make(None)
    free.load_state_dict(layer.state_dict())
    assert torch.equal(layer(x), free(x))


@pytest.mark.parametrize("cap", [2**70, np.uint64(2**63)])
def test_the_adaptive_and_recurrent_kernels_take_a_cap_past_int64(cap):
    torch.manual_seed(0)
    x, w = torch.randn(6, 2, 3) * 2, torch.randn(3, 3) * 0.1
    b, t = torch.tensor(0.5), torch.tensor(1.0)
    assert torch.equal(recurrent_lif(x, w, b, t, max_spikes=cap)[0], recurrent_lif(x, w, b, t)[0])
    rho, strength = torch.tensor(0.9), torch.tensor(0.2)
    assert torch.equal(adaptive_lif(x, w, b, t, rho, strength, max_spikes=cap)[0],
                       adaptive_lif(x, w, b, t, rho, strength)[0])
    assert check_max_spikes("f", cap) == 2**62 and check_max_spikes("f", 7) == 7  # the ceiling, a plain int


@pytest.mark.parametrize("kernel", ["lif_torch", pytest.param(
    "lif_cpu", marks=pytest.mark.skipif(not cpu_kernel_available(), reason="CPU kernel not built"))])
def test_the_lif_kernels_use_the_checked_cap(kernel):
    """lif_params checked max_spikes and the kernels then used the raw argument: a NumPy uint64 failed with an
    unclear TypeError in the options, and 2**70 overflowed."""
    import importlib
    fn = getattr(importlib.import_module(f"snnlab.kernels.{kernel}"), kernel)
    x = torch.full((6, 1, 3), 2.0)
    capped = fn(x, 0.5, 1.0, max_spikes=np.uint64(2))[0]
    assert capped.sum(0).tolist() == [[2.0, 2.0, 2.0]]
    free = fn(x, 0.5, 1.0, max_spikes=2 ** 70)[0]
    torch.testing.assert_close(free, fn(x, 0.5, 1.0)[0])
