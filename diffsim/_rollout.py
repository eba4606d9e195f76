"""Closed-loop simulation: one control step, and whole rollouts as a ``lax.scan``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
from jaxtyping import Array, Bool, Float, PRNGKeyArray, Scalar

from ._env import AbstractEnv
from ._errors import DiffsimError
from ._integrators import AbstractIntegrator, EnvDiscretisation
from ._spaces import AbstractEstimator

Controller = Callable[[Scalar, Float[Array, " o"]], Float[Array, " k"]]
"""Anything callable as ``controller(t, observation) -> output``."""


class HeldControl(eqx.Module):
    """The env's vector field under a control held constant over the interval (``args``)."""

    env: AbstractEnv

    def __call__(self, t, y, u):
        return self.env.vector_field(t, y, u)


class Feedback(eqx.Module):
    """The closed loop with the controller inside the vector field (continuous feedback)."""

    env: AbstractEnv
    controller: Controller
    estimator: AbstractEstimator | None

    def control(self, t, y, key=None):
        output = self.controller(t, self.env.observe(y))
        return self.env.action_space.to_control(output, self.estimator, key=key)

    def __call__(self, t, y, args):
        return self.env.vector_field(t, y, self.control(t, y, args))


class Trajectory(eqx.Module):
    """A simulated episode (or window), leading axes are batch axes when vmapped.

    ``alive[i]`` says whether the episode was still running when step ``i`` began; costs
    of later steps are not counted and states after termination stay frozen.
    """

    times: Float[Array, " T+1"]
    states: Float[Array, "T+1 n"]
    controls: Float[Array, "T m"]
    costs: Float[Array, " T"]
    alive: Bool[Array, " T"]
    terminated: Bool[Array, ""]

    @property
    def final_state(self) -> Float[Array, " n"]:
        return self.states[..., -1, :]

    @property
    def total_cost(self) -> Float[Array, ""]:
        """Summed running cost over the steps taken (terminal cost not included)."""
        return jnp.sum(jnp.where(self.alive, self.costs, 0.0), axis=-1)

    @property
    def episode_return(self) -> Float[Array, ""]:
        """RL-style return: minus the total cost."""
        return -self.total_cost

    @property
    def length(self) -> Float[Array, ""]:
        """Number of steps taken before termination (or the horizon)."""
        return jnp.sum(self.alive, axis=-1)


def _integrator_for(env: AbstractEnv, integrator: AbstractIntegrator | None):
    return env.default_integrator() if integrator is None else integrator


def _check_state(env: AbstractEnv, y: Array, name: str) -> Array:
    expected = jax.eval_shape(env.initial_state, jr.key(0)).shape
    if jnp.shape(y) != expected:
        raise DiffsimError(
            f"{name} has shape {jnp.shape(y)} but {type(env).__name__} states have shape "
            f"{expected} (use jax.vmap for batches)"
        )
    return eqx.error_if(y, ~jnp.all(jnp.isfinite(y)), f"{name} contains NaN or inf")


def step(
    env: AbstractEnv,
    t: Scalar,
    y: Float[Array, " n"],
    u: Float[Array, " m"],
    *,
    integrator: AbstractIntegrator | None = None,
) -> tuple[Float[Array, " n"], Scalar, Bool[Array, ""]]:
    """One control interval under zero-order hold: the transition RL sees.

    Args:
        t: time since the episode started (s).
        y: state, shape ``(n,)``.
        u: applied control, shape ``(m,)`` (see ``env.action_space.from_action`` to map
            an RL action to it).

    Returns:
        ``(next_state, cost, terminated)``; the cost is charged at ``(t, y, u)``.
    """
    integrator = _integrator_for(env, integrator)
    y_next = integrator.integrate(HeldControl(env), t, t + env.control_dt, y, u)
    return y_next, env.running_cost(t, y, u), env.termination(y_next)


def rollout(
    env: AbstractEnv,
    controller: Controller,
    y0: Float[Array, " n"],
    *,
    num_steps: int | None = None,
    t0: Scalar = 0.0,
    integrator: AbstractIntegrator | None = None,
    mode: Literal["zoh", "feedback"] = "zoh",
    estimator: AbstractEstimator | None = None,
    key: PRNGKeyArray | None = None,
) -> Trajectory:
    """Simulate the closed loop from ``y0`` for ``num_steps`` control intervals.

    Args:
        env: the environment.
        controller: ``controller(t, observation) -> output``; outputs become controls
            through ``env.action_space``.
        y0: initial state, shape ``(n,)``; vmap for batches.
        num_steps: control steps (default ``env.episode_steps``).
        t0: time at ``y0`` since the episode started (s).
        integrator: how each interval is solved (default ``env.default_integrator()``).
        mode: ``"zoh"`` holds the control over each interval (gym-like);
            ``"feedback"`` puts the controller inside the vector field (continuous time).
            Costs and recorded controls are taken at the control instants in both.
        estimator: differentiable estimator for discrete action spaces (training);
            ``None`` takes hard arg-max choices (evaluation).
        key: randomness for stochastic estimators.

    Returns:
        A :class:`Trajectory` with ``num_steps + 1`` states.
    """
    num_steps = env.episode_steps if num_steps is None else num_steps
    integrator = _integrator_for(env, integrator)
    if mode == "feedback" and isinstance(integrator, EnvDiscretisation):
        raise DiffsimError("EnvDiscretisation is a zero-order-hold map: use mode='zoh'")
    if mode not in ("zoh", "feedback"):
        raise DiffsimError(f"mode must be 'zoh' or 'feedback', got {mode!r}")
    y0 = _check_state(env, y0, "initial state")
    if key is None:
        if estimator is not None and estimator.needs_key:
            raise DiffsimError(f"{type(estimator).__name__} needs key= in rollout")
        keys = None
    else:
        keys = jr.split(key, num_steps)
    t0 = jnp.asarray(t0, y0.dtype)
    closed_loop = Feedback(env, controller, estimator)

    def body(carry, step_key):
        t, y, alive = carry
        u = closed_loop.control(t, y, step_key)
        if mode == "zoh":
            y_next, cost, done = step(env, t, y, u, integrator=integrator)
        else:
            y_next = integrator.integrate(closed_loop, t, t + env.control_dt, y, step_key)
            cost, done = env.running_cost(t, y, u), env.termination(y_next)
        y_next = jnp.where(alive, y_next, y)
        return (t + env.control_dt, y_next, alive & ~done), (y_next, u, cost, alive)

    (_, _, still_alive), (ys, us, costs, alive) = jax.lax.scan(
        body, (t0, y0, jnp.array(True)), keys, length=num_steps
    )
    times = t0 + env.control_dt * jnp.arange(num_steps + 1, dtype=y0.dtype)
    return Trajectory(
        times=times,
        states=jnp.concatenate([y0[None], ys]),
        controls=us,
        costs=costs,
        alive=alive,
        terminated=~still_alive,
    )
