"""A policy's outputs squashed into a bounded box."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, Real

from diffsim import Box, Controller, DiffsimError

from ._checks import check_callable, check_shape


class Squashed(eqx.Module):
    """``policy``'s outputs squashed into the bounds of ``space`` with ``tanh``:
    ``u(o) = (high + low) / 2 + (high - low) / 2 * tanh(f(o))``, in the units of the
    env's controls, shape ``(m,)`` as ``f(o)`` (``m`` = ``space.controller_size``; another
    shape of ``f(o)`` raises :class:`diffsim.DiffsimError` at trace time). Alone,
    it is what :class:`diffsim.MLPPolicy` does inside for a bounded :class:`diffsim.Box`;
    the bounds are the env's and are not trained.

    It also composes: ``Squashed(Mirrored(f, ...), space)`` makes the unbounded ``f``
    equivariant *before* the squash. The other order, ``Mirrored`` of a squashed policy,
    averages two squashed outputs: where ``f`` is large and nearly equal at a state and
    its mirror image, the control is near zero and, the ``tanh`` saturated, so is its
    gradient, a dead policy that SHAC on the pendulum fell into on about one seed in five
    (measured in the docs' "which differentiable method" page).

    Example:
        ```python
        import jax.numpy as jnp
        import jax.random as jr
        import diffsim
        from diffsim.controllers import Mirrored, Squashed

        env = diffsim.envs.Pendulum()
        network = diffsim.MLPPolicy(env.observation_size, diffsim.Box(-jnp.inf, jnp.inf),
                                    observation_scale=(1, 1, 8), key=jr.key(0))
        policy = Squashed(Mirrored(network, observation_signs=(1, -1, -1), output_signs=(-1,)),
                          env.action_space)
        policy(0.0, env.observe(jnp.array([jnp.pi, 0.5])))   # a torque in (-2, 2) N m, shape (1,)
        ```
    """

    policy: Controller
    low: Float[Array, " m"]
    high: Float[Array, " m"]

    def __init__(self, policy: Controller, space: Box):
        check_callable("Squashed", "policy", policy)
        if not (isinstance(space, Box) and space.bounded):
            raise DiffsimError(
                f"Squashed needs a diffsim.Box with finite bounds, got {space!r:.80}"
            )
        self.policy = policy
        self.low, self.high = space.low, space.high

    def __call__(
        self, t: Real[ArrayLike, ""], observation: Float[Array, " o"]
    ) -> Float[Array, " m"]:
        low, high = jax.lax.stop_gradient(self.low), jax.lax.stop_gradient(self.high)
        middle, half = (high + low) / 2, (high - low) / 2
        output = self.policy(t, observation)
        check_shape("Squashed", "the policy's output", output, self.low.shape, "the box's low")
        return middle + half * jnp.tanh(output)
