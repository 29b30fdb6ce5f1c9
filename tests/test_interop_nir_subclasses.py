"""NIR export of subclasses and hooked modules: a subclass overriding the ``forward`` its export is mapped from is
refused (naming the layer, its module path and class), one keeping it exports as its parent; forward hooks that the
graph leaves out are named in a warning; prune / weight_norm / spectral_norm weights export as they compute them."""
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize, prune

import snnlab as sl

nir = pytest.importorskip("nir")
from snnlab.interop.nir import from_nir, to_nir  # noqa: E402

DT = 1e-3


class PositiveLinear(nn.Linear):  # the weights act through their magnitude
    def forward(self, x):
        return F.linear(x, self.weight.abs(), self.bias)


class DoubleInputLIF(sl.LIF):
    def forward(self, x):
        return super().forward(2.0 * x)


class DoubleInputLI(sl.LI):
    def forward(self, x):
        return super().forward(2.0 * x)


class DoubleRecurrent(sl.RecurrentLIF):
    def forward(self, x):
        return super().forward(2.0 * x)


class Scale(nn.Identity):  # "identity" by its class, not by what it computes
    def forward(self, x):
        return 3.0 * x


class NoisyDropout(nn.Dropout):
    def forward(self, x):
        return x + 1.0


class ShiftedNorm(sl.TimeBatchNorm):
    def forward(self, x):
        return super().forward(x) + 1.0


class AbsConv(nn.Conv2d):
    def forward(self, x):
        return super().forward(x).abs()


class Residual(sl.Sequential):
    def forward(self, x):
        return x + super().forward(x)


class CalledTwice(nn.Linear):
    def __call__(self, x):
        return super().__call__(super().__call__(x))


def _x(n=4, T=12, B=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(T, B, n, generator=g) < 0.5).float()


@pytest.mark.parametrize("net, layer, cls", [
    (lambda: sl.Sequential(PositiveLinear(4, 6), sl.LIF(tau_mem=5.0)), "'0'", "PositiveLinear"),
    (lambda: sl.Sequential(nn.Linear(4, 6), DoubleInputLIF(tau_mem=5.0), nn.Linear(6, 2), sl.LI(tau_mem=5.0)), "'1'",
     "DoubleInputLIF"),
    (lambda: sl.Sequential(nn.Linear(4, 6), DoubleInputLIF(tau_mem=5.0, reset="zero")), "'1'", "DoubleInputLIF"),
    (lambda: sl.Sequential(nn.Linear(4, 6), sl.LIF(tau_mem=5.0), nn.Linear(6, 2), DoubleInputLI(tau_mem=5.0)), "'3'",
     "DoubleInputLI"),
    # the LI -> LIF pair (one CubaLIF) checks both
    (lambda: sl.Sequential(nn.Linear(4, 6), DoubleInputLI(tau_mem=4.0), sl.LIF(tau_mem=5.0, reset="zero")), "'1'",
     "DoubleInputLI"),
    (lambda: sl.Sequential(nn.Linear(4, 6), sl.LI(tau_mem=4.0), DoubleInputLIF(tau_mem=5.0, reset="zero")), "'2'",
     "DoubleInputLIF"),
    (lambda: sl.Sequential(nn.Linear(4, 6), DoubleRecurrent(6, tau_mem=5.0)), "'1'", "DoubleRecurrent"),
    # layers the export leaves out as the identity
    (lambda: sl.Sequential(nn.Linear(4, 6), Scale(), sl.LIF(tau_mem=5.0)), "'1'", "Scale"),
    (lambda: sl.Sequential(nn.Linear(4, 6), NoisyDropout(0.0), sl.LIF(tau_mem=5.0)), "'1'", "NoisyDropout"),
    (lambda: sl.Sequential(nn.Linear(4, 6), ShiftedNorm(6), sl.LIF(tau_mem=5.0)).eval(), "'1'", "ShiftedNorm"),
    (lambda: sl.Sequential(nn.Linear(4, 6), CalledTwice(6, 6), sl.LIF(tau_mem=5.0)), "'1'", "CalledTwice"),
])
def test_a_subclass_overriding_forward_is_refused_naming_layer_and_class(net, layer, cls):
    model = net()
    with pytest.raises(ValueError, match=rf"to_nir: layer {layer} \(.*\.{cls}, a subclass of") as err:
        to_nir(model, dt=DT)
    assert "forward" in str(err.value) or "__call__" in str(err.value)


def test_the_testers_network_is_refused():
    torch.manual_seed(0)
    net = sl.Sequential(PositiveLinear(4, 6), DoubleInputLIF(tau_mem=5.0), nn.Linear(6, 2), sl.LI(tau_mem=5.0))
    with pytest.raises(ValueError, match=r"PositiveLinear.forward") as err:
        to_nir(net, dt=DT)
    assert "Linear.forward computes" in str(err.value)


def test_nested_layers_containers_frame_modules_and_recurrent_synapses_are_checked():
    nested = sl.Sequential(nn.Linear(4, 6), sl.Sequential(sl.LIF(tau_mem=5.0), PositiveLinear(6, 2)))
    with pytest.raises(ValueError, match=r"layer '1_1' \(model\.1\.1\) \(.*PositiveLinear"):
        to_nir(nested, dt=DT)
    residual = sl.Sequential(nn.Linear(4, 4), Residual(sl.LIF(tau_mem=5.0)))
    with pytest.raises(ValueError, match=r"the container model\.1 \(.*Residual, a subclass of Sequential\) overrides"):
        to_nir(residual, dt=DT)
    with pytest.raises(ValueError, match=r"the model \(.*Residual, a subclass of Sequential\) overrides forward"):
        to_nir(Residual(nn.Linear(4, 4), sl.LIF(tau_mem=5.0)), dt=DT)
    conv = sl.Sequential(sl.TimeDistributed(AbsConv(1, 2, 3)), sl.LIF(tau_mem=5.0))
    with pytest.raises(ValueError, match=r"the module of layer '0' \(.*AbsConv, a subclass of Conv2d\)"):
        to_nir(conv, dt=DT, input_shape=(1, 6, 6))
    rec = sl.RecurrentLIF(4, tau_mem=5.0, reset="zero")
    rec.recurrent = PositiveLinear(4, 4, bias=False)
    with pytest.raises(ValueError, match=r"the recurrent of layer '1' \(.*PositiveLinear, a subclass of Linear\)"):
        to_nir(sl.Sequential(nn.Linear(3, 4), rec), dt=DT)


class TaggedLIF(sl.LIF):  # overrides __init__ and extra_repr, adds a method and an attribute: same forward
    def __init__(self, *args, tag="hidden", **kwargs):
        super().__init__(*args, **kwargs)
        self.tag = tag

    def extra_repr(self):
        return f"tag={self.tag}, " + super().extra_repr()

    def rate(self, spikes):
        return spikes.mean()


class TaggedLinear(nn.Linear):
    def extra_repr(self):
        return "tagged " + super().extra_repr()


class TaggedLI(sl.LI):
    note = "readout"


class TaggedRecurrent(sl.RecurrentLIF):
    def describe(self):
        return "recurrent"


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_subclasses_keeping_forward_export_as_their_parent(reset):
    torch.manual_seed(1)
    net = sl.Sequential(TaggedLinear(4, 6), TaggedLIF(tau_mem=5.0, reset=reset, tag="a"), TaggedLinear(6, 5),
                        TaggedRecurrent(5, tau_mem=4.0, reset=reset), nn.Linear(5, 3), TaggedLI(tau_mem=3.0),
                        TaggedLIF(tau_mem=6.0, reset=reset), nn.Linear(3, 2), TaggedLI(tau_mem=5.0))
    plain = sl.Sequential(nn.Linear(4, 6), sl.LIF(tau_mem=5.0, reset=reset), nn.Linear(6, 5),
                          sl.RecurrentLIF(5, tau_mem=4.0, reset=reset), nn.Linear(5, 3), sl.LI(tau_mem=3.0),
                          sl.LIF(tau_mem=6.0, reset=reset), nn.Linear(3, 2), sl.LI(tau_mem=5.0))
    plain.load_state_dict(net.state_dict())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        graph, reference = to_nir(net, dt=DT), to_nir(plain, dt=DT)
    assert {k: type(v).__name__ for k, v in graph.nodes.items()} == \
        {k: type(v).__name__ for k, v in reference.nodes.items()}
    assert graph.edges == reference.edges
    x = _x()
    with torch.no_grad():
        assert torch.equal(from_nir(graph)(x), net(x))


def test_snnlab_subclasses_keep_their_own_mapping():
    # ALIF (a subclass of LIF) keeps its own refusal, a subclass of it too; TimeSyncBatchNorm folds as TimeBatchNorm
    with pytest.raises(ValueError, match="adaptive threshold"):
        to_nir(sl.Sequential(nn.Linear(3, 4), sl.ALIF(tau_mem=5.0)), dt=DT)

    class MyALIF(sl.ALIF):
        pass

    with pytest.raises(ValueError, match="adaptive threshold"):
        to_nir(sl.Sequential(nn.Linear(3, 4), MyALIF(tau_mem=5.0)), dt=DT)
    from snnlab.core.normalization import TimeSyncBatchNorm
    net = sl.Sequential(nn.Linear(3, 4), TimeSyncBatchNorm(4), sl.LIF(tau_mem=5.0)).eval()
    assert type(to_nir(net, dt=DT).nodes["0"]).__name__ == "Affine"


def test_a_parametrized_linear_exports_its_computed_weight_without_warning():
    lin = nn.Linear(4, 3)
    parametrize.register_parametrization(lin, "weight", _Abs())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        graph = to_nir(sl.Sequential(lin, sl.LIF(tau_mem=5.0)), dt=DT)
    assert torch.equal(torch.as_tensor(graph.nodes["0"].weight), lin.weight.detach())
    assert (graph.nodes["0"].weight >= 0).all()


class _Abs(nn.Module):
    def forward(self, w):
        return w.abs()


# ------------------------------------------------------------------------------------------------------ hooks


def test_a_forward_hook_changing_the_output_is_named_in_a_warning():
    net = sl.Sequential(nn.Linear(4, 6), sl.LIF(tau_mem=5.0), nn.Linear(6, 2), sl.LI(tau_mem=5.0))

    def double(module, inputs, output):
        return 2.0 * output

    handle = net[2].register_forward_hook(double)
    with pytest.warns(UserWarning, match=r"forward hook .*double.* on layer '2'") as record:
        graph = to_nir(net, dt=DT)
    assert "remove()" in str(record[0].message)
    assert type(graph.nodes["2"]).__name__ == "Affine"  # exported as the layer's own forward
    handle.remove()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        to_nir(net, dt=DT)


def test_pre_hooks_on_layers_containers_and_global_hooks_are_named():
    net = sl.Sequential(nn.Linear(4, 6), sl.Sequential(sl.LIF(tau_mem=5.0)))

    def scale_input(module, args):
        return (0.5 * args[0],)

    handles = [net[1][0].register_forward_pre_hook(scale_input), net.register_forward_hook(lambda m, i, o: o + 1)]
    try:
        with pytest.warns(UserWarning, match=r"forward pre-hook .*scale_input.* on layer '1_0' \(model\.1\.0\)"):
            to_nir(net, dt=DT)
        with pytest.warns(UserWarning, match=r"forward hook .*lambda.* on the model"):
            to_nir(net, dt=DT)
    finally:
        for h in handles:
            h.remove()
    handle = nn.modules.module.register_module_forward_hook(lambda m, i, o: None)
    try:
        with pytest.warns(UserWarning, match=r"global forward hook"):
            to_nir(net, dt=DT)
    finally:
        handle.remove()


def test_snnlab_monitor_hooks_are_not_named():
    net = sl.Sequential(nn.Linear(4, 6), sl.LIF(tau_mem=5.0), nn.Linear(6, 2), sl.LI(tau_mem=5.0))
    with sl.Monitor(net) as mon:
        net(_x())
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            to_nir(net, dt=DT)
    assert mon.spikes["1"].shape == (12, 3, 6)


def test_a_pruned_weight_exports_as_its_mask_computes_it_not_the_stale_attribute():
    torch.manual_seed(2)
    lin = nn.Linear(4, 6)
    prune.l1_unstructured(lin, "weight", amount=0.5)
    prune.l1_unstructured(lin, "bias", amount=0.5)
    with torch.no_grad():  # an optimiser step: lin.weight / lin.bias are stale until the next call
        lin.weight_orig.mul_(3.0).add_(0.25)
        lin.bias_orig.add_(1.0)
    net = sl.Sequential(lin, sl.LIF(tau_mem=5.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        node = to_nir(net, dt=DT).nodes["0"]
    expected_w = (lin.weight_orig * lin.weight_mask).detach()
    expected_b = (lin.bias_orig * lin.bias_mask).detach()
    assert torch.equal(torch.as_tensor(node.weight), expected_w)
    assert torch.equal(torch.as_tensor(node.bias), expected_b)
    x = _x()
    with torch.no_grad():
        assert torch.equal(from_nir(to_nir(net, dt=DT))(x), net(x))


def test_weight_norm_and_spectral_norm_export_their_computed_weights_without_changing_the_model():
    torch.manual_seed(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # (the hook-based versions are deprecated)
        normed = torch.nn.utils.weight_norm(nn.Linear(4, 6))
        spectral = torch.nn.utils.spectral_norm(nn.Linear(6, 2))
    rec = sl.RecurrentLIF(6, tau_mem=5.0, reset="zero")
    prune.l1_unstructured(rec.recurrent, "weight", amount=0.3)
    with torch.no_grad():
        normed.weight_g.mul_(2.0)
        spectral.weight_orig.mul_(5.0)
        rec.recurrent.weight_orig.add_(0.5)
    net = sl.Sequential(normed, rec, spectral, sl.LI(tau_mem=5.0))
    u = spectral.weight_u.clone()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        graph = to_nir(net, dt=DT)
    assert torch.equal(spectral.weight_u, u)  # no power iteration
    w_norm = normed.weight_g * normed.weight_v / normed.weight_v.norm(dim=1, keepdim=True)
    assert torch.allclose(torch.as_tensor(graph.nodes["0"].weight), w_norm.detach(), rtol=1e-6, atol=0)
    v = spectral.weight_v
    sigma = torch.dot(u, spectral.weight_orig.detach() @ v)
    assert torch.allclose(torch.as_tensor(graph.nodes["2"].weight), (spectral.weight_orig / sigma).detach(),
                          rtol=1e-6, atol=0)
    w_rec = torch.as_tensor(graph.nodes["1"].nodes["w_rec"].weight)
    assert torch.equal(w_rec, (rec.recurrent.weight_orig * rec.recurrent.weight_mask).detach())
    x = _x()
    with torch.no_grad():
        net.eval()
        assert torch.allclose(from_nir(graph)(x), net(x), atol=1e-5)
