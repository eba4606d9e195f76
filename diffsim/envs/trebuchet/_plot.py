"""Drawing shots: dense frames of one shot, its animation, and a map of distances.

:func:`trajectory` re-integrates each phase of a :func:`~._physics.simulate` shot between
its event times with the preset's own numerics, so that the frames end where
:func:`~._physics.shoot` lands. :func:`animate_shot` and :func:`plot_distance` draw with
matplotlib, imported on first use.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Real

from diffsim import DiffsimError

from ._aim import ANGLE_BOUNDS, WEIGHT_BOUNDS
from ._physics import (
    NO_LIFT_OFF,
    NO_RELEASE,
    OK,
    SLING_SLACK,
    STATUS_MESSAGES,
    EulerHermite,
    Shot,
    Trebuchet,
    _Args,
    _args,
    _check_inputs,
    _domain_problem,
    _flight_field,
    _ground_field,
    _ground_forces,
    _hang_field,
    _points,
    _simulated,
    _what_happened,
    simulate,
    trebuchet_default,
)

_PHASE_NAMES = ("ground", "hang", "flight")
_TAIL_MASS_FRACTION = 1e-3
"""After release the arm keeps swinging with an empty sling: we integrate the hang phase
with the projectile's mass scaled by this (a massless sling swings like a pendulum)..."""
_TAIL_STEP = 1 / 240
"""...by RK4 at this step (s)."""


class ShotTrajectory(NamedTuple):
    """Dense frames of one shot, for drawing. ``n`` frames; positions in metres in the
    pivot frame (x towards the target, y up, the ground at ``y = ground``).

    - ``shot``: the :class:`~._physics.Shot` that :func:`~._physics.simulate` returns.
    - ``times``: ``(n,)`` seconds from the start of the shot; every ``1 / fps`` plus the
      lift-off, release and landing instants.
    - ``phase``: ``(n,)`` int, 0 ground, 1 hang, 2 flight.
    - ``attached``: ``(n,)`` bool, whether the projectile is still in the sling.
    - ``pivot``, ``arm_tip``, ``weight_hinge``, ``weight``, ``projectile``,
      ``sling_end``: ``(n, 2)`` positions (m) of the pivot, the long arm's tip (the sling
      hook), the short arm's end (the counterweight's hinge), the counterweight's centre
      of gravity, the projectile, and the sling's free end (the projectile while attached,
      the empty pouch after release).
    - ``ground``: the ground's height, ``-pivot_height`` (m).
    - ``trebuchet``: the machine.

    After release the arm keeps swinging (the hang phase integrated with an adaptive
    solver and a near-massless sling); the projectile flies as :func:`shoot` computes it.
    A shot whose ``shot.status`` is not 0 has frames up to where it stopped: the ground
    phase until the sling went slack (or until its time limit), the hang phase until its
    time limit, frames up to the first non-finite state after a solver failure.

    Example:
        ```python
        from diffsim.envs import trebuchet as tr

        frames = tr.trajectory(-2.0, 45.0, 200.0)   # one shot, sampled for drawing
        frames.times.shape, frames.projectile.shape  # (n,), (n, 2) in metres
        ```
    """

    shot: Shot
    times: np.ndarray
    phase: np.ndarray
    attached: np.ndarray
    pivot: np.ndarray
    arm_tip: np.ndarray
    weight_hinge: np.ndarray
    weight: np.ndarray
    projectile: np.ndarray
    sling_end: np.ndarray
    ground: float
    trebuchet: Trebuchet


# ----------------------------------------------------------------------------------------
# Re-integration of the phases


def _hermite(t0, dt, y0, f0, y1, f1, t):
    s = ((t - t0) / dt)[:, None]
    s2, s3 = s * s, s * s * s
    return (
        (2 * s3 - 3 * s2 + 1) * y0
        + (s3 - 2 * s2 + s) * dt * f0
        + (-2 * s3 + 3 * s2) * y1
        + (s3 - s2) * dt * f1
    )


def _euler_states(field, y0, t0, ts, args: _Args, duration):
    """States at times ``ts`` of Trebuchet.jl's numerics: explicit Euler from ``(t0, y0)``
    on the grid ``t0 + k dt``, cubic Hermite interpolation between steps (the interpolant
    on which the event was located, so the phase's end state is reproduced)."""
    dt = args.trebuchet.numerics.dt
    n_steps = int(round(duration / dt))

    def step(y, _):
        f = field(None, y, args)
        y1 = y + dt * f
        return y1, (y1, field(None, y1, args))

    _, (ys, fs) = jax.lax.scan(step, y0, None, length=n_steps)
    ys = jnp.concatenate([y0[None], ys])
    fs = jnp.concatenate([field(None, y0, args)[None], fs])
    k = jnp.clip(jnp.floor((ts - t0) / dt).astype(int), 0, n_steps - 1)
    return _hermite(t0 + k * dt, dt, ys[k], fs[k], ys[k + 1], fs[k + 1], ts)


def _rk4_states(field, y0, t0, ts, args: _Args, duration, dt):
    """States at times ``ts`` of classical fixed-step RK4 from ``(t0, y0)`` (cheap to
    compile), cubic Hermite interpolation between steps."""
    n_steps = int(math.ceil(duration / dt))

    def step(y, _):
        k1 = field(None, y, args)
        k2 = field(None, y + 0.5 * dt * k1, args)
        k3 = field(None, y + 0.5 * dt * k2, args)
        k4 = field(None, y + dt * k3, args)
        y1 = y + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        return y1, y1

    _, ys = jax.lax.scan(step, y0, None, length=n_steps)
    ys = jnp.concatenate([y0[None], ys])
    fs = jax.vmap(lambda y: field(None, y, args))(ys)
    k = jnp.clip(jnp.floor((ts - t0) / dt).astype(int), 0, n_steps - 1)
    return _hermite(t0 + k * dt, dt, ys[k], fs[k], ys[k + 1], fs[k + 1], ts)


def _adaptive_states(field, y0, t0, t1, ts, args: _Args, max_steps=1024):
    """States at times ``ts`` (within ``[t0, t1]``) of the adaptive machine's numerics
    (its :class:`diffsim.ODESolve`, allowed at least ``max_steps`` steps), from ``t0`` to
    ``t1``."""
    numerics = args.trebuchet.numerics
    numerics = dataclasses.replace(numerics, max_steps=max(numerics.max_steps, max_steps))
    t1 = jnp.maximum(t1, t0 + 1e-6)
    solution = numerics.solve(
        dfx.ODETerm(field),
        t0,
        t1,
        y0,
        args,
        saveat=dfx.SaveAt(ts=jnp.clip(ts, t0, t1)),
        throw=False,
    )
    return solution.ys


def _states(field, y0, t0, t1, ts, args: _Args, duration):
    if isinstance(args.trebuchet.numerics, EulerHermite):
        return _euler_states(field, y0, t0, ts, args, duration)
    return _adaptive_states(field, y0, t0, t1, ts, args)


def _skeleton(tb: Trebuchet, q: Float[Array, "3"]):
    """Long-arm tip, weight hinge, counterweight CG and sling end (m) for ``q``."""
    a = q[0]
    tip = tb.long_arm * jnp.stack([-jnp.sin(a), jnp.cos(a)])
    hinge = tb.short_arm * jnp.stack([jnp.sin(a), -jnp.cos(a)])
    points = _points(tb, q)
    return tip, hinge, points[1], points[2]


@eqx.filter_jit
def _frames(tb, wind, angle, weight, shot: Shot, ts_ground, ts_hang, ts_flight):
    """Arm-phase states and positions at the padded frame times of each phase."""
    args = _args(tb, wind, angle, weight)
    q0 = tb.initial_coordinates()
    y0 = jnp.concatenate([q0, jnp.zeros_like(q0)])
    zero = jnp.zeros((), y0.dtype)
    ground_time, hang_time, flight_time = tb.phase_time
    ground = _states(_ground_field, y0, zero, ts_ground[-1], ts_ground, args, ground_time)
    _, tension = jax.vmap(lambda y: _ground_forces(args, y))(ground)
    hang = _states(
        _hang_field,
        shot.lift_off_state,
        shot.lift_off_time,
        shot.release_time,
        ts_hang,
        args,
        hang_time,
    )
    flight_start = jnp.concatenate([shot.release_position, shot.release_velocity])
    flight = _states(
        _flight_field,
        flight_start,
        shot.release_time,
        shot.landing_time,
        ts_flight,
        args,
        flight_time,
    )
    # The arm after release, with a (nearly) massless sling.
    light = eqx.tree_at(
        lambda a: a.trebuchet.projectile_mass,
        args,
        args.trebuchet.projectile_mass * _TAIL_MASS_FRACTION,
    )
    tail = _rk4_states(
        _hang_field,
        shot.release_state,
        shot.release_time,
        ts_flight,
        light,
        flight_time,
        _TAIL_STEP,
    )
    finite = jnp.isfinite(tail).all(axis=1, keepdims=True)
    tail = jnp.where(finite, tail, shot.release_state[None, :])
    arm_states = jnp.concatenate([ground, hang, tail])
    skeleton = jax.vmap(lambda y: _skeleton(tb, y[:3]))(arm_states)
    return ground, hang, flight, tension, skeleton


def _frame_times(t0: float | int, t1: float | int, fps: float | int, size: int, include_end: bool):
    """``t0``, the multiples of ``1 / fps`` strictly inside ``(t0, t1)``, and ``t1`` if
    ``include_end``; padded with the last time to ``size``. Returns (times, count)."""
    inside = np.arange(math.floor(t0 * fps) + 1, math.ceil(t1 * fps)) / fps
    inside = inside[(inside > t0) & (inside < t1)]
    times = np.concatenate([[t0], inside, [t1] if include_end else []])[:size]
    count = len(times)
    return np.concatenate([times, np.full(size - count, times[-1])]), count


def trajectory(
    wind: Real[ArrayLike, ""],
    angle: Real[ArrayLike, ""],
    weight: Real[ArrayLike, ""],
    trebuchet: Trebuchet | None = None,
    *,
    fps: float | int = 60,
) -> ShotTrajectory:
    """Dense frames of one shot for drawing.

    Args:
        wind: wind speed (m/s), positive = tailwind; a scalar.
        angle: release angle (degrees); a scalar.
        weight: counterweight (lb); a scalar.
        trebuchet: the machine (default the faithful :func:`~._physics.trebuchet`).
        fps: frames per second of shot time.

    Runs :func:`~._physics.simulate`, then re-integrates each phase between its event
    times (ground from 0 to lift-off, hang from the lift-off state to release, flight
    from the release position and velocity to landing) with the machine's numerics:
    Euler at ``numerics.dt`` with Hermite interpolation for an :class:`EulerHermite`
    (``trebuchet_jl``), the machine's :class:`diffsim.ODESolve` otherwise. The last frame
    of a successful shot is the landing point, ``shoot``'s distance. Returns a
    :class:`ShotTrajectory` of NumPy arrays, ``n`` frames (about ``fps`` times the
    landing time, plus the event instants).
    Not jit-able (the number of frames depends on the shot); repeated calls reuse one
    compilation per machine structure and ``fps``.

    Raises:
        diffsim.DiffsimError: an input outside the model's domain (wind not finite or
            beyond ``WIND_LIMIT``, an angle not strictly between 0 and 90 degrees, a
            weight not positive or beyond ``WEIGHT_LIMIT``), or ``fps`` not positive,
            before anything is compiled.
    """
    tb = trebuchet_default() if trebuchet is None else trebuchet
    if not fps > 0:
        raise DiffsimError(f"fps must be positive, got {fps}")
    _check_inputs(float(wind), float(angle), float(weight))
    wind, angle, weight = (jnp.asarray(x, dtype=float) for x in (wind, angle, weight))
    shot = _simulate(wind, angle, weight, tb)
    status = int(shot.status)
    t_lift, t_release, t_land = (
        float(shot.lift_off_time),
        float(shot.release_time),
        float(shot.landing_time),
    )
    ground_time, hang_time, flight_time = tb.phase_time
    lifted = status not in (SLING_SLACK, NO_LIFT_OFF) and t_lift > 0
    adaptive_no_release = status == NO_RELEASE and not isinstance(tb.numerics, EulerHermite)
    flew = lifted and not adaptive_no_release
    sizes = [int(math.ceil(p * fps)) + 3 for p in tb.phase_time]
    ts_ground, n_ground = _frame_times(0.0, t_lift if lifted else ground_time, fps, sizes[0], True)
    ts_hang, n_hang = _frame_times(t_lift, t_release, fps, sizes[1], not flew)
    ts_flight, n_flight = _frame_times(t_release, t_land, fps, sizes[2], True)
    if lifted:
        n_ground -= 1  # lift-off is the hang phase's first frame
    else:
        n_hang = 0
    if not flew:
        n_flight = 0
    ground, hang, flight, tension, skeleton = jax.device_get(
        _frames(
            tb,
            wind,
            angle,
            weight,
            shot,
            *(jnp.asarray(ts, dtype=float) for ts in (ts_ground, ts_hang, ts_flight)),
        )
    )
    if status == SLING_SLACK:
        negative = np.flatnonzero(tension[:n_ground] < 0)
        n_ground = int(negative[0]) + 1 if len(negative) else n_ground
    tip, hinge, weight_cg, sling_end = skeleton
    g, h = sizes[0], sizes[1]
    rows = np.concatenate([np.arange(n_ground), g + np.arange(n_hang), g + h + np.arange(n_flight)])
    sling_end = sling_end[rows]
    projectile = np.concatenate([sling_end[: n_ground + n_hang], flight[:n_flight, :2]])
    phase = np.repeat([0, 1, 2], [n_ground, n_hang, n_flight])
    times = np.concatenate([ts_ground[:n_ground], ts_hang[:n_hang], ts_flight[:n_flight]])
    frames = dict(
        times=times,
        phase=phase,
        attached=phase < 2,
        pivot=np.zeros((len(times), 2), dtype=tip.dtype),
        arm_tip=tip[rows],
        weight_hinge=hinge[rows],
        weight=weight_cg[rows],
        projectile=projectile,
        sling_end=sling_end,
    )
    # After a solver failure: frames up to the first non-finite position.
    finite = np.all([np.isfinite(v).all(axis=-1) for v in frames.values() if v.ndim == 2], 0)
    if not finite.all():
        frames = {k: v[: max(int(np.argmin(finite)), 1)] for k, v in frames.items()}
    shot = _what_happened(shot)  # as simulate returns it
    return ShotTrajectory(shot=shot, ground=-float(tb.pivot_height), trebuchet=tb, **frames)


_simulate = eqx.filter_jit(_simulated)


# ----------------------------------------------------------------------------------------
# Animation


def _describe(tb: Trebuchet) -> str:
    if isinstance(tb.numerics, EulerHermite):
        return f"Euler {1 / tb.numerics.dt:.0f} Hz"
    return f"adaptive {type(tb.numerics.solver).__name__}"


def _limits(points: np.ndarray, low: float, margin: float, extra_x=()):
    """Axis limits around ``points`` ``(n, 2)``, from the ground ``low`` up."""
    x = np.concatenate([points[:, 0], np.asarray(extra_x, dtype=float)])
    return (x.min() - margin, x.max() + margin), (low - 0.5 * margin, points[:, 1].max() + margin)


def _scene(ax, path: ShotTrajectory, limits, target, weight, *, trace_width=1.0):
    """Draw the static scene on ``ax`` and return the moving artists' update function."""
    from matplotlib import patches

    (x_low, x_high), (y_low, y_high) = limits
    ax.set_xlim(x_low, x_high)
    ax.set_ylim(y_low, y_high)
    ax.set_aspect("equal")
    ground = path.ground
    ax.axhspan(y_low, ground, color="#b9a27a", alpha=0.5, lw=0)
    ax.axhline(ground, color="#6b5a3a", lw=1.5)
    legs = 0.45 * abs(ground)
    ax.plot([-legs, 0.0, legs], [ground, 0.0, ground], color="0.55", lw=2.5, zorder=1)
    ax.plot([0.0], [0.0], "o", color="k", ms=4, zorder=6)
    if target is not None and x_low < target < x_high:
        pole = 0.12 * (y_high - ground)
        ax.plot([target, target], [ground, ground + pole], color="k", lw=1.5)
        flag = [(target, ground + pole), (target + 0.5 * pole, ground + 0.8 * pole)]
        flag.append((target, ground + 0.6 * pole))
        ax.add_patch(patches.Polygon(flag, closed=True, color="C3"))
        ax.annotate(
            f"target {target:.1f} m",
            (target, ground + pole),
            xytext=(0, 6),
            textcoords="offset points",
            ha="center",
            fontsize=8,
        )
    radius = 0.3 * (weight / 200.0) ** (1 / 3)
    (arm,) = ax.plot([], [], color="#7a4b1e", lw=3, solid_capstyle="round", zorder=3)
    (rod,) = ax.plot([], [], color="0.3", lw=1.5, zorder=3)
    counterweight = patches.Circle((0.0, 0.0), radius, color="0.25", zorder=4)
    ax.add_patch(counterweight)
    (sling,) = ax.plot([], [], color="0.4", lw=1, zorder=2)
    (trace,) = ax.plot([], [], color="C3", lw=trace_width, alpha=0.7)
    (projectile,) = ax.plot([], [], "o", color="C3", ms=5, zorder=5)

    def update(i):
        tip, hinge, cg = path.arm_tip[i], path.weight_hinge[i], path.weight[i]
        arm.set_data([hinge[0], tip[0]], [hinge[1], tip[1]])
        rod.set_data([hinge[0], cg[0]], [hinge[1], cg[1]])
        counterweight.center = (cg[0], cg[1])
        end = path.sling_end[i]
        sling.set_data([tip[0], end[0]], [tip[1], end[1]])
        sling.set_linestyle("-" if path.attached[i] else "--")
        sling.set_alpha(1.0 if path.attached[i] else 0.5)
        trace.set_data(path.projectile[: i + 1, 0], path.projectile[: i + 1, 1])
        projectile.set_data([path.projectile[i, 0]], [path.projectile[i, 1]])
        return [arm, rod, counterweight, sling, trace, projectile]

    return update


def animate_shot(
    wind: Real[ArrayLike, ""],
    angle: Real[ArrayLike, ""],
    weight: Real[ArrayLike, ""],
    trebuchet: Trebuchet | None = None,
    *,
    target: float | int | None = None,
    fps: float | int = 30,
    max_frames: int = 150,
    ax=None,
):
    """An animation of one shot, in the style of the 2019 post.

    Args:
        wind: wind speed (m/s), positive = tailwind.
        angle: release angle (degrees).
        weight: counterweight (lb).
        trebuchet: the machine (default the faithful one).
        target: an optional target distance (m), drawn as a flag.
        fps: frames per second of shot time (thinned evenly to at most ``max_frames``).
        ax: an optional matplotlib axis.

    Draws the ground, the frame and pivot, the arm, the counterweight (a filled circle
    whose area grows with the weight), the sling from the arm tip to the projectile while
    attached (dashed and empty after release), the projectile and its trace, the wind
    (an arrow and its speed in m/s) and the target as a flag; equal axes; the title gives
    the distance (and the miss when there is a target). Without ``ax`` the figure has two
    panels, a close-up of the machine and the whole flight; with ``ax``, the whole flight
    on that axis. Plays in real time (the time between frames is the shot time they span).

    Returns a ``matplotlib.animation.FuncAnimation``: in a notebook
    ``IPython.display.HTML(anim.to_jshtml())``; to a file
    ``anim.save("shot.gif", writer=matplotlib.animation.PillowWriter(fps=...))``.
    """
    import matplotlib.pyplot as plt
    from matplotlib import animation

    path = trajectory(wind, angle, weight, trebuchet, fps=fps)
    tb = path.trebuchet
    n = len(path.times)
    index = np.unique(np.round(np.linspace(0, n - 1, min(n, max(max_frames, 2)))).astype(int))
    wind, angle, weight = float(wind), float(angle), float(weight)
    target = None if target is None else float(target)
    distance = float(path.shot.distance)
    status = int(path.shot.status)

    machine = np.concatenate(
        [path.arm_tip, path.weight, path.sling_end, path.projectile[path.attached]]
    )
    everything = np.concatenate([machine, path.projectile, np.zeros((1, 2))])
    full = _limits(everything, path.ground, 3.0, [-3.0] + ([target] if target else []))
    if ax is None:
        close_up = _limits(machine, path.ground, 0.8)
        shares = np.array([2.8, 6.2])  # panel widths (in)
        panel_limits = (close_up, full)
        needed = [w * np.ptp(y) / np.ptp(x) for w, (x, y) in zip(shares, panel_limits, strict=True)]
        height = float(np.clip(max(needed), 1.5, 5.0)) + 1.2
        fig, axes = plt.subplots(
            1, 2, figsize=(9.5, height), dpi=72, gridspec_kw=dict(width_ratios=shares)
        )
        margin = 0.6 / height
        fig.subplots_adjust(left=0.06, right=0.99, bottom=margin, top=1 - margin, wspace=0.15)
        panels = [(axes[0], close_up, 1.0), (axes[1], full, 1.0)]
        main, close = axes[1], True
        axes[0].set_title("the machine", fontsize=8)
        axes[0].set_xlabel("x (m)")
        axes[0].set_ylabel("y (m)")
    else:
        fig, close = ax.figure, False
        panels = [(ax, full, 1.0)]
        main = ax
    main.set_xlabel("x (m)")
    updates = [_scene(a, path, limits, target, weight, trace_width=w) for a, limits, w in panels]

    if wind == 0:
        wind_text = "no wind"
    else:
        length = 0.04 + 0.12 * min(abs(wind) / 10.0, 1.0)
        start, end = (0.70, 0.70 + length) if wind > 0 else (0.70 + length, 0.70)
        main.annotate(
            "",
            xy=(end, 0.86),
            xytext=(start, 0.86),
            xycoords="axes fraction",
            arrowprops=dict(arrowstyle="-|>", color="C0", lw=2),
        )
        wind_text = f"wind {abs(wind):.1f} m/s ({'tail' if wind > 0 else 'head'}wind)"
    main.text(0.70, 0.91, wind_text, transform=main.transAxes, fontsize=8, color="C0")
    clock = main.text(0.02, 0.91, "", transform=main.transAxes, fontsize=8)

    landed = f"{distance:.2f} m" if math.isfinite(distance) else "no distance"
    title = f"{landed} ({_describe(tb)}): wind {wind:+.1f} m/s, {angle:.1f}°, "
    title += f"{weight:.0f} lb"
    if target is not None:
        title += f"; target {target:.1f} m"
        title += f", miss {distance - target:+.2f} m" if math.isfinite(distance) else ""
    if status != OK:
        title += f"\n{STATUS_MESSAGES[status]}"
    fig.suptitle(title, fontsize=9) if close else main.set_title(title, fontsize=9)

    def draw(j):
        i = index[j]
        artists = [artist for update in updates for artist in update(i)]
        clock.set_text(f"t = {path.times[i]:.2f} s ({_PHASE_NAMES[path.phase[i]]})")
        return [*artists, clock]

    duration = float(path.times[-1] - path.times[0])
    interval = 1000.0 * duration / max(len(index) - 1, 1)
    anim = animation.FuncAnimation(fig, draw, frames=len(index), interval=max(interval, 10.0))
    if close:
        plt.close(fig)
    return anim


# ----------------------------------------------------------------------------------------
# Distance map


@eqx.filter_jit
def _grid(tb: Trebuchet, wind, angles, weights):
    def one(angle, weight):
        shot = simulate(wind, angle, weight, tb)
        return shot.distance, shot.status

    over_angles = jax.vmap(one, in_axes=(0, None))
    return jax.vmap(over_angles, in_axes=(None, 0))(angles, weights)


def _best_angles(angle_grid, distance):
    """The angle of the longest shot for each weight (row), refined by a parabola
    through the best grid point and its neighbours."""
    distance = np.where(np.isnan(distance), -np.inf, distance)  # failed shots
    k = np.clip(np.argmax(distance, axis=1), 1, len(angle_grid) - 2)
    rows = np.arange(len(k))
    left, mid, right = distance[rows, k - 1], distance[rows, k], distance[rows, k + 1]
    curvature = left - 2 * mid + right
    safe = np.where(curvature < 0, curvature, -1.0)
    shift = np.where(curvature < 0, np.clip(0.5 * (left - right) / safe, -1, 1), 0.0)
    return angle_grid[k] + shift * (angle_grid[1] - angle_grid[0])


def plot_distance(
    trebuchet: Trebuchet | None = None,
    *,
    wind: float | int = 0.0,
    angles: tuple[float | int, float | int, int] = (*ANGLE_BOUNDS, 40),
    weights: tuple[float | int, float | int, int] = (*WEIGHT_BOUNDS, 40),
    ax=None,
):
    """A map of the distance (m) over release angle (degrees) and counterweight (lb).

    Args:
        trebuchet: the machine (default the faithful one).
        wind: wind speed (m/s).
        angles, weights: ``(low, high, count)`` grids in degrees and lb (default
            ``ANGLE_BOUNDS`` and ``WEIGHT_BOUNDS``, 40 points each).
        ax: an optional matplotlib axis.

    The ``weights x angles`` grid of shots is one jitted ``vmap(vmap(simulate))`` call
    (compiled once per machine structure and grid shape). Draws filled contours with a
    colorbar, labelled contour lines, the best angle for each weight (dashed), and
    hatches the shots whose status is not 0 (failed shots, NaN, are left blank). Returns
    the axis.

    Raises:
        diffsim.DiffsimError: a grid or wind outside the model's domain (see
            :func:`trajectory`), or a count below 2.
    """
    import matplotlib.pyplot as plt

    tb = trebuchet_default() if trebuchet is None else trebuchet
    problem = _domain_problem("wind", float(wind))
    if problem is not None:
        raise DiffsimError(f"wind {problem}")
    for name, grid in (("angles", angles), ("weights", weights)):
        if len(grid) != 3 or not int(grid[2]) >= 2:
            raise DiffsimError(f"{name} must be (low, high, count) with count >= 2, got {grid}")
        for end in grid[:2]:
            problem = _domain_problem(name[:-1], float(end))
            if problem is not None:
                raise DiffsimError(f"{name} {problem}")
    angle_grid = np.linspace(angles[0], angles[1], int(angles[2]))
    weight_grid = np.linspace(weights[0], weights[1], int(weights[2]))
    distance, status = jax.device_get(
        _grid(
            tb,
            jnp.asarray(wind, dtype=float),
            jnp.asarray(angle_grid, dtype=float),
            jnp.asarray(weight_grid, dtype=float),
        )
    )
    if ax is None:
        _, ax = plt.subplots(figsize=(6.5, 4.5), constrained_layout=True)
    filled = ax.contourf(angle_grid, weight_grid, distance, levels=20, cmap="viridis")
    ax.figure.colorbar(filled, ax=ax, label="distance (m)")
    lines = ax.contour(
        angle_grid, weight_grid, distance, levels=10, colors="k", linewidths=0.6, alpha=0.7
    )
    ax.clabel(lines, fmt="%.0f m", fontsize=7)
    best = _best_angles(angle_grid, distance)
    ax.plot(best, weight_grid, "--", color="w", lw=1.2, label="longest shot per weight")
    failed = status != OK
    if failed.any():
        ax.contourf(
            angle_grid,
            weight_grid,
            failed.astype(float),
            levels=[0.5, 1.5],
            colors="none",
            hatches=["////"],
        )
        ax.plot([], [], " ", label=f"hatched: status ≠ ok ({failed.sum()} shots)")
    ax.legend(loc="upper right", fontsize=7)
    ax.set_xlabel("release angle (degrees)")
    ax.set_ylabel("counterweight (lb)")
    ax.set_title(f"distance, wind {float(wind):+.1f} m/s ({_describe(tb)})", fontsize=10)
    return ax


__all__ = ["ShotTrajectory", "animate_shot", "plot_distance", "trajectory"]
