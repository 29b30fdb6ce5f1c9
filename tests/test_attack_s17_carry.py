"""Review of carry_state (LIF / LI membranes carried from call to call) and the porting messages: data-parallel
replicas, a warm-up under inference mode, the 1-D / 2-D input messages, the decay-factor hint for a tensor."""
import numpy as np
import pytest
import torch

import snnlab as sl


@pytest.mark.parametrize("make", [lambda: sl.LIF(carry_state=True), lambda: sl.LI(carry_state=True)],
                         ids=["LIF", "LI"])
def test_a_data_parallel_replica_refuses_to_carry_state(make):
    # nn.DataParallel runs each call on replicas made by this method: shallow copies, dropped after the call, so the
    # membrane a replica keeps would be lost and every call would silently start from rest
    layer = make()
    x = torch.rand(4, 2, 3) * 3
    replica = layer._replicate_for_data_parallel()
    with pytest.raises(RuntimeError, match=rf"^{type(layer).__name__}: carry_state=True cannot run in "
                                           r"nn.DataParallel.*DistributedDataParallel"):
        replica(x)
    assert replica.carried_membrane is None and layer.carried_membrane is None
    layer.carry_state = False  # without carry_state a replica runs as before
    plain = layer._replicate_for_data_parallel()
    assert torch.equal(plain(x), layer(x))
    layer.carry_state = True  # the layer itself (one device: DataParallel calls it directly) carries its state
    layer(x)
    assert layer.carried_membrane is not None


@pytest.mark.parametrize("make", [lambda: sl.LIF(carry_state=True, learn_tau=True, learn_threshold=True),
                                  lambda: sl.LI(carry_state=True, learn_tau=True)], ids=["LIF", "LI"])
def test_a_membrane_carried_from_inference_mode_continues_with_gradients(make):
    torch.manual_seed(0)
    warm, chunk = torch.rand(5, 2, 3) * 3, torch.rand(4, 2, 3) * 3
    layer, twin = make(), make()
    with torch.inference_mode():  # a warm-up of the stream
        layer(warm)
    with torch.no_grad():
        twin(warm)
    assert torch.equal(layer.carried_membrane, twin.carried_membrane)
    grads = []
    for lyr in (layer, twin):
        x = chunk.clone().requires_grad_()
        out = lyr(x)
        out.sum().backward()  # (an inference tensor cannot be saved for backward)
        grads.append((out.detach(), x.grad, lyr.tau_mem.grad))
    for got, want in zip(*grads):
        assert torch.equal(got, want)
    assert not layer.carried_membrane.is_inference()


@pytest.mark.parametrize("value", [torch.tensor(0.9), np.float32(0.9)], ids=["tensor", "numpy"])
def test_the_decay_factor_hint_writes_a_float32_value_as_given(value):
    with pytest.raises(ValueError) as err:
        sl.LIF(value)
    message = str(err.value)
    assert "the decay factor beta=0.9 is" in message and "or beta=0.9 by keyword" in message
    assert "0.89999" not in message


def test_a_2d_input_message_says_how_calls_one_step_at_a_time_can_carry_the_membrane():
    with pytest.raises(ValueError) as err:
        sl.LIF()(torch.rand(4, 3))
    message = str(err.value)
    assert "no state is kept" not in message  # (carry_state=True keeps it)
    assert "carry_state=True" in message and "snnlab.carrying_state(model)" in message
    assert "[T, F] use x.unsqueeze(1)" in message and "[B, F] use x.unsqueeze(0)" in message


@pytest.mark.parametrize("shape,advice", [((3,), "x.reshape(1, 1, -1)"), ((), "x.reshape(1, 1, 1)")])
@pytest.mark.parametrize("make", [lambda n: sl.LIF(), lambda n: sl.DelayedLinear(n, 2, max_delay=2)],
                         ids=["LIF", "DelayedLinear"])
def test_a_1d_or_0d_input_message_gives_a_reshape_that_makes_it_time_major(make, shape, advice):
    x = torch.rand(shape)
    layer = make(x.numel())
    with pytest.raises(ValueError, match=r"at least 3 dimensions") as err:
        layer(x)
    message = str(err.value)
    assert "unsqueeze" not in message  # (one unsqueeze gives 2-D or 1-D: still refused)
    assert advice in message
    fixed = eval(advice, {"x": x})  # the advice works
    assert fixed.dim() == 3 and layer(fixed).shape[:2] == (1, 1)


def test_new_weights_keep_the_carried_membrane_as_documented():
    layer = sl.LIF(carry_state=True, learn_threshold=True)
    layer(torch.rand(3, 2, 4) * 3)
    carried = layer.carried_membrane.clone()
    layer.load_state_dict(sl.LIF(learn_threshold=True, threshold=2.0).state_dict())
    assert torch.equal(layer.carried_membrane, carried)
    doc = " ".join(sl.LIF.__doc__.split())
    assert "``load_state_dict``: the next call starts from the membrane the old ones left" in doc
    assert "nn.DataParallel" in doc and "run every batch from rest" in doc
