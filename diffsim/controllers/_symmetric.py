"""Policies made equivariant under a mirror symmetry of the env."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Real

from diffsim import Controller, DiffsimError

from ._checks import check_callable, check_shape


class Mirrored(eqx.Module):
    """``policy`` averaged with its mirror image, so the result respects a reflection
    symmetry of the env exactly: ``u(o) = (f(o) + s_u * f(s_o * o)) / 2``.

    ``observation_signs`` (``s_o``) and ``output_signs`` (``s_u``) are the reflection
    acting on observations and on controller outputs, e.g. ``(1, -1, -1)`` and ``(-1,)``
    for the pendulum's ``(cos, sin, speed) -> torque``. A symmetric system then cannot
    settle in a lopsided policy (swinging up from one side only), a local optimum that
    gradient training otherwise often falls into. For bounded controls, mirror the
    unbounded network and squash after (:class:`Squashed`): averaging two saturated
    outputs can leave a dead policy. An observation of another shape than
    ``observation_signs``, or a policy output of another shape than ``output_signs``, raises
    :class:`diffsim.DiffsimError` (checked at trace time).

    Example:
        ```python
        import jax.numpy as jnp
        import jax.random as jr
        import diffsim
        from diffsim import MLPPolicy
        from diffsim.controllers import Mirrored

        env = diffsim.envs.Pendulum()
        policy = Mirrored(MLPPolicy.for_env(env, key=jr.key(0)),
                          observation_signs=(1, -1, -1), output_signs=(-1,))
        observation = jnp.array([0.0, 1.0, 0.5])
        policy(0.0, observation) + policy(0.0, observation * jnp.array([1, -1, -1]))   # [0.]
        ```
    """

    policy: Controller
    observation_signs: Float[Array, " o"]
    output_signs: Float[Array, " k"]

    def __init__(self, policy: Controller, observation_signs, output_signs):
        check_callable("Mirrored", "policy", policy)
        signs_by_name = {"observation_signs": observation_signs, "output_signs": output_signs}
        for name, signs in signs_by_name.items():
            values = np.asarray(signs, dtype=object)
            if (
                values.ndim != 1
                or values.size == 0
                or not all(
                    value in (1, -1) and not isinstance(value, (bool, np.bool_)) for value in values
                )
            ):
                raise DiffsimError(
                    f"{name} must be a sequence of +1 and -1 (non-empty, not booleans), "
                    f"got {signs!r}"
                )
        self.policy = policy
        self.observation_signs = jnp.asarray(observation_signs, dtype=float)
        self.output_signs = jnp.asarray(output_signs, dtype=float)

    def __call__(
        self, t: Real[ArrayLike, ""], observation: Float[Array, " o"]
    ) -> Float[Array, " k"]:
        check_shape(
            "Mirrored",
            "the observation",
            observation,
            self.observation_signs.shape,
            "observation_signs",
        )
        observation_signs = jax.lax.stop_gradient(self.observation_signs)
        output_signs = jax.lax.stop_gradient(self.output_signs)
        mirrored = output_signs * self.policy(t, observation_signs * observation)
        output = self.policy(t, observation)
        check_shape(
            "Mirrored", "the policy's output", output, self.output_signs.shape, "output_signs"
        )
        return (output + mirrored) / 2
