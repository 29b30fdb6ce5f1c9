"""An ipywidgets form generated from :meth:`ExperimentConfig.schema` (no hand-written field list).

Widget per field type (``schema()[field]["type"]``):

=====================  ==================================================================
``Selector``           ``Dropdown`` of the allowed values
``Integer``/``Number`` ``NumberText``: a ``Text`` holding the number (its placeholder gives the range)
``Boolean``            ``Checkbox``
``LayerSizes``/List    ``Text`` of comma-separated ints, e.g. ``"128,64"`` (``"[128, 64]"`` too)
``Dict``               ``Textarea`` holding JSON
``String`` and others  ``Text`` (blank = None where None is allowed; other types as JSON)
=====================  ==================================================================

Numbers are typed as text on purpose: number boxes clamp or truncate in the browser (``0`` epochs
became 1, ``2.5`` became 2) before Python sees the value. Here what is typed is parsed and validated as
it is, and a value out of range or not an integer is reported like any other invalid field (the text is
read by :func:`snnlab.training.field_text.parse_number_text`, the parser of the dashboard's form too; a list of
ints by :func:`~snnlab.training.field_text.parse_int_list_text`, the parser of the dashboard and the command line).
Fields that allow ``None`` take a blank value, ``none`` or ``null`` as None (the command line's rule). Each widget's
tooltip is the field's doc string.
:meth:`ConfigForm.config` parses and validates everything and returns an ``ExperimentConfig``, or
``None`` with the error message shown in the form (and kept in ``.error``); ``config(raise_errors=True)``
raises :class:`~snnlab.training.config.ConfigError` instead.

Example:
    >>> from snnlab.training import ExperimentConfig
    >>> form = config_form()
    >>> form.set_config(ExperimentConfig(hidden=[32, 16], epochs=3))
    >>> form.widgets["hidden"].value, form.config().epochs
    ('32,16', 3)
"""
from __future__ import annotations

import html
import json
from typing import Any

import ipywidgets as W
from traitlets import Unicode

from snnlab.training.field_text import (INT_LIST_NOTE, is_none_text, list_may_be_empty, number_range_text,
                                       parse_int_list_text, parse_number_text)
from snnlab.training.config import ConfigError, ExperimentConfig

from ._lifecycle import close_descendants

__all__ = ["ConfigForm", "NumberText", "config_form"]

# labels up to 22 characters ("max_batches_per_epoch") fit without being cut
_STYLE = {"description_width": "170px"}
_LAYOUT = {"width": "360px"}
_COLUMN = "370px"


def _fmt_list(v: Any) -> str:
    return "" if v is None else ",".join(str(x) for x in v)


class _NumberOrText(Unicode):
    """A ``Unicode`` trait that also takes an int or float (stored as its text, e.g. ``50`` -> ``"50"``)."""

    def validate(self, obj: Any, value: Any) -> Any:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = json.dumps(value)
        return super().validate(obj, value)


class NumberText(W.Text):
    """A ``Text`` for a number field: ``.value`` is the text as typed (parsed and checked by the form).

    Assigning a number stores its text, so ``w.value = 50`` works as on a number box.

    Example:
        >>> w = NumberText(value=3); w.value
        '3'
    """

    value = _NumberOrText(help="String value").tag(sync=True)


class ConfigForm(W.VBox):
    """Widgets for every field of ``cfg_class`` (see the module docstring).

    Attributes:
        widgets: ``{field: widget}`` in declaration order.
        message: the ``HTML`` widget showing the last validation error (empty when valid).
        error: the last error message, or ``None``.

    Example:
        >>> form = ConfigForm(cfg={"hidden": [16], "epochs": 2})
        >>> form.widgets["epochs"].value = "0"           # out of range: reported, not raised
        >>> form.config() is None, "epochs" in form.error
        (True, True)
        >>> form.widgets["epochs"].value = "4"; form.config().epochs, form.error
        (4, None)
    """

    def __init__(self, cfg_class: type = ExperimentConfig, cfg: Any = None, columns: int = 2,
                 live_validation: bool = True, **kwargs: Any) -> None:
        self.cfg_class = cfg_class
        self.schema = cfg_class.schema()
        self.widgets: dict[str, W.Widget] = {k: self._make_widget(k, spec) for k, spec in self.schema.items()}
        self.message = W.HTML(value="")
        self.error: str | None = None
        self._setting = False
        grid = W.GridBox(list(self.widgets.values()),
                         layout=W.Layout(grid_template_columns=f"repeat({max(1, int(columns))}, {_COLUMN})"))
        super().__init__(children=[grid, self.message], **kwargs)
        if cfg is not None:
            self.set_config(cfg)
        if live_validation:
            for w in self.widgets.values():
                w.observe(self._on_change, names="value")

    # ------------------------------------------------------------------ building
    def _make_widget(self, name: str, spec: dict) -> W.Widget:
        kind, default, allow_none = spec["type"], spec["default"], spec.get("allow_None", False)
        common = dict(description=name, tooltip=spec.get("doc") or name, style=_STYLE, layout=W.Layout(**_LAYOUT))
        lo, hi = (spec.get("bounds") or (None, None))
        if "objects" in spec:
            return W.Dropdown(options=list(spec["objects"]), value=default, **common)
        if kind == "Boolean":
            return W.Checkbox(value=bool(default), indent=True, **common)
        if kind in ("Integer", "Number"):
            # a text box, not a number box: those clamp/truncate in the browser (and round ints past 2**53)
            placeholder = (number_range_text(kind, (lo, hi), spec.get("inclusive_bounds", (True, True)))
                           + (", or blank for none" if allow_none else ""))
            return NumberText(value=self._fmt_scalar(default), placeholder=placeholder, **common)
        if kind == "Dict":
            return W.Textarea(value=json.dumps(default or {}), placeholder="JSON, e.g. {\"n_units\": 50}",
                              **common)
        if kind in ("List", "LayerSizes") or isinstance(default, list):
            common["tooltip"] = f"{common['tooltip']} {INT_LIST_NOTE}"
            return W.Text(value=_fmt_list(default), placeholder="comma-separated ints, e.g. 128,64", **common)
        placeholder = "blank for none" if allow_none else ""
        return W.Text(value=self._fmt_scalar(default), placeholder=placeholder, **common)

    @staticmethod
    def _fmt_scalar(v: Any) -> str:
        if v is None:
            return ""
        return v if isinstance(v, str) else json.dumps(v)

    # ------------------------------------------------------------------ reading / writing
    def _parse(self, name: str) -> Any:
        spec, w = self.schema[name], self.widgets[name]
        kind, allow_none = spec["type"], spec.get("allow_None", False)
        v = w.value
        if isinstance(w, (W.Dropdown, W.Checkbox)):
            return v
        text = v.strip()
        if kind == "Dict":
            if not text:
                return {}
            try:
                out = json.loads(text)
            except json.JSONDecodeError as e:
                raise ConfigError(f"{name}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
            if not isinstance(out, dict):
                raise ConfigError(f"{name}: must be a JSON object like {{\"key\": 1}}, got {text!r}")
            return out
        if kind in ("List", "LayerSizes") or isinstance(spec["default"], list):
            # the dashboard's and the command line's parser: "32,,16" is refused, not read as [32, 16]
            try:
                return parse_int_list_text(text, allow_empty=list_may_be_empty(spec))
            except ValueError as e:
                raise ConfigError(f"{name}: {e}") from None
        if kind in ("Integer", "Number"):
            # the parser the dashboard's form uses too: "2.7" for an integer is refused, never rounded
            try:
                return parse_number_text(text, kind, allow_none, spec.get("bounds"),
                                         spec.get("inclusive_bounds", (True, True)))
            except ValueError as e:
                raise ConfigError(f"{name}: {e}, got {text!r}") from None
        if allow_none and is_none_text(text):  # (data_root typed "None" is no folder, as on the command line)
            return None
        if kind == "String":
            return text
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text

    def values(self) -> dict[str, Any]:
        """The parsed (not yet validated) ``{field: value}``; raises ``ConfigError`` on unparsable text.

        Example:
            >>> form = ConfigForm(cfg={"hidden": [32, 16]})
            >>> form.values()["hidden"], form.values()["epochs"] == ExperimentConfig().epochs
            ([32, 16], True)
            >>> form.widgets["hidden"].value = "32,x"; form.values()
            Traceback (most recent call last):
            ...
            snnlab.training.config.ConfigError: hidden: expected comma-separated integers like 128,64 or a JSON list like [128, 64], got '32,x' (entry 2, 'x', is not an integer)
        """
        return {k: self._parse(k) for k in self.widgets}

    def config(self, raise_errors: bool = False) -> Any:
        """A validated config built from the widgets, or ``None`` with the error shown in the form.

        ``raise_errors=True``: raise :class:`ConfigError` (the same message) instead of returning None.

        Example:
            >>> form = ConfigForm(cfg={"hidden": [16], "epochs": 2})
            >>> form.config().epochs
            2
            >>> form.widgets["epochs"].value = "2.5"; form.config() is None, form.error
            (True, "epochs: expected an integer in [1, 100000], got '2.5'")
            >>> form.config(raise_errors=True)
            Traceback (most recent call last):
            ...
            snnlab.training.config.ConfigError: epochs: expected an integer in [1, 100000], got '2.5'
        """
        try:
            cfg = self.cfg_class.from_dict(self.values())
        except (ConfigError, ValueError, TypeError) as e:
            self._set_error(str(e))
            if raise_errors:
                if isinstance(e, ConfigError):
                    raise
                raise ConfigError(str(e)) from e
            return None
        self._set_error(None)
        return cfg

    def set_config(self, cfg: Any) -> None:
        """Fill the widgets from a config (an ``ExperimentConfig`` or a dict; missing keys keep defaults).

        Example:
            >>> form = ConfigForm()
            >>> form.set_config({"hidden": [64, 32], "lr": 0.01, "delays": True})
            >>> form.widgets["hidden"].value, form.widgets["lr"].value, form.widgets["delays"].value
            ('64,32', '0.01', True)

            A custom surrogate (registered first) is added to the surrogate dropdown's choices:

            >>> import snnlab as sl, torch
            >>> sl.surrogates.register("box_doc", lambda u, a: (u.abs() < 0.5 / a).to(u.dtype) * a, 1.0)
            >>> form.set_config({"surrogate": "box_doc"})
            >>> form.widgets["surrogate"].value, form.config().surrogate
            ('box_doc', 'box_doc')
            >>> sl.surrogates.unregister("box_doc")
        """
        d = cfg.to_dict() if hasattr(cfg, "to_dict") else self.cfg_class.from_dict(dict(cfg), validate=False).to_dict()
        self._setting = True
        try:
            for k, v in d.items():
                w = self.widgets.get(k)
                if w is None:
                    continue
                spec = self.schema[k]
                if isinstance(w, W.Dropdown):
                    self._choose(k, w, v)
                elif isinstance(w, W.Checkbox):
                    w.value = v
                elif spec["type"] == "Dict":
                    w.value = json.dumps(v or {})
                elif spec["type"] in ("List", "LayerSizes") or isinstance(spec["default"], list):
                    w.value = _fmt_list(v)
                else:
                    w.value = self._fmt_scalar(v)
        finally:
            self._setting = False
        self.config()

    def _choose(self, name: str, w: W.Dropdown, value: Any) -> None:
        """Select ``value`` in ``name``'s dropdown; a value outside the field's listed choices that the configuration
        takes (a surrogate registered with :func:`snnlab.surrogates.register`, say) is added to this form's options
        (after the listed ones; the form validates it as any value)."""
        listed = list(self.schema[name]["objects"])
        options = listed if value in listed else [*listed, value]
        if list(w.options) != options:
            w.options = options  # (a value added for an earlier config is dropped)
        w.value = value

    def close(self) -> None:
        """Close the form and every widget in it (their layouts and styles too).

        Example:
            >>> from snnlab.widgets._lifecycle import registered_widgets
            >>> before = registered_widgets()
            >>> form = ConfigForm(); form.close()
            >>> registered_widgets() == before
            True
        """
        close_descendants(self)
        super().close()

    @property
    def disabled(self) -> bool:
        """Whether the inputs are locked (e.g. while a run trains).

        Example:
            >>> form = ConfigForm(); form.disabled
            False
            >>> form.disabled = True; form.disabled, form.widgets["epochs"].disabled
            (True, True)
        """
        return all(w.disabled for w in self.widgets.values())

    @disabled.setter
    def disabled(self, value: bool) -> None:
        for w in self.widgets.values():
            w.disabled = bool(value)

    # ------------------------------------------------------------------ internals
    def _set_error(self, message: str | None) -> None:
        self.error = message
        if message is None:
            self.message.value = ""
        else:
            text = html.escape(message).replace("\n", "<br>")
            self.message.value = f"<span style='color:#b00020'><b>Invalid settings:</b> {text}</span>"

    def _on_change(self, change: dict) -> None:
        if not self._setting:
            self.config()


def config_form(cfg_class: type = ExperimentConfig, cfg: Any = None, **kwargs: Any) -> ConfigForm:
    """A :class:`ConfigForm` for ``cfg_class`` (default :class:`ExperimentConfig`), optionally filled from ``cfg``.

    Example:
        >>> form = config_form(cfg={"hidden": [32, 16]}, columns=1)
        >>> form.widgets["hidden"].value, form.config().hidden
        ('32,16', [32, 16])
    """
    return ConfigForm(cfg_class, cfg=cfg, **kwargs)
