"""Random spike masking (as in the Masked Spiking Transformer): drop spikes to save energy."""
from __future__ import annotations

import torch

from snnlab.kernels.dispatch import leave_graph, refuse_jit_trace
from snnlab.kernels.func_transforms import outside_transforms

from .random_stream import RandomStream
from .validation import as_drop_probability, as_flag, as_seed


class SpikeMask(RandomStream):
    """Drop each spike independently with probability ``p`` (unscaled: kept spikes stay 1).

    Active in training; at inference only when ``mask_at_inference=True``, so the energy /
    accuracy trade-off of masking can be measured both ways. Gradients pass through kept spikes.
    ``mask_at_inference`` must be True or False (``"no"`` is a ``TypeError``, not a true value) and ``p`` a number
    in ``[0, 1)`` (``ValueError``), also when they are set later (``mask.p = 0.3``).
    ``seed`` makes the masks reproducible (otherwise torch's global RNG drives them); a seeded layer's
    state dict holds its random stream (``_rng_state``), so a resumed run continues the masks where the
    saved one stopped (see :class:`~snnlab.core.random_stream.RandomStream` for loads between seeded and unseeded layers).
    Directly after an :class:`~snnlab.LIF`, prefer ``LIF(..., mask_p=p)``: the same function fused
    into the neuron kernels (its masks come from a counter hash, so they differ from this layer's draws).

    Graphs: an unseeded layer's draw is a graph operation (``torch.compile`` with ``fullgraph=True``,
    ``torch.export`` and ``torch.jit.trace`` draw fresh masks at every call); a seeded layer draws from its own
    generator, which ``torch.compile`` runs between graphs (``fullgraph=True`` and ``torch.export`` refuse it while
    it masks), and ``torch.jit.trace`` refuses it on a GPU (its seed would be kept as a constant).

    Example:
        >>> import torch, snnlab as sl
        >>> mask = sl.SpikeMask(0.5, seed=0)
        >>> out = mask(torch.ones(100, 2, 10))
        >>> 0.4 < out.mean().item() < 0.6
        True
    """

    def __init__(self, p: float = 0.1, mask_at_inference: bool = False, seed: int | None = None) -> None:
        super().__init__()
        self.p = p  # (each option is checked as it is set: __setattr__)
        self.mask_at_inference = mask_at_inference
        self._generator = torch.Generator().manual_seed(as_seed(seed, "SpikeMask")) if seed is not None else None

    def __setattr__(self, name: str, value) -> None:
        if name == "mask_at_inference":  # at construction and at any later assignment
            value = as_flag(value, name, type(self).__name__)
        elif name == "p":
            value = as_drop_probability(value, name, type(self).__name__)
        super().__setattr__(name, value)

    def forward(self, spikes: torch.Tensor) -> torch.Tensor:
        if not isinstance(spikes, torch.Tensor):
            raise TypeError(f"SpikeMask: input must be a torch.Tensor of spikes, got {type(spikes).__name__}")
        if self.p == 0.0 or not (self.training or self.mask_at_inference):
            return spikes
        return spikes * self._keep(spikes).to(dtype=spikes.dtype)

    def _keep(self, spikes: torch.Tensor) -> torch.Tensor:
        """The random keep mask, drawn on the spikes' device (no CPU draw and copy for GPU tensors)."""
        if self._generator is not None:  # its own generator: a host object that no graph can hold
            leave_graph("SpikeMask: a seeded layer draws its masks from its own torch.Generator, which "
                        "torch.compile(fullgraph=True) and torch.export cannot capture in a graph; use torch.compile "
                        "without fullgraph (the draw runs between graphs), an unseeded SpikeMask, or eval mode "
                        "without mask_at_inference")
        device, stream = spikes.device, self._stream()
        if device.type == "cpu":
            generator = stream  # the module's stream (torch's global one when unseeded)
        elif stream is None:
            generator = None  # the device's default generator (seeded by torch.manual_seed)
        else:  # seeded: a generator on the device, seeded from the module's stream (same seed, same masks)
            refuse_jit_trace("SpikeMask", "spike masks")  # (the seed below is a host integer)
            generator = torch.Generator(device=device)
            with outside_transforms():  # a plain number also under vmap
                generator.manual_seed(int(torch.randint(0, 2 ** 62, (1,), generator=stream)))
        # (no generator argument for the default one: torch.compile then also draws for a dynamic shape)
        drawn = {} if generator is None else {"generator": generator}
        return torch.rand(spikes.shape, device=device, dtype=torch.float32, **drawn) >= self.p

    def extra_repr(self) -> str:
        return f"p={self.p:g}, mask_at_inference={self.mask_at_inference}"
