"""Review of the Trainer's resume and control paths: run() called while start()'s thread trains is refused without
taking that run's folder lock from it; a run of a configuration-built model on the user's data resumes with the class
count its checkpoint trained with (a checkpoint saved before the dataset's num_classes was read had cfg.dataset's)."""
from __future__ import annotations

import threading
import warnings

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

import snnlab as sl
from snnlab.data.collate import time_major_collate
from snnlab.training import ExperimentConfig, Trainer
from snnlab.training.model import build_model
from snnlab.training.run_folder import RunFolderBusy

T, N, C = 4, 6, 3


class _Samples(Dataset):
    def __init__(self, n: int = 12, num_classes: int | None = None) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = (torch.rand(n, T, N, generator=g) < 0.3).float()
        self.y = torch.randint(0, C, (n,), generator=g)
        if num_classes is not None:
            self.num_classes = num_classes

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int):
        return self.x[i], int(self.y[i])


def _loader(**kw) -> DataLoader:
    return DataLoader(_Samples(**kw), batch_size=4, collate_fn=time_major_collate)


def _net() -> torch.nn.Module:
    torch.manual_seed(0)
    return sl.Sequential(torch.nn.Linear(N, 8), sl.LIF(), torch.nn.Linear(8, C), sl.LI())


def _classes(model: torch.nn.Module) -> int:
    return [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1].out_features


def test_run_while_the_background_thread_trains_keeps_its_folder_lock(tmp_path):
    gate = threading.Event()

    def hold(event) -> None:
        if event.kind == "step":
            gate.wait(10)

    cfg = ExperimentConfig(epochs=1, hidden=[8], device="cpu")
    first = Trainer(cfg, model=_net(), train_loader=_loader(), test_loader=_loader(), progress=False,
                    run_dir=tmp_path, callbacks=[hold])
    first.start()
    try:
        with pytest.raises(RuntimeError, match="already running"):
            first.run()
        with pytest.raises(RunFolderBusy):  # the folder is still the running trainer's
            Trainer(cfg, model=_net(), train_loader=_loader(), test_loader=_loader(), progress=False,
                    run_dir=tmp_path, overwrite=True).run()
    finally:
        gate.set()
        first.wait(30)
    assert first.state == "finished"


def test_a_resumed_config_model_on_own_data_keeps_the_class_count_it_trained_with(tmp_path):
    cfg = ExperimentConfig(epochs=1, hidden=[8], device="cpu")  # cfg.dataset digits: 10 classes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # (the data does not tell its class count: cfg.dataset's)
        first = Trainer(cfg, train_loader=_loader(), test_loader=_loader(), progress=False, run_dir=tmp_path)
    first.run()
    assert _classes(first.model) == 10
    # the same data now tells its 3 classes (or: a checkpoint of a version that did not read num_classes)
    resumed = Trainer(cfg.copy(epochs=2), train_loader=_loader(num_classes=C), test_loader=_loader(num_classes=C),
                      progress=False, resume=tmp_path)
    resumed.run()
    assert resumed.state == "finished" and resumed.epoch == 2
    assert _classes(resumed.model) == 10


def test_synapse_weights_reads_a_configured_network_in_layer_order():
    from snnlab.training.model import synapse_weights

    net = build_model(ExperimentConfig(hidden=[16, 5]), 12, 3)
    assert [(i, tuple(w.shape)) for i, w in synapse_weights(net.state_dict())] == [(0, (16, 12)), (2, (5, 16)),
                                                                                     (4, (3, 5))]
    assert synapse_weights(None) == [] and synapse_weights({"a.weight": torch.ones(2, 2)}) == []


class _OwnShuffle(torch.utils.data.Sampler):
    """A sampler of the user's own, shuffling with torch's global generator."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return iter(torch.randperm(self.n).tolist())


def test_an_older_mid_epoch_checkpoint_of_a_loader_with_its_own_sampler_is_warned_about(tmp_path):
    def loader() -> DataLoader:
        return DataLoader(_Samples(), batch_size=4, collate_fn=time_major_collate, sampler=_OwnShuffle(12))

    holder: dict[str, Trainer] = {}

    def stop_at_4(event) -> None:
        if event.kind == "step" and event.step == 4:  # 3 batches an epoch: one of epoch 2 done
            holder["trainer"].stop()

    cfg = ExperimentConfig(epochs=2, hidden=[8], device="cpu")
    first = Trainer(cfg, model=_net(), train_loader=loader(), test_loader=_loader(), progress=False,
                    run_dir=tmp_path, callbacks=[stop_at_4])
    holder["trainer"] = first
    first.run()
    assert first.state == "stopped"
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    del ckpt["epoch_progress"]["global_rng"]  # as written before the field was kept
    torch.save(ckpt, tmp_path / "checkpoint.pt")
    resumed = Trainer(cfg, model=_net(), train_loader=loader(), test_loader=_loader(), progress=False,
                      resume=tmp_path)
    with pytest.warns(UserWarning, match="did not keep the global random state"):
        resumed.run()
    assert resumed.state == "finished"


def test_a_resume_with_persistent_workers_is_warned_about_as_not_bit_exact(tmp_path):
    # (a reviewer measured a max weight difference of 0.004 after a resume: the workers' random states carry over
    # between epochs in the run never interrupted, and a resumed run starts new ones)
    from torch.utils.data import TensorDataset

    torch.manual_seed(0)
    ds = TensorDataset((torch.rand(8, 4, 6) < 0.3).float(), torch.arange(8) % 2)
    ds.num_classes = 2

    def loaders(persistent: bool):
        kw = dict(num_workers=1, persistent_workers=True) if persistent else {}
        return (DataLoader(ds, batch_size=4, collate_fn=time_major_collate, **kw),
                DataLoader(ds, batch_size=4, collate_fn=time_major_collate))

    cfg = ExperimentConfig(hidden=[4], epochs=1, num_steps=4)
    Trainer(cfg, train_loader=loaders(False)[0], test_loader=loaders(False)[1], run_dir=tmp_path / "r",
            progress=False).run()
    more = cfg.copy(epochs=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tr, te = loaders(False)
        Trainer(more, train_loader=tr, test_loader=te, resume=tmp_path / "r", run_dir=tmp_path / "r", progress=False)
    assert not [w for w in caught if "persistent_workers" in str(w.message)]
    with pytest.warns(UserWarning, match=r"persistent_workers=True.*bit-exact resumes") as record:
        tr, te = loaders(True)
        Trainer(more, train_loader=tr, test_loader=te, resume=tmp_path / "r", run_dir=tmp_path / "r", progress=False)
    assert any(w.filename == __file__ for w in record if "persistent_workers" in str(w.message))
