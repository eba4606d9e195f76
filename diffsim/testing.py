"""Contract checks for environments: :func:`check_env` runs any env, yours too, through
what diffsim relies on and names the method that breaks it.

The contract: every method returns an array of the documented shape and dtype (never
something that only works by broadcasting), ``termination`` a JAX boolean scalar, the
controller as many outputs as the action space needs; everything works under ``jax.jit``
and ``jax.vmap`` with the parameters traced, is deterministic under a key, finite at the
initial state, and has finite gradients that agree with finite differences.

Example (in a test of your own env)::

    import diffsim.testing
    from diffsim.envs import Pendulum

    report = diffsim.testing.check_env(Pendulum())
    print(report)  # the checks passed and what they measured
    assert report.max_fd_relative_error < 1e-4

A failure raises :class:`diffsim.DiffsimError` naming the method, what was expected and
what came back, e.g. ``Oscillator.running_cost returned a float32 array of shape (1,),
expected a float32 array of shape ()``. A physical constant written as a plain float field
instead of a :func:`diffsim.parameter` (its gradient is always zero) gets a
:class:`ContractWarning` naming the field.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import PRNGKeyArray

from . import _validate as validate
from ._env import AbstractEnv, cost_method
from ._errors import DiffsimError, first_line, runtime_errors_as_diffsim_errors
from ._mlp import MLPPolicy
from ._rollout import (
    TRACING_HINT,
    Controller,
    Trajectory,
    control,
    finite_steps,
    rollout,
    step,
)
from ._spaces import AbstractActionSpace, Discrete, StraightThrough, describe_outputs
from ._variables import Quantity, Variables

__all__ = ["CheckReport", "ContractWarning", "check_env"]

SAME_RESULT_TOLERANCE = 1e-4
"""Largest ``|a - b| / (1 + |b|)`` allowed between eager results and the same computation
under ``jax.jit`` or ``jax.vmap`` (float32: compilation may reorder sums)."""

FD_TOLERANCE = 1e-4
"""Largest relative error allowed between a JAX directional derivative and central finite
differences, both in float64."""

FD_STEP = 1e-6
"""Step of the central differences along a direction scaled to the inputs (float64)."""

FD_FLOOR = 1e-3
"""Directional derivatives smaller than ``FD_FLOOR * (1 + |objective|)`` are compared
absolutely, on that scale (the round-off of the differences is about ``1e-9 |objective|``)."""

FD_TRIES = 3
"""Random directions tried before a finite-difference check is skipped because every
one crossed a discontinuity (a termination or a discrete choice that changed)."""

BATCH = 3
"""Examples in the ``jax.vmap`` checks."""

SPREAD = 256
"""Initial states whose rollouts must stay finite: a NaN on part of the start range (a
``jnp.sqrt`` or ``jnp.log`` of a state that is sometimes negative) shows there."""


class ContractWarning(UserWarning):
    """Something in an env that works but is probably not what was meant, e.g. a physical
    constant declared as a plain float field (a constant of the compiled code: its gradient
    is always zero, and it cannot be vmapped over).

    Example:
        ```python
        import warnings
        import diffsim

        with warnings.catch_warnings():
            warnings.simplefilter("error", diffsim.testing.ContractWarning)   # make it a failure
            diffsim.testing.check_env(diffsim.envs.Pendulum())
        ```
    """


@dataclasses.dataclass(frozen=True)
class CheckReport:
    """What :func:`check_env` checked and measured. Every check in ``passed`` passed
    (a failed check raises instead of returning a report).

    Attributes:
        env: the env's class name.
        state_size: ``n``, the length of a state.
        observation_size: ``o``, the length of an observation.
        controller_size: ``k``, the length of a controller output.
        control_size: ``m``, the length of a control.
        passed: names of the checks passed, in the order run.
        skipped: checks, or parts of them, that were not run, with the reason.
        jit_difference: largest ``|jit - eager| / (1 + |eager|)`` over every method's
            output and a rollout (dimensionless).
        vmap_difference: the same between ``jax.vmap`` and one-by-one results.
        fd_relative_errors: relative error of the JAX directional derivative against
            central finite differences (float64, along a random direction scaled to the
            inputs), by what was perturbed: ``"controller"``, ``"parameters"`` (the env's
            float arrays) and ``"initial state"``. The objective is the rollout's total
            cost plus the mean square of its states, so that a piecewise-constant cost
            (gym's -1 per step) still has the dynamics' derivatives checked.
        zero_gradients: the :func:`diffsim.parameter` fields (and ``"controller"``) with
            respect to which the gradient of the total cost of the short rollout is
            exactly zero, e.g. a cost of -1 per step, or a bound never reached; and
            ``"u[j]"`` for a control component that changes neither the next state nor
            the cost at the checked states (an action space larger than what the vector
            field reads). Not an error.
        warnings: the :class:`ContractWarning` messages issued.

    Example:
        ```python
        import diffsim

        report = diffsim.testing.check_env(diffsim.envs.Pendulum())
        report.passed                # the checks run, in order
        report.fd_relative_errors    # gradients against finite differences (float64)
        ```
    """

    env: str
    state_size: int
    observation_size: int
    controller_size: int
    control_size: int
    passed: tuple[str, ...]
    skipped: Mapping[str, str]
    jit_difference: float
    vmap_difference: float
    fd_relative_errors: Mapping[str, float]
    zero_gradients: tuple[str, ...]
    warnings: tuple[str, ...]

    @property
    def max_fd_relative_error(self) -> float:
        """The largest of ``fd_relative_errors`` (0 if none was measured)."""
        return max(self.fd_relative_errors.values(), default=0.0)

    def __str__(self) -> str:
        lines = [
            f"{self.env}: state ({self.state_size},), observation ({self.observation_size},), "
            f"controller output ({self.controller_size},), control ({self.control_size},)",
            f"  passed: {', '.join(self.passed)}",
            f"  jit difference {self.jit_difference:.2g}, vmap difference "
            f"{self.vmap_difference:.2g}",
        ]
        for name, error in self.fd_relative_errors.items():
            lines.append(f"  finite differences, {name}: relative error {error:.2g}")
        for name, reason in self.skipped.items():
            lines.append(f"  skipped {name}: {reason}")
        if self.zero_gradients:
            lines.append(f"  zero gradient: {', '.join(self.zero_gradients)}")
        lines.extend(f"  warning: {message}" for message in self.warnings)
        return "\n".join(lines)


def check_env(
    env: AbstractEnv,
    controller: Controller | None = None,
    *,
    key: PRNGKeyArray | None = None,
    steps: int = 5,
    finite_differences: bool = True,
) -> CheckReport:
    """Run ``env`` through the diffsim contract; raise at the first failure.

    In order: plain float fields (a :class:`ContractWarning` each) and the action space;
    then eagerly, at an initial state: the shape, dtype and finiteness of what
    ``initial_state``, ``observe``, ``observation_bounds`` (which must contain the
    observation), the controller, ``vector_field``, ``transition``, ``running_cost``
    (with the next state where it takes one), ``terminal_cost`` and ``termination`` (a
    JAX boolean) return, each called twice with the same inputs (determinism), and
    :func:`diffsim.step`; then all of them under ``jax.jit`` (the env's parameters traced)
    and ``jax.vmap`` over initial states, against the eager values; a ``steps``-step
    :func:`diffsim.rollout` under ``jit`` (finite, twice the same, its first step equal to
    the eager one) and vmapped over a batch of envs and initial states; finite gradients of
    its total cost with respect to the controller, every :func:`diffsim.parameter` and the
    initial state; and, in float64, directional derivatives against central finite
    differences (controller, parameters and initial state in turn; for a
    :class:`diffsim.Discrete` action space, whose cost is piecewise constant in the
    controller, only the last two).

    Args:
        env: the environment to check.
        controller: ``controller(t, observation) -> output``; default a small
            ``diffsim.MLPPolicy`` (width 8, depth 1) for ``env``.
        key: randomness for the initial states, the default controller and the
            finite-difference directions (default ``jax.random.key(0)``).
        steps: control steps of the rollouts (short: the checks are about the contract,
            not about long-horizon behaviour).
        finite_differences: ``False`` skips the float64 finite-difference check (for
            envs that cannot run in float64).

    Returns:
        A :class:`CheckReport` of the checks passed and what they measured.

    Raises:
        DiffsimError: at the first check that fails, naming the method, what it should
            have returned and what it returned.
    """
    if not isinstance(env, AbstractEnv):
        raise DiffsimError(f"check_env needs a diffsim.AbstractEnv, got {type(env).__name__}")
    validate.positive_int("steps", steps)
    return _Checker(env, controller, jr.key(0) if key is None else key, steps).run(
        finite_differences
    )


# ---------------------------------------------------------------------------------------
# What every method is called with, and what it must return.

_METHODS: dict[str, Callable] = {
    "initial_state": lambda env, controller, t, y, u, key, y_next: env.initial_state(key),
    "observe": lambda env, controller, t, y, u, key, y_next: env.observe(y),
    "observation_bounds": lambda env, controller, t, y, u, key, y_next: jnp.stack(
        [jnp.asarray(bound) for bound in env.observation_bounds]
    ),
    "controller": lambda env, controller, t, y, u, key, y_next: controller(t, env.observe(y)),
    "vector_field": lambda env, controller, t, y, u, key, y_next: env.vector_field(t, y, u),
    "transition": lambda env, controller, t, y, u, key, y_next: env.transition(env, t, y, u),
    "running_cost": lambda env, controller, t, y, u, key, y_next: (
        env.running_cost(t, y, u)
        if cost_method(env) == "running_cost"
        else env.step_cost(t, y, u, y_next)
    ),
    "terminal_cost": lambda env, controller, t, y, u, key, y_next: env.terminal_cost(y),
    "termination": lambda env, controller, t, y, u, key, y_next: env.termination(y),
}
"""Every method checked, in order, called as a rollout calls it: ``y_next`` is the state
that ``transition`` reaches from ``y`` under ``u``."""


_TERMINATION_HINT = (
    "termination must return a JAX boolean, e.g. jnp.abs(y[0]) > 1 (combine conditions "
    "with | and &, not or/and)"
)


def _composed(env, controller, t, key):
    """Every method's output along one control step from ``initial_state(key)``, as a
    rollout computes them."""
    y = jnp.asarray(env.initial_state(key))
    output = jnp.asarray(controller(t, env.observe(y)))
    u = env.action_space.to_control(output)
    y_next = jnp.asarray(env.transition(env, t, y, u))
    outputs = {"initial_state": y, "observe": env.observe(y), "controller": output}
    for method in _METHODS:
        if method not in outputs:
            outputs[method] = _METHODS[method](env, controller, t, y, u, key, y_next)
    return {method: jnp.asarray(value) for method, value in outputs.items()}


class _Checker:
    def __init__(self, env: AbstractEnv, controller, key, steps: int):
        self.env, self.controller, self.steps = env, controller, steps
        self.name = type(env).__name__
        self.state_key, self.controller_key, self.batch_key, self.fd_key = jr.split(key, 4)
        self.passed: list[str] = []
        self.skipped: dict[str, str] = {}
        self.fd_errors: dict[str, float] = {}
        self.jit_difference = self.vmap_difference = 0.0

    def label(self, method: str) -> str:
        if method == "running_cost":
            method = cost_method(self.env)
        return "the controller" if method == "controller" else f"{self.name}.{method}"

    def run(self, finite_differences: bool) -> CheckReport:
        messages = self.check_fields()
        self.space = self.check_action_space()
        self.check_methods()
        self.check_variables()
        self.check_jit()
        self.check_vmap()
        self.check_rollouts()
        zero = self.check_gradients()
        if finite_differences:
            self.check_finite_differences()
        else:
            self.skipped["finite_differences"] = "finite_differences=False"
        return CheckReport(
            env=self.name,
            state_size=int(self.y0.shape[0]),
            observation_size=int(self.eager["observe"].shape[0]),
            controller_size=self.space.controller_size,
            control_size=self.space.control_size,
            passed=tuple(self.passed),
            skipped=dict(self.skipped),
            jit_difference=self.jit_difference,
            vmap_difference=self.vmap_difference,
            fd_relative_errors=dict(self.fd_errors),
            zero_gradients=zero,
            warnings=tuple(messages),
        )

    # -- fields and action space --------------------------------------------------------

    def check_fields(self) -> list[str]:
        messages = []
        for field in dataclasses.fields(self.env):
            if field.name in ("control_dt", "episode_steps") or field.metadata.get("static"):
                continue
            value = getattr(self.env, field.name, None)
            if "shape" in field.metadata:  # a diffsim.parameter
                if eqx.is_array(value) and not jnp.issubdtype(value.dtype, jnp.inexact):
                    messages.append(
                        f"{self.name}.{field.name} is a diffsim.parameter of dtype "
                        f"{value.dtype}: gradients skip integer arrays; give it float values"
                        " (the env's constructor converts integers; eqx.tree_at does not)"
                    )
            elif _holds_python_float(value):
                messages.append(
                    f"{self.name}.{field.name} is a plain float field ({value!r}), not a "
                    "diffsim.parameter: it is a constant of the compiled code, so its "
                    "gradient (system identification) is always zero and it cannot be "
                    f'vmapped over. Declare it `{field.name}: Float[Array, ""] = '
                    f"diffsim.parameter({value!r})`, or eqx.field(static=True) if it is a "
                    "setting rather than a physical quantity"
                )
        for message in messages:
            warnings.warn(message, ContractWarning, stacklevel=4)
        self.passed.append("fields")
        return messages

    def check_action_space(self) -> AbstractActionSpace:
        with self.calling("action_space"):
            space = self.env.action_space
        if not isinstance(space, AbstractActionSpace):
            raise DiffsimError(
                f"{self.name}.action_space returned {_describe(space)}, expected a "
                "diffsim.AbstractActionSpace such as diffsim.Box(low, high) or "
                "diffsim.Discrete(values)"
            )
        for size in ("controller_size", "control_size"):
            if getattr(space, size) < 1:
                raise DiffsimError(
                    f"{self.name}.action_space has {size} {getattr(space, size)}, expected "
                    "at least 1"
                )
        self.passed.append("action_space")
        return space

    def check_variables(self) -> None:
        """``env.variables`` names every component of a state, an observation and a
        control, each a :class:`diffsim.Quantity`."""
        with self.calling("variables"):
            variables = self.env.variables
        if not isinstance(variables, Variables):
            raise DiffsimError(
                f"{self.name}.variables returned {_describe(variables)}, expected a "
                "diffsim.Variables(states=..., observations=..., controls=...)"
            )
        sizes = {
            "states": int(self.y0.shape[0]),
            "observations": int(self.eager["observe"].shape[0]),
            "controls": self.space.control_size,
        }
        for what, size in sizes.items():
            quantities = getattr(variables, what)
            if len(quantities) != size or not all(isinstance(q, Quantity) for q in quantities):
                raise DiffsimError(
                    f"{self.name}.variables.{what} must be {size} diffsim.Quantity, one per "
                    f"component, got {quantities!r:.120}"
                )
        self.passed.append("variables")

    # -- eager method outputs -------------------------------------------------------------

    @contextlib.contextmanager
    def calling(self, method: str) -> Iterator[None]:
        """Errors raised by user code, as a DiffsimError that names the method."""
        try:
            yield
        except DiffsimError:
            raise
        except Exception as error:
            context = ""
            if method == "controller":
                context = (
                    f" (called as controller(t, observation) with an observation of shape "
                    f"{self.observation_shape} from {self.name}.observe)"
                )
            raise DiffsimError(f"{self.label(method)} raised {_reason(error)}{context}") from error

    def call(self, method, t, y, u, key, *, shape, dtype, where, y_next=None, record=True):
        """``method``'s output, called twice with the same inputs: checked for shape,
        dtype, finiteness and determinism."""
        with self.calling(method):
            first = _METHODS[method](self.env, self.controller, t, y, u, key, y_next)
        hint = {
            "termination": _TERMINATION_HINT,
            "controller": f"{self.name}'s {type(self.space).__name__} action space needs "
            f"{describe_outputs(self.space)}",
            "vector_field": f"one time derivative per component of the state (shape {shape})",
            "transition": f"the next state, of the state's shape {shape}",
        }.get(method, "")
        value = _check_output(self.label(method), first, shape, dtype, hint)
        if dtype != "bool" and not bool(jnp.all(jnp.isfinite(value))):
            raise DiffsimError(
                f"{self.label(method)} returned {_values(value)} {where}, expected finite "
                "values (no NaN or inf)"
            )
        with self.calling(method):
            second = _METHODS[method](self.env, self.controller, t, y, u, key, y_next)
            second = jnp.asarray(second)
        if not np.array_equal(np.asarray(value), np.asarray(second)):
            raise DiffsimError(
                f"{self.label(method)} returned {_values(value)} then {_values(second)} when "
                f"called twice {where}, expected the same value twice: draw randomness "
                "only from the key with jax.random (not numpy.random or random), and keep no "
                "state between calls"
            )
        if record:
            self.passed.append(method)
        return value

    def check_observation_bounds(self, observation, where: str) -> jax.Array:
        """``observation_bounds`` as an array ``[low, high]`` of shape ``(2, o)``: each
        bound of the observation's shape, ``low <= high``, the observation inside."""
        label = f"{self.name}.observation_bounds"
        with self.calling("observation_bounds"):
            bounds = self.env.observation_bounds
        shape = observation.shape
        if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
            raise DiffsimError(
                f"{label} returned {_describe(bounds)}, expected a pair (low, high) of "
                f"floating-point arrays of shape {shape}"
            )
        hint = "one bound per component of the observation (jnp.inf where unbounded)"
        low, high = (
            _check_output(f"{label}[{i}] ({name})", bound, shape, "floating", hint)
            for i, (name, bound) in enumerate(zip(("low", "high"), bounds, strict=True))
        )
        if bool(jnp.any(jnp.isnan(low) | jnp.isnan(high) | (low > high))):
            raise DiffsimError(
                f"{label} returned low {_values(low)} and high {_values(high)}, expected "
                "low <= high (no NaN)"
            )
        if not bool(jnp.all((low <= observation) & (observation <= high))):
            raise DiffsimError(
                f"{self.name}.observe returned {_values(observation)} {where}, outside "
                f"{label}: expected low {_values(low)} <= observation <= high {_values(high)}"
            )
        self.passed.append("observation_bounds")
        return jnp.stack([low, high])

    def check_methods(self) -> None:
        key = self.state_key
        y0 = self.call(
            "initial_state", None, None, None, key, shape="(n,)", dtype="floating",
            where="with one key",
        )  # fmt: skip
        self.y0, dtype, n = y0, y0.dtype, y0.shape
        t = self.t0 = jnp.zeros((), dtype)
        at = f"at the initial state {_values(y0)}"
        observation = self.call(
            "observe", t, y0, None, key, shape="(o,)", dtype="floating", where=at
        )
        self.observation_shape = observation.shape
        bounds = self.check_observation_bounds(observation, at)
        if self.controller is None:
            self.controller = MLPPolicy.for_env(self.env, width=8, depth=1, key=self.controller_key)
        output = self.call(
            "controller", t, y0, None, key, shape=(self.space.controller_size,),
            dtype="floating", where=at,
        )  # fmt: skip
        with self.calling("action_space"):
            u = self.u0 = control(self.env, self.controller, t, y0)
        at_u = f"at the initial state {_values(y0)}, t = 0 s, control u = {_values(u)}"
        eager = {"initial_state": y0, "observe": observation, "observation_bounds": bounds}
        eager["controller"] = output
        eager["vector_field"] = self.call(
            "vector_field", t, y0, u, key, shape=n, dtype=dtype, where=at_u
        )
        eager["transition"] = self.call(
            "transition", t, y0, u, key, shape=n, dtype=dtype, where=at_u
        )
        eager["running_cost"] = self.call(
            "running_cost", t, y0, u, key, shape=(), dtype=dtype, where=at_u,
            y_next=eager["transition"],
        )  # fmt: skip
        eager["terminal_cost"] = self.call(
            "terminal_cost", t, y0, u, key, shape=(), dtype=dtype, where=at
        )
        eager["termination"] = self.call(
            "termination", t, y0, u, key, shape=(), dtype="bool", where=at
        )
        self.eager = {method: jnp.asarray(value) for method, value in eager.items()}
        # the public step, and termination where a rollout asks it: after the step
        try:
            y1, cost, _ = _public("diffsim.step", step, self.env, t, y0, u)
        except DiffsimError as error:
            if isinstance(error.__cause__, jax.errors.JAXTypeError):  # name the method
                self.traced("jax.jit", lambda f: f, t, y0, u, key, self.eager["transition"])
            raise
        # diffsim.step runs compiled (XLA may reorder float sums), the methods op by op
        expected = (self.eager["transition"], self.eager["running_cost"])
        difference = _difference((y1, cost), expected)
        if not difference <= SAME_RESULT_TOLERANCE:
            raise DiffsimError(
                f"diffsim.step returned the state {_values(y1)} and cost {_values(cost)}, "
                f"expected {self.name}.transition's {_values(self.eager['transition'])} and "
                f"running_cost's {_values(self.eager['running_cost'])} (difference "
                f"{difference:.2g})"
            )
        self.jit_difference = max(self.jit_difference, difference)
        self.terminated = self.call(
            "termination", t, y1, u, key, shape=(), dtype="bool",
            where=f"at the state after one step {_values(y1)}", record=False,
        )  # fmt: skip
        self.passed.append("step")

    # -- jit and vmap ---------------------------------------------------------------------

    def traced(self, how: str, transform: Callable, *inputs) -> None:
        """Trace each method alone under ``transform`` to name the one that fails."""
        for method, function in _METHODS.items():
            try:
                eqx.filter_eval_shape(transform(function), self.env, self.controller, *inputs)
            except Exception as error:
                hint = _TERMINATION_HINT if method == "termination" else TRACING_HINT
                if not isinstance(error, jax.errors.JAXTypeError) and method != "termination":
                    hint = "it works when called eagerly" + (
                        " and under jax.jit" if how == "jax.vmap" else ""
                    )
                raise DiffsimError(
                    f"{self.label(method)} fails under {how}: {_reason(error)}; {hint}"
                ) from error

    def check_jit(self) -> None:
        try:
            jitted = eqx.filter_jit(_composed)(self.env, self.controller, self.t0, self.state_key)
        except Exception as error:
            self.traced("jax.jit", lambda f: f, self.t0, self.y0, self.u0, self.state_key, self.y0)
            raise DiffsimError(
                f"one control step of {self.name} fails under jax.jit: {_reason(error)}"
            ) from error
        difference = self.compare(jitted, self.eager, "under jax.jit", "eagerly")
        self.jit_difference = max(self.jit_difference, difference)
        self.passed.append("jit")

    def check_vmap(self) -> None:
        keys = jr.split(self.batch_key, BATCH)
        single = eqx.filter_jit(_composed)
        batched_composed = eqx.filter_jit(eqx.filter_vmap(_composed, in_axes=(None, None, None, 0)))
        try:
            batched = batched_composed(self.env, self.controller, self.t0, keys)
        except Exception as error:
            stack = lambda x: jnp.stack([x] * BATCH)
            self.traced(
                "jax.vmap",
                lambda f: eqx.filter_vmap(f, in_axes=(None, None, None, 0, 0, 0, 0)),
                self.t0, stack(self.y0), stack(self.u0), keys, stack(self.y0),
            )  # fmt: skip
            raise DiffsimError(
                f"one control step of {self.name} fails under jax.vmap: {_reason(error)}"
            ) from error
        differences = []
        for i in range(BATCH):
            one = single(self.env, self.controller, self.t0, keys[i])
            row = {method: value[i] for method, value in batched.items()}
            differences.append(self.compare(row, one, "under jax.vmap", "one by one"))
        self.vmap_difference = max(differences)
        self.batch_states = batched["initial_state"]
        self.passed.append("vmap")

    def compare(self, results: dict, reference: dict, how: str, reference_how: str) -> float:
        """The largest difference between two dicts of method outputs, or a DiffsimError
        naming the first method whose outputs differ."""
        largest = 0.0
        for method, expected in reference.items():
            difference = _difference(results[method], expected)
            if not difference <= SAME_RESULT_TOLERANCE:
                raise DiffsimError(
                    f"{self.label(method)} returned {_values(results[method])} {how}, expected "
                    f"{_values(expected)} as {reference_how} (difference {difference:.2g}): "
                    "does it depend on Python state, numpy.random or a global?"
                )
            largest = max(largest, difference)
        return largest

    # -- rollouts and gradients ----------------------------------------------------------

    def check_rollouts(self) -> None:
        env, controller, y0, steps = self.env, self.controller, self.y0, self.steps
        what = f"a {steps}-step diffsim.rollout from {_values(y0)}"
        estimator = StraightThrough() if isinstance(self.space, Discrete) else None
        jitted, grads = _public(
            "diffsim.rollout and its gradient under jax.jit",
            lambda: _rollout_and_gradient(controller, env, y0, steps, estimator),
        )
        finite = finite_steps(jitted)
        if not bool(jnp.all(finite)):
            first = int(jnp.argmin(finite))
            raise DiffsimError(
                f"{what} diverged: at step {first} the state {_values(jitted.states[first + 1])}"
                f" and cost {_values(jitted.costs[first])}, expected finite values"
            )
        self.passed.append("rollout")
        first_step = {
            "transition": jitted.states[1],
            "running_cost": jitted.costs[0],
            "termination": ~jitted.alive[1] if steps > 1 else jitted.terminated,
        }
        eager = dict(self.eager, termination=self.terminated)
        difference = self.compare(
            first_step,
            {m: eager[m] for m in first_step},
            f"in the first step of {what} under jax.jit",
            "eagerly",
        )
        self.jit_difference = max(self.jit_difference, difference)
        again, _ = _rollout_and_gradient(controller, env, y0, steps, estimator)
        if _difference(again, jitted) != 0.0:
            raise DiffsimError(
                f"{what} under jax.jit gave the total costs {_values(jitted.total_cost)} then "
                f"{_values(again.total_cost)}, expected the same trajectory twice"
            )
        self.passed.append("rollout_jit")
        # a batch of envs (domain randomisation) and of initial states, at once: the BATCH
        # states checked one by one below, and more, whose rollouts must stay finite
        more = jax.vmap(env.initial_state)(jr.split(jr.fold_in(self.batch_key, 1), SPREAD - BATCH))
        states = jnp.concatenate([self.batch_states, jnp.asarray(more, self.batch_states.dtype)])
        envs = jax.tree_util.tree_map(
            lambda x: jnp.broadcast_to(x, (SPREAD, *jnp.shape(x))), eqx.filter(env, eqx.is_array)
        )
        envs = eqx.combine(envs, eqx.filter(env, eqx.is_array, inverse=True))
        batch = _public(
            "diffsim.rollout under jax.vmap over a batch of envs and initial states",
            lambda: _vmapped_rollouts(envs, controller, states, steps),
        )
        self.check_spread(states, batch)
        for i in range(BATCH):
            one, _ = _rollout_and_gradient(controller, env, self.batch_states[i], steps, estimator)
            row = jax.tree_util.tree_map(lambda x, i=i: x[i], batch)
            self.check_same(
                row, one, f"a {steps}-step diffsim.rollout from {_values(self.batch_states[i])} "
                "under jax.vmap over a batch of envs and initial states",
            )  # fmt: skip
        self.passed.append("rollout_vmap")
        self.grads = grads

    def check_spread(self, states, batch: Trajectory) -> None:
        """The rollouts from ``SPREAD`` initial states stayed finite."""
        finite = finite_steps(batch)
        if bool(jnp.all(finite)):
            return
        episode = int(jnp.argmin(jnp.all(finite, axis=1)))
        step = int(jnp.argmin(finite[episode]))
        state, y_next = batch.states[episode, step], batch.states[episode, step + 1]
        culprit = (
            f"the transition (vector_field) gave the state {_values(y_next)}"
            if not bool(jnp.all(jnp.isfinite(y_next)))
            else f"{cost_method(self.env)} gave {_values(batch.costs[episode, step])}"
        )
        raise DiffsimError(
            f"a {self.steps}-step diffsim.rollout from the initial state "
            f"{_values(states[episode])} (one of {SPREAD} drawn) diverged: at step {step}, from "
            f"the state {_values(state)}, {culprit}, expected finite values: look for "
            "jnp.sqrt, jnp.log, a power or a division that is undefined on part of the "
            "states initial_state draws"
        )

    def check_same(self, trajectory, reference, what: str) -> None:
        """A vmapped trajectory against the same rollout alone."""
        difference = _difference(trajectory, reference)
        if not difference <= SAME_RESULT_TOLERANCE:
            raise DiffsimError(
                f"{what} gave the total cost {_values(trajectory.total_cost)} and final state "
                f"{_values(trajectory.final_state)}, expected {_values(reference.total_cost)} "
                f"and {_values(reference.final_state)} as one by one (difference "
                f"{difference:.2g})"
            )
        self.vmap_difference = max(self.vmap_difference, difference)

    def check_gradients(self) -> tuple[str, ...]:
        grads = eqx.filter(self.grads, eqx.is_array)
        for path, leaf in jax.tree_util.tree_flatten_with_path(grads)[0]:
            if not bool(jnp.all(jnp.isfinite(leaf))):
                raise DiffsimError(
                    f"the gradient of the total cost of a {self.steps}-step rollout with "
                    f"respect to {self.path_name(path)} is {_values(leaf)}, expected finite "
                    "values: look for jnp.sqrt, jnp.log, jnp.linalg.norm or a division at 0 "
                    "between that input and the cost (infinite derivatives there), or a "
                    "jnp.where whose branch not taken is NaN"
                )
        self.passed.append("gradients")
        controller_grads, env_grads, _ = grads
        zero = []
        leaves = jax.tree_util.tree_leaves(controller_grads)
        if leaves and not any(bool(jnp.any(leaf != 0)) for leaf in leaves):
            zero.append("controller")
        for field in dataclasses.fields(self.env):
            value = getattr(env_grads, field.name, None)
            if "shape" in field.metadata and eqx.is_array(value) and not bool(jnp.any(value != 0)):
                zero.append(field.name)
        return (*zero, *self.controls_without_effect())

    def controls_without_effect(self) -> list[str]:
        """``u[j]`` for each control component that moves neither the next state nor the
        cost at any of the ``BATCH`` initial states (an action space larger than what the
        vector field reads). With one control there is nothing to do: one without effect
        gives the controller a zero gradient."""
        if self.space.control_size < 2:
            return []
        env, t = self.env, self.t0

        def effect(u, y):
            y_next = env.transition(env, t, y, u)
            cost = _METHODS["running_cost"](env, None, t, y, u, None, y_next)
            return jnp.concatenate([jnp.ravel(y_next), jnp.ravel(cost)])

        def jacobian(y):
            u = self.space.to_control(self.controller(t, env.observe(y)))
            return jax.jacfwd(effect)(u, y)

        jacobians = _public(
            "the controls' effect", eqx.filter_jit(jax.vmap(jacobian)), self.batch_states
        )
        moves = jnp.any(jacobians != 0, axis=(0, 1))
        return [f"u[{j}]" for j in range(moves.shape[0]) if not bool(moves[j])]

    def path_name(self, path) -> str:
        group, rest = path[0].idx, jax.tree_util.keystr(tuple(path[1:]))
        return ("controller", self.name, "the initial state")[group] + rest

    def check_finite_differences(self) -> None:
        groups = ("controller", "parameters", "initial state")
        try:
            with jax.enable_x64(True):
                inputs = _to_float64((self.controller, self.env, self.y0))
                self.fd_step = jnp.asarray(FD_STEP, jnp.float64)  # traced: one compilation
                directions = _directions(inputs, self.fd_key)
                value, signature, _ = _probe(
                    inputs, directions, np.zeros(3), 0.0 * self.fd_step, self.steps
                )
                keys = jr.split(self.fd_key, (len(groups), FD_TRIES))
                for g, group in enumerate(groups):
                    if not jax.tree_util.tree_leaves(eqx.filter(inputs[g], eqx.is_inexact_array)):
                        self.skipped[f"finite_differences ({group})"] = "no float arrays"
                    elif g == 0 and isinstance(self.space, Discrete):
                        self.skipped[f"finite_differences ({group})"] = (
                            "a Discrete action space makes the cost piecewise constant in the "
                            "controller; estimator gradients are not derivatives"
                        )
                    else:
                        self.finite_difference(group, g, inputs, float(value), signature, keys[g])
        except DiffsimError:
            raise
        except Exception as error:
            raise DiffsimError(
                f"the float64 finite-difference check of {self.name} failed: "
                f"{_reason(error)} (check_env(..., "
                "finite_differences=False) skips it for envs that cannot run in float64)"
            ) from error
        self.passed.append("finite_differences")

    def finite_difference(self, group, g, inputs, value, signature, keys):
        what = {
            "controller": "the controller's parameters",
            "parameters": f"{self.name}'s parameters",
            "initial state": "the initial state",
        }[group]
        for key in keys:
            directions, weights = _directions(inputs, key), np.eye(3)[g]
            plus, plus_signature, _ = _probe(inputs, directions, weights, self.fd_step, self.steps)
            minus, minus_signature, _ = _probe(
                inputs, directions, weights, -self.fd_step, self.steps
            )
            _, _, exact = _probe(inputs, directions, weights, 0.0 * self.fd_step, self.steps)
            if _difference((plus_signature, minus_signature), (signature, signature)) != 0.0:
                continue  # a termination or a discrete choice changed within the step
            finite = (float(plus) - float(minus)) / (2 * FD_STEP)
            exact = float(exact)
            # derivatives far below the objective's size are compared absolutely: the float64
            # round-off of the differences (about 1e-9 |value|) must not count as an error
            floor = FD_FLOOR * (1.0 + abs(value))
            error = abs(finite - exact) / max(abs(finite), abs(exact), floor)
            if not error <= FD_TOLERANCE:
                raise DiffsimError(
                    f"the gradient of a {self.steps}-step rollout's total cost plus the mean "
                    f"square of its states with respect to {what} disagrees with central "
                    f"finite differences in float64: along a random direction JAX gives "
                    f"{exact:.8g}, finite differences {finite:.8g} (relative error "
                    f"{error:.2g}, expected below {FD_TOLERANCE:g}): look for "
                    "jax.lax.stop_gradient, a custom_jvp or custom_vjp rule, or a transition "
                    "whose derivative is not that of its value"
                )
            self.fd_errors[group] = error
            return
        self.skipped[f"finite_differences ({group})"] = (
            f"all {FD_TRIES} random directions crossed a discontinuity within the step "
            f"{FD_STEP:g} (a termination or a discrete choice changed)"
        )


# ---------------------------------------------------------------------------------------
# Compiled once per env type (``steps`` and the estimator are static).


@eqx.filter_jit
def _rollout_and_gradient(controller, env, y0, steps, estimator):
    """A rollout and the gradient of its total cost with respect to (controller, env, y0)."""

    def total_cost(inputs):
        controller, env, y0 = inputs
        trajectory = rollout(env, controller, y0, num_steps=steps, estimator=estimator)
        return trajectory.total_cost, trajectory

    (_, trajectory), grads = eqx.filter_value_and_grad(total_cost, has_aux=True)(
        (controller, env, y0)
    )
    return trajectory, grads


@eqx.filter_jit
def _vmapped_rollouts(envs, controller, states, steps):
    return eqx.filter_vmap(
        lambda env, y0: rollout(env, controller, y0, num_steps=steps), in_axes=(eqx.if_array(0), 0)
    )(envs, states)


@eqx.filter_jit
def _probe(inputs, directions, weights, step, steps):
    """At ``inputs = (controller, env, y0)`` moved by ``step`` along ``direction``, the
    sum over groups of ``weights[i] * directions[i]``: the finite-difference objective (the
    total cost plus the mean square of the states, so that envs with a piecewise-constant
    cost still have their dynamics checked), where it is (steps alive, discrete choices: a
    change means a discontinuity was crossed), and its derivative along ``direction``."""
    params, static = eqx.partition(inputs, eqx.is_inexact_array)

    def objective(params):
        controller, env, y0 = eqx.combine(params, static)
        trajectory = rollout(env, controller, y0, num_steps=steps)
        space = env.action_space
        choices = None
        if isinstance(space, Discrete):
            gaps = jnp.sum(jnp.abs(trajectory.controls[:, None, :] - space.values[None]), -1)
            choices = jnp.argmin(gaps, axis=-1)
        value = trajectory.total_cost + jnp.mean(trajectory.states**2)
        return value, (value, (trajectory.alive, choices))

    direction = tuple(
        jax.tree_util.tree_map(lambda d, w=weights[i]: w * d, part)
        for i, part in enumerate(directions)
    )
    params = jax.tree_util.tree_map(lambda p, d: p + step * d, params, direction)
    (_, (value, signature)), grads = eqx.filter_value_and_grad(objective, has_aux=True)(params)
    leaves = zip(
        jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(direction), strict=True
    )
    return value, signature, sum((jnp.vdot(g, d) for g, d in leaves), jnp.zeros((), value.dtype))


@eqx.filter_jit
def _directions(inputs, key):
    """Random directions in the float arrays of ``(controller, env, y0)``: normal entries
    scaled by ``|x|`` for the env's parameters (each moves in proportion and stays
    positive) and by ``max(|x|, 0.1)`` for the controller and the state."""
    directions = []
    for g, part in enumerate(eqx.filter(inputs, eqx.is_inexact_array)):
        leaves, treedef = jax.tree_util.tree_flatten(part)
        keys = jr.split(jr.fold_in(key, g), max(len(leaves), 1))
        scaled = []
        for k, x in zip(keys, leaves, strict=False):
            if g == 1:
                scale = jnp.where(x != 0, jnp.abs(x), 1.0)
            else:
                scale = jnp.maximum(jnp.abs(x), 0.1)
            scaled.append(jr.normal(k, x.shape, x.dtype) * scale)
        directions.append(jax.tree_util.tree_unflatten(treedef, scaled))
    return tuple(directions)


# ---------------------------------------------------------------------------------------
# Helpers.


def _reason(error: BaseException) -> str:
    """``"TypeName: first line of the message"``, for a message that quotes an error."""
    return f"{type(error).__name__}: {first_line(error).rstrip('.')}"


def _public(what: str, function: Callable, *args) -> Any:
    """``function(*args)``, its failures as DiffsimError: equinox's runtime checks with their
    message, other errors prefixed with ``what``."""
    try:
        with runtime_errors_as_diffsim_errors():
            return function(*args)
    except DiffsimError:
        raise
    except Exception as error:
        raise DiffsimError(f"{what} failed: {_reason(error)}") from error


def _check_output(label: str, value: Any, shape, dtype, hint: str) -> jax.Array:
    """``value`` as a JAX array of ``shape`` (a tuple, or a string such as ``"(n,)"`` for
    any vector) and ``dtype`` (a dtype, ``"floating"`` or ``"bool"``), or a DiffsimError
    naming ``label``, what was expected, what came back and a likely fix (``hint`` where
    the shape is wrong in a way particular to the method)."""
    if dtype == "bool":
        kind = "a JAX boolean"
    elif dtype == "floating":
        kind = "a floating-point"
    else:
        kind = _article(str(jnp.dtype(dtype)))
    expected = f"{kind} array of shape {shape}"
    array = None
    if not isinstance(value, (bool, np.bool_, list, tuple)):
        try:
            array = jnp.asarray(value)
        except Exception:
            array = None
    if array is not None:
        if isinstance(shape, str):
            shape_ok = array.ndim == 1 and array.shape[0] >= 1
        else:
            shape_ok = array.shape == tuple(shape)
        if dtype == "bool":
            dtype_ok = array.dtype == jnp.bool_
        elif dtype == "floating":
            dtype_ok = jnp.issubdtype(array.dtype, jnp.floating)
        else:
            dtype_ok = array.dtype == jnp.dtype(dtype)
        if shape_ok and dtype_ok:
            return array
        if dtype == "bool":
            pass  # the method's hint says how to build a boolean
        elif isinstance(shape, str) and array.ndim == 0:
            hint = "a vector: wrap a scalar as jnp.stack([x]) or x[None]"
        elif isinstance(shape, str) and array.ndim > 1:
            hint = "one vector, not a batch or a column: index or ravel it (jax.vmap makes batches)"
        elif shape == () and array.shape == (1,):
            hint = "a scalar: index or sum, e.g. cost[0]"
        elif shape == () and array.ndim >= 1:
            hint = "a scalar: sum the terms, e.g. jnp.sum(y**2)"
        elif shape_ok and not jnp.issubdtype(array.dtype, jnp.floating):
            hint = "use floating-point values, e.g. 1.0 rather than 1, jnp.zeros(n) rather "
            hint += "than jnp.zeros(n, dtype=int)"
        elif shape_ok:
            hint = "compute in the dtype of the state (no explicit float32 or float64)"
    elif isinstance(value, (list, tuple)) and dtype != "bool":
        hint = "build an array, e.g. jnp.stack([a, b])"
    raise DiffsimError(f"{label} returned {_describe(value)}, expected {expected}: {hint}")


def _article(word: str) -> str:
    return ("an " if word[:1] in "aeiou" else "a ") + word


def _describe(value: Any) -> str:
    """What came back, for a message: type, dtype and shape."""
    if isinstance(value, bool):
        return f"a Python bool ({value})"
    if isinstance(value, (int, float)):
        return f"a Python {type(value).__name__} ({value!r})"
    if isinstance(value, (list, tuple)):
        return f"a Python {type(value).__name__} of {len(value)} items"
    if isinstance(value, (np.ndarray, np.generic)):
        return f"a NumPy {value.dtype} array of shape {np.shape(value)}"
    if isinstance(value, jax.Array):
        return f"{_article(str(value.dtype))} array of shape {value.shape}"
    return _article(type(value).__name__)


def _values(x: Any) -> str:
    """A short printout of an array's values."""
    return np.array2string(np.asarray(x), precision=6, threshold=8, separator=", ")


def _difference(a: Any, b: Any) -> float:
    """The largest ``|a - b| / (1 + |b|)`` over the leaves of two pytrees of arrays
    (booleans: 0 or inf); inf if their structures or shapes differ."""
    a_leaves = jax.tree_util.tree_leaves(eqx.filter(a, eqx.is_array))
    b_leaves = jax.tree_util.tree_leaves(eqx.filter(b, eqx.is_array))
    if len(a_leaves) != len(b_leaves):
        return float("inf")
    largest = 0.0
    for x, y in zip(a_leaves, b_leaves, strict=True):
        x, y = np.asarray(x), np.asarray(y)
        if x.shape != y.shape:
            return float("inf")
        if x.dtype == bool or y.dtype == bool or not np.issubdtype(x.dtype, np.inexact):
            largest = max(largest, 0.0 if np.array_equal(x, y) else float("inf"))
            continue
        with np.errstate(invalid="ignore"):
            both_nan = np.isnan(x) & np.isnan(y)
            gap = np.where(both_nan | (x == y), 0.0, np.abs(x - y) / (1.0 + np.abs(y)))
        if gap.size:
            largest = max(largest, float(np.nan_to_num(np.max(gap), nan=np.inf)))
    return largest


def _holds_python_float(value: Any) -> bool:
    if isinstance(value, float) and not isinstance(value, np.generic):
        return True
    if isinstance(value, (tuple, list)):
        return any(_holds_python_float(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_python_float(v) for v in value.values())
    return False


def _to_float64(tree: Any) -> Any:
    """``tree`` with its floating-point arrays in float64 (call inside ``jax.enable_x64``)."""
    return jax.tree_util.tree_map(
        lambda x: (
            jnp.asarray(x, jnp.float64)
            if eqx.is_array(x) and jnp.issubdtype(x.dtype, jnp.floating)
            else x
        ),
        tree,
    )
