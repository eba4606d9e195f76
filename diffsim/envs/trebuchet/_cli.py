"""``diffsim shoot`` and ``diffsim aim``: one shot (and its gradient), direct aiming.

Both run in float32 unless ``--x64``: float32 reproduces the 2019 post's numbers to the
published digits (``diffsim shoot --wind -2 --angle 45 --weight 200 --preset trebuchet_jl
--grad`` gives 74.73 m and (4.02, -0.99, 0.0519)); float64 changes them by less than 1e-4.

Their numbers are checked before anything is compiled (the ``validate`` hook the core
command line runs first): finite, the wind within ``WIND_LIMIT`` (100 m/s) either way,
the angle strictly between 0 and 90 degrees, the weight positive and at most
``WEIGHT_LIMIT`` (1e6 lb), the target positive. A shot
that fails (its distance NaN: a solver failure, no landing, ...) exits with status 2 and
one line on stderr naming the status; with ``--json`` the result, ``status`` and
``message`` included, is printed on stdout first.
"""

from __future__ import annotations

import contextlib
import math
import time

PRESETS = ("default", "trebuchet_jl")
"""``default`` is the faithful machine (adaptive Tsit5), ``trebuchet_jl`` the 2019
reference (Euler at 60 Hz)."""


def add_commands(subparsers) -> None:
    """Add ``shoot`` and ``aim`` to the ``diffsim`` command line."""
    shoot = subparsers.add_parser(
        "shoot",
        help="one trebuchet shot: distance, event times, gradient",
        description="Shoot the trebuchet once: distance (m), status, event times (s) and, "
        "with --grad, d distance / d (wind, angle, weight) by jax.grad.",
    )
    shoot.add_argument(
        "--wind",
        type=float,
        default=0.0,
        help="wind in m/s, positive = tailwind, at most 100 either way (default 0)",
    )
    shoot.add_argument(
        "--angle", type=float, required=True, help="release angle in degrees, in (0, 90)"
    )
    shoot.add_argument(
        "--weight", type=float, required=True, help="counterweight in pounds, in (0, 1e6]"
    )
    shoot.add_argument(
        "--preset",
        choices=PRESETS,
        default="default",
        help="default: faithful physics, adaptive solver; trebuchet_jl: the 2019 reference",
    )
    shoot.add_argument("--grad", action="store_true", help="also print the gradient")
    shoot.add_argument("--x64", action="store_true", help="compute in float64")
    shoot.add_argument("--json", action="store_true", help="print one JSON object")
    shoot.set_defaults(run=_shoot, validate=_validate_shoot)

    aim = subparsers.add_parser(
        "aim",
        help="find the (angle, weight) that hits a target",
        description="Aim at a target by bounded Newton root finds through the simulator "
        "(differentiated shots): release angle "
        "(degrees) and counterweight (lb) in the allowed box, the miss (m), whether the "
        "target is reachable, and the solve time after compilation.",
    )
    aim.add_argument("--target", type=float, required=True, help="target distance in m, positive")
    aim.add_argument(
        "--wind",
        type=float,
        default=0.0,
        help="wind in m/s, positive = tailwind, at most 100 either way (default 0)",
    )
    aim.add_argument(
        "--preset",
        choices=PRESETS,
        default="default",
        help="default (as aim's): faithful physics, smooth in (angle, weight); trebuchet_jl: "
        "the 2019 reference, whose 60 Hz Euler distance has small steps that aiming to 1 cm "
        "may not get past",
    )
    aim.add_argument("--x64", action="store_true", help="compute in float64")
    aim.add_argument("--json", action="store_true", help="print one JSON object")
    aim.set_defaults(run=_aim, validate=_validate_aim)


def _check(option: str, name: str, value: float) -> None:
    """Raise a ``DiffsimError`` naming ``option`` if ``value`` is outside the model's
    domain for the input ``name`` (``"wind"`` m/s, ``"angle"`` degrees, ``"weight"`` lb)."""
    from diffsim import DiffsimError

    from ._physics import _domain_problem

    problem = _domain_problem(name, value)
    if problem is not None:
        raise DiffsimError(f"{option} {problem}")


def _validate_shoot(args) -> None:
    """``diffsim shoot``'s numbers, before anything is compiled."""
    for name in ("wind", "angle", "weight"):
        _check(f"--{name}", name, getattr(args, name))


def _validate_aim(args) -> None:
    """``diffsim aim``'s numbers, before anything is compiled."""
    from diffsim import DiffsimError

    if not (math.isfinite(args.target) and args.target > 0):
        raise DiffsimError(
            f"--target must be a positive, finite distance in metres, got {args.target}"
        )
    _check("--wind", "wind", args.wind)


def _fail(args, result: dict, message: str) -> None:
    """A failed command: its result on stdout with ``--json``, then a ``DiffsimError``
    that the core command line prints as one line on stderr (exit status 2)."""
    from diffsim import DiffsimError
    from diffsim.cli import emit

    if args.json:
        emit(result, True)
    raise DiffsimError(message)


def _shot_failed(status: int) -> str:
    from ._physics import STATUS_MESSAGES

    return f"the shot failed (status {status}): {STATUS_MESSAGES[status]}"


def _machine(preset: str):
    from ._physics import trebuchet, trebuchet_jl

    return trebuchet_jl() if preset == "trebuchet_jl" else trebuchet()


def _precision(x64: bool):
    import jax

    return jax.enable_x64(True) if x64 else contextlib.nullcontext()


def _round(x, digits: int = 4) -> float | None:
    """``x`` rounded, or ``None`` (JSON ``null``) when it is not a number."""
    x = float(x)
    return round(x, digits) if math.isfinite(x) else None


def _significant(x, digits: int = 6) -> float:
    return float(f"{float(x):.{digits}g}")


_jitted: dict = {}


def _compiled(name: str):
    """The jitted functions, built on first use (module import stays free of JAX work)."""
    if not _jitted:
        import equinox as eqx
        import jax
        import jax.numpy as jnp

        from ._aim import aim
        from ._physics import simulate

        def shot(wind, angle, weight, tb):
            return simulate(wind, angle, weight, tb)

        def shot_and_gradient(wind, angle, weight, tb):
            def distance(wind, angle, weight):
                result = simulate(wind, angle, weight, tb)
                return result.distance, result

            gradient, result = jax.grad(distance, argnums=(0, 1, 2), has_aux=True)(
                wind, angle, weight
            )
            return result, jnp.stack(gradient)

        _jitted.update(
            shot=eqx.filter_jit(shot),
            shot_and_gradient=eqx.filter_jit(shot_and_gradient),
            aim=eqx.filter_jit(lambda target, wind, tb: aim(target, wind, tb)),
        )
    return _jitted[name]


def _shoot(args) -> dict:
    import jax
    import jax.numpy as jnp

    from ._physics import STATUS_MESSAGES

    _validate_shoot(args)  # the core command line has already; a direct call too
    wind, angle, weight = args.wind, args.angle, args.weight
    with _precision(args.x64):
        tb = _machine(args.preset)  # inside: its parameters and tolerances take the precision
        inputs = [jnp.asarray(x, dtype=float) for x in (wind, angle, weight)]
        if args.grad:
            shot, gradient = _compiled("shot_and_gradient")(*inputs, tb)
        else:
            shot, gradient = _compiled("shot")(*inputs, tb), None
        shot, gradient = jax.device_get((shot, gradient))
        dtype = str(shot.distance.dtype)
    status = int(shot.status)
    result = {
        "preset": args.preset,
        "wind_m_s": wind,
        "angle_deg": angle,
        "weight_lb": weight,
        "distance_m": _round(shot.distance),
        "status": status,
        "message": STATUS_MESSAGES[status],
        "lift_off_s": _round(shot.lift_off_time),
        "release_s": _round(shot.release_time),
        "landing_s": _round(shot.landing_time),
        "release_speed_m_s": _round(math.hypot(*shot.release_velocity)),
    }
    if args.preset == "trebuchet_jl" and not 50 <= weight <= 500:
        result["note"] = (
            "outside the reference preset's valid regime (about 50-500 lb; Euler at 60 Hz "
            "breaks down above about 520 lb)"
        )
    if not math.isfinite(shot.distance):
        _fail(args, {**result, "dtype": dtype}, _shot_failed(status))
    if gradient is not None:
        if not all(math.isfinite(g) for g in gradient):
            message = f"the gradient is not finite: {[float(g) for g in gradient]}"
            _fail(args, {**result, "dtype": dtype}, message)
        result.update(
            d_distance_d_wind_m_per_m_s=_significant(gradient[0]),
            d_distance_d_angle_m_per_deg=_significant(gradient[1]),
            d_distance_d_weight_m_per_lb=_significant(gradient[2]),
        )
    if "note" in result:  # after the gradient, as before
        result["note"] = result.pop("note")
    result["dtype"] = dtype
    return result


def _aim(args) -> None:
    import jax
    import jax.numpy as jnp

    from diffsim.cli import emit

    from ._aim import ANGLE_BOUNDS, WEIGHT_BOUNDS
    from ._physics import STATUS_MESSAGES

    _validate_aim(args)  # the core command line has already; a direct call too
    target, wind = args.target, args.wind
    solve = _compiled("aim")
    with _precision(args.x64):
        tb = _machine(args.preset)
        inputs = [jnp.asarray(x, dtype=float) for x in (target, wind)]
        started = time.perf_counter()
        jax.block_until_ready(solve(*inputs, tb))
        compile_seconds = time.perf_counter() - started
        started = time.perf_counter()
        result = jax.block_until_ready(solve(*inputs, tb))
        solve_seconds = time.perf_counter() - started
    result = jax.device_get(result)
    status = int(result.status)
    reachable = bool(result.reachable)
    summary = {
        "preset": args.preset,
        "target_m": target,
        "wind_m_s": wind,
        "angle_deg": _round(result.angle),
        "weight_lb": _round(result.weight, 3),
        "distance_m": _round(result.distance),
        "miss_m": _round(result.miss, 5),
        "reachable": reachable,
        "status": status,
        "message": STATUS_MESSAGES[status],
        "solver_steps": int(result.steps),
        **({"branch": int(result.branch)} if hasattr(result, "branch") else {}),
        "solve_ms": _round(1000 * solve_seconds, 2),
        "compile_s": _round(compile_seconds, 2),
        "bounds": f"angle {ANGLE_BOUNDS} deg, weight {WEIGHT_BOUNDS} lb",
    }
    if not math.isfinite(result.distance):
        _fail(args, summary, _shot_failed(status))
    unreachable = f"target unreachable: closest shot lands at {float(result.distance):.2f} m"
    if args.json and not reachable:
        summary["note"] = unreachable
    emit(summary, args.json)
    if not args.json and not reachable:
        print(unreachable)
