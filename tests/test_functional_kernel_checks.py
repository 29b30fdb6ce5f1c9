"""The functional LIF kernels (lif_torch / lif_cpu / lif_triton, the adaptive ones and recurrent_lif) take and refuse
the same options with the same messages (one shared check, snnlab.kernels.lif_common.check_lif_options), and the
compiled CPU loop's exp reaches 0 and +inf as torch.exp does.

triton_device must be imported before triton: it sets TRITON_INTERPRET=1 for the CPU run.
"""
from triton_device import triton_kernels_ready  # noqa: I001  (before triton)

import math  # noqa: E402
import re  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from snnlab.kernels.adaptive_lif import adaptive_lif  # noqa: E402
from snnlab.kernels.adaptive_lif_cpu import adaptive_lif_cpu  # noqa: E402
from snnlab.kernels.dispatch import lif  # noqa: E402
from snnlab.kernels.lif_common import check_lif_options  # noqa: E402
from snnlab.kernels.lif_cpu import cpu_kernel_available, cpu_kernel_error, lif_cpu, math_approx  # noqa: E402
from snnlab.kernels.lif_torch import lif_torch  # noqa: E402
from snnlab.kernels.recurrent_lif import recurrent_lif  # noqa: E402

TRITON_READY, TRITON_REASON = triton_kernels_ready("snnlab.kernels.lif_triton")
needs_cpu = pytest.mark.skipif(not cpu_kernel_available(), reason=f"CPU kernel not built: {cpu_kernel_error()}")
needs_triton = pytest.mark.skipif(not TRITON_READY, reason=TRITON_REASON)


def _lif_triton(*args, **kw):
    from snnlab.kernels.lif_triton import lif_triton
    return lif_triton(*args, **kw)


def _adaptive_lif_triton(*args, **kw):
    from snnlab.kernels.adaptive_lif_triton import adaptive_lif_triton
    return adaptive_lif_triton(*args, **kw)


# every functional LIF as f(x, **options), with its name in the messages; the options are checked before any
# kernel runs (so the compiled loop and Triton are not needed to refuse them)
CALLS = {
    "lif_torch": lambda x, **kw: lif_torch(x, 0.9, 1.0, **kw),
    "lif_cpu": lambda x, **kw: lif_cpu(x, 0.9, 1.0, **kw),
    "lif_triton": pytest.param(lambda x, **kw: _lif_triton(x, 0.9, 1.0, **kw), marks=needs_triton),
    "adaptive_lif": lambda x, **kw: adaptive_lif(x, None, 0.9, 1.0, 0.8, 0.5, **kw),
    "adaptive_lif_cpu": lambda x, **kw: adaptive_lif_cpu(x, 0.9, 1.0, 0.8, 0.5, **kw),
    "adaptive_lif_triton": pytest.param(lambda x, **kw: _adaptive_lif_triton(x, 0.9, 1.0, 0.8, 0.5, **kw),
                                        marks=needs_triton),
    "recurrent_lif": lambda x, **kw: recurrent_lif(x, torch.zeros(3, 3), 0.9, 1.0, **kw),
}
NAMED = [pytest.param(name, fn, id=name) if callable(fn) else pytest.param(name, *fn.values, marks=fn.marks, id=name)
         for name, fn in CALLS.items()]

BAD_OPTIONS = [
    (dict(reset="substract"), "unknown reset 'substract'; choose 'subtract' or 'zero'"),
    (dict(reset=123), "unknown reset 123"),
    (dict(noise="uniform"), "unknown noise 'uniform'; choose one of \\['gaussian', 'logistic'\\]"),
    (dict(surrogate="relu"), "unknown surrogate 'relu'"),
    (dict(surrogate_param=0.0), "surrogate 'atan': its parameter \\(surrogate_param\\) must be a finite number > 0, "
                                "got 0.0"),
    (dict(surrogate="triangle", surrogate_param=-1.0), "surrogate 'triangle': its parameter"),
    (dict(surrogate="sigmoid", surrogate_param=math.nan),
     "surrogate 'sigmoid': .* must be a finite number > 0, got nan"),
    (dict(surrogate_param=math.inf), "surrogate 'atan': .* must be a finite number > 0, got inf"),
    (dict(noise="gaussian", noise_scale=0.0), "noise_scale must be a finite number > 0, got 0.0"),
    (dict(noise="logistic", noise_scale=-0.3), "noise_scale must be a finite number > 0, got -0.3"),
    (dict(noise="logistic", noise_scale=math.inf, sample=False), "noise_scale must be a finite number > 0, got inf"),
]


@pytest.mark.parametrize("kw,match", BAD_OPTIONS, ids=lambda v: str(v)[:40] if isinstance(v, dict) else None)
@pytest.mark.parametrize("name,fn", NAMED)
def test_every_functional_lif_refuses_the_same_options_naming_itself(name, fn, kw, match):
    x = torch.rand(4, 2, 3)
    with pytest.raises(ValueError, match=f"^{name}: {match}"):
        fn(x, **kw)


@pytest.mark.parametrize("name,fn", NAMED)
def test_a_parameter_that_is_not_a_number_is_a_type_error(name, fn):
    with pytest.raises(TypeError, match=f"^{name}: surrogate 'atan': its parameter \\(surrogate_param\\) must be a "
                                        "number, got str '2'"):
        fn(torch.rand(4, 2, 3), surrogate_param="2")
    with pytest.raises(TypeError, match=f"^{name}: noise_scale must be a number, got bool True"):
        fn(torch.rand(4, 2, 3), noise="gaussian", noise_scale=True)


def test_the_unused_parameter_is_not_checked():
    """As the layers: noise_scale matters (and is checked) for a noisy neuron only; surrogate_param for the others."""
    x = torch.rand(4, 2, 3) + 0.5
    s, _ = lif_torch(x, 0.9, 1.0, noise_scale=0.0)
    assert torch.equal(s, lif_torch(x, 0.9, 1.0)[0])
    s, _ = lif_torch(x, 0.9, 1.0, noise="gaussian", surrogate_param=0.0, sample=False)
    assert torch.equal(s, lif_torch(x, 0.9, 1.0, noise="gaussian", sample=False)[0])
    assert check_lif_options("f", "subtract", "atan", 0.0, "logistic", 0.5) == ("logistic", 0.5)


@pytest.mark.parametrize("backend", ["torch", "auto", pytest.param("cpu", marks=needs_cpu)])
def test_dispatch_refuses_an_unknown_reset_on_every_backend(backend):
    """lif_torch used to run any reset string as reset='zero' (also 'auto' for float64)."""
    for dtype in (torch.float32, torch.float64) if backend != "cpu" else (torch.float32,):
        with pytest.raises(ValueError, match="unknown reset 'substract'"):
            lif(torch.full((4, 1, 1), 1.2, dtype=dtype), 0.5, 1.0, backend=backend, reset="substract")


@pytest.mark.parametrize("beta", [torch.full((4,), 0.9), torch.full((5, 2, 3), 0.9), torch.full((3, 3), 0.9)])
def test_adaptive_lif_checks_the_parameter_shapes_as_its_siblings(beta):
    x = torch.rand(4, 2, 3) + 0.5
    for name, f in (("adaptive_lif", lambda b: adaptive_lif(x, None, b, 1.0, 0.8, 0.5)),
                    ("adaptive_lif_cpu", lambda b: adaptive_lif_cpu(x, b, 1.0, 0.8, 0.5))):
        for grad in (False, True):
            with pytest.raises(ValueError, match=f"^{name}: beta of shape {re.escape(str(tuple(beta.shape)))} does not "
                                                 "broadcast to a step of x, \\(2, 3\\)"):
                f(beta.clone().requires_grad_(grad))


def test_adaptive_lif_takes_numbers_and_broadcastable_shapes():
    x = torch.rand(4, 2, 3) + 0.5
    ref = adaptive_lif(x, None, *(torch.tensor(v) for v in (0.9, 1.0, 0.8, 0.5)))
    for got in (adaptive_lif(x, None, 0.9, 1.0, 0.8, 0.5), adaptive_lif(x, None, torch.full((2, 1), 0.9), 1.0, 0.8,
                                                                        torch.full((3,), 0.5))):
        for a, b in zip(ref, got):
            assert torch.equal(a, b)


def test_recurrent_lif_takes_numbers_and_checks_the_parameter_shapes():
    x = torch.rand(5, 2, 3) + 0.3
    w = torch.rand(3, 3) * 0.5
    ref = recurrent_lif(x, w, torch.tensor(0.9), torch.tensor(1.0))
    got = recurrent_lif(x, w, 0.9, 1.0)   # (a plain number failed with AttributeError)
    assert all(torch.equal(a, b) for a, b in zip(ref, got))
    for beta in (torch.full((4,), 0.9), torch.full((5, 2, 3), 0.9)):
        shape = re.escape(str(tuple(beta.shape)))
        with pytest.raises(ValueError, match=f"^recurrent_lif: beta of shape {shape} does not broadcast to a step"):
            recurrent_lif(x, w, beta, 1.0)
    with pytest.raises(TypeError, match="^recurrent_lif: threshold must be a tensor or a real number"):
        recurrent_lif(x, w, 0.9, "1.0")


@needs_cpu
def test_cpu_exp_reaches_zero_and_infinity_as_torch_exp():
    """Below -87.33 (under float32's smallest normal number) the kernel's exp is exactly 0, from the overflow point
    up +inf; between, within 2 ulp of float64 (the ends were clamped to 1.6e-38 and 1.65e38)."""
    low = math_approx("exp", torch.tensor([-math.inf, -1e38, -1e30, -104.0, -100.0, -87.5]))
    assert low.tolist() == [0.0] * 6
    high = math_approx("exp", torch.tensor([88.72283935546875, 88.8, 100.0, 1e30, 1e38, math.inf]))
    assert high.tolist() == [math.inf] * 6
    assert torch.isnan(math_approx("exp", torch.tensor([math.nan]))).all()
    x = torch.cat([torch.linspace(-87.33, 88.72283, 200_001), torch.tensor([88.72283172607422])])
    ref = torch.exp(x.double())
    ulp = torch.nextafter(ref.float(), torch.tensor(math.inf)).double() - ref.float().double()
    assert ((math_approx("exp", x).double() - ref).abs() / ulp).max() <= 2.0


@needs_cpu
@pytest.mark.parametrize("kw", [dict(surrogate="sigmoid", surrogate_param=4.0),
                                dict(noise="gaussian", noise_scale=0.3, seed=3),
                                dict(noise="logistic", noise_scale=0.3, seed=3, sample=False)])
@pytest.mark.parametrize("big", [1e38, -1e38])
def test_cpu_parameter_gradients_with_huge_membranes_match_torch(kw, big):
    """A density of 0 times a membrane of 1e38 is 0 (grad_beta was +5.70 against torch's -0.427, gaussian)."""
    x = torch.zeros(3, 1, 2)
    x[0, 0, 0] = big
    x[:, 0, 1] = 0.7
    grads = []
    for f in (lif_torch, lif_cpu):
        b, t = torch.tensor(0.9, requires_grad=True), torch.tensor(1.0, requires_grad=True)
        s, _ = f(x, b, t, **kw)
        (s * torch.tensor([1.0, -2.0])).sum().backward()
        grads.append((b.grad, t.grad))
    for a, c in zip(*grads):
        torch.testing.assert_close(a, c)
