"""The RL bridge: any diffsim env as a functional ``reset``/``step`` env, a gymnax
``Environment`` (for rejax / PureJaxRL baselines) or a ``gymnasium.Env``; a trained rejax
agent back as a diffsim controller (:func:`policy_from_rejax`); and rejax's PPO, SAC and DQN
as methods of ``diffsim compare`` (``ppo``, ``sac``, ``dqn``).

Every adapter goes through :func:`diffsim.step`, so RL agents see exactly the dynamics that
differentiable training integrates. Rewards are minus the env's running cost; an episode is
*terminated* by ``env.termination`` and *truncated* after ``env.episode_steps`` steps.
gymnax, gymnasium and rejax (the ``rl`` extra) are imported only when an adapter or a method
that needs them is used: ``import diffsim.rl`` imports none of them.
"""

from __future__ import annotations

from diffsim import AbstractEnv

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


__all__ = [
    "EnvState",
    "RejaxPolicy",
    "policy_from_rejax",
    "reset",
    "step",
    "to_gymnasium",
    "to_gymnax",
]
