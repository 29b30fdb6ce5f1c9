"""Metrics on models written as plain nn.Modules: a SpikeMask is paired with the LIF whose output it takes in the
forward pass (not with the LIF defined before it), and a model's output is read by one rule everywhere (a tensor, or
the first element of a tuple / list; a dict or None is a TypeError naming the caller and the fix)."""
from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

import snnlab as sl
from snnlab.metrics import evaluate, robustness_curve, spike_accounting_table
from snnlab.metrics._common import same_model_randomness
from snnlab.training import ExperimentConfig, Trainer


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _batch(T: int = 30, B: int = 4, F: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, F, generator=g) < 0.5).float(), torch.randint(0, 3, (B,), generator=g)


def _hand_counts(net: nn.Module, x: torch.Tensor, modules: dict[str, nn.Module]) -> dict[str, float]:
    """Per sample: the spikes each of ``modules`` outputs in one eval pass (summed over its calls), counted by hooks
    of our own, with the model's random streams as evaluate sees them."""
    counts = dict.fromkeys(modules, 0.0)

    def hook(name):
        def add(module, inputs, output):
            counts[name] += float(output.count_nonzero())
        return add

    handles = [m.register_forward_hook(hook(n)) for n, m in modules.items()]
    training = net.training
    net.eval()
    try:
        with torch.no_grad(), same_model_randomness(net):
            net(x)
    finally:
        net.train(training)
        for h in handles:
            h.remove()
    return {n: c / x.shape[1] for n, c in counts.items()}


# ------------------------------------------------------------------------------ SpikeMask pairing by data flow
class _MaskedLater(nn.Module):
    """lif_a, lif_b, mask_a are defined in this order, but mask_a masks lif_a's output; lif_c's spikes are scaled
    before mask_c takes them (no LIF output reaches mask_c: it is paired by its place, right after lif_c)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(4, 8)
        self.lif_a = sl.LIF(threshold=0.3)
        self.lif_b = sl.LIF(threshold=0.3)
        self.mask_a = sl.SpikeMask(0.9, mask_at_inference=True, seed=0)
        self.lif_c = sl.LIF(threshold=0.3)
        self.mask_c = sl.SpikeMask(0.5, mask_at_inference=True, seed=1)
        self.out, self.li = nn.Linear(8, 3), sl.LI()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.mask_a(self.lif_a(self.fc(x)))
        b = self.lif_b(self.fc(x) * 0.5)
        c = self.mask_c(self.lif_c(self.fc(x) * 0.8) * 1.0)
        return self.li(self.out(a + b + c))


def test_a_spike_mask_masks_the_lif_whose_output_it_takes_not_the_one_defined_before_it():
    """Before: lif_a was reported unmasked (63.25 transmitted) and lif_b masked by mask_a (9.25 transmitted)."""
    net = _MaskedLater()
    x, y = _batch()
    hand = _hand_counts(net, x, {n: getattr(net, n) for n in ("lif_a", "lif_b", "lif_c", "mask_a", "mask_c")})
    assert hand["mask_a"] < 0.3 * hand["lif_a"] and 0 < hand["mask_c"] < hand["lif_c"]  # the masks do drop spikes
    table = spike_accounting_table(net, [(x, y)]).set_index("layer")
    assert table["masking"].to_dict() == {"lif_a": "SpikeMask mask_a", "lif_b": "none", "lif_c": "SpikeMask mask_c"}
    assert table["fired_spikes_per_sample"].to_dict() == {n: hand[n] for n in ("lif_a", "lif_b", "lif_c")}
    assert table["transmitted_spikes_per_sample"].to_dict() == {"lif_a": hand["mask_a"], "lif_b": hand["lif_b"],
                                                               "lif_c": hand["mask_c"]}
    # evaluate counts the fired spikes of unfused masking, whatever the pairing
    assert evaluate(net, [(x, y)])["spikes_per_layer"] == {n: hand[n] for n in ("lif_a", "lif_b", "lif_c")}


class _ViewsAndSharedMask(nn.Module):
    """One mask shared by two LIFs, each call fed a view of an LIF's output (a reshape, a slice); the mask is
    defined first of all."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.mask = sl.SpikeMask(0.5, mask_at_inference=True, seed=3)
        self.fc = nn.Linear(4, 8)
        self.lif_a, self.lif_b = sl.LIF(threshold=0.2), sl.LIF(threshold=0.2)
        self.out, self.li = nn.Linear(8, 3), sl.LI()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T, B = x.shape[:2]
        a = self.mask(self.lif_a(self.fc(x)).view(T, B, 2, 4)).reshape(T, B, 8)  # a view of lif_a's output
        sb = self.lif_b(self.fc(x) * 0.7)
        b = torch.cat([self.mask(sb[..., :4]), sb[..., 4:]], -1)  # half of lif_b's neurons masked (a slice: a view)
        return self.li(self.out(a + b))


def test_a_mask_fed_views_of_two_lifs_counts_each_call_for_its_own_lif():
    net = _ViewsAndSharedMask()
    x, y = _batch(seed=1)
    calls: list[float] = []
    handle = net.mask.register_forward_hook(lambda m, i, o: calls.append(float(o.count_nonzero()) / x.shape[1]))
    try:
        hand = _hand_counts(net, x, {"lif_a": net.lif_a, "lif_b": net.lif_b})
    finally:
        handle.remove()
    to_a, to_b = calls  # the mask's two calls, in forward order: lif_a's spikes, then half of lif_b's
    with torch.no_grad(), same_model_randomness(net):
        net.eval()
        spikes_b = net.lif_b(net.fc(x) * 0.7)
        net.train()
    unmasked_b = float(spikes_b[..., 4:].count_nonzero()) / x.shape[1]
    table = spike_accounting_table(net, [(x, y)]).set_index("layer")
    assert table["masking"].to_dict() == {"lif_a": "SpikeMask mask", "lif_b": "SpikeMask mask"}
    assert table.loc["lif_a", "transmitted_spikes_per_sample"] == to_a < hand["lif_a"]
    # (the slice the mask leaves alone goes on unmasked: only what the mask passes on counts as transmitted)
    assert table.loc["lif_b", "transmitted_spikes_per_sample"] == to_b and 0 < unmasked_b < hand["lif_b"]
    assert table["fired_spikes_per_sample"].to_dict() == hand


# ------------------------------------------------------------------------------ reading a model's output
class _SpikesAndMembrane(nn.Module):
    """snnTorch's habit: forward returns (spikes, membrane); ``how`` returns them otherwise."""

    def __init__(self, how: str = "tuple") -> None:
        super().__init__()
        torch.manual_seed(2)
        self.how = how
        self.fc, self.lif, self.out = nn.Linear(4, 8), sl.LIF(threshold=0.3), nn.Linear(8, 3)
        self.lif_out, self.li = sl.LIF(threshold=0.3), sl.LI()

    def forward(self, x: torch.Tensor):
        cur = self.out(self.lif(self.fc(x)))
        spikes, membrane = self.lif_out(cur), self.li(cur)
        if self.how == "tuple":
            return spikes, membrane
        if self.how == "first":
            return spikes
        if self.how == "dict":
            return {"membrane": membrane, "spikes": spikes}
        if self.how == "empty":
            return ()
        return None


_DICT = (r"the model returned a dict with keys \['membrane', 'spikes'\], but {fn} reads one time-major tensor "
         r"\[T, B, C\] from the model \(of a tuple or list, its first element\): return that tensor from forward, or "
         r"wrap the model in a module whose forward returns it, e.g. model\(x\)\['membrane'\]")


def test_a_tuple_output_is_read_from_its_first_element_and_a_dict_is_a_clear_type_error():
    """Before: a dict gave 'readout expects a time-major output [T, B, C], got <class 'dict'>' (ValueError) from
    evaluate and the Trainer, and AttributeError: 'dict' object has no attribute 'shape' from robustness_curve."""
    x, y = _batch(T=25, B=16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert evaluate(_SpikesAndMembrane("tuple"), [(x, y)]) == evaluate(_SpikesAndMembrane("first"), [(x, y)])
        curve = robustness_curve(_SpikesAndMembrane("tuple"), [(x, y)], "deletion", [0.0, 0.5])
        assert curve.equals(robustness_curve(_SpikesAndMembrane("first"), [(x, y)], "deletion", [0.0, 0.5]))
    with pytest.raises(TypeError, match="^evaluate: " + _DICT.format(fn="evaluate") + "$"):
        evaluate(_SpikesAndMembrane("dict"), [(x, y)])
    with pytest.raises(TypeError, match="^robustness_curve: " + _DICT.format(fn="robustness_curve") + "$"):
        robustness_curve(_SpikesAndMembrane("dict"), [(x, y)], "deletion", [0.0])
    trainer = Trainer(ExperimentConfig(epochs=1, batch_size=16, device="cpu"), model=_SpikesAndMembrane("dict"),
                      train_loader=[(x, y)], test_loader=[(x, y)], progress=False)
    with pytest.raises(TypeError, match="^Trainer: " + _DICT.format(fn="Trainer") + "$"):
        trainer.run()


@pytest.mark.parametrize("how, got", [("empty", "an empty tuple"), ("none", "None")])
def test_an_empty_tuple_or_none_output_is_a_type_error_naming_it(how, got):
    x, y = _batch(T=5, B=2)
    with pytest.raises(TypeError, match=f"^evaluate: the model returned {got}, but evaluate reads one time-major"):
        evaluate(_SpikesAndMembrane(how), [(x, y)])


def test_a_compiled_model_pairs_its_masks_without_compiling_the_pairing_hooks_anew_per_batch():
    """The pairing hooks key LIF outputs by their storage address: traced by torch.compile, they were compiled again
    for each batch's addresses (dynamo's recompile limit hit at the third batch here, eagerly run before MaskFlow)."""
    torch.manual_seed(0)
    net = sl.Sequential(nn.Linear(4, 16), sl.LIF(threshold=0.3), sl.SpikeMask(0.4, mask_at_inference=True, seed=1),
                        nn.Linear(16, 3), sl.LI())
    batches = [_batch(T=10, seed=i) for i in range(6)]
    eager = spike_accounting_table(net, batches)
    torch._dynamo.reset()
    with torch._dynamo.config.patch(recompile_limit=2, fail_on_recompile_limit_hit=True), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (dynamo's notes on snnlab's C kernels, run between graphs)
        compiled = spike_accounting_table(torch.compile(net), batches)
    assert compiled["masking"].tolist() == ["SpikeMask _orig_mod.2"]
    assert compiled["transmitted_spikes_per_sample"].tolist() == eager["transmitted_spikes_per_sample"].tolist()
    assert 0 < eager.loc[0, "transmitted_spikes_per_sample"] < eager.loc[0, "fired_spikes_per_sample"]
