"""Hinged-counterweight trebuchet with a sling: ground, hang and flight phases.

Frame: origin at the arm's pivot, x horizontal (the shot flies towards +x), y up; the
ground is at ``y = -pivot_height``. Generalised coordinates ``q = (a, w, s)``: arm angle
from the vertical, counterweight angle relative to the arm, sling angle relative to the
arm. Arm-phase states are ``(a, w, s, da, dw, ds)``, flight states ``(x, y, vx, vy)``.
Everything inside is SI; only :func:`shoot` and :func:`simulate` take the published
units (m/s, degrees, pounds).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Literal

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import optimistix as optx
from jaxtyping import Array, ArrayLike, Bool, Float, Int, Real

from diffsim import DiffsimError, ODESolve

FOOT = 0.3048
"""One foot in metres."""
POUND = 0.45359237
"""One pound in kilograms."""

(
    OK,
    SLING_SLACK,
    NO_LIFT_OFF,
    NO_RELEASE,
    NO_LANDING,
    SOLVER_FAILED,
    EVENT_IMPRECISE,
    INVALID_INPUT,
) = range(8)
WIND_LIMIT = 100.0
"""The largest wind speed (m/s, either direction) a shot accepts: beyond hurricane force,
near the strongest gust ever measured (113 m/s). Faster winds are outside the model
(incompressible quadratic drag) and outside what 60 Hz Euler integrates stably."""
WEIGHT_LIMIT = 1e6
"""The heaviest counterweight (lb) a shot accepts, 2000 times the reference's 500 lb. The
arm then turns so fast that most shots fail (``SOLVER_FAILED``); far beyond it, near
1e15 lb, float32 overflows in the equations of motion."""
STATUS_MESSAGES = {
    OK: "ok",
    SLING_SLACK: "sling went slack on the ground (counterweight too light); the projectile "
    "stays at its resting x",
    NO_LIFT_OFF: "the projectile never lifted off the ground within the phase time limit",
    NO_RELEASE: "the release angle was never reached within the hang phase time limit",
    NO_LANDING: "the projectile did not land within the flight time limit",
    SOLVER_FAILED: "the ODE solver failed (max_steps reached or a NaN state)",
    EVENT_IMPRECISE: "an event's root finder did not converge, so the event time and the "
    "distance are unknown",
    INVALID_INPUT: f"an input is outside the model's domain (wind finite and at most "
    f"{WIND_LIMIT:g} m/s either way, release angle strictly between 0 and 90 degrees, "
    f"counterweight positive and at most {WEIGHT_LIMIT:g} lb, machine parameters finite "
    "and physical)",
}
"""Human-readable meaning of each ``Shot.status`` code.

Which statuses are failures, with a NaN distance (see :class:`Shot`): ``NO_LIFT_OFF``,
``NO_LANDING``, ``SOLVER_FAILED``, ``EVENT_IMPRECISE`` and ``INVALID_INPUT`` always;
``NO_RELEASE`` with :class:`diffsim.ODESolve` numerics (with :class:`EulerHermite` the
projectile is released where the hang phase's time limit ends, as Trebuchet.jl did, and
the shot keeps its distance). ``SLING_SLACK`` is a result: the resting x, 0.682 m for the
presets, with a zero gradient.
"""


def _float(x) -> Array:
    return jnp.asarray(x, dtype=float)


def _domain_problem(name: str, value: float) -> str | None:
    """Why a concrete input is outside the model's domain, or ``None`` when it is inside.

    Args:
        name: ``"wind"`` (m/s), ``"angle"`` (release angle, degrees) or ``"weight"``
            (counterweight, lb).
        value: the input.

    Returns:
        The end of a sentence that starts with the input's name ("must be ..., got ..."),
        or ``None``. The command line and :func:`trajectory` raise it as a
        ``DiffsimError``; :func:`simulate` reports ``INVALID_INPUT`` instead (it may be
        traced).
    """
    if not math.isfinite(value):
        return f"must be a finite number, got {value}"
    if name == "wind" and not abs(value) <= WIND_LIMIT:
        return f"must be at most {WIND_LIMIT:g} m/s either way (the model's domain), got {value}"
    if name == "angle" and not 0 < value < 90:
        return f"must be strictly between 0 and 90 degrees, got {value}"
    if name == "weight" and not 0 < value <= WEIGHT_LIMIT:
        return f"must be a positive number of pounds, at most {WEIGHT_LIMIT:g}, got {value}"
    return None


def _check_inputs(wind: float, angle: float, weight: float) -> None:
    """Raise a ``DiffsimError`` naming the first of the three concrete inputs (m/s,
    degrees, lb) that is outside the model's domain."""
    for name, value in (("wind", wind), ("angle", angle), ("weight", weight)):
        problem = _domain_problem(name, float(value))
        if problem is not None:
            raise DiffsimError(f"{name} {problem}")


class EulerHermite(eqx.Module):
    """Trebuchet.jl's 2019 numerics: explicit Euler at a fixed step ``dt`` (s), the step
    grid restarting at each event, each event located by root finding on the cubic Hermite
    interpolant of the step that crossed it (as OrdinaryDiffEq's ``ContinuousCallback``
    with ``Euler`` did). Every phase takes ``round(phase_time / dt)`` steps, so it is
    differentiable in forward and reverse mode as it stands.

    Example: ``Trebuchet(..., numerics=EulerHermite(dt=1 / 120))``.
    """

    dt: float | int = eqx.field(static=True, default=1 / 60)

    def __check_init__(self):
        if not (isinstance(self.dt, int | float) and math.isfinite(self.dt) and self.dt > 0):
            raise DiffsimError(
                f"EulerHermite.dt must be a positive number of seconds, got {self.dt!r}"
            )


def _adaptive_numerics() -> ODESolve:
    """The faithful preset's numerics, tolerances chosen for the precision now enabled."""
    x64 = bool(jax.config.jax_enable_x64)
    return ODESolve(
        solver=dfx.Tsit5(),
        stepsize_controller=dfx.PIDController(
            rtol=1e-9 if x64 else 1e-5, atol=1e-10 if x64 else 1e-6
        ),
        adjoint=dfx.RecursiveCheckpointAdjoint(),
        max_steps=256,
        dt0=1e-3,
    )


class Trebuchet(eqx.Module):
    """A hinged-counterweight trebuchet; its physical parameters are array fields.

    Being an ``eqx.Module``, a ``Trebuchet`` is a pytree: ``eqx.filter_grad`` of a shot
    with respect to it differentiates the distance by every physical parameter, and
    ``eqx.filter_vmap`` runs a batch of different machines. The counterweight mass is not
    a field: it is an input of :func:`shoot`, as in the 2019 post.

    Lengths are in metres, masses in kilograms, inertias (about each body's own centre
    of gravity) in kg m^2, gravity in m/s^2, air density in kg/m^3.

    Static fields choose the numerics:

    - ``numerics``: a :class:`diffsim.ODESolve`, whose solver, step-size controller,
      adjoint, ``max_steps`` and ``dt0`` every phase uses as given (events via
      ``diffrax.Event`` located by a bracketed Newton root finder (Newton steps kept
      inside the step where the event happened, bisection when one would leave it, so
      an event that barely happens is still found); a phase that reaches
      ``max_steps`` reports ``SOLVER_FAILED``), or :class:`EulerHermite` (Trebuchet.jl's
      2019 numerics). Default: the faithful preset's, ``ODESolve(Tsit5(),
      PIDController(rtol, atol), dt0=1e-3, max_steps=256)`` with ``rtol, atol = 1e-5,
      1e-6`` when float32 is the working precision at construction and ``1e-9, 1e-10``
      when float64 is (``jax.config.jax_enable_x64``): build the machine inside the
      precision it runs in. The default adjoint, ``RecursiveCheckpointAdjoint``, gives
      reverse mode; :meth:`forward_mode` switches to forward mode (``jax.jvp``,
      ``jax.jacfwd``).
    - ``tension``: ``"exact"`` (lift-off from the exact projectile acceleration) or
      ``"backward_difference"`` (from the change of horizontal velocity over the last
      step, as Trebuchet.jl; :class:`EulerHermite` only).
    - ``phase_time``: time limit in seconds of the ground, hang and flight phases.

    ``numerics`` is a static field (hashable, part of the compiled structure), so
    ``jax.jit``, ``jax.grad`` and ``jax.vmap`` see only the physical parameters.

    Example:
        ```python
        import dataclasses
        import jax
        from diffsim.envs import trebuchet as tr

        machine = tr.trebuchet()                                   # the faithful preset
        longer = dataclasses.replace(machine, long_arm=2.5)        # a 2.5 m arm
        tr.shoot(-2.0, 45.0, 200.0, longer)                        # distance (m)
        jax.grad(lambda tb: tr.shoot(-2.0, 45.0, 200.0, tb))(machine).long_arm   # m per m
        ```
    """

    pivot_height: Float[Array, ""] = eqx.field(converter=_float)
    long_arm: Float[Array, ""] = eqx.field(converter=_float)
    short_arm: Float[Array, ""] = eqx.field(converter=_float)
    weight_arm: Float[Array, ""] = eqx.field(converter=_float)
    sling_length: Float[Array, ""] = eqx.field(converter=_float)
    projectile_radius: Float[Array, ""] = eqx.field(converter=_float)
    projectile_mass: Float[Array, ""] = eqx.field(converter=_float)
    arm_mass: Float[Array, ""] = eqx.field(converter=_float)
    arm_inertia: Float[Array, ""] = eqx.field(converter=_float)
    weight_inertia: Float[Array, ""] = eqx.field(converter=_float)
    gravity: Float[Array, ""] = eqx.field(converter=_float)
    air_density: Float[Array, ""] = eqx.field(converter=_float)
    drag_coefficient: Float[Array, ""] = eqx.field(converter=_float)
    numerics: ODESolve | EulerHermite = eqx.field(static=True, default_factory=_adaptive_numerics)
    tension: Literal["exact", "backward_difference"] = eqx.field(static=True, default="exact")
    phase_time: tuple[float | int, float | int, float | int] = eqx.field(
        static=True, default=(2.0, 2.0, 12.0)
    )

    def __check_init__(self):
        if not isinstance(self.numerics, ODESolve | EulerHermite):
            raise DiffsimError(
                "numerics must be a diffsim.ODESolve or an EulerHermite, got "
                f"{type(self.numerics).__name__}"
            )
        if self.tension not in ("exact", "backward_difference"):
            raise DiffsimError(
                f"tension must be 'exact' or 'backward_difference', got {self.tension!r}"
            )

    @property
    def arm_cg(self) -> Float[Array, ""]:
        """Pivot to arm centre of gravity, on the long side (m)."""
        return (self.long_arm - self.short_arm) / 2

    @property
    def drag_constant(self) -> Float[Array, ""]:
        """k = rho C_d pi r^2 / (2 m_p) in 1/m: drag deceleration is k |v_rel| v_rel."""
        area = math.pi * self.projectile_radius**2
        return self.air_density * self.drag_coefficient * area / (2 * self.projectile_mass)

    def initial_coordinates(self) -> Float[Array, "3"]:
        """``q = (a, w, s)`` at rest: arm tip and sling on the ground, weight hanging."""
        theta = jnp.arcsin(self.pivot_height / self.long_arm)
        a = jnp.pi / 2 + theta
        return jnp.stack([a, -a, jnp.pi - theta])

    def resting_x(self) -> Float[Array, ""]:
        """x of the projectile at rest on the ground (m), 0.68157 m for the presets."""
        theta = jnp.arcsin(self.pivot_height / self.long_arm)
        return self.sling_length - self.long_arm * jnp.cos(theta)

    def energy(
        self, state: Float[Array, "6"], weight_mass: Real[ArrayLike, ""]
    ) -> Float[Array, ""]:
        """Mechanical energy (J) of an arm-phase state ``(a, w, s, da, dw, ds)``: kinetic
        energy of the three centres of gravity plus the arm's and the counterweight's
        rotation about their own, and potential energy ``m g y``; ``weight_mass`` in kg.
        Conserved in the hang phase (and on the frictionless ground)."""
        q, qd = state[:3], state[3:]
        masses = jnp.stack([self.arm_mass, jnp.asarray(weight_mass, q.dtype), self.projectile_mass])
        positions, velocities = jax.jvp(lambda q: _points(self, q), (q,), (qd,))
        kinetic = 0.5 * jnp.sum(masses * jnp.sum(velocities**2, axis=-1))
        kinetic += 0.5 * self.arm_inertia * qd[0] ** 2
        kinetic += 0.5 * self.weight_inertia * (qd[0] + qd[1]) ** 2
        return kinetic + self.gravity * jnp.sum(masses * positions[:, 1])

    def forward_mode(self) -> Trebuchet:
        """The same machine for forward-mode differentiation (``jax.jvp``,
        ``jax.jacfwd``): an :class:`diffsim.ODESolve` gets diffrax's ``ForwardMode``
        adjoint, everything else of it unchanged; :class:`EulerHermite` numerics are
        differentiable in both modes already and are returned as they are."""
        if isinstance(self.numerics, ODESolve):
            numerics = dataclasses.replace(self.numerics, adjoint=dfx.ForwardMode())
            return dataclasses.replace(self, numerics=numerics)
        return self


def trebuchet() -> Trebuchet:
    """The physically faithful default: Trebuchet.jl's geometry and masses with the
    inertias in their right places, an adaptive ``Tsit5`` solver and the exact sling
    tension at lift-off. The one to use for physics.

    Its numerics are ``diffsim.ODESolve(Tsit5(), PIDController(rtol, atol), dt0=1e-3,
    max_steps=256)``, the tolerances chosen when it is called: ``rtol=1e-5, atol=1e-6``
    under float32, ``1e-9, 1e-10`` under float64 (``jax.enable_x64``). Call it inside the
    precision the shots run in."""
    return Trebuchet(
        pivot_height=5.0 * FOOT,
        long_arm=6.792 * FOOT,
        short_arm=1.75 * FOOT,
        weight_arm=2.0 * FOOT,
        sling_length=6.833 * FOOT,
        projectile_radius=0.1245 * FOOT,
        projectile_mass=0.328 * POUND,
        arm_mass=10.65 * POUND,
        arm_inertia=10.65 * POUND * ((6.792 + 1.75) * FOOT) ** 2 / 12,
        weight_inertia=POUND * FOOT**2,
        gravity=9.80665,
        air_density=1.0,
        drag_coefficient=1.0,
    )


def trebuchet_jl() -> Trebuchet:
    """The reference preset: Trebuchet.jl as it ran for the 2019 post.

    It swaps the two inertias (the arm's term uses 1 lb ft^2, the counterweight's the
    arm's 2.7289 kg m^2), integrates with explicit Euler at 60 Hz restarting the step grid
    at each event, locates events on cubic Hermite interpolants, and estimates the
    lift-off tension by a backward difference. A hang phase that reaches 1 s without
    reaching the release angle releases there (status ``NO_RELEASE``), as Trebuchet.jl
    did. Valid for roughly 50-500 lb at moderate angles.
    """
    faithful = trebuchet()
    parameters = {name: getattr(faithful, name) for name in _PARAMETER_FIELDS}
    parameters["arm_inertia"] = faithful.weight_inertia
    parameters["weight_inertia"] = faithful.arm_inertia
    return Trebuchet(
        **parameters,
        numerics=EulerHermite(dt=1 / 60),
        tension="backward_difference",
        phase_time=(1.5, 1.0, 9.0),
    )


_PARAMETER_FIELDS = (
    "pivot_height",
    "long_arm",
    "short_arm",
    "weight_arm",
    "sling_length",
    "projectile_radius",
    "projectile_mass",
    "arm_mass",
    "arm_inertia",
    "weight_inertia",
    "gravity",
    "air_density",
    "drag_coefficient",
)


# ----------------------------------------------------------------------------------------
# Mechanics


class _Args(eqx.Module):
    trebuchet: Trebuchet
    weight_mass: Float[Array, ""]
    wind: Float[Array, ""]
    release_angle: Float[Array, ""]


def _points(tb: Trebuchet, q: Float[Array, "3"]) -> Float[Array, "3 2"]:
    """Arm CG, counterweight CG and projectile positions (m)."""
    a, w, s = q
    arm = tb.arm_cg * jnp.stack([-jnp.sin(a), jnp.cos(a)])
    weight = jnp.stack(
        [
            tb.short_arm * jnp.sin(a) + tb.weight_arm * jnp.sin(a + w),
            -tb.short_arm * jnp.cos(a) - tb.weight_arm * jnp.cos(a + w),
        ]
    )
    projectile = _projectile(tb, q)
    return jnp.stack([arm, weight, projectile])


def _projectile(tb: Trebuchet, q: Float[Array, "3"]) -> Float[Array, "2"]:
    a, _, s = q
    return jnp.stack(
        [
            -tb.long_arm * jnp.sin(a) - tb.sling_length * jnp.sin(a + s),
            tb.long_arm * jnp.cos(a) + tb.sling_length * jnp.cos(a + s),
        ]
    )


def _projectile_velocity(tb: Trebuchet, y: Float[Array, "6"]) -> Float[Array, "2"]:
    return jax.jvp(lambda q: _projectile(tb, q), (y[:3],), (y[3:],))[1]


def _mechanics(args: _Args, y: Float[Array, "6"]):
    """Mass matrix, generalised forces and the projectile's Jacobian and bias acceleration.

    With ``J_i`` the Jacobian of point ``i`` and ``b_i = qd^T (d2 p_i / dq2) qd`` its
    velocity-product acceleration, Lagrange's equations read ``M qdd = Q`` with
    ``M = sum m_i J_i^T J_i + sum I_k e_k e_k^T`` and ``Q = -sum m_i J_i^T (b_i + g e_y)``.
    """
    tb = args.trebuchet
    q, qd = y[:3], y[3:]
    masses = jnp.stack([tb.arm_mass, args.weight_mass, tb.projectile_mass])
    jac = jax.jacfwd(lambda q: _points(tb, q))(q)
    bias = jax.jvp(lambda q: jax.jvp(lambda q: _points(tb, q), (q,), (qd,))[1], (q,), (qd,))[1]
    arm_axis = jnp.array([1.0, 0.0, 0.0], dtype=y.dtype)
    weight_axis = jnp.array([1.0, 1.0, 0.0], dtype=y.dtype)
    mass_matrix = (
        jnp.einsum("i,ikj,ikl->jl", masses, jac, jac)
        + tb.arm_inertia * jnp.outer(arm_axis, arm_axis)
        + tb.weight_inertia * jnp.outer(weight_axis, weight_axis)
    )
    gravity = jnp.stack([jnp.zeros_like(tb.gravity), tb.gravity])
    force = -jnp.einsum("i,ikj,ik->j", masses, jac, bias + gravity[None, :])
    return mass_matrix, force, jac[2], bias[2]


def _inverse3(m: Float[Array, "3 3"]) -> Float[Array, "3 3"]:
    # Adjugate over determinant: cheaper than LAPACK for a batch of 3x3 matrices.
    cofactors = jnp.cross(jnp.roll(m, -1, axis=0), jnp.roll(m, 1, axis=0))
    return cofactors.T / jnp.dot(m[0], cofactors[0])


def _hang_field(t, y: Float[Array, "6"], args: _Args) -> Float[Array, "6"]:
    mass_matrix, force, _, _ = _mechanics(args, y)
    return jnp.concatenate([y[3:], _inverse3(mass_matrix) @ force])


def _ground_accelerations(args: _Args, y: Float[Array, "6"]):
    """qdd with the projectile held on the ground (``c . qdd = -b_y`` with ``c`` the
    gradient of its height, via a Lagrange multiplier), and its exact x acceleration."""
    mass_matrix, force, proj_jac, proj_bias = _mechanics(args, y)
    row = proj_jac[1]
    inverse = _inverse3(mass_matrix)
    free = inverse @ force
    direction = inverse @ row
    multiplier = (-proj_bias[1] - row @ free) / (row @ direction)
    qdd = free + multiplier * direction
    return qdd, proj_jac[0] @ qdd + proj_bias[0]


def _ground_field(t, y: Float[Array, "6"], args: _Args) -> Float[Array, "6"]:
    qdd, _ = _ground_accelerations(args, y)
    return jnp.concatenate([y[3:], qdd])


def _flight_field(t, y: Float[Array, "4"], args: _Args) -> Float[Array, "4"]:
    tb = args.trebuchet
    vx, vy = y[2], y[3]
    relative_x = vx - args.wind
    speed = jnp.sqrt(relative_x**2 + vy**2)
    k = tb.drag_constant
    return jnp.stack([vx, vy, -k * relative_x * speed, -tb.gravity - k * vy * speed])


def _sling_angle(y):
    return y[0] + y[2] - jnp.pi


def _lift_off_value(args: _Args, y, x_acceleration):
    """m_p g - T cos(theta), with T = -m_p xdd_p / sin(theta): the ground's normal force."""
    tb = args.trebuchet
    theta = _sling_angle(y)
    tension = -tb.projectile_mass * x_acceleration / jnp.sin(theta)
    return tb.projectile_mass * tb.gravity - tension * jnp.cos(theta), tension


def _release_value(args: _Args, y):
    """|v| sin(direction of the projectile's velocity - release angle), in m/s: the sign
    and zeros of Trebuchet.jl's sin(direction - angle), better conditioned for Newton."""
    v = _projectile_velocity(args.trebuchet, y)
    r = args.release_angle
    return v[1] * jnp.cos(r) - v[0] * jnp.sin(r)


def _landing_value(args: _Args, y):
    return y[1] + args.trebuchet.pivot_height


def _flight_start(args: _Args, y: Float[Array, "6"]) -> Float[Array, "4"]:
    tb = args.trebuchet
    return jnp.concatenate([_projectile(tb, y[:3]), _projectile_velocity(tb, y)])


# ----------------------------------------------------------------------------------------
# Trebuchet.jl numerics: explicit Euler, events on cubic Hermite interpolants


def _hermite(t0, dt, y0, f0, y1, f1, t):
    s = (t - t0) / dt
    s2, s3 = s * s, s * s * s
    return (
        (2 * s3 - 3 * s2 + 1) * y0
        + (s3 - 2 * s2 + s) * dt * f0
        + (-2 * s3 + 3 * s2) * y1
        + (s3 - s2) * dt * f1
    )


def _root_tolerance(dtype):
    return (1e-5, 1e-4) if dtype == jnp.float32 else (1e-10, 1e-10)


def _frozen(tree):
    """``tree`` with the derivatives of its floating-point arrays stopped."""
    return jax.tree.map(
        lambda x: jax.lax.stop_gradient(x) if eqx.is_inexact_array(x) else x, tree
    )


@jax.custom_jvp
def _implicit_root(root, value, slope):
    """``root``, a zero of an event function ``g`` found with derivatives stopped, given
    the derivative of the implicit function theorem: ``d root = -d value / slope`` with
    ``value = g(root)`` (differentiated with respect to everything but ``root``) and
    ``slope = g'(root)``."""
    del value, slope
    return root


@_implicit_root.defjvp
def _implicit_root_jvp(primals, tangents):
    root, value, slope = primals
    _, value_dot, _ = tangents
    return root, -value_dot / slope


def _locate(g, inputs, solver, start, options, max_steps):
    """The root of ``g(t, inputs)`` by ``optimistix.root_find`` with ``solver`` from
    ``start`` (``options``: its bracket), and the optimistix result.

    The root is found on ``inputs`` with their derivatives stopped and then given its
    implicit derivative by :func:`_implicit_root`, as optimistix's ``ImplicitAdjoint``
    would, but without its tangent solve: a lineax ``linear_solve`` with ``throw=True``,
    an ``eqx.error_if`` whose host callback kept every compiled derivative of a shot
    (``diffsim shoot --grad``, ``diffsim aim``) out of JAX's persistent compilation
    cache. A non-finite derivative is a NaN gradient, never an exception."""
    solution = optx.root_find(
        g,
        solver,
        jax.lax.stop_gradient(start),
        _frozen(inputs),
        options=_frozen(options),
        throw=False,
        max_steps=max_steps,
    )
    root = solution.value
    value, slope = jax.jvp(lambda t: g(t, inputs), (root,), (jnp.ones_like(root),))
    return _implicit_root(root, value, jax.lax.stop_gradient(slope)), solution.result


def _euler_hermite_phase(field, condition, y0, t0, args, n_steps, dt):
    """Euler steps from ``(t0, y0)`` until ``condition`` changes sign over a step, then
    the event time as the root of the condition on the step's cubic Hermite interpolant
    (as OrdinaryDiffEq's ``ContinuousCallback`` with ``Euler`` did).

    ``condition(t_prev, y_prev, t, y) -> (value, fail)``: the event function at ``(t, y)``
    within the step that started at ``(t_prev, y_prev)``; ``fail`` stops the phase.
    Returns ``(t_event, y_event, found, failed)``; when nothing was found, the last step.
    """
    false = jnp.array(False)
    f0 = field(t0, y0, args)
    init = (t0, y0, f0, false, false, (t0, y0, f0, y0, f0))

    def step(carry, _):
        t, y, f, found, failed, bracket = carry
        t1 = t + dt
        y1 = y + dt * f
        f1 = field(t1, y1, args)
        g0 = condition(t, y, t, y, args)[0]
        g1, fail1 = condition(t, y, t1, y1, args)
        stop = found | failed
        cross = ~stop & (jnp.sign(g1) != jnp.sign(g0)) & ~fail1
        fail1 = ~stop & fail1
        bracket = jax.tree.map(
            lambda new, old: jnp.where(cross, new, old), (t, y, f, y1, f1), bracket
        )
        advance = ~stop & ~cross & ~fail1
        t, y, f = jax.tree.map(lambda n, o: jnp.where(advance, n, o), (t1, y1, f1), (t, y, f))
        return (t, y, f, found | cross, failed | fail1, bracket), None

    (t_end, y_end, _, found, failed, bracket), _ = jax.lax.scan(step, init, None, length=n_steps)
    t_n, y_n, f_n, y_n1, f_n1 = bracket

    # A "crossing" into a NaN state is no event to locate (the shot fails on its NaN
    # landing); a NaN must not reach the root finder, whose derivative would raise on it.
    usable = found & jnp.all(jnp.isfinite(jnp.concatenate([y_n, f_n, y_n1, f_n1])))
    bracket = (t_n, y_n, f_n, y_n1, f_n1, usable, args)

    def value(fraction, bracket):
        t_n, y_n, f_n, y_n1, f_n1, usable, args = bracket
        tau = t_n + fraction * dt
        g = condition(t_n, y_n, tau, _hermite(t_n, dt, y_n, f_n, y_n1, f_n1, tau), args)[0]
        # Without an event the bracket is a placeholder: solve a harmless equation.
        return jnp.where(usable, g, fraction - 0.5)

    # The condition may jump at the step's start (the ground phase's backward-difference
    # tension is defined as zero there); a root "at" the jump is the step's start.
    low, high = 1e-4, 1.0
    g_low, g_high = value(low, bracket), value(high, bracket)
    g_start = condition(t_n, y_n, t_n, y_n, args)[0]
    at_start = jnp.sign(g_low) != jnp.sign(g_start)
    denominator = jnp.where(g_low == g_high, 1.0, g_low - g_high)
    guess = jnp.clip(low + (high - low) * g_low / denominator, low, high)
    rtol, atol = _root_tolerance(y0.dtype)
    root, _ = _locate(
        value,
        bracket,
        optx.Newton(rtol=rtol, atol=atol),
        guess,
        dict(lower=low, upper=high),
        max_steps=32,
    )
    fraction = jnp.where(at_start, 0.0, root)
    t_event = jnp.where(found, t_n + fraction * dt, t_end)
    y_event = jnp.where(found, _hermite(t_n, dt, y_n, f_n, y_n1, f_n1, t_event), y_end)
    return t_event, y_event, found, failed


def _ground_condition_jl(t_prev, y_prev, t, y, args):
    tb = args.trebuchet
    if tb.tension == "exact":
        _, x_acceleration = _ground_accelerations(args, y)
    else:
        vx = _projectile_velocity(tb, y)[0]
        vx_prev = _projectile_velocity(tb, y_prev)[0]
        elapsed = t - t_prev
        at_start = elapsed == 0
        x_acceleration = jnp.where(
            at_start, 0.0, (vx - vx_prev) / jnp.where(at_start, 1.0, elapsed)
        )
    value, tension = _lift_off_value(args, y, x_acceleration)
    return value, tension < 0


def _release_condition_jl(t_prev, y_prev, t, y, args):
    return _release_value(args, y), jnp.array(False)


def _landing_condition_jl(t_prev, y_prev, t, y, args):
    return _landing_value(args, y), jnp.array(False)


def _placeholder_lift_off(y0: Float[Array, "6"]) -> Float[Array, "6"]:
    """Where the hang phase starts after a failed ground phase: the resting pose with the
    arm turning at 1 rad/s, so that no event of the (discarded) later phases fires at its
    very first instant with a zero time derivative."""
    return y0.at[3].set(-1.0)


def _detach_unless(keep: Bool[Array, ""], tree):
    """``tree`` where ``keep``, else the same values with their gradients stopped.

    A failed phase (a slack sling) still runs the later phases on placeholder inputs, whose
    backward pass may hold infinities (an event at its very first instant); without this
    the zero cotangent times those infinities would turn the whole gradient into NaN.
    """
    return jax.tree.map(
        lambda x: jnp.where(keep, x, jax.lax.stop_gradient(x)) if eqx.is_inexact_array(x) else x,
        tree,
    )


def _simulate_euler_hermite(args: _Args):
    tb = args.trebuchet
    dt = tb.numerics.dt
    n_ground, n_hang, n_flight = (int(round(p / dt)) for p in tb.phase_time)
    q0 = tb.initial_coordinates()
    y0 = jnp.concatenate([q0, jnp.zeros_like(q0)])
    zero = jnp.zeros((), y0.dtype)
    t_lift, y_lift, lifted, slack = _euler_hermite_phase(
        _ground_field, _ground_condition_jl, y0, zero, args, n_ground, dt
    )
    hang_ok = lifted & ~slack
    y_lift = jnp.where(hang_ok, y_lift, _placeholder_lift_off(y0))
    t_lift = jnp.where(hang_ok, t_lift, zero)
    y_lift, t_lift, args = _detach_unless(hang_ok, (y_lift, t_lift, args))
    t_release, y_release, released, _ = _euler_hermite_phase(
        _hang_field, _release_condition_jl, y_lift, t_lift, args, n_hang, dt
    )
    p0 = _flight_start(args, y_release)
    t_land, p_land, landed, _ = _euler_hermite_phase(
        _flight_field,
        _landing_condition_jl,
        p0,
        t_release,
        args,
        n_flight,
        dt,
    )
    status = jnp.select(
        [slack, ~lifted, ~landed, ~released],
        [SLING_SLACK, NO_LIFT_OFF, NO_LANDING, NO_RELEASE],
        OK,
    )
    return status, (t_lift, t_release, t_land), (y_lift, y_release, p0, p_land)


# ----------------------------------------------------------------------------------------
# Adaptive numerics: a diffsim.ODESolve (Tsit5 by default) with events


def _ground_forces(args: _Args, y):
    """(normal force, sling tension) on the projectile in N, from the exact acceleration."""
    _, x_acceleration = _ground_accelerations(args, y)
    return _lift_off_value(args, y, x_acceleration)


def _finite_event(t, value):
    """``value`` where it is finite, else ``1 + t`` (positive, slope 1 in s): a NaN state
    is no event (all three event functions start positive), so it never reaches the root
    finder, whose derivative would raise on a NaN; the solver then fails on it."""
    return jnp.where(jnp.isfinite(value), value, 1.0 + t)


def _ground_event(t, y, args, **kwargs):
    # Both start positive; the phase ends when either crosses zero: lift-off (normal
    # force) or a slack sling (tension).
    normal, tension = _ground_forces(args, y)
    return _finite_event(t, normal * tension)


def _release_event(t, y, args, **kwargs):
    # Positive at lift-off (the projectile moves backwards, direction - angle in (0, 180)
    # degrees), zero when its direction reaches the release angle.
    return _finite_event(t, _release_value(args, y))


def _landing_event(t, y, args, **kwargs):
    return _finite_event(t, _landing_value(args, y))


class _BracketedState(eqx.Module):
    lower: Float[Array, ""]
    upper: Float[Array, ""]
    lower_negative: Bool[Array, ""]
    bracketed: Bool[Array, ""]
    first: Bool[Array, ""]
    diff: Float[Array, ""]


class _BracketedNewton(optx.AbstractRootFinder):
    """Newton's method on a scalar function kept inside the sign change between the
    ``lower`` and ``upper`` options (the step in which diffrax saw the event): a Newton
    step that would leave the bracket, or has no finite slope, is a bisection step
    instead. Converges where plain Newton can cycle: an event that barely happens (the
    sling's direction grazing the release angle) has three roots in one step.

    diffrax starts at ``y0 = upper`` and saw the sign change, so the first evaluation
    orients the bracket (``lower`` has the other sign) without evaluating ``lower``; a
    zero there (no event: a batch element that ends at ``upper``) or another start
    gives plain Newton clipped to the bounds. Stops when a step is shorter than
    ``atol + rtol |t|`` (time units; ``t`` the time since the shot started, the phase's
    own time plus ``time_offset``, its start): no tolerance on the function's value,
    whose scale differs from event to event."""

    rtol: float
    atol: float
    time_offset: Float[ArrayLike, ""] = 0.0
    norm = staticmethod(jnp.abs)

    def init(self, fn, y, args, options, f_struct, aux_struct, tags):
        false = jnp.array(False)
        return _BracketedState(
            lower=jnp.asarray(options["lower"], f_struct.dtype),
            upper=jnp.asarray(options["upper"], f_struct.dtype),
            lower_negative=false,
            bracketed=false,
            first=jnp.array(True),
            diff=jnp.asarray(jnp.inf, f_struct.dtype),
        )

    def step(self, fn, y, args, options, state, tags):
        f, slope, aux = jax.jvp(lambda t: fn(t, args), (y,), (jnp.ones_like(y),), has_aux=True)
        start = state.first & (y == state.upper) & (f != 0) & (state.lower < state.upper)
        bracketed = jnp.where(state.first, start, state.bracketed)
        lower_negative = jnp.where(state.first, f > 0, state.lower_negative)
        on_lower_side = (f < 0) == lower_negative
        lower = jnp.where(bracketed & on_lower_side, y, state.lower)
        upper = jnp.where(bracketed & ~on_lower_side, y, state.upper)
        newton = y - f / jnp.where(slope == 0, 1.0, slope)
        usable = jnp.isfinite(newton) & (slope != 0)
        inside = usable & (newton > lower) & (newton < upper)
        bracketed_step = jnp.where(inside, newton, lower + 0.5 * (upper - lower))
        clipped_step = jnp.clip(jnp.where(usable, newton, y), state.lower, state.upper)
        new_y = jnp.where(bracketed, bracketed_step, clipped_step)
        new_y = jnp.where(f == 0, y, new_y)
        new_state = _BracketedState(
            lower=lower,
            upper=upper,
            lower_negative=lower_negative,
            bracketed=bracketed,
            first=jnp.array(False),
            diff=new_y - y,
        )
        return new_y, new_state, aux

    def terminate(self, fn, y, args, options, state, tags):
        small = jnp.abs(state.diff) <= self.atol + self.rtol * jnp.abs(y + self.time_offset)
        return small, optx.RESULTS.successful

    def postprocess(self, fn, y, aux, args, options, state, tags, result):
        return y, aux, {}


def _event_tolerance(dtype):
    """(rtol, atol) in seconds for the adaptive phases' event times."""
    return (1e-6, 1e-6) if dtype == jnp.float32 else (1e-12, 1e-12)


def _adaptive_phase(field, cond_fn, y0, t0, duration, args):
    """One phase by ``tb.numerics.solve`` until ``cond_fn`` crosses zero or
    ``duration`` (s) has passed; the event located by :class:`_BracketedNewton` to
    tolerances set by the state's dtype. Returns ``(t_end, y_end, ended, failed,
    imprecise)``.

    With the reverse-mode ``RecursiveCheckpointAdjoint`` (the default), a phase that
    failed passes a zero gradient back to its inputs: its own backward pass may hold
    ``0 * inf`` (a blown-up state), and a NaN reaching an earlier phase's event would make
    that event's implicit derivative raise instead of giving the failed shot's NaN
    distance a plain zero gradient."""
    if isinstance(args.trebuchet.numerics.adjoint, dfx.RecursiveCheckpointAdjoint):
        return _gated_phase((y0, t0, args), field, cond_fn, duration)
    return _solve_phase(field, cond_fn, y0, t0, duration, args)


@eqx.filter_custom_vjp
def _gated_phase(inputs, field, cond_fn, duration):
    y0, t0, args = inputs
    return _solve_phase(field, cond_fn, y0, t0, duration, args)


@_gated_phase.def_fwd
def _gated_phase_fwd(perturbed, inputs, field, cond_fn, duration):
    def phase(inputs):
        y0, t0, args = inputs
        return _solve_phase(field, cond_fn, y0, t0, duration, args)

    out, vjp = eqx.filter_vjp(phase, inputs)
    _, y_end, _, failed, imprecise = out
    broken = failed | imprecise | ~jnp.all(jnp.isfinite(y_end))
    return out, (vjp, out, broken)


@_gated_phase.def_bwd
def _gated_phase_bwd(residuals, grad_obj, perturbed, inputs, field, cond_fn, duration):
    vjp, out, broken = residuals
    grad_obj = jax.tree.map(
        lambda g, x: (
            (g if g is not None else jnp.zeros_like(x)) if eqx.is_inexact_array(x) else None
        ),
        grad_obj,
        out,
        is_leaf=lambda x: x is None,
    )
    (cotangent,) = vjp(grad_obj)
    return jax.tree.map(
        lambda g: None if g is None else jnp.where(broken, jnp.zeros_like(g), g),
        cotangent,
        is_leaf=lambda x: x is None,
    )


def _solve_phase(field, cond_fn, y0, t0, duration, args):
    """:func:`_adaptive_phase` without the gradient gate.

    The solve runs in the phase's own time, from 0 to ``duration`` (Python numbers), and
    ``t0`` is added afterwards: the fields do not depend on time, and the events only
    through :func:`_finite_event`'s placeholder, positive either way. A concrete start
    matters for compiling: with a traced ``t0`` diffrax checks ``(t1 - t0) * dt0 >= 0``
    at run time with ``eqx.error_if``, a host callback, and JAX never writes a program
    holding a host callback to its persistent compilation cache.

    diffrax stops at the end of the step in which the event function changed sign (its
    event without a root finder); the event is then located on that step's dense
    interpolant by :class:`_BracketedNewton`, started at the step's end with the step as
    its bracket, as diffrax's own event root find does, but with the derivative of
    :func:`_locate` (diffrax's would put lineax's checked tangent solve, another host
    callback, into every derivative of a shot). The event tolerance keeps measuring
    ``|t|`` from the shot's start (``time_offset``)."""
    solution = args.trebuchet.numerics.solve(
        dfx.ODETerm(field),
        0.0,
        duration,
        y0,
        args,
        saveat=dfx.SaveAt(t1=True, dense=True),
        event=dfx.Event(cond_fn),
        throw=False,
    )
    t_step, y_step = solution.ts[-1], solution.ys[-1]
    happened = solution.event_mask
    dense = solution.interpolation
    last = jnp.maximum(dense.ts_size - 2, 0)  # the last step: [ts[last], ts[last + 1]]
    step = dense.interpolation_cls(
        t0=dense.ts[last], t1=dense.ts[last + 1], **jax.tree.map(lambda x: x[last], dense.infos)
    )

    def event(t, inputs):
        step, args, happened, t_step = inputs
        # No event: the root is the end of the step (diffrax's convention).
        return jnp.where(happened, cond_fn(t, step.evaluate(t), args), t_step - t)

    rtol, atol = _event_tolerance(y0.dtype)
    t_event, root_result = _locate(
        event,
        (step, args, happened, t_step),
        _BracketedNewton(rtol=rtol, atol=atol, time_offset=jax.lax.stop_gradient(t0)),
        t_step,
        dict(lower=dense.ts[last], upper=t_step),
        max_steps=256,
    )
    stepped = solution.stats["num_steps"] > 0
    y_end = jax.lax.cond(happened & stepped, lambda: step.evaluate(t_event), lambda: y_step)
    result = dfx.RESULTS.where(
        root_result == optx.RESULTS.successful, solution.result, dfx.RESULTS.promote(root_result)
    )
    t_end = t0 + t_event
    imprecise = (result == dfx.RESULTS.nonlinear_max_steps_reached) | (
        result == dfx.RESULTS.nonlinear_divergence
    )
    failed = (result != dfx.RESULTS.successful) & (result != dfx.RESULTS.event_occurred)
    failed = failed | ~jnp.all(jnp.isfinite(y_end))  # diffrax may accept a NaN step
    ended = happened & ~failed | imprecise
    return t_end, y_end, ended, failed & ~imprecise, imprecise


def _simulate_adaptive(args: _Args):
    tb = args.trebuchet
    q0 = tb.initial_coordinates()
    y0 = jnp.concatenate([q0, jnp.zeros_like(q0)])
    zero = jnp.zeros((), y0.dtype)
    slack_at_rest = _ground_forces(args, y0)[1] < 0
    t_lift, y_lift, ended, failed_ground, imprecise_ground = _adaptive_phase(
        _ground_field,
        _ground_event,
        y0,
        zero,
        tb.phase_time[0],
        _detach_unless(~slack_at_rest, args),
    )
    normal, tension = _ground_forces(args, y_lift)
    slack = slack_at_rest | (ended & (jnp.abs(tension) < jnp.abs(normal)))
    lifted = ended & ~slack
    hang_ok = lifted & ~slack & ~failed_ground
    y_lift = jnp.where(hang_ok, y_lift, _placeholder_lift_off(y0))
    t_lift = jnp.where(hang_ok, t_lift, zero)
    y_lift, t_lift, args = _detach_unless(hang_ok, (y_lift, t_lift, args))
    t_release, y_release, released, failed_hang, imprecise_hang = _adaptive_phase(
        _hang_field, _release_event, y_lift, t_lift, tb.phase_time[1], args
    )
    y_release = jnp.where(released, y_release, y_lift)
    p0 = _flight_start(args, y_release)
    t_land, p_land, landed, failed_flight, imprecise_flight = _adaptive_phase(
        _flight_field, _landing_event, p0, t_release, tb.phase_time[2], args
    )
    failed = failed_ground | (hang_ok & failed_hang) | (hang_ok & released & failed_flight)
    imprecise = imprecise_ground | imprecise_hang | imprecise_flight
    status = jnp.select(
        [slack, failed, ~lifted, ~released, ~landed, imprecise],
        [SLING_SLACK, SOLVER_FAILED, NO_LIFT_OFF, NO_RELEASE, NO_LANDING, EVENT_IMPRECISE],
        OK,
    )
    return status, (t_lift, t_release, t_land), (y_lift, y_release, p0, p_land)


# ----------------------------------------------------------------------------------------
# Public functions


class Shot(eqx.Module):
    """The result of one shot (or, under ``vmap``, a batch: every field gains a leading
    batch axis).

    - ``distance``: landing x from the pivot (m); the resting x (0.682 m) when the sling
      went slack; NaN when the shot failed (:attr:`failed`), never a number from a failed
      solve.
    - ``status``: 0 ok, else a key of ``STATUS_MESSAGES`` (1 sling slack, 2 no lift-off,
      3 no release, 4 no landing, 5 solver failure, 6 an event's root finder did not
      converge, 7 an input outside the model's domain). Failures (NaN distance): 2, 4,
      5, 6, 7, and 3 with :class:`diffsim.ODESolve` numerics; with :class:`EulerHermite`
      numerics status 3 is Trebuchet.jl's release at the hang phase's time limit and the
      shot keeps its distance.
    - ``lift_off_time``, ``release_time``, ``landing_time``: event times (s); NaN for an
      event the shot never reached (after a slack sling or no lift-off every one of them;
      after no release, as a failure, release and landing; after no landing, landing);
      after a solver failure or an imprecise event, the time the failing phase stopped.
    - ``lift_off_state``, ``release_state``: arm-phase states ``(a, w, s, da, dw, ds)``
      (rad, rad/s) at lift-off and at release; NaN where the event was never reached.
    - ``release_position``, ``release_velocity``: the projectile's (m, m/s) at release;
      NaN where it was never released.

    With status 7 (invalid input) every float field is NaN: nothing was simulated.

    Example:
        ```python
        from diffsim.envs import trebuchet as tr

        shot = tr.simulate(-2.0, 45.0, 200.0)      # wind m/s, release angle degrees, weight lb
        float(shot.distance), int(shot.status)     # about 71.12 m, 0 (ok)
        tr.STATUS_MESSAGES[int(shot.status)]       # "ok"
        float(shot.release_time)                   # s after the start
        ```
    """

    distance: Float[Array, "*batch"]
    status: Int[Array, "*batch"]
    lift_off_time: Float[Array, "*batch"]
    release_time: Float[Array, "*batch"]
    landing_time: Float[Array, "*batch"]
    lift_off_state: Float[Array, "*batch 6"]
    release_state: Float[Array, "*batch 6"]
    release_position: Float[Array, "*batch 2"]
    release_velocity: Float[Array, "*batch 2"]

    @property
    def ok(self) -> Bool[Array, "*batch"]:
        """Whether the shot went through all three phases."""
        return self.status == OK

    @property
    def failed(self) -> Bool[Array, "*batch"]:
        """Whether the shot has no distance (NaN): a failure status, see ``status``."""
        return jnp.isnan(self.distance)

    @property
    def message(self) -> str:
        """The status of a single shot in words."""
        return STATUS_MESSAGES[int(self.status)]


def _args(tb, wind, angle, weight) -> _Args:
    return _Args(
        trebuchet=tb,
        weight_mass=_float(weight) * POUND,
        wind=_float(wind),
        release_angle=jnp.deg2rad(_float(angle)),
    )


_POSITIVE_FIELDS = (
    "pivot_height",
    "long_arm",
    "short_arm",
    "weight_arm",
    "sling_length",
    "projectile_mass",
    "gravity",
)
"""Machine parameters that must be positive; the others must be non-negative."""


def _inputs_valid(wind, angle, weight) -> Bool[Array, "*batch"]:
    """Whether (wind m/s, angle degrees, weight lb) is inside the model's domain: the
    traced twin of :func:`_domain_problem` (NaN fails every comparison)."""
    return (
        (jnp.abs(wind) <= WIND_LIMIT)
        & (angle > 0)
        & (angle < 90)
        & (weight > 0)
        & (weight <= WEIGHT_LIMIT)
    )


def _machine_valid(tb: Trebuchet) -> Bool[Array, "*batch"]:
    """Whether every physical parameter is finite, lengths, the projectile's mass and
    gravity are positive, the rest non-negative, and the pivot is lower than the long arm
    (the projectile can rest on the ground)."""
    valid = tb.pivot_height < tb.long_arm
    for name in _PARAMETER_FIELDS:
        value = getattr(tb, name)
        bound = value > 0 if name in _POSITIVE_FIELDS else value >= 0
        valid = valid & jnp.isfinite(value) & bound
    return valid


def _replace_invalid(valid, tb: Trebuchet, wind, angle, weight):
    """The inputs where ``valid``, else a harmless shot (the faithful machine, no wind,
    45 degrees, 200 lb) whose results are discarded: no NaN reaches the solvers or their
    root finders, whose derivatives would raise on one, and the gradient is zero."""
    reference = trebuchet_default()

    def pick(value, placeholder):
        value = _float(value)  # a field set by tree surgery may be a Python float
        placeholder = jnp.asarray(placeholder, value.dtype)
        return jnp.where(valid, value, placeholder)

    parameters = {
        name: pick(getattr(tb, name), getattr(reference, name)) for name in _PARAMETER_FIELDS
    }
    tb = dataclasses.replace(tb, **parameters)
    return tb, pick(wind, 0.0), pick(angle, 45.0), pick(weight, 200.0)


def _failure(status, numerics) -> Bool[Array, "*batch"]:
    """Whether ``status`` leaves the shot without a distance (see ``STATUS_MESSAGES``)."""
    failures = [NO_LIFT_OFF, NO_LANDING, SOLVER_FAILED, EVENT_IMPRECISE, INVALID_INPUT]
    if not isinstance(numerics, EulerHermite):
        failures.append(NO_RELEASE)
    return jnp.isin(status, jnp.array(failures))


def simulate(
    wind: Real[ArrayLike, ""],
    angle: Real[ArrayLike, ""],
    weight: Real[ArrayLike, ""],
    trebuchet: Trebuchet | None = None,
) -> Shot:
    """One shot with its event times, states and status.

    Jit-able, vmappable, differentiable; see :func:`shoot` for just the distance. It never
    raises on values: a shot that fails has a NaN distance and a failure status (see
    :class:`Shot`), and its gradient is zero or NaN, never an exception.

    Args:
        wind: wind speed (m/s), positive blows towards +x (a tailwind); a scalar, finite,
            at most ``WIND_LIMIT`` (100 m/s) either way.
        angle: release angle above the horizontal (degrees); a scalar strictly between 0
            and 90.
        weight: counterweight (lb); a positive scalar, at most ``WEIGHT_LIMIT`` (1e6).
        trebuchet: the machine (default: the faithful :func:`trebuchet`); its parameters
            finite, lengths, projectile mass and gravity positive, the others
            non-negative, the pivot lower than the long arm.

    Returns:
        A :class:`Shot`. Inputs outside the domain above give status ``INVALID_INPUT``
        (7) with NaN in every float field; under ``vmap`` only the offending elements.
    """
    return _what_happened(_simulated(wind, angle, weight, trebuchet))


def _what_happened(shot: Shot) -> Shot:
    """``shot`` with NaN for the events it never reached and the states at them: after a
    slack sling or no lift-off the later phases ran from a placeholder lift-off (so that a
    batch keeps one program), and their times and states mean nothing."""
    never_lifted = jnp.isin(shot.status, jnp.array([SLING_SLACK, NO_LIFT_OFF]))
    # no release is a failure only where it leaves the shot without a distance
    never_released = never_lifted | ((shot.status == NO_RELEASE) & shot.failed)
    never_landed = never_released | (shot.status == NO_LANDING)

    def unless(missed, x):
        missed = missed.reshape(missed.shape + (1,) * (x.ndim - missed.ndim))
        return jnp.where(missed, jnp.nan, x)

    return dataclasses.replace(
        shot,
        lift_off_time=unless(never_lifted, shot.lift_off_time),
        lift_off_state=unless(never_lifted, shot.lift_off_state),
        release_time=unless(never_released, shot.release_time),
        release_state=unless(never_released, shot.release_state),
        release_position=unless(never_released, shot.release_position),
        release_velocity=unless(never_released, shot.release_velocity),
        landing_time=unless(never_landed, shot.landing_time),
    )


def _simulated(wind, angle, weight, trebuchet: Trebuchet | None) -> Shot:
    """:func:`simulate` before :func:`_what_happened`: every field a number where the
    inputs are valid (the drawing of a shot integrates its phases between them)."""
    tb = trebuchet_default() if trebuchet is None else trebuchet
    wind, angle, weight = _float(wind), _float(angle), _float(weight)
    valid = _inputs_valid(wind, angle, weight) & _machine_valid(tb)
    tb, wind, angle, weight = _replace_invalid(valid, tb, wind, angle, weight)
    args = _args(tb, wind, angle, weight)
    if isinstance(tb.numerics, EulerHermite):
        status, times, states = _simulate_euler_hermite(args)
    elif isinstance(tb.numerics, ODESolve):
        status, times, states = _simulate_adaptive(args)
    else:  # unreachable through __init__; a machine assembled by tree surgery
        raise DiffsimError(f"unknown numerics {type(tb.numerics).__name__}")
    y_lift, y_release, p0, p_land = states
    status = jnp.where(valid, status, INVALID_INPUT)
    # A shot the solvers call complete but whose landing is not a number: a NaN state.
    lost = (status != SLING_SLACK) & ~_failure(status, tb.numerics)
    lost = lost & ~(jnp.all(jnp.isfinite(p_land)) & jnp.isfinite(times[2]))
    status = jnp.where(lost, SOLVER_FAILED, status)
    distance = jnp.where(_failure(status, tb.numerics), jnp.nan, p_land[0])
    distance = jnp.where(status == SLING_SLACK, tb.resting_x(), distance)
    times, y_lift, y_release, p0 = jax.tree.map(
        lambda x: jnp.where(valid, x, jnp.nan), (times, y_lift, y_release, p0)
    )
    return Shot(
        distance=distance,
        status=status,
        lift_off_time=times[0],
        release_time=times[1],
        landing_time=times[2],
        lift_off_state=y_lift,
        release_state=y_release,
        release_position=p0[:2],
        release_velocity=p0[2:],
    )


def shoot(
    wind: Real[ArrayLike, ""],
    angle: Real[ArrayLike, ""],
    weight: Real[ArrayLike, ""],
    trebuchet: Trebuchet | None = None,
) -> Float[Array, ""]:
    """Distance (m) a shot lands from the pivot.

    Args:
        wind: wind speed (m/s), positive = tailwind; a scalar, at most ``WIND_LIMIT``
            (100 m/s) either way.
        angle: release angle (degrees); a scalar strictly between 0 and 90.
        weight: counterweight (lb); a positive scalar, at most ``WEIGHT_LIMIT`` (1e6).
        trebuchet: the machine (default the faithful :func:`trebuchet`;
            :func:`trebuchet_jl` reproduces the 2019 post:
            ``shoot(-2, 45, 200, trebuchet_jl())`` is about 74.73 m).

    Returns:
        The distance (m), a scalar; NaN when the shot failed or an input is outside the
        domain above.

    Wrap in ``jax.jit``; ``jax.vmap`` for batches; ``jax.grad`` with respect to the three
    inputs or ``eqx.filter_grad`` with respect to the machine. When the counterweight is
    too light the sling goes slack and the distance is the projectile's resting x,
    0.682 m, with a zero gradient. A failed shot (a solver failure, no landing, an input
    outside the domain: see :func:`simulate`) is NaN, its gradient zero or NaN; use
    :func:`simulate` to see the status.
    """
    return simulate(wind, angle, weight, trebuchet).distance


trebuchet_default = trebuchet
