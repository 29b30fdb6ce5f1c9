r"""Adaptive LIF neurons: :class:`ALIF`, a threshold that rises with each spike and relaxes back (spike-frequency
adaptation), feed-forward or recurrent (the LSNN of Bellec et al. 2018, the adaptive SRNN of Yin et al. 2021).

Semantics (``x`` time-major ``[T, B, ...]``, ``v[-1] = 0``, ``a[-1] = 0``, ``rho = 1 - 1/tau_adapt``)::

    h[t]     = beta * v[t-1] + x[t] (+ W_rec @ o[t-1] with recurrent=True)
    theta[t] = threshold + adaptation * a[t-1]      the effective threshold
    s[t]     = H(h[t] - theta[t])                   (with max_spikes, noise and masking as in LIF)
    v[t]     = h[t] - theta[t] * s[t]               reset="subtract"   (h[t] * (1 - s[t]) for "zero")
    a[t]     = rho * a[t-1] + s[t]                  the adaptation trace: the neuron's own recent spikes

so each spike raises the threshold by ``adaptation`` and the rise decays with time constant ``tau_adapt`` (in
steps). With ``adaptation=0`` it is exactly an :class:`~snnlab.LIF` (or :class:`~snnlab.RecurrentLIF`).
The gradient flows through the trace too (``theta`` depends on past spikes), as in the LSNN / e-prop papers'
BPTT baselines. The time loops, all tested against the per-step autograd loop of :mod:`snnlab.core.step_loop`
(``backend="reference"``, which ``torch.func`` transforms run whatever the backend):

- :func:`snnlab.kernels.adaptive_lif.adaptive_lif`: a PyTorch loop without an autograd graph and a hand-written
  reverse-time backward (``"torch"``; what ``"auto"`` runs for recurrent layers, float64 and half-precision CPU
  input; 1.4x to 3x faster forward + backward than the step loop on the CPU, ``benchmarks/RESULTS.md``);
- for feed-forward neurons, as for the LIF (``"auto"``, or by name): the compiled C loop of
  :mod:`snnlab.kernels.adaptive_lif_cpu` for float32 CPU tensors (``"cpu"``) and the Triton kernels of
  :mod:`snnlab.kernels.adaptive_lif_triton` on CUDA (``"triton"``; tested under the Triton interpreter, not yet run on
  a GPU).
"""
from __future__ import annotations

import math
import warnings

import torch
from torch import nn

from snnlab.kernels.adaptive_lif import adaptive_lif
from snnlab.kernels.dispatch import compute_dtype, resolve_backend
from snnlab.kernels.func_transforms import transforms_active, under_vmap
from snnlab.kernels.lif_common import spike_cap_for_call
from snnlab.kernels.surrogate_math import check_builtin_surrogate

from . import surrogates as sg
from .neurons import LIF, _value_repr
from .recurrent import (RECURRENT_INITS, CheckedSynapsesMixin, _renamed, build_synapses, loop_weight,
                        recurrent_current, reset_synapse_weight)
from .step_loop import Adaptation, lif_step_loop
from .validation import as_flag, as_number, check_choice, check_fits_float32, check_non_negative, is_integer

__all__ = ["ALIF", "DEFAULT_TAU_ADAPT"]

DEFAULT_TAU_ADAPT = 100.0  # time steps
_BACKENDS = ("auto", "torch", "cpu", "triton", "reference")


def _width_hint(tau_mem: object, n_neurons: object) -> str:
    """For ``ALIF(64, recurrent=True)`` (the width given first, as to :class:`~snnlab.RecurrentLIF`, where it is
    ``n_neurons``; here the first argument is ``tau_mem``): the hint naming ``n_neurons=64``, else ``""``.

    Example:
        >>> _width_hint(64, None)
        '; did you mean n_neurons=64? the first argument of ALIF is tau_mem'
        >>> _width_hint(20.0, None)
        ''
    """
    if n_neurons is not None or not is_integer(tau_mem) or tau_mem < 2:
        return ""
    return f"; did you mean n_neurons={int(tau_mem)}? the first argument of ALIF is tau_mem"


class ALIF(CheckedSynapsesMixin, LIF):
    r"""Adaptive LIF neurons: each spike raises the neuron's threshold by ``adaptation``, and the rise decays back
    with time constant ``tau_adapt`` (steps). ``theta[t] = threshold + adaptation * a[t-1]``,
    ``a[t] = (1 - 1/tau_adapt) * a[t-1] + s[t]``; see :mod:`snnlab.core.adaptive`.
    Each call is a whole sequence from rest (``v[-1] = 0``, ``a[-1] = 0``) and no state is carried between calls, so
    batches need no reset, and a per-step loop or a sequence split into chunks continues neither the membrane nor
    the adaptation across calls (``carry_state``, an option of :class:`~snnlab.LIF`, is none of the constructor's, and
    ``layer.carry_state = True`` is a ``ValueError``: the adaptation is state a carried membrane cannot hold).

    Adaptation gives neurons a memory longer than ``tau_mem`` (the recurrent adaptive networks of SHD / SSC and of
    e-prop), and spike-frequency adaptation: under a constant input the intervals between spikes grow. Options are
    those of :class:`~snnlab.LIF` (resets, ``detach_reset``, ``max_spikes``, surrogates, learnable ``tau_mem`` /
    ``threshold``, noise, spike masking, ``seed``), with:

    - ``adaptation`` (>= 0, default 0.5): the threshold increase per spike, in the threshold's units. 0 gives an LIF.
    - ``tau_adapt`` (>= 1 step, default 100): the adaptation's time constant.
    - ``learn_adaptation`` (True or False, as ``recurrent``: ``"no"`` is a ``TypeError``): learn ``adaptation`` and
      ``tau_adapt``, per neuron with ``n_neurons``; fixed at construction (a later assignment of another value is an
      ``AttributeError``). The forward clamps
      them at 0 and 1 (as ``learn_tau`` clamps ``tau_mem``); past its bound a value gets no gradient, so call
      :meth:`clamp_parameters_` after each optimiser step (the Trainer does) to put it back on the bound, where it
      still gets one.
    - ``recurrent``: all-to-all recurrent synapses ``W_rec`` (``self.recurrent``, an ``nn.Linear`` without bias,
      initialised as ``recurrent_init``; see :class:`~snnlab.RecurrentLIF`), fed with the transmitted spikes; needs
      ``n_neurons``. A recurrent ALIF is the LSNN. Pruning and the other reparametrisations of ``W_rec`` work as on
      ``RecurrentLIF`` (hooks on ``self.recurrent`` that the fused loop cannot run are named in a warning: see
      :func:`snnlab.core.recurrent.synapse_weight`; :meth:`reset_recurrent` re-initialises the parameter a pruned or
      reparametrised weight is computed from). ``self.recurrent`` may be replaced by another ``nn.Linear``
      ``[n_neurons, n_neurons]`` (anything else is a ``TypeError`` at the assignment); the fused loop runs a bias-free
      one whose forward is ``nn.Linear.forward`` and raises a ``ValueError`` for a bias or a subclass with its own
      forward, which ``backend="reference"`` runs (it calls the module), as on ``RecurrentLIF``.
    - ``adaptation`` and ``tau_adapt`` are kept in float32 under a half-precision default dtype, as ``tau_mem`` and the
      threshold; :meth:`reset_parameters` restores every constant (and draws the recurrent weight again) as
      constructed, for a model built on the meta device and then ``to_empty``.
    - ``backend``: ``"auto"`` (for feed-forward neurons Triton on CUDA tensors and the C loop for float32 CPU tensors,
      as the LIF; else the fused PyTorch Function), ``"torch"`` (the fused PyTorch Function with a hand-written
      backward), ``"cpu"`` / ``"triton"`` (feed-forward only: the compiled C loop; the Triton kernels, on CUDA or
      under ``TRITON_INTERPRET=1``) or ``"reference"`` (the per-step autograd loop they are tested against).

    The subtract reset subtracts the effective threshold ``theta[t]``, so the membrane stays below the threshold
    it crossed. A noisy neuron fires with probability ``F((h - theta) / sigma)``. Spike masking hides spikes from
    the next layer (and the recurrence) but not from the neuron's own adaptation. While a
    :class:`~snnlab.Monitor` watches the layer, ``last_membrane`` holds the pre-reset membrane and
    ``last_threshold`` the effective threshold ``theta`` of the last call (``[T, B, ...]``).

    Returns the transmitted spikes ``[T, B, ...]`` (0/1, in the input's floating dtype; half precision is computed
    in float32).

    Example:
        >>> import torch, snnlab as sl
        >>> alif = sl.ALIF(tau_mem=20.0, adaptation=0.5, tau_adapt=50.0)
        >>> lif = sl.LIF(tau_mem=20.0)
        >>> x = torch.full((100, 1, 1), 0.3)                 # a constant drive
        >>> int(alif(x).sum()), int(lif(x).sum())            # adaptation slows the firing down
        (10, 27)
        >>> net = sl.Sequential(torch.nn.Linear(4, 8), sl.ALIF(n_neurons=8, recurrent=True),  # an LSNN layer
        ...                     torch.nn.Linear(8, 2), sl.LI())
        >>> net(torch.rand(30, 3, 4)).shape
        torch.Size([30, 3, 2])
    """

    # (layer.recurrent = m is checked by check_synapses: None allowed, a feed-forward ALIF)
    _SYNAPSES_LAYER, _SYNAPSES_OPTIONAL = "ALIF", True
    # (layer.carry_state = True: a ValueError with this reason)
    _CARRY_REFUSAL = ("its threshold adaptation (the trace a[t]) is state of its own, which a carried membrane cannot "
                      "hold; feed the layer whole sequences")

    def __init__(self, tau_mem: float | None = None, threshold: float = 1.0, reset: str = "subtract", *,
                 adaptation: float = 0.5, tau_adapt: float = DEFAULT_TAU_ADAPT, learn_adaptation: bool = False,
                 recurrent: bool = False, recurrent_init: str = "uniform", beta: float | None = None,
                 detach_reset: bool = False, max_spikes: int | None = None, surrogate: str | sg.Surrogate = "atan",
                 learn_threshold: bool = False, learn_tau: bool = False, n_neurons: int | None = None,
                 noise: str | None = None, noise_scale: float = 0.3, noisy_eval: bool = False, mask_p: float = 0.0,
                 mask_at_inference: bool = False, seed: int | None = None, backend: str = "auto") -> None:
        learn_adaptation = as_flag(learn_adaptation, "learn_adaptation", "ALIF")
        recurrent = as_flag(recurrent, "recurrent", "ALIF")
        if backend in ("cpu", "triton") and recurrent:
            raise ValueError(f"ALIF: backend={backend!r} fuses the time loop of feed-forward neurons only; a recurrent "
                             "ALIF needs each step's spikes before the next step: use backend='auto' or 'torch'")
        check_choice(backend, "backend", _BACKENDS, "ALIF")
        check_choice(recurrent_init, "recurrent_init", RECURRENT_INITS, "ALIF")
        if recurrent and (n_neurons is None or not is_integer(n_neurons) or n_neurons < 1):
            raise ValueError(f"ALIF: recurrent=True needs n_neurons, the layer width (the recurrent weight is "
                             f"[n_neurons, n_neurons]), got n_neurons={n_neurons!r}{_width_hint(tau_mem, n_neurons)}")
        try:
            super().__init__(tau_mem, threshold, reset, beta=beta, detach_reset=detach_reset, max_spikes=max_spikes,
                             surrogate=surrogate, learn_threshold=learn_threshold, learn_tau=learn_tau,
                             n_neurons=n_neurons, noise=noise, noise_scale=noise_scale, noisy_eval=noisy_eval,
                             mask_p=mask_p, mask_at_inference=mask_at_inference, seed=seed, backend="torch")
        except (ValueError, TypeError) as exc:
            raise _renamed(exc, "ALIF") from None
        self.backend = backend
        if backend in ("cpu", "triton") and noise is None:  # the fused kernels compute the built-in surrogates only
            check_builtin_surrogate(f"ALIF(backend={backend!r})", self.surrogate.name)
        strength = check_non_negative(adaptation, "adaptation", "ALIF")
        tau_a = as_number(tau_adapt, "tau_adapt", "ALIF")
        if not tau_a >= 1.0:  # (NaN fails too; inf is allowed: rho = 1, the threshold never relaxes)
            raise ValueError(f"ALIF: tau_adapt must be >= 1 time step so that rho = 1 - 1/tau_adapt >= 0 (inf: no "
                             f"decay), got {tau_adapt!r}")
        for name, value in (("adaptation", strength), ("tau_adapt", tau_a)):  # the buffers are float32
            check_fits_float32(value, name, "ALIF")
        if learn_adaptation and math.isinf(tau_a):
            raise ValueError("ALIF: learn_adaptation needs a finite tau_adapt")
        if self.max_spikes == 1 and (strength > 0 or learn_adaptation):
            warnings.warn("ALIF: with max_spikes=1 a neuron fires at most once, so its threshold rises only after "
                          "that spike and the adaptation has no effect (use sl.LIF, or allow more spikes)",
                          UserWarning, stacklevel=2)
        self.learn_adaptation = learn_adaptation
        self._constructed_adaptation = {"adaptation": float(strength), "tau_adapt": float(tau_a)}
        for name in self._constructed_adaptation:  # (the values: _reset_adaptation, as reset_parameters sets them)
            tensor = self._constant_tensor()  # float32 under a half-precision default dtype, as LIF's
            if self.learn_adaptation:
                setattr(self, name, nn.Parameter(tensor))
            else:
                self.register_buffer(name, tensor)
        self._reset_adaptation()
        self.last_threshold: torch.Tensor | None = None
        self.recurrent: nn.Linear | None = None
        self.recurrent_init = recurrent_init
        if recurrent:
            self.recurrent = build_synapses(self.n_neurons, recurrent_init, "ALIF")
            self.reset_recurrent(recurrent_init)

    @torch.no_grad()
    def _reset_adaptation(self) -> None:
        """``adaptation`` and ``tau_adapt`` (buffers, or learned Parameters in place) back to their constructed values."""
        for name, value in self._constructed_value("_constructed_adaptation").items():
            getattr(self, name).fill_(value)

    def reset_parameters(self) -> None:
        """Put every constant back to its constructed value as the constructor sets it: those of
        :meth:`snnlab.LIF.reset_parameters`, ``adaptation`` and ``tau_adapt``, and (recurrent layers) draw the recurrent
        weight again by :meth:`reset_recurrent` with the constructed ``recurrent_init`` (torch's global RNG, as
        ``nn.Linear``). For a model built on the meta device, then ``to_empty``.

        Example:
            >>> import torch, snnlab as sl
            >>> with torch.device("meta"):
            ...     alif = sl.ALIF(adaptation=0.2, tau_adapt=50.0)
            >>> alif = alif.to_empty(device="cpu")
            >>> alif.reset_parameters()
            >>> float(alif.adaptation), float(alif.tau_adapt)
            (0.20000000298023224, 50.0)
        """
        super().reset_parameters()
        self._reset_adaptation()
        if self.recurrent is not None:
            self.reset_recurrent(self._constructed_value("recurrent_init"))

    _FULL_PRECISION = LIF._FULL_PRECISION + ("adaptation", "tau_adapt")

    _CONSTRUCTION_FLAGS = {**LIF._CONSTRUCTION_FLAGS, "learn_adaptation": "whether adaptation and tau_adapt are "
                           "learned Parameters or fixed buffers"}

    def reset_recurrent(self, init: str = "uniform") -> None:
        """(Re)initialise the recurrent weight as :meth:`snnlab.RecurrentLIF.reset_recurrent` (recurrent layers
        only; a pruned or reparametrised weight in the parameter it is computed from)."""
        if self.recurrent is None:
            raise ValueError("ALIF: this layer has no recurrent weight (recurrent=False)")
        reset_synapse_weight(self.recurrent, init, "ALIF")

    def clamp_parameters_(self) -> "ALIF":
        """As :meth:`snnlab.LIF.clamp_parameters_`, and a learned ``adaptation`` to at least 0 and ``tau_adapt`` to at
        least 1 step. Returns the layer."""
        super().clamp_parameters_()
        if self.learn_adaptation:
            with torch.no_grad():
                self.adaptation.clamp_(min=0.0)
                self.tau_adapt.clamp_(min=1.0)
        return self

    def rho(self) -> torch.Tensor:
        """The trace's decay ``rho = 1 - 1/tau_adapt`` (differentiable when learned)."""
        return 1.0 - 1.0 / self.tau_adapt.clamp(min=1.0)

    def _learned(self, beta: torch.Tensor) -> tuple[tuple[str, torch.Tensor], ...]:
        learned = super()._learned(beta)
        if self.learn_adaptation:
            learned += (("adaptation", self.adaptation), ("tau_adapt", self.tau_adapt))
        return learned

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._check_input(x, finite=False)  # checked on the final membrane below (cheaper), as LIF does
        if self.backend not in _BACKENDS:  # (set after construction)
            raise ValueError(f"ALIF: unknown backend {self.backend!r}; choose one of {list(_BACKENDS)}")
        noise_seed, mask_seed = self._draw_seeds(x)  # LIF's draws: the same seeds as an LIF
        if (noise_seed is not None or mask_seed is not None) and under_vmap():
            # the step loop draws from the counter at the indices of one sample: every vmapped sample would get
            # the same noise and masks, which is not what randomness="different" promises
            raise RuntimeError("ALIF: vmap of a noisy or spike-masking ALIF is not supported (its step loop would "
                               "give every vmapped sample the same draws); use it in eval mode, without noise and "
                               "masks, or loop over the samples")
        cap = spike_cap_for_call("ALIF", self.max_spikes, x.shape[0])  # (refuses a cap float32 counts cannot reach)
        work = compute_dtype(x)
        beta = self.beta()
        on = {"device": x.device, "dtype": work}
        rho, strength = self.rho().to(**on), self.adaptation.clamp(min=0.0).to(**on)
        path = self._path(x)
        # T < 2: nothing fed back, no trace read: zero gradients (not None) for W_rec and a learned tau_adapt
        weight, tie = loop_weight(self.recurrent, x, "ALIF", fused=path != "reference",
                                  tie_also=(self.tau_adapt,) if self.learn_adaptation else ())
        if tie is not None:
            beta = beta + tie.to(beta.dtype)
        if path == "reference":
            out, membrane, theta, last = self._step_loop_run(x, work, beta.to(**on), rho, strength, noise_seed,
                                                             mask_seed)
        else:
            options = dict(reset=self.reset, detach_reset=self.detach_reset, max_spikes=cap,
                           surrogate=self.surrogate.name, surrogate_param=self.surrogate.param, noise=self.noise,
                           noise_scale=self.noise_scale, seed=noise_seed or 0, sample=noise_seed is not None,
                           mask_p=self.mask_p if mask_seed is not None else 0.0, mask_seed=mask_seed or 0,
                           keep_membrane=self.record)
            if path == "triton":
                from snnlab.kernels.adaptive_lif_triton import adaptive_lif_triton
                out, membrane, theta = adaptive_lif_triton(x, beta.to(**on), self.threshold.to(**on), rho, strength,
                                                           **options)
            elif path == "cpu":
                from snnlab.kernels.adaptive_lif_cpu import adaptive_lif_cpu
                out, membrane, theta = adaptive_lif_cpu(x, beta.to(**on), self.threshold.to(**on), rho, strength,
                                                        **options)
            else:
                out, membrane, theta = adaptive_lif(x, weight, beta.to(**on), self.threshold.to(**on), rho, strength,
                                                    **options)
            last = membrane[-1:]
        recurrent = () if self.recurrent is None else (  # (the weight read above: not computed again)
            ("recurrent weight", self.recurrent.weight if weight is None else weight),)
        self._check_final_membrane(x, last, *self._learned(beta), *recurrent)
        self.last_membrane = membrane.detach().to(x.dtype) if self.record and membrane is not None else None
        self.last_threshold = theta.detach().to(x.dtype) if self.record and theta is not None else None
        return out.to(x.dtype)

    def _path(self, x: torch.Tensor) -> str:
        """Which loop runs ``x``: ``"reference"`` (the step loop: asked for, or under ``torch.func`` whatever the
        backend: the same function), ``"triton"`` / ``"cpu"`` (asked for, or what ``"auto"`` picks for feed-forward
        neurons as for the LIF: Triton on CUDA tensors, the C loop for float32 CPU tensors, with a built-in surrogate;
        a request that cannot run raises) or ``"torch"`` (the fused PyTorch Function)."""
        if self.backend in ("cpu", "triton"):  # (set after construction too: the constructor's checks again)
            if self.recurrent is not None:
                raise ValueError(f"ALIF: backend={self.backend!r} fuses the time loop of feed-forward neurons only; "
                                 "a recurrent ALIF runs backend='auto' or 'torch'")
            if self.noise is None:
                check_builtin_surrogate(f"ALIF(backend={self.backend!r})", self.surrogate.name)
        if self.backend == "reference" or transforms_active():  # (the fused kernels have no torch.func rules)
            return "reference"
        if self.backend in ("cpu", "triton"):
            return resolve_backend(self.backend, x.device, x.dtype, layer="ALIF")  # raises what is missing
        if self.backend == "auto" and self.recurrent is None:
            chosen = resolve_backend("auto", x.device, x.dtype, None if self.noise else self.surrogate.name, "ALIF")
            return chosen if chosen in ("cpu", "triton") else "torch"
        return "torch"

    def _step_loop_run(self, x: torch.Tensor, work: torch.dtype, beta: torch.Tensor, rho: torch.Tensor,
                       strength: torch.Tensor, noise_seed: int | None,
                       mask_seed: int | None) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None,
                                                       torch.Tensor]:
        """The per-step autograd loop (``backend="reference"``, and under ``torch.func``): ``(o, h or None, theta or
        None, h[-1:])``, the membrane and threshold only while recording."""
        feedback = None if self.recurrent is None else (lambda o: recurrent_current(self.recurrent, o, work))
        xw = x.to(work)  # (T < 2, where the module is never called: forward ties the weight to beta)
        run = lif_step_loop(self, xw, beta, self.threshold.to(device=x.device, dtype=work), noise_seed, mask_seed,
                            feedback=feedback, adaptation=Adaptation(rho=rho, strength=strength))
        return run.out, run.membrane, run.theta, run.last

    def extra_repr(self) -> str:
        parts = [p for p in super().extra_repr().split(", ") if not p.startswith("n_neurons=")]
        # (the values the forward uses: a learned adaptation clamped at 0, tau_adapt at 1 step)
        parts.append(f"adaptation={_value_repr(self.adaptation.detach().clamp(min=0.0))}, "
                     f"tau_adapt={_value_repr(self.tau_adapt.detach().clamp(min=1.0))}"
                     + (", learn_adaptation=True" if self.learn_adaptation else ""))
        if self.recurrent is not None:
            parts.append("recurrent=True")
            init = getattr(self, "recurrent_init", "uniform")  # (a layer pickled before it was kept: the default)
            if init != "uniform":
                parts.append(f"recurrent_init={init!r}")
        lead = [f"n_neurons={self.n_neurons}"] if self.n_neurons is not None else []
        return ", ".join(lead + parts)
