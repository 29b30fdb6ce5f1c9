"""Collate functions that stack samples into time-major batches ``(x [T, B, ...], y [B])``."""
from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable, Sequence

import numpy as np
import torch

from ..core.validation import is_integer

__all__ = ["time_major_collate", "PadCollate", "EncodeCollate"]


def time_major_collate(batch: Sequence[tuple[torch.Tensor, int | torch.Tensor]], n_steps: int | None = None,
                       crop: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack per-sample ``[T, ...]`` tensors into ``[T, B, ...]``; shorter samples are zero-padded at the end.

    ``n_steps=None`` pads to the longest sample of the batch. A padded sample runs on through the padding as
    through silent input: its neurons keep decaying (and a membrane left above threshold by a subtract reset, or
    a bias, may still fire), the readout keeps integrating, and the metrics of :mod:`snnlab.metrics` count those
    steps too, so a sample's numbers depend on the longest sample of its batch. For numbers that are the same
    whichever batch a sample lands in, pad every batch to one length: ``n_steps`` (at least the longest sample
    of the dataset, see :func:`~snnlab.data.neuromorphic.frames.max_sample_steps`; as a DataLoader
    ``collate_fn``, :class:`PadCollate`), or give the event loaders a ``duration`` or ``n_time_bins`` (every
    sample then has the same number of frames).

    A sample longer than ``n_steps`` is a ``ValueError``; ``crop=True`` keeps its first ``n_steps`` steps
    instead (the rest are lost, which changes that sample's results, so it is never the default).

    The batch's dtype is the promotion of every sample's (``torch.promote_types``: a uint8 sample with a float32
    one gives float32). Samples must share their shape after the time axis and labels must be whole numbers;
    an empty batch, a shape mismatch or a fractional label is a ``ValueError``.

    Example:
        >>> x, y = time_major_collate([(torch.ones(3, 2), 0), (torch.ones(2, 2), 1)])
        >>> x.shape, y.tolist(), x[2, 1].tolist()
        (torch.Size([3, 2, 2]), [0, 1], [0.0, 0.0])
        >>> time_major_collate([(torch.ones(3, 2), 0)], n_steps=5)[0].shape
        torch.Size([5, 1, 2])
        >>> time_major_collate([(torch.ones(3, 2), 0)], n_steps=2, crop=True)[0].shape
        torch.Size([2, 1, 2])
    """
    fn = "time_major_collate"
    return _pad_stack(batch, _check_n_steps(n_steps, fn), _check_crop(crop, fn), fn, None)


def _check_n_steps(n_steps: object, fn: str) -> int | None:
    """``n_steps`` as an int >= 1 (or ``None``); ``TypeError`` / ``ValueError`` naming ``fn`` otherwise."""
    if n_steps is None:
        return None
    if not is_integer(n_steps):
        raise TypeError(f"{fn}: n_steps must be an int >= 1 (or None: pad to the batch's longest sample), "
                        f"got {n_steps!r}")
    if n_steps < 1:
        raise ValueError(f"{fn}: n_steps must be an int >= 1 (or None: pad to the batch's longest sample), "
                         f"got {n_steps!r}")
    return int(n_steps)


def _check_crop(crop: object, fn: str) -> bool:
    """``crop`` as a bool; ``TypeError`` naming ``fn`` otherwise."""
    if not isinstance(crop, bool):
        raise TypeError(f"{fn}: crop must be True or False, got {crop!r}")
    return crop


def _check_same_shape(x: torch.Tensor, first: torch.Tensor, i: int, fn: str, skip: int) -> None:
    """``ValueError`` naming ``fn`` and sample ``i`` unless ``x`` has ``first``'s shape after its first ``skip`` axes
    (``skip=1``: time-major samples may differ in their length only; ``0``: static samples have one shape)."""
    if x.shape[skip:] != first.shape[skip:]:
        rule = ("samples [T, ...] may differ in their length T only" if skip else
                "static samples [F] (or [C, H, W]) of one batch must all have one shape")
        raise ValueError(f"{fn}: sample {i} has shape {tuple(x.shape)} but sample 0 has {tuple(first.shape)}; "
                         f"{rule}")


def _pad_stack(batch: Sequence[tuple[torch.Tensor, int | torch.Tensor]], n_steps: int | None, crop: bool,
               fn: str, source: str | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The collate of :func:`time_major_collate` with checked settings; errors name ``fn``, and ``source`` (the
    setting ``n_steps`` came from, see :class:`PadCollate`) for a sample longer than ``n_steps``."""
    if len(batch) == 0:
        raise ValueError(f"{fn}: empty batch; a DataLoader gives at least one sample per batch")
    xs = [torch.as_tensor(b[0]) for b in batch]
    for i, x in enumerate(xs):
        if x.dim() < 1:
            raise ValueError(f"{fn}: sample {i} is a scalar; samples are time-major [T, ...] tensors")
        _check_same_shape(x, xs[0], i, fn, skip=1)
        if n_steps is not None and x.shape[0] > n_steps and not crop:
            if source is not None:
                raise ValueError(f"{fn}: sample {i} of the batch has {x.shape[0]} steps, more than {source}="
                                 f"{n_steps} (the n_steps every batch is padded to); set {source} to at least "
                                 f"{x.shape[0]}, or to the longest sample of the dataset (max_sample_steps(dataset) "
                                 "finds it)")
            raise ValueError(f"{fn}: sample {i} of the batch has {x.shape[0]} steps, more than n_steps={n_steps}; "
                             "pass a larger n_steps (max_sample_steps(dataset) finds the longest sample), "
                             "crop=True to keep only the first n_steps steps (the rest are lost, which changes "
                             "the results), or, for an event dataset, a duration that bounds every sample")
    dtype = functools.reduce(torch.promote_types, (x.dtype for x in xs))
    t_out = max(x.shape[0] for x in xs) if n_steps is None else n_steps
    out = xs[0].new_zeros((t_out, len(xs)) + tuple(xs[0].shape[1:]), dtype=dtype)
    for i, x in enumerate(xs):
        out[: x.shape[0], i] = x[:t_out]
    return out, _labels(batch, fn)


class PadCollate:
    """A DataLoader ``collate_fn`` that pads every batch to ``n_steps``: :func:`time_major_collate` with a fixed
    length, so a sample's outputs and metrics do not depend on the batch it lands in. Picklable (for
    ``num_workers > 0``), as is ``functools.partial(time_major_collate, n_steps=...)``.

    ``n_steps`` must be at least the longest sample (see
    :func:`~snnlab.data.neuromorphic.frames.max_sample_steps`): a longer one is a ``ValueError`` naming its length,
    or, with ``crop=True``, cut to its first ``n_steps`` steps (never the default: the cut steps are lost).
    ``source`` names the setting ``n_steps`` came from, for that error to name it too (an experiment's
    ``"data_kwargs 'pad_to'"``, as :func:`~snnlab.training.build_data` passes it).

    Example:
        >>> collate = PadCollate(4)
        >>> x, y = collate([(torch.ones(3, 2), 0), (torch.ones(2, 2), 1)])
        >>> x.shape, y.tolist(), x[3].tolist()
        (torch.Size([4, 2, 2]), [0, 1], [[0.0, 0.0], [0.0, 0.0]])
        >>> import pickle
        >>> pickle.loads(pickle.dumps(collate))
        PadCollate(n_steps=4)
        >>> PadCollate(2, source="data_kwargs 'pad_to'")([(torch.ones(3, 2), 0)])
        Traceback (most recent call last):
        ...
        ValueError: PadCollate(n_steps=2, source="data_kwargs 'pad_to'"): sample 0 of the batch has 3 steps, more than data_kwargs 'pad_to'=2 (the n_steps every batch is padded to); set data_kwargs 'pad_to' to at least 3, or to the longest sample of the dataset (max_sample_steps(dataset) finds it)
    """

    def __init__(self, n_steps: int, crop: bool = False, *, source: str | None = None) -> None:
        if n_steps is None:
            raise TypeError("PadCollate: n_steps must be an int >= 1 (use time_major_collate to pad each batch to "
                            "its longest sample), got None")
        if source is not None and (not isinstance(source, str) or not source.strip()):
            raise TypeError(f"PadCollate: source must be a non-empty str naming the setting n_steps came from "
                            f"(or None), got {source!r}")
        self.n_steps = _check_n_steps(n_steps, "PadCollate")
        self.crop = _check_crop(crop, "PadCollate")
        self.source = source

    def __call__(self, batch: Sequence[tuple[torch.Tensor, int | torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        return _pad_stack(batch, self.n_steps, self.crop, repr(self), getattr(self, "source", None))

    def __repr__(self) -> str:
        source = getattr(self, "source", None)  # (None in one pickled before there was a source)
        return (f"PadCollate(n_steps={self.n_steps}" + (", crop=True" if self.crop else "")
                + (f", source={source!r}" if source is not None else "") + ")")


def _label(v: object, i: int, fn: str) -> int:
    """Label ``v`` of sample ``i`` as an int; ``ValueError`` naming ``fn`` when it is not a whole number."""
    if isinstance(v, numbers.Integral):  # (plain and NumPy ints, the usual labels)
        return int(v)
    n = math.prod(getattr(v, "shape", ()))  # (a tensor's or an array's element count; 1 for a plain number)
    if n != 1 or isinstance(v, (list, tuple)):
        shape = tuple(getattr(v, "shape", (len(v),) if isinstance(v, (list, tuple)) else ()))
        raise ValueError(f"{fn}: sample {i} has a label of shape {shape}, not one class index; each sample's label "
                         "is a single int (a batch's labels are [B])")
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


def _shown(v: float) -> str:
    """``v`` as a label's message shows it: 7 significant digits, or all of them where those 7 read as a whole number
    (``1.0000001`` is not "1")."""
    short = f"{v:.7g}"
    return repr(v) if math.isfinite(v) and not v.is_integer() and float(short).is_integer() else short


def _refuse_past_int64(values: list, fn: str, start: int = 0) -> None:
    """``ValueError`` naming ``fn`` and the first of ``values`` (ints; their indices counted from ``start``) past int64:
    a cast would wrap it to another (negative) class index, or fail."""
    for i, v in enumerate(values, start):
        if isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)) and not -2**63 <= int(v) < 2**63:
            raise ValueError(f"{fn}: label {i} is {int(v)}, beyond int64; labels are class indices")


def _as_labels(labels: object, fn: str) -> torch.Tensor:
    """A dataset's ``labels`` (a tensor, NumPy array, list or tuple of class indices, one per sample) as int64 ``[N]``:
    the one check of the datasets that take labels (:class:`~snnlab.data.synthetic.SpikeTimesDataset`,
    :class:`~snnlab.data.neuromorphic.EventFrameDataset`). Integer labels are kept as they are, and whole-number
    floats (``3.0``) taken as those ints, as the collates take a sample's label; a fractional, NaN or infinite float
    is a ``ValueError`` naming ``fn``, the first such label's index and its value: a cast would truncate it; so is a
    label past int64 (a float, an unsigned or a Python int), which a cast would wrap to another class. Bools, strings and ``None`` (in a list: the first one, with its index), complex numbers and other
    non-numbers are a ``TypeError``; labels not of shape ``[N]`` a ``ValueError``.

    Example:
        >>> _as_labels([0, 2.0], "f").tolist()
        [0, 2]
        >>> _as_labels(np.array([0.0, 1.7]), "f")
        Traceback (most recent call last):
        ...
        ValueError: f: label 1 is 1.7, not a whole number; labels are class indices, and a cast would truncate it
    """
    if isinstance(labels, (list, tuple)):  # (NumPy would make True a 1, or every label a string)
        kinds = set(map(type, labels))  # (one pass in C: the loop below runs only when one of them is there)
        if any(issubclass(k, (bool, np.bool_, str, bytes, type(None))) for k in kinds):
            for i, v in enumerate(labels):
                if isinstance(v, (bool, np.bool_, str, bytes)) or v is None:
                    raise TypeError(f"{fn}: label {i} is {v!r}, not a class index; labels must be integer class "
                                    "indices")
    try:
        if isinstance(labels, torch.Tensor):
            t = labels
        else:
            a = np.asarray(labels)
            if a.dtype.kind == "u" and a.dtype.itemsize == 8:  # (uint64 past int64: a cast would wrap it)
                if a.ndim == 1 and bool((a >= 2**63).any()):
                    _refuse_past_int64(a[a >= 2**63][:1].tolist(), fn, int(np.argmax(a >= 2**63)))
                a = a.astype(np.int64)  # (torch takes NumPy's uint64 of some platforms' spelling not at all)
            elif a.dtype == object and a.ndim == 1:  # (Python ints past int64: NumPy keeps them as objects)
                _refuse_past_int64(a.tolist(), fn)
            t = torch.as_tensor(a)
    except (TypeError, ValueError, RuntimeError) as e:
        if str(e).startswith(f"{fn}: "):  # (_refuse_past_int64's own)
            raise
        raise TypeError(f"{fn}: labels must be integer class indices (a tensor, NumPy array or list), got "
                        f"{type(labels).__name__} {labels!r:.80}") from None
    if t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{fn}: labels must be integer class indices, got dtype {t.dtype}")
    if t.dim() != 1:
        raise ValueError(f"{fn}: labels must be one class index per sample (one label per item), shape [N], got "
                         f"shape {tuple(t.shape)}")
    if t.is_floating_point():
        bad = ~(torch.isfinite(t) & (t == t.round()))
        if bool(bad.any()):
            i = int(bad.nonzero()[0])
            raise ValueError(f"{fn}: label {i} is {_shown(float(t[i]))}, not a whole number; labels are class "
                             "indices, and a cast would truncate it")
        big = t.abs() >= 2.0**63  # (a cast of a float past int64 gives a wrong int)
        if bool(big.any()):
            i = int(big.nonzero()[0])
            raise ValueError(f"{fn}: label {i} is {float(t[i]):.7g}, beyond int64; labels are class indices")
    elif t.dtype == torch.uint64:  # (a tensor's: a cast past int64 wraps to a negative label)
        out = t.long()
        bad = out < 0
        if bool(bad.any()):
            i = int(bad.nonzero()[0])
            raise ValueError(f"{fn}: label {i} is {int(out[i]) + 2**64}, beyond int64; labels are class indices")
        return out
    return t.long()


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
        xs = [torch.as_tensor(b[0]) for b in batch]
        for i, x in enumerate(xs):
            _check_same_shape(x, xs[0], i, "EncodeCollate", skip=0)
        labels = _labels(batch, "EncodeCollate")
        return self.encoder(torch.stack(xs)), labels
