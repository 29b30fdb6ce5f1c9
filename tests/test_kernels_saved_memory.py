"""What one LIF forward keeps for its backward, per backend: the unique storages that autograd saves (counted with
``saved_tensors_hooks``), named after the Function's inputs and outputs. Only what the backward reads is kept: the
output spikes are saved where the backward reads them, not to tie the backward to the graph (that happens under
``torch.func`` only, where the tests of tests/test_kernels_func.py check the refused second derivatives).

triton_device must be imported before triton (it sets TRITON_INTERPRET=1 for the CPU run).
"""
from triton_device import DEVICE, triton_kernels_ready  # noqa: I001  (before triton)

import importlib  # noqa: E402

import pytest  # noqa: E402
import torch  # noqa: E402

from snnlab.kernels.lif_cpu import cpu_kernel_available, cpu_kernel_error  # noqa: E402
from snnlab.kernels.func_transforms import graph_tie  # noqa: E402
from snnlab.kernels.lif_common import LIFOptions  # noqa: E402


_TRITON_OK, _TRITON_WHY = triton_kernels_ready("snnlab.kernels.lif_triton")
_CPU_OK = cpu_kernel_available()

# backend -> (module, Function, names of its outputs)
FUNCTIONS = {
    "torch": ("snnlab.kernels.lif_torch", "LIFFunction", ("out", "membrane", "own")),
    "cpu": ("snnlab.kernels.lif_cpu", "LIFCpuFunction",
            ("out", "membrane", "own", "x_copy", "checkpoints", "counts", "beta_f", "thr_f")),
    "triton": ("snnlab.kernels.lif_triton", "LIFTritonFunction",
               ("out", "membrane", "own", "counts", "beta_f", "thr_f")),
}
OPTIONS = {
    "plain": dict(),
    "max_spikes": dict(max_spikes=2),
    "masked": dict(mask_p=0.3, mask_seed=4),
    "noisy": dict(noise="gaussian"),
    "noisy_masked": dict(noise="logistic", mask_p=0.3, mask_seed=4),
}
PARAMS = {"beta", "thr"}  # autograd keeps the parameters for the gradient's reduction to their shape
# the exact set of saved storages (besides PARAMS): the membrane (or, compiled CPU loop, x and the checkpoints),
# the neuron's own spikes where the backward reads them (the output itself without masking), never the masked output
EXPECTED = {
    ("torch", "plain"): {"membrane", "out"},
    ("torch", "max_spikes"): {"membrane", "out"},
    ("torch", "masked"): {"membrane", "own"},
    ("torch", "noisy"): {"membrane", "out"},
    ("torch", "noisy_masked"): {"membrane", "own"},
    ("cpu", "plain"): {"x", "out", "checkpoints", "beta_f", "thr_f"},
    ("cpu", "max_spikes"): {"x", "out", "checkpoints", "counts", "beta_f", "thr_f"},
    ("cpu", "masked"): {"x", "own", "checkpoints", "beta_f", "thr_f"},
    ("cpu", "noisy"): {"x", "out", "checkpoints", "beta_f", "thr_f"},
    ("cpu", "noisy_masked"): {"x", "own", "checkpoints", "beta_f", "thr_f"},
    # deterministic spikes are recomputed from the (float32) membrane: the spikes are not kept at all
    ("triton", "plain"): {"membrane", "beta_f", "thr_f"},
    ("triton", "max_spikes"): {"membrane", "counts", "beta_f", "thr_f"},
    ("triton", "masked"): {"membrane", "beta_f", "thr_f"},
    ("triton", "noisy"): {"membrane", "out", "beta_f", "thr_f"},
    ("triton", "noisy_masked"): {"membrane", "own", "beta_f", "thr_f"},
    ("triton", "bfloat16"): {"membrane", "beta_f", "thr_f"},  # half input too: its membrane is kept in float32
}
BACKENDS = [
    "torch",
    pytest.param("cpu", marks=pytest.mark.skipif(not _CPU_OK, reason=f"CPU kernel not built: {cpu_kernel_error()}")),
    pytest.param("triton", marks=pytest.mark.skipif(not _TRITON_OK, reason=_TRITON_WHY)),
]


def _options(**kw) -> LIFOptions:
    noise = kw.get("noise")
    return LIFOptions("subtract", False, kw.get("max_spikes"), noise or "atan", 0.4 if noise else 2.0, noise, 0.4, 3,
                      True, kw.get("mask_p", 0.0), kw.get("mask_seed", 0))


def _storage(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


def saved_storages(backend: str, option: str, dtype: torch.dtype = torch.float32,
                   shape: tuple[int, ...] = (12, 3, 16)) -> tuple[dict[str, int], tuple[int, ...]]:
    """The unique storages one forward of ``backend``'s LIF Function saves, by name (``?<shape>`` for one that is
    none of the named inputs and outputs) with their bytes; and the shape of ``x``."""
    module, fn_name, out_names = FUNCTIONS[backend]
    fn = getattr(importlib.import_module(module), fn_name)
    device = DEVICE if backend == "triton" else torch.device("cpu")
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(shape, generator=g) * 1.5).to(device=device, dtype=dtype).requires_grad_()
    beta = torch.full(shape[-1:], 0.8, device=device).requires_grad_()
    thr = torch.full(shape[-1:], 1.0, device=device).requires_grad_()
    packed: dict[int, tuple[int, tuple[int, ...]]] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        packed[_storage(t)] = (t.untyped_storage().nbytes(), tuple(t.shape))
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        outputs = fn.apply(x, beta, thr, _options(**OPTIONS.get(option, {})))
    assert outputs[0].sum() > 0  # spikes fired
    named = {"x": x, "beta": beta, "thr": thr, **dict(zip(out_names, outputs))}
    by_ptr = {_storage(t): name for name, t in named.items() if t is not None}
    assert len(by_ptr) == sum(t is not None for t in named.values())  # the named tensors are distinct storages
    return {by_ptr.get(ptr, f"?{shape}"): nbytes for ptr, (nbytes, shape) in packed.items()}, shape


@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("backend", BACKENDS)
def test_one_forward_saves_what_its_backward_reads(backend, option):
    saved, shape = saved_storages(backend, option)
    assert set(saved) == EXPECTED[backend, option] | PARAMS
    full = torch.Size(shape).numel() * 4
    time_major = sum(n for n in saved.values() if n >= full)
    assert time_major == full * len({"x", "membrane", "out", "own"} & set(saved))


@pytest.mark.parametrize("backend", [pytest.param("triton", marks=pytest.mark.skipif(not _TRITON_OK,
                                                                                      reason=_TRITON_WHY))])
def test_half_precision_triton_recomputes_its_spikes_from_the_float32_membrane(backend):
    saved, _ = saved_storages(backend, "bfloat16", dtype=torch.bfloat16)
    assert set(saved) == EXPECTED[backend, "bfloat16"] | PARAMS


def test_the_output_is_tied_to_the_backward_under_torch_func_only():
    t = torch.ones(3)
    assert graph_tie(t) is None
    seen = []

    def f(x):
        seen.append(graph_tie(x) is x)
        return x.sum()
    torch.func.grad(f)(t)
    torch.func.vmap(f)(t.view(3, 1))
    assert seen == [True, True]
