"""Classical controllers as methods of ``diffsim compare`` (registered under the entry-point
group ``diffsim.methods`` in ``pyproject.toml``)."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp

import diffsim
from diffsim import AbstractEnv, AbstractMethod, DiffsimError, MethodRun, Recipe

from ._lqr import LQR


def cost_weights(env: AbstractEnv, y_eq, u_eq) -> tuple[jax.Array, jax.Array]:
    """``(Q, R)``: the Hessians of the env's running cost in the state and in the control
    at ``(y_eq, u_eq)``, each replaced by the identity where it vanishes (a constant cost
    such as the cart-pole's -1 per step says nothing about either)."""

    def weight(matrix):
        if bool(jnp.any(matrix != 0)):
            return matrix
        return jnp.eye(matrix.shape[0], dtype=matrix.dtype)

    Q = jax.hessian(lambda y: env.running_cost(0.0, y, u_eq))(y_eq)
    R = jax.hessian(lambda u: env.running_cost(0.0, y_eq, u))(u_eq)
    return weight(Q), weight(R)


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

    name = "lqr"
    trained = False

    def check(self, recipe: Recipe, env: AbstractEnv) -> None:
        if not isinstance(env.action_space, diffsim.Box):
            raise DiffsimError(
                f"lqr needs continuous actions; {recipe.name} has "
                f"{type(env.action_space).__name__} actions (try a continuous variant)"
            )
        _equilibrium(env)

    def run(self, recipe, seeds, *, quick, log):
        env = recipe.make_env()
        started = time.perf_counter()
        controller = lqr_for(env)
        seconds = time.perf_counter() - started
        log(f"lqr: gain {jnp.round(controller.gain, 3).tolist()} in {seconds:.2f} s")
        return [MethodRun(seed, controller, env, 0, seconds, 0.0, [], [], [], {}) for seed in seeds]

    def template(self, recipe, env, spec):
        return lqr_for(env)

    def describe(self, recipe, env, quick):
        return "LQR about the declared equilibrium, Q and R from the running cost's Hessians"


lqr = LQRMethod()
"""The ``lqr`` method instance (the entry point ``diffsim.methods: lqr``)."""
