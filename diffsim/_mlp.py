"""The default policy network: a multi-layer perceptron sized from an env."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Real

from . import _validate as validate
from ._env import AbstractEnv
from ._errors import DiffsimError
from ._spaces import AbstractActionSpace, Box


class MLPPolicy(eqx.Module):
    """A feed-forward policy ``(t, observation) -> output`` for an action space: the
    controller that the default recipe (``diffsim train my_env.py:MyEnv``) and
    :func:`diffsim.testing.check_env` build, and the network the shipped recipes and
    ``diffsim.controllers`` build on.

    For a bounded :class:`diffsim.Box` the output is squashed into ``[low, high]`` with
    ``tanh``; for unbounded boxes it is left linear; for :class:`diffsim.Discrete` it is
    the logits of the choices. Time is ignored (the policy is stationary).
    ``observation_scale`` (fixed, not trained) divides observations so that the
    inputs are of order one (e.g. ``(1, 1, 8)`` for the pendulum's speed).
    The squash's bounds ``low`` and ``high`` are arrays of the module, so training moves
    them as it moves the weights, a trained output gain (the env's :class:`diffsim.Box`
    still clips the control to its true bounds; the shipped recipes' figures were
    measured so). To hold them fixed, build an unbounded policy (``diffsim.Box(-inf, inf)``)
    and wrap it in :class:`diffsim.controllers.Squashed`.

    Example:
        ```python
        import jax.numpy as jnp
        import jax.random as jr
        import diffsim

        env = diffsim.envs.Pendulum()
        policy = diffsim.MLPPolicy.for_env(env, width=64, depth=2, observation_scale=(1, 1, 8),
                                   key=jr.key(0))
        policy(0.0, env.observe(jnp.array([jnp.pi, 0.0])))   # a torque in [-2, 2] N m, shape (1,)
        ```
    """

    mlp: eqx.nn.MLP
    low: Float[Array, " m"] | None
    high: Float[Array, " m"] | None
    observation_scale: Float[Array, " o"] | None
    width: int = eqx.field(static=True)
    depth: int = eqx.field(static=True)

    def __init__(
        self,
        observation_size: int,
        action_space: AbstractActionSpace,
        *,
        width: int = 64,
        depth: int = 2,
        activation: Callable = jax.nn.tanh,
        final_scale: float = 0.1,
        observation_scale: Sequence[float | int] | Float[Array, " o"] | None = None,
        key: PRNGKeyArray,
    ):
        validate.positive_int("observation_size", observation_size)
        validate.instance(
            "action_space", action_space, AbstractActionSpace, "a diffsim.Box or diffsim.Discrete"
        )
        validate.positive_int("width", width)
        validate.nonnegative_int("depth", depth)
        validate.prng_key("key", key)
        self.width, self.depth = width, depth
        self.observation_scale = None
        if observation_scale is not None:
            scale = validate.numbers("observation_scale", observation_scale)
            if scale.shape != (observation_size,) or not np.all(scale > 0):
                raise DiffsimError(
                    f"observation_scale must be {observation_size} positive numbers, one per "
                    f"observation component, got {observation_scale!r}"
                )
            self.observation_scale = jnp.asarray(scale, dtype=float)
        self.mlp = eqx.nn.MLP(
            observation_size, action_space.controller_size, width, depth, activation, key=key
        )
        last = self.mlp.layers[-1]
        self.mlp = eqx.tree_at(
            lambda m: (m.layers[-1].weight, m.layers[-1].bias),
            self.mlp,
            (last.weight * final_scale, jnp.zeros_like(last.bias)),
        )
        if isinstance(action_space, Box) and action_space.bounded:
            self.low, self.high = action_space.low, action_space.high
        else:
            self.low = self.high = None

    @classmethod
    def for_env(cls, env, *, key: PRNGKeyArray, **kwargs) -> MLPPolicy:
        """A policy sized for ``env``'s observations and action space."""
        if not isinstance(env, AbstractEnv):
            raise DiffsimError(
                f"MLPPolicy.for_env needs a diffsim.AbstractEnv, got {type(env).__name__}"
            )
        return cls(env.observation_size, env.action_space, key=key, **kwargs)

    def __call__(
        self, t: Real[ArrayLike, ""], observation: Float[Array, " o"]
    ) -> Float[Array, " k"]:
        if jnp.shape(observation) != (self.mlp.in_size,):
            raise DiffsimError(
                f"MLPPolicy takes observations of shape ({self.mlp.in_size},), got "
                f"{jnp.shape(observation)}: built for another env? MLPPolicy.for_env(env, ...) "
                "sizes it for env"
            )
        if self.observation_scale is not None:
            observation = observation / jax.lax.stop_gradient(self.observation_scale)
        output = self.mlp(observation)
        if self.low is None:
            return output
        middle, half = (self.high + self.low) / 2, (self.high - self.low) / 2
        return middle + half * jnp.tanh(output)
