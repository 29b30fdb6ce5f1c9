"""The Gaussian delay kernel of learnable delays (DCLS) as a plain tensor function, and the precision
policy every delay path follows under ``torch.autocast``.

The single source of truth for that formula: :mod:`snnlab.core.delays` re-exports it (its torch path
convolves with it), the "taps" Triton algorithm builds its tap tensor from it, and the "mma" and "gather"
Triton kernels compute the same formula in registers (:func:`relative_exponent`), over the taps that matter
in float32 (tested against this one).
"""
from __future__ import annotations

import contextlib

import torch

from .dispatch import graph_capture_active

__all__ = ["gaussian_delay_kernel", "relative_exponent", "nearest_tap", "two_sigma_squared", "autocast_dtype",
           "autocast_operands", "autocast_off", "AUTOCAST_DEVICES", "ASK"]

#: device types ``torch.autocast`` takes (not "meta")
AUTOCAST_DEVICES = ("cpu", "cuda", "xpu", "mps")


class _Ask:
    """The type of :data:`ASK` (one instance; its repr names it in signatures and help)."""

    def __repr__(self) -> str:
        return "ASK"


#: the default of the ``dtype`` arguments of :func:`autocast_operands` and :func:`autocast_off` (and of
#: ``delayed_linear_triton``'s ``autocast``): ask autocast
ASK = _Ask()


def gaussian_delay_kernel(positions: torch.Tensor, sigma: float, max_delay: int, tap_dim: int = -1,
                          n_taps: int | None = None) -> torch.Tensor:
    """Normalised Gaussian delay kernel ``G[..., k]`` for taps ``k = 0..max_delay-1``.

    ``G[..., k] = exp(-(k - p)^2 / (2 sigma^2)) / sum_k' exp(-(k' - p)^2 / (2 sigma^2))`` with
    ``p`` clamped to ``[0, max_delay - 1]``. Computed as a softmax of the exponents relative to the nearest
    tap ``r`` (:func:`nearest_tap`, :func:`relative_exponent`), so it keeps float32 accuracy when ``sigma`` is small
    (no cancellation between large squares; the positions' gradient too, from one softmax, centred:
    :class:`_GaussianKernelFunction`) and stays finite (a one-hot) when ``sigma`` is tiny: ``2 sigma^2`` is taken
    no smaller than the dtype's smallest normal number (``torch.finfo(dtype).tiny``); the kernel is already one-hot
    at that width (the nearest tap; two taps tie only at an exact midpoint, where they share
    the weight). Larger ``sigma`` is used as it is. Half-precision positions are computed in float32 (the
    result has the positions' dtype), integer ones in the default dtype. ``tap_dim`` is where the new tap axis
    goes in the (contiguous) result: last by default, ``0`` gives ``[max_delay, *positions.shape]`` without a
    permuted copy.

    ``n_taps`` (``1..max_delay``; default ``max_delay``): only the first ``n_taps`` taps, ``G[..., :n_taps]`` of the
    full kernel (normalised over all ``max_delay`` taps), without building the others at once: a sequence of ``T <
    max_delay`` steps reaches only taps ``k < T``. They are the softmax over those taps times their share of the
    normaliser, which is summed over chunks of taps (:class:`_HeadShareFunction`, differentiable to any order).

    Example:
        >>> g = gaussian_delay_kernel(torch.tensor([1.0, 2.5]), sigma=0.5, max_delay=4)
        >>> tuple(g.shape), [round(float(s), 4) for s in g.sum(-1)], int(g[0].argmax())
        ((2, 4), [1.0, 1.0], 1)
        >>> tuple(gaussian_delay_kernel(torch.tensor([1.0, 2.5]), 0.5, 4, tap_dim=0).shape)
        (4, 2)
        >>> head = gaussian_delay_kernel(torch.tensor([1.0, 2.5]), 0.5, 4, n_taps=2)
        >>> torch.allclose(head, g[:, :2])
        True
    """
    ndim = positions.dim() + 1
    if not -ndim <= tap_dim < ndim:
        raise ValueError(f"tap_dim must be in [{-ndim}, {ndim - 1}] for positions of shape "
                         f"{tuple(positions.shape)}, got {tap_dim}")
    dim = tap_dim % ndim
    n_taps = _checked_n_taps(n_taps, max_delay)
    work, out = _gaussian_dtypes(positions.dtype)
    p = positions.to(work).clamp(0.0, float(max_delay - 1)).unsqueeze(dim)
    tap_shape = [1] * ndim
    tap_shape[dim] = n_taps
    taps = torch.arange(n_taps, device=p.device, dtype=p.dtype).view(tap_shape)
    two_s2 = two_sigma_squared(sigma, p.dtype)
    capture = graph_capture_active()
    differentiable = torch.is_grad_enabled() and p.requires_grad
    if differentiable:  # one softmax, its result saved for the positions' gradient
        function = _GaussianKernelInGraph if capture else _GaussianKernelFunction
        g = function.apply(p, taps, two_s2, dim)
    else:
        g = torch.softmax(relative_exponent(taps, p) / two_s2, dim=dim)
    if n_taps == max_delay:
        return g.to(out)
    # the softmax over the first n_taps taps, times their share of the normaliser over all max_delay taps
    if differentiable:
        share = (_HeadShareInGraph if capture else _HeadShareFunction).apply(p, n_taps, max_delay, two_s2, dim)
    else:
        share = _head_share(p, n_taps, max_delay, two_s2, dim)
    return (g * share).to(out)


def _checked_n_taps(n_taps: int | None, max_delay: int) -> int:
    """``n_taps`` as an int in ``1..max_delay`` (None: ``max_delay``); ``ValueError`` / ``TypeError`` naming it."""
    if n_taps is None:
        return int(max_delay)
    if isinstance(n_taps, bool) or not isinstance(n_taps, (int, torch.SymInt)):  # (SymInt: a compiled T)
        raise TypeError(f"gaussian_delay_kernel: n_taps must be an int (or None), got {type(n_taps).__name__} "
                        f"{n_taps!r}")
    if not 1 <= n_taps <= max_delay:
        raise ValueError(f"gaussian_delay_kernel: n_taps must be in [1, max_delay={max_delay}], got {n_taps}")
    return n_taps


#: the most elements one chunk of taps of :func:`_exp_moments` spans (16 MiB of float32 per intermediate at most)
_TAP_CHUNK_ELEMENTS = 2**22


def _exp_moments(p: torch.Tensor, start: int, stop: int, two_s2: float, dim: int,
                 orders: tuple[int, ...] = (0,)) -> list[torch.Tensor]:
    """``[sum_k exp(relative_exponent(k, p) / two_s2) (k - r)^j for j in orders]`` over the taps ``start <= k <
    stop`` (``r``: :func:`nearest_tap` of ``p``), summed over axis ``dim`` of ``p`` (size 1: kept), in chunks of
    taps of at most :data:`_TAP_CHUNK_ELEMENTS` elements, one ``exp`` per tap for all orders. Plain differentiable
    operations (the positions' derivative of order ``j`` is ``2 / two_s2`` times order ``j + 1``); every exponent
    is at most 0, so nothing overflows.

    Example:
        >>> [round(float(m), 4) for m in _exp_moments(torch.tensor([1.0]), 0, 3, 1.0, 0, (0, 1))]
        [1.7358, 0.0]
    """
    r = nearest_tap(p.detach())
    shape = [1] * p.dim()
    chunk = max(1, _TAP_CHUNK_ELEMENTS // max(p.numel(), 1))
    totals: list[torch.Tensor] = [torch.zeros_like(p) for _ in orders]
    for a in range(start, stop, chunk):
        shape[dim] = min(a + chunk, stop) - a
        taps = torch.arange(a, a + shape[dim], device=p.device, dtype=p.dtype).view(shape)
        w = torch.exp(relative_exponent(taps, p) / two_s2)
        rel = taps - r
        for i, j in enumerate(orders):
            totals[i] = totals[i] + (w * rel**j if j else w).sum(dim, keepdim=True)
    return totals


def _head_share(p: torch.Tensor, n_taps: int, max_delay: int, two_s2: float, dim: int) -> torch.Tensor:
    """The share of the first ``n_taps`` taps in the Gaussian's normaliser over all ``max_delay`` taps, ``Z_head /
    (Z_head + Z_tail)`` (the sum is at least 1: the nearest tap's term is ``exp(0)``)."""
    (z_head,), (z_tail,) = _exp_moments(p, 0, n_taps, two_s2, dim), _exp_moments(p, n_taps, max_delay, two_s2, dim)
    return z_head / (z_head + z_tail)


def _head_share_derivative(p: torch.Tensor, n_taps: int, max_delay: int, two_s2: float, dim: int) -> torch.Tensor:
    """``d share / dp = (2 / two_s2) (A1_head Z_tail - Z_head A1_tail) / Z^2`` (``A1``: the moment of order 1), not
    the share's quotient rule, whose two terms nearly cancel when the tail's share is small: ``A1_head Z_tail -
    Z_head A1_tail = Z_head Z_tail (m_head - m_tail)``, and the tail's mean tap lies at least one tap past the
    head's. Plain differentiable operations on ``p`` (so the derivative's derivative and forward mode follow)."""
    z_head, a_head = _exp_moments(p, 0, n_taps, two_s2, dim, (0, 1))
    z_tail, a_tail = _exp_moments(p, n_taps, max_delay, two_s2, dim, (0, 1))
    z = z_head + z_tail
    return (a_head * z_tail - z_head * a_tail) / (z * z) * (2.0 / two_s2)


class _HeadShareFunction(torch.autograd.Function):
    """:func:`_head_share` keeping only ``p`` for its gradient (its chunks of taps are not saved: the memory of the
    first ``n_taps`` taps only); backward and ``jvp`` from :func:`_head_share_derivative`, itself differentiable
    (double backward, ``torch.func.hessian``, ``jacfwd``, ``vmap``)."""

    generate_vmap_rule = True

    @staticmethod
    def forward(p: torch.Tensor, n_taps: int, max_delay: int, two_s2: float, dim: int) -> torch.Tensor:
        return _head_share(p, n_taps, max_delay, two_s2, dim)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        p, ctx.n_taps, ctx.max_delay, ctx.two_s2, ctx.dim = inputs
        ctx.save_for_backward(p)
        ctx.save_for_forward(p)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (p,) = ctx.saved_tensors
        return grad * _head_share_derivative(p, ctx.n_taps, ctx.max_delay, ctx.two_s2, ctx.dim), None, None, None, None

    @staticmethod
    def jvp(ctx, p_tangent: torch.Tensor, *_):
        (p,) = ctx.saved_tensors
        return p_tangent * _head_share_derivative(p, ctx.n_taps, ctx.max_delay, ctx.two_s2, ctx.dim)


class _HeadShareInGraph(_HeadShareFunction):
    """:class:`_HeadShareFunction` without its forward-mode rule, for the graphs ``torch.compile`` / ``torch.export``
    capture (as :class:`_GaussianKernelInGraph`)."""

    jvp = torch.autograd.Function.jvp

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        p, ctx.n_taps, ctx.max_delay, ctx.two_s2, ctx.dim = inputs
        ctx.save_for_backward(p)


class _GaussianKernelFunction(torch.autograd.Function):
    """``softmax(relative_exponent(taps, p) / two_s2)`` over tap axis ``dim``, differentiable in ``p`` (twice and
    more: the backward and the forward-mode ``jvp`` are made of public differentiable operations on the saved
    kernel ``G`` and ``p``; so ``torch.func.hessian``, ``jacfwd`` and ``vmap`` go through).

    The positions' gradient is taken from the saved kernel, in the form whose float32 terms do not cancel:
    ``dL/dp = (2 / two_s2) sum_k G_k (g_k - g_bar) ((k - r) - m)``, with ``g_bar = sum_k G_k g_k``, ``r`` the
    nearest tap and ``m = sum_k G_k (k - r)`` the mean tap's offset from it (``d G_k / dp = G_k (u_k - u_bar)``,
    ``u_k = 2 (k - r) / two_s2``). Centred in ``g`` (an offset common to every tap's upstream gradient cancels
    exactly), and in ``k`` about the kernel's mean (``k - r`` exact integers; ``m`` small, taken relative to ``r``,
    not ``sum_k G_k k``, which would round away what is left of ``r - p`` for small sigma).
    """

    generate_vmap_rule = True

    @staticmethod
    def forward(p: torch.Tensor, taps: torch.Tensor, two_s2: float, dim: int) -> torch.Tensor:
        return torch.softmax(relative_exponent(taps, p) / two_s2, dim=dim)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        p, taps, two_s2, dim = inputs
        ctx.save_for_backward(p, taps, output)
        ctx.save_for_forward(p, taps, output)
        ctx.two_s2, ctx.dim = two_s2, dim

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        p, taps, g = ctx.saved_tensors
        dim = ctx.dim
        rel = taps - nearest_tap(p.detach())  # k - r, exact
        # G_k (g_k - g_bar): the softmax's backward, centred in g before the product (public operations: the fused
        # torch._softmax_backward_data is private; as accurate, a few ms more per 1.6M taps on one CPU thread, no
        # measurable change in a DelayedLinear step)
        h = g * (grad - (grad * g).sum(dim, keepdim=True))
        # sum_k h_k (rel_k - m) as sum_k h_k rel_k - m sum_k h_k: sum_k h_k is 0 but for g_bar's rounding, which the
        # second term takes back out (it only needs m to a few digits)
        mean = (g * rel).sum(dim, keepdim=True)
        grad_p = ((h * rel).sum(dim, keepdim=True) - mean * h.sum(dim, keepdim=True)) * (2.0 / ctx.two_s2)
        return grad_p, None, None, None

    @staticmethod
    def jvp(ctx, p_tangent: torch.Tensor, *_):
        """Forward mode: ``dG_k = G_k ((k - r) - m) (2 / two_s2) dp`` (``torch.func.jvp``, ``jacfwd``, ``hessian``)."""
        p, taps, g = ctx.saved_tensors
        rel = taps - nearest_tap(p.detach())
        mean = (g * rel).sum(ctx.dim, keepdim=True)
        return g * (rel - mean) * (p_tangent * (2.0 / ctx.two_s2))


class _GaussianKernelInGraph(_GaussianKernelFunction):
    """:class:`_GaussianKernelFunction` (the same forward and backward) without its forward-mode rule, for the graphs
    ``torch.compile`` and ``torch.export`` capture: Dynamo refuses a Function with a custom ``jvp``, and a captured
    graph has no forward-mode AD to need one."""

    jvp = torch.autograd.Function.jvp  # (the base class's: "not defined", which Dynamo takes)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        p, taps, two_s2, dim = inputs
        ctx.save_for_backward(p, taps, output)
        ctx.two_s2, ctx.dim = two_s2, dim


def _gaussian_dtypes(dtype: torch.dtype) -> tuple[torch.dtype, torch.dtype]:
    """``(computed in, returned in)`` for positions of ``dtype``: float32 then ``dtype`` for half precision, the
    default dtype for integer (or bool) positions, else ``dtype`` for both."""
    if dtype in (torch.float16, torch.bfloat16):
        return torch.float32, dtype
    if not dtype.is_floating_point:
        return torch.get_default_dtype(), torch.get_default_dtype()
    return dtype, dtype


def relative_exponent(taps: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """``-((k - p)^2 - (r - p)^2) = -(k - r) (k + r - 2 p)`` for taps ``k`` and positions ``p`` (broadcast), with
    ``r`` the nearest tap (:func:`nearest_tap`; not differentiated: the shift cancels in the normalisation, the
    gradient ``2 (k - r)`` differs from ``2 (k - p)`` by the same amount on every tap). No exponent is positive:
    ``|k - r| >= 1 >= |2 (p - r)|`` for every other tap, so ``exp`` of them never overflows (the Triton kernels
    exponentiate them without subtracting a maximum).

    The exponent of the Gaussian (before dividing by ``2 sigma^2``) relative to the nearest tap's: ``k - r`` and
    ``k + r`` are exact integers and ``2 p`` is exact, so the only roundings are one subtraction and one product,
    a few units in the last place of the result. Squaring first and subtracting after loses the digits that
    matter when ``sigma`` is small: the squares are about ``1/4`` near a midpoint and their float32 rounding,
    divided by ``2 sigma^2 = 2e-6``, moves each exponent by about 0.01 (a relative error of 1e-2 in the weights).

    Example:
        >>> relative_exponent(torch.arange(4.0), torch.tensor(1.25)).tolist()
        [-1.5, 0.0, -0.5, -3.0]
    """
    r = nearest_tap(p.detach())
    return -(taps - r) * ((taps + r) - 2.0 * p)


def nearest_tap(p: torch.Tensor) -> torch.Tensor:
    """The tap nearest to each position, ``floor(p) + [p - floor(p) >= 1/2]`` (exact midpoints go up), exactly: not
    ``floor(p + 1/2)``, which rounds ``p + 1/2`` to 1 for the float just below 1/2 (float32 0.49999997, where
    tap 1 is further than tap 0; with a tiny sigma tap 0's exponent relative to tap 1 then overflows ``exp``).
    ``p - floor(p)`` is exact for ``p >= 0`` (Sterbenz); for ``-1/2 < p < 0`` it may round up to 1, the right tap 0.

    Example:
        >>> nearest_tap(torch.tensor([0.49999997, 0.5, 1.25, 2.75])).tolist()
        [0.0, 1.0, 1.0, 3.0]
    """
    f = torch.floor(p)
    return torch.where(p - f >= 0.5, f + 1.0, f)


def two_sigma_squared(sigma: float, dtype: torch.dtype) -> float:
    """``2 sigma^2``, at least the smallest normal number of ``dtype`` (the result's floating dtype): below it the
    division underflows, every exponent overflows to ``-inf`` and the softmax gives NaN instead of a one-hot."""
    floor = torch.finfo(dtype if dtype.is_floating_point else torch.get_default_dtype()).tiny
    return max(2.0 * float(sigma) ** 2, floor)


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """The dtype ``torch.autocast`` gives matrix products on ``device_type`` here, or None where it is off.

    Example:
        >>> autocast_dtype("cpu") is None
        True
        >>> with torch.autocast("cpu", dtype=torch.bfloat16):
        ...     autocast_dtype("cpu")
        torch.bfloat16
    """
    if device_type not in AUTOCAST_DEVICES:
        return None
    try:
        enabled = torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4 (snnlab needs >= 2.2): no device argument, per-device functions instead
        return _autocast_dtype_before_2_4(device_type)
    except RuntimeError:  # a device type this torch cannot autocast ("mps" before 2.5): autocast is not on there
        return None
    return torch.get_autocast_dtype(device_type) if enabled else None


def _autocast_dtype_before_2_4(device_type: str) -> torch.dtype | None:
    """:func:`autocast_dtype` through the per-device functions of torch 2.2 and 2.3 (CPU and CUDA; autocast on
    other devices is not seen there)."""
    if device_type == "cpu":
        return torch.get_autocast_cpu_dtype() if torch.is_autocast_cpu_enabled() else None
    if device_type == "cuda":
        return torch.get_autocast_gpu_dtype() if torch.is_autocast_enabled() else None
    return None


def autocast_operands(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                      dtype: torch.dtype | None | object = ASK
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(x, weight, bias)`` as autocast's policy for matrix products (``nn.Linear``'s) gives them: cast to the
    autocast dtype of ``x``'s device; unchanged where autocast is off or the weight is float64 (autocast leaves
    float64 alone: a float64 layer keeps computing in float64). The delay paths then compute in float32
    (:func:`autocast_off`) from these operands, with the positions and the Gaussian in their own dtype, and return
    the autocast dtype. ``dtype``: that autocast dtype where the caller knows it already (None: off, or operands
    cast already: returned as they are), so that autocast is asked once per call; by default asked here.

    Example:
        >>> x, w = torch.ones(2, 1, 3), torch.ones(4, 3)
        >>> with torch.autocast("cpu", dtype=torch.bfloat16):
        ...     [t.dtype for t in autocast_operands(x, w)[:2]]
        [torch.bfloat16, torch.bfloat16]
        >>> autocast_operands(x, w, dtype=torch.float16)[1].dtype
        torch.float16
    """
    if dtype is ASK:
        dtype = autocast_dtype(x.device.type)
    if dtype is None or weight.dtype == torch.float64:
        return x, weight, bias

    def cast(t: torch.Tensor | None) -> torch.Tensor | None:
        return t if t is None or not t.is_floating_point() else t.to(dtype)

    return cast(x), cast(weight), cast(bias)


def autocast_off(x: torch.Tensor, dtype: torch.dtype | None | object = ASK) -> contextlib.AbstractContextManager:
    """A context where autocast is off for ``x``'s device (the delay paths choose their products' precision
    themselves: float32 for half-precision operands); a no-op context for devices autocast does not take (also
    "mps" before torch 2.5, whose ``torch.autocast`` refuses it even disabled: autocast cannot be on there), and
    where autocast is off already (every forward outside autocast: entering and leaving ``torch.autocast`` costs
    about 3 us). ``dtype``: :func:`autocast_dtype` of ``x``'s device where the caller has it already (None: off),
    by default asked here."""
    if (autocast_dtype(x.device.type) if dtype is ASK else dtype) is None:
        return contextlib.nullcontext()
    try:
        return torch.autocast(x.device.type, enabled=False)
    except RuntimeError:  # "User specified an unsupported autocast device_type"
        return contextlib.nullcontext()
