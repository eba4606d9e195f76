"""brax ``Env`` adapter (imported by :func:`diffsim.rl.to_brax` only).

Unlike the gymnax adapter, nothing is cut from the gradient: brax's analytic policy
gradient (APG) differentiates through ``step``, and so through the env's transition.
"""

from __future__ import annotations

import contextlib
import io
import warnings

import jax.numpy as jnp

from diffsim import AbstractEnv, Box, DiffsimError

from . import _functional as rl


def import_brax(what: str):
    """``brax`` (its import prints MuJoCo's missing-``warp`` notice on stdout and warns
    that jaxopt is unmaintained: both kept out of diffsim's output), or a
    :class:`DiffsimError` naming the extra."""
    try:
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
            warnings.filterwarnings("ignore", "JAXopt is no longer maintained", DeprecationWarning)
            import brax.envs
            import brax.training.agents.apg.train  # noqa: F401
    except ImportError:
        raise DiffsimError(
            f"{what} needs the brax extra: pip install -e '.[brax]' (or pip install 'brax==0.14.2')"
        ) from None
    import brax

    return brax


def scaled_control(low, high, action):
    """brax's action in ``[-1, 1]`` per component as a control in ``[low, high]``."""
    return low + (jnp.asarray(action) + 1.0) * (high - low) / 2.0


def bounded(env: AbstractEnv) -> bool:
    """Whether brax can drive ``env``: continuous actions with finite bounds."""
    space = env.action_space
    return isinstance(space, Box) and bool(
        jnp.all(jnp.isfinite(space.low)) & jnp.all(jnp.isfinite(space.high))
    )


def brax_env(env: AbstractEnv):
    """The brax ``Env`` class for ``env`` (see :func:`diffsim.rl.to_brax`)."""
    space = env.action_space
    if not isinstance(space, Box):
        raise DiffsimError(
            f"to_brax needs continuous actions (a diffsim.Box); {type(env).__name__} has "
            f"{type(space).__name__} actions"
        )
    if not bounded(env):
        raise DiffsimError(
            f"to_brax maps actions in [-1, 1] to the control bounds, but "
            f"{type(env).__name__}'s are not finite: low {space.low}, high {space.high}"
        )
    brax = import_brax("to_brax")
    State = brax.envs.base.State

    class BraxEnv(brax.envs.base.Env):
        def __init__(self, env: AbstractEnv):
            self.env = env

        def reset(self, rng):
            observation, state = rl.reset(self.env, rng)
            zero = jnp.zeros((), observation.dtype)
            return State(pipeline_state=state, obs=observation, reward=zero, done=zero)

        def step(self, state, action):
            space = self.env.action_space
            u = scaled_control(space.low, space.high, action)
            observation, pipeline_state, reward, terminated, _ = rl.step(
                self.env, state.pipeline_state, u
            )
            return state.replace(
                pipeline_state=pipeline_state,
                obs=observation,
                reward=reward,
                done=terminated.astype(reward.dtype),
            )

        @property
        def observation_size(self) -> int:
            return self.env.observation_size

        @property
        def action_size(self) -> int:
            return self.env.action_space.control_size

        @property
        def backend(self) -> str:
            return "diffsim"

    return BraxEnv(env)
