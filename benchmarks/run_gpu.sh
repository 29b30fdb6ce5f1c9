#!/usr/bin/env bash
# On a GPU machine: the Triton kernel tests on CUDA, then the GPU benchmark (benchmarks/gpu_bench.py).
# Peers come as wheels in .whl/ (run benchmarks/fetch_gpu_wheels.sh where PyPI is reachable; with the
# device tool, carry ".whl"). The machine's own python3 must hold torch and triton.
#   bash benchmarks/run_gpu.sh [all|tests|bench] [gpu_bench.py options]
# Results and logs go to $OUT (default benchmarks/gpu-out). "all" fits one command of the device tool
# (10 minutes at most): the whole script takes SNNLAB_GPU_BUDGET_S seconds (default 560); the tests
# run on parallel workers (pytest-xdist, where installed: SNNLAB_TEST_WORKERS, default 8) within
# SNNLAB_GPU_TESTS_S seconds (default 200), and the benchmark gets the rest as its --deadline, keeping
# in $OUT what it measured if cut short.
set -uo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}
case "$what" in all|tests|bench) shift $(( $# > 0 ? 1 : 0 ));; *) what=all;; esac
OUT=${OUT:-benchmarks/gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/snnlab-peers .whl/*.whl \
        && export PYTHONPATH="$PYTHONPATH:/tmp/snnlab-peers"
fi
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>&1 | tee "$OUT/device.txt"
python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)" 2>&1 | tee -a "$OUT/device.txt"
python3 -m snnlab info 2>&1 | tee -a "$OUT/device.txt" || true  # GPUs, bfloat16, backends (for RESULTS.md)
budget=${SNNLAB_GPU_BUDGET_S:-560}
tests_rc=0 bench_rc=0
if [ "$what" != bench ]; then
    workers=()
    if python3 -c "import xdist" 2>/dev/null; then workers=(-n "${SNNLAB_TEST_WORKERS:-8}"); fi
    # -o addopts="": the project's pytest options name nbval, which a bare GPU image may not have;
    # the interrupt (then a kill 10 s later) still prints which tests failed before it
    SNNLAB_TEST_DEVICE=cuda timeout -s INT -k 10 "${SNNLAB_GPU_TESTS_S:-200}" \
        python3 -m pytest -q -o addopts="" -p no:cacheprovider "${workers[@]}" \
        tests/test_kernels_triton.py tests/test_kernels_delays_triton.py tests/test_delays_func_transforms.py \
        tests/test_kernels_func.py tests/test_kernels_saved_memory.py tests/test_rng_state.py tests/test_recurrent_fused.py \
        tests/test_kernels_adaptive_triton.py "tests/test_adaptive_fused.py::test_the_fused_alif_on_cuda_matches_the_cpu" \
        "tests/test_surrogates_network.py::test_spike_mask_on_cuda_draws_there_and_follows_the_seed" \
        "tests/test_training_precision.py::test_bfloat16_training_on_cuda_feeds_the_neurons_bfloat16_and_learns" \
        2>&1 | tee "$OUT/gpu_tests.log"
    tests_rc=${PIPESTATUS[0]}
fi
if [ "$what" != tests ]; then
    left=$(( budget - SECONDS ))
    if [ "$what" = bench ] || [ "$left" -gt 60 ]; then
        python3 benchmarks/gpu_bench.py --out "$OUT" --deadline "$(( left > 60 ? left : 60 ))" "$@" 2>&1 \
            | tee "$OUT/bench.log"
        bench_rc=${PIPESTATUS[0]}
    else
        echo "benchmark not started: ${left} s left of SNNLAB_GPU_BUDGET_S=${budget}" | tee "$OUT/bench.log"
        bench_rc=1
    fi
fi
echo "gpu tests exit $tests_rc, benchmark exit $bench_rc"
exit $(( tests_rc || bench_rc ))
