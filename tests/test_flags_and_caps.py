"""Boolean options take True / False only (not any truthy value), and ``max_spikes`` takes NumPy integers.

A string such as ``"no"`` used to be taken as True silently; now it is a ``TypeError`` naming the class and
the option. ``max_spikes=np.int64(2)`` used to be refused by the functional kernels with the confusing
"must be None or an integer >= 0, got 2".
"""
from __future__ import annotations

from triton_device import DEVICE, triton_kernels_ready  # noqa: I001  (before triton: TRITON_INTERPRET on the CPU)

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import snnlab as sl  # noqa: E402
from snnlab.core.delays import DelayedLinear  # noqa: E402
from snnlab.experiments.store import RunStore  # noqa: E402
from snnlab.kernels.adaptive_lif import adaptive_lif  # noqa: E402
from snnlab.kernels.lif_common import check_cap_and_params, check_max_spikes, lif_params  # noqa: E402
from snnlab.kernels.lif_cpu import cpu_kernel_available  # noqa: E402
from snnlab.kernels.lif_torch import lif_torch  # noqa: E402
from snnlab.kernels.recurrent_lif import recurrent_lif  # noqa: E402
from snnlab.training.trainer import Trainer  # noqa: E402

_CPU = pytest.param("cpu", marks=pytest.mark.skipif(not cpu_kernel_available(), reason="CPU kernel not built"))
_TRITON = pytest.param("triton", marks=pytest.mark.skipif(
    not triton_kernels_ready("snnlab.kernels.lif_triton")[0], reason="Triton kernels not available"))

# ---------------------------------------------------------------- flags


@pytest.mark.parametrize("bad", ["no", None, 0.5, 2])
def test_spike_mask_flag_refuses_non_bools(bad):
    with pytest.raises(TypeError, match=r"SpikeMask: mask_at_inference must be True or False"):
        sl.SpikeMask(0.5, mask_at_inference=bad)


def test_spike_mask_flag_checked_when_set_later():
    mask = sl.SpikeMask(0.5, mask_at_inference=np.bool_(True), seed=0)
    assert mask.mask_at_inference is True
    mask.mask_at_inference = 0
    assert mask.mask_at_inference is False
    with pytest.raises(TypeError, match=r"SpikeMask: mask_at_inference must be True or False, got str 'no'"):
        mask.mask_at_inference = "no"
    assert mask.mask_at_inference is False  # unchanged by the refused assignment
    mask.eval()
    x = torch.ones(4, 2, 3)
    assert torch.equal(mask(x), x)  # off at inference


def _net() -> torch.nn.Module:
    return sl.Sequential(torch.nn.Linear(3, 4), sl.LIF(backend="torch"))


@pytest.mark.parametrize("option", ["membrane", "to_cpu"])
def test_monitor_flags_refuse_non_bools(option):
    with pytest.raises(TypeError, match=rf"Monitor: {option} must be True or False, got str 'no'"):
        sl.Monitor(_net(), **{option: "no"})


def test_monitor_flags_checked_when_set_later():
    mon = sl.Monitor(_net(), membrane=False)
    assert mon.keep_membrane is False and mon.to_cpu is False
    with pytest.raises(TypeError, match=r"Monitor: to_cpu must be True or False"):
        mon.to_cpu = "yes"
    with pytest.raises(TypeError, match=r"Monitor: keep_membrane must be True or False"):
        mon.keep_membrane = "no"
    mon.to_cpu = 1
    assert mon.to_cpu is True


def test_monitor_membrane_false_still_records_spikes_only():
    net = _net()
    with sl.Monitor(net, membrane=np.bool_(False)) as mon:
        net(torch.rand(5, 2, 3))
    assert mon.spikes["1"].shape == (5, 2, 4) and mon.membrane == {}


@pytest.mark.parametrize("option", ["learn_adaptation", "recurrent"])
def test_alif_flags_refuse_non_bools(option):
    with pytest.raises(TypeError, match=rf"ALIF: {option} must be True or False, got str 'no'"):
        sl.ALIF(n_neurons=3, **{option: "no"})


def test_alif_learn_adaptation_takes_numpy_bools():
    layer = sl.ALIF(n_neurons=3, learn_adaptation=np.bool_(True))
    assert layer.learn_adaptation is True and isinstance(layer.adaptation, torch.nn.Parameter)


def test_delayed_linear_learn_delays_refuses_non_bools():
    with pytest.raises(TypeError, match=r"DelayedLinear: learn_delays must be True or False, got str 'no'"):
        DelayedLinear(3, 2, 4, learn_delays="no")
    layer = DelayedLinear(3, 2, 4, learn_delays=0, seed=0)
    assert layer.learn_delays is False and layer.rounded


@pytest.mark.parametrize("option", ["overwrite", "progress"])
def test_trainer_flags_refuse_non_bools(option, tmp_path):
    with pytest.raises(TypeError, match=rf"Trainer: {option} must be True or False, got str 'no'"):
        Trainer({"epochs": 1}, run_dir=tmp_path / "run", **{option: "no"})
    assert not (tmp_path / "run").exists()  # refused before anything is written


@pytest.mark.parametrize("option", ["follow_file", "read_only"])
def test_run_store_flags_refuse_non_bools(option, tmp_path):
    path = tmp_path / "runs.sqlite"
    with pytest.raises(TypeError, match=rf"RunStore: {option} must be True or False, got str 'no'"):
        RunStore(path, **{option: "no"})
    assert not path.exists()


def test_run_store_read_only_takes_numpy_bools(tmp_path):
    path = tmp_path / "runs.sqlite"
    RunStore(path).close()
    store = RunStore(path, read_only=np.bool_(True), follow_file=np.bool_(False))
    try:
        assert store.read_only is True and store.follow_file is False
    finally:
        store.close()
    with pytest.raises(FileNotFoundError):  # read_only=1 is True: the file must exist
        RunStore(tmp_path / "missing.sqlite", read_only=1)


# ---------------------------------------------------------------- max_spikes


@pytest.mark.parametrize("cap", [np.int64(2), np.int32(2), np.uint8(2)])
def test_kernel_checks_take_numpy_integers(cap):
    assert check_max_spikes("f", cap) == 2 and type(check_max_spikes("f", cap)) is int
    assert check_cap_and_params("f", torch.zeros(3, 2, 4), cap, {"beta": torch.zeros(4)}) == 2
    beta, thr, checked = lif_params("f", torch.zeros(3, 2, 4), 0.5, 1.0, cap, torch.float32)
    assert float(beta) == 0.5 and float(thr) == 1.0 and checked == 2 and type(checked) is int


@pytest.mark.parametrize("bad", [-1, np.int64(-1), 1.5, True, np.bool_(True), "2"])
def test_kernel_checks_refuse_the_rest(bad):
    with pytest.raises(ValueError, match=r"f: max_spikes must be None or an integer >= 0, got "):
        check_max_spikes("f", bad)


def _lif_kernel(backend):
    if backend == "torch":
        return lif_torch
    if backend == "cpu":
        from snnlab.kernels.lif_cpu import lif_cpu
        return lif_cpu
    from snnlab.kernels.lif_triton import lif_triton
    return lif_triton


def _adaptive_kernel(backend):
    if backend == "cpu":
        from snnlab.kernels.adaptive_lif_cpu import adaptive_lif_cpu
        return adaptive_lif_cpu
    from snnlab.kernels.adaptive_lif_triton import adaptive_lif_triton
    return adaptive_lif_triton


@pytest.mark.parametrize("backend", ["torch", _CPU, _TRITON])
def test_every_lif_kernel_takes_numpy_cap_as_the_int(backend):
    device = DEVICE if backend == "triton" else torch.device("cpu")
    x = torch.full((6, 1, 3), 2.0, device=device, requires_grad=True)
    beta, thr = torch.tensor(0.5, device=device), torch.tensor(1.0, device=device)
    fn = _lif_kernel(backend)
    got = fn(x, beta, thr, max_spikes=np.int64(2))[0]
    want = fn(x, beta, thr, max_spikes=2)[0]
    assert torch.equal(got, want) and got.sum(0).max().item() == 2.0
    g_got, = torch.autograd.grad(got.sum(), x)
    g_want, = torch.autograd.grad(want.sum(), x)
    assert torch.equal(g_got, g_want)


@pytest.mark.parametrize("backend", [_CPU, pytest.param("triton", marks=pytest.mark.skipif(
    not triton_kernels_ready("snnlab.kernels.adaptive_lif_triton")[0], reason="Triton kernels not available"))])
def test_fused_adaptive_kernels_take_numpy_cap(backend):
    device = DEVICE if backend == "triton" else torch.device("cpu")
    x = torch.full((6, 1, 3), 2.0, device=device)
    params = [torch.tensor(v, device=device) for v in (0.5, 1.0, 0.9, 0.0)]  # beta, threshold, rho, strength
    out = _adaptive_kernel(backend)(x, *params, max_spikes=np.int64(2))[0]
    assert out.sum(0).max().item() == 2.0


def test_adaptive_lif_takes_numpy_cap():
    x = torch.ones(6, 1, 2)
    one = torch.tensor(1.0)
    out, _, _ = adaptive_lif(x, None, torch.tensor(0.5), torch.tensor(0.5), one * 0.9, one * 0.0,
                             max_spikes=np.int64(2))
    assert out.sum(0).tolist() == [[2.0, 2.0]]
    with pytest.raises(ValueError, match=r"adaptive_lif: max_spikes must be None or an integer >= 0, got -1"):
        adaptive_lif(x, None, torch.tensor(0.5), torch.tensor(0.5), one, one, max_spikes=-1)


def test_recurrent_lif_checks_its_cap():
    x = torch.ones(6, 1, 2)
    w = torch.zeros(2, 2)
    out, _ = recurrent_lif(x, w, torch.tensor(0.5), torch.tensor(0.5), max_spikes=np.int64(2))
    assert out.sum(0).tolist() == [[2.0, 2.0]]
    for bad in (-1, 1.5, True):  # were taken: -1 silenced the neuron, 1.5 allowed 2 spikes
        with pytest.raises(ValueError, match=r"recurrent_lif: max_spikes must be None or an integer >= 0"):
            recurrent_lif(x, w, torch.tensor(0.5), torch.tensor(0.5), max_spikes=bad)


def test_lif_layer_stores_a_plain_int_cap():
    layer = sl.LIF(max_spikes=np.int64(2), backend="torch")
    assert layer.max_spikes == 2 and type(layer.max_spikes) is int
    layer.max_spikes = np.int32(3)
    assert type(layer.max_spikes) is int
    assert layer(torch.ones(8, 1, 2)).sum(0).tolist() == [[3.0, 3.0]]
