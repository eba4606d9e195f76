"""The environment protocol: a physical system written as an ODE plus a control task."""

import abc
import dataclasses
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, PRNGKeyArray, Real

from . import _validate as validate
from ._errors import DiffsimError
from ._spaces import AbstractActionSpace
from ._transitions import AbstractTransition, ODEStep
from ._variables import Variables


class AbstractEnv(eqx.Module):
    """A controlled ODE ``dy/dt = vector_field(t, y, u)`` with a cost to minimise.

    Physical parameters are array fields (:func:`parameter`), so an env is a pytree:
    ``eqx.filter_grad`` with respect to it is system identification, ``eqx.filter_vmap``
    over a batch of envs is domain randomisation. Static choices are static fields.

    Subclasses implement ``vector_field``, ``initial_state``, ``action_space``, a cost
    (``running_cost``, or ``step_cost`` for a cost of the state a step reaches) and the
    attributes ``control_dt`` and ``episode_steps``; ``transition`` defaults to one
    Runge-Kutta (Tsit5) step per control interval. ``observe``, ``observation_bounds``,
    ``terminal_cost``, ``termination``, ``event``, ``equilibrium``, ``variables`` (names
    and units) and ``draw`` have defaults that may be overridden.
    Time ``t`` is seconds since the episode started; states ``y`` have shape ``(n,)``,
    controls ``u`` shape ``(m,)``.

    Example (a point mass lifted against gravity)::

        class Rocket(diffsim.AbstractEnv):
            mass: Float[Array, ""] = diffsim.parameter(2.0)
            control_dt: float = 0.1
            episode_steps: int = 100
            action_space = property(lambda self: diffsim.Box(0.0, 40.0))

            def vector_field(self, t, y, u):
                return jnp.stack([y[1], u[0] / self.mass - 9.81])

            def initial_state(self, key):
                return jnp.zeros(2)

            def running_cost(self, t, y, u):
                return (y[0] - 10.0) ** 2
    """

    control_dt: eqx.AbstractVar[float]
    """Seconds between control updates (the zero-order-hold interval)."""
    episode_steps: eqx.AbstractVar[int]
    """Control steps in one episode."""
    transition: AbstractTransition = eqx.field(default_factory=ODEStep, kw_only=True)
    """How the state advances over one control interval (default ``diffsim.ODEStep()``: one
    Tsit5 step; e.g. ``ODEStep(substeps=4)`` or ``ODESolve()`` for adaptive steps)."""

    def __check_init__(self):
        _check_timing(self.control_dt, self.episode_steps)
        kind = type(self)
        costless = AbstractEnv.running_cost, AbstractEnv.step_cost
        if (kind.running_cost, kind.step_cost) == costless:
            raise DiffsimError(
                f"{kind.__name__} defines no cost: add running_cost(self, t, y, u), the cost of "
                "a control step (or step_cost(self, t, y, u, y_next) for a cost that depends on "
                "the state the step reaches)"
            )
        if not isinstance(self.transition, AbstractTransition):
            raise DiffsimError(
                f"transition must be a diffsim.AbstractTransition, got {self.transition!r}"
            )
        _check_parameter_shapes(self)
        name = type(self).__name__
        check_positive(**{f"{name}.{k}": v for k, v in _positive_parameters(self).items()})

    @property
    @abc.abstractmethod
    def action_space(self) -> AbstractActionSpace:
        """What controllers output and how it becomes the control ``u``."""

    @abc.abstractmethod
    def vector_field(
        self, t: Real[ArrayLike, ""], y: Float[Array, " n"], u: Float[Array, " m"]
    ) -> Float[Array, " n"]:
        """The time derivative of the state ``y`` under control ``u`` (state units per s)."""

    @abc.abstractmethod
    def initial_state(self, key: PRNGKeyArray) -> Float[Array, " n"]:
        """A state drawn from the start distribution, shape ``(n,)``."""

    def running_cost(
        self, t: Real[ArrayLike, ""], y: Float[Array, " n"], u: Float[Array, " m"]
    ) -> Float[Array, ""]:
        """The cost charged for one control step taken from ``y`` at time ``t`` (s) with
        control ``u``, a scalar (RL reward is its negative). Implement this, or
        :meth:`step_cost` when the cost depends on the state the step reaches."""
        raise NotImplementedError(f"{type(self).__name__} implements step_cost, not running_cost")

    def step_cost(
        self,
        t: Real[ArrayLike, ""],
        y: Float[Array, " n"],
        u: Float[Array, " m"],
        y_next: Float[Array, " n"],
    ) -> Float[Array, ""]:
        """The cost of the control step from ``y`` to ``y_next`` under ``u``: what rollouts,
        training and the RL adapters charge. Default: ``running_cost(t, y, u)``. Override it
        instead of ``running_cost`` to charge the state the step reaches too (a reward for
        landing, the new infections of a step).

        Example: ``env.step_cost(0.0, y, u, y)``, the cost of holding ``y`` under ``u``."""
        return self.running_cost(t, y, u)

    @property
    def observation_bounds(self) -> tuple[Float[Array, " o"], Float[Array, " o"]]:
        """``(low, high)``, each of shape ``(o,)``: the range observations can take, what
        the RL adapters declare as their observation space (default: unbounded)."""
        infinite = jnp.full(self.observation_size, jnp.inf)
        return -infinite, infinite

    def observe(self, y: Float[Array, " n"]) -> Float[Array, " o"]:
        """What a controller sees of the state, shape ``(o,)`` (default: the state)."""
        return y

    def terminal_cost(self, y: Float[Array, " n"]) -> Float[Array, ""]:
        """Cost charged once at the state where an episode ends, by termination or at the
        horizon of ``episode_steps`` (default 0)."""
        return jnp.zeros((), y.dtype)

    def termination(self, y: Float[Array, " n"]) -> Bool[Array, ""]:
        """Whether the episode ends after the step that reached ``y`` (default: never)."""
        return jnp.array(False)

    def event(self, t: Real[ArrayLike, ""], y: Float[Array, " n"]) -> Float[Array, ""] | None:
        """A scalar whose zero crossing ends the episode inside a control interval, at the
        exact time (a ball reaching the ground: its height), located by the transition's
        root finder (:class:`diffsim.ODESolve`) and differentiable. Default ``None``: no
        event (the boolean :meth:`termination` is checked after every step)."""
        return None

    def equilibrium(self) -> tuple[Float[Array, " n"], Float[Array, " k"]] | None:
        """An operating point ``(y_eq, u_eq)``, shapes ``(n,)`` and ``(k,)``, where the
        task is to hold the system: what linear controllers stabilise
        (``diffsim.controllers.LQR``, the ``lqr`` method of ``diffsim compare``).
        Default ``None``: the env declares none."""
        return None

    @property
    def variables(self) -> Variables:
        """Names and units of the components of states, observations and controls, which
        plots, tables and the RL adapters show (angles wrapped where a component is
        declared an angle). Default: ``y[i]``, ``o[i]``, ``u[i]`` without units."""
        return Variables.indexed(
            self.state_size, self.observation_size, self.action_space.control_size
        )

    def draw(self, y: Float[Array, " n"]) -> list[Float[Array, "p 2"]]:
        """Polylines (x, y in metres) that picture the state, for animations."""
        raise NotImplementedError(f"{type(self).__name__} defines no drawing")

    @property
    def state_size(self) -> int:
        """``n``, the length of a state."""
        return _vector_length(self, "initial_state", jax.eval_shape(self.initial_state, jr.key(0)))

    @property
    def observation_size(self) -> int:
        """``o``, the length of an observation."""
        y = jax.eval_shape(self.initial_state, jr.key(0))
        return _vector_length(self, "observe", jax.eval_shape(self.observe, y))


def cost_method(env: AbstractEnv) -> str:
    """The name of the cost method ``env`` implements, for messages: ``"step_cost"`` if it
    overrides it, else ``"running_cost"``."""
    return "running_cost" if type(env).step_cost is AbstractEnv.step_cost else "step_cost"


def _vector_length(env: AbstractEnv, method: str, shape: jax.ShapeDtypeStruct) -> int:
    if len(shape.shape) != 1:
        raise DiffsimError(
            f"{type(env).__name__}.{method} returned shape {shape.shape}, expected a vector: "
            "wrap a scalar as jnp.stack([x]) or x[None]"
        )
    return shape.shape[0]


def _check_timing(control_dt: object, episode_steps: object) -> None:
    validate.positive_float("control_dt (s)", control_dt)
    validate.positive_int("episode_steps", episode_steps)


def _positive_and_finite(value: ArrayLike) -> ArrayLike:
    """Elementwise whether ``value`` is positive and finite (numpy for concrete values, as
    JAX for traced ones)."""
    xp = jnp if isinstance(value, jax.core.Tracer) else np
    return xp.isfinite(value) & (value > 0)


def check_positive(**parameters: ArrayLike) -> dict[str, ArrayLike]:
    """Check that physical parameters are positive and finite, named by their keywords,
    e.g. ``check_positive(control_dt=self.control_dt)``.

    Concrete values raise :class:`DiffsimError` at once. Traced values (an env built or
    trained inside ``jit`` or ``vmap``) cannot be checked before the computation runs:
    they are returned guarded, NaN where not positive and finite, so that what they enter
    is NaN, never a number. (Not ``eqx.error_if``: its host callback would cost speed in
    every compiled rollout and keep the program out of JAX's persistent compilation
    cache.) Fields declared with ``parameter(..., positive=True)`` are checked both ways
    by the core; ``train`` names a trained one that left its range.

    Returns:
        The values by name, traced ones guarded.
    """
    checked = {}
    for name, value in parameters.items():
        validate.numbers(name, value, "a positive, finite number")
        if isinstance(value, jax.core.Tracer):
            checked[name] = jnp.where(_positive_and_finite(value), value, jnp.nan)
            continue
        array = np.asarray(value)
        if not np.all(_positive_and_finite(array)):
            raise DiffsimError(f"{name} must be positive and finite, got {value}")
        checked[name] = value
    return checked


def parameter(default: float, *, positive: bool = False):
    """A physical-parameter field: stored as a JAX array so that the env is a pytree one
    can differentiate and vmap over (``eqx.field`` with an array converter).

    ``positive=True`` declares a quantity that must be positive and finite (a mass, a
    length): checked when the env is built and when it enters :func:`diffsim.rollout`,
    :func:`diffsim.step`, :func:`diffsim.evaluate` or :func:`diffsim.train` (a batch of
    envs built with ``eqx.filter_vmap`` included); a value traced under ``jit`` (an env
    built or trained there) is replaced by NaN where it is not, so that the simulation is
    NaN, never a number.

    Args:
        default: the value, in the parameter's own units.
        positive: require a positive, finite value.

    Returns:
        An equinox field for a class attribute of an :class:`AbstractEnv`.
    """
    validate.numbers("a parameter's default", default, "a number or an array of numbers")
    metadata = {"positive": positive, "shape": np.shape(default)}
    return eqx.field(default=default, converter=_as_parameter, metadata=metadata)


def _as_parameter(value: ArrayLike) -> Array:
    """A parameter's value as a JAX array; integers become floats (``Pendulum(g=10)``), since
    gradients, and so system identification, skip integer arrays."""
    value = jnp.asarray(value)
    return value if jnp.issubdtype(value.dtype, jnp.inexact) else value.astype(float)


def batch_size(env: AbstractEnv) -> int | None:
    """The number of envs in a batch built with ``eqx.filter_vmap`` (parameters with one
    more leading axis than declared), or ``None`` for a single env."""
    sizes = {
        jnp.shape(getattr(env, field.name))[0]
        for field in dataclasses.fields(env)
        if "shape" in field.metadata
        and jnp.ndim(getattr(env, field.name)) == len(field.metadata["shape"]) + 1
    }
    if len(sizes) > 1:
        raise DiffsimError(f"a batch of envs must share one leading axis, got sizes {sizes}")
    return sizes.pop() if sizes else None


def _check_parameter_shapes(env: AbstractEnv) -> None:
    for field in dataclasses.fields(env):
        if (
            "shape" in field.metadata
            and jnp.shape(getattr(env, field.name)) != field.metadata["shape"]
        ):
            raise DiffsimError(
                f"{field.name} must have shape {field.metadata['shape']}, got "
                f"{jnp.shape(getattr(env, field.name))} (use eqx.filter_vmap for a batch of envs)"
            )


def _positive_parameters(env: AbstractEnv) -> dict[str, ArrayLike]:
    return {
        field.name: getattr(env, field.name)
        for field in dataclasses.fields(env)
        if field.metadata.get("positive", False)
    }


def with_parameter_checks(env: AbstractEnv) -> AbstractEnv:
    """``env`` with its traced positive parameters guarded by :func:`check_positive`
    (concrete ones were checked when the env was built)."""
    traced = {
        name: value
        for name, value in _positive_parameters(env).items()
        if isinstance(value, jax.core.Tracer)
    }
    if not traced:
        return env
    checked = check_positive(**traced)
    names = tuple(checked)
    return eqx.tree_at(
        lambda e: tuple(getattr(e, name) for name in names),
        env,
        tuple(checked[name] for name in names),
    )


def non_physical_parameters(model: Any) -> list[str]:
    """The envs' positive parameters in ``model`` (any pytree holding envs) whose concrete
    values are not all positive and finite, as ``"Pendulum.g = -10.0"`` (a batch of envs:
    ``"Pendulum.g: 2 of 1024 values, e.g. [-1.0, nan]"``); traced values are skipped."""
    envs = [
        leaf
        for leaf in jax.tree.leaves(model, is_leaf=lambda x: isinstance(x, AbstractEnv))
        if isinstance(leaf, AbstractEnv)
    ]
    found = []
    for env in envs:
        for name, value in _positive_parameters(env).items():
            if isinstance(value, jax.core.Tracer):
                continue
            array = np.asarray(value, dtype=float)
            bad = ~_positive_and_finite(array)
            label = f"{type(env).__name__}.{name}"
            if not bad.any():
                continue
            if array.size <= 4:
                found.append(f"{label} = {array.tolist()}")
            else:
                found.append(
                    f"{label}: {int(bad.sum())} of {array.size} values, e.g. "
                    f"{array[bad][:2].tolist()}"
                )
    return found
