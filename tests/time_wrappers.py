"""A per-frame module called once per time step, for tests of layouts other than sl.TimeDistributed's."""
import torch
from torch import nn


class PerStep(nn.Module):
    """The same per-frame module called once per time step on ``[B, ...]`` (a loop over time)."""

    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return torch.stack([self.m(x[t]) for t in range(x.shape[0])])
