"""NaN and infinity are refused at every assignment of a numeric config field (not only in the constructor), and an
int ``data_kwargs`` ``pad_to`` shorter than the longest sample of an event dataset is refused by ``build_data`` up
front (with ``time_window`` alone), not mid-epoch when the batch holding that sample is collated."""
import copy
import json
import math
import pickle
from decimal import Decimal
from fractions import Fraction

import numpy as np
import param
import pytest
import torch

from snnlab.data.collate import PadCollate
from snnlab.data.neuromorphic import write_nmnist_bin
from snnlab.training import ConfigError, ExperimentConfig, build_data

NUMBER_FIELDS = [k for k in ExperimentConfig.fields()
                 if isinstance(ExperimentConfig.param[k], param.Number)
                 and not isinstance(ExperimentConfig.param[k], param.Integer)]
NON_FINITE = [float("nan"), float("inf"), float("-inf")]


# ------------------------------------------------------------------------------------------ 1. finite numbers
def _refused(field: str, value: float) -> str:
    return rf"bad value for '{field}': {field} must be a finite number, got {value!r}"


@pytest.mark.parametrize("field", NUMBER_FIELDS)
@pytest.mark.parametrize("value", NON_FINITE)
def test_assigning_nan_or_inf_after_construction_is_refused_and_keeps_the_value(field, value):
    """Before: ``cfg.tau_mem = inf`` was accepted (no upper bound) and NaN was said "not at most 100.0"."""
    cfg = ExperimentConfig()
    before = getattr(cfg, field)
    with pytest.raises(ConfigError, match=_refused(field, value)):
        setattr(cfg, field, value)
    with pytest.raises(ConfigError, match=_refused(field, value)):
        cfg.param.update(**{field: value})
    assert getattr(cfg, field) == before or (before is None and getattr(cfg, field) is None)


@pytest.mark.parametrize("value", [np.float32("inf"), np.float64("nan")])
def test_numpy_non_finite_values_are_refused_too_and_said_as_plain_numbers(value):
    cfg = ExperimentConfig()
    with pytest.raises(ConfigError, match=_refused("threshold", float(value))):
        cfg.threshold = value
    assert cfg.threshold == 1.0


def test_the_constructor_and_from_dict_keep_their_message():
    for build in (lambda: ExperimentConfig(tau_mem=math.inf), lambda: ExperimentConfig.from_dict({"tau_mem": math.inf}),
                  lambda: ExperimentConfig.from_json('{"tau_mem": Infinity}')):
        with pytest.raises(ConfigError) as e:
            build()
        assert str(e.value) == "bad value for 'tau_mem': tau_mem must be a finite number, got inf"


def test_finite_values_are_still_assigned_and_the_schema_still_says_number():
    cfg = ExperimentConfig()
    cfg.tau_mem, cfg.lr, cfg.threshold, cfg.tau_syn = 20, np.float32(0.5), 1e300, None
    assert (cfg.tau_mem, cfg.lr, cfg.threshold, cfg.tau_syn) == (20, 0.5, 1e300, None)
    cfg.validate()
    schema = ExperimentConfig.schema()
    assert {schema[k]["type"] for k in NUMBER_FIELDS} == {"Number"}  # (flags and forms pick their parser by it)
    assert schema["epochs"]["type"] == "Integer" and schema["hidden"]["type"] == "LayerSizes"


def test_a_non_finite_class_default_is_refused():
    try:
        with pytest.raises(ConfigError, match=_refused("adaptation", math.inf)):
            ExperimentConfig.adaptation = math.inf
        assert ExperimentConfig().adaptation == 0.0
    finally:  # (where it was accepted, put the default back for the other tests)
        ExperimentConfig.param["adaptation"].default = 0.0


@pytest.mark.parametrize("value", [torch.tensor(math.inf), torch.tensor(-math.inf, dtype=torch.float64),
                                   torch.tensor(math.nan), np.array(math.inf), np.array([math.nan])],
                         ids=["tensor-inf", "tensor-f64-minus-inf", "tensor-nan", "array0d-inf", "array1-nan"])
def test_number_likes_param_takes_are_refused_when_not_finite(value):
    """Before: ``param.Number`` takes anything with ``__int__`` and ``__add__`` as a number (a 0-d tensor, e.g. from a
    sweep grid of ``torch.logspace(...)``, a one-element array); its inf or NaN got through every path."""
    cfg = ExperimentConfig()
    with pytest.raises(ConfigError, match=r"bad value for 'tau_mem': tau_mem must be a finite number"):
        cfg.tau_mem = value
    assert cfg.tau_mem == 10.0
    for build in (lambda: ExperimentConfig(tau_mem=value), lambda: ExperimentConfig.from_dict({"tau_mem": value})):
        with pytest.raises(ConfigError, match=r"tau_mem must be a finite number"):
            build()


def test_a_signalling_decimal_nan_is_a_config_error():
    """Before: ``float(Decimal('sNaN'))`` fails, so the check passed it on, and the bound check raised
    ``decimal.InvalidOperation`` (not a ConfigError, so the forms and the CLI showed a traceback)."""
    for value in (Decimal("sNaN"), Decimal("NaN"), Decimal("-Infinity")):
        cfg = ExperimentConfig()
        with pytest.raises(ConfigError, match=r"bad value for 'lr': lr must be a finite number"):
            cfg.lr = value
        with pytest.raises(ConfigError, match=r"lr must be a finite number"):
            ExperimentConfig.from_dict({"lr": value})
        assert cfg.lr == 2e-3


def test_finite_exotic_numbers_are_not_called_non_finite():
    cfg = ExperimentConfig()
    cfg.tau_mem, cfg.lr, cfg.threshold = Fraction(3, 2), Decimal("0.5"), torch.tensor(2.0)
    assert (cfg.tau_mem, cfg.lr, float(cfg.threshold)) == (1.5, 0.5, 2.0)
    cfg.tau_mem = Fraction(10**400, 3)  # (finite, beyond a float: not "not finite")
    assert cfg.tau_mem == Fraction(10**400, 3)


@pytest.mark.parametrize("value,number", [
    (torch.tensor(0.25), 0.25), (torch.tensor(3, dtype=torch.int64), 3), (np.array(0.25), 0.25),
    (np.float32(0.25), 0.25), (Decimal("0.25"), 0.25), (Decimal("3"), 3), (Fraction(1, 4), 0.25)])
def test_number_likes_are_stored_as_python_numbers_and_save_as_json(value, number):
    """Before: ``cfg.lr = torch.tensor(0.25)`` kept the tensor, and ``to_dict()`` (the run store's config.json) could
    not be written as JSON."""
    for cfg in (ExperimentConfig(lr=value), ExperimentConfig()):
        cfg.lr = value
        assert type(cfg.lr) is type(number) and cfg.lr == number
        assert json.loads(json.dumps(cfg.to_dict()))["lr"] == number


def test_tensors_inside_config_values_save_as_json():
    cfg = ExperimentConfig(hidden=[torch.tensor(8), np.int64(4)], epochs=torch.tensor(2),
                           data_kwargs={"pad_to": torch.tensor(10), "scale": np.array([1.0, 2.0])})
    assert (cfg.hidden, cfg.epochs) == ([8, 4], 2) and type(cfg.epochs) is int
    assert json.loads(json.dumps(cfg.to_dict()))["data_kwargs"] == {"pad_to": 10, "scale": [1.0, 2.0]}


def test_a_sweep_grid_over_an_array_or_a_tensor_gives_configs_that_save_as_json():
    """Before: ``expand_grid(base, {"lr": torch.linspace(...)})`` was refused as "needs a non-empty list of values"
    (what ``plain_value``'s docstring promised); each value is now a Python number."""
    from snnlab.experiments.sweeps import expand_grid

    grid = {"lr": torch.linspace(0.25, 0.5, 2), "num_steps": np.arange(5, 7), "hidden": np.array([[8], [16]])}
    configs = expand_grid(ExperimentConfig(), grid)
    assert [(c.lr, c.num_steps, c.hidden) for c in configs[:3]] == [(0.25, 5, [8]), (0.25, 5, [16]), (0.25, 6, [8])]
    assert len(configs) == 8 and all(type(c.lr) is float and type(c.num_steps) is int for c in configs)
    assert ExperimentConfig.from_json(configs[-1].to_json()).to_dict() == configs[-1].to_dict()
    with pytest.raises(ConfigError, match="needs a non-empty list of values"):
        expand_grid(ExperimentConfig(), {"lr": torch.tensor(0.25)})


def test_setting_a_parameter_default_directly_is_refused_too():
    """Before: ``ExperimentConfig.param.adaptation.default = inf`` skipped every check; each new config had it."""
    p = ExperimentConfig.param["adaptation"]
    try:
        for value in (math.inf, np.float32("nan"), torch.tensor(math.inf)):
            with pytest.raises(ConfigError, match=r"bad value for 'adaptation': adaptation must be a finite number"):
                p.default = value
            assert p.default == 0.0 and ExperimentConfig().adaptation == 0.0
        p.default = 0.5
        assert ExperimentConfig().adaptation == 0.5
    finally:
        param.Parameter.__setattr__(p, "default", 0.0)  # (put back without the check, whatever happened)


def test_a_tensor_set_as_a_class_default_is_stored_as_a_python_number():
    """Before: ``ExperimentConfig.param.lr.default = torch.tensor([0.25])`` kept the tensor: every new config had it,
    ``to_dict()`` gave ``[0.25]`` and ``from_json(cfg.to_json())`` refused its own output."""
    p = ExperimentConfig.param["lr"]
    try:
        for value, number in ((torch.tensor([0.25]), 0.25), (np.array(0.5), 0.5), (Decimal("0.125"), 0.125)):
            p.default = value
            cfg = ExperimentConfig()
            assert type(p.default) is float and type(cfg.lr) is float and cfg.lr == number
            assert ExperimentConfig.from_json(cfg.to_json()).lr == number
    finally:
        param.Parameter.__setattr__(p, "default", 2e-3)


@pytest.mark.parametrize("value", [torch.tensor([0.1, 0.2]), torch.tensor([]), np.ones((2, 2))])
def test_an_array_of_several_numbers_is_refused_with_a_config_error(value):
    """Before: a RuntimeError "Boolean value of Tensor with more than one value is ambiguous" (param's bound check);
    ``from_dict`` also said "bad value for 'lr'" twice."""
    message = r"^bad value for 'lr': lr must be a number, got an array of shape \("
    for make in (lambda: ExperimentConfig(lr=value), lambda: ExperimentConfig.from_dict({"lr": value}),
                 lambda: ExperimentConfig().param.update(lr=value)):
        with pytest.raises(ConfigError, match=message):
            make()


def test_validate_reports_a_non_finite_value_whatever_its_type():
    """``validate()`` is the last check: a value that got in past the assignment checks (here a default set with
    ``param.Parameter``'s own ``__setattr__``) is reported as not finite for any type, not only a Python float."""
    p = ExperimentConfig.param["tau_adapt"]
    try:
        for value in (np.float32("inf"), torch.tensor(math.nan)):
            param.Parameter.__setattr__(p, "default", value)
            with pytest.raises(ConfigError, match=r"tau_adapt must be a finite number, got (inf|nan)$"):
                ExperimentConfig().validate()
    finally:
        param.Parameter.__setattr__(p, "default", 100.0)
    assert ExperimentConfig().validate().tau_adapt == 100.0


def test_configs_with_finite_numbers_still_copy_and_pickle():
    cfg = ExperimentConfig(tau_mem=20.0, lr=np.float32(0.5), tau_syn=5.0)
    for other in (copy.deepcopy(cfg), pickle.loads(pickle.dumps(cfg)), cfg.copy()):
        assert other.to_dict() == cfg.to_dict()
        with pytest.raises(ConfigError, match="tau_mem must be a finite number"):
            other.tau_mem = math.inf
    assert pickle.loads(pickle.dumps(ExperimentConfig.param["lr"])).bounds == (0, 100.0)


# ------------------------------------------------------------------------------------------ 2. pad_to up front
# frames of 10 ms: train recordings of 3 and 7 frames, test ones of 2 and 9 (the label is the sample's id)
_SHD_TRAIN = [(0.0, 0.025), (0.001, 0.0655)]
_SHD_TEST = [(0.0, 0.015), (0.02, 0.05, 0.1085)]


@pytest.fixture
def shd_root(tmp_path):
    pytest.importorskip("h5py")
    from shd_files import write_shd_recordings

    return write_shd_recordings(tmp_path, {"train": _SHD_TRAIN, "test": _SHD_TEST}, unit_step=5)


@pytest.fixture
def nmnist_root(tmp_path):
    """N-MNIST ``.bin`` files: train digits of 3 and 12 frames of 10 ms, a test digit of 5."""
    for split, digit, times in (("Train", 1, (0, 25_000)), ("Train", 2, (1_000, 60_000, 111_500)),
                                ("Test", 1, (0, 45_000))):
        d = tmp_path / "NMNIST" / split / str(digit)
        d.mkdir(parents=True)
        n = len(times)
        write_nmnist_bin(d / "00001.bin", np.arange(n) + 3, np.arange(n) + 5, np.array(times), np.arange(n) % 2)
    return tmp_path


def _cfg(dataset, root, **data_kwargs) -> ExperimentConfig:
    return ExperimentConfig.from_dict({"dataset": dataset, "data_root": str(root), "batch_size": 4,
                                       "data_kwargs": {"time_window": 10_000, **data_kwargs}})


@pytest.mark.parametrize("pad_to", [1, 6, 8])
def test_pad_to_below_the_longest_shd_sample_is_refused_by_build_data(shd_root, pad_to):
    """Before: build_data returned loaders, and the epoch failed at the batch holding the 9-frame test sample."""
    cfg = _cfg("shd", shd_root, pad_to=pad_to)
    cfg.validate()  # (the config alone cannot know the recordings' lengths)
    with pytest.raises(ValueError, match=rf"build_data: data_kwargs 'pad_to'={pad_to} is shorter than the longest "
                                         rf"sample of dataset 'shd': 9 frames \(in the test set; with "
                                         rf"time_window=10000 us alone .*pass pad_to='longest' .* or an int "
                                         rf"pad_to >= 9$"):
        build_data(cfg)


def test_pad_to_at_least_the_longest_sample_builds_and_pads_every_batch(shd_root):
    for pad_to in (9, 12):
        train, test, n_in, _ = build_data(_cfg("shd", shd_root, pad_to=pad_to))
        assert n_in == 700
        assert {x.shape[0] for loader in (train, test) for x, _ in loader} == {pad_to}


def test_pad_to_below_the_longest_nmnist_sample_names_the_train_set(nmnist_root):
    with pytest.raises(ValueError, match=r"'pad_to'=11 is shorter than the longest sample of dataset 'nmnist': "
                                         r"12 frames \(in the train set;.* pad_to >= 12$"):
        build_data(_cfg("nmnist", nmnist_root, pad_to=11))
    train, _, n_in, _ = build_data(_cfg("nmnist", nmnist_root, pad_to=12))
    assert n_in == 2 * 34 * 34 and {x.shape[0] for x, _ in train} == {12}


def test_fixed_frames_keep_their_checks(shd_root):
    """With n_time_bins every sample has the same frames: pad_to is checked against them, as before."""
    with pytest.raises(ValueError, match=r"'pad_to'=3 is shorter than the 5 frames every sample has"):
        build_data(ExperimentConfig(dataset="shd", data_root=str(shd_root), num_steps=5, data_kwargs={"pad_to": 3}))
    train = build_data(ExperimentConfig(dataset="shd", data_root=str(shd_root), num_steps=5,
                                        data_kwargs={"pad_to": 8}))[0]
    assert {x.shape[0] for x, _ in train} == {8}


# ------------------------------------------------------------------------------------------ 3. the collate error
def test_the_collate_error_names_pad_to_and_the_sample_length(shd_root):
    train, _, _, _ = build_data(_cfg("shd", shd_root, pad_to=9))
    collate = train.collate_fn.collate
    assert repr(collate) == "PadCollate(n_steps=9, source=\"data_kwargs 'pad_to'\")"
    with pytest.raises(ValueError, match=r"sample 1 of the batch has 11 steps, more than data_kwargs 'pad_to'=9 .*"
                                         r"set data_kwargs 'pad_to' to at least 11"):
        collate([(torch.ones(2, 700), 0), (torch.ones(11, 700), 1)])


def test_pad_collate_without_a_source_keeps_its_message_and_checks_the_source():
    with pytest.raises(ValueError, match=r"PadCollate\(n_steps=2\): sample 0 of the batch has 3 steps, more than "
                                         r"n_steps=2; pass a larger n_steps"):
        PadCollate(2)([(torch.ones(3, 1), 0)])
    for bad in ("", 3):
        with pytest.raises(TypeError, match="PadCollate: source must be a non-empty str"):
            PadCollate(2, source=bad)


# ------------------------------------------------------------------------------------------ 4. what the check costs
@pytest.mark.parametrize("data_kwargs, counted", [({"n_time_bins": 9, "pad_to": 12}, False),
                                                  ({"time_window": 10_000, "duration": 120_000, "pad_to": 12}, False),
                                                  ({"time_window": 10_000, "pad_to": "longest"}, True),
                                                  ({"time_window": 10_000, "pad_to": 12}, True),
                                                  ({"time_window": 10_000}, False)])
def test_only_time_window_alone_counts_the_recordings_and_once(shd_root, monkeypatch, data_kwargs, counted):
    """An int pad_to with fixed frames (n_time_bins, or time_window with duration) reads no recording to check it;
    with time_window alone each recording is counted once (as for "longest"), none without a pad_to."""
    from snnlab.data.neuromorphic.frames import EventFrameDataset

    calls: list[int] = []
    steps_of = EventFrameDataset._steps_of
    monkeypatch.setattr(EventFrameDataset, "_steps_of", lambda self, i: calls.append(i) or steps_of(self, i))
    cfg = ExperimentConfig.from_dict({"dataset": "shd", "data_root": str(shd_root), "batch_size": 4,
                                      "data_kwargs": data_kwargs})
    train, test, _, _ = build_data(cfg)
    assert len(calls) == (len(train.dataset) + len(test.dataset) if counted else 0)
    if data_kwargs.get("pad_to") == 12:
        assert {x.shape[0] for loader in (train, test) for x, _ in loader} == {12}


@pytest.mark.parametrize("value", [np.int64(3), np.int32(3), torch.tensor(3), np.array(3), torch.tensor([3])])
def test_integer_fields_store_numpy_and_tensor_integers_as_python_ints(value):
    """Before: ``cfg.epochs = np.int64(3)`` kept the NumPy integer and ``cfg.epochs = torch.tensor(3)`` after
    construction was refused (the constructor took it)."""
    cfg = ExperimentConfig()
    cfg.epochs = value
    assert type(cfg.epochs) is int and cfg.epochs == 3
    assert type(ExperimentConfig(epochs=value).epochs) is int
    assert ExperimentConfig.schema()["epochs"]["type"] == "Integer"
    with pytest.raises(ValueError, match="^Integer parameter 'ExperimentConfig.epochs' must be an integer"):
        cfg.epochs = torch.tensor(2.5)  # (param's own message, as before)
