"""Review s14 (metrics): regression tests for SynOps counting layouts."""
import torch
from torch import nn

import snnlab as sl
from snnlab.metrics import evaluate


def test_time_distributed_linear_on_frames_with_middle_dims_counts_each_sample_alone():
    """TimeDistributed(Linear) on [T, B, C, F] feeds the Linear [T*B, C, F]: read as time-major, one analog sample made
    every sample dense (24.75 SynOps, 240 MACs per sample instead of 102.75 and 60 for the samples alone)."""
    g = torch.Generator().manual_seed(0)
    xe = (torch.rand(6, 3, 2, 5, generator=g) < 0.4).float()
    xa = torch.rand(6, 1, 2, 5, generator=g) * 0.9 + 0.05
    x, y = torch.cat([xe, xa], 1), torch.tensor([0, 1, 2, 0])
    torch.manual_seed(0)
    net = sl.Sequential(sl.TimeDistributed(nn.Linear(5, 4)), sl.LIF(), nn.Flatten(start_dim=2), nn.Linear(8, 3), sl.LI())
    batch = evaluate(net, [(x, y)])
    singles = evaluate(net, [(x[:, i:i + 1], y[i:i + 1]) for i in range(4)])
    for key in ("synops_per_sample", "macs_per_sample", "energy_per_sample_j"):
        assert batch[key] == singles[key], key
    assert batch["macs_per_sample"] == 6 * 2 * 5 * 4 / 4      # only the analog sample's frames run dense
