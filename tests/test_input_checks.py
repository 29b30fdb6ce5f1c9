"""Input checks of the metrics, the encoders and the Gaussian delay kernel: bad arguments get a clear error that
names the function (nothing silently wrong), edge cases that are valid give a defined result."""

import numpy as np
import pytest
import torch
from torch import nn

import snnlab as sl
from snnlab.data import (DirectEncoder, LatencyEncoder, RateEncoder, direct_encode, latency_encode, rate_encode,
                         spike_times_to_dense)
from snnlab.kernels.delay_math import gaussian_delay_kernel
from snnlab.metrics import (SynOpsCounter, decision_latency, energy_j, evaluate, event_samples, gaussian_noise,
                            jitter_spikes, layer_ops, layer_spike_counts, neuron_spike_counts, robustness_curve,
                            synops_table)

NON_FINITE = [float("nan"), float("inf")]


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def small_net():
    torch.manual_seed(0)
    return sl.Sequential(nn.Linear(4, 8), sl.LIF(), nn.Linear(8, 2), sl.LI())


def batch(B=3, T=5):
    return torch.rand(T, B, 4, generator=gen(1)), torch.arange(B) % 2


# ----------------------------------------------------------------------------- 1. perturbation levels


@pytest.mark.parametrize("std", NON_FINITE)
def test_jitter_refuses_a_non_finite_std(std):
    x = torch.zeros(10, 1, 3)
    x[5] = 1
    with pytest.raises(ValueError, match="jitter_spikes: std must be a finite number"):
        jitter_spikes(x, std, gen())


def test_jitter_with_a_huge_std_clips_spikes_to_both_edges_instead_of_wrapping_to_0():
    T = 10
    x = torch.zeros(T, 1, 200)
    x[5] = 1  # one spike per neuron: no collisions, every spike must survive
    out = jitter_spikes(x, 1e30, gen())
    times = out[:, 0].argmax(0)
    assert out.sum() == x.sum() and out.sum(0).eq(1).all()
    assert set(times.tolist()) == {0, T - 1}  # both edges (a wrapped int64 shift put every spike at t = 0)
    assert torch.equal(jitter_spikes(x, 1e300, gen(), merge=False).sum(0), x.sum(0))


def test_perturbation_std_must_be_a_number():
    x = torch.zeros(4, 1, 2)
    with pytest.raises(TypeError, match="jitter_spikes: std"):
        jitter_spikes(x, "1")
    with pytest.raises(TypeError, match="gaussian_noise: std"):
        gaussian_noise(x, "1")


@pytest.mark.parametrize("std", NON_FINITE)
def test_gaussian_noise_refuses_a_non_finite_std(std):
    with pytest.raises(ValueError, match="gaussian_noise: std must be a finite number"):
        gaussian_noise(torch.zeros(4, 2, 3), std, gen())


@pytest.mark.parametrize("kind", ["jitter", "gaussian"])
@pytest.mark.parametrize("level", NON_FINITE)
def test_robustness_curve_refuses_a_non_finite_level(kind, level):
    with pytest.raises(ValueError, match="std must be a finite number"):
        robustness_curve(small_net(), [batch()], kind, [0.0, level])


# ----------------------------------------------------------------------------- 2. decision latency targets


@pytest.mark.parametrize("target", [torch.tensor([1]), torch.tensor([1, 0]), torch.tensor([0, 1, 1, 0])])
def test_decision_latency_needs_one_target_per_sample(target):
    with pytest.raises(ValueError, match=r"decision_latency: target has \d label\(s\) for 3 sample"):
        decision_latency(torch.rand(5, 3, 2), target=target)


def test_decision_latency_refuses_float_targets():
    with pytest.raises(TypeError, match="decision_latency: target must be integer class indices.*float32"):
        decision_latency(torch.rand(5, 3, 2), target=torch.tensor([1.7, 0.2, 0.9]))


def test_decision_latency_refuses_targets_outside_the_classes():
    with pytest.raises(ValueError, match=r"decision_latency: target must be class indices in \[0, 2\)"):
        decision_latency(torch.rand(5, 3, 2), target=torch.tensor([0, 1, 2]))


def test_decision_latency_of_an_empty_window_or_no_class_is_an_error():
    with pytest.raises(ValueError, match=r"decision_latency: .*no time steps \(T = 0\)"):
        decision_latency(torch.zeros(0, 3, 2))
    with pytest.raises(ValueError, match=r"decision_latency: .*no classes \(C = 0\)"):
        decision_latency(torch.zeros(5, 3, 0))


def test_decision_latency_takes_integer_targets_in_any_form():
    out = torch.zeros(4, 3, 2)
    out[:, :, 1] = 1.0  # every sample predicts class 1 from step 0
    lat = decision_latency(out, target=torch.tensor([[1], [0], [1]]))  # [B, 1] is one label per sample too
    assert lat.tolist() == [0.0, 4.0, 0.0]
    assert decision_latency(out, target=np.array([1, 1, 0], dtype=np.int32)).tolist() == [0.0, 0.0, 4.0]
    assert decision_latency(torch.zeros(5, 0, 2), target=torch.zeros(0, dtype=torch.long)).numel() == 0


# ----------------------------------------------------------------------------- 3. evaluate: labels, empty batches


@pytest.mark.parametrize("bad", [[0, 1, 5], [0, 1, -1]])
def test_evaluate_refuses_labels_outside_the_model_outputs(bad):
    x, _ = batch()
    with pytest.raises(ValueError, match=r"evaluate: y must be class indices in \[0, 2\) .*2 classes"):
        evaluate(small_net(), [(x, torch.tensor(bad))])


def test_evaluate_refuses_float_labels_instead_of_truncating_them():
    x, _ = batch()
    with pytest.raises(TypeError, match="evaluate: y must be integer class indices"):
        evaluate(small_net(), [(x, torch.tensor([0.0, 1.7, 0.2]))])


def test_robustness_curve_checks_the_labels_too():
    x, _ = batch()
    with pytest.raises(TypeError, match="robustness_curve: y must be integer"):
        robustness_curve(small_net(), [(x, torch.tensor([0.0, 1.0, 1.0]))], "deletion", [0.0])
    with pytest.raises(ValueError, match=r"robustness_curve: y must be class indices in \[0, 2\)"):
        robustness_curve(small_net(), [(x, torch.tensor([0, 3, 1]))], "deletion", [0.0])


@pytest.mark.parametrize("shape", [(5, 0, 4), (0, 3, 4), (0, 0, 4), (5, 3, 0)])
def test_spike_counters_work_on_empty_tensors(shape):
    s = torch.zeros(shape)
    counts = layer_spike_counts({"a": s})["a"]
    per_neuron = neuron_spike_counts({"a": s})["a"]
    assert counts.shape == (shape[1],) and counts.dtype == torch.float64 and counts.sum() == 0
    assert per_neuron.shape == (shape[1], shape[2]) and per_neuron.sum() == 0


@pytest.mark.parametrize("shape", [(5, 0, 4), (0, 3, 4), (0, 4)])
def test_synops_counters_work_on_empty_tensors(shape):
    x = torch.zeros(shape)
    B = shape[1] if len(shape) == 3 else 1
    assert event_samples(x).shape == (B,)
    assert layer_ops(x, 6) == (0.0, 0.0, True, 0.0)
    assert layer_ops(x, 6, delays=torch.zeros(6, 4, dtype=torch.long)) == (0.0, 0.0, True, 0.0)


def test_synops_counter_sees_no_work_in_an_empty_batch():
    layer = sl.DelayedLinear(4, 3, max_delay=3, seed=0, backend="torch")
    net = nn.Sequential(nn.Linear(4, 4), layer)
    with SynOpsCounter(net) as c:
        net(torch.zeros(5, 0, 4))
    assert c.acs_per_sample() == 0.0 and c.macs_per_sample() == 0.0


def test_evaluate_skips_empty_batches():
    x, y = batch()
    empty = (torch.rand(5, 0, 4), torch.zeros(0, dtype=torch.long))
    assert evaluate(small_net(), [empty, (x, y), empty]) == evaluate(small_net(), [(x, y)])
    with pytest.raises(ValueError, match="evaluate: the loader yielded no samples"):
        evaluate(small_net(), [empty])


def test_evaluate_of_a_batch_without_time_steps_is_an_error():
    with pytest.raises(ValueError, match=r"evaluate: batch 1 has no time steps"):
        evaluate(small_net(), [batch(), (torch.rand(0, 3, 4), torch.tensor([0, 1, 1]))])


# ----------------------------------------------------------------------------- 4. energy


@pytest.mark.parametrize("args", [(-5, 3), (5, -3), (float("nan"), 3), (5, float("inf")), (1, 1, float("nan"), 1)])
def test_energy_refuses_negative_or_non_finite_numbers(args):
    with pytest.raises(ValueError, match="energy_j: .* must be a finite number >= 0"):
        energy_j(*args)


@pytest.mark.parametrize("args", [("5", 3), (5, "3"), (True, 3), (None, 3), (1, 1, "1e-12")])
def test_energy_refuses_strings_and_non_numbers(args):
    with pytest.raises(TypeError, match="energy_j: .* must be a number"):
        energy_j(*args)


def test_energy_accepts_numpy_and_tensor_numbers_unchanged():
    assert energy_j(np.float64(15), torch.tensor(2)) == energy_j(15, 2) == 15 * 0.9e-12 + 2 * 4.6e-12


def test_evaluate_checks_the_energies_before_the_pass():
    calls = []

    class Loader:
        def __iter__(self):
            calls.append(1)
            yield batch()

    with pytest.raises(ValueError, match="energy_j: e_ac"):
        evaluate(small_net(), Loader(), e_ac=float("nan"))
    with pytest.raises(ValueError, match="energy_j: e_mac"):
        synops_table(small_net(), Loader(), e_mac=-1.0)
    assert not calls


# ----------------------------------------------------------------------------- 5. encoders


def test_latency_encode_rc_with_one_step_and_the_default_tau_spikes_at_step_0():
    x = torch.tensor([[1.0, 0.5, 0.011, 0.01, 0.0]])
    s = latency_encode(x, num_steps=1, linear=False)
    assert s.shape == (1, 1, 5)
    assert s[0, 0].tolist() == [1.0, 1.0, 1.0, 0.0, 0.0]  # every feature above the threshold, at the only step
    y = x[:, [0, 1, 2, 4]]  # (x == threshold spikes in the linear code only)
    assert torch.equal(latency_encode(y, 1, linear=True), latency_encode(y, 1, linear=False))
    with pytest.raises(ValueError, match="tau must be a finite number > 0, got 0"):
        latency_encode(x, 1, tau=0, linear=False)  # a tau the user gives is still checked


@pytest.mark.parametrize("steps", [np.int64(5), np.int32(5), np.uint8(5)])
def test_encoders_accept_numpy_integers(steps):
    x = torch.rand(2, 3, generator=gen())
    assert torch.equal(latency_encode(x, steps), latency_encode(x, 5))
    assert torch.equal(latency_encode(x, steps, linear=False), latency_encode(x, 5, linear=False))
    assert torch.equal(rate_encode(x, steps, generator=gen()), rate_encode(x, 5, generator=gen()))
    assert torch.equal(direct_encode(x, steps), direct_encode(x, 5))
    t = torch.tensor([[0, 4, -1]])
    assert torch.equal(spike_times_to_dense(t, steps), spike_times_to_dense(t, 5))
    assert LatencyEncoder(steps)(x).shape == RateEncoder(steps, seed=np.int64(1))(x).shape == DirectEncoder(steps)(x).shape
    assert torch.equal(RateEncoder(5, seed=np.int64(1))(x), RateEncoder(5, seed=1)(x))


@pytest.mark.parametrize("steps", [True, 2.0, "5", 0])
def test_encoders_still_refuse_non_integer_steps(steps):
    with pytest.raises(ValueError, match="rate_encode: num_steps must be an int >= 1"):
        rate_encode(torch.rand(2, 3), steps)


@pytest.mark.parametrize("seed", ["a", 1.5, True, [1]])
def test_rate_encoder_refuses_a_seed_that_is_not_an_int(seed):
    with pytest.raises(TypeError, match="RateEncoder: seed must be an int"):
        RateEncoder(3, seed=seed)


def test_rate_encoder_refuses_a_seed_out_of_the_generator_range():
    with pytest.raises(ValueError, match="RateEncoder: seed must lie in"):
        RateEncoder(3, seed=2**70)
    RateEncoder(3, seed=-1)(torch.rand(2, 3))  # torch takes negative seeds: still fine


@pytest.mark.parametrize("cls", [LatencyEncoder, RateEncoder, DirectEncoder])
def test_encoder_classes_check_num_steps_when_built(cls):
    with pytest.raises(ValueError, match=f"{cls.__name__}: num_steps must be an int >= 1"):
        cls(0)


@pytest.mark.parametrize("steps", [0, -1, 2.5])
def test_spike_times_to_dense_needs_at_least_one_step(steps):
    with pytest.raises(ValueError, match="spike_times_to_dense: num_steps must be an int >= 1"):
        spike_times_to_dense(torch.tensor([[0, 1]]), steps)


def test_spike_times_to_dense_needs_a_tensor():
    with pytest.raises(TypeError, match="spike_times_to_dense: times must be a torch.Tensor"):
        spike_times_to_dense([[0, 1]], 3)


# ----------------------------------------------------------------------------- 6. Gaussian delay kernel, tiny sigma


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("sigma", [1e-20, 1e-30, 1e-200, 5e-324])
def test_tiny_sigma_gives_the_one_hot_nearest_tap_kernel(dtype, sigma):
    p = torch.rand(7, 11, generator=gen(2), dtype=dtype) * 9 - 0.5  # non-integer, some clamped
    g = gaussian_delay_kernel(p, sigma, 9)
    nearest = p.clamp(0, 8).round().long()
    assert torch.equal(g, nn.functional.one_hot(nearest, 9).to(dtype))
    assert torch.equal(gaussian_delay_kernel(p, sigma, 9, tap_dim=0), g.movedim(-1, 0))


def test_tiny_sigma_at_an_exact_midpoint_shares_the_weight_and_integers_stay_one_hot():
    g = gaussian_delay_kernel(torch.tensor([1.5, 2.0, 0.0, 4.0]), 1e-25, 5)
    assert g.tolist() == [[0, 0.5, 0.5, 0, 0], [0, 0, 1, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 1]]


def test_tiny_sigma_gradients_are_finite():
    p = (torch.rand(6, 5, generator=gen(3)) * 7).requires_grad_()
    g = gaussian_delay_kernel(p, 1e-20, 8)
    (g * torch.randn(g.shape, generator=gen(4))).sum().backward()
    assert torch.isfinite(p.grad).all() and p.grad.abs().max() == 0  # a one-hot does not move with p


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("sigma", [1e-3, 0.3, 1.7, 12.0])
def test_normal_sigma_kernel_and_gradients_are_the_plain_formula(dtype, sigma):
    p = (torch.rand(5, 6, generator=gen(5), dtype=dtype) * 10 - 0.5).requires_grad_()
    p64 = p.detach().double().requires_grad_()
    g = gaussian_delay_kernel(p, sigma, 9)
    taps = torch.arange(9, dtype=torch.float64)
    plain = torch.softmax(-((taps - p64.clamp(0.0, 8.0).unsqueeze(-1)) ** 2) / (2.0 * sigma ** 2), -1)
    tol = 1e-6 if dtype == torch.float32 else 1e-13
    torch.testing.assert_close(g.double(), plain, rtol=tol, atol=tol)
    w = torch.randn(g.shape, generator=gen(6), dtype=torch.float64)
    (g * w.to(dtype)).sum().backward()
    (plain * w).sum().backward()
    torch.testing.assert_close(p.grad.double(), p64.grad, rtol=tol, atol=tol * p64.grad.abs().max().item())


def test_delayed_linear_with_a_tiny_sigma_computes_the_rounded_layer():
    layer = sl.DelayedLinear(3, 2, max_delay=4, sigma=1e-20, seed=0, backend="torch")
    x = torch.rand(6, 2, 3, generator=gen(7))
    y = layer(x)
    assert torch.isfinite(y).all()
    layer.round_delays()
    torch.testing.assert_close(y, layer(x))


def test_spike_times_to_dense_refuses_fractional_times_and_reads_non_finite_ones_as_no_spike():
    from snnlab.data.encoders import spike_times_to_dense

    out = spike_times_to_dense(torch.tensor([[0.0, 2.0, float("nan"), float("inf")]]), 3)[:, 0]
    assert out.sum(0).tolist() == [1.0, 1.0, 0.0, 0.0] and out[2, 1] == 1
    with pytest.raises(ValueError, match="whole time steps"):
        spike_times_to_dense(torch.tensor([1.7]), 3)
    with pytest.raises(TypeError, match="integer time steps"):
        spike_times_to_dense(torch.tensor([True]), 3)


def test_smaller_metric_and_encoder_arguments_are_checked():
    """Review leftovers: raw float() errors, an integer latency tensor, layers of different passes, a 0-d table."""
    from snnlab.data.encoders import latency_encode
    from snnlab.metrics import decision_latency, gaussian_noise, mean_latency, neuron_spike_table, total_spike_counts

    with pytest.raises(TypeError, match="latency_encode: threshold must be a number"):
        latency_encode(torch.rand(2, 3), 4, threshold="a")
    with pytest.raises(TypeError, match="decision_latency: never must be a number"):
        decision_latency(torch.rand(3, 2, 2), target=torch.tensor([0, 1]), never="x")
    assert mean_latency(torch.tensor([1, 2, 4])) == pytest.approx(7 / 3)
    with pytest.raises(ValueError, match=r"different time steps or samples .*'a': \(3, 2\), 'b': \(4, 2\)"):
        total_spike_counts({"a": torch.ones(3, 2, 5), "b": torch.ones(4, 2, 5)})
    assert total_spike_counts({"a": torch.ones(3, 2, 5), "b": torch.ones(3, 2, 1)}).tolist() == [18.0, 18.0]
    with pytest.raises(TypeError, match="must be per-neuron counts"):
        neuron_spike_table({"a": torch.tensor(3.0)}, n_samples=1)
    with pytest.raises(ValueError, match="overflows torch.float32"):
        gaussian_noise(torch.zeros(2, 2, 2), 1e39)


def test_metric_seeds_are_checked_as_the_core_checks_them():
    """Review: robustness_curve(seed=1.7) silently seeded 1; evaluate(seed=2**64) failed inside torch."""
    import snnlab as sl
    from snnlab.metrics import evaluate, robustness_curve

    net = sl.Sequential(torch.nn.Linear(2, 2), sl.LI())
    loader = [(torch.rand(3, 4, 2), torch.tensor([0, 1, 0, 1]))]
    with pytest.raises(TypeError, match="robustness_curve: seed must be an int"):
        robustness_curve(net, loader, "deletion", [0.1], seed=1.7)
    with pytest.raises(ValueError, match=r"evaluate: seed must lie in \[-2\*\*63, 2\*\*64\)"):
        evaluate(net, loader, seed=2**64)
    assert evaluate(net, loader, seed=2**64 - 1)["n_samples"] == 4
