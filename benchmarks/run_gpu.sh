#!/usr/bin/env bash
# On a GPU machine: the Triton kernel tests on CUDA, then the GPU benchmark (benchmarks/gpu_bench.py).
# Peers come as wheels in .whl/ (run benchmarks/fetch_gpu_wheels.sh where PyPI is reachable; with the
# device tool, carry ".whl"). The machine's own python3 must hold torch and triton.
#   bash benchmarks/run_gpu.sh [all|tests|bench] [gpu_bench.py options]
# Results and logs go to $OUT (default benchmarks/gpu-out). Where one command may run 10 minutes at most
# (the device tool), run "tests" and "bench" as two commands: the benchmark stops starting variants
# when its --deadline (default 540 s) comes near, and keeps what it measured in $OUT either way.
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
tests_rc=0 bench_rc=0
if [ "$what" != bench ]; then
    # -o addopts="": the project's pytest options name nbval, which a bare GPU image may not have
    SNNLAB_TEST_DEVICE=cuda python3 -m pytest -q -o addopts="" -p no:cacheprovider \
        tests/test_kernels_triton.py tests/test_kernels_delays_triton.py \
        "tests/test_surrogates_network.py::test_spike_mask_on_cuda_draws_there_and_follows_the_seed" \
        2>&1 | tee "$OUT/gpu_tests.log"
    tests_rc=${PIPESTATUS[0]}
fi
if [ "$what" != tests ]; then
    python3 benchmarks/gpu_bench.py --out "$OUT" "$@" 2>&1 | tee "$OUT/bench.log"
    bench_rc=${PIPESTATUS[0]}
fi
echo "gpu tests exit $tests_rc, benchmark exit $bench_rc"
exit $(( tests_rc || bench_rc ))
