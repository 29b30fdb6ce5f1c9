"""Spiking and non-spiking neuron modules (``torch.nn`` style), time-major ``[T, B, ...]``."""
from __future__ import annotations

import warnings

import torch
from torch import nn

from snnlab.kernels.counter_rng import COUNTER_PERIOD
from snnlab.kernels.dispatch import (BACKENDS, HALF_DTYPES, compute_dtype, float32_if_half, graph_capture_active,
                                     leave_graph, lif_impl, refuse_jit_trace)
from snnlab.kernels.func_transforms import outside_transforms, transforms_active, under_vmap, vmap_randomness
from snnlab.kernels.lif_common import MAX_SPIKES_CEILING, spike_cap_for_call
from snnlab.kernels.lif_torch import li_torch
from snnlab.kernels.neuron_choices import RESETS
from snnlab.kernels.surrogate_math import NOISE_SURROGATES, check_builtin_surrogate

from . import surrogates as sg
from .random_stream import RandomStream, in_recomputation
from .validation import (all_finite, as_drop_probability, as_flag, as_number, as_seed, check_choice,
                         check_fits_float32, check_non_negative, check_positive, check_time_major, is_integer,
                         raise_non_finite)

DEFAULT_TAU_MEM = 10.0  # time steps, when neither tau_mem nor beta is given
MAX_TAU_CV = 10.0  # the widest spread of time constants (LIF.spread_tau_, ExperimentConfig.tau_mem_cv)
#: the floor of a learned threshold in LIF.clamp_parameters_: the smallest normal float32 (2**-126, about 1.2e-38),
#: so a threshold stays > 0 as the constructor requires, and any it accepts (a normal float32) is left as it is
MIN_LEARNED_THRESHOLD = float(torch.finfo(torch.float32).tiny)
_IS_EXPORTING = getattr(torch.compiler, "is_exporting", lambda: False)


def _beta_from(tau_mem: float | None, beta: float | None, layer: str) -> float:
    """Resolve ``beta`` from ``tau_mem`` (``beta = 1 - 1/tau_mem``) or take it directly.

    Neither given: ``tau_mem = DEFAULT_TAU_MEM``; both given: a ``ValueError`` (they would disagree).
    """
    if beta is not None:
        if tau_mem is not None:
            raise ValueError(f"{layer}: give tau_mem or beta, not both (beta = 1 - 1/tau_mem); got tau_mem={tau_mem!r}, "
                             f"beta={beta!r}")
        b = as_number(beta, "beta", layer)
        if not 0.0 <= b <= 1.0:
            raise ValueError(f"{layer}: beta must lie in [0, 1] (beta = 1 - 1/tau_mem), got {beta!r}")
        return b
    if tau_mem is None:
        tau_mem = DEFAULT_TAU_MEM
    check_positive(tau_mem, "tau_mem", layer)
    check_fits_float32(tau_mem, "tau_mem", layer)  # (a learned tau_mem is a float32 tensor)
    if float(tau_mem) < 1.0:
        raise ValueError(f"{layer}: tau_mem must be >= 1 time step so that beta = 1 - 1/tau_mem >= 0, got "
                         f"{tau_mem!r}{_decay_factor_hint(float(tau_mem))}")
    return 1.0 - 1.0 / float(tau_mem)


def _decay_factor_hint(tau_mem: float) -> str:
    """For a ``tau_mem`` in ``(0, 1)``, likely a decay factor given where a time constant goes (``LIF(0.9)``): the
    hint that ``tau_mem`` counts time steps, with the ``tau_mem`` that decay factor is; else ``""``.

    Example:
        >>> print(_decay_factor_hint(0.9).strip())  # doctest: +NORMALIZE_WHITESPACE
        (tau_mem is in time steps, not a decay factor: the decay factor beta=0.9 is tau_mem = 1/(1 - beta) = 10
        steps; pass tau_mem=10, or beta=0.9 by keyword)
        >>> _decay_factor_hint(2.0)
        ''
    """
    if not 0.0 < tau_mem < 1.0:
        return ""
    equivalent = 1.0 / (1.0 - tau_mem)
    return (f" (tau_mem is in time steps, not a decay factor: the decay factor beta={tau_mem:.6g} is tau_mem = "
            f"1/(1 - beta) = {equivalent:.6g} steps; pass tau_mem={equivalent:.6g}, or beta={tau_mem:.6g} by keyword)")


def _as_max_spikes(value: int | None, layer: str) -> int | None:
    """``max_spikes`` as an int >= 1 or None; ``ValueError`` naming ``layer`` otherwise. A cap above
    :data:`~snnlab.kernels.lif_common.MAX_SPIKES_CEILING` (2**62, it could never bind) is kept as that ceiling,
    which every backend's comparison takes (``2**70`` overflowed the PyTorch kernels)."""
    if value is not None and (not is_integer(value) or value < 1):
        raise ValueError(f"{layer}: max_spikes must be a positive int (1 = time-to-first-spike) or None, got "
                         f"{type(value).__name__} {value!r}")
    return None if value is None else min(int(value), MAX_SPIKES_CEILING)


def _as_surrogate(value: str | sg.Surrogate, layer: str) -> sg.Surrogate:
    """``value`` (a name or a :class:`~snnlab.core.surrogates.Surrogate`) as a ``Surrogate``; ``ValueError`` /
    ``TypeError`` naming ``layer`` for an unknown name, another type, or a subclass whose own ``grad()`` the kernels
    would not use.

    Example:
        >>> _as_surrogate("triangle", "LIF").name
        'triangle'
    """
    if isinstance(value, sg.Surrogate) and type(value).grad is not sg.Surrogate.grad:
        raise TypeError(f"{layer}: the kernels compute a surrogate by its name, so the grad() of "
                        f"{type(value).__name__} would not be used; add it with "
                        "snnlab.surrogates.register(name, grad, default) and pass the name")
    try:
        return sg.get(value)
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"{layer}: {exc}") from None


def _value_repr(t: torch.Tensor) -> str:
    """A parameter's value for ``repr``: the number when all its elements agree, else their range."""
    if t.is_meta:  # (no values yet: a model built on the meta device)
        return "<meta>"
    t = t.detach().double()
    if t.numel() == 0:
        return "[]"
    lo, hi = t.min().item(), t.max().item()
    return f"{lo:.4g}" if lo == hi else f"{lo:.4g}..{hi:.4g}"


def _beta_of_learned_tau(tau_mem: torch.Tensor) -> torch.Tensor:
    """The decay factor a layer with a learned ``tau_mem`` computes with: ``1 - 1/tau_mem``, ``tau_mem`` clamped at 1
    step (in ``tau_mem``'s dtype)."""
    return 1.0 - 1.0 / tau_mem.clamp(min=1.0)


class _Leaky(nn.Module):
    """Shared handling of the membrane time constant (fixed or learnable, per layer or per neuron)."""

    #: parameters and buffers that keep their precision when the module is cast to half precision
    _FULL_PRECISION = ("beta_const", "tau_mem", "threshold")

    #: the learnability flags fixed at construction, with what each decides: a later assignment of another value
    #: is an ``AttributeError`` (it would change the repr and nothing else, or break the forward)
    _CONSTRUCTION_FLAGS = {"learn_tau": "whether tau_mem is a learned Parameter or beta_const a fixed buffer"}

    #: whether each call starts from the membrane the previous one ended with (see :meth:`reset_state`); the class
    #: values are the defaults of a layer pickled before the option existed
    carry_state = False
    _carried: torch.Tensor | None = None  # the membrane the next call starts from (None: rest); carry_state only
    #: why a subclass cannot carry its state across calls (None: it can): ALIF and RecurrentLIF set it
    _CARRY_REFUSAL: str | None = None

    def __setattr__(self, name: str, value) -> None:
        if name == "carry_state":
            value = self._carry_flag(value)
        if name in self._CONSTRUCTION_FLAGS and name in self.__dict__:  # set already: the constructor's value
            layer, what = type(self).__name__, self._CONSTRUCTION_FLAGS[name]
            if as_flag(value, name, layer) != self.__dict__[name]:
                raise AttributeError(f"{layer}: {name} is fixed at construction (it decides {what}), so it cannot be "
                                     f"set to {value!r} afterwards; build the layer with {layer}(..., {name}={bool(value)})")
            return  # (the same value: nothing to change)
        super().__setattr__(name, value)

    def _apply(self, fn, recurse: bool = True):
        """As ``nn.Module._apply`` (``.to()``, ``.half()``, ``.cuda()``...), but the time constant and threshold
        keep their float32 (or float64) values when the rest goes to float16 / bfloat16: rounded there, ``tau_mem=100`` would
        become 85.3 (bfloat16 beta 0.9883 for 0.99) and the dynamics would change with the storage type.
        Every path computes half-precision input in float32 anyway."""
        low = HALF_DTYPES
        before = {name: (t.detach().clone(), None if t.grad is None else t.grad.detach().clone())
                  for name in self._FULL_PRECISION
                  if isinstance(t := getattr(self, name, None), torch.Tensor) and t.dtype not in low}
        super()._apply(fn, recurse)
        for name, (kept, grad) in before.items():
            t = getattr(self, name)
            if t.dtype in low:  # cast down: take the value from before the cast, on the new device
                kept = kept.to(device=t.device)
                if isinstance(t, nn.Parameter):
                    t.data = kept
                    if grad is not None:  # and its gradient (optimisers need both in one dtype)
                        t.grad = grad.to(device=t.device)
                else:
                    setattr(self, name, kept)
        return self

    def __getstate__(self) -> dict:
        """Copies and pickles (``copy.deepcopy``, ``torch.save``) leave an open :class:`~snnlab.core.network.Monitor`
        (and a trainer's spike-count hook) behind: the copy does not record, keeps no membrane and has none of their
        hooks (those marked ``snnlab_transient``)."""
        state = super().__getstate__()
        if state.get("_carried") is not None:  # a copy is a new stream: it starts from rest (carry_state is kept)
            state = dict(state, _carried=None)
        hooks = state.get("_forward_hooks", {})
        drop = {key for key, hook in hooks.items() if getattr(hook, "snnlab_transient", False)}
        if drop or state.get("record"):
            state = dict(state, record=False, _monitors=0, last_membrane=None)
            if "last_threshold" in state:
                state["last_threshold"] = None
            for attr in ("_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called"):
                if attr in state:
                    state[attr] = type(state[attr])((k, v) for k, v in state[attr].items() if k not in drop)
        return state

    # ------------------------------------------------------------------ the membrane carried between calls
    def reset_state(self) -> None:
        """Drop the membrane carried from the last call (``carry_state=True``): the next call starts from rest.
        Call it between independent sequences (a new batch, another batch size, device or dtype);
        :func:`snnlab.reset_states` does it for every neuron layer of a model. Nothing to drop without
        ``carry_state``.

        Example:
            >>> import torch, snnlab as sl
            >>> lif = sl.LIF(carry_state=True)
            >>> _ = lif(torch.ones(3, 2, 4))
            >>> lif.carried_membrane.shape
            torch.Size([2, 4])
            >>> lif.reset_state()
            >>> lif.carried_membrane is None
            True
        """
        self._carried = None

    @property
    def carried_membrane(self) -> torch.Tensor | None:
        """The membrane the next call starts from (``[B, ...]``, detached, in the dtype the layer computes in:
        float32 for half-precision input); None when it starts from rest (no call yet, after :meth:`reset_state`, or
        without ``carry_state``)."""
        return self._carried

    def _carry_flag(self, value: object) -> bool:
        """``carry_state`` as set (``TypeError`` for a non-flag, ``ValueError`` naming the layer when it cannot carry
        its state exactly); switching it off drops the carried membrane."""
        layer = type(self).__name__
        on = as_flag(value, "carry_state", layer)
        if on:
            problem = self._carry_problem()
            if problem is not None:
                raise ValueError(f"{layer}: carry_state=True is not available: {problem}")
        else:
            self._carried = None
        return on

    def _carry_problem(self) -> str | None:
        """Why this layer, as configured, cannot carry its state exactly from call to call (None: it can)."""
        return self._CARRY_REFUSAL

    def _check_carry_context(self) -> None:
        """``RuntimeError`` naming the layer where a carried membrane cannot work: ``torch.export`` (the program would
        keep none), ``torch.jit.trace`` (it would freeze this call's), ``torch.func`` transforms (the membrane
        would be one of their wrapped tensors) and activation checkpointing's recomputation (it would start from
        the membrane this call ended with, not the one it started from), and a replica of ``nn.DataParallel`` (the
        membrane it keeps is lost with it). ``torch.compile`` is fine."""
        layer = type(self).__name__
        if getattr(self, "_is_replica", False):  # (set by nn.Module._replicate_for_data_parallel)
            raise RuntimeError(f"{layer}: carry_state=True cannot run in nn.DataParallel: each call runs on replicas "
                               "(shallow copies) of the layer, which keep the membrane for the next call and are "
                               "dropped after it, so every call would start from rest; use one process per device "
                               "(DistributedDataParallel), or carry_state=False")
        if graph_capture_active():
            if _IS_EXPORTING():
                raise RuntimeError(f"{layer}: carry_state=True keeps the membrane in the layer from call to call, "
                                   "which an exported program cannot hold (every call of it would start from the "
                                   "membrane seen while exporting); export the model with carry_state=False")
            return
        if torch.jit.is_tracing():
            raise RuntimeError(f"{layer}: carry_state=True keeps the membrane in the layer from call to call, which "
                               "torch.jit.trace would freeze as a constant; trace the model with carry_state=False")
        if transforms_active():
            raise RuntimeError(f"{layer}: carry_state=True cannot run under torch.func transforms (grad, vmap...): the "
                               "membrane kept for the next call would be one of their wrapped tensors; use "
                               "carry_state=False there")
        if in_recomputation():
            raise RuntimeError(f"{layer}: carry_state=True cannot be recomputed by activation checkpointing: the "
                               "recomputation would start from the membrane this call ended with, not the one it "
                               "started from, and give other gradients; do not checkpoint layers that carry state")

    def _from_carried(self, x: torch.Tensor, beta: torch.Tensor) -> torch.Tensor:
        """``x`` (in the compute dtype) with the carried membrane ``v0`` added into its first step as
        ``x[0] + beta * v0`` (one fused multiply-add, as the kernels' ``torch.addcmul(x, v, beta)``): starting from
        ``v0`` is starting from rest on that input, on every backend. ``v0`` is detached (truncated BPTT). A carried
        membrane of another step shape, device or dtype is a ``ValueError``. One kept under ``torch.inference_mode``
        (a warm-up) is cloned for a call outside it, which autograd may record."""
        v0 = self._carried
        if v0 is None or x.shape[0] == 0:
            return x
        if not graph_capture_active() and not torch.is_inference_mode_enabled() and v0.is_inference():
            v0 = v0.clone()  # (autograd cannot save an inference tensor; a compiled graph reads neither flag)
        if v0.shape != x.shape[1:] or v0.device != x.device or v0.dtype != x.dtype:
            layer = type(self).__name__
            raise ValueError(f"{layer}: carry_state=True: the membrane carried from the last call is "
                             f"{tuple(v0.shape)} {v0.dtype} on {v0.device}, but this call's steps are "
                             f"{tuple(x.shape[1:])} computed in {x.dtype} on {x.device}; a new stream (another batch "
                             f"size, device or dtype) starts from rest: call {layer}.reset_state() first (or "
                             "snnlab.reset_states(model) for every layer)")
        first = torch.addcmul(x[0], v0, beta.to(x.dtype))
        return torch.cat((first.unsqueeze(0), x[1:]))

    def _tau_repr(self) -> str:
        """``tau_mem=...`` for ``repr``: the value (one, or the range of the neurons' values), the one the forward uses,
        followed by ``learn_tau=True`` when learned (the value then changes while training)."""
        if self.learn_tau:
            return f"tau_mem={_value_repr(self.tau_mem.detach().clamp(min=1.0))}, learn_tau=True"
        beta = self.beta_const.double()
        return f"tau_mem={_value_repr(torch.where(beta < 1, 1.0 / (1.0 - beta), torch.inf))}"  # beta = 1: no leak

    def _init_tau(self, tau_mem: float | None, beta: float | None, learn_tau: bool, n_neurons: int | None) -> None:
        layer = type(self).__name__
        b = _beta_from(tau_mem, beta, layer)
        if n_neurons is not None and (not is_integer(n_neurons) or n_neurons < 1):
            raise ValueError(f"{layer}: n_neurons must be a positive int (or None for one value per layer), got "
                             f"{type(n_neurons).__name__} {n_neurons!r}")
        n_neurons = None if n_neurons is None else int(n_neurons)
        self.n_neurons = n_neurons
        self.learn_tau = as_flag(learn_tau, "learn_tau", layer)
        if self.learn_tau and b >= 1.0:
            raise ValueError(f"{layer}: learn_tau needs a finite tau_mem (beta < 1), got beta={b}")
        self._constructed_beta = b  # (what reset_parameters restores)
        # Learn tau itself (in steps); beta = 1 - 1/tau, with tau kept >= 1 in forward. The value: _reset_tau, from
        # the layer's reset_parameters, which its constructor calls (one code path)
        if self.learn_tau:
            self.tau_mem = nn.Parameter(self._constant_tensor())
        else:
            self.register_buffer("beta_const", self._constant_tensor())

    def _constant_tensor(self) -> torch.Tensor:
        """An uninitialised tensor for one of the layer's constants (one value, or one per neuron), on the default
        device, in float32 when the default dtype is float16 / bfloat16 (as :meth:`_apply` keeps them under a cast:
        ``tau_mem=100`` would otherwise be 85.3), else in the default dtype."""
        shape = (self.n_neurons,) if self.n_neurons is not None else ()
        return torch.empty(shape, dtype=float32_if_half(torch.get_default_dtype()))

    @torch.no_grad()
    def _reset_tau(self) -> None:
        """``beta_const`` (or a learned ``tau_mem``) back to the constructed value, in place."""
        b = self._constructed_value("_constructed_beta")
        if self.learn_tau:
            self.tau_mem.fill_(1.0 / (1.0 - b))
        else:
            self.beta_const.fill_(b)

    def _constructed_value(self, name: str) -> float:
        """The constructed value kept as ``name`` for :meth:`reset_parameters` (``RuntimeError`` for a layer pickled
        before it was kept)."""
        try:
            return self.__dict__[name]
        except KeyError:
            raise RuntimeError(f"{type(self).__name__}.reset_parameters: this layer was saved by an older snnlab, "
                               "which did not keep its constructed values; build it again instead") from None

    def beta(self) -> torch.Tensor:
        """The decay factor ``beta = 1 - 1/tau_mem`` (a tensor, differentiable when tau is learned)."""
        if self.learn_tau:
            return _beta_of_learned_tau(self.tau_mem)
        return self.beta_const

    # ------------------------------------------------------------------ loading either form of the time constant
    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        """As ``nn.Module``'s, taking a time constant saved in the other form: a learned ``tau_mem`` into a layer with
        a fixed ``beta_const`` and the reverse (:meth:`_tau_in_own_form`), as the threshold and an ALIF's adaptation
        load across their learned and fixed forms."""
        loaded = self._tau_in_own_form(state_dict, prefix, error_msgs)
        if loaded is None:
            return
        errors_before = len(error_msgs)
        super()._load_from_state_dict(loaded, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)
        if loaded is not state_dict:  # converted: a size mismatch names the key the checkpoint holds
            self._name_saved_form(prefix, error_msgs, errors_before)

    def _name_saved_form(self, prefix: str, error_msgs: list[str], start: int) -> None:
        """PyTorch's size mismatch for the converted time constant (named as this layer's form, which the checkpoint
        does not hold) completed with the key it was saved as: ``size mismatch for beta_const: ... (saved as tau_mem,
        the learned form of the time constant; build the layer with the saved n_neurons)``."""
        own, other = ("tau_mem", "beta_const") if self.learn_tau else ("beta_const", "tau_mem")
        form = "fixed" if self.learn_tau else "learned"
        for i in range(start, len(error_msgs)):
            if error_msgs[i].startswith(f"size mismatch for {prefix}{own}:"):
                error_msgs[i] += (f" (saved as {prefix}{other}, the {form} form of the time constant; build the "
                                  "layer with the saved n_neurons)")

    def _tau_in_own_form(self, state_dict: dict, prefix: str, error_msgs: list[str]) -> dict | None:
        """``state_dict`` with a time constant saved in the other form converted to this layer's, as the layers
        convert them: a learned ``tau_mem`` to the ``beta_const = 1 - 1/max(tau_mem, 1)`` its forward used (in its
        dtype), a fixed ``beta_const`` to ``tau_mem = 1/(1 - beta)`` (as the constructor, in float64, stored in the
        saved dtype). None, with the error in ``error_msgs``, for a ``beta_const`` of 1 (no leak) into a learned
        ``tau_mem``, which must be finite (the layer is left as it was)."""
        own, other = ("tau_mem", "beta_const") if self.learn_tau else ("beta_const", "tau_mem")
        saved = state_dict.get(prefix + other)
        if prefix + own in state_dict or not isinstance(saved, torch.Tensor):
            return state_dict  # (this layer's form, or nothing to convert: PyTorch reports what is missing)
        if self.learn_tau:
            if not saved.is_meta and bool((saved >= 1.0).any()):
                layer = type(self).__name__
                error_msgs.append(f"{layer} {prefix.rstrip('.') or '(root)'}: the saved {prefix}beta_const holds a "
                                  "decay factor of 1 (no leak, tau_mem=inf), which a learned tau_mem cannot take "
                                  "(learn_tau needs a finite tau_mem); build the layer with learn_tau=False to load "
                                  "it")
                return None
            value = (1.0 / (1.0 - saved.detach().double())).to(saved.dtype)
        else:
            value = _beta_of_learned_tau(saved.detach())
        converted = {k: v for k, v in state_dict.items() if k != prefix + other}
        converted[prefix + own] = value
        return converted

    def clamp_parameters_(self) -> "_Leaky":
        """Clamp the stored learned parameters into the range the forward pass uses (a learned ``tau_mem`` to at
        least 1 step), in place; call it after each optimiser step (the :class:`~snnlab.training.Trainer` does).
        The forward clamps them anyway, but a value left past its bound gets no gradient there and stays stuck;
        at the bound it still gets one. Returns the layer.

        Example:
            >>> import torch, snnlab as sl
            >>> lif = sl.LIF(tau_mem=2.0, learn_tau=True)
            >>> with torch.no_grad():
            ...     _ = lif.tau_mem.fill_(0.3)      # an optimiser step overshot
            >>> float(lif.clamp_parameters_().tau_mem.detach())
            1.0
        """
        if self.learn_tau:
            with torch.no_grad():
                self.tau_mem.clamp_(min=1.0)
        return self

    def spread_tau_(self, cv: float, generator: torch.Generator | None = None) -> "_Leaky":
        """Give every neuron its own membrane time constant around the current one, with coefficient of variation
        ``cv`` and the same mean (heterogeneous time constants, which help networks learn temporal tasks:
        Perez-Nieves et al. 2021). The part above the 1-step minimum is drawn log-normal,
        ``tau_i = 1 + (tau - 1) * z_i`` with ``E[z] = 1``, so no draw is clamped and the mean stays ``tau``; a short
        ``tau`` needs a wide ``z`` for a given ``cv`` (most neurons then near 1 step, a few much longer), and a neuron
        at exactly 1 step (``beta = 0``) stays there. Needs one value per neuron (``n_neurons``); learned or fixed
        alike. Draws from ``generator`` (default: torch's global RNG, as weight initialisations). Returns the layer.

        Example:
            >>> import torch, snnlab as sl
            >>> lif = sl.LIF(tau_mem=20.0, n_neurons=10_000).spread_tau_(0.5, torch.Generator().manual_seed(0))
            >>> tau = 1 / (1 - lif.beta())
            >>> round(float(tau.mean()), 0), round(float(tau.std() / tau.mean()), 1)
            (20.0, 0.5)
        """
        layer = type(self).__name__
        cv = check_non_negative(cv, "cv", layer)
        if cv > MAX_TAU_CV:
            raise ValueError(f"{layer}: cv must be at most {MAX_TAU_CV:g} (a coefficient of variation), got {cv!r}")
        if self.n_neurons is None:
            raise ValueError(f"{layer}: spread_tau_ needs one time constant per neuron: build the layer with n_neurons")
        beta = self.beta().detach().double()
        if bool((beta >= 1.0).any()):
            raise ValueError(f"{layer}: spread_tau_ needs finite time constants (beta < 1), got beta up to "
                             f"{float(beta.max()):g}")
        tau = 1.0 / (1.0 - beta)
        room = (tau - 1.0).clamp(min=0.0)  # above the 1-step minimum
        cv_z = cv * tau / room.clamp(min=1e-12)  # the spread of z that gives tau the coefficient of variation cv
        sigma = torch.sqrt(torch.log1p(cv_z * cv_z))
        device = generator.device if generator is not None else torch.device("cpu")
        z = torch.randn(tau.shape, generator=generator, dtype=torch.float64, device=device).to(tau.device)
        new = 1.0 + room * torch.exp(z * sigma - sigma * sigma / 2)
        with torch.no_grad():
            if self.learn_tau:
                self.tau_mem.copy_(new.to(self.tau_mem.dtype))
            else:
                self.beta_const.copy_((1.0 - 1.0 / new).to(self.beta_const.dtype))
        return self

    def _check_input(self, x: torch.Tensor, finite: bool = True) -> torch.Tensor:
        """``x`` checked, as a floating-point tensor (integer or bool spikes become the default float dtype:
        beta and the threshold cast to an integer type would be 0 and 1)."""
        check_time_major(x, "input", self.n_neurons, type(self).__name__, finite=finite)
        return x if x.is_floating_point() else x.to(torch.get_default_dtype())

    def _learned(self, beta: torch.Tensor) -> tuple[tuple[str, torch.Tensor], ...]:
        """The learned parameters (name, value) that training can turn NaN; fixed ones were checked when set."""
        learned = (("beta (from tau_mem)", beta),) if self.learn_tau else ()
        if getattr(self, "learn_threshold", False):
            learned += (("threshold", self.threshold),)
        return learned

    def _check_final_membrane(self, x: torch.Tensor, membrane: torch.Tensor, *params: tuple[str, torch.Tensor]) -> None:
        """NaN/inf check on the last step's membrane and on the (tiny) parameters, instead of the whole input.

        A NaN or inf anywhere in ``x`` makes every later membrane value non-finite (``beta * NaN``,
        ``inf - inf`` and ``0 * inf`` are NaN; the reset keeps them), so ``membrane[-1]`` ([B, ...])
        tells what a pass over all of ``x`` would, at 1/T of the cost. The learned parameters ``params``
        (``(name, value)`` pairs) are checked in the same reduction (one device sync): a NaN threshold with ``reset="zero"`` leaves the membrane finite
        and silently stops every spike. Only when the check fails is the cause looked for: a parameter
        (training diverged), the input, or else the membrane itself overflowed.

        Skipped inside graphs that ``torch.compile`` / ``torch.export`` capture (a check reads the values back to the
        host, which a graph cannot: NaN and inf pass through a compiled or exported model unreported).
        """
        if not x.is_floating_point() or x.shape[0] == 0 or x.is_meta or under_vmap() or graph_capture_active():
            return
        ok = torch.isfinite(membrane[-1]).all()
        for _, param in params:
            ok = ok & torch.isfinite(param.detach()).all().to(ok.device)
        if bool(ok):
            return
        name = type(self).__name__
        bad = [label for label, param in params if not bool(torch.isfinite(param.detach()).all())]
        if bad:
            raise ValueError(f"{name}: the parameter {' and '.join(bad)} is NaN or inf (a learned value diverged: "
                             "lower the learning rate or clip gradients)")
        if not all_finite(x):
            raise_non_finite(name, "input")
        raise ValueError(f"{name}: the membrane overflowed {x.dtype} (the input is finite, but its values, up to "
                         f"{x.abs().max().item():.3g}, accumulate past the largest number): scale the input down")


class LIF(RandomStream, _Leaky):
    r"""Leaky integrate-and-fire neurons over a time-major input ``[T, B, ...]``.

    Discrete-time dynamics, with ``beta = 1 - 1/tau_mem`` (``tau_mem`` in time steps, default 10; or
    ``beta`` given directly instead, not both) and ``v[-1] = 0``::

        h[t] = beta * v[t-1] + x[t]                 (pre-reset membrane)
        s[t] = H(h[t] - threshold)                  (H(u) = 1 if u >= 0 else 0)
        v[t] = h[t] - threshold * s[t]              reset="subtract"
        v[t] = h[t] * (1 - s[t])                    reset="zero"

    Each call is a whole sequence from rest (``v[-1] = 0``) and no state is carried between calls unless
    ``carry_state=True``, so batches need no reset, and a loop calling the layer one step (or one chunk of a sequence)
    at a time does not continue the membrane: every call starts again from 0 (pass the whole ``[T, B, ...]`` sequence
    in one call, or carry the state):

    - ``carry_state=True`` (also settable as an attribute; :func:`snnlab.carrying_state` turns it on for every
      LIF / LI of a model within a block): each call starts from the post-reset membrane ``v[T-1]`` the previous call
      ended with, so a sequence fed in chunks (truncated BPTT, streaming inference, one step at a time) gives the
      spikes and recorded membranes of one call on the whole sequence (bit for bit on the PyTorch loop, the C loop
      and Triton's CPU interpreter, for a neuron without noise or output mask: those are drawn per call, so chunks
      draw other samples than one whole call). The carried membrane is detached: no gradient flows into earlier
      chunks (truncated BPTT: the last chunk's input gradients are the whole call's, earlier chunks' miss what later
      steps send back), while ``beta`` / a learned ``tau_mem`` and a learned threshold get this chunk's gradient,
      the carried membrane's term ``beta * v[-1]`` included. It enters as ``x[0] + beta * v[-1]``
      (one fused multiply-add, as the kernels' own step) in a copy of the input, so every backend runs unchanged;
      half-precision input is then computed from a float32 copy, and the membrane kept in float32.
      :meth:`reset_state` (:func:`snnlab.reset_states` for a model) starts the next call from rest: call it before
      each new sequence; a carried membrane of another step shape (batch size), device or compute dtype than the
      input's is a ``ValueError`` saying so. The membrane is per layer (not per thread: a layer called twice in one
      forward carries from its first call into the second), not in the state dict, not kept by copies
      (``copy.deepcopy``, pickling: a copy starts from rest) and not dropped by ``eval()`` / ``train()``, nor by new
      weights (an optimiser step, ``load_state_dict``: the next call starts from the membrane the old ones left;
      call :meth:`reset_state` to start from rest). The library's loops over batches of whole sequences
      (:func:`snnlab.metrics.evaluate`, :func:`~snnlab.metrics.robustness_curve`, the
      :class:`~snnlab.training.Trainer`'s steps and evaluations, the widgets' live views) run every batch from rest
      whatever ``carry_state``, and put back the flag and the carried membrane afterwards, so a stream continues
      after an evaluation in between (:func:`snnlab.carry_suspended`, for loops of your own). Refused
      with a ``ValueError`` naming the layer: ``max_spikes`` (the spike count would need carrying too), a noisy
      neuron whose output is masked in the call (its own spikes, which reset it, are unknown), and
      :class:`~snnlab.ALIF` / :class:`~snnlab.RecurrentLIF` (their adaptation / recurrent spikes are state of their
      own); :func:`snnlab.carrying_state` also refuses a :class:`~snnlab.DelayedLinear` with ``max_delay > 1``
      (its delayed input is not carried). Other layers that mix time steps are not continued across chunks:
      :class:`~snnlab.TimeDropout` draws one mask per call (per chunk), :class:`~snnlab.TimeBatchNorm` in training
      uses each chunk's statistics. ``torch.compile`` (``fullgraph=True`` too) runs it; ``torch.export``,
      ``torch.jit.trace``, ``torch.func`` transforms, the recomputation of activation checkpointing and
      ``nn.DataParallel``'s replicas (the membrane a replica keeps is lost with it) raise a ``RuntimeError``.
      :func:`~snnlab.interop.nir.to_nir` exports the neuron and ignores the carried membrane.

    - ``max_spikes=k``: a neuron that has fired ``k`` times in a sample stays silent for the rest
      of it (``k=1`` is time-to-first-spike, the "Fast & Deep" constraint; ``None`` is unconstrained).
      Gradients still flow to the spikes that happened (the surrogate is masked only where the
      neuron was already silenced). A cap ``>= T`` cannot bind in a call of ``T`` steps and runs as no cap;
      the kernels count spikes in float32, exact up to ``2**24``, so a cap above ``2**24`` with ``T`` above
      the cap is refused (``ValueError`` naming the layer, the cap and ``T``) rather than silently not honoured.
    - ``detach_reset``: the spike in the reset is detached, ``v = h - threshold * sg(s)`` or ``h * (1 - sg(s))``
      (``sg`` stops gradients), as in snnTorch and SpikingJelly: no gradient flows back through the spike,
      while a learnable threshold still gets the subtract reset's ``-sg(s)``.
    - ``learn_threshold`` / ``learn_tau``: learnable per layer, or per neuron with ``n_neurons``; fixed at
      construction (``layer.learn_tau = True`` later is an ``AttributeError``: build the layer with it). A state dict
      of either form loads into the other (a trained ``learn_tau`` model into the same model with fixed constants, to
      deploy it): the threshold as it is, a learned ``tau_mem`` as the ``beta_const`` its forward used and a fixed
      ``beta_const`` as ``tau_mem = 1/(1 - beta)`` (refused for ``beta = 1``, no leak).
    - Noisy neurons (NSNN): ``noise="gaussian" | "logistic"`` with ``noise_scale=sigma``. In training
      ``s[t] ~ Bernoulli(F((h[t] - threshold) / sigma))`` (F the noise CDF) and the backward uses the
      noise density as the surrogate gradient. ``sigma`` is the Gaussian's standard deviation and the
      logistic's scale (whose standard deviation is ``sigma * pi / sqrt(3)``, 1.81 sigma). In eval mode spikes are deterministic unless
      ``noisy_eval=True``. ``seed`` makes the noise reproducible (otherwise torch's global RNG seeds it);
      each call draws its noise seed from the layer's own generator. Activation checkpointing replays it
      with :func:`~snnlab.activation_checkpoint` (plain ``torch.utils.checkpoint`` replays only torch's
      global generators, and a seeded layer it recomputes raises rather than draw other noise).
    - Spike masking (masked spike training): ``mask_p=p`` drops each output spike with probability ``p``
      in training (at inference too with ``mask_at_inference=True``), fused into the LIF kernels. The
      neuron still fires and resets; only what it transmits is masked (so a recorded membrane may reset
      where the output shows no spike), and gradients pass through kept spikes - the same function as a
      :class:`~snnlab.SpikeMask` after the layer, without its extra passes over the spikes in the
      compiled CPU and Triton kernels. ``seed`` makes the masks reproducible too.
    - A seeded layer's state dict also holds its noise / mask stream (``_rng_state``, not a parameter or
      buffer), so a run resumed from it draws the noise and masks the uninterrupted run would have drawn
      next; an unseeded layer's state dict has no such entry. A state without it (saved unseeded, or
      before the stream was kept) loads with ``strict=True`` and leaves the stream where it is; a saved
      stream loaded into an unseeded layer is ignored with a warning (see :class:`~snnlab.core.random_stream.RandomStream`).
    - ``surrogate``: a name from :mod:`snnlab.core.surrogates` or a ``Surrogate`` object (ignored for noisy neurons).
    - ``backend``: ``"auto"`` (Triton on CUDA tensors; on the CPU the compiled loop for float32 when a C
      compiler built it, else PyTorch), ``"torch"`` (pure PyTorch, the reference), ``"cpu"`` (compiled
      CPU loop, float32) or ``"triton"``; see :mod:`snnlab.kernels.dispatch`.
    - Graphs: ``torch.compile`` (``fullgraph=True`` too) and ``torch.export`` capture the PyTorch loop
      (``backend="torch"``; ``"auto"`` takes it under ``torch.export``, the same results). The C loop
      (``backend="cpu"``, and ``"auto"`` on the CPU) runs between graphs under plain ``torch.compile`` (far faster
      there than the compiled PyTorch loop) and is refused, naming the layer, under ``fullgraph=True`` and
      ``torch.export``, as are the draws of a noisy or masked layer while it samples (their
      seeds are host integers). The NaN / inf checks read values back to the host, so they are skipped inside
      captured graphs. ``torch.jit.trace`` works for a layer that draws nothing and raises for one that would
      (it would freeze the seed); ``torch.jit.script`` is not supported.
    - Options set after construction are checked as the constructor checks them: ``reset``, ``max_spikes``,
      ``surrogate`` (a name is resolved: ``layer.surrogate = "triangle"``), ``noise``, ``noise_scale`` and
      ``mask_p`` and the flags ``detach_reset``, ``noisy_eval``, ``mask_at_inference`` when they are assigned
      (``layer.max_spikes = 0`` raises the ``ValueError`` of ``LIF(max_spikes=0)``; a flag must be True or False:
      ``detach_reset="no"`` is a ``TypeError``, not a true value), ``backend`` at the next call.

    - The time constant and threshold are stored in float32 when the default dtype is float16 / bfloat16
      (``torch.set_default_dtype``), as a later ``.half()`` / ``.bfloat16()`` keeps them: ``tau_mem=100`` stays 100,
      not 85.3. :meth:`reset_parameters` puts them back to their constructed values (a model built on the meta
      device, then ``to_empty`` and ``reset_parameters()`` of every module, gets a fresh construction's).

    Returns the spikes ``[T, B, ...]`` (0/1 floats); the pre-reset membrane of the last call is kept in
    ``last_membrane`` while a :class:`~snnlab.Monitor` watches the layer.

    Example:
        >>> import torch, snnlab as sl
        >>> lif = sl.LIF(tau_mem=10.0, threshold=1.0)
        >>> spikes = lif(torch.rand(50, 4, 3) * 0.5)   # [T, B, N]
        >>> spikes.shape
        torch.Size([50, 4, 3])
    """

    def __init__(self, tau_mem: float | None = None, threshold: float = 1.0, reset: str = "subtract", *,
                 beta: float | None = None, detach_reset: bool = False, max_spikes: int | None = None,
                 surrogate: str | sg.Surrogate = "atan", learn_threshold: bool = False, learn_tau: bool = False,
                 n_neurons: int | None = None, noise: str | None = None, noise_scale: float = 0.3,
                 noisy_eval: bool = False, mask_p: float = 0.0, mask_at_inference: bool = False,
                 seed: int | None = None, backend: str = "auto", carry_state: bool = False) -> None:
        super().__init__()
        self._init_tau(tau_mem, beta, learn_tau, n_neurons)
        check_choice(reset, "reset", RESETS, "LIF")
        check_choice(backend, "backend", BACKENDS, "LIF")
        check_positive(threshold, "threshold", "LIF")
        check_fits_float32(threshold, "threshold", "LIF")  # (the threshold is a float32 tensor)
        max_spikes = _as_max_spikes(max_spikes, "LIF")
        if noise is not None:
            check_choice(noise, "noise", NOISE_SURROGATES, "LIF")
            check_positive(noise_scale, "noise_scale", "LIF")
        self.mask_p = mask_p  # (each option is checked as it is set: __setattr__)
        seed = None if seed is None else as_seed(seed, "LIF")
        self.mask_at_inference = as_flag(mask_at_inference, "mask_at_inference", "LIF")
        self.surrogate = _as_surrogate(surrogate, "LIF")
        if noise is None and backend in ("cpu", "triton"):  # the fused kernels compute the built-in ones only
            check_builtin_surrogate(f"LIF(backend={backend!r})", self.surrogate.name)
        self.reset, self.detach_reset, self.max_spikes = reset, detach_reset, max_spikes
        self.noise, self.noise_scale, self.noisy_eval = noise, noise_scale, noisy_eval
        self.backend = backend
        self.learn_threshold = as_flag(learn_threshold, "learn_threshold", "LIF")
        self._constructed_threshold = float(threshold)
        if self.learn_threshold:
            self.threshold = nn.Parameter(self._constant_tensor())
        else:
            self.register_buffer("threshold", self._constant_tensor())
        LIF.reset_parameters(self)  # the values (a subclass's own come from its constructor)
        self._generator = torch.Generator().manual_seed(seed) if seed is not None else None
        self.record = False
        self._monitors = 0  # open Monitors of this layer (see snnlab.core.network.Monitor)
        self.last_membrane: torch.Tensor | None = None
        self.carry_state = carry_state  # (after max_spikes: checked against it)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Put the time constant and the threshold (buffers, or learned Parameters, in place: an optimiser keeps
        them) back to their constructed values, as the constructor sets them (a ``spread_tau_`` or training since is
        undone; the noise / mask stream is not rewound). With it, a model built on the meta device,
        ``model.to_empty(device=...)``, then ``reset_parameters()`` of every module holds what a fresh construction
        does.

        Example:
            >>> import torch, snnlab as sl
            >>> with torch.device("meta"):
            ...     lif = sl.LIF(tau_mem=20.0, threshold=0.5)
            >>> lif = lif.to_empty(device="cpu")
            >>> lif.reset_parameters()
            >>> lif
            LIF(tau_mem=20, threshold=0.5, reset='subtract', surrogate=atan(2))
        """
        self._reset_tau()
        self.threshold.fill_(self._constructed_value("_constructed_threshold"))

    def clamp_parameters_(self) -> "LIF":
        """Clamp the stored learned parameters in place: a learned ``tau_mem`` to at least 1 step (as
        :meth:`snnlab.LI.clamp_parameters_`), and a learned threshold to at least :data:`MIN_LEARNED_THRESHOLD`
        (``2**-126``, about ``1.2e-38``, the smallest normal float32): the constructor takes thresholds > 0 only, and
        one an optimiser step drove to 0 or below would fire on zero input. A threshold at or above that floor is left
        as it is. Call it after each optimiser step in your own training loop, as the
        :class:`~snnlab.training.Trainer` does. Returns the layer.

        Example:
            >>> import torch, snnlab as sl
            >>> lif = sl.LIF(learn_threshold=True)
            >>> with torch.no_grad():
            ...     _ = lif.threshold.fill_(-0.5)   # an optimiser step overshot
            >>> float(lif.clamp_parameters_().threshold.detach()) > 0
            True
        """
        super().clamp_parameters_()
        if self.learn_threshold:
            with torch.no_grad():
                self.threshold.clamp_(min=MIN_LEARNED_THRESHOLD)
        return self

    #: the options checked (and normalised) at every assignment, the constructor's and any later one
    #: (``layer.max_spikes = 0`` raises as ``LIF(max_spikes=0)`` does; ``layer.surrogate = "triangle"`` is resolved)
    _CHECKED_OPTIONS = frozenset(("reset", "max_spikes", "surrogate", "noise", "noise_scale", "mask_p", "detach_reset",
                                  "noisy_eval", "mask_at_inference"))
    _CONSTRUCTION_FLAGS = {**_Leaky._CONSTRUCTION_FLAGS,
                           "learn_threshold": "whether threshold is a learned Parameter or a fixed buffer"}

    def __setattr__(self, name: str, value) -> None:
        if name in LIF._CHECKED_OPTIONS:
            value = self._checked_option(name, value)
        super().__setattr__(name, value)

    def _checked_option(self, name: str, value):
        """``value`` for the option ``name`` as the constructor checks and stores it (``ValueError`` / ``TypeError``
        naming the layer): the checks run once, when the option is set, not at every forward."""
        layer = type(self).__name__
        if name == "reset":
            check_choice(value, "reset", RESETS, layer)
            return value
        if name == "max_spikes":
            return _as_max_spikes(value, layer)
        if name == "surrogate":
            return _as_surrogate(value, layer)
        if name == "mask_p":
            return as_drop_probability(value, "mask_p", layer)
        if name in ("detach_reset", "noisy_eval", "mask_at_inference"):
            return as_flag(value, name, layer)
        # noise and noise_scale: a noisy neuron needs a scale > 0 (checked whichever of the two is set last)
        if name == "noise":
            if value is not None:
                check_choice(value, "noise", NOISE_SURROGATES, layer)
            noise, scale = value, self.__dict__.get("noise_scale")
        else:
            noise, scale = self.__dict__.get("noise"), as_number(value, "noise_scale", layer)
        if noise is not None and scale is not None:
            check_positive(scale, "noise_scale", layer)
        return value if name == "noise" else scale

    def _next_seed(self) -> int:
        if vmap_randomness() == "error":  # vmap's default refuses random draws, as it does torch's own
            raise RuntimeError(f"{type(self).__name__}: vmap(randomness='error', its default) refuses random draws, "
                               "and this layer draws its noise / spike-mask seed at every call: use "
                               "vmap(..., randomness='different')")
        with outside_transforms():  # a plain number also under vmap(randomness="different")
            return int(torch.randint(0, 2**31 - 1, (1,), generator=self._stream()).item())

    def _draw_seeds(self, x: torch.Tensor) -> tuple[int | None, int | None]:
        """This call's noise and spike-mask seeds, None where it does not sample or mask (the noise seed drawn
        first); warns when ``x`` outgrows the 32-bit counter the draws come from."""
        sampling = self.noise is not None and (self.training or self.noisy_eval)
        masking = self.mask_p > 0.0 and (self.training or self.mask_at_inference)
        if sampling or masking:  # the seeds are host integers: no graph or trace can hold their draw
            layer, what = type(self).__name__, " and ".join(("noise",) * sampling + ("spike masks",) * masking)
            refuse_jit_trace(layer, what)
            leave_graph(f"{layer}: this call draws its {what} from a seed taken on the host (the layer's generator, "
                        "or torch's global one), which torch.compile(fullgraph=True) and torch.export cannot capture "
                        "in a graph; use torch.compile without fullgraph (the draw runs between graphs), or the "
                        "layer in eval mode without noise or masking (noisy_eval=False, mask_at_inference=False)")
        noise_seed = self._next_seed() if sampling else None
        mask_seed = self._next_seed() if masking else None
        if (sampling or masking) and x.numel() > COUNTER_PERIOD:
            warnings.warn(f"{type(self).__name__}: {x.numel()} neuron-steps in one call; the noise and mask draws "
                          f"come from a 32-bit counter and repeat every {COUNTER_PERIOD} elements (split the batch "
                          "to avoid it)", RuntimeWarning, stacklevel=3)
        return noise_seed, mask_seed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._check_input(x, finite=False)  # checked on the final membrane below (cheaper)
        if self.backend not in BACKENDS:  # (set after construction)
            raise ValueError(f"{type(self).__name__}: unknown backend {self.backend!r}; choose one of {list(BACKENDS)}")
        noise_seed, mask_seed = self._draw_seeds(x)
        impl = lif_impl(self.backend, x.device, x.dtype, None if self.noise else self.surrogate.name, type(self).__name__)
        beta = self.beta()
        # parameters keep their dtype: the fused kernels compute in float32 whatever x's dtype (a bfloat16 beta of 0.9
        # would be 0.8984), the PyTorch path too (float32 for half-precision x)
        beta, threshold = beta.to(device=x.device), self.threshold.to(device=x.device)
        carrying = self.carry_state
        run = self._carried_input(x, beta, noise_seed is not None, mask_seed is not None) if carrying else x
        spikes, membrane = impl(
            run, beta, threshold, reset=self.reset, detach_reset=self.detach_reset,
            max_spikes=spike_cap_for_call(type(self).__name__, self.max_spikes, x.shape[0]),  # (float32 counts)
            surrogate=self.surrogate.name, surrogate_param=self.surrogate.param,
            noise=self.noise, noise_scale=self.noise_scale, seed=noise_seed or 0, sample=noise_seed is not None,
            mask_p=self.mask_p if mask_seed is not None else 0.0, mask_seed=mask_seed or 0, keep_membrane=self.record)
        if carrying:  # (the own spikes: the unmasked ones only)
            computed = (membrane, None if mask_seed is not None else spikes)
            spikes, membrane = spikes.to(x.dtype), (membrane if self.record else membrane[-1:]).to(x.dtype)
        self._check_final_membrane(x, membrane, *self._learned(beta))
        if carrying:
            self._keep_final_membrane(*computed, threshold)
        self.last_membrane = membrane.detach() if self.record else None
        return spikes

    def _carry_problem(self) -> str | None:
        problem = super()._carry_problem()
        if problem is None and self.max_spikes is not None:
            problem = (f"max_spikes={self.max_spikes} caps the spikes per sample, and the count of spikes so far would "
                       "have to be carried too (the membrane alone cannot carry it); use max_spikes=None")
        return problem

    def _carried_input(self, x: torch.Tensor, beta: torch.Tensor, sampling: bool, masking: bool) -> torch.Tensor:
        """``x`` in the dtype the layer computes in (float32 for half precision: the carried membrane is kept in
        it), starting from the carried membrane (:meth:`_from_carried`); ``ValueError`` / ``RuntimeError`` naming the
        layer where this call cannot carry its state exactly."""
        layer = type(self).__name__
        problem = self._carry_problem()  # (options may have changed since carry_state was set)
        if problem is None and sampling and masking:
            problem = (f"a noisy neuron (noise={self.noise!r}) resets by its own random spikes, which its masked "
                       f"output (mask_p={self.mask_p:g}) does not show, so the membrane it ends with is not known; "
                       "run it without masking, or deterministically (eval mode without noisy_eval)")
        if problem is not None:
            raise ValueError(f"{layer}: carry_state=True cannot carry this call's membrane: {problem}")
        self._check_carry_context()
        return self._from_carried(x.to(compute_dtype(x)), beta)

    def _keep_final_membrane(self, membrane: torch.Tensor, spikes: torch.Tensor | None,
                             threshold: torch.Tensor) -> None:
        """Keep the post-reset membrane of the last step for the next call: from the pre-reset ``membrane[-1]`` and
        the neuron's own last spikes, ``spikes[-1]`` where the output is not masked (``spikes`` None: masked, and the
        neuron deterministic: ``h >= threshold``), reset as the kernels do (exact: the spikes are 0 or 1). An empty
        call keeps the membrane it started from."""
        if membrane.shape[0] == 0:
            return
        h = membrane[-1].detach()
        thr = threshold.detach().to(h.dtype)
        s = (h >= thr).to(h.dtype) if spikes is None else spikes[-1].detach()
        self._carried = h - thr * s if self.reset == "subtract" else h * (1.0 - s)

    def extra_repr(self) -> str:
        thr = f"threshold={_value_repr(self.threshold)}" + (", learn_threshold=True" if self.learn_threshold else "")
        parts = [self._tau_repr(), thr, f"reset={self.reset!r}"]
        if self.noise is None:  # a noisy neuron's surrogate is its noise density (shown with the noise below)
            parts.append(f"surrogate={self.surrogate.name}({self.surrogate.param:g})")
        if self.detach_reset:
            parts.append("detach_reset=True")
        if self.max_spikes is not None:
            parts.append(f"max_spikes={self.max_spikes}")
        if self.noise is not None:
            parts.append(f"noise={self.noise!r}, noise_scale={self.noise_scale:g}")
        if self.noisy_eval:  # (noise in eval mode too)
            parts.append("noisy_eval=True")
        if self.mask_p > 0:
            parts.append(f"mask_p={self.mask_p:g}, mask_at_inference={self.mask_at_inference}")
        elif self.mask_at_inference:  # (no effect until mask_p is set, and then it masks in eval mode too)
            parts.append("mask_at_inference=True")
        if self.n_neurons is not None:
            parts.append(f"n_neurons={self.n_neurons}")
        if self.backend != "auto":
            parts.append(f"backend={self.backend!r}")
        if self.carry_state:
            parts.append("carry_state=True")
        return ", ".join(parts)


class LI(_Leaky):
    """Non-spiking leaky integrator readout: ``h[t] = beta * h[t-1] + x[t]``, ``h[-1] = 0``.

    ``beta = 1 - 1/tau_mem`` (``tau_mem`` in time steps, default 10), or ``beta`` given instead.

    Each call is a whole sequence from rest (``h[-1] = 0``) and no state is carried between calls unless
    ``carry_state=True``, so batches need no reset, and a per-step loop or a sequence split into chunks does not
    continue the membrane across calls. With ``carry_state=True`` each call starts from the last output of the previous
    one (detached: truncated BPTT), so chunks give the outputs of one call on the whole sequence and truncated
    gradients (each chunk's own: none flows into earlier chunks, whose gradients differ from the whole call's); see
    :class:`~snnlab.LIF` for :meth:`reset_state`, :func:`snnlab.carrying_state` and what is refused.

    Returns the membrane ``[T, B, ...]``; classify with e.g. ``out.sum(0)`` or ``out.max(0).values``. The time
    constant is kept in float32 under a half-precision default dtype, and :meth:`reset_parameters` restores its
    constructed value, as :class:`~snnlab.LIF`'s.

    Example:
        >>> import torch, snnlab as sl
        >>> sl.LI(beta=0.5)(torch.ones(3, 1, 1))[:, 0, 0].tolist()
        [1.0, 1.5, 1.75]
    """

    def __init__(self, tau_mem: float | None = None, *, beta: float | None = None, learn_tau: bool = False,
                 n_neurons: int | None = None, carry_state: bool = False) -> None:
        super().__init__()
        self._init_tau(tau_mem, beta, learn_tau, n_neurons)
        LI.reset_parameters(self)  # the values
        self.record = False
        self._monitors = 0  # open Monitors of this layer (see snnlab.core.network.Monitor)
        self.last_membrane: torch.Tensor | None = None
        self.carry_state = carry_state

    def reset_parameters(self) -> None:
        """Put the time constant (a buffer, or a learned Parameter in place) back to its constructed value, as
        :meth:`snnlab.LIF.reset_parameters` does (for a model built on the meta device, then ``to_empty``)."""
        self._reset_tau()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._check_input(x, finite=False)
        beta = self.beta()
        carrying = self.carry_state
        if carrying:
            self._check_carry_context()
            b = beta.to(device=x.device)
            computed = li_torch(self._from_carried(x.to(compute_dtype(x)), b), b)  # (half: kept in float32)
            out = computed.to(x.dtype)
        else:
            out = li_torch(x, beta.to(device=x.device))  # cast to its compute dtype there
        self._check_final_membrane(x, out, *self._learned(beta))
        if carrying and out.shape[0]:  # (an empty call keeps the membrane it started from)
            self._carried = computed[-1].detach()
        self.last_membrane = out.detach() if self.record else None
        return out

    def extra_repr(self) -> str:
        return (self._tau_repr() + (f", n_neurons={self.n_neurons}" if self.n_neurons is not None else "")
                + (", carry_state=True" if self.carry_state else ""))
