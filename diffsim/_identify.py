"""System identification: fit an env's physical parameters to measured trajectories by
least squares through the simulation (multiple shooting), with standard errors."""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, ArrayLike, Float, PyTree

from . import _validate as validate
from ._env import AbstractEnv
from ._errors import DiffsimError, runtime_errors_as_diffsim_errors
from ._record import Record
from ._rollout import Trajectory


@dataclasses.dataclass(frozen=True)
class Identification:
    """What :func:`diffsim.identify` found, and how well the data determine it.

    Attributes:
        names: the fitted parameters (``"m"``, ``"l"``; ``"name[i]"`` for the entries of
            an array parameter), in the order of ``values``.
        values: the fitted values, shape ``(k,)``, in the parameters' own units.
        standard_errors: one standard deviation of each value, shape ``(k,)``, from the
            Gauss-Newton approximation ``sigma^2 (J^T J)^-1`` of the covariance, with the
            initial states of the shooting segments marginalised out and ``sigma^2`` the
            noise variance estimated from the residual (``noise_variance``); ``inf`` for an
            unidentifiable parameter.
        unidentifiable: the parameters the data do not determine: they lie along a
            direction in which ``J^T J`` is numerically singular (eigenvalue of its
            correlation form below ``rcond``) or their relative standard error exceeds
            ``max_relative_error``. Their values are wherever the solver stopped.
        correlation: correlations between the parameter estimates, shape ``(k, k)``.
        residual: root mean square of the observation residuals divided by the stated
            noise (dimensionless; about 1 when ``noise`` is the true measurement noise).
        noise_variance: ``sigma^2``, the sum of squared noise-scaled observation residuals
            over the degrees of freedom (observations minus parameters minus the initial
            state of each record).
        iterations: solver steps taken.
        continuity_gap: the largest mismatch (state units) between a segment's simulated
            end and the next segment's initial state.
        initial_states: the fitted initial state of each record, shape ``(records, n)``.
        segment_steps: the control steps per shooting segment used.
        predictions: for each record, the fitted model's observations at the record's
            times, shape ``(T+1, o)``: each shooting segment simulated from its fitted
            initial state under the recorded controls (what was compared to the data).
        autocorrelation: the lag-one autocorrelation of the observation residuals, pooled
            over components and segments: near 0 when what is left is measurement noise,
            near 1 when the model cannot follow the data.
        misfit: the model does not explain the data: the residuals are correlated in time
            (``autocorrelation`` above ``max_autocorrelation``), or, with ``noise`` given,
            their size exceeds the stated noise (``residual`` above ``max_residual``).
            The values are then not a fit, and their standard errors mean nothing.

    Example: ``env, report = diffsim.identify(...)``; ``print(report)``;
    ``report.summary()`` for JSON.
    """

    names: tuple[str, ...]
    values: np.ndarray
    standard_errors: np.ndarray
    unidentifiable: tuple[str, ...]
    correlation: np.ndarray
    residual: float
    noise_variance: float
    iterations: int
    continuity_gap: float
    initial_states: np.ndarray
    segment_steps: int
    predictions: tuple[np.ndarray, ...]
    autocorrelation: float
    misfit: bool

    @property
    def relative_errors(self) -> np.ndarray:
        """``standard_errors / |values|``, shape ``(k,)``."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.standard_errors / np.abs(self.values)

    def summary(self) -> dict:
        """Plain numbers for printing or JSON."""
        return {
            "parameters": {
                name: {"value": float(v), "standard_error": float(e)}
                for name, v, e in zip(self.names, self.values, self.standard_errors, strict=True)
            },
            "unidentifiable": list(self.unidentifiable),
            "residual": self.residual,
            "noise_variance": self.noise_variance,
            "iterations": self.iterations,
            "continuity_gap": self.continuity_gap,
            "segment_steps": self.segment_steps,
            "autocorrelation": self.autocorrelation,
            "misfit": self.misfit,
        }

    def __str__(self) -> str:
        lines = [f"{'parameter':>12} {'value':>12} {'std error':>12} {'relative':>9}"]
        for name, v, e, r in zip(
            self.names, self.values, self.standard_errors, self.relative_errors, strict=True
        ):
            flag = "  unidentifiable" if name in self.unidentifiable else ""
            lines.append(f"{name:>12} {v:12.6g} {e:12.3g} {r:9.2%}{flag}")
        lines.append(
            f"residual {self.residual:.3g} (noise-scaled RMS), {self.iterations} iterations, "
            f"continuity gap {self.continuity_gap:.2g}"
        )
        lines.append(
            f"residual autocorrelation {self.autocorrelation:.2f}, segments of "
            f"{self.segment_steps} steps"
        )
        if self.misfit:
            lines.append("MISFIT: the model does not explain the data (see misfit)")
        return "\n".join(lines)


def _identity(x):
    return x


_DEFAULT_SOLVER = optx.LevenbergMarquardt(rtol=1e-6, atol=1e-6)


class _Marker:
    def __init__(self, index: int):
        self.index = index


class _Parameters(eqx.Module):
    """How the selected parameters map to and from the solver's unconstrained vector:
    ``log`` for positive ones, a logistic map for bounded ones, the identity otherwise."""

    where: Callable = eqx.field(static=True)
    treedef: object = eqx.field(static=True)
    shapes: tuple = eqx.field(static=True)
    kinds: tuple = eqx.field(static=True)  # ("log",) | ("bounded", low, high) | ("free",)

    def to_unconstrained(self, leaves):
        return jnp.concatenate(
            [_forward(kind, jnp.ravel(x)) for kind, x in zip(self.kinds, leaves, strict=True)]
        )

    def values(self, theta):
        out, start = [], 0
        for kind, shape in zip(self.kinds, self.shapes, strict=True):
            size = math.prod(shape)
            out.append(_inverse(kind, theta[start : start + size]).reshape(shape))
            start += size
        return out

    def env(self, env, theta):
        leaves = [
            x.astype(old.dtype)
            for x, old in zip(self.values(theta), _leaves(self, env), strict=True)
        ]
        return eqx.tree_at(self.where, env, jax.tree.unflatten(self.treedef, leaves))


def _leaves(parameters, env):
    return jax.tree.leaves(parameters.where(env))


def _forward(kind, x):
    if kind[0] == "log":
        return jnp.log(x)
    if kind[0] == "bounded":
        fraction = (x - kind[1]) / (kind[2] - kind[1])
        return jnp.log(fraction) - jnp.log1p(-fraction)
    return x


def _inverse(kind, z):
    if kind[0] == "log":
        return jnp.exp(z)
    if kind[0] == "bounded":
        return kind[1] + (kind[2] - kind[1]) * jax.nn.sigmoid(z)
    return z


def _derivative(kind, value):
    """d value / d unconstrained, for the standard errors (delta method)."""
    if kind[0] == "log":
        return value
    if kind[0] == "bounded":
        fraction = (value - kind[1]) / (kind[2] - kind[1])
        return (kind[2] - kind[1]) * fraction * (1 - fraction)
    return np.ones_like(value)


def _select(env, where, bounds):
    """The selected parameters' names and reparameterisations."""
    try:
        selected = where(env)
        leaves, treedef = jax.tree.flatten(selected)
        markers = jax.tree.unflatten(treedef, [_Marker(i) for i in range(len(leaves))])
        marked = eqx.tree_at(where, env, markers)
    except (TypeError, ValueError, AttributeError) as error:
        raise DiffsimError(f"where= must select array parameters of the env: {error}") from None
    if not leaves or not all(eqx.is_inexact_array(x) for x in leaves):
        raise DiffsimError(
            f"where= must select floating-point array parameters, got {selected!r:.120}"
        )
    paths = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(
        marked, is_leaf=lambda x: isinstance(x, _Marker)
    )[0]:
        if isinstance(leaf, _Marker):
            paths[leaf.index] = path
    if len(paths) < len(leaves):  # eqx.tree_at put one marker where two were selected
        twice = {
            jax.tree_util.keystr(path).lstrip(".")
            for j, path in paths.items()
            for i in set(range(len(leaves))) - set(paths)
            if leaves[i] is leaves[j]
        }
        raise DiffsimError(
            f"where= selects the same parameter more than once: {sorted(twice) or selected!r:.120}"
        )
    fields = {field.name: field for field in dataclasses.fields(env)}
    names, kinds, scalar_names = [], [], []
    bounds = dict(bounds or {})
    for i, leaf in enumerate(leaves):
        path = paths[i]
        name = jax.tree_util.keystr(path).lstrip(".")
        top = getattr(path[0], "name", None) if len(path) == 1 else None
        positive = top in fields and fields[top].metadata.get("positive", False)
        if name in bounds:
            low, high = (float(b) for b in bounds.pop(name))
            value = np.asarray(leaf)
            if not (low < high and np.all((low < value) & (value < high))):
                raise DiffsimError(
                    f"bounds for {name} must satisfy low < value < high, got ({low}, {high}) "
                    f"and the starting value {value}"
                )
            if positive and low < 0:
                raise DiffsimError(f"{name} is positive: its lower bound must be >= 0, got {low}")
            kinds.append(("bounded", low, high))
        else:
            kinds.append(("log",) if positive else ("free",))
        names.append(name)
        size = int(np.size(leaf))
        scalar_names += [name] if np.ndim(leaf) == 0 else [f"{name}[{j}]" for j in range(size)]
    if bounds:
        raise DiffsimError(f"bounds name parameters that where= does not select: {list(bounds)}")
    parameters = _Parameters(
        where=where,
        treedef=treedef,
        shapes=tuple(np.shape(x) for x in leaves),
        kinds=tuple(kinds),
    )
    return parameters, tuple(scalar_names)


class _Segments(eqx.Module):
    """The records cut into shooting segments of ``L`` steps, padded to a common length."""

    times: Float[Array, "S K"]
    controls: Float[Array, "S L m"]
    observations: Float[Array, "S K o"]
    counted: Array  # (S, K = L + 1) bool: observation compared (each measured time once)
    continues: Array  # (S,) bool: segment s ends where segment s + 1 starts


def _segments(records, length, dtype):
    times, controls, observations, counted, continues, firsts = [], [], [], [], [], []
    for record in records:
        steps = record.num_steps
        count = -(-steps // length)
        firsts.append(len(times))
        for s in range(count):
            first, last = s * length, min((s + 1) * length, steps)
            valid = last - first
            t = record.times[first : last + 1]
            pad = length - valid
            dt = record.times[1] - record.times[0]
            times.append(np.concatenate([t, t[-1] + dt * np.arange(1, pad + 1)]))
            u = record.controls[first:last]
            controls.append(np.concatenate([u, np.zeros((pad, u.shape[1]))]))
            y = record.observations[first : last + 1]
            observations.append(np.concatenate([y, np.zeros((pad, y.shape[1]))]))
            mask = np.zeros(length + 1, bool)
            mask[: valid + 1 if s == count - 1 else valid] = True
            counted.append(mask)
            continues.append(s < count - 1)
    segments = _Segments(
        times=jnp.asarray(np.stack(times), dtype),
        controls=jnp.asarray(np.stack(controls), dtype),
        observations=jnp.asarray(np.stack(observations), dtype),
        counted=jnp.asarray(np.stack(counted)),
        continues=jnp.asarray(np.array(continues)),
    )
    return segments, firsts


def _simulate(env, y0, times, controls):
    def body(y, tu):
        t, u = tu
        y = env.transition(env, t, y, u)
        return y, y

    _, ys = jax.lax.scan(body, y0, (times[:-1], controls))
    return jnp.concatenate([y0[None], ys])


class _Problem(eqx.Module):
    parameters: _Parameters
    observe: Callable = eqx.field(static=True)

    def residuals(self, z, args):
        theta, starts = z
        env, segments, noise, continuity = args
        env = self.parameters.env(env, theta)
        states = jax.vmap(lambda y0, t, u: _simulate(env, y0, t, u))(
            starts, segments.times, segments.controls
        )
        predicted = jax.vmap(jax.vmap(self.observe))(states)
        error = (predicted - segments.observations) / noise[None, None, :]
        observed = jnp.where(segments.counted[:, :, None], error, 0.0)
        gap = (states[:-1, -1] - starts[1:]) / continuity[None, :]
        joined = jnp.where(segments.continues[:-1, None], gap, 0.0)
        return observed, joined


@eqx.filter_jit
def _solve(problem, solver, z0, args, max_steps):
    first = problem.residuals(z0, args)
    solution = optx.least_squares(
        problem.residuals, solver, z0, args, max_steps=max_steps, throw=False
    )
    flat, unravel = ravel_pytree(solution.value)
    jacobian = jax.jacfwd(lambda x: ravel_pytree(problem.residuals(unravel(x), args))[0])(flat)
    final = problem.residuals(solution.value, args)
    return solution.value, solution.result, solution.stats["num_steps"], jacobian, first, final


def identify(
    env: AbstractEnv,
    data: Record | Trajectory | Sequence[Record | Trajectory],
    where: Callable[[AbstractEnv], PyTree[Array]],
    *,
    observe: Callable[[Float[Array, " n"]], Float[Array, " o"]] | None = None,
    noise: float | Sequence[float] | ArrayLike | None = None,
    segment_steps: int | None = None,
    state_guess: Callable[[Float[Array, " o"]], Float[Array, " n"]] | None = None,
    bounds: dict[str, tuple[float, float]] | None = None,
    continuity: float | Sequence[float] | ArrayLike | None = None,
    solver: optx.AbstractLeastSquaresSolver | None = None,
    max_steps: int = 200,
    rcond: float = 1e-8,
    max_relative_error: float = 1.0,
    max_residual: float = 1.5,
    max_autocorrelation: float = 0.5,
) -> tuple[AbstractEnv, Identification]:
    """Fit the env's parameters selected by ``where`` to recorded trajectories.

    The records' controls are replayed through the env's own transition
    (``env.transition``, held over each control interval) and the simulated observations
    are fitted to the recorded ones by nonlinear least squares (optimistix), with multiple
    shooting: each record is cut into segments of ``segment_steps`` control steps, every
    segment starts from its own free state, and the mismatch between a segment's end and
    the next one's start is a residual too (so long or chaotic records stay well
    conditioned). Positive parameters (declared ``parameter(..., positive=True)``) are
    fitted as logarithms and ``bounds`` through a logistic map, never clipped.

    Args:
        env: the env whose parameters start the fit; its other fields stay fixed.
        data: one :class:`Record` or several (a sequence), sampled every
            ``env.control_dt`` s; a :class:`Trajectory` (from :func:`diffsim.rollout`)
            is read as ``Record.from_trajectory(trajectory, observe)``.
        where: selects the parameters, as for ``eqx.tree_at``:
            ``lambda env: (env.m, env.l)``.
        observe: ``observe(state) -> observation``, what the records measured (default:
            the full state).
        noise: the measurement noise's standard deviation per observation component
            (observation units, scalar or shape ``(o,)``): it weighs the components.
            Default 1. Its overall level is re-estimated from the residual.
        segment_steps: control steps per shooting segment. Default: chosen from the
            dynamics, as long as a state error grows at most ``e^2`` times over a segment
            at the starting parameters (``2 / rate`` seconds, ``rate`` the largest
            eigenvalue modulus of the one-step map's linearisation ``(A - I) / dt`` along
            the records), so that a wrong starting guess cannot drift out of phase.
        state_guess: ``state_guess(observation) -> state``, the starting guess of each
            segment's initial state (default: the observation, when ``observe`` is the
            identity).
        bounds: ``{name: (low, high)}`` for parameters kept inside an interval.
        continuity: the state mismatch (state units, scalar or ``(n,)``) at a segment
            boundary that costs as much as one noise standard deviation of an
            observation (default: ``noise / 10`` when the full state is observed, else
            1e-3).
        solver: an optimistix least-squares solver, passed through as it is (default
            ``optx.LevenbergMarquardt(rtol=1e-6, atol=1e-6)``).
        max_steps: the solver's step limit.
        rcond: eigenvalues of the correlation form of ``J^T J`` (parameters) below this
            mark unidentifiable directions.
        max_relative_error: parameters whose standard error exceeds this fraction of
            their value are reported unidentifiable.
        max_residual: with ``noise`` given, a noise-scaled RMS residual above this is a
            misfit (the stated noise cannot explain what is left).
        max_autocorrelation: a lag-one autocorrelation of the residuals above this is a
            misfit (what is left is not noise).

    Returns:
        ``(fitted_env, report)``: the env with the fitted values, and an
        :class:`Identification`. Unidentifiable parameters and a misfit are flagged in
        the report and warned about.

    Raises:
        DiffsimError: for records that do not match the env (sampling interval, control
            or observation sizes), too few observations for the unknowns, a simulation
            that is not finite at the starting guess, or a solve that fails (step limit,
            divergence, non-finite result).

    Example::

        fitted, report = diffsim.identify(Pendulum(m=0.8, l=1.2), record,
                                          where=lambda env: (env.m, env.l), noise=0.01)
    """
    single = isinstance(data, (Record, Trajectory))
    records = [data] if single else list(data) if isinstance(data, (list, tuple)) else []
    if not records or not all(isinstance(r, (Record, Trajectory)) for r in records):
        raise DiffsimError(
            "data must be a diffsim.Record or a diffsim.Trajectory, or a list of them, "
            f"got {data!r:.80}"
        )
    records = [
        Record.from_trajectory(r, observe) if isinstance(r, Trajectory) else r for r in records
    ]
    parameters, names = _select(env, where, bounds)
    dtype = jnp.result_type(*_leaves(parameters, env))
    n, m = env.state_size, env.action_space.control_size
    observe_fn = _identity if observe is None else observe
    o = jax.eval_shape(observe_fn, jax.ShapeDtypeStruct((n,), dtype)).shape
    if len(o) != 1:
        raise DiffsimError(f"observe must return a vector, got shape {o}")
    o = o[0]
    for i, record in enumerate(records):
        if record.controls.shape[1] != m or record.observations.shape[1] != o:
            raise DiffsimError(
                f"record {i} has {record.controls.shape[1]} controls and "
                f"{record.observations.shape[1]} observations per time; "
                f"{type(env).__name__} takes {m} controls and observe gives {o}"
            )
        steps = np.diff(record.times)
        if not np.allclose(steps, env.control_dt, rtol=1e-3, atol=0.0):
            worst = steps[np.argmax(np.abs(steps - env.control_dt))]
            raise DiffsimError(
                f"record {i} is sampled every {worst:.6g} s somewhere, but {type(env).__name__} "
                f"holds controls for control_dt = {env.control_dt} s: resample the record"
            )
    longest = max(record.num_steps for record in records)
    if segment_steps is not None:
        validate.positive_int("segment_steps", segment_steps)
    validate.positive_float("max_residual", max_residual)
    validate.positive_float("max_autocorrelation", max_autocorrelation)
    validate.positive_int("max_steps", max_steps)
    validate.positive_float("rcond", rcond)
    validate.positive_float("max_relative_error", max_relative_error)
    noise_vector = _positive_vector("noise", 1.0 if noise is None else noise, o, dtype)
    if continuity is None:
        continuity = noise_vector / 10 if observe is None else 1e-3
    continuity_vector = _positive_vector("continuity", continuity, n, dtype)
    if state_guess is None:
        if observe is not None:
            raise DiffsimError(
                "with observe= the initial states cannot be read off the data: pass "
                "state_guess=lambda observation: state"
            )
        state_guess = _identity
    length = (
        _segment_steps(env, records, state_guess, dtype, longest)
        if segment_steps is None
        else min(segment_steps, longest)
    )
    total = sum(record.num_steps for record in records)
    coarse = max(2, -(-total * n // 2000)) if segment_steps is None else length
    length = max(coarse, length - length % coarse)
    segments, firsts = _segments(records, length, dtype)
    starts = jax.vmap(state_guess)(segments.observations[:, 0])
    if starts.shape != (segments.times.shape[0], n):
        raise DiffsimError(
            f"state_guess must return a state of shape ({n},), got {starts.shape[1:]}"
        )
    observations = int(np.sum(np.asarray(segments.counted))) * o
    unknowns = len(names) + len(records) * n
    if observations <= unknowns:
        raise DiffsimError(
            f"{observations} observed values cannot determine {unknowns} unknowns "
            f"({len(names)} parameters and an initial state of {n} per record): record more"
        )
    if solver is None:
        solver = _DEFAULT_SOLVER
    problem = _Problem(parameters, observe_fn)
    theta0 = parameters.to_unconstrained(_leaves(parameters, env))
    z0 = (theta0, starts.astype(dtype))
    if coarse < length:
        # short segments first: a nearly convex problem that finds the basin (non-smooth
        # dynamics such as a speed limit leave local minima along longer segments)
        short, short_firsts = _segments(records, coarse, dtype)
        short_starts = jax.vmap(state_guess)(short.observations[:, 0]).astype(dtype)
        with runtime_errors_as_diffsim_errors():
            zc, result = _solve(
                problem,
                solver,
                (theta0, short_starts),
                (env, short, noise_vector, continuity_vector),
                max_steps,
            )[:2]
        if result == optx.RESULTS.successful and np.all(np.isfinite(zc[0])):
            ends = [*short_firsts[1:], short.times.shape[0]]
            stride = length // coarse
            starts = [zc[1][a:b:stride] for a, b in zip(short_firsts, ends, strict=True)]
            z0 = (zc[0], jnp.concatenate(starts))
    args = (env, segments, noise_vector, continuity_vector)
    with runtime_errors_as_diffsim_errors():
        z, result, iterations, jacobian, first, final = _solve(
            problem, solver, z0, args, max_steps
        )
    if not all(bool(jnp.all(jnp.isfinite(r))) for r in first):
        raise DiffsimError(
            "the simulation of the records is not finite at the starting parameters "
            f"{dict(zip(names, np.asarray(theta0), strict=True))} (unconstrained): start closer"
        )
    if result != optx.RESULTS.successful:
        raise DiffsimError(
            f"identification failed after {int(iterations)} solver steps: "
            f"{optx.RESULTS[result] or 'unsuccessful'}"
        )
    flat = [np.asarray(a, np.float64) for a in (jacobian, *final)]
    if not all(np.all(np.isfinite(a)) for a in flat) or not np.all(np.isfinite(z[0])):
        raise DiffsimError("identification failed: the fitted residuals are not finite")
    fitted = parameters.env(env, z[0])
    report = _report(
        parameters,
        names,
        z,
        flat,
        observations,
        unknowns,
        np.asarray(continuity_vector),
        int(iterations),
    )
    autocorrelation = _autocorrelation(flat[1], np.asarray(segments.counted))
    counted = np.asarray(segments.counted)
    left = np.sqrt(np.mean((flat[1] * np.asarray(noise_vector))[counted] ** 2, axis=0))
    spread = np.std(np.concatenate([r.observations for r in records]), axis=0)
    exact = bool(np.all(left <= 1e-4 * spread))  # fitted to rounding: nothing left to judge
    misfit = not exact and (
        autocorrelation > max_autocorrelation
        or (noise is not None and report.residual > max_residual)
    )
    report = _flag(report, rcond, max_relative_error, firsts, z[1])
    report = dataclasses.replace(
        report,
        segment_steps=length,
        predictions=_predictions(segments, flat[1], np.asarray(noise_vector)),
        autocorrelation=autocorrelation,
        misfit=bool(misfit),
    )
    if misfit:
        warnings.warn(
            f"{type(env).__name__} does not explain the data: residual {report.residual:.3g} "
            f"times the stated noise, lag-one autocorrelation {autocorrelation:.2f}; the "
            "values are not a fit: check the model's structure, the fixed parameters and "
            "the noise level",
            stacklevel=2,
        )
    if report.unidentifiable:
        warnings.warn(
            f"the data do not determine {', '.join(report.unidentifiable)}: see the "
            "report's standard errors and correlation",
            stacklevel=2,
        )
    return fitted, report


def _positive_vector(name, value, size, dtype):
    vector = (
        np.broadcast_to(np.asarray(value, np.float64), (size,))
        if np.ndim(value) == 0
        else (np.asarray(value, np.float64))
    )
    if vector.shape != (size,) or not np.all(np.isfinite(vector) & (vector > 0)):
        raise DiffsimError(
            f"{name} must be positive and finite, a scalar or shape ({size},), got {value!r}"
        )
    return jnp.asarray(vector, dtype)


def _report(parameters, names, z, flat, observations, unknowns, continuity, iterations):
    jacobian, observed, joined = flat
    k = len(names)
    information = jacobian.T @ jacobian
    # marginalise the segments' initial states out (Schur complement)
    pp, ps, ss = information[:k, :k], information[:k, k:], information[k:, k:]
    schur = pp - ps @ np.linalg.pinv(ss, rcond=1e-12, hermitian=True) @ ps.T
    variance = float(np.sum(observed**2) / (observations - unknowns))
    scale = np.sqrt(np.clip(np.diag(schur), 0.0, None))
    with np.errstate(divide="ignore", invalid="ignore"):
        correlation_form = schur / np.outer(scale, scale)
    correlation_form = np.where(np.isfinite(correlation_form), correlation_form, 0.0)
    eigenvalues, vectors = np.linalg.eigh(correlation_form)
    values = np.concatenate([np.ravel(v) for v in parameters.values(z[0])]).astype(np.float64)
    kinds = [
        kind
        for kind, shape in zip(parameters.kinds, parameters.shapes, strict=True)
        for _ in range(math.prod(shape))
    ]
    derivative = np.array([_derivative(kind, v) for kind, v in zip(kinds, values, strict=True)])
    return _Raw(
        names=names,
        values=values,
        eigenvalues=eigenvalues,
        vectors=vectors,
        scale=scale,
        variance=variance,
        derivative=derivative,
        residual=float(np.sqrt(np.sum(observed**2) / observations)),
        gap=float(np.max(np.abs(joined * continuity[None, :]), initial=0.0)),
        iterations=iterations,
    )


@dataclasses.dataclass(frozen=True)
class _Raw:
    names: tuple
    values: np.ndarray
    eigenvalues: np.ndarray
    vectors: np.ndarray
    scale: np.ndarray
    variance: float
    derivative: np.ndarray
    residual: float
    gap: float
    iterations: int


def _flag(raw, rcond, max_relative_error, firsts, starts):
    weak = raw.eigenvalues < rcond * max(1.0, float(np.max(raw.eigenvalues, initial=1.0)))
    in_weak = np.any(np.abs(raw.vectors[:, weak]) > 0.1, axis=1) | (raw.scale == 0)
    inverse = np.where(weak, 0.0, 1.0 / np.where(weak, 1.0, raw.eigenvalues))
    with np.errstate(divide="ignore", invalid="ignore"):
        covariance = (raw.vectors * inverse) @ raw.vectors.T / np.outer(raw.scale, raw.scale)
    unconstrained = np.sqrt(np.clip(np.diag(covariance), 0.0, None) * raw.variance)
    errors = np.where(in_weak, np.inf, np.abs(raw.derivative) * unconstrained)
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = errors / np.abs(raw.values)
        correlation = covariance / np.sqrt(np.outer(np.diag(covariance), np.diag(covariance)))
    flagged = in_weak | (np.isfinite(relative) & (relative > max_relative_error))
    unidentifiable = tuple(name for name, bad in zip(raw.names, flagged, strict=True) if bad)
    return Identification(
        names=raw.names,
        values=raw.values,
        standard_errors=errors,
        unidentifiable=unidentifiable,
        correlation=np.where(np.isfinite(correlation), correlation, np.nan),
        residual=raw.residual,
        noise_variance=raw.variance,
        iterations=raw.iterations,
        continuity_gap=raw.gap,
        initial_states=np.asarray(starts)[np.asarray(firsts)],
        segment_steps=0,
        predictions=(),
        autocorrelation=0.0,
        misfit=False,
    )


def _predictions(segments, observed, noise):
    """Each record's simulated observations, from the segments' noise-scaled residuals."""
    counted = np.asarray(segments.counted)
    predicted = np.asarray(segments.observations, np.float64) + observed * noise
    rows = [predicted[s][counted[s]] for s in range(counted.shape[0])]
    ends = list(np.flatnonzero(~np.asarray(segments.continues)) + 1)
    starts = [0, *ends[:-1]]
    return tuple(np.concatenate(rows[a:b]) for a, b in zip(starts, ends, strict=True))


def _autocorrelation(observed, counted):
    """Lag-one autocorrelation of the residuals ``(S, K, o)``, over pairs both counted."""
    pairs = counted[:, 1:] & counted[:, :-1]
    product = np.sum(observed[:, 1:] * observed[:, :-1] * pairs[:, :, None])
    energy = np.sum(observed**2 * counted[:, :, None])
    return float(product / energy) if energy > 0 else 0.0


def _segment_steps(env, records, state_guess, dtype, longest):
    """Control steps over which a state error grows at most e^2 times (see identify)."""
    record = max(records, key=lambda r: r.num_steps)
    every = max(1, record.num_steps // 64)
    rows = np.arange(0, record.num_steps, every)
    states = jax.vmap(state_guess)(jnp.asarray(record.observations[rows], dtype))
    controls = jnp.asarray(record.controls[rows], dtype)
    times = jnp.asarray(record.times[rows], dtype)
    steps = np.asarray(_one_step_jacobians(env, times, states, controls), np.float64)
    generators = (steps - np.eye(steps.shape[-1])) / env.control_dt
    rate = float(np.max(np.abs(np.linalg.eigvals(generators)))) if np.all(
        np.isfinite(generators)
    ) else np.inf
    if not np.isfinite(rate):
        raise DiffsimError(
            "the simulation of the records is not finite at the starting parameters: "
            "start closer, or pass segment_steps"
        )
    if rate <= 0:
        return longest
    return int(np.clip(np.floor(2.0 / (rate * env.control_dt)), 2, longest))


@eqx.filter_jit
def _one_step_jacobians(env, times, states, controls):
    def jacobian(t, y, u):
        return jax.jacfwd(lambda x: env.transition(env, t, x, u))(y)

    return jax.vmap(jacobian)(times, states, controls)
