"""Where neuromorphic data lives: the dataset specs, the default shared data folder, the resolution of files and
split folders under a root, and the missing-file / label errors that say what to put where."""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class _Spec:
    sensor_size: tuple[int, int, int]
    n_classes: int
    subfolder: str
    source: str
    longest_us: float | None = None  # about the longest recording (a generous bound): estimates the frames of a
    # time_window alone, for the memory estimate, the label and validate()'s max_delay check


NEUROMORPHIC_DATASETS: dict[str, _Spec] = {
    "shd": _Spec((700, 1, 1), 20, "SHD",
                 "https://zenkelab.org/datasets/ (shd_train.h5.gz, shd_test.h5.gz; gunzip them)", 1.4e6),
    "ssc": _Spec((700, 1, 1), 35, "SSC",
                 "https://zenkelab.org/datasets/ (ssc_train.h5.gz, ssc_valid.h5.gz, ssc_test.h5.gz; gunzip them)",
                 1.0e6),
    "nmnist": _Spec((34, 34, 2), 10, "NMNIST",
                    "https://www.garrickorchard.com/datasets/n-mnist (Train.zip and Test.zip, unzip them)", 0.35e6),
    "dvsgesture": _Spec((128, 128, 2), 11, "DVSGesture",
                        "tonic's preprocessed archives ibmGestureTrain.tar.gz / ibmGestureTest.tar.gz "
                        "(https://figshare.com/ndownloader/files/38022171 and .../38020584), extract them", 7e6),
    "pokerdvs": _Spec((35, 35, 2), 4, "POKERDVS",
                      "tonic's pips_train.tar.gz / pips_test.tar.gz (POKER-DVS, "
                      "http://www2.imse-cnm.csic.es/caviar/POKERDVS.html), extract them"),
}


def shared_data_root() -> Path:
    """Default folder of datasets: ``$SNNLAB_SHARED_DATA``, else ``shared/data`` next to a source checkout
    (``<checkout>/../shared/data``) when that folder exists, else ``$XDG_DATA_HOME/snnlab`` (an absolute
    one; default ``~/.local/share/snnlab``). Loaders and configurations take their own folder too (``data_root=``,
    ``snnlab train --data-root``).

    Example:
        >>> isinstance(shared_data_root(), Path)
        True
    """
    env = os.environ.get("SNNLAB_SHARED_DATA")
    if env:
        return Path(env).expanduser()
    checkout = Path(__file__).resolve().parents[3]  # the repository when snnlab runs from a source tree
    repo_data = checkout.parent / "shared" / "data"
    if (checkout / "pyproject.toml").is_file() and repo_data.is_dir():
        return repo_data
    from snnlab.kernels.c_build import xdg_base_dir  # (a relative $XDG_DATA_HOME is ignored)

    return xdg_base_dir("XDG_DATA_HOME", os.path.join(".local", "share")) / "snnlab"


_WHERE_DATA_GOES = ("Pass the folder holding it as data_root= (snnlab train --data-root PATH, the dashboard's "
                   "data_root field) or set SNNLAB_SHARED_DATA to it.")


def _missing(name: str, root: Path, what: str) -> FileNotFoundError:
    spec = NEUROMORPHIC_DATASETS[name]
    also = ", ".join(str(b) for b in _bases(name, root)[1:])
    return FileNotFoundError(
        f"{name}: {what} under {root} (also looked in {also}). "
        f"Get the data from {spec.source} and place it as described: {_LAYOUT[name]}. {_WHERE_DATA_GOES} "
        "snnlab never downloads datasets."
    )


_LAYOUT = {
    "shd": "<root>/shd_train.h5 and <root>/shd_test.h5 (HDF5 with spikes/times, spikes/units, labels)",
    "ssc": "<root>/ssc_train.h5, <root>/ssc_valid.h5, <root>/ssc_test.h5 (HDF5 with spikes/times, spikes/units, labels)",
    "nmnist": "<root>/NMNIST/Train/<digit>/<id>.bin and <root>/NMNIST/Test/<digit>/<id>.bin",
    "dvsgesture": "<root>/DVSGesture/ibmGestureTrain/userNN_<lighting>/<label>.npy (and ibmGestureTest/...)",
    "pokerdvs": "<root>/POKERDVS/pips_train/<folder ending in cl|he|di|sp>/<id>.npy (and pips_test/...)",
}


# Further folders (relative to root) searched for a dataset: the shared data folder keeps its N-MNIST
# subset in nmnist_small/NMNIST (see shared_data_root()), so that folder works as a root for every dataset.
_ALSO_UNDER: dict[str, tuple[str, ...]] = {"nmnist": ("nmnist_small/NMNIST",)}


def _bases(name: str, root: str | os.PathLike) -> list[Path]:
    """The folders searched for dataset ``name`` under ``root``, in order."""
    root = Path(root).expanduser()
    return [root, root / NEUROMORPHIC_DATASETS[name].subfolder] + [root / r for r in _ALSO_UNDER.get(name, ())]


def _resolve(name: str, root: str | os.PathLike, rel: str) -> Path | None:
    for base in _bases(name, root):
        if (base / rel).exists():
            return base / rel
    return None


#: the (train, test) folders of the datasets stored as a folder per split (SHD / SSC: a file per split, _h5_file)
_SPLIT_FOLDERS = {"nmnist": ("Train", "Test"), "dvsgesture": ("ibmGestureTrain", "ibmGestureTest"),
                  "pokerdvs": ("pips_train", "pips_test")}


def _h5_file(name: str, split: str) -> str:
    """The file of an SHD / SSC split."""
    return f"{name}_{split}.h5"


def find_dataset(name: str, root: str | os.PathLike) -> Path | None:
    """The training file or folder of neuromorphic dataset ``name`` under ``root``, where its loader looks for it
    (also in the dataset's tonic sub-folder), or None where there is none.

    Example:
        >>> find_dataset("shd", "/nonexistent") is None
        True
    """
    if name not in NEUROMORPHIC_DATASETS:
        raise ValueError(f"find_dataset: unknown dataset {name!r}; choose one of {sorted(NEUROMORPHIC_DATASETS)}")
    return _resolve(name, root, _SPLIT_FOLDERS[name][0] if name in _SPLIT_FOLDERS else _h5_file(name, "train"))


def _split_folder(name: str, root: str | os.PathLike, split: str) -> Path:
    """The existing folder of ``split`` (``"train"`` / ``"test"``, named as :data:`_SPLIT_FOLDERS` says) under
    ``root``; clear errors otherwise."""
    if split not in ("train", "test"):
        raise ValueError(f"{name}: unknown split {split!r}; choose 'train' or 'test'")
    folder = _SPLIT_FOLDERS[name][0 if split == "train" else 1]
    base = _resolve(name, root, folder)
    if base is None:
        raise _missing(name, Path(root), f"folder {folder}/ not found")
    return base


def _check_labels(name: str, labels: list[int] | np.ndarray, where: Callable[[int], str]) -> None:
    """Raise ``ValueError`` naming the first sample (``where(i)``) whose label is not in ``0..n_classes - 1``."""
    n = NEUROMORPHIC_DATASETS[name].n_classes
    labels = np.asarray(labels, dtype=np.int64)
    bad = np.flatnonzero((labels < 0) | (labels >= n))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{name}: {where(i)} has label {int(labels[i])}, outside 0..{n - 1} ({name} has {n} classes; "
                         f"{bad.size} samples have such labels): the file is corrupt or belongs to another dataset")
