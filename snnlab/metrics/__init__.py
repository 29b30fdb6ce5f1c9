"""Metrics for spiking networks: spike counts, SynOps, energy, decision latency, robustness.

One accounting for every neuron type: *spikes* are the output spikes of LIF layers; *SynOps* (ACs)
are the input events received by synaptic layers (``nn.Linear``, ``DelayedLinear``, ``nn.Conv1d/2d/3d``, ``nn.ConvTranspose1d/2d/3d``; spikes or
event counts, decided per sample, per frame for convolutions) times the synapses that deliver them, analog inputs count as dense MACs;
*energy* is ``ACs * 0.9 pJ + MACs * 4.6 pJ`` (45 nm, Horowitz ISSCC 2014); a tie for the top class
score (e.g. a silent output) is no decision: wrong, and undecided for latency.

Example:
    >>> import torch, snnlab as sl
    >>> from snnlab.metrics import evaluate
    >>> net = sl.Sequential(torch.nn.Linear(4, 8), sl.LIF(), torch.nn.Linear(8, 2), sl.LI())
    >>> loader = [(torch.randint(0, 2, (10, 3, 4)).float(), torch.tensor([0, 1, 0]))]
    >>> sorted(evaluate(net, loader))[:3]
    ['accuracy', 'activation_sparsity', 'energy_per_sample_j']
"""
from ._common import check_batch, input_dtype, model_input, model_output
from .energy import E_AC_J, E_ADD_FP32_45NM, E_MAC_J, E_MULT_FP32_45NM, energy_j
from .evaluate import (EVALUATE_KEYS, EvalRecord, collect, evaluate, metrics_table, per_neuron_spike_counts,
                       spike_accounting_table, synops_table)
from .latency import decision_latency, mean_latency
from .robustness import (PERTURBATIONS, delete_spikes, gaussian_noise, insert_spikes, jitter_spikes, perturb,
                         perturb_samples, robustness_curve, sample_seed)
from .spikes import layer_spike_counts, neuron_spike_counts, neuron_spike_table, total_spike_counts
from .synops import (CostlyEventInputWarning, SynOpsCounter, conv_fanout, conv_ops, delivered_fanout, event_samples, is_binary, is_event_input,
                     layer_ops, synaptic_layers)

__all__ = [
    "check_batch", "input_dtype", "model_input", "model_output",
    "E_AC_J", "E_MAC_J", "E_ADD_FP32_45NM", "E_MULT_FP32_45NM", "energy_j",
    "EVALUATE_KEYS", "EvalRecord", "collect", "evaluate", "metrics_table", "per_neuron_spike_counts", "spike_accounting_table",
    "synops_table",
    "decision_latency", "mean_latency",
    "PERTURBATIONS", "jitter_spikes", "delete_spikes", "insert_spikes", "gaussian_noise", "perturb", "perturb_samples",
    "robustness_curve", "sample_seed",
    "layer_spike_counts", "neuron_spike_counts", "neuron_spike_table", "total_spike_counts",
    "CostlyEventInputWarning", "SynOpsCounter", "conv_fanout", "conv_ops", "delivered_fanout", "event_samples", "is_binary", "is_event_input", "layer_ops",
    "synaptic_layers",
]
