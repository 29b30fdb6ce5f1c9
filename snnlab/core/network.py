"""Network containers and the :class:`Monitor` that records spikes and membranes."""
from __future__ import annotations

import torch
from torch import nn

from .neurons import LI, LIF


class Sequential(nn.Sequential):
    """A time-major ``nn.Sequential``: every layer maps ``[T, B, ...]`` to ``[T, B, ...]``.

    ``nn.Linear`` layers act on the last dimension, so they work on time-major tensors as they are.

    Example:
        >>> import torch, snnlab as sl
        >>> net = sl.Sequential(torch.nn.Linear(4, 8), sl.LIF(), torch.nn.Linear(8, 2), sl.LI())
        >>> net(torch.rand(10, 3, 4)).shape
        torch.Size([10, 3, 2])
    """

    def neuron_layers(self) -> dict[str, nn.Module]:
        """``{name: module}`` of every LIF / LI layer, in order (names as in ``named_modules``)."""
        return {n: m for n, m in self.named_modules() if isinstance(m, (LIF, LI))}


class Monitor:
    """Record spikes and membrane potentials of a network's neuron layers during forward passes.

    Use as a context manager; ``mon.spikes[name]`` and ``mon.membrane[name]`` hold detached
    ``[T, B, N]`` tensors of the last forward (LIF: pre-reset membrane; LI: its output membrane).
    Names are module names as in ``net.named_modules()`` (``"1"`` for the second layer of a Sequential).
    Monitors may nest (e.g. :func:`snnlab.metrics.evaluate` inside one): each records every forward it sees.
    ``membrane=False`` records spikes only: the layers then keep no membrane for it (LIF forwards run up to 2x
    faster on the CPU without keeping the whole ``[T, B, N]`` membrane), and ``mon.membrane`` stays empty.

    Example:
        >>> import torch, snnlab as sl
        >>> net = sl.Sequential(torch.nn.Linear(4, 8), sl.LIF(), torch.nn.Linear(8, 2), sl.LI())
        >>> with sl.Monitor(net) as mon:
        ...     out = net(torch.rand(10, 3, 4))
        >>> mon.spikes["1"].shape, mon.membrane["3"].shape
        (torch.Size([10, 3, 8]), torch.Size([10, 3, 2]))
    """

    def __init__(self, net: nn.Module, layers: list[str] | None = None, to_cpu: bool = False,
                 membrane: bool = True) -> None:
        found = {n: m for n, m in net.named_modules() if isinstance(m, (LIF, LI))}
        if layers is not None:
            missing = [n for n in layers if n not in found]
            if missing:
                raise ValueError(f"Monitor: no neuron layer named {missing}; neuron layers are {list(found)}")
            found = {n: found[n] for n in layers}
        self.layers = found
        self.to_cpu = to_cpu
        self.keep_membrane = bool(membrane)
        self.spikes: dict[str, torch.Tensor] = {}
        self.membrane: dict[str, torch.Tensor] = {}
        self._handles: list = []

    def _hook(self, name: str):
        def record(module: nn.Module, inputs, output: torch.Tensor) -> None:
            move = (lambda t: t.cpu()) if self.to_cpu else (lambda t: t)
            if isinstance(module, LIF):
                self.spikes[name] = move(output.detach())
            if self.keep_membrane and module.last_membrane is not None:
                self.membrane[name] = move(module.last_membrane)
        record.snnlab_monitor = True  # copies of a layer leave it behind (see _Leaky.__getstate__)
        return record

    def __enter__(self) -> "Monitor":
        if self._handles:
            raise RuntimeError("Monitor: this monitor is already recording (a `with` block of the same Monitor is "
                               "open); open another Monitor(net) to nest")
        self.spikes.clear()  # a reused monitor starts empty: no tensors of an earlier block
        self.membrane.clear()
        for name, module in self.layers.items():
            if self.keep_membrane:  # the layer keeps its membrane while any monitor wants it (they may nest)
                module.record = True
                module._monitors = getattr(module, "_monitors", 0) + 1
            self._handles.append(module.register_forward_hook(self._hook(name)))
        return self

    def __exit__(self, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        for module in self.layers.values() if self.keep_membrane else ():
            module._monitors = max(getattr(module, "_monitors", 1) - 1, 0)
            if module._monitors == 0:  # the last monitor of this layer: stop keeping its membrane
                module.record = False
                module.last_membrane = None
