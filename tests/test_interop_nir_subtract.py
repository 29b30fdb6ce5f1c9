"""snnlab.interop.nir: the subtract reset (snnlab's default) as the NIR sub-graph ``LI -> Threshold`` with the loop
``Threshold -> Scale(-beta * threshold) -> LI``: against an Euler simulation of NIR's equations, round trips, foreign
graphs of that shape, and what stays refused."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import snnlab as sl

nir = pytest.importorskip("nir")
from snnlab.interop.nir import from_nir, to_nir  # noqa: E402
from test_interop_nir_more import _node_step  # noqa: E402  (the Euler step of LI / I / Affine / Linear / LIF nodes)

DT = 1e-3


# ------------------------------------------------------------------ an Euler simulation of any NIR graph with loops


def _order(graph) -> list[str]:
    """The nodes from the Input on, each after its feed-forward predecessors (reverse DFS post-order): an edge into
    a node earlier in this order closes a loop."""
    succ = {k: [b for a, b in graph.edges if a == k] for k in graph.nodes}
    start = next(k for k, v in graph.nodes.items() if isinstance(v, nir.Input))
    done, post = set(), []

    def visit(k):
        done.add(k)
        for b in succ[k]:
            if b not in done:
                visit(b)
        post.append(k)

    visit(start)
    return post[::-1]


def _graph_step(graph, x: np.ndarray, state: dict, prefix: str, dt: float, spikes: dict) -> np.ndarray:
    """One forward-Euler step of ``graph``: a node's input is the sum over its in-edges of the source's output of this
    step, or of the previous step (0 at the first) for an edge closing a loop; Threshold ``z = v > threshold``,
    Scale ``x * scale``, the neuron and dense nodes as :func:`test_interop_nir_more._node_step`."""
    prev, out = state.get(prefix + "/out", {}), {}
    for key in _order(graph):
        node, path = graph.nodes[key], prefix + key
        if isinstance(node, nir.Input):
            out[key] = x
            continue
        h = sum(out[a] if a in out else prev.get(a, 0.0) for a, b in graph.edges if b == key)
        if isinstance(node, nir.Output):
            out[key] = h
        elif isinstance(node, nir.NIRGraph):
            out[key] = _graph_step(node, h, state, path + ".", dt, spikes)
        elif isinstance(node, nir.Threshold):
            out[key] = (h > node.threshold).astype(np.float64)
            spikes.setdefault(path, []).append(out[key])
        elif isinstance(node, nir.Scale):
            out[key] = h * node.scale
        else:
            out[key] = _node_step(node, h, state, path, dt, spikes)
    state[prefix + "/out"] = out
    return out[next(k for k, v in graph.nodes.items() if isinstance(v, nir.Output))]


def _simulate(graph, x: np.ndarray, dt: float) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``x`` [T, B, N] -> (output [T, B, M], spikes of every Threshold / LIF node [T, B, N'])."""
    state, spikes, outs = {}, {}, []
    for t in range(x.shape[0]):
        outs.append(_graph_step(graph, x[t], state, "", dt, spikes))
    return np.stack(outs), {k: np.stack(v) for k, v in spikes.items()}


def _run(net, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    with torch.no_grad(), sl.Monitor(net, membrane=False) as mon:
        out = net(x)
    return out, dict(mon.spikes)


def _strong_input(shape: tuple[int, ...], seed: int, steps: int = 40) -> torch.Tensor:
    """Dense spikes of amplitude 3: membranes several thresholds high, so that neurons fire on consecutive steps."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand((steps, 3, *shape), generator=g) < 0.5).float() * 3.0


# ----------------------------------------------------------------------------------------------------- networks


def _plain() -> sl.Sequential:
    return sl.Sequential(torch.nn.Linear(5, 8), sl.LIF(tau_mem=5.0, threshold=0.4), torch.nn.Linear(8, 3),
                         sl.LI(tau_mem=20.0))


def _per_neuron() -> sl.Sequential:
    lif = sl.LIF(tau_mem=8.0, n_neurons=8, learn_tau=True, learn_threshold=True)
    with torch.no_grad():
        lif.tau_mem.copy_(torch.linspace(1.5, 40.0, 8))
        lif.threshold.copy_(torch.linspace(0.2, 1.2, 8))
    return sl.Sequential(torch.nn.Linear(5, 8, bias=False), lif, torch.nn.Linear(8, 3), sl.LI(tau_mem=6.0))


def _no_leak() -> sl.Sequential:  # beta = 1: an I membrane, Scale(-threshold)
    return sl.Sequential(torch.nn.Linear(5, 8), sl.LIF(beta=1.0, threshold=0.7), torch.nn.Linear(8, 3), sl.LI())


def _recurrent() -> sl.Sequential:
    torch.manual_seed(11)
    rec = sl.RecurrentLIF(8, tau_mem=6.0, threshold=0.5)
    with torch.no_grad():
        rec.recurrent.weight.normal_(0.0, 0.4)
    return sl.Sequential(torch.nn.Linear(5, 8), rec, torch.nn.Linear(8, 3), sl.LI(tau_mem=10.0))


def _cuba() -> sl.Sequential:  # LI(tau_syn) -> subtract LIF: LI + the sub-graph (CubaLIF resets to v_reset)
    return sl.Sequential(torch.nn.Linear(5, 8), sl.LI(tau_mem=3.0), sl.LIF(tau_mem=7.0, threshold=1.5),
                         torch.nn.Linear(8, 3), sl.LI(tau_mem=10.0))


NETS = {"plain": _plain, "per_neuron": _per_neuron, "no_leak": _no_leak, "recurrent": _recurrent, "cuba": _cuba}


def _spiking(net) -> list[str]:
    return [k for k, m in net.named_children() if isinstance(m, sl.LIF)]


# ---------------------------------------------------------------------------------- against NIR's equations


@pytest.mark.parametrize("arch", list(NETS))
@pytest.mark.parametrize("dt", [1e-3, 1e-4])
def test_snnlab_network_matches_an_euler_simulation_of_the_exported_graph(arch, dt):
    torch.manual_seed(4)
    net = NETS[arch]().double().eval()
    graph = to_nir(net, dt=dt)
    (name,) = _spiking(net)
    assert isinstance(graph.nodes[name], nir.NIRGraph) and graph.nodes[name].metadata["snnlab_reset"] == "subtract"
    for seed in range(3):
        x = _strong_input((5,), seed).double()
        out, spikes = _run(net, x)
        ref_out, ref_spikes = _simulate(graph, x.numpy(), dt)
        assert list(ref_spikes) == [f"{name}.threshold"]
        np.testing.assert_array_equal(spikes[name].numpy(), ref_spikes[f"{name}.threshold"])
        np.testing.assert_allclose(out.numpy(), ref_out, rtol=1e-6, atol=1e-9)
        s = spikes[name]
        assert (s[1:] * s[:-1]).sum() > 10  # neurons fire on consecutive steps: the residual above threshold stays
    zero = NETS[arch]().double().eval()
    for m in zero.modules():
        if isinstance(m, sl.LIF):
            m.reset = "zero"
    zero.load_state_dict(net.state_dict())
    assert not torch.equal(_run(zero, x)[1][name], spikes[name])  # (the check tells the resets apart)


def test_exported_sub_graph_follows_the_documented_mapping():
    net = _per_neuron()
    g = to_nir(net, dt=2e-4)
    sub = g.nodes["1"]
    assert g.edges == [("input", "0"), ("0", "1"), ("1", "2"), ("2", "3"), ("3", "output")]
    assert sub.metadata == {"snnlab_layer": "LIF", "snnlab_reset": "subtract"}
    assert sorted(sub.edges) == sorted([("input", "membrane"), ("membrane", "threshold"), ("threshold", "reset"),
                                        ("reset", "membrane"), ("threshold", "output")])
    li, thr, scale = sub.nodes["membrane"], sub.nodes["threshold"], sub.nodes["reset"]
    assert isinstance(li, nir.LI) and isinstance(thr, nir.Threshold) and isinstance(scale, nir.Scale)
    tau = net[1].tau_mem.detach().double().numpy()
    np.testing.assert_allclose(li.tau, tau * 2e-4, rtol=1e-6)  # tau = tau_mem * dt (of the float32 beta)
    np.testing.assert_allclose(li.r, li.tau / 2e-4, rtol=1e-12)  # r = tau / dt: the input enters unscaled
    assert not li.v_leak.any()
    np.testing.assert_array_equal(thr.threshold, net[1].threshold.detach().numpy())
    beta = net[1].beta().detach().double().numpy()
    np.testing.assert_array_equal(scale.scale, -beta * net[1].threshold.detach().double().numpy())
    assert li.metadata["snnlab_learn_tau"] and li.metadata["snnlab_learn_threshold"]
    assert li.metadata["snnlab_n_neurons"] == 8
    # without leak: I (dv/dt = r I, r = 1/dt) and Scale(-threshold)
    sub = to_nir(_no_leak(), dt=DT).nodes["1"]
    assert isinstance(sub.nodes["membrane"], nir.I)
    np.testing.assert_allclose(sub.nodes["membrane"].r, [1 / DT] * 8)
    np.testing.assert_allclose(sub.nodes["reset"].scale, [-0.7] * 8, rtol=1e-7)
    # recurrent: a second loop Threshold -> Linear(W_rec) -> LI, both carrying the previous step's spikes
    net = _recurrent()
    sub = to_nir(net, dt=DT).nodes["1"]
    assert sub.metadata["snnlab_layer"] == "RecurrentLIF"
    assert {("threshold", "w_rec"), ("w_rec", "membrane"), ("threshold", "reset")} <= set(sub.edges)
    np.testing.assert_array_equal(sub.nodes["w_rec"].weight, net[1].recurrent.weight.detach().numpy())
    # the LI -> subtract LIF pair: two nodes, the LI and the sub-graph
    g = to_nir(_cuba(), dt=DT)
    assert [type(g.nodes[k]).__name__ for k in ("1", "2")] == ["LI", "NIRGraph"]


# ------------------------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_file_round_trip_gives_the_same_layers_values_and_outputs_bit_for_bit(dtype, tmp_path):
    for arch, make in NETS.items():
        torch.manual_seed(5)
        net = make().to(dtype).eval()
        nir.write(tmp_path / f"{arch}.nir", to_nir(net, dt=DT))
        back = from_nir(nir.read(tmp_path / f"{arch}.nir"), dtype=dtype)
        assert [type(m) for m in back] == [type(m) for m in net], arch
        for mine, theirs in zip(net, back):
            if isinstance(mine, sl.LIF):
                assert theirs.reset == "subtract" and theirs.n_neurons == mine.n_neurons, arch
                assert torch.equal(theirs.beta(), mine.beta()) and torch.equal(theirs.threshold, mine.threshold)
                assert (theirs.learn_tau, theirs.learn_threshold) == (mine.learn_tau, mine.learn_threshold)
        assert {k: v.shape for k, v in back.state_dict().items()} == {k: v.shape for k, v in net.state_dict().items()}
        for seed in range(2):
            x = _strong_input((5,), seed).to(dtype)
            (out, spikes), (out2, spikes2) = _run(net, x), _run(back, x)
            assert torch.equal(out, out2), arch
            assert all(torch.equal(spikes[k], spikes2[k]) and spikes[k].sum() > 0 for k in spikes), arch


def test_per_neuron_learnable_parameters_come_back_learnable_and_the_option_overrides():
    net = _per_neuron().eval()
    graph = to_nir(net, dt=DT)
    back = from_nir(graph)
    assert back[1].learn_tau and back[1].learn_threshold and back[1].n_neurons == 8
    assert torch.equal(back[1].tau_mem, net[1].tau_mem) and torch.equal(back[1].threshold, net[1].threshold)
    x = _strong_input((5,), 1)
    back(x).sum().backward()
    assert back[1].tau_mem.grad.shape == (8,) and back[1].threshold.grad.shape == (8,)
    fixed = from_nir(graph, learnable=False)
    assert not fixed[1].learn_tau and not fixed[1].learn_threshold and not list(fixed[1].parameters())
    with torch.no_grad():
        assert torch.equal(fixed(x), net(x))
    rec = from_nir(to_nir(_recurrent(), dt=DT), learnable=True)[1]
    assert isinstance(rec, sl.RecurrentLIF) and rec.learn_tau and rec.learn_threshold and rec.reset == "subtract"
    free = from_nir(to_nir(_no_leak(), dt=DT), learnable=True)[1]  # tau = inf stays fixed
    assert not free.learn_tau and free.learn_threshold and torch.equal(free.beta(), torch.tensor(1.0))


# ------------------------------------------------------------------------------------------------ foreign graphs


def _foreign_nodes(rng: np.random.Generator, recurrent: bool) -> dict:
    """The subtract pattern as another tool may write it: r = 1 (Norse's convention, input gain dt / tau), per-neuron
    taus and thresholds (in NIR's units, v = gain * snnlab's membrane) and the Scale -beta * threshold."""
    tau = np.array([2e-3, 5e-3, 1e-2, 4e-2])
    beta, thr = 1 - DT / tau, np.array([1.0, 2.0, 3.0, 4.0]) * DT / tau  # (snnlab's thresholds 1 to 4)
    nodes = {"membrane": nir.LI(tau=tau, r=np.ones(4), v_leak=np.zeros(4)), "threshold": nir.Threshold(threshold=thr),
             "reset": nir.Scale(scale=-beta * thr / (DT / tau))}  # the loop enters through the gain dt / tau too
    if recurrent:
        nodes["rec"] = nir.Linear(weight=rng.normal(size=(4, 4)) * 0.5)
    return nodes


def _flat(rng: np.random.Generator, recurrent: bool = False) -> "nir.NIRGraph":
    inner = _foreign_nodes(rng, recurrent)
    loop = [k for k in inner if k not in ("membrane", "threshold")]
    nodes = {"input": nir.Input(input_type=np.array([3])), "affine": nir.Affine(weight=rng.uniform(0.2, 1.0, (4, 3)),
             bias=np.zeros(4)), **inner, "readout": nir.Linear(weight=rng.normal(size=(2, 4))),
             "output": nir.Output(output_type=np.array([2]))}
    edges = [("input", "affine"), ("affine", "membrane"), ("membrane", "threshold"), ("threshold", "readout"),
             ("readout", "output")] + [("threshold", w) for w in loop] + [(w, "membrane") for w in loop]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


def _nested(rng: np.random.Generator, recurrent: bool = False) -> "nir.NIRGraph":
    inner = _foreign_nodes(rng, recurrent)
    loop = [k for k in inner if k not in ("membrane", "threshold")]
    sub = nir.NIRGraph(nodes={"in": nir.Input(input_type=np.array([4])), **inner,
                              "out": nir.Output(output_type=np.array([4]))},
                       edges=[("in", "membrane"), ("membrane", "threshold"), ("threshold", "out")]
                       + [("threshold", w) for w in loop] + [(w, "membrane") for w in loop], type_check=False)
    return nir.NIRGraph.from_list(nir.Affine(weight=rng.uniform(0.2, 1.0, (4, 3)), bias=np.zeros(4)), sub,
                                  nir.Linear(weight=rng.normal(size=(2, 4))), type_check=False)


@pytest.mark.parametrize("make", [_flat, _nested])
@pytest.mark.parametrize("recurrent", [False, True])
def test_foreign_graph_of_that_shape_imports_as_its_euler_simulation(make, recurrent):
    graph = make(np.random.default_rng(0), recurrent)
    net = from_nir(graph, dt=DT, dtype=torch.float64)
    kind = sl.RecurrentLIF if recurrent else sl.LIF
    assert [type(m) for m in net] == [torch.nn.Linear, kind, torch.nn.Linear] and net[1].reset == "subtract"
    assert not net[1].learn_tau and not net[1].learn_threshold  # no snnlab metadata: fixed values
    np.testing.assert_allclose(net[1].threshold.numpy(), [1.0, 2.0, 3.0, 4.0], rtol=1e-12)  # v_threshold / gain
    x = _strong_input((3,), 2, steps=60).double()
    out, spikes = _run(net, x)
    ref_out, ref_spikes = _simulate(graph, x.numpy(), DT)
    (ref,) = ref_spikes.values()
    assert (ref.sum(axis=(0, 1)) > 0).all() and (ref[1:] * ref[:-1]).sum() > 10  # every neuron, repeatedly
    np.testing.assert_array_equal(spikes["1"].numpy(), ref)
    np.testing.assert_allclose(out.numpy(), ref_out, rtol=1e-9, atol=1e-12)


# --------------------------------------------------------------------------------------------------- refusals


def _edit(graph: "nir.NIRGraph", **nodes) -> "nir.NIRGraph":
    graph.nodes.update(nodes)
    return graph


def test_import_refuses_other_reset_loops_and_shapes_naming_the_node():
    rng = np.random.default_rng(1)
    tau, thr = np.full(4, 5e-3), np.full(4, 0.5)
    li = lambda **kw: nir.LI(**{"tau": tau, "r": np.full(4, 5.0), "v_leak": np.zeros(4), **kw})  # noqa: E731
    cases = [
        # -threshold without the decay: the reset applied after the leak, another neuron
        (_edit(_flat(rng), membrane=li(), threshold=nir.Threshold(threshold=thr), reset=nir.Scale(scale=-thr)),
         r"node 'reset' \(Scale\) feeds back -0.5 per spike, but snnlab's subtract reset .* is -beta \* threshold / "
         r"gain = -0.4; another reset loop has no snnlab equivalent"),
        (_edit(_flat(rng), membrane=li(v_leak=np.full(4, 0.1))), r"node 'membrane' \(LI\) has v_leak != 0"),
        (_edit(_flat(rng), membrane=li(tau=np.full(4, 5e-4))), r"node 'membrane' \(LI\) has tau < dt"),
        (_edit(_flat(rng), membrane=li(), threshold=nir.Threshold(threshold=-thr), reset=nir.Scale(scale=0.8 * thr)),
         r"node 'threshold' \(Threshold\) has a threshold <= 0"),
        (_edit(_flat(rng, recurrent=True), rec=nir.Affine(weight=np.eye(4), bias=np.ones(4))),
         r"node 'rec' \(Affine\) is a recurrent Affine with a bias"),
        (_edit(_nested(rng, recurrent=True)), None),  # (a valid one: the nested name prefix below)
    ]
    for graph, message in cases[:-1]:
        with pytest.raises(ValueError, match=message):
            from_nir(graph, dt=DT)
    nested = cases[-1][0]
    nested.nodes["nirgraph"].nodes["rec"] = nir.Scale(scale=np.full(4, -0.1))  # two Scales in the loop
    with pytest.raises(ValueError, match=r"node 'nirgraph.threshold' \(Threshold\) feeds back to 'membrane' through "
                                         r"\['Scale', 'Scale'\]; snnlab imports one Scale"):
        from_nir(nested, dt=DT)
    # a Threshold without the loop, and a sub-graph with a Threshold in another shape
    plain = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([4])), "membrane": li(),
                                "threshold": nir.Threshold(threshold=thr),
                                "output": nir.Output(output_type=np.array([4]))},
                         edges=[("input", "membrane"), ("membrane", "threshold"), ("threshold", "output")])
    with pytest.raises(ValueError, match=r"node 'threshold' \(Threshold\) has no snnlab layer \(imported: .*the "
                                         r"subtract-reset pattern LI -> Threshold with Threshold -> Scale -> LI\)"):
        from_nir(plain, dt=DT)
    sub = _nested(rng).nodes["nirgraph"]
    sub.edges = [e for e in sub.edges if e != ("threshold", "out")] + [("membrane", "out")]
    with pytest.raises(ValueError, match=r"node 'nirgraph' \(NIRGraph\) holds a Threshold, but is not the "
                                         r"subtract-reset loop"):
        from_nir(nir.NIRGraph.from_list(nir.Linear(weight=np.eye(4)), sub, nir.Linear(weight=np.eye(4)),
                                        type_check=False), dt=DT)


def test_a_membrane_exactly_on_the_threshold_fires_in_snnlab_not_in_nir():
    """The documented convention: snnlab fires at h >= threshold, NIR's Threshold at v > threshold."""
    net = sl.Sequential(sl.LIF(beta=1.0, threshold=1.0, n_neurons=1))
    graph = to_nir(net, dt=DT)
    x = torch.tensor([0.5, 0.5, 0.25]).reshape(3, 1, 1).double()
    _, spikes = _run(net.double(), x)
    _, ref = _simulate(graph, x.numpy(), DT)
    assert spikes["0"].flatten().tolist() == [0.0, 1.0, 0.0] and ref["0.threshold"].flatten().tolist() == [0, 0, 1]
