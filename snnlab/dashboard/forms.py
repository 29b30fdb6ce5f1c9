"""The experiment form: widgets generated from :class:`~snnlab.training.ExperimentConfig`'s schema.

Every field keeps the type, allowed values and documentation (shown as the widget's tooltip: its ``description``,
or a :class:`panel.widgets.TooltipIcon` beside a checkbox, which has no description in Panel 1.9) of the
configuration class; text fields are read by the parsers of :mod:`snnlab.training.field_text` (the ipywidgets
form's and the command line's too: numbers by ``parse_number_text``, the ``hidden`` list by
``parse_int_list_text``, which takes ``128,64``, ``128`` or ``[128, 64]``) -- never evaluated -- and
:meth:`ConfigForm.config` returns a validated ``ExperimentConfig`` or raises
:class:`~snnlab.training.ConfigError` with a readable message.

"more settings (JSON)" holds the fields without a box of their own. A field that has a box is refused there
(set it in its box: two places for one value made the form show one and train with another), and
:meth:`ConfigForm.set_values` (a preset, a stored run's configuration) removes any such key it finds. Unknown
keys (``{"epoch": 3}``) are refused with the configuration's own "did you mean" message, also as
:class:`ConfigForm`'s defaults.

Numbers are typed in text boxes, not number boxes: a browser number box rounds (``2.7`` epochs became 3),
snaps back to the previous value (``abc``) or shows NaN (emptied) before Python sees it, and the run started
with a value nobody typed. Here ``2.7`` for an integer, ``abc`` or an empty required field is refused with
a message naming the field, and nothing starts.

Example:
    >>> form = ConfigForm({"hidden": [16], "epochs": 2})
    >>> form.widgets["epochs"].value = "2.7"
    >>> form.config()
    Traceback (most recent call last):
    ...
    snnlab.training.config.ConfigError: invalid experiment configuration:
      - epochs: cannot read '2.7' (expected an integer in [1, 100000])
    >>> form.widgets["epochs"].value = "3"; form.config().epochs
    3
"""
from __future__ import annotations

import json
from typing import Any

import panel as pn

from snnlab.training.field_text import (INT_LIST_NOTE, is_none_text, list_may_be_empty, number_range_text,
                                       parse_int_list_text, parse_number_text)
from snnlab.training.config import ConfigError, ExperimentConfig, unknown_keys_error
from snnlab.training.presets import PRESETS, preset_fields

__all__ = ["ConfigForm", "FORM_GROUPS", "DASHBOARD_DEFAULTS"]

#: fields shown in the form, by group (every other field can be set in "more settings (JSON)")
FORM_GROUPS: dict[str, list[str]] = {
    "Data": ["dataset", "encoding", "num_steps", "data_root"],
    "Network": ["hidden", "neuron", "max_spikes", "surrogate", "noise_scale", "delays", "max_delay", "mask_p",
                "mask_at_inference", "dropout", "spike_reg", "batch_norm", "recurrent", "adaptation", "tau_adapt",
                "tau_mem_cv", "tau_syn", "readout"],
    "Training": ["epochs", "batch_size", "lr", "lr_schedule", "lr_delays", "max_batches_per_epoch",
                 "eval_max_batches", "seed", "device", "precision"],
}

#: the preset selector's "no preset" entry
NO_PRESET = "(your settings)"

#: the dashboard's starting values (small enough to train in seconds on a laptop CPU)
DASHBOARD_DEFAULTS: dict[str, Any] = {"hidden": [64], "epochs": 5, "num_steps": 20}

_TEXT_HINT = {"List": "e.g. 128,64 or [128, 64]", "Dict": 'JSON object, e.g. {"limit": 500}'}
#: the format of a text field, added to its tooltip (a placeholder shows only while the box is empty)
_FORMAT_NOTE = {"List": INT_LIST_NOTE, "Dict": 'Typed as a JSON object, e.g. {"limit": 500}.'}


def _text_of(kind: str, value: Any) -> str:
    if value is None:
        return ""
    if kind in ("List", "LayerSizes", "Dict"):
        return json.dumps(value)
    return str(value)


class ConfigForm:
    """Widgets for the fields of :data:`FORM_GROUPS` plus a JSON box for the rest.

    ``form.config()`` -> validated :class:`ExperimentConfig` (raises ``ConfigError``);
    ``form.set_values(dict)`` fills the widgets, ``form.apply_preset(name)`` (or the ``form.preset`` selector) a
    preset's configuration; ``form.widgets[field]`` is the widget of a field, ``form.tooltips[field]`` the
    ``TooltipIcon`` beside a checkbox; ``form.panel`` is the layout. ``defaults`` with a key that is not a field
    raise :class:`~snnlab.training.config.UnknownKeyError` (a ``ConfigError``).

    Example:
        >>> ConfigForm({"epoch": 3})
        Traceback (most recent call last):
        ...
        snnlab.training.config.UnknownKeyError: unknown configuration key(s): 'epoch' (did you mean 'epochs'?); ...
    """

    def __init__(self, defaults: dict[str, Any] | None = None) -> None:
        self.schema = ExperimentConfig.schema()
        self.kinds: dict[str, str] = {}
        self.widgets: dict[str, pn.widgets.Widget] = {}
        self.tooltips: dict[str, pn.widgets.TooltipIcon] = {}
        for fields in FORM_GROUPS.values():
            for f in fields:
                self.widgets[f] = self._make_widget(f)
        self.extra = pn.widgets.TextAreaInput(
            label="more settings (JSON)", value="", placeholder='{"tau_mem": 20, "optimizer": "sgd"}', height=70,
            description="Any other ExperimentConfig field (one without a box above) as a JSON object.",
            sizing_mode="stretch_width")
        self.preset = pn.widgets.Select(
            label="start from a preset", options=[NO_PRESET, *PRESETS], value=NO_PRESET, sizing_mode="stretch_width",
            description="Fill the form with a documented setup (snnlab/training/presets.py); data_root and device "
                        "stay as they are.")
        self.preset.param.watch(lambda event: self.apply_preset(event.new), "value")
        base = ExperimentConfig().to_dict()
        base.update(DASHBOARD_DEFAULTS)
        if defaults:
            base.update(defaults)
        self.set_values(base)
        cards = [pn.Card(*[self._row(f) for f in fields], title=group, collapsed=False,
                         sizing_mode="stretch_width") for group, fields in FORM_GROUPS.items()]
        self.panel = pn.Column(self.preset, *cards, self.extra, sizing_mode="stretch_width")

    def apply_preset(self, name: str) -> None:
        """Show preset ``name``'s configuration (every other field at its default); ``data_root``, ``device`` and
        ``precision``, this machine's settings, are kept. :data:`NO_PRESET` changes nothing."""
        if name == NO_PRESET:
            return
        values = {**ExperimentConfig().to_dict(), **preset_fields(name)}
        for machine_setting in ("data_root", "device", "precision"):
            values.pop(machine_setting)
        self.set_values(values)

    # ------------------------------------------------------------------ widgets
    def _make_widget(self, field: str) -> pn.widgets.Widget:
        s = self.schema[field]
        kind = s["type"]
        self.kinds[field] = kind
        common = dict(label=field, description=s["doc"], sizing_mode="stretch_width")
        if "objects" in s:
            return pn.widgets.Select(options=list(s["objects"]), **common)
        if kind == "Boolean":
            # (Panel 1.9's Checkbox has no description: the doc goes to a TooltipIcon beside it, see _row)
            self.tooltips[field] = pn.widgets.TooltipIcon(value=s["doc"], margin=(5, 0))
            return pn.widgets.Checkbox(label=field, sizing_mode="stretch_width")
        if kind in ("Integer", "Number"):
            # text, not IntInput/FloatInput: number boxes round or revert what is typed (see the module docstring)
            placeholder = (number_range_text(kind, s.get("bounds"), s.get("inclusive_bounds", (True, True)))
                           + (", or empty for none" if s["allow_None"] else ""))
            return pn.widgets.TextInput(placeholder=placeholder, **common)
        text_kind = "List" if kind == "LayerSizes" else kind
        if text_kind in _FORMAT_NOTE:
            common["description"] = f"{s['doc']} {_FORMAT_NOTE[text_kind]}"
        placeholder = _TEXT_HINT.get(text_kind, "empty = none")
        return pn.widgets.TextInput(placeholder=placeholder, **common)

    def _row(self, field: str) -> pn.viewable.Viewable:
        """A field's widget as laid out in its card: a checkbox with its tooltip icon beside it."""
        if field in self.tooltips:
            return pn.Row(self.widgets[field], self.tooltips[field], sizing_mode="stretch_width")
        return self.widgets[field]

    def set_values(self, values: dict[str, Any]) -> None:
        """Fill the widgets from a ``{field: value}`` dict; fields without a widget go to the JSON box.

        Fields missing from ``values`` keep what the form shows; a field without a widget that ``values``
        sets to its default leaves the JSON box, and so does any key of a field with a widget that ``values`` sets
        (so a full ``to_dict()`` replaces the form's settings). A key that is not a field raises
        :class:`~snnlab.training.config.UnknownKeyError` and changes nothing.

        Example:
            >>> form = ConfigForm(); form.extra.value = '{"epochs": 3, "tau_mem": 20}'
            >>> form.set_values({"epochs": 6}); form.extra.value, form.config().epochs
            ('{"tau_mem": 20}', 6)
        """
        unknown = [k for k in values if k not in self.schema]
        if unknown:
            raise unknown_keys_error(unknown, list(self.schema))
        for k, v in values.items():
            w = self.widgets.get(k)
            if w is None:
                continue
            if isinstance(w, pn.widgets.TextInput):
                w.value = _text_of(self.kinds[k], v)
            else:
                w.value = v
        try:
            extra = json.loads(self.extra.value or "{}")
        except ValueError:
            extra = {}
        extra = extra if isinstance(extra, dict) else {}
        defaults = {k: s["default"] for k, s in self.schema.items()}
        for k, v in values.items():
            if k in self.widgets or v == defaults[k]:  # (a field with a box is set there, not here)
                extra.pop(k, None)
            else:
                extra[k] = v
        self.extra.value = json.dumps(extra) if extra else ""

    # ------------------------------------------------------------------ parsing
    def _parse(self, field: str, widget: pn.widgets.Widget) -> Any:
        kind = self.kinds[field]
        if not isinstance(widget, pn.widgets.TextInput):
            return widget.value
        text = (widget.value or "").strip()
        if kind in ("Integer", "Number"):
            s = self.schema[field]
            return parse_number_text(text, kind, s["allow_None"], s.get("bounds"),
                                     s.get("inclusive_bounds", (True, True)))
        if kind in ("List", "LayerSizes"):  # the ipywidgets form's and the command line's parser
            return parse_int_list_text(text, allow_empty=list_may_be_empty(self.schema[field]))
        if kind == "Dict":
            return {} if is_none_text(text) else json.loads(text)
        if self.schema[field]["allow_None"] and is_none_text(text):
            return None
        return text

    def values(self) -> dict[str, Any]:
        """The raw ``{field: value}`` of the form (parsed, not yet validated); raises ``ConfigError``."""
        out: dict[str, Any] = {}
        problems = []
        for field, w in self.widgets.items():
            try:
                out[field] = self._parse(field, w)
            except (ValueError, TypeError) as e:  # json.JSONDecodeError is a ValueError
                problems.append(f"{field}: cannot read {w.value!r} ({e})")
        text = (self.extra.value or "").strip()
        if text:
            try:
                extra = json.loads(text)
            except ValueError as e:
                problems.append(f"more settings: not valid JSON ({e})")
            else:
                if isinstance(extra, dict):
                    boxed = [k for k in extra if k in self.widgets]
                    if boxed:
                        problems.append(f"more settings: {', '.join(map(repr, boxed))} "
                                        f"{'has its' if len(boxed) == 1 else 'have their'} own box above: "
                                        "set it there, not here")
                    out.update({k: v for k, v in extra.items() if k not in self.widgets})
                else:
                    problems.append("more settings: expected a JSON object like {\"tau_mem\": 20}")
        if problems:
            raise ConfigError("invalid experiment configuration:\n  - " + "\n  - ".join(problems))
        return out

    def config(self) -> ExperimentConfig:
        """A validated :class:`ExperimentConfig` from the form (raises ``ConfigError`` with every problem)."""
        cfg = ExperimentConfig.from_dict(self.values(), validate=False)
        return cfg.validate()
