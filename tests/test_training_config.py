"""ExperimentConfig: validation, round trips, schema and model/data builders."""
import json

import pytest
import torch

from snnlab.core.delays import DelayedLinear
from snnlab.core.neurons import LI, LIF
from snnlab.training import ConfigError, ExperimentConfig, build_data, build_model, estimate_memory_bytes


def test_defaults_are_valid_and_round_trip():
    cfg = ExperimentConfig()
    assert cfg.validate() is cfg
    d = cfg.to_dict()
    assert "name" not in d and d["dataset"] == "digits" and d["hidden"] == [128]
    json.dumps(d)
    again = ExperimentConfig.from_dict(d)
    assert again.to_dict() == d
    cfg2 = ExperimentConfig(hidden=[32, 16], neuron="noisy", noise="logistic", delays=True, max_delay=5,
                            mask_p=0.25, readout="first_spike", optimizer="sgd", max_batches_per_epoch=3)
    assert ExperimentConfig.from_json(cfg2.to_json()).to_dict() == cfg2.to_dict()
    assert cfg2.copy(epochs=3).epochs == 3 and cfg2.epochs == 10


def test_unknown_keys_and_bad_values_give_clear_errors():
    with pytest.raises(ConfigError, match=r"unknown configuration key.*'hiden'.*did you mean 'hidden'"):
        ExperimentConfig.from_dict({"hiden": [10]})
    with pytest.raises(ConfigError, match="bad value for 'neuron'"):
        ExperimentConfig.from_dict({"neuron": "izhikevich"})
    with pytest.raises(ConfigError, match="bad value for 'lr'"):
        ExperimentConfig.from_dict({"lr": -1.0})
    with pytest.raises(ConfigError, match="bad value for 'hidden'"):
        ExperimentConfig.from_dict({"hidden": [0]})
    with pytest.raises(ConfigError, match="bad value for 'mask_p'"):
        ExperimentConfig.from_dict({"mask_p": 1.0})
    with pytest.raises(ConfigError, match="not valid JSON"):
        ExperimentConfig.from_json("{nope")
    with pytest.raises(ValueError):  # param checks plain assignments too
        ExperimentConfig().surrogate = "no_such_surrogate"
    with pytest.raises(ConfigError, match="must be an int, not a bool"):
        ExperimentConfig(epochs=True).validate()


def test_cross_field_validation():
    with pytest.raises(ConfigError, match="ttfs.*max_spikes must be 1"):
        ExperimentConfig(neuron="ttfs", max_spikes=3).validate()
    ExperimentConfig(neuron="ttfs", max_spikes=1).validate()
    with pytest.raises(ConfigError, match="max_delay >= 1"):
        ExperimentConfig(delays=True, max_delay=0).validate()
    with pytest.raises(ConfigError, match="exceeds num_steps"):
        ExperimentConfig(delays=True, max_delay=50, num_steps=20).validate()
    with pytest.raises(ConfigError, match="delay_task.*num_steps"):
        ExperimentConfig(dataset="delay_task", num_steps=20).validate()
    with pytest.raises(ConfigError, match=r"needs about .*GiB.*above the limit"):
        ExperimentConfig(hidden=[200_000, 200_000]).validate()
    with pytest.raises(ConfigError):  # from_dict validates by default
        ExperimentConfig.from_dict({"neuron": "ttfs", "max_spikes": 2})
    assert ExperimentConfig.from_dict({"neuron": "ttfs", "max_spikes": 2}, validate=False).max_spikes == 2
    est = estimate_memory_bytes(ExperimentConfig(hidden=[10]), 64, 10)
    assert est["parameters"] == 64 * 10 + 10 * 10


def test_label_and_schema():
    cfg = ExperimentConfig(hidden=[64], neuron="ttfs", delays=True, max_delay=10, mask_p=0.1)
    lab = cfg.label()
    assert lab.startswith("digits 64-64-10 ttfs") and "delays10" in lab and "mask0.1" in lab
    schema = ExperimentConfig.schema()
    assert schema["dataset"]["objects"][0] == "digits"
    assert schema["lr"]["doc"] and "bounds" in schema["lr"]
    assert all(v["doc"] for v in schema.values())


def _types(net):
    return [type(m).__name__ for m in net]


def test_build_model_variants():
    net = build_model(ExperimentConfig(hidden=[16, 8]), 64, 10)
    assert _types(net) == ["Linear", "LIF", "Linear", "LIF", "Linear", "LI"]
    assert net[0].weight.shape == (16, 64) and net[4].weight.shape == (10, 8)

    ttfs = build_model(ExperimentConfig(hidden=[16], neuron="ttfs"), 64, 10)
    assert ttfs[1].max_spikes == 1 and ttfs[1].noise is None

    noisy = build_model(ExperimentConfig(hidden=[16], neuron="noisy", noise="logistic", noise_scale=0.2), 64, 10)
    assert noisy[1].noise == "logistic" and noisy[1].noise_scale == pytest.approx(0.2)

    masked = build_model(ExperimentConfig(hidden=[16], mask_p=0.3), 64, 10)
    assert _types(masked) == ["Linear", "LIF", "Linear", "LI"]  # masking fused into the hidden LIF
    assert masked[1].mask_p == pytest.approx(0.3) and not masked[1].mask_at_inference
    assert build_model(ExperimentConfig(hidden=[16], mask_p=0.3, readout="spike_count"), 64, 10)[-1].mask_p == 0

    delayed = build_model(ExperimentConfig(hidden=[16], delays=True, max_delay=7), 64, 10)
    assert isinstance(delayed[0], DelayedLinear) and isinstance(delayed[2], DelayedLinear)
    assert delayed[0].max_delay == 7

    first = build_model(ExperimentConfig(hidden=[16], readout="first_spike"), 64, 10)
    assert isinstance(first[-1], LIF) and first[-1].max_spikes == 1
    count = build_model(ExperimentConfig(hidden=[16], readout="spike_count", max_spikes=3), 64, 10)
    assert isinstance(count[-1], LIF) and count[-1].max_spikes == 3
    assert isinstance(build_model(ExperimentConfig(hidden=[16], readout="membrane_max"), 64, 10)[-1], LI)

    sg = build_model(ExperimentConfig(hidden=[4], surrogate="fast_sigmoid", surrogate_alpha=25.0), 3, 2)[1].surrogate
    assert sg.name == "fast_sigmoid" and sg.param == 25.0
    out = net(torch.rand(5, 2, 64))
    assert out.shape == (5, 2, 10)
    with pytest.raises(ValueError):
        build_model(ExperimentConfig(), 0, 10)


def test_build_data_digits_and_synthetic():
    cfg = ExperimentConfig(num_steps=6, batch_size=8)
    train, test, n_in, n_cls = build_data(cfg)
    x, y = next(iter(train))
    assert (n_in, n_cls) == (64, 10) and x.shape == (6, 8, 64) and y.shape == (8,)

    cfg = ExperimentConfig(dataset="randman", num_steps=10, batch_size=4,
                           data_kwargs={"n_classes": 3, "n_units": 12, "samples_per_class": 10})
    train, test, n_in, n_cls = build_data(cfg)
    x, y = next(iter(train))
    assert (n_in, n_cls) == (12, 3) and x.shape == (10, 4, 12)
    assert len(train.dataset) + len(test.dataset) == 30

    cfg = ExperimentConfig(dataset="delay_task", num_steps=30, batch_size=4,
                           data_kwargs={"n_samples": 20, "delays": [3, 9], "n_distractors": 2})
    train, test, n_in, n_cls = build_data(cfg)
    x, y = next(iter(train))
    assert (n_in, n_cls) == (4, 2) and x.shape == (30, 4, 4)


def test_build_data_missing_real_dataset_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="shd"):
        build_data(ExperimentConfig(dataset="shd", data_root=str(tmp_path)))


def test_build_data_takes_a_time_window_instead_of_num_steps_bins(tmp_path):
    pytest.importorskip("h5py")
    import numpy as np

    from shd_files import write_shd_events

    for split in ("train", "test"):
        write_shd_events(tmp_path / f"shd_{split}.h5", [([0.001, 0.0995], [3, 5])] * 2,
                         np.array([0, 1], dtype=np.uint16), time_dtype=np.float32)
    cfg = ExperimentConfig(dataset="shd", data_root=str(tmp_path), num_steps=7, batch_size=2,
                           data_kwargs={"time_window": 10_000, "duration": 100_000})
    train, _, n_in, n_cls = build_data(cfg)
    x, _ = next(iter(train))
    assert (n_in, n_cls) == (700, 20) and x.shape == (10, 2, 700) and int(x.sum()) == 4
    x, _ = next(iter(build_data(ExperimentConfig(dataset="shd", data_root=str(tmp_path), num_steps=7))[0]))
    assert x.shape[0] == 7


@pytest.mark.parametrize("kwargs,message", [
    (dict(tau_mem=float("inf")), "tau_mem must be a finite number"),
    (dict(noise_scale=float("inf")), "noise_scale must be a finite number"),
    (dict(dataset="delay_task", num_steps=40, data_kwargs={"delays": 5}), "'delays' of delay_task must be a list"),
    (dict(dataset="delay_task", num_steps=40, data_kwargs={"jitter": "2"}), "'jitter' of delay_task must be an int"),
    (dict(lr=True), "lr must be a number, not a bool"),  # True would train with lr=1.0
    (dict(weight_decay=True), "weight_decay must be a number, not a bool"),
    (dict(epochs=True), "epochs must be an int, not a bool"),
])
def test_validate_lists_impossible_values_instead_of_failing_later(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        ExperimentConfig.from_dict(kwargs).validate()


def test_build_data_passes_num_workers_to_the_embedded_loaders():
    cfg = ExperimentConfig(num_steps=4, batch_size=8, encoding="rate", data_kwargs={"num_workers": 1})
    train, test, _, _ = build_data(cfg)
    assert train.num_workers == 1 and test.num_workers == 1
    x, y = next(iter(train))
    assert x.shape == (4, 8, 64) and set(x.unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("dataset, data_kwargs", [
    ("digits", {}), ("randman", {"n_units": 30, "n_classes": 3}), ("delay_task", {"n_distractors": 3}),
    ("shd", {}), ("shd", {"channel_bin": 5}), ("ssc", {"channel_bin": 3}),
])
def test_dataset_shape_is_what_build_data_finds(tmp_path, dataset, data_kwargs):
    """The size estimate's shapes (no data loaded) equal the loaded dataset's, for every dataset built here."""
    from shd_files import write_shd_layout

    from snnlab.training.config import dataset_shape

    if dataset in ("shd", "ssc"):
        n_classes = 20 if dataset == "shd" else 35
        for split in ("train", "valid", "test") if dataset == "ssc" else ("train", "test"):
            write_shd_layout(tmp_path / f"{dataset}_{split}.h5", 4, n_classes)
        data_kwargs = {**data_kwargs, "n_time_bins": 5}
    cfg = ExperimentConfig(dataset=dataset, data_root=str(tmp_path), data_kwargs=data_kwargs,
                           num_steps=40 if dataset == "delay_task" else 5)
    train, _, n_inputs, n_classes = build_data(cfg)
    x, _ = next(iter(train))
    assert dataset_shape(cfg) == (n_inputs, n_classes) == (x.shape[-1], n_classes)


def test_event_data_frames_not_num_steps_decide_the_delay_check_the_estimate_and_the_label():
    """Probe: under dcls_shd (10 ms frames) --num-steps 20 was refused as shorter than max_delay=25, though samples
    have ~95 frames; time_window=10 (us, for 10 ms) passed with a 0.5 GiB estimate for 140 000 frames; a time_window
    of 1 s with max_delay=25 passed; n_time_bins=50 was labelled T100."""
    from snnlab.training import preset
    from snnlab.training.config import frames_per_sample

    assert preset("dcls_shd", num_steps=20).label().split()[4] == "dt10ms"
    with pytest.raises(ConfigError, match=r"needs about .* [GT]iB to train"):
        preset("dcls_shd", data_kwargs={"time_window": 10})
    with pytest.raises(ConfigError, match=r"max_delay=25 exceeds the about 2 frames of the longest shd recording"):
        preset("dcls_shd", data_kwargs={"time_window": 1_000_000})
    with pytest.raises(ConfigError, match=r"max_delay=25 exceeds the 10 frames of a sample"):
        preset("dcls_shd", data_kwargs={"time_window": None, "n_time_bins": 10})
    binned = preset("dcls_shd", data_kwargs={"time_window": None, "n_time_bins": 50})
    assert frames_per_sample(binned) == (50, True) and " T50 " in binned.label()
    fixed = preset("dcls_shd", data_kwargs={"duration": 1_000_000})
    assert frames_per_sample(fixed) == (100, True) and " T100 " in fixed.label()
    assert frames_per_sample(ExperimentConfig(dataset="digits", num_steps=7)) == (7, True)
    with pytest.raises(ConfigError, match="max_delay=30 exceeds num_steps=20"):
        ExperimentConfig(dataset="digits", delays=True, max_delay=30, num_steps=20).validate()
    small = estimate_memory_bytes(preset("dcls_shd"))["activation_bytes"]
    assert estimate_memory_bytes(preset("dcls_shd", data_kwargs={"time_window": 5000}))["activation_bytes"] == 2 * small


def test_validate_refuses_frame_settings_the_loader_would_refuse_and_names_what_sets_the_steps():
    """Probe: time_window=0.01 (seconds meant) was refused by the memory estimate, "reduce hidden, num_steps, batch_size
    or max_delay" (num_steps plays no part with a time_window); n_time_bins=2.5 and a duration shorter than one
    window passed validate() and failed only in the loader."""
    with pytest.raises(ConfigError, match=r"time_window=0.01 us is shorter than the 1 us resolution.*microseconds"):
        ExperimentConfig(dataset="shd", data_kwargs={"time_window": 0.01}).validate()
    with pytest.raises(ConfigError, match="n_time_bins must be an int >= 1, got 2.5"):
        ExperimentConfig(dataset="shd", data_kwargs={"n_time_bins": 2.5}).validate()
    with pytest.raises(ConfigError, match="no whole frame fits"):
        ExperimentConfig(dataset="shd", data_kwargs={"time_window": 10_000, "duration": 5_000}).validate()
    with pytest.raises(ConfigError, match=r"time steps per sample \(up to about 140000 frames of data_kwargs "
                                          r"time_window=10 us; time_window and duration are in microseconds\)"):
        ExperimentConfig(dataset="shd", data_kwargs={"time_window": 10}).validate()
    with pytest.raises(ConfigError, match=r"time steps per sample \(20: num_steps\)"):
        ExperimentConfig(dataset="digits", hidden=[100_000, 100_000]).validate()
    ExperimentConfig(dataset="shd", data_kwargs={"time_window": 10_000, "duration": 1_000_000}).validate()


def test_numpy_numbers_make_plain_configs_that_save_as_json(tmp_path):
    """Probe: expand_grid(base, {"seed": list(np.arange(2))}) validated, then the Trainer failed writing config.json
    (int64 is not JSON serialisable); hidden=[np.int64(8)] was refused."""
    import numpy as np

    from snnlab.experiments import expand_grid

    cfgs = expand_grid(ExperimentConfig(), {"seed": list(np.arange(2)), "lr": [np.float32(0.01)]})
    assert [type(c.seed) for c in cfgs] == [int, int] and type(cfgs[0].lr) is float
    cfg = ExperimentConfig(hidden=[np.int64(8)], epochs=np.int64(2), data_kwargs={"num_workers": np.int64(1)})
    assert cfg.hidden == [8] and json.loads(cfg.to_json())["data_kwargs"] == {"num_workers": 1}
    cfg.seed = np.int64(5)  # an assignment after construction still saves
    assert ExperimentConfig.from_json(cfg.to_json()).seed == 5


@pytest.mark.parametrize("fields, words", [
    (dict(dataset="digits", data_kwargs={"n_units": 5}),
     r"data_kwargs \['n_units'\] are not options of dataset='digits' with encoding='latency'; it takes \['linear', "),
    (dict(dataset="digits", encoding="direct", data_kwargs={"tau": 2.0}), r"\['tau'\] are not options"),
    (dict(dataset="shd", data_kwargs={"test_fraction": 0.1}), r"\['test_fraction'\] are not options of dataset='shd'"),
    (dict(dataset="randman", data_kwargs={"n_steps": 5}), r"\['n_steps'\] are not options"),  # num_steps sets it
    (dict(dataset="digits", data_kwargs={"test_fraction": "a"}), "'test_fraction' must be a number in \\(0, 1\\)"),
    (dict(dataset="digits", data_kwargs={"test_fraction": 1.0}), "'test_fraction' must be a number in \\(0, 1\\)"),
    (dict(dataset="digits", data_kwargs={"num_workers": -1}), "'num_workers' must be an int >= 0"),
])
def test_data_kwargs_are_checked_against_what_the_dataset_takes(fields, words):
    """Probe: an unknown key passed validation and failed at the start of training inside an encoder, or was dropped
    silently (direct encoding, test_fraction of an event dataset); a test_fraction of 'a' failed inside float()."""
    with pytest.raises(ConfigError, match=words):
        ExperimentConfig(**fields).validate()


def test_every_dataset_takes_the_options_its_builder_takes():
    from snnlab.training.config import data_options

    assert data_options(ExperimentConfig(dataset="digits", encoding="rate")) == {"gain", "num_workers", "test_fraction",
                                                                                 "shuffle"}
    assert data_options(ExperimentConfig(dataset="nmnist")) >= {"first_saccade_only", "time_window", "cache_dir"}
    assert "n_samples" in data_options(ExperimentConfig(dataset="delay_task"))
    import inspect

    from snnlab.data.audio import Cochlea
    cochlea = set(inspect.signature(Cochlea).parameters) - {"num_steps", "duration"}
    assert {"n_channels", "limit"} | cochlea <= data_options(ExperimentConfig(dataset="fsdd"))


def test_saved_configs_with_options_their_dataset_ignored_still_load(tmp_path):
    """Review: a checkpoint saved before data_kwargs were checked (encoder options with the direct encoding, which
    training ignored) could no longer be resumed or opened, and no flag could mend it."""
    from snnlab.cli import main
    from snnlab.training import Trainer

    cfg = ExperimentConfig(hidden=[8], num_steps=5, batch_size=32, epochs=1, max_batches_per_epoch=2,
                           eval_max_batches=1, encoding="direct")
    Trainer(cfg, run_dir=tmp_path, progress=False).run()
    ck = torch.load(tmp_path / "checkpoint.pt", weights_only=False)
    old = json.loads(ck["config_json"])
    ck["config_json"] = json.dumps({**old, "data_kwargs": {"gain": 0.5}})  # as the old code let it be saved
    torch.save(ck, tmp_path / "checkpoint.pt")
    with pytest.warns(UserWarning, match=r"data_kwargs \['gain'\] are not options of dataset='digits'"):
        resumed = Trainer(resume=tmp_path, progress=False)
    assert resumed.cfg.data_kwargs == {}
    with pytest.warns(UserWarning, match="dropped"):
        assert main(["train", "--resume", "--run-dir", str(tmp_path), "--epochs", "2", "--no-store", "--quiet"]) == 0


def test_frames_are_chosen_in_one_place_and_non_positive_ones_refused():
    """Review: time_window=0 raised ZeroDivisionError from validate() and label(); an explicit n_time_bins=None
    gave the loader's 100 bins while the label, the checks and the estimate counted num_steps."""
    from snnlab.training.config import event_frame_kwargs

    cfg = ExperimentConfig(dataset="shd", num_steps=10, data_kwargs={"n_time_bins": None})
    assert event_frame_kwargs(cfg)["n_time_bins"] == 10 and cfg.label().endswith(" T10")
    for bad in ({"time_window": 0}, {"time_window": -5.0}, {"time_window": 0, "duration": 1e6}, {"n_time_bins": 0}):
        bad_cfg = ExperimentConfig(dataset="shd", data_kwargs=bad)
        assert bad_cfg.label().startswith("shd ")
        with pytest.raises(ConfigError, match="must be a number > 0"):
            bad_cfg.validate()
