"""The dashboard form's number fields: what is typed is parsed strictly (never rounded or replaced), refused with
a message naming the field, and parsed exactly as the ipywidgets form parses it."""
import pytest

pn = pytest.importorskip("panel")

from snnlab.dashboard import build_app  # noqa: E402
from snnlab.dashboard.forms import FORM_GROUPS, ConfigForm  # noqa: E402
from snnlab.training import ExperimentConfig  # noqa: E402
from snnlab.training.config import ConfigError  # noqa: E402

TINY = dict(dataset="digits", hidden=[16], num_steps=8, batch_size=32, max_batches_per_epoch=3, eval_max_batches=1,
            epochs=2)
SCHEMA = ExperimentConfig.schema()
NUMBER_FIELDS = [f for fields in FORM_GROUPS.values() for f in fields
                 if SCHEMA[f]["type"] in ("Integer", "Number") and "objects" not in SCHEMA[f]]

#: (field, typed text, what the message says): each was silently changed by the old number boxes
REFUSED = [
    ("epochs", "2.7", "epochs: cannot read '2.7' (expected an integer in [1, 100000])"),
    ("epochs", "abc", "epochs: cannot read 'abc' (expected an integer in [1, 100000])"),
    ("epochs", "", "epochs: cannot read '' (expected an integer in [1, 100000])"),
    ("num_steps", "1e3", "num_steps: cannot read '1e3' (expected an integer"),
    ("lr", "abc", "lr: cannot read 'abc' (expected a number in (0, 100.0])"),
    ("lr", "nan", "lr: cannot read 'nan'"),
    ("noise_scale", "", "noise_scale: cannot read '' (expected a number > 0)"),
    ("max_spikes", "2.5", "max_spikes: cannot read '2.5' (expected an integer >= 1 or blank)"),
]


def make_app(tmp_path):
    view = build_app(store_path=tmp_path / "runs.sqlite", defaults=dict(TINY), sweep_executor="threads")
    return view.dashboard


def test_number_fields_are_text_boxes_showing_the_values():
    form = ConfigForm(dict(TINY, lr=0.01))
    assert NUMBER_FIELDS and {"epochs", "lr", "num_steps", "max_spikes"} <= set(NUMBER_FIELDS)
    for f in NUMBER_FIELDS:  # not IntInput/FloatInput, which round or revert what is typed
        assert type(form.widgets[f]) is pn.widgets.TextInput, f
    assert form.widgets["epochs"].value == "2" and form.widgets["lr"].value == "0.01"
    assert form.widgets["max_spikes"].value == ""  # None
    assert form.widgets["epochs"].placeholder == "an integer in [1, 100000]"
    form.set_values(ExperimentConfig(epochs=7, lr=0.5, max_spikes=3).to_dict())  # a stored run's config
    assert (form.widgets["epochs"].value, form.widgets["lr"].value, form.widgets["max_spikes"].value) == \
        ("7", "0.5", "3")
    assert form.config().to_dict() == ExperimentConfig(epochs=7, lr=0.5, max_spikes=3).to_dict()


@pytest.mark.parametrize("field,text,message", REFUSED)
def test_bad_number_text_is_refused_with_the_field_named(field, text, message):
    form = ConfigForm(dict(TINY))
    form.widgets[field].value = text
    with pytest.raises(ConfigError) as info:
        form.config()
    assert message in str(info.value)
    assert form.widgets[field].value == text  # what was typed stays shown


@pytest.mark.parametrize("field,text,message", [REFUSED[0], REFUSED[4], REFUSED[6]])
def test_bad_number_text_starts_nothing(tmp_path, field, text, message):
    app = make_app(tmp_path)
    app.form.widgets[field].value = text
    app.live.start_button.clicks += 1
    assert app.live.session is None
    assert app.live.alert.visible and message in app.live.alert.object
    assert app.store.list_runs().empty
    app.close()


def test_good_number_text_is_read_as_typed():
    form = ConfigForm(dict(TINY))
    for field, text in [("epochs", " 3 "), ("lr", "1e-3"), ("max_spikes", "none"), ("tau_adapt", "50"),
                        ("seed", "12345678901234567")]:
        form.widgets[field].value = text
    cfg = form.config()
    assert (cfg.epochs, cfg.lr, cfg.max_spikes, cfg.tau_adapt, cfg.seed) == (3, 0.001, None, 50.0, 12345678901234567)
    form.widgets["max_spikes"].value = ""
    assert form.config().max_spikes is None
    form.widgets["epochs"].value = "0"  # parsed, then refused by the config's bounds (its own message)
    with pytest.raises(ConfigError, match="epochs"):
        form.config()


def test_both_forms_share_one_parser_and_agree():
    import importlib

    forms = importlib.import_module("snnlab.dashboard.forms")
    config_form = importlib.import_module("snnlab.widgets.config_form")  # (snnlab.widgets.config_form: a function)

    assert forms.parse_number_text is config_form.parse_number_text
    texts = ["3", " 3 ", "2.7", "1e3", "abc", "", "none", "-1", "0.5", "nan", "inf", "1_000"]
    for field in ("epochs", "lr", "max_spikes", "noise_scale"):
        # one pair of forms a field: only that field's text changes, the others keep their valid values
        panel_form, ipy_form = ConfigForm(dict(TINY)), config_form.ConfigForm(cfg=TINY)
        for text in texts:
            panel_form.widgets[field].value = text
            ipy_form.widgets[field].value = text
            try:
                panel_value = panel_form.values()[field]
            except ConfigError:
                panel_value = "refused"
            try:
                ipy_value = ipy_form.values()[field]
            except ConfigError:
                ipy_value = "refused"
            assert panel_value == ipy_value, (field, text, panel_value, ipy_value)
        ipy_form.close()


def test_a_run_starts_with_the_typed_number(tmp_path):
    app = make_app(tmp_path)
    app.form.widgets["epochs"].value = "1"
    app.form.widgets["lr"].value = "0.004"
    app.live.start_button.clicks += 1
    s = app.live.session
    assert s is not None and not app.live.alert.visible
    assert s.cfg.epochs == 1 and s.cfg.lr == 0.004
    app.close()
