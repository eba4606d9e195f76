"""Training controllers (and env parameters) through simulated rollouts: a pure
:class:`Trainer` (``init``/``step``, optax-style) and the :func:`train` runner on top."""

from __future__ import annotations

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

from ._checkpoint import save_checkpoint
from ._env import AbstractEnv
from ._errors import DiffsimError
from ._evaluate import evaluate
from ._fit import History, TrainingDiverged, TrainState, init_state, optimiser_step, run, where_mask
from ._rollout import Controller, Trajectory, rollout
from ._spaces import AbstractEstimator

Objective = Callable[[AbstractEnv, Trajectory], Float[Array, ""]]
"""``objective(env, trajectory) -> loss`` for one (window of an) episode."""


def mean_step_cost(env: AbstractEnv, trajectory: Trajectory) -> Float[Array, ""]:
    """The default objective: the total cost of the window (running costs of the steps
    taken, plus the terminal cost where the episode ended) per control step."""
    return trajectory.total_cost / trajectory.costs.shape[-1]


class Episodes(eqx.Module):
    """The episodes a :class:`Trainer` simulates in parallel, carried from one window to
    the next: states of shape ``(batch, n)`` and control steps taken, shape ``(batch,)``."""

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
        window: control steps per differentiated window (default: a whole episode).
        carry_state: continue episodes across windows.
        trainable: ``"controller"``, ``"env"`` (all the env's inexact arrays: system
            identification), ``"both"``, or ``where(env, controller)`` returning the nodes
            to train, as for ``eqx.tree_at`` (e.g. ``lambda env, controller: env.g``).
        objective: loss of one trajectory window (default :func:`mean_step_cost`).
        estimator: differentiable estimator for discrete action spaces.

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
    carry_state: bool = eqx.field(static=True)
    trainable: str | Callable = eqx.field(static=True)
    objective: Objective = eqx.field(static=True)

    def __init__(
        self,
        optimiser: optax.GradientTransformation,
        *,
        batch_size: int = 64,
        window: int | None = None,
        carry_state: bool = True,
        trainable: Literal["controller", "env", "both"] | Callable = "controller",
        objective: Objective = mean_step_cost,
        estimator: AbstractEstimator | None = None,
    ):
        for name, value in (("batch_size", batch_size), ("window", window)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise DiffsimError(f"{name} must be a positive integer, got {value!r}")
        if not callable(trainable) and trainable not in ("controller", "env", "both"):
            raise DiffsimError(
                f"trainable must be 'controller', 'env', 'both' or a function, got {trainable!r}"
            )
        self.optimiser, self.estimator = optimiser, estimator
        self.batch_size, self.window, self.carry_state = batch_size, window, carry_state
        self.trainable, self.objective = trainable, objective

    def init(self, env: AbstractEnv, controller: Controller, key: PRNGKeyArray) -> TrainState:
        """The state before the first step: the env and ``controller`` as the model,
        fresh episodes drawn from ``key``."""
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
        return init_state(model, mask, self.optimiser, self._fresh(env, episodes_key), key)

    def step(self, state: TrainState) -> tuple[TrainState, dict[str, Float[Array, ""]]]:
        """One update; pure. Returns the next state and ``{"loss", "grad_norm"}``."""
        return optimiser_step(self._loss, self.optimiser, state)

    def controller(self, state: TrainState) -> Controller:
        """The controller of ``state``."""
        return state.model[1]

    def env(self, state: TrainState) -> AbstractEnv:
        """The env of ``state`` (changed only when it is trainable)."""
        return state.model[0]

    def window_for(self, env: AbstractEnv) -> int:
        """Control steps per window for ``env`` (``window``, or a whole episode)."""
        return env.episode_steps if self.window is None else self.window

    def _fresh(self, env: AbstractEnv, key: PRNGKeyArray) -> Episodes:
        states = jax.vmap(env.initial_state)(jr.split(key, self.batch_size))
        return Episodes(states=states, steps=jnp.zeros(self.batch_size, jnp.int32))

    def _loss(self, model, episodes: Episodes, key: PRNGKeyArray):
        env, controller = model
        window = self.window_for(env)
        window_key, reset_key = jr.split(key)

        def one(y, steps, key):
            trajectory = rollout(
                env,
                controller,
                y,
                num_steps=window,
                start_step=steps,
                estimator=self.estimator,
                key=key,
            )
            return self.objective(env, trajectory), trajectory

        keys = jr.split(window_key, self.batch_size)
        losses, trajectories = jax.vmap(one)(episodes.states, episodes.steps, keys)
        fresh = self._fresh(jax.lax.stop_gradient(env), reset_key)
        if self.carry_state:
            steps = episodes.steps + window
            finished = trajectories.terminated | (steps >= env.episode_steps)
            states = jnp.where(finished[:, None], fresh.states, trajectories.final_state)
            fresh = Episodes(jax.lax.stop_gradient(states), jnp.where(finished, 0, steps))
        return jnp.mean(losses), fresh


def train(
    env: AbstractEnv,
    controller: Controller,
    optimiser: optax.GradientTransformation,
    *,
    key: PRNGKeyArray,
    iterations: int,
    eval_every: int = 0,
    eval_episodes: int = 100,
    eval_seed: int = 10_000,
    keep_best: bool = False,
    checkpoint: str | os.PathLike | None = None,
    progress: bool = True,
    callback: Callable[[int, dict], None] | None = None,
    **trainer_options,
) -> tuple[Controller, AbstractEnv, History]:
    """Train with a :class:`Trainer` for ``iterations`` updates: many updates per compiled
    call, a progress bar, fixed-seed evaluations, checkpoints, a divergence report.

    Args:
        env, controller: the starting model (:meth:`Trainer.init`).
        optimiser: any optax transformation.
        key: the seed of everything random in training.
        iterations: optimiser updates.
        eval_every: evaluate every this many updates (0: only after the last) on
            ``eval_episodes`` fixed episodes from ``eval_seed`` (:func:`diffsim.evaluate`).
        keep_best: return the controller (and env) of the best evaluation, not the last.
        checkpoint: a file to which ``(env, controller)`` is saved (atomically) at every
            evaluation; load it with ``load_checkpoint(path, (env, controller))``.
        progress: show a progress bar.
        callback: ``callback(iteration, metrics)`` after every update (metrics: ``loss``,
            and ``eval_return`` after an evaluation).
        **trainer_options: ``batch_size``, ``window``, ``carry_state``, ``trainable``,
            ``objective``, ``estimator``: the :class:`Trainer`'s settings.

    Returns:
        ``(controller, env, history)``; ``history.env_steps`` counts every simulated
        control step of every parallel episode (evaluation excluded).

    Raises:
        TrainingDiverged: at a non-finite loss or gradient, carrying the last finite
            controller and env.

    Example: ``diffsim.train(env, policy, diffsim.adam_cosine(1e-2, 300), key=jr.key(1),
    iterations=300, batch_size=128, window=50)``.
    """
    if not isinstance(iterations, int) or iterations < 1:
        raise DiffsimError(f"iterations must be a positive integer, got {iterations!r}")
    trainer = Trainer(optimiser, **trainer_options)
    history, best = History(), {}

    def evaluate_and_save(state: TrainState) -> dict:
        started = time.perf_counter()
        env, controller = trainer.env(state), trainer.controller(state)
        mean = evaluate(env, controller, episodes=eval_episodes, seed=eval_seed).mean
        history.eval_iteration.append(int(state.iteration))
        history.eval_env_steps.append(history.total_env_steps)
        history.eval_return.append(mean)
        history.eval_seconds.append(time.perf_counter() - started)
        if checkpoint is not None:
            metadata = {
                "iteration": int(state.iteration),
                "eval_return": mean,
                "eval_seed": eval_seed,
            }
            save_checkpoint(checkpoint, (env, controller), metadata)
        if mean > best.get("return", -jnp.inf):
            best.update({"return": mean, "controller": controller, "env": env})
        return {"eval_return": mean}

    def diverged(message: str, state: TrainState) -> TrainingDiverged:
        parts = {"controller": trainer.controller(state), "env": trainer.env(state)}
        return TrainingDiverged(message, state=state, history=history, **parts)

    state = run(
        trainer.step,
        trainer.init(env, controller, key),
        iterations,
        history=history,
        every=eval_every,
        on_every=evaluate_and_save,
        env_steps_per_iteration=trainer.batch_size * trainer.window_for(env),
        progress=progress,
        callback=callback,
        diverged=diverged,
    )
    if keep_best:
        return best["controller"], best["env"], history
    return trainer.controller(state), trainer.env(state), history
