"""The plug-in point of ``diffsim compare``: a method builds one controller per training seed
for a recipe's env and reports what it cost (:class:`MethodRun`); ``compare`` then evaluates,
saves and tabulates every method the same way.

Methods are found by name in the entry-point group ``diffsim.methods``, the shipped ones
included (``dp`` here, ``ppo``/``sac``/``dqn`` in :mod:`diffsim.rl`, ``lqr``/``mpc`` in
:mod:`diffsim.controllers`); the core knows none of them by name. :func:`train_seeds` is the
loop that trained methods share: every seed in one compiled program, a learning curve on
fixed episodes, wall-clock with compilation kept apart.
"""

import abc
import dataclasses
import functools
import os
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Float, PyTree

from ._checkpoint import load_checkpoint, read_metadata
from ._env import AbstractEnv
from ._errors import DiffsimError
from ._evaluate import initial_states
from ._recipe import Recipe
from ._registry import _file_of, load_recipe, named_entry_points, same_env
from ._rollout import Controller, check_model, rollout
from ._stateful import AbstractStatefulController
from ._timing import Stopwatch

CURVE_EPISODES = 100
"""Episodes of every evaluation along training (the final one has ``--episodes``)."""
CURVE_SEED = 10_000
"""Seed of the start states of the evaluations along training (:func:`diffsim.train`'s
default ``eval_seed``), distinct from the final evaluation's."""
CURVE_POINTS = 10
"""Evaluations along a run whose method sets no schedule of its own."""
METHOD_GROUP = "diffsim.methods"
"""Entry-point group of methods: ``name = "package.module:method_instance"``."""


@dataclasses.dataclass
class MethodRun:
    """What one method produced for one seed.

    Attributes:
        seed: the training seed.
        controller, env: the final controller and the env it is evaluated on.
        env_steps: simulated control steps in training (every parallel episode counted).
        train_seconds: wall-clock of training, compilation and the evaluations along
            training excluded; for seeds trained together in one program
            (``seeds_in_program`` > 1) that program's time.
        compile_seconds: time JAX spent tracing and compiling.
        curve_steps, curve_seconds, curve_returns: the learning curve: env steps and
            training seconds at each evaluation along training, and the mean return of the
            deterministic policy on :data:`CURVE_EPISODES` episodes from :data:`CURVE_SEED`.
        spec: JSON-serialisable description from which :meth:`AbstractMethod.template`
            rebuilds the controller's structure (stored in the checkpoint).
        seeds_in_program: how many seeds one compiled program trained together.

    Example:
        ```python
        import diffsim

        env = diffsim.envs.Pendulum()
        zero = lambda t, observation: 0.0 * env.action_space.low   # an untrained controller
        run = diffsim.MethodRun(0, zero, env, 0, 0.0, 0.0, [], [], [], {})
        ```
    """

    seed: int
    controller: Controller | AbstractStatefulController
    env: AbstractEnv
    env_steps: int
    train_seconds: float
    compile_seconds: float
    curve_steps: list[int]
    curve_seconds: list[float]
    curve_returns: list[float]
    spec: dict
    seeds_in_program: int = 1


class AbstractMethod(eqx.Module):
    """A way of building a controller for a recipe's env, registered by name in the
    entry-point group ``diffsim.methods`` (see the module docstring).

    Attributes:
        name: the method's name on the command line (the entry point's name).
        trained: ``False`` for controllers that are computed, not trained (MPC, LQR):
            ``compare`` then reports their compute time per control step.
        by_default: whether ``diffsim compare ENV`` without ``--methods`` runs it on the
            envs it :meth:`fits`.
        needs: what an env must offer for the method to apply, in words (``""``: any env),
            shown when it does not.

    Example:
        ```python
        import diffsim

        class Zero(diffsim.AbstractMethod):   # the do-nothing baseline, for scale
            name: str = "zero"
            trained: bool = False
            by_default: bool = False
            needs: str = "continuous actions"

            def fits(self, env):
                return isinstance(env.action_space, diffsim.Box)

            def run(self, recipe, seeds, *, quick, log):
                env = recipe.make_env()
                zero = self.template(recipe, env, {})
                return [diffsim.MethodRun(s, zero, env, 0, 0.0, 0.0, [], [], [], {})
                        for s in seeds]

            def template(self, recipe, env, spec):
                return lambda t, observation: 0.0 * env.action_space.low
        ```
        With ``zero = Zero()`` in ``my_package/methods.py`` registered as
        ``zero = "my_package.methods:zero"`` under the ``diffsim.methods`` entry-point
        group, ``diffsim compare ENV --methods dp,zero`` runs it.
    """

    name: eqx.AbstractVar[str]
    trained: eqx.AbstractVar[bool]
    by_default: eqx.AbstractVar[bool]
    needs: eqx.AbstractVar[str]

    @abc.abstractmethod
    def fits(self, env: AbstractEnv) -> bool:
        """Whether the method applies to ``env`` (its action space, a declared
        equilibrium, ...)."""

    def check(self, recipe: Recipe, env: AbstractEnv) -> None:
        """Raise :class:`DiffsimError` (saying what to do) if the method cannot run here
        (a missing extra, settings that do not fit); called before any work, after
        :meth:`fits`. Default: nothing to check."""

    @abc.abstractmethod
    def run(
        self, recipe: Recipe, seeds: Sequence[int], *, quick: bool, log: Callable[[str], None]
    ) -> list[MethodRun]:
        """One :class:`MethodRun` per seed; ``quick`` for a short run (tests, notebooks);
        ``log`` prints a progress line."""

    @abc.abstractmethod
    def template(
        self, recipe: Recipe, env: AbstractEnv, spec: dict
    ) -> Controller | AbstractStatefulController:
        """A controller with the structure described by ``spec`` (any values): what a
        checkpoint of this method is loaded into."""

    def describe(self, recipe: Recipe, env: AbstractEnv, quick: bool) -> str:
        """One line on the settings and budget, for the table."""
        return ""


def curve_return(
    env: AbstractEnv, controller: Controller | AbstractStatefulController
) -> Float[Array, ""]:
    """The mean return of ``controller`` over the :data:`CURVE_EPISODES` fixed episodes
    from :data:`CURVE_SEED`: the learning-curve point of ``diffsim compare``. Traceable, so
    ``jax.vmap`` over a batch of controllers scores every seed in one program.

    Args:
        env: the environment.
        controller: the deterministic policy.

    Returns:
        A scalar, the mean return.
    """
    check_model("curve_return", env, controller)
    states = initial_states(env, CURVE_EPISODES, CURVE_SEED)
    return jnp.mean(jax.vmap(lambda y: rollout(env, controller, y).episode_return)(states))


def take_seed(tree: PyTree, i: int) -> PyTree:
    """Seed ``i`` of a pytree batched over seeds along its leading axis (arrays sliced,
    everything else kept)."""
    return jax.tree_util.tree_map(lambda x: x[i] if eqx.is_array(x) else x, tree)


def train_seeds(
    name: str,
    seeds: Sequence[int],
    init: Callable[[], PyTree],
    advance: Callable[[PyTree], PyTree],
    score: Callable[[PyTree], Float[Array, " seeds"]],
    env_steps: Callable[[PyTree], int],
    model: Callable[[PyTree], tuple[AbstractEnv, Controller | AbstractStatefulController]],
    *,
    points: int,
    spec: dict,
    log: Callable[[str], None],
) -> list[MethodRun]:
    """The training loop that trained methods share: every seed in one program, a learning
    curve of ``points`` evaluations after the start, and the clocks.

    Args:
        name: the method's name, for the log lines.
        seeds: the training seeds, in the order of the states' leading axis.
        init: builds the states of every seed, batched along a leading axis (compiled, its
            compilation counted).
        advance: the states at the next curve point (one or more compiled calls).
        score: the learning-curve return of every seed, shape ``(seeds,)`` (usually
            :func:`curve_return` vmapped over seeds).
        env_steps: the env steps taken so far (the same for every seed).
        model: ``(env, controller)`` of one seed's state (unbatched).
        points: evaluations after the start (the curve has ``points + 1``).
        spec: the controller's description for :class:`MethodRun`.
        log: receives one progress line per curve point.

    Returns:
        One :class:`MethodRun` per seed, ``train_seconds`` the program's wall-clock with
        compilation and curve evaluations excluded.
    """
    training, overhead = Stopwatch(), Stopwatch()
    with overhead:
        states = jax.block_until_ready(init())
    steps, seconds, returns = [], [], []
    for point in range(points + 1):
        if point:
            with training:
                states = jax.block_until_ready(advance(states))
        with overhead:
            scores = [float(r) for r in jax.device_get(score(states))]
        steps.append(int(env_steps(states)))
        seconds.append(training.seconds)
        returns.append(scores)
        log(
            f"{name}: {steps[-1]:,} env steps, {training.seconds:.1f} s, curve return median "
            f"{statistics.median(scores):.1f} ({len(seeds)} seeds in one program)"
        )
    compile_seconds = training.compile_seconds + overhead.compile_seconds
    runs = []
    for i, seed in enumerate(seeds):
        env, controller = model(take_seed(states, i))
        runs.append(
            MethodRun(
                seed=seed,
                controller=controller,
                env=env,
                env_steps=steps[-1],
                train_seconds=training.seconds,
                compile_seconds=compile_seconds,
                curve_steps=steps,
                curve_seconds=seconds,
                curve_returns=[r[i] for r in returns],
                spec=spec,
                seeds_in_program=len(seeds),
            )
        )
    return runs


@functools.cache
def methods() -> dict[str, AbstractMethod]:
    """Every installed method by name: the entry points of the ``diffsim.methods`` group."""
    return named_entry_points(METHOD_GROUP, AbstractMethod, "an AbstractMethod")


def default_methods(env: AbstractEnv) -> list[str]:
    """The installed methods that run by default (``by_default``) and fit ``env``."""
    return [name for name, method in methods().items() if method.by_default and method.fits(env)]


def _runs_on(method: AbstractMethod, recipe: Recipe, env: AbstractEnv) -> bool:
    """Whether ``method`` fits ``env`` and passes its own check (settings, extras)."""
    if not method.fits(env):
        return False
    try:
        method.check(recipe, env)
    except DiffsimError:
        return False
    return True


def _runnable(known: dict[str, AbstractMethod], recipe: Recipe, env: AbstractEnv) -> str:
    """The names of the methods of ``known`` that run on ``env``, for a refusal to offer."""
    runs = [name for name, method in sorted(known.items()) if _runs_on(method, recipe, env)]
    return ", ".join(runs)


def resolve(names: Sequence[str] | None, recipe: Recipe, env: AbstractEnv) -> list[AbstractMethod]:
    """The methods named (default :func:`default_methods`), each checked against ``env``
    before any work: an unknown name, a method that does not fit the env or a missing extra
    is a :class:`DiffsimError` saying what to do."""
    known = methods()
    if names is not None and not list(names):
        raise DiffsimError("methods names no method: pass None for the default methods")
    names = default_methods(env) if names is None else list(names)
    chosen = []
    for name in names:
        if name not in known:
            raise DiffsimError(
                f"unknown method {name!r}: choose from {', '.join(sorted(known))} "
                "(comma-separated, e.g. --methods dp,ppo)"
            )
        method = known[name]
        if not method.fits(env):
            raise DiffsimError(
                f"method {name!r} needs {method.needs}, which {recipe.name} "
                f"({type(env).__name__}, {type(env.action_space).__name__} actions) does not "
                f"offer: choose from {_runnable(known, recipe, env)}"
            )
        try:
            method.check(recipe, env)
        except DiffsimError as error:
            raise DiffsimError(f"{error}; choose from {_runnable(known, recipe, env)}") from None
        if method not in chosen:
            chosen.append(method)
    return chosen


def load_trained(
    env: str, path: str | os.PathLike
) -> tuple[AbstractEnv, Controller | AbstractStatefulController]:
    """The env and controller saved at ``path`` for the env named ``env`` (an installed
    recipe's name or ``path/to/file.py:Name``): by ``diffsim train`` (the recipe's
    controller), ``diffsim.train`` with a recipe's controller, or ``diffsim compare`` (any
    method, its structure rebuilt from the checkpoint's metadata). What ``diffsim eval``
    evaluates.

    Args:
        env: the env's name, as for :func:`diffsim.load_recipe`.
        path: the checkpoint file.

    Returns:
        ``(env, controller)`` with the saved values.

    Raises:
        DiffsimError: a missing, corrupt or foreign file, or one trained on another env.

    Example: ``env, policy = diffsim.load_trained("pendulum", "runs/pendulum/controller.eqx")``.
    """
    recipe = load_recipe(env)
    like = recipe.make_env()
    metadata = read_metadata(path)
    env_type = type(like).__name__
    if not same_env(metadata, env) or metadata.get("env_type", env_type) != env_type:
        trained_on = metadata.get("env") or metadata.get("env_type")
        where = ""
        if (  # the same words, another file
            trained_on == env
            and "env_file" in metadata
            and Path(metadata["env_file"]) != _file_of(env)
        ):
            where = (
                f" (the file {metadata['env_file']}, not {_file_of(env)}: a copy or a moved "
                "file is another env; name the file it was trained on)"
            )
        raise DiffsimError(f"{path} was trained on {trained_on!r}, not {env!r}{where}")
    return load_checkpoint(path, (like, controller_template(recipe, like, metadata)))


def controller_template(
    recipe: Recipe, env: AbstractEnv, metadata: dict[str, Any]
) -> Controller | AbstractStatefulController:
    """The controller structure a checkpoint is loaded into: the method's (from the
    checkpoint's ``method`` and ``controller`` metadata, as ``diffsim compare`` writes
    them), else the recipe's."""
    name = metadata.get("method")
    if name is None:
        return recipe.make_controller(env, jr.key(0))
    known = methods()
    if name not in known:
        raise DiffsimError(
            f"the checkpoint was written by method {name!r}, which is not installed "
            f"(known: {', '.join(sorted(known))})"
        )
    return known[name].template(recipe, env, metadata.get("controller", {}))
