"""An unwrapped torch convolution / pooling / batch norm in snnlab.Sequential given a time-major tensor is named."""
import importlib.util

import pytest
import torch

import snnlab as sl


@pytest.mark.parametrize("layers,index,kind", [
    ((torch.nn.Conv2d(2, 4, 3),), 0, "Conv2d"),
    ((sl.TimeDistributed(torch.nn.Conv2d(2, 4, 3)), sl.LIF(), torch.nn.MaxPool2d(2)), 2, "MaxPool2d"),
    ((torch.nn.BatchNorm2d(2),), 0, "BatchNorm2d"),
])
def test_sequential_names_an_unwrapped_frame_layer(layers, index, kind):
    net = sl.Sequential(*layers)
    with pytest.raises(ValueError, match=rf"Sequential: layer {index} \({kind}\).*TimeDistributed") as err:
        net(torch.rand(3, 2, 2, 10, 10))
    assert "(3, 2, " in str(err.value)


def test_sequential_refuses_only_the_unambiguous_case():
    x = torch.rand(3, 2, 2, 10, 10)
    with pytest.raises(ValueError, match=r"wrap it in snnlab\.TimeDistributed\(Conv2d\(\.\.\.\)\)"):
        sl.Sequential(torch.nn.Conv2d(2, 4, 3))(x)
    wrapped = sl.Sequential(sl.TimeDistributed(torch.nn.Conv2d(2, 4, 3)), sl.LIF())
    assert wrapped(x).shape == (3, 2, 4, 8, 8)
    frames = sl.Sequential(torch.nn.Conv2d(2, 4, 3))  # 4-D: frames as torch takes them (not time-major)
    assert frames(x[0]).shape == (2, 4, 8, 8)

    class TimeConv(torch.nn.Conv2d):  # a subclass with its own forward takes what it says
        def forward(self, x):
            return super().forward(x.flatten(0, 1)).unflatten(0, x.shape[:2])

    assert sl.Sequential(TimeConv(2, 4, 3))(x).shape == (3, 2, 4, 8, 8)
    features = sl.Sequential(torch.nn.Linear(5, 4), sl.TimeBatchNorm(4), sl.LIF())  # snnlab's own batch norm
    assert features(torch.rand(6, 3, 5)).shape == (6, 3, 4)

    if importlib.util.find_spec("nir") is not None:  # and it still exports to NIR, as an nn.Sequential does
        from snnlab.interop.nir import from_nir, to_nir

        net = sl.Sequential(torch.nn.Linear(3, 4), sl.LIF(tau_mem=5.0), torch.nn.Linear(4, 2), sl.LI(tau_mem=5.0))
        x = torch.rand(6, 2, 3)
        assert torch.equal(from_nir(to_nir(net, dt=1e-3))(x), net(x))

        class Own(sl.Sequential):  # a subclass with its own forward is still refused, as for nn.Sequential
            def forward(self, x):
                return super().forward(x) * 2

        with pytest.raises(ValueError, match="overrides forward"):
            to_nir(Own(torch.nn.Linear(3, 2), sl.LI()), dt=1e-3)
