"""A seeded LIF / SpikeMask keeps its random stream in its state dict: a resumed run continues the noise and masks."""
import copy
import io
import pickle
import warnings

import pytest
import torch
from torch import nn

import snnlab as sl
from snnlab.core.random_stream import RNG_STATE_KEY
from snnlab.training import Trainer, load_checkpoint, save_checkpoint

T, B, N = 20, 4, 16
LAYERS = {
    "noise LIF": lambda seed: sl.LIF(noise="gaussian", noise_scale=0.5, seed=seed),
    "masked LIF": lambda seed: sl.LIF(tau_mem=2.0, threshold=0.3, mask_p=0.5, seed=seed),
    "SpikeMask": lambda seed: sl.SpikeMask(0.5, seed=seed),
}


def _inputs(n: int = 5) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(123)
    return [torch.rand(T, B, N, generator=g) * 1.5 for _ in range(n)]


def _run(layer: nn.Module, xs: list[torch.Tensor]) -> list[torch.Tensor]:
    with torch.no_grad():
        return [layer(x) for x in xs]


def _assert_same(got: list[torch.Tensor], want: list[torch.Tensor]) -> None:
    assert len(got) == len(want)
    for i, (a, b) in enumerate(zip(got, want)):
        assert torch.equal(a, b), f"call {i}"


def _round_trip(state: dict) -> dict:
    """Through a file as training checkpoints store it (weights_only: no pickled objects)."""
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("kind", list(LAYERS))
def test_a_loaded_layer_continues_the_saved_stream(kind):
    xs = _inputs()
    want = _run(LAYERS[kind](7), xs)
    assert not all(torch.equal(want[0], w) for w in want[1:])  # the draws differ between calls (else nothing shows)

    first = LAYERS[kind](7)
    _assert_same(_run(first, xs[:2]), want[:2])
    state = _round_trip(first.state_dict())
    assert state[RNG_STATE_KEY].dtype == torch.uint8

    resumed = LAYERS[kind](99)  # another seed: the loaded stream replaces it
    resumed.load_state_dict(state, strict=True)
    _assert_same(_run(resumed, xs[2:]), want[2:])
    # without the load the fresh layer would draw other spikes (the old behaviour the test guards against)
    assert not all(torch.equal(a, b) for a, b in zip(_run(LAYERS[kind](7), xs[2:]), want[2:]))


@pytest.mark.parametrize("kind", list(LAYERS))
def test_a_state_dict_without_a_stream_loads_strictly_and_the_stream_starts_at_the_seed(kind):
    """The keys the layers had before the stream was kept, written out by hand."""
    old = {"noise LIF": {"beta_const": torch.tensor(0.9), "threshold": torch.tensor(1.0)},
           "masked LIF": {"beta_const": torch.tensor(0.5), "threshold": torch.tensor(0.3)},
           "SpikeMask": {}}[kind]
    xs = _inputs(3)
    layer = LAYERS[kind](7)
    result = layer.load_state_dict(old, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    _assert_same(_run(layer, xs), _run(LAYERS[kind](7), xs))


def test_a_state_without_a_stream_leaves_a_used_layers_stream_where_it_is():
    xs = _inputs(4)
    want = _run(LAYERS["noise LIF"](7), xs)
    layer = LAYERS["noise LIF"](7)
    _run(layer, xs[:2])
    layer.load_state_dict(sl.LIF(noise="gaussian", noise_scale=0.5).state_dict(), strict=True)  # unseeded's state
    _assert_same(_run(layer, xs[2:]), want[2:])


def test_unseeded_layers_keep_their_state_dict_keys():
    assert list(sl.LIF().state_dict()) == ["beta_const", "threshold"]
    assert list(sl.LIF(noise="logistic").state_dict()) == ["beta_const", "threshold"]
    assert list(sl.LIF(mask_p=0.3).state_dict()) == ["beta_const", "threshold"]
    assert list(sl.LIF(learn_tau=True, learn_threshold=True).state_dict()) == ["tau_mem", "threshold"]
    assert list(sl.SpikeMask(0.3).state_dict()) == []
    assert list(sl.LI().state_dict()) == ["beta_const"]
    net = sl.Sequential(nn.Linear(3, 4), sl.LIF(noise="gaussian"), sl.SpikeMask(0.2), nn.Linear(4, 2), sl.LI())
    assert list(net.state_dict()) == ["0.weight", "0.bias", "1.beta_const", "1.threshold", "3.weight", "3.bias",
                                      "4.beta_const"]


def test_seeded_layers_add_only_the_stream_and_it_is_no_parameter_or_buffer():
    lif = sl.LIF(noise="gaussian", learn_threshold=True, seed=1)
    assert list(lif.state_dict()) == ["threshold", "beta_const", RNG_STATE_KEY]
    assert list(sl.SpikeMask(0.3, seed=1).state_dict()) == [RNG_STATE_KEY]
    assert [n for n, _ in lif.named_parameters()] == ["threshold"]
    assert [n for n, _ in lif.named_buffers()] == ["beta_const"]
    assert torch.equal(lif.state_dict()[RNG_STATE_KEY], lif._generator.get_state())
    assert lif.state_dict()[RNG_STATE_KEY] is not lif.state_dict()[RNG_STATE_KEY]  # a copy, not the live state


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_casts_and_moves_leave_the_stream_alone(dtype):
    xs = _inputs(3)
    want = _run(LAYERS["masked LIF"](7), xs)
    layer = LAYERS["masked LIF"](7)
    _run(layer, xs[:1])
    layer.to(dtype).to("cpu")
    state = layer.state_dict()
    assert state[RNG_STATE_KEY].dtype == torch.uint8 and state["threshold"].dtype != torch.uint8
    fresh = LAYERS["masked LIF"](3).to(dtype)
    fresh.load_state_dict(state)
    # x is well inside the threshold margins: the half-precision input rounds no spike away
    got_a, got_b = _run(layer, [x.to(dtype) for x in xs[1:]]), _run(fresh, [x.to(dtype) for x in xs[1:]])
    _assert_same(got_a, got_b)
    if dtype == torch.float64:
        _assert_same([g.float() for g in got_a], want[1:])


@pytest.mark.parametrize("how", ["deepcopy", "pickle", "torch.save"])
def test_copies_continue_the_same_stream(how):
    xs = _inputs(3)
    net = sl.Sequential(nn.Linear(N, N), LAYERS["noise LIF"](7), LAYERS["SpikeMask"](8))
    _run(net, xs[:1])
    if how == "deepcopy":
        twin = copy.deepcopy(net)
    elif how == "pickle":
        twin = pickle.loads(pickle.dumps(net))
    else:
        buf = io.BytesIO()
        torch.save(net, buf)
        buf.seek(0)
        twin = torch.load(buf, weights_only=False)
    assert twin[1]._generator is not net[1]._generator
    _assert_same(_run(twin, xs[1:]), _run(net, xs[1:]))


def _net(seeds: tuple[int, int, int]) -> sl.Sequential:
    torch.manual_seed(0)
    return sl.Sequential(nn.Linear(N, N), LAYERS["noise LIF"](seeds[0]), nn.Linear(N, N), LAYERS["masked LIF"](seeds[1]),
                         LAYERS["SpikeMask"](seeds[2]), nn.Linear(N, 2), sl.LI())


def test_a_sequential_of_seeded_layers_resumes_each_stream():
    xs = _inputs()
    want = _run(_net((1, 2, 3)), xs)
    first = _net((1, 2, 3))
    _run(first, xs[:2])
    state = _round_trip(first.state_dict())
    assert [k for k in state if k.endswith(RNG_STATE_KEY)] == ["1._rng_state", "3._rng_state", "4._rng_state"]
    resumed = _net((4, 5, 6))
    resumed.load_state_dict(state, strict=True)
    _assert_same(_run(resumed, xs[2:]), want[2:])
    # each layer got its own stream back: swapping two of them changes the output
    swapped = _net((4, 5, 6))
    swapped.load_state_dict(state | {"1._rng_state": state["3._rng_state"], "3._rng_state": state["1._rng_state"]})
    assert not all(torch.equal(a, b) for a, b in zip(_run(swapped, xs[2:]), want[2:]))


def test_an_unseeded_layer_ignores_a_saved_stream_with_a_warning():
    seeded = LAYERS["noise LIF"](7)
    _run(seeded, _inputs(1))
    layer = sl.LIF(noise="gaussian", noise_scale=0.5)
    net = sl.Sequential(nn.Linear(2, 2), layer)
    state = {f"1.{k}": v for k, v in seeded.state_dict().items()} | {f"0.{k}": v for k, v in net[0].state_dict().items()}
    with pytest.warns(UserWarning, match=r"LIF 1: .*unseeded: it is ignored"):
        result = net.load_state_dict(state, strict=True)
    assert not result.unexpected_keys and not result.missing_keys
    assert layer._generator is None and list(net.state_dict()) == ["0.weight", "0.bias", "1.beta_const", "1.threshold"]
    with warnings.catch_warnings():  # a seeded layer takes it silently
        warnings.simplefilter("error")
        LAYERS["noise LIF"](3).load_state_dict(seeded.state_dict())


@pytest.mark.parametrize("bad, words", [
    (torch.zeros(10, dtype=torch.uint8), "is not a CPU generator state"),
    (torch.zeros(5056, dtype=torch.float32), "is not a CPU generator state"),
    (torch.zeros(5056, dtype=torch.uint8), "is not a valid CPU generator state"),
    ([1, 2, 3], "expected a torch.Tensor"),
])
def test_a_bad_stream_is_refused_and_changes_nothing(bad, words):
    layer = LAYERS["noise LIF"](7)
    _run(layer, _inputs(1))
    before = {k: v.clone() for k, v in layer.state_dict().items()}
    state = sl.LIF(threshold=2.0, beta=0.5, noise="gaussian", seed=1).state_dict() | {RNG_STATE_KEY: bad}
    with pytest.raises(RuntimeError, match=words):
        layer.load_state_dict(state)
    after = layer.state_dict()
    assert list(after) == list(before) and all(torch.equal(after[k], v) for k, v in before.items())


def test_a_training_checkpoint_round_trips_a_seeded_layer_in_a_custom_model(tmp_path):
    class Custom(nn.Module):
        def __init__(self, seed: int) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.fc = nn.Linear(N, N)
            self.noisy = sl.LIF(noise="logistic", noise_scale=0.4, mask_p=0.2, seed=seed)

        def forward(self, x):
            return self.noisy(self.fc(x))

    xs = _inputs()
    want = _run(Custom(5), xs)
    first = Custom(5)
    _run(first, xs[:2])
    path = save_checkpoint(tmp_path / "ckpt.pt", {"step": 2, "model": first.state_dict()})
    resumed = Custom(6)
    resumed.load_state_dict(load_checkpoint(path)["model"], strict=True)
    _assert_same(_run(resumed, xs[2:]), want[2:])


def test_a_resumed_trainer_run_continues_a_seeded_layers_noise(tmp_path):
    from snnlab.training import ExperimentConfig

    def model(seed: int) -> nn.Module:
        torch.manual_seed(0)
        return sl.Sequential(nn.Linear(3, 8), sl.LIF(noise="gaussian", mask_p=0.3, seed=seed), nn.Linear(8, 2), sl.LI())

    g = torch.Generator().manual_seed(0)
    loader = [(torch.rand(6, 4, 3, generator=g) * 2, torch.randint(0, 2, (4,), generator=g)) for _ in range(3)]
    cfg = dict(hidden=[8], num_steps=6, batch_size=4, epochs=2, eval_max_batches=1, device="cpu")
    full = Trainer(ExperimentConfig(**cfg), model=model(1), train_loader=loader, test_loader=loader[:1], progress=False)
    full.run()
    first = Trainer(ExperimentConfig(**cfg | {"epochs": 1}), model=model(1), train_loader=loader,
                    test_loader=loader[:1], run_dir=tmp_path, progress=False)
    first.run()
    resumed = Trainer(ExperimentConfig(**cfg), model=model(2), train_loader=loader, test_loader=loader[:1],
                      resume=tmp_path, progress=False)
    resumed.run()
    assert [r["loss"] for r in resumed.history.steps()] == [r["loss"] for r in full.history.steps()]
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("kind", list(LAYERS))
def test_a_cuda_layer_continues_the_saved_stream(kind):
    xs = [x.cuda() for x in _inputs()]
    want = _run(LAYERS[kind](7).cuda(), xs)
    first = LAYERS[kind](7).cuda()
    _run(first, xs[:2])
    resumed = LAYERS[kind](99).cuda()
    resumed.load_state_dict(first.state_dict())
    _assert_same(_run(resumed, xs[2:]), want[2:])
