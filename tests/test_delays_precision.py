"""DelayedLinear's numerics: the float32 Gaussian delay kernel and its positions' gradient against float64 when sigma
is small (every PyTorch path here; the Triton kernels in tests/test_kernels_delays_triton.py, with the helpers
below), and the precision ``torch.autocast`` gives every path.

The references evaluate the same function at the same float32 positions in float64, so the errors measured are
the float32 evaluation's, not the positions' rounding.
"""
import pytest
import torch

import snnlab.core.delays as delays_module
from snnlab.core.delays import DelayedLinear, delayed_linear, delayed_linear_rounded
from snnlab.kernels import delay_math
from snnlab.kernels.delay_math import (autocast_dtype, autocast_operands, gaussian_delay_kernel, nearest_tap,
                                       relative_exponent)

D64 = torch.float64
EPS32 = torch.finfo(torch.float32).eps
K = 8  # taps of the precision tests
SIGMAS = (1.0, 0.1, 1e-2, 1e-3, 1e-4)


# ----------------------------------------------------------------------------- float64 references (shared)


def near_ties() -> torch.Tensor:
    """float32 positions in ``[0, K - 1]`` at and near integers and half-integers: 1 to 16 float32 steps away,
    and 1e-6 to 0.3 away (where the Gaussian of a small sigma is neither one-hot nor flat)."""
    base = torch.tensor([0.0, 0.5, 1.0, 3.0, 3.5, 4.5, 6.0, 6.5, 7.0])  # (0.5: below it p + 0.5 rounds up to 1)
    out = [base]
    for sign in (1.0, -1.0):
        q = base.clone()
        for steps in range(1, 17):
            q = torch.nextafter(q, q + sign)
            if steps in (1, 2, 4, 16):
                out.append(q.clone())
        offsets = torch.tensor([1e-6, 1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 0.1, 0.3])
        out.append((base[:, None] + sign * offsets).flatten())
    return torch.cat(out).clamp(0, K - 1)


def _kernel64(p: torch.Tensor, sigma: float) -> torch.Tensor:
    """float64 ``G [n, K]`` at the positions ``p`` (exponents relative to the nearest tap: exact in float64 here)."""
    p = p.to(D64).clamp(0, K - 1)[:, None]
    k = torch.arange(K, dtype=D64)
    r = torch.floor(p + 0.5)
    return torch.softmax(-(k - r) * (k + r - 2 * p) / (2 * sigma**2), dim=-1)


def gaussian64(p: torch.Tensor, sigma: float) -> torch.Tensor:
    """The Gaussian delay kernel of the (float32) positions ``p`` ``[n]``, in float64: ``[n, K]``."""
    return _kernel64(p, sigma)


def position_grad64(p: torch.Tensor, v: torch.Tensor, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``(d/dp sum_k v_k G_k(p), scale)`` in float64 for positions ``p [n]`` and weights ``v [n, K]``: the gradient
    ``sum_k G_k (v_k - vbar)(k - kbar) / sigma^2`` and the size of its terms, ``sum_k G_k |v_k - vbar| |k - kbar| /
    sigma^2`` (float32 cannot do better than a few units of its precision times that)."""
    g = _kernel64(p, sigma)
    k = torch.arange(K, dtype=D64)
    v = v.to(D64)
    dv = v - (g * v).sum(-1, keepdim=True)
    dk = k - (g * k).sum(-1, keepdim=True)
    return (g * dv * dk).sum(-1) / sigma**2, (g * dv.abs() * dk.abs()).sum(-1) / sigma**2


def assert_kernel_accurate(g32: torch.Tensor, p: torch.Tensor, sigma: float) -> None:
    """float32 ``G [n, K]`` against float64: a few float32 units relative to each weight, more for the tiny
    weights far out in the tails (``exp`` of an exponent ``e`` carries ``|e|`` times the exponent's rounding)."""
    ref = gaussian64(p, sigma)
    err = (g32.to(D64) - ref).abs()
    tol = 4 * EPS32 * ref * (1 + ref.clamp_min(1e-300).log().abs()) + 1e-30
    worst = (err / tol).max()
    assert worst <= 1, f"sigma={sigma}: float32 kernel off by {err.max():.3g} (worst {worst:.3g} x tolerance)"


def assert_position_grad_accurate(gp32: torch.Tensor, p: torch.Tensor, v: torch.Tensor, sigma: float,
                                  units: float = 16) -> None:
    """float32 position gradients against float64: within ``units`` float32 units of the size of their terms."""
    ref, scale = position_grad64(p, v, sigma)
    err = (gp32.to(D64) - ref).abs()
    worst = (err / (units * EPS32 * scale + 1e-7 * scale.max())).max()
    assert worst <= 1, f"sigma={sigma}: float32 position gradient off by {err.max():.3g} (max |grad| " \
                       f"{ref.abs().max():.3g}; worst {worst:.3g} x tolerance)"


def impulse_response(fn, p: torch.Tensor, sigma: float, v: torch.Tensor | None = None, device="cpu"):
    """``(G [n, K], d/dp sum v G)`` read back through a delay layer ``fn(x, W, p [n, 1], sigma)``: one input, ``n``
    outputs of weight 1, ``x`` a unit impulse at t = 0, so ``y[t, 0, j] = G_j[t]``."""
    n = p.numel()
    x = torch.zeros(K, 1, 1, device=device)
    x[0] = 1.0
    pos = p.view(n, 1).to(device).clone().requires_grad_(v is not None)
    y = fn(x, torch.ones(n, 1, device=device), pos, sigma)
    g = y[:, 0, :].t().float().cpu()
    if v is None:
        return g, None
    (gp,) = torch.autograd.grad(y, pos, v.t().reshape(K, 1, n).to(device=device, dtype=y.dtype))
    return g, gp.flatten().cpu()


def inside_weights(p: torch.Tensor, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The positions strictly inside ``[0, K - 1]`` (where the gradient is the Gaussian's, not the clamp's) and
    float32 weights ``v [n, K]`` for their gradient."""
    p = p[(p > 0) & (p < K - 1)]
    return p, torch.randn(p.numel(), K, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- the Gaussian in float32


@pytest.mark.parametrize("sigma", SIGMAS)
def test_float32_gaussian_kernel_matches_float64(sigma):
    """The kernel squared ``k - p`` and divided by 2 sigma^2 = 2e-6: the float32 rounding of squares near 1/4 moved
    each exponent by ~0.01 (weights off by 4e-3 relative at sigma 1e-3, 1e-4 at 1e-2; 0.27 at 1e-4)."""
    p = near_ties()
    assert_kernel_accurate(gaussian_delay_kernel(p, sigma, K), p, sigma)
    assert_kernel_accurate(gaussian_delay_kernel(p.view(3, -1), sigma, K, tap_dim=0).flatten(1).t(), p, sigma)


@pytest.mark.parametrize("sigma", SIGMAS)
def test_float32_position_gradient_matches_float64(sigma):
    """The positions' gradient from autograd of the float32 kernel (4e-3 of its terms' size at sigma 1e-3 before)."""
    p, v = inside_weights(near_ties())
    pos = p.clone().requires_grad_(True)
    (gp,) = torch.autograd.grad((gaussian_delay_kernel(pos, sigma, K) * v).sum(), pos)
    assert_position_grad_accurate(gp, p, v, sigma)


@pytest.mark.parametrize("method", ["fft", "taps"])
@pytest.mark.parametrize("sigma", SIGMAS)
def test_every_torch_path_keeps_the_float32_kernel_accurate(method, sigma):
    p, v = inside_weights(near_ties(), seed=1)
    g, gp = impulse_response(lambda x, W, q, s: delayed_linear(x, W, q, s, K, method=method), p, sigma, v)
    units = 4 * K if method == "fft" else 16  # (the FFT's own rounding: ~1e-7 of the largest value)
    tol = 2e-7 if method == "fft" else 0.0
    ref = gaussian64(p, sigma)
    if method == "fft":
        assert (g.to(D64) - ref).abs().max() <= tol
    else:
        assert_kernel_accurate(g, p, sigma)
    assert_position_grad_accurate(gp, p, v, sigma, units)


def below_half_taps(dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Positions one step of ``dtype`` below each half-integer ``k + 1/2`` in ``[0, K - 1]``, and the half-integers:
    the nearest taps ``k`` and (ties go up) ``k + 1``."""
    half = torch.arange(K - 1, dtype=dtype) + 0.5
    return torch.cat([torch.nextafter(half, torch.zeros_like(half)), half])


@pytest.mark.parametrize("dtype", [torch.float32, D64])
def test_nearest_tap_is_exact_just_below_half_a_tap(dtype):
    """floor(p + 1/2) gave tap 1 for the float just below 1/2 (p + 1/2 rounds up to 1): an exponent relative to a
    tap that is not the nearest, positive for tap 0 (the Triton kernels' exp of it overflowed at tiny sigma)."""
    p = below_half_taps(dtype)
    taps = torch.arange(K, dtype=dtype)
    expected = torch.cat([torch.arange(K - 1), torch.arange(1, K)]).to(dtype)
    assert torch.equal(nearest_tap(p), expected)
    e = relative_exponent(taps, p[:, None])
    assert (e <= 0).all()  # the nearest tap's is 0, the largest (at a tie, both taps')
    assert torch.equal(e.gather(-1, expected.long()[:, None]), torch.zeros(len(p), 1, dtype=dtype))


@pytest.mark.parametrize("sigma", [1e-6, 1e-20])
def test_tiny_sigma_kernel_is_the_nearest_tap_just_below_half_a_tap(sigma):
    p = below_half_taps()
    assert_kernel_accurate(gaussian_delay_kernel(p, sigma, K), p, sigma)
    pos = p[: K - 1].clone().requires_grad_(True)  # (not the exact ties: there the gradient grows like 1 / sigma^2)
    (gp,) = torch.autograd.grad((gaussian_delay_kernel(pos, sigma, K) * torch.arange(float(K))).sum(), pos)
    assert torch.equal(gp, torch.zeros_like(gp))


def _positions_for_gradcheck(sigma: float) -> torch.Tensor:
    """float64 positions where the Gaussian of ``sigma`` has a gradient: within a few sigma^2 of midpoints (for
    small sigma), plus near and away from integers."""
    s2 = sigma * sigma
    return torch.tensor([3.5 + 0.3 * s2, 4.5 - 2 * s2, 1.5 + s2, 2.0 + 0.1 * sigma, 5.3, 0.7], dtype=D64)


@pytest.mark.parametrize("sigma", SIGMAS)
def test_position_gradient_passes_gradcheck_in_float64(sigma):
    p = _positions_for_gradcheck(sigma).requires_grad_(True)
    eps = 1e-3 * sigma * sigma  # the kernel moves on a scale of sigma^2 near a midpoint
    assert torch.autograd.gradcheck(lambda q: gaussian_delay_kernel(q, sigma, K), (p,), eps=eps, atol=1e-6, rtol=1e-4)
    if sigma >= 1e-2:  # the derivative's derivative too (the mean-tap shift keeps it exact)
        assert torch.autograd.gradgradcheck(lambda q: gaussian_delay_kernel(q, sigma, K), (p,), eps=eps, atol=1e-5,
                                            rtol=1e-3)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")  # (torch loading its jvp decompositions)
def test_position_gradient_in_forward_mode_and_forward_over_reverse():
    """gaussian_delay_kernel's one-softmax Function had no jvp: torch.func.hessian (forward over reverse), jacfwd of
    a gradient and forward-mode AD on positions that require grad raised NotImplementedError (the autograd softmax
    before it took them). The tangent is G (k - m) 2 dp / (2 sigma^2), the same Hessian as reverse over reverse."""
    from torch.autograd import forward_ad
    from torch.func import grad, hessian, jacfwd, vmap

    p = torch.tensor([1.3, 2.5 + 1e-3, 0.2, 4.9], dtype=D64)
    w = torch.randn(4, 6, dtype=D64, generator=torch.Generator().manual_seed(0))

    def loss(q, ww=w):
        return (gaussian_delay_kernel(q, 0.7, 6) * ww).sum()

    expected = torch.autograd.functional.hessian(loss, p)  # reverse over reverse
    torch.testing.assert_close(hessian(loss)(p), expected, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(jacfwd(grad(loss))(p), expected, rtol=1e-10, atol=1e-12)
    per_sample = vmap(hessian(loss))(p.view(4, 1), w.view(4, 1, 6)).view(4)
    torch.testing.assert_close(per_sample, expected.diagonal(), rtol=1e-10, atol=1e-12)
    q = p.clone().requires_grad_(True)  # the Function's path (positions that train), in forward mode
    with forward_ad.dual_level():
        tangent = forward_ad.unpack_dual(gaussian_delay_kernel(forward_ad.make_dual(q, torch.ones_like(q)), 0.7,
                                                               6)).tangent
    jac = torch.autograd.functional.jacobian(lambda r: gaussian_delay_kernel(r, 0.7, 6), p)  # [4, 6, 4]
    torch.testing.assert_close(tangent, jac.sum(-1), rtol=1e-10, atol=1e-12)


def test_position_gradient_without_private_torch_ops(monkeypatch):
    """The backward used torch._softmax_backward_data, private (its signature changed before, in torch 1.11; snnlab
    takes torch >= 2.2): public operations now, as accurate (centred in the upstream gradient: an offset of 1e3
    costs no float32 digits)."""
    def private(*args, **kwargs):
        raise AssertionError("torch._softmax_backward_data called")

    monkeypatch.setattr(torch, "_softmax_backward_data", private)
    g = torch.Generator().manual_seed(4)
    for sigma in (0.05, 0.4, 3.0):
        p = torch.rand(300, generator=g) * (K - 1)
        gy = torch.randn(300, K, generator=g) + 1e3
        got = torch.autograd.grad(gaussian_delay_kernel(p.requires_grad_(True), sigma, K), p, gy)[0].to(D64)
        q = p.detach().to(D64).requires_grad_(True)
        ref = torch.autograd.grad(torch.softmax(-(torch.arange(K, dtype=D64) - q[:, None]) ** 2 / (2 * sigma**2), -1),
                                  q, gy.to(D64))[0]
        scale = ref.abs().max().item()
        assert (got - ref).abs().max().item() <= 4 * EPS32 * scale, sigma


def test_layer_gradcheck_at_small_sigma():
    """The layer's float64 gradients for x, weight and positions at sigma = 1e-3 (positions near midpoints)."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(6, 2, 3, generator=g, dtype=D64)
    W = torch.randn(2, 3, generator=g, dtype=D64)
    P = torch.tensor([[1.5 + 3e-7, 2.5 - 1e-6, 0.5], [3.0, 1.5 - 4e-7, 2.2]], dtype=D64)
    for method in ("fft", "taps"):
        def fn(a, b, c):
            return delayed_linear(a, b, c, 1e-3, 5, method=method)
        inputs = tuple(t.clone().requires_grad_(True) for t in (x, W, P))
        assert torch.autograd.gradcheck(fn, inputs, eps=1e-9, atol=1e-5, rtol=1e-4)


def test_half_precision_positions_are_computed_in_float32():
    p = torch.tensor([2.5, 3.25, 0.0], dtype=torch.bfloat16)
    g = gaussian_delay_kernel(p, 0.1, K)
    assert g.dtype == torch.bfloat16
    torch.testing.assert_close(g.float(), gaussian64(p.float(), 0.1).float().bfloat16().float(), rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool])
def test_integer_positions_give_the_gaussian_of_their_values(dtype):
    """The kernel was cast to the positions' dtype: integer positions gave a kernel of zeros (bool: all True)."""
    p = torch.tensor([1, 0, 3, 9]).to(dtype)
    g = gaussian_delay_kernel(p, 0.6, K)
    assert g.dtype == torch.get_default_dtype()
    torch.testing.assert_close(g, gaussian_delay_kernel(p.to(torch.get_default_dtype()), 0.6, K), rtol=0, atol=0)


# ----------------------------------------------------------------------------- autocast


def autocast_reference(layer: DelayedLinear, x: torch.Tensor,
                       dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """The layer in float64 from the operands autocast gives ``nn.Linear`` (``x``, ``weight`` and ``bias`` in
    ``dtype``), the positions as they are: ``(y, how large the roundings to dtype may be)``: the output, rounded
    once, and the sum before the bias (rounded, then added to the bias and rounded again)."""
    ref = DelayedLinear(layer.in_features, layer.out_features, layer.max_delay, bias=layer.bias is not None,
                        sigma=layer.sigma, dtype=D64)
    with torch.no_grad():
        ref.weight.copy_(layer.weight.to(dtype))
        ref.positions.copy_(layer.positions)
        if layer.bias is not None:
            ref.bias.copy_(layer.bias.to(dtype))
    if layer.rounded:
        ref.round_delays()
    y = ref(x.to(dtype).to(D64))
    return y, y.abs() + (0 if ref.bias is None else (y - ref.bias).abs())


def _assert_within_rounding(y: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype, scale: torch.Tensor) -> None:
    """``y`` is in ``dtype`` and is ``ref`` but for roundings to ``dtype`` of values as large as ``scale``
    (``eps`` relative each: round to nearest is within half of it)."""
    assert y.dtype == dtype
    tol = torch.finfo(dtype).eps * scale + 1e-6
    assert ((y.to(D64) - ref).abs() <= tol).all(), (y.to(D64) - ref).abs().max()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("rounded", [False, True])
@pytest.mark.parametrize("bias", [False, True])
def test_autocast_gives_its_dtype_summed_in_float32_on_every_torch_path(dtype, rounded, bias):
    """The taps path ran autocast's low-precision products and summed them in bfloat16 (its output bfloat16, or
    float32 with a bias), while the FFT path and the Triton kernels returned float32."""
    layer = DelayedLinear(7, 5, max_delay=6, bias=bias, seed=0, sigma=0.7)
    if rounded:
        layer.round_delays()
    x = torch.randn(20, 3, 7, generator=torch.Generator().manual_seed(2))
    ref, scale = autocast_reference(layer, x, dtype)
    outs = []
    with torch.autocast("cpu", dtype=dtype):
        outs.append(layer(x))
        if rounded:
            outs.append(delayed_linear_rounded(x, layer.weight, layer.delays, layer.bias))
        else:
            for method in ("fft", "taps"):
                outs.append(delayed_linear(x, layer.weight, layer.positions, layer.sigma, 6, layer.bias, method=method))
    for y in outs:
        _assert_within_rounding(y, ref, dtype, scale)
        torch.testing.assert_close(y, outs[0], rtol=torch.finfo(dtype).eps, atol=1e-6)
    outs[0].float().square().sum().backward()  # gradients reach the float32 parameters in float32
    params = [layer.weight] + ([] if rounded else [layer.positions]) + ([layer.bias] if bias else [])
    for prm in params:
        assert prm.grad.dtype == torch.float32 and torch.isfinite(prm.grad).all() and prm.grad.abs().sum() > 0


@pytest.mark.parametrize("path", ["taps", "fft", "rounded", "float64"])
def test_autocast_asked_once_per_forward(path, monkeypatch):
    """DelayedLinear.forward cast its operands for autocast, then the path it called asked autocast again (and
    again to turn it off): about 4 us per call. Once now, with the same dtypes out."""
    asked = []

    def counting(device_type, real=delay_math.autocast_dtype):
        asked.append(device_type)
        return real(device_type)

    monkeypatch.setattr(delay_math, "autocast_dtype", counting)
    monkeypatch.setattr(delays_module, "autocast_dtype", counting)
    if path == "fft":
        monkeypatch.setattr(delays_module, "_choose_method", lambda *args: "fft")
    layer = DelayedLinear(4, 3, max_delay=5, bias=True, seed=0, sigma=0.7,
                          dtype=D64 if path == "float64" else torch.float32)
    if path == "rounded":
        layer.round_delays()
    x = torch.randn(6, 2, 4, dtype=layer.weight.dtype, generator=torch.Generator().manual_seed(1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x)
    assert asked == ["cpu"]
    assert y.dtype == (D64 if path == "float64" else torch.bfloat16)
    ref, scale = autocast_reference(layer, x, torch.bfloat16) if path != "float64" else (None, None)
    if ref is not None:
        _assert_within_rounding(y, ref, torch.bfloat16, scale)


def test_autocast_leaves_a_float64_layer_and_other_devices_alone():
    layer = DelayedLinear(3, 2, max_delay=4, seed=1, dtype=D64)
    x = torch.randn(9, 2, 3, dtype=D64)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x)
        assert autocast_dtype("meta") is None and autocast_dtype("cpu") == torch.bfloat16
        xm = torch.empty(2, 1, 3, device="meta")
        assert autocast_operands(xm, torch.empty(2, 3, device="meta"))[0].dtype == torch.float32
    torch.testing.assert_close(y, layer(x), rtol=0, atol=0)


@pytest.mark.parametrize("rounded", [False, True])
def test_half_precision_layers_sum_in_float32_on_every_torch_path(rounded):
    """A bfloat16 layer (no autocast): the taps paths summed bfloat16 products in bfloat16, the FFT in float32."""
    layer = DelayedLinear(6, 4, max_delay=5, seed=2, sigma=0.6, dtype=torch.bfloat16)
    if rounded:
        layer.round_delays()
    x = torch.randn(16, 2, 6, generator=torch.Generator().manual_seed(4)).bfloat16()
    ref = layer.double()(x.double())  # the same bfloat16 numbers (positions included), in float64
    layer.bfloat16()
    if rounded:
        ys = [delayed_linear_rounded(x, layer.weight, layer.delays)]
    else:
        ys = [delayed_linear(x, layer.weight, layer.positions, layer.sigma, 5, method=m) for m in ("fft", "taps")]
    for y in ys:
        _assert_within_rounding(y, ref, torch.bfloat16, ref.abs())


def _conv1d_dtypes(monkeypatch) -> list:
    """The dtypes the taps paths' ``conv1d`` runs in, recorded from here on."""
    seen = []
    conv = delays_module._causal_conv1d
    monkeypatch.setattr(delays_module, "_causal_conv1d", lambda x3, kernel: seen.append(x3.dtype) or conv(x3, kernel))
    return seen


@pytest.mark.parametrize("rounded", [False, True])
def test_autocast_runs_the_cpu_conv1d_in_its_dtype(rounded, monkeypatch):
    """Where the taps run as one conv1d (CPU, many rows), autocast's dtype runs it (the speed-up bfloat16 gives on
    CPUs with bfloat16 instructions): rounded delays exactly as the other paths (exact products, summed in float32,
    rounded once), Gaussian ones with ``W * G`` rounded to bfloat16 too (within eps of the terms' magnitudes)."""
    monkeypatch.setattr(delays_module, "_fast_cpu_conv", lambda dtype: dtype is not None)  # (whatever this CPU has)
    seen = _conv1d_dtypes(monkeypatch)
    layer = DelayedLinear(7, 5, max_delay=6, seed=3, sigma=0.7, bias=False)
    if rounded:
        layer.round_delays()
    x = torch.randn(64, 64, 7, generator=torch.Generator().manual_seed(5))  # 4096 rows: the conv1d path
    ref, scale = autocast_reference(layer, x, torch.bfloat16)
    seen.clear()  # (the float64 reference's conv1d)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = layer(x)
    assert seen == [torch.bfloat16] and y.dtype == torch.bfloat16
    if not rounded:  # each term x * bf16(W * G): within eps of the sum of the terms' magnitudes
        absolute = DelayedLinear(7, 5, max_delay=6, sigma=0.7, bias=False, dtype=D64)
        with torch.no_grad():
            absolute.weight.copy_(layer.weight.to(torch.bfloat16).abs())
            absolute.positions.copy_(layer.positions)
        scale = scale + absolute(x.to(torch.bfloat16).to(D64).abs())
    _assert_within_rounding(y, ref, torch.bfloat16, scale)
    y.float().square().sum().backward()
    assert layer.weight.grad.dtype == torch.float32 and torch.isfinite(layer.weight.grad).all()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("rounded", [False, True])
def test_autocast_keeps_the_cpu_conv1d_in_float32_without_fast_kernels_for_its_dtype(dtype, rounded, monkeypatch):
    """A conv1d in float16 on a CPU without AVX-512-FP16 (or in bfloat16 without AVX-512) runs PyTorch's reference
    loops: the SHD layer's training step took 5.8 s under float16 autocast instead of 0.34 s. There the conv1d
    stays in float32 (the per-tap paths' precision: autocast's dtype out, summed in float32, rounded once)."""
    monkeypatch.setattr(delays_module, "_fast_cpu_conv", lambda amp: False)
    seen = _conv1d_dtypes(monkeypatch)
    layer = DelayedLinear(7, 5, max_delay=6, seed=3, sigma=0.7, bias=True)
    if rounded:
        layer.round_delays()
    x = torch.randn(64, 64, 7, generator=torch.Generator().manual_seed(6))  # 4096 rows: the conv1d path
    ref, scale = autocast_reference(layer, x, dtype)
    seen.clear()
    with torch.autocast("cpu", dtype=dtype):
        y = layer(x)
    assert seen == [torch.float32]
    _assert_within_rounding(y, ref, dtype, scale)
    y.float().square().sum().backward()
    assert layer.weight.grad.dtype == torch.float32 and torch.isfinite(layer.weight.grad).all()


def test_fast_cpu_conv_asks_onednn_for_half_precision_only(monkeypatch):
    fast = delays_module._fast_cpu_conv
    assert not fast(None) and not fast(torch.float32) and not fast(D64)
    assert fast(torch.bfloat16) == (torch.backends.mkldnn.is_available()
                                    and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    assert fast(torch.float16) == (torch.backends.mkldnn.is_available()
                                   and torch.ops.mkldnn._is_mkldnn_fp16_supported())
    monkeypatch.setattr(torch.backends.mkldnn, "enabled", False)  # (PyTorch's reference loops run every CPU conv1d)
    assert not fast(torch.bfloat16) and not fast(torch.float16)


def test_autocast_off_on_a_device_this_torch_cannot_autocast(monkeypatch):
    """torch before 2.5 refuses torch.autocast("mps", enabled=False): every delay path on a Mac raised there."""
    from types import SimpleNamespace

    def refuse(device_type, *args, **kwargs):
        raise RuntimeError(f"User specified an unsupported autocast device_type '{device_type}'")

    monkeypatch.setattr(torch, "autocast", refuse)
    with delay_math.autocast_off(SimpleNamespace(device=torch.device("mps"))):
        assert not torch.is_autocast_enabled("cpu")


def test_autocast_dtype_on_torch_before_2_4(monkeypatch):
    """torch 2.2 and 2.3 (snnlab's range) have no device argument to is_autocast_enabled and no get_autocast_dtype:
    every DelayedLinear forward raised TypeError there."""
    cpu_enabled, cpu_dtype = torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")
    assert not cpu_enabled
    gpu_enabled = torch.is_autocast_enabled("cuda")

    def is_autocast_enabled():  # torch 2.3's: CUDA only, no argument
        return gpu_enabled

    monkeypatch.setattr(torch, "is_autocast_enabled", is_autocast_enabled)
    monkeypatch.delattr(torch, "get_autocast_dtype")
    monkeypatch.setattr(torch, "is_autocast_cpu_enabled", lambda: True)
    monkeypatch.setattr(torch, "get_autocast_cpu_dtype", lambda: torch.bfloat16)
    monkeypatch.setattr(torch, "get_autocast_gpu_dtype", lambda: torch.float16)
    assert autocast_dtype("cpu") == torch.bfloat16 and autocast_dtype("meta") is None
    assert autocast_dtype("cuda") is None and autocast_dtype("xpu") is None
    x, w = torch.ones(2, 1, 3), torch.ones(4, 3)
    assert [t.dtype for t in autocast_operands(x, w)[:2]] == [torch.bfloat16, torch.bfloat16]
    monkeypatch.setattr(torch, "is_autocast_cpu_enabled", lambda: False)
    assert autocast_dtype("cpu") is None and autocast_operands(x, w)[0] is x  # (what every forward asks first)
