"""Options for published setups: batch norm over time, dropout, detached reset, learning-rate and sigma schedules,
the softmax-sum readout, and the DCLS presets run end to end on small files in the real SHD layout."""
import math

import pytest
import torch
from torch import nn

import snnlab as sl
from snnlab.core.readout import logits, predict, prediction_over_time
from snnlab.experiments.sweeps import run_folder_names
from snnlab.metrics.latency import decision_latency
from snnlab.training import PRESETS, ConfigError, ExperimentConfig, Trainer, build_model, preset
from snnlab.training.lr_schedule import lr_factor


# ----------------------------------------------------------------------------- learning-rate schedules
@pytest.mark.parametrize("total", [1, 2, 3, 4, 7, 10, 64])
def test_one_cycle_factors_are_torchs_one_cycle_lr(total):
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1.0, total_steps=total)
    for step in range(total):
        assert lr_factor("one_cycle", step, total) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12, abs=1e-15)
        opt.step()
        if step < total - 1:
            sched.step()


@pytest.mark.parametrize("total", [1, 5, 64])
def test_cosine_factors_are_torchs_cosine_annealing_to_zero(total):
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    for step in range(total):
        assert lr_factor("cosine", step, total) == pytest.approx(opt.param_groups[0]["lr"], abs=1e-12)
        opt.step()
        sched.step()


def test_lr_factor_refuses_unknown_schedules_and_step_counts():
    with pytest.raises(ValueError, match="unknown learning-rate schedule 'linear'"):
        lr_factor("linear", 0, 10)
    for total in (0, 2.0, True):
        with pytest.raises(ValueError, match="total_steps"):
            lr_factor("cosine", 0, total)
    assert lr_factor("constant", 5, 10) == 1.0


def _steps(trainer):
    return [h for h in trainer.history if h["kind"] == "step"]


def test_trainer_follows_the_schedules_per_step_for_weights_and_delays():
    cfg = ExperimentConfig(hidden=[12], epochs=2, max_batches_per_epoch=3, batch_size=16, num_steps=8, delays=True,
                           max_delay=4, lr=4e-3, lr_schedule="one_cycle", lr_delays=0.2, lr_delays_schedule="cosine")
    seen = []
    t = Trainer(cfg, progress=False)
    orig_step = t.optimizer.step

    def record_step(*a, **k):
        seen.append({g["name"]: g["lr"] for g in t.optimizer.param_groups})
        return orig_step(*a, **k)

    t.optimizer.step = record_step
    t.run()
    assert len(seen) == 6
    for k, rates in enumerate(seen):
        assert rates["weights"] == pytest.approx(4e-3 * lr_factor("one_cycle", k, 6))
        assert rates["delays"] == pytest.approx(0.2 * (1 + math.cos(math.pi * k / 6)) / 2)
    assert [h["lr"] for h in _steps(t)] == pytest.approx([r["weights"] for r in seen])


def test_constant_schedules_leave_the_optimisers_rates_alone():
    t = Trainer(ExperimentConfig(hidden=[8], epochs=1, max_batches_per_epoch=2, num_steps=5), progress=False)
    t.optimizer.param_groups[0]["lr"] = 0.123  # set by hand: a constant schedule does not overwrite it
    t.run()
    assert [h["lr"] for h in _steps(t)] == [0.123, 0.123]


def test_a_resumed_run_continues_the_schedule_where_it_stopped(tmp_path):
    cfg = ExperimentConfig(hidden=[8], epochs=3, max_batches_per_epoch=2, num_steps=5, lr_schedule="one_cycle")
    whole = Trainer(cfg, progress=False)
    whole.run()
    first = Trainer(cfg, run_dir=tmp_path, progress=False,
                    callbacks=[lambda ev: first.stop() if ev.kind == "step" and ev.step == 3 else None])
    assert first.run() is None and first.step == 3  # stopped inside the second epoch
    rest = Trainer.resume_from(tmp_path, progress=False)
    rest.run()
    rates = [h["lr"] for h in _steps(rest)]
    assert len(rates) == 6 and rates == pytest.approx([h["lr"] for h in _steps(whole)])
    assert rates == pytest.approx([cfg.lr * lr_factor("one_cycle", k, 6) for k in range(6)])


def test_a_schedule_without_a_loader_length_is_refused():
    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            for _ in range(3):
                yield torch.rand(5, 4, 64), torch.randint(0, 10, (4,))

    loader = torch.utils.data.DataLoader(Stream(), batch_size=None)
    t = Trainer(ExperimentConfig(hidden=[8], epochs=1, lr_schedule="cosine"), train_loader=loader, test_loader=loader,
                progress=False)
    with pytest.raises(ValueError, match="need the number of steps of the run"):
        t.run()


# ----------------------------------------------------------------------------- batch norm, dropout, reset
def test_time_batch_norm_is_batchnorm1d_over_the_flattened_time_and_batch():
    torch.manual_seed(0)
    x = torch.randn(7, 5, 3) * 4 + 1
    ours, ref = sl.TimeBatchNorm(3), nn.BatchNorm1d(3)
    ref.load_state_dict(ours.state_dict())
    for mode in ("train", "eval"):
        getattr(ours, mode)()
        getattr(ref, mode)()
        y = ours(x)
        assert torch.allclose(y, ref(x.reshape(35, 3)).reshape(7, 5, 3), atol=1e-6)
    assert torch.equal(ours.running_mean, ref.running_mean)
    ours.train()
    y = ours(x)
    assert torch.allclose(y.mean(dim=(0, 1)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(y.var(dim=(0, 1), unbiased=False), torch.ones(3), atol=1e-3)


def test_time_batch_norm_refuses_other_shapes():
    bn = sl.TimeBatchNorm(4)
    with pytest.raises(ValueError, match=r"time-major input \[T, B, F\], got \(5, 4\)"):
        bn(torch.zeros(5, 4))
    with pytest.raises(ValueError, match="got 3 features .* num_features=3"):
        bn(torch.zeros(5, 2, 3))
    assert bn(torch.zeros(0, 2, 4)).shape == (0, 2, 4)


def test_build_model_places_batch_norm_dropout_and_detached_reset():
    cfg = ExperimentConfig(hidden=[16, 8], batch_norm=True, dropout=0.4, detach_reset=True, mask_p=0.1)
    net = build_model(cfg, 64, 10)
    kinds = [type(m).__name__ for m in net]
    assert kinds == ["Linear", "TimeBatchNorm", "LIF", "Dropout", "Linear", "TimeBatchNorm", "LIF", "Dropout",
                     "Linear", "LI"]
    assert net[3].p == 0.4 and net[1].num_features == 16 and net[5].num_features == 8
    assert all(m.detach_reset for m in net if isinstance(m, sl.LIF)) and net[2].mask_p == 0.1
    plain = build_model(ExperimentConfig(hidden=[16, 8]), 64, 10)
    assert [type(m).__name__ for m in plain] == ["Linear", "LIF", "Linear", "LIF", "Linear", "LI"]
    assert not plain[1].detach_reset


def test_dropout_is_off_in_evaluation_and_leaves_the_counts_alone():
    """In eval mode the dropout model computes exactly the model without it (same weights), spikes and SynOps too."""
    from snnlab.metrics import evaluate

    torch.manual_seed(1)
    with_drop = build_model(ExperimentConfig(hidden=[16], dropout=0.5, weight_gain=6.0), 64, 10)
    without = nn.Sequential(*[m for m in with_drop if not isinstance(m, nn.Dropout)])
    x = (torch.rand(12, 6, 64) < 0.3).float()
    y = torch.randint(0, 10, (6,))
    with_drop.eval()
    without.eval()
    assert torch.equal(with_drop(x), without(x))
    a = evaluate(with_drop, [(x, y)])
    b = evaluate(sl.Sequential(*without), [(x, y)])
    assert a["spikes_per_sample"] > 0
    for k in ("accuracy", "spikes_per_sample", "synops_per_sample"):
        assert a[k] == b[k]
    with_drop.train()  # in training, kept spikes are scaled by 1 / (1 - p) = 2
    assert set(torch.unique(with_drop[:3](x)).tolist()) <= {0.0, 2.0}


# ----------------------------------------------------------------------------- sigma schedule from the config
def test_the_config_sets_the_sigma_schedule():
    cfg = ExperimentConfig(hidden=[8], epochs=5, max_batches_per_epoch=1, num_steps=10, delays=True, max_delay=9,
                           sigma_schedule="exponential", sigma_end=0.23, sigma_anneal_fraction=0.5)
    t = Trainer(cfg, progress=False)
    t.run()
    sig = [h["sigma"] for h in t.history if h["kind"] == "epoch"]
    ref = sl.DelaySchedule(sl.DelayedLinear(2, 2, max_delay=9), total_epochs=5, sigma_end=0.23, kind="exponential",
                           anneal_fraction=0.5)
    assert sig == pytest.approx([ref.sigma_at(e) for e in range(5)])
    assert sig[0] == pytest.approx(4.5) and sig[2:] == pytest.approx([0.23] * 3)


# ----------------------------------------------------------------------------- softmax-sum readout
def test_softmax_sum_readout_sums_the_per_step_softmax():
    torch.manual_seed(2)
    out = torch.randn(6, 4, 3)
    ref = sum(torch.softmax(out[t], dim=-1) for t in range(6))
    assert torch.allclose(logits(out, "softmax_sum"), ref, atol=1e-6)
    over = prediction_over_time(out, "softmax_sum")
    assert torch.equal(over[-1], predict(out, "softmax_sum"))
    assert torch.equal(over[0], torch.softmax(out[0], -1).argmax(-1))
    silent = torch.zeros(5, 2, 3)  # uniform probabilities: no decision, never class 0
    assert predict(silent, "softmax_sum").tolist() == [-1, -1]
    assert decision_latency(silent, "softmax_sum").tolist() == [5.0, 5.0]


def test_softmax_sum_trains_and_scores_like_its_logits():
    cfg = ExperimentConfig(hidden=[16], epochs=1, max_batches_per_epoch=2, num_steps=6, readout="softmax_sum")
    t = Trainer(cfg, progress=False)
    result = t.run()
    assert type(t.model[-1]).__name__ == "LI" and 0.0 <= result["final"]["accuracy"] <= 1.0
    assert math.isfinite(_steps(t)[-1]["loss"])


# ----------------------------------------------------------------------------- config identity
def test_new_fields_at_their_defaults_keep_old_run_folder_names():
    """Folder names computed by the code before these fields existed (commit d0f04f1)."""
    old = [ExperimentConfig(seed=0), ExperimentConfig(dataset="randman", hidden=[16, 8], delays=True, max_delay=5)]
    assert run_folder_names(old) == ["cadff18ce4df", "e84306a061bb"]
    assert run_folder_names([ExperimentConfig(seed=0, dropout=0.1)]) != ["cadff18ce4df"]
    assert run_folder_names([ExperimentConfig(seed=0, lr_schedule="cosine")]) != ["cadff18ce4df"]


def test_the_label_names_batch_norm_and_dropout():
    assert ExperimentConfig(batch_norm=True, dropout=0.25).label().endswith(" bn drop0.25")


@pytest.mark.parametrize("field,value", [("dropout", 1.0), ("dropout", -0.1), ("sigma_end", 0.0),
                                         ("sigma_anneal_fraction", 0.0), ("lr_schedule", "step"),
                                         ("sigma_schedule", "cyclic")])
def test_bad_values_of_the_new_fields_are_refused(field, value):
    with pytest.raises(ConfigError, match=field):
        ExperimentConfig.from_dict({field: value})


# ----------------------------------------------------------------------------- presets
def test_presets_are_valid_configs_that_match_the_papers_setup():
    shd, ssc = preset("dcls_shd"), preset("dcls_ssc")
    assert (shd.dataset, shd.hidden, shd.max_delay, shd.dropout, shd.tau_mem) == ("shd", [256, 256], 25, 0.4, 1.005)
    assert (ssc.dataset, ssc.hidden, ssc.max_delay, ssc.dropout, ssc.tau_mem) == ("ssc", [512] * 3, 31, 0.25, 1.5)
    for cfg in (shd, ssc):
        assert cfg.data_kwargs == {"time_window": 10_000, "channel_bin": 5}
        assert cfg.label().split()[1].startswith("140-")
        assert (cfg.batch_norm, cfg.detach_reset, cfg.reset, cfg.readout) == (True, True, "zero", "softmax_sum")
        assert (cfg.lr_schedule, cfg.lr_delays_schedule, cfg.sigma_schedule) == ("one_cycle", "cosine", "exponential")
        assert cfg.weight_gain == pytest.approx(math.sqrt(6))
    assert preset("dcls_shd", epochs=3, data_root="/x").epochs == 3
    preset("dcls_shd").data_kwargs["channel_bin"] = 7  # the preset's dicts are not shared with the configs
    assert PRESETS["dcls_shd"]["data_kwargs"]["channel_bin"] == 5
    assert preset("dcls_shd").data_kwargs["channel_bin"] == 5
    with pytest.raises(ConfigError, match="unknown preset 'dcls'; choose one of"):
        preset("dcls")


def test_cli_preset_then_flags(tmp_path):
    from snnlab.cli import build_parser
    from snnlab.config_args import config_from_args

    cfg_file = tmp_path / "c.json"
    cfg_file.write_text('{"batch_size": 32, "epochs": 9}')
    args = build_parser().parse_args(["train", "--preset", "dcls_shd", "--config", str(cfg_file), "--epochs", "2"])
    cfg = config_from_args(args)
    assert (cfg.hidden, cfg.batch_size, cfg.epochs, cfg.readout) == ([256, 256], 32, 2, "softmax_sum")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--preset", "nope"])


def test_the_dcls_shd_preset_trains_on_files_in_the_shd_layout(tmp_path):
    pytest.importorskip("h5py")
    pytest.importorskip("tonic")
    from shd_files import write_shd_layout

    write_shd_layout(tmp_path / "shd_train.h5", 12, 20)
    write_shd_layout(tmp_path / "shd_test.h5", 6, 20, seed=1)
    cfg = preset("dcls_shd", data_root=str(tmp_path), hidden=[16, 16], epochs=2, batch_size=4,
                 max_batches_per_epoch=2, eval_max_batches=1)
    t = Trainer(cfg, progress=False)
    x, _ = next(iter(t.train_loader))
    assert x.shape[1:] == (4, 140) and 90 <= x.shape[0] <= 96  # 10 ms frames of samples up to 0.95 s
    kinds = [type(m).__name__ for m in t.model]
    assert kinds == ["DelayedLinear", "TimeBatchNorm", "LIF", "Dropout"] * 2 + ["DelayedLinear", "LI"]
    result = t.run()
    assert all(m.rounded for m in t.model if isinstance(m, sl.DelayedLinear))
    assert result["rounded"] is not None and 0.0 <= result["rounded"]["accuracy"] <= 1.0
    assert [h["sigma"] for h in t.history if h["kind"] == "epoch"] == pytest.approx([12.5, 0.23])
