"""The GPU benchmark script runs end to end on the CPU (Triton's interpreter) and reports what it should.

Its timings here mean nothing (the interpreter); the test checks the script itself so that a session
with a GPU can run it at once: rows for every case, ratios against snnlab, the bandwidth column, and
DelayedLinear's error against the float64 reference.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_quick_run_writes_tables(tmp_path):
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=str(ROOT))
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu_bench.py"), "--device", "cpu", "--quick", "--reps", "1",
           "--warmup", "0", "--only", "snnlab triton", "snnlab torch", "snnlab DelayedLinear",
           "snnlab DelayedLinear gather", "snnlab DelayedLinear taps", "snnlab masked: fused",
           "snnlab triton profile", "--out", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "results.json").read_text())
    rows = result["rows"]
    assert result["notes"] == {} and not [r for r in rows if "error" in r]
    neuron = [r for r in rows if r["kind"] in ("LIF", "Linear+LIF")]
    assert len(neuron) == 2 * 3 + 2  # two variants x (two LIF cases + one Linear+LIF case); masking: LIF cases
    assert {r["info"] for r in neuron if r["variant"] == "snnlab masked: fused"} == {"mask_p=0.3"}
    assert all(r["median_s"] > 0 for r in rows)
    delay = [r for r in rows if r["kind"] == "DelayedLinear"]
    assert {(r["variant"], r["setting"]) for r in delay} == {
        (f"snnlab DelayedLinear {b}", s) for b in ("triton", "torch", "triton gather", "triton taps")
        for s in ("sigma=2.5", "sigma=0.5", "rounded")}
    assert all(r["rel_error"] < 1e-5 for r in delay)
    # the profile: one row per case, its steps' work split by what ran (on a CPU: the autograd
    # functions that call the interpreted kernels), most time first
    profiled = [r for r in rows if r["kind"] == "profile"]
    assert [r["case"].split(",")[0] for r in profiled] == ["LIF", "LIF", "Linear+LIF", "DelayedLinear", "DelayedLinear"]
    assert profiled[-1]["case"].endswith("rounded") and all(r["timed"] == "cpu" for r in profiled)
    for r, top in zip(profiled, ["LIFTriton"] * 3 + ["DelayedLinearTriton", "DelayedLinearRoundedTriton"]):
        seconds = [k["seconds"] for k in r["kernels"]]
        assert r["kernels"][0]["name"].startswith(top) and seconds == sorted(seconds, reverse=True)
        assert 0 < sum(seconds) <= r["busy_s"] * (1 + 1e-9) and r["kernels"][0]["calls"] == 1
    table = (tmp_path / "results.md").read_text()
    assert "| snnlab triton |  |" in table and "| 1.00 |" in table and "of copy" in table
    assert "Copy bandwidth:" in table
    assert table.count("### Profile: snnlab triton, ") == 5 and "| share of busy |" in table
    assert "### Profile: snnlab triton, DelayedLinear, T=20, B=8, 14->16, K=5, rounded" in table


def _load_bench():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_bench", ROOT / "benchmarks" / "gpu_bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_deadline_shortens_the_last_variants_and_skips_the_rest(monkeypatch, tmp_path):
    bench = _load_bench()
    now = [0.0]
    started = []

    def fake_worker(variant, args, timeout):  # each variant takes 60 s of the fake clock
        started.append((variant, timeout))
        now[0] += 60
        return [], ""
    monkeypatch.setattr(bench, "clock", lambda: now[0])
    monkeypatch.setattr(bench, "run_worker", fake_worker)
    monkeypatch.setattr(bench, "copy_bandwidth", lambda device, nbytes: 1e9)
    monkeypatch.setattr(bench, "write_results", lambda *a: None)
    assert bench.main(["--device", "cpu", "--deadline", "200", "--timeout", "120", "--min-start", "30"]) == 0
    names = list(bench.VARIANTS)
    # 200 s left: 120; 140 left: 120; 80 left: 80 (what is left); 20 left: under --min-start, none more
    assert started == [(names[0], 120), (names[1], 120), (names[2], 80)]


def test_variants_run_the_compared_rows_before_the_tuning_ones():
    names = list(_load_bench().VARIANTS)
    compared = ["snnlab triton", "spikingjelly", "snntorch", "norse", "snnlab DelayedLinear", "dcls Dcls1d",
                "dcls Dcls1d fp32"]
    tuning = [n for n in names if "prefetch" in n or "block=" in n or n.endswith(("gather", "tf32", "tf32x3"))]
    assert names[:len(compared)] == compared and len(tuning) == 6
    assert names[len(compared)] == "snnlab DelayedLinear taps"  # a candidate for the default, before the rest
    assert min(names.index(n) for n in tuning) > names.index("norse compiled step")


def test_kernel_times_counts_calls_per_step_most_time_first():
    import torch

    bench = _load_bench()
    w = torch.randn(64, 64, requires_grad=True)
    step = bench.grad_step(lambda: torch.tanh(w @ w), [w])
    times = bench.kernel_times(step, torch.device("cpu"), steps=2)
    calls = {name: c for name, c, _ in times}
    # forward: one mm; backward: one mm for each operand of w @ w, one tanh_backward
    assert calls["aten::mm"] == 3 and calls["aten::tanh"] == 1 and calls["aten::tanh_backward"] == 1
    seconds = [s for _, _, s in times]
    assert seconds == sorted(seconds, reverse=True) and all(s > 0 for s in seconds)


def test_profile_tables_give_device_busy_time_and_shares():
    bench = _load_bench()
    rows = [dict(kind="profile", case="LIF, T=500, B=16, N=16384", timed="device", median_s=2e-3, busy_s=1.5e-3,
                 kernels=[dict(name="_lif_bwd_kernel", calls=1, seconds=1e-3),
                          dict(name="a|b", calls=2, seconds=0.5e-3)]),
            dict(kind="profile", case="DelayedLinear, rounded", error="OutOfMemoryError: CUDA out of memory")]
    text = "\n".join(bench.profile_markdown(rows))
    assert "Step 2.000 ms (median, unprofiled); the device is busy 1.500 ms of it (75%;" in text
    assert "| `_lif_bwd_kernel` | 1 | 1.000 | 67% |" in text and "| `a\\|b` | 2 | 0.500 | 33% |" in text
    assert "### Profile: snnlab triton, DelayedLinear, rounded\n\nFailed: OutOfMemoryError" in text
    # the timing tables leave the profile rows to their own section
    table = bench.markdown(rows, None, "GPU", {})
    assert table.count("### Profile") == 2 and "| library |" not in table


def test_cpu_delay_benchmark_quick_run_gives_every_row_and_its_error():
    cmd = [sys.executable, str(ROOT / "benchmarks" / "cpu_delays.py"), "--quick", "--rounds", "1", "--threads", "1"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = [line.split("|")[1:-1] for line in r.stdout.splitlines() if line.startswith("| sigma") or
            line.startswith("| rounded")]
    names = {(row[0].strip(), row[1].strip()) for row in rows}
    for setting in ("sigma=2.5", "sigma=0.5"):
        assert {(setting, f"snnlab torch ({m})") for m in ("auto", "fft", "taps")} <= names
    assert ("rounded", "snnlab torch (auto)") in names
    assert all(float(row[4]) < 1e-5 for row in rows)  # every variant computes the same function
    try:
        import DCLS  # noqa: F401
        assert ("sigma=0.5", "dcls Dcls1d") in names
    except ImportError:
        assert "dcls is not installed" in r.stderr
