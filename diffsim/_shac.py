"""Short-horizon actor-critic (SHAC): backpropagation through short windows of carried
episodes, what lies beyond each window bootstrapped by a learned value.

Xu et al., "Accelerated Policy Learning with Parallel Differentiable Simulation", ICLR 2022.
The actor is trained by a :class:`diffsim.Trainer` (its windows, episodes, devices and
estimator); the critic is one more :class:`diffsim.TrainState`, fitted by
:func:`optimiser_step` like everything else in diffsim.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
from jaxtyping import Array, Bool, Float, PRNGKeyArray

from . import _validate as validate
from ._env import AbstractEnv
from ._errors import DiffsimError
from ._rollout import Controller, Trajectory
from ._sharding import Devices
from ._spaces import AbstractEstimator
from ._state import TrainState, init_state, optimiser_step, stop_gradient, where_mask
from ._train import Trainer


class ValueMLP(eqx.Module):
    """A state-value network ``observation -> value``: the critic of :class:`SHAC`, in the
    env's cost units (the discounted cost to go, lower is better).

    ``observation_scale`` divides the observations and ``value_scale`` multiplies the
    network's output (both fixed, not trained), so that the network sees and produces
    numbers of order one.

    Example:
        ```python
        import jax.numpy as jnp
        import jax.random as jr
        import diffsim

        env = diffsim.envs.Pendulum()
        critic = diffsim.ValueMLP.for_env(env, observation_scale=(1, 1, 8), value_scale=100.0,
                                          key=jr.key(0))
        critic(env.observe(jnp.array([jnp.pi, 0.0])))   # a scalar
        ```
    """

    mlp: eqx.nn.MLP
    observation_scale: Float[Array, " o"] | None
    value_scale: float = eqx.field(static=True)

    def __init__(
        self,
        observation_size: int,
        *,
        width: int = 64,
        depth: int = 2,
        observation_scale: Sequence[float | int] | Float[Array, " o"] | None = None,
        value_scale: float = 1.0,
        key: PRNGKeyArray,
    ):
        validate.positive_int("observation_size", observation_size)
        validate.positive_int("width", width)
        validate.positive_int("depth", depth)
        validate.positive_float("value_scale", value_scale)
        validate.prng_key("key", key)
        if observation_scale is not None:
            scale = np.asarray(observation_scale, float)
            if scale.shape != (observation_size,) or not np.all(scale > 0):
                raise DiffsimError(
                    f"observation_scale must be {observation_size} positive numbers, got "
                    f"{observation_scale}"
                )
            observation_scale = jnp.asarray(scale, float)
        self.mlp = eqx.nn.MLP(observation_size, "scalar", width, depth, jax.nn.tanh, key=key)
        self.observation_scale = observation_scale
        self.value_scale = float(value_scale)

    @classmethod
    def for_env(cls, env: AbstractEnv, *, key: PRNGKeyArray, **kwargs) -> ValueMLP:
        """A value network sized for ``env``'s observations."""
        if not isinstance(env, AbstractEnv):
            raise DiffsimError(
                f"ValueMLP.for_env needs a diffsim.AbstractEnv, got {type(env).__name__}"
            )
        return cls(env.observation_size, key=key, **kwargs)

    def __call__(self, observation: Float[Array, " o"]) -> Float[Array, ""]:
        if self.observation_scale is not None:
            observation = observation / jax.lax.stop_gradient(self.observation_scale)
        return self.value_scale * self.mlp(observation)


def lambda_returns(
    costs: Float[Array, " T"],
    values: Float[Array, " T+1"],
    ends: Bool[Array, " T"],
    end_costs: Float[Array, " T"],
    gamma: float,
    lam: float,
) -> Float[Array, " T"]:
    """TD(lambda) targets of one window, in cost units:
    ``G_t = c_t + gamma ((1 - lam) V(s_{t+1}) + lam G_{t+1})``, ``G_{T-1} = c_{T-1} +
    gamma V(s_T)`` (the value bootstraps where the window cuts the episode), and
    ``G_t = c_t + end_costs[t]`` where the episode terminates at step ``t`` (nothing
    beyond it).

    Args:
        costs: the running cost of each step, shape ``(T,)``.
        values: the (target) critic's values of the states ``s_0 .. s_T``, ``(T+1,)``.
        ends: whether the episode terminates at step ``t``, ``(T,)``.
        end_costs: the terminal cost charged where it terminates, ``(T,)``.
        gamma: the discount per control step.
        lam: the TD(lambda) weight (0: one-step TD, 1: Monte Carlo up to the window).

    Returns:
        The targets, shape ``(T,)``.
    """

    def back(later, step):
        cost, next_value, end, end_cost = step
        target = cost + gamma * ((1 - lam) * next_value + lam * later)
        target = jnp.where(end, cost + end_cost, target)
        return target, target

    last = values[-1]  # G_T := V(s_T): the last step's target is c + gamma V(s_T)
    _, targets = jax.lax.scan(back, last, (costs, values[1:], ends, end_costs), reverse=True)
    return targets


class SHACState(eqx.Module):
    """The state of :class:`SHAC` training: the actor's :class:`diffsim.TrainState` (env,
    controller, optimiser state, carried episodes), the critic's (the critic and its
    optimiser state; its carry is the target critic's arrays).

    Example:
        ```python
        import jax.random as jr
        import optax
        import diffsim

        env = diffsim.envs.Pendulum()
        shac = diffsim.SHAC(optax.adam(2e-3), optax.adam(3e-3), batch_size=4, window=25)
        state = shac.init(env, diffsim.MLPPolicy.for_env(env, key=jr.key(0)), jr.key(1))
        state, metrics = shac.step(state)
        int(state.iteration), shac.critic(state)    # 1, the critic after 16 updates
        ```
    """

    actor: TrainState
    critic: TrainState

    @property
    def iteration(self):
        """Updates taken."""
        return self.actor.iteration

    @property
    def model(self):
        """``(env, controller)``, as :attr:`diffsim.TrainState.model`."""
        return self.actor.model


StepCosts = Callable[[AbstractEnv, Trajectory], Float[Array, " T"]]
"""``cost(env, trajectory) -> costs``: the cost of each step of one window, shape ``(T,)``."""


def env_costs(env: AbstractEnv, trajectory: Trajectory) -> Float[Array, " T"]:
    """The default step costs of :class:`SHAC`: the env's own running costs
    (``trajectory.costs``).

    Args:
        env: the environment (unused; part of the signature).
        trajectory: one window of an episode.

    Returns:
        The running cost of each step, shape ``(T,)``.
    """
    return trajectory.costs


class SHAC(eqx.Module):
    """Short-horizon actor-critic: each ``step`` simulates ``batch_size`` carried episodes
    for a ``window`` of control steps, updates the controller on the window's discounted
    cost plus ``gamma ** window`` times the target critic's value of where each episode
    stands (zero where it terminated; used where the window or the horizon cut it),
    differentiated through the simulation, then fits the critic ``critic_updates`` times
    to the window's TD(lambda) targets, and moves the target critic toward it
    (``optax.incremental_update`` with ``target_step_size``).

    The actor side is a :class:`diffsim.Trainer` with ``carry_state=True`` (same
    ``batch_size``, ``window``, ``horizon``, ``estimator``, ``devices``); ``init``/``step``
    are pure, so ``jax.vmap`` trains many seeds at once, as for the Trainer.

    Args:
        optimiser: the actor's optax transformation.
        critic_optimiser: the critic's.
        batch_size: episodes simulated in parallel.
        window: control steps per window (SHAC's paper: 32); must divide a training
            episode (``horizon``).
        horizon: control steps after which a training episode is cut and a fresh one
            starts, as for :class:`diffsim.Trainer` (default: the env's ``episode_steps``);
            the critic values the state where it was cut.
        gamma: discount per control step.
        lam: TD(lambda) weight of the critic's targets.
        critic_updates: critic updates per step.
        critic_batch_size: episodes of the window each critic update fits, drawn afresh
            without replacement each update (SHAC's paper fits minibatches); default all
            ``batch_size`` of them.
        target_step_size: how far the target critic moves to the critic per step.
        critic_width, critic_depth, observation_scale, value_scale: the
            :class:`ValueMLP` built by ``init``.
        cost: the cost of each step that the actor minimises and the critic estimates,
            ``cost(env, trajectory) -> (T,)`` for one window (default :func:`env_costs`,
            the env's running costs). A surrogate where the env's cost has no useful
            gradient (a step count), as :class:`diffsim.Trainer`'s ``objective``; costs
            after a termination are not counted, so a surrogate should not make ending an
            episode attractive (keep it at most 0, or charge the end in the env's
            terminal cost).
        estimator: differentiable estimator for discrete action spaces.
        devices: split the batch over devices, as for :class:`diffsim.Trainer`.

    Example::

        shac = diffsim.SHAC(optax.adam(2e-3), optax.adam(2e-3), batch_size=64, window=25,
                            observation_scale=(1, 1, 8), value_scale=100.0)
        state = shac.init(env, policy, jr.key(0))
        state, metrics = jax.jit(shac.step)(state)   # metrics: loss, grad_norm, critic_loss
        policy = shac.controller(state)
    """

    trainer: Trainer
    critic_optimiser: optax.GradientTransformation
    gamma: float = eqx.field(static=True)
    lam: float = eqx.field(static=True)
    critic_updates: int = eqx.field(static=True)
    critic_batch_size: int | None = eqx.field(static=True)
    target_step_size: float = eqx.field(static=True)
    critic_width: int = eqx.field(static=True)
    critic_depth: int = eqx.field(static=True)
    observation_scale: tuple | None = eqx.field(static=True)
    value_scale: float = eqx.field(static=True)
    cost: StepCosts = eqx.field(static=True)

    def __init__(
        self,
        optimiser: optax.GradientTransformation,
        critic_optimiser: optax.GradientTransformation,
        *,
        batch_size: int = 64,
        window: int = 25,
        horizon: int | None = None,
        gamma: float = 0.99,
        lam: float = 0.95,
        critic_updates: int = 16,
        critic_batch_size: int | None = None,
        target_step_size: float = 0.8,
        critic_width: int = 64,
        critic_depth: int = 2,
        observation_scale: Sequence[float | int] | None = None,
        value_scale: float = 1.0,
        cost: StepCosts = env_costs,
        estimator: AbstractEstimator | None = None,
        devices: Devices = None,
    ):
        validate.optimiser("critic_optimiser", critic_optimiser)
        validate.callable_("cost", cost, "a function cost(env, trajectory) -> step costs")
        validate.positive_int("window", window)
        validate.positive_int("critic_updates", critic_updates)
        if validate.optional_positive_int("critic_batch_size", critic_batch_size) is not None:
            if critic_batch_size > batch_size:
                raise DiffsimError(
                    f"critic_batch_size={critic_batch_size} exceeds the {batch_size} episodes "
                    "of a window (batch_size)"
                )
        for name, value in (("gamma", gamma), ("lam", lam), ("target_step_size", target_step_size)):
            validate.numbers(name, value, "a number in [0, 1]")
            if not 0 <= value <= 1:
                raise DiffsimError(f"{name} must be in [0, 1], got {value}")
        validate.positive_int("critic_width", critic_width)
        validate.positive_int("critic_depth", critic_depth)
        validate.positive_float("value_scale", value_scale)
        self.trainer = Trainer(
            optimiser, batch_size=batch_size, window=window, horizon=horizon,
            estimator=estimator, devices=devices,
        )  # fmt: skip
        self.critic_optimiser = critic_optimiser
        self.gamma, self.lam = float(gamma), float(lam)
        self.critic_updates, self.target_step_size = critic_updates, float(target_step_size)
        self.critic_batch_size = critic_batch_size
        self.critic_width, self.critic_depth = critic_width, critic_depth
        self.observation_scale = None if observation_scale is None else tuple(observation_scale)
        self.value_scale = float(value_scale)
        self.cost = cost

    def init(self, env: AbstractEnv, controller: Controller, key: PRNGKeyArray) -> SHACState:
        """The state before the first step: the actor as :meth:`diffsim.Trainer.init`
        starts it, a fresh :class:`ValueMLP` (drawn from ``key`` too) and its target.

        Raises:
            DiffsimError: for a window that does not divide a training episode.
        """
        validate.prng_key("key", key)
        actor_key, critic_key = jr.split(key)
        actor = self.trainer.init(env, controller, actor_key)
        steps = self.trainer.horizon_for(env)
        if steps % self.trainer.window:
            raise DiffsimError(
                f"SHAC's window={self.trainer.window} must divide {type(env).__name__}'s "
                f"training episode of {steps} steps (windows end at the horizon)"
            )
        critic = ValueMLP.for_env(
            env,
            width=self.critic_width,
            depth=self.critic_depth,
            observation_scale=self.observation_scale,
            value_scale=self.value_scale,
            key=critic_key,
        )
        critic = self.trainer.place(
            init_state(critic, where_mask(critic, None), self.critic_optimiser, None, critic_key)
        )
        critic = dataclasses.replace(critic, carry=critic.params)  # the target critic
        return SHACState(actor, critic)

    @property
    def batch_size(self) -> int:
        """Episodes simulated in parallel."""
        return self.trainer.batch_size

    def window_for(self, env: AbstractEnv) -> int:
        """Control steps per window."""
        return self.trainer.window_for(env)

    def controller(self, state: SHACState) -> Controller:
        """The controller of ``state``."""
        return self.trainer.controller(state.actor)

    def env(self, state: SHACState) -> AbstractEnv:
        """The env of ``state``."""
        return self.trainer.env(state.actor)

    def critic(self, state: SHACState) -> ValueMLP:
        """The critic of ``state``."""
        return state.critic.model

    def step(self, state: SHACState) -> tuple[SHACState, dict[str, Float[Array, ""]]]:
        """One actor update and ``critic_updates`` critic updates; pure. Returns the next
        state and ``{"loss", "grad_norm", "critic_loss"}``."""
        validate.instance("state", state, SHACState, "a diffsim.SHACState from SHAC.init")
        critic = state.critic
        target = eqx.combine(jax.lax.stop_gradient(critic.carry), critic.frozen, critic.static)

        def actor_loss(model, episodes, key):
            env, controller = model
            trajectories, episodes = self.trainer.windows(env, controller, episodes, key)
            costs = jax.vmap(self.cost, in_axes=(None, 0))(env, trajectories)
            trajectories = dataclasses.replace(trajectories, costs=costs)
            values = jax.vmap(lambda y: target(env.observe(y)))(trajectories.final_state)
            losses = jax.vmap(self._window_cost)(trajectories, values)
            return jnp.mean(losses), (episodes, jax.lax.stop_gradient(trajectories))

        actor, metrics = optimiser_step(actor_loss, self.trainer.optimiser, state.actor)
        episodes, trajectories = actor.carry
        actor = dataclasses.replace(actor, carry=episodes)
        env = stop_gradient(self.trainer.env(actor))
        targets, weights = self._targets(env, trajectories, target)
        observations = jax.vmap(jax.vmap(env.observe))(trajectories.states[:, :-1])

        def critic_loss(critic, carry, key):
            seen, wanted, weight = observations, targets, weights
            if self.critic_batch_size is not None:
                episodes = jr.choice(
                    key, weights.shape[0], (self.critic_batch_size,), replace=False
                )
                seen, wanted, weight = seen[episodes], wanted[episodes], weight[episodes]
            values = jax.vmap(jax.vmap(critic))(seen)
            error = jnp.sum(weight * (values - wanted) ** 2) / jnp.sum(weight)
            return error / self.value_scale**2, carry

        def fit(critic, _):
            critic, critic_metrics = optimiser_step(critic_loss, self.critic_optimiser, critic)
            return critic, critic_metrics["loss"]

        critic, losses = jax.lax.scan(fit, critic, None, length=self.critic_updates)
        new_target = optax.incremental_update(critic.params, critic.carry, self.target_step_size)
        critic = dataclasses.replace(critic, carry=new_target)
        metrics = metrics | {"critic_loss": losses[-1]}
        return SHACState(actor, critic), metrics

    def _window_cost(self, trajectory: Trajectory, value: Float[Array, ""]) -> Float[Array, ""]:
        """The actor's loss of one window, per control step: the discounted costs, the
        terminal cost where the episode ended, and the discounted value beyond the window
        unless the episode terminated."""
        steps = trajectory.costs.shape[-1]
        discount = self.gamma ** jnp.arange(steps)
        running = jnp.sum(jnp.where(trajectory.alive, discount * trajectory.costs, 0.0))
        ended = self.gamma ** (trajectory.length - 1) * trajectory.terminal_cost
        beyond = jnp.where(trajectory.terminated, 0.0, self.gamma**steps * value)
        return (running + ended + beyond) / steps

    def _targets(self, env, trajectories: Trajectory, target: ValueMLP):
        """TD(lambda) targets of every step of every window and the weights of the
        critic's loss (1 for the steps taken, 0 after a termination)."""

        def one(trajectory):
            values = jax.vmap(lambda y: target(env.observe(y)))(trajectory.states)
            ends = trajectory.terminating_step
            end_costs = jnp.where(ends, trajectory.terminal_cost, 0.0)
            returns = lambda_returns(
                trajectory.costs, values, ends, end_costs, self.gamma, self.lam
            )
            return returns, trajectory.alive.astype(returns.dtype)

        return jax.vmap(one)(trajectories)
