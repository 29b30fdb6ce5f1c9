"""An ipywidgets form generated from :meth:`ExperimentConfig.schema` (no hand-written field list).

Widget per field type (``schema()[field]["type"]``):

=====================  ==================================================================
``Selector``           ``Dropdown`` of the allowed values
``Integer``            ``BoundedIntText`` with the field's bounds (``Text`` if None is allowed)
``Number``             ``BoundedFloatText`` with the field's bounds (``Text`` if None is allowed)
``Boolean``            ``Checkbox``
``LayerSizes``/List    ``Text`` of comma-separated ints, e.g. ``"128,64"``
``Dict``               ``Textarea`` holding JSON
``String`` and others  ``Text`` (blank = None where None is allowed; other types as JSON)
=====================  ==================================================================

Fields that allow ``None`` use a ``Text`` whose blank value means None. Each widget's tooltip is
the field's doc string. :meth:`ConfigForm.config` parses and validates everything and returns an
``ExperimentConfig``, or ``None`` with the error message shown in the form (and kept in ``.error``);
``config(raise_errors=True)`` raises :class:`~snnlab.training.config.ConfigError` instead.

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

from snnlab.training.config import ConfigError, ExperimentConfig

__all__ = ["ConfigForm", "config_form"]

# ipywidgets' numbers travel as JS doubles: keep bounds within the exactly representable ints
_JS_INT = 2**53 - 1
_STYLE = {"description_width": "150px"}
_LAYOUT = {"width": "340px"}


def _fmt_list(v: Any) -> str:
    return "" if v is None else ",".join(str(x) for x in v)


class ConfigForm(W.VBox):
    """Widgets for every field of ``cfg_class`` (see the module docstring).

    Attributes:
        widgets: ``{field: widget}`` in declaration order.
        message: the ``HTML`` widget showing the last validation error (empty when valid).
        error: the last error message, or ``None``.
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
                         layout=W.Layout(grid_template_columns=f"repeat({max(1, int(columns))}, 360px)"))
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
        # integers allowed past 2**53 (a seed) would be rounded by a number box: they get a text box
        exact_in_js = (lo is None or lo >= -_JS_INT) and (hi is None or hi <= _JS_INT)
        if kind in ("Integer", "Number") and not allow_none and (kind == "Number" or exact_in_js):
            if kind == "Integer":
                return W.BoundedIntText(value=default, min=max(-_JS_INT, lo if lo is not None else -_JS_INT),
                                        max=min(_JS_INT, hi if hi is not None else _JS_INT), **common)
            return W.BoundedFloatText(value=default, min=lo if lo is not None else -1e300,
                                      max=hi if hi is not None else 1e300, **common)
        if kind == "Dict":
            return W.Textarea(value=json.dumps(default or {}), placeholder="JSON, e.g. {\"n_units\": 50}",
                              **common)
        if kind in ("List", "LayerSizes") or isinstance(default, list):
            return W.Text(value=_fmt_list(default), placeholder="comma-separated ints, e.g. 128,64", **common)
        placeholder = "blank = None" if allow_none else ""
        if kind in ("Integer", "Number"):
            rng = f"[{'' if lo is None else lo}, {'' if hi is None else hi}]"
            placeholder = f"blank = None; {rng}" if allow_none else f"an integer in {rng}"
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
        if isinstance(w, (W.Dropdown, W.Checkbox, W.BoundedIntText, W.BoundedFloatText)):
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
            parts = [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]
            try:
                return [int(p) for p in parts]
            except ValueError:
                raise ConfigError(f"{name}: expected comma-separated integers like 128,64, got {text!r}") from None
        if not text and allow_none:
            return None
        if kind == "Integer":
            try:
                return int(text)
            except ValueError:
                raise ConfigError(f"{name}: expected an integer{' or blank' if allow_none else ''}, "
                                  f"got {text!r}") from None
        if kind == "Number":
            try:
                return float(text)
            except ValueError:
                raise ConfigError(f"{name}: expected a number{' or blank' if allow_none else ''}, got {text!r}") from None
        if kind == "String":
            return text
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text

    def values(self) -> dict[str, Any]:
        """The parsed (not yet validated) ``{field: value}``; raises ``ConfigError`` on unparsable text."""
        return {k: self._parse(k) for k in self.widgets}

    def config(self, raise_errors: bool = False) -> Any:
        """A validated config built from the widgets, or ``None`` with the error shown in the form.

        ``raise_errors=True``: raise :class:`ConfigError` (the same message) instead of returning None.
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
        """Fill the widgets from a config (an ``ExperimentConfig`` or a dict; missing keys keep defaults)."""
        d = cfg.to_dict() if hasattr(cfg, "to_dict") else self.cfg_class.from_dict(dict(cfg), validate=False).to_dict()
        self._setting = True
        try:
            for k, v in d.items():
                w = self.widgets.get(k)
                if w is None:
                    continue
                spec = self.schema[k]
                if isinstance(w, (W.Dropdown, W.Checkbox, W.BoundedIntText, W.BoundedFloatText)):
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

    @property
    def disabled(self) -> bool:
        """Whether the inputs are locked (e.g. while a run trains)."""
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
    """A :class:`ConfigForm` for ``cfg_class`` (default :class:`ExperimentConfig`), optionally filled from ``cfg``."""
    return ConfigForm(cfg_class, cfg=cfg, **kwargs)
