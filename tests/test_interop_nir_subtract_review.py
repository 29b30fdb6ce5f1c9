"""snnlab.interop.nir, the subtract-reset sub-graph (review of its import): malformed graphs give ValueErrors naming
the node or edge (no KeyError / IndexError), a scalar membrane with per-neuron thresholds imports, a duplicated loop
edge is refused, reading at another dt says why; and the export's shapes and exactness beside convolutions,
TimeBatchNorm, DelayedLinear and clamped learned taus."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import snnlab as sl

nir = pytest.importorskip("nir")
from snnlab.interop.nir import from_nir, to_nir  # noqa: E402
from test_interop_nir_subtract import _run, _simulate  # noqa: E402  (an Euler simulation of NIR graphs with loops)

DT = 1e-3
THR = np.array([0.5, 0.5, 0.5, 0.5])


def _flat(extra_nodes: dict | None = None, extra_edges: list | None = None, **nodes) -> "nir.NIRGraph":
    """``in -> fc -> m (LI) -> t (Threshold) -> ro -> out`` with the reset loop ``t -> s (Scale) -> m`` (beta 0.8)."""
    base = {"in": nir.Input(input_type=np.array([3])), "fc": nir.Linear(weight=np.full((4, 3), 0.7)),
            "m": nir.LI(tau=np.full(4, 5e-3), r=np.full(4, 5.0), v_leak=np.zeros(4)),
            "t": nir.Threshold(threshold=THR), "s": nir.Scale(scale=-0.8 * THR),
            "ro": nir.Linear(weight=np.ones((2, 4))), "out": nir.Output(output_type=np.array([2]))}
    edges = [("in", "fc"), ("fc", "m"), ("m", "t"), ("t", "s"), ("s", "m"), ("t", "ro"), ("ro", "out")]
    return nir.NIRGraph(nodes={**base, **nodes, **(extra_nodes or {})}, edges=edges + (extra_edges or []),
                        type_check=False)


def _nested(edges_extra: list | None = None) -> "nir.NIRGraph":
    sub = nir.NIRGraph(nodes={"i": nir.Input(input_type=np.array([4])),
                              "mm": nir.LI(tau=np.full(4, 5e-3), r=np.full(4, 5.0), v_leak=np.zeros(4)),
                              "tt": nir.Threshold(threshold=THR), "ss": nir.Scale(scale=-0.8 * THR),
                              "o": nir.Output(output_type=np.array([4]))},
                       edges=[("i", "mm"), ("mm", "tt"), ("tt", "ss"), ("ss", "mm"), ("tt", "o")] + (edges_extra or []),
                       type_check=False)
    return nir.NIRGraph.from_list(nir.Linear(weight=np.full((4, 3), 0.7)), sub, nir.Linear(weight=np.ones((2, 4))),
                                  type_check=False)


def test_the_review_graphs_are_valid_before_their_edits():
    assert [type(m) for m in from_nir(_flat(), dt=DT)] == [torch.nn.Linear, sl.LIF, torch.nn.Linear]
    assert from_nir(_nested(), dt=DT)[1].reset == "subtract"


def test_a_nan_threshold_or_scale_is_a_value_error_naming_the_node_not_an_index_error():
    with pytest.raises(ValueError, match=r"node 't' \(Threshold\) has a threshold <= 0 or not finite \(nan"):
        from_nir(_flat(t=nir.Threshold(threshold=np.full(4, np.nan))), dt=DT)
    with pytest.raises(ValueError, match=r"node 's' \(Scale\) feeds back nan, \.\.\. per spike"):
        from_nir(_flat(s=nir.Scale(scale=np.array([np.nan, -0.4, np.inf, -0.4]))), dt=DT)
    with pytest.raises(ValueError, match=r"node 't' \(Threshold\) has a threshold <= 0 or not finite \(inf"):
        from_nir(_flat(t=nir.Threshold(threshold=np.full(4, np.inf)), s=nir.Scale(scale=np.full(4, -np.inf))), dt=DT)


def test_an_edge_to_a_missing_node_is_a_value_error_naming_the_edge_not_a_key_error():
    with pytest.raises(ValueError, match=r"from_nir: the graph has the edge \('t', 'nope'\), which does not join two "
                                         r"of its nodes"):
        from_nir(_flat(extra_edges=[("t", "nope")]), dt=DT)
    with pytest.raises(ValueError, match=r"the sub-graph 'nirgraph' has the edge \('tt', 'zz'\)"):
        from_nir(_nested([("tt", "zz")]), dt=DT)


def test_a_threshold_with_other_consumers_is_named_in_the_error_not_its_membrane():
    g = _flat({"x": nir.Linear(weight=np.ones((2, 4)))}, [("t", "x"), ("x", "out")])
    with pytest.raises(ValueError, match=r"node 't' \(Threshold\) has 2 successors \['ro', 'x'\] besides its reset "
                                         r"loop; from_nir imports chains only"):
        from_nir(g, dt=DT)


def test_a_duplicated_reset_edge_in_a_sub_graph_is_refused_as_in_a_flat_graph():
    """A simulator summing over the edges feeds the reset back twice: not snnlab's neuron."""
    graph = _nested([("ss", "mm")])
    x = torch.rand(30, 2, 3, generator=torch.Generator().manual_seed(0)).double() * 0.4
    _, twice = _simulate(graph, x.numpy(), DT)
    _, once = _simulate(_nested(), x.numpy(), DT)
    assert not np.array_equal(twice["nirgraph.tt"], once["nirgraph.tt"])  # (the duplicate changes the neuron)
    with pytest.raises(ValueError, match=r"node 'nirgraph' \(NIRGraph\) holds a Threshold, but is not the "
                                         r"subtract-reset loop"):
        from_nir(graph, dt=DT)
    with pytest.raises(ValueError, match=r"node 'm' \(LI\) has the predecessors \['fc', 's', 's'\]"):
        from_nir(_flat(extra_edges=[("s", "m")]), dt=DT)


def test_a_scalar_membrane_with_per_neuron_thresholds_imports_as_its_euler_simulation():
    thr = np.array([0.5, 1.0, 1.5, 2.0])
    graph = _flat(m=nir.LI(tau=np.array(5e-3), r=np.array(5.0), v_leak=np.array(0.0)),
                  t=nir.Threshold(threshold=thr), s=nir.Scale(scale=-0.8 * thr))
    net = from_nir(graph, dt=DT, dtype=torch.float64)
    assert net[1].reset == "subtract" and net[1].n_neurons == 4
    np.testing.assert_array_equal(net[1].threshold.numpy(), thr)
    x = (torch.rand(40, 3, 3, generator=torch.Generator().manual_seed(1)) < 0.5).double() * 3
    out, spikes = _run(net, x)
    ref_out, ref = _simulate(graph, x.numpy(), DT)
    assert ref["t"].sum() > 20
    np.testing.assert_array_equal(spikes["1"].numpy(), ref["t"])
    np.testing.assert_allclose(out.numpy(), ref_out, rtol=1e-12)
    # a scalar Scale and Threshold beside a per-neuron membrane broadcast too
    tau = np.array([2e-3, 5e-3, 1e-2, 4e-2])
    graph = _flat(m=nir.LI(tau=tau, r=tau / DT, v_leak=np.zeros(4)), t=nir.Threshold(threshold=np.array(0.5)),
                  s=nir.Scale(scale=-(1 - DT / tau) * 0.5))
    np.testing.assert_allclose(from_nir(graph, dt=DT, dtype=torch.float64)[1].beta().numpy(), 1 - DT / tau)


def test_reading_an_snnlab_subtract_graph_at_another_dt_says_to_read_it_at_its_own():
    graph = to_nir(sl.Sequential(torch.nn.Linear(3, 4), sl.LIF(tau_mem=10.0)), dt=1e-3)
    assert from_nir(graph, dt=1e-3)[1].reset == "subtract"
    with pytest.raises(ValueError, match=r"node '1.reset' \(Scale\) feeds back -0.9 per spike.* = -0.4; another reset "
                                         r"loop has no snnlab equivalent \(read at dt = 0.002 s, written at "
                                         r"metadata\['dt'\] = 0.001 s: .*read the graph at the dt it was written at\)"):
        from_nir(graph, dt=2e-3)
    with pytest.raises(ValueError, match=r"no snnlab equivalent$"):  # (a graph without metadata['dt']: no hint)
        from_nir(_flat(s=nir.Scale(scale=-THR)), dt=DT)


# ---------------------------------------------------------------------- export beside other layers (no fixes)


def _same(net: sl.Sequential, x: torch.Tensor, tmp_path, **kw) -> tuple["nir.NIRGraph", sl.Sequential]:
    nir.write(tmp_path / "g.nir", to_nir(net, dt=DT, **kw))
    graph = nir.read(tmp_path / "g.nir")
    back = from_nir(graph)
    assert [type(m) for m in back] == [type(m) for m in net]
    with torch.no_grad():
        assert torch.equal(back(x), net(x))
    return graph, back


def test_a_subtract_lif_after_a_convolution_has_the_neuron_shape_c_h_w_in_every_node(tmp_path):
    torch.manual_seed(0)
    net = sl.Sequential(sl.TimeDistributed(torch.nn.Conv2d(2, 3, 3, padding=1)), sl.LIF(tau_mem=4.0, threshold=0.3),
                        sl.TimeDistributed(torch.nn.AvgPool2d(2)), torch.nn.Flatten(2), torch.nn.Linear(12, 5),
                        sl.LIF(tau_mem=3.0)).eval()
    x = (torch.rand(12, 2, 2, 4, 4) < 0.5).float() * 2
    graph, back = _same(net, x, tmp_path, input_shape=(2, 4, 4))
    sub = graph.nodes["1"]
    for key in ("membrane", "threshold", "reset"):
        assert tuple(sub.nodes[key].input_type["input"]) == (3, 4, 4), key
    assert back[1].reset == "subtract" and back[1].n_neurons is None
    assert _run(net, x)[1]["1"].sum() > 0


def test_time_batch_norm_and_a_rounded_delayed_linear_before_subtract_neurons_read_back():
    torch.manual_seed(1)
    dl = sl.DelayedLinear(5, 6, 4)
    dl.round_delays()
    net = sl.Sequential(torch.nn.Linear(5, 5), sl.TimeBatchNorm(5), sl.LIF(tau_mem=3.0), dl, sl.LIF(threshold=0.4),
                        torch.nn.Linear(6, 4), sl.RecurrentLIF(4, tau_mem=5.0)).eval()
    with torch.no_grad():
        net[1].running_mean.normal_()
        net[1].running_var.uniform_(0.5, 2.0)
    x = torch.rand(15, 3, 5) * 3
    folded = sl.Sequential(*[m for m in net if not isinstance(m, sl.TimeBatchNorm)])
    graph = to_nir(net, dt=DT)
    assert [type(v).__name__ for v in graph.nodes.values()] == [
        "Input", "Affine", "NIRGraph", "Linear", "Delay", "Linear", "NIRGraph", "Affine", "NIRGraph", "Output"]
    back = from_nir(graph)
    assert [type(m) for m in back] == [type(m) for m in folded]
    with torch.no_grad():  # (the folded batch norm rounds differently: the same to float32 rounding)
        torch.testing.assert_close(back(x), net(x), rtol=1e-5, atol=1e-5)


def test_learned_taus_clamped_at_one_step_and_huge_ones_read_back_exactly(tmp_path):
    lif = sl.LIF(tau_mem=4.0, learn_tau=True, n_neurons=6)
    with torch.no_grad():
        lif.tau_mem.copy_(torch.tensor([0.5, 1.0, 1.0001, 2.0, 1e6, 3.0]))
    net = sl.Sequential(torch.nn.Linear(5, 6), lif).eval()
    _, back = _same(net, torch.rand(20, 3, 5) * 3, tmp_path)
    assert back[1].learn_tau and torch.equal(back[1].tau_mem, lif.tau_mem)


def test_a_nan_threshold_of_a_zero_reset_lif_node_is_refused_too():
    """(Beside the subtract pattern: a LIF node's NaN v_threshold was imported as a LIF that never fires.)"""
    lif = nir.LIF(tau=np.full(2, 5e-3), r=np.full(2, 5.0), v_leak=np.zeros(2), v_threshold=np.array([1.0, np.nan]),
                  v_reset=np.zeros(2))
    with pytest.raises(ValueError, match=r"node 'lif' \(LIF\) has a threshold that is not finite \(v_threshold nan"):
        from_nir(nir.NIRGraph.from_list(nir.Linear(weight=np.ones((2, 3))), lif), dt=DT)
