"""``gymnasium.Env`` adapter (imported only by :func:`diffsim.rl.to_gymnasium`)."""

from __future__ import annotations

import gymnasium
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from diffsim import AbstractEnv, DiffsimError, Discrete

from . import _functional as rl


class GymnasiumEnv(gymnasium.Env):
    """``metadata`` also names the observation and action components with their units
    (``"observation_names"``, ``"action_names"``, from ``env.variables``)."""

    def __init__(self, env: AbstractEnv):
        self.env = env
        variables = env.variables
        self.metadata = {
            "render_modes": [],
            "observation_names": [q.label for q in variables.observations],
            "action_names": [q.label for q in variables.controls],
        }
        space = env.action_space
        if isinstance(space, Discrete):
            self.action_space = gymnasium.spaces.Discrete(space.num_actions)
        else:
            self.action_space = gymnasium.spaces.Box(
                np.asarray(space.low, np.float32), np.asarray(space.high, np.float32)
            )
        low, high = (np.asarray(bound, np.float32) for bound in env.observation_bounds)
        self.observation_space = gymnasium.spaces.Box(low, high, dtype=np.float32)
        self._reset = jax.jit(lambda key: rl.reset(env, key))
        self._step = jax.jit(lambda state, action: rl.step(env, state, action))
        self._observe = jax.jit(lambda y: env.observe(y))
        self._state = None

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        observation, state = self._reset(jr.key(int(self.np_random.integers(2**31))))
        if options and "state" in options:
            y = np.asarray(options["state"], dtype=np.asarray(state.y).dtype)
            if y.shape != state.y.shape:
                raise DiffsimError(
                    f"options['state'] must have shape {state.y.shape}, got {y.shape}"
                )
            state = rl.EnvState(y=jnp.asarray(y), steps=state.steps)
            observation = self._observe(y)
        self._state = state
        return np.asarray(observation, np.float32), {}

    def step(self, action):
        if self._state is None:
            raise DiffsimError("call reset() before step()")
        discrete = isinstance(self.action_space, gymnasium.spaces.Discrete)
        if discrete and not self.action_space.contains(action):
            raise DiffsimError(
                f"an action is an integer from 0 to {self.action_space.n - 1}, got {action!r}"
            )
        observation, self._state, reward, terminated, truncated = self._step(self._state, action)
        return (
            np.asarray(observation, np.float32),
            float(reward),
            bool(terminated),
            bool(truncated),
            {},
        )

    @property
    def state(self) -> np.ndarray:
        """The physical state of the running episode."""
        return np.asarray(self._state.y)
