"""Surrogate formulas, the registry, SpikeMask, Sequential and Monitor."""
import math

import pytest
import torch

import snnlab as sl
from snnlab.kernels.surrogate_math import noise_cdf


def test_registry_lists_every_surrogate_with_descriptions():
    names = sl.surrogates.available()
    assert set(names) >= {"atan", "fast_sigmoid", "triangle", "sigmoid", "gaussian", "logistic"}
    assert all(isinstance(d, str) and d for d in sl.surrogates.describe().values())


@pytest.mark.parametrize("name,param,value_at_0", [
    ("atan", 2.0, 1.0), ("fast_sigmoid", 25.0, 1.0), ("triangle", 2.0, 2.0), ("sigmoid", 4.0, 1.0),
    ("gaussian", 0.5, 1 / (0.5 * math.sqrt(2 * math.pi))), ("logistic", 0.5, 0.5),
])
def test_surrogate_peak_values(name, param, value_at_0):
    sg = sl.surrogates.get(name, alpha=param, sigma=param)
    assert sg.grad(torch.tensor(0.0)).item() == pytest.approx(value_at_0, rel=1e-6)
    # symmetric, peaked at 0, decaying
    u = torch.tensor([0.3, -0.3, 1.0])
    g = sg.grad(u)
    assert g[0] == pytest.approx(g[1].item()) and g[0] >= g[2] and g[0] < value_at_0


@pytest.mark.parametrize("name", ["atan", "triangle", "sigmoid", "gaussian", "logistic"])
def test_surrogates_integrate_to_one(name):
    # A proper surrogate of the Heaviside step has unit area (fast_sigmoid has area 2/alpha).
    u = torch.linspace(-200, 200, 2_000_001, dtype=torch.float64)
    area = torch.trapezoid(sl.surrogates.get(name).grad(u), u).item()
    assert area == pytest.approx(1.0, abs=2e-2 if name == "atan" else 1e-4)


@pytest.mark.parametrize("name", ["gaussian", "logistic"])
def test_noise_surrogate_is_derivative_of_noise_cdf(name):
    u = torch.linspace(-2, 2, 41, dtype=torch.float64, requires_grad=True)
    noise_cdf(name, u, 0.4).sum().backward()
    torch.testing.assert_close(u.grad, sl.surrogates.get(name, sigma=0.4).grad(u.detach()))


def test_surrogate_errors():
    with pytest.raises(ValueError, match="unknown surrogate"):
        sl.surrogates.get("nope")
    with pytest.raises(TypeError):
        sl.surrogates.get(3)
    with pytest.raises(ValueError, match="> 0"):
        sl.surrogates.ATan(alpha=-1)
    assert sl.LIF(surrogate=sl.surrogates.Triangle(0.5)).surrogate.param == 0.5


def test_spike_mask_drops_with_probability_p_unscaled_and_only_in_training():
    s = torch.ones(200, 4, 50)
    mask = sl.SpikeMask(0.3, seed=0)
    out = mask(s)
    assert set(out.unique().tolist()) <= {0.0, 1.0}
    assert out.mean().item() == pytest.approx(0.7, abs=0.01)
    mask.eval()
    assert torch.equal(mask(s), s)
    mask.mask_at_inference = True
    assert mask(s).mean().item() == pytest.approx(0.7, abs=0.01)
    assert torch.equal(sl.SpikeMask(0.3, seed=5)(s), sl.SpikeMask(0.3, seed=5)(s))


def test_spike_mask_gradient_passes_through_kept_spikes():
    s = torch.ones(20, 2, 10, requires_grad=True)
    out = sl.SpikeMask(0.5, seed=1)(s)
    out.sum().backward()
    assert torch.equal(s.grad, out.detach())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (run by benchmarks/run_gpu.sh tests)")
def test_spike_mask_on_cuda_draws_there_and_follows_the_seed():
    s = torch.ones(200, 4, 50, device="cuda")
    out = sl.SpikeMask(0.3, seed=5)(s)
    assert out.device.type == "cuda" and out.mean().item() == pytest.approx(0.7, abs=0.01)
    assert torch.equal(out, sl.SpikeMask(0.3, seed=5)(s)) and not torch.equal(out, sl.SpikeMask(0.3, seed=6)(s))


@pytest.mark.parametrize("p", [-0.1, 1.0, 2, "a"])
def test_spike_mask_bad_p(p):
    with pytest.raises(ValueError, match="p"):
        sl.SpikeMask(p)


def test_monitor_records_every_neuron_layer_and_detaches_after():
    torch.manual_seed(0)
    net = sl.Sequential(torch.nn.Linear(6, 16), sl.LIF(tau_mem=5.0), torch.nn.Linear(16, 3), sl.LI())
    x = torch.rand(20, 4, 6) * 2
    with sl.Monitor(net) as mon:
        out = net(x)
    assert set(mon.spikes) == {"1"} and set(mon.membrane) == {"1", "3"}
    assert mon.spikes["1"].shape == (20, 4, 16) and not mon.spikes["1"].requires_grad
    torch.testing.assert_close(mon.membrane["3"], out.detach())
    # the recorded membrane explains the spikes: s = (h >= threshold)
    assert torch.equal(mon.spikes["1"], (mon.membrane["1"] >= 1.0).float())
    assert net[1].last_membrane is None and not net[1].record
    with pytest.raises(ValueError, match="no neuron layer"):
        sl.Monitor(net, layers=["0"])


def test_sequential_trains_end_to_end():
    torch.manual_seed(0)
    net = sl.Sequential(torch.nn.Linear(2, 32), sl.LIF(tau_mem=5.0, learn_threshold=True),
                        torch.nn.Linear(32, 2), sl.LI(tau_mem=5.0))
    x = torch.rand(15, 64, 2)
    y = (x[:, :, 0].mean(0) > x[:, :, 1].mean(0)).long()
    opt = torch.optim.Adam(net.parameters(), lr=0.02)
    losses = []
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(net(x * 2).sum(0), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("name", ["atan", "fast_sigmoid", "triangle", "sigmoid", "gaussian", "logistic"])
def test_in_place_surrogate_matches_out_of_place(name):
    from snnlab.kernels.surrogate_math import surrogate_grad, surrogate_grad_

    u = torch.linspace(-3, 3, 101, dtype=torch.float64)
    expected = surrogate_grad(name, u, 1.7)
    buf = u.clone()
    out = surrogate_grad_(name, buf, 1.7)
    assert out.data_ptr() == buf.data_ptr()
    torch.testing.assert_close(out, expected)


def test_nested_monitors_each_record_the_current_forward():
    from snnlab.metrics import evaluate

    net = sl.Sequential(torch.nn.Linear(4, 8), sl.LIF(), torch.nn.Linear(8, 2), sl.LI())
    loader = [(torch.rand(10, 3, 4), torch.tensor([0, 1, 0]))]
    with sl.Monitor(net) as outer:
        net(torch.rand(10, 3, 4))
        evaluate(net, loader)  # opens and closes a Monitor of its own
        with sl.Monitor(net, layers=["1"]) as inner:
            out = net(torch.rand(10, 3, 4) * 3)
        assert torch.equal(inner.membrane["1"], outer.membrane["1"])
        out2 = net(torch.rand(10, 3, 4))
    assert torch.equal(outer.membrane["3"], out2.detach()) and not torch.equal(out, out2)
    assert not net[1].record and net[1].last_membrane is None  # all closed: nothing kept


@pytest.mark.parametrize("dtype", [torch.long, torch.uint8, torch.bool])
def test_integer_and_bool_spike_inputs_give_the_float_result(dtype):
    x = torch.zeros(6, 1, 1)
    x[::2] = 1
    lif = sl.LIF(beta=0.9, threshold=1.5)
    assert torch.equal(lif(x.to(dtype)), lif(x))
    assert torch.allclose(sl.LI(beta=0.5)(x.to(dtype)), sl.LI(beta=0.5)(x))


def test_li_on_an_empty_sequence():
    x = torch.rand(0, 2, 3, requires_grad=True)
    li = sl.LI(learn_tau=True)
    y = li(x)
    y.sum().backward()
    assert y.shape == (0, 2, 3) and x.grad.shape == (0, 2, 3) and float(li.tau_mem.grad) == 0.0


def test_first_spike_time_is_exact_for_half_precision_spikes_past_256_steps():
    from snnlab.core.readout import first_spike_time

    s = torch.zeros(300, 1, 2)
    s[257, 0, 0] = 1
    for dtype in (torch.bfloat16, torch.float16):
        assert first_spike_time(s.to(dtype)).tolist() == [[257.0, 300.0]]


def test_time_batch_norm_refuses_non_finite_input_before_updating_its_statistics():
    """Probe: one NaN batch made the running statistics NaN for good; every later evaluation then failed in the LIF."""
    bn = sl.TimeBatchNorm(3)
    bn(torch.randn(5, 4, 3))
    before = {k: v.clone() for k, v in bn.state_dict().items()}
    bad = torch.randn(5, 4, 3)
    bad[2, 1, 0] = float("nan")
    with pytest.raises(ValueError, match="TimeBatchNorm: input contains NaN or inf"):
        bn(bad)
    assert all(torch.equal(before[k], v) for k, v in bn.state_dict().items())
    bn.eval()
    assert torch.isfinite(bn(torch.randn(5, 4, 3))).all()
    with pytest.raises(ValueError, match="num_features must be a positive int"):
        sl.TimeBatchNorm(-1)


def test_a_monitor_reused_or_copied_leaves_nothing_stale():
    """nn-conventions probe: a reused Monitor kept the tensors of its previous block for layers a later forward did
    not reach; entering the same Monitor twice removed the outer block's hooks; a deepcopy taken inside a Monitor kept
    recording into it (and holding a [T, B, N] membrane) for good."""
    import copy
    import io

    net = sl.Sequential(torch.nn.Linear(4, 8), sl.LIF(), torch.nn.Linear(8, 2), sl.LI())
    x = torch.rand(10, 3, 4)
    mon = sl.Monitor(net)
    with mon:
        net(x)
        with pytest.raises(RuntimeError, match="already recording"):
            with mon:
                pass
        assert net[1].record and len(net[1]._forward_hooks) == 1  # the outer block still records
        twin = copy.deepcopy(net)
        torch.save(net, io.BytesIO())  # the monitor's hook is a local function: pickling failed before
    assert not twin[1].record and twin[1].last_membrane is None and not twin[1]._forward_hooks
    mon.spikes.clear()
    twin(x)
    assert mon.spikes == {}  # the copy records into nobody
    with mon:
        assert mon.spikes == {} and mon.membrane == {}  # a new block starts empty
        net[:2](x)
    assert list(mon.spikes) == ["1"] and list(mon.membrane) == ["1"]  # not the LI's membrane of the first block
    torch.testing.assert_close(twin(x), net(x))


def test_a_spikes_only_monitor_keeps_no_membrane_and_nests_with_a_full_one():
    """Speed profile: evaluate()'s monitor made every LIF keep its [T, B, N] membrane (forwards up to 2x slower) and
    never read it; membrane=False records the same spikes without it."""
    net = sl.Sequential(torch.nn.Linear(4, 8), sl.LIF(), torch.nn.Linear(8, 2), sl.LI())
    x = torch.rand(10, 3, 4)
    with sl.Monitor(net, membrane=False) as light:
        net(x)
        assert not net[1].record and net[1].last_membrane is None and light.membrane == {}
        with sl.Monitor(net) as full:  # a full monitor inside still gets membranes, and the light one spikes
            net(x)
        assert not net[1].record  # back to the light monitor alone
    assert torch.equal(light.spikes["1"], full.spikes["1"]) and full.membrane["1"].shape == (10, 3, 8)
    with sl.Monitor(net) as full, sl.Monitor(net, membrane=False):
        pass
    assert not net[1].record and net[1]._monitors == 0


def test_a_registered_surrogate_trains_on_the_pytorch_path_and_the_fused_kernels_refuse_it():
    """Extensibility probe: a Surrogate subclass's own grad() was silently replaced by the built-in of its name, and a
    name added to REGISTRY by hand passed LIF() and evaluate, then failed at the first backward."""
    from dataclasses import dataclass

    from snnlab.kernels.surrogate_math import CUSTOM_SURROGATES

    def rect(u, a):
        return (u.abs() < 0.5 / a).to(u.dtype) * a

    sl.surrogates.register("rect_probe", rect, 2.0)
    try:
        x = torch.rand(12, 3, 5, generator=torch.Generator().manual_seed(0)) * 1.5
        lif = sl.LIF(surrogate="rect_probe", backend="auto")
        assert lif.surrogate.is_custom and lif.surrogate.param == 2.0
        xa = x.clone().requires_grad_()
        lif(xa).sum().backward()
        xr = x.clone().requires_grad_()  # the reference: autograd through the rectangle at each spike's u
        from reference import lif_reference

        s_ref, _ = lif_reference(xr, torch.tensor(0.9), torch.tensor(1.0), surrogate="rect_probe", param=2.0)
        s_ref.sum().backward()
        torch.testing.assert_close(xa.grad, xr.grad)
        from snnlab.kernels.dispatch import lif as lif_fn  # the functional form routes it the same way (re-read)

        xf = x.clone().requires_grad_()
        s_fn, _ = lif_fn(xf, torch.tensor(0.9), torch.tensor(1.0), backend="auto", surrogate="rect_probe",
                         surrogate_param=2.0)
        s_fn.sum().backward()
        torch.testing.assert_close(xf.grad, xr.grad)
        for backend in ("cpu", "triton"):
            with pytest.raises(ValueError, match="registered with snnlab.surrogates.register.*backend='torch'"):
                sl.LIF(surrogate="rect_probe", backend=backend)
        from snnlab.kernels.lif_cpu import cpu_kernel_available

        noisy = sl.LIF(surrogate="rect_probe", noise="gaussian", backend="cpu" if cpu_kernel_available() else "torch",
                       seed=0)  # a noisy neuron's surrogate is its noise density, built in: the fused loop runs it
        xn = x.clone().requires_grad_()
        noisy(xn).sum().backward()
        assert xn.grad.abs().sum() > 0

        @dataclass(frozen=True)
        class MySurrogate(sl.surrogates.Surrogate):
            def grad(self, u):
                return torch.ones_like(u)

        with pytest.raises(TypeError, match="would not be used; add it with snnlab.surrogates.register"):
            sl.LIF(surrogate=MySurrogate("atan", 2.0))
        with pytest.raises(ValueError, match="built-in"):
            sl.surrogates.register("atan", rect, 1.0)
        with pytest.raises(ValueError, match="tensor of u's shape"):
            sl.surrogates.register("bad_probe", lambda u, a: 1.0, 1.0)
    finally:
        sl.surrogates.unregister("rect_probe")
    assert "rect_probe" not in sl.surrogates.available() and "rect_probe" not in CUSTOM_SURROGATES
    with pytest.raises(ValueError, match="not a registered custom surrogate"):
        sl.surrogates.unregister("atan")


def test_monitor_forwards_are_per_thread_and_its_global_hooks_do_not_outlive_it():
    """Reviewer: another thread's forward of the same net during a monitored one was joined onto its record
    ([20, 3, 8] for T = 10); a Monitor entered and dropped without exit kept process-wide hooks for good."""
    import gc
    import threading

    hooks = torch.nn.modules.module
    n_global = (len(hooks._global_forward_pre_hooks), len(hooks._global_forward_hooks))
    net = sl.Sequential(torch.nn.Linear(4, 8), sl.LIF(), torch.nn.Linear(8, 2), sl.LI())
    x = torch.rand(10, 3, 4)
    started, other_done = threading.Event(), threading.Event()

    class Slow(torch.nn.Module):  # holds the main thread's forward open while another thread runs the same net
        def forward(self, h):
            if threading.current_thread() is threading.main_thread():
                started.set()
                other_done.wait(10)
            return h

    net = sl.Sequential(torch.nn.Linear(4, 8), Slow(), sl.LIF(), torch.nn.Linear(8, 2), sl.LI())
    with sl.Monitor(net) as mon:
        worker = threading.Thread(target=lambda: (started.wait(10), net(x), other_done.set()))
        worker.start()
        net(x)
        worker.join()
    assert mon.spikes["2"].shape == (10, 3, 8)  # one forward's steps (each thread's joined on its own), not 20
    with pytest.raises(ZeroDivisionError):
        with sl.Monitor(net):
            net(x)
            1 / 0
    assert (len(hooks._global_forward_pre_hooks), len(hooks._global_forward_hooks)) == n_global
    leaked = sl.Sequential(torch.nn.Linear(4, 8), sl.LIF())
    sl.Monitor(leaked).__enter__()  # entered, never exited
    leaked = None
    gc.collect()
    torch.nn.Linear(2, 2)(torch.rand(1, 2))  # the next module call sees the monitor gone: its hooks leave
    assert (len(hooks._global_forward_pre_hooks), len(hooks._global_forward_hooks)) == n_global
