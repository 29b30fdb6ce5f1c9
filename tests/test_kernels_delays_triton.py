"""The fused Triton DelayedLinear kernels against the PyTorch references: on CPU through Triton's
interpreter (CI), or on a CUDA GPU with ``SNNLAB_TEST_DEVICE=cuda`` (see tests/triton_device.py).

triton_device must be imported before triton: it sets TRITON_INTERPRET=1 for the CPU run, and
kernels are bound to the interpreter when they are decorated.
"""
from triton_device import DEVICE, skip_unless_ready  # noqa: I001  (before triton)

import pytest  # noqa: E402
import torch  # noqa: E402

tl = pytest.importorskip("triton.language")
pytestmark = skip_unless_ready(tl, "snnlab.kernels.delays_triton")

from snnlab.core import delays as delays_mod  # noqa: E402
from snnlab.core.delays import DelayedLinear, delayed_linear_reference, delayed_linear_rounded  # noqa: E402
from snnlab.kernels import delay_taps_triton, delays_triton, lif_triton  # noqa: E402
from snnlab.kernels.delays_triton import delayed_linear_triton, gaussian_window, kernel_options  # noqa: E402
from snnlab.kernels.dispatch import resolve_backend  # noqa: E402
from test_delays_precision import (K as PREC_K, SIGMAS, assert_kernel_accurate,  # noqa: E402
                                   assert_position_grad_accurate, autocast_reference, below_half_taps,
                                   impulse_response, inside_weights, near_ties)

D64 = torch.float64


@pytest.fixture(autouse=True, params=delays_triton.ALGORITHMS)
def algorithm(request, monkeypatch):
    """Every test runs with each algorithm of the kernels (the tensor-core "mma", the "gather" path and the
    dense-tap "taps" one), chosen as users do, through the environment."""
    monkeypatch.setenv("SNNLAB_TRITON_DELAY_ALGO", request.param)
    return request.param


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _on_device(*tensors):
    """The tensors, drawn on the CPU from a seeded generator, moved to the device the tests run on."""
    return tuple(t.to(DEVICE) for t in tensors)


def _grads(fn, inputs, gy):
    inputs = [t.detach().clone().requires_grad_(True) for t in inputs]
    y = fn(*inputs)
    return (y, *torch.autograd.grad(y, inputs, gy))


def _close(a, b, tol=2e-5):
    scale = max(1.0, b.abs().max().item())
    torch.testing.assert_close(a.to(D64), b.to(D64), rtol=tol, atol=tol * scale)


# ----------------------------------------------------------------------------- rounded path


@pytest.mark.parametrize("T,B,I,O,K", [(7, 3, 13, 9, 5), (7, 2, 5, 4, 12), (9, 5, 20, 40, 6)])
def test_rounded_matches_torch(T, B, I, O, K):
    g = _gen(T + I)
    x = torch.randn(T, B, I, generator=g)
    W = torch.randn(O, I, generator=g)
    D = torch.randint(0, K, (O, I), generator=g)  # K=12 > T=7: some delays reach past the sequence
    gy = torch.randn(T, B, O, generator=g)
    x, W, D, gy = _on_device(x, W, D, gy)
    out = _grads(lambda a, b: delayed_linear_triton(a, b, D, 1.0, K, True), (x, W), gy)
    ref = _grads(lambda a, b: delayed_linear_rounded(a, b, D), (x.to(D64), W.to(D64)), gy.to(D64))
    assert out[0].dtype == torch.float32 and out[0].shape == (T, B, O)
    for a, b in zip(out, ref):
        _close(a, b)


def test_rounded_extra_dims_and_spikes_exact():
    g = _gen(3)
    x = (torch.rand(6, 2, 3, 11, generator=g) < 0.3).float()  # spikes, small integer weights: exact sums
    W = torch.randint(-3, 4, (7, 11), generator=g).float()
    D = torch.randint(0, 4, (7, 11), generator=g)
    x, W, D = _on_device(x, W, D)
    y = delayed_linear_triton(x, W, D, 0.5, 4, True)
    assert y.shape == (6, 2, 3, 7)
    assert torch.equal(y, delayed_linear_rounded(x, W, D))


def test_rounded_input_checks():
    x, W = _on_device(torch.randn(4, 2, 3), torch.randn(5, 3))
    with pytest.raises(TypeError, match="integer delays"):
        delayed_linear_triton(x, W, torch.zeros(5, 3, device=DEVICE), 1.0, 3, True)
    with pytest.raises(ValueError, match=">= 0"):
        delayed_linear_triton(x, W, -torch.ones(5, 3, dtype=torch.long, device=DEVICE), 1.0, 3, True)
    with pytest.raises(ValueError, match="weight's shape"):
        delayed_linear_triton(x, W, torch.zeros(3, 5, dtype=torch.long, device=DEVICE), 1.0, 3, True)


def test_more_rows_than_int32_indices_raises(monkeypatch):
    monkeypatch.setattr(delays_triton, "_MAX_ROWS", 23)  # the real limit, 2**31 - 1, needs 8 GB per input
    x, W = _on_device(torch.randn(4, 2, 3, 3), torch.randn(5, 3))
    D = torch.zeros(5, 3, dtype=torch.long, device=DEVICE)
    assert delayed_linear_triton(x[:, :, :2], W, D, 1.0, 3, True).shape == (4, 2, 2, 5)  # 16 rows: fine
    for rounded, p in ((True, D), (False, D.float())):
        with pytest.raises(ValueError, match="24 rows.*backend='torch'"):
            delayed_linear_triton(x, W, p, 1.0, 3, rounded)



def test_interpreter_problem_raised_before_launching(monkeypatch):
    # the check is the LIF kernels' (lif_triton._check_device), shared
    monkeypatch.setattr(lif_triton, "_INTERPRETED", True)
    monkeypatch.setattr(lif_triton, "interpreter_problem", lambda: "Triton 3.6.0's CPU interpreter cannot run")
    x, W = torch.randn(4, 2, 3), torch.randn(5, 3)  # CPU tensors: the interpreter's case
    with pytest.raises(RuntimeError, match="delayed_linear_triton: Triton 3.6.0's CPU interpreter"):
        delayed_linear_triton(x, W, torch.zeros(5, 3, dtype=torch.long), 1.0, 3, True)


@pytest.mark.skipif(DEVICE.type != "cpu", reason="CPU tensors the kernels cannot take")
def test_cpu_tensors_without_the_interpreter_raise_the_lif_kernels_error(monkeypatch):
    """delays_triton kept its own copy of the LIF kernels' device check; now it calls theirs (one message)."""
    monkeypatch.setattr(lif_triton, "_INTERPRETED", False)  # as if Triton were compiling for a GPU
    x, W = torch.randn(4, 2, 3), torch.randn(5, 3)
    with pytest.raises(RuntimeError) as delays_error:
        delayed_linear_triton(x, W, torch.zeros(5, 3, dtype=torch.long), 1.0, 3, True)
    with pytest.raises(RuntimeError) as lif_error:
        lif_triton._check_device(x)
    message = str(delays_error.value)
    assert message.startswith("delayed_linear_triton got a tensor on 'cpu'; the Triton kernels need a CUDA device. "
                              "Use backend='torch', move the tensors to CUDA, or set TRITON_INTERPRET=1")
    assert message == str(lif_error.value).replace("lif_triton", "delayed_linear_triton").replace(
        "the torch backend", "backend='torch'")
    with pytest.raises(RuntimeError, match="one device"):
        delayed_linear_triton(x, W.to("meta"), torch.zeros(5, 3, dtype=torch.long), 1.0, 3, True)


@pytest.mark.skipif(DEVICE.type != "cpu", reason="a device the kernels cannot run on")
def test_layer_asking_for_triton_without_a_gpu_raises_what_the_lif_layers_raise(monkeypatch):
    layer = DelayedLinear(3, 2, 4, backend="triton")
    monkeypatch.setenv("TRITON_INTERPRET", "0")  # no GPU and no interpreter asked for
    with pytest.raises(RuntimeError) as layer_error:
        layer(torch.randn(5, 1, 3))
    with pytest.raises(RuntimeError) as lif_error:
        resolve_backend("triton", "cpu")
    assert str(layer_error.value) == str(lif_error.value)
    assert "requested for a tensor on device 'cpu', but the Triton kernels need a CUDA device" in str(lif_error.value)

# ----------------------------------------------------------------------------- "auto" precision (bfloat16 split)


def test_auto_precision_splits_in_bfloat16_only_for_inputs_exact_in_it(algorithm):
    resolve = delays_triton._resolve_precision
    spikes = (torch.rand(5, 2, 7, generator=_gen(3)) < 0.3).float()
    counts = torch.randint(-200, 200, (5, 2, 7), generator=_gen(4)).float()  # integers up to 256 are exact
    analog = torch.randn(5, 2, 7, generator=_gen(5))
    nan = spikes.clone()
    nan[0, 0, 0] = float("nan")
    exact = "tf32x3" if algorithm == "gather" else "bf16x3"  # (the gather path has no products to split)
    assert resolve((algorithm, "auto"), spikes) == (algorithm, exact)
    assert resolve((algorithm, "auto"), counts) == (algorithm, exact)
    assert resolve((algorithm, "auto"), analog.bfloat16()) == (algorithm, exact)
    assert resolve((algorithm, "auto"), analog) == (algorithm, "tf32x3")
    assert resolve((algorithm, "auto"), analog.half()) == (algorithm, "tf32x3")  # fp16 has 3 bits more
    assert resolve((algorithm, "auto"), nan) == (algorithm, "tf32x3")
    assert resolve((algorithm, "tf32"), spikes) == (algorithm, "tf32")  # asked for by name: kept


@pytest.mark.parametrize("rounded", [False, True])
def test_auto_precision_on_spikes_keeps_float32_accuracy(rounded):
    # the bfloat16 split (three products) against float64: ~3e-7 of the largest value on the interpreter;
    # without its smallest part ~1e-5, with one product alone ~3e-3
    T, B, I, O, K, sigma = 12, 6, 40, 72, 9, 1.7  # several tiles of rows, inputs and outputs
    g = _gen(21 + rounded)
    x = (torch.rand(T, B, I, generator=g) < 0.2).float()
    W = torch.randn(O, I, generator=g)
    P = torch.rand(O, I, generator=g) * (K - 1)
    gy = torch.randn(T, B, O, generator=g)
    x, W, P, gy = _on_device(x, W, P, gy)
    assert delays_triton._resolve_precision(("mma", "auto"), x)[1] == "bf16x3"
    D = P.round().long()
    if rounded:
        out = _grads(lambda a, b: delayed_linear_triton(a, b, D, sigma, K, True), (x, W), gy)
        ref = _grads(lambda a, b: delayed_linear_rounded(a, b, D), (x.to(D64), W.to(D64)), gy.to(D64))
    else:
        out = _grads(lambda a, b, c: delayed_linear_triton(a, b, c, sigma, K, False), (x, W, P), gy)
        ref = _grads(lambda a, b, c: delayed_linear_reference(a, b, c, sigma, K),
                     (x.to(D64), W.to(D64), P.to(D64)), gy.to(D64))
    for a, b in zip(out, ref):
        _close(a, b, tol=2e-6)

# ----------------------------------------------------------------------------- Gaussian (training) path


@pytest.mark.parametrize("K,sigma", [(5, 2.5), (5, 0.7), (25, 0.5), (25, 1.3), (12, 0.05)])
def test_gaussian_matches_reference(K, sigma):
    T, B, I, O = 7, 3, 13, 9
    g = _gen(K * 10 + int(sigma * 100))
    x = torch.randn(T, B, I, generator=g)
    W = torch.randn(O, I, generator=g)
    P = torch.rand(O, I, generator=g) * (K + 1) - 1.0  # some outside [0, K-1]: clamped, zero grad
    P[0, :3] = torch.tensor([0.5, 1.5, float(K - 1) - 0.5])  # ties between two taps
    gy = torch.randn(T, B, O, generator=g)
    x, W, P, gy = _on_device(x, W, P, gy)
    out = _grads(lambda a, b, c: delayed_linear_triton(a, b, c, sigma, K, False), (x, W, P), gy)
    ref = _grads(lambda a, b, c: delayed_linear_reference(a, b, c, sigma, K),
                 (x.to(D64), W.to(D64), P.to(D64)), gy.to(D64))
    for a, b in zip(out, ref):
        _close(a, b, tol=5e-5)
    outside = (P < 0) | (P > K - 1)
    assert outside.any() and torch.all(out[3][outside] == 0)


def test_tiny_sigma_is_the_nearest_tap_as_in_the_reference():
    """sigma = 1e-20: 1 / sigma^2 overflowed float32 (exp(-0 * inf) = NaN); the kernels floor sigma^2 where the
    kernel is one-hot already, the float32 reference at the smallest normal float32."""
    T, B, I, O, K = 7, 3, 13, 9, 6
    g = _gen(99)
    x, W = torch.randn(T, B, I, generator=g), torch.randn(O, I, generator=g)
    P = torch.randint(0, K, (O, I), generator=g).float() + (torch.rand(O, I, generator=g) - 0.5) * 0.8  # no ties
    gy = torch.randn(T, B, O, generator=g)
    x, W, P, gy = _on_device(x, W, P, gy)
    out = _grads(lambda a, b, c: delayed_linear_triton(a, b, c, 1e-20, K, False), (x, W, P), gy)
    for dtype in (torch.float32, D64):
        ref = _grads(lambda a, b, c: delayed_linear_reference(a, b, c, 1e-20, K),
                     (x.to(dtype), W.to(dtype), P.to(dtype)), gy.to(dtype))
        for a, b in zip(out, ref):  # the positions' gradient too: 0 off the ties
            _close(a, b, tol=5e-5)
    nearest = delayed_linear_rounded(x.to(D64), W.to(D64), P.round().long())
    _close(out[0], nearest, tol=5e-5)


def test_gaussian_multiblock_extra_dims():
    T, K, sigma = 9, 8, 0.9
    g = _gen(11)
    x = torch.randn(T, 2, 3, 20, generator=g)  # R = 54 rows, in = 20, out = 40: several blocks each way
    W = torch.randn(40, 20, generator=g)
    P = torch.rand(40, 20, generator=g) * (K - 1)
    gy = torch.randn(T, 2, 3, 40, generator=g)
    x, W, P, gy = _on_device(x, W, P, gy)
    out = _grads(lambda a, b, c: delayed_linear_triton(a, b, c, sigma, K, False), (x, W, P), gy)
    ref = _grads(lambda a, b, c: delayed_linear_reference(a, b, c, sigma, K),
                 (x.to(D64), W.to(D64), P.to(D64)), gy.to(D64))
    assert out[0].shape == (T, 2, 3, 40)
    for a, b in zip(out, ref):
        _close(a, b, tol=5e-5)


@pytest.mark.parametrize("algorithm", ["mma", "taps"], indirect=True)  # gather: test_gaussian_multiblock_extra_dims
def test_mma_tiles_over_every_dimension(algorithm):
    # rows, inputs and outputs each span several of the tensor-core paths' tiles ("mma": 64 rows, 32 and 64
    # features, 128 outputs when out_features is a multiple of 128, as in the SHD layer's forward; "taps":
    # 128 rows, features padded to whole tiles)
    T, B, I, O, K, sigma = 20, 4, 70, 256, 9, 0.8
    g = _gen(12)
    x, W, gy = torch.randn(T, B, I, generator=g), torch.randn(O, I, generator=g), torch.randn(T, B, O, generator=g)
    P = torch.rand(O, I, generator=g) * (K - 1)
    D = torch.randint(0, K, (O, I), generator=g)
    x, W, P, D, gy = _on_device(x, W, P, D, gy)
    out = _grads(lambda a, b, c: delayed_linear_triton(a, b, c, sigma, K, False), (x, W, P), gy)
    ref = _grads(lambda a, b, c: delayed_linear_reference(a, b, c, sigma, K),
                 (x.to(D64), W.to(D64), P.to(D64)), gy.to(D64))
    for a, b in zip(out, ref):
        _close(a, b, tol=5e-5)
    out = _grads(lambda a, b: delayed_linear_triton(a, b, D, 1.0, K, True), (x, W), gy)
    ref = _grads(lambda a, b: delayed_linear_rounded(a, b, D), (x.to(D64), W.to(D64)), gy.to(D64))
    for a, b in zip(out, ref):
        _close(a, b)


class _GridSpy:
    """Stands in for a kernel: records each launch's grid, then launches the kernel."""

    def __init__(self, kernel):
        self.kernel, self.grids = kernel, []

    def __getitem__(self, grid):
        self.grids.append(grid)
        return self.kernel[grid]


@pytest.mark.parametrize("rounded", [False, True])
def test_parameter_gradients_summed_over_row_splits(rounded, algorithm, monkeypatch):
    # on a GPU the rows are split over programs (partial sums added afterwards); forced here: 4 splits of
    # 128 rows, the first ending before the longest delays reach (k * M = 19 * 8 > 128)
    monkeypatch.setattr(delays_triton, "_grad_splits", lambda R, n_tiles, BR: 4)
    monkeypatch.setattr(delay_taps_triton, "_correlation_splits", lambda R, n_programs, BR: 4)
    module = delay_taps_triton if algorithm == "taps" else delays_triton
    name = {"mma": "_delay_mma_grad_kernel", "gather": "_delay_grad_kernel", "taps": "_tap_correlation_kernel"}[algorithm]
    spy = _GridSpy(getattr(module, name))
    monkeypatch.setattr(module, name, spy)
    T, B, I, O, K, sigma = 60, 8, 20, 24, 20, 0.7
    g = _gen(13)
    x, W, gy = torch.randn(T, B, I, generator=g), torch.randn(O, I, generator=g), torch.randn(T, B, O, generator=g)
    P = torch.randint(0, K, (O, I), generator=g) if rounded else torch.rand(O, I, generator=g) * (K - 1)
    P[0, 0] = K - 1  # a delay past the first split's rows
    x, W, P, gy = _on_device(x, W, P, gy)
    if rounded:
        out = _grads(lambda a: delayed_linear_triton(x, a, P, 1.0, K, True), (W,), gy)
        ref = _grads(lambda a: delayed_linear_rounded(x.to(D64), a, P), (W.to(D64),), gy.to(D64))
    else:
        out = _grads(lambda a, b: delayed_linear_triton(x, a, b, sigma, K, False), (W, P), gy)
        ref = _grads(lambda a, b: delayed_linear_reference(x.to(D64), a, b, sigma, K), (W.to(D64), P.to(D64)),
                     gy.to(D64))
    # the "taps" correlation: one program per tap and split (20 taps: the last delay is K - 1 = 19)
    assert [grid[2] for grid in spy.grids] == [4 * K if algorithm == "taps" else 4]
    for a, b in zip(out, ref):
        _close(a, b, tol=5e-5)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8])
def test_rounded_delays_past_the_sequence_contribute_nothing(dtype, algorithm):
    # T = 300 > 255: the wrapper's cap at T must not overflow narrow integer types
    if algorithm == "taps" and dtype != torch.int64 and DEVICE.type == "cpu":
        pytest.skip("the cap is the wrapper's, shared by the algorithms; 'taps' runs 300 taps: slow on the interpreter")
    g = _gen(14)
    x, W = torch.randn(300, 2, 5, generator=g), torch.randn(4, 5, generator=g)
    D = torch.randint(0, 3, (4, 5), generator=g)
    D[:, 0] = 10 ** 12 if dtype == torch.int64 else 255  # past T (and int32): as if the synapse were absent
    D[1, 1] = 299
    x, W, D = _on_device(x, W, D.to(dtype))
    torch.testing.assert_close(delayed_linear_triton(x, W, D, 1.0, 3, True).double(),
                               delayed_linear_rounded(x.double(), W.double(), D.long()), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("rounded", [False, True])
def test_empty_sequence(rounded):
    x, W = _on_device(torch.randn(0, 2, 3), torch.randn(4, 3))
    P = torch.rand(4, 3, device=DEVICE) * 3
    x.requires_grad_(True)
    W.requires_grad_(True)
    y = delayed_linear_triton(x, W, P.round().long() if rounded else P, 1.0, 4, rounded)
    assert y.shape == (0, 2, 4)
    y.sum().backward()
    assert x.grad.shape == (0, 2, 3) and torch.equal(W.grad, torch.zeros_like(W))


def test_kernel_options_from_arguments_and_environment(algorithm, monkeypatch):
    # (under the interpreter tl.dot computes in float32 whatever the precision: the precisions' accuracy is
    # checked on a GPU, SNNLAB_TEST_DEVICE=cuda)
    monkeypatch.delenv("SNNLAB_TRITON_DELAY_PRECISION", raising=False)
    assert kernel_options() == (algorithm, "auto")
    assert kernel_options("gather", "ieee") == ("gather", "ieee")
    monkeypatch.setenv("SNNLAB_TRITON_DELAY_PRECISION", "tf32")
    assert kernel_options("mma") == ("mma", "tf32")
    monkeypatch.setenv("SNNLAB_TRITON_DELAY_ALGO", "fast")
    with pytest.raises(ValueError, match="SNNLAB_TRITON_DELAY_ALGO.*'mma', 'gather'.*'fast'"):
        kernel_options()
    with pytest.raises(ValueError, match="delayed_linear_triton.*'fp64'"):
        kernel_options("mma", "fp64")
    x, W, P = _on_device(torch.randn(4, 2, 3), torch.randn(5, 3), torch.rand(5, 3))
    with pytest.raises(ValueError, match="SNNLAB_TRITON_DELAY_ALGO"):
        delayed_linear_triton(x, W, P, 1.0, 3, False)


def test_gaussian_window():
    assert gaussian_window(0.5, 25) == (3, 7)
    assert gaussian_window(2.5, 5) == (15, 5)  # wide kernel: all taps, exact


def test_gaussian_input_checks():
    x, W, P = _on_device(torch.randn(4, 2, 3), torch.randn(5, 3), torch.rand(5, 3))
    with pytest.raises(ValueError, match="sigma"):
        delayed_linear_triton(x, W, P, 0.0, 3, False)
    with pytest.raises(TypeError, match="positions"):
        delayed_linear_triton(x, W, P.long(), 1.0, 3, False)


def test_bfloat16_runs_and_accumulates_in_float32():
    g = _gen(5)
    x = torch.randn(6, 2, 13, generator=g).bfloat16()
    W = torch.randn(9, 13, generator=g).bfloat16()
    P = (torch.rand(9, 13, generator=g) * 4).bfloat16()
    D = torch.randint(0, 5, (9, 13), generator=g)
    x, W, P, D = _on_device(x, W, P, D)
    y, gx, gw, gp = _grads(lambda a, b, c: delayed_linear_triton(a, b, c, 1.0, 5, False), (x, W, P),
                           torch.ones(6, 2, 9, dtype=torch.bfloat16, device=DEVICE))
    assert y.dtype == gx.dtype == gw.dtype == gp.dtype == torch.bfloat16
    ref = delayed_linear_reference(x.to(D64), W.to(D64), P.to(D64), 1.0, 5)
    torch.testing.assert_close(y.to(D64), ref, rtol=2e-2, atol=2e-2 * ref.abs().max().item())
    yr = delayed_linear_triton(x, W, D, 1.0, 5, True)
    ref_r = delayed_linear_rounded(x.to(D64), W.to(D64), D)
    torch.testing.assert_close(yr.to(D64), ref_r, rtol=2e-2, atol=2e-2 * ref_r.abs().max().item())


# ----------------------------------------------------------------------------- layer, end to end


@pytest.mark.parametrize("rounded", [False, True])
def test_layer_triton_matches_torch(rounded):
    assert delays_mod._triton_impl() is delayed_linear_triton
    layers = [DelayedLinear(13, 9, 6, bias=True, seed=4, backend=b).to(DEVICE) for b in ("triton", "torch")]
    for layer in layers:
        layer.sigma = 0.8
        with torch.no_grad():
            layer.positions[0, :2] = torch.tensor([-0.5, 7.0], device=DEVICE)  # outside: clamped in forward
        if rounded:
            layer.round_delays()
    (x,) = _on_device(torch.randn(7, 3, 2, 13, generator=_gen(9)))
    outs = []
    for layer in layers:
        xi = x.clone().requires_grad_(True)
        y = layer(xi)
        assert y.device.type == DEVICE.type
        (y * torch.linspace(-1, 1, 9, device=DEVICE)).square().sum().backward()
        outs.append((y.detach(), xi.grad, *[p.grad for p in layer.parameters()]))
    assert len(outs[0]) == (4 if rounded else 5)
    for a, b in zip(*outs):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    if not rounded:
        assert torch.all(layers[0].positions.grad[0, :2] == 0)


# ----------------------------------------------------------------------------- "taps" algorithm: its parts


@pytest.mark.parametrize("algorithm", ["taps"], indirect=True)  # once
def test_dense_taps_is_the_torch_paths_kernel(algorithm):
    g = _gen(31)
    W, P = torch.randn(6, 4, generator=g), torch.rand(6, 4, generator=g) * 7
    c = delay_taps_triton.dense_taps(W, P, 1.3, 8, False, 8)
    ref = W[..., None] * delays_mod.gaussian_delay_kernel(P, 1.3, 8)  # [out, in, K]
    torch.testing.assert_close(c, ref.permute(2, 1, 0))
    assert c.is_contiguous()  # the kernels read it as [K, in, out] rows
    assert delay_taps_triton.dense_taps(W, P, 1.3, 8, False, 5).shape == (5, 4, 6)  # taps past T left out
    D = P.round().long()
    c = delay_taps_triton.dense_taps(W, D, 1.0, 8, True, 8)
    assert torch.equal(c.permute(2, 1, 0), W[..., None] * torch.nn.functional.one_hot(D, 8))
    assert c.is_contiguous()


@pytest.mark.parametrize("split,parts,tol", [("bf16", 3, 2 ** -23), ("tf32", 2, 2 ** -21)])
@pytest.mark.parametrize("algorithm", ["taps"], indirect=True)  # once
def test_operand_splits_sum_to_the_float32_values(split, parts, tol, algorithm):
    t = torch.randn(4096, generator=_gen(32)) * torch.logspace(-20, 20, 4096)
    t[:3] = torch.tensor([0.0, -1.0 / 3.0, 3.0e38])  # zero, a negative, near float32's largest
    out = getattr(delay_taps_triton, f"{split}_split")(t)
    assert out.shape == (parts, 4096)
    err = (out.double().sum(0) - t.double()).abs() / t.double().abs().clamp_min(1e-30)
    assert float(err.max()) <= tol
    if split == "tf32":  # every part has at most 10 mantissa bits: a TF32 product of two parts is exact
        assert torch.all(out.view(torch.int32) & 0x1FFF == 0)
        assert not torch.equal(out[0], t)  # (and the split is not the identity)


@pytest.mark.parametrize("algorithm", ["taps"], indirect=True)  # once
def test_taps_pads_features_to_whole_tiles_and_masks_only_rows(algorithm):
    # 140 inputs (the SHD layer) are padded to 160, 100 outputs to 128 (forward) and 140 to 192 (grad_x); the
    # padding must add nothing, in every precision's split
    g = _gen(33)
    T, B, I, O, K = 5, 3, 140, 100, 4
    x = (torch.rand(T, B, I, generator=g) < 0.3).float()
    c = torch.randn(K, I, O, generator=g)
    gy = torch.randn(T * B, O, generator=g)
    x, c, gy = _on_device(x, c, gy)
    ref_y = sum(torch.nn.functional.pad(x, (0, 0, 0, 0, k, 0))[:T].reshape(T * B, I).double() @ c[k].double()
                for k in range(K))
    ref_gx = sum(torch.nn.functional.pad(gy.view(T, B, O), (0, 0, 0, 0, 0, k))[k:].reshape(T * B, O).double()
                 @ c[k].double().t() for k in range(K))
    for precision in ("bf16x3", "tf32x3", "tf32", "ieee"):
        y = delay_taps_triton._shifted_taps(x.view(T * B, I), c, B, False, precision, torch.float32)
        gx = delay_taps_triton._shifted_taps(gy, c, B, True, "tf32x3" if precision == "bf16x3" else precision,
                                             torch.float32)
        _close(y, ref_y, tol=2e-6)
        _close(gx, ref_gx, tol=2e-6)


# ------------------------------------------------------------------- precision (see tests/test_delays_precision.py)


@pytest.mark.parametrize("sigma", SIGMAS)
def test_small_sigma_kernel_and_position_gradient_keep_float32_accuracy(sigma):
    """Each algorithm's Gaussian (read back as the impulse response) and positions' gradient against float64 at the
    same float32 positions: "gather" subtracted squares of k - p (7e-5 relative at sigma 1e-2), "taps" builds the
    PyTorch kernel (4e-3 at 1e-3), "mma" took the gradient about p (4e-3 of its terms' size at 1e-3)."""
    def fn(x, W, q, s):
        return delayed_linear_triton(x, W, q, s, PREC_K, False)

    p = near_ties()
    g, _ = impulse_response(fn, p, sigma, device=DEVICE)
    assert_kernel_accurate(g, p, sigma)
    p, v = inside_weights(p, seed=5)
    _, gp = impulse_response(fn, p, sigma, v, device=DEVICE)
    assert_position_grad_accurate(gp, p, v, sigma)


@pytest.mark.parametrize("sigma", [1e-6, 1e-20])
def test_tiny_sigma_just_below_half_a_tap_is_the_nearest_tap(sigma):
    """The nearest tap was floor(p + 0.5): 1 for the float32 just below 0.5, whose tap 0 then weighed exp(+3e22) = inf
    relative to it ("gather" and "mma": NaN outputs and gradients at sigma < 2e-5)."""
    def fn(x, W, q, s):
        return delayed_linear_triton(x, W, q, s, PREC_K, False)

    p = below_half_taps()
    g, _ = impulse_response(fn, p, sigma, device=DEVICE)
    assert_kernel_accurate(g, p, sigma)
    p = p[: PREC_K - 1]  # (not the exact ties: there the gradient grows like 1 / sigma^2)
    _, gp = impulse_response(fn, p, sigma, torch.randn(len(p), PREC_K, generator=_gen(8)), device=DEVICE)
    assert torch.equal(gp, torch.zeros_like(gp))


def test_autocast_keyword_of_the_direct_call():
    """delayed_linear_triton called under autocast casts x and weight itself (its default, ``autocast=ASK``), as
    ``autocast=<dtype>`` outside it and as operands cast already with ``autocast=None``; any other ``autocast`` is a
    TypeError naming it (a string reached Tensor.to as a device: "Invalid device string", True a bool x)."""
    dtype = torch.bfloat16
    x, w = _on_device(torch.randn(6, 2, 5, generator=_gen(51)), torch.randn(3, 5, generator=_gen(52)))
    (p,) = _on_device(torch.rand(3, 5, generator=_gen(53)) * 3)
    with torch.autocast(DEVICE.type, dtype=dtype):
        y = delayed_linear_triton(x, w, p, 0.8, 4, False, algorithm="gather")
    assert y.dtype == dtype
    assert torch.equal(delayed_linear_triton(x, w, p, 0.8, 4, False, algorithm="gather", autocast=dtype), y)
    y_none = delayed_linear_triton(x.to(dtype), w.to(dtype), p, 0.8, 4, False, algorithm="gather", autocast=None)
    assert torch.equal(y_none, y)
    for bad in ("bfloat16", True, torch.int64, 1.0):
        with pytest.raises(TypeError, match=r"delayed_linear_triton: autocast must be .*got"):
            delayed_linear_triton(x, w, p, 0.8, 4, False, autocast=bad)


@pytest.mark.parametrize("rounded", [False, True])
def test_autocast_gives_the_triton_layer_the_torch_layers_precision(rounded):
    """Under autocast the kernels computed from float32 operands and returned float32 while the PyTorch taps path
    returned bfloat16 (summed in bfloat16): now every path casts x, weight and bias to autocast's dtype, sums in
    float32 and returns that dtype."""
    dtype = torch.bfloat16
    layers = [DelayedLinear(11, 6, 5, bias=True, seed=7, sigma=0.6, backend=b).to(DEVICE) for b in ("triton", "torch")]
    for layer in layers:
        if rounded:
            layer.round_delays()
    (x,) = _on_device(torch.randn(9, 3, 11, generator=_gen(41)))
    ref, scale = autocast_reference(layers[1], x.cpu(), dtype)
    outs = []
    for layer in layers:
        xi = x.clone().requires_grad_(True)
        with torch.autocast(DEVICE.type, dtype=dtype):
            y = layer(xi)
        assert y.dtype == dtype
        assert ((y.cpu().double() - ref).abs() <= torch.finfo(dtype).eps * scale + 1e-6).all()
        (y.float() * torch.linspace(-1, 1, 6, device=DEVICE)).square().sum().backward()
        outs.append((y.detach().float(), xi.grad, *[p.grad for p in layer.parameters()]))
    assert outs[0][1].dtype == torch.float32 and len(outs[0]) == (4 if rounded else 5)
    torch.testing.assert_close(outs[0][0], outs[1][0], rtol=torch.finfo(dtype).eps, atol=1e-6)
    for a, b in zip(outs[0][1:], outs[1][1:]):  # gradients: the bfloat16 copies' rounded the same way, or a step apart
        torch.testing.assert_close(a, b, rtol=2 * torch.finfo(dtype).eps, atol=1e-3 * b.abs().max().item())
