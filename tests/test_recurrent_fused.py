"""The fused RecurrentLIF and the SynOps counter's event sums, checked without timing: the event sums of ``layer_ops``
(per step and sample in the input's dtype first) stay exact, and the no-grad forward of the fused layer (which
keeps one step of the membrane) gives what the recording one does."""
import pytest
import torch

import snnlab as sl
from snnlab.kernels.recurrent_lif import recurrent_lif
from snnlab.metrics.synops import layer_ops


def test_layer_ops_event_sums_stay_exact_past_float32_rows():
    x = torch.zeros(3, 2, 2, 4)
    x[0, 0, 0, 0] = 2.0 ** 24          # one row past float32's exact integers: summed again in float64
    x[0, 0, 1, 2] = 1.0
    x[2, 0, 0, 1] = 3.0
    x[1, 1] = 1.0                       # sample 1: 8 events
    acs, macs, binary, events = layer_ops(x, 5)
    assert events == 2.0 ** 24 + 4 + 8 and acs == events * 5 and macs == 0 and binary
    y = torch.rand(4, 3, 6) * 2         # analog samples: MACs only, whatever their sums
    assert layer_ops(y, 5) == (0.0, 3 * 4 * 6 * 5.0, False, 0.0)
    for empty in (torch.zeros(0, 2, 3), torch.zeros(3, 0, 3), torch.zeros(3, 2, 0)):
        assert layer_ops(empty, 2) == (0.0, 0.0, True, 0.0)
    assert layer_ops(torch.ones(4, 5), 2) == (40.0, 0.0, True, 20.0)  # [T, F]: one sample
    half = torch.ones(5, 2, 3, dtype=torch.float16)
    assert layer_ops(half, 2) == (60.0, 0.0, True, 30.0)


@pytest.mark.parametrize("mask_p", [0.0, 0.3])
def test_the_no_grad_forward_keeps_only_the_last_membrane(mask_p):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(20, 3, 2, 7, generator=g) * 1.5
    w = torch.randn(7, 7, generator=g) * 0.5
    beta, thr = torch.full((7,), 0.8), torch.full((7,), 0.9)
    kw = dict(mask_p=mask_p, mask_seed=3, max_spikes=4)
    o_full, h_full = recurrent_lif(x, w, beta, thr, **kw)
    with torch.no_grad():
        o, h = recurrent_lif(x, w, beta, thr, keep_membrane=False, **kw)
        o_kept, h_kept = recurrent_lif(x, w, beta, thr, keep_membrane=True, **kw)
    assert o_full.sum() > 0 and torch.equal(o, o_full) and torch.equal(o_kept, o_full)
    assert h.shape == (1, 3, 2, 7) and torch.equal(h, h_full[-1:]) and torch.equal(h_kept, h_full)
    xg = x.clone().requires_grad_()  # a gradient to record: the whole membrane, whatever keep_membrane says
    assert recurrent_lif(xg, w, beta, thr, keep_membrane=False, **kw)[1].shape == x.shape
    layer = sl.RecurrentLIF(7, mask_p=mask_p, seed=1).eval()
    with torch.no_grad(), sl.Monitor(layer) as mon:
        out = layer(x)
    assert mon.membrane[""].shape == x.shape and torch.equal(layer(x), out)
    assert recurrent_lif(x[:0], w, beta, thr, keep_membrane=False)[1].shape == (0, 3, 2, 7)
