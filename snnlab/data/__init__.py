"""Data for snnlab: encoders, embedded datasets, synthetic tasks, neuromorphic and audio loaders.

All batches are time-major: ``x [T, B, ...]``, ``y [B]``. Nothing here downloads anything.
"""
from __future__ import annotations

from .collate import EncodeCollate, PadCollate, time_major_collate
from .embedded import EMBEDDED_DATASETS, load_digits_dataset, make_encoder, make_loaders
from .encoders import (
    DirectEncoder,
    LatencyEncoder,
    RateEncoder,
    direct_encode,
    latency_encode,
    rate_encode,
    spike_times_to_dense,
)
from .synthetic import SpikeTimesDataset, make_delay_task, make_randman
from .audio import Cochlea, FSDDDataset, audio_to_spikes, load_fsdd, read_wav, spikes_to_events
from .cache import DiskCache
from .neuromorphic import (
    NEUROMORPHIC_DATASETS,
    EventFrameDataset,
    load_dvs_gesture,
    load_neuromorphic,
    load_nmnist,
    load_pokerdvs,
    load_shd,
    load_ssc,
    make_neuromorphic_loader,
    max_sample_steps,
    shared_data_root,
)

__all__ = [
    "EncodeCollate", "PadCollate", "time_major_collate",
    "EMBEDDED_DATASETS", "load_digits_dataset", "make_encoder", "make_loaders",
    "DirectEncoder", "LatencyEncoder", "RateEncoder", "direct_encode", "latency_encode", "rate_encode",
    "spike_times_to_dense",
    "SpikeTimesDataset", "make_delay_task", "make_randman",
    "Cochlea", "FSDDDataset", "audio_to_spikes", "load_fsdd", "read_wav", "spikes_to_events",
    "DiskCache",
    "NEUROMORPHIC_DATASETS", "EventFrameDataset", "load_dvs_gesture", "load_neuromorphic", "load_nmnist",
    "load_pokerdvs", "load_shd", "load_ssc", "make_neuromorphic_loader", "max_sample_steps", "shared_data_root",
]
