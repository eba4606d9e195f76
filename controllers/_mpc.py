"""Model-predictive control: receding-horizon gradient descent on an open-loop plan,
through the env's own differentiable model."""

from __future__ import annotations

import time
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, ArrayLike, Float, Int

import diffsim
from diffsim import AbstractEnv, Box, DiffsimError, Evaluation, Trajectory

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
        u, state = mpc.step(state, 0, jnp.array([0.2, 0.0]))
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


class _Hold(eqx.Module):
    output: Float[Array, " k"]

    def __call__(self, t, observation):
        return self.output


class MPC(eqx.Module):
    """Receding-horizon control through ``env`` (the model): at every control step,
    ``iterations`` updates of ``optimiser`` on a plan of ``horizon`` controller outputs,
    minimising ``objective(env, trajectory)`` of the ``horizon``-step open-loop rollout from
    the current state (default :func:`diffsim.mean_step_cost`, the env's cost per step);
    the first output is applied, the plan shifted by one step and kept, warm-starting the
    next step. Each update is projected onto the action bounds (projected gradient
    descent), so the plan never leaves them.

    MPC plans from the exact state ``y``, not from an observation, so it is not a
    ``controller(t, observation)``: it has explicit state (:meth:`init`, :meth:`step`, like
    an optax transformation), its own closed-loop :meth:`rollout` (a ``lax.scan`` over
    :func:`diffsim.rollout` steps, returning a :class:`diffsim.Trajectory`) and
    :meth:`evaluate`, the protocol of :func:`diffsim.evaluate` (the same fixed start states
    of :func:`diffsim.initial_states`, returns with terminal costs). All are jittable.

    Example::

        mpc = MPC(Pendulum(), horizon=40, iterations=30, optimiser=optax.adam(0.1))
        print(mpc.evaluate(Pendulum(), episodes=50).mean)
    """

    env: AbstractEnv
    horizon: int = eqx.field(static=True)
    iterations: int = eqx.field(static=True)
    optimiser: optax.GradientTransformation = eqx.field(static=True)
    objective: Objective = eqx.field(static=True)

    def __init__(
        self,
        env: AbstractEnv,
        horizon: int,
        iterations: int,
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
        for name, value in (("horizon", horizon), ("iterations", iterations)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise DiffsimError(f"MPC {name} must be a positive integer, got {value!r}")
        if not isinstance(env.action_space, Box):
            raise DiffsimError(
                f"MPC plans continuous controls (a Box action space); {type(env).__name__} "
                f"has {type(env.action_space).__name__}"
            )
        if not isinstance(optimiser, optax.GradientTransformation):
            raise DiffsimError(f"optimiser must be an optax transformation, got {optimiser!r}")
        self.env, self.horizon, self.iterations = env, horizon, iterations
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
        step: Int[ArrayLike, ""],
        y: Float[Array, " n"],
    ) -> Float[Array, ""]:
        """The objective of the open-loop ``plan`` applied from state ``y`` at control step
        ``step`` of the episode."""
        dt = jnp.asarray(self.env.control_dt, y.dtype)
        start_time = jnp.asarray(step, y.dtype) * dt
        opened = _OpenLoop(plan, start_time, dt)
        trajectory = diffsim.rollout(
            self.env, opened, y, num_steps=self.horizon, start_step=jnp.asarray(step, jnp.int32)
        )
        return self.objective(self.env, trajectory)

    @eqx.filter_jit
    def optimise(
        self,
        plan: Float[Array, "horizon k"],
        step: Int[ArrayLike, ""],
        y: Float[Array, " n"],
    ) -> tuple[Float[Array, "horizon k"], Float[Array, " iterations"]]:
        """``iterations`` optimiser updates of ``plan`` from ``y``: the improved plan and
        the objective before each update."""
        cost_and_grad = jax.value_and_grad(self.plan_cost)

        def update(carry, _):
            plan, opt_state = carry
            cost, grad = cost_and_grad(plan, step, y)
            updates, opt_state = self.optimiser.update(grad, opt_state, plan)
            return (self.project(optax.apply_updates(plan, updates)), opt_state), cost

        (plan, _), costs = jax.lax.scan(
            update, (plan, self.optimiser.init(plan)), None, length=self.iterations
        )
        return plan, costs

    @eqx.filter_jit
    def step(
        self, state: MPCState, step: Int[ArrayLike, ""], y: Float[Array, " n"]
    ) -> tuple[Float[Array, " k"], MPCState]:
        """The controller output to apply at control step ``step`` in state ``y``, and the
        state for the next step (the optimised plan shifted by one)."""
        plan, _ = self.optimise(state.plan, step, y)
        shifted = jnp.concatenate([plan[1:], plan[-1:]])
        return plan[0], MPCState(plan=shifted)

    def rollout(
        self, env: AbstractEnv, y0: ArrayLike, *, num_steps: int | None = None
    ) -> Trajectory:
        """The closed loop of MPC on ``env`` from ``y0`` (shape ``(n,)``) for ``num_steps``
        control steps (default ``env.episode_steps``), as :func:`diffsim.rollout` reports
        it: states frozen and costs not counted after a termination, the terminal cost
        charged once."""
        num_steps = env.episode_steps if num_steps is None else num_steps
        if isinstance(num_steps, bool) or not isinstance(num_steps, int) or num_steps < 1:
            raise DiffsimError(f"num_steps must be a positive integer, got {num_steps!r}")
        y0 = jnp.asarray(y0)
        y0 = y0 if jnp.issubdtype(y0.dtype, jnp.floating) else y0.astype(float)

        def body(carry, k):
            y, alive, terminal_cost, end_time, state = carry
            output, state = self.step(state, k, y)
            one = diffsim.rollout(env, _Hold(output), y, num_steps=1, start_step=k)
            terminal_cost = terminal_cost + jnp.where(alive, one.terminal_cost, 0.0)
            end_time = jnp.where(alive, one.end_time, end_time)
            y_next = jnp.where(alive, one.final_state, y)
            carry = (y_next, alive & ~one.terminated, terminal_cost, end_time, state)
            return carry, (y_next, one.controls[0], one.costs[0], alive)

        zero = jnp.zeros((), y0.dtype)
        init = (y0, jnp.array(True), zero, zero, self.init())
        steps = jnp.arange(num_steps, dtype=jnp.int32)
        (_, still_alive, terminal_cost, end_time, _), (ys, us, costs, alive) = jax.lax.scan(
            body, init, steps
        )
        return Trajectory(
            costs=costs,
            controls=us,
            alive=alive,
            times=jnp.arange(num_steps + 1, dtype=y0.dtype) * env.control_dt,
            states=jnp.concatenate([y0[None], ys]),
            terminated=~still_alive,
            terminal_cost=terminal_cost,
            end_time=end_time,
        )

    def evaluate(self, env: AbstractEnv, *, episodes: int = 1000, seed: int = 0) -> Evaluation:
        """Returns of MPC on ``episodes`` full episodes of ``env`` from the fixed start
        states ``diffsim.initial_states(env, episodes, seed)``: :func:`diffsim.evaluate`'s
        protocol, for a controller with state.

        Raises:
            DiffsimError: for ``episodes`` < 1 or a non-finite return.
        """
        if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
            raise DiffsimError(f"episodes must be a positive integer, got {episodes!r}")
        states = diffsim.initial_states(env, episodes, seed)
        returns, lengths = _episodes(self, env, states)
        if not bool(jnp.all(jnp.isfinite(returns))):
            bad = int(jnp.sum(~jnp.isfinite(returns)))
            raise DiffsimError(f"{bad} of {episodes} MPC episodes gave a non-finite return")
        return Evaluation(returns=returns, lengths=lengths.astype(returns.dtype), seed=seed)


@eqx.filter_jit
def _episodes(mpc: MPC, env: AbstractEnv, states: Float[Array, "episodes n"]):
    trajectories = jax.vmap(lambda y: mpc.rollout(env, y))(states)
    return trajectories.episode_return, trajectories.length


def seconds_per_call(function: Callable, *args, repeats: int = 20) -> float:
    """Median wall-clock seconds of one call of ``eqx.filter_jit(function)(*args)``,
    compilation excluded (one warm-up call first): the per-step compute time of a
    controller, e.g. ``seconds_per_call(mpc.step, mpc.init(), 0, y)`` or
    ``seconds_per_call(policy, 0.0, observation)``."""
    compiled = eqx.filter_jit(function)
    jax.block_until_ready(compiled(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        times.append(time.perf_counter() - start)
    return float(sorted(times)[len(times) // 2])
