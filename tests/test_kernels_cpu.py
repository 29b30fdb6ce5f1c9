"""The compiled CPU LIF (``backend="cpu"``) against the PyTorch reference path."""
import ctypes
import os

import numpy as np
import pytest
import torch

from lif_cases import (CASES, MASK_CASES, assert_lif_matches, assert_sum_loss_grads_match, make_inputs, mask_kwargs,
                        run_lif)
from snnlab.kernels import c_build, lif_cpu as lif_cpu_mod
from snnlab.kernels.dispatch import lif, resolve_backend
from snnlab.kernels.lif_cpu import cpu_kernel_available, cpu_kernel_error, lif_cpu
from snnlab.kernels.lif_torch import lif_torch

needs_kernel = pytest.mark.skipif(not cpu_kernel_available(), reason=f"CPU kernel not built: {cpu_kernel_error()}")


def test_kernel_builds_wherever_there_is_a_compiler():
    # guards the skips below: on a machine with a C compiler (CI has gcc) the kernel must build
    if c_build.find_compiler() is None:
        pytest.skip("no C compiler on this machine")
    assert cpu_kernel_error() is None


@pytest.mark.parametrize("reset,detach,max_spikes,surrogate,param,per_neuron,shape", CASES)
@needs_kernel
def test_matches_torch_reference(reset, detach, max_spikes, surrogate, param, per_neuron, shape):
    x, beta, thr, grad = make_inputs(shape, per_neuron, seed=len(reset) * 7 + int(detach) * 3 + (max_spikes or 0),
                                     steps=40)
    kw = dict(reset=reset, detach_reset=detach, max_spikes=max_spikes, surrogate=surrogate, surrogate_param=param)
    ref = run_lif(lif_torch, x, beta, thr, grad, **kw)
    out = run_lif(lif_cpu, x, beta, thr, grad, **kw)
    assert ref[0].sum() > 0 and (max_spikes is None or ref[0].sum(0).max() == max_spikes)
    assert_lif_matches(ref, out)
    # the deterministic forward is the same arithmetic as the PyTorch path (the backward recomputes it)
    torch.testing.assert_close(out[1], ref[1], atol=0, rtol=0)


@pytest.mark.parametrize("surrogate", ["atan", "fast_sigmoid", "triangle"])
@needs_kernel
def test_hidden_layer_gradient_equals_torch_path(surrogate):
    # no parameter gradients (the common case): the backward does PyTorch's operations in its order
    x, beta, thr, grad = make_inputs((3, 50), per_neuron=False, seed=4, steps=60)
    ref = run_lif(lif_torch, x, beta, thr, grad, grad_params=False, surrogate=surrogate)
    out = run_lif(lif_cpu, x, beta, thr, grad, grad_params=False, surrogate=surrogate)
    assert_lif_matches(ref, out, atol=1e-6, rtol=1e-6)


@needs_kernel
def test_shapes_blocks_threads_and_constant_gradient():
    # M = 4101 spans several 2048-neuron blocks and both threads; T = 1 and M = 1 are edge cases
    for shape, steps in (((3, 1367), 7), ((1,), 1), ((2, 3, 5), 4)):
        x, beta, thr, grad = make_inputs(shape, per_neuron=True, seed=9, steps=steps)
        assert_lif_matches(run_lif(lif_torch, x, beta, thr, grad, max_spikes=2),
                           run_lif(lif_cpu, x, beta, thr, grad, max_spikes=2))
    x, beta, thr, grad = make_inputs((3, 1367), per_neuron=False, seed=1, steps=200)  # > 0.5M elements: threads
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = run_lif(lif_cpu, x, beta, thr, grad)
        torch.set_num_threads(2)
        two = run_lif(lif_cpu, x, beta, thr, grad)
    finally:
        torch.set_num_threads(threads)
    for a, b in zip(one, two):
        assert torch.equal(a, b)
    # out.sum().backward() hands the kernel an expanded (stride-0) gradient: read as one number
    xs = [x.clone().requires_grad_() for _ in range(2)]
    for fn, xi in zip((lif_torch, lif_cpu), xs):
        fn(xi, beta, thr)[0].sum().backward()
    torch.testing.assert_close(xs[1].grad, xs[0].grad, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("noise,reset,max_spikes", [("gaussian", "subtract", None), ("logistic", "zero", 2)])
@needs_kernel
def test_noisy_spikes_match_torch_and_follow_the_seed(noise, reset, max_spikes):
    x, beta, thr, grad = make_inputs((2, 65), per_neuron=True, seed=11, steps=30)
    kw = dict(noise=noise, noise_scale=0.4, reset=reset, max_spikes=max_spikes)
    spikes = {}
    for seed in (0, 1, 12345):
        ref = run_lif(lif_torch, x, beta, thr, grad, seed=seed, **kw)
        out = run_lif(lif_cpu, x, beta, thr, grad, seed=seed, **kw)
        assert_lif_matches(ref, out)
        spikes[seed] = out[0]
    assert torch.equal(lif_cpu(x, beta, thr, seed=0, **kw)[0], spikes[0])
    assert not torch.equal(spikes[0], spikes[1]) and not torch.equal(spikes[0], spikes[12345])
    assert not torch.equal(lif_cpu(x, beta, thr, reset=reset, max_spikes=max_spikes)[0], spikes[0])


@pytest.mark.parametrize("reset,max_spikes,noise,shape", MASK_CASES)
@needs_kernel
def test_fused_spike_masking_matches_torch(reset, max_spikes, noise, shape):
    # 40 steps: the backward re-runs the forward from two membrane checkpoints
    x, beta, thr, grad = make_inputs(shape, per_neuron=True, seed=23, steps=40)
    kw = mask_kwargs(reset, max_spikes, noise)
    ref = run_lif(lif_torch, x, beta, thr, grad, **kw)
    out = run_lif(lif_cpu, x, beta, thr, grad, **kw)
    unmasked = lif_torch(x, beta, thr, **dict(kw, mask_p=0.0))[0]
    assert 0 < ref[0].sum() < unmasked.sum() and torch.equal(ref[0] * unmasked, ref[0])  # some spikes dropped
    assert_lif_matches(ref, out)
    assert_sum_loss_grads_match(lif_torch, lif_cpu, x, beta, thr, **kw)  # masked per element in the kernel


@needs_kernel
def test_fused_spike_masking_on_threads_and_blocks():
    # > 0.5M elements: two threads, several neuron blocks; the masks follow the element index, not the split
    x, beta, thr, grad = make_inputs((3, 1367), per_neuron=False, seed=2, steps=130)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        out = run_lif(lif_cpu, x, beta, thr, grad, mask_p=0.25, mask_seed=3)
    finally:
        torch.set_num_threads(threads)
    assert_lif_matches(run_lif(lif_torch, x, beta, thr, grad, mask_p=0.25, mask_seed=3), out)


@needs_kernel
def test_module_backends_agree_in_training():
    import snnlab as sl

    torch.manual_seed(0)
    x = torch.rand(25, 4, 30) * 0.8
    layers = {b: sl.LIF(tau_mem=5.0, learn_threshold=True, learn_tau=True, n_neurons=30, max_spikes=3, backend=b)
              for b in ("torch", "cpu")}
    grads = {}
    for b, layer in layers.items():
        xi = x.clone().requires_grad_()
        out = layer(xi)
        (out * torch.linspace(-1, 1, 30)).sum().backward()
        grads[b] = (out.detach(), xi.grad, layer.threshold.grad, next(p.grad for n, p in layer.named_parameters()
                                                                     if n != "threshold"))
    assert torch.equal(grads["cpu"][0], grads["torch"][0])
    for a, b in zip(grads["cpu"][1:], grads["torch"][1:]):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_auto_backend_choice(monkeypatch):
    cpu = torch.device("cpu")
    expected = "cpu" if cpu_kernel_available() else "torch"
    assert resolve_backend("auto", cpu) == expected
    assert resolve_backend("auto", cpu, torch.float64) == "torch"
    assert resolve_backend("torch", cpu) == "torch"
    monkeypatch.setenv("SNNLAB_CPU_KERNEL", "0")
    assert resolve_backend("auto", cpu) == "torch"


def test_explicit_cpu_backend_errors():
    with pytest.raises(TypeError, match="float32"):
        resolve_backend("cpu", "cpu", torch.float64)
    with pytest.raises(RuntimeError, match="CPU tensors"):
        resolve_backend("cpu", "cuda")
    x, beta, thr, _ = make_inputs((2, 5), per_neuron=False)
    with pytest.raises(TypeError, match="float32"):
        lif(x.double(), beta, thr, backend="cpu")
    with pytest.raises(ValueError, match="reset"):
        lif_cpu(x, beta, thr, reset="bogus")


def test_missing_compiler_is_a_clear_error_and_auto_keeps_pytorch(monkeypatch, tmp_path):
    monkeypatch.setenv("SNNLAB_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(c_build, "find_compiler", lambda: None)
    monkeypatch.setattr(lif_cpu_mod, "_library", lif_cpu_mod._library.__wrapped__)  # no cached build
    assert "no C compiler" in cpu_kernel_error()
    with pytest.raises(RuntimeError, match="no C compiler"):
        resolve_backend("cpu", "cpu")
    assert resolve_backend("auto", "cpu") == "torch"
    x, beta, thr, _ = make_inputs((2, 5), per_neuron=False)
    s, _ = lif(x, beta, thr, backend="auto")
    assert torch.equal(s, lif_torch(x, beta, thr)[0])
    with pytest.raises(RuntimeError, match="compiled CPU kernel"):
        lif_cpu(x, beta, thr)


@pytest.mark.skipif(c_build.find_compiler() is None, reason="no C compiler")
def test_build_is_cached_per_source_and_reports_compiler_errors(monkeypatch, tmp_path, capfd):
    monkeypatch.setenv("SNNLAB_CACHE_DIR", str(tmp_path))
    src = tmp_path / "adder.c"
    src.write_text("int add(int a, int b) { return a + b; }\n")
    lib = c_build.load_c_library(src)
    assert lib.add(2, 3) == 5
    # the first build says why the first step waits (speed profile: 8 s of silence and a wrong ETA)
    assert capfd.readouterr().err.count("snnlab: compiling adder.c for this machine (once") == 1
    built = sorted(tmp_path.glob("adder-*.so"))
    assert len(built) == 1
    stamp = os.stat(built[0]).st_mtime_ns
    c_build.load_c_library(src)  # cached: not compiled again, nothing said
    assert os.stat(built[0]).st_mtime_ns == stamp and sorted(tmp_path.glob("adder-*.so")) == built
    assert capfd.readouterr().err == ""
    src.write_text("int add(int a, int b) { return a - b; }\n")  # an edited source gets its own build
    assert c_build.load_c_library(src).add(2, 3) == -1
    assert len(list(tmp_path.glob("adder-*.so"))) == 2
    bad = tmp_path / "broken.c"
    bad.write_text("int broken( {\n")
    with pytest.raises(c_build.CBuildError, match="broken.c"):
        c_build.load_c_library(bad)
    assert not list(tmp_path.glob("broken-*.so")) and not list(tmp_path.glob("tmp*"))
    assert isinstance(lib, ctypes.CDLL)


@pytest.mark.skipif(c_build.find_compiler() is None, reason="no C compiler")
def test_new_build_prunes_stale_builds_of_the_same_source_name(monkeypatch, tmp_path):
    monkeypatch.setenv("SNNLAB_CACHE_DIR", str(tmp_path))
    old, recent, other = tmp_path / "adder-0000.so", tmp_path / "adder-1111.so", tmp_path / "other-2222.so"
    for path in (old, recent, other):
        path.write_bytes(b"")
    month_ago = os.stat(old).st_mtime - c_build.STALE_AFTER_S - 60
    os.utime(old, (month_ago, month_ago))
    os.utime(other, (month_ago, month_ago))
    src = tmp_path / "adder.c"
    src.write_text("int add(int a, int b) { return a + b; }\n")
    assert c_build.load_c_library(src).add(1, 2) == 3
    assert not old.exists()  # stale build of an older adder.c: gone
    assert recent.exists() and other.exists()  # recent ones and other sources' builds stay
    assert len(list(tmp_path.glob("adder-*.so"))) == 2


def _ulps(approx: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    """|approx - exact| in units of the float32 spacing at the exact value."""
    spacing = torch.from_numpy(np.spacing(exact.abs().float().numpy())).double()
    return (approx.double() - exact).abs() / spacing


@needs_kernel
def test_vectorised_exp_and_erf_within_two_ulp():
    x = torch.linspace(-87.0, 88.0, 1_000_001)
    assert _ulps(lif_cpu_mod.math_approx("exp", x), torch.exp(x.double())).max() <= 2.0
    x = torch.cat([torch.linspace(-4.5, 4.5, 1_000_001), torch.logspace(-30, 0, 2001), -torch.logspace(-30, 0, 2001)])
    assert _ulps(lif_cpu_mod.math_approx("erf", x), torch.special.erf(x.double())).max() <= 2.0
    # ends: erf saturates to exactly +-1; exp is exactly 0 below -87.33 and +inf past its overflow point (torch.exp's)
    ends = lif_cpu_mod.math_approx("erf", torch.tensor([-1e30, -4.0, 0.0, 4.0, 1e30]))
    assert ends.tolist() == [-1.0, -1.0, 0.0, 1.0, 1.0]
    assert torch.isnan(lif_cpu_mod.math_approx("erf", torch.tensor([float("nan")]))).all()  # as torch.erf
    big = lif_cpu_mod.math_approx("exp", torch.tensor([-1e30, -100.0, 100.0, 1e30]))
    assert big.tolist() == [0.0, 0.0, float("inf"), float("inf")]
    with pytest.raises(ValueError, match="exp"):
        lif_cpu_mod.math_approx("log", x)


@needs_kernel
def test_last_step_membrane_only_when_not_kept():
    x, beta, thr, grad = make_inputs((3, 40), per_neuron=True, seed=6, steps=70)
    full = run_lif(lif_cpu, x, beta, thr, grad, max_spikes=3)
    last = run_lif(lif_cpu, x, beta, thr, grad, max_spikes=3, keep_membrane=False)
    assert last[1].shape == (1, 3, 40) and torch.equal(last[1][0], full[1][-1])
    for a, b in zip(full[2:], last[2:]):
        assert torch.equal(a, b)
    assert torch.equal(full[0], last[0])


@pytest.mark.parametrize("mask_p", [0.0, 0.3])
@pytest.mark.parametrize("name", ["torch", "cpu"])
def test_empty_sequence_forward_and_backward(name, mask_p):
    if name == "cpu" and not cpu_kernel_available():
        pytest.skip("CPU kernel not built")
    fn = lif_torch if name == "torch" else lif_cpu
    x = torch.zeros(0, 2, 3, requires_grad=True)
    beta, thr = torch.tensor(0.9, requires_grad=True), torch.ones(3, requires_grad=True)
    s, _ = fn(x, beta, thr, max_spikes=1, mask_p=mask_p)
    (s.sum() + 0 * beta).backward()
    assert s.shape == (0, 2, 3) and x.grad.shape == (0, 2, 3)
    assert beta.grad == 0 and torch.equal(thr.grad, torch.zeros(3))


def _unwritable(tmp_path, name):
    """A folder path no one can create, root included: its parent is a regular file."""
    blocker = tmp_path / f"{name}-file"
    blocker.write_text("not a folder")
    return blocker / "snnlab"


@pytest.mark.skipif(c_build.find_compiler() is None, reason="no C compiler")
def test_unwritable_cache_folder_falls_back_to_a_private_temp_folder(monkeypatch, tmp_path):
    import tempfile

    monkeypatch.setenv("SNNLAB_CACHE_DIR", str(_unwritable(tmp_path, "cache")))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    src = tmp_path / "adder.c"
    src.write_text("int add(int a, int b) { return a + b; }\n")
    assert c_build.load_c_library(src).add(2, 3) == 5
    fallback = c_build.fallback_cache_dir()
    assert fallback.parent == tmp_path / "tmp" and len(list(fallback.glob("adder-*.so"))) == 1
    if hasattr(os, "getuid"):
        assert fallback.name == f"snnlab-{os.getuid()}" and fallback.stat().st_mode & 0o077 == 0
    c_build.load_c_library(src)  # found there again: not compiled twice
    assert len(list(fallback.glob("adder-*.so"))) == 1
    monkeypatch.delenv("SNNLAB_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(_unwritable(tmp_path, "home")))  # a home that cannot hold ~/.cache
    assert c_build.build_dir() == fallback


def test_no_writable_cache_folder_is_a_build_error_and_auto_keeps_pytorch(monkeypatch, tmp_path):
    import tempfile

    monkeypatch.setenv("SNNLAB_CACHE_DIR", str(_unwritable(tmp_path, "cache")))
    monkeypatch.setattr(tempfile, "tempdir", str(_unwritable(tmp_path, "tmp")))
    monkeypatch.setattr(c_build, "find_compiler", lambda: "cc")  # a compiler is there: the folder is the problem
    monkeypatch.setattr(c_build, "_compiler_id", lambda cc: "cc")
    monkeypatch.setattr(lif_cpu_mod, "_library", lif_cpu_mod._library.__wrapped__)  # no cached build
    with pytest.raises(c_build.CBuildError, match="SNNLAB_CACHE_DIR"):
        c_build.load_c_library(lif_cpu_mod.SOURCE)
    assert "no writable folder" in cpu_kernel_error()
    assert resolve_backend("auto", "cpu") == "torch"
    x, beta, thr, _ = make_inputs((2, 5), per_neuron=False)
    s, _ = lif(x, beta, thr, backend="auto")
    assert torch.equal(s, lif_torch(x, beta, thr)[0])
    with pytest.raises(RuntimeError, match="no writable folder"):
        resolve_backend("cpu", "cpu")
    with pytest.raises(c_build.CBuildError, match="no writable folder"):
        lif_cpu(x, beta, thr)


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="ownership checks need POSIX users")
def test_the_private_fallback_folder_refuses_links_and_folders_others_may_write(tmp_path):
    """Reviewer: a symbolic link planted at <tmp>/snnlab-<uid> was followed to any folder of the user's."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    link = tmp_path / "snnlab-link"
    link.symlink_to(elsewhere)
    assert "is a link" in c_build._unusable(link, private=True)
    shared = tmp_path / "snnlab-shared"
    shared.mkdir()
    shared.chmod(0o777)
    assert "others may write" in c_build._unusable(shared, private=True)
    own = tmp_path / "snnlab-own"
    assert c_build._unusable(own, private=True) is None and own.stat().st_mode & 0o077 == 0


@pytest.mark.skipif(c_build.find_compiler() is None, reason="no C compiler")
def test_a_missing_source_is_a_build_error(tmp_path):
    with pytest.raises(c_build.CBuildError, match="could not build gone.c: cannot read it"):
        c_build.load_c_library(tmp_path / "gone.c")
