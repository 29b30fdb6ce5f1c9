"""torch.func through the fused Triton DelayedLinear Functions (mma, gather, taps; Gaussian and rounded delays):
``grad`` / ``vjp`` / ``jacrev`` give backend="torch"'s results, ``vmap`` over a batch of inputs or over stacked
parameters gives a Python loop's, and forward mode and second-order gradients get snnlab's refusals. Before,
every transform failed with PyTorch's "must override the setup_context staticmethod".

On CPU through Triton's interpreter (tiny sizes), or on a CUDA GPU with ``SNNLAB_TEST_DEVICE=cuda``.
"""
from triton_device import DEVICE, skip_unless_ready  # noqa: I001  (before triton)

import pytest  # noqa: E402
import torch  # noqa: E402
from torch.func import functional_call, grad, jacfwd, jacrev, jvp, stack_module_state, vjp, vmap  # noqa: E402

tl = pytest.importorskip("triton.language")
pytestmark = skip_unless_ready(tl, "snnlab.kernels.delays_triton")

from snnlab.core.delays import DelayedLinear  # noqa: E402

T, B, IN, OUT, MAX_DELAY = 5, 2, 3, 4, 4
FORMS = ("gaussian", "rounded")


@pytest.fixture(params=("mma", "gather", "taps"))
def algorithm(request, monkeypatch):
    """Each algorithm of the fused kernels, chosen as users do (the environment)."""
    monkeypatch.setenv("SNNLAB_TRITON_DELAY_ALGO", request.param)
    return request.param


def _layers(form: str, seed: int = 0) -> tuple[DelayedLinear, DelayedLinear]:
    """A Triton layer and its backend='torch' twin (same parameters and buffers), Gaussian or rounded."""
    made = []
    for backend in ("triton", "torch"):
        layer = DelayedLinear(IN, OUT, max_delay=MAX_DELAY, sigma=0.8, backend=backend, seed=seed).to(DEVICE)
        if form == "rounded":
            layer.round_delays()
        made.append(layer)
    made[1].load_state_dict(made[0].state_dict())
    return made[0], made[1]


def _params(layer: DelayedLinear) -> dict[str, torch.Tensor]:
    return {k: v.detach() for k, v in layer.named_parameters()}


def _x(*lead: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(*lead, T, B, IN, generator=torch.Generator().manual_seed(seed)).to(DEVICE)


def _close(got, want, tol=2e-5):
    torch.testing.assert_close(got, want, rtol=tol, atol=tol)


def _target(seed: int = 2) -> torch.Tensor:
    return torch.randn(T, B, OUT, generator=torch.Generator().manual_seed(seed)).to(DEVICE)


@pytest.mark.parametrize("form", FORMS)
def test_grad_and_vjp_match_torch_backend(algorithm, form):
    """torch.func.grad over the parameters (functional_call) and the input, and vjp, as backend='torch'."""
    fused, ref = _layers(form)
    x, target = _x(), _target()

    def loss(layer):
        return lambda p, xi: (functional_call(layer, p, (xi,)) * target).sum()

    got = grad(loss(fused), argnums=(0, 1))(_params(fused), x)
    want = grad(loss(ref), argnums=(0, 1))(_params(ref), x)
    assert set(got[0]) == set(want[0]) == ({"weight", "positions"} if form == "gaussian" else {"weight"})
    for k in want[0]:
        _close(got[0][k], want[0][k])
    _close(got[1], want[1])
    assert got[1].abs().sum() > 0 and got[0]["weight"].abs().sum() > 0

    y, pullback = vjp(fused, x)
    y_ref, pullback_ref = vjp(ref, x)
    _close(y, y_ref)
    _close(pullback(target)[0], pullback_ref(target)[0])


@pytest.mark.parametrize("form", FORMS)
def test_jacrev_matches_torch_backend(algorithm, form):
    """jacrev (a vmapped backward over the basis of output gradients) in the input and in the weight."""
    fused, ref = _layers(form)
    x = _x()[:3, :1]  # [3, 1, IN]: a small Jacobian
    _close(jacrev(fused)(x), jacrev(ref)(x))
    got = jacrev(lambda p: functional_call(fused, p, (x,)))(_params(fused))
    want = jacrev(lambda p: functional_call(ref, p, (x,)))(_params(ref))
    for k in want:
        _close(got[k], want[k])


@pytest.mark.parametrize("form", FORMS)
def test_vmap_over_inputs_matches_loop(algorithm, form, monkeypatch):
    """vmap over a batch of inputs (folded into the kernels' rows: one call), also at another dimension, as a
    Python loop."""
    from snnlab.kernels import delay_blocks_triton

    folds = []
    fold_rows = delay_blocks_triton.fold_rows
    monkeypatch.setattr(delay_blocks_triton, "fold_rows", lambda *a: folds.append(a[1:]) or fold_rows(*a))
    fused, _ = _layers(form)
    xs = _x(2)
    want = torch.stack([fused(x) for x in xs])
    _close(vmap(fused)(xs), want, tol=1e-6)
    _close(vmap(fused, in_dims=2, out_dims=2)(xs.movedim(0, 2)), want.movedim(0, 2), tol=1e-6)
    assert [n for _, n in folds] == [2, 2]  # one folded call of the 2 samples per vmap


@pytest.mark.parametrize("form", FORMS)
def test_per_sample_gradients_match_loop(algorithm, form):
    """Per-sample gradients (vmap of grad) in the parameters and the input (by slices), and in the input alone
    (grad_x folded), as a Python loop."""
    fused, _ = _layers(form)
    xs, target, params = _x(2), _target(), _params(fused)

    def loss(p, xi):
        return (functional_call(fused, p, (xi,)) * target).sum()

    got = vmap(grad(loss, argnums=(0, 1)), in_dims=(None, 0))(params, xs)
    for i, x in enumerate(xs):
        g_p, g_x = grad(loss, argnums=(0, 1))(params, x)
        for k in g_p:
            _close(got[0][k][i], g_p[k])
        _close(got[1][i], g_x)
    _close(vmap(grad(loss, argnums=1), in_dims=(None, 0))(params, xs), got[1])


def test_vmap_past_the_row_limit_runs_by_slices(algorithm, monkeypatch):
    """Where the folded rows would pass the kernels' int32 row limit, vmap runs one call per sample (forward and
    grad_x), with the loop's results."""
    from snnlab.kernels import delay_blocks_triton

    monkeypatch.setattr(delay_blocks_triton, "MAX_ROWS", T * B)  # one sample's rows fit, two folded do not
    fused, _ = _layers("gaussian")
    xs, target = _x(2), _target()
    _close(vmap(fused)(xs), torch.stack([fused(x) for x in xs]), tol=1e-6)
    got = vmap(grad(lambda xi: (fused(xi) * target).sum()))(xs)
    for i, x in enumerate(xs):
        _close(got[i], grad(lambda xi: (fused(xi) * target).sum())(x))


@pytest.mark.parametrize("form", FORMS)
def test_vmap_over_stacked_layers_matches_loop(algorithm, form):
    """vmap over an ensemble's stacked parameters and buffers (one call per layer), with one input for all or one
    each, and the ensemble's gradients, as a Python loop."""
    layers = [_layers(form, seed=s)[0] for s in (3, 4)]
    params, buffers = stack_module_state(layers)
    x, xs, target = _x(), _x(2), _target()

    def run(p, b, xi):
        return functional_call(layers[0], (p, b), (xi,))

    _close(vmap(run, in_dims=(0, 0, None))(params, buffers, x), torch.stack([m(x) for m in layers]), tol=1e-6)
    _close(vmap(run)(params, buffers, xs), torch.stack([m(xi) for m, xi in zip(layers, xs)]), tol=1e-6)

    def loss(p, b, xi):
        return (run(p, b, xi) * target).sum()

    got = vmap(grad(loss), in_dims=(0, 0, None))(params, buffers, x)
    for i, m in enumerate(layers):
        want = grad(loss)(_params(m), dict(m.named_buffers()), x)
        for k in want:
            _close(got[k][i], want[k])


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")  # (torch loading its jvp decompositions)
@pytest.mark.parametrize("form", FORMS)
def test_forward_mode_is_refused(algorithm, form):
    """jvp and jacfwd (forward mode) get snnlab's refusal naming the layer, not PyTorch's setup_context message."""
    fused, _ = _layers(form)
    x = _x()[:2, :1]
    for call in (lambda: jvp(fused, (x,), (torch.ones_like(x),)), lambda: jacfwd(fused)(x)):
        with pytest.raises(NotImplementedError, match=r"DelayedLinear \(backend='triton'\): forward-mode AD"):
            call()


@pytest.mark.parametrize("form", FORMS)
def test_second_order_is_refused(algorithm, form):
    """grad of grad through torch.func (and create_graph=True) get snnlab's second-order refusal."""
    fused, _ = _layers(form)
    x, params = _x()[:2, :1], _params(fused)

    def loss(p, xi):
        return functional_call(fused, p, (xi,)).pow(2).sum()

    match = r"DelayedLinear \(backend='triton'\): second-order gradients"
    with pytest.raises(RuntimeError, match=match):
        grad(lambda xi: grad(loss, argnums=1)(params, xi).sum())(x)
    with pytest.raises(RuntimeError, match=match):
        grad(lambda p: grad(loss)(p, x)["weight"].sum())(params)
    xr = x.clone().requires_grad_(True)
    with pytest.raises(RuntimeError, match=match):
        torch.autograd.grad(fused(xr).pow(2).sum(), xr, create_graph=True)


@pytest.mark.parametrize("form", FORMS)
def test_plain_backward_runs_the_backward_directly(algorithm, form, monkeypatch):
    """Outside torch.func the plain backward calls the backward Functions' forward itself (no Function recorded,
    no overhead): their apply is never used; the gradients are backend='torch''s."""
    from snnlab.kernels import delay_taps_triton, delays_triton

    def refuse(*args):
        raise AssertionError("the plain backward applied a backward Function")

    for cls in (delays_triton.DelayedLinearTritonBackward, delay_taps_triton.ShiftedTapsBackward):
        monkeypatch.setattr(cls, "apply", refuse)
    fused, ref = _layers(form)
    x = _x().requires_grad_(True)
    xr = x.detach().clone().requires_grad_(True)
    target = _target()
    gx, gw = torch.autograd.grad((fused(x) * target).sum(), (x, fused.weight))
    gx_ref, gw_ref = torch.autograd.grad((ref(xr) * target).sum(), (xr, ref.weight))
    _close(gx, gx_ref)
    _close(gw, gw_ref)
