"""Properties of the trebuchet's shots over hypothesis-drawn inputs.

Inside the aimers' box every shot is ok, finite and has a finite gradient; outside the
model's domain every shot is NaN with status ``INVALID_INPUT`` and a zero gradient, and
the concrete check raises ``DiffsimError``; in between (extreme but valid inputs) a shot
is either a number or a NaN with a failure status, never an exception.

Compilation dominates: each preset's batch function (``vmap`` of a shot and its gradient,
``BATCH`` shots) is compiled once and every hypothesis example is one call of it.
"""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import diffsim
from diffsim.envs import trebuchet as tr
from diffsim.envs.trebuchet import _physics

BATCH = 8
SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
FAILURES = {  # statuses whose distance is NaN, per preset (see STATUS_MESSAGES)
    "faithful": {2, 3, 4, 5, 6, 7},
    "trebuchet_jl": {2, 4, 5, 6, 7},
}
MACHINES = {"faithful": tr.trebuchet, "trebuchet_jl": tr.trebuchet_jl}


@eqx.filter_jit
def _shots(x, tb):
    """Shots and d distance / d (wind, angle, weight) of a ``(BATCH, 3)`` batch."""

    def one(x):
        def distance(x):
            shot = tr.simulate(x[0], x[1], x[2], tb)
            return shot.distance, shot

        gradient, shot = jax.grad(distance, has_aux=True)(x)
        return shot, gradient

    return jax.vmap(one)(x)


def _run(preset, triples):
    with np.errstate(over="ignore"):  # 1e300 lb is inf in float32: invalid either way
        x = jnp.asarray(np.asarray(triples, dtype=jnp.zeros(()).dtype))
    shot, gradient = jax.device_get(_shots(x, MACHINES[preset]()))
    return np.asarray(shot.distance), np.asarray(shot.status), np.asarray(gradient)


def _batch(triple):
    return st.lists(triple, min_size=BATCH, max_size=BATCH)


box = st.tuples(
    st.floats(-10.0, 10.0),  # wind, m/s
    st.floats(*tr.ANGLE_BOUNDS),  # degrees
    st.floats(*tr.WEIGHT_BOUNDS),  # lb
)

# Outside the domain in float64 and in float32 alike (nothing rounds back inside).
bad_wind = st.sampled_from([math.nan, math.inf, -math.inf]) | st.floats(101.0, 1e6).flatmap(
    lambda w: st.sampled_from([w, -w])
)
bad_angle = (
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, 90.0])
    | st.floats(-1e6, 0.0)
    | st.floats(90.0, 1e6)
)
bad_weight = (
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0])
    | st.floats(-1e6, 0.0)
    | st.floats(1.01 * tr.WEIGHT_LIMIT, 1e300)
)


@st.composite
def invalid(draw):
    """A box triple with one, two or three inputs replaced by ones outside the domain."""
    triple = list(draw(box))
    replaced = draw(st.sets(st.sampled_from([0, 1, 2]), min_size=1))
    for i, bad in ((0, bad_wind), (1, bad_angle), (2, bad_weight)):
        if i in replaced:
            triple[i] = draw(bad)
    return tuple(triple)


extreme = st.tuples(  # inside the domain, far outside the box
    st.floats(-tr.WIND_LIMIT, tr.WIND_LIMIT),
    st.floats(1e-3, 89.999),
    st.floats(1e-3, tr.WEIGHT_LIMIT),
)


@pytest.mark.slow  # the faithful machine's compilations take 50 s: in `make test-all`
@pytest.mark.parametrize("preset", ["faithful", "trebuchet_jl"])
def test_shots_in_the_box_are_ok_with_finite_gradients(preset):
    @SETTINGS
    @given(_batch(box))
    def check(triples):
        distance, status, gradient = _run(preset, triples)
        np.testing.assert_array_equal(status, 0, err_msg=str(triples))
        assert np.isfinite(distance).all() and np.isfinite(gradient).all(), triples
        for triple in triples:
            _physics._check_inputs(*triple)  # the concrete check agrees: no error

    check()


@pytest.mark.slow  # each machine's batched shot compiles for 30 s or more: in `make test-all`
@pytest.mark.parametrize("preset", ["faithful", "trebuchet_jl"])
def test_inputs_outside_the_domain_give_nan_and_a_zero_gradient(preset):
    @SETTINGS
    @given(_batch(invalid()))
    def check(triples):
        distance, status, gradient = _run(preset, triples)
        np.testing.assert_array_equal(status, _physics.INVALID_INPUT, err_msg=str(triples))
        assert np.isnan(distance).all(), triples
        np.testing.assert_array_equal(gradient, 0.0)
        for triple in triples:
            with pytest.raises(diffsim.DiffsimError, match="wind|angle|weight"):
                _physics._check_inputs(*triple)

    check()


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["faithful", "trebuchet_jl"])
def test_extreme_valid_inputs_give_a_number_or_a_failure_never_an_exception(preset):
    @SETTINGS
    @given(_batch(extreme))
    def check(triples):
        distance, status, gradient = _run(preset, triples)
        assert _physics.INVALID_INPUT not in status, triples
        failed = np.isin(status, list(FAILURES[preset]))
        np.testing.assert_array_equal(np.isnan(distance), failed, err_msg=str(triples))
        zero_or_nan = (gradient == 0) | np.isnan(gradient)
        assert zero_or_nan[failed].all(), (triples, gradient)

    check()


@pytest.mark.slow  # `make test` checks a failed shot through `diffsim shoot` (test_trebuchet_cli)
@pytest.mark.parametrize(
    "preset, failing, published, published_gradient",
    [
        (
            "faithful",
            [(0.0, 0.01, 1e6), (0.0, 10.0, 1e6), (0.0, 45.0, 1e6)],
            71.12,
            (3.83, -0.95, 0.0772),
        ),
        (
            "trebuchet_jl",
            [(-100.0, 0.5, 1e4), (0.0, 10.0, 1e4), (100.0, 10.0, 1e4)],
            74.73,
            (4.02, -0.99, 0.0519),
        ),
    ],
)
def test_a_failed_solve_is_nan_with_a_zero_or_nan_gradient(
    preset, failing, published, published_gradient
):
    """Heavy counterweights (valid inputs) that the solvers fail on: the faithful machine
    runs out of steps, 60 Hz Euler blows up to a NaN state."""
    triples = failing + [(-2.0, 45.0, 200.0)] * (BATCH - len(failing))
    distance, status, gradient = _run(preset, triples)
    np.testing.assert_array_equal(status[:3], _physics.SOLVER_FAILED)
    assert np.isnan(distance[:3]).all()
    assert ((gradient[:3] == 0) | np.isnan(gradient[:3])).all()
    # the batch's other shots are the published one, untouched by their neighbours
    np.testing.assert_allclose(distance[3:], published, atol=0.005)
    np.testing.assert_allclose(gradient[3:], np.broadcast_to(published_gradient, (5, 3)), rtol=0.01)


def test_trajectory_checks_its_inputs_before_compiling():
    bad_inputs = [(math.nan, 45.0, 200.0), (0.0, 1000.0, 200.0), (0.0, 45.0, -5.0), (1e6, 45, 200)]
    for bad in bad_inputs:
        with pytest.raises(diffsim.DiffsimError, match="wind|angle|weight"):
            tr.trajectory(*bad)
