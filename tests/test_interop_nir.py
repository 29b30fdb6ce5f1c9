"""snnlab.interop.nir: export to NIR and import back (round trips, the mapping against NIR's equations, refusals)."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import snnlab as sl

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


ARCHS = {"mlp": (_mlp, (6,)), "per_neuron": (_per_neuron, (6,)), "conv2d": (_conv, (2, 16, 16)),
         "conv1d": (_conv1d, (3, 12)), "recurrent": (_recurrent, (6,)), "delayed": (_delayed, (6,)),
         "no_leak": (_nested_no_leak, (6,))}


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
    assert back[1].n_neurons == 10 and not back[1].learn_tau  # learned values exported as fixed ones
    assert torch.equal(back[1].threshold, torch.linspace(0.2, 0.9, 10))


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


def _euler(graph, x: np.ndarray, dt: float) -> tuple[np.ndarray, list[np.ndarray]]:
    """Forward Euler of a chain NIR graph, from NIR's definitions only: LIF ``tau dv/dt = (v_leak - v) + r I``,
    spike when ``v > v_threshold``, then ``v = v_reset``; LI the same without spikes; a sub-graph LIF <-> Linear
    feeds the previous step's spikes back. ``x`` [T, B, N] -> (output, spikes of every spiking node)."""
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


@pytest.mark.parametrize("arch", ["mlp", "per_neuron", "recurrent"])
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
    (sl.LIF(), r"layer '1' \(LIF\) has reset='subtract'; NIR's LIF sets v = v_reset"),
    (sl.LIF(reset="zero", max_spikes=1), r"max_spikes=1; NIR has no spike budget"),
    (sl.LIF(reset="zero", noise="gaussian", noisy_eval=True), r"noise='gaussian' with noisy_eval=True"),
    (sl.LIF(reset="zero", mask_p=0.2, mask_at_inference=True), r"mask_p=0.2 with mask_at_inference=True"),
    (sl.RecurrentLIF(4), r"layer '1' \(RecurrentLIF\) has reset='subtract'"),
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
        (nir.NIRGraph.from_list(affine, lif(v_leak=np.ones(2))), r"node 'lif' \(LIF\) has v_leak != 0"),
        (nir.NIRGraph.from_list(affine, lif(v_reset=np.full(2, -1.0))), r"has v_reset != 0"),
        (nir.NIRGraph.from_list(affine, lif(tau=np.full(2, 1e-4))), r"has tau < dt"),
        (nir.NIRGraph.from_list(affine, nir.LI(tau=np.full(2, 0.01), r=np.ones(2), v_leak=np.zeros(2))),
         r"node 'li' \(LI\) has an input gain"),
        (nir.NIRGraph.from_list(affine, nir.CubaLIF(tau_syn=np.ones(2), tau_mem=np.ones(2), r=np.ones(2),
                                                    v_leak=np.zeros(2), v_threshold=np.ones(2))),
         r"node 'cubalif' \(CubaLIF\) has no snnlab layer"),
    ]
    for graph, message in cases:
        with pytest.raises(ValueError, match=message):
            from_nir(graph, dt=1e-3)
    fan = nir.NIRGraph(nodes={"input": nir.Input(input_type=np.array([2])), "a": affine, "b": lif(), "c": lif(),
                              "output": nir.Output(output_type=np.array([2]))},
                       edges=[("input", "a"), ("a", "b"), ("a", "c"), ("b", "output"), ("c", "output")])
    with pytest.raises(ValueError, match=r"node 'a' \(Affine\) has 2 successors"):
        from_nir(fan, dt=1e-3)
    with pytest.raises(ValueError, match=r"has no metadata\['dt'\]; give dt="):
        from_nir(nir.NIRGraph.from_list(affine))


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
