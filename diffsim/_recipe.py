"""Recipes: an env's recommended training set-up, what ``diffsim train ENV`` runs."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import jax.random as jr
import optax

from ._env import AbstractEnv
from ._rollout import Controller
from ._train import History, train


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How to train a controller for one env, end to end.

    Attributes:
        name: the env's name on the command line.
        make_env: builds the env.
        make_controller: ``make_controller(env, key)`` builds an untrained controller
            (also used to rebuild the structure a checkpoint is loaded into).
        make_optimiser: ``make_optimiser(iterations)`` builds the optax optimiser.
        iterations: optimiser updates (``quick_iterations`` in quick mode).
        train_options: further keyword arguments of :func:`diffsim.train`.
        eval_episodes, eval_seed: the final evaluation protocol.
    """

    name: str
    make_env: Callable[[], AbstractEnv]
    make_controller: Callable[[AbstractEnv, Any], Controller]
    make_optimiser: Callable[[int], optax.GradientTransformation]
    iterations: int
    quick_iterations: int
    train_options: dict = dataclasses.field(default_factory=dict)
    eval_episodes: int = 1000
    eval_seed: int = 0

    def run(
        self, seed: int = 0, *, quick: bool = False, progress: bool = True
    ) -> tuple[Controller, AbstractEnv, History]:
        """Train from ``seed``; returns ``(controller, env, history)``."""
        iterations = self.quick_iterations if quick else self.iterations
        env = self.make_env()
        controller_key, train_key = jr.split(jr.key(seed))
        controller = self.make_controller(env, controller_key)
        return train(
            env,
            controller,
            self.make_optimiser(iterations),
            key=train_key,
            iterations=iterations,
            progress=progress,
            **self.train_options,
        )


def adam_cosine(learning_rate: float, clip: float = 1.0, final_fraction: float = 0.05):
    """``make_optimiser`` for recipes: global-norm clipping then Adam with a cosine decay
    from ``learning_rate`` to ``final_fraction`` of it.

    The optimiser for a given number of iterations is built once and reused: its functions
    are static arguments of the jitted training step, so a second run with the same
    settings (another seed) reuses the compiled step instead of compiling it again."""

    @functools.cache
    def make_optimiser(iterations: int) -> optax.GradientTransformation:
        schedule = optax.cosine_decay_schedule(learning_rate, iterations, alpha=final_fraction)
        return optax.chain(optax.clip_by_global_norm(clip), optax.adam(schedule))

    return make_optimiser
