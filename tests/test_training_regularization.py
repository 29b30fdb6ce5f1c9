"""Activity regularisation (``spike_reg``): the penalty's value and gradient, and its effect in training."""
import pytest
import torch

from snnlab.training import ExperimentConfig, Trainer
from snnlab.training.regularization import spike_rate_penalty


def test_penalty_is_the_mean_spike_count_per_neuron_and_sample_with_that_gradient():
    a = torch.bernoulli(torch.full((7, 3, 4), 0.3)).requires_grad_()
    b = torch.bernoulli(torch.full((7, 3, 2, 5), 0.3)).requires_grad_()
    p = spike_rate_penalty([a, b])
    assert float(p) == pytest.approx(float(a.sum() + b.sum()) / (3 * (4 + 10)))
    p.backward()
    assert torch.all(a.grad == 1 / 42) and torch.all(b.grad == 1 / 42)  # every spike costs the same


@pytest.mark.parametrize("bad, words", [([], "at least one layer"), ([torch.ones(4)], "time-major"),
                                        ([torch.ones(3, 2, 4), torch.ones(3, 5, 4)], "one batch size")])
def test_penalty_refuses_what_is_not_one_batch_of_spikes(bad, words):
    with pytest.raises(ValueError, match=words):
        spike_rate_penalty(bad)


def tiny(**kw):
    base = dict(hidden=[32], num_steps=10, batch_size=32, epochs=1, max_batches_per_epoch=8, eval_max_batches=2,
                device="cpu", encoding="rate", lr=5e-3)
    return ExperimentConfig(**{**base, **kw})


def test_training_with_spike_reg_fires_less_and_logs_the_task_loss():
    plain, sparse = Trainer(tiny(), progress=False), Trainer(tiny(spike_reg=2.0), progress=False)
    plain.run()
    sparse.run()
    a, b = plain.history.steps(), sparse.history.steps()
    assert a[0]["loss"] == b[0]["loss"]  # same weights at the first step: the logged loss is the task loss
    assert a[0]["spikes_per_sample"] == b[0]["spikes_per_sample"]
    assert sum(r["spikes_per_sample"] for r in b[-3:]) < 0.7 * sum(r["spikes_per_sample"] for r in a[-3:])
    assert "reg2" in sparse.cfg.label().split() and "spike_reg" not in tiny().identity_dict()


def test_spike_reg_zero_trains_exactly_as_before():
    a, b = Trainer(tiny(), progress=False), Trainer(tiny(spike_reg=0.0), progress=False)
    a.run()
    b.run()
    assert [r["loss"] for r in a.history.steps()] == [r["loss"] for r in b.history.steps()]
    assert all(torch.equal(p, q) for p, q in zip(a.model.state_dict().values(), b.model.state_dict().values()))
