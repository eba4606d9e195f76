"""Training through simulated rollouts: backpropagation through time with optax."""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from jaxtyping import Array, Float, PRNGKeyArray

from ._checkpoint import save_checkpoint
from ._env import AbstractEnv
from ._errors import DiffsimError
from ._evaluate import Evaluation, evaluate
from ._integrators import AbstractIntegrator
from ._rollout import Controller, Trajectory, rollout
from ._spaces import AbstractEstimator

Objective = Callable[[AbstractEnv, Trajectory], Float[Array, ""]]
"""``objective(env, trajectory) -> loss`` for one (window of an) episode."""


def mean_step_cost(env: AbstractEnv, trajectory: Trajectory) -> Float[Array, ""]:
    """The default objective: the env's running cost averaged over the window's steps."""
    return trajectory.total_cost / trajectory.costs.shape[-1]


class TrainingDiverged(DiffsimError):
    """Loss or gradient became NaN/inf. ``controller`` and ``env`` hold the last finite
    values and ``history`` the metrics up to there, so nothing is lost."""

    def __init__(self, message, *, controller, env, history):
        super().__init__(message)
        self.controller, self.env, self.history = controller, env, history


@dataclasses.dataclass
class History:
    """Metrics recorded during :func:`train` (plain lists, JSON-serialisable)."""

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


class _WindowConfig(eqx.Module):
    """Everything static about one training step, so one compilation serves a run."""

    num_steps: int = eqx.field(static=True)
    carry_state: bool = eqx.field(static=True)
    objective: Objective = eqx.field(static=True)


class _Carry(eqx.Module):
    """Per-episode simulation state carried from one window to the next."""

    states: Float[Array, "batch n"]
    steps: Array


def _split_model(env, controller, trainable):
    """Partition ``(env, controller)`` into the arrays being trained and the rest."""
    model = (env, controller)
    if callable(trainable):
        mask = jax.tree_util.tree_map(lambda _: False, model)
        mask = eqx.tree_at(
            lambda m: trainable(*m),
            mask,
            replace_fn=lambda node: jax.tree_util.tree_map(lambda _: True, node),
        )
    else:
        flags = (trainable in ("env", "both"), trainable in ("controller", "both"))
        mask = tuple(
            jax.tree_util.tree_map(lambda _, flag=flag: flag, part)
            for flag, part in zip(flags, model, strict=True)
        )
    mask = jax.tree_util.tree_map(
        lambda leaf, selected: selected and eqx.is_inexact_array(leaf), model, mask
    )
    return eqx.partition(model, mask)


def _fresh_carry(env, batch_size, key):
    states = jax.vmap(env.initial_state)(jr.split(key, batch_size))
    return _Carry(states=states, steps=jnp.zeros(batch_size, jnp.int32))


@eqx.filter_jit
def _train_step(config, trained, frozen, opt_state, optimiser, integrator, estimator, carry, key):
    window_key, reset_key = jr.split(key)

    def loss_fn(trained):
        env, controller = eqx.combine(trained, frozen)
        batch = carry.states.shape[0]
        t0 = carry.steps * env.control_dt

        def one(y, t, k):
            trajectory = rollout(
                env,
                controller,
                y,
                num_steps=config.num_steps,
                t0=t,
                integrator=integrator,
                estimator=estimator,
                key=k,
            )
            return config.objective(env, trajectory), trajectory

        losses, trajectories = jax.vmap(one)(carry.states, t0, jr.split(window_key, batch))
        return jnp.mean(losses), trajectories

    (loss, trajectories), grads = eqx.filter_value_and_grad(loss_fn, has_aux=True)(trained)
    updates, opt_state = optimiser.update(grads, opt_state, trained)
    trained = eqx.apply_updates(trained, updates)

    env, _ = eqx.combine(trained, frozen)
    fresh = _fresh_carry(env, carry.states.shape[0], reset_key)
    if config.carry_state:
        steps = carry.steps + config.num_steps
        finished = trajectories.terminated | (steps >= env.episode_steps)
        states = jnp.where(finished[:, None], fresh.states, trajectories.states[:, -1])
        carry = _Carry(states=states, steps=jnp.where(finished, 0, steps))
    else:
        carry = fresh
    return trained, opt_state, carry, loss, optax.tree.norm(grads)


def train(
    env: AbstractEnv,
    controller: Controller,
    optimiser: optax.GradientTransformation,
    *,
    key: PRNGKeyArray,
    iterations: int,
    batch_size: int = 64,
    window: int | None = None,
    carry_state: bool = True,
    trainable: Literal["controller", "env", "both"] | Callable = "controller",
    objective: Objective = mean_step_cost,
    integrator: AbstractIntegrator | None = None,
    estimator: AbstractEstimator | None = None,
    eval_every: int = 0,
    eval_episodes: int = 100,
    eval_seed: int = 10_000,
    keep_best: bool = False,
    checkpoint: str | os.PathLike | None = None,
    progress: bool = True,
    callback: Callable[[int, dict], None] | None = None,
) -> tuple[Controller, AbstractEnv, History]:
    """Optimise a controller (and/or the env's parameters) by gradient descent through
    simulated rollouts.

    Each iteration simulates ``batch_size`` episodes for a window of ``window`` control
    steps, differentiates ``objective`` through the whole window (backpropagation
    through time) and applies one ``optimiser`` update. With ``window`` shorter than
    the episode, ``carry_state=True`` starts the next window where the last one ended
    (gradient cut between windows, episodes reset when they end: truncated BPTT as in
    Brax APG / SHAC); ``carry_state=False`` starts every window from fresh initial states.

    Args:
        optimiser: any optax transformation (clipping and schedules come from optax).
        key: the seed of everything random in training.
        iterations: optimiser updates.
        window: control steps per differentiated window (default: a whole episode).
        trainable: what is optimised: ``"controller"``, ``"env"`` (all the env's array
            parameters: system identification), ``"both"``, or a function
            ``where(env, controller)`` returning the nodes to train, as for
            ``eqx.tree_at`` (e.g. ``lambda env, controller: env.g``).
        objective: loss of one trajectory window (default: mean running cost per step).
        estimator: differentiable estimator for discrete actions.
        eval_every: evaluate every this many iterations on ``eval_episodes`` fixed
            episodes from ``eval_seed`` (0: only at the end).
        keep_best: return the controller with the best evaluation instead of the last.
        checkpoint: a file to which the controller and env are saved (atomically) at every
            evaluation, so an interrupted run loses nothing evaluated; load it with
            ``load_checkpoint(path, (env, controller))``.
        progress: show a progress bar.
        callback: called as ``callback(iteration, metrics)`` after each iteration.

    Returns:
        ``(controller, env, history)``. Env steps counted in ``history`` are every
        simulated control step of every parallel episode (evaluation excluded).

    Raises:
        TrainingDiverged: when the loss or gradient is NaN/inf; carries the last
            finite controller and env.
    """
    window = env.episode_steps if window is None else window
    if window < 1 or batch_size < 1 or iterations < 1:
        raise DiffsimError(
            f"window, batch_size and iterations must be positive, got {window}, "
            f"{batch_size}, {iterations}"
        )
    if not callable(trainable) and trainable not in ("controller", "env", "both"):
        raise DiffsimError(f"trainable must be 'controller', 'env' or 'both', got {trainable!r}")
    config = _WindowConfig(num_steps=window, carry_state=carry_state, objective=objective)
    trained, frozen = _split_model(env, controller, trainable)
    opt_state = optimiser.init(trained)
    init_key, key = jr.split(key)
    carry = _fresh_carry(env, batch_size, init_key)
    history = History()
    best = (-jnp.inf, controller, env)

    def run_evaluation(iteration, env, controller):
        started = time.perf_counter()
        result: Evaluation = evaluate(
            env, controller, episodes=eval_episodes, seed=eval_seed, integrator=integrator
        )
        history.eval_iteration.append(iteration)
        history.eval_env_steps.append(history.total_env_steps)
        history.eval_return.append(result.mean)
        history.eval_seconds.append(time.perf_counter() - started)
        if checkpoint is not None:
            save_checkpoint(
                checkpoint,
                (env, controller),
                {"iteration": iteration, "eval_return": result.mean, "eval_seed": eval_seed},
            )
        return result.mean

    bar = _progress_bar(iterations, progress)
    started = time.perf_counter()
    for iteration in range(1, iterations + 1):
        key, step_key = jr.split(key)
        new = _train_step(
            config, trained, frozen, opt_state, optimiser, integrator, estimator, carry, step_key
        )
        loss, grad_norm = float(new[3]), float(new[4])
        if iteration == 1:
            history.compile_seconds = time.perf_counter() - started
        if not (jnp.isfinite(loss) and jnp.isfinite(grad_norm)):
            env, controller = eqx.combine(trained, frozen)
            raise TrainingDiverged(
                f"non-finite {'loss' if not jnp.isfinite(loss) else 'gradient'} at iteration "
                f"{iteration} (loss {loss}, gradient norm {grad_norm}); try a smaller learning "
                "rate, gradient clipping or a shorter window",
                controller=controller,
                env=env,
                history=history,
            )
        trained, opt_state, carry = new[0], new[1], new[2]
        history.iteration.append(iteration)
        history.env_steps.append(iteration * batch_size * window)
        history.loss.append(loss)
        history.grad_norm.append(grad_norm)
        metrics = {"loss": loss}
        if (eval_every and iteration % eval_every == 0) or iteration == iterations:
            env, controller = eqx.combine(trained, frozen)
            metrics["eval_return"] = run_evaluation(iteration, env, controller)
            if metrics["eval_return"] > best[0]:
                best = (metrics["eval_return"], controller, env)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(
                {k: f"{v:.4g}" for k, v in metrics.items()}
                | ({"eval": f"{history.eval_return[-1]:.1f}"} if history.eval_return else {})
            )
        if callback is not None:
            callback(iteration, metrics)
    history.train_seconds = time.perf_counter() - started
    if bar is not None:
        bar.close()
    env, controller = eqx.combine(trained, frozen)
    if keep_best:
        _, controller, env = best
    return controller, env, history


def _progress_bar(total, enabled):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="training", unit="it", dynamic_ncols=True)
