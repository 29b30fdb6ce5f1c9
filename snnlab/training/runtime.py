"""A run's process-wide setup: the seed of every global random generator, the device to train on, and the runs
training in this process (which share those generators: :func:`training_in_process`, :func:`global_draws`).

Example:
    >>> seed_everything(3); a = torch.rand(2)
    >>> seed_everything(3); bool((torch.rand(2) == a).all())
    True
    >>> resolve_device("cpu")
    device(type='cpu')
"""
from __future__ import annotations

import contextlib
import random
import threading
import types
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["seed_everything", "resolve_device", "trainers_training", "training_in_process", "global_draws",
           "shuffles_with_global_rng"]


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global RNG and torch (CPU and every CUDA device)."""
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(name: str | torch.device | None) -> torch.device:
    """``"auto"``/None -> cuda when available else cpu; a device that is not here (``"cuda"`` without a GPU, a GPU
    index past the last, ``"mps"`` without MPS, another backend such as ``"xpu"`` that cannot hold a tensor here) or
    a name that is no device raises a clear error.

    Example:
        >>> resolve_device("cpu"), resolve_device(torch.device("cpu"))
        (device(type='cpu'), device(type='cpu'))
        >>> resolve_device("gpu")
        Traceback (most recent call last):
        ...
        ValueError: device='gpu' is not a device name: use 'auto', 'cpu', 'cuda' or 'cuda:<index>'
    """
    if name in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = name if isinstance(name, torch.device) else torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(f"device={name!r} is not a device name: use 'auto', 'cpu', 'cuda' or 'cuda:<index>'") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' was requested but CUDA is not available here; use device='cpu' or 'auto'")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise RuntimeError(f"device={str(dev)!r} was requested but this machine has {torch.cuda.device_count()} CUDA "
                           f"device(s) (cuda:0 to cuda:{torch.cuda.device_count() - 1})")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise RuntimeError("device='mps' was requested but MPS is not available here; use device='cpu' or 'auto'")
    if dev.type not in ("cpu", "cuda", "mps", "meta"):  # another backend ('xpu', 'hpu', ...): can it hold a tensor?
        try:
            torch.empty(0, device=dev)
        except Exception:  # (torch raises AssertionError, ModuleNotFoundError, NotImplementedError... by backend)
            raise RuntimeError(f"device={str(dev)!r} was requested but it is not available here; use device='cpu' "
                               "or 'auto'") from None
    return dev


# ------------------------------------------------------------------ runs that share the process's random generators

_TRAINING_LOCK = threading.Lock()
_TRAINING: dict[int, Any] = {}  # id(trainer) -> trainer, for every trainer being built or training in this process


def trainers_training() -> list:
    """The trainers using the process's global random generators now, in any thread, in the order they began: being
    built (seeding them, drawing initial weights) or training (inside :meth:`~snnlab.training.Trainer.run`).

    Example:
        >>> trainers_training()
        []
    """
    with _TRAINING_LOCK:
        return list(_TRAINING.values())


@contextlib.contextmanager
def training_in_process(trainer: Any, meet: Callable[[Any, Any], None]) -> Iterator[None]:
    """Count ``trainer`` as using the process's global random generators for the block (its construction, or its
    run): it is removed when the block ends, however (a finished, stopped or failed run, a construction refused).
    On entry ``meet(trainer, other)`` is called for every trainer counted already, under the registry's lock (two
    starting at once meet once; ``meet`` must not block).

    Example:
        >>> met = []
        >>> with training_in_process("a", lambda t, o: met.append((t, o))):
        ...     with training_in_process("b", lambda t, o: met.append((t, o))):
        ...         trainers_training()
        ['a', 'b']
        >>> met, trainers_training()
        ([('b', 'a')], [])
    """
    key = id(trainer)
    with _TRAINING_LOCK:
        for other in _TRAINING.values():
            meet(trainer, other)
        _TRAINING[key] = trainer
    try:
        yield
    finally:
        with _TRAINING_LOCK:
            _TRAINING.pop(key, None)


def _owner_known(obj: Any) -> bool:
    """Whether ``obj`` (a module, dataset, collate function, encoder...) is torch's or snnlab's, whose draws snnlab
    knows, rather than a class or function of your own."""
    owner = obj.__module__ if isinstance(obj, (types.FunctionType, types.BuiltinFunctionType)) else type(obj).__module__
    return (owner or "").split(".")[0] in ("torch", "snnlab")


def _module_draws(name: str, module: nn.Module) -> str | None:
    """Why ``module`` (named ``name`` in its model) may draw from torch's global generators while it trains, or
    None when it does not: dropout (torch's, :class:`~snnlab.TimeDropout`, a torch layer's ``dropout``), noise or
    spike masks of an unseeded :class:`~snnlab.LIF` (and subclasses) or :class:`~snnlab.SpikeMask`,
    ``nn.RReLU``; a module class of your own (its ``forward`` may draw: that cannot be told)."""
    from snnlab.core.dropout import TimeDropout
    from snnlab.core.masking import SpikeMask
    from snnlab.core.neurons import LIF

    label = f"{type(module).__name__} {name!r}" if name else type(module).__name__
    if not _owner_known(module):
        return f"{label} (a class of your own: what its forward draws cannot be told)"
    if getattr(module, "_generator", None) is not None:  # a seeded snnlab layer: its own stream
        return None
    if isinstance(module, LIF):
        draws = module.noise is not None or module.mask_p > 0
    elif isinstance(module, SpikeMask):
        draws = module.p > 0
    elif isinstance(module, (TimeDropout, nn.modules.dropout._DropoutNd)):
        draws = module.p > 0
    else:
        rate = getattr(module, "dropout", 0.0)  # (nn.MultiheadAttention, nn.LSTM...: a dropout rate, not a module)
        draws = isinstance(module, nn.RReLU) or (isinstance(rate, (int, float)) and not isinstance(rate, bool)
                                                 and rate > 0)
    return f"{label} (noise, spike masks or dropout)" if draws else None


def _part_draws(part: Any, what: str, depth: int = 4) -> str | None:
    """Why ``part`` (a loader's dataset or collate function, a loss function) may draw from torch's global
    generators, or None: an unseeded :class:`~snnlab.data.encoders.RateEncoder`, or a class or function of your own
    (that cannot be told). Looks through ``Subset`` / ``ConcatDataset`` and snnlab's collates (their ``collate`` and
    ``encoder``)."""
    from snnlab.data.encoders import RateEncoder

    if part is None or depth < 0:
        return None
    if isinstance(part, RateEncoder):
        return None if part.generator is not None else f"{what}: an unseeded RateEncoder"
    if not _owner_known(part):
        name = getattr(part, "__qualname__", type(part).__name__)
        return f"{what}: {name} (your own: what it draws cannot be told)"
    inner = [getattr(part, key, None) for key in ("dataset", "collate", "encoder")]
    inner += list(getattr(part, "datasets", None) or ())
    return next((why for p in inner if (why := _part_draws(p, what, depth - 1)) is not None), None)


def shuffles_with_global_rng(loader: Any) -> bool:
    """Whether a ``DataLoader``'s batches may depend on the global random states when its iteration starts: a torch
    sampler without a generator (``DataLoader(ds, shuffle=True)`` without ``generator=``; ``RandomSampler``,
    ``SubsetRandomSampler``, ``WeightedRandomSampler``), a sampler or batch sampler of the user's own, an
    ``IterableDataset`` (what they draw is not known), or worker processes (seeded from torch's global generator without
    ``generator=``). A plain list, or a loader in order in this process, draws nothing.

    Example:
        >>> from torch.utils.data import DataLoader, TensorDataset
        >>> ds = TensorDataset(torch.zeros(4, 2))
        >>> shuffles_with_global_rng(DataLoader(ds, shuffle=True)), shuffles_with_global_rng(DataLoader(ds))
        (True, False)
    """
    from torch.utils.data import BatchSampler, DataLoader, IterableDataset, SequentialSampler

    if not isinstance(loader, DataLoader):
        return False
    if isinstance(loader.dataset, IterableDataset) or (loader.num_workers > 0 and loader.generator is None):
        return True
    batch_sampler = loader.batch_sampler
    if batch_sampler is not None and type(batch_sampler) is not BatchSampler:
        return True
    for s in (loader.sampler, getattr(batch_sampler, "sampler", None)):
        if s is None or type(s) is SequentialSampler:
            continue
        if type(s).__module__.startswith("torch.utils.data") and hasattr(s, "generator"):
            if s.generator is None:
                return True
            continue
        return True
    return False


def _loader_draws(loader: Any, what: str) -> str | None:
    """Why the ``what`` loader may draw from torch's global generators (its order, its workers' seeds, its dataset
    or collate function), or None: a list or tuple of batches draws nothing; another iterable that is no
    ``DataLoader`` cannot be told."""
    from torch.utils.data import DataLoader

    if loader is None or isinstance(loader, (list, tuple)):
        return None
    if not isinstance(loader, DataLoader):
        return f"the {what} loader ({type(loader).__name__}, no DataLoader: what it draws cannot be told)"
    if shuffles_with_global_rng(loader):
        return f"the {what} loader (its order or its workers' seeds come from torch's global generator)"
    return _part_draws(loader.dataset, f"the {what} loader's dataset") or _part_draws(
        loader.collate_fn, f"the {what} loader's collate_fn")


def global_draws(model: nn.Module, loaders: Iterable[tuple[str, Any]] = (),
                 parts: Iterable[tuple[str, Any]] = ()) -> list[str]:
    """Why training ``model`` on ``loaders`` (``(what, loader)`` pairs), with ``parts`` (``(what, callable)``: a loss
    function) may draw from torch's global random generators (each part that may, with its reason), or ``[]`` when
    nothing does. Decided conservatively: a part that cannot be told (a module class, a dataset, a collate or loss
    function of your own, an iterable that is no ``DataLoader``) counts as drawing. Runs that train at once in one
    process share those generators (see :attr:`snnlab.training.Trainer.shared_randomness`).

    Example:
        >>> import snnlab as sl
        >>> global_draws(sl.Sequential(nn.Linear(2, 3), sl.LIF()))
        []
        >>> global_draws(sl.Sequential(nn.Linear(2, 3), sl.LIF(), sl.TimeDropout(0.2)))
        ["TimeDropout '2' (noise, spike masks or dropout)"]
    """
    found = [why for name, m in model.named_modules() if (why := _module_draws(name, m)) is not None]
    found += [why for what, loader in loaders if (why := _loader_draws(loader, what)) is not None]
    found += [why for what, part in parts if (why := _part_draws(part, what)) is not None]
    return found
