"""Neuromorphic datasets (SHD, SSC, N-MNIST, DVS Gesture, POKER-DVS) from a LOCAL folder only.

The files are read directly (``h5py`` for SHD/SSC, :func:`tonic.io.read_mnist_file` for
N-MNIST, ``numpy.load`` for tonic's preprocessed DVS Gesture / POKER-DVS arrays) and binned into
the frames of :class:`tonic.transforms.ToFrame` (a vectorised ``np.bincount`` over tonic's own slices,
:func:`_frame_counts`; float32 counts, which do not wrap past 32767 events per cell as tonic's int16 frames do). tonic's dataset classes are never constructed, so no download
or checksum step can ever run. A missing or incomplete folder raises ``FileNotFoundError`` that
says which files to put where and where to get them.

Samples are time-major frames ``[T, C...]`` (``[T, 700]`` for SHD/SSC, ``[T, ceil(700 / channel_bin)]``
with ``channel_bin`` adjacent channels summed, ``[T, 2, H, W]`` for the cameras);
:func:`make_neuromorphic_loader` yields batches ``[T, B, C...]``. With ``cache_dir``
each binned sample is stored once on disk (keyed by every binning parameter), so later epochs
skip re-binning.

Expected layouts (``root`` is the folder you pass; the tonic sub-folder name is optional)::

    root/[SHD/]shd_train.h5, shd_test.h5                 (zenkelab.org/datasets, gunzip the .h5.gz)
    root/[SSC/]ssc_train.h5, ssc_valid.h5, ssc_test.h5   (same site)
    root/[NMNIST/]{Train,Test}/<digit>/<id>.bin          (Orchard et al., Train.zip / Test.zip)
    root/[DVSGesture/]ibmGestureTrain|ibmGestureTest/userNN_<lighting>/<label>.npy
                                                        (tonic's preprocessed ibmGesture*.tar.gz)
    root/[POKERDVS/]pips_train|pips_test/<folder ending in cl|he|di|sp>/<id>.npy
                                                        (tonic's pips_train.tar.gz / pips_test.tar.gz)

Modules: ``roots`` (dataset specs, the shared data folder, finding the files), ``frames`` (binning,
:class:`EventFrameDataset`, :func:`make_neuromorphic_loader`), ``heidelberg`` (SHD / SSC), ``nmnist`` (N-MNIST),
``dvs`` (DVS Gesture / POKER-DVS); this package re-exports their names and holds :func:`load_neuromorphic`.
"""
from __future__ import annotations

import os
from collections.abc import Callable

from .dvs import load_dvs_gesture, load_pokerdvs
from .frames import (AUDIO_DTYPE, MAX_FRAMES, MAX_SAMPLE_BYTES, XYTP_DTYPE, EventFrameDataset, check_channel_bin,
                     check_frame_settings, make_neuromorphic_loader, max_sample_steps, whole_frames)
from .heidelberg import load_shd, load_ssc
from .nmnist import load_nmnist, write_nmnist_bin
from .roots import NEUROMORPHIC_DATASETS, find_dataset, shared_data_root

__all__ = [
    "NEUROMORPHIC_DATASETS",
    "EventFrameDataset",
    "load_shd",
    "load_ssc",
    "load_nmnist",
    "load_dvs_gesture",
    "load_pokerdvs",
    "load_neuromorphic",
    "make_neuromorphic_loader",
    "max_sample_steps",
    "shared_data_root",
    "write_nmnist_bin",
    "whole_frames",
    "MAX_FRAMES",
    "check_frame_settings",
    "MAX_SAMPLE_BYTES",
    "check_channel_bin",
    "AUDIO_DTYPE",
    "XYTP_DTYPE",
    "find_dataset",
]


_LOADERS: dict[str, Callable[..., EventFrameDataset]] = {
    "shd": load_shd, "ssc": load_ssc, "nmnist": load_nmnist, "dvsgesture": load_dvs_gesture, "pokerdvs": load_pokerdvs,
}


def load_neuromorphic(name: str, root: str | os.PathLike, split: str = "train", **kwargs: object) -> EventFrameDataset:
    """Dispatch to the loader for ``name`` in ``{"shd", "ssc", "nmnist", "dvsgesture", "pokerdvs"}``.

    ``kwargs`` go to that loader; ``channel_bin`` is for ``"shd"`` / ``"ssc"`` only (``TypeError`` elsewhere).

    Example:
        >>> load_neuromorphic("shd", "/nonexistent")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        FileNotFoundError: shd: shd_train.h5 not found under /nonexistent ...
    """
    key = name.lower().replace("-", "").replace("_", "")
    if key not in _LOADERS:
        raise ValueError(f"unknown neuromorphic dataset {name!r}; choose one of {sorted(_LOADERS)}")
    if "channel_bin" in kwargs and key not in ("shd", "ssc"):  # as for any keyword its loader does not take
        raise TypeError(f"{key}: channel_bin sums adjacent audio channels and applies to 'shd' and 'ssc' only; "
                        f"drop it for {key}")
    return _LOADERS[key](root, split, **kwargs)
