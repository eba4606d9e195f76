"""Recipes: an env's recommended training set-up, as data (what ``diffsim train ENV`` runs)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax.random as jr
import optax

from . import _validate as validate
from ._env import AbstractEnv
from ._errors import DiffsimError
from ._fit import History
from ._rollout import Controller
from ._train import train


@dataclasses.dataclass(frozen=True)
class Recipe:
    """How to train a controller for one env, end to end. Envs ship their recipes as
    plain data; the core only runs them.

    Attributes:
        name: the env's name on the command line.
        make_env: builds the env.
        make_controller: ``make_controller(env, key)`` builds an untrained controller
            (also the structure a checkpoint is loaded into).
        make_optimiser: ``make_optimiser(iterations)`` builds the optax optimiser (a
            schedule may depend on the number of updates).
        iterations: optimiser updates (``quick_iterations`` in quick mode).
        train_options: further keyword arguments of :func:`diffsim.train`.
        eval_episodes, eval_seed: the final evaluation protocol.
        thresholds: mean returns worth reaching (``diffsim compare`` reports the env steps
            and seconds each method needs to reach them), e.g. ``(-200.0, -160.0)``.
        metrics: per-episode success criteria, ``name: metric(env, trajectory)`` giving a
            boolean or a number per episode; ``diffsim compare`` reports their mean over
            the evaluation episodes.
        method_options: settings of ``diffsim compare``'s methods for this env, by method
            name, e.g. ``{"mpc": {"horizon": 40, "iterations": 30, "optimiser":
            optax.adam(0.1)}}`` (each method documents the keys it reads).

    Example:
        ```python
        import diffsim

        recipe = diffsim.load_recipe("pendulum")         # what `diffsim train pendulum` runs
        recipe.iterations, recipe.train_options["batch_size"]
        # env, controller, history = recipe.run(seed=0)  # the whole training, about 30 s on a CPU
        ```
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
    thresholds: tuple[float, ...] = ()
    metrics: dict[str, Callable] = dataclasses.field(default_factory=dict)
    method_options: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        validate.instance("name", self.name, str, "the env's name on the command line")
        for name in ("make_env", "make_controller", "make_optimiser"):
            validate.callable_(name, getattr(self, name), "a function (see Recipe)")
        validate.positive_int("iterations", self.iterations)
        validate.positive_int("quick_iterations", self.quick_iterations)
        for name in ("train_options", "metrics", "method_options"):
            validate.instance(name, getattr(self, name), dict, "a dict")
        for threshold in self.thresholds:
            validate.numbers("thresholds", threshold, "mean returns (numbers)")

    def run(
        self, seed: int = 0, *, quick: bool = False, progress: bool = True, **train_options
    ) -> tuple[AbstractEnv, Controller, History]:
        """:func:`diffsim.train` from ``seed`` (the controller's initialisation and the
        training key both derive from it); ``train_options`` (a checkpoint, ``resume``,
        ``keep_best``) add to or replace the recipe's. Returns ``(env, controller,
        history)``, as :func:`diffsim.train`."""
        iterations = self.quick_iterations if quick else self.iterations
        env = self.make_env()
        controller_key, train_key = jr.split(jr.key(seed))
        return train(
            env,
            self.make_controller(env, controller_key),
            self.make_optimiser(iterations),
            key=train_key,
            iterations=iterations,
            progress=progress,
            **(self.train_options | train_options),
        )


def adam_cosine(
    learning_rate: float, iterations: int, *, clip: float = 1.0, final_fraction: float = 0.05
) -> optax.GradientTransformation:
    """Global-norm clipping at ``clip``, then Adam with a cosine decay of the learning
    rate from ``learning_rate`` to ``final_fraction`` of it over ``iterations`` updates.

    Args:
        learning_rate: the peak Adam step size, at the first update.
        iterations: optimiser updates over which the cosine decays.
        clip: the global-norm threshold the gradient is clipped to.
        final_fraction: the last update's learning rate, as a fraction of ``learning_rate``.

    Returns:
        An ``optax.GradientTransformation``.

    Example: ``diffsim.adam_cosine(1e-2, 300)``; in a recipe,
    ``make_optimiser=functools.partial(diffsim.adam_cosine, 1e-2)``.
    """
    validate.positive_float("learning_rate", learning_rate)
    validate.positive_int("iterations", iterations)
    validate.positive_float("clip", clip)
    validate.numbers("final_fraction", final_fraction)
    if not 0 <= final_fraction <= 1:
        raise DiffsimError(f"final_fraction must be between 0 and 1, got {final_fraction!r}")
    schedule = optax.cosine_decay_schedule(learning_rate, iterations, alpha=final_fraction)
    return optax.chain(optax.clip_by_global_norm(clip), optax.adam(schedule))
