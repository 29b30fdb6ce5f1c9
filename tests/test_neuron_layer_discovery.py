"""One place finds a model's neuron layers (snnlab.core.network.neuron_layers); snnlab.Sequential names an unwrapped
torch frame layer inside plain nn.Sequential children by its dotted path."""
from collections import OrderedDict

import pytest
import torch
from torch import nn

import snnlab as sl

torch.set_num_threads(1)


def test_neuron_layers_names_every_lif_and_li_in_module_order():
    from snnlab.core.network import neuron_layers  # (imported here: the Sequential tests below stand without it)

    inner = nn.Sequential(nn.Linear(3, 4), sl.ALIF(), sl.LI())
    net = sl.Sequential(nn.Linear(2, 3), sl.LIF(), inner, nn.Linear(4, 2), sl.LI())
    layers = neuron_layers(net)
    assert list(layers) == ["1", "2.1", "2.2", "4"]  # (subclasses included, nested ones by their dotted names)
    assert list(layers.values()) == [net[1], inner[1], inner[2], net[4]]
    assert neuron_layers(net) == net.neuron_layers() == sl.Monitor(net).layers
    lif = sl.LIF()
    assert neuron_layers(lif) == {"": lif}
    assert neuron_layers(lif, root_name="(the model)") == {"(the model)": lif}
    assert neuron_layers(nn.Linear(2, 2), who="reset_states") == {}
    with pytest.raises(TypeError, match=r"^reset_states: model must be a torch.nn.Module, got list$"):
        neuron_layers([lif], who="reset_states")


def test_sequential_names_an_unwrapped_frame_layer_inside_plain_sequential_children():
    x = torch.rand(3, 2, 2, 8, 8)
    net = sl.Sequential(nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU()), sl.LIF())
    hint = (r"^Sequential: layer '0\.0' \(Conv2d\) takes frames \[N, C, H, W\] .*shape \(3, 2, 2, 8, 8\).*"
            r"snnlab\.TimeDistributed\(Conv2d\(\.\.\.\)\)")
    with pytest.raises(ValueError, match=hint) as err:
        net(x)
    assert isinstance(err.value.__cause__, RuntimeError)  # (torch's own message kept as the cause)
    deep = sl.Sequential(nn.Identity(), nn.Sequential(nn.ReLU(), nn.Sequential(nn.MaxPool2d(2))), sl.LIF())
    with pytest.raises(ValueError, match=r"^Sequential: layer '1\.1\.0' \(MaxPool2d\)"):
        deep(x)
    named = sl.Sequential(OrderedDict(block=nn.Sequential(OrderedDict(norm=nn.BatchNorm2d(2))), lif=sl.LIF()))
    with pytest.raises(ValueError, match=r"^Sequential: layer 'block\.norm' \(BatchNorm2d\)"):
        named(x)

    # what torch takes inside the nested child runs as it does in nn.Sequential
    wrapped = sl.Sequential(nn.Sequential(sl.TimeDistributed(nn.Conv2d(2, 4, 3)), nn.ReLU()), sl.LIF())
    assert wrapped(x).shape == (3, 2, 4, 8 - 2, 8 - 2)
    pooled = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(2))  # (a mean over H, W of [T, B, C, H, W])
    assert torch.equal(sl.Sequential(pooled)(x), x.mean(dim=(-2, -1)))
    conv = nn.Conv2d(2, 3, 3)
    conv.register_forward_pre_hook(lambda m, args: (args[0].flatten(0, 1),))
    conv.register_forward_hook(lambda m, args, out: out.unflatten(0, (3, 2)))
    assert torch.equal(sl.Sequential(nn.Sequential(conv))(x), conv(x))

    class Block(nn.Module):  # a module of your own: torch's error, as before
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(2, 4, 3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x)

    with pytest.raises(RuntimeError, match="Expected 3D"):
        sl.Sequential(Block())(x)
    with pytest.raises(RuntimeError, match="mat1 and mat2"):  # (not a frame layer: torch's error as it is)
        sl.Sequential(nn.Sequential(nn.Linear(3, 4)))(x)
