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

from ._env import AbstractEnv
from ._errors import DiffsimError, first_line, runtime_errors_as_diffsim_errors
from ._rollout import Controller, control, rollout, step
from ._spaces import AbstractActionSpace, Discrete, StraightThrough

__all__ = ["CheckReport", "ContractWarning", "check_env"]

SAME_RESULT_TOLERANCE = 1e-4
"""Largest ``|a - b| / (1 + |b|)`` allowed between eager results and the same computation
under ``jax.jit`` or ``jax.vmap`` (float32: compilation may reorder sums)."""

FD_TOLERANCE = 1e-4
"""Largest relative error allowed between a JAX directional derivative and central finite
differences, both in float64."""

FD_STEP = 1e-6
"""Step of the central differences along a direction scaled to the inputs (float64)."""

FD_TRIES = 3
"""Random directions tried before a finite-difference check is skipped because every
one crossed a discontinuity (a termination or a discrete choice that changed)."""

BATCH = 3
"""Examples in the ``jax.vmap`` checks."""


class ContractWarning(UserWarning):
    """Something in an env that works but is probably not what was meant, e.g. a physical
    constant declared as a plain float field (a constant of the compiled code: its gradient
    is always zero, and it cannot be vmapped over)."""


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
            central finite differences (float64), by what was perturbed:
            ``"controller"``, ``"parameters"`` (the env's float arrays) and
            ``"initial state"``.
        zero_gradients: the :func:`diffsim.parameter` fields (and ``"controller"``) with
            respect to which the gradient of the total cost of the short rollout is
            exactly zero, e.g. a cost of -1 per step, or a bound never reached. Not an error.
        warnings: the :class:`ContractWarning` messages issued.
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

    In order: plain float fields (a :class:`ContractWarning` each), the action space;
    then eagerly, at an initial state: the shape, dtype and finiteness of what
    ``initial_state``, ``observe``, the controller, ``vector_field``, ``transition``,
    ``running_cost``, ``terminal_cost`` and ``termination`` return, each called twice
    with the same inputs to check determinism, and :func:`diffsim.step`; then all of them
    under ``jax.jit`` (the env's parameters traced) and ``jax.vmap`` over initial states,
    against the eager values; :func:`diffsim.rollout` of ``steps`` steps, twice, under
    ``jit``, vmapped over initial states and over a batch of envs; finite gradients of the
    rollout's total cost with respect to the controller, every :func:`diffsim.parameter`
    and the initial state; and, in float64, the gradient against central finite
    differences along random directions.

    Args:
        env: the environment to check.
        controller: ``controller(t, observation) -> output``; default a small
            ``diffsim.controllers.MLPPolicy`` (width 8, depth 1) for ``env``.
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
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise DiffsimError(f"steps must be a positive integer, got {steps!r}")
    return _Checker(env, controller, jr.key(0) if key is None else key, steps).run(
        finite_differences
    )


# ---------------------------------------------------------------------------------------
# What every method is called with, and what it must return.

_METHODS: dict[str, Callable] = {
    "initial_state": lambda env, controller, t, y, u, key: env.initial_state(key),
    "observe": lambda env, controller, t, y, u, key: env.observe(y),
    "controller": lambda env, controller, t, y, u, key: controller(t, env.observe(y)),
    "vector_field": lambda env, controller, t, y, u, key: env.vector_field(t, y, u),
    "transition": lambda env, controller, t, y, u, key: env.transition(env, t, y, u),
    "running_cost": lambda env, controller, t, y, u, key: env.running_cost(t, y, u),
    "terminal_cost": lambda env, controller, t, y, u, key: env.terminal_cost(y),
    "termination": lambda env, controller, t, y, u, key: env.termination(y),
}

_TERMINATION_HINT = (
    "termination must return a JAX boolean, e.g. jnp.abs(y[0]) > 1 (combine conditions "
    "with | and &, not or/and)"
)
_TRACING_HINT = (
    "use jax.numpy rather than numpy or math, jnp.where or jax.lax.cond rather than a "
    "Python if, and no float(), int() or bool() of arrays (parameters are traced too)"
)


def _composed(env, controller, t, key):
    """Every method's output along one control step from ``initial_state(key)``, as a
    rollout computes them."""
    y = jnp.asarray(env.initial_state(key))
    output = jnp.asarray(controller(t, env.observe(y)))
    u = env.action_space.to_control(output)
    outputs = {"initial_state": y, "observe": env.observe(y), "controller": output}
    for method in ("vector_field", "transition", "running_cost", "terminal_cost", "termination"):
        outputs[method] = _METHODS[method](env, controller, t, y, u, key)
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
        return "the controller" if method == "controller" else f"{self.name}.{method}"

    def run(self, finite_differences: bool) -> CheckReport:
        messages = self.check_fields()
        self.space = self.check_action_space()
        self.check_methods()
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
                        f"{value.dtype} ({value}): gradients skip integer arrays; write its "
                        f"default as a float, e.g. diffsim.parameter({float(value)})"
                        if value.size == 1
                        else f"{self.name}.{field.name} is a diffsim.parameter of dtype "
                        f"{value.dtype}: gradients skip integer arrays; give it float values"
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

    # -- eager method outputs -------------------------------------------------------------

    @contextlib.contextmanager
    def calling(self, method: str) -> Iterator[None]:
        """Errors raised by user code, as a DiffsimError that names the method."""
        try:
            yield
        except DiffsimError:
            raise
        except Exception as error:
            raise DiffsimError(
                f"{self.label(method)} raised {type(error).__name__}: {first_line(error)}"
            ) from error

    def call(self, method: str, t, y, u, key, *, shape, dtype, where: str, record=True):
        """``method``'s output, called twice with the same inputs: checked for shape,
        dtype, finiteness and determinism."""
        with self.calling(method):
            first = _METHODS[method](self.env, self.controller, t, y, u, key)
        hint = ""
        if method == "termination":
            hint = _TERMINATION_HINT
        elif method in ("running_cost", "terminal_cost"):
            hint = "a scalar: index or sum, e.g. cost[0]"
        elif method in ("initial_state", "observe"):
            hint = "a vector: wrap a scalar as jnp.stack([x]) or x[None]"
        elif method == "controller":
            hint = _what_outputs_mean(self.name, self.space)
        elif method in ("vector_field", "transition"):
            hint = f"the shape and dtype of the state from {self.name}.initial_state"
        value = _check_output(self.label(method), first, shape, dtype, hint)
        if dtype != "bool" and not bool(jnp.all(jnp.isfinite(value))):
            raise DiffsimError(
                f"{self.label(method)} returned {_values(value)} {where}, expected finite "
                "values (no NaN or inf)"
            )
        with self.calling(method):
            second = jnp.asarray(_METHODS[method](self.env, self.controller, t, y, u, key))
        if not np.array_equal(np.asarray(value), np.asarray(second)):
            raise DiffsimError(
                f"{self.label(method)} returned {_values(value)} then {_values(second)} for "
                f"the same inputs ({where}), expected the same value twice: draw randomness "
                "only from the key with jax.random (not numpy.random or random), and keep no "
                "state between calls"
            )
        if record:
            self.passed.append(method)
        return value

    def check_methods(self) -> None:
        key = self.state_key
        y0 = self.call(
            "initial_state", None, None, None, key, shape="(n,)", dtype="floating",
            where="for the same key",
        )  # fmt: skip
        self.y0, dtype, n = y0, y0.dtype, y0.shape
        t = self.t0 = jnp.zeros((), dtype)
        at = f"at the initial state {_values(y0)}"
        observation = self.call(
            "observe", t, y0, None, key, shape="(o,)", dtype="floating", where=at
        )
        if self.controller is None:
            from diffsim.controllers import MLPPolicy  # not the core: imported when needed

            self.controller = MLPPolicy.for_env(
                self.env, width=8, depth=1, key=self.controller_key
            )
        output = self.call(
            "controller", t, y0, None, key, shape=(self.space.controller_size,),
            dtype="floating", where=at,
        )  # fmt: skip
        with self.calling("action_space"):
            u = self.u0 = control(self.env, self.controller, t, y0)
        at_u = f"at the initial state {_values(y0)}, t = 0 s, control u = {_values(u)}"
        eager = {"initial_state": y0, "observe": observation, "controller": output}
        eager["vector_field"] = self.call(
            "vector_field", t, y0, u, key, shape=n, dtype=dtype, where=at_u
        )
        eager["transition"] = self.call(
            "transition", t, y0, u, key, shape=n, dtype=dtype, where=at_u
        )
        eager["running_cost"] = self.call(
            "running_cost", t, y0, u, key, shape=(), dtype=dtype, where=at_u
        )
        eager["terminal_cost"] = self.call(
            "terminal_cost", t, y0, u, key, shape=(), dtype=dtype, where=at
        )
        eager["termination"] = self.call(
            "termination", t, y0, u, key, shape=(), dtype="bool", where=at
        )
        self.eager = {method: jnp.asarray(value) for method, value in eager.items()}
        # the public step, and termination where a rollout asks it: after the step
        y1, cost, _ = _public("diffsim.step", step, self.env, t, y0, u)
        if not np.array_equal(np.asarray(y1), np.asarray(self.eager["transition"])) or not (
            np.array_equal(np.asarray(cost), np.asarray(self.eager["running_cost"]))
        ):
            raise DiffsimError(
                f"diffsim.step returned the state {_values(y1)} and cost {_values(cost)}, "
                f"expected {self.name}.transition's {_values(self.eager['transition'])} and "
                f"running_cost's {_values(self.eager['running_cost'])}"
            )
        self.call(
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
                hint = _TERMINATION_HINT if method == "termination" else _TRACING_HINT
                if not isinstance(error, jax.errors.JAXTypeError) and method != "termination":
                    hint = "it works when called eagerly"
                raise DiffsimError(
                    f"{self.label(method)} fails under {how}: {type(error).__name__}: "
                    f"{first_line(error)}; {hint}"
                ) from error

    def check_jit(self) -> None:
        try:
            jitted = eqx.filter_jit(_composed)(
                self.env, self.controller, self.t0, self.state_key
            )
        except Exception as error:
            self.traced("jax.jit", lambda f: f, self.t0, self.y0, self.u0, self.state_key)
            raise DiffsimError(
                f"one control step of {self.name} fails under jax.jit: "
                f"{type(error).__name__}: {first_line(error)}"
            ) from error
        self.jit_difference = self.compare(jitted, self.eager, "under jax.jit", "eagerly")
        self.passed.append("jit")

    def check_vmap(self) -> None:
        keys = jr.split(self.batch_key, BATCH)
        single = eqx.filter_jit(_composed)
        batched_composed = eqx.filter_jit(
            eqx.filter_vmap(_composed, in_axes=(None, None, None, 0))
        )
        try:
            batched = batched_composed(self.env, self.controller, self.t0, keys)
        except Exception as error:
            stack = lambda x: jnp.stack([x] * BATCH)
            self.traced(
                "jax.vmap",
                lambda f: eqx.filter_vmap(f, in_axes=(None, None, None, 0, 0, 0)),
                self.t0, stack(self.y0), stack(self.u0), keys,
            )  # fmt: skip
            raise DiffsimError(
                f"one control step of {self.name} fails under jax.vmap: "
                f"{type(error).__name__}: {first_line(error)}"
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

    # -- rollouts -------------------------------------------------------------------------

    def check_rollouts(self) -> None:
        env, controller, y0, steps = self.env, self.controller, self.y0, self.steps
        roll = lambda env, controller, y: rollout(env, controller, y, num_steps=steps)
        first = _public("diffsim.rollout", roll, env, controller, y0)
        second = _public("diffsim.rollout", roll, env, controller, y0)
        what = f"a {steps}-step diffsim.rollout from {_values(y0)}"
        if _difference(first, second) != 0.0:
            raise DiffsimError(
                f"{what} gave the total costs {_values(first.total_cost)} then "
                f"{_values(second.total_cost)}, expected the same trajectory twice"
            )
        self.passed.append("rollout")
        jitted_roll = eqx.filter_jit(roll)
        jitted = _public("diffsim.rollout under jax.jit", jitted_roll, env, controller, y0)
        self.check_same(jitted, first, f"{what} under jax.jit", "eagerly", "jit")
        self.passed.append("rollout_jit")

        vmapped = _public(
            "diffsim.rollout under jax.vmap over initial states",
            eqx.filter_jit(eqx.filter_vmap(roll, in_axes=(None, None, 0))),
            env, controller, self.batch_states,
        )  # fmt: skip
        for i in range(BATCH):
            one = jitted_roll(env, controller, self.batch_states[i])
            row = jax.tree_util.tree_map(lambda x, i=i: x[i], vmapped)
            self.check_same(
                row, one, f"a diffsim.rollout under jax.vmap over initial states", "one by one",
                "vmap",
            )  # fmt: skip
        self.passed.append("rollout_vmap")

        parameters, static = eqx.partition(env, eqx.is_inexact_array)
        if not jax.tree_util.tree_leaves(parameters):
            self.skipped["env_vmap"] = f"{self.name} has no float array fields to vmap over"
            return
        envs = jax.tree_util.tree_map(lambda p: jnp.stack([p] * 2), parameters)
        over_envs = _public(
            "diffsim.rollout under jax.vmap over a batch of envs (domain randomisation)",
            eqx.filter_jit(
                eqx.filter_vmap(
                    lambda p, c, y: roll(eqx.combine(p, static), c, y), in_axes=(0, None, None)
                )
            ),
            envs, controller, y0,
        )  # fmt: skip
        for i in range(2):
            row = jax.tree_util.tree_map(lambda x, i=i: x[i], over_envs)
            self.check_same(
                row, jitted, f"{what} under jax.vmap over a batch of envs", "for the env alone",
                "vmap",
            )  # fmt: skip
        self.passed.append("env_vmap")

    def check_same(self, trajectory, reference, what: str, reference_how: str, kind: str):
        difference = _difference(trajectory, reference)
        if not difference <= SAME_RESULT_TOLERANCE:
            raise DiffsimError(
                f"{what} gave the total cost {_values(trajectory.total_cost)} and final state "
                f"{_values(trajectory.final_state)}, expected {_values(reference.total_cost)} "
                f"and {_values(reference.final_state)} as {reference_how} "
                f"(difference {difference:.2g})"
            )
        if kind == "jit":
            self.jit_difference = max(self.jit_difference, difference)
        else:
            self.vmap_difference = max(self.vmap_difference, difference)

    # -- gradients ------------------------------------------------------------------------

    def check_gradients(self) -> tuple[str, ...]:
        estimator = StraightThrough() if isinstance(self.space, Discrete) else None
        inputs, static = eqx.partition((self.controller, self.env, self.y0), eqx.is_inexact_array)
        steps = self.steps

        def total_cost(inputs):
            controller, env, y0 = eqx.combine(inputs, static)
            return rollout(env, controller, y0, num_steps=steps, estimator=estimator).total_cost

        grads = _public("jax.grad of diffsim.rollout", eqx.filter_jit(jax.grad(total_cost)), inputs)
        for path, leaf in jax.tree_util.tree_flatten_with_path(grads)[0]:
            if not bool(jnp.all(jnp.isfinite(leaf))):
                raise DiffsimError(
                    f"the gradient of the total cost of a {steps}-step rollout with respect to "
                    f"{self.path_name(path)} is {_values(leaf)}, expected finite values: look "
                    "for jnp.sqrt, jnp.log, jnp.linalg.norm or a division at 0 between that "
                    "input and the cost (infinite derivatives there), or a jnp.where whose "
                    "branch not taken is NaN"
                )
        self.passed.append("gradients")
        controller_grads, env_grads, _ = grads
        zero = []
        if jax.tree_util.tree_leaves(controller_grads) and not any(
            bool(jnp.any(leaf != 0)) for leaf in jax.tree_util.tree_leaves(controller_grads)
        ):
            zero.append("controller")
        for field in dataclasses.fields(self.env):
            value = getattr(env_grads, field.name, None)
            if "shape" in field.metadata and eqx.is_array(value) and not bool(jnp.any(value != 0)):
                zero.append(field.name)
        return tuple(zero)

    def path_name(self, path) -> str:
        group, rest = path[0].idx, jax.tree_util.keystr(tuple(path[1:]))
        return ("controller", self.name, "the initial state")[group] + rest

    def check_finite_differences(self) -> None:
        discrete = isinstance(self.space, Discrete)
        steps = self.steps
        groups = ("controller", "parameters", "initial state")
        try:
            with jax.enable_x64(True):
                inputs, static = eqx.partition(
                    _to_float64((self.controller, self.env, self.y0)), eqx.is_inexact_array
                )

                @eqx.filter_jit
                def probe(inputs):
                    controller, env, y0 = eqx.combine(inputs, static)
                    trajectory = rollout(env, controller, y0, num_steps=steps)
                    value = trajectory.total_cost + jnp.mean(trajectory.states**2)
                    return value, (trajectory.alive, trajectory.controls if discrete else None)

                (value, signature), grads = eqx.filter_jit(
                    eqx.filter_value_and_grad(probe, has_aux=True)
                )(inputs)
                keys = jr.split(self.fd_key, (len(groups), FD_TRIES))
                for g, group in enumerate(groups):
                    if not jax.tree_util.tree_leaves(inputs[g]):
                        self.skipped[f"finite_differences ({group})"] = "no float arrays"
                        continue
                    if g == 0 and discrete:
                        self.skipped[f"finite_differences ({group})"] = (
                            "a Discrete action space makes the cost piecewise constant in the "
                            "controller; estimator gradients are not derivatives"
                        )
                        continue
                    self.finite_difference(
                        group, g, inputs, grads, float(value), signature, probe, keys[g]
                    )
        except DiffsimError:
            raise
        except Exception as error:
            raise DiffsimError(
                f"the float64 finite-difference check of {self.name} failed: "
                f"{type(error).__name__}: {first_line(error)} (check_env(..., "
                "finite_differences=False) skips it for envs that cannot run in float64)"
            ) from error
        self.passed.append("finite_differences")

    def finite_difference(self, group, g, inputs, grads, value, signature, probe, keys):
        for key in keys:
            direction = _direction(inputs, g, key, relative=group == "parameters")
            shifted = [
                probe(jax.tree_util.tree_map(lambda x, d, s=s: x + s * FD_STEP * d, inputs, direction))
                for s in (1.0, -1.0)
            ]
            if any(_difference(other, signature) != 0.0 for _, other in shifted):
                continue  # a termination or a discrete choice changed within the step
            finite = float((shifted[0][0] - shifted[1][0]) / (2 * FD_STEP))
            exact = float(
                sum(
                    jnp.vdot(a, b)
                    for a, b in zip(
                        jax.tree_util.tree_leaves(grads[g]),
                        jax.tree_util.tree_leaves(direction[g]),
                        strict=True,
                    )
                )
            )
            noise = 1e-8 * (1.0 + abs(value))  # float64 round-off of the differences
            error = abs(finite - exact) / max(abs(finite), abs(exact), noise)
            what = {
                "controller": "the controller's parameters",
                "parameters": f"{self.name}'s parameters",
                "initial state": "the initial state",
            }[group]
            if not error <= FD_TOLERANCE:
                raise DiffsimError(
                    f"the gradient of a {self.steps}-step rollout's total cost plus the mean "
                    f"square of its states with respect to {what} disagrees with central finite "
                    f"differences in float64: along a random direction JAX gives {exact:.8g}, "
                    f"finite differences {finite:.8g} (relative error {error:.2g}, expected "
                    f"below {FD_TOLERANCE:g}): look for jax.lax.stop_gradient, a custom_jvp or "
                    "custom_vjp rule, or a transition whose derivative is not that of its value"
                )
            self.fd_errors[group] = error
            return
        self.skipped[f"finite_differences ({group})"] = (
            f"all {FD_TRIES} random directions crossed a discontinuity within the step "
            f"{FD_STEP:g} (a termination or a discrete choice changed)"
        )


# ---------------------------------------------------------------------------------------
# Helpers.


def _public(what: str, function: Callable, *args) -> Any:
    """``function(*args)``, its failures as DiffsimError: equinox's runtime checks with their
    message, other errors prefixed with ``what``."""
    try:
        with runtime_errors_as_diffsim_errors():
            return function(*args)
    except DiffsimError:
        raise
    except Exception as error:
        raise DiffsimError(f"{what} failed: {type(error).__name__}: {first_line(error)}") from error


def _check_output(label: str, value: Any, shape, dtype, hint: str) -> jax.Array:
    """``value`` as a JAX array of ``shape`` (a tuple, or ``"(n,)"`` for any vector) and
    ``dtype`` (a dtype, ``"floating"`` or ``"bool"``), or a DiffsimError naming ``label``."""
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
    raise DiffsimError(f"{label} returned {_describe(value)}, expected {expected}: {hint}")


def _what_outputs_mean(name: str, space: AbstractActionSpace) -> str:
    if isinstance(space, Discrete):
        return (
            f"{name}'s Discrete action space takes one logit per action, "
            f"{space.num_actions} actions"
        )
    return (
        f"{name}'s {type(space).__name__} action space takes one control per dimension, "
        f"{space.control_size}"
    )


def _article(word: str) -> str:
    return ("an " if word[:1] in "aeiou" else "a ") + word


def _describe(value: Any) -> str:
    """What came back, for a message: type, dtype and shape."""
    if isinstance(value, bool):
        return f"a Python bool ({value})"
    if isinstance(value, (int, float)):
        return f"a Python {type(value).__name__} ({value!r})"
    if isinstance(value, (list, tuple)):
        return f"a Python {type(value).__name__} of {len(value)} items (build arrays with jnp.stack)"
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
        lambda x: jnp.asarray(x, jnp.float64)
        if eqx.is_array(x) and jnp.issubdtype(x.dtype, jnp.floating)
        else x,
        tree,
    )


def _direction(inputs: tuple, group: int, key: PRNGKeyArray, relative: bool) -> tuple:
    """A random direction in the float arrays of ``inputs[group]``, zero elsewhere: normal
    entries scaled by ``|x|`` (``relative``, for parameters: every one stays positive) or
    by ``max(|x|, 0.1)``."""
    leaves, treedef = jax.tree_util.tree_flatten(inputs[group])
    keys = jr.split(key, len(leaves))
    scaled = []
    for k, x in zip(keys, leaves, strict=True):
        scale = jnp.where(x != 0, jnp.abs(x), 1.0) if relative else jnp.maximum(jnp.abs(x), 0.1)
        scaled.append(jr.normal(k, x.shape, x.dtype) * scale)
    zeros = jax.tree_util.tree_map(jnp.zeros_like, inputs)
    return tuple(
        jax.tree_util.tree_unflatten(treedef, scaled) if i == group else zeros[i]
        for i in range(len(inputs))
    )
