"""Activation checkpointing with seeded noisy / masked layers: the recomputation replays their draws
(``sl.activation_checkpoint``, ``sl.seeded_stream_contexts``) or, with plain ``torch.utils.checkpoint``, raises."""
from __future__ import annotations

import contextlib
import functools

import pytest
import torch
from torch.utils.checkpoint import checkpoint

import snnlab as sl

T, B, N_IN, N_HID = 12, 3, 6, 10


def _seeded_blocks() -> dict[str, callable]:
    """Builders of small blocks whose every random draw comes from a seeded layer's own stream."""
    def lif():
        return sl.Sequential(torch.nn.Linear(N_IN, N_HID),
                             sl.LIF(noise="gaussian", noise_scale=0.4, mask_p=0.3, seed=3),
                             torch.nn.Linear(N_HID, 4), sl.LIF(noise="logistic", noise_scale=0.3, seed=4))

    def spike_mask():
        return sl.Sequential(torch.nn.Linear(N_IN, N_HID), sl.LIF(), sl.SpikeMask(0.4, seed=5),
                             torch.nn.Linear(N_HID, 4), sl.LI())

    def alif():
        return sl.Sequential(torch.nn.Linear(N_IN, N_HID),
                             sl.ALIF(adaptation=0.3, noise="gaussian", noise_scale=0.4, seed=6))

    def recurrent():
        return sl.Sequential(torch.nn.Linear(N_IN, N_HID),
                             sl.RecurrentLIF(N_HID, noise="gaussian", noise_scale=0.4, mask_p=0.2, seed=7))

    return {"lif": lif, "spike_mask": spike_mask, "alif": alif, "recurrent": recurrent}


BLOCKS = _seeded_blocks()


def _build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return BLOCKS[name]()


def _input() -> torch.Tensor:
    return 2.0 * torch.randn(T, B, N_IN, generator=torch.Generator().manual_seed(1))


def _grads(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.grad.clone() for p in model.parameters()]


def _plain_run(name: str) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
    """Output, parameter gradients and the next call's output of the block without checkpointing."""
    model = _build(name)
    x = _input()
    out = model(x)
    out.sum().backward()
    return out.detach(), _grads(model), model(x).detach()


@pytest.mark.parametrize("name", sorted(BLOCKS))
def test_activation_checkpoint_gives_the_plain_gradients(name):
    out_ref, grads_ref, next_ref = _plain_run(name)
    model, x = _build(name), _input()
    out = sl.activation_checkpoint(model, x)
    out.sum().backward()
    assert torch.equal(out.detach(), out_ref)
    assert any(g.abs().sum() > 0 for g in grads_ref)
    for g, g_ref in zip(_grads(model), grads_ref):
        assert torch.equal(g, g_ref)
    # the streams go on from where the forward left them, not from where the recomputation did
    assert torch.equal(model(x).detach(), next_ref)


def test_seeded_stream_contexts_as_torch_context_fn():
    out_ref, grads_ref, _ = _plain_run("lif")
    model, x = _build("lif"), _input()
    checkpoint(model, x, use_reentrant=False, context_fn=sl.seeded_stream_contexts).sum().backward()
    for g, g_ref in zip(_grads(model), grads_ref):
        assert torch.equal(g, g_ref)


def test_checkpointing_each_layer_inside_a_checkpointed_block():
    _, grads_ref, next_ref = _plain_run("lif")
    model, x = _build("lif"), _input()

    def block(z):
        for layer in model:
            z = sl.activation_checkpoint(layer, z)
        return z

    sl.activation_checkpoint(block, x).sum().backward()
    for g, g_ref in zip(_grads(model), grads_ref):
        assert torch.equal(g, g_ref)
    assert torch.equal(model(x).detach(), next_ref)


def test_a_layer_called_twice_in_the_block_replays_both_calls():
    torch.manual_seed(0)
    lin, mask = torch.nn.Linear(N_IN, N_IN), sl.SpikeMask(0.5, seed=2)
    x = _input()
    mask(lin(mask(x))).sum().backward()
    grad_ref = lin.weight.grad.clone()
    torch.manual_seed(0)
    lin, mask = torch.nn.Linear(N_IN, N_IN), sl.SpikeMask(0.5, seed=2)
    sl.activation_checkpoint(lambda z: mask(lin(mask(z))), x).sum().backward()
    assert torch.equal(lin.weight.grad, grad_ref)


def test_a_second_backward_replays_again():
    _, grads_ref, _ = _plain_run("lif")
    model, x = _build("lif"), _input()
    out = sl.activation_checkpoint(model, x)
    out.sum().backward(retain_graph=True)
    out.sum().backward()
    for g, g_ref in zip(_grads(model), grads_ref):
        assert torch.equal(g, 2 * g_ref)


def test_a_context_fn_of_the_caller_is_entered_too():
    entered = []

    @contextlib.contextmanager
    def note(what):
        entered.append(what)
        yield

    def mine():
        return note("forward"), note("recompute")

    _, grads_ref, _ = _plain_run("lif")
    model, x = _build("lif"), _input()
    sl.activation_checkpoint(model, x, context_fn=mine).sum().backward()
    assert entered == ["forward", "recompute"]
    for g, g_ref in zip(_grads(model), grads_ref):
        assert torch.equal(g, g_ref)
    entered.clear()
    checkpoint(model, x, use_reentrant=False,
               context_fn=functools.partial(sl.seeded_stream_contexts, mine)).sum().backward()
    assert entered == ["forward", "recompute"]


@pytest.mark.parametrize("use_reentrant", [False, True])
def test_plain_torch_checkpoint_of_a_seeded_layer_raises(use_reentrant):
    model = _build("lif")
    x = _input().requires_grad_(True)
    out = checkpoint(model, x, use_reentrant=use_reentrant)
    with pytest.raises(RuntimeError, match="activation_checkpoint"):
        out.sum().backward()


def test_unseeded_layers_need_nothing_torch_replays_their_draws():
    def build():
        torch.manual_seed(0)
        return sl.Sequential(torch.nn.Linear(N_IN, N_HID), sl.LIF(noise="gaussian", noise_scale=0.4, mask_p=0.3),
                             sl.SpikeMask(0.3))

    x = _input()
    model = build()
    torch.manual_seed(11)
    model(x).sum().backward()
    grads_ref = _grads(model)
    for run in (lambda m: checkpoint(m, x, use_reentrant=False), lambda m: sl.activation_checkpoint(m, x)):
        model = build()
        torch.manual_seed(11)
        run(model).sum().backward()
        for g, g_ref in zip(_grads(model), grads_ref):
            assert torch.equal(g, g_ref)


def test_deterministic_evaluation_under_plain_checkpoint_does_not_raise():
    model = _build("lif").eval()  # eval: no noise, no mask, so nothing is drawn
    x = _input().requires_grad_(True)
    checkpoint(model, x, use_reentrant=False).sum().backward()
    assert x.grad is not None


def test_bad_arguments():
    with pytest.raises(TypeError, match="callable"):
        sl.activation_checkpoint(3, _input())
    with pytest.raises(TypeError, match="use_reentrant"):
        sl.activation_checkpoint(_build("lif"), _input(), use_reentrant=True)


def test_a_seeded_layer_drawing_in_a_gradient_hook_is_not_taken_for_a_recomputation():
    """Probe finding: the check raised for any seeded draw during a backward pass; a hook runs with gradients off,
    a checkpoint's recomputation with them on."""
    lif = sl.LIF(noise="gaussian", noise_scale=0.4, seed=0)
    x = torch.randn(5, 2, 3, requires_grad=True)
    y = x * 2
    y.register_hook(lambda g: g * lif(torch.ones_like(g)).mean())
    y.sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape


def test_a_malformed_context_fn_and_debug_mode_are_refused_clearly():
    model, x = _build("lif"), _input()
    with pytest.raises(TypeError, match="pair of context managers"):
        sl.activation_checkpoint(model, x, context_fn=lambda: None)
    with pytest.raises(TypeError, match="context_fn must be callable"):
        sl.activation_checkpoint(model, x, context_fn=3)
    with pytest.raises(TypeError, match="debug=True is not available"):
        sl.activation_checkpoint(model, x, debug=True)


def test_a_recomputation_that_draws_where_the_forward_did_not_raises():
    """Probe: a block run forward in eval mode (no noise drawn) and backward after .train() recomputed with fresh
    noise: silently other gradients."""
    model, x = _build("lif"), _input().requires_grad_(True)
    model.eval()
    out = sl.activation_checkpoint(model, x)
    model.train()
    with pytest.raises(RuntimeError, match="drew none in its forward pass"):
        out.sum().backward()


def test_the_streams_are_put_back_after_a_recomputation():
    """Review: removing the put-back left every other test passing, since a recomputation ends where the forward
    ended; with two checkpointed calls before one backward, the second call's draws move the stream on."""
    model, x = _build("lif"), _input()
    plain = _build("lif")
    plain(x), plain(x)
    next_ref = plain(x).detach()
    out = sl.activation_checkpoint(model, x) + sl.activation_checkpoint(model, x)
    out.sum().backward()  # recomputes the first call (rewound to its state), then the second
    assert torch.equal(model(x).detach(), next_ref)


def test_use_reentrant_false_is_accepted():
    _, grads_ref, _ = _plain_run("lif")
    model, x = _build("lif"), _input()
    sl.activation_checkpoint(model, x, use_reentrant=False).sum().backward()
    for g, g_ref in zip(_grads(model), grads_ref):
        assert torch.equal(g, g_ref)


def test_a_hook_drawing_under_create_graph_raises_unless_allowed():
    """Review: a gradient hook under create_graph=True runs with gradients on, as a recomputation does."""
    from snnlab.core.random_stream import draws_in_backward

    lif = sl.LIF(noise="gaussian", noise_scale=0.4, seed=0)
    x = torch.randn(5, 2, 3, requires_grad=True)
    y = x * 2
    y.register_hook(lambda g: g * lif(torch.ones_like(g)).mean())
    with pytest.raises(RuntimeError, match="draws_in_backward"):
        torch.autograd.grad(y.sum(), x, create_graph=True)
    y = x * 2
    y.register_hook(lambda g: g * lif(torch.ones_like(g)).mean())
    with draws_in_backward():
        (g,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    assert g.shape == x.shape


def test_the_private_torch_call_the_check_relies_on_exists():
    """The recomputation check asks torch._C._current_graph_task_id (private): without it the check would switch
    itself off silently, so a torch upgrade that drops it must fail here."""
    assert callable(getattr(torch._C, "_current_graph_task_id", None))
    assert torch._C._current_graph_task_id() == -1
