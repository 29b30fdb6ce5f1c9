r"""A recurrent layer of LIF neurons: :class:`RecurrentLIF`, the recurrent SNN (RSNN) baseline of SHD / SSC.

Semantics (``x`` time-major ``[T, B, N]``, ``v[-1] = 0``, ``o[-1] = 0``)::

    h[t] = beta * v[t-1] + x[t] + W_rec @ o[t-1]    (pre-reset membrane; W_rec [N, N], no bias)
    s[t] = H(h[t] - threshold) * m[t]             H(u) = 1 if u >= 0 else 0
    m[t] = 1 if (spikes fired before t) < max_spikes else 0   (m = 1 when max_spikes is None)
    v[t] = h[t] - threshold * s[t]                reset="subtract"
    v[t] = h[t] * (1 - s[t])                      reset="zero"
    o[t] = s[t] * k[t]                            the transmitted spikes: the output, and what W_rec feeds back

that is, exactly the :class:`~snnlab.LIF` of :mod:`snnlab.kernels.lif_torch` with the recurrent current added
to its input, step by step. Noisy neurons (``noise``) draw ``s[t] ~ Bernoulli(F((h[t] - threshold) / sigma)) * m[t]``
from the counter hash of :mod:`snnlab.kernels.counter_rng` at the element indices ``t * numel + i`` (``numel``
the elements of one step), and spike masking (``mask_p``) keeps a spike where the mask stream's hash at the same
index is ``>= mask_p`` (``k[t]``): the same indices, keys and seed draws as the fused LIF, so with ``W_rec = 0``
the layer fires exactly the spikes of an ``LIF`` with the same options and seed. The backward replaces
``dH/du`` by the layer's surrogate (a noisy neuron's: its noise density), masked by ``m[t]``; ``detach_reset``
detaches the spike in the reset term. Masked spikes are not fed back (the recurrence sees ``o``, as the next
layer does), and the gradient reaches the neuron through kept spikes only.

The recurrence couples the steps, so the time loop cannot be fused into one GPU / C kernel; ``backend="auto"`` and
``"torch"`` run :class:`~snnlab.kernels.recurrent_lif.RecurrentLIFFunction` (a loop without an autograd graph, a
hand-written reverse-time backward, one matmul per step each way). ``backend="reference"`` runs the plain per-step
autograd loop (:meth:`RecurrentLIF._reference_run`, the recurrent weight called as the child ``nn.Linear`` at every
step; a half-precision weight is cast to float32 instead, bypassing the module's hooks): slow, kept as the reference
the fused path is tested against. ``"cpu"`` and ``"triton"`` are refused.

The fused path reads the child's weight instead of calling it (:func:`synapse_weight`): a weight recomputed by forward
pre-hooks (``torch.nn.utils.prune``, the hook-based ``torch.nn.utils.weight_norm`` / ``spectral_norm``) is recomputed
once per forward by running those hooks, a ``torch.nn.utils.parametrize`` weight is computed as usual, and forward or
backward hooks on the child (and the forward pre-hooks of a registered weight), which it cannot run, are not run (a
``UserWarning``; ``backend="reference"`` runs them). Global module hooks (``register_module_forward_hook`` and the
like) do not run for the recurrent ``nn.Linear`` on the fused path either: a ``UserWarning`` names them once per hook.
:meth:`RecurrentLIF.reset_recurrent` re-initialises the parameter a pruned or reparametrised weight is computed from
(:func:`reset_synapse_weight`), or raises where none can hold the drawn weight.
At ``T = 1`` nothing is fed back, and the recurrent weight gets a zero gradient (not None), as at ``T = 0``.
"""
from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules import module as _torch_module
from torch.nn.utils import parametrize
from torch.nn.utils.spectral_norm import SpectralNorm
from torch.nn.utils.weight_norm import WeightNorm

from snnlab.kernels.dispatch import HALF_DTYPES, compute_dtype
from snnlab.kernels.lif_common import spike_cap_for_call
from snnlab.kernels.recurrent_lif import recurrent_lif

from . import surrogates as sg
from .module_hooks import hook_label, hook_tensor_name, is_snnlab_hook
from .neurons import LIF
from .step_loop import lif_step_loop
from .validation import check_choice, is_integer, user_stacklevel

__all__ = ["RECURRENT_INITS", "RecurrentLIF"]

#: the initialisations of the recurrent weight (see :class:`RecurrentLIF`)
RECURRENT_INITS = ("uniform", "orthogonal", "zeros")
_BACKENDS = ("auto", "torch", "reference")


def _renamed(exc: Exception, layer: str = "RecurrentLIF") -> Exception:
    """``exc`` (from :class:`~snnlab.LIF`'s checks) with its message naming ``layer`` instead of ``LIF``."""
    msg = str(exc)
    return type(exc)(layer + ":" + msg[4:]) if msg.startswith("LIF:") else exc


def init_recurrent_weight(weight: torch.Tensor, init: str, layer: str = "RecurrentLIF") -> None:
    """Fill a recurrent weight ``[N, N]`` in place: ``"uniform"`` (``U(-1/sqrt(N), 1/sqrt(N))``), ``"orthogonal"``
    or ``"zeros"`` (see :class:`RecurrentLIF`), from torch's global RNG. A float16 / bfloat16 weight gets its
    orthogonal matrix drawn in float32 (torch's QR has no half-precision kernel), then rounded into it."""
    check_choice(init, "recurrent_init", RECURRENT_INITS, layer)
    with torch.no_grad():
        if init == "uniform":
            bound = 1.0 / math.sqrt(weight.shape[0])
            nn.init.uniform_(weight, -bound, bound)
        elif init == "orthogonal" and weight.dtype in HALF_DTYPES:
            weight.copy_(nn.init.orthogonal_(torch.empty(weight.shape, dtype=torch.float32, device=weight.device)))
        elif init == "orthogonal":
            nn.init.orthogonal_(weight)
        else:
            nn.init.zeros_(weight)


def reset_synapse_weight(synapses: nn.Linear, init: str, layer: str = "RecurrentLIF") -> None:
    """(Re)initialise the weight of ``synapses`` as ``init`` (:func:`init_recurrent_weight`) where it is stored: the
    ``reset_recurrent`` of :class:`RecurrentLIF` and of a recurrent :class:`~snnlab.ALIF`.

    - a registered ``weight`` (the usual case): filled in place;
    - ``torch.nn.utils.prune``: ``weight_orig`` takes the drawn weight (pruned entries stay pruned);
    - the hook-based ``torch.nn.utils.weight_norm``: ``weight_v`` takes the drawn weight and ``weight_g`` its norm, as
      the registration does (``"zeros"``: ``weight_g = 0``, ``weight_v`` kept, so the weight is exactly 0);
    - the hook-based ``torch.nn.utils.spectral_norm``: ``weight_orig`` takes the drawn weight (the weight is then
      that divided by its largest singular value, as at registration; ``"zeros"`` has none and raises);
    - ``torch.nn.utils.parametrize``: the drawn weight is assigned as ``module.weight = W`` does (through the
      parametrizations' ``right_inverse``; a parametrization without one gets it in ``original``, as
      ``register_parametrization`` stores the weight); a normalising or constraining parametrization keeps its
      constraint (an orthogonal one gives an orthogonal weight). A result that is not finite, or not zero for
      ``"zeros"`` (a parametrized ``weight_norm`` or an orthogonal weight cannot be zero), restores the old state and
      raises a ``ValueError``.

    The computed ``weight`` is up to date on return (the reparametrisation's hook is run once, as a call of the module
    would). A weight computed in another way (an unknown forward pre-hook, or two reparametrisations stacked) raises a
    ``ValueError``: snnlab cannot tell which tensor holds it.

    Example:
        >>> from torch.nn.utils import prune
        >>> lin = torch.nn.Linear(4, 4, bias=False)
        >>> _ = prune.l1_unstructured(lin, "weight", amount=0.5)
        >>> reset_synapse_weight(lin, "orthogonal")
        >>> torch.allclose(lin.weight_orig @ lin.weight_orig.T, torch.eye(4), atol=1e-5)
        True
        >>> torch.equal(lin.weight, lin.weight_orig * lin.weight_mask)
        True
    """
    where = f"{layer}.reset_recurrent({init!r})"
    if parametrize.is_parametrized(synapses, "weight"):
        _reset_parametrized(synapses, init, where, layer)
        return
    if "weight" in synapses._parameters:
        init_recurrent_weight(synapses.weight, init, layer)
        return
    hooks = [h for h in synapses._forward_pre_hooks.values() if hook_tensor_name(h) == "weight"]
    if len(hooks) != 1:
        found = (", ".join(type(h).__name__ for h in hooks)
                 or "no torch.nn.utils prune / weight_norm / spectral_norm hook")
        raise ValueError(f"{where}: the recurrent nn.Linear's weight is not a registered parameter and is computed by "
                         f"{found}; snnlab cannot tell which tensor holds it (it knows one of torch.nn.utils.prune, "
                         "weight_norm, spectral_norm or parametrize): initialise the parameter it is computed from "
                         "yourself")
    hook = hooks[0]
    source = synapses.weight_v if isinstance(hook, WeightNorm) else synapses.weight_orig
    if isinstance(hook, SpectralNorm) and init == "zeros":
        raise ValueError(f"{where}: a spectral-normed weight cannot be zero (it is divided by its largest singular "
                         "value, 0 for a zero weight); use 'uniform' or 'orthogonal', or remove the spectral norm")
    drawn = torch.empty(source.shape, dtype=source.dtype, device=source.device)
    init_recurrent_weight(drawn, init, layer)
    with torch.no_grad():
        if not isinstance(hook, WeightNorm):
            source.copy_(drawn)
        elif init == "zeros":
            synapses.weight_g.zero_()
        else:
            source.copy_(drawn)
            synapses.weight_g.copy_(torch.norm_except_dim(drawn, 2, hook.dim))
    hook(synapses, None)  # the computed weight now, as the next call of the module computes it


def _reset_parametrized(synapses: nn.Linear, init: str, where: str, layer: str) -> None:
    """:func:`reset_synapse_weight` for a ``torch.nn.utils.parametrize`` weight (the old state back on failure)."""
    chain = synapses.parametrizations.weight
    names = " -> ".join(type(p).__name__ for p in chain)
    saved = {k: v.clone() for k, v in chain.state_dict().items()}
    first = next(chain.parameters())
    drawn = torch.empty((synapses.out_features, synapses.in_features), dtype=first.dtype, device=first.device)
    init_recurrent_weight(drawn, init, layer)
    try:
        with torch.no_grad():
            if all(hasattr(p, "right_inverse") for p in chain):
                synapses.weight = drawn  # (parametrize: the originals from right_inverse)
            elif isinstance(getattr(chain, "original", None), torch.Tensor) and chain.original.shape == drawn.shape:
                chain.original.copy_(drawn)  # (what register_parametrization stores without a right_inverse)
            else:
                raise ValueError("no right_inverse, and no single 'original' of the weight's shape to hold it")
            weight = synapses.weight
    except (RuntimeError, ValueError, NotImplementedError) as exc:
        chain.load_state_dict(saved)
        raise ValueError(f"{where}: the parametrization ({names}) of the recurrent weight cannot take the drawn "
                         f"weight: {exc}") from exc
    # (torch's orthogonal parametrization takes a zero weight and keeps it: not orthogonal, and it never moves)
    orthogonal = getattr(torch.nn.utils.parametrizations, "_Orthogonal", ())
    problem = ("non-finite values" if not bool(torch.isfinite(weight).all())
               else "a non-zero weight" if init == "zeros" and bool(weight.count_nonzero())
               else "a zero weight that is not orthogonal and never moves"
               if init == "zeros" and any(isinstance(p, orthogonal) for p in chain) else None)
    if problem is not None:
        chain.load_state_dict(saved)
        raise ValueError(f"{where}: the parametrization ({names}) of the recurrent weight cannot represent "
                         f"{'a zero weight' if init == 'zeros' else 'the drawn weight'} (it gives {problem}); the "
                         "weight is unchanged: use another recurrent_init, or remove the parametrization")


class _SynapseReset:
    """The ``reset_parameters`` of the recurrent ``nn.Linear`` a layer builds (set on that instance): it draws the
    layer's ``recurrent_init`` (:func:`reset_synapse_weight`) instead of ``nn.Linear``'s default, so resetting every
    module (a model built on the meta device, then ``to_empty``) keeps an orthogonal or zero weight in whatever order
    the modules are reset. (For ``"uniform"`` the draw is ``nn.Linear``'s own: the same values for the same RNG
    state. For ``"zeros"`` it draws ``nn.Linear``'s default first and discards it, as the construction's
    ``nn.Linear`` does, so the modules reset after it draw from the same point of the RNG stream as at
    construction.)"""

    def __init__(self, synapses: nn.Linear, init: str, layer: str) -> None:
        self.synapses, self.init, self.layer = synapses, init, layer

    def __call__(self) -> None:
        if self.init == "zeros":  # (nn.Linear's kaiming_uniform_ draw, which the constructor made and zeroed)
            with torch.no_grad():
                torch.empty_like(self.synapses.weight).uniform_()
        reset_synapse_weight(self.synapses, self.init, self.layer)


def build_synapses(n_neurons: int, init: str, layer: str) -> nn.Linear:
    """The recurrent synapses of ``layer``: a bias-free ``nn.Linear(n_neurons, n_neurons)`` whose
    ``reset_parameters()`` draws ``init`` (:class:`_SynapseReset`; the caller draws it first with its
    ``reset_recurrent``)."""
    synapses = nn.Linear(n_neurons, n_neurons, bias=False)
    synapses.reset_parameters = _SynapseReset(synapses, init, layer)
    return synapses


def check_synapses(value: object, layer: str, n_neurons: int | None, *, optional: bool = False) -> None:
    """Check a module assigned as the recurrent synapses (``layer.recurrent = value``): an ``nn.Linear`` (a subclass
    too) ``[n_neurons, n_neurons]`` (or None where ``optional``: a feed-forward ALIF); ``TypeError`` / ``ValueError``
    naming ``layer`` otherwise. What the fused loop can run is checked at the call (:func:`check_fusable`).

    Example:
        >>> check_synapses(torch.nn.Sequential(), "RecurrentLIF", 4)
        Traceback (most recent call last):
        ...
        TypeError: RecurrentLIF: the recurrent synapses must be an nn.Linear [n_neurons, n_neurons] (the loops read its weight [4, 4]; backend='reference' calls it), got Sequential
    """
    if value is None and optional:
        return
    if not isinstance(value, nn.Linear):
        raise TypeError(f"{layer}: the recurrent synapses must be an nn.Linear [n_neurons, n_neurons] (the loops read "
                        f"its weight [{n_neurons}, {n_neurons}]; backend='reference' calls it), got "
                        f"{type(value).__name__}")
    if n_neurons is None:
        raise ValueError(f"{layer}: recurrent synapses need one value per neuron: build the layer with n_neurons "
                         "(and recurrent=True)")
    if (value.in_features, value.out_features) != (n_neurons, n_neurons):
        raise ValueError(f"{layer}: the recurrent nn.Linear must map the layer's {n_neurons} neurons to themselves "
                         f"(in_features = out_features = {n_neurons}), got in_features={value.in_features}, "
                         f"out_features={value.out_features}")


class CheckedSynapsesMixin:
    """Checks a module assigned as ``recurrent`` (``layer.recurrent = m``, ``add_module`` / ``register_module``) by
    :func:`check_synapses` before it is set: a mixin placed before ``nn.Module`` in the bases of a recurrent layer,
    which names itself in ``_SYNAPSES_LAYER`` and sets ``_SYNAPSES_OPTIONAL`` where None (feed-forward) is allowed.

    Example:
        >>> class Layer(CheckedSynapsesMixin, torch.nn.Module):
        ...     _SYNAPSES_LAYER, _SYNAPSES_OPTIONAL = "Layer", True
        >>> layer = Layer()
        >>> layer.n_neurons = 2
        >>> layer.recurrent = None                     # optional: fine
        >>> layer.recurrent = torch.nn.Linear(3, 3)
        Traceback (most recent call last):
        ...
        ValueError: Layer: the recurrent nn.Linear must map the layer's 2 neurons to themselves ...
    """

    #: the layer the messages name
    _SYNAPSES_LAYER: str = "RecurrentLIF"
    #: whether ``recurrent`` may be None (a feed-forward layer)
    _SYNAPSES_OPTIONAL: bool = False

    def __setattr__(self, name: str, value) -> None:
        if name == "recurrent":  # the synapses the loops can read (check_fusable: what the fused one can run)
            check_synapses(value, self._SYNAPSES_LAYER, self.__dict__.get("n_neurons"),
                           optional=self._SYNAPSES_OPTIONAL)
        super().__setattr__(name, value)

    def add_module(self, name: str, module: nn.Module | None) -> None:
        if name == "recurrent":  # (register_module too): the assignment's check
            check_synapses(module, self._SYNAPSES_LAYER, self.__dict__.get("n_neurons"),
                           optional=self._SYNAPSES_OPTIONAL)
        super().add_module(name, module)


def check_fusable(synapses: nn.Linear, layer: str) -> None:
    """``ValueError`` naming ``layer`` unless the fused loop (``backend='auto'`` / ``'torch'``), which reads
    ``synapses.weight`` and never calls the module, computes what a call would: a bias-free ``nn.Linear`` whose forward
    is ``nn.Linear.forward`` (subclasses made by ``torch.nn.utils.parametrize`` and pruning hooks are fine). A
    subclass with its own forward (a sign constraint, say) or a bias runs on ``backend='reference'``.

    Example:
        >>> check_fusable(torch.nn.Linear(3, 3, bias=False), "RecurrentLIF")   # the layer's own: fine
        >>> check_fusable(torch.nn.Linear(3, 3), "RecurrentLIF")
        Traceback (most recent call last):
        ...
        ValueError: RecurrentLIF: the recurrent nn.Linear has a bias, which the fused loop (backend='auto' / 'torch') would ignore: it reads the module's weight and never calls the module; use backend='reference' (the per-step loop calls the module at every step), or a bias-free nn.Linear
    """
    own_forward = type(synapses).forward is not nn.Linear.forward
    if not own_forward and synapses.bias is None:
        return
    what = (f"its own forward ({type(synapses).__name__}.forward)" if own_forward else "a bias")
    raise ValueError(f"{layer}: the recurrent nn.Linear has {what}, which the fused loop (backend='auto' / 'torch') "
                     "would ignore: it reads the module's weight and never calls the module; use backend='reference' "
                     "(the per-step loop calls the module at every step), or a bias-free nn.Linear")


def synapse_weight(synapses: nn.Linear, like: torch.Tensor, layer: str = "RecurrentLIF", *,
                   fused: bool = True) -> torch.Tensor:
    """The weight of ``synapses`` as a call of the module would use it, for a loop that reads the weight instead of
    calling the module (the fused paths; ``fused=False``: the reference loop's reads outside its calls).

    A weight recomputed by forward pre-hooks (``torch.nn.utils.prune``, the hook-based
    ``torch.nn.utils.weight_norm`` / ``spectral_norm``: ``weight`` is then no registered parameter of the module but an
    attribute each call rewrites) is recomputed here by running the module's forward pre-hooks once, as
    ``nn.Module.__call__`` would, on an empty input ``[0, ..., N]`` (``like``'s shape without its steps, dtype and
    device: the fed-back spikes are not known before the loop); a hook that returns a changed input cannot be applied
    and raises a ``ValueError``. A registered weight (the usual case; ``torch.nn.utils.parametrize`` too) is returned
    as it is, without running any hook (a pre-hook that only watches the input sees calls of the reference loop only).
    With ``fused=True``, forward and backward hooks of ``synapses`` (on its output and gradients, which a loop that
    never calls the module cannot run), and the forward pre-hooks of a registered weight, are not run: a
    ``UserWarning`` names ``backend='reference'``, which runs them. Global module hooks
    (``torch.nn.modules.module.register_module_forward_hook`` and the other ``register_module_*_hook``) are not run
    on the recurrent ``nn.Linear`` either; they are named in a ``UserWarning`` once per registered hook (see
    :func:`_warn_global_hooks_once`).

    Example:
        >>> import torch
        >>> from torch.nn.utils import prune
        >>> lin = torch.nn.Linear(3, 3, bias=False)
        >>> _ = prune.l1_unstructured(lin, "weight", amount=0.5)
        >>> with torch.no_grad():
        ...     _ = lin.weight_orig.fill_(2.0)         # an optimiser step: lin.weight is stale until the next call
        >>> synapse_weight(lin, torch.zeros(5, 1, 3)).sum().item() == 2.0 * lin.weight_mask.sum().item()
        True
    """
    computed = "weight" not in synapses._parameters  # (a hook-computed or parametrized weight)
    if synapses._forward_pre_hooks and computed:
        _run_pre_hooks(synapses, like.new_zeros((0,) + tuple(like.shape[1:])), layer)
    if fused:
        _warn_global_hooks_once(layer)
    if fused and (synapses._forward_hooks or synapses._backward_hooks or synapses._backward_pre_hooks):
        # a warning, not an error: tools that hook every nn.Linear (summaries, FLOP counters) must keep working
        warnings.warn(f"{layer}: the recurrent nn.Linear has forward or backward hooks, which the fused loop "
                      "(backend='auto' / 'torch') does not run: it reads the module's weight and never calls the "
                      "module; use backend='reference' (the per-step loop calls it at every step) to run them",
                      UserWarning, stacklevel=user_stacklevel())
    elif fused and synapses._forward_pre_hooks and not computed:
        # not run (see above): one that changes the module's input would be ignored without a word
        warnings.warn(f"{layer}: the recurrent nn.Linear has forward pre-hooks, which the fused loop "
                      "(backend='auto' / 'torch') does not run on its registered weight (it reads the weight and "
                      "never calls the module: a pre-hook changing the input has no effect); use "
                      "backend='reference' (the per-step loop calls it at every step) to run them",
                      UserWarning, stacklevel=user_stacklevel())
    return synapses.weight


#: the ids of the global module hooks already named in the warning of :func:`_warn_global_hooks_once`
_WARNED_GLOBAL_HOOKS: set[int] = set()
_GLOBAL_HOOK_DICTS = ("_global_forward_pre_hooks", "_global_forward_hooks", "_global_backward_pre_hooks",
                      "_global_backward_hooks")


def _warn_global_hooks_once(layer: str) -> None:
    """A ``UserWarning`` (at the user's line) when global module hooks not yet named are registered: the fused loop
    never calls the recurrent ``nn.Linear``, so they do not run for it (they do run for the layer itself).

    They are not run with made-up arguments instead: the reference loop calls the module once per step on ``[1, B,
    N]``, and a single call on all steps after the loop would run outside the matmuls the fused loop did (tools such
    as ``torch.utils.flop_counter`` place work by these hooks), and could not apply a hook's returned output. Each
    hook is named once per process (its handle id is remembered), not at every forward. snnlab's own global hooks
    (the running-statistics guard of :func:`~snnlab.core.activation_checkpoint.activation_checkpoint`, for norm layers
    only) are not named."""
    new = {}  # handle id -> "<kind> <hook>", for the hooks not named yet
    for name in _GLOBAL_HOOK_DICTS:
        for key, hook in getattr(_torch_module, name, {}).items():
            if key not in _WARNED_GLOBAL_HOOKS and not is_snnlab_hook(hook):
                kind = name[len("_global_"):-len("_hooks")].replace("_", " ")
                new[key] = f"{kind} hook {hook_label(hook)}"
    if not new:
        return
    _WARNED_GLOBAL_HOOKS.update(new)
    warnings.warn(f"{layer}: global module hooks (torch.nn.modules.module.register_module_*_hook) are registered "
                  f"({'; '.join(new.values())}); "
                  "the fused loop (backend='auto' / 'torch') does not run them for the recurrent nn.Linear (it reads "
                  "the weight and never calls it; they run for the layer itself); use backend='reference' (the "
                  "per-step loop calls it at every step) to run them. Named once per hook.",
                  UserWarning, stacklevel=user_stacklevel())


def _run_pre_hooks(module: nn.Module, inp: torch.Tensor, layer: str) -> None:
    """Run the forward pre-hooks of ``module`` on ``(inp,)`` as ``nn.Module.__call__`` does (the module's own hooks,
    keyword ones included); ``ValueError`` if one returns another input (the fused loop cannot feed it)."""
    args, kwargs = (inp,), {}
    for hook_id, hook in list(module._forward_pre_hooks.items()):
        if hook_id in module._forward_pre_hooks_with_kwargs:
            result = hook(module, args, kwargs)
            changed = result is not None and not (isinstance(result, tuple) and len(result) == 2
                                                  and _same_input(result[0], inp) and not result[1])
        else:
            result = hook(module, args)
            changed = result is not None and not _same_input(result, inp)
        if changed:
            raise ValueError(f"{layer}: the forward pre-hook {hook!r} of the recurrent nn.Linear changes the module's "
                             "input, which the fused loop cannot apply (it reads the weight, it does not call the "
                             "module): use backend='reference' (the per-step loop calls the module at every step)")


def _same_input(result: object, inp: torch.Tensor) -> bool:
    """Whether a pre-hook's return value ``result`` is the input ``inp`` unchanged (itself, or a 1-tuple of it)."""
    return result is inp or (isinstance(result, tuple) and len(result) == 1 and result[0] is inp)


def zero_tie(*tensors: torch.Tensor) -> torch.Tensor:
    """A 0-d zero that depends on ``tensors``: added to a value the loop uses, it gives each of them a zero gradient
    (a real zero tensor) where the loop itself would leave it None (``T = 1``: nothing fed back, no trace read). It sums
    an empty slice of each: no pass over the values, and a NaN or inf among them does not leak into the sum.

    Example:
        >>> w = torch.full((2, 2), float("inf"), requires_grad=True)
        >>> tie = zero_tie(w)
        >>> tie.item(), torch.autograd.grad(tie, w)[0].tolist()
        (0.0, [[0.0, 0.0], [0.0, 0.0]])
    """
    return sum(t.reshape(-1)[:0].sum() for t in tensors)


def loop_weight(synapses: nn.Linear | None, x: torch.Tensor, layer: str, *, fused: bool,
                tie_also: tuple[torch.Tensor, ...] = ()) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """What a recurrent layer's time loop over ``x`` takes from its synapses (``None``: a feed-forward layer):
    ``(weight, tie)``.

    ``weight``: :func:`synapse_weight` (its pre-hooks run, the hooks it cannot run named in a warning) for the fused
    loop (``fused=True``), or for the per-step loop at ``T < 2``, where it never calls the module; else None (the
    per-step loop calls the module itself). ``tie``: at ``T < 2`` while a gradient is recorded, the
    :func:`zero_tie` of that weight and of ``tie_also`` (tensors the loop leaves without a gradient there), to add to
    a value the loop uses; else None.

    Example:
        >>> lin = torch.nn.Linear(3, 3, bias=False)
        >>> weight, tie = loop_weight(lin, torch.zeros(1, 2, 3), "RecurrentLIF", fused=True)
        >>> weight is lin.weight, tie.item()
        (True, 0.0)
        >>> loop_weight(lin, torch.zeros(5, 2, 3), "RecurrentLIF", fused=False)
        (None, None)
    """
    short = x.shape[0] < 2
    if synapses is not None and fused:
        check_fusable(synapses, layer)
    weight = synapse_weight(synapses, x, layer, fused=fused) if synapses is not None and (fused or short) else None
    tied = [t for t in (weight, *tie_also) if t is not None]
    tie = zero_tie(*tied) if short and tied and torch.is_grad_enabled() else None
    return weight, tie


def recurrent_current(synapses: nn.Linear, o: torch.Tensor, work: torch.dtype) -> torch.Tensor:
    """``W_rec @ o`` for the transmitted spikes ``o`` of one step, as ``[B, ..., N]``, computed in the compute dtype
    ``work``: a time-major call of ``synapses`` (``[1, B, ..., N]``; its hooks see every step), or, for a
    half-precision weight, the product with the weight cast to ``work`` (float32, as the fused paths compute it). The
    SynOps counter counts these synapses from the layer's output, not from these calls. A module with its own forward
    and a half-precision weight is called on the spikes in its weight's dtype (its own arithmetic), the result taken
    to ``work``; a bias is added in ``work``."""
    if synapses.weight.dtype != work:  # (a hook-computed weight recomputed first: synapse_weight)
        if type(synapses).forward is not nn.Linear.forward:
            return synapses(o.unsqueeze(0).to(synapses.weight.dtype))[0].to(work)
        bias = None if synapses.bias is None else synapses.bias.to(work)
        return F.linear(o.to(work), synapse_weight(synapses, o.unsqueeze(0), fused=False).to(work), bias)
    return synapses(o.unsqueeze(0).to(work))[0]


class RecurrentLIF(CheckedSynapsesMixin, LIF):
    r"""LIF neurons with all-to-all recurrent synapses: ``h[t] = beta * v[t-1] + x[t] + W_rec @ o[t-1]``.

    The standard recurrent SNN of the SHD / SSC benchmarks (Cramer et al. 2020): a layer of ``n_neurons`` LIF
    neurons whose transmitted spikes ``o[t-1]`` come back through the recurrent weight ``W_rec``
    (``self.recurrent.weight``, ``[n_neurons, n_neurons]``, no bias). Spiking, ``max_spikes``, the reset, the
    noise and the spike masking follow :class:`~snnlab.LIF` exactly (see :mod:`snnlab.core.recurrent`); with
    ``W_rec = 0`` it fires the spikes of an ``LIF`` with the same options and seed. It is an ``LIF``
    (subclass), so a :class:`~snnlab.Monitor`, :func:`snnlab.metrics.evaluate` and the trainer treat it as one;
    ``last_membrane`` holds the pre-reset membrane ``h`` while a Monitor watches it.

    Options are those of :class:`~snnlab.LIF` (keyword-only here), with:

    - ``n_neurons`` (required): the layer width; the input is ``[T, B, n_neurons]`` (extra dimensions between
      batch and neurons act as more batch). ``tau_mem`` and ``threshold`` are per neuron (``[n_neurons]``),
      learnable with ``learn_tau`` / ``learn_threshold``.
    - ``recurrent_init``: ``"uniform"`` (default) draws ``W_rec ~ U(-1/sqrt(N), 1/sqrt(N))`` (``nn.Linear``'s
      own scale): zero mean, so the feedback neither drives runaway excitation nor silences the layer; its
      spectral radius is about ``1/sqrt(3) = 0.58`` (contracting), and ``k`` spikes move a neuron by about
      ``sqrt(k/(3N))``, a fraction of a threshold of 1 at typical rates. ``"orthogonal"``: a random orthogonal
      matrix (``||W_rec o|| = ||o||``, all eigenvalues on the unit circle: stronger, norm-preserving feedback).
      ``"zeros"``: start as a feed-forward ``LIF``. The draws use torch's global RNG, as ``nn.Linear``'s do
      (``seed`` seeds the noise and masks only).
    - ``backend``: ``"auto"`` or ``"torch"``: the fused PyTorch Function with a hand-written backward
      (:mod:`snnlab.kernels.recurrent_lif`); ``"reference"``: the per-step autograd loop it is tested against
      (slow: several autograd nodes and a call of ``self.recurrent`` per step). ``"cpu"`` and ``"triton"`` (the
      feed-forward LIF's fused kernels, which cannot hold the recurrence) raise a ``ValueError``.

    - ``self.recurrent`` may be replaced (``layer.recurrent = module``) by another ``nn.Linear``
      ``[n_neurons, n_neurons]``; anything else is a ``TypeError`` at the assignment. The fused loop reads its weight
      and never calls it, so it runs only a bias-free ``nn.Linear`` whose forward is ``nn.Linear.forward`` (pruned,
      weight-normed or parametrized ones included) and raises a ``ValueError`` for a bias or a subclass with its own
      forward (a sign constraint, say): ``backend="reference"`` runs those, calling the module at every step.
    - :meth:`reset_parameters` restores the time constant and threshold as constructed and draws ``W_rec`` again
      with the constructed ``recurrent_init`` (the recurrent ``nn.Linear``'s own ``reset_parameters`` draws that
      init too), so a model built on the meta device, then ``to_empty`` and ``reset_parameters()`` of every module,
      equals a fresh construction from the same torch seed (``"uniform"``, ``"zeros"``; an ``"orthogonal"`` weight is
      drawn as at construction, from another point of the RNG stream, since the construction's ``nn.Linear`` drew its
      default first, and the modules reset after it draw from other points too).

    Float16 / bfloat16 input is computed in float32, as by ``LIF``, and so is the recurrent current (both paths cast
    a half-precision recurrent weight to float32). The
    SynOps counter of :mod:`snnlab.metrics` counts the recurrent synapses from the layer's output (the spikes of
    steps ``0..T-2`` each reach ``n_neurons`` synapses) as the row ``"<layer>.recurrent"``.

    Returns the transmitted spikes ``o`` ``[T, B, n_neurons]`` (0/1, in the input's floating dtype).

    Example:
        >>> import torch, snnlab as sl
        >>> rnn = sl.RecurrentLIF(8, tau_mem=20.0, threshold=0.5)
        >>> net = sl.Sequential(torch.nn.Linear(4, 8), rnn, torch.nn.Linear(8, 2), sl.LI())
        >>> net(torch.rand(30, 3, 4)).shape
        torch.Size([30, 3, 2])
        >>> rnn.recurrent.weight.shape
        torch.Size([8, 8])
        >>> with torch.no_grad():    # W_rec = 0: a plain LIF
        ...     _ = rnn.recurrent.weight.zero_()
        >>> x = torch.rand(30, 3, 8)
        >>> torch.equal(rnn(x), sl.LIF(tau_mem=20.0, threshold=0.5, n_neurons=8, backend="torch")(x))
        True
    """

    _SYNAPSES_LAYER = "RecurrentLIF"  # (layer.recurrent = m is checked by check_synapses)
    # (layer.carry_state = True: a ValueError with this reason)
    _CARRY_REFUSAL = ("a call's first step also takes the previous step's spikes through W_rec, state that a carried "
                      "membrane cannot hold; feed the layer whole sequences")

    def __init__(self, n_neurons: int, *, tau_mem: float | None = None, threshold: float = 1.0,
                 reset: str = "subtract", beta: float | None = None, detach_reset: bool = False,
                 max_spikes: int | None = None, surrogate: str | sg.Surrogate = "atan", learn_threshold: bool = False,
                 learn_tau: bool = False, noise: str | None = None, noise_scale: float = 0.3, noisy_eval: bool = False,
                 mask_p: float = 0.0, mask_at_inference: bool = False, seed: int | None = None,
                 recurrent_init: str = "uniform", backend: str = "auto") -> None:
        if not is_integer(n_neurons) or n_neurons < 1:
            raise ValueError(f"RecurrentLIF: n_neurons must be a positive int (the layer width), got "
                             f"{type(n_neurons).__name__} {n_neurons!r}")
        if backend in ("cpu", "triton"):
            raise ValueError(f"RecurrentLIF: backend={backend!r} is a fused LIF kernel, which cannot hold the "
                             "recurrence (each step needs the previous step's spikes); the recurrent layer runs "
                             "only the PyTorch loop: use backend='auto' or 'torch' (or 'reference', the autograd loop)")
        check_choice(backend, "backend", _BACKENDS, "RecurrentLIF")
        check_choice(recurrent_init, "recurrent_init", RECURRENT_INITS, "RecurrentLIF")
        try:
            super().__init__(tau_mem, threshold, reset, beta=beta, detach_reset=detach_reset, max_spikes=max_spikes,
                             surrogate=surrogate, learn_threshold=learn_threshold, learn_tau=learn_tau,
                             n_neurons=int(n_neurons), noise=noise, noise_scale=noise_scale, noisy_eval=noisy_eval,
                             mask_p=mask_p, mask_at_inference=mask_at_inference, seed=seed, backend="torch")
        except (ValueError, TypeError) as exc:
            raise _renamed(exc) from None
        self.backend = backend
        self.recurrent_init = recurrent_init
        self.recurrent = build_synapses(self.n_neurons, recurrent_init, "RecurrentLIF")
        self.reset_recurrent(recurrent_init)

    def reset_parameters(self) -> None:
        """Put the time constant and threshold back to their constructed values (:meth:`snnlab.LIF.reset_parameters`)
        and draw the recurrent weight again by :meth:`reset_recurrent` with the constructed ``recurrent_init`` (torch's
        global RNG, as ``nn.Linear``'s). For a model built on the meta device, then ``to_empty``."""
        super().reset_parameters()
        self.reset_recurrent(self._constructed_value("recurrent_init"))

    def reset_recurrent(self, init: str = "uniform") -> None:
        """(Re)initialise the recurrent weight: ``"uniform"``, ``"orthogonal"`` or ``"zeros"`` (see the class), in the
        parameter it is computed from when pruned or reparametrised (``weight_orig``, ``weight_v`` / ``weight_g``, a
        parametrization's originals: :func:`reset_synapse_weight`; ``ValueError`` where it cannot be done)."""
        reset_synapse_weight(self.recurrent, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self._check_input(x, finite=False)  # checked on the final membrane below (cheaper), as LIF does
        if self.backend not in _BACKENDS:  # (set after construction)
            raise ValueError(f"RecurrentLIF: backend={self.backend!r} cannot run the recurrence; the recurrent "
                             "layer runs only the PyTorch loop: use backend='auto' or 'torch' (or 'reference')")
        noise_seed, mask_seed = self._draw_seeds(x)  # LIF's draws: the same seeds as an LIF
        work = compute_dtype(x)
        beta = self.beta()
        reference = self.backend == "reference"
        weight, tie = loop_weight(self.recurrent, x, "RecurrentLIF", fused=not reference)
        params = (beta.to(device=x.device, dtype=work), self.threshold.to(device=x.device, dtype=work))
        if tie is not None:  # T < 2, nothing fed back: a zero gradient for W_rec, not None
            params = (params[0] + tie.to(work), params[1])
        if reference:
            out, membrane, last = self._reference_run(x.to(work), *params, noise_seed, mask_seed)
        else:
            out, membrane = self._fused_run(x, weight, *params, noise_seed, mask_seed)
            last = membrane[-1:]
        self._check_final_membrane(x, last, *self._learned(beta),
                                   ("recurrent weight", self.recurrent.weight if weight is None else weight))
        self.last_membrane = membrane.detach().to(x.dtype) if self.record and membrane is not None else None
        return out.to(x.dtype)

    def _fused_run(self, x: torch.Tensor, weight: torch.Tensor, beta: torch.Tensor, thr: torch.Tensor,
                   noise_seed: int | None, mask_seed: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """:func:`~snnlab.kernels.recurrent_lif.recurrent_lif` over ``x`` with the recurrent ``weight`` (from
        :func:`synapse_weight`): ``(o, membrane h)`` in ``x``'s dtype (``h`` of the last step only when not recording
        and no gradient is recorded)."""
        return recurrent_lif(x, weight, beta, thr, reset=self.reset, detach_reset=self.detach_reset,
                             max_spikes=spike_cap_for_call(type(self).__name__, self.max_spikes, x.shape[0]),
                             surrogate=self.surrogate.name,
                             surrogate_param=self.surrogate.param, noise=self.noise, noise_scale=self.noise_scale,
                             seed=noise_seed or 0, sample=noise_seed is not None,
                             mask_p=self.mask_p if mask_seed is not None else 0.0,
                             mask_seed=mask_seed or 0, keep_membrane=self.record)

    def _reference_run(self, x: torch.Tensor, beta: torch.Tensor, thr: torch.Tensor, noise_seed: int | None,
                       mask_seed: int | None) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """The reference: the time loop over ``x`` (in its compute dtype) in plain autograd, ``W_rec @ o`` by
        :func:`recurrent_current` per step (``backend="reference"``): ``(o [T, ...], membrane h [T, ...] or None unless
        recording, h[-1:] for the final check; for ``T < 2``, where the module is never called, :meth:`forward` ties
        the weight to ``beta`` for its zero gradient)``."""
        run = lif_step_loop(self, x, beta, thr, noise_seed, mask_seed, feedback=lambda o: recurrent_current(self.recurrent, o, x.dtype))
        return run.out, run.membrane, run.last

    def extra_repr(self) -> str:
        parts = [p for p in super().extra_repr().split(", ") if not p.startswith("n_neurons=")]
        init = getattr(self, "recurrent_init", "uniform")  # (a layer pickled before it was kept: the default)
        return ", ".join([f"n_neurons={self.n_neurons}"] + parts
                         + ([f"recurrent_init={init!r}"] if init != "uniform" else []))
