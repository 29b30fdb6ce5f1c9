"""``torch.func`` (``grad``, ``vjp``, ``vmap`` and their compositions) through the LIF Functions of every backend
and the leaky integrator, against ``.backward()`` and Python loops over the vmapped slices.

triton_device must be imported before triton (it sets TRITON_INTERPRET=1 for the CPU run).
"""
from triton_device import DEVICE, triton_kernels_ready  # noqa: I001  (before triton)

import importlib  # noqa: E402
import re  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
from torch.func import functional_call, grad, jacrev, vjp, vmap  # noqa: E402

import snnlab as sl  # noqa: E402
from lif_cases import make_inputs  # noqa: E402
from snnlab.kernels.lif_cpu import cpu_kernel_available, cpu_kernel_error  # noqa: E402
from snnlab.kernels.lif_torch import li_torch  # noqa: E402


_TRITON_OK, _TRITON_WHY = triton_kernels_ready("snnlab.kernels.lif_triton")
BACKENDS = [
    "torch",
    pytest.param("cpu", marks=pytest.mark.skipif(not cpu_kernel_available(),
                                                 reason=f"CPU kernel not built: {cpu_kernel_error()}")),
    pytest.param("triton", marks=pytest.mark.skipif(not _TRITON_OK, reason=_TRITON_WHY)),
]
_MODULES = {"torch": ("snnlab.kernels.lif_torch", "lif_torch"), "cpu": ("snnlab.kernels.lif_cpu", "lif_cpu"),
            "triton": ("snnlab.kernels.lif_triton", "lif_triton")}

OPTIONS = {
    "subtract": dict(reset="subtract"),
    "zero_detach": dict(reset="zero", detach_reset=True, surrogate="fast_sigmoid", surrogate_param=3.0),
    "max_spikes1": dict(reset="subtract", max_spikes=1),
    "zero_max_spikes2": dict(reset="zero", max_spikes=2, surrogate="triangle", surrogate_param=1.0),
    "noise": dict(noise="gaussian", noise_scale=0.4, seed=7),
    "mask": dict(mask_p=0.4, mask_seed=5, max_spikes=2),
    "noise_mask": dict(reset="zero", noise="logistic", noise_scale=0.4, seed=3, mask_p=0.3, mask_seed=2),
}
DETERMINISTIC = ["subtract", "zero_detach", "max_spikes1", "zero_max_spikes2"]
RANDOM = ["noise", "mask", "noise_mask"]
V = 3  # vmapped ensemble members / samples


def _lif(backend: str):
    """The LIF function of ``backend`` (imported here: the Triton module must load after the interpreter flag)."""
    module, name = _MODULES[backend]
    return getattr(importlib.import_module(module), name)


def _device(backend: str) -> torch.device:
    return DEVICE if backend == "triton" else torch.device("cpu")


def _inputs(backend: str, seed: int, shape=(2, 5), steps: int = 6):
    """``x [steps, *shape]``, per-neuron ``beta`` and ``threshold``, an output weighting ``w``."""
    return make_inputs(shape, per_neuron=True, seed=seed, steps=steps, device=_device(backend))


def _ensemble(backend: str, seed: int, shape=(2, 5), steps: int = 6):
    """``V`` members stacked in front: ``x [V, steps, *shape]``, ``beta`` / ``threshold`` ``[V, N]``."""
    parts = [_inputs(backend, seed + i, shape, steps) for i in range(V)]
    return tuple(torch.stack(p) for p in zip(*parts))


def _loss(s: torch.Tensor, w: torch.Tensor | None) -> torch.Tensor:
    return s.sum() if w is None else (s * w).sum()  # sum(): an output gradient expanded from one number


def _backward_grads(fn, x, beta, thr, w, kw):
    """Spikes and the gradients of x, beta and threshold from ``.backward()``."""
    x, beta, thr = (t.clone().requires_grad_() for t in (x, beta, thr))
    s, _ = fn(x, beta, thr, **kw)
    _loss(s, w).backward()
    return s.detach(), (x.grad, beta.grad, thr.grad)


def _assert_same(got, want, exact: bool = True):
    for a, b in zip(got, want, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=0 if exact else 1e-5, rtol=0 if exact else 1e-4)


@pytest.mark.parametrize("loss", ["weighted", "sum"])
@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("backend", BACKENDS)
def test_grad_and_vjp_equal_backward(backend, option, loss):
    fn, kw = _lif(backend), OPTIONS[option]
    x, beta, thr, w = _inputs(backend, seed=len(option))
    w = w if loss == "weighted" else None
    spikes, want = _backward_grads(fn, x, beta, thr, w, kw)
    assert spikes.sum() > 0
    got = grad(lambda x, b, t: _loss(fn(x, b, t, **kw)[0], w), argnums=(0, 1, 2))(x, beta, thr)
    _assert_same(got, want)
    s, vjp_fn = vjp(lambda x, b, t: fn(x, b, t, **kw)[0], x, beta, thr)
    assert torch.equal(s, spikes)
    _assert_same(vjp_fn(torch.ones_like(s) if w is None else w), want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_grad_of_an_empty_sequence_is_zero(backend):
    x, beta, thr, _ = _inputs(backend, seed=1, steps=0)
    gx, gb, gt = grad(lambda x, b, t: _lif(backend)(x, b, t)[0].sum(), argnums=(0, 1, 2))(x, beta, thr)
    assert gx.shape == x.shape and gb.shape == beta.shape and not gb.any() and not gt.any()


def test_li_grad_vjp_and_per_sample_grads_equal_backward():
    x, beta, _, w = _inputs("torch", seed=3)
    xs, bs = x.clone().requires_grad_(), beta.clone().requires_grad_()
    (li_torch(xs, bs) * w).sum().backward()
    _assert_same(grad(lambda x, b: (li_torch(x, b) * w).sum(), argnums=(0, 1))(x, beta), (xs.grad, bs.grad))
    out, vjp_fn = vjp(li_torch, x, beta)
    assert torch.equal(out, li_torch(x, beta))
    _assert_same(vjp_fn(w), (xs.grad, bs.grad))
    xe, be, _, we = _ensemble("torch", seed=8)
    got = vmap(grad(lambda x, b, w: (li_torch(x, b) * w).sum(), argnums=(0, 1)))(xe, be, we)
    want = [grad(lambda x, b: (li_torch(x, b) * we[i]).sum(), argnums=(0, 1))(xe[i], be[i]) for i in range(V)]
    _assert_same(got, [torch.stack(g) for g in zip(*want)])


# which arguments are vmapped: x only, x and the parameters, the parameters only (one input, an ensemble of
# time constants and thresholds; scalar per member), x vmapped along its third dimension
VMAP_LAYOUTS = ["x", "all", "params", "x_dim2"]


def _vmap_args(layout: str, xe, be, te):
    """The vmapped arguments, their in_dims and the (x, beta, threshold) of each member."""
    if layout == "x":
        return (xe, be[0], te[0]), (0, None, None), [(xe[i], be[0], te[0]) for i in range(V)]
    if layout == "all":
        return (xe, be, te), (0, 0, 0), [(xe[i], be[i], te[i]) for i in range(V)]
    if layout == "params":
        b, t = be[:, 0].contiguous(), te[:, 0].contiguous()
        return (xe[0], b, t), (None, 0, 0), [(xe[0], b[i], t[i]) for i in range(V)]
    return (xe.movedim(0, 2), be[0], te[0]), (2, None, None), [(xe[i], be[0], te[0]) for i in range(V)]


@pytest.mark.parametrize("layout", VMAP_LAYOUTS)
@pytest.mark.parametrize("option", DETERMINISTIC)
@pytest.mark.parametrize("backend", BACKENDS)
def test_vmap_equals_a_loop_over_the_slices(backend, option, layout):
    fn, kw = _lif(backend), OPTIONS[option]
    xe, be, te, _ = _ensemble(backend, seed=20 + len(option))
    args, in_dims, members = _vmap_args(layout, xe, be, te)
    s, h = vmap(lambda x, b, t: fn(x, b, t, **kw), in_dims=in_dims)(*args)
    loop = [fn(*m, **kw) for m in members]
    assert torch.equal(s, torch.stack([o[0] for o in loop]))
    assert torch.equal(h, torch.stack([o[1] for o in loop]))
    assert s.sum() > 0


@pytest.mark.parametrize("option", RANDOM)
@pytest.mark.parametrize("backend", BACKENDS)
def test_vmapped_noise_and_masks_are_those_of_one_folded_call(backend, option):
    # documented: the vmapped dimension joins the step shape ([T, V, B, ...]): one call, its own draws per sample
    fn, kw = _lif(backend), OPTIONS[option]
    xe, be, te, _ = _ensemble(backend, seed=31)
    s, h = vmap(lambda x: fn(x, be[0], te[0], **kw))(xe)
    s_folded, h_folded = fn(xe.movedim(0, 1), be[0], te[0], **kw)
    assert torch.equal(s, s_folded.movedim(1, 0)) and torch.equal(h, h_folded.movedim(1, 0))
    assert torch.equal(vmap(lambda x: fn(x, be[0], te[0], **kw)[0])(xe), s)  # the same seed, the same draws
    with pytest.raises(ValueError, match="randomness='same'"):
        vmap(lambda x: fn(x, be[0], te[0], **kw)[0], randomness="same")(xe)


@pytest.mark.parametrize("option", DETERMINISTIC)
@pytest.mark.parametrize("backend", BACKENDS)
def test_per_sample_gradients_equal_a_loop_of_backward(backend, option):
    fn, kw = _lif(backend), OPTIONS[option]
    xe, be, te, we = _ensemble(backend, seed=40 + len(option))
    beta, thr = be[0], te[0]
    per_sample = grad(lambda x, b, t, w: _loss(fn(x, b, t, **kw)[0], w), argnums=(0, 1, 2))
    got = vmap(per_sample, in_dims=(0, None, None, 0))(xe, beta, thr, we)
    loop = [_backward_grads(fn, xe[i], beta, thr, we[i], kw)[1] for i in range(V)]
    _assert_same(got, [torch.stack(g) for g in zip(*loop)], exact=False)


@pytest.mark.parametrize("option", RANDOM)
@pytest.mark.parametrize("backend", BACKENDS)
def test_per_sample_gradients_with_noise_and_masks_follow_the_folded_call(backend, option):
    # the backward reads the same folded draws as the forward: per-sample gradients are those of the
    # folded call with one parameter copy per sample ([V, 1, N] against the step shape [V, B, N])
    fn, kw = _lif(backend), OPTIONS[option]
    xe, be, te, we = _ensemble(backend, seed=50)
    beta, thr = be[0], te[0]
    per_sample = grad(lambda x, b, t, w: _loss(fn(x, b, t, **kw)[0], w), argnums=(0, 1, 2))
    got = vmap(per_sample, in_dims=(0, None, None, 0))(xe, beta, thr, we)
    x_f = xe.movedim(0, 1).clone().requires_grad_()
    b_f, t_f = (p.expand(V, 1, p.shape[-1]).clone().requires_grad_() for p in (beta, thr))
    _loss(fn(x_f, b_f, t_f, **kw)[0], we.movedim(0, 1)).backward()
    _assert_same(got, (x_f.grad.movedim(1, 0), b_f.grad[:, 0], t_f.grad[:, 0]), exact=False)


@pytest.mark.parametrize("option", ["zero_max_spikes2", "mask"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_jacrev_equals_rows_of_backward(backend, option):
    # jacrev vmaps the backward over the output gradients of one forward that was not vmapped (with masks:
    # the backward runs per slice, the masks drawn as in that forward)
    fn, kw = _lif(backend), OPTIONS[option]
    x, beta, thr, _ = _inputs(backend, seed=60, shape=(1, 3), steps=4)
    jac = jacrev(lambda x: fn(x, beta, thr, **kw)[0])(x)
    xs = x.clone().requires_grad_()
    s = fn(xs, beta, thr, **kw)[0]
    assert s.sum() > 0
    eye = torch.eye(s.numel(), device=s.device)
    rows = [torch.autograd.grad(s, xs, e.view_as(s), retain_graph=True)[0] for e in eye]
    torch.testing.assert_close(jac.reshape(s.numel(), -1), torch.stack(rows).reshape(s.numel(), -1), atol=0, rtol=0)


@pytest.mark.parametrize("option", ["subtract", "mask", "noncontiguous"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_second_order_gradients_are_refused_under_torch_func(backend, option):
    fn, kw = _lif(backend), OPTIONS.get(option, {})
    x, beta, thr, _ = _inputs(backend, seed=70)
    if option == "noncontiguous":
        x = x.transpose(1, 2).contiguous().transpose(1, 2)
    cases = {f"LIF (backend='{backend}')": lambda x, b: fn(x, b, thr, **kw)[0].sum(),
             "LI": lambda x, b: li_torch(x, b).sum()}
    for name, f in cases.items():
        refused = "^" + re.escape(f"{name}: second-order gradients")
        for argnum in (0, 1):  # differentiating twice by x, by beta
            with pytest.raises(RuntimeError, match=refused):
                grad(lambda x, b: grad(f, argnums=argnum)(x, b).pow(2).sum(), argnums=argnum)(x, beta)
        with pytest.raises(RuntimeError, match=refused):
            vmap(jacrev(jacrev(f)), in_dims=(0, None))(x.unsqueeze(0), beta)
        xs = x.clone().requires_grad_()
        with pytest.raises(RuntimeError, match=refused):  # refused at once, as ever
            torch.autograd.grad(f(xs, beta), xs, create_graph=True)
        with pytest.raises(RuntimeError, match=refused):
            grad(f)(xs, beta).pow(2).sum().backward()  # autograd through a torch.func gradient
        first, = torch.autograd.grad(f(xs, beta), xs)  # first order as ever
        _assert_same([grad(f)(x, beta)], [first])


def _layer_net(backend: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(4, 5), sl.LIF(backend=backend, learn_tau=True, learn_threshold=True, n_neurons=5),
        torch.nn.Linear(5, 3), sl.LI(learn_tau=True, n_neurons=3)).to(_device(backend))


@pytest.mark.parametrize("backend", BACKENDS)
def test_layers_learnable_tau_and_threshold_grad_equals_backward(backend):
    net = _layer_net(backend)
    x = torch.randn(8, 2, 4, generator=torch.Generator().manual_seed(1)).to(_device(backend)) * 2
    params = {k: v.detach() for k, v in net.named_parameters()}
    got = grad(lambda p: functional_call(net, p, (x,)).pow(2).sum())(params)
    net(x).pow(2).sum().backward()
    assert net[1].tau_mem.grad.abs().sum() > 0 and net[1].threshold.grad.abs().sum() > 0
    _assert_same([got[k] for k in params], [p.grad for p in net.parameters()])


@pytest.mark.parametrize("backend", ["torch", BACKENDS[1]])
def test_layers_per_sample_gradients(backend):
    """vmap through the layers: their NaN check (a read-back vmap refuses) is skipped under vmap."""
    net = _layer_net(backend)
    x = torch.randn(8, 3, 4, generator=torch.Generator().manual_seed(2))
    params = {k: v.detach() for k, v in net.named_parameters()}

    def loss(p, xb):
        return functional_call(net, p, (xb.unsqueeze(1),)).pow(2).sum()
    got = vmap(grad(loss), in_dims=(None, 1))(params, x)
    for i in range(3):
        want = grad(loss)(params, x[:, i])
        _assert_same([got[k][i] for k in params], [want[k] for k in params], exact=False)


@pytest.mark.parametrize("backend", ["torch", BACKENDS[1]])
def test_torch_compile_gives_the_eager_results(backend):
    # (the compiled CPU kernel's Functions run outside Dynamo's graphs: split at the C call, a forward could
    # lose the tensors it passes to C but does not use after the call)
    fn, kw = _lif(backend), OPTIONS["mask"]
    x, beta, thr, w = _inputs(backend, seed=80)
    torch._dynamo.reset()
    compiled = torch.compile(lambda x, b, t: fn(x, b, t, **kw), backend="eager")
    got = _backward_grads(compiled, x, beta, thr, w, {})
    want = _backward_grads(fn, x, beta, thr, w, kw)
    _assert_same((got[0],) + got[1], (want[0],) + want[1])


@pytest.mark.parametrize("layer", ["lif_noise_seeded", "lif_noise", "lif_mask", "rlif_noise", "rlif_mask"])
def test_per_sample_gradients_with_noise_or_masks_under_randomness_different(layer):
    """Probe: vmap(grad, randomness="different") through noisy or masked layers failed with functorch's raw .item()
    error (the layer's seed draw); the draw now happens outside the transform."""
    torch.manual_seed(0)
    kind, _, opt = layer.partition("_")
    kw = {"noise": dict(noise="gaussian"), "noise_seeded": dict(noise="gaussian", seed=1),
          "mask": dict(mask_p=0.2)}[opt]
    neurons = sl.RecurrentLIF(6, **kw) if kind == "rlif" else sl.LIF(n_neurons=6, **kw)
    net = sl.Sequential(torch.nn.Linear(4, 6), neurons, torch.nn.Linear(6, 3), sl.LI()).train()
    params = {k: v.detach() for k, v in net.named_parameters()}
    buffers = {k: v.detach() for k, v in net.named_buffers()}
    x, y = torch.rand(12, 5, 4) * 2, torch.randint(0, 3, (5,))

    def loss(p, b, xi, yi):
        out = functional_call(net, (p, b), (xi.unsqueeze(1),))
        return torch.nn.functional.cross_entropy(out.sum(0), yi.unsqueeze(0))

    got = vmap(grad(loss), in_dims=(None, None, 1, 0), randomness="different")(params, buffers, x, y)
    assert all(got[k].shape == (5,) + params[k].shape and torch.isfinite(got[k]).all() for k in params)
    assert got["0.weight"].abs().sum() > 0


def test_per_sample_gradients_through_delays():
    """Probe: DelayedLinear's finiteness check read a batched tensor back under vmap (functorch's raw error)."""
    torch.manual_seed(0)
    net = sl.Sequential(torch.nn.Linear(4, 6), sl.LIF(n_neurons=6, backend="torch"), sl.DelayedLinear(6, 3, max_delay=4),
                        sl.LI())
    params = {k: v.detach() for k, v in net.named_parameters()}
    buffers = {k: v.detach() for k, v in net.named_buffers()}
    x = torch.rand(10, 3, 4) * 2

    def loss(p, b, xi):
        return functional_call(net, (p, b), (xi.unsqueeze(1),)).pow(2).sum()

    got = vmap(grad(loss), in_dims=(None, None, 1))(params, buffers, x)
    for i in range(3):
        want = grad(loss)(params, buffers, x[:, i])
        for k in params:
            torch.testing.assert_close(got[k][i], want[k], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("make", [lambda: sl.LIF(noise="gaussian"), lambda: sl.LIF(mask_p=0.3, seed=1),
                                  lambda: sl.RecurrentLIF(4, noise="logistic", seed=2)],
                         ids=["noisy LIF", "masked LIF", "noisy RecurrentLIF"])
def test_vmap_default_randomness_refuses_layers_that_draw(make):
    """Review: drawing the seeds outside the transform let vmap's default (randomness='error') run noisy and masked
    layers silently; it refuses them again, as it refuses torch's own random draws."""
    layer = make().train()
    x = torch.rand(3, 5, 2, 4)
    with pytest.raises(RuntimeError, match=r"randomness='error'.*use vmap\(\.\.\., randomness='different'\)"):
        vmap(layer)(x)
    assert vmap(layer, randomness="different")(x).shape == x.shape
    assert vmap(layer.eval())(x).shape == x.shape  # no draws at inference: the default mode runs
