"""Gradient-based fitting shared by every optimisation in diffsim: one pure optimiser step
on a :class:`TrainState`, and one runner that scans many steps per compiled call.

Control training (:class:`diffsim.Trainer`, :func:`diffsim.train`) and :func:`fit` (any
loss of any model: the trebuchet's aimer, a parameter fit) are both built from these.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray, PyTree

from ._errors import DiffsimError

Loss = Callable[[PyTree, PyTree, PRNGKeyArray], tuple[Float[Array, ""], PyTree]]
"""``loss(model, carry, key) -> (value, next_carry)``: a scalar to minimise, and what the
next step starts from (e.g. episodes in progress; ``None`` when nothing is carried)."""


class TrainState(eqx.Module):
    """Everything that changes while a model is fitted, as one pytree of arrays, so that
    ``jax.jit``, ``jax.lax.scan`` over steps and ``jax.vmap`` over seeds all apply.

    Attributes:
        params: the arrays being optimised (the model partitioned by what is trainable).
        frozen: the model's other arrays.
        static: the model's non-array part (functions, static fields).
        opt_state: the optax state.
        carry: what the loss carries from one step to the next (:class:`diffsim.Trainer`:
            the episodes in progress, states of shape ``(batch, n)`` and step counts).
        key: the key of the next step.
        iteration: steps taken.
    """

    params: PyTree
    frozen: PyTree
    static: PyTree = eqx.field(static=True)
    opt_state: PyTree
    carry: PyTree
    key: PRNGKeyArray
    iteration: Int[Array, ""]

    @property
    def model(self) -> PyTree:
        """The model with its current parameters."""
        return eqx.combine(self.params, self.frozen, self.static)


def init_state(
    model: PyTree,
    trainable: PyTree,
    optimiser: optax.GradientTransformation,
    carry: PyTree,
    key: PRNGKeyArray,
) -> TrainState:
    """A :class:`TrainState` at iteration 0; ``trainable`` is a boolean mask shaped like
    ``model`` (only inexact arrays under ``True`` are optimised)."""
    mask = jax.tree_util.tree_map(
        lambda leaf, selected: selected and eqx.is_inexact_array(leaf), model, trainable
    )
    params, rest = eqx.partition(model, mask)
    frozen, static = eqx.partition(rest, eqx.is_array)
    return TrainState(
        params=params,
        frozen=frozen,
        static=static,
        opt_state=optimiser.init(params),
        carry=carry,
        key=key,
        iteration=jnp.zeros((), jnp.int32),
    )


def where_mask(model: PyTree, where: Callable[[PyTree], PyTree] | None) -> PyTree:
    """A boolean mask shaped like ``model``: ``True`` under the nodes ``where(model)``
    selects (as for ``eqx.tree_at``), everywhere when ``where`` is ``None``."""
    if where is None:
        return jax.tree_util.tree_map(lambda _: True, model)
    mask = jax.tree_util.tree_map(lambda _: False, model)
    return eqx.tree_at(
        where, mask, replace_fn=lambda node: jax.tree_util.tree_map(lambda _: True, node)
    )


def optimiser_step(
    loss: Loss, optimiser: optax.GradientTransformation, state: TrainState
) -> tuple[TrainState, dict[str, Float[Array, ""]]]:
    """One optimiser update of ``state.params`` on ``loss``; pure.

    Returns:
        The next state and the metrics ``{"loss", "grad_norm"}`` of this step, scalars
        of the default float type.
    """
    key, step_key = jr.split(state.key)

    def value(params):
        return loss(eqx.combine(params, state.frozen, state.static), state.carry, step_key)

    (loss_value, carry), grads = eqx.filter_value_and_grad(value, has_aux=True)(state.params)
    updates, opt_state = optimiser.update(grads, state.opt_state, state.params)
    state = dataclasses.replace(
        state,
        params=eqx.apply_updates(state.params, updates),
        opt_state=opt_state,
        carry=carry,
        key=key,
        iteration=state.iteration + 1,
    )
    metrics = {"loss": loss_value, "grad_norm": optax.tree.norm(grads)}
    return state, {name: jnp.asarray(value, float) for name, value in metrics.items()}


class TrainingDiverged(DiffsimError):
    """The loss or gradient became NaN or infinite. Nothing is lost: ``state`` is the last
    finite :class:`TrainState`, ``model`` its model (for :func:`diffsim.train`,
    ``controller`` and ``env`` too) and ``history`` the metrics up to there."""

    def __init__(self, message: str, *, state: TrainState, history: History, **model_parts):
        super().__init__(message)
        self.state, self.model, self.history = state, state.model, history
        for name, value in model_parts.items():
            setattr(self, name, value)


@dataclasses.dataclass
class History:
    """Metrics recorded while fitting (plain lists, JSON-serialisable).

    ``env_steps`` counts every simulated control step of every parallel episode
    (evaluation excluded; empty for fits that simulate no env). ``compile_seconds`` is
    the time JAX spent tracing and compiling the training step, ``train_seconds`` the
    wall-clock of the whole run, compilation and evaluations included.
    """

    iteration: list[int] = dataclasses.field(default_factory=list)
    env_steps: list[int] = dataclasses.field(default_factory=list)
    loss: list[float] = dataclasses.field(default_factory=list)
    grad_norm: list[float] = dataclasses.field(default_factory=list)
    eval_iteration: list[int] = dataclasses.field(default_factory=list)
    eval_env_steps: list[int] = dataclasses.field(default_factory=list)
    eval_return: list[float] = dataclasses.field(default_factory=list)
    eval_seconds: list[float] = dataclasses.field(default_factory=list)
    compile_seconds: float = 0.0
    train_seconds: float = 0.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def total_env_steps(self) -> int:
        return self.env_steps[-1] if self.env_steps else 0


_COMPILE_EVENTS = frozenset(
    {
        "/jax/core/compile/jaxpr_trace_duration",
        "/jax/core/compile/jaxpr_to_mlir_module_duration",
        "/jax/core/compile/backend_compile_duration",
    }
)
_compile_clock = [0.0]


def _count_compile_time(event: str, duration: float, **_: Any) -> None:
    if event in _COMPILE_EVENTS:
        _compile_clock[0] += duration


jax.monitoring.register_event_duration_secs_listener(_count_compile_time)


@eqx.filter_jit
def _scan_steps(step, state, stop, length):
    """``length`` steps of ``step`` in one compiled scan; steps at or past ``stop`` and
    steps with a non-finite loss or gradient leave the state unchanged."""

    def take(state):
        return step(state)

    def skip(state):
        return state, {"loss": jnp.zeros((), float), "grad_norm": jnp.zeros((), float)}

    def body(state, _):
        active = state.iteration < stop
        new, metrics = jax.lax.cond(active, take, skip, state)
        finite = jnp.isfinite(metrics["loss"]) & jnp.isfinite(metrics["grad_norm"])
        state = jax.lax.cond(active & finite, lambda: new, lambda: state)
        return state, (metrics, active, finite)

    return jax.lax.scan(body, state, None, length=length)


def _chunk_length(iterations: int, every: int, longest: int = 50) -> int:
    """Steps per compiled call: a divisor of ``every`` (so that evaluations fall on call
    boundaries) of at most ``longest``, or ``min(iterations, longest)``."""
    if every:
        return max(d for d in range(1, min(every, longest) + 1) if every % d == 0)
    return min(iterations, longest)


def run(
    step: Callable[[TrainState], tuple[TrainState, dict]],
    state: TrainState,
    iterations: int,
    *,
    history: History,
    every: int = 0,
    on_every: Callable[[TrainState], dict] | None = None,
    env_steps_per_iteration: int = 0,
    progress: bool = True,
    description: str = "training",
    callback: Callable[[int, dict], None] | None = None,
    diverged: Callable[[str, TrainState], Exception] | None = None,
) -> TrainState:
    """Take ``iterations`` steps from ``state``, many per compiled call, recording metrics
    in ``history``; every ``every`` steps (and after the last) call ``on_every(state)``,
    whose returned metrics join the progress bar and the callback.

    Raises the exception ``diverged(message, last_finite_state)`` builds (default
    :class:`TrainingDiverged`) at the first non-finite loss or gradient.
    """
    chunk = _chunk_length(iterations, every)
    stop = int(state.iteration) + iterations
    bar = _progress_bar(iterations, description) if progress else None
    started = time.perf_counter()
    try:
        while int(state.iteration) < stop:
            compile_started = _compile_clock[0]
            state, (metrics, active, finite) = _scan_steps(
                step, state, jnp.asarray(stop, jnp.int32), chunk
            )
            metrics, active, finite = jax.device_get((metrics, active, finite))
            history.compile_seconds += _compile_clock[0] - compile_started
            taken = _record(history, metrics, active & finite, env_steps_per_iteration)
            if not finite[active].all():
                raise _diverged(metrics, taken, state, history, diverged)
            iteration = int(state.iteration)
            due = (every and iteration % every == 0) or iteration == stop
            extra = on_every(state) if on_every is not None and due else {}
            if callback is not None:
                for i in range(iteration - taken + 1, iteration + 1):
                    losses = {"loss": history.loss[i - 1]}
                    callback(i, losses | extra if i == iteration else losses)
            if bar is not None:
                bar.update(taken)
                bar.set_postfix(
                    {k: f"{v:.4g}" for k, v in ({"loss": history.loss[-1]} | extra).items()}
                )
    finally:
        if bar is not None:
            bar.close()
    history.train_seconds = time.perf_counter() - started
    return state


def _record(history: History, metrics: dict, taken, env_steps_per_iteration: int) -> int:
    """Append the metrics of the steps taken; returns how many."""
    for loss, grad_norm in zip(metrics["loss"][taken], metrics["grad_norm"][taken], strict=True):
        history.iteration.append(len(history.iteration) + 1)
        if env_steps_per_iteration:
            history.env_steps.append(history.iteration[-1] * env_steps_per_iteration)
        history.loss.append(float(loss))
        history.grad_norm.append(float(grad_norm))
    return int(taken.sum())


def _diverged(metrics, taken, state, history, diverged) -> Exception:
    first = taken  # steps before the first non-finite one were taken
    loss, grad_norm = metrics["loss"][first], metrics["grad_norm"][first]
    what = "loss" if not jnp.isfinite(loss) else "gradient"
    message = (
        f"non-finite {what} at iteration {int(state.iteration) + 1} (loss {loss}, gradient "
        f"norm {grad_norm}); try a smaller learning rate, gradient clipping or a shorter window"
    )
    if diverged is None:
        return TrainingDiverged(message, state=state, history=history)
    return diverged(message, state)


def _progress_bar(total: int, description: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=description, unit="it", dynamic_ncols=True)


class _LossStep(eqx.Module):
    loss: Callable = eqx.field(static=True)
    optimiser: optax.GradientTransformation

    def __call__(self, state: TrainState) -> tuple[TrainState, dict]:
        return optimiser_step(lambda m, c, k: (self.loss(m, k), c), self.optimiser, state)


def fit(
    loss: Callable[[PyTree, PRNGKeyArray], Float[Array, ""]],
    model: PyTree,
    optimiser: optax.GradientTransformation,
    *,
    key: PRNGKeyArray,
    iterations: int,
    where: Callable[[PyTree], PyTree] | None = None,
    progress: bool = True,
    description: str = "fitting",
    callback: Callable[[int, dict], None] | None = None,
) -> tuple[PyTree, History]:
    """Minimise ``loss(model, key)`` over the model's inexact arrays with ``optimiser``.

    Each iteration draws a fresh key (fresh data, for stochastic losses) and takes one
    optimiser step; many iterations run per compiled call. The same runner trains
    controllers (:func:`diffsim.train`).

    Args:
        loss: a scalar to minimise; ``key`` is this iteration's randomness.
        model: any pytree (an ``eqx.Module``, a tuple of arrays).
        optimiser: any optax transformation.
        key: the seed of the run.
        iterations: optimiser updates.
        where: selects the nodes to optimise, as for ``eqx.tree_at`` (default: every
            inexact array).
        progress: show a progress bar.
        callback: ``callback(iteration, {"loss": ...})`` after every iteration.

    Returns:
        ``(model, history)``.

    Raises:
        TrainingDiverged: at a non-finite loss or gradient, with the last finite model.

    Example: ``aimer, history = diffsim.fit(loss, aimer, optax.adam(1e-2), key=jr.key(0),
    iterations=1500)``.
    """
    if not isinstance(iterations, int) or iterations < 1:
        raise DiffsimError(f"iterations must be a positive integer, got {iterations!r}")
    state = init_state(model, where_mask(model, where), optimiser, None, key)
    history = History()
    state = run(
        _LossStep(loss, optimiser),
        state,
        iterations,
        history=history,
        progress=progress,
        description=description,
        callback=callback,
    )
    return state.model, history
