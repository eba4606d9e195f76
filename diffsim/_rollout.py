"""Closed-loop simulation: one control step, and whole rollouts as a ``lax.scan``."""

from __future__ import annotations

import contextlib
import dataclasses
import enum
from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import Any

import equinox as eqx
import jax
import jax.extend
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray, Real

from . import _validate as validate
from ._env import AbstractEnv, cost_method, non_physical_parameters, with_parameter_checks
from ._errors import DiffsimError, first_line, runtime_errors_as_diffsim_errors
from ._spaces import AbstractEstimator, describe_outputs
from ._stateful import AbstractStatefulController

Controller = Callable[[Float[Array, ""], Float[Array, " o"]], Float[Array, " k"]]
"""Anything callable as ``controller(t, observation) -> output``: ``t`` in s, an
observation of shape ``(o,)``, an output of shape ``(k,)`` (``env.action_space``'s
``controller_size``)."""


def control(
    env: AbstractEnv,
    controller: Controller | AbstractStatefulController,
    t: Real[ArrayLike, ""],
    y: Float[Array, " n"],
    estimator: AbstractEstimator | None = None,
    key: PRNGKeyArray | None = None,
) -> Float[Array, " m"]:
    """The control ``u`` (shape ``(m,)``) that ``controller`` applies in state ``y`` at time
    ``t`` (s): it sees ``env.observe(y)``, and its output becomes a control through
    ``env.action_space`` (hard arg-max choices for discrete spaces when ``estimator`` is
    ``None``). Called outside ``jit``, it is compiled once per env and structure of an
    ``eqx.Module`` controller, as :func:`rollout` is.

    Args:
        env: the environment.
        controller: a callable ``controller(t, observation)``.
        t: time (s), a scalar.
        y: the state, shape ``(n,)``.
        estimator: a differentiable estimator for discrete spaces (``None``: hard choice).
        key: a PRNG key for a stochastic estimator.

    Returns:
        The control ``u``, shape ``(m,)``.

    Raises:
        DiffsimError: for an observation that is not a vector, an output of the wrong
            shape, or an :class:`AbstractStatefulController` (it needs its state:
            :func:`rollout` carries it).
    """
    check_model("control", env, controller)
    validate.numbers("t (s)", t, "a number of seconds")
    y = _check_state(env, y, "state")
    if isinstance(controller, AbstractStatefulController):
        raise DiffsimError(
            f"{type(controller).__name__} is a stateful controller: call "
            "controller.step(state, t, x) with its state, or let diffsim.rollout carry it"
        )
    return _run(_act, env, controller, None, jnp.asarray(t, y.dtype), y, estimator, key)[0]


def check_model(function: str, env: Any, controller: Any = None, *, needs_controller=True):
    """A :class:`DiffsimError` for an ``env`` that is not an :class:`AbstractEnv` or a
    controller that cannot be called, naming ``function`` and, when the two are swapped,
    saying so; before anything is traced."""
    if isinstance(controller, AbstractEnv) and not isinstance(env, AbstractEnv):
        raise DiffsimError(
            f"{function}: the env and the controller are swapped (got a "
            f"{type(env).__name__} as the env and a {type(controller).__name__} as the "
            f"controller): call {function}(env, controller, ...)"
        )
    if not isinstance(env, AbstractEnv):
        raise DiffsimError(
            f"{function}: env must be a diffsim.AbstractEnv such as diffsim.envs.Pendulum(), "
            f"got {_shown(env)}"
        )
    if needs_controller and not (
        callable(controller) or isinstance(controller, AbstractStatefulController)
    ):
        raise DiffsimError(
            f"{function}: controller must be callable as controller(t, observation) -> output "
            f"(e.g. diffsim.MLPPolicy.for_env(env, key=jax.random.key(0))) or a "
            f"diffsim.AbstractStatefulController, got {_shown(controller)}"
        )
    bad = non_physical_parameters(env)
    if bad:
        raise DiffsimError(
            f"{function}: {', '.join(bad)}: each must be positive and finite"
        )


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"a {type(value).__name__}"


@contextlib.contextmanager
def user_code(what: str, shape_hint: str) -> Iterator[None]:
    """Errors that code of the user's (an env's method, a controller) raises while it is
    traced, as a :class:`DiffsimError` naming it, with ``shape_hint`` added to shape
    errors."""
    try:
        yield
    except DiffsimError:
        raise
    except (TypeError, ValueError, IndexError) as error:
        message = first_line(error)
        if isinstance(error, jax.errors.JAXTypeError):
            raise DiffsimError(
                f"{what} fails under jax.jit: {type(error).__name__}: "
                f"{message.rstrip('.')}; {TRACING_HINT}"
            ) from error
        words = ("shape", "broadcast", "index", "dimension", "unpack")
        shaped = any(word in message for word in words)
        raise DiffsimError(f"{what} failed: {message}{shaped * shape_hint}") from error


TRACING_HINT = (
    "use jax.numpy rather than numpy or math, jnp.where or jax.lax.cond rather than a "
    "Python if, and no float(), int() or bool() of arrays (parameters are traced too)"
)


def _index_hint(env: AbstractEnv) -> str:
    return (
        f" (states y have shape ({env.state_size},), as initial_state returns them, and "
        f"controls u shape ({env.action_space.control_size},): index components, e.g. u[0] "
        "for the first control, y[1] for the second state)"
    )


def _act(env, controller, memory, t, y, estimator=None, key=None):
    """:func:`control` for any controller: ``(u, memory)``, the memory a stateful
    controller's next state (``None`` for a stateless one)."""
    observation = env.observe(y)
    if jnp.ndim(observation) != 1:
        raise DiffsimError(
            f"{type(env).__name__}.observe returned shape {jnp.shape(observation)}, expected a "
            "vector (o,): wrap a scalar as jnp.stack([x]) or x[None]"
        )
    if isinstance(controller, AbstractStatefulController):
        x = y if controller.full_state else observation
        output, memory = _stateful_step(controller, memory, t, x)
    else:
        what = f"the controller, given {type(env).__name__}'s observation of shape "
        hint = (
            " (a controller built for another env? diffsim.MLPPolicy.for_env(env, ...); or "
            "controllers of several seeds, trained vmapped? one of them is "
            "jax.tree.map(lambda x: x[i], controllers))"
        )
        with user_code(f"{what}{jnp.shape(observation)},", hint):
            output = controller(t, observation)
    expected = (env.action_space.controller_size,)
    if jnp.shape(output) != expected:
        raise DiffsimError(
            f"the controller returned shape {jnp.shape(output)} but "
            f"{type(env).__name__}'s {type(env.action_space).__name__} action space needs "
            f"shape {expected} ({describe_outputs(env.action_space)})"
        )
    return env.action_space.to_control(output, estimator, key=key), memory


def _stateful_step(controller: AbstractStatefulController, memory, t, x):
    """``controller.step(memory, t, x)``, once it returns ``(output, next_state)`` with a
    next state of the structure, shapes and dtypes of ``memory`` (the scan carries it)."""
    name = type(controller).__name__
    with user_code(f"{name}.step, given its state and an input of shape {jnp.shape(x)},", ""):
        result = controller.step(memory, t, x)
    if not (isinstance(result, tuple) and len(result) == 2):
        raise DiffsimError(
            f"{name}.step must return (output, next_state), got {_kinds(result)}"
        )
    given, returned = jax.tree.flatten(memory), jax.tree.flatten(result[1])
    if given[1] != returned[1] or not all(
        _same_kind(x, y) for x, y in zip(given[0], returned[0], strict=True)
    ):
        raise DiffsimError(
            f"{name}.step returned a next state of another form than the state it was given "
            f"(init()'s): {_kinds(result[1])} for {_kinds(memory)}; the state keeps its "
            "structure, shapes and dtypes from step to step"
        )
    return result


def _same_kind(given: Any, returned: Any) -> bool:
    """Whether a leaf of a stateful controller's next state can follow ``given`` in the
    scan's carry: the same shape, and the same dtype or one a weakly typed ``given`` (a
    Python number in ``init()``) is promoted to, as ``lax.scan`` promotes it."""
    if jnp.shape(given) != jnp.shape(returned):
        return False
    kind = jnp.result_type(returned)
    return jnp.result_type(given) == kind or (
        jax.typeof(given).weak_type and jnp.result_type(given, returned) == kind
    )


def _kinds(tree: Any) -> str:
    """``tree`` shown by its structure and its leaves' shapes and dtypes."""
    return str(
        jax.tree.map(lambda x: f"{jnp.result_type(x).name}{list(jnp.shape(x))}", tree)
    )


class ClosedLoop(eqx.Module):
    """An env with its controller inside the vector field (continuous feedback): the
    control is recomputed from the state at every solver stage, not held over the interval.

    It has the ``vector_field`` and ``control_dt`` a transition integrates, so
    ``env.transition(ClosedLoop(...), t, y, u)`` advances the closed loop (``u`` unused).
    ``key`` feeds a stochastic estimator, fixed over the interval.

    Example:
        ```python
        import jax.numpy as jnp
        import jax.random as jr
        import diffsim
        from diffsim import MLPPolicy

        env = diffsim.envs.Pendulum()
        policy = MLPPolicy.for_env(env, key=jr.key(0))
        loop = diffsim.ClosedLoop(env, policy)
        y1 = env.transition(loop, 0.0, jnp.array([jnp.pi, 0.0]), jnp.zeros(1))   # u unused
        # what diffsim.rollout(env, policy, y0, mode="feedback") does at every step
        ```
    """

    env: AbstractEnv
    controller: Controller
    estimator: AbstractEstimator | None = None
    key: PRNGKeyArray | None = None

    def __check_init__(self):
        check_model("ClosedLoop", self.env, self.controller)

    @property
    def control_dt(self) -> float:
        return self.env.control_dt

    def vector_field(
        self, t: Real[ArrayLike, ""], y: Float[Array, " n"], u: Float[Array, " m"]
    ) -> Float[Array, " n"]:
        u = control(self.env, self.controller, t, y, self.estimator, self.key)
        return self.env.vector_field(t, y, u)

    def event(self, t: Real[ArrayLike, ""], y: Float[Array, " n"]) -> Float[Array, ""] | None:
        """The env's :meth:`~diffsim.AbstractEnv.event`."""
        return self.env.event(t, y)


class Trajectory(eqx.Module):
    """A simulated episode (or window of one); leading axes are batch axes when vmapped.

    ``alive[i]`` says whether the episode was still running when step ``i`` began; costs of
    later steps are not counted and states after a termination stay frozen.
    ``terminal_cost`` is the env's terminal cost at the state where the episode ended
    (termination, or the horizon of ``episode_steps``), 0 if it did not end in the window.
    ``end_time`` (s) is when the simulation of the window stopped: the end of the window,
    of the step that terminated, or the exact time of an env's event (then the last state
    taken is the state at that time, and both are differentiable).

    Example:
        ```python
        import jax.numpy as jnp
        import jax.random as jr
        import diffsim
        from diffsim import MLPPolicy

        env = diffsim.envs.Pendulum()
        trajectory = diffsim.rollout(env, MLPPolicy.for_env(env, key=jr.key(0)),
                                     jnp.array([jnp.pi, 0.0]))
        trajectory.states.shape, trajectory.controls.shape   # (201, 2), (200, 1)
        trajectory.episode_return                            # minus the summed cost
        ```
    """

    costs: Float[Array, "*batch T"]
    controls: Float[Array, "*batch T m"]
    alive: Bool[Array, "*batch T"]
    times: Float[Array, "*batch T+1"]
    states: Float[Array, "*batch T+1 n"]
    terminated: Bool[Array, "*batch"]
    terminal_cost: Float[Array, "*batch"]
    end_time: Float[Array, "*batch"]

    @property
    def final_state(self) -> Float[Array, "*batch n"]:
        return self.states[..., -1, :]

    @property
    def total_cost(self) -> Float[Array, "*batch"]:
        """Running costs of the steps taken plus the terminal cost, if charged."""
        return jnp.sum(jnp.where(self.alive, self.costs, 0.0), axis=-1) + self.terminal_cost

    @property
    def episode_return(self) -> Float[Array, "*batch"]:
        """RL-style return: minus the total cost."""
        return -self.total_cost

    @property
    def length(self) -> Int[Array, "*batch"]:
        """Number of steps taken before termination (or the end of the window)."""
        return jnp.sum(self.alive, axis=-1)

    @property
    def terminating_step(self) -> Bool[Array, "*batch T"]:
        """Whether each step ended the episode by a termination: true at most once, at the
        last step taken of an episode that terminated (not at a time limit)."""
        steps = jnp.arange(self.costs.shape[-1])
        return self.terminated[..., None] & (steps == self.length[..., None] - 1)


def as_floats(x: ArrayLike | Sequence[float | int]) -> Float[Array, "..."]:
    """``x`` as a JAX array of floats: integers (and booleans) converted to the default
    float type, floats kept as they are."""
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(float)


def _as_vector(
    env: AbstractEnv, x: ArrayLike | Sequence[float | int], size: int, name: str
) -> Float[Array, " k"]:
    """``x`` as a float vector of ``size`` (lists and integer arrays converted), or a
    :class:`DiffsimError` naming the shape: never a broadcast."""
    validate.numbers(name, x, f"numbers, shape ({size},)")
    x = as_floats(x)
    if x.shape != (size,):
        raise DiffsimError(
            f"{name} has shape {x.shape} but {type(env).__name__} needs shape ({size},)"
            + (" (use jax.vmap for batches)" if x.ndim > 1 else "")
        )
    return x


def _check_state(
    env: AbstractEnv, y: ArrayLike | Sequence[float | int], name: str
) -> Float[Array, " n"]:
    """``y`` as a float vector of the env's state size; a concrete one is also checked
    for NaN and inf. A traced one is not: ``eqx.error_if`` would put a host callback into
    every compiled rollout, which cost up to 20 % of the gradient's speed at 1024 episodes
    (``benchmarks/rollout_throughput.py``) and keeps the program out of JAX's persistent
    compilation cache. A non-finite state makes a non-finite trajectory, which the entry
    points that run the compiled code (``evaluate``, ``train``, an eager ``rollout``)
    report as a :class:`DiffsimError`."""
    y = _as_vector(env, y, env.state_size, name)
    if _is_concrete(y) and not np.all(np.isfinite(np.asarray(y))):
        raise DiffsimError(f"{name} contains NaN or inf: {y}")
    return y


def _check_precision(y: Array, **parts: Any) -> None:
    """A :class:`DiffsimError` for a part (the env, the controller, a control) holding
    floats wider than the state ``y``: a simulation computes in its state's dtype, and
    float64 parameters would turn a float32 state float64 half-way through a step."""
    bits = jnp.finfo(y.dtype).bits
    for name, part in parts.items():
        arrays = jax.tree.leaves(eqx.filter(part, eqx.is_inexact_array))
        wider = sorted({x.dtype.name for x in arrays if jnp.finfo(x.dtype).bits > bits})
        if wider:
            raise DiffsimError(
                f"the {name} holds {wider[0]} arrays and the state is {y.dtype.name}: a "
                f"simulation computes in its state's dtype; give a {wider[0]} state, or build "
                f"the {name} in {y.dtype.name} (before jax_enable_x64)"
            )


def _is_concrete(*arrays: Any) -> bool:
    """Whether we run eagerly (checks can raise at once) rather than under a trace."""
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(arrays))


def step(
    env: AbstractEnv,
    t: Real[ArrayLike, ""],
    y: ArrayLike | Sequence[float | int],
    u: ArrayLike | Sequence[float | int],
) -> tuple[Float[Array, " n"], Float[Array, ""], Bool[Array, ""]]:
    """One control interval under zero-order hold, through ``env.transition``: the
    transition RL sees and the one ``rollout`` scans. Called outside ``jit``, it is
    compiled once per env and reused, as :func:`rollout` is.

    Args:
        env: the environment.
        t: time since the episode started (s).
        y: state, shape ``(n,)`` (lists and integer arrays are converted; NaN or inf is a
            :class:`DiffsimError`; inside ``jit``, NaN in gives NaN out).
        u: applied control, shape ``(m,)`` (``env.action_space.from_action`` maps an RL
            action to it); any other shape is a :class:`DiffsimError`, never a broadcast.

    Returns:
        ``(next_state, cost, terminated)``: the next state, shape ``(n,)``, the running
        cost charged at ``(t, y, u)``, and whether the next state ends the episode.
    """
    check_model("step", env, needs_controller=False)
    validate.numbers("t (s)", t, "a number of seconds")
    env = with_parameter_checks(env)
    y = _check_state(env, y, "state")
    u = _as_vector(env, u, env.action_space.control_size, "control")
    _check_precision(y, env=env, control=u)
    if _is_concrete(u) and not np.all(np.isfinite(np.asarray(u))):
        raise DiffsimError(f"control contains NaN or inf: {u}")
    return _run(_advance, env, jnp.asarray(t, y.dtype), y, u)[:3]


def _advance(env, t, y, u, dynamics=None):
    """:func:`step` without its input checks: what a rollout scans, for ``dynamics`` (the
    env, or its :class:`ClosedLoop`). Returns ``(y_next, cost, done, end_time)``: an
    env's event ends the step (and the episode) early. The shapes of what the env returns
    are checked as it is traced (no run-time cost): never a broadcast."""
    dynamics = env if dynamics is None else dynamics
    with user_code(f"{type(env).__name__}.vector_field (in its transition)", _index_hint(env)):
        field = jax.eval_shape(env.vector_field, t, y, u)
        if jnp.shape(field) != jnp.shape(y):
            raise DiffsimError(
                f"{type(env).__name__}.vector_field returned shape {jnp.shape(field)}, expected "
                f"the state's shape {jnp.shape(y)} (controls u have shape "
                f"({env.action_space.control_size},): index components, e.g. u[0])"
            )
        if env.event(t, y) is not None:
            y_next, end, hit = env.transition.until_event(dynamics, t, y, u)
        else:
            y_next, end, hit = env.transition(dynamics, t, y, u), t + env.control_dt, False
    y_next = _expect(env, "transition", y_next, jnp.shape(y), y.dtype)
    cost = _expect(env, cost_method(env), env.step_cost(t, y, u, y_next), (), y.dtype)
    done = _expect(env, "termination", env.termination(y_next), (), jnp.bool_) | hit
    return y_next, cost, done, jnp.asarray(end, y.dtype)


def _expect(env: AbstractEnv, method: str, value: Any, shape: tuple, dtype) -> Array:
    """``value`` as an array of ``shape`` and ``dtype`` (numbers are converted: a rollout
    computes in its state's dtype, whatever the env's parameters are), or a
    :class:`DiffsimError` naming ``method``."""
    value = jnp.asarray(value)
    kind = "a boolean" if dtype == jnp.bool_ else "a floating-point"
    if value.shape != shape or (dtype == jnp.bool_) != (value.dtype == jnp.bool_):
        raise DiffsimError(
            f"{type(env).__name__}.{method} returned {value.dtype}{list(value.shape)}, expected "
            f"{kind} array of shape {shape}"
            + (" (a scalar: index or sum, e.g. cost[0])" if shape == () else "")
        )
    return value if value.dtype == dtype else value.astype(dtype)


def rollout(
    env: AbstractEnv,
    controller: Controller | AbstractStatefulController,
    y0: ArrayLike | Sequence[float | int],
    *,
    num_steps: int | None = None,
    start_step: int | Int[Array, ""] = 0,
    mode: str = "zoh",
    estimator: AbstractEstimator | None = None,
    key: PRNGKeyArray | None = None,
    checkpoint_every: int | None = None,
    unroll: int | bool = 1,
    stop_at_episode_end: bool = False,
) -> Trajectory:
    """Simulate the closed loop from ``y0`` for ``num_steps`` control intervals.

    Called outside ``jit`` with a controller that is an ``eqx.Module`` (``MLPPolicy``,
    the classical controllers, your own), the simulation is compiled once for each env,
    structure of the controller (everything in it but its arrays) and set of options,
    then reused: a loop over start states, start steps or controller weights compiles
    once. A function of your own (a ``lambda`` controller, or one in a Module's field) or
    another callable object is traced afresh at every call, so that it reads the current
    values of the arrays in its closure, its globals or its attributes. Inside a ``jit``
    or ``vmap`` of your own the rollout is traced into your program.

    Args:
        env: the environment; ``env.transition`` advances each interval.
        controller: ``controller(t, observation) -> output``, or an
            :class:`AbstractStatefulController` (its state starts from ``init()`` and is
            carried from step to step); outputs become controls through
            ``env.action_space``.
        y0: initial state, shape ``(n,)``; vmap for batches. The rollout computes in its
            dtype: float32 by default, float64 after
            ``jax.config.update("jax_enable_x64", True)`` (build the env then too).
        num_steps: control steps (default ``env.episode_steps - start_step``).
        start_step: the episode's step count at ``y0`` (time ``start_step * control_dt``
            s), so a window that continues an episode keeps its clock and its horizon.
        mode: ``"zoh"`` holds the control over each interval (gym-like);
            ``"feedback"`` integrates the :class:`ClosedLoop`, the controller inside the
            vector field (continuous time). Costs and recorded controls are taken at the
            control instants in both.
        estimator: differentiable estimator for discrete action spaces (training);
            ``None`` takes hard arg-max choices (evaluation).
        key: randomness for stochastic estimators.
        checkpoint_every: for long horizons, differentiate in bounded memory: the scan
            runs as windows of this many steps under ``jax.checkpoint``, so the backward
            pass stores one carry per window and recomputes each window's steps (about one
            more forward pass). Memory of the gradient goes from O(``num_steps``) step
            residuals to O(``num_steps / checkpoint_every + checkpoint_every``);
            ``checkpoint_every`` near ``sqrt(num_steps)`` minimises it. The result is
            the same; ``None`` (default) stores every step.
        unroll: control steps per iteration of the compiled loop, ``jax.lax.scan``'s
            ``unroll`` passed through. The result is the same; on CPU, 4 runs a single
            episode (batch 1) faster and compiles slower (see ``benchmarks/RESULTS.md``).
        stop_at_episode_end: where ``start_step + num_steps`` reaches beyond
            ``env.episode_steps``, end the episode there: the later steps are still
            simulated (``states`` go on) but are not part of it (not alive, not charged,
            and a termination among them is no termination). ``False`` (default): they
            count like any other (a planner such as :class:`diffsim.controllers.MPC`
            looks beyond the episode's end). A :class:`diffsim.Trainer` whose windows run
            past the end sets it.

    Returns:
        A :class:`Trajectory` with ``num_steps + 1`` states. The terminal cost is charged
        once, at the step where the episode terminates or reaches ``env.episode_steps``.

    Raises:
        DiffsimError: for a state of the wrong shape, a controller output of the wrong
            size, a stateful controller in ``"feedback"`` mode, or (when called outside
            ``jit`` or ``vmap``) a NaN initial state, a failed solve of
            :class:`ODESolve` or a simulation that diverged. Inside a
            ``jit`` or ``vmap`` of your own these are not checked: a NaN initial state gives
            a NaN trajectory.
    """
    check_model("rollout", env, controller)
    validate.one_of("mode", mode, ("zoh", "feedback"))
    stateful = isinstance(controller, AbstractStatefulController)
    if stateful and mode == "feedback":
        raise DiffsimError(
            f"mode='feedback' recomputes the control at every solver stage; "
            f"{type(controller).__name__} is a stateful controller, stepped once per control "
            "interval: use mode='zoh'"
        )
    if isinstance(start_step, int):
        validate.nonnegative_int("start_step", start_step)
        if start_step >= env.episode_steps:
            raise DiffsimError(
                f"start_step {start_step} is not inside {type(env).__name__}'s episode of "
                f"{env.episode_steps} steps"
            )
    if num_steps is None:
        if not isinstance(start_step, int):
            raise DiffsimError("pass num_steps when start_step is traced")
        num_steps = env.episode_steps - start_step
    validate.positive_int("num_steps", num_steps)
    if estimator is not None:
        validate.instance(
            "estimator", estimator, AbstractEstimator, "a diffsim.StraightThrough() or "
            "diffsim.GumbelSoftmax(), or None"
        )
    if estimator is not None and estimator.needs_key and key is None:
        raise DiffsimError(f"{type(estimator).__name__} needs key= in rollout")
    if key is not None:
        validate.prng_key("key", key)
    validate.optional_positive_int("checkpoint_every", checkpoint_every)
    if not isinstance(unroll, bool):
        validate.positive_int("unroll", unroll)
    env = with_parameter_checks(env)
    y0 = _check_state(env, y0, "initial state")
    _check_precision(y0, env=env, controller=controller)
    start = jnp.asarray(start_step, jnp.int32)
    validate.boolean("stop_at_episode_end", stop_at_episode_end)
    options = (num_steps, mode, estimator, checkpoint_every, unroll, stop_at_episode_end)
    trajectory = _run(_simulate, env, controller, y0, start, key, *options)
    if _is_concrete(trajectory):
        _check_diverged(trajectory)
    return trajectory


def _run(function: Callable, *args: Any) -> Any:
    """``function(*args)``, equinox's runtime errors (a failed solve) raised as
    :class:`DiffsimError`. An eager call (no array in ``args`` traced) goes through
    ``function``'s ``eqx.filter_jit``, compiled once per :func:`_program_key`, so that a
    loop of eager calls compiles once; where there is no key, or the code cannot be
    traced (a Python ``if`` on an array), it runs as called, as it would without the
    cache."""
    if not _is_concrete(args):
        return function(*args)
    key = _program_key(function, args)
    with runtime_errors_as_diffsim_errors():
        if key is not None and key not in _UNTRACEABLE:
            try:
                return _COMPILED[function](*args)
            except (eqx.EquinoxRuntimeError, jax.errors.JaxRuntimeError):
                raise
            except Exception:
                _UNTRACEABLE.add(key)
        return function(*args)


def _program_key(function: Callable, args: Any) -> Hashable | None:
    """What identifies ``function``'s program for ``args``: their structure, their arrays'
    shapes and dtypes, and their other values. ``None`` where these cannot key a cache
    (unhashable) or may not: a function or object of the user's (a ``lambda`` controller,
    a function in a field) can read arrays from its closure, its globals or its
    attributes, which change behind an unchanged identity and a reused program would keep
    at their first values."""
    if not _values_only(args):
        return None
    leaves, structure = jax.tree.flatten(args)
    shapes = tuple(
        jax.ShapeDtypeStruct(x.shape, x.dtype) if eqx.is_array(x) else x for x in leaves
    )
    key = (function, structure, shapes)
    try:
        hash(key)
    except TypeError:  # a list in a static field, say
        return None
    return key


def _values_only(x: Any) -> bool:
    """Whether ``x`` holds only arrays, values (numbers, strings, dtypes, enums) and
    functions of JAX and the libraries diffsim builds on, looking into containers and the
    fields of equinox Modules, static ones included."""
    if x is None or eqx.is_array(x) or isinstance(x, _VALUES):
        return True
    if isinstance(x, (tuple, list)):
        return all(map(_values_only, x))
    if isinstance(x, dict):
        return all(map(_values_only, x.values()))
    if isinstance(x, eqx.Module):
        return all(_values_only(getattr(x, field.name)) for field in dataclasses.fields(x))
    module = getattr(x, "__module__", None) or ""  # None for some compiled callables
    return callable(x) and module.partition(".")[0] in _LIBRARIES


_VALUES = (bool, int, float, complex, str, bytes, type, np.dtype, enum.Enum)
_LIBRARIES = frozenset(
    {"jax", "jaxlib", "numpy", "equinox", "diffrax", "optax", "optimistix", "lineax", "diffsim"}
)
_UNTRACEABLE: set = set()
"""The program keys whose tracing failed: those calls run as called from then on."""


def _simulate(
    env, controller, y0, start, key, num_steps, mode, estimator, every, unroll, stop_at_end
):
    """:func:`rollout` after its checks, from step ``start`` (an int32 array)."""
    stateful = isinstance(controller, AbstractStatefulController)
    keys = None if key is None else jr.split(key, num_steps)
    dt = jnp.asarray(env.control_dt, y0.dtype)

    def body(carry, step_key):
        k, y, alive, taken, terminal_cost, end_time, memory = carry
        t = k * dt
        u, memory = _act(env, controller, memory, t, y, estimator, step_key)
        closed_loop = None if mode == "zoh" else ClosedLoop(env, controller, estimator, step_key)
        y_next, cost, done, end = _advance(env, t, y, u, closed_loop)
        ends = done | (k + 1 == env.episode_steps)
        if not (has_event or may_terminate):
            # Alive at every step: no masks, whose per-step residuals slow the gradient.
            terminal_cost = terminal_cost + jnp.where(ends, env.terminal_cost(y_next), 0.0)
            carry = (k + 1, y_next, alive, taken, terminal_cost, end_time, memory)
            return carry, (y_next, u, cost)
        charged = alive & ends
        if stop_at_end:  # a termination past the episode's end charges nothing
            charged = charged & (k < env.episode_steps)
        terminal_cost = terminal_cost + jnp.where(charged, env.terminal_cost(y_next), 0.0)
        if has_event:  # otherwise the end is the end of the last step taken
            end_time = jnp.where(alive, end, end_time)
        taken = jnp.where(alive & done, k + 1 - start, taken)
        y_next = jnp.where(alive, y_next, y)
        carry = (k + 1, y_next, alive & ~done, taken, terminal_cost, end_time, memory)
        return carry, (y_next, u, cost)

    has_event, may_terminate = _endings(env, start * dt, y0)
    zero = jnp.zeros((), y0.dtype)
    memory = controller.init() if stateful else None
    init = (start, y0, jnp.array(True), jnp.asarray(num_steps, jnp.int32), zero, start * dt, memory)
    (_, _, still_alive, taken, terminal_cost, end_time, _), (ys, us, costs) = _scan(
        body, init, keys, num_steps, every, unroll
    )
    if stop_at_end:  # the steps from the episode's end on are not part of it
        ended_inside = ~still_alive & (start + taken <= env.episode_steps)
        taken = jnp.minimum(taken, env.episode_steps - start)
        end_time = jnp.minimum(end_time, env.episode_steps * dt)
    return Trajectory(
        times=(start + jnp.arange(num_steps + 1)) * dt,
        states=jnp.concatenate([y0[None], ys]),
        controls=us,
        costs=costs,
        alive=jnp.arange(num_steps) < taken,
        terminated=ended_inside if stop_at_end else ~still_alive,
        terminal_cost=terminal_cost,
        end_time=end_time if has_event else (start + taken) * dt,
    )


_COMPILED = {function: eqx.filter_jit(function) for function in (_act, _advance, _simulate)}


def _endings(env: AbstractEnv, t, y) -> tuple[bool, bool]:
    """How an episode of ``env`` may end before its horizon, as traced: ``(has_event,
    may_terminate)``; ``may_terminate`` is ``False`` only when the env's termination traces
    to the constant ``False`` (the default)."""
    with user_code(f"{type(env).__name__}.event or .termination", _index_hint(env)):
        has_event = env.event(t, y) is not None
        done = jax.make_jaxpr(env.termination)(y).jaxpr.outvars[0]
    return has_event, not (isinstance(done, jax.extend.core.Literal) and not done.val)


def _scan(body, init, xs, length: int, every: int | None, unroll: int | bool = 1):
    """``jax.lax.scan(body, init, xs, length=length, unroll=unroll)``; with ``every``, as
    an outer scan over windows of ``every`` steps, each window under ``jax.checkpoint``
    (only the carry at window boundaries is saved for the backward pass), and a last
    shorter window for the remainder."""
    if every is None or every >= length:
        return jax.lax.scan(body, init, xs, length=length, unroll=unroll)
    windows, rest = divmod(length, every)
    head = jax.tree.map(lambda x: x[: windows * every].reshape(windows, every, *x.shape[1:]), xs)

    @jax.checkpoint
    def window(carry, window_xs):
        return jax.lax.scan(body, carry, window_xs, length=every, unroll=unroll)

    carry, outputs = jax.lax.scan(window, init, head, length=windows)
    outputs = jax.tree.map(lambda y: y.reshape(windows * every, *y.shape[2:]), outputs)
    if rest:
        tail = jax.tree.map(lambda x: x[windows * every :], xs)

        @jax.checkpoint
        def last_window(carry, tail_xs):
            return jax.lax.scan(body, carry, tail_xs, length=rest, unroll=unroll)

        carry, last = last_window(carry, tail)
        outputs = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), outputs, last)
    return carry, outputs


def finite_steps(trajectory: Trajectory) -> Bool[Array, "*batch T"]:
    """Per control step (of each episode of a batch), whether the state it reaches and its
    cost are finite."""
    states_finite = jnp.all(jnp.isfinite(trajectory.states[..., 1:, :]), axis=-1)
    return states_finite & jnp.isfinite(trajectory.costs)


def _check_diverged(trajectory: Trajectory) -> None:
    """A :class:`DiffsimError` naming the first step whose state or cost is not finite."""
    finite = finite_steps(trajectory)
    if not bool(jnp.all(finite)) or not bool(jnp.isfinite(trajectory.terminal_cost)):
        first = int(jnp.argmin(finite)) if not bool(jnp.all(finite)) else finite.shape[0]
        raise DiffsimError(
            f"the simulation diverged: non-finite state or cost at step {first} (from state "
            f"{trajectory.states[0]}); check the initial state, the parameters and the transition"
        )
