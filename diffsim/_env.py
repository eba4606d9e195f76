"""The environment protocol: a physical system written as an ODE plus a control task."""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, PRNGKeyArray, Scalar

from ._errors import DiffsimError
from ._spaces import AbstractActionSpace


class AbstractEnv(eqx.Module):
    """A controlled ODE ``dy/dt = vector_field(t, y, u)`` with a cost to minimise.

    Physical parameters are array fields, so an env is a pytree: ``eqx.filter_grad`` with
    respect to it is system identification, ``eqx.filter_vmap`` over a batch of envs is
    domain randomisation. Static choices (a discretisation variant) are static fields.

    Subclasses implement ``vector_field``, ``initial_state``, ``running_cost`` and the
    abstract attributes; every other method has a default that may be overridden.
    Time ``t`` is seconds since the episode started.
    """

    control_dt: eqx.AbstractVar[float]
    """Seconds between control updates (the zero-order-hold interval)."""
    episode_steps: eqx.AbstractVar[int]
    """Control steps in one episode."""

    @property
    @abc.abstractmethod
    def action_space(self) -> AbstractActionSpace:
        """What controllers output and how it becomes the control ``u``."""

    @abc.abstractmethod
    def vector_field(
        self, t: Scalar, y: Float[Array, " n"], u: Float[Array, " m"]
    ) -> Float[Array, " n"]:
        """The time derivative of the state ``y`` under control ``u`` (state units per s)."""

    @abc.abstractmethod
    def initial_state(self, key: PRNGKeyArray) -> Float[Array, " n"]:
        """A state drawn from the start distribution."""

    @abc.abstractmethod
    def running_cost(self, t: Scalar, y: Float[Array, " n"], u: Float[Array, " m"]) -> Scalar:
        """The cost charged for one control step taken from ``y`` with control ``u``
        (RL reward is its negative)."""

    def observe(self, y: Float[Array, " n"]) -> Float[Array, " o"]:
        """What a controller sees of the state (default: the state itself)."""
        return y

    def terminal_cost(self, y: Float[Array, " n"]) -> Scalar:
        """Cost charged once at the state where an episode ends (default 0)."""
        return jnp.zeros((), y.dtype)

    def termination(self, y: Float[Array, " n"]) -> Bool[Array, ""]:
        """Whether the episode ends after the step that reached ``y`` (default: never)."""
        return jnp.array(False)

    def discrete_step(
        self, t: Scalar, y: Float[Array, " n"], u: Float[Array, " m"]
    ) -> Float[Array, " n"]:
        """An env's own exact map over one control interval (e.g. gym's discretisation),
        used by :class:`diffsim.EnvDiscretisation`. Envs without one need not define it."""
        raise NotImplementedError(f"{type(self).__name__} defines no discrete_step")

    def default_integrator(self):
        """The integrator a rollout uses when none is given."""
        from ._integrators import FixedStep

        return FixedStep()

    def draw(self, y: Float[Array, " n"]) -> list[Float[Array, "p 2"]]:
        """Polylines (x, y in metres) that picture the state, for animations."""
        raise NotImplementedError(f"{type(self).__name__} defines no drawing")

    @property
    def state_size(self) -> int:
        return jax.eval_shape(self.initial_state, jax.random.key(0)).shape[0]

    @property
    def observation_size(self) -> int:
        y = jax.eval_shape(self.initial_state, jax.random.key(0))
        return jax.eval_shape(self.observe, y).shape[0]


def check_positive(**parameters) -> None:
    """Raise :class:`DiffsimError` for a non-positive or non-finite physical parameter.

    Traced values (inside ``jit``/``vmap``) cannot be checked and are skipped.
    """
    for name, value in parameters.items():
        if isinstance(value, jax.core.Tracer):
            continue
        array = np.asarray(value)
        if not np.all(np.isfinite(array)) or np.any(array <= 0):
            raise DiffsimError(f"{name} must be positive and finite, got {value}")


def parameter(default: float):
    """A physical-parameter field: stored as a JAX array so that the env is a pytree one
    can differentiate and vmap over (``eqx.field`` with an array converter)."""
    return eqx.field(default=default, converter=jnp.asarray)
