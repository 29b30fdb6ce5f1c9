"""Collate functions that stack samples into time-major batches ``(x [T, B, ...], y [B])``."""
from __future__ import annotations

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

    Example:
        >>> x, y = time_major_collate([(torch.ones(3, 2), 0), (torch.ones(2, 2), 1)])
        >>> x.shape, y.tolist(), x[2, 1].tolist()
        (torch.Size([3, 2, 2]), [0, 1], [0.0, 0.0])
    """
    xs = [torch.as_tensor(b[0]) for b in batch]
    t_max = max(x.shape[0] for x in xs)
    out = xs[0].new_zeros((t_max, len(xs)) + tuple(xs[0].shape[1:]))
    for i, x in enumerate(xs):
        out[: x.shape[0], i] = x
    y = torch.as_tensor([int(b[1]) for b in batch], dtype=torch.long)
    return out, y


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
        x = torch.stack([torch.as_tensor(b[0]) for b in batch])
        y = torch.as_tensor([int(b[1]) for b in batch], dtype=torch.long)
        return self.encoder(x), y
