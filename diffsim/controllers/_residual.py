"""Residual control: a fixed explicit controller plus a small, bounded learned correction."""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray, Real

from diffsim import AbstractEnv, Box, Controller, DiffsimError, MLPPolicy, check_positive

from ._checks import check_callable, check_shape


class Residual(eqx.Module):
    """``base(t, o) + bound * tanh(network(t, o))``: an explicit controller (an
    :class:`LQR`, a hand-written law) that a network can only adjust by less than
    ``bound`` in every control dimension, whatever its weights.

    The base is fixed: its arrays pass through ``stop_gradient``, so training with
    :func:`diffsim.train` (its gradients are zero there, and optax's Adam leaves a
    parameter with zero gradient unchanged) moves only the network; ``bound`` is fixed too.
    The sum is clipped to the action bounds by the env's :class:`diffsim.Box` as any
    controller output is. The base's and the network's outputs must have one shape
    ``(k,)`` and ``bound`` one value or ``k`` (checked at trace time, else
    :class:`diffsim.DiffsimError`).

    Example::

        lqr = LQR.from_env(env, y_eq, u_eq, Q, R)
        residual = Residual.for_env(env, lqr, bound=0.5, key=jr.key(0))
        env, residual, history = diffsim.train(env, residual, diffsim.adam_cosine(3e-3, 200),
                                               key=jr.key(1), iterations=200)
    """

    base: Controller
    network: Controller
    bound: Float[Array, " k"]

    def __init__(self, base: Controller, network: Controller, bound: float | ArrayLike):
        check_callable("Residual", "base", base)
        check_callable("Residual", "network", network)
        self.base, self.network = base, network
        self.bound = jnp.atleast_1d(jnp.asarray(bound, dtype=float))
        if self.bound.ndim != 1:
            raise DiffsimError(
                f"bound must be a scalar or one value per control, got shape {jnp.shape(bound)}"
            )
        check_positive(bound=self.bound)

    @classmethod
    def for_env(
        cls,
        env: AbstractEnv,
        base: Controller,
        bound: float | ArrayLike,
        *,
        key: PRNGKeyArray,
        width: int = 32,
        depth: int = 2,
        observation_scale: Sequence[float | int] | None = None,
    ) -> Residual:
        """``base`` plus a ``width`` x ``depth`` tanh :class:`MLPPolicy` correction sized
        for ``env``, bounded by ``bound`` (control units, a scalar or one per control),
        starting near zero (the network's last layer is scaled by 0.1)."""
        if not isinstance(env, AbstractEnv):
            raise DiffsimError(f"Residual.for_env needs a diffsim.AbstractEnv, got {env!r:.60}")
        check_callable("Residual", "base", base)
        outputs = env.action_space.controller_size
        if jnp.size(bound) not in (1, outputs):
            raise DiffsimError(
                f"bound must be a scalar or one value per control ({outputs}), got shape "
                f"{jnp.shape(bound)}"
            )
        network = MLPPolicy(
            env.observation_size,
            Box(-jnp.inf * jnp.ones(outputs), jnp.inf * jnp.ones(outputs)),
            width=width,
            depth=depth,
            observation_scale=observation_scale,
            key=key,
        )
        return cls(base, network, bound)

    def correction(
        self, t: Real[ArrayLike, ""], observation: Float[Array, " o"]
    ) -> Float[Array, " k"]:
        """The network's adjustment, ``|correction| < bound`` elementwise."""
        return self._bounded(self.network(t, observation))

    def _bounded(self, raw: Float[Array, " k"]) -> Float[Array, " k"]:
        return jax.lax.stop_gradient(self.bound) * jnp.tanh(raw)

    def __call__(
        self, t: Real[ArrayLike, ""], observation: Float[Array, " o"]
    ) -> Float[Array, " k"]:
        arrays, static = eqx.partition(self.base, eqx.is_array)
        base = eqx.combine(jax.lax.stop_gradient(arrays), static)
        output = base(t, observation)
        raw = self.network(t, observation)
        check_shape("Residual", "the network's output", raw, jnp.shape(output), "the base's output")
        if jnp.ndim(output) != 1:
            raise DiffsimError(
                f"Residual: the base's output must be a vector of controls, got shape "
                f"{jnp.shape(output)}"
            )
        if self.bound.shape[0] not in (1, jnp.shape(output)[0]):
            raise DiffsimError(
                f"Residual: bound has shape {self.bound.shape}, but the base's output has shape "
                f"{jnp.shape(output)}: give one bound or one per control"
            )
        return output + self._bounded(raw)
