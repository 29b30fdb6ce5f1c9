"""carrying_state refuses a DelayedLinear whose delays mix time steps, and gives back the membrane a layer carried
when the block began (a nested block, or a layer of the user's own with carry_state=True)."""
import pytest
import torch

import snnlab as sl


def _net(first: torch.nn.Module) -> sl.Sequential:
    torch.manual_seed(0)
    return sl.Sequential(first, sl.LIF(threshold=0.3), torch.nn.Linear(8, 2), sl.LI())


def test_carrying_state_refuses_a_delayed_linear_before_changing_any_layer():
    net = _net(sl.DelayedLinear(4, 8, max_delay=5))
    with pytest.raises(ValueError, match=r"layer '0' \(DelayedLinear\) cannot carry its state: .*max_delay=5"):
        with sl.carrying_state(net):
            pass
    assert [net[1].carry_state, net[3].carry_state] == [False, False]
    net = _net(sl.DelayedLinear(4, 8, max_delay=1))  # (one tap: no time step mixed, so it is taken)
    x = torch.rand(12, 2, 4)
    with torch.no_grad():
        whole = net(x)
        with sl.carrying_state(net):
            chunks = torch.cat([net(c) for c in x.split(4)])
    torch.testing.assert_close(chunks, whole, atol=1e-5, rtol=1e-5)


def test_a_nested_carrying_state_keeps_the_outer_stream():
    net = _net(torch.nn.Linear(4, 8))
    x = torch.rand(12, 2, 4)
    with torch.no_grad():
        whole = net(x)
        with sl.carrying_state(net):
            first = net(x[:6])
            with sl.carrying_state(net):
                pass
            second = net(x[6:])
            assert net[1].carry_state  # (the outer block's flag is back too)
    torch.testing.assert_close(torch.cat([first, second]), whole, atol=1e-5, rtol=1e-5)
    assert net[1].carried_membrane is None and not net[1].carry_state


def test_a_layer_already_carrying_keeps_its_membrane_after_the_block():
    torch.manual_seed(0)
    lif = sl.LIF(threshold=0.3, carry_state=True)
    net = sl.Sequential(torch.nn.Linear(4, 8), lif, torch.nn.Linear(8, 2), sl.LI())
    _ = net(torch.rand(6, 2, 4))
    kept = lif.carried_membrane
    with sl.carrying_state(net):
        assert lif.carried_membrane is kept  # (the block does not restart a stream it finds)
        _ = net(torch.rand(3, 2, 4))
        after = lif.carried_membrane
    assert lif.carry_state and lif.carried_membrane is after and after is not kept  # (the stream carries on)
    assert not net[3].carry_state and net[3].carried_membrane is None  # (it did not carry before: dropped)


def test_chunks_fed_in_a_nested_block_continue_the_outer_stream():
    """Outer block: chunk 1; inner block: chunk 2; outer block again: chunk 3 -- one stream, as one whole call."""
    torch.manual_seed(0)
    net = sl.Sequential(torch.nn.Linear(4, 8), sl.LIF(threshold=0.3), torch.nn.Linear(8, 2), sl.LI())
    x = torch.rand(12, 2, 4)
    with sl.carrying_state(net):
        first = net(x[:4])
        with sl.carrying_state(net):
            second = net(x[4:8])
        third = net(x[8:])
    torch.testing.assert_close(torch.cat([first, second, third]), net(x), rtol=0.0, atol=1e-6)
