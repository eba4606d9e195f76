"""Classical controllers as methods of ``diffsim compare`` (registered under the entry-point
group ``diffsim.methods`` in ``pyproject.toml``): ``lqr``, ``mpc`` and ``optimal``."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import optax

import diffsim
from diffsim import AbstractEnv, AbstractMethod, DiffsimError, MethodRun, Recipe

from ._lqr import LQR
from ._mpc import MPC
from ._value_iteration import ValueIteration


def cost_weights(env: AbstractEnv, y_eq, u_eq) -> tuple[jax.Array, jax.Array]:
    """``(Q, R)``: the Hessians of the env's cost of holding a state under a control,
    ``env.step_cost(0, y, u, y)``, in the state and in the control at
    ``(y_eq, u_eq)``, each replaced by the identity where it vanishes (a constant cost
    such as the cart-pole's -1 per step says nothing about either)."""

    def weight(matrix):
        if bool(jnp.any(matrix != 0)):
            return matrix
        return jnp.eye(matrix.shape[0], dtype=matrix.dtype)

    Q = jax.hessian(lambda y: env.step_cost(0.0, y, u_eq, y))(y_eq)
    R = jax.hessian(lambda u: env.step_cost(0.0, y_eq, u, y_eq))(u_eq)
    return weight(Q), weight(R)


def _every_seed(controller, env: AbstractEnv, seeds, seconds: float) -> list[MethodRun]:
    """The runs of a controller that is computed, not trained: the same one for every
    seed, no env steps, no learning curve."""
    return [MethodRun(seed, controller, env, 0, seconds, 0.0, [], [], [], {}) for seed in seeds]


def _equilibrium(env: AbstractEnv):
    point = env.equilibrium()
    if point is None:
        raise DiffsimError(
            f"lqr needs an equilibrium: {type(env).__name__}.equilibrium() declares none "
            "(continuous actions and a state to hold, e.g. the pendulum upright)"
        )
    return point


def lqr_for(env: AbstractEnv) -> LQR:
    """The LQR about the env's declared :meth:`~diffsim.AbstractEnv.equilibrium`, with
    :func:`cost_weights`."""
    y_eq, u_eq = (jnp.asarray(x, float) for x in _equilibrium(env))
    return LQR.from_env(env, y_eq, u_eq, *cost_weights(env, y_eq, u_eq))


class LQRMethod(AbstractMethod):
    """``diffsim compare ENV --methods lqr``: the LQR about the env's declared equilibrium,
    weighted by its running cost (:func:`cost_weights`). Nothing is trained: every seed
    gets the same controller, and ``compare`` reports its compute time per control step.

    Example:
        ```python
        diffsim.compare("pendulum", methods=["dp", "lqr"], seeds=2, quick=True)
        ```
    """

    name: str = "lqr"
    trained: bool = False
    by_default: bool = False
    needs: str = "continuous actions and an equilibrium declared by the env's equilibrium()"

    def fits(self, env: AbstractEnv) -> bool:
        return isinstance(env.action_space, diffsim.Box) and env.equilibrium() is not None

    def run(self, recipe, seeds, *, quick, log):
        env = recipe.make_env()
        started = time.perf_counter()
        controller = lqr_for(env)
        seconds = time.perf_counter() - started
        log(f"lqr: gain {jnp.round(controller.gain, 3).tolist()} in {seconds:.2f} s")
        return _every_seed(controller, env, seeds, seconds)

    def template(self, recipe, env, spec):
        return lqr_for(env)

    def describe(self, recipe, env, quick):
        return "LQR about the declared equilibrium, Q and R from the running cost's Hessians"


lqr = LQRMethod()
"""The ``lqr`` method instance (the entry point ``diffsim.methods: lqr``)."""


MPC_DEFAULTS = {"horizon": 20, "iterations": 30}
"""MPC's settings where a recipe's ``method_options["mpc"]`` gives none; the optimiser
defaults to Adam with a step of 5 % of the action range."""


def mpc_for(recipe: Recipe, env: AbstractEnv) -> MPC:
    """The MPC of ``diffsim compare ENV --methods mpc``: planning through ``env`` itself,
    with ``recipe.method_options["mpc"]`` (keys ``horizon``, ``iterations``,
    ``optimiser``, ``objective``) over :data:`MPC_DEFAULTS`; the objective defaults to
    the recipe's training objective (a shaped loss where the env's cost has no gradient),
    else :func:`diffsim.mean_step_cost`."""
    options = MPC_DEFAULTS | recipe.method_options.get("mpc", {})
    if "optimiser" not in options:
        space = env.action_space
        span = jnp.where(space.bounded, space.high - space.low, 2.0)
        options["optimiser"] = optax.adam(0.05 * float(jnp.max(span)))
    if "objective" not in options:
        options["objective"] = recipe.train_options.get("objective", diffsim.mean_step_cost)
    return MPC(env, **options)


class MPCMethod(AbstractMethod):
    """``diffsim compare ENV --methods mpc``: receding-horizon control through the env's own
    model (:func:`mpc_for`), given the exact state. Nothing is trained: one controller
    for every seed, evaluated once by the same protocol; ``compare`` reports its compute
    time per control step beside the policies'. An MPC step costs ``iterations``
    gradient evaluations of a ``horizon``-step rollout, so evaluating it on 1000
    episodes takes minutes where a policy takes seconds: ``--episodes`` trims it (for
    every method alike).

    Example:
        ```python
        diffsim.compare("pendulum", methods=["dp", "mpc"], seeds=2, episodes=100)
        ```
    """

    name: str = "mpc"
    trained: bool = False
    by_default: bool = False
    needs: str = "continuous actions"

    def fits(self, env: AbstractEnv) -> bool:
        return isinstance(env.action_space, diffsim.Box)

    def check(self, recipe: Recipe, env: AbstractEnv) -> None:
        mpc_for(recipe, env)

    def run(self, recipe, seeds, *, quick, log):
        env = recipe.make_env()
        return _every_seed(mpc_for(recipe, env), env, seeds, 0.0)

    def template(self, recipe, env, spec):
        return mpc_for(recipe, env)

    def describe(self, recipe, env, quick):
        mpc = mpc_for(recipe, env)
        objective = getattr(mpc.objective, "__name__", type(mpc.objective).__name__)
        return (
            f"MPC through the env's model, exact state: horizon {mpc.horizon}, "
            f"{mpc.iterations} optimiser updates per step, warm-started, objective {objective}"
        )


mpc = MPCMethod()
"""The ``mpc`` method instance (the entry point ``diffsim.methods: mpc``)."""


OPTIMAL_DEFAULTS = {"grid": (401, 401), "actions": 41}
"""``optimal``'s grid where a recipe's ``method_options["optimal"]`` gives none (quick mode:
``(101, 101)`` nodes and 21 controls). On the pendulum, refining 401 x 401 nodes to
801 x 801 changes the mean return by 0.3 (``benchmarks/optimal.py``)."""


def _optimal_spec(recipe: Recipe, quick: bool) -> dict:
    options = OPTIMAL_DEFAULTS | recipe.method_options.get("optimal", {})
    grid, actions = ((101, 101), 21) if quick else (options["grid"], options["actions"])
    return {"grid": list(grid), "actions": actions}


def optimal_for(recipe: Recipe, env: AbstractEnv, spec: dict) -> ValueIteration:
    """The unsolved :class:`ValueIteration` on the grid of ``spec`` (keys ``grid``,
    ``actions``), with the ranges of ``recipe.method_options["optimal"]["bounds"]``."""
    bounds = recipe.method_options.get("optimal", {}).get("bounds")
    return ValueIteration.unsolved(
        env, bounds, grid=tuple(spec["grid"]), actions=spec["actions"]
    )


class OptimalMethod(AbstractMethod):
    """``diffsim compare ENV --methods optimal``: the task's optimum, computed by value
    iteration on a grid of states (:class:`ValueIteration`) and run as a greedy one-step
    look-ahead through the env's own transition, evaluated by the same protocol on the
    same episodes. Nothing is trained: one controller for every seed. Its row is the
    physical limit, and ``compare`` reports every other method's gap to it. For envs with
    a 2-dimensional state and one bounded control; a recipe gives the ranges of its
    non-angle states as ``method_options["optimal"] = {"bounds": {name: (low, high)}}``
    (and may set ``grid`` and ``actions``, over :data:`OPTIMAL_DEFAULTS`).

    Example:
        ```python
        diffsim.compare("pendulum", methods=["dp", "optimal"], seeds=2, quick=True)
        ```
    """

    name: str = "optimal"
    trained: bool = False
    by_default: bool = False
    needs: str = "a 2-dimensional state and one bounded continuous control"

    def fits(self, env: AbstractEnv) -> bool:
        space = env.action_space
        return (
            env.state_size == 2
            and isinstance(space, diffsim.Box)
            and space.control_size == 1
            and bool(jnp.all(space.bounded))
        )

    def check(self, recipe: Recipe, env: AbstractEnv) -> None:
        optimal_for(recipe, env, _optimal_spec(recipe, quick=True))

    def run(self, recipe, seeds, *, quick, log):
        env = recipe.make_env()
        spec = _optimal_spec(recipe, quick)
        bounds = recipe.method_options.get("optimal", {}).get("bounds")
        started = time.perf_counter()
        controller = ValueIteration.solve(
            env, bounds, grid=tuple(spec["grid"]), actions=spec["actions"]
        )
        seconds = time.perf_counter() - started
        log(f"optimal: value iteration on {spec['grid']} nodes, {spec['actions']} controls, "
            f"{seconds:.1f} s")
        return [
            MethodRun(seed, controller, env, 0, seconds, 0.0, [], [], [], spec) for seed in seeds
        ]

    def template(self, recipe, env, spec):
        return optimal_for(recipe, env, spec or _optimal_spec(recipe, quick=False))

    def describe(self, recipe, env, quick):
        spec = _optimal_spec(recipe, quick)
        return (
            f"value iteration on {spec['grid'][0]} x {spec['grid'][1]} states and "
            f"{spec['actions']} controls, greedy look-ahead: the optimum"
        )


optimal = OptimalMethod()
"""The ``optimal`` method instance (the entry point ``diffsim.methods: optimal``)."""
