"""Training controllers (and env parameters) through simulated rollouts: a pure
:class:`Trainer` (``init``/``step``, optax-style) and the :func:`train` runner on top."""

from __future__ import annotations

import dataclasses
import functools
import os
import time
from collections.abc import Callable
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from . import _validate as validate
from ._checkpoint import (
    check_destination,
    check_metadata,
    load_checkpoint,
    read_metadata,
    save_checkpoint,
)
from ._env import AbstractEnv
from ._errors import DiffsimError
from ._evaluate import evaluate, start_states
from ._rollout import Controller, Trajectory, check_model, rollout
from ._runner import History, TrainingDiverged, check_evaluation, left_range, run
from ._sharding import Devices, as_mesh, check_divisible, replicate, shard_batch
from ._spaces import AbstractEstimator
from ._state import TrainState, init_state, optimiser_step, stop_gradient, where_mask
from ._stateful import AbstractStatefulController

Objective = Callable[[AbstractEnv, Trajectory], Float[Array, ""]]
"""``objective(env, trajectory) -> loss`` for one (window of an) episode."""


TRAINER_OPTIONS = (
    "batch_size",
    "window",
    "horizon",
    "carry_state",
    "trainable",
    "objective",
    "estimator",
    "devices",
)
"""The keyword arguments of :class:`Trainer` that :func:`train` passes through."""


def mean_step_cost(env: AbstractEnv, trajectory: Trajectory) -> Float[Array, ""]:
    """The default objective: the total cost of the window (running costs of the steps
    taken, plus the terminal cost where the episode ended) per control step.

    Args:
        env: the environment (unused by this objective; part of the objective signature).
        trajectory: a window of episodes, costs of shape ``(..., T)``.

    Returns:
        A scalar: cost per control step.
    """
    return trajectory.total_cost / trajectory.costs.shape[-1]


class Episodes(eqx.Module):
    """The episodes a :class:`Trainer` simulates in parallel, carried from one window to
    the next: states of shape ``(batch, n)`` and control steps taken, shape ``(batch,)``.

    Example:
        ```python
        import jax.random as jr
        import optax
        import diffsim
        from diffsim import MLPPolicy

        env = diffsim.envs.Pendulum()
        trainer = diffsim.Trainer(optax.adam(1e-2), batch_size=8, window=20)
        state = trainer.init(env, MLPPolicy.for_env(env, key=jr.key(0)), jr.key(1))
        state.carry.states.shape, state.carry.steps.shape   # (8, 2), (8,)
        ```
    """

    states: Float[Array, "batch n"]
    steps: Int[Array, " batch"]


class Trainer(eqx.Module):
    """The static configuration of training by backpropagation through time, like an
    optax transformation: it holds no arrays (so ``jax.jit(trainer.step)`` works), and the
    changing part, the env and controller among it, lives in a :class:`diffsim.TrainState`.

    Each ``step`` simulates ``batch_size`` episodes for a window of ``window`` control
    steps, differentiates ``objective`` through the whole window and applies one
    ``optimiser`` update. With ``window`` shorter than the episode, ``carry_state=True``
    starts the next window where the last one ended (gradient cut between windows,
    episodes reset when they end: truncated BPTT as in Brax APG / SHAC);
    ``carry_state=False`` starts every window from fresh initial states.

    Args:
        optimiser: any optax transformation (clipping and schedules come from optax).
        batch_size: episodes simulated in parallel.
        window: control steps per differentiated window (default: a whole episode). A
            window that does not divide the training episode runs past the env's
            ``episode_steps`` in an episode's last window: the episode ends there, as
            ``rollout(..., stop_at_episode_end=True)`` ends it (the later steps are
            simulated but not alive, not charged, and end nothing), and it starts afresh
            after the window.
        horizon: control steps after which a training episode is cut (at the end of the
            window that reaches them) and a fresh one starts (default: the env's
            ``episode_steps``; at most that). A cut is not a
            termination: no terminal cost is charged there (the env charges it at its own
            horizon) and :class:`diffsim.SHAC`'s critic values the state where it fell.
            More, shorter episodes from the same env steps: more starts to learn from
            where the start decides the most. Evaluation keeps the env's own episodes.
        carry_state: continue episodes across windows.
        trainable: ``"controller"``, ``"env"`` (all the env's inexact arrays: system
            identification), ``"both"``, or ``where(env, controller)`` returning the nodes
            to train, as for ``eqx.tree_at`` (e.g. ``lambda env, controller: env.g``).
        objective: loss of one trajectory window (default :func:`mean_step_cost`).
        estimator: differentiable estimator for discrete action spaces.
        devices: split the batch over these devices (data parallelism): ``jax.devices()``,
            a list of devices or a ``jax.sharding.Mesh``. The episodes and their keys are
            sharded along the batch axis, the model and optimiser state replicated, and
            XLA reduces the gradient across devices; the result is single-device training
            up to float summation order. ``batch_size`` must be a multiple of the device
            count. ``None`` (default): JAX's default device.

    Example::

        trainer = diffsim.Trainer(optax.adam(1e-2), batch_size=128, window=50)
        state = trainer.init(env, controller, jr.key(0))
        state, metrics = jax.jit(trainer.step)(state)       # or lax.scan over steps
        seeds = jax.vmap(trainer.init, in_axes=(None, None, 0))(env, controller, keys)
        seeds, metrics = jax.jit(jax.vmap(trainer.step))(seeds)     # N seeds, one program
        controller = trainer.controller(state)
    """

    optimiser: optax.GradientTransformation
    estimator: AbstractEstimator | None
    batch_size: int = eqx.field(static=True)
    window: int | None = eqx.field(static=True)
    horizon: int | None = eqx.field(static=True)
    carry_state: bool = eqx.field(static=True)
    trainable: str | Callable = eqx.field(static=True)
    objective: Objective = eqx.field(static=True)
    mesh: jax.sharding.Mesh | None = eqx.field(static=True)

    def __init__(
        self,
        optimiser: optax.GradientTransformation,
        *,
        batch_size: int = 64,
        window: int | None = None,
        horizon: int | None = None,
        carry_state: bool = True,
        trainable: Literal["controller", "env", "both"] | Callable = "controller",
        objective: Objective = mean_step_cost,
        estimator: AbstractEstimator | None = None,
        devices: Devices = None,
    ):
        validate.optimiser("optimiser", optimiser)
        if estimator is not None:
            validate.instance(
                "estimator", estimator, AbstractEstimator, "a diffsim.StraightThrough() or "
                "diffsim.GumbelSoftmax() (for discrete actions), or None"
            )
        if not callable(objective):
            raise DiffsimError(
                f"objective must be a function objective(env, trajectory) -> loss, got "
                f"{objective!r:.60}"
            )
        validate.positive_int("batch_size", batch_size)
        validate.optional_positive_int("window", window)
        validate.optional_positive_int("horizon", horizon)
        if not callable(trainable):
            validate.one_of("trainable", trainable, ("controller", "env", "both"))
        self.optimiser, self.estimator = optimiser, estimator
        self.batch_size, self.window, self.carry_state = batch_size, window, carry_state
        self.horizon = horizon
        self.trainable, self.objective = trainable, objective
        self.mesh = as_mesh(devices)
        check_divisible(self.mesh, batch_size, "batch_size")

    def init(
        self,
        env: AbstractEnv,
        controller: Controller | AbstractStatefulController,
        key: PRNGKeyArray,
    ) -> TrainState:
        """The state before the first step: the env and ``controller`` as the model,
        fresh episodes drawn from ``key``.

        Raises:
            DiffsimError: for an :class:`AbstractStatefulController` trained on windows
                shorter than an episode (its state would restart at every window), a
                ``horizon`` longer than the env's episode, or a ``window`` longer than a
                training episode.
        """
        check_model("Trainer.init", env, controller)
        if self.horizon_for(env) > env.episode_steps:
            raise DiffsimError(
                f"horizon={self.horizon} is longer than {type(env).__name__}'s episode of "
                f"{env.episode_steps} steps: training episodes can only be cut shorter"
            )
        if self.window_for(env) > self.horizon_for(env):
            raise DiffsimError(
                f"window={self.window} is longer than a training episode of "
                f"{type(env).__name__} ({self.horizon_for(env)} steps): a window is a part "
                "of an episode (window=None: whole episodes)"
            )
        if isinstance(controller, AbstractStatefulController) and (
            self.window_for(env) < self.horizon_for(env)
        ):
            raise DiffsimError(
                f"{type(controller).__name__} is a stateful controller: its state starts "
                f"afresh in every rollout, so it trains on whole episodes only (window=None), "
                f"not windows of {self.window} of {self.horizon_for(env)} steps"
            )
        validate.prng_key("key", key)
        episodes_key, key = jr.split(key)
        model = (env, controller)
        if callable(self.trainable):
            mask = where_mask(model, lambda m: self.trainable(*m))
        else:
            flags = {"controller": (False, True), "env": (True, False), "both": (True, True)}
            mask = tuple(
                jax.tree_util.tree_map(lambda _, flag=flag: flag, part)
                for flag, part in zip(flags[self.trainable], model, strict=True)
            )
        state = init_state(model, mask, self.optimiser, self._fresh(env, episodes_key), key)
        return self.place(state)

    def place(self, state: TrainState) -> TrainState:
        """``state`` on this trainer's devices: episodes split along the batch axis,
        everything else replicated (``init`` does it; for a state loaded from a file)."""
        state = replicate(state, self.mesh)
        return dataclasses.replace(state, carry=shard_batch(state.carry, self.mesh))

    def step(self, state: TrainState) -> tuple[TrainState, dict[str, Float[Array, ""]]]:
        """One update; pure. Returns the next state and ``{"loss", "grad_norm"}``."""
        validate.instance("state", state, TrainState, "a diffsim.TrainState from Trainer.init")
        return optimiser_step(self._loss, self.optimiser, state)

    def controller(self, state: TrainState) -> Controller:
        """The controller of ``state``."""
        return state.model[1]

    def env(self, state: TrainState) -> AbstractEnv:
        """The env of ``state`` (changed only when it is trainable)."""
        return state.model[0]

    def window_for(self, env: AbstractEnv) -> int:
        """Control steps per window for ``env`` (``window``, or a whole training episode)."""
        return self.horizon_for(env) if self.window is None else self.window

    def horizon_for(self, env: AbstractEnv) -> int:
        """Control steps of a training episode of ``env`` (``horizon``, or the env's)."""
        return env.episode_steps if self.horizon is None else self.horizon

    def _runs_past_episode_end(self, env: AbstractEnv) -> bool:
        """Whether a carried window can start before the env's episode ends and end after
        it (a window that does not divide the training episode)."""
        window, horizon = self.window_for(env), self.horizon_for(env)
        return self.carry_state and -(-horizon // window) * window > env.episode_steps

    def _fresh(self, env: AbstractEnv, key: PRNGKeyArray) -> Episodes:
        keys = shard_batch(jr.split(key, self.batch_size), self.mesh)
        states = start_states(env, keys)
        return shard_batch(Episodes(states, jnp.zeros(self.batch_size, jnp.int32)), self.mesh)

    def windows(
        self,
        env: AbstractEnv,
        controller: Controller | AbstractStatefulController,
        episodes: Episodes,
        key: PRNGKeyArray,
    ) -> tuple[Trajectory, Episodes]:
        """One window of every episode in ``episodes``, and the episodes the next window
        starts from (continued, or fresh where one ended; without ``carry_state``, all
        fresh). The gradient flows through the window, not into the next episodes. What
        :meth:`step` differentiates, and what :class:`diffsim.SHAC` builds on.

        Returns:
            The trajectories (leading axis ``batch_size``) and the next :class:`Episodes`.
        """
        window = self.window_for(env)
        past_end = self._runs_past_episode_end(env)
        window_key, reset_key = jr.split(key)

        def one(y, steps, key):
            return rollout(
                env,
                controller,
                y,
                num_steps=window,
                start_step=steps,
                estimator=self.estimator,
                key=key,
                stop_at_episode_end=past_end,
            )

        episodes = shard_batch(episodes, self.mesh)
        keys = shard_batch(jr.split(window_key, self.batch_size), self.mesh)
        trajectories = jax.vmap(one)(episodes.states, episodes.steps, keys)
        fresh = self._fresh(stop_gradient(env), reset_key)
        if self.carry_state:
            steps = episodes.steps + window
            finished = trajectories.terminated | (steps >= self.horizon_for(env))
            states = jnp.where(finished[:, None], fresh.states, trajectories.final_state)
            fresh = Episodes(jax.lax.stop_gradient(states), jnp.where(finished, 0, steps))
        return trajectories, shard_batch(fresh, self.mesh)

    def _loss(self, model, episodes: Episodes, key: PRNGKeyArray):
        env, controller = model
        trajectories, episodes = self.windows(env, controller, episodes, key)
        losses = jax.vmap(self.objective, in_axes=(None, 0))(env, trajectories)
        return jnp.mean(losses), episodes

def train(
    env: AbstractEnv,
    controller: Controller | AbstractStatefulController,
    optimiser: optax.GradientTransformation,
    *,
    key: PRNGKeyArray,
    iterations: int,
    eval_every: int = 0,
    eval_episodes: int = 100,
    eval_seed: int = 10_000,
    keep_best: bool = False,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 0,
    resume: str | os.PathLike | None = None,
    metadata: dict | None = None,
    progress: bool = True,
    callback: Callable[[int, dict], None] | None = None,
    **trainer_options,
) -> tuple[AbstractEnv, Controller, History]:
    """Train with a :class:`Trainer` until ``iterations`` updates: many updates per
    compiled call, a progress bar, fixed-seed evaluations, checkpoints, resumption, and
    reports of divergence, interruption and unhealthy training.

    Args:
        env, controller: the starting model (:meth:`Trainer.init`).
        optimiser: any optax transformation.
        key: the seed of everything random in training.
        iterations: optimiser updates in all (a resumed run continues up to it).
        eval_every: evaluate every this many updates (0: only after the last) on
            ``eval_episodes`` fixed episodes from ``eval_seed`` (:func:`diffsim.evaluate`).
            An evaluation far below the best so far is reported as a
            :class:`diffsim.TrainingWarning`.
        keep_best: return (and checkpoint) the controller and env of the best evaluation,
            not the last: a guard against late collapses.
        checkpoint: a file written atomically after every evaluation, every
            ``checkpoint_every`` updates, after the last and on SIGINT/SIGTERM: the model
            (``load_checkpoint(path, (env, controller))`` reads it; ``diffsim eval`` too)
            followed by the whole training state, from which ``resume`` continues.
        checkpoint_every: updates between checkpoints (0: only at evaluations and the end).
        resume: a checkpoint of an interrupted run with the same settings; the result is
            the same, to the bit on CPU, as the uninterrupted run's. Other ``iterations``,
            Trainer settings (the objective, ``trainable`` and the estimator by name) or
            evaluation settings are refused; the optimiser is not compared, beyond the
            structure of its state.
        metadata: extra JSON-serialisable entries for the checkpoint's header.
        progress: show a progress bar.
        callback: ``callback(iteration, metrics)`` for every update, after the compiled
            call that contains it (metrics: ``loss``, and ``eval_return`` after an
            evaluation).
        **trainer_options: ``batch_size``, ``window``, ``horizon``, ``carry_state``, ``trainable``,
            ``objective``, ``estimator``, ``devices``: the :class:`Trainer`'s settings
            (evaluations run on the same ``devices``).

    Returns:
        ``(env, controller, history)``, the order of the arguments, of
        :class:`TrainState`'s model and of checkpoints; ``history.env_steps`` counts every
        simulated control step of every parallel episode (evaluation excluded).

    Raises:
        TrainingDiverged: at a non-finite loss or gradient, carrying the last finite
            controller and env.
        TrainingInterrupted: on SIGINT or SIGTERM (a ``KeyboardInterrupt``), carrying the
            controller and env reached and the checkpoint written.

    Example: ``diffsim.train(env, policy, diffsim.adam_cosine(1e-2, 300), key=jr.key(1),
    iterations=300, batch_size=128, window=50)``.
    """
    check_model("train", env, controller)
    unknown = sorted(set(trainer_options) - set(TRAINER_OPTIONS))
    if unknown:
        raise DiffsimError(
            f"train got unknown options {unknown}: its options are the Trainer's "
            f"({', '.join(TRAINER_OPTIONS)}) and its own (see help(diffsim.train))"
        )
    if callback is not None:
        validate.callable_("callback", callback, "a function callback(iteration, metrics)")
    validate.positive_int("iterations", iterations)
    validate.positive_int("eval_episodes", eval_episodes)
    validate.nonnegative_int("eval_every", eval_every)
    validate.nonnegative_int("checkpoint_every", checkpoint_every)
    validate.seed("eval_seed", eval_seed)
    if checkpoint is None:
        check_metadata(metadata)
    else:
        check_destination(checkpoint, metadata)
    trainer = Trainer(optimiser, **trainer_options)
    state = trainer.init(env, controller, key)
    history, best = History(), {}
    settings = {
        "iterations": iterations,
        "batch_size": trainer.batch_size,
        "window": trainer.window,
        "horizon": trainer.horizon,
        "carry_state": trainer.carry_state,
        "trainable": _name(trainer.trainable),
        "objective": _name(trainer.objective),
        "estimator": None if trainer.estimator is None else _name(type(trainer.estimator)),
        "eval_every": eval_every,
        "eval_episodes": eval_episodes,
        "eval_seed": eval_seed,
        "keep_best": keep_best,
    }
    if resume is not None:
        state, history, best = _resumed(resume, state, settings)
        state = trainer.place(state)

    def evaluate_and_record(state: TrainState) -> dict:
        started = time.perf_counter()
        env, controller = trainer.env(state), trainer.controller(state)
        left = left_range(env)  # a finite loss may not tell (an objective of the env alone)
        if left:
            message = f"iteration {int(state.iteration)}: {left}"
            raise stopped(TrainingDiverged, message, state, {"history": history})
        mean = evaluate(
            env, controller, episodes=eval_episodes, seed=eval_seed, devices=trainer.mesh
        ).mean
        history.eval_iteration.append(int(state.iteration))
        history.eval_env_steps.append(history.total_env_steps)
        history.eval_return.append(mean)
        history.eval_seconds.append(time.perf_counter() - started)
        check_evaluation(history, int(state.iteration))
        if mean > best.get("return", -float("inf")):
            best.update({"return": mean, "model": (env, controller)})
        return {"eval_return": mean}

    def result(state: TrainState) -> tuple[AbstractEnv, Controller]:
        return best["model"] if keep_best and best else state.model

    def save(state: TrainState) -> str | None:
        if checkpoint is None:
            return None
        header = (metadata or {}) | {
            "iteration": int(state.iteration),
            "env_type": type(env).__name__,
            "settings": settings,
            "best_return": best.get("return"),
            "history": history.to_dict(),
        }
        return str(save_checkpoint(checkpoint, (result(state), state), header))

    def stopped(cls, message, state, details):
        env, controller = result(state)
        return cls(message, state=state, controller=controller, env=env, **details)

    state = run(
        trainer.step,
        state,
        iterations,
        history=history,
        every=eval_every,
        on_every=evaluate_and_record,
        checkpoint_every=checkpoint_every,
        on_checkpoint=save,
        env_steps_per_iteration=trainer.batch_size * trainer.window_for(env),
        progress=progress,
        callback=callback,
        stopped=stopped,
    )
    env, controller = result(state)
    return env, controller, history


def _resumed(path, template: TrainState, settings: dict):
    """The training state, history and best model saved at ``path`` by a run with the same
    ``settings`` (a resumed run with others would not be the run it continues)."""
    metadata = read_metadata(path)
    if "history" not in metadata or "settings" not in metadata:
        raise DiffsimError(f"{path} was not written by diffsim.train: cannot resume from it")
    check_same_settings(path, metadata["settings"], settings)
    model, state = load_checkpoint(path, (template.model, template))
    history = History.from_dict(metadata["history"])
    best = {} if metadata["best_return"] is None else {"return": metadata["best_return"]}
    if best:
        best["model"] = model if settings["keep_best"] else None
    return state, history, best


RECORDED_SINCE = frozenset({"horizon", "trainable", "objective", "estimator"})
"""Settings that checkpoints record since 2026-12-08: not compared with an older one."""


def _name(setting: object) -> object:
    """A setting as a checkpoint records it: a string as it is, a function or class by its
    qualified name (stable from one process to the next, unlike its ``repr``), a
    ``functools.partial`` by its function's and its keywords' names and values."""
    if isinstance(setting, str):
        return setting
    if isinstance(setting, functools.partial):
        keywords = ", ".join(f"{k}={v!r}" for k, v in sorted(setting.keywords.items()))
        return f"partial({_name(setting.func)}{', ' if keywords else ''}{keywords})"
    return getattr(setting, "__qualname__", type(setting).__name__)


def check_same_settings(
    path, saved: dict, now: dict, describe: Callable[[str, object], str] | None = None
) -> None:
    """A :class:`DiffsimError` naming every setting of ``now`` that differs from the
    ``saved`` ones a checkpoint was written with, each shown as ``describe(name, value)``
    (default ``name value``; the command line shows its options as they were given)."""
    describe = describe or (lambda name, value: f"{name} {value!r}")
    changed = [
        name for name in now
        if (name in saved or name not in RECORDED_SINCE) and saved.get(name) != now[name]
    ]  # fmt: skip
    if changed:
        was = ", ".join(describe(name, saved.get(name)) for name in changed)
        asked = ", ".join(describe(name, now[name]) for name in changed)
        raise DiffsimError(
            f"cannot resume {path}: it was trained with {was}, not {asked}; resume with the "
            "same settings, or start a new run"
        )
