"""snnlab.interop.nir: learnability and exact float64 values through a round trip, every LI / LIF parameterisation
snnlab represents (NIR's r, v_leak = v_reset), and the subtract-reset export."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import snnlab as sl

nir = pytest.importorskip("nir")
from snnlab.interop.nir import from_nir, to_nir  # noqa: E402

DT = 1e-3


def _learned_net() -> sl.Sequential:
    """Every kind of neuron layer to_nir writes, with learnable (and fixed) taus and thresholds."""
    lif = sl.LIF(tau_mem=6.0, reset="zero", learn_tau=True, learn_threshold=True, n_neurons=5)
    syn = sl.LI(tau_mem=3.0, learn_tau=True)
    mem = sl.LIF(tau_mem=9.0, threshold=0.5, reset="zero", learn_threshold=True)
    rec = sl.RecurrentLIF(5, tau_mem=7.0, threshold=0.4, reset="zero", learn_tau=True)
    return sl.Sequential(torch.nn.Linear(4, 5), lif, torch.nn.Linear(5, 5), syn, mem, torch.nn.Linear(5, 5), rec,
                         torch.nn.Linear(5, 2), sl.LI(tau_mem=12.0, learn_tau=True, n_neurons=2))


def _flags(net: torch.nn.Module) -> list[tuple[str, bool, bool | None]]:
    return [(type(m).__name__, m.learn_tau, getattr(m, "learn_threshold", None))
            for m in net if isinstance(m, sl.LI | sl.LIF)]


def test_learnability_is_noted_on_export_and_restored_on_import(tmp_path):
    net = _learned_net().eval()
    graph = to_nir(net, dt=DT)
    assert isinstance(graph.nodes["4"], nir.CubaLIF)  # the LI -> LIF pair: both learn flags on one node
    assert graph.nodes["4"].metadata["snnlab_syn_learn_tau"] and not graph.nodes["4"].metadata["snnlab_learn_tau"]
    nir.write(tmp_path / "g.nir", graph)
    for back in (from_nir(graph), from_nir(nir.read(tmp_path / "g.nir"))):
        assert _flags(back) == _flags(net)
        assert {k for k, _ in back.named_parameters()} == {k for k, _ in net.named_parameters()}
        assert {k for k, _ in back.named_buffers()} == {k for k, _ in net.named_buffers()}
        back.load_state_dict(net.state_dict())  # same keys and shapes
    back = from_nir(graph)
    x = (torch.rand(30, 2, 4, generator=torch.Generator().manual_seed(0)) < 0.5).float() * 2
    back(x).sum().backward()  # the restored parameters learn
    assert back[1].tau_mem.grad is not None and back[1].threshold.grad is not None
    assert back[8].tau_mem.grad is not None and back[8].tau_mem.grad.shape == (2,)


def test_learnable_option_overrides_the_metadata_and_applies_to_foreign_graphs():
    net = _learned_net().eval()
    graph = to_nir(net, dt=DT)
    fixed = from_nir(graph, learnable=False)
    assert all(not t and not thr for _, t, thr in _flags(fixed)) and not list(fixed[1].named_parameters())
    every = from_nir(graph, learnable=True)
    assert all(t and thr in (True, None) for _, t, thr in _flags(every))
    x = (torch.rand(20, 2, 4, generator=torch.Generator().manual_seed(1)) < 0.5).float() * 2
    with torch.no_grad():
        assert torch.equal(fixed(x), net(x)) and torch.equal(every(x), net(x))  # the same function either way
    foreign = nir.NIRGraph.from_list(  # no snnlab metadata: fixed by default, learnable on request
        nir.Linear(weight=np.ones((2, 3))), nir.LIF(tau=np.full(2, 0.01), r=np.full(2, 10.0), v_leak=np.zeros(2),
                                                    v_threshold=np.ones(2)),
        nir.Linear(weight=np.ones((2, 2))), nir.IF(r=np.full(2, 1e3), v_threshold=np.ones(2)))
    assert _flags(from_nir(foreign, dt=DT)) == [("LIF", False, False), ("LIF", False, False)]
    # a neuron without leak (IF: tau = inf) keeps its tau fixed: snnlab learns finite taus only
    assert _flags(from_nir(foreign, dt=DT, learnable=True)) == [("LIF", True, True), ("LIF", False, True)]
    with pytest.raises(TypeError, match=r"from_nir: learnable must be None \(as the graph notes\), True or False, "
                                        r"got 'yes'"):
        from_nir(foreign, dt=DT, learnable="yes")


def _random_taus_net(seed: int, learn: bool) -> sl.Sequential:
    g = torch.Generator().manual_seed(seed)
    kw = dict(learn_tau=learn, n_neurons=16)
    layers = [sl.LIF(reset="zero", **kw), sl.LI(**kw), sl.LIF(reset="zero", **kw), sl.LI(**kw)]
    net = sl.Sequential(torch.nn.Linear(3, 16), layers[0], torch.nn.Linear(16, 16), layers[1], layers[2],
                        torch.nn.Linear(16, 16), layers[3]).double()
    with torch.no_grad():
        for m in layers:
            tau = 2.0 + torch.rand(16, generator=g, dtype=torch.float64) * 200.0  # (>= 2 dt: read at 2 dt too)
            if learn:
                m.tau_mem.copy_(tau)
            else:
                m.beta_const.copy_(1.0 - 1.0 / tau)
    return net


@pytest.mark.parametrize("learn", [True, False])
def test_random_float64_taus_round_trip_bit_equal(learn, tmp_path):
    """NIR's tau in seconds gave some float64 taus (learned) and betas (fixed) back a few ulps off."""
    for seed in range(8):
        net = _random_taus_net(seed, learn)
        nir.write(tmp_path / "g.nir", to_nir(net, dt=DT))
        for graph in (to_nir(net, dt=DT), nir.read(tmp_path / "g.nir")):
            back = from_nir(graph, dtype=torch.float64)
            for i in (1, 3, 4, 6):
                assert torch.equal(back[i].beta(), net[i].beta()), (seed, i)
                if learn:
                    assert torch.equal(back[i].tau_mem, net[i].tau_mem), (seed, i)


def test_exact_values_apply_only_at_the_written_dt_and_to_unedited_nodes():
    net = _random_taus_net(0, learn=True)
    graph = to_nir(net, dt=DT)
    tau_s = graph.nodes["1"].tau  # seconds
    slower = from_nir(graph, dt=2 * DT, dtype=torch.float64)  # read at another dt: from NIR's tau, not the metadata
    np.testing.assert_allclose(slower[1].beta().detach().numpy(), 1 - 2 * DT / tau_s, rtol=1e-12)
    graph.nodes["1"].tau = tau_s * 1.5  # an edited node: its values win over the stale metadata
    edited = from_nir(graph, dtype=torch.float64)
    np.testing.assert_allclose(edited[1].beta().detach().numpy(), 1 - DT / (tau_s * 1.5), rtol=1e-12)
    assert torch.equal(edited[3].tau_mem, net[3].tau_mem)  # the other layers still exact


# ---------------------------------------------------------------- every parameterisation snnlab represents exactly


def _euler(graph, x: np.ndarray, dt: float) -> tuple[np.ndarray, list[np.ndarray]]:
    """Forward Euler of a chain of Linear / Affine / LIF / IF / LI / I / CubaLIF nodes from NIR's equations, each
    membrane starting at rest (``v = v_leak``, 0 for IF / I); ``x`` [T, B, N] -> (output, spikes per spiking node)."""
    order, key = [], "input"
    while True:
        key = next(b for a, b in graph.edges if a == key)
        if key == "output":
            break
        order.append(key)
    state, outputs, spikes = {}, [], {}
    for t in range(x.shape[0]):
        h = x[t]
        for key in order:
            h = _node_step(graph.nodes[key], h, state, key, dt, spikes)
        outputs.append(h)
    return np.stack(outputs), [np.stack(s) for s in spikes.values()]


def _node_step(node, h: np.ndarray, state: dict, key: str, dt: float, spikes: dict) -> np.ndarray:
    if isinstance(node, nir.Affine | nir.Linear):
        return h @ node.weight.T + (node.bias if isinstance(node, nir.Affine) else 0.0)
    if isinstance(node, nir.CubaLIF):
        i = state.get(key + "I", np.zeros_like(h))
        state[key + "I"] = h = i + dt / node.tau_syn * (-i + node.w_in * h)  # the membrane takes the new current
        tau, leak = node.tau_mem, node.v_leak
    elif isinstance(node, nir.IF | nir.I):
        tau, leak = None, 0.0
    else:
        tau, leak = node.tau, node.v_leak
    v = state.get(key, np.zeros_like(h) + leak)
    v = v + node.r * h * dt if tau is None else v + dt / tau * (leak - v + node.r * h)
    if isinstance(node, nir.LI | nir.I):
        state[key] = v
        return v
    z = (v > node.v_threshold).astype(np.float64)
    state[key] = np.where(z > 0, node.v_reset, v)
    spikes.setdefault(key, []).append(z)
    return z


def _norse_like_graph(rng: np.random.Generator) -> "nir.NIRGraph":
    """r = 1 everywhere (Norse's convention), biological rest / reset / thresholds, per-neuron values."""
    tau = np.array([2e-3, 5e-3, 1e-2, 4e-2])
    rest = np.array([-0.065, -0.07, -0.06, -0.065])
    above = np.array([0.02, 0.02, 0.01, 0.004])  # v_threshold - v_rest
    return nir.NIRGraph.from_list(
        nir.Affine(weight=rng.normal(size=(4, 3)) * 0.2 + 0.1, bias=np.full(4, 0.01)),
        nir.LIF(tau=tau, r=np.ones(4), v_leak=rest, v_threshold=rest + above, v_reset=rest),
        nir.Linear(weight=rng.normal(size=(4, 4)) * 0.1 + 0.05),
        nir.CubaLIF(tau_syn=np.full(4, 3e-3), tau_mem=tau, r=np.ones(4), v_leak=rest, v_threshold=rest + 0.002,
                    v_reset=rest),
        nir.Affine(weight=rng.normal(size=(2, 4)), bias=np.array([0.5, -0.2])),
        nir.LI(tau=np.array([1e-2, 2e-2]), r=np.array([1.0, 3.0]), v_leak=np.zeros(2)))


def test_norse_like_graph_with_r_1_and_a_biological_rest_imports_as_its_euler_simulation():
    """Gains r*dt/tau != 1: in the LIF / CubaLIF thresholds, and the LI's folded into the Affine before it; the
    membranes rest and reset at v_leak = v_reset != 0 (snnlab's membrane is v - v_leak)."""
    graph = _norse_like_graph(np.random.default_rng(0))
    net = from_nir(graph, dt=DT, dtype=torch.float64)
    assert [type(m).__name__ for m in net] == ["Linear", "LIF", "Linear", "LI", "LIF", "Linear", "LI"]
    x = (torch.rand(60, 3, 3, generator=torch.Generator().manual_seed(2)) < 0.4).double() * 2
    with torch.no_grad(), sl.Monitor(net, membrane=False) as mon:
        out = net(x)
    ref_out, (ref_lif, ref_cuba) = _euler(graph, x.numpy(), DT)
    assert ref_lif.sum() > 20 and ref_cuba.sum() > 20 and (ref_lif.sum(axis=(0, 1)) > 0).all()
    np.testing.assert_array_equal(mon.spikes["1"].numpy(), ref_lif)
    np.testing.assert_array_equal(mon.spikes["4"].numpy(), ref_cuba)
    np.testing.assert_allclose(out.numpy(), ref_out, rtol=1e-12, atol=1e-12)
    above = graph.nodes["lif"].v_threshold - graph.nodes["lif"].v_reset
    np.testing.assert_allclose(net[1].threshold.numpy(), above / (DT / graph.nodes["lif"].tau), rtol=1e-12)


def test_norse_li_readout_with_r_1_is_folded_into_the_dense_layer_before_it():
    w, b = np.array([[1.0, -2.0], [0.5, 3.0]]), np.array([0.25, -1.0])
    tau = np.array([1e-2, 4e-3])
    graph = nir.NIRGraph.from_list(nir.Affine(weight=w, bias=b), nir.LI(tau=tau, r=np.ones(2), v_leak=np.zeros(2)))
    net = from_nir(graph, dt=DT, dtype=torch.float64)
    gain = DT / tau  # r * dt / tau
    np.testing.assert_allclose(net[0].weight.detach().numpy(), w * gain[:, None], rtol=1e-15)
    np.testing.assert_allclose(net[0].bias.detach().numpy(), b * gain, rtol=1e-15)
    x = torch.randn(25, 2, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    np.testing.assert_allclose(net(x).detach().numpy(), _euler(graph, x.numpy(), DT)[0], rtol=1e-12, atol=1e-14)
    # the same for I (no leak, dv/dt = r I) after a Linear, and for one gain after a convolution
    graph = nir.NIRGraph.from_list(nir.Linear(weight=w), nir.I(r=np.full(2, 250.0)))
    net = from_nir(graph, dt=DT, dtype=torch.float64)
    np.testing.assert_allclose(net(x).detach().numpy(), _euler(graph, x.numpy(), DT)[0], rtol=1e-12, atol=1e-14)
    conv = sl.Sequential(sl.TimeDistributed(torch.nn.Conv1d(1, 2, 3)), sl.LI(tau_mem=4.0))
    g = to_nir(conv, dt=DT, input_shape=(1, 5))
    g.nodes["1"].r = g.nodes["1"].r * 0.5  # one gain 0.5 for the whole layer
    back = from_nir(g, dtype=torch.float64)
    xc = torch.randn(7, 2, 1, 5, dtype=torch.float64)
    torch.testing.assert_close(back(xc), 0.5 * conv.double()(xc), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("nodes, message", [
    (lambda: [nir.LIF(tau=np.full(2, 0.01), r=np.full(2, 10.0), v_leak=np.zeros(2), v_threshold=np.ones(2)),
              nir.LI(tau=np.full(2, 0.01), r=np.ones(2), v_leak=np.zeros(2))],
     r"node 'li' \(LI\) has an input gain r \* dt / tau = 0.1 != 1 \(r != tau / dt\) and no Linear / Affine"),
    (lambda: [nir.Linear(weight=np.ones((2, 2))), nir.LI(tau=np.full(2, 0.01), r=np.full(2, 10.0),
                                                         v_leak=np.array([0.0, 0.2]))],
     r"node 'li' \(LI\) has v_leak != 0 \(v_leak 0, \.\.\.\); its output would rest at v_leak"),
    (lambda: [nir.Linear(weight=np.ones((2, 2))), nir.IF(r=np.full(2, 1e3), v_threshold=np.ones(2),
                                                         v_reset=np.full(2, -0.5))],
     r"node 'if' \(IF\) has v_reset != 0 \(v_reset -0.5\); an IF has no resting potential"),
    (lambda: [nir.Linear(weight=np.ones((2, 2))), nir.LIF(tau=np.full(2, 0.01), r=np.full(2, 10.0),
                                                          v_leak=np.full(2, -0.065), v_threshold=np.full(2, -0.05),
                                                          v_reset=np.full(2, -0.07))],
     r"node 'lif' \(LIF\) has v_leak != v_reset \(v_leak -0.065, v_reset -0.07\); snnlab's membrane starts at rest "
     r"and resets to the resting potential"),
    (lambda: [nir.Linear(weight=np.ones((2, 2))), nir.LIF(tau=np.full(2, 0.01), r=np.full(2, 10.0),
                                                          v_leak=np.full(2, -0.065), v_threshold=np.full(2, -0.07),
                                                          v_reset=np.full(2, -0.065))],
     r"node 'lif' \(LIF\) has a threshold <= 0 \(v_threshold - v_reset = -0.005\)"),
    (lambda: [nir.Linear(weight=np.ones((2, 2))), nir.LIF(tau=np.full(2, 0.01), r=np.full(2, -10.0),
                                                          v_leak=np.zeros(2), v_threshold=np.ones(2))],
     r"node 'lif' \(LIF\) has an input gain r \* dt / tau that is not positive and finite \(gain -1\)"),
    (lambda: [nir.Linear(weight=np.ones((2, 2))), nir.LI(tau=np.full(2, 5e-4), r=np.ones(2), v_leak=np.zeros(2))],
     r"node 'li' \(LI\) has tau < dt = 0.001 s .* \(snnlab's beta = 1 - dt / tau lies in \[0, 1\]\)"),
])
def test_import_refuses_the_rest_naming_the_value_and_why(nodes, message):
    with pytest.raises(ValueError, match=message):
        from_nir(nir.NIRGraph.from_list(*nodes()), dt=DT)


def test_li_gain_before_a_convolution_needs_one_gain_per_layer():
    conv = sl.Sequential(sl.TimeDistributed(torch.nn.Conv1d(1, 2, 3)), sl.LI(tau_mem=4.0))
    g = to_nir(conv, dt=DT, input_shape=(1, 5))
    g.nodes["1"].r = g.nodes["1"].r * np.array([0.5, 0.25])[:, None]  # one gain per channel: not folded
    with pytest.raises(ValueError, match=r"node '1' \(LI\) has parameters varying over its neuron shape"):
        from_nir(g)
    g.nodes["1"].r = g.nodes["1"].r * 0 + np.array([1.0, 1.0, 2.0]) * 4  # per last-dimension neuron: not into a conv
    with pytest.raises(ValueError, match=r"node '1' \(LI\) has an input gain .* no Linear / Affine \(or "
                                         r"convolution, for one gain per layer\) right before it"):
        from_nir(g)


# ---------------------------------------------------------------------------------------------- subtract reset


@pytest.mark.parametrize("layer", [sl.LIF(tau_mem=5.0, threshold=0.5), sl.RecurrentLIF(4, tau_mem=5.0, threshold=0.5)])
def test_subtract_reset_exports_as_the_threshold_loop_sub_graph_and_reads_back_exactly(layer):
    """Before: refused (NIR's LIF / IF / CubaLIF reset to v_reset); now an LI -> Threshold sub-graph whose Scale loop
    subtracts beta * threshold (tests/test_interop_nir_subtract.py checks it against NIR's equations)."""
    net = sl.Sequential(torch.nn.Linear(3, 4), layer).eval()
    sub = to_nir(net, dt=DT).nodes["1"]
    assert isinstance(sub, nir.NIRGraph) and sub.metadata["snnlab_reset"] == "subtract"
    assert isinstance(sub.nodes["membrane"], nir.LI) and isinstance(sub.nodes["threshold"], nir.Threshold)
    np.testing.assert_allclose(sub.nodes["reset"].scale, [-0.8 * 0.5] * 4, rtol=1e-7)  # -beta * threshold
    x = (torch.rand(30, 2, 3, generator=torch.Generator().manual_seed(4)) < 0.5).float() * 2
    back = from_nir(to_nir(net, dt=DT))
    assert type(back[1]) is type(layer) and back[1].reset == "subtract"
    with torch.no_grad():
        assert torch.equal(back(x), net(x)) and net(x).sum() > 0
    for refused, message in [(dict(max_spikes=1), r"max_spikes=1; NIR has no spike budget"),
                             (dict(noise="gaussian", noisy_eval=True), r"noise='gaussian' with noisy_eval=True"),
                             (dict(mask_p=0.2, mask_at_inference=True), r"mask_p=0.2 with mask_at_inference=True")]:
        kind = sl.RecurrentLIF(4, **refused) if isinstance(layer, sl.RecurrentLIF) else sl.LIF(**refused)
        with pytest.raises(ValueError, match=message):
            to_nir(sl.Sequential(torch.nn.Linear(3, 4), kind), dt=DT)


# ---------------------------------------------------------------------------------------------- found in review


def test_an_edit_of_the_node_however_small_wins_over_the_noted_exact_values(tmp_path):
    """Before: the noted values applied while they agreed with the node's beta to 1e-6, so tau 1000 -> 1001 steps
    (beta moves by 1e-6) was read back as 1000."""
    net = sl.Sequential(torch.nn.Linear(2, 3), sl.LIF(tau_mem=1000.0, reset="zero", learn_tau=True),
                        torch.nn.Linear(3, 3), sl.LI(tau_mem=1000.0), sl.LIF(tau_mem=2000.0, reset="zero"),
                        torch.nn.Linear(3, 3), sl.LI(tau_mem=1000.0)).double()
    graph = to_nir(net, dt=DT)
    assert isinstance(graph.nodes["4"], nir.CubaLIF)
    for key, field in (("1", "tau"), ("4", "tau_syn"), ("6", "tau")):
        setattr(graph.nodes[key], field, getattr(graph.nodes[key], field) * (1001 / 1000))
    graph.nodes["1"].r = graph.nodes["1"].r * (1001 / 1000)  # (the LIF keeps its gain of 1: the same threshold)
    graph.nodes["6"].r = graph.nodes["6"].r * (1001 / 1000)
    nir.write(tmp_path / "g.nir", graph)
    for back in (from_nir(graph, dtype=torch.float64), from_nir(nir.read(tmp_path / "g.nir"), dtype=torch.float64)):
        torch.testing.assert_close(back[1].tau_mem, torch.tensor(1001.0, dtype=torch.float64), rtol=1e-12, atol=0)
        for i, key, field in ((3, "4", "tau_syn"), (6, "6", "tau")):  # the CubaLIF's synaptic LI, the readout LI
            edited = 1 - DT / getattr(graph.nodes[key], field)[0]  # (tau 1000.0000x: LI's float32 beta, to float64)
            assert abs(edited - (1 - 1 / 1001)) < 1e-7 and abs(net[i].beta().item() - edited) > 9e-7
            torch.testing.assert_close(back[i].beta(), torch.tensor(edited, dtype=torch.float64), rtol=1e-14, atol=0)
        assert torch.equal(back[4].beta(), net[4].beta())  # the CubaLIF's membrane, not edited: still exact


def test_float64_and_float32_convolution_networks_export_and_round_trip():
    """Before: to_nir of a float64 convolution raised 'Input type (float) and bias type (double) should be the same'
    (the frame it measures the output shape with was float32)."""
    for dtype in (torch.float32, torch.float64):
        torch.manual_seed(0)
        net = sl.Sequential(sl.TimeDistributed(torch.nn.Conv2d(2, 3, 3, padding=1)),
                            sl.LIF(tau_mem=3.0, reset="zero", learn_tau=True),
                            sl.TimeDistributed(torch.nn.AvgPool2d(2)), torch.nn.Flatten(2),
                            torch.nn.Linear(12, 2), sl.LI(tau_mem=4.0)).to(dtype).eval()
        back = from_nir(to_nir(net, dt=DT, input_shape=(2, 4, 4)), dtype=dtype)
        x = (torch.rand(15, 2, 2, 4, 4, generator=torch.Generator().manual_seed(1)) < 0.5).to(dtype) * 2
        with torch.no_grad():
            assert torch.equal(back(x), net(x)), dtype
        assert back[0].module.weight.dtype == dtype and torch.equal(back[1].tau_mem, net[1].tau_mem)


def test_from_nir_of_something_else_than_a_graph_is_a_type_error():
    """Before: a ValueError about the graph's missing metadata['dt']."""
    with pytest.raises(TypeError, match=r"from_nir: expected a nir.NIRGraph, got dict"):
        from_nir({"dt": DT})


def test_a_given_dt_wins_over_metadata_dt_that_is_not_one_number():
    """Before: with dt= given, a graph whose metadata['dt'] was not one number (a string, a list) raised NumPy's
    'could not convert string to float' / 'only 0-dimensional arrays' while checking for the noted exact values."""
    net = sl.Sequential(torch.nn.Linear(3, 2), sl.LIF(tau_mem=5.0, reset="zero"))
    x = (torch.rand(10, 2, 3, generator=torch.Generator().manual_seed(0)) < 0.5).float() * 2
    for bad in ("abc", [DT, 2 * DT], None):
        graph = to_nir(net, dt=DT)
        graph.metadata["dt"] = bad
        with torch.no_grad():
            assert torch.equal(from_nir(graph, dt=DT)(x), net(x)), bad
