"""The RL bridge: any diffsim env as a functional ``reset``/``step`` env, a gymnax
``Environment`` (for rejax / PureJaxRL baselines) or a ``gymnasium.Env``; and a trained
rejax agent back as a diffsim controller (:func:`policy_from_rejax`).

Every adapter goes through :func:`diffsim.step`, so RL agents see exactly the dynamics that
differentiable training integrates. Rewards are minus the env's running cost; an episode is
*terminated* by ``env.termination`` and *truncated* after ``env.episode_steps`` steps.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray, Real

from ._env import AbstractEnv
from ._rollout import step as _control_step


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
    y = env.initial_state(key)
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
        The observation ``(o,)``, the next state, the reward (minus the running cost, a
        scalar), and ``terminated`` and ``truncated`` (scalar booleans).
    """
    u = env.action_space.from_action(action)
    t = state.steps * env.control_dt
    y, cost, terminated = _control_step(env, t, state.y, u)
    state = EnvState(y=y, steps=state.steps + 1)
    truncated = (state.steps >= env.episode_steps) & ~terminated
    return env.observe(y), state, -cost, terminated, truncated


def to_gymnax(env: AbstractEnv):
    """A gymnax ``Environment`` whose default ``params`` is the diffsim env itself (wrapped
    with ``max_steps_in_episode``), so a batch of envs can be passed as params.

    Needs the ``rl`` extra (``gymnax<1``, which rejax 0.1.3 requires).

    Args:
        env: the environment.

    Returns:
        A ``gymnax.environments.environment.Environment``.
    """
    from ._gymnax import GymnaxEnv

    return GymnaxEnv(env)


def to_gymnasium(env: AbstractEnv):
    """A ``gymnasium.Env`` with NumPy observations, jitted transitions and the
    time limit built in. ``reset(options={"state": y})`` starts from a given state.

    Args:
        env: the environment.

    Returns:
        A ``gymnasium.Env``.
    """
    from ._gymnasium import GymnasiumEnv

    return GymnasiumEnv(env)


def policy_from_rejax(algo, train_state):
    """The deterministic policy of a trained rejax agent as a diffsim controller, so that
    :func:`diffsim.evaluate` scores it by the very protocol used for differentiable
    training (see :class:`diffsim._rejax.RejaxPolicy` for what "deterministic" means per
    algorithm). Needs the ``rl`` extra.

    Args:
        algo: the rejax algorithm object (e.g. ``rejax.PPO.create(...)``).
        train_state: its trained state, as ``algo.train`` returns it.

    Returns:
        A controller ``controller(t, observation)`` with deterministic actions.
    """
    from ._rejax import policy_from_rejax as _policy_from_rejax

    return _policy_from_rejax(algo, train_state)


__all__ = ["EnvState", "policy_from_rejax", "reset", "step", "to_gymnasium", "to_gymnax"]
