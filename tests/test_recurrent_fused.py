"""The fused RecurrentLIF and the SynOps counter's event sums, checked without timing: the event sums of ``layer_ops``
(per step and sample in the input's dtype first) stay exact, and the no-grad forward of the fused layer (which
keeps one step of the membrane) gives what the recording one does."""
import copy

import pytest
import torch

import snnlab as sl
from snnlab.kernels.recurrent_lif import RecurrentLIFFunction, recurrent_lif
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


def _saved_storages(fn) -> dict[int, int]:
    """The unique storages (data pointer -> bytes) autograd saves while ``fn`` runs."""
    saved = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return saved


@pytest.mark.parametrize("mask_p", [0.0, 0.3])
def test_the_fused_path_saves_only_the_time_major_tensors_its_backward_reads(mask_p):
    """The fused layer keeps the membrane and the output for its backward, and the neuron's own spikes when masking
    makes them differ from the output: 2 (3) unique [T, B, N] storages, besides the parameters ([N] and [N, N])."""
    x = torch.rand(30, 4, 8, generator=torch.Generator().manual_seed(0)) * 1.5
    layer = sl.RecurrentLIF(8, learn_tau=True, learn_threshold=True, mask_p=mask_p, seed=0)
    saved = _saved_storages(lambda: layer(x.clone().requires_grad_()))
    full = x.numel() * 4
    assert sorted(n for n in saved.values() if n >= full) == [full] * (3 if mask_p else 2)
    assert sum(n for n in saved.values() if n < full) <= 8 * 8 * 4 + 4 * 8 * 4  # the weight, beta, threshold
    reference = _saved_storages(lambda: sl.RecurrentLIF(8, backend="reference")(x.clone().requires_grad_()))
    assert len(reference) > 30  # the autograd loop keeps tensors of every step


@pytest.mark.parametrize("mask_p", [0.0, 0.3])
def test_the_outputs_without_a_gradient_get_none_not_zeros(monkeypatch, mask_p):
    # the membrane and the neuron's own spikes are not differentiable: no [T, P, N] zeros are made for them
    seen = []
    backward = RecurrentLIFFunction.backward

    def spy(ctx, grad_out, grad_membrane, grad_own):
        seen.append((grad_out is not None, grad_membrane, grad_own))
        return backward(ctx, grad_out, grad_membrane, grad_own)
    monkeypatch.setattr(RecurrentLIFFunction, "backward", staticmethod(spy))
    x = (torch.rand(12, 3, 5, generator=torch.Generator().manual_seed(1)) * 1.5).requires_grad_()
    w = torch.randn(5, 5, generator=torch.Generator().manual_seed(2)) * 0.3
    o, h = recurrent_lif(x, w, torch.tensor(0.9), torch.tensor(1.0), mask_p=mask_p, mask_seed=1)
    (o.sum() + h.detach().sum()).backward()
    assert seen == [(True, None, None)] and x.grad.abs().sum() > 0


def test_one_step_gives_the_recurrent_weight_a_zero_gradient_as_the_reference():
    # at T = 1 nothing feeds back (the reference never calls the weight): the layer gives it a zero gradient, as an
    # empty sequence does for every parameter in both paths (the kernel alone returns None, see below)
    for T, want in ((1, 0.0), (0, 0.0), (2, "equal")):
        grads = []
        for backend in ("torch", "reference"):
            torch.manual_seed(0)
            layer = sl.RecurrentLIF(5, learn_tau=True, learn_threshold=True, backend=backend)
            x = (torch.rand(T, 2, 5, generator=torch.Generator().manual_seed(3)) * 2).requires_grad_()
            layer(x).sum().backward()
            grads.append(layer.recurrent.weight.grad)
        if want == 0.0:
            assert all(g is not None and not g.any() for g in grads)
        else:
            assert grads[0].abs().sum() > 0
            torch.testing.assert_close(grads[0], grads[1])
    w = torch.randn(5, 5)
    x = torch.rand(1, 2, 5) * 2
    g = torch.func.grad(lambda w: recurrent_lif(x, w, torch.tensor(0.9), torch.tensor(1.0))[0].sum())(w)
    assert g.shape == (5, 5) and not g.any()  # torch.func: None comes back as zeros


# ---- vmap: the vmapped dimension folded into the batch --------------------------------------------------------
V, T, P, N = 3, 9, 2, 6
KW = dict(reset="zero", max_spikes=3, surrogate="fast_sigmoid", surrogate_param=3.0)


def _ensemble(seed: int):
    """``x [V, T, P, N]``, ``w [N, N]``, per-neuron ``beta`` / ``threshold`` ``[V, N]`` and an output weighting, in
    float64 (folding changes the matmul's blocking)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(V, T, P, N, generator=g, dtype=torch.float64) * 1.5
    w = torch.randn(N, N, generator=g, dtype=torch.float64) * 0.4
    beta = 0.7 + 0.2 * torch.rand(V, N, generator=g, dtype=torch.float64)
    thr = 0.8 + 0.4 * torch.rand(V, N, generator=g, dtype=torch.float64)
    return x, w, beta, thr, torch.rand(V, T, P, N, generator=g, dtype=torch.float64)


@pytest.mark.parametrize("layout", ["x", "params", "all", "weights"])
def test_vmap_equals_a_loop_over_the_slices(layout):
    x, w, beta, thr, _ = _ensemble(1)
    ws = torch.stack([w, w * 0.5, -w])
    args, in_dims = {"x": ((x, w, beta[0], thr[0]), (0, None, None, None)),
                     "params": ((x[0], w, beta, thr), (None, None, 0, 0)),
                     "all": ((x.movedim(0, 2), w, beta, thr), (2, None, 0, 0)),
                     "weights": ((x, ws, beta[0], thr[0]), (0, 0, None, None))}[layout]
    o, h = torch.func.vmap(lambda *a: recurrent_lif(*a, **KW), in_dims=in_dims)(*args)
    loop = [recurrent_lif(*(a if d is None else a.select(d, i) for a, d in zip(args, in_dims)), **KW) for i in range(V)]
    torch.testing.assert_close(o, torch.stack([r[0] for r in loop]))
    torch.testing.assert_close(h, torch.stack([r[1] for r in loop]))
    assert o.sum() > 0 and o.shape == h.shape == (V, T, P, N)


@pytest.mark.parametrize("option", [dict(mask_p=0.3, mask_seed=2), dict(noise="gaussian", seed=4)])
def test_vmapped_noise_and_masks_are_those_of_one_folded_call(option):
    x, w, beta, thr, _ = _ensemble(2)
    o, h = torch.func.vmap(lambda x: recurrent_lif(x, w, beta[0], thr[0], **option))(x)
    o_f, h_f = recurrent_lif(x.movedim(0, 1).reshape(T, V * P, N), w, beta[0], thr[0], **option)
    assert torch.equal(o, o_f.view(T, V, P, N).movedim(1, 0)) and torch.equal(h, h_f.view(T, V, P, N).movedim(1, 0))
    with pytest.raises(ValueError, match="RecurrentLIF: vmap\\(randomness='same'\\)"):
        torch.func.vmap(lambda x: recurrent_lif(x, w, beta[0], thr[0], **option)[0], randomness="same")(x)
    with pytest.raises(ValueError, match="RecurrentLIF under vmap: a vmapped recurrent weight"):
        torch.func.vmap(lambda w: recurrent_lif(x[0], w, beta[0], thr[0], **option)[0])(torch.stack([w, w]))


@pytest.mark.parametrize("vmapped", ["x", "x_and_params", "weights"])
def test_per_sample_gradients_equal_a_loop_of_backward(vmapped):
    x, w, beta, thr, weight = _ensemble(3)
    ws = torch.stack([w, w * 0.5, -w])

    def loss(x, w, b, t, o_weight):
        return (recurrent_lif(x, w, b, t, **KW)[0] * o_weight).sum()
    b_dim = 0 if vmapped == "x_and_params" else None
    w_dim = 0 if vmapped == "weights" else None
    args = (x, ws if w_dim == 0 else w, beta if b_dim == 0 else beta[0], thr if b_dim == 0 else thr[0], weight)
    in_dims = (0, w_dim, b_dim, b_dim, 0)
    got = torch.func.vmap(torch.func.grad(loss, argnums=(0, 1, 2, 3)), in_dims=in_dims)(*args)
    for i in range(V):
        one = [(a if d is None else a[i]).clone().requires_grad_() for a, d in zip(args[:4], in_dims)]
        loss(*one, weight[i]).backward()
        for g, t in zip(got, one, strict=True):
            torch.testing.assert_close(g[i], t.grad)
    assert got[1].abs().sum() > 0


@pytest.mark.parametrize("mask_p", [0.0, 0.3])
def test_jacrev_equals_rows_of_backward(mask_p):
    # jacrev vmaps the backward over the output gradients of one forward that was not vmapped (with masks: the
    # backward runs per slice, the masks as that forward drew them)
    x, w, beta, thr, _ = _ensemble(4)
    x, kw = x[0, :4, :1, :3].contiguous(), dict(mask_p=mask_p, mask_seed=3)
    w = w[:3, :3]
    jac_x, jac_w = torch.func.jacrev(lambda x, w: recurrent_lif(x, w, beta[0, :3], thr[0, :3], **kw)[0],
                                     argnums=(0, 1))(x, w)
    xs, wsg = x.clone().requires_grad_(), w.clone().requires_grad_()
    o = recurrent_lif(xs, wsg, beta[0, :3], thr[0, :3], **kw)[0]
    assert o.sum() > 0
    rows = [torch.autograd.grad(o, (xs, wsg), e.view_as(o), retain_graph=True) for e in torch.eye(o.numel())]
    torch.testing.assert_close(jac_x.reshape(o.numel(), -1), torch.stack([r[0] for r in rows]).reshape(o.numel(), -1))
    torch.testing.assert_close(jac_w.reshape(o.numel(), -1), torch.stack([r[1] for r in rows]).reshape(o.numel(), -1))


def test_second_order_gradients_are_refused_under_vmap():
    x, w, beta, thr, _ = _ensemble(5)

    def f(x, w):
        return recurrent_lif(x, w, beta[0], thr[0])[0].sum()
    with pytest.raises(RuntimeError, match="RecurrentLIF: second-order gradients"):
        torch.func.vmap(torch.func.jacrev(torch.func.jacrev(f)), in_dims=(0, None))(x, w)
    with pytest.raises(RuntimeError, match="RecurrentLIF: second-order gradients"):
        torch.func.vmap(torch.func.grad(lambda x, w: torch.func.grad(f, argnums=1)(x, w).sum()),
                        in_dims=(0, None))(x, w)


def test_the_layers_per_sample_gradients():
    torch.manual_seed(0)
    layer = sl.RecurrentLIF(4, learn_tau=True, learn_threshold=True, max_spikes=3)
    x = torch.rand(7, 3, 4, generator=torch.Generator().manual_seed(6)) * 2
    params = {k: v.detach() for k, v in layer.named_parameters()}

    def loss(p, xb):
        return torch.func.functional_call(layer, p, (xb.unsqueeze(1),)).pow(2).sum()
    got = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 1))(params, x)
    for i in range(3):
        want = torch.func.grad(loss)(params, x[:, i])
        for k in params:
            torch.testing.assert_close(got[k][i], want[k])
    assert got["recurrent.weight"].shape == (3, 4, 4) and got["recurrent.weight"].abs().sum() > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (benchmarks/run_gpu.sh runs it on a GPU)")
def test_the_fused_layer_on_cuda_matches_the_cpu():
    """The fused RecurrentLIF is plain PyTorch: on a GPU (float64, so that no rounding moves a spike) it gives the
    CPU's spikes, with noise and masks from the same counter hash, and its gradients."""
    torch.manual_seed(0)
    layer = sl.RecurrentLIF(16, noise="gaussian", mask_p=0.2, seed=3, learn_tau=True, learn_threshold=True).double()
    gpu = copy.deepcopy(layer).cuda()
    x = (torch.rand(40, 8, 16, dtype=torch.float64) * 1.5).requires_grad_()
    xg = x.detach().cuda().requires_grad_()
    out, out_g = layer(x), gpu(xg)
    assert torch.equal(out, out_g.cpu()) and out.sum() > 0
    out.sum().backward()
    out_g.sum().backward()
    torch.testing.assert_close(xg.grad.cpu(), x.grad)
    for (name, p), q in zip(layer.named_parameters(), gpu.parameters()):
        torch.testing.assert_close(q.grad.cpu(), p.grad, msg=name)
