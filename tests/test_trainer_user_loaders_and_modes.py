"""The Trainer with the user's own loaders and models, and in the caller's modes: a mid-epoch resume of a loader that
shuffles with torch's global generator repeats the uninterrupted run bit for bit; stop / pause / wait called in the
training thread (a callback) return at once; run() trains under set_grad_enabled(False) and inference_mode; a
config-built model on data passed in takes its class count from the dataset (or says where it comes from); clear
errors for a neuron layer returning a tuple and one-hot labels; spike_reg without an LIF layer is warned about."""
from __future__ import annotations

import threading
import warnings

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import snnlab as sl
from snnlab.data.collate import time_major_collate
from snnlab.training import ExperimentConfig, Trainer

T, N, C = 4, 6, 3


class _Samples(Dataset):
    """``n`` random spike trains ``[T, N]`` with labels in ``[0, n_classes)``; ``num_classes`` set when asked."""

    def __init__(self, n: int = 24, seed: int = 0, n_classes: int = C, tell: str | None = None) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = (torch.rand(n, T, N, generator=g) < 0.3).float()
        self.y = torch.randint(0, n_classes, (n,), generator=g)
        if tell == "num_classes":
            self.num_classes = n_classes
        elif tell == "classes":
            self.classes = [f"c{i}" for i in range(n_classes)]

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i], int(self.y[i])


def _loaders(bs: int = 4, **kw) -> tuple[DataLoader, DataLoader]:
    return (DataLoader(_Samples(24, 0), batch_size=bs, collate_fn=time_major_collate, **kw),
            DataLoader(_Samples(8, 1), batch_size=bs, collate_fn=time_major_collate))


def _net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return sl.Sequential(torch.nn.Linear(N, 8), sl.LIF(), torch.nn.Linear(8, C), sl.LI())


def _cfg(**kw) -> ExperimentConfig:
    return ExperimentConfig(**({"epochs": 2, "batch_size": 4, "hidden": [8], "device": "cpu"} | kw))


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))


def _stop_at(step: int):
    holder: dict[str, Trainer] = {}

    def callback(event) -> None:
        if event.kind == "step" and event.step == step:
            holder["trainer"].stop()
    return holder, callback


# ------------------------------------------------------------------------------ item 1: global-generator shuffles
def test_mid_epoch_resume_of_a_loader_shuffling_with_the_global_generator_is_bit_exact(tmp_path):
    """DataLoader(shuffle=True) without generator= draws its order from torch's global generator; a run stopped
    inside an epoch and resumed trained that epoch on another order (samples twice and never)."""
    train, test = _loaders(shuffle=True)
    straight = Trainer(_cfg(), model=_net(), train_loader=train, test_loader=test, progress=False)
    straight.run()

    seen: list[int] = []
    key = {tuple(_Samples(24, 0).x[i].flatten().tolist()): i for i in range(24)}

    def track(model):
        model.register_forward_pre_hook(lambda m, inp: seen.extend(
            key[tuple(inp[0][:, b].flatten().tolist())] for b in range(inp[0].shape[1])) if m.training else None)
        return model

    holder, callback = _stop_at(8)  # 6 batches an epoch: 2 of epoch 2 done
    train, test = _loaders(shuffle=True)
    first = Trainer(_cfg(), model=track(_net()), train_loader=train, test_loader=test, progress=False,
                    run_dir=tmp_path, callbacks=[callback])
    holder["trainer"] = first
    first.run()
    assert first.state == "stopped" and first.step == 8
    train, test = _loaders(shuffle=True)
    resumed = Trainer(_cfg(), model=track(_net(seed=5)), train_loader=train, test_loader=test, progress=False,
                      resume=tmp_path)
    resumed.run()
    assert resumed.state == "finished" and resumed.step == straight.step == 12
    assert sorted(seen[24:]) == list(range(24))  # the resumed epoch: every sample once
    assert _same_weights(straight.model, resumed.model)


def test_an_older_mid_epoch_checkpoint_still_resumes_with_a_warning(tmp_path):
    holder, callback = _stop_at(8)
    train, test = _loaders(shuffle=True)
    first = Trainer(_cfg(), model=_net(), train_loader=train, test_loader=test, progress=False, run_dir=tmp_path,
                    callbacks=[callback])
    holder["trainer"] = first
    first.run()
    path = tmp_path / "checkpoint.pt"
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["epoch_progress"]["global_rng"]["torch"].dtype == torch.uint8
    del ckpt["epoch_progress"]["global_rng"]  # as written before the field
    torch.save(ckpt, path)
    train, test = _loaders(shuffle=True)
    resumed = Trainer(_cfg(), model=_net(), train_loader=train, test_loader=test, progress=False, resume=tmp_path)
    with pytest.warns(UserWarning, match="did not keep the global random state"):
        resumed.run()
    assert resumed.state == "finished" and resumed.step == 12


def test_no_warning_for_an_older_checkpoint_of_a_loader_with_its_own_generator(tmp_path):
    def loaders():
        return _loaders(shuffle=True, generator=torch.Generator().manual_seed(3))
    holder, callback = _stop_at(8)
    train, test = loaders()
    first = Trainer(_cfg(), model=_net(), train_loader=train, test_loader=test, progress=False, run_dir=tmp_path,
                    callbacks=[callback])
    holder["trainer"] = first
    first.run()
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    del ckpt["epoch_progress"]["global_rng"]
    torch.save(ckpt, tmp_path / "checkpoint.pt")
    train, test = loaders()
    resumed = Trainer(_cfg(), model=_net(), train_loader=train, test_loader=test, progress=False, resume=tmp_path)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*global random state")
        resumed.run()
    assert resumed.state == "finished"


# ---------------------------------------------------------------------------- item 2: control from the training thread
def _run_guarded(trainer: Trainer) -> None:
    """Run ``trainer`` in a thread, joined with a generous guard (a hang fails the test instead of the suite)."""
    worker = threading.Thread(target=trainer.run, kwargs={"raise_errors": False}, daemon=True)
    worker.start()
    worker.join(120)
    assert not worker.is_alive(), "the run hung"


@pytest.mark.parametrize("call", ["stop_wait", "wait"])
def test_stop_wait_and_wait_in_a_callback_return_at_once(call):
    answers = []
    holder: dict[str, Trainer] = {}

    def callback(event) -> None:
        if event.kind == "step" and event.step == 2:
            trainer = holder["trainer"]
            if call == "stop_wait":
                answers.append(trainer.stop(wait=True, reason="early stop"))
            else:
                answers.append(trainer.wait())
                trainer.stop()

    train, test = _loaders()
    trainer = Trainer(_cfg(), model=_net(), train_loader=train, test_loader=test, progress=False,
                      callbacks=[callback])
    holder["trainer"] = trainer
    _run_guarded(trainer)
    assert trainer.state == "stopped" and trainer.step == 2
    assert answers == ([True] if call == "stop_wait" else [False])  # wait(): the run is still running


def test_pause_wait_in_a_callback_returns_and_the_run_pauses():
    answers = []
    holder: dict[str, Trainer] = {}

    def callback(event) -> None:
        if event.kind == "step" and event.step == 2:
            answers.append(holder["trainer"].pause(wait=True))

    train, test = _loaders()
    trainer = Trainer(_cfg(), model=_net(), train_loader=train, test_loader=test, progress=False,
                      callbacks=[callback])
    holder["trainer"] = trainer
    paused = threading.Event()
    trainer.events.subscribe(lambda e: paused.set() if e.kind == "paused" else None)
    trainer.start()
    assert paused.wait(120), "the run did not pause"  # (the pause the callback asked for)
    assert answers == [True] and trainer.state == "paused" and trainer.step == 2
    assert trainer.stop(wait=True, timeout=120) and trainer.state == "stopped" and trainer.step == 2


# ------------------------------------------------------------------------------ item 5: the caller's grad mode
def test_run_trains_with_gradients_switched_off_by_the_caller():
    train, test = _loaders()
    ref = Trainer(_cfg(epochs=1), model=_net(), train_loader=train, test_loader=test, progress=False)
    ref.run()
    train, test = _loaders()
    trainer = Trainer(_cfg(epochs=1), model=_net(), train_loader=train, test_loader=test, progress=False)
    before = torch.is_grad_enabled()
    torch.set_grad_enabled(False)
    try:
        trainer.run()
        assert not torch.is_grad_enabled()  # the caller's mode is left as it was
    finally:
        torch.set_grad_enabled(before)
    assert trainer.state == "finished" and _same_weights(ref.model, trainer.model)


def test_run_trains_inside_inference_mode():
    """The data, the model built from cfg and the run all inside ``torch.inference_mode()``."""
    def trainer() -> Trainer:
        train = DataLoader(_Samples(16, 0, C, "num_classes"), batch_size=8, collate_fn=time_major_collate)
        return Trainer(_cfg(epochs=1), train_loader=train, test_loader=train, progress=False)

    ref = trainer()
    ref.run()
    with torch.inference_mode():
        inside = trainer()
        inside.run()
        assert torch.is_inference_mode_enabled()
    assert inside.state == "finished" and _same_weights(ref.model, inside.model)
    assert not any(p.is_inference() for p in inside.model.parameters())


def test_a_model_built_under_inference_mode_is_refused_clearly():
    with torch.inference_mode():
        model = _net()
    train, test = _loaders()
    with pytest.raises(ValueError, match="Trainer: the model's parameter '0.weight' is an inference tensor"):
        Trainer(_cfg(), model=model, train_loader=train, test_loader=test, progress=False)


# ------------------------------------------------------------------------------ item 3: classes of data passed in
@pytest.mark.parametrize("tell", ["num_classes", "classes"])
@pytest.mark.parametrize("n_classes", [3, 20])
def test_a_configured_model_takes_the_class_count_of_the_dataset_passed_in(tell, n_classes):
    train = DataLoader(_Samples(16, 0, n_classes, tell), batch_size=8, collate_fn=time_major_collate)
    test = DataLoader(_Samples(8, 1, n_classes, tell), batch_size=8, collate_fn=time_major_collate)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*class count")
        trainer = Trainer(_cfg(epochs=1), train_loader=train, test_loader=test, progress=False)
    assert trainer.model(torch.zeros(T, 2, N)).shape[-1] == n_classes
    assert trainer.label == f"{N}-8-{n_classes} multi_spike atan (custom data)"  # no dataset named, its sizes
    trainer.run()
    assert trainer.state == "finished"


def test_data_without_a_class_count_is_said_or_refused():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(T, 8, N, generator=g)
    many = [(x, torch.arange(8) + 10)]  # labels up to 17: not cfg.dataset's 10 classes
    with pytest.raises(ValueError, match="labels go up to 17.*10 classes of cfg.dataset \\('digits'\\).*num_classes"):
        Trainer(_cfg(epochs=1), train_loader=many, test_loader=many, progress=False)
    few = [(x, torch.arange(8) % 3)]
    with pytest.warns(UserWarning, match="gets 10 outputs, the class count of cfg.dataset \\('digits'\\)"):
        trainer = Trainer(_cfg(epochs=1), train_loader=few, test_loader=few, progress=False)
    assert not trainer.label.startswith("digits")


# ------------------------------------------------------------------------------ item 4 and 6: clear errors, a warning
def test_a_neuron_layer_returning_a_tuple_is_a_clear_type_error():
    class TupleLIF(sl.LIF):
        def forward(self, x):
            return super().forward(x), x

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.lif, self.fc2, self.out = torch.nn.Linear(N, 8), TupleLIF(), torch.nn.Linear(8, C), sl.LI()

        def forward(self, x):
            s, _ = self.lif(self.fc1(x))
            return self.out(self.fc2(s))

    train, test = _loaders()
    trainer = Trainer(_cfg(epochs=1), model=Net(), train_loader=train, test_loader=test, progress=False)
    with pytest.raises(TypeError, match="Trainer: layer 'lif' \\(TupleLIF\\) returned tuple, not a tensor"):
        trainer.run()
    assert trainer.state == "failed"


def test_one_hot_labels_are_refused_as_such():
    x, y = torch.rand(T, 4, N), torch.tensor([0, 2, 1, 0])
    one_hot = [(x, torch.nn.functional.one_hot(y, C))]
    trainer = Trainer(_cfg(epochs=1), model=_net(), train_loader=one_hot, test_loader=[(x, y)], progress=False)
    with pytest.raises(ValueError, match=r"labels of shape \(4, 3\) for 4 samples: y must be class indices \[B\]"):
        trainer.run()
    from snnlab.metrics import evaluate

    with pytest.raises(ValueError, match=r"evaluate: batch 0 has labels of shape \(4, 3\) for 4 samples"):
        evaluate(_net(), one_hot)  # (the same check: it used to say "has 12 labels ... x must be time-major")


def test_spike_reg_without_lif_layers_is_warned_once():
    class Step(torch.nn.Module):
        def forward(self, x):
            return (x > 0.5).float() + x - x.detach()

    model = sl.Sequential(torch.nn.Linear(N, 8), Step(), torch.nn.Linear(8, C), sl.LI())
    train, test = _loaders()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Trainer(_cfg(spike_reg=1.0, epochs=1), model=model, train_loader=train, test_loader=test, progress=False).run()
        Trainer(_cfg(spike_reg=1.0, epochs=1), model=_net(), train_loader=train, test_loader=test, progress=False).run()
    said = [w for w in caught if "spike_reg=1 does nothing" in str(w.message)]
    assert len(said) == 1 and said[0].filename == __file__
