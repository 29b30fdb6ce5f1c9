"""Collate functions that stack samples into time-major batches ``(x [T, B, ...], y [B])``."""
from __future__ import annotations

import functools
import numbers
from collections.abc import Callable, Sequence

import torch

__all__ = ["time_major_collate", "EncodeCollate"]


def time_major_collate(batch: Sequence[tuple[torch.Tensor, int | torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack per-sample ``[T, ...]`` tensors into ``[T, B, ...]``; shorter samples are zero-padded at the end.

    A padded sample runs on through the padding as through silent input: its neurons keep decaying (and a
    membrane left above threshold by a subtract reset may still fire), the readout keeps integrating, and
    the metrics of :mod:`snnlab.metrics` count those steps too, so they depend on the longest sample of the
    batch. For metrics comparable sample by sample, give the event loaders a ``duration`` (every sample
    the same number of frames) or ``n_time_bins``.

    The batch's dtype is the promotion of every sample's (``torch.promote_types``: a uint8 sample with a float32
    one gives float32). Samples must share their shape after the time axis and labels must be whole numbers;
    an empty batch, a shape mismatch or a fractional label is a ``ValueError``.

    Example:
        >>> x, y = time_major_collate([(torch.ones(3, 2), 0), (torch.ones(2, 2), 1)])
        >>> x.shape, y.tolist(), x[2, 1].tolist()
        (torch.Size([3, 2, 2]), [0, 1], [0.0, 0.0])
    """
    if len(batch) == 0:
        raise ValueError("time_major_collate: empty batch; a DataLoader gives at least one sample per batch")
    xs = [torch.as_tensor(b[0]) for b in batch]
    for i, x in enumerate(xs):
        if x.dim() < 1:
            raise ValueError(f"time_major_collate: sample {i} is a scalar; samples are time-major [T, ...] tensors")
        if x.shape[1:] != xs[0].shape[1:]:
            raise ValueError(f"time_major_collate: sample {i} has shape {tuple(x.shape)} but sample 0 has "
                             f"{tuple(xs[0].shape)}; samples [T, ...] may differ in their length T only")
    dtype = functools.reduce(torch.promote_types, (x.dtype for x in xs))
    t_max = max(x.shape[0] for x in xs)
    out = xs[0].new_zeros((t_max, len(xs)) + tuple(xs[0].shape[1:]), dtype=dtype)
    for i, x in enumerate(xs):
        out[: x.shape[0], i] = x
    return out, _labels(batch, "time_major_collate")


def _label(v: object, i: int, fn: str) -> int:
    """Label ``v`` of sample ``i`` as an int; ``ValueError`` naming ``fn`` when it is not a whole number."""
    if isinstance(v, numbers.Integral):  # (plain and NumPy ints, the usual labels)
        return int(v)
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return int(v)  # type: ignore[call-overload]  # (whatever int() makes of it, or its own error, as before)
    if not f.is_integer():
        raise ValueError(f"{fn}: sample {i} has label {v!r}, not a whole number; labels are class indices, and "
                         "int() would truncate it")
    return int(v)  # type: ignore[call-overload]


def _labels(batch: Sequence[tuple[object, object]], fn: str) -> torch.Tensor:
    """The batch's labels as int64 ``[B]`` (see :func:`_label`)."""
    return torch.as_tensor([_label(b[1], i, fn) for i, b in enumerate(batch)], dtype=torch.long)


class EncodeCollate:
    """Collate static samples ``[F]`` into a batch ``[B, F]`` and encode it to ``[T, B, F]``.

    Example:
        >>> from snnlab.data.encoders import DirectEncoder
        >>> x, y = EncodeCollate(DirectEncoder(4))([(torch.rand(3), 1), (torch.rand(3), 0)])
        >>> x.shape, y.tolist()
        (torch.Size([4, 2, 3]), [1, 0])
    """

    def __init__(self, encoder: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.encoder = encoder

    def __call__(self, batch: Sequence[tuple[torch.Tensor, int | torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        if len(batch) == 0:
            raise ValueError("EncodeCollate: empty batch; a DataLoader gives at least one sample per batch")
        x = torch.stack([torch.as_tensor(b[0]) for b in batch])
        return self.encoder(x), _labels(batch, "EncodeCollate")
