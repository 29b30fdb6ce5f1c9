"""Helpers shared by the metrics loops: eval mode, device, batch iteration, argument checks."""
from __future__ import annotations

import contextlib
import sys
import threading
import warnings
from typing import Iterable, Iterator, Mapping

import torch
from torch import nn

from snnlab.core.readout import MembraneReadoutCheck
from snnlab.core.validation import user_stacklevel
from snnlab.data.loader_rng import same_generator_states, same_randomness


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode under ``torch.no_grad``; restores each submodule's training flag afterwards.

    The flag is the model's own, shared by every thread: when a :class:`~snnlab.training.Trainer` trains the model
    in another thread right now (:meth:`~snnlab.training.Trainer.start`, a training widget), this warns (once per
    call; it does not refuse) that the run's steps overlapping this block run in eval mode
    (:func:`warn_concurrent_training`).
    """
    warn_concurrent_training(model)
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, flag in modes.items():
            m.training = flag


def warn_concurrent_training(model: nn.Module) -> bool:
    """Warn when a Trainer in another thread is training ``model`` (or a submodule of it, or a model containing it)
    right now (:func:`snnlab.training.threads.training_thread`): switching it to eval mode switches the run's model.
    Returns whether it warned; not in the training thread itself (the run's own evaluations, its callbacks) nor
    while the run is paused.

    Example:
        >>> warn_concurrent_training(nn.Linear(2, 3))   # no run trains it
        False
    """
    # (snnlab.training.threads, loaded with any Trainer: not imported here, where no Trainer exists without it)
    threads = sys.modules.get("snnlab.training.threads")
    thread = threads.training_thread(model) if threads is not None else None
    if thread is None or thread is threading.current_thread():
        return False
    warnings.warn(
        f"evaluating a model that a Trainer is training right now in thread {thread.name!r}: the model's train/eval "
        "flag is shared, so the training steps that overlap this evaluation run in eval mode (no noise, spike masks or "
        "dropout; batch-norm statistics frozen), and the run sets train mode again before each step, possibly in the "
        "middle of this evaluation. Pause the run first (trainer.pause(wait=True) ... trainer.resume()), or evaluate "
        "a copy: copy.deepcopy(trainer.model)", RuntimeWarning, stacklevel=user_stacklevel())
    return True


def model_generators(model: nn.Module) -> dict[str, torch.Generator]:
    """``{"<module>._generator": generator}``: the random generators the layers of ``model`` own (a seeded
    :class:`~snnlab.LIF`'s noise / mask stream, a seeded :class:`~snnlab.SpikeMask`'s, ...).

    Example:
        >>> import snnlab as sl
        >>> list(model_generators(sl.Sequential(torch.nn.Linear(2, 3), sl.LIF(seed=0), sl.SpikeMask(0.1))))
        ['1._generator']
    """
    found: dict[str, torch.Generator] = {}
    for name, module in model.named_modules():
        for attr, value in vars(module).items():
            if isinstance(value, torch.Generator):
                found[f"{name}.{attr}" if name else attr] = value
    return found


def _draws_at_inference(module: nn.Module) -> bool:
    """Whether ``module`` draws random numbers in evaluation mode (noise with ``noisy_eval``, masks with
    ``mask_at_inference``)."""
    noisy = getattr(module, "noisy_eval", False) and getattr(module, "noise", None) is not None
    masks = getattr(module, "mask_at_inference", False) and getattr(module, "mask_p", getattr(module, "p", 0.0)) > 0
    return bool(noisy or masks)


def warn_seed_unused(model: nn.Module, fn: str) -> None:
    """Warn that ``fn``'s ``seed`` does not reach the layers with a generator of their own that draw at inference."""
    owners = {name.rpartition(".")[0] for name in model_generators(model)}
    seeded = [name or type(model).__name__ for name, m in model.named_modules()
              if name in owners and _draws_at_inference(m)]
    if seeded:
        warnings.warn(f"{fn}: seed= does not change the draws of the seeded layer(s) {seeded}: they use their own "
                      "generator, restored after every call, so every seed gives them the same noise or masks "
                      "(build them without a seed to let seed= choose their draws)", UserWarning, stacklevel=3)


@contextlib.contextmanager
def same_model_randomness(model: nn.Module, device=None, seed: int | None = None) -> Iterator[None]:
    """Run a block with the model's random streams saved and restored on exit: the layers' own generators
    (:func:`model_generators`), torch's global CPU generator and, for a CUDA ``device``, its generator.

    Layers that draw random numbers at inference (``noisy_eval``, ``mask_at_inference``) then give the
    same result in every block and do not move the streams a later pass sees. ``seed`` also seeds the
    global generators inside the block (for unseeded layers: results depend on ``seed`` only).

    Example:
        >>> import snnlab as sl
        >>> net = sl.Sequential(sl.SpikeMask(0.5, mask_at_inference=True))
        >>> with same_model_randomness(net):
        ...     a = net(torch.ones(10, 1, 4))
        >>> with same_model_randomness(net):
        ...     b = net(torch.ones(10, 1, 4))
        >>> torch.equal(a, b)
        True
    """
    gens = model_generators(model)
    dev = torch.device(device) if device is not None else None
    cuda = [dev.index if dev.index is not None else torch.cuda.current_device()] \
        if dev is not None and dev.type == "cuda" and torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=cuda), same_generator_states(gens):
        if seed is not None:
            torch.random.default_generator.manual_seed(int(seed))
            for d in cuda:
                with torch.cuda.device(d):
                    torch.cuda.manual_seed(int(seed))
        yield


def resolve_device(model: nn.Module, device) -> torch.device:
    """``device`` if given, else the device of the model's first parameter or buffer, else the CPU.

    A given device is read as the :class:`~snnlab.training.Trainer` reads it (``"auto"``: CUDA when there is one;
    ``"cuda"`` without CUDA is refused with the Trainer's message).

    Example:
        >>> resolve_device(nn.Linear(2, 3), None), resolve_device(nn.Linear(2, 3), "cpu")
        (device(type='cpu'), device(type='cpu'))
    """
    if device is not None:
        from snnlab.training.runtime import resolve_device as resolve_named  # (the same layer; loaded by then)

        return resolve_named(device)
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


def input_dtype(model: nn.Module) -> torch.dtype | None:
    """The model's working floating dtype, the one its input must have, or None if it has no floating tensors.

    That is the dtype of its first floating-point parameter (else buffer), leaving out the tensors that a layer
    keeps in full precision whatever the model's dtype (those its class names in ``_FULL_PRECISION``: a neuron
    layer's threshold and time constants stay float32 in a bfloat16 / float16 model, see :class:`~snnlab.LIF`).
    A model with only such tensors (neuron layers only) gets their dtype: those layers compute in it anyway.

    Example:
        >>> import snnlab as sl
        >>> input_dtype(sl.Sequential(sl.LIF(learn_threshold=True), nn.Linear(4, 3), sl.LI()).bfloat16())
        torch.bfloat16
        >>> input_dtype(sl.Sequential(sl.LIF(), sl.LI()).double()), input_dtype(nn.ReLU())
        (torch.float64, None)
    """
    params: list[torch.Tensor] = []
    buffers: list[torch.Tensor] = []
    kept: list[torch.Tensor] = []  # the full-precision ones: the last resort
    for module in model.modules():
        full = set(getattr(module, "_FULL_PRECISION", ()))
        for name, t in module.named_parameters(recurse=False):
            (kept if name in full else params).append(t)
        for name, t in module.named_buffers(recurse=False):
            (kept if name in full else buffers).append(t)
    for t in params + buffers + kept:
        if t.is_floating_point():
            return t.dtype
    return None


def model_input(x: torch.Tensor, device: torch.device, dtype: torch.dtype | None) -> torch.Tensor:
    """``x`` on ``device``, cast to the model's floating ``dtype`` (:func:`input_dtype`): integer and bool event
    frames and float data of another precision than the model's (float32 data, a float64 or bfloat16 model) would
    fail in its first layer. A model without floating parameters gets float data as it is and integer or bool
    data as the default float dtype. A no-op (no copy) when ``x`` already fits."""
    if dtype is None:
        dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
    return x.to(device=device, dtype=dtype)


def batches(loader: Iterable, max_batches: int | None,
            fn: str = "evaluate") -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(x [T, B, ...], y [B])`` pairs from ``loader``, at most ``max_batches`` of them (``fn``, the caller,
    names it in the errors).

    The labels ``y`` come back as int64 class indices (:func:`check_labels`: float labels are refused, not
    truncated). An empty batch (``B = 0``) is skipped (it still counts towards ``max_batches``); a batch of
    samples without time steps (``T = 0``) is an error.

    The loader's random generators are restored afterwards (:func:`~snnlab.data.loader_rng.same_randomness`):
    every evaluation pass over a loader sees the same inputs (rate-encoded spikes included).
    """
    if max_batches is not None and (isinstance(max_batches, bool) or not isinstance(max_batches, int) or max_batches < 1):
        raise ValueError(f"max_batches must be a positive int or None, got {max_batches!r}")
    with same_randomness(loader):
        yield from _checked_batches(loader, max_batches, fn)


def _checked_batches(loader: Iterable, max_batches: int | None,
                     fn: str = "evaluate") -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for i, batch in enumerate(loader):
        if max_batches is not None and i >= max_batches:
            return
        checked = check_batch(batch, fn, i)
        if checked is not None:
            yield checked


def check_batch(batch: object, fn: str, index: int) -> tuple[torch.Tensor, torch.Tensor] | None:
    """One loader item as ``(x [T, B, ...], y [B] int64)``, or None for an empty batch (``B = 0``: nothing to run or
    count). ``TypeError`` / ``ValueError`` naming ``fn`` (the caller) and the batch ``index`` for an item that is not an
    ``(x, y)`` pair, an ``x`` that is not a time-major tensor (the label count tells a batch-first one), samples
    without time steps, or labels that are not class indices (:func:`check_labels`).

    Example:
        >>> x, y = check_batch((torch.zeros(5, 2, 3), [1, 0]), "evaluate", 0)
        >>> tuple(x.shape), y.tolist()
        ((5, 2, 3), [1, 0])
    """
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise ValueError(f"{fn}: the loader must yield (x [T, B, ...], y [B]) pairs, got {type(batch).__name__}")
    x, y = batch[0], batch[1]
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{fn}: x must be a tensor [T, B, ...], got {type(x).__name__} (the loader yields (x, y) pairs)")
    if x.dim() < 2:
        raise ValueError(f"{fn}: x must be a time-major tensor [T, B, ...], got shape {tuple(x.shape)}")
    y = torch.as_tensor(y)
    if y.dim() == 2 and y.shape[0] == x.shape[1] and y.shape[1] > 1:
        raise ValueError(f"{fn}: batch {index} has labels of shape {tuple(y.shape)} for {x.shape[1]} samples: y "
                         "must be class indices [B] (int64), not one-hot or per-class scores [B, C]; yield "
                         "y.argmax(-1)")
    if y.numel() != x.shape[1]:
        raise ValueError(f"{fn}: batch {index} has {y.numel()} labels but x of shape {tuple(x.shape)} has batch size "
                         f"{x.shape[1]}: x must be time-major [T, B, ...] (for a batch-first loader, yield "
                         "x.transpose(0, 1))")
    if x.shape[1] == 0:
        return None
    if x.shape[0] == 0:
        raise ValueError(f"{fn}: batch {index} has no time steps (x of shape {tuple(x.shape)}, time-major "
                         f"[T, B, ...] with T = 0); give every sample at least one step")
    return x, check_labels(y, fn, "y")


def check_labels(y, fn: str, name: str = "labels", n_samples: int | None = None,
                 n_classes: int | None = None) -> torch.Tensor:
    """``y`` as a flat int64 tensor of class indices.

    ``TypeError`` for labels that are not integers (float or complex dtype: they would be truncated);
    ``ValueError`` unless there are ``n_samples`` of them (if given) and each lies in ``[0, n_classes)``
    (if given). ``fn`` (the caller) and ``name`` (the argument) name them in the errors.

    Example:
        >>> check_labels([0, 2], "evaluate", n_classes=3).tolist()
        [0, 2]
    """
    y = torch.as_tensor(y)
    if y.is_floating_point() or y.is_complex():
        raise TypeError(f"{fn}: {name} must be integer class indices, got dtype {y.dtype}; convert them "
                        f"with .long() (after rounding, if they are whole numbers stored as floats)")
    y = y.long().reshape(-1)
    if n_samples is not None and y.numel() != n_samples:
        raise ValueError(f"{fn}: {name} has {y.numel()} label(s) for {n_samples} sample(s); give one label per sample")
    if n_classes is not None and y.numel():
        lo, hi = torch.stack(torch.aminmax(y)).tolist()
        if lo < 0 or hi >= n_classes:
            raise ValueError(f"{fn}: {name} must be class indices in [0, {n_classes}) for an output with "
                             f"{n_classes} classes, got labels from {lo} to {hi}; check that the dataset's classes "
                             f"match the model's output size")
    return y


def model_output(model: nn.Module, x: torch.Tensor, readout: str | None = None, fn: str = "evaluate") -> torch.Tensor:
    """Run the model and return its time-major output ``[T, B, C]``: the tensor it returns, or the first element of a
    tuple / list it returns (``(spikes, membrane)`` gives the spikes: put the output to score first). Anything else
    (a dict, None, ...) is a ``TypeError`` naming ``fn`` (the caller) and the fix (:func:`check_model_output`).

    With ``readout``, a spike readout of an output that an ``LI`` layer returned is refused
    (:class:`~snnlab.core.readout.MembraneReadoutCheck`; evaluate and the trainer pass it for their first batch).

    Example:
        >>> class SpikesAndMembrane(nn.Module):
        ...     def forward(self, x):
        ...         return x.gt(0).float(), x
        >>> model_output(SpikesAndMembrane(), torch.tensor([[[-1.0, 2.0]]])).tolist()
        [[[0.0, 1.0]]]
    """
    with MembraneReadoutCheck(model, readout) if readout is not None else contextlib.nullcontext() as guard:
        out = check_model_output(model(x), fn)
        if guard is not None:
            guard.check(out)
    return out


def check_model_output(out: object, fn: str) -> torch.Tensor:
    """The tensor a model returned, or the first element of the tuple / list it returned; a ``TypeError`` naming
    ``fn`` (the caller), what the model returned and the fix otherwise (one tensor ``[T, B, C]`` from ``forward``,
    or a wrapper module whose ``forward`` picks it).

    Example:
        >>> check_model_output({"membrane": torch.zeros(2, 1, 3)}, "evaluate")
        Traceback (most recent call last):
        ...
        TypeError: evaluate: the model returned a dict with keys ['membrane'], but evaluate reads one time-major
        tensor [T, B, C] from the model (...): return that tensor from forward, or wrap the model in a module whose
        forward returns it, e.g. model(x)['membrane']
    """
    first = out[0] if isinstance(out, (tuple, list)) and len(out) else out
    if isinstance(first, torch.Tensor):
        return first
    if first is out:
        got = described(out)
    else:
        got = f"{_a(type(out).__name__)} whose first element is {described(first)}"
    pick = f"model(x)[{next(iter(first))!r}]" if isinstance(first, Mapping) and len(first) else "model(x)[...]"
    raise TypeError(f"{fn}: the model returned {got}, but {fn} reads one time-major tensor [T, B, C] from the model "
                    f"(of a tuple or list, its first element): return that tensor from forward, or wrap the model "
                    f"in a module whose forward returns it, e.g. {pick}")


def described(value: object) -> str:
    """``value`` in a few words for an error message: its type, with a mapping's keys and a tensor's shape.

    Example:
        >>> described({"1": 0}), described(None), described(torch.zeros(2, 3)), described(())
        ("a dict with keys ['1']", 'None', 'a Tensor of shape (2, 3)', 'an empty tuple')
    """
    if value is None:
        return "None"
    name = type(value).__name__
    if isinstance(value, Mapping):
        keys = list(value)
        return f"{_a(name)} with keys {keys[:8]}" + (f" (and {len(keys) - 8} more)" if len(keys) > 8 else "")
    if isinstance(value, (tuple, list)) and not value:
        return f"an empty {name}"
    shape = getattr(value, "shape", None)
    if isinstance(shape, tuple):  # (torch.Size is a tuple)
        return f"{_a(name)} of shape {tuple(shape)}"
    return _a(name)


def _a(noun: str) -> str:
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"
