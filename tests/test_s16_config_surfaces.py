"""One field, one meaning on every surface (the command line, the ipywidgets form, the Panel dashboard's form):
the hidden-layer list read by one parser, ``none`` for data_root, the dashboard's JSON box no longer overriding a
field's own box, misspelt dashboard defaults refused with "did you mean", and the dashboard checkboxes' help."""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging

import pytest

pn = pytest.importorskip("panel")
pytest.importorskip("ipywidgets")

from snnlab.config_args import add_config_arguments, config_from_args  # noqa: E402
from snnlab.dashboard import serve as serve_module  # noqa: E402
from snnlab.dashboard.forms import FORM_GROUPS, ConfigForm  # noqa: E402
from snnlab.dashboard.serve import DEFAULTS_ENV, check_serve_settings, env_defaults  # noqa: E402
from snnlab.training import ExperimentConfig, preset_fields  # noqa: E402
from snnlab.training.config import ConfigError, UnknownKeyError  # noqa: E402
from snnlab.training.field_text import INT_LIST_FORMAT, is_none_text, parse_int_list_text  # noqa: E402
from snnlab.widgets.config_form import ConfigForm as IpyForm  # noqa: E402

SCHEMA = ExperimentConfig.schema()
REFUSED = "refused"


# ------------------------------------------------------------------ the three surfaces, one field typed as text
@pytest.fixture(scope="module")
def surfaces():
    parser = argparse.ArgumentParser(prog="snnlab train")
    add_config_arguments(parser)
    ipy, dash = IpyForm(), ConfigForm()

    def cli(field, text):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            try:
                args = parser.parse_args([f"--{field.replace('_', '-')}={text}"])
            except SystemExit:
                return REFUSED, err.getvalue()
        return getattr(config_from_args(args), field), ""

    def ipywidget(field, text):
        ipy.set_config(ExperimentConfig())
        ipy.widgets[field].value = text
        try:
            return ipy.values()[field], ""
        except ConfigError as exc:
            return REFUSED, str(exc)

    def dashboard(field, text):
        dash.set_values(ExperimentConfig().to_dict())
        dash.widgets[field].value = text
        try:
            return dash.values()[field], ""
        except ConfigError as exc:
            return REFUSED, str(exc)

    yield {"cli": cli, "ipywidgets": ipywidget, "dashboard": dashboard}
    ipy.close()


#: (typed text, the list every surface reads, or REFUSED)
HIDDEN_TEXTS = [
    ("128,64", [128, 64]), ("128", [128]), ("[128, 64]", [128, 64]), ("[256,256]", [256, 256]),
    (" 32 , 16 ", [32, 16]), ("[ 8 ]", [8]),
    ("32,,16", REFUSED), ("32,", REFUSED), (",32", REFUSED), ("[128,]", REFUSED), ("1.5", REFUSED),
    ("abc", REFUSED), ("nan", REFUSED), ("NaN", REFUSED), ("inf", REFUSED), ("", REFUSED), ("[]", REFUSED),
    ("[128, 64", REFUSED), ("128]", REFUSED), ("[[1]]", REFUSED), ("12 8", REFUSED), ("32;16", REFUSED),
    ("none", REFUSED), ('{"a": 1}', REFUSED),
]


@pytest.mark.parametrize("text, expected", HIDDEN_TEXTS)
def test_the_hidden_list_reads_the_same_on_every_surface(surfaces, text, expected):
    """Probe: the CLI and the ipywidgets form refused [128, 64], the dashboard 128,64 and 128, and the ipywidgets
    form read 32,,16 as [32, 16]."""
    results = {name: read("hidden", text) for name, read in surfaces.items()}
    assert {name: value for name, (value, _) in results.items()} == dict.fromkeys(surfaces, expected), results
    if expected is REFUSED:  # one message, whichever surface it was typed in
        for name, (_, message) in results.items():
            assert f"expected {INT_LIST_FORMAT}, got {text!r}" in message, (name, message)


def test_an_empty_hidden_list_is_not_a_valid_configuration():
    """Why parse_int_list_text refuses blank text and [] for hidden: the configuration does too."""
    with pytest.raises(ConfigError, match="length must be between 1"):
        ExperimentConfig.from_dict({"hidden": []})
    assert parse_int_list_text("[]", allow_empty=True) == [] == parse_int_list_text(" ", allow_empty=True)


def test_parse_int_list_text_says_which_entry_is_wrong():
    with pytest.raises(ValueError, match=r"got '32,,16' \(entry 2 is empty\)"):
        parse_int_list_text("32,,16")
    with pytest.raises(ValueError, match=r"entry 2, '1\.5', is not an integer"):
        parse_int_list_text("4, 1.5")
    with pytest.raises(TypeError, match="parse_int_list_text: text must be a str"):
        parse_int_list_text([1, 2])


def test_the_cli_help_of_hidden_gives_formats_the_cli_takes(surfaces):
    """Probe: --hidden's help said "e.g. [128] or [256, 256]", which the CLI refused."""
    parser = argparse.ArgumentParser(prog="snnlab train")
    add_config_arguments(parser)
    action = next(a for a in parser._actions if a.dest == "hidden")
    assert INT_LIST_FORMAT in action.help
    for example in ("[128]", "[256, 256]", "128,64", "[128, 64]"):
        assert example in action.help
        assert surfaces["cli"]("hidden", example)[0] == json.loads(example if "[" in example else f"[{example}]")


def test_the_dashboards_hidden_box_shows_its_format_as_a_tooltip():
    """Probe: the format was only a placeholder, which never shows as the box always holds the list."""
    form = ConfigForm()
    assert form.widgets["hidden"].value  # (so a placeholder would not show)
    assert INT_LIST_FORMAT in form.widgets["hidden"].description
    assert SCHEMA["hidden"]["doc"] in form.widgets["hidden"].description
    ipy = IpyForm()
    try:
        assert INT_LIST_FORMAT in ipy.widgets["hidden"].tooltip
    finally:
        ipy.close()


# ------------------------------------------------------------------ data_root typed "none"
@pytest.mark.parametrize("text, expected", [("none", None), ("None", None), ("NULL", None), ("", None),
                                            ("  ", None), ("none/data", "none/data"), ("/my/data", "/my/data")])
def test_data_root_none_means_no_folder_on_every_surface(surfaces, text, expected):
    """Probe: the ipywidgets form kept 'none' and 'None' as folder names; the CLI and the dashboard read None."""
    assert {name: read("data_root", text)[0] for name, read in surfaces.items()} == dict.fromkeys(surfaces, expected)
    assert is_none_text(text) is (expected is None)


# ------------------------------------------------------------------ the dashboard's JSON box
def test_a_preset_replaces_a_field_typed_in_the_json_box():
    """Probe: {"epochs": 3} in "more settings (JSON)", then a preset: the widget showed 6, config() trained 3."""
    form = ConfigForm()
    form.extra.value = '{"epochs": 3, "tau_mem": 20}'
    form.preset.value = "ttfs_mnist5k"
    epochs = preset_fields("ttfs_mnist5k")["epochs"]
    assert form.widgets["epochs"].value == str(epochs) and form.config().epochs == epochs
    assert "epochs" not in json.loads(form.extra.value or "{}")


def test_set_values_of_a_full_config_replaces_every_setting():
    """set_values' docstring: a full to_dict() replaces the form's settings, the JSON box's included."""
    form = ConfigForm()
    form.extra.value = json.dumps({"epochs": 3, "hidden": [5], "optimizer": "sgd"})
    target = ExperimentConfig(epochs=7, hidden=[16])
    form.set_values(target.to_dict())
    assert form.config().to_dict() == target.to_dict() and form.extra.value == ""


def test_a_field_with_a_box_is_refused_in_the_json_box():
    """The rule: the JSON box is for fields without a box; a field with one is refused there, named."""
    form = ConfigForm({"epochs": 4})
    form.extra.value = '{"epochs": 3, "tau_mem": 20}'
    with pytest.raises(ConfigError, match="more settings: 'epochs' has its own box above: set it there"):
        form.config()
    form.extra.value = '{"tau_mem": 20}'
    assert form.config().epochs == 4 and form.config().tau_mem == 20


# ------------------------------------------------------------------ misspelt dashboard defaults
def test_a_misspelt_default_of_the_dashboard_form_is_refused():
    """Probe: ConfigForm({"epoch": 3}) silently started at 5 epochs."""
    with pytest.raises(UnknownKeyError, match=r"'epoch' \(did you mean 'epochs'\?\)"):
        ConfigForm({"epoch": 3})
    form = ConfigForm({"epochs": 3})
    with pytest.raises(UnknownKeyError, match=r"'hiden' \(did you mean 'hidden'\?\)"):
        form.set_values({"hiden": [32], "epochs": 9})
    assert form.widgets["epochs"].value == "3"  # nothing changed


def test_a_misspelt_default_in_the_environment_is_refused_before_serving(monkeypatch, tmp_path):
    """Probe: $SNNLAB_DASHBOARD_DEFAULTS='{"epoch": 3}' and serve_dashboard(defaults={"hiden": [32]}) passed
    check_serve_settings and were dropped by the page without a word."""
    env = {DEFAULTS_ENV: '{"epoch": 3}'}
    with pytest.raises(ValueError, match=r"\$SNNLAB_DASHBOARD_DEFAULTS: unknown configuration key\(s\): 'epoch' "
                                         r"\(did you mean 'epochs'\?\)"):
        env_defaults(env)
    with pytest.raises(UnknownKeyError, match="did you mean 'epochs'"):
        check_serve_settings(5099, "127.0.0.1", None, bind=False, environ=env)
    started = []
    monkeypatch.setattr(serve_module.subprocess, "Popen", lambda cmd, **kw: started.append(cmd) or "proc")
    with pytest.raises(UnknownKeyError, match=r"serve_dashboard: defaults: .*'hiden' \(did you mean 'hidden'\?\)"):
        serve_module.serve_dashboard(port=5099, store_path=tmp_path / "x.db", wait=False, defaults={"hiden": [32]})
    assert started == []
    assert env_defaults({DEFAULTS_ENV: '{"epochs": 3}'}) == {"epochs": 3}


def test_the_page_warns_about_a_misspelt_default_in_the_environment(tmp_path, monkeypatch, caplog):
    from snnlab.dashboard.app import DashboardApp

    monkeypatch.setenv(DEFAULTS_ENV, '{"epoch": 7}')
    with caplog.at_level(logging.WARNING, logger="snnlab.dashboard.app"):
        app = DashboardApp(store_path=tmp_path / "runs.sqlite", defaults={"hidden": [16]})
    try:
        assert app.warning is not None and "did you mean 'epochs'" in app.warning and app.warning_pane.visible
        assert any("did you mean 'epochs'" in r.getMessage() for r in caplog.records)
        assert app.form.config().epochs == 5 and app.form.config().hidden == [16]  # the form's own defaults
    finally:
        app.close()


def test_an_on_off_default_that_is_not_true_or_false_leaves_the_page_loading(tmp_path, monkeypatch):
    """Probe: $SNNLAB_DASHBOARD_DEFAULTS='{"delays": 1}' passed check_serve_settings (snnlab dashboard started), and
    every page then failed to build (Panel: "Boolean parameter 'Checkbox.value' must be True or False, not 1")."""
    from snnlab.dashboard.app import DashboardApp

    env = {DEFAULTS_ENV: '{"delays": 1}'}
    with pytest.raises(ValueError, match=r"\$SNNLAB_DASHBOARD_DEFAULTS: 'delays' must be true or false, got 1"):
        check_serve_settings(5099, "127.0.0.1", None, bind=False, environ=env)
    monkeypatch.setenv(DEFAULTS_ENV, '{"delays": "yes", "epochs": 2}')
    app = DashboardApp(store_path=tmp_path / "runs.sqlite")
    try:
        assert "'delays' must be true or false, got 'yes'" in app.warning and app.warning_pane.visible
        assert app.form.config().delays is False and app.form.config().epochs == 5  # the form's own defaults
    finally:
        app.close()
    assert env_defaults({DEFAULTS_ENV: '{"delays": true, "learn_tau": false}'}) == {"delays": True, "learn_tau": False}


# ------------------------------------------------------------------ the dashboard's checkboxes
def _rows(viewable):
    objects = getattr(viewable, "objects", None) or []
    for obj in objects:
        if isinstance(obj, pn.Row):
            yield obj
        yield from _rows(obj)


def test_each_dashboard_checkbox_has_its_doc_as_a_tooltip_beside_it():
    """Probe: delays, batch_norm and recurrent showed no help (Panel 1.9's Checkbox has no description)."""
    form = ConfigForm()
    boxes = [f for fields in FORM_GROUPS.values() for f in fields if SCHEMA[f]["type"] == "Boolean"]
    assert {"delays", "batch_norm", "recurrent"} <= set(boxes)
    rows = list(_rows(form.panel))
    for field in boxes:
        icon = form.tooltips[field]
        assert isinstance(icon, pn.widgets.TooltipIcon) and icon.value == SCHEMA[field]["doc"]
        assert any(form.widgets[field] in row.objects and icon in row.objects for row in rows), field
    for field, widget in form.widgets.items():  # every field shows its documentation one way or the other
        assert getattr(widget, "description", None) or field in form.tooltips, field
    root = form.panel.get_root()  # Panel 1.9 builds the page with them
    try:
        models = {type(m).__name__ for m in root.references()}
        assert "TooltipIcon" in models
    finally:
        form.panel._cleanup(root)
