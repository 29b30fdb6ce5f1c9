"""Review s14 of the functional LIF kernels: the adaptive kernels convert their parameters as every LIF kernel does."""
import pytest
import torch

from snnlab.kernels.adaptive_lif import adaptive_lif
from snnlab.kernels.adaptive_lif_cpu import adaptive_lif_cpu
from snnlab.kernels.adaptive_lif_triton import adaptive_lif_triton
from snnlab.kernels.lif_common import check_fused_args
from snnlab.kernels.lif_cpu import cpu_kernel_error
from snnlab.kernels.surrogate_math import CUSTOM_SURROGATES

ADAPTIVE = {
    "adaptive_lif": lambda x, *p: adaptive_lif(x, None, *p),
    "adaptive_lif_cpu": adaptive_lif_cpu,
    "adaptive_lif_triton": adaptive_lif_triton,
}


def _skip_unusable(name):
    if name == "adaptive_lif_cpu" and cpu_kernel_error() is not None:
        pytest.skip("the compiled CPU kernel is not available here")
    if name == "adaptive_lif_triton":
        pytest.importorskip("triton")


@pytest.mark.parametrize("name", list(ADAPTIVE))
@pytest.mark.parametrize("bad", [True, "0.9", None])
def test_adaptive_kernels_refuse_a_bool_string_or_none_parameter_as_lif_does(name, bad):
    """They took beta=True as 1.0 (lif_torch / recurrent_lif refuse it) and gave torch's own 'new(): invalid data
    type' / 'Could not infer dtype' for a string / None."""
    _skip_unusable(name)
    x = torch.rand(4, 2, 3)
    with pytest.raises(TypeError, match=f"^{name}: rho must be a tensor or a real number, got "):
        ADAPTIVE[name](x, 0.9, 1.0, bad, 0.2)


def test_adaptive_lif_takes_python_numbers_in_the_compute_dtype():
    """Numbers became float32 tensors before the cast to float64: beta=0.9 ran as 0.8999999761581421 (as LIF's and
    the recurrent kernel's do not)."""
    x = torch.rand(6, 2, 3, dtype=torch.float64) * 2
    values = (0.9, 1.1, 0.7, 0.3)
    from_numbers = adaptive_lif(x, None, *values)
    from_tensors = adaptive_lif(x, None, *(torch.tensor(v, dtype=torch.float64) for v in values))
    for a, b in zip(from_numbers, from_tensors):
        assert torch.equal(a, b)


def test_adaptive_lif_keeps_a_tensor_parameter_dtype_and_its_gradient():
    x = (torch.rand(5, 2, 3) * 2).requires_grad_()
    beta = torch.full((3,), 0.8, dtype=torch.float64, requires_grad=True)
    out, _, _ = adaptive_lif(x, None, beta, 1.0, 0.9, 0.2)
    out.sum().backward()
    assert beta.grad is not None and beta.grad.dtype == torch.float64 and beta.grad.shape == (3,)


def test_the_fused_check_names_an_unknown_surrogate_once_with_the_registration_advice():
    """check_fused_args checked a name known twice (check_builtin_surrogate checks that first); the message holds."""
    assert "rect_s14" not in CUSTOM_SURROGATES
    with pytest.raises(ValueError, match=r"^f: unknown surrogate 'rect_s14'; .*register it again"):
        check_fused_args("f", torch.zeros(2, 3), "subtract", "rect_s14", None, (torch.float32,))
