"""Every functional LIF (``snnlab.kernels.dispatch.lif`` on the torch / cpu / triton backends, ``recurrent_lif``,
``adaptive_lif``, ``adaptive_lif_cpu``, ``adaptive_lif_triton``) given ``surrogate=name`` and no ``surrogate_param``
takes that surrogate's own default parameter, as the layers (``snnlab.LIF(surrogate=name)``, ...) and
``snnlab.surrogates.get(name)`` do. It took atan's 2.0 for every surrogate: the input gradients of the functional
LIF and of the layer differed by up to 0.58 (fast_sigmoid), 0.97 (triangle), 0.50 (sigmoid).

triton_device must be imported before triton: it sets TRITON_INTERPRET=1 for the CPU run (tiny sizes there).
"""
from triton_device import DEVICE, triton_kernels_ready  # noqa: I001  (before triton)

import pytest  # noqa: E402
import torch  # noqa: E402

import snnlab as sl  # noqa: E402
from snnlab.kernels.adaptive_lif import adaptive_lif  # noqa: E402
from snnlab.kernels.dispatch import lif  # noqa: E402
from snnlab.kernels.lif_cpu import cpu_kernel_available, cpu_kernel_error  # noqa: E402
from snnlab.kernels.recurrent_lif import recurrent_lif  # noqa: E402
from snnlab.kernels.surrogate_math import SURROGATE_NAMES  # noqa: E402

TRITON_READY, TRITON_REASON = triton_kernels_ready("snnlab.kernels.lif_triton")
needs_cpu = pytest.mark.skipif(not cpu_kernel_available(), reason=f"CPU kernel not built: {cpu_kernel_error()}")
needs_triton = pytest.mark.skipif(not TRITON_READY, reason=TRITON_REASON)
BACKENDS = ["torch", pytest.param("cpu", marks=needs_cpu), pytest.param("triton", marks=needs_triton)]
EXPLICIT = 0.7  # a parameter of no surrogate's own (passing a number keeps working)


def _inputs(backend: str, shape: tuple[int, ...] = (10, 2, 3)) -> torch.Tensor:
    """Time-major input around the threshold 1 (some neurons fire, the surrogates see u of both signs), on the
    device the backend runs on (tiny for Triton's interpreter)."""
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0)) * 0.8
    return x.to(DEVICE if backend == "triton" else "cpu")


def _forward_backward(f, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(spikes, d sum(spikes * weights) / dx)`` of ``f(x)`` (its first output), on the CPU."""
    leaf = x.detach().clone().requires_grad_()
    out = f(leaf)
    spikes = out[0] if isinstance(out, tuple) else out
    weights = torch.linspace(0.5, 1.5, spikes.numel(), device=spikes.device).view(spikes.shape)
    (spikes * weights).sum().backward()
    return spikes.detach().cpu(), leaf.grad.cpu()


def _assert_same(a: tuple[torch.Tensor, torch.Tensor], b: tuple[torch.Tensor, torch.Tensor]) -> None:
    assert torch.equal(a[0], b[0])
    assert a[1].abs().sum() > 0  # (a gradient reached the input: the surrogate was computed)
    torch.testing.assert_close(a[1], b[1], rtol=1e-5, atol=1e-6)


def test_the_defaults_the_functional_lifs_take_are_the_layers():
    from snnlab.kernels.dispatch import SURROGATE_DEFAULTS, surrogate_param_or_default

    assert sorted(SURROGATE_DEFAULTS) == sorted(SURROGATE_NAMES)
    for name in SURROGATE_NAMES:
        assert SURROGATE_DEFAULTS[name] == sl.surrogates.get(name).param == sl.LIF(surrogate=name).surrogate.param
        assert surrogate_param_or_default("f", name, None) == sl.surrogates.get(name).param
        assert surrogate_param_or_default("f", name, EXPLICIT) == EXPLICIT
    assert surrogate_param_or_default("f", "triangle", None, noise="gaussian") is None  # (noise_scale counts there)


@pytest.mark.parametrize("param", [None, EXPLICIT], ids=["default", "explicit"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", SURROGATE_NAMES)
def test_functional_lif_agrees_with_the_layer(name, backend, param):
    x = _inputs(backend, (6, 2, 3) if backend == "triton" else (10, 2, 3))
    surrogate = sl.surrogates.get(name) if param is None else sl.surrogates.Surrogate(name, param)
    layer = sl.LIF(tau_mem=5.0, surrogate=surrogate, backend=backend).to(x.device)
    options = {} if param is None else {"surrogate_param": param}
    beta, threshold = layer.beta().detach(), layer.threshold.detach()
    functional = _forward_backward(lambda v: lif(v, beta, threshold, backend=backend, surrogate=name, **options), x)
    _assert_same(functional, _forward_backward(layer, x))


def _recurrent(x, **kw):
    w = torch.linspace(-0.3, 0.3, 9, device=x.device).view(3, 3)
    return recurrent_lif(x, w, torch.tensor(0.8), torch.tensor(1.0), **kw)


def _adaptive(x, **kw):
    return adaptive_lif(x, None, 0.8, 1.0, 0.9, 0.4, **kw)


def _adaptive_cpu(x, **kw):
    from snnlab.kernels.adaptive_lif_cpu import adaptive_lif_cpu
    return adaptive_lif_cpu(x, 0.8, 1.0, 0.9, 0.4, **kw)


def _adaptive_triton(x, **kw):
    from snnlab.kernels.adaptive_lif_triton import adaptive_lif_triton
    return adaptive_lif_triton(x, 0.8, 1.0, 0.9, 0.4, **kw)


# the other functional entry points with the backend their input goes to; each against the parameter its layer
# (RecurrentLIF / ALIF) passes it, snnlab.surrogates.get(name).param
ENTRY_POINTS = [pytest.param(_recurrent, "torch", id="recurrent_lif"),
                pytest.param(_adaptive, "torch", id="adaptive_lif"),
                pytest.param(_adaptive_cpu, "cpu", id="adaptive_lif_cpu", marks=needs_cpu),
                pytest.param(_adaptive_triton, "triton", id="adaptive_lif_triton", marks=needs_triton)]


@pytest.mark.parametrize("fn,backend", ENTRY_POINTS)
@pytest.mark.parametrize("name", SURROGATE_NAMES)
def test_recurrent_and_adaptive_lifs_take_the_layers_default(fn, backend, name):
    x = _inputs(backend, (6, 2, 3) if backend == "triton" else (10, 2, 3))
    params = {layer.surrogate.param for layer in (sl.RecurrentLIF(3, surrogate=name), sl.ALIF(surrogate=name))}
    assert params == {sl.surrogates.get(name).param}
    (param,) = params
    default = _forward_backward(lambda v: fn(v, surrogate=name), x)
    _assert_same(default, _forward_backward(lambda v: fn(v, surrogate=name, surrogate_param=param), x))
    explicit = _forward_backward(lambda v: fn(v, surrogate=name, surrogate_param=EXPLICIT), x)
    assert not torch.equal(default[1], explicit[1])  # (the number given is the one used)


def _rectangle(u: torch.Tensor, a: float) -> torch.Tensor:
    return (u.abs() < 0.5 / a).to(u.dtype) * a


def test_a_registered_surrogate_takes_the_default_it_was_registered_with():
    """A surrogate of the user's own: the default given to register (atan's 2.0 was taken for it before), on every
    functional LIF that computes it, as the layer; forgotten with unregister. One put in CUSTOM_SURROGATES by hand
    has no default: refused, saying to pass the parameter."""
    from snnlab.kernels.dispatch import SURROGATE_DEFAULTS
    from snnlab.kernels.surrogate_math import CUSTOM_SURROGATES

    name = "functional_default_rectangle"
    sl.surrogates.register(name, _rectangle, 0.25)
    try:
        x = _inputs("torch")
        layer = sl.LIF(tau_mem=5.0, surrogate=name, backend="torch")
        beta = layer.beta().detach()
        assert layer.surrogate.param == 0.25
        _assert_same(_forward_backward(lambda v: lif(v, beta, 1.0, backend="torch", surrogate=name), x),
                     _forward_backward(layer, x))
        for fn in (_recurrent, _adaptive):
            _assert_same(_forward_backward(lambda v: fn(v, surrogate=name), x),
                         _forward_backward(lambda v: fn(v, surrogate=name, surrogate_param=0.25), x))
    finally:
        sl.surrogates.unregister(name)
    assert name not in SURROGATE_DEFAULTS
    CUSTOM_SURROGATES[name] = _rectangle
    try:
        with pytest.raises(ValueError, match=f"^lif_torch: surrogate '{name}' has no default parameter .*pass "
                                             "surrogate_param"):
            lif(x, 0.8, 1.0, backend="torch", surrogate=name)
    finally:
        del CUSTOM_SURROGATES[name]
