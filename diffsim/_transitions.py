"""Transitions: how the state advances over one control interval under zero-order hold.

An env holds its transition as a field (``env.transition``); :func:`diffsim.step`,
:func:`diffsim.rollout`, training, evaluation and the RL adapters all advance the state
with ``env.transition(env, t, y, u)`` and nothing else. A new solver or discretisation is
one small subclass of :class:`AbstractTransition`.
"""

from __future__ import annotations

import abc
from typing import Protocol, runtime_checkable

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array, ArrayLike, Bool, Float, PyTree, Real

from . import _validate as validate
from ._errors import DiffsimError


@runtime_checkable
class Dynamics(Protocol):
    """What a transition integrates: an env, or the closed loop of an env and a controller
    (:class:`diffsim.ClosedLoop`).

    Example:
        ```python
        import jax.numpy as jnp
        import diffsim

        class Decay:                     # anything with these two members is a Dynamics
            control_dt = 0.1             # s

            def vector_field(self, t, y, u):
                return -y + u

        diffsim.ODEStep()(Decay(), 0.0, jnp.ones(2), jnp.zeros(2))   # ~exp(-0.1) * [1, 1]
        ```
    """

    control_dt: float

    def vector_field(
        self, t: Real[ArrayLike, ""], y: Float[Array, " n"], u: Float[Array, " m"]
    ) -> Float[Array, " n"]: ...


class AbstractTransition(eqx.Module):
    """Advances a state by one control interval ``[t, t + dynamics.control_dt]`` (s) with the
    control ``u`` held constant.

    Subclasses implement ``__call__(dynamics, t, y, u) -> y_next``, states of shape ``(n,)``.

    Example:
        ```python
        import diffsim

        class ExplicitEuler(diffsim.AbstractTransition):
            def __call__(self, dynamics, t, y, u):   # one control interval, u held
                return y + dynamics.control_dt * dynamics.vector_field(t, y, u)

        env = diffsim.envs.Pendulum(transition=ExplicitEuler())
        ```
    """

    @abc.abstractmethod
    def __call__(
        self,
        dynamics: Dynamics,
        t: Real[ArrayLike, ""],
        y: Float[Array, " n"],
        u: Float[Array, " m"],
    ) -> Float[Array, " n"]:
        """The state one control interval after ``y``, shape ``(n,)``."""

    def until_event(
        self,
        dynamics: Dynamics,
        t: Real[ArrayLike, ""],
        y: Float[Array, " n"],
        u: Float[Array, " m"],
    ) -> tuple[Float[Array, " n"], Float[Array, ""], Bool[Array, ""]]:
        """One control interval, cut short where ``dynamics.event(t, y)`` crosses zero (an
        env that declares an :meth:`~diffsim.AbstractEnv.event`): ``(state, time (s),
        whether the event happened)``. Transitions that locate events (:class:`ODESolve`)
        override it; the others refuse envs with an event rather than step over it."""
        raise DiffsimError(
            f"{type(dynamics).__name__} declares an event, which {type(self).__name__} "
            "cannot locate: use transition=diffsim.ODESolve()"
        )


def _check_solver(solver) -> None:
    validate.instance(
        "solver", solver, dfx.AbstractSolver, "a diffrax solver such as diffrax.Tsit5()"
    )


def _held_control_field(t, y, args):
    dynamics, u = args
    return dynamics.vector_field(t, y, u)


_TERM = dfx.ODETerm(_held_control_field)


class ODEStep(AbstractTransition):
    """``substeps`` equal steps of a diffrax ``solver`` per control interval, inside a
    ``lax.scan`` (no ``diffeqsolve``: measured here at the speed of a hand-written scan,
    where ``diffeqsolve`` with its default checkpointing cost about 1.9x for gradients).
    The solver restarts every interval because the held control jumps there.

    Explicit Runge-Kutta solvers (diffrax's ``AbstractERK``: ``Tsit5``, ``Dopri5``,
    ``Heun``, ``Bosh3``, ...) are stepped from their own Butcher tableau with the stages
    unrolled, the same arithmetic as their ``step`` (equal to float rounding, tested)
    without the loop over stages that diffrax uses to serve every solver: measured 1.5x
    faster forward and 1.26x for gradients on the pendulum. Every other solver takes its
    own ``step``.

    Example: ``Pendulum(transition=ODEStep(diffrax.Heun(), substeps=8))``.
    """

    solver: dfx.AbstractSolver = dfx.Tsit5()
    substeps: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        _check_solver(self.solver)
        validate.positive_int("substeps", self.substeps)

    def __call__(self, dynamics, t, y, u):
        dt = dynamics.control_dt / self.substeps
        tableau = _explicit_tableau(self.solver)

        def substep(y, i):
            ta = t + i * dt
            if tableau is not None:
                return _runge_kutta_step(tableau, dynamics, ta, dt, y, u)
            args = (dynamics, u)
            state = self.solver.init(_TERM, ta, ta + dt, y, args)
            y, *_ = self.solver.step(_TERM, ta, ta + dt, y, args, state, made_jump=False)
            return y

        if self.substeps == 1:
            return substep(y, 0)
        y_next, _ = jax.lax.scan(lambda y, i: (substep(y, i), None), y, jnp.arange(self.substeps))
        return y_next


def _explicit_tableau(solver: dfx.AbstractSolver):
    """``(a_lower, b, c)`` as Python floats for an explicit Runge-Kutta solver, else None."""
    tableau = getattr(solver, "tableau", None)
    if not isinstance(solver, dfx.AbstractERK) or not isinstance(tableau, dfx.ButcherTableau):
        return None
    a_lower = tuple(tuple(float(a) for a in row) for row in tableau.a_lower)
    c = (0.0, *(float(c) for c in tableau.c))
    return a_lower, tuple(float(b) for b in tableau.b_sol), c


def _runge_kutta_step(tableau, dynamics, t, dt, y, u):
    a_lower, b, c = tableau
    time = jnp.asarray(t)
    one = jnp.where(jnp.isfinite(time), 1 + 0 * time, 1)  # folded only if t is a constant

    def combine(weights, ks):
        return sum(w * k for w, k in zip(weights, ks, strict=True) if w != 0.0)

    ks = [dynamics.vector_field(t, y, u)]
    for row, c_i in zip(a_lower, c[1:], strict=True):
        stage_input = _formed_once_when_differentiated(y + dt * combine(row, ks), one)
        ks.append(dynamics.vector_field(t + c_i * dt, stage_input, u))
    return y + dt * combine(b, ks)


@jax.custom_jvp
def _formed_once_when_differentiated(x, one):
    """``x``, unchanged in value and derivative.

    Under differentiation its primal is ``x / one``. XLA:CPU copies a chain of cheap
    elementwise operations into every consumer, and a Runge-Kutta stage input (a sum
    that grows with the stage) has several in a gradient's forward pass: the stage's
    vector field and the residuals kept for the backward pass. A divide counts as
    expensive, so XLA forms the sum once. Measured on the pendulum's Tsit5 gradient:
    0.92-0.96 of the fastest hand-written scan at 1,024 episodes without it, 1.07-1.12
    with it, and batch 1 unchanged (``benchmarks/RESULTS.md``). A plain forward pass keeps
    ``x``: there the divide made 1,024 episodes about 1.5x slower.
    """
    return x


@_formed_once_when_differentiated.defjvp
def _formed_once_jvp(primals, tangents):
    x, one = primals
    x_dot, _ = tangents
    return x / jnp.asarray(one, x.dtype), x_dot


class ODESolve(AbstractTransition):
    """One ``diffrax.diffeqsolve`` per control interval, its options passed through as
    diffrax objects: for stiff or accuracy-critical systems.

    ``dt0`` (s) is the first step (``None``: one control interval, or the controller's
    choice). A solve that fails (``max_steps`` reached, a NaN state) raises diffrax's own
    error, which names the cause: a host callback in the compiled program (diffrax's
    ``throw=True``), the one check diffsim keeps inside compiled rollouts, because a failed
    solve must never be a number. It costs speed and keeps programs that use this
    transition out of JAX's persistent compilation cache; :class:`ODEStep` has no such
    check.

    Example: ``ODESolve(stepsize_controller=diffrax.PIDController(rtol=1e-8, atol=1e-8))``.
    """

    solver: dfx.AbstractSolver = dfx.Tsit5()
    stepsize_controller: dfx.AbstractStepSizeController = dfx.PIDController(rtol=1e-6, atol=1e-6)
    adjoint: dfx.AbstractAdjoint = dfx.RecursiveCheckpointAdjoint()
    max_steps: int = eqx.field(static=True, default=256)
    dt0: float | None = eqx.field(static=True, default=None)

    def solve(
        self,
        terms: PyTree,
        t0: Real[ArrayLike, ""],
        t1: Real[ArrayLike, ""],
        y0: PyTree,
        args: PyTree = None,
        **diffeqsolve_options,
    ) -> dfx.Solution:
        """``diffrax.diffeqsolve`` with this object's solver, step-size controller, adjoint
        and ``max_steps``; further keyword arguments (``saveat``, ``event``, ``throw``)
        pass through. Shared by the control-interval transition and event-driven models
        (the trebuchet's phases)."""
        dt0 = t1 - t0 if self.dt0 is None else self.dt0
        return dfx.diffeqsolve(
            terms,
            self.solver,
            t0,
            t1,
            dt0,
            y0,
            args,
            stepsize_controller=self.stepsize_controller,
            adjoint=self.adjoint,
            max_steps=self.max_steps,
            **diffeqsolve_options,
        )

    event_tolerance: float = eqx.field(static=True, default=1e-8)
    """Tolerance (s and state units) of the Newton root find that locates events."""

    def __check_init__(self):
        _check_solver(self.solver)
        validate.instance(
            "stepsize_controller",
            self.stepsize_controller,
            dfx.AbstractStepSizeController,
            "a diffrax step-size controller such as diffrax.PIDController(rtol=1e-6, "
            "atol=1e-6) or diffrax.ConstantStepSize()",
        )
        validate.instance(
            "adjoint",
            self.adjoint,
            dfx.AbstractAdjoint,
            "a diffrax adjoint such as diffrax.RecursiveCheckpointAdjoint()",
        )
        validate.positive_int("max_steps", self.max_steps)
        if self.dt0 is not None:
            validate.positive_float("dt0 (s)", self.dt0)
        validate.positive_float("event_tolerance", self.event_tolerance)

    def __call__(self, dynamics, t, y, u):
        solution = self.solve(
            _TERM, t, t + dynamics.control_dt, y, (dynamics, u), saveat=dfx.SaveAt(t1=True)
        )
        return solution.ys[-1]

    def until_event(self, dynamics, t, y, u):
        tolerance = max(self.event_tolerance, float(jnp.finfo(y.dtype).eps) * 100)
        event = dfx.Event(
            lambda t, y, args, **_: args[0].event(t, y),
            root_finder=optx.Newton(rtol=tolerance, atol=tolerance),
        )
        solution = self.solve(
            _TERM,
            t,
            t + dynamics.control_dt,
            y,
            (dynamics, u),
            saveat=dfx.SaveAt(t1=True),
            event=event,
        )
        return solution.ys[-1], solution.ts[-1], jnp.asarray(solution.event_mask)
