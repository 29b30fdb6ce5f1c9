"""Command-line flags generated from :class:`~snnlab.training.config.ExperimentConfig`.

One source of truth: every config field becomes a ``--flag`` with its type, allowed values and doc,
so the CLI can never drift from the Python API, the widgets or the dashboard.
"""
from __future__ import annotations

import argparse
import json
import sys
import warnings
from typing import Any

from snnlab.training.config import ConfigError, ExperimentConfig, unknown_keys_error, with_changes
from snnlab.training.field_text import INT_LIST_NOTE, is_none_text, parse_int_list_text


def _none_or(conv):
    """``conv`` for a field that allows None: ``none``/``null``/blank (:func:`~snnlab.training.field_text.is_none_text`,
    the forms' rule too) is None."""
    def parse(text: str):
        return None if is_none_text(text) else conv(text)
    parse.__name__ = conv.__name__
    return parse


def _int_list(text: str) -> list[int]:
    """``"128,64"``, ``"128"`` or ``"[128, 64]"`` -> a list of ints, by the forms' parser
    (:func:`~snnlab.training.field_text.parse_int_list_text`); an empty entry (``"32,,16"``, a trailing comma) is an
    error, not skipped.

    Example:
        >>> _int_list("128, 64"), _int_list("[256, 256]")
        ([128, 64], [256, 256])
        >>> _int_list("32,,16")
        Traceback (most recent call last):
        ...
        argparse.ArgumentTypeError: expected comma-separated integers like 128,64 or a JSON list like [128, 64], got '32,,16' (entry 2 is empty)
    """
    try:
        return parse_int_list_text(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _json_dict(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"expected a JSON object like '{{\"n_units\": 50}}': {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def field_converter(name: str):
    """``str -> value`` parser for config field ``name`` (used by flags and by sweep grids)."""
    spec = ExperimentConfig.schema()[name]
    kind = spec["type"]
    if kind == "Boolean":
        def parse_bool(text: str) -> bool:
            low = text.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise argparse.ArgumentTypeError(f"{name}: expected true/false, got {text!r}")
        return parse_bool
    if kind == "Integer":
        return _none_or(int) if spec["allow_None"] else int
    if kind == "Number":
        return _none_or(float) if spec["allow_None"] else float
    if kind == "Dict":
        return _json_dict
    if kind in ("List", "LayerSizes"):
        return _int_list
    return _none_or(str) if spec["allow_None"] else str


def _int_list_text(values: list | None) -> str:
    return "None" if values is None else ",".join(str(v) for v in values)


def field_flag(field: str) -> str:
    """The command-line flag of a config field: ``--max-delay`` for ``max_delay``.

    Example:
        >>> field_flag("max_delay")
        '--max-delay'
    """
    return "--" + field.replace("_", "-")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--config FILE`` and one ``--<field>`` flag per config field to ``parser``."""
    from snnlab.training.presets import PRESETS

    parser.add_argument("--preset", choices=sorted(PRESETS),
                        help="start from a published setup (snnlab.training.presets); --config and flags override it")
    parser.add_argument("--config", metavar="FILE", help="JSON file with a saved configuration; flags override it")
    group = parser.add_argument_group("experiment configuration (defaults in brackets)")
    for name, spec in ExperimentConfig.schema().items():
        flag = field_flag(name)
        kind, doc = spec["type"], (spec["doc"] or "").replace("%", "%%")
        kw: dict[str, Any] = {"dest": name, "default": argparse.SUPPRESS, "help": f"{doc} [{spec['default']!r}]"}
        if kind == "Boolean":
            group.add_argument(flag, action=argparse.BooleanOptionalAction, **kw)
            continue
        if kind in ("Selector", "ObjectSelector"):
            kw["choices"] = spec["objects"]
            kw["metavar"] = "{" + ",".join(map(str, spec["objects"])) + "}"
        else:
            kw["type"] = field_converter(name)
            if kind == "Dict":
                kw["metavar"] = "JSON"
            elif kind in ("List", "LayerSizes"):
                kw["metavar"] = "N,N,..."
                kw["help"] = f"{doc} {INT_LIST_NOTE} [{_int_list_text(spec['default'])}]"
        group.add_argument(flag, **kw)


def parse_grid(items: list[str]) -> dict[str, list]:
    """``["max_spikes=1,None", "noise_scale=0.1,0.3"]`` -> ``{"max_spikes": [1, None], ...}``.

    Values are separated by ``,``; list- and dict-valued fields (``hidden``, ``data_kwargs``) separate their
    values by ``;`` (``hidden=64;128,128``, ``data_kwargs={"n_units": 50, "n_classes": 5};{"n_units": 80}``).
    Each value is parsed by the field's own type. A field given twice has its values joined; a value given twice
    (``seed=0,0``, ``delays=true,True``) is kept, with a ``UserWarning`` (the same configuration runs twice: useful
    for timing or nondeterministic runs only).

    Example:
        >>> parse_grid(["seed=0", "mask_p=0,0.3", "seed=1"])
        {'seed': [0, 1], 'mask_p': [0.0, 0.3]}
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     parse_grid(["seed=0,1", "seed=0"])
        {'seed': [0, 1, 0]}
        >>> print(caught[0].message)
        --grid seed: the value 0 is given twice ('0'): the same configuration runs twice (for repeats that differ, vary the seed: --grid seed=0,1,2)
    """
    grid: dict[str, list] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--grid expects FIELD=V1,V2,..., got {item!r}")
        key, _, values = item.partition("=")
        key = key.strip().replace("-", "_")
        if key not in ExperimentConfig.fields():
            raise unknown_keys_error([key], ExperimentConfig.fields(), "--grid: unknown field", "valid fields")
        conv = field_converter(key)
        kind = ExperimentConfig.schema()[key]["type"]
        sep = ";" if kind in ("List", "LayerSizes", "Dict") else ","
        parts = values.split(sep)
        if any(not v.strip() for v in parts):  # (a typo, not a value: None is written None)
            raise ConfigError(f"--grid {key}: an empty value in {values!r}; separate the values by single {sep!r}"
                              + (" (write None for None)" if ExperimentConfig.schema()[key]["allow_None"] else ""))
        try:
            values_of_key = grid.setdefault(key, [])
            for v in parts:
                value = conv(v)
                if value in values_of_key:  # (the same run again: same config, same seed, same result)
                    warnings.warn(f"--grid {key}: the value {value!r} is given twice ({v.strip()!r}): the same "
                                  f"configuration runs twice (for repeats that differ, vary the seed: --grid "
                                  f"seed=0,1,2)", UserWarning, stacklevel=2)
                values_of_key.append(value)
        except (ValueError, argparse.ArgumentTypeError) as exc:
            raise ConfigError(f"--grid {key}: {exc}") from None
    return grid


def read_config_file(path: str) -> dict[str, Any]:
    """The fields of the ``--config`` file ``path``: a JSON object ``{"field": value, ...}`` (``--save-config`` or a run
    folder's config.json), or a run record (``snnlab runs show RUN > FILE``: it has ``"run_id"`` and ``"config"`` keys,
    names no configuration field has), whose ``"config"`` is used, with a one-line note on stderr.

    Example:
        >>> import json, os, tempfile
        >>> with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        ...     json.dump({"run_id": "be89aa", "name": "a", "status": "finished", "config": {"epochs": 3}}, fh)
        >>> read_config_file(fh.name)
        {'epochs': 3}
        >>> os.remove(fh.name)
    """
    try:
        with open(path) as fh:
            saved = json.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"--config: no such file {path!r}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--config: {path!r} is not valid JSON ({exc})") from None
    if isinstance(saved, dict) and {"run_id", "config"} <= saved.keys() and isinstance(saved["config"], dict):
        print(f'--config: {path!r} is a run record (snnlab runs show); using its "config" (run {saved["run_id"]})',
              file=sys.stderr)
        saved = saved["config"]
    if not isinstance(saved, dict):
        raise ConfigError(f"--config: {path!r} holds a JSON {type(saved).__name__}, not an object "
                          '{"field": value, ...} (--save-config writes one)')
    return saved


def config_from_args(args: argparse.Namespace, base: dict[str, Any] | None = None) -> ExperimentConfig:
    """Build and validate the config: ``base`` (e.g. a checkpoint's) or the ``--preset`` (not both), updated by the
    ``--config`` file (if any), then by the flags given (``data_kwargs`` merge key by key: see
    :func:`snnlab.training.config.with_changes`)."""
    fields = dict(base or {})
    if getattr(args, "preset", None):
        from snnlab.training.presets import preset_fields

        if fields:
            raise ConfigError("--preset starts a new configuration; a resumed run keeps its checkpoint's "
                              "(give the fields to change as flags)")
        fields = preset_fields(args.preset)
    if getattr(args, "config", None):
        fields = with_changes(fields, read_config_file(args.config))
    flags = {name: getattr(args, name) for name in ExperimentConfig.fields() if hasattr(args, name)}
    return ExperimentConfig.from_dict(with_changes(fields, flags))
