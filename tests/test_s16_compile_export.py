"""snnlab layers under PyTorch's graph tools: ``torch.compile(fullgraph=True)`` and ``torch.export`` capture the
PyTorch path (``backend="torch"``; ``"auto"`` under export) with eager's results, refuse the C loop and host-seeded draws with
a message naming the layer, and ``torch.jit.trace`` refuses the layers whose random draws it would freeze."""
import copy
import warnings

import pytest
import torch

import snnlab as sl
from snnlab.core import normalization

COMPILE = dict(backend="aot_eager", fullgraph=True)  # (no code generation: fast)


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def _net(lif_backend: str = "auto") -> sl.Sequential:
    """Linear -> learned LIF -> learned-delay layer -> LIF -> rounded-delay layer -> LI, small, with the layers on
    backend "torch" and "auto" (one graph covers both: each compile costs seconds; under torch.compile a LIF on
    "auto" keeps the C loop, which fullgraph=True cannot hold: ``lif_backend`` "torch" there)."""
    torch.manual_seed(0)
    rounded = sl.DelayedLinear(4, 3, max_delay=3, seed=2, backend="auto")
    rounded.round_delays()
    return sl.Sequential(
        torch.nn.Linear(4, 5),
        sl.LIF(tau_mem=4.0, threshold=0.5, learn_tau=True, learn_threshold=True, n_neurons=5, backend=lif_backend),
        sl.DelayedLinear(5, 4, max_delay=3, seed=1, backend="torch"),
        sl.LIF(tau_mem=3.0, threshold=0.05, learn_threshold=True, backend="torch"),
        rounded,
        sl.LI(tau_mem=5.0, learn_tau=True))


def _out_and_grads(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    out = model(x)
    ((out.sum(0) ** 2).mean() + out.mean()).backward()
    return out.detach(), {n.replace("_orig_mod.", ""): p.grad.clone() for n, p in model.named_parameters()}


def test_fullgraph_compile_matches_eager_forward_and_backward():
    model = _net(lif_backend="torch")
    x = torch.rand(5, 2, 4) * 3.0
    compiled = torch.compile(copy.deepcopy(model), **COMPILE)
    out, grads = _out_and_grads(model, x)
    c_out, c_grads = _out_and_grads(compiled, x)
    assert out.abs().sum() > 0 and all(g.abs().sum() > 0 for g in grads.values()) and grads.keys() == c_grads.keys()
    torch.testing.assert_close(c_out, out, atol=1e-5, rtol=1e-4)
    for name in grads:
        torch.testing.assert_close(c_grads[name], grads[name], atol=1e-5, rtol=1e-4, msg=name)


def test_export_matches_eager():
    model = _net().eval()
    x = torch.rand(5, 2, 4) * 3.0
    exported = torch.export.export(model, (x,)).module()
    with torch.no_grad():
        for inp in (x, torch.rand(5, 2, 4) * 3.0):  # also another input than the one traced
            torch.testing.assert_close(exported(inp), model(inp), atol=1e-5, rtol=1e-4)


def test_auto_takes_the_pytorch_loop_under_export_and_keeps_the_c_loop_under_compile():
    """torch.export can trace only the PyTorch loop; plain torch.compile runs the C loop between graphs (far faster on
    the CPU than inductor's code for the unrolled loop), and fullgraph=True names the layer and backend='torch'."""
    from snnlab.kernels.dispatch import cpu_kernel_usable, graph_capture_active, resolve_backend

    seen = []

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen.append((graph_capture_active(), resolve_backend("auto", x.device, x.dtype)))
            return x + 1

    torch.export.export(Probe(), (torch.ones(2),))
    assert seen[-1] == (True, "torch")
    if cpu_kernel_usable():
        torch.compile(Probe(), backend="aot_eager")(torch.ones(2))
        assert seen[-1] == (True, "cpu")
        lif = sl.LIF(backend="auto")
        with pytest.raises(Exception, match=r"LIF: backend='auto' runs snnlab's compiled C time loop.*fullgraph=True "
                                            r"use backend='torch'"):
            torch.compile(lif, **COMPILE)(torch.rand(4, 2, 3))
    assert not graph_capture_active()


def test_cpu_backend_refused_clearly_under_fullgraph_and_export():
    model = sl.Sequential(torch.nn.Linear(4, 5), sl.LIF(backend="cpu"))
    x = torch.rand(6, 2, 4)
    with pytest.raises(Exception, match=r"LIF: backend='cpu' runs snnlab's compiled C time loop.*fullgraph=True use "
                                        r"backend='torch'") as info:
        torch.compile(model, **COMPILE)(x)
    assert type(info.value).__name__ == "Unsupported"  # (torch's own error for a graph break under fullgraph)
    with pytest.raises(RuntimeError, match=r"LIF: backend='cpu' .*torch.export cannot capture.*torch.export "
                                           r"backend='torch' or 'auto'"):
        torch.export.export(model.eval(), (x,))


@pytest.mark.parametrize("kw", [dict(noise="gaussian", seed=3), dict(mask_p=0.3), dict(noise="logistic", noisy_eval=True)])
def test_host_seeded_draws_refused_clearly_under_fullgraph_and_export(kw):
    lif = sl.LIF(threshold=0.5, backend="torch", **kw)
    x = torch.rand(5, 2, 3)
    what = "noise" if "noise" in kw else "spike masks"
    with pytest.raises(Exception, match=f"LIF: this call draws its {what} from a seed taken on the host"):
        torch.compile(lif, **COMPILE)(x)
    with pytest.raises(RuntimeError, match=f"LIF: this call draws its {what} from a seed taken on the host"):
        torch.export.export(lif, (x,))


def test_noisy_layer_without_draws_compiles_fullgraph_and_exports():
    lif = sl.LIF(threshold=0.5, noise="gaussian", mask_p=0.2, seed=1, backend="torch").eval()  # eval: no draws
    x = torch.rand(5, 2, 3)
    torch.testing.assert_close(torch.compile(lif, **COMPILE)(x), lif(x))
    torch.testing.assert_close(torch.export.export(lif, (x,)).module()(x), lif(x))


def test_seeded_spike_mask_refused_clearly_unseeded_captured():
    x = torch.ones(5, 2, 3)
    with pytest.raises(Exception, match="SpikeMask: a seeded layer draws its masks from its own torch.Generator"):
        torch.compile(sl.SpikeMask(0.5, seed=0), **COMPILE)(x)
    with pytest.raises(RuntimeError, match="SpikeMask: a seeded layer"):
        torch.export.export(sl.SpikeMask(0.5, seed=0), (x,))
    compiled = torch.compile(sl.SpikeMask(0.5), **COMPILE)  # unseeded: the draw is a graph operation
    assert not torch.equal(compiled(torch.ones(50, 2, 8)), compiled(torch.ones(50, 2, 8)))


def test_checks_still_run_in_eager():
    with pytest.raises(ValueError, match="LIF: input contains NaN or inf"):
        sl.LIF(backend="torch")(torch.full((3, 1, 2), float("nan")))
    with pytest.raises(ValueError, match="NaN or inf"):
        sl.DelayedLinear(2, 2, max_delay=2)(torch.full((3, 1, 2), float("nan")))


@pytest.mark.parametrize("kw", [dict(noise="gaussian", seed=7), dict(mask_p=0.3, seed=7), dict(noise="gaussian")])
def test_trace_refuses_a_layer_that_draws(kw):
    net = sl.Sequential(torch.nn.Linear(5, 7), sl.LIF(threshold=0.6, backend="torch", **kw))
    x = torch.rand(6, 2, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RuntimeError, match="LIF: torch.jit.trace cannot record this call's random"):
            torch.jit.trace(net, x, check_trace=False)
        with pytest.raises(RuntimeError, match="torch.jit.trace cannot record"):  # noisy_eval draws in eval too
            torch.jit.trace(sl.LIF(noise="gaussian", noisy_eval=True, backend="torch").eval(), x, check_trace=False)


def test_trace_works_for_layers_that_draw_nothing():
    torch.manual_seed(0)
    net = sl.Sequential(torch.nn.Linear(5, 7), sl.LIF(threshold=0.6, noise="gaussian", mask_p=0.3, backend="torch"),
                        torch.nn.Linear(7, 3), sl.LI()).eval()  # eval: no noise, no masks
    x = torch.rand(6, 2, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(net, x, check_trace=False)
    x2 = torch.rand(6, 2, 5)
    with torch.no_grad():
        torch.testing.assert_close(traced(x2), net(x2))


def test_time_batch_norm_docstring_gives_the_full_import():
    doc = sl.TimeBatchNorm.__doc__
    assert "from snnlab.core.normalization import convert_sync_batchnorm" in doc
    net = normalization.convert_sync_batchnorm(sl.Sequential(torch.nn.Linear(4, 3), sl.TimeBatchNorm(3)))
    assert type(net[1]).__name__ == "TimeSyncBatchNorm"


def test_alif_c_loop_refusal_names_the_alif_layer():
    """ALIF resolves its backend through the dispatcher too: the refusal of the C loop names "ALIF", not the
    dispatcher's own function."""
    x = torch.rand(4, 2, 3)
    with pytest.raises(Exception, match=r"^(?s:.*)ALIF: backend='auto' runs snnlab's compiled C time loop") as info:
        torch.compile(sl.ALIF(n_neurons=3, backend="auto"), **COMPILE)(x)
    assert "resolve_backend:" not in str(info.value)
    with pytest.raises(RuntimeError, match=r"^ALIF: backend='cpu' runs snnlab's compiled C time loop"):
        torch.export.export(sl.ALIF(n_neurons=3, backend="cpu"), (x,))


def test_recurrent_lif_exports_and_matches_eager():
    """RecurrentLIF's Function runs its loop without recording a graph under torch.export too (it failed with
    "addmm(): functions with out=... arguments don't support automatic differentiation")."""
    torch.manual_seed(0)
    model = sl.Sequential(torch.nn.Linear(4, 6), sl.RecurrentLIF(6, threshold=0.3, backend="torch"),
                          torch.nn.Linear(6, 2), sl.LI()).eval()
    x = torch.rand(5, 2, 4)
    exported = torch.export.export(model, (x,)).module()
    for inp in (x, torch.rand(5, 2, 4)):
        torch.testing.assert_close(exported(inp), model(inp))


@pytest.mark.parametrize("kind", ["LIF", "LI", "ALIF", "RecurrentLIF", "DelayedLinear"])
def test_an_exported_model_runs_while_its_parameters_require_gradients(kind):
    """``torch.export.export(net, ...).module()(x)`` without ``torch.no_grad()`` (its parameters require gradients, as
    they come back from export) raised "addcmul(): functions with out=... arguments don't support automatic
    differentiation": the PyTorch loops' Functions now run their forward without recording, as autograd runs it."""
    torch.manual_seed(0)
    layer = {"LIF": lambda: sl.LIF(backend="torch"), "LI": lambda: sl.LI(),
             "ALIF": lambda: sl.ALIF(n_neurons=3, backend="torch"), "RecurrentLIF": lambda: sl.RecurrentLIF(3, backend="torch"),
             "DelayedLinear": lambda: sl.DelayedLinear(3, 3, max_delay=4)}[kind]()
    net = sl.Sequential(torch.nn.Linear(3, 3), layer, sl.LI())
    x = torch.rand(6, 2, 3) * 3.0
    exported = torch.export.export(net, (x,)).module()
    assert all(p.requires_grad for p in exported.parameters())
    torch.testing.assert_close(exported(x), net(x).detach(), atol=1e-6, rtol=1e-5)
