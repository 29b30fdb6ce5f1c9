"""Attack review (s17) of snnlab.Sequential's frame-layer check: only what torch itself refuses is refused."""
import pytest
import torch

import snnlab as sl


def test_sequential_keeps_global_average_pooling_of_time_major_maps():
    # nn.AdaptiveAvgPool2d(1) takes [T, B, C, H, W] as it is (a mean over H, W), the usual end of a conv SNN
    torch.manual_seed(0)
    x = torch.rand(3, 2, 4, 6, 6)
    layers = (sl.TimeDistributed(torch.nn.Conv2d(4, 4, 1)), sl.LIF(threshold=0.2), torch.nn.AdaptiveAvgPool2d(1),
              torch.nn.Flatten(2), torch.nn.Linear(4, 2), sl.LI())
    net = sl.Sequential(*layers)
    assert torch.equal(net(x), torch.nn.Sequential(*layers)(x))
    assert torch.equal(sl.Sequential(torch.nn.AdaptiveAvgPool3d((1, 1, 1)))(x.unsqueeze(3)),
                       x.mean(dim=(-2, -1)).reshape(3, 2, 4, 1, 1, 1))


def test_sequential_lets_a_pre_hook_fold_time_into_the_batch():
    conv = torch.nn.Conv2d(2, 3, 3)
    conv.register_forward_pre_hook(lambda m, args: (args[0].flatten(0, 1),))
    conv.register_forward_hook(lambda m, args, out: out.unflatten(0, (3, 2)))
    x = torch.rand(3, 2, 2, 8, 8)
    assert torch.equal(sl.Sequential(conv)(x), torch.nn.Sequential(conv)(x))


def test_sequential_error_for_an_unwrapped_layer_keeps_torchs_own():
    with pytest.raises(ValueError, match=r"layer 1 \(MaxPool2d\).*TimeDistributed") as err:
        sl.Sequential(torch.nn.Identity(), torch.nn.MaxPool2d(2))(torch.rand(3, 2, 2, 8, 8))
    assert isinstance(err.value.__cause__, RuntimeError)  # (torch's message, for what it says itself)
    with pytest.raises(ValueError, match=r"layer 0 \(AdaptiveAvgPool2d\)"):  # (an output size > 1 is refused)
        sl.Sequential(torch.nn.AdaptiveAvgPool2d(2))(torch.rand(3, 2, 2, 8, 8))


def test_sequential_passes_out_of_memory_on_as_it_is():
    def oom(module, args):
        raise torch.OutOfMemoryError("simulated: out of memory")

    pool = torch.nn.AdaptiveAvgPool2d(1)  # (takes [T, B, C, H, W]: running out of memory is not a layout error)
    pool.register_forward_pre_hook(oom)
    with pytest.raises(torch.OutOfMemoryError, match="simulated"):
        sl.Sequential(pool)(torch.rand(3, 2, 2, 8, 8))
