"""snnlab.interop.nir: export to NIR and import back (round trips, the mapping against NIR's equations, refusals)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import snnlab as sl

from snnlab.training.config import ExperimentConfig
from snnlab.training.model import build_model

nir = pytest.importorskip("nir")
from snnlab.interop.nir import from_nir, to_nir  # noqa: E402

DT = 1e-3


def _mlp() -> sl.Sequential:
    return sl.Sequential(torch.nn.Linear(6, 10), sl.LIF(tau_mem=5.0, threshold=0.4, reset="zero"),
                         torch.nn.Linear(10, 3), sl.LI(tau_mem=20.0))


def _per_neuron() -> sl.Sequential:
    lif = sl.LIF(tau_mem=8.0, reset="zero", n_neurons=10, learn_tau=True, learn_threshold=True)
    li = sl.LI(tau_mem=4.0, n_neurons=3, learn_tau=True)
    with torch.no_grad():
        lif.tau_mem.copy_(torch.linspace(2.0, 30.0, 10))
        lif.threshold.copy_(torch.linspace(0.2, 0.9, 10))
        li.tau_mem.copy_(torch.tensor([1.5, 7.0, 50.0]))
    return sl.Sequential(torch.nn.Linear(6, 10, bias=False), lif, torch.nn.Linear(10, 3), li)


def _conv() -> sl.Sequential:
    return sl.Sequential(sl.TimeDistributed(torch.nn.Conv2d(2, 4, 3, stride=2, padding=1)),
                         sl.LIF(tau_mem=6.0, threshold=0.2, reset="zero"), sl.TimeDistributed(torch.nn.AvgPool2d(2)),
                         torch.nn.Flatten(start_dim=2), torch.nn.Linear(64, 5), sl.LI())


def _conv1d() -> sl.Sequential:
    return sl.Sequential(sl.TimeDistributed(torch.nn.Conv1d(3, 4, 5, padding=2, bias=False)),
                         sl.LIF(threshold=0.2, reset="zero"), sl.TimeDistributed(torch.nn.Flatten()),
                         torch.nn.Linear(4 * 12, 2), sl.LI())


def _recurrent() -> sl.Sequential:
    return sl.Sequential(torch.nn.Linear(6, 10), sl.RecurrentLIF(10, tau_mem=10.0, threshold=0.3, reset="zero"),
                         torch.nn.Linear(10, 2), sl.LI())


def _delayed() -> sl.Sequential:
    layer = sl.DelayedLinear(6, 10, max_delay=6, bias=True, seed=3).round_delays()
    return sl.Sequential(layer, sl.LIF(threshold=0.2, reset="zero"), torch.nn.Linear(10, 2), sl.LI())


def _nested_no_leak() -> sl.Sequential:  # beta = 1: IF and I nodes; nested Sequential; skipped dropout / mask
    inner = torch.nn.Sequential(torch.nn.Linear(6, 10), sl.LIF(beta=1.0, threshold=1.5, reset="zero"))
    return sl.Sequential(inner, sl.TimeDropout(0.2), sl.SpikeMask(0.3), torch.nn.Linear(10, 3), sl.LI(beta=1.0))


def _cuba(**kw) -> sl.Sequential:  # current-based LIF: synapse -> LI(tau_syn) -> LIF, as build_model makes it
    cfg = ExperimentConfig(hidden=[10, 8], tau_syn=4.0, reset="zero", **kw)
    return build_model(cfg, 6, 3)


def _cuba_learned() -> sl.Sequential:  # learned (one per layer) membrane taus, moved away from their start
    net = _cuba(learn_tau=True)
    with torch.no_grad():
        net[2].tau_mem.fill_(7.3)
        net[5].tau_mem.fill_(13.0)
    return net


def _cuba_per_neuron() -> sl.Sequential:  # per-neuron synaptic and membrane taus, per-neuron thresholds
    li = sl.LI(tau_mem=4.0, n_neurons=10, learn_tau=True)
    lif = sl.LIF(tau_mem=8.0, reset="zero", n_neurons=10, learn_tau=True, learn_threshold=True)
    with torch.no_grad():
        li.tau_mem.copy_(torch.linspace(1.5, 12.0, 10))
        lif.tau_mem.copy_(torch.linspace(2.0, 30.0, 10))
        lif.threshold.copy_(torch.linspace(0.5, 2.0, 10))
    return sl.Sequential(torch.nn.Linear(6, 10, bias=False), li, lif, torch.nn.Linear(10, 3), sl.LI(tau_mem=20.0))


ARCHS = {"mlp": (_mlp, (6,)), "per_neuron": (_per_neuron, (6,)), "conv2d": (_conv, (2, 16, 16)),
         "conv1d": (_conv1d, (3, 12)), "recurrent": (_recurrent, (6,)), "delayed": (_delayed, (6,)),
         "no_leak": (_nested_no_leak, (6,)), "cuba": (_cuba, (6,)), "cuba_learned": (_cuba_learned, (6,)),
         "cuba_per_neuron": (_cuba_per_neuron, (6,)), "cuba_recurrent": (lambda: _cuba(recurrent=True), (6,))}


def _run(net: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    with torch.no_grad(), sl.Monitor(net, membrane=False) as mon:
        out = net(x)
    return out, dict(mon.spikes)


def _spiking_input(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand((40, 3, *shape), generator=g) < 0.3).float() * 2.0


@pytest.mark.parametrize("arch", list(ARCHS))
def test_round_trip_gives_identical_spikes_and_outputs(arch):
    torch.manual_seed(1)
    make, shape = ARCHS[arch]
    net = make().eval()
    back = from_nir(to_nir(net, dt=DT, input_shape=shape))
    for seed in range(3):
        x = _spiking_input(shape, seed)
        out, spikes = _run(net, x)
        out2, spikes2 = _run(back, x)
        assert torch.equal(out, out2)
        assert [s.sum().item() > 0 for s in spikes.values()] == [True] * len(spikes)  # the check is not vacuous
        assert [torch.equal(a, b) for a, b in zip(spikes.values(), spikes2.values())] == [True] * len(spikes)


def test_round_trip_keeps_the_layers():
    back = from_nir(to_nir(_recurrent(), dt=DT))
    assert [type(m).__name__ for m in back] == ["Linear", "RecurrentLIF", "Linear", "LI"]
    back = from_nir(to_nir(_delayed(), dt=DT))
    layer = back[0]
    assert isinstance(layer, sl.DelayedLinear) and layer.rounded and layer.max_delay == 6
    original = _delayed()[0]
    nonzero = original.weight != 0
    assert torch.equal(layer.weight, original.weight) and torch.equal(layer.delays[nonzero], original.delays[nonzero])
    back = from_nir(to_nir(_per_neuron(), dt=DT))
    assert back[1].n_neurons == 10 and back[1].learn_tau and back[1].learn_threshold  # learnability noted, restored
    assert torch.equal(back[1].threshold, torch.linspace(0.2, 0.9, 10))
    net = _cuba_per_neuron()
    back = from_nir(to_nir(net, dt=DT))  # one CubaLIF node back as LI -> LIF, per-neuron values kept exactly
    assert [type(m).__name__ for m in back] == ["Linear", "LI", "LIF", "Linear", "LI"]
    assert back[1].n_neurons == 10 and back[2].n_neurons == 10 and back[4].n_neurons is None
    assert torch.equal(back[1].beta(), net[1].beta().detach()) and torch.equal(back[2].beta(), net[2].beta().detach())
    assert torch.equal(back[2].threshold, torch.linspace(0.5, 2.0, 10))


def test_batchnorm_is_folded_into_the_linear_before_it():
    torch.manual_seed(2)
    net = sl.Sequential(torch.nn.Linear(6, 10), sl.TimeBatchNorm(10), sl.LIF(threshold=0.5, reset="zero"),
                        torch.nn.Linear(10, 2), sl.LI())
    net(torch.randn(50, 8, 6) * 2 + 1)  # running statistics away from 0 / 1
    with torch.no_grad():
        net[1].weight.uniform_(0.5, 2.0)
        net[1].bias.uniform_(-0.5, 0.5)
    net = net.double().eval()
    g = to_nir(net, dt=DT)
    assert list(g.nodes) == ["input", "0", "2", "3", "4", "output"] and isinstance(g.nodes["0"], nir.Affine)
    back = from_nir(g, dtype=torch.float64)
    x = _spiking_input((6,), 0).double()
    out, spikes = _run(net, x)
    out2, spikes2 = _run(back, x)
    assert torch.equal(spikes["2"], spikes2["1"]) and spikes["2"].sum() > 0
    torch.testing.assert_close(out2, out, rtol=1e-12, atol=1e-12)


def test_exported_parameters_follow_the_documented_mapping():
    net = sl.Sequential(torch.nn.Linear(2, 3), sl.LIF(tau_mem=4.0, threshold=0.5, reset="zero"),
                        torch.nn.Linear(3, 2, bias=False), sl.LI(tau_mem=25.0), )
    g = to_nir(net, dt=2e-4)
    assert g.metadata["dt"] == 2e-4
    assert g.edges == [("input", "0"), ("0", "1"), ("1", "2"), ("2", "3"), ("3", "output")]
    assert g.nodes["input"].input_type["input"].tolist() == [2]
    lif, li = g.nodes["1"], g.nodes["3"]
    assert isinstance(lif, nir.LIF) and isinstance(li, nir.LI) and isinstance(g.nodes["2"], nir.Linear)
    np.testing.assert_allclose(lif.tau, [8e-4] * 3, rtol=1e-12)  # tau = tau_mem * dt
    np.testing.assert_array_equal(lif.r, [4.0] * 3)  # r = tau / dt: the input enters unscaled
    np.testing.assert_array_equal(lif.v_threshold, [0.5] * 3)
    np.testing.assert_array_equal(lif.v_leak, [0.0] * 3)
    np.testing.assert_array_equal(lif.v_reset, [0.0] * 3)
    np.testing.assert_allclose(li.tau, [5e-3] * 2, rtol=1e-12)
    np.testing.assert_array_equal(li.r, [25.0] * 2)
    np.testing.assert_array_equal(g.nodes["0"].weight, net[0].weight.detach().numpy())
    np.testing.assert_array_equal(g.nodes["0"].bias, net[0].bias.detach().numpy())


def test_special_layers_export_to_the_documented_nodes():
    g = to_nir(_nested_no_leak(), dt=DT)
    assert list(g.nodes) == ["input", "0_0", "0_1", "3", "4", "output"]  # nested names, dropout / mask left out
    assert isinstance(g.nodes["0_1"], nir.IF) and isinstance(g.nodes["4"], nir.I)
    np.testing.assert_allclose(g.nodes["0_1"].r, [1 / DT] * 10)  # dv/dt = r I: v += I per step
    rec = to_nir(_recurrent(), dt=DT).nodes["1"]
    assert isinstance(rec, nir.NIRGraph) and isinstance(rec.nodes["w_rec"], nir.Linear)
    assert sorted(rec.edges) == sorted([("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")])
    net = _delayed()
    g = to_nir(net, dt=DT)
    fanout, delay, dense = g.nodes["0_fanout"], g.nodes["0_delay"], g.nodes["0"]
    values = torch.unique(net[0].delays).numpy()
    assert fanout.weight.shape == (6 * len(values), 6) and dense.weight.shape == (10, 6 * len(values))
    np.testing.assert_allclose(delay.delay, np.repeat(values * DT, 6))
    conv = to_nir(_conv(), dt=DT, input_shape=(2, 16, 16))
    assert conv.nodes["0"].output_type["output"].tolist() == [4, 8, 8]
    assert conv.nodes["1"].tau.shape == (4, 8, 8) and conv.nodes["3"].start_dim == 0


def test_graph_written_to_a_file_reads_back_as_the_same_network(tmp_path):
    torch.manual_seed(3)
    for arch in ("mlp", "recurrent", "delayed", "conv2d"):
        make, shape = ARCHS[arch]
        net = make().eval()
        path = tmp_path / f"{arch}.nir"
        nir.write(path, to_nir(net, dt=DT, input_shape=shape))
        back = from_nir(nir.read(path))  # dt from the file's metadata
        x = _spiking_input(shape, 5)
        assert torch.equal(_run(net, x)[0], _run(back, x)[0]), arch


# --------------------------------------------------------------------- an independent simulation of NIR's equations


def _euler(graph, x: np.ndarray, dt: float, current_first: bool = True) -> tuple[np.ndarray, list[np.ndarray]]:
    """Forward Euler of a chain NIR graph, from NIR's definitions only: LIF ``tau dv/dt = (v_leak - v) + r I``,
    spike when ``v > v_threshold``, then ``v = v_reset``; LI the same without spikes; a sub-graph LIF <-> Linear
    feeds the previous step's spikes back; CubaLIF ``tau_syn dI/dt = -I + w_in x`` driving a LIF with ``I``, the
    membrane stepped with the new current (``current_first``) or the previous step's (strictly explicit Euler).
    ``x`` [T, B, N] -> (output, spikes of every spiking node)."""
    order, key = [], "input"
    while key != "output":
        key = next(b for a, b in graph.edges if a == key)
        order.append(key)
    state: dict[str, np.ndarray] = {}
    outputs, spikes = [], {}
    for t in range(x.shape[0]):
        h = x[t]
        for key in order[:-1]:
            node = graph.nodes[key]
            if isinstance(node, nir.Affine):
                h = h @ node.weight.T + node.bias
            elif isinstance(node, nir.Linear):
                h = h @ node.weight.T
            elif isinstance(node, nir.NIRGraph):  # recurrent: I = input + W_rec z[t-1]
                lif, w = node.nodes["lif"], node.nodes["w_rec"].weight
                z_prev = state.get(key + "z", np.zeros_like(h))
                h = _lif_step(lif, h + z_prev @ w.T, state, key, dt)
                state[key + "z"] = h
                spikes.setdefault(key, []).append(h)
            elif isinstance(node, nir.LIF):
                h = _lif_step(node, h, state, key, dt)
                spikes.setdefault(key, []).append(h)
            elif isinstance(node, nir.CubaLIF):
                h = _cuba_step(node, h, state, key, dt, current_first)
                spikes.setdefault(key, []).append(h)
            elif isinstance(node, nir.LI):
                v = state.get(key, np.zeros_like(h))
                state[key] = h = v + dt / node.tau * (node.v_leak - v + node.r * h)
            else:
                raise AssertionError(type(node))
        outputs.append(h)
    return np.stack(outputs), [np.stack(s) for s in spikes.values()]


def _lif_step(node, current: np.ndarray, state: dict, key: str, dt: float) -> np.ndarray:
    v = state.get(key, np.zeros_like(current))
    v = v + dt / node.tau * (node.v_leak - v + node.r * current)
    z = (v > node.v_threshold).astype(np.float64)
    state[key] = np.where(z > 0, node.v_reset, v)
    return z


def _cuba_step(node, x: np.ndarray, state: dict, key: str, dt: float, current_first: bool) -> np.ndarray:
    i_prev = state.get(key + "I", np.zeros_like(x))
    i_new = i_prev + dt / node.tau_syn * (-i_prev + node.w_in * x)
    state[key + "I"] = i_new
    lif = nir.LIF(tau=node.tau_mem, r=node.r, v_leak=node.v_leak, v_threshold=node.v_threshold, v_reset=node.v_reset)
    return _lif_step(lif, i_new if current_first else i_prev, state, key, dt)


@pytest.mark.parametrize("arch", ["mlp", "per_neuron", "recurrent", "cuba", "cuba_per_neuron", "cuba_recurrent"])
@pytest.mark.parametrize("dt", [1e-3, 1e-4])
def test_snnlab_network_matches_an_euler_simulation_of_the_exported_graph(arch, dt):
    torch.manual_seed(4)
    make, shape = ARCHS[arch]
    net = make().double().eval()
    graph = to_nir(net, dt=dt)
    x = _spiking_input(shape, 7).double()
    out, spikes = _run(net, x)
    ref_out, ref_spikes = _euler(graph, x.numpy(), dt)
    assert len(ref_spikes) == len(spikes) and all(s.sum() > 0 for s in ref_spikes)
    for mine, ref in zip(spikes.values(), ref_spikes):
        np.testing.assert_array_equal(mine.numpy(), ref)
    np.testing.assert_allclose(out.numpy(), ref_out, rtol=1e-6, atol=1e-9)  # tau printed as its shortest decimal


def _foreign_cuba(rng: np.random.Generator, w_in: np.ndarray | float, r: np.ndarray | float) -> "nir.NIRGraph":
    """Per-neuron taus; thresholds set so that every neuron fires at dt = 1 ms (the gains span 1e-3 to 12)."""
    tau_syn, tau_mem = np.array([1e-3, 3e-3, 5e-3, 2e-2]), np.array([2e-3, 1e-2, 4e-3, 5e-2])
    gain = w_in * 1e-3 / tau_syn * r * 1e-3 / tau_mem
    return nir.NIRGraph.from_list(
        nir.Affine(weight=rng.normal(size=(4, 3)) * 2 + 1, bias=np.zeros(4)),
        nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, r=np.ones(4) * r, v_leak=np.zeros(4),
                    v_threshold=np.array([1.0, 2.0, 3.0, 4.0]) * gain, w_in=w_in),
        nir.Linear(weight=rng.normal(size=(2, 4))),
        nir.LI(tau=np.full(2, 1e-2), r=np.full(2, 10.0), v_leak=np.zeros(2)))


@pytest.mark.parametrize("w_in, r", [(1.0, 1.0), (np.array([2.0, 0.5, 3.0, 1.0]), np.array([4.0, 1.0, 0.5, 2.0]))])
def test_import_of_a_foreign_cubalif_matches_the_euler_simulation_current_first(w_in, r):
    """Gains w_in*dt/tau_syn and r*dt/tau_mem other than 1 (per neuron) go into the LIF's threshold; the membrane
    integrates the current of the same step (snnTorch's Synaptic order)."""
    graph = _foreign_cuba(np.random.default_rng(0), w_in, r)
    net = from_nir(graph, dt=1e-3, dtype=torch.float64)
    assert [type(m).__name__ for m in net] == ["Linear", "LI", "LIF", "Linear", "LI"]
    x = _spiking_input((3,), 1).double()
    out, spikes = _run(net, x)
    ref_out, ref_spikes = _euler(graph, x.numpy(), 1e-3)
    assert ref_spikes[0].sum() > 20 and (ref_spikes[0].sum(axis=(0, 1)) > 0).all()  # every neuron fires
    np.testing.assert_array_equal(spikes["2"].numpy(), ref_spikes[0])
    np.testing.assert_allclose(out.numpy(), ref_out, rtol=1e-12, atol=1e-12)
    gain = np.ones(4) * w_in * 1e-3 / graph.nodes["cubalif"].tau_syn * r * 1e-3 / graph.nodes["cubalif"].tau_mem
    np.testing.assert_allclose(net[2].threshold.numpy(), graph.nodes["cubalif"].v_threshold / gain, rtol=1e-12)
    np.testing.assert_allclose(net[1].beta().numpy(), 1 - 1e-3 / graph.nodes["cubalif"].tau_syn, rtol=1e-12)


def test_strictly_explicit_euler_cubalif_fires_one_step_after_the_current_first_order():
    """The other reading of NIR's CubaLIF (v[t] from I[t-1], NIR's numpy reference, Norse): the same spikes, one
    step later; this is why the import documents its order."""
    graph = _foreign_cuba(np.random.default_rng(2), 1.0, 1.0)
    x = _spiking_input((3,), 3).numpy()
    _, (first,) = _euler(graph, x, 1e-3, current_first=True)
    _, (explicit,) = _euler(graph, x, 1e-3, current_first=False)
    assert first.sum() > 20 and not np.array_equal(first, explicit)
    np.testing.assert_array_equal(explicit[1:], first[:-1])
    assert not explicit[0].any()


def test_cubalif_export_parameters_and_what_stays_two_nodes():
    net = _cuba()
    g = to_nir(net, dt=2e-4)
    assert list(g.nodes) == ["input", "0", "2", "3", "5", "6", "7", "output"]  # CubaLIF named after the LIF
    cuba = g.nodes["2"]
    assert isinstance(cuba, nir.CubaLIF) and isinstance(g.nodes["7"], nir.LI)
    np.testing.assert_allclose(cuba.tau_syn, [8e-4] * 10, rtol=1e-12)  # tau_syn = 4 steps * dt
    np.testing.assert_array_equal(cuba.w_in, [4.0] * 10)  # w_in = tau_syn / dt: the input enters I unscaled
    np.testing.assert_allclose(cuba.tau_mem, [2e-3] * 10, rtol=1e-12)
    np.testing.assert_array_equal(cuba.r, [10.0] * 10)  # r = tau_mem / dt: I enters v unscaled
    np.testing.assert_array_equal(cuba.v_threshold, [1.0] * 10)
    assert not cuba.v_leak.any() and not cuba.v_reset.any()
    # RecurrentLIF after the LI: LI + the recurrent LIF sub-graph (a CubaLIF loop would filter the recurrence)
    g = to_nir(_cuba(recurrent=True), dt=DT)
    assert [type(g.nodes[k]).__name__ for k in ("1", "2")] == ["LI", "NIRGraph"]
    assert isinstance(g.nodes["2"].nodes["lif"], nir.LIF)
    # a leak-free current or membrane (tau = inf) has no CubaLIF with unit gains: two nodes, still exact
    for li, lif, kinds in [(sl.LI(beta=1.0), sl.LIF(tau_mem=5.0, threshold=3.0, reset="zero"), ["I", "LIF"]),
                           (sl.LI(tau_mem=3.0), sl.LIF(beta=1.0, threshold=3.0, reset="zero"), ["LI", "IF"])]:
        net = sl.Sequential(torch.nn.Linear(6, 5), li, lif, torch.nn.Linear(5, 2), sl.LI()).eval()
        g = to_nir(net, dt=DT)
        assert [type(g.nodes[k]).__name__ for k in ("1", "2")] == kinds
        x = _spiking_input((6,), 4)
        (out, spikes), (out2, spikes2) = _run(net, x), _run(from_nir(g), x)
        assert spikes["2"].sum() > 0 and torch.equal(spikes["2"], spikes2["2"]) and torch.equal(out, out2)
    # an LI before a subtract-reset LIF: no CubaLIF (it resets to v_reset), the LI + the subtract sub-graph
    net = sl.Sequential(torch.nn.Linear(6, 5), sl.LI(tau_mem=3.0), sl.LIF(threshold=0.5), torch.nn.Linear(5, 2),
                        sl.LI()).eval()
    g = to_nir(net, dt=DT)
    assert [type(g.nodes[k]).__name__ for k in ("1", "2")] == ["LI", "NIRGraph"]
    x = _spiking_input((6,), 4)
    (out, spikes), (out2, spikes2) = _run(net, x), _run(from_nir(g), x)
    assert spikes["2"].sum() > 0 and torch.equal(spikes["2"], spikes2["2"]) and torch.equal(out, out2)
    # an LI not followed by a LIF, or with a TimeBatchNorm between them, is no CubaLIF
    g = to_nir(sl.Sequential(torch.nn.Linear(3, 4), sl.LI(), torch.nn.Linear(4, 4), sl.LIF(reset="zero")), dt=DT)
    assert [type(g.nodes[k]).__name__ for k in ("1", "3")] == ["LI", "LIF"]
    with pytest.raises(ValueError, match=r"\(TimeBatchNorm\) does not follow a Linear"):
        to_nir(sl.Sequential(torch.nn.Linear(3, 4), sl.LI(), sl.TimeBatchNorm(4), sl.LIF(reset="zero")).eval(), dt=DT)


def test_cubalif_graph_written_to_a_file_reads_back_as_the_same_network(tmp_path):
    torch.manual_seed(6)
    net = _cuba_per_neuron().eval()
    nir.write(tmp_path / "cuba.nir", to_nir(net, dt=DT))
    graph = nir.read(tmp_path / "cuba.nir")
    assert isinstance(graph.nodes["2"], nir.CubaLIF)
    x = _spiking_input((6,), 8)
    (out, spikes), (out2, spikes2) = _run(net, x), _run(from_nir(graph), x)
    assert spikes["2"].sum() > 0 and torch.equal(spikes["2"], spikes2["2"]) and torch.equal(out, out2)


def test_import_of_a_foreign_lif_with_an_input_gain_matches_the_euler_simulation():
    """A graph written with r = 1 (as Norse writes it): the gain r*dt/tau goes into the threshold."""
    rng = np.random.default_rng(0)
    tau = np.array([2e-3, 5e-3, 1e-2, 4e-2])
    graph = nir.NIRGraph.from_list(
        nir.Affine(weight=rng.normal(size=(4, 3)) * 20, bias=np.zeros(4)),
        nir.LIF(tau=tau, r=np.ones(4), v_leak=np.zeros(4), v_threshold=np.full(4, 1.0)),
        nir.Linear(weight=rng.normal(size=(2, 4))),
        nir.LI(tau=np.full(2, 1e-2), r=np.full(2, 10.0), v_leak=np.zeros(2)))
    net = from_nir(graph, dt=1e-3, dtype=torch.float64)
    x = _spiking_input((3,), 1).double()
    out, spikes = _run(net, x)
    ref_out, ref_spikes = _euler(graph, x.numpy(), 1e-3)
    assert ref_spikes[0].sum() > 10
    np.testing.assert_array_equal(spikes["1"].numpy(), ref_spikes[0])
    np.testing.assert_allclose(out.numpy(), ref_out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(net[1].threshold.numpy(), tau / 1e-3, rtol=1e-6)  # 1 / gain, gain = r dt / tau


# ------------------------------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize("layer, message", [
    (sl.LIF(max_spikes=2), r"layer '1' \(LIF\) has max_spikes=2; NIR has no spike budget"),  # (subtract reset)
    (sl.LIF(reset="zero", max_spikes=1), r"max_spikes=1; NIR has no spike budget"),
    (sl.LIF(reset="zero", noise="gaussian", noisy_eval=True), r"noise='gaussian' with noisy_eval=True"),
    (sl.LIF(reset="zero", mask_p=0.2, mask_at_inference=True), r"mask_p=0.2 with mask_at_inference=True"),
    (sl.RecurrentLIF(4, noise="gaussian", noisy_eval=True), r"layer '1' \(RecurrentLIF\) has noise='gaussian' "
                                                             r"with noisy_eval=True"),
    (sl.LIF(reset="zero", n_neurons=5), r"n_neurons=5, but its input has the feature shape \(4,\)"),
    (torch.nn.ReLU(), r"layer '1' \(ReLU\) has no NIR equivalent"),
    (sl.SpikeMask(0.1, mask_at_inference=True), r"drops spikes at inference"),
])
def test_export_refuses_what_nir_cannot_express(layer, message):
    with pytest.raises(ValueError, match=message):
        to_nir(sl.Sequential(torch.nn.Linear(3, 4), layer), dt=DT)


def test_export_refusals_of_delays_batchnorm_mixed_leak_and_bad_arguments():
    with pytest.raises(ValueError, match=r"layer '0' \(DelayedLinear\) has learnable delays; call round_delays"):
        to_nir(sl.Sequential(sl.DelayedLinear(3, 4, max_delay=3)), dt=DT)
    bn = sl.Sequential(torch.nn.Linear(3, 4), sl.TimeBatchNorm(4))
    with pytest.raises(ValueError, match=r"layer '1' \(TimeBatchNorm\) normalises with batch statistics"):
        to_nir(bn, dt=DT)
    with pytest.raises(ValueError, match=r"\(TimeBatchNorm\) does not follow a Linear"):
        to_nir(sl.Sequential(sl.LIF(reset="zero", n_neurons=4), sl.TimeBatchNorm(4)).eval(), dt=DT)
    lif = sl.LIF(reset="zero", n_neurons=2)
    lif.beta_const = torch.tensor([1.0, 0.5])
    with pytest.raises(ValueError, match=r"mixes neurons without leak"):
        to_nir(sl.Sequential(torch.nn.Linear(3, 2), lif), dt=DT)
    with pytest.raises(ValueError, match=r"cannot tell the input shape from the first layer '0' \(TimeDistributed\)"):
        to_nir(_conv(), dt=DT)
    with pytest.raises(ValueError, match=r"flattens from dim 1, which would merge time/batch"):
        to_nir(sl.Sequential(torch.nn.Flatten(), torch.nn.Linear(6, 2)), dt=DT, input_shape=(2, 3))
    with pytest.raises(ValueError, match=r"to_nir: dt must be a positive number of seconds"):
        to_nir(_mlp(), dt=0)
    with pytest.raises(TypeError, match=r"to_nir: model must be an snnlab.Sequential"):
        to_nir(sl.LIF(), dt=DT)


@pytest.mark.parametrize("conv, shape", [(torch.nn.Conv2d(4, 6, 3, groups=2), (4, 9, 9)),
                                         (torch.nn.Conv1d(4, 6, 3, groups=2, bias=False), (4, 9))])
def test_export_refuses_grouped_convolutions_up_front_naming_nirs_limitation(conv, shape):
    net = sl.Sequential(sl.TimeDistributed(conv), sl.LIF(reset="zero"))
    name = type(conv).__name__
    with pytest.raises(ValueError, match=rf"layer '0' \({name}\) has groups=2; the nir package's {name} takes its "
                                         rf"input channels from weight.shape\[1\] = in_channels / groups = 2, not 4"):
        to_nir(net, dt=DT, input_shape=shape)


def test_non_square_conv2d_kernel_is_refused_as_a_nir_limitation_unless_the_shapes_agree():
    conv = torch.nn.Conv2d(2, 4, (3, 5), stride=(1, 2), padding=(1, 2))  # width: (12 + 4 - 5) // 2 + 1 = 6, NIR: 7
    with pytest.raises(ValueError, match=r"gives the frame shape \(4, 8, 6\), but NIR computes \(4, 8, 7\) for "
                                         r"it: a limitation of the nir package's Conv2d, which takes weight.shape"
                                         r"\[2\] = 3 as the kernel size of both spatial dimensions \(non-square "
                                         r"kernel \(3, 5\)\)"):
        to_nir(sl.Sequential(sl.TimeDistributed(conv), sl.LIF(reset="zero")), dt=DT, input_shape=(2, 8, 12))
    same = sl.Sequential(sl.TimeDistributed(torch.nn.Conv2d(2, 4, (3, 5), padding="same")),
                         sl.LIF(threshold=0.2, reset="zero")).eval()  # same shape for any kernel: exported
    x = _spiking_input((2, 9, 9), seed=5)
    torch.testing.assert_close(from_nir(to_nir(same, dt=DT, input_shape=(2, 9, 9)))(x), same(x), rtol=0, atol=0)


def test_import_refuses_what_snnlab_cannot_express():
    def lif(**kw):
        args = dict(tau=np.full(2, 0.01), r=np.full(2, 10.0), v_leak=np.zeros(2), v_threshold=np.ones(2))
        return nir.LIF(**{**args, **kw})

    affine = nir.Affine(weight=np.ones((2, 2)), bias=np.zeros(2))
    cases = [
        (nir.NIRGraph.from_list(affine, lif(v_leak=np.ones(2))),
         r"node 'lif' \(LIF\) has v_leak != v_reset \(v_leak 1, v_reset 0\); snnlab's membrane starts at rest"),
        (nir.NIRGraph.from_list(affine, lif(v_reset=np.full(2, -1.0))), r"has v_leak != v_reset"),
        (nir.NIRGraph.from_list(affine, lif(tau=np.full(2, 1e-4))), r"has tau < dt"),
        (nir.NIRGraph.from_list(affine, lif(), nir.LI(tau=np.full(2, 0.01), r=np.ones(2), v_leak=np.zeros(2))),
         r"node 'li' \(LI\) has an input gain r \* dt / tau = 0.1 != 1 \(r != tau / dt\) and no Linear / Affine"),
        (nir.NIRGraph.from_list(affine, nir.CubaLI(tau_syn=np.ones(2), tau_mem=np.ones(2), r=np.ones(2),
                                                   v_leak=np.zeros(2))),
         r"node 'cubali' \(CubaLI\) has no snnlab layer \(imported: .*CubaLIF"),
    ]
    for graph, message in cases:
        with pytest.raises(ValueError, match=message):
            from_nir(graph, dt=1e-3)
    for graph, message in _cuba_refusals(affine):
        with pytest.raises(ValueError, match=message):
            from_nir(graph, dt=1e-3)
    fan = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([2])), "a": affine, "b": lif(), "c": lif(),
                              "output": nir.Output(output_type=np.array([2]))},
                       edges=[("input", "a"), ("a", "b"), ("a", "c"), ("b", "output"), ("c", "output")])
    with pytest.raises(ValueError, match=r"node 'a' \(Affine\) has 2 successors"):
        from_nir(fan, dt=1e-3)
    with pytest.raises(ValueError, match=r"has no metadata\['dt'\]; give dt="):
        from_nir(nir.NIRGraph.from_list(affine))


def _cuba_refusals(affine) -> list[tuple["nir.NIRGraph", str]]:
    def cuba(**kw):
        args = dict(tau_syn=np.full(2, 0.004), tau_mem=np.full(2, 0.01), r=np.full(2, 10.0), v_leak=np.zeros(2),
                    v_threshold=np.ones(2), w_in=4.0)
        return nir.CubaLIF(**{**args, **kw})

    def loop(node):
        nodes = {"input": nir.Input(input_type=np.array([2])), "lif": node, "w_rec": nir.Linear(weight=np.eye(2)),
                 "output": nir.Output(output_type=np.array([2]))}
        edges = [("input", "lif"), ("lif", "w_rec"), ("w_rec", "lif"), ("lif", "output")]
        return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)

    flat = loop(cuba())
    flat.nodes["affine"] = affine
    flat.edges = [("input", "affine"), ("affine", "lif")] + flat.edges[1:]
    chain = lambda node: nir.NIRGraph.from_list(affine, node)  # noqa: E731
    loop_message = r"node '{}' \(CubaLIF\) is in a recurrent loop: the recurrent spikes would pass through its synaptic"
    return [
        (chain(cuba(v_leak=np.full(2, 0.1))), r"node 'cubalif' \(CubaLIF\) has v_leak != v_reset"),
        (chain(cuba(v_reset=np.full(2, -1.0))), r"node 'cubalif' \(CubaLIF\) has v_leak != v_reset"),
        (chain(cuba(tau_syn=np.full(2, 5e-4))), r"has tau_syn < dt = 0.001 s \(min tau_syn 0.0005\)"),
        (chain(cuba(tau_mem=np.full(2, 5e-4))), r"has tau_mem < dt = 0.001 s"),
        (chain(cuba(w_in=-1.0)), r"has an input gain w_in \* dt / tau_syn \* r \* dt / tau_mem that is not positive"),
        (chain(cuba(tau_syn=np.full(2, np.inf))), r"input gain .* not positive and finite"),  # no synaptic leak
        (chain(cuba(v_threshold=np.array([1.0, -1.0]))), r"\(CubaLIF\) has a threshold <= 0"),
        (nir.NIRGraph.from_list(affine, loop(cuba())), loop_message.format("nirgraph.lif")),
        (flat, loop_message.format("lif")),
    ]


def test_flat_recurrent_loop_imports_as_recurrent_lif():
    """The LIF <-> Linear cycle written in the top-level graph (as snnTorch's importer also accepts it)."""
    w = np.random.default_rng(1).normal(size=(3, 3))
    nodes = {"input": nir.Input(input_type=np.array([3])), "lif": nir.LIF(tau=np.full(3, 0.01), r=np.full(3, 10.0),
             v_leak=np.zeros(3), v_threshold=np.full(3, 0.5)), "rec": nir.Linear(weight=w),
             "output": nir.Output(output_type=np.array([3]))}
    graph = nir.NIRGraph(nodes=nodes, edges=[("input", "lif"), ("lif", "rec"), ("rec", "lif"), ("lif", "output")],
                         type_check=False)
    net = from_nir(graph, dt=1e-3)
    assert isinstance(net[0], sl.RecurrentLIF) and np.allclose(net[0].recurrent.weight.detach().numpy(), w)
    assert torch.allclose(net[0].beta(), torch.tensor(0.9))


# ------------------------------------------------------------------------------------------- optional dependency


def test_import_snnlab_does_not_import_nir_and_a_missing_nir_names_the_extra():
    code = ("import sys\nimport snnlab, snnlab.interop.nir as m\nprint('nir' in sys.modules)\n"
            "sys.modules['nir'] = None\ntry:\n    m.to_nir(snnlab.Sequential(), dt=1.0)\n"
            "except ImportError as e:\n    print(e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["False", 'snnlab.interop.nir needs nir, which is not installed: pip install '
                                              '"snnlab[interop]"']


def test_snntorch_reads_the_exported_graph_as_the_same_network():
    """Optional: only where snnTorch (and nirtorch) are installed; snnTorch 1.0 reads NIR with dt = 1e-4."""
    pytest.importorskip("snntorch")
    import_nir = pytest.importorskip("snntorch.import_nir")
    snn_utils = pytest.importorskip("snntorch.utils")
    torch.manual_seed(5)
    x = _spiking_input((6,), 2)
    for net in (sl.Sequential(torch.nn.Linear(6, 10), sl.LIF(tau_mem=5.0, threshold=0.4, reset="zero"),
                              torch.nn.Linear(10, 3), sl.LIF(tau_mem=20.0, threshold=0.3, reset="zero")),
                sl.Sequential(torch.nn.Linear(6, 10), sl.RecurrentLIF(10, tau_mem=10.0, threshold=0.3, reset="zero"))):
        peer = import_nir.import_from_nir(to_nir(net.eval(), dt=1e-4))
        snn_utils.reset(peer)
        outs, state = [], None
        with torch.no_grad():
            for t in range(x.shape[0]):
                out, state = peer(x[t], state)
                outs.append(out)
        mine = _run(net, x)[0]
        assert mine.sum() > 0 and torch.equal(torch.stack(outs), mine)


def test_a_file_round_trip_keeps_per_neuron_shapes_and_a_conv_without_bias(tmp_path):
    """NIR fuzz findings: a per-neuron layer whose values were all equal (a fresh one) came back with one value per
    layer, and a convolution without bias with a zero bias parameter: the state dicts did not load into each other."""
    import nir

    net = sl.Sequential(sl.TimeDistributed(torch.nn.Conv2d(1, 2, 3, bias=False)), torch.nn.Flatten(2),
                        torch.nn.Linear(8, 3), sl.LIF(tau_mem=5.0, reset="zero", n_neurons=3),
                        torch.nn.Linear(3, 2), sl.LI(tau_mem=4.0, n_neurons=2))
    nir.write(tmp_path / "g.nir", to_nir(net, dt=1e-3, input_shape=(1, 4, 4)))
    back = from_nir(nir.read(tmp_path / "g.nir"))
    want = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert {k: tuple(v.shape) for k, v in back.state_dict().items()} == want
    back.load_state_dict(net.state_dict())
    x = (torch.rand(6, 2, 1, 4, 4) < 0.4).float()
    assert torch.equal(back(x), net(x))


def test_dt_and_input_shape_take_what_users_pass():
    net = sl.Sequential(torch.nn.Linear(4, 3), sl.LIF(reset="zero"))
    for dt in (np.float32(1e-3), np.float64(1e-3), torch.tensor(1e-3), 1e-3):
        assert to_nir(net, dt=dt).metadata["dt"] == pytest.approx(1e-3)
    assert tuple(to_nir(net, dt=1e-3, input_shape=4).nodes["input"].input_type["input"]) == (4,)
    for bad in ("4", (4.5,), (0,), [None]):
        with pytest.raises(ValueError, match="input_shape must be the feature shape"):
            to_nir(net, dt=1e-3, input_shape=bad)
    with pytest.raises(ValueError, match="dt must be a positive number"):
        to_nir(net, dt=torch.tensor([1e-3, 2e-3]))
