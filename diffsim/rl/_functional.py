"""Any diffsim env as a functional RL environment: ``reset(env, key)`` and
``step(env, state, action)``, pure functions on an explicit :class:`EnvState`."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray, Real

import diffsim
from diffsim import AbstractEnv, DiffsimError


class EnvState(eqx.Module):
    """An RL episode's state: the physical state and the control steps taken so far.

    Example:
        ```python
        import jax.numpy as jnp
        import jax.random as jr
        import diffsim
        from diffsim import rl

        env = diffsim.envs.Pendulum()
        observation, state = rl.reset(env, jr.key(0))
        observation, state, reward, terminated, truncated = rl.step(env, state, jnp.array([1.0]))
        state.y, state.steps   # the physical state (theta, theta_dot) and 1 step taken
        ```
    """

    y: Float[Array, " n"]
    steps: Int[Array, ""]


def reset(env: AbstractEnv, key: PRNGKeyArray) -> tuple[Float[Array, " o"], EnvState]:
    """Start an episode: ``(observation, state)``.

    Args:
        env: the environment.
        key: a PRNG key for the start state.

    Returns:
        The observation, shape ``(o,)``, and the :class:`EnvState`.
    """
    if not (
        isinstance(key, jax.Array)
        and (
            jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key)
            or (key.dtype == jnp.uint32 and key.shape == (2,))  # a legacy jr.PRNGKey
        )
    ):
        raise DiffsimError(f"key must be a JAX PRNG key (jax.random.key(seed)), got {key!r:.60}")
    y = jnp.asarray(env.initial_state(key))
    y = y if jnp.issubdtype(y.dtype, jnp.floating) else y.astype(float)  # as diffsim's own
    return env.observe(y), EnvState(y=y, steps=jnp.zeros((), jnp.int32))


def step(
    env: AbstractEnv,
    state: EnvState,
    action: Int[ArrayLike, ""] | Real[ArrayLike, "*m"],
) -> tuple[Float[Array, " o"], EnvState, Float[Array, ""], Bool[Array, ""], Bool[Array, ""]]:
    """One RL step: ``(observation, state, reward, terminated, truncated)``.

    ``action`` is an index for :class:`diffsim.Discrete` spaces and a control vector
    (clipped to the bounds) for :class:`diffsim.Box`.

    Args:
        env: the environment.
        state: the episode's :class:`EnvState`.
        action: an index (discrete spaces) or a control vector of shape ``(m,)``.

    Returns:
        The observation ``(o,)``, the next state, the reward (a scalar: minus the step's
        cost, and minus the env's terminal cost at the state reached where the episode
        ends, terminated or truncated, so that an episode's rewards sum to the return
        :func:`diffsim.evaluate` scores), and ``terminated`` and ``truncated``
        (scalar booleans).
    """
    u = env.action_space.from_action(action)
    t = state.steps * env.control_dt
    y, cost, terminated = diffsim.step(env, t, state.y, u)
    state = EnvState(y=y, steps=state.steps + 1)
    truncated = (state.steps >= env.episode_steps) & ~terminated
    cost = cost + jnp.where(terminated | truncated, env.terminal_cost(y), 0.0)
    return env.observe(y), state, -cost, terminated, truncated
