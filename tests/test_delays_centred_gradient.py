"""The positions' gradient of every DelayedLinear path (PyTorch, and the Triton "taps", "gather" and "mma"
algorithms) is centred in the upstream gradient: an offset common to every tap's gradient cancels exactly in
``sum_k dG_k/dp g_k`` (the Gaussian is normalised), and must not cost float32 digits.

The data are chosen so that every float32 product and sum before the Gaussian's backward is exact (spikes,
upstream gradients in eighths, weights in quarters), and so that the offset reaches every tap alike (no spike in
the last ``max_delay - 1`` steps): a path that forms ``sum G u g - (sum G u)(sum G g)`` loses about ``offset / |g|``
float32 units, a centred one stays within a few.
"""
from triton_device import DEVICE, triton_kernels_ready  # noqa: I001  (before triton)

import pytest  # noqa: E402
import torch  # noqa: E402

from snnlab.core.delays import delayed_linear  # noqa: E402

D64 = torch.float64
EPS32 = torch.finfo(torch.float32).eps
PATHS = ("torch", "taps", "gather", "mma")
_READY, _WHY = triton_kernels_ready("snnlab.kernels.delays_triton")


def _position_grad(path, x, w, p, gy, sigma, max_delay):
    p = p.detach().clone().requires_grad_(True)
    if path == "torch":
        y = delayed_linear(x, w, p, sigma, max_delay, method="taps")
    else:
        from snnlab.kernels.delays_triton import delayed_linear_triton

        y = delayed_linear_triton(x, w, p, sigma, max_delay, False, algorithm=path, precision="ieee")
    return torch.autograd.grad(y, p, gy)[0]


def _data(T, B, I, J, max_delay, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(T, B, I, generator=g) < 0.5).float()
    x[max(T - max_delay + 1, 0):] = 0  # every tap sees the same spikes: the offset reaches all taps alike
    w = torch.randint(1, 9, (J, I), generator=g).float() / 4 * (torch.randint(0, 2, (J, I), generator=g) * 2 - 1)
    p = torch.rand(J, I, generator=g) * (max_delay - 1)
    gy = torch.randint(-16, 17, (T, B, J), generator=g).float() / 8
    return x, w, p, gy


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("sigma", [0.4, 1.5])
def test_position_grad_centred_in_the_upstream_gradient(path, sigma):
    if path != "torch" and not _READY:
        pytest.skip(_WHY)
    T, B, I, J, D = 9, 2, 3, 4, 6
    x, w, p, gy = _data(T, B, I, J, D)
    x, w, p, gy = (t.to(DEVICE) for t in (x, w, p, gy))
    ref = _position_grad("torch", x.double(), w.double(), p.double(), gy.double(), sigma, D)
    scale = ref.abs().max().item()
    assert scale > 0.1  # (a gradient worth measuring)
    offset = 1e3  # (one offset: an uncentred form was 2199 to 5707 units off at 1e3; each kernel call costs ~0.4 s
    # under the interpreter)
    # the same exact gradient with and without the offset (float64: a few units of 1e-16 apart) ...
    shifted_ref = _position_grad("torch", x.double(), w.double(), p.double(), gy.double() + offset, sigma, D)
    torch.testing.assert_close(shifted_ref, ref, rtol=0, atol=1e-9 * scale)
    # ... and float32 within a few units of it (an uncentred form is off by about offset / |g| units)
    got = _position_grad(path, x, w, p, gy + offset, sigma, D).to(D64)
    err = (got - ref).abs().max().item() / (scale * EPS32)
    assert err < 8, f"{path}, sigma {sigma}, offset {offset:g}: {err:.1f} float32 units off"


@pytest.mark.parametrize("path", ["gather", "mma"])
def test_position_grad_with_taps_past_the_sequence(path, monkeypatch):
    """Windows reaching past the sequence (T < max_delay) and rows split over programs: the taps no row of a split
    reaches still count in the centring (their correlation is 0), and the splits' partial sums add up."""
    if not _READY:
        pytest.skip(_WHY)
    from snnlab.kernels import delays_triton

    monkeypatch.setattr(delays_triton, "_grad_splits", lambda R, n_tiles, BR: 4)
    T, B, I, J, D = 4, 20, 3, 2, 7  # 80 rows: two splits of 64 rows for "mma", five of 16 for "gather"
    x, w, p, _ = _data(T, B, I, J, D, seed=1)
    x = (torch.rand(T, B, I, generator=torch.Generator().manual_seed(2)) < 0.5).float()
    gy = torch.randn(T, B, J, generator=torch.Generator().manual_seed(3)) + 10.0
    x, w, p, gy = (t.to(DEVICE) for t in (x, w, p, gy))
    ref = _position_grad("torch", x.double(), w.double(), p.double(), gy.double(), 0.7, D)
    got = _position_grad(path, x, w, p, gy, 0.7, D).to(D64)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())
