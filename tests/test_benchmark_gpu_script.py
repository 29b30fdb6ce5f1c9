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
           "snnlab DelayedLinear gather", "snnlab masked: fused",
           "--out", str(tmp_path)]
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
        (f"snnlab DelayedLinear {b}", s) for b in ("triton", "torch", "triton gather")
        for s in ("sigma=2.5", "sigma=0.5", "rounded")}
    assert all(r["rel_error"] < 1e-5 for r in delay)
    table = (tmp_path / "results.md").read_text()
    assert "| snnlab triton |  |" in table and "| 1.00 |" in table and "of copy" in table
    assert "Copy bandwidth:" in table
