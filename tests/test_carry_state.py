"""carry_state: LIF / LI layers that continue the membrane from call to call (truncated BPTT, streaming inference).

A sequence fed in chunks must give what one call on the whole sequence gives: spikes, recorded membranes and input
gradients, on every backend; parameter gradients as truncated BPTT (the carried membrane detached) computes them.
What cannot be carried exactly is refused with a message naming the layer.

triton_device must be imported before triton: it sets TRITON_INTERPRET=1 for the CPU run (see test_kernels_triton.py).
"""
from triton_device import DEVICE, ON_GPU, triton_kernels_ready  # noqa: I001  (before triton)

import copy  # noqa: E402
import io  # noqa: E402
import math  # noqa: E402
import pickle  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

import snnlab as sl  # noqa: E402
from snnlab.core import network, neurons  # noqa: E402
from snnlab.kernels.lif_cpu import cpu_kernel_available  # noqa: E402
from snnlab.kernels.surrogate_math import surrogate_grad  # noqa: E402

T = 14
CHUNKS = (1, 3, 7)
_TRITON_READY, _TRITON_WHY = triton_kernels_ready("snnlab.kernels.lif_triton")


def _backend_case(backend: str):
    """(backend, device) as a parameter, skipped where that backend cannot run here."""
    marks = []
    if backend == "cpu":
        marks.append(pytest.mark.skipif(not cpu_kernel_available(), reason="the C loop did not build here"))
    if backend == "triton":
        marks.append(pytest.mark.skipif(not _TRITON_READY, reason=_TRITON_WHY))
    device = DEVICE if backend == "triton" else torch.device("cpu")
    return pytest.param(backend, device, marks=marks, id=backend)


BACKENDS = [_backend_case(b) for b in ("torch", "cpu", "triton")]


def _lif(backend: str, device: torch.device, reset: str = "subtract", **kw) -> sl.LIF:
    """A per-neuron LIF (time constants and thresholds differ per neuron: the broadcast is checked too)."""
    lif = sl.LIF(tau_mem=6.0, reset=reset, n_neurons=5, learn_threshold=True, backend=backend, **kw)
    lif.spread_tau_(0.5, torch.Generator().manual_seed(3))
    with torch.no_grad():
        lif.threshold.copy_(torch.linspace(0.4, 0.9, 5))
    return lif.to(device)


def _input(device: torch.device = torch.device("cpu"), dtype: torch.dtype = torch.float32, steps: int = T,
           batch: int = 3) -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    return (torch.rand(steps, batch, 5, generator=g) * 0.7).to(device=device, dtype=dtype)


def _whole(layer: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One call on the whole sequence from rest: (output, recorded membrane)."""
    net = sl.Sequential(layer)
    with sl.Monitor(net) as mon:
        out = net(x)
    return out, mon.membrane["0"]


def _chunked(layer: torch.nn.Module, x: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The same sequence fed ``size`` steps at a time: (outputs, recorded membranes), joined along time."""
    net = sl.Sequential(layer)
    outs, membranes = [], []
    with sl.Monitor(net) as mon:
        for start in range(0, x.shape[0], size):
            outs.append(net(x[start:start + size]))
            membranes.append(mon.membrane["0"])
    return torch.cat(outs), torch.cat(membranes)


def _assert_same(actual: torch.Tensor, expected: torch.Tensor, exact: bool) -> None:
    if exact:
        assert torch.equal(actual, expected), (actual - expected).abs().max()
    else:  # a compiled GPU kernel may fuse beta * v + x where the injected first step rounds once more
        torch.testing.assert_close(actual, expected, rtol=0.0, atol=2e-6)


# ----------------------------------------------------------------------------- chunks = the whole sequence
@pytest.mark.parametrize("size", CHUNKS)
@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("backend,device", BACKENDS)
def test_lif_chunks_give_the_whole_sequences_spikes_and_membranes(backend, device, reset, size):
    x = _input(device)
    spikes, membrane = _whole(_lif(backend, device, reset), x)
    assert 0 < spikes.sum() < spikes.numel() / 2  # spikes, and resets, to carry
    layer = _lif(backend, device, reset, carry_state=True)
    c_spikes, c_membrane = _chunked(layer, x, size)
    exact = not ON_GPU or backend != "triton"
    assert torch.equal(c_spikes, spikes)
    _assert_same(c_membrane, membrane, exact)
    # without carry_state the chunks start from rest: other dynamics
    assert not torch.equal(_chunked(_lif(backend, device, reset), x, size)[1], membrane)


@pytest.mark.parametrize("size", CHUNKS)
def test_li_chunks_give_the_whole_sequences_output(size):
    x = _input() - 0.3
    li = sl.LI(tau_mem=4.0, n_neurons=5)
    whole, _ = _whole(li, x)
    li.carry_state = True
    chunks, recorded = _chunked(li, x, size)
    assert torch.equal(chunks, whole) and torch.equal(recorded, whole)
    assert torch.equal(li.carried_membrane, whole[-1])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_chunks_give_the_whole_sequence_with_a_float32_membrane(dtype):
    x = _input(dtype=dtype)
    spikes, membrane = _whole(_lif("auto", torch.device("cpu")), x)
    layer = _lif("auto", torch.device("cpu"), carry_state=True)
    c_spikes, c_membrane = _chunked(layer, x, 3)
    assert c_spikes.dtype == dtype and c_membrane.dtype == dtype
    assert torch.equal(c_spikes, spikes) and torch.equal(c_membrane, membrane)
    assert layer.carried_membrane.dtype == torch.float32  # kept as the layer computes it, not rounded to half
    li = sl.LI(tau_mem=3.0)
    whole = li(x)
    li.carry_state = True
    assert torch.equal(torch.cat([li(x[t:t + 4]) for t in range(0, T, 4)]), whole)


def test_an_empty_chunk_keeps_the_carried_membrane():
    x = _input()
    layer = _lif("torch", torch.device("cpu"), carry_state=True)
    first = layer(x[:5])
    kept = layer.carried_membrane.clone()
    assert layer(x[5:5]).shape == (0, 3, 5)
    assert torch.equal(layer.carried_membrane, kept)
    assert torch.equal(torch.cat([first, layer(x[5:])]), _lif("torch", torch.device("cpu"))(x))


def test_the_carried_membrane_is_the_post_reset_membrane():
    lif = sl.LIF(beta=0.5, threshold=1.0, carry_state=True, backend="torch")
    lif(torch.tensor([[[0.6]], [[0.9]]]))  # h = 0.6, then 0.3 + 0.9 = 1.2: a spike, reset to 0.2
    assert lif.carried_membrane.tolist() == [[pytest.approx(0.2)]]
    zero = sl.LIF(beta=0.5, threshold=1.0, reset="zero", carry_state=True, backend="torch")
    zero(torch.tensor([[[0.6]], [[0.9]]]))
    assert zero.carried_membrane.tolist() == [[0.0]]


# ----------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("backend,device", BACKENDS)
def test_the_last_chunks_input_gradient_is_the_whole_sequences(backend, device, reset):
    x = _input(device)
    weight = torch.linspace(-1.0, 2.0, T * 3 * 5, device=device).view(T, 3, 5)
    cut = T - 4
    whole_x = x.clone().requires_grad_(True)
    out = _lif(backend, device, reset)(whole_x)
    (out[cut:] * weight[cut:]).sum().backward()
    layer = _lif(backend, device, reset, carry_state=True)
    layer(x[:cut])
    last = x[cut:].clone().requires_grad_(True)
    (layer(last) * weight[cut:]).sum().backward()
    assert last.grad.abs().sum() > 0
    _assert_same(last.grad, whole_x.grad[cut:], exact=not ON_GPU or backend != "triton")


class _Heaviside(torch.autograd.Function):
    """The spike with the atan surrogate's backward: the reference step loop's."""

    @staticmethod
    def forward(ctx, u):
        ctx.save_for_backward(u)
        return (u >= 0).to(u.dtype)

    @staticmethod
    def backward(ctx, grad):
        (u,) = ctx.saved_tensors
        return grad * surrogate_grad("atan", u, 2.0)


def _reference_tbptt(layer: sl.LIF, x: torch.Tensor, size: int, weight: torch.Tensor) -> dict[str, torch.Tensor]:
    """Truncated BPTT written as a per-step autograd loop: the membrane is detached between chunks, each chunk's
    loss backpropagated on its own; returns the accumulated parameter gradients."""
    layer.zero_grad(set_to_none=True)
    v = torch.zeros_like(x[0])
    for start in range(0, x.shape[0], size):
        v = v.detach()
        outs = []
        for t in range(start, min(start + size, x.shape[0])):
            h = layer.beta() * v + x[t]
            s = _Heaviside.apply(h - layer.threshold)
            v = h - layer.threshold * s if layer.reset == "subtract" else h * (1.0 - s)
            outs.append(s)
        (torch.stack(outs) * weight[start:start + size]).sum().backward()
    return {name: p.grad.clone() for name, p in layer.named_parameters()}


def _chunked_grads(layer: sl.LIF, x: torch.Tensor, size: int, weight: torch.Tensor) -> dict[str, torch.Tensor]:
    layer.zero_grad(set_to_none=True)
    for start in range(0, x.shape[0], size):
        (layer(x[start:start + size]) * weight[start:start + size]).sum().backward()
    return {name: p.grad.clone() for name, p in layer.named_parameters()}


@pytest.mark.parametrize("size", CHUNKS)
@pytest.mark.parametrize("reset", ["subtract", "zero"])
def test_parameter_gradients_are_truncated_bptts(reset, size):
    """beta (through a learned per-neuron tau_mem) and the threshold, against the detached-state step loop, in
    float64 (so the two sums agree to rounding)."""
    x = _input(dtype=torch.float64) * 1.5
    weight = torch.linspace(-1.0, 2.0, T * 3 * 5, dtype=torch.float64).view(T, 3, 5)
    layer = sl.LIF(tau_mem=6.0, reset=reset, n_neurons=5, learn_tau=True, learn_threshold=True, backend="torch")
    layer.spread_tau_(0.5, torch.Generator().manual_seed(3))
    layer = layer.double()
    expected = _reference_tbptt(layer, x, size, weight)
    layer.carry_state = True
    got = _chunked_grads(layer, x, size, weight)
    assert set(got) == {"tau_mem", "threshold"}
    for name in got:
        assert expected[name].abs().sum() > 0
        torch.testing.assert_close(got[name], expected[name], rtol=1e-9, atol=1e-12, msg=name)
    if size < T:  # not the gradient of the whole sequence: nothing flows into earlier chunks
        layer.carry_state = False
        whole = _chunked_grads(layer, x, T, weight)
        assert not torch.allclose(whole["tau_mem"], got["tau_mem"])


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_fused_backends_parameter_gradients_match_the_torch_path(backend, device):
    x = _input(device) * 1.5
    weight = torch.linspace(-1.0, 2.0, T * 3 * 5, device=device).view(T, 3, 5)
    expected = _chunked_grads(_lif("torch", device, carry_state=True), x, 3, weight)
    got = _chunked_grads(_lif(backend, device, carry_state=True), x, 3, weight)
    torch.testing.assert_close(got["threshold"], expected["threshold"], rtol=1e-5, atol=1e-5)


def test_li_gradients_are_truncated_bptts():
    x = _input(dtype=torch.float64).requires_grad_(True)
    li = sl.LI(tau_mem=4.0, n_neurons=5, learn_tau=True).double()
    li.carry_state = True
    li(x[:6])
    (li(x[6:]) ** 2).sum().backward()
    got_x, got_tau = x.grad.clone(), li.tau_mem.grad.clone()
    x.grad = None
    li.tau_mem.grad = None
    beta, h, outs = li.beta(), torch.zeros_like(x[0]), []  # the reference: a step loop, detached at step 6
    for t in range(T):
        h = (h.detach() if t == 6 else h) * beta + x[t]
        outs.append(h)
    (torch.stack(outs[6:]) ** 2).sum().backward()
    assert torch.equal(got_x[:6], torch.zeros_like(got_x[:6]))  # the first chunk is not in this graph
    torch.testing.assert_close(got_x, x.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(got_tau, li.tau_mem.grad, rtol=1e-9, atol=1e-12)


# ----------------------------------------------------------------------------- refusals and mismatches
def test_a_spike_cap_is_refused():
    with pytest.raises(ValueError, match=r"LIF: carry_state=True is not available: max_spikes=1 .*count"):
        sl.LIF(max_spikes=1, carry_state=True)
    lif = sl.LIF(max_spikes=2)
    with pytest.raises(ValueError, match=r"LIF: carry_state=True is not available: max_spikes=2"):
        lif.carry_state = True
    assert lif.carry_state is False
    lif = sl.LIF(carry_state=True)
    lif.max_spikes = 3  # set afterwards: refused at the call
    with pytest.raises(ValueError, match=r"LIF: carry_state=True cannot carry this call's membrane: max_spikes=3"):
        lif(torch.rand(4, 2, 3))


def test_a_noisy_neuron_is_refused_only_where_its_output_is_masked():
    x = _input()
    lif = sl.LIF(noise="gaussian", noise_scale=0.2, mask_p=0.3, seed=0, carry_state=True)
    with pytest.raises(ValueError, match=r"LIF: carry_state=True cannot carry this call's membrane: a noisy neuron "
                                         r"\(noise='gaussian'\).*mask_p=0.3"):
        lif(x)
    lif.eval()  # deterministic, unmasked at inference: carried exactly
    deterministic = sl.LIF(mask_p=0.3, carry_state=False).eval()
    assert torch.equal(torch.cat([lif(x[:5]), lif(x[5:])]), deterministic(x))
    unmasked = sl.LIF(noise="gaussian", noise_scale=0.2, seed=0, carry_state=True)  # noisy, unmasked: its own spikes
    unmasked.record = True
    spikes = unmasked(x[:5])
    h = unmasked.last_membrane[-1]
    assert torch.equal(unmasked.carried_membrane, h - spikes[-1])


def test_a_masked_deterministic_neuron_resets_by_its_own_spikes():
    """Masking drops transmitted spikes, not the neuron's own: its membrane is the unmasked neuron's, chunk or not."""
    x = _input()
    _, membrane = _whole(_lif("torch", torch.device("cpu")), x)
    for backend, device in (("torch", torch.device("cpu")), ("cpu", torch.device("cpu"))):
        if backend == "cpu" and not cpu_kernel_available():
            continue
        masked = _lif(backend, device, mask_p=0.5, seed=1, carry_state=True)
        out, c_membrane = _chunked(masked, x, 3)
        assert torch.equal(c_membrane, membrane), backend
        assert out.sum() < (c_membrane >= masked.threshold.detach()).sum()  # some spikes were masked


@pytest.mark.parametrize("make,name", [(lambda: sl.ALIF(), "ALIF"), (lambda: sl.RecurrentLIF(3), "RecurrentLIF"),
                                       (lambda: sl.ALIF(n_neurons=3, recurrent=True), "ALIF")])
def test_adaptive_and_recurrent_layers_refuse_to_carry_state(make, name):
    layer = make()
    assert layer.carry_state is False
    with pytest.raises(ValueError, match=rf"^{name}: carry_state=True is not available: .*whole sequences"):
        layer.carry_state = True
    assert layer.carry_state is False
    layer.carry_state = False  # (off is fine)
    net = sl.Sequential(sl.LIF(), torch.nn.Linear(3, 3), layer)
    with pytest.raises(ValueError, match=rf"carrying_state: layer '2' \({name}\) cannot carry its state"):
        with sl.carrying_state(net):
            pass
    assert net[0].carry_state is False  # nothing was changed


def test_a_new_batch_size_dtype_or_device_needs_reset_state():
    lif = sl.LIF(carry_state=True)
    lif(torch.rand(4, 2, 3))
    for x, what in ((torch.rand(4, 5, 3), r"\(2, 3\) torch.float32 on cpu, but this call's steps are \(5, 3\)"),
                    (torch.rand(4, 2, 3, dtype=torch.float64), r"computed in torch.float64"),
                    (torch.rand(4, 2, 3, device="meta"), r"on meta")):
        with pytest.raises(ValueError, match=what + r".*call LIF.reset_state\(\) first"):
            lif(x)
    lif.reset_state()
    assert lif(torch.rand(4, 5, 3)).shape == (4, 5, 3)
    li = sl.LI(carry_state=True)
    li(torch.rand(2, 2, 3))
    with pytest.raises(ValueError, match=r"LI: carry_state=True: .*call LI.reset_state\(\) first"):
        li(torch.rand(2, 1, 3))
    # float16 after float32 is fine: both compute in float32
    lif.reset_state()
    lif(torch.rand(4, 2, 3))
    assert lif(torch.rand(4, 2, 3).half()).dtype == torch.float16


def test_carry_state_is_a_flag():
    with pytest.raises(TypeError, match=r"LIF: carry_state must be True or False, got str 'yes'"):
        sl.LIF(carry_state="yes")
    li = sl.LI()
    with pytest.raises(TypeError, match=r"LI: carry_state must be True or False"):
        li.carry_state = None
    assert repr(sl.LIF(carry_state=True)).endswith(", carry_state=True)") and "carry_state" not in repr(sl.LIF())
    assert repr(sl.LI(carry_state=True)) == "LI(tau_mem=10, carry_state=True)"


# ----------------------------------------------------------------------------- reset_state, the helpers
def test_reset_state_and_switching_off_start_from_rest():
    x = _input()
    lif = sl.LIF(tau_mem=5.0, threshold=0.5, carry_state=True)
    first = lif(x)
    assert lif.carried_membrane is not None and not torch.equal(lif(x), first)  # continued from the first call
    lif.reset_state()
    assert lif.carried_membrane is None and torch.equal(lif(x), first)
    lif.carry_state = False
    assert lif.carried_membrane is None and torch.equal(lif(x), first) and lif.carried_membrane is None


def _model() -> sl.Sequential:
    torch.manual_seed(0)
    return sl.Sequential(torch.nn.Linear(4, 6), sl.LIF(tau_mem=4.0, threshold=0.3), torch.nn.Linear(6, 5),
                         sl.LIF(tau_mem=3.0, threshold=0.2, carry_state=True), torch.nn.Linear(5, 2), sl.LI())


def test_carrying_state_turns_it_on_for_the_block_and_switches_off_what_it_turned_on():
    net = _model()
    x = torch.rand(12, 2, 4)
    whole = net(x)  # (layer 3 carries: give it a membrane before the block)
    kept = net[3].carried_membrane
    with sl.carrying_state(net) as same:
        assert same is net and all(net[i].carry_state for i in (1, 3, 5))
        assert net[1].carried_membrane is None and net[3].carried_membrane is kept  # (on already: kept)
        sl.reset_states(net)
        chunks = torch.cat([net(x[t:t + 4]) for t in range(0, 12, 4)])
    assert [net[i].carry_state for i in (1, 3, 5)] == [False, True, False]
    assert net[1].carried_membrane is None and net[5].carried_membrane is None
    assert net[3].carry_state and net[3].carried_membrane is not kept  # (carrying before: it carries on from the block)
    sl.reset_states(net)
    torch.testing.assert_close(chunks, net(x), rtol=0.0, atol=1e-6)  # (the Linear sums may round apart)
    assert whole.shape == chunks.shape
    kept = net[3].carried_membrane
    with pytest.raises(KeyError):  # an error in the block: the settings come back all the same
        with sl.carrying_state(net):
            net(x)
            raise KeyError("stop")
    assert [net[i].carry_state for i in (1, 3, 5)] == [False, True, False]
    assert net[1].carried_membrane is None and net[5].carried_membrane is None and net[3].carried_membrane is not None


def test_reset_states_drops_every_layers_membrane():
    net = _model()
    with sl.carrying_state(net):
        net(torch.rand(3, 2, 4))
        assert all(net[i].carried_membrane is not None for i in (1, 3, 5))
        sl.reset_states(net)
        assert all(net[i].carried_membrane is None for i in (1, 3, 5))
    lone = sl.LIF(carry_state=True)
    lone(torch.rand(2, 1, 3))
    network.reset_states(lone)  # the model may be the layer itself
    assert lone.carried_membrane is None


def test_the_helpers_check_their_model():
    with pytest.raises(TypeError, match=r"reset_states: model must be a torch.nn.Module, got list"):
        sl.reset_states([sl.LIF()])
    with pytest.raises(TypeError, match=r"carrying_state: model must be a torch.nn.Module, got str"):
        with sl.carrying_state("net"):
            pass
    with pytest.warns(UserWarning, match=r"carrying_state: Linear has no neuron layer"):
        with sl.carrying_state(torch.nn.Linear(2, 2)):
            pass
    assert sl.carrying_state is network.carrying_state and sl.reset_states is network.reset_states


# ----------------------------------------------------------------------------- state dict, copies, modes
def test_the_carried_membrane_is_not_saved_nor_copied():
    lif = _lif("torch", torch.device("cpu"), carry_state=True)
    fresh = _lif("torch", torch.device("cpu"))
    lif(_input())
    assert lif.carried_membrane is not None
    state = lif.state_dict()
    assert list(state) == list(fresh.state_dict())  # runtime state, not a buffer
    fresh.load_state_dict(state)
    for clone in (copy.deepcopy(lif), pickle.loads(pickle.dumps(lif))):
        assert clone.carry_state is True and clone.carried_membrane is None  # a copy is a new stream
    buffer = io.BytesIO()
    torch.save(lif, buffer)
    buffer.seek(0)
    assert torch.load(buffer, weights_only=False).carried_membrane is None
    assert lif.carried_membrane is not None  # (the original keeps it)
    kept = lif.carried_membrane
    lif.eval()
    lif.train()
    assert lif.carried_membrane is kept  # the mode does not reset it


def test_a_layer_pickled_before_carry_state_existed_runs_without_it():
    lif = sl.LIF()
    del lif.__dict__["carry_state"], lif.__dict__["_carried"]
    restored = pickle.loads(pickle.dumps(lif))
    assert restored.carry_state is False and restored(torch.rand(3, 1, 2)).shape == (3, 1, 2)


def test_the_docstrings_say_how_state_is_carried():
    for layer in (sl.LIF, sl.LI):
        doc = " ".join(layer.__doc__.split())
        assert "no state is carried between calls unless ``carry_state=True``" in doc, layer.__name__
    assert "carry_state" in neurons.LIF.reset_state.__doc__


# ----------------------------------------------------------------------------- graphs and transforms
def test_fullgraph_compile_carries_the_state_as_eager_does():
    torch._dynamo.reset()
    try:
        eager = sl.Sequential(_lif("torch", torch.device("cpu"), carry_state=True), sl.LI(carry_state=True))
        model = copy.deepcopy(eager)
        compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
        x = _input()
        for start in range(0, T, 5):
            assert torch.equal(compiled(x[start:start + 5]), eager(x[start:start + 5]))
        assert torch.equal(model[0].carried_membrane, eager[0].carried_membrane)
        assert torch.equal(model[1].carried_membrane, eager[1].carried_membrane)
    finally:
        torch._dynamo.reset()


@pytest.mark.parametrize("strict", [True, False])
def test_export_refuses_carry_state(strict):
    for layer in (sl.LIF(carry_state=True), sl.LI(carry_state=True)):
        name = type(layer).__name__
        with pytest.raises(Exception, match=rf"{name}: carry_state=True keeps the membrane in the layer from call to "
                                            r"call, which an exported program cannot hold"):
            torch.export.export(layer, (torch.rand(4, 2, 3),), strict=strict)
    assert isinstance(torch.export.export(sl.LIF(backend="torch"), (torch.rand(4, 2, 3),)),
                      torch.export.ExportedProgram)  # (off: exports as before)


def test_jit_trace_and_func_transforms_refuse_carry_state():
    lif = sl.LIF(carry_state=True, backend="torch")
    with pytest.raises(RuntimeError, match=r"LIF: carry_state=True .*torch.jit.trace would freeze"):
        torch.jit.trace(lif, torch.rand(4, 2, 3))
    for transform in (torch.func.vmap, torch.func.grad):
        def run(x):
            return lif(x).sum()
        with pytest.raises(RuntimeError, match=r"LIF: carry_state=True cannot run under torch.func transforms"):
            transform(run)(torch.rand(2, 4, 2, 3) if transform is torch.func.vmap else torch.rand(4, 2, 3))
    with pytest.raises(RuntimeError, match=r"LI: carry_state=True cannot run under torch.func transforms"):
        torch.func.grad(lambda x: sl.LI(carry_state=True)(x).sum())(torch.rand(4, 2, 3))


@pytest.mark.parametrize("plain", [True, False])
def test_activation_checkpointing_refuses_to_recompute_a_carrying_layer(plain):
    lif = sl.LIF(carry_state=True, backend="torch")
    x = torch.rand(4, 2, 3, requires_grad=True)
    if plain:
        from torch.utils.checkpoint import checkpoint
        out = checkpoint(lif, x, use_reentrant=False)
    else:
        out = sl.activation_checkpoint(lif, x)
    with pytest.raises(RuntimeError, match=r"LIF: carry_state=True cannot be recomputed by activation checkpointing"):
        out.sum().backward()


def test_nir_export_ignores_the_carried_membrane():
    pytest.importorskip("nir")
    from snnlab.interop.nir import to_nir

    def graph(carry: bool):
        torch.manual_seed(0)
        net = sl.Sequential(torch.nn.Linear(3, 4), sl.LIF(tau_mem=5.0, reset="zero", carry_state=carry),
                            torch.nn.Linear(4, 2), sl.LI(tau_mem=8.0, carry_state=carry))
        net(torch.rand(6, 2, 3))
        return to_nir(net, dt=1e-3)

    def same(a, b) -> bool:
        if isinstance(a, dict):
            return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        if hasattr(a, "shape"):
            return hasattr(b, "shape") and a.shape == b.shape and bool((a == b).all())
        if hasattr(a, "__dict__"):
            return type(a) is type(b) and same(vars(a), vars(b))
        return a == b

    plain, carrying = graph(False), graph(True)
    assert list(carrying.nodes) == list(plain.nodes) and same(carrying, plain)


def test_a_step_at_a_time_is_a_live_stream():
    """The streaming use: one step per call (a live demo), spikes as the whole sequence gives them."""
    lif = sl.LIF(tau_mem=8.0, threshold=0.6, carry_state=True)
    x = _input()
    live = torch.cat([lif(x[t:t + 1]) for t in range(T)])
    assert torch.equal(live, sl.LIF(tau_mem=8.0, threshold=0.6)(x))
    assert math.isfinite(float(lif.carried_membrane.sum()))
