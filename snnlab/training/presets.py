"""Named configurations that reproduce published setups: ``preset("dcls_shd")``, ``snnlab train --preset dcls_shd``.

Each preset is a set of :class:`~snnlab.training.config.ExperimentConfig` fields; anything not named keeps its
default, and keywords (or CLI flags) override the preset, ``data_kwargs`` key by key.

* ``ttfs_mnist5k`` / ``delays_delay_task``: the two experiments of ``docs/results.md`` (time-to-first-spike on
  5000 MNIST digits, swept against multi-spike neurons; learnable delays on the interval task, swept against
  none), on data that ships with snnlab's dependencies or is generated: they run anywhere, in minutes on a CPU.
* ``dcls_shd`` / ``dcls_ssc``: learnable delays on the Spiking Heidelberg Digits / Spiking Speech Commands as in
  Hammouamri, Khalfaoui-Hassani & Masquelier, "Learning Delays in Spiking Neural Networks using Dilated
  Convolutions with Learnable Spacings" (ICLR 2024; SHD 95.07 %, SSC 80.69 %), with the values of their
  published best configurations: 10 ms frames, 700 channels summed in groups of 5 (140 inputs), hidden
  layers of 256 (SHD, two) or 512 (SSC, three) LIF neurons with tau = 10.05 ms (SHD) / 15 ms (SSC), hard reset
  with a detached reset, atan surrogate (alpha 5), batch norm before and dropout (0.4 / 0.25, one mask per
  sequence) after every hidden LIF layer, bias-free delayed synapses in every layer (SHD: 25 taps, 250 ms;
  SSC: 31 taps), an LI readout scored by the per-step softmax summed over time, Kaiming-uniform weights (gain
  sqrt(6) on the +-1/sqrt(fan_in) default), Adam with weight decay 1e-5 on the weights (not on batch norm or
  the positions), a one-cycle rate peaking at 5e-3 for the weights and batch norm and a cosine-annealed 0.1
  for the positions, the Gaussians' standard deviation sigma shrinking exponentially to 0.5 over the first quarter of
  the epochs (their code sets dcls's ``SIG`` to 0.23; dcls's Gaussian has standard deviation ``SIG + 0.27``), then
  delays rounded to integers.

  Known differences from their code: the learning-rate schedules advance every batch, not every epoch (the
  sigma schedule advances once per epoch, as theirs does); an epoch's test metrics are measured with the sigma
  it trained with (their code narrows sigma before the epoch's validation); sigma starts at
  ``max_delay / 2`` (12.5 / 15.5; theirs 12.27 / 15.27) and shrinks exponentially in sigma (theirs in ``SIG``); their delay convolution pads half a kernel of extra steps
  after each sample and layer, ours keeps each sample's length (samples are zero-padded to the longest in the
  batch, as theirs); SSC's validation split is not used. Their accuracies are the best epoch's (for SHD, on the
  test set; for SSC, chosen on the validation set), while a run here reports its last epoch, rounded.
  ``num_steps`` only sizes the memory estimate (``time_window`` sets the number of frames).

Example:
    >>> cfg = preset("dcls_shd", epochs=2)
    >>> cfg.hidden, cfg.max_delay, cfg.data_kwargs, cfg.epochs
    ([256, 256], 25, {'time_window': 10000, 'channel_bin': 5}, 2)
"""
from __future__ import annotations

import copy
import math
from typing import Any

from .config import ConfigError, ExperimentConfig, with_changes

__all__ = ["PRESETS", "preset", "preset_fields", "with_changes"]

_KAIMING_UNIFORM_GAIN = math.sqrt(6.0)  # kaiming_uniform(relu) bound sqrt(6 / fan_in) over the 1/sqrt(fan_in) default

_DCLS_COMMON: dict[str, Any] = {
    "num_steps": 100, "neuron": "multi_spike", "threshold": 1.0, "reset": "zero", "detach_reset": True,
    "surrogate": "atan", "surrogate_alpha": 5.0, "batch_norm": True, "delays": True,
    "sigma_schedule": "exponential", "sigma_end": 0.5, "sigma_anneal_fraction": 0.25,
    "readout": "softmax_sum", "weight_gain": _KAIMING_UNIFORM_GAIN, "readout_gain": _KAIMING_UNIFORM_GAIN,
    "optimizer": "adam", "lr": 5e-3, "lr_schedule": "one_cycle", "lr_delays": 0.1, "lr_delays_schedule": "cosine",
    "weight_decay": 1e-5, "seed": 0,
}

#: ``{name: config fields}``; see the module docstring for where each comes from.
PRESETS: dict[str, dict[str, Any]] = {
    "ttfs_mnist5k": {"dataset": "mnist5k", "encoding": "latency", "num_steps": 20, "hidden": [128],
                     "neuron": "ttfs", "epochs": 6},
    "delays_delay_task": {"dataset": "delay_task", "num_steps": 60, "hidden": [32], "tau_mem": 2.0,
                          "delays": True, "max_delay": 30, "epochs": 20, "lr": 5e-3, "lr_delays": 0.5},
    "dcls_shd": {**_DCLS_COMMON, "dataset": "shd", "data_kwargs": {"time_window": 10_000, "channel_bin": 5},
                 "hidden": [256, 256], "tau_mem": 1.005, "dropout": 0.4, "max_delay": 25,
                 "epochs": 150, "batch_size": 256},
    "dcls_ssc": {**_DCLS_COMMON, "dataset": "ssc", "data_kwargs": {"time_window": 10_000, "channel_bin": 5},
                 "hidden": [512, 512, 512], "tau_mem": 1.5, "dropout": 0.25, "max_delay": 31,
                 "epochs": 60, "batch_size": 128},
}


def preset_fields(name: str) -> dict[str, Any]:
    """A deep copy of preset ``name``'s fields (``ConfigError`` for an unknown name).

    Example:
        >>> preset_fields("dcls_shd")["hidden"]
        [256, 256]
    """
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return copy.deepcopy(PRESETS[name])


def preset(name: str, **changes: Any) -> ExperimentConfig:
    """The validated configuration of preset ``name`` with ``changes`` applied (e.g. ``data_root=...``; see
    :func:`with_changes` for ``data_kwargs``)."""
    return ExperimentConfig.from_dict(with_changes(preset_fields(name), changes))
