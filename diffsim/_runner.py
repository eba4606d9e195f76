"""The runner shared by :func:`diffsim.train` and :func:`diffsim.fit`: many pure steps per
compiled call, metrics recorded in a :class:`History`, evaluations and checkpoints between
calls, a NaN stopped with the last finite state, warnings for spikes and collapses, and
SIGINT/SIGTERM turned into a clean stop at the next call boundary."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils

from ._env import non_physical_parameters
from ._errors import DiffsimError, runtime_errors_as_diffsim_errors
from ._state import TrainState
from ._timing import Stopwatch


class _Stopped:
    """What a stopped run carries: the state reached, its metrics, and its model."""

    state: TrainState
    history: History
    env: Any
    controller: Any

    def _carry(self, state: TrainState, history: History, env: Any, controller: Any) -> None:
        self.state, self.history, self.env, self.controller = state, history, env, controller


class TrainingDiverged(DiffsimError, _Stopped):
    """The loss or gradient became NaN or infinite. Nothing is lost: the attributes hold
    the last finite state of the run.

    Attributes:
        state: the last finite :class:`TrainState`.
        history: the metrics up to there.
        env, controller: the model of ``state`` (for :func:`diffsim.train`: the ones it
            would have returned, the best evaluated with ``keep_best``); ``None`` for
            :func:`diffsim.fit`, whose model is ``state.model``.

    Example:
        ```python
        import jax.random as jr
        import diffsim

        env = diffsim.envs.Pendulum()
        try:
            env, policy, history = diffsim.train(
                env, diffsim.MLPPolicy.for_env(env, key=jr.key(0)), diffsim.adam_cosine(1e-2, 5),
                key=jr.key(1), iterations=5, batch_size=8, window=20, progress=False,
            )
        except diffsim.TrainingDiverged as error:   # a NaN loss or gradient
            policy, history = error.controller, error.history   # the last finite controller
        ```
    """

    def __init__(
        self,
        message: str,
        *,
        state: TrainState,
        history: History,
        env: Any = None,
        controller: Any = None,
    ):
        super().__init__(message)
        self._carry(state, history, env, controller)


class TrainingInterrupted(KeyboardInterrupt, _Stopped):
    """Training stopped on SIGINT (Ctrl-C, a notebook's interrupt) or SIGTERM, at the end
    of the compiled call in progress, after saving its work.

    Attributes:
        state: the :class:`TrainState` reached.
        history: the metrics up to there.
        signal_number: the signal received.
        checkpoint: the file the work was saved to (``None`` without one).
        env, controller: the model reached (for :func:`diffsim.train`; ``None`` for
            :func:`diffsim.fit`, whose model is ``state.model``).

    Example:
        ```python
        import diffsim

        def resume_point(error: diffsim.TrainingInterrupted):
            # what `except diffsim.TrainingInterrupted as error:` around diffsim.train has:
            # the model when the signal came, the updates done, the checkpoint written
            return error.controller, error.history.iteration[-1], error.checkpoint
        ```
    """

    signal_number: int
    checkpoint: str | None

    def __init__(
        self,
        message: str,
        *,
        state: TrainState,
        history: History,
        signal_number: int,
        checkpoint: str | None = None,
        env: Any = None,
        controller: Any = None,
    ):
        super().__init__(message)
        self._carry(state, history, env, controller)
        self.signal_number, self.checkpoint = signal_number, checkpoint


class TrainingWarning(UserWarning):
    """Training looks unhealthy (exploding gradients, a loss spike, an evaluation collapse)
    but goes on; the same text is recorded in ``History.warnings``.

    Example:
        ```python
        import warnings
        import diffsim

        with warnings.catch_warnings():
            warnings.simplefilter("error", diffsim.TrainingWarning)   # stop at the first one
            ...   # diffsim.train(...)
        ```
    """


@dataclasses.dataclass
class History:
    """Metrics recorded while fitting (plain lists, JSON-serialisable).

    ``env_steps`` counts every simulated control step of every parallel episode
    (evaluation excluded; empty for fits that simulate no env). ``compile_seconds`` is
    the time (s) JAX spent tracing and compiling the training step, ``train_seconds`` the
    wall-clock (s) of the run, compilation and evaluations included; both add up over the
    parts of a resumed run, and a checkpoint holds them as of its writing. ``warnings`` lists
    ``{"iteration", "kind", "message"}`` for each :class:`TrainingWarning`.

    Example:
        ```python
        import jax.random as jr
        import diffsim
        from diffsim import MLPPolicy

        env = diffsim.envs.Pendulum()
        env, policy, history = diffsim.train(
            env, MLPPolicy.for_env(env, key=jr.key(0)), diffsim.adam_cosine(1e-2, 10),
            key=jr.key(1), iterations=10, batch_size=8, window=20, progress=False,
        )
        history.loss[-1], history.total_env_steps              # 10 updates x 8 episodes x 20 steps
        history.compile_seconds, history.train_seconds         # s
        ```
    """

    iteration: list[int] = dataclasses.field(default_factory=list)
    env_steps: list[int] = dataclasses.field(default_factory=list)
    loss: list[float] = dataclasses.field(default_factory=list)
    grad_norm: list[float] = dataclasses.field(default_factory=list)
    eval_iteration: list[int] = dataclasses.field(default_factory=list)
    eval_env_steps: list[int] = dataclasses.field(default_factory=list)
    eval_return: list[float] = dataclasses.field(default_factory=list)
    eval_seconds: list[float] = dataclasses.field(default_factory=list)
    warnings: list[dict] = dataclasses.field(default_factory=list)
    compile_seconds: float = 0.0
    train_seconds: float = 0.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> History:
        return cls(**data)

    @property
    def total_env_steps(self) -> int:
        return self.env_steps[-1] if self.env_steps else 0

    def warn(self, iteration: int, kind: str, message: str) -> None:
        """Record a :class:`TrainingWarning` and emit it."""
        self.warnings.append({"iteration": iteration, "kind": kind, "message": message})
        warnings.warn(f"iteration {iteration}: {message}", TrainingWarning, stacklevel=3)


GRADIENT_EXPLOSION = 100.0
"""A gradient norm this many times the 90th percentile of the run so far is reported: as a
policy converges its gradients shrink by orders of magnitude while chaotic windows (a
swing-up's) still give occasional large ones, so only a jump beyond the run's own upper
tail counts."""
LOSS_SPIKE = 100.0
"""A loss above the run's median by this many times its interquartile range (or the
median's magnitude, whichever is larger) is reported: episodic losses are heavy-tailed (a
cart-pole window that falls costs 30x the median), so only a jump far beyond that counts."""
EVAL_COLLAPSE = 0.5
"""An evaluation below the best by more than this fraction of the best's magnitude (plus
one) is reported as a collapse."""
_WARM_UP = 100
"""Iterations before gradient and loss statistics are trusted: early in training gradients
may grow by orders of magnitude as a policy starts to act (the cart-pole swing-up's rise
200-fold between updates 20 and 40 as it learns to swing), which is learning, not an
explosion."""


@eqx.filter_jit
def _scan_steps(step, state, stop, length):
    """``length`` steps of ``step`` in one compiled scan; steps at or past ``stop`` and
    steps with a non-finite loss or gradient leave the state unchanged."""

    def take(state):  # the metrics every step reports (a step may report more)
        state, metrics = step(state)
        return state, {"loss": metrics["loss"], "grad_norm": metrics["grad_norm"]}

    def skip(state):
        return state, {"loss": jnp.zeros((), float), "grad_norm": jnp.zeros((), float)}

    def body(state, _):
        active = state.iteration < stop
        new, metrics = jax.lax.cond(active, take, skip, state)
        finite = jnp.isfinite(metrics["loss"]) & jnp.isfinite(metrics["grad_norm"])
        state = jax.lax.cond(active & finite, lambda: new, lambda: state)
        return state, (metrics, active, finite)

    return jax.lax.scan(body, state, None, length=length)


def chunk_length(until: int, *periods: int, longest: int = 50) -> int:
    """Steps per compiled call: the largest divisor of every nonzero period (so that
    evaluations and checkpoints fall on call boundaries) of at most ``longest``, else
    ``min(until, longest)``. It depends on the settings only, not on where a run starts,
    so a resumed run makes exactly the calls of the uninterrupted one."""
    periods = tuple(p for p in periods if p)
    if periods:
        common = math.gcd(*periods)
        return max(d for d in range(1, min(common, longest) + 1) if common % d == 0)
    return min(until, longest)


@contextlib.contextmanager
def _signals_caught() -> Iterator[list[int]]:
    """Within the block, SIGINT and SIGTERM are recorded (in the yielded list) instead of
    raising, so the runner can stop cleanly; outside the main thread nothing changes."""
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return
    previous = {}
    for number in (signal.SIGINT, signal.SIGTERM):
        previous[number] = signal.signal(number, lambda n, frame: caught.append(n))
    try:
        yield caught
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def _agreed_signal(caught: list[int]) -> int:
    """The signal that stops the run after this compiled call (0: none): this process's,
    and in a run of several processes any process's (one collective), so that a signal
    that reached one process stops them all at the same update, each saving its part of
    the checkpoint."""
    number = caught[0] if caught else 0
    if jax.process_count() == 1:
        return number
    return int(np.max(multihost_utils.process_allgather(np.asarray(number, np.int32))))


def run(
    step: Callable[[TrainState], tuple[TrainState, dict]],
    state: TrainState,
    until: int,
    *,
    history: History,
    every: int = 0,
    on_every: Callable[[TrainState], dict] | None = None,
    checkpoint_every: int = 0,
    on_checkpoint: Callable[[TrainState], str | None] | None = None,
    env_steps_per_iteration: int = 0,
    progress: bool = True,
    description: str = "training",
    callback: Callable[[int, dict], None] | None = None,
    stopped: Callable[[type, str, TrainState, dict], BaseException] | None = None,
) -> TrainState:
    """Step ``state`` until its iteration reaches ``until``, many steps per compiled call,
    recording metrics in ``history``.

    Every ``every`` steps (and after the last) ``on_every(state)`` runs (an evaluation),
    its metrics joining the progress bar and the callback; then, and every
    ``checkpoint_every`` steps and on SIGINT/SIGTERM, ``on_checkpoint(state)`` saves
    (returning the path). ``callback(iteration, metrics)`` is called for every step, after
    the compiled call that contains it. A non-finite loss or gradient raises
    :class:`TrainingDiverged`, a signal :class:`TrainingInterrupted`, both built by
    ``stopped(cls, message, state, extra)`` when given (to attach the model's parts).
    """
    chunk = chunk_length(until, every, checkpoint_every)
    start = int(state.iteration)
    bar = _progress_bar(until, start, description) if progress else None
    started, watch = time.perf_counter(), Stopwatch()
    before = history.train_seconds, history.compile_seconds  # of the parts resumed from

    def clock() -> None:  # the times so far, before a checkpoint records them
        history.train_seconds = before[0] + time.perf_counter() - started
        history.compile_seconds = before[1] + watch.compile_seconds

    def checkpointed(state: TrainState) -> str | None:  # the path written, if any
        if on_checkpoint is None:
            return None
        clock()
        return on_checkpoint(state)

    build = stopped or (lambda cls, message, state, extra: cls(message, state=state, **extra))
    try:
        with _signals_caught() as caught:
            while int(state.iteration) < until:
                with watch, runtime_errors_as_diffsim_errors():
                    state, (metrics, active, finite) = _scan_steps(
                        step, state, jnp.asarray(until, jnp.int32), chunk
                    )
                    metrics, active, finite = jax.device_get((metrics, active, finite))
                taken = _record(history, metrics, active & finite, env_steps_per_iteration)
                if not finite[active].all():
                    message = _divergence_message(metrics, taken, state)
                    raise build(TrainingDiverged, message, state, {"history": history})
                iteration = int(state.iteration)
                _check_health(history, taken)
                due = (every and iteration % every == 0) or iteration == until
                extra = on_every(state) if on_every is not None and due else {}
                saving = due or (checkpoint_every and iteration % checkpoint_every == 0)
                path = checkpointed(state) if saving else None
                if callback is not None:
                    for i in range(iteration - taken + 1, iteration + 1):
                        losses = {"loss": history.loss[i - 1]}
                        callback(i, losses | extra if i == iteration else losses)
                if bar is not None:
                    bar.update(taken)
                    shown = {"loss": history.loss[-1]} | extra
                    bar.set_postfix({k: f"{v:.4g}" for k, v in shown.items()})
                number = _agreed_signal(caught)
                if number:
                    path = path or checkpointed(state)
                    name = signal.Signals(number).name
                    saved = f"; saved to {path}" if path else ""
                    message = f"{name} at iteration {iteration}{saved}"
                    details = {"history": history, "signal_number": number, "checkpoint": path}
                    raise build(TrainingInterrupted, message, state, details)
    finally:
        if bar is not None:
            bar.close()
        clock()
    return state


def _record(history: History, metrics: dict, taken: np.ndarray, per_iteration: int) -> int:
    """Append the metrics of the steps taken; returns how many."""
    for loss, grad_norm in zip(metrics["loss"][taken], metrics["grad_norm"][taken], strict=True):
        history.iteration.append(len(history.iteration) + 1)
        if per_iteration:
            history.env_steps.append(history.iteration[-1] * per_iteration)
        history.loss.append(float(loss))
        history.grad_norm.append(float(grad_norm))
    return int(taken.sum())


def left_range(model: Any) -> str | None:
    """What to say of the trained env parameters in ``model`` that left their physical
    range, ``None`` if none did."""
    bad = non_physical_parameters(model)
    if not bad:
        return None
    return (
        f"trained env parameters left their physical range ({', '.join(bad)}; each must be "
        "positive and finite); try a smaller learning rate or a parameterisation that keeps "
        "them positive"
    )


def _divergence_message(metrics: dict, taken: int, state: TrainState) -> str:
    loss, grad_norm = metrics["loss"][taken], metrics["grad_norm"][taken]
    what = "loss" if not np.isfinite(loss) else "gradient"
    where = (
        f"non-finite {what} at iteration {int(state.iteration) + 1} (loss {loss}, gradient "
        f"norm {grad_norm})"
    )
    left = left_range(state.model)
    if left:
        return f"{where}: {left}"
    if int(state.iteration) == 0:
        return (
            f"{where}: the first update; check the env with diffsim.testing.check_env(env) "
            "(initial states, dynamics, costs), then try a smaller learning rate"
        )
    return f"{where}; try a smaller learning rate, gradient clipping or a shorter window"


def _check_health(history: History, taken: int) -> None:
    """Warn (once per call) about exploding gradients or a loss spike among the last
    ``taken`` iterations, against the statistics of the run before them."""
    before = len(history.loss) - taken
    if before < _WARM_UP:
        return
    typical_gradient = float(np.percentile(history.grad_norm[:before], 90))
    low, median, high = np.percentile(history.loss[:before], [25, 50, 75])
    for i in range(before, len(history.loss)):
        gradient, loss = history.grad_norm[i], history.loss[i]
        if gradient > GRADIENT_EXPLOSION * max(typical_gradient, 1e-12):
            history.warn(
                i + 1,
                "gradient",
                f"gradient norm {gradient:.3g} is {gradient / typical_gradient:.0f}x the run's "
                "90th percentile: exploding gradients (try clipping, a smaller learning rate or a "
                "shorter window)",
            )
            return
        if loss > median + LOSS_SPIKE * max(high - low, abs(median), 1e-12):
            history.warn(
                i + 1,
                "loss",
                f"loss spiked to {loss:.4g} (the run's median {median:.4g}, interquartile range "
                f"{high - low:.3g})",
            )
            return


def check_evaluation(history: History, iteration: int) -> None:
    """Warn when the latest evaluation return fell far below the best so far."""
    if len(history.eval_return) < 2:
        return
    best, latest = max(history.eval_return[:-1]), history.eval_return[-1]
    if latest < best - EVAL_COLLAPSE * abs(best) - 1.0:
        history.warn(
            iteration,
            "evaluation",
            f"evaluation return collapsed to {latest:.4g} from a best of {best:.4g} "
            "(keep_best=True returns the best controller)",
        )


def _progress_bar(total: int, initial: int, description: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=description, unit="it", dynamic_ncols=True)
