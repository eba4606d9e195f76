"""Model-predictive control: receding-horizon gradient descent on an open-loop plan,
through the env's own differentiable model."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, ArrayLike, Float, Real

import diffsim
from diffsim import AbstractEnv, AbstractStatefulController, Box, DiffsimError, Trajectory

from ._checks import Integer, is_integer

Objective = Callable[[AbstractEnv, Trajectory], Float[Array, ""]]


class MPCState(eqx.Module):
    """The controller's memory between control steps: the controller outputs planned for
    the next ``horizon`` steps, shape ``(horizon, k)``, within the action bounds. After each
    step it is shifted by one step (the last entry repeated): the warm start of the next
    optimisation.

    Example:
        ```python
        import jax.numpy as jnp
        import optax
        from diffsim.controllers import MPC
        from diffsim.envs import Pendulum

        env = Pendulum(start=(0.3, 0.3), episode_steps=20)
        mpc = MPC(env, horizon=10, iterations=5, optimiser=optax.adam(0.1))
        state = mpc.init()                    # MPCState(plan=zeros (10, 1))
        u, state = mpc.step(state, 0.0, jnp.array([0.2, 0.0]))
        ```
    """

    plan: Float[Array, "horizon k"]


class _OpenLoop(eqx.Module):
    """Replays ``outputs[i]`` at the ``i``-th control instant after ``start_time``."""

    outputs: Float[Array, "horizon k"]
    start_time: Float[Array, ""]
    dt: Float[Array, ""]

    def __call__(self, t, observation):
        index = jnp.round((t - self.start_time) / self.dt).astype(jnp.int32)
        return self.outputs[jnp.clip(index, 0, self.outputs.shape[0] - 1)]


class MPC(AbstractStatefulController):
    """Receding-horizon control through ``env`` (the model): at every control step,
    ``iterations`` updates of ``optimiser`` on a plan of ``horizon`` controller outputs,
    minimising ``objective(env, trajectory)`` of the ``horizon``-step open-loop rollout from
    the current state (default :func:`diffsim.mean_step_cost`, the env's cost per step);
    the first output is applied, the plan shifted by one step and kept, warm-starting the
    next step. Each update is projected onto the action bounds (projected gradient
    descent), so the plan never leaves them.

    MPC is a :class:`diffsim.AbstractStatefulController` (``full_state = True``): it plans
    from the exact state ``y``, not from an observation, and carries its plan from step to
    step (:meth:`init`, :meth:`step`, like an optax transformation). So
    :func:`diffsim.rollout`, :func:`diffsim.evaluate` (the same fixed start states, returns
    with terminal costs), ``diffsim eval`` and ``diffsim compare --methods mpc`` run it as
    they run a policy. Everything is jittable.

    Example::

        mpc = MPC(Pendulum(), horizon=40, iterations=30, optimiser=optax.adam(0.1))
        print(diffsim.evaluate(Pendulum(), mpc, episodes=50).mean)
        diffsim.seconds_per_step(Pendulum(), mpc)   # milliseconds, against microseconds
    """

    full_state: ClassVar[bool] = True

    env: AbstractEnv
    horizon: int = eqx.field(static=True)
    iterations: int = eqx.field(static=True)
    optimiser: optax.GradientTransformation = eqx.field(static=True)
    objective: Objective = eqx.field(static=True)

    def __init__(
        self,
        env: AbstractEnv,
        horizon: Integer,
        iterations: Integer,
        optimiser: optax.GradientTransformation,
        objective: Objective = diffsim.mean_step_cost,
    ):
        """
        Args:
            env: the model planned through (it may differ from the env it controls).
            horizon: control steps planned ahead (>= 1).
            iterations: optimiser updates per control step (>= 1).
            optimiser: any optax transformation, freshly initialised at every step.
            objective: ``objective(env, trajectory) -> scalar`` of the planned window, as
                for :class:`diffsim.Trainer` (e.g. a shaped loss where the env's cost has no
                gradient).
        """
        if not isinstance(env, AbstractEnv):
            raise DiffsimError(f"MPC plans through a diffsim.AbstractEnv, got {env!r:.60}")
        for name, value in (("horizon", horizon), ("iterations", iterations)):
            if not is_integer(value) or value < 1:
                raise DiffsimError(f"MPC {name} must be a positive integer, got {value!r}")
        if not isinstance(optimiser, optax.GradientTransformation):
            raise DiffsimError(
                f"MPC optimiser must be an optax.GradientTransformation such as "
                f"optax.adam(0.1), got {optimiser!r:.60}"
            )
        if not isinstance(env.action_space, Box):
            raise DiffsimError(
                f"MPC plans continuous controls (a Box action space); {type(env).__name__} "
                f"has {type(env.action_space).__name__}"
            )
        if not callable(objective):
            raise DiffsimError(
                f"MPC objective must be callable as objective(env, trajectory), got "
                f"{objective!r:.60}"
            )
        self.env, self.horizon, self.iterations = env, int(horizon), int(iterations)
        self.optimiser, self.objective = optimiser, objective

    def init(self) -> MPCState:
        """The plan before the first step: the middle of the action bounds (0 if unbounded)."""
        size = self.env.action_space.controller_size
        space = self.env.action_space
        middle = jnp.where(space.bounded, (space.high + space.low) / 2, 0.0)
        return MPCState(plan=jnp.broadcast_to(middle, (self.horizon, size)))

    def project(self, plan: Float[Array, "horizon k"]) -> Float[Array, "horizon k"]:
        """``plan`` clipped into the action bounds (projected gradient descent)."""
        space = self.env.action_space
        return jnp.clip(plan, space.low[None], space.high[None])

    def plan_cost(
        self,
        plan: Float[Array, "horizon k"],
        t: Real[ArrayLike, ""],
        y: Float[Array, " n"],
    ) -> Float[Array, ""]:
        """The objective of the open-loop ``plan`` applied from state ``y`` at time ``t``
        (s) of the episode (the episode's horizon and clock are respected)."""
        dt = jnp.asarray(self.env.control_dt, y.dtype)
        step = jnp.round(jnp.asarray(t, y.dtype) / dt).astype(jnp.int32)
        opened = _OpenLoop(plan, step * dt, dt)
        trajectory = diffsim.rollout(self.env, opened, y, num_steps=self.horizon, start_step=step)
        return self.objective(self.env, trajectory)

    @eqx.filter_jit
    def optimise(
        self,
        plan: Float[Array, "horizon k"],
        t: Real[ArrayLike, ""],
        y: Float[Array, " n"],
    ) -> tuple[Float[Array, "horizon k"], Float[Array, " iterations"]]:
        """``iterations`` optimiser updates of ``plan`` from ``y`` at time ``t`` (s): the
        improved plan and the objective before each update."""
        cost_and_grad = jax.value_and_grad(self.plan_cost)

        def update(carry, _):
            plan, opt_state = carry
            cost, grad = cost_and_grad(plan, t, y)
            updates, opt_state = self.optimiser.update(grad, opt_state, plan)
            return (self.project(optax.apply_updates(plan, updates)), opt_state), cost

        (plan, _), costs = jax.lax.scan(
            update, (plan, self.optimiser.init(plan)), None, length=self.iterations
        )
        return plan, costs

    def step(
        self, state: MPCState, t: Real[ArrayLike, ""], y: Float[Array, " n"]
    ) -> tuple[Float[Array, " k"], MPCState]:
        """The controller output to apply at time ``t`` (s) in state ``y``, and the state
        for the next step (the optimised plan shifted by one)."""
        plan, _ = self.optimise(state.plan, t, y)
        shifted = jnp.concatenate([plan[1:], plan[-1:]])
        return plan[0], MPCState(plan=shifted)
