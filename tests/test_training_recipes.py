"""Options for published setups: batch norm over time, dropout, detached reset, learning-rate and sigma schedules,
the softmax-sum readout, and the DCLS presets run end to end on small files in the real SHD layout."""
import math
import re
import warnings

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
        betas.append({g["name"]: g["betas"][0] for g in t.optimizer.param_groups})
        return orig_step(*a, **k)

    betas = []

    t.optimizer.step = record_step
    t.run()
    assert len(seen) == 6
    for k, rates in enumerate(seen):
        assert rates["weights"] == pytest.approx(4e-3 * lr_factor("one_cycle", k, 6))
        assert rates["delays"] == pytest.approx(0.2 * (1 + math.cos(math.pi * k / 6)) / 2)
    assert [h["lr"] for h in _steps(t)] == pytest.approx([r["weights"] for r in seen])
    # the momentum cycles with the one-cycle rate only (torch's OneCycleLR), the cosine one leaves it at 0.9
    ref = torch.optim.Adam([nn.Parameter(torch.zeros(1))])
    one_cycle = torch.optim.lr_scheduler.OneCycleLR(ref, max_lr=1.0, total_steps=6)
    for k in range(6):
        assert betas[k]["weights"] == pytest.approx(ref.param_groups[0]["betas"][0]) and betas[k]["delays"] == 0.9
        ref.step()
        if k < 5:
            one_cycle.step()


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


def _three_batch_stream() -> torch.utils.data.DataLoader:
    """A loader without a length (an iterable dataset) that yields 3 batches of digits-shaped input."""
    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            for _ in range(3):
                yield torch.rand(5, 4, 64), torch.randint(0, 10, (4,))

    return torch.utils.data.DataLoader(Stream(), batch_size=None)


def test_a_schedule_without_a_loader_length_is_refused():
    loader = _three_batch_stream()
    t = Trainer(ExperimentConfig(hidden=[8], epochs=1, lr_schedule="cosine"), train_loader=loader, test_loader=loader,
                progress=False)
    with pytest.raises(ValueError, match="need the number of steps of the run"):
        t.run()


def test_an_epoch_shorter_than_the_schedule_assumes_is_reported():
    loader = _three_batch_stream()
    cfg = ExperimentConfig(hidden=[8], epochs=2, lr_schedule="one_cycle", max_batches_per_epoch=10)
    t = Trainer(cfg, train_loader=loader, test_loader=loader, progress=False)
    with pytest.warns(RuntimeWarning, match="ended after 3 of the 10 batches the learning-rate schedules assume"):
        t.run()
    exact = Trainer(cfg.copy(max_batches_per_epoch=3), train_loader=loader, test_loader=loader, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        exact.run()
    assert _steps(exact)[-1]["lr"] == pytest.approx(cfg.lr * lr_factor("one_cycle", 5, 6))


def test_batch_norm_gets_no_weight_decay_and_the_weights_schedule():
    cfg = ExperimentConfig(hidden=[8], batch_norm=True, weight_decay=1e-5, lr_schedule="cosine", epochs=1,
                           max_batches_per_epoch=2, num_steps=5)
    t = Trainer(cfg, progress=False)
    groups = {g["name"]: g for g in t.optimizer.param_groups}
    bn = t.model[1]
    assert {id(p) for p in groups["norm"]["params"]} == {id(bn.weight), id(bn.bias)}
    assert groups["norm"]["weight_decay"] == 0.0 and groups["weights"]["weight_decay"] == 1e-5
    t.run()
    assert groups["norm"]["lr"] == groups["weights"]["lr"] == pytest.approx(cfg.lr * lr_factor("cosine", 1, 2))


def test_a_run_with_batch_norm_dropout_and_delays_resumes_exactly(tmp_path):
    cfg = ExperimentConfig(hidden=[10], epochs=2, max_batches_per_epoch=3, num_steps=8, batch_size=16, delays=True,
                           max_delay=4, batch_norm=True, dropout=0.3, lr_schedule="one_cycle",
                           lr_delays_schedule="cosine")
    whole = Trainer(cfg, progress=False)
    whole.run()
    first = Trainer(cfg, run_dir=tmp_path, progress=False,
                    callbacks=[lambda ev: first.stop() if ev.kind == "step" and ev.step == 4 else None])
    first.run()
    rest = Trainer.resume_from(tmp_path, progress=False)
    rest.run()
    assert [h["loss"] for h in _steps(rest)] == [h["loss"] for h in _steps(whole)]
    for (k, a), b in zip(whole.model.state_dict().items(), rest.model.state_dict().values()):
        assert torch.equal(a, b), k


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
    assert kinds == ["Linear", "TimeBatchNorm", "LIF", "TimeDropout", "Linear", "TimeBatchNorm", "LIF", "TimeDropout",
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
    without = nn.Sequential(*[m for m in with_drop if not isinstance(m, sl.TimeDropout)])
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


def test_time_dropout_keeps_one_mask_per_sequence():
    torch.manual_seed(3)
    drop = sl.TimeDropout(0.25)
    y = drop(torch.ones(50, 64, 40))
    assert torch.equal(y, y[:1].expand_as(y))  # the same neurons dropped at every step
    assert torch.unique(y).tolist() == pytest.approx([0.0, 4.0 / 3.0])
    assert abs(float((y[0] == 0).float().mean()) - 0.25) < 0.03
    drop.eval()
    x = torch.rand(5, 2, 3)
    assert drop(x) is x
    for p in (1.0, -0.1, True, "0.3"):
        with pytest.raises(ValueError, match="TimeDropout: p must be a number in"):
            sl.TimeDropout(p)
    with pytest.raises(ValueError, match=r"time-major input \[T, B, ...\]"):
        sl.TimeDropout(0.1).train()(torch.ones(3))


@pytest.mark.parametrize("mask_p", [0.0, 0.1])
def test_weights_load_across_dropout_settings(mask_p):
    """TimeDropout holds no state but takes a layer number: a model trained with it loads into one without (to
    fine-tune without dropout, as DCLS does), and the reverse."""
    from snnlab.training.model import load_model_state

    for a, b in ((0.3, 0.0), (0.0, 0.3)):
        src = build_model(ExperimentConfig(hidden=[8, 6], dropout=a, mask_p=mask_p, learn_threshold=True), 4, 2)
        dst = build_model(ExperimentConfig(hidden=[8, 6], dropout=b, mask_p=mask_p, learn_threshold=True), 4, 2)
        load_model_state(dst, src.state_dict())
        src_params = [p for m in src for p in m.state_dict().values()]
        dst_params = [p for m in dst for p in m.state_dict().values()]
        assert len(src_params) == len(dst_params) and all(torch.equal(p, q) for p, q in zip(src_params, dst_params))
    other = build_model(ExperimentConfig(hidden=[8, 6], dropout=0.3, batch_norm=True), 4, 2)
    with pytest.raises(RuntimeError):  # batch norm holds state: a different network, refused
        load_model_state(other, build_model(ExperimentConfig(hidden=[8, 6]), 4, 2).state_dict())


def test_weights_load_across_dropout_settings_with_seeded_layers():
    """A seeded layer's random stream is no weight: an old state (no stream) of a network with dropout loads into
    one without it whose LIF and SpikeMask are seeded, and the stream entries of a seeded source do not block it."""
    from snnlab.training.model import load_model_state

    def net(dropout, seed):
        layers = [torch.nn.Linear(4, 8), sl.LIF(seed=seed, noise="gaussian"), sl.SpikeMask(0.2, seed=seed)]
        layers += [sl.TimeDropout(0.3)] if dropout else []
        return sl.Sequential(*layers, torch.nn.Linear(8, 2), sl.LI())

    torch.manual_seed(0)
    old = {k: v for k, v in net(True, None).state_dict().items()}  # unseeded: as saved before streams were kept
    dst = net(False, 1)
    load_model_state(dst, old)
    assert torch.equal(dst[3].weight, old["4.weight"]) and torch.equal(dst[0].weight, old["0.weight"])
    src = net(False, 2)
    dst = net(True, 3)
    load_model_state(dst, src.state_dict())
    assert torch.equal(dst[4].weight, src[3].weight)


def test_renumbered_loads_give_no_layer_another_layers_random_stream():
    """Review: a failed direct load had already copied the keys matching by number, so a seeded SpikeMask took the
    random stream of the seeded LIF that had its number in the saved network."""
    from snnlab.training.model import load_model_state

    def net(drop):
        layers = [torch.nn.Linear(4, 8), sl.LIF(n_neurons=8, learn_threshold=True, seed=1)]
        layers += [sl.TimeDropout(0.3)] if drop else []
        layers += [sl.SpikeMask(0.2, seed=2), torch.nn.Linear(8, 8),
                   sl.LIF(n_neurons=8, learn_threshold=True, noise="logistic", seed=3), sl.SpikeMask(0.2, seed=4),
                   torch.nn.Linear(8, 2), sl.LI()]
        return sl.Sequential(*layers)

    torch.manual_seed(0)
    saved = net(True)
    for _ in range(3):
        saved(torch.rand(10, 3, 4))
    new = net(False)
    load_model_state(new, saved.state_dict())
    state = lambda m: m._generator.get_state()  # noqa: E731
    assert torch.equal(state(new[5]), state(sl.SpikeMask(0.2, seed=4)))  # left where it is, not the LIF's stream
    assert torch.equal(state(new[4]), state(saved[5])) and torch.equal(state(new[1]), state(saved[1]))
    assert torch.equal(new[4].threshold, saved[5].threshold)


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


def test_softmax_sum_trains_on_the_cross_entropy_of_its_scores():
    cfg = ExperimentConfig(hidden=[16], epochs=1, max_batches_per_epoch=1, num_steps=6, readout="softmax_sum")
    t = Trainer(cfg, progress=False)
    outputs, scored = [], []
    t.model.register_forward_hook(lambda module, inputs, out: outputs.append(out.detach()))
    loss_fn = t.loss_fn
    t.loss_fn = lambda scores, y: scored.append((scores.detach(), y)) or loss_fn(scores, y)
    t.run()
    assert type(t.model[-1]).__name__ == "LI"
    scores, y = scored[0]
    assert torch.allclose(scores, torch.softmax(outputs[0], dim=-1).sum(0), atol=1e-6)
    assert _steps(t)[0]["loss"] == pytest.approx(float(nn.functional.cross_entropy(scores, y)), rel=1e-6)


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


@pytest.mark.parametrize("value", [0, -5, 2.5, "5", 701, True])
def test_a_bad_channel_bin_is_refused_by_the_config(value):
    with pytest.raises(ConfigError, match=r"'channel_bin': shd: channel_bin must be (an int )?in 1\.\.700.*got "
                       + re.escape(repr(value))):
        ExperimentConfig.from_dict({"dataset": "shd", "data_kwargs": {"channel_bin": value}})
    with pytest.raises(ConfigError, match="'shd' / 'ssc' only, not of dataset='digits'"):
        ExperimentConfig.from_dict({"data_kwargs": {"channel_bin": 5}})
    assert ExperimentConfig(dataset="ssc", data_kwargs={"channel_bin": 3}).validate().label().split()[1] == "234-128-35"


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
        # their code ends at dcls's SIG = 0.23, a Gaussian of standard deviation SIG + 0.27 (dcls's vgauss kernel)
        assert (cfg.sigma_end, cfg.sigma_anneal_fraction) == (pytest.approx(0.23 + 0.27), 0.25)
    assert preset("dcls_shd", epochs=3, data_root="/x").epochs == 3
    assert shd.label() == "shd 140-256-256-20 multi_spike atan5 dt10ms delays25 bn drop0.4 softmax_sum"
    more = preset("dcls_shd", data_kwargs={"num_workers": 2, "channel_bin": 7})  # merged key by key
    assert more.data_kwargs == {"time_window": 10_000, "channel_bin": 7, "num_workers": 2}
    assert preset("dcls_shd", data_kwargs={"channel_bin": None}).data_kwargs == {"time_window": 10_000}
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
    merged = config_from_args(build_parser().parse_args(["train", "--preset", "dcls_ssc", "--data-kwargs",
                                                         '{"num_workers": 2}']))
    assert merged.data_kwargs == {"time_window": 10_000, "channel_bin": 5, "num_workers": 2}
    with pytest.raises(ConfigError, match="--preset starts a new configuration"):
        config_from_args(build_parser().parse_args(["train", "--preset", "dcls_shd"]), base=cfg.to_dict())
    cfg.data_kwargs["channel_bin"] = 7  # the config's dicts are its own, not the preset's
    cfg.hidden.append(1)
    assert PRESETS["dcls_shd"]["data_kwargs"]["channel_bin"] == 5 and PRESETS["dcls_shd"]["hidden"] == [256, 256]


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
    assert kinds == ["DelayedLinear", "TimeBatchNorm", "LIF", "TimeDropout"] * 2 + ["DelayedLinear", "LI"]
    result = t.run()
    assert all(m.rounded for m in t.model if isinstance(m, sl.DelayedLinear))
    assert result["rounded"] is not None and 0.0 <= result["rounded"]["accuracy"] <= 1.0
    assert [h["sigma"] for h in t.history if h["kind"] == "epoch"] == pytest.approx([12.5, 0.5])


def test_the_memory_estimate_counts_batch_norm_and_dropout():
    from snnlab.training import estimate_memory_bytes

    plain = estimate_memory_bytes(ExperimentConfig(hidden=[100], num_steps=10, batch_size=8))
    both = estimate_memory_bytes(ExperimentConfig(hidden=[100], num_steps=10, batch_size=8, batch_norm=True,
                                                  dropout=0.2))
    assert both["activation_bytes"] - plain["activation_bytes"] == 4 * 4 * 10 * 8 * 100


@pytest.mark.parametrize("name", ["ttfs_mnist5k", "delays_delay_task"])
def test_the_results_presets_are_the_commands_docs_results_spells_out(name):
    """docs/results.md gives each experiment as flags and names its preset: both must be one configuration."""
    import shlex
    from pathlib import Path

    from snnlab.cli import build_parser
    from snnlab.config_args import config_from_args

    text = (Path(__file__).resolve().parents[1] / "docs" / "results.md").read_text()
    section = text[:text.index(f"preset `{name}`")]  # the command is the last bash block before the name
    command = section[section.rindex("```bash") + len("```bash"):section.rindex("```")].replace("\\\n", " ")
    argv = shlex.split(command)[1:]  # without "snnlab"
    grid = [argv[i + 1].split("=")[0] for i, a in enumerate(argv[:-1]) if a == "--grid"]
    documented = config_from_args(build_parser().parse_args(argv)).to_dict()
    ours = preset(name).to_dict()
    assert grid and {k: v for k, v in documented.items() if k not in grid} == {
        k: v for k, v in ours.items() if k not in grid}
    script = (Path(__file__).resolve().parents[1] / "docs" / "results" / "make_results.sh").read_text()
    assert f"--preset {name}" in script
