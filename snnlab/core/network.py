"""Network containers and the :class:`Monitor` that records spikes and membranes."""
from __future__ import annotations

import contextlib
import threading
import warnings
import weakref
from collections.abc import Iterable, Iterator

import torch
from torch import nn

from snnlab.kernels.func_transforms import under_vmap

from .neurons import LI, LIF
from .random_stream import in_recomputation
from .validation import as_flag


def _difference(parts: list[torch.Tensor]) -> str:
    """What keeps a layer's recorded calls ``parts`` from being joined along time, in words."""
    if len({tuple(p.shape[1:]) for p in parts}) > 1:
        return f"inputs of different shapes {sorted({tuple(p.shape) for p in parts})}"
    if len({p.dtype for p in parts}) > 1:
        return f"outputs of different dtypes {sorted({str(p.dtype) for p in parts})}"
    return f"outputs on different devices {sorted({str(p.device) for p in parts})}"


#: torch's frame-by-frame layers (convolutions, pooling, batch norm) by the most dimensions they take: a batch of
#: frames ``[N, C, L]``, ``[N, C, H, W]`` or ``[N, C, D, H, W]``
_FRAME_LAYERS: dict[int, tuple[type[nn.Module], ...]] = {
    3: (nn.Conv1d, nn.ConvTranspose1d, nn.MaxPool1d, nn.AvgPool1d, nn.LPPool1d, nn.AdaptiveMaxPool1d,
        nn.AdaptiveAvgPool1d, nn.BatchNorm1d, nn.LazyBatchNorm1d),
    4: (nn.Conv2d, nn.ConvTranspose2d, nn.MaxPool2d, nn.AvgPool2d, nn.LPPool2d, nn.AdaptiveMaxPool2d,
        nn.AdaptiveAvgPool2d, nn.FractionalMaxPool2d, nn.BatchNorm2d, nn.LazyBatchNorm2d),
    5: (nn.Conv3d, nn.ConvTranspose3d, nn.MaxPool3d, nn.AvgPool3d, nn.AdaptiveMaxPool3d, nn.AdaptiveAvgPool3d,
        nn.FractionalMaxPool3d, nn.BatchNorm3d, nn.LazyBatchNorm3d),
}
_FRAME_SHAPES = {3: "[N, C, L]", 4: "[N, C, H, W]", 5: "[N, C, D, H, W]"}
_frame_dims_of: dict[type, int | None] = {}  # (decided once per module type)


def _frame_dims(kind: type) -> int | None:
    """The most dimensions a layer of type ``kind`` takes when it is one of torch's frame-by-frame layers
    (:data:`_FRAME_LAYERS`, or a subclass that keeps its forward), else None (snnlab's own layers included).

    Example:
        >>> _frame_dims(torch.nn.Conv2d), _frame_dims(torch.nn.Linear)
        (4, None)
    """
    if kind not in _frame_dims_of:
        found = None
        if kind.__module__.split(".")[0] != "snnlab":
            for dims, bases in _FRAME_LAYERS.items():
                base = next((b for b in bases if issubclass(kind, b)), None)
                if base is not None and kind.forward is base.forward:
                    found = dims
                    break
        _frame_dims_of[kind] = found
    return _frame_dims_of[kind]


class Sequential(nn.Sequential):
    """A time-major ``nn.Sequential``: every layer maps ``[T, B, ...]`` to ``[T, B, ...]``.

    ``nn.Linear`` layers act on the last dimension, so they work on time-major tensors as they are. Convolutions,
    pooling and batch norm take frames: wrap them in :class:`~snnlab.TimeDistributed`, which folds time into the batch.
    One of torch's (``nn.Conv2d``, ``nn.MaxPool2d``, ``nn.BatchNorm2d``...) put in unwrapped, given a time-major
    tensor with one dimension more than its frames (``[T, B, C, H, W]`` for ``nn.Conv2d``) that it refuses, raises a
    ``ValueError`` naming the layer and the wrapper (what torch takes as it is, such as ``nn.AdaptiveAvgPool2d(1)``'s
    mean over the last two dimensions, or an input a forward pre-hook reshapes, runs as in ``nn.Sequential``).
    One inside a plain ``nn.Sequential`` child (nested ones too) is named by its dotted path (``'0.0'``); one inside
    another module of your own raises torch's own error.

    Example:
        >>> import torch, snnlab as sl
        >>> net = sl.Sequential(torch.nn.Linear(4, 8), sl.LIF(), torch.nn.Linear(8, 2), sl.LI())
        >>> net(torch.rand(10, 3, 4)).shape
        torch.Size([10, 3, 2])
    """

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 - nn.Sequential's name for it
        for index, (name, module) in enumerate(self._modules.items()):
            try:
                input = module(input)
            except (RuntimeError, ValueError) as err:  # (only what torch refuses: AdaptiveAvgPool2d(1) takes 5-D)
                _name_unwrapped(index, name, module, input, err)
                raise
        return input

    def neuron_layers(self) -> dict[str, nn.Module]:
        """``{name: module}`` of every LIF / LI layer, in order (names as in ``named_modules``)."""
        return neuron_layers(self)


def neuron_layers(model: nn.Module, *, root_name: str = "", who: str | None = None) -> dict[str, LIF | LI]:
    """``{name: layer}`` of every LIF / LI layer (and subclass) of ``model``, in ``model.named_modules()`` order and
    named as there, ``model`` itself (when it is one) as ``root_name``; ``.values()`` gives the layers alone. The one
    place that decides which modules are neuron layers (:class:`Monitor`, :func:`reset_states`, the metrics, the
    Trainer). With ``who``, a ``model`` that is not an ``nn.Module`` is a ``TypeError`` naming ``who``.

    Example:
        >>> import torch, snnlab as sl
        >>> net = sl.Sequential(torch.nn.Linear(4, 8), sl.LIF(), torch.nn.Linear(8, 2), sl.LI())
        >>> list(neuron_layers(net)), list(neuron_layers(sl.LI(), root_name="(the model)"))
        (['1', '3'], ['(the model)'])
    """
    if who is not None and not isinstance(model, nn.Module):
        raise TypeError(f"{who}: model must be a torch.nn.Module, got {type(model).__name__}")
    return {name or root_name: m for name, m in model.named_modules() if isinstance(m, (LIF, LI))}


def reset_states(model: nn.Module) -> None:
    """Drop the membrane every neuron layer of ``model`` carries from its last call (``carry_state=True``, see
    :class:`~snnlab.LIF`): the next call of each starts from rest. Call it before each new sequence (a new batch) when
    feeding sequences in chunks. Layers without ``carry_state`` carry nothing and are left as they are.

    Example:
        >>> import torch, snnlab as sl
        >>> net = sl.Sequential(torch.nn.Linear(4, 8), sl.LIF(carry_state=True), torch.nn.Linear(8, 2),
        ...                     sl.LI(carry_state=True))
        >>> _ = net(torch.rand(5, 2, 4))
        >>> net[1].carried_membrane is None
        False
        >>> sl.reset_states(net)
        >>> net[1].carried_membrane is None, net[3].carried_membrane is None
        (True, True)
    """
    for layer in neuron_layers(model, root_name="(the model)", who="reset_states").values():
        layer.reset_state()




def _carry_refusals(model: nn.Module, layers: dict[str, LIF | LI]) -> list[tuple[str, str, str]]:
    """``(name, class name, why)`` of every layer of ``model`` that cannot carry its state from call to call: the
    neuron ``layers`` that refuse it, and each :class:`~snnlab.DelayedLinear` whose output mixes time steps
    (``max_delay > 1``: its delayed input would have to be carried too)."""
    from .delays import DelayedLinear  # (imported on use: the network does not need the delays otherwise)
    refused = [(name, type(layer).__name__, problem) for name, layer in layers.items()
               if (problem := layer._carry_problem()) is not None]
    return refused + [(name or "(the model)", type(m).__name__,
                       f"its delays (max_delay={m.max_delay}) reach up to {m.max_delay - 1} steps back, into the "
                       "input of earlier calls, which it does not keep (each chunk would start from zero input); "
                       "feed whole sequences, or use max_delay=1")
                      for name, m in model.named_modules() if isinstance(m, DelayedLinear) and m.max_delay > 1]


@contextlib.contextmanager
def carrying_state(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block, every LIF / LI layer of ``model`` carries its membrane from call to call
    (``carry_state=True``): a sequence fed in chunks (truncated BPTT, streaming inference, one step at a time) runs
    as one call on the whole sequence would, with no gradient flowing into earlier chunks. The block starts each
    layer that did not carry state from rest; at its end the layers it switched on are switched off again and drop
    their membranes, while a layer that carried state before the block (your own stream, an outer block's) keeps
    carrying it, from where the block's chunks left it. A layer that cannot carry its state (an
    :class:`~snnlab.ALIF`, a :class:`~snnlab.RecurrentLIF`, an LIF with ``max_spikes``, a
    :class:`~snnlab.DelayedLinear` with ``max_delay > 1``) is a ``ValueError`` naming it, before any layer is
    changed; a model without neuron layers gets a ``UserWarning``. Other layers that mix time steps are not
    continued across chunks either: :class:`~snnlab.TimeDropout` draws one mask per call (per chunk), and
    :class:`~snnlab.TimeBatchNorm` in training uses each chunk's statistics. Yields ``model``.

    Example:
        >>> import torch, snnlab as sl
        >>> net = sl.Sequential(torch.nn.Linear(4, 8), sl.LIF(), torch.nn.Linear(8, 2), sl.LI())
        >>> x = torch.rand(12, 2, 4)
        >>> with sl.carrying_state(net):
        ...     chunks = torch.cat([net(x[t:t + 4]) for t in range(0, 12, 4)])
        >>> torch.allclose(chunks, net(x), atol=1e-6), net[1].carry_state   # (the Linear layers' sums may round apart)
        (True, False)
    """
    layers = neuron_layers(model, root_name="(the model)", who="carrying_state")
    if not layers:
        warnings.warn(f"carrying_state: {type(model).__name__} has no neuron layer (snnlab.LIF or snnlab.LI, or a "
                      "subclass), so nothing carries state", UserWarning, stacklevel=3)
    for name, kind, problem in _carry_refusals(model, layers):
        raise ValueError(f"carrying_state: layer {name!r} ({kind}) cannot carry its state: {problem}")
    switched_on = [layer for layer in layers.values() if not layer.carry_state]
    try:
        for layer in switched_on:
            layer.carry_state = True
        yield model
    finally:
        for layer in switched_on:
            layer.carry_state = False  # (drops the membrane it carried in the block)


@contextlib.contextmanager
def carry_suspended(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block, every call of ``model``'s LIF / LI layers starts from rest, whatever their ``carry_state``:
    for loops whose batches are sets of whole sequences (:func:`snnlab.metrics.evaluate`,
    :func:`~snnlab.metrics.robustness_curve`, the :class:`~snnlab.training.Trainer`'s steps, the widgets' live
    views, your own evaluation loops). The layers that carry state (``carry_state=True``, see :class:`~snnlab.LIF`)
    have it switched off for the block and get back, at its end (an error included), both their ``carry_state`` and
    the membrane they carried when it began: a stream fed in chunks around the block continues as if the block had
    not run. Layers without ``carry_state`` are not touched (the block then costs one pass over
    ``model.modules()``). The flags are the layers' own, shared by every thread: a stream fed in another thread
    during the block starts from rest too. Yields ``model``.

    Example:
        >>> import torch, snnlab as sl
        >>> net = sl.Sequential(torch.nn.Linear(4, 8), sl.LIF(carry_state=True))
        >>> _ = net(torch.rand(5, 2, 4))                      # a stream of 2 sequences, first chunk
        >>> kept = net[1].carried_membrane
        >>> with sl.carry_suspended(net):
        ...     _ = net(torch.rand(5, 3, 4))                  # another batch size: from rest, nothing carried
        >>> net[1].carry_state, net[1].carried_membrane is kept
        (True, True)
    """
    layers = neuron_layers(model, root_name="(the model)", who="carry_suspended")
    saved = [(layer, layer.carried_membrane) for layer in layers.values() if layer.carry_state]
    for layer, _ in saved:
        layer.carry_state = False  # (drops the carried membrane: saved above)
    try:
        yield model
    finally:
        for layer, membrane in saved:
            layer.carry_state = True
            layer._carried = membrane


_SEQUENTIAL_FORWARD = nn.Sequential.forward.__code__


def _running_layer(name: str, module: nn.Module, given: object,
                   refusal: BaseException) -> tuple[str, nn.Module, object]:
    """The layer that was running when ``module`` (called as ``name`` on ``given``) raised ``refusal``, its dotted
    name and its input: ``module`` itself, or, where ``module`` is a plain ``nn.Sequential`` (nested ones too), the
    layer inside it, as torch's ``nn.Sequential.forward`` frames in ``refusal``'s traceback hold it (read only on
    this error path: the calls that succeed pay nothing)."""
    tb = refusal.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code is _SEQUENTIAL_FORWARD and frame.f_locals.get("self") is module:
            inner = frame.f_locals.get("module")
            child = next((n for n, m in module._modules.items() if m is inner), None)  # (the first, if shared)
            if child is None:  # (not torch's loop as it is known)
                break
            name, module, given = f"{name}.{child}", inner, frame.f_locals.get("input")
        tb = tb.tb_next
    return name, module, given


def _name_unwrapped(index: int, name: str, module: nn.Module, given: object, refusal: Exception) -> None:
    """Raise the error naming a torch frame-by-frame layer that refused (``refusal``, torch's error) a time-major
    tensor one dimension larger than its frames: the Sequential's child ``module`` (its ``index``-th, called ``name``,
    given ``given``) or one inside it (see :func:`_running_layer`). Return for any other error, raised as it is."""
    if isinstance(refusal, torch.OutOfMemoryError):  # (AdaptiveAvgPool2d(1) on a large 5-D input)
        return
    path, layer, given = _running_layer(name, module, given, refusal)
    dims = _frame_dims(type(layer))
    if dims is None or not isinstance(given, torch.Tensor) or given.dim() != dims + 1:
        return
    if path != name:  # (inside a plain nn.Sequential child: its dotted path, "0.0")
        label = repr(path)
    else:
        label = str(index) if name == str(index) else f"{index} {name!r}"
    kind = type(layer).__name__
    raise ValueError(f"Sequential: layer {label} ({kind}) takes frames {_FRAME_SHAPES[dims]} (at most {dims} "
                     f"dimensions), but gets the time-major tensor of shape {tuple(given.shape)}, one dimension more: "
                     f"wrap it in snnlab.TimeDistributed({kind}(...)), which runs it on the T*B frames and gives "
                     "[T, B, ...] back") from refusal


class _NoHook:
    """What copies and pickles get in place of a :class:`WeakMethodHook`: nothing to call."""

    def __call__(self, *args) -> None:
        return None


class WeakMethodHook:
    """A module hook calling one method of an object held weakly (a :class:`Monitor`, a trainer): the hook neither
    keeps the object alive nor drags it into copies of the model. Copies and pickles (``copy.deepcopy``,
    ``torch.save``) of a neuron layer leave it behind (``snnlab_transient``, see ``_Leaky.__getstate__``); on other
    modules it becomes a :class:`_NoHook`.

    Example:
        >>> import copy, torch, snnlab as sl
        >>> class Counter:
        ...     calls = 0
        ...     def count(self, module, inputs, output):
        ...         self.calls += 1
        >>> counter, lif = Counter(), sl.LIF()
        >>> _ = lif.register_forward_hook(WeakMethodHook(counter, "count"))
        >>> _ = lif(torch.rand(3, 1, 2)); _ = copy.deepcopy(lif)(torch.rand(3, 1, 2))
        >>> counter.calls                          # the copy does not call it
        1
    """

    snnlab_transient = True

    def __init__(self, owner: object, method: str) -> None:
        self._owner, self._method = weakref.ref(owner), method

    def __call__(self, *args) -> None:
        owner = self._owner()
        if owner is not None:
            return getattr(owner, self._method)(*args)
        return None

    def __reduce__(self):
        return _NoHook, ()


class Monitor:
    """Record spikes and membrane potentials of a network's neuron layers during forward passes.

    Use as a context manager; ``mon.spikes[name]`` and ``mon.membrane[name]`` hold detached
    ``[T, B, N]`` tensors of the last forward (LIF: pre-reset membrane; LI: its output membrane);
    ``mon.thresholds[name]`` the effective threshold of layers whose threshold moves (:class:`~snnlab.ALIF`).
    Names are module names as in ``net.named_modules()`` (``"1"`` for the second layer of a Sequential).
    Monitors may nest (e.g. :func:`snnlab.metrics.evaluate` inside one): each records every forward it sees.
    ``membrane=False`` records spikes only (no membrane, no ``thresholds``): the layers then keep no membrane for it (LIF forwards run up to 2x
    faster on the CPU without keeping the whole ``[T, B, N]`` membrane), and ``mon.membrane`` stays empty.

    Only :class:`~snnlab.LIF` / :class:`~snnlab.LI` layers (and their subclasses) are neuron layers: a neuron
    written as another ``nn.Module`` is not recorded. A spiking layer (an LIF or a subclass) must return its spike
    tensor alone: one returning a tuple (``(spikes, membrane)``, as some libraries' neurons do) raises a ``TypeError``
    naming it at its call (which element holds the spikes is not known). A network with no neuron layer at all gets a ``UserWarning``
    (it would record nothing); not an error, as the metrics monitor any model they are given and say what it lacks
    themselves. ``layers=[]`` asks for nothing and is not warned about.

    A layer called several times in one forward of ``net`` (a layer shared by several places) is recorded as all
    its calls concatenated along time, in call order. Each call of a neuron layer is a whole sequence from rest (no
    state is carried between calls, unless the layer has ``carry_state=True``), so ``T`` calls on ``[1, B, N]``
    record ``[T, B, N]`` of ``T`` one-step sequences, not the dynamics of one call on ``[T, B, N]``: give the layers
    whole sequences, or let them carry their membrane (:func:`carrying_state`).
    A forward of ``net`` is one call of ``net`` itself (seen by forward hooks on ``net``, thread by thread: a forward
    of the same ``net`` in another thread is another forward); each one starts the records of the layers it calls anew
    (layers it does not reach keep their earlier record). A neuron layer called on its own, outside a forward
    of ``net``, replaces its record at every call. Calls of one layer whose shapes differ beyond time cannot be
    concatenated: the last one is kept, with a warning. :meth:`reset` forgets everything recorded
    (:func:`snnlab.metrics.evaluate` resets before each batch).

    ``layers``: the names of the layers to record (a str for one name, or any iterable of them), None for every
    neuron layer. ``to_cpu`` and ``membrane`` must be True or False (``membrane="no"`` is a ``TypeError``, not a
    true value); so must ``mon.to_cpu`` and ``mon.keep_membrane`` when set later.
    The recomputation of a checkpointed block (:func:`~snnlab.activation_checkpoint`, ``torch.utils.checkpoint``)
    in the backward pass calls its layers again: it is not recorded, the records stay those of the forward.
    A layer called under ``torch.func.vmap`` raises a ``RuntimeError``: its batched tensors could not be read
    after vmap returns (record the network without vmap).

    Example:
        >>> import torch, snnlab as sl
        >>> net = sl.Sequential(torch.nn.Linear(4, 8), sl.LIF(), torch.nn.Linear(8, 2), sl.LI())
        >>> with sl.Monitor(net) as mon:
        ...     out = net(torch.rand(10, 3, 4))
        >>> mon.spikes["1"].shape, mon.membrane["3"].shape
        (torch.Size([10, 3, 8]), torch.Size([10, 3, 2]))
    """

    def __init__(self, net: nn.Module, layers: str | Iterable[str] | None = None, to_cpu: bool = False,
                 membrane: bool = True) -> None:
        to_cpu, membrane = as_flag(to_cpu, "to_cpu", "Monitor"), as_flag(membrane, "membrane", "Monitor")
        if isinstance(layers, str):  # one name ("11"), not its characters
            layers = [layers]
        elif layers is not None:  # (a generator is read once: the names are checked, then kept)
            if not isinstance(layers, Iterable):
                raise TypeError(f"Monitor: layers must be a layer name, an iterable of names or None, got "
                                f"{type(layers).__name__} {layers!r}")
            layers = list(layers)
            bad = [n for n in layers if not isinstance(n, str)]
            if bad:
                raise TypeError(f"Monitor: layers must be names (str, as in net.named_modules()), got {bad!r}")
        found = neuron_layers(net)
        if not found and layers is None:
            warnings.warn(f"Monitor: {type(net).__name__} has no neuron layer (snnlab.LIF or snnlab.LI, or a "
                          "subclass of them) among its modules, so nothing will be recorded: a neuron written as "
                          "another nn.Module must subclass snnlab.LIF (or snnlab.LI) to be monitored",
                          UserWarning, stacklevel=2)
        if layers is not None:
            missing = [n for n in layers if n not in found]
            if missing:
                raise ValueError(f"Monitor: no neuron layer named {missing}; neuron layers are {list(found)}")
            found = {n: found[n] for n in layers}
        self.net = net
        self.layers = found
        self.to_cpu = to_cpu
        self.keep_membrane = membrane
        self.spikes: dict[str, torch.Tensor] = {}
        self.membrane: dict[str, torch.Tensor] = {}
        self.thresholds: dict[str, torch.Tensor] = {}
        self._handles: list = []
        # per thread (a model may run in several at once: a background Trainer, DataParallel's workers), the forward
        # of `net` in progress: [depth (nested calls of net count once), {(kind, layer): its calls so far}]
        self._forwards: dict[int, list] = {}

    def __setattr__(self, name: str, value) -> None:
        if name in ("to_cpu", "keep_membrane"):  # flags: True or False, also when set after construction
            value = as_flag(value, name, "Monitor")
        super().__setattr__(name, value)

    def reset(self) -> None:
        """Forget every record: ``spikes``, ``membrane`` and ``thresholds`` empty, the next call of each layer starts
        anew."""
        self.spikes.clear()
        self.membrane.clear()
        self.thresholds.clear()
        for forward in list(self._forwards.values()):
            forward[1].clear()

    def _records(self, kind: str) -> dict[str, torch.Tensor]:
        return {"spikes": self.spikes, "membrane": self.membrane, "threshold": self.thresholds}[kind]

    def _store(self, kind: str, name: str, t: torch.Tensor) -> None:
        target = self._records(kind)
        forward = self._forwards.get(threading.get_ident())
        if forward is None:  # outside a forward of net (in this thread): every call replaces
            target[name] = t
            return
        parts = forward[1].setdefault((kind, name), [])
        parts.append(t)
        if len(parts) == 1:  # the first call in this forward replaces; later ones are joined when it ends
            target[name] = t

    def _merge(self, calls: dict[tuple[str, str], list[torch.Tensor]]) -> None:
        for (kind, name), parts in calls.items():
            if len(parts) < 2:
                continue
            target = self._records(kind)
            if len({(tuple(p.shape[1:]), p.dtype, p.device) for p in parts}) == 1:
                target[name] = torch.cat(parts)
            else:
                warnings.warn(f"Monitor: layer {name!r} was called {len(parts)} times in one forward with "
                              f"{_difference(parts)}; they cannot be joined along time, only the last call's {kind} "
                              "are kept", RuntimeWarning, stacklevel=2)
                target[name] = parts[-1]
        calls.clear()

    def _net_pre(self, module: nn.Module, inputs) -> None:
        if module is self.net:
            forward = self._forwards.setdefault(threading.get_ident(), [0, {}])
            forward[0] += 1

    def _net_post(self, module: nn.Module, inputs, output) -> None:
        if module is self.net:
            forward = self._forwards.get(threading.get_ident())
            if forward is not None:
                forward[0] -= 1
                if forward[0] <= 0:
                    del self._forwards[threading.get_ident()]
                    self._merge(forward[1])

    def _hook(self, name: str):
        def record(module: nn.Module, inputs, output: torch.Tensor) -> None:
            if in_recomputation():  # a checkpointed block recomputed by the backward: its forward was recorded
                return
            if under_vmap():
                raise RuntimeError(f"Monitor: layer {name!r} was called under torch.func.vmap, where it cannot be "
                                   "recorded (its batched tensors could not be read after vmap returns); run vmap "
                                   "outside the Monitor's with block, or record the network without vmap")
            move = (lambda t: t.cpu()) if self.to_cpu else (lambda t: t)
            if isinstance(module, LIF):
                if not isinstance(output, torch.Tensor):  # (a tuple's first element is not known to be the spikes)
                    raise TypeError(f"Monitor: layer {name!r} ({type(module).__name__}) returned "
                                    f"{type(output).__name__}, not a tensor: a neuron layer (an LIF or a subclass) "
                                    "must return its spike tensor [T, B, ...] alone (keep the membrane in "
                                    "last_membrane, which a Monitor with keep_membrane=True records)")
                self._store("spikes", name, move(output.detach()))
            if self.keep_membrane and module.last_membrane is not None:
                self._store("membrane", name, move(module.last_membrane))
            if self.keep_membrane and getattr(module, "last_threshold", None) is not None:
                self._store("threshold", name, move(module.last_threshold))
        record.snnlab_transient = True  # copies of a layer leave it behind (see _Leaky.__getstate__)
        return record

    def __enter__(self) -> "Monitor":
        if self._handles:
            raise RuntimeError("Monitor: this monitor is already recording (a `with` block of the same Monitor is "
                               "open); open another Monitor(net) to nest")
        self.reset()  # a reused monitor starts empty: no tensors of an earlier block
        self._forwards.clear()
        for name, module in self.layers.items():
            if self.keep_membrane:  # the layer keeps its membrane while any monitor wants it (they may nest)
                module.record = True
                module._monitors = getattr(module, "_monitors", 0) + 1
            self._handles.append(module.register_forward_hook(self._hook(name)))
        # the forward boundaries of net: hooks on net itself (only its own calls pay for them)
        self._handles.append(self.net.register_forward_pre_hook(WeakMethodHook(self, "_net_pre")))
        self._handles.append(self.net.register_forward_hook(WeakMethodHook(self, "_net_post"), always_call=True))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        for forward in list(self._forwards.values()):  # closed inside a forward of net: join what it recorded
            self._merge(forward[1])
        self._forwards.clear()
        for module in self.layers.values() if self.keep_membrane else ():
            module._monitors = max(getattr(module, "_monitors", 1) - 1, 0)
            if module._monitors == 0:  # the last monitor of this layer: stop keeping its membrane
                module.record = False
                module.last_membrane = None
                if hasattr(module, "last_threshold"):
                    module.last_threshold = None
