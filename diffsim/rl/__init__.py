"""The RL bridge: any diffsim env as a functional ``reset``/``step`` env, a gymnax
``Environment`` (for rejax / PureJaxRL baselines), a brax ``Env`` (for brax's agents,
differentiable) or a ``gymnasium.Env``; a trained rejax agent back as a diffsim controller
(:func:`policy_from_rejax`); rejax's PPO, SAC and DQN and brax's APG as methods of
``diffsim compare`` (``ppo``, ``sac``, ``dqn``, ``apg``).

Every adapter goes through :func:`diffsim.step`, so RL agents see exactly the dynamics that
differentiable training integrates. Rewards are minus the env's running cost; an episode is
*terminated* by ``env.termination`` and *truncated* after ``env.episode_steps`` steps.
gymnax, gymnasium and rejax (the ``rl`` extra) and brax (the ``brax`` extra) are imported
only when an adapter or a method that needs them is used: ``import diffsim.rl`` imports none
of them.
"""

from __future__ import annotations

from diffsim import AbstractEnv, DiffsimError

from ._functional import EnvState, reset, step
from ._rejax import RejaxPolicy, policy_from_rejax


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

    return GymnaxEnv(_an_env("to_gymnax", env))


def to_brax(env: AbstractEnv):
    """A brax ``Env`` (``brax.envs.base.Env``): pure ``reset(rng)`` and ``step(state,
    action)`` on a brax ``State`` whose ``pipeline_state`` is the :class:`EnvState`, for
    brax's training agents (``brax.training.agents.apg``, ``ppo``, ``sac``).

    Actions are brax's convention, ``[-1, 1]`` per component, mapped affinely onto the
    env's control bounds; the reward is minus the running cost and ``done`` is 1.0 where
    ``env.termination`` ends the episode (brax's ``EpisodeWrapper`` adds the time limit).
    Nothing is cut from the gradient, so brax's APG differentiates through the env's
    transition. Needs the ``brax`` extra.

    Args:
        env: the environment, with a :class:`diffsim.Box` action space of finite bounds
            (anything else is a :class:`diffsim.DiffsimError`).

    Returns:
        A ``brax.envs.base.Env``.

    Example:
        ```python
        import jax.numpy as jnp
        import jax.random as jr
        import diffsim
        from diffsim import rl

        brax_env = rl.to_brax(diffsim.envs.Pendulum())
        state = brax_env.reset(jr.key(0))
        state = brax_env.step(state, jnp.array([0.5]))   # a torque of 1 N m (bounds +-2)
        state.reward, state.pipeline_state.y
        ```
    """
    from ._brax import brax_env

    return brax_env(_an_env("to_brax", env))


def to_gymnasium(env: AbstractEnv):
    """A ``gymnasium.Env`` with NumPy observations, jitted transitions and the
    time limit built in. ``reset(options={"state": y})`` starts from a given state.

    Args:
        env: the environment.

    Returns:
        A ``gymnasium.Env``.
    """
    from ._gymnasium import GymnasiumEnv

    return GymnasiumEnv(_an_env("to_gymnasium", env))


__all__ = [
    "EnvState",
    "RejaxPolicy",
    "policy_from_rejax",
    "reset",
    "step",
    "to_brax",
    "to_gymnasium",
    "to_gymnax",
]


def _an_env(caller: str, env):
    if not isinstance(env, AbstractEnv):
        raise DiffsimError(f"{caller} needs a diffsim.AbstractEnv, got {env!r:.60}")
    return env
