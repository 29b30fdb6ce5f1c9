"""Forward-mode AD (``torch.func.jvp`` / ``jacfwd`` / ``hessian``, ``torch.autograd.forward_ad``) through the neuron
kernels: refused with snnlab's error naming the kernel (their derivatives are hand-written backward passes), where
PyTorch gave its generic "You must implement the jvp function" (or, for the compiled adaptive LIF without a gradient
to record, silently dropped the tangent).

triton_device must be imported before triton (it sets TRITON_INTERPRET=1 for the CPU run).
"""
from triton_device import DEVICE, triton_kernels_ready  # noqa: I001  (before triton)

import importlib  # noqa: E402
import re  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402
import torch.autograd.forward_ad as fwAD  # noqa: E402
from torch.func import grad, hessian, jacfwd, jacrev, jvp, vjp, vmap  # noqa: E402

import snnlab as sl  # noqa: E402
from snnlab.kernels.first_order import forward_mode_inputs, refuse_forward_mode  # noqa: E402
from snnlab.kernels.lif_cpu import cpu_kernel_available, cpu_kernel_error  # noqa: E402

_TRITON_OK, _TRITON_WHY = triton_kernels_ready("snnlab.kernels.lif_triton")
_NO_CPU = pytest.mark.skipif(not cpu_kernel_available(), reason=f"CPU kernel not built: {cpu_kernel_error()}")
_NO_TRITON = pytest.mark.skipif(not _TRITON_OK, reason=_TRITON_WHY)

# kernel -> (module, function, error name, x [T, B, N] -> the function's (first) output)
_B, _T, _R, _K = torch.tensor(0.8), torch.tensor(1.0), torch.tensor(0.7), torch.tensor(0.3)
_KERNELS = {
    "lif_torch": ("snnlab.kernels.lif_torch", "lif_torch", "LIF (backend='torch')", lambda f, x: f(x, _B, _T)[0]),
    "li_torch": ("snnlab.kernels.lif_torch", "li_torch", "LI", lambda f, x: f(x, _B)),
    "lif_cpu": ("snnlab.kernels.lif_cpu", "lif_cpu", "LIF (backend='cpu')", lambda f, x: f(x, _B, _T)[0]),
    "lif_triton": ("snnlab.kernels.lif_triton", "lif_triton", "LIF (backend='triton')", lambda f, x: f(x, _B, _T)[0]),
    "recurrent_lif": ("snnlab.kernels.recurrent_lif", "recurrent_lif", "RecurrentLIF",
                      lambda f, x: f(x, torch.full((3, 3), 0.2, device=x.device), _B, _T)[0]),
    "adaptive_lif": ("snnlab.kernels.adaptive_lif", "adaptive_lif", "ALIF (adaptive_lif)",
                     lambda f, x: f(x, None, _B, _T, _R, _K)[0]),
    "adaptive_lif_cpu": ("snnlab.kernels.adaptive_lif_cpu", "adaptive_lif_cpu", "ALIF (adaptive_lif_cpu)",
                         lambda f, x: f(x, _B, _T, _R, _K)[0]),
    "adaptive_lif_triton": ("snnlab.kernels.adaptive_lif_triton", "adaptive_lif_triton", "ALIF (adaptive_lif_triton)",
                            lambda f, x: f(x, *(p.to(x.device) for p in (_B, _T, _R, _K)))[0]),
}
_MARKS = {"lif_cpu": _NO_CPU, "adaptive_lif_cpu": _NO_CPU, "lif_triton": _NO_TRITON, "adaptive_lif_triton": _NO_TRITON}
KERNELS = [pytest.param(k, marks=_MARKS[k]) if k in _MARKS else k for k in _KERNELS]


def _kernel(name: str):
    """``(x -> output, error name, device)`` of kernel ``name`` (imported here: Triton after the flag)."""
    module, fn, who, call = _KERNELS[name]
    f = getattr(importlib.import_module(module), fn)
    device = DEVICE if "triton" in name else torch.device("cpu")
    return (lambda x: call(f, x)), who, device


def _forward_ad(f, x):
    with fwAD.dual_level():
        return fwAD.unpack_dual(f(fwAD.make_dual(x, torch.ones_like(x)))).tangent


MODES = {
    "jvp": lambda f, x: jvp(f, (x,), (torch.ones_like(x),)),
    "jacfwd": lambda f, x: jacfwd(f)(x),
    "hessian": lambda f, x: hessian(lambda v: f(v).sum())(x),
    "forward_ad": _forward_ad,
}


def _refused(name: str):
    return pytest.raises(NotImplementedError, match=re.escape(name) + r": forward-mode AD .* torch\.func\.grad / "
                                                                      r"vjp / jacrev")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kernel", KERNELS)
def test_forward_mode_through_a_kernel_is_refused_with_its_name(kernel, mode):
    f, who, device = _kernel(kernel)
    x = torch.rand(4, 2, 3, device=device) * 2
    with _refused(who):
        MODES[mode](f, x)


@pytest.mark.parametrize("kernel", ["lif_torch", pytest.param("adaptive_lif_cpu", marks=_NO_CPU)])
def test_a_tangent_on_a_parameter_alone_is_refused(kernel):
    """Only ``beta`` is dual (no input requires a gradient: the compiled adaptive LIF then skipped its Function and
    returned no tangent at all, silently)."""
    module, fn, who, _ = _KERNELS[kernel]
    f = getattr(importlib.import_module(module), fn)
    x = torch.rand(4, 2, 3) * 2
    rest = (_T,) if kernel == "lif_torch" else (_T, _R, _K)
    with fwAD.dual_level(), _refused(who):
        f(x, fwAD.make_dual(_B, torch.tensor(1.0)), *rest)
    with _refused(who):
        jacfwd(lambda b: f(x, b, *rest)[0])(_B)


def _layer(layer: str):
    return {"lif_torch": (sl.LIF(n_neurons=3, backend="torch"), "LIF (backend='torch')"),
            "lif_cpu": (sl.LIF(n_neurons=3, backend="cpu"), "LIF (backend='cpu')"),
            "lif_triton": (sl.LIF(n_neurons=3, backend="triton").to(DEVICE), "LIF (backend='triton')"),
            "li": (sl.LI(), "LI"), "rlif": (sl.RecurrentLIF(3), "RecurrentLIF")}[layer]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("layer", ["lif_torch", pytest.param("lif_cpu", marks=_NO_CPU), "li", "rlif"])
def test_forward_mode_through_the_layers_is_refused(layer, mode):
    module, who = _layer(layer)
    with _refused(who):
        MODES[mode](module, torch.rand(4, 2, 3) * 2)


@pytest.mark.parametrize("mode", ["jvp_of_vjp", "dual_grad_outputs"])
@pytest.mark.parametrize("layer", ["lif_torch", pytest.param("lif_cpu", marks=_NO_CPU),
                                   pytest.param("lif_triton", marks=_NO_TRITON), "li", "rlif"])
def test_forward_over_reverse_is_refused_as_second_order(layer, mode):
    """A tangent on the output gradient (``jvp`` of a ``vjp`` function: the forward-over-reverse Hessian-vector
    product; dual ``grad_outputs``) differentiates the hand-written backward: snnlab's second-order error, where
    PyTorch's generic one came (or, for the compiled CPU loop, a gradient without its tangent)."""
    module, who = _layer(layer)
    device = DEVICE if layer == "lif_triton" else torch.device("cpu")
    x, g = torch.rand(4, 2, 3, device=device) * 2, torch.ones(4, 2, 3, device=device)
    with pytest.raises(RuntimeError, match=re.escape(who) + ": second-order gradients"):
        if mode == "jvp_of_vjp":
            _, vjp_fn = vjp(module, x)
            jvp(vjp_fn, (g,), (g,))
        else:
            x.requires_grad_(True)
            y = module(x)
            with fwAD.dual_level():
                torch.autograd.grad(y, x, fwAD.make_dual(g, g))


@pytest.mark.parametrize("kernel", ["adaptive_lif", pytest.param("adaptive_lif_cpu", marks=_NO_CPU),
                                    pytest.param("adaptive_lif_triton", marks=_NO_TRITON)])
def test_fused_alif_refuses_a_tangent_on_its_output_gradient(kernel):
    """Dual ``grad_outputs`` (forward over reverse) through the fused ALIF kernels: snnlab's second-order error, as
    the LIF kernels give, where the compiled CPU loop returned the input gradient without its tangent (and the
    PyTorch loop failed on an ``out=`` op)."""
    f, who, device = _kernel(kernel)
    x = (torch.rand(4, 2, 3, device=device) * 2).requires_grad_(True)
    g = torch.ones(4, 2, 3, device=device)
    y = f(x)
    with fwAD.dual_level(), pytest.raises(RuntimeError, match=re.escape(who) + ": second-order gradients"):
        torch.autograd.grad(y, x, fwAD.make_dual(g, g))


@pytest.mark.parametrize("backend", ["torch", pytest.param("cpu", marks=_NO_CPU)])
def test_alif_layer_refuses_a_tangent_on_its_output_gradient(backend):
    x = (torch.rand(4, 2, 3) * 2).requires_grad_(True)
    g = torch.ones(4, 2, 3)
    y = sl.ALIF(3, backend=backend)(x)
    with fwAD.dual_level(), pytest.raises(RuntimeError, match=r"ALIF \(adaptive_lif(_cpu)?\): second-order"):
        torch.autograd.grad(y, x, fwAD.make_dual(g, g))

def test_alif_fused_path_refuses_forward_ad():
    """The fused ALIF (no torch.func transform active: forward_ad duals) used to fail inside its loop on an ``out=``
    op; ``jacfwd`` / ``jvp`` run the layer's per-step loop instead (below)."""
    with _refused("ALIF (adaptive_lif)"):
        _forward_ad(sl.ALIF(3, backend="torch"), torch.rand(4, 2, 3) * 2)


@pytest.mark.parametrize("mode", ["jvp", "jacfwd", "hessian"])
def test_alif_step_loop_refuses_forward_mode(mode):
    """Under a torch.func transform the ALIF layer runs the per-step loop of snnlab.core.step_loop, whose spike
    Function has no jvp: refused with snnlab's message (it was PyTorch's generic 'implement the jvp')."""
    with _refused("ALIF (per-step loop)"):
        MODES[mode](sl.ALIF(3, backend="torch"), torch.rand(4, 2, 3) * 2)


def test_reverse_mode_and_unrelated_forward_mode_still_work():
    """Nothing is refused where no tangent reaches the kernel: reverse mode, vmap, a dual level open around plain
    inputs, and a jvp whose LIF input does not depend on the primals."""
    x = torch.rand(5, 2, 3) * 2
    lif = sl.LIF(n_neurons=3, backend="torch")
    want = lif(x)
    assert jacrev(lambda v: lif(v).sum())(x).shape == x.shape
    assert grad(lambda v: sl.LI()(v).sum())(x).abs().sum() > 0
    xs = torch.rand(5, 2, 2, 3) * 2
    torch.testing.assert_close(vmap(lif, in_dims=1, out_dims=1)(xs), torch.stack([lif(xs[:, i]) for i in range(2)], 1))
    with fwAD.dual_level():
        assert torch.equal(lif(x), want)
    a = torch.tensor(2.0)
    out, tangent = jvp(lambda s: s * lif(x).sum(), (a,), (torch.tensor(1.0),))
    assert out == 2 * want.sum() and tangent == want.sum()
    g = grad(lambda v: lif(v).sum())(x)  # a backward inside a jvp, its output gradient without a tangent
    out, tangent = jvp(lambda s: s * grad(lambda v: lif(v).sum())(x).sum(), (a,), (torch.tensor(1.0),))
    assert out == 2 * g.sum() and tangent == g.sum()


def test_forward_mode_inputs_sees_the_tangents_of_every_transform():
    x = torch.ones(3)
    assert not forward_mode_inputs([x, None, 1.0])
    seen = []

    def probe(v):
        seen.append(forward_mode_inputs([v]))
        return v.sum()

    grad(probe)(x)
    vmap(probe)(torch.ones(2, 3))
    jacrev(probe)(x)
    assert seen == [False, False, False]
    jvp(probe, (x,), (x,))
    jacfwd(probe)(x)
    hessian(probe)(x)   # (the tangent sits under grad's wrapper)
    assert seen[3:] == [True, True, True]
    refuse_forward_mode("LI", [x])  # no forward mode: nothing raised


def test_no_neuron_kernel_function_defines_a_jvp():
    """The refusal is in the kernels' entry points, not a ``jvp`` staticmethod: Dynamo does not trace an
    autograd.Function with a custom jvp (``torch.compile`` would split its graph at every layer)."""
    names = ["lif_torch", "lif_cpu", "recurrent_lif", "adaptive_lif", "adaptive_lif_cpu"]
    names += ["lif_triton", "adaptive_lif_triton"] if _TRITON_OK else []
    functions = [v for n in names for v in vars(importlib.import_module(f"snnlab.kernels.{n}")).values()
                 if isinstance(v, type) and issubclass(v, torch.autograd.Function) and v.__module__.endswith(n)]
    assert len(functions) >= 9
    assert all(f.jvp is torch.autograd.Function.jvp for f in functions)


@pytest.mark.parametrize("algorithm", [pytest.param(a, marks=_NO_TRITON) for a in ("mma", "gather", "taps", "rounded")])
def test_delayed_linear_triton_refuses_a_tangent_on_its_output_gradient(algorithm):
    """The fused DelayedLinear Functions (learnable positions: mma / gather / taps; rounded delays) refuse a
    tangent on their output gradient (dual ``grad_outputs``) as the neuron kernels do (they dropped it).
    (``torch.func`` transforms through them: tests/test_delays_func_transforms.py.)"""
    from snnlab.kernels.delays_triton import delayed_linear_triton

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(6, 2, 5, generator=gen).to(DEVICE)
    w = torch.randn(3, 5, generator=gen).to(DEVICE)
    rounded = algorithm == "rounded"
    pos = (torch.randint(0, 4, (3, 5), generator=gen) if rounded else torch.rand(3, 5, generator=gen) * 3).to(DEVICE)
    if not rounded:
        pos = pos.float()

    def f(inp):
        return delayed_linear_triton(inp, w, pos, 1.0, 4, rounded, None if rounded else algorithm)

    g = torch.ones(6, 2, 3, device=DEVICE)
    x.requires_grad_(True)
    y = f(x)
    with pytest.raises(RuntimeError, match=re.escape("DelayedLinear (backend='triton')") + ": second-order"):
        with fwAD.dual_level():
            torch.autograd.grad(y, x, fwAD.make_dual(g, g))
