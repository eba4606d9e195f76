"""gymnax ``Environment`` adapter (imported by :func:`diffsim.rl.to_gymnax` only)."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from gymnax.environments import environment, spaces
from jaxtyping import Array, Bool, Float

from diffsim import AbstractEnv, Box, Discrete

from . import _functional as rl


class GymnaxParams(eqx.Module):
    """gymnax ``params``: the diffsim env and the episode length rejax reads."""

    env: AbstractEnv
    max_steps_in_episode: int = eqx.field(static=True)


class GymnaxEnv(environment.Environment):
    def __init__(self, env: AbstractEnv):
        self._env = env

    @property
    def default_params(self) -> GymnaxParams:
        return GymnaxParams(env=self._env, max_steps_in_episode=self._env.episode_steps)

    def step_env(self, key, state, action, params):
        observation, state, reward, terminated, truncated = rl.step(params.env, state, action)
        observation = jax.lax.stop_gradient(observation)
        info = {
            "discount": 1.0 - terminated.astype(reward.dtype),
            "truncated": truncated,
            "final_observation": observation,
        }
        return (
            observation,
            jax.lax.stop_gradient(state),
            reward,
            terminated | truncated,
            info,
        )

    def reset_env(self, key, params):
        return rl.reset(params.env, key)

    def get_obs(self, state, params=None, key=None):
        return self._env.observe(state.y)

    def is_terminal(self, state, params):
        return params.env.termination(state.y) | (state.steps >= params.max_steps_in_episode)

    @property
    def name(self) -> str:
        return f"diffsim-{type(self._env).__name__}"

    @property
    def num_actions(self) -> int:
        space = self._env.action_space
        return space.num_actions if isinstance(space, Discrete) else space.control_size

    def action_space(self, params=None):
        space = (params.env if params is not None else self._env).action_space
        if isinstance(space, Discrete):
            return spaces.Discrete(space.num_actions)
        assert isinstance(space, Box)
        return spaces.Box(space.low, space.high, space.low.shape, jnp.float32)

    def observation_space(self, params=None):
        low, high = (params.env if params is not None else self._env).observation_bounds
        return spaces.Box(low, high, low.shape, jnp.float32)


class Reached(eqx.Module):
    """gymnax state of :class:`TimeLimitAwareEnv`: the env's state and what the step that
    led to it reached, before gymnax's auto-reset replaced it."""

    state: rl.EnvState
    observation: Float[Array, " o"]
    terminated: Bool[Array, ""]


class TimeLimitAwareEnv(GymnaxEnv):
    """A :class:`GymnaxEnv` whose state also holds the observation each step reached and
    whether the episode terminated there: what an off-policy learner needs to bootstrap
    its TD target where the time limit (not the env) ended the episode, as
    stable-baselines3's replay buffer does (``handle_timeout_termination``)."""

    def reset(self, key, params=None):
        observation, state = super().reset(key, params)
        return observation, Reached(state, observation, jnp.zeros((), bool))

    def step(self, key, state, action, params=None):
        observation, inner, reward, done, info = super().step(key, state.state, action, params)
        reached = Reached(inner, info["final_observation"], info["discount"] == 0)
        return observation, reached, reward, done, info
