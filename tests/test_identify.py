"""System identification (``diffsim.identify``) and measured records (``diffsim.Record``).

Parameters are recovered from synthetic data made by the env itself with known values, and
must lie within 3 reported standard errors of them; a combination of parameters that the
equations cannot separate must be reported unidentifiable; bad data must raise
:class:`diffsim.DiffsimError` before any solve. One compilation per configuration is
shared between tests (module-scoped fixtures, module-level ``where`` functions).
"""

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jaxtyping import Array, Float

import diffsim
from diffsim.envs import Pendulum

TRUE_M, TRUE_L = 1.3, 0.8


def masses_and_lengths(env):
    return env.m, env.l


def gravity_mass_length(env):
    return env.g, env.m, env.l


def explore(t, observation):
    return jnp.stack([1.2 * jnp.sin(2.1 * t) + 0.8 * jnp.sin(5.3 * t + 1.0)])


def no_torque(t, observation):
    return jnp.zeros(1)


def noisy(record, seed, fraction=0.01):
    scale = fraction * record.observations.std(axis=0)
    noise = scale * np.asarray(jr.normal(jr.key(seed), record.observations.shape), np.float64)
    return diffsim.Record(record.times, record.controls, record.observations + noise), scale


@pytest.fixture(scope="module")
def true_pendulum():
    return Pendulum(m=jnp.array(TRUE_M), l=jnp.array(TRUE_L))


@pytest.fixture(scope="module")
def swinging(true_pendulum):
    """10 s of a pendulum driven by a sum of sinusoids from near hanging (noise-free)."""
    trajectory = diffsim.rollout(true_pendulum, explore, jnp.array([3.0, 0.0]), num_steps=200)
    return diffsim.Record.from_trajectory(trajectory)


@pytest.fixture(scope="module")
def fits(swinging):
    """Three noise draws (1 % of each state component's spread), fitted from the nominal
    pendulum (m = l = 1) with 10 shooting segments of 20 steps."""  # (defaults: below)
    out = []
    for seed in range(3):
        record, scale = noisy(swinging, seed)
        out.append(
            diffsim.identify(Pendulum(), record, masses_and_lengths, noise=scale, segment_steps=20)
        )
    return out


def test_record_from_rollout_holds_the_rollout(swinging):
    assert swinging.times.shape == (201,) and swinging.controls.shape == (200, 1)
    assert swinging.observations.shape == (201, 2)
    np.testing.assert_allclose(swinging.times[1:] - swinging.times[:-1], 0.05, rtol=1e-4)
    np.testing.assert_allclose(
        swinging.controls[:3, 0], [explore(t, None)[0] for t in (0.0, 0.05, 0.1)], rtol=1e-5
    )


def test_pendulum_mass_and_length_within_three_standard_errors(fits):
    for _, report in fits:
        assert report.names == ("m", "l")
        assert report.unidentifiable == ()
        errors = report.values - np.array([TRUE_M, TRUE_L])
        assert np.all(np.abs(errors) <= 3 * report.standard_errors), (errors, report)
        # 10 s at 1 % noise determine both to well under 1 %
        assert np.all(report.relative_errors < 0.005)
        assert np.all(np.abs(errors) / np.array([TRUE_M, TRUE_L]) < 0.01)
        # the stated noise is the true noise: the estimated variance ratio is about 1
        assert 0.7 < report.noise_variance < 1.4


def test_fitted_env_carries_the_fitted_values(fits):
    env, report = fits[0]
    assert isinstance(env, Pendulum)
    np.testing.assert_allclose([env.m, env.l], report.values, rtol=1e-6)
    assert float(env.g) == 10.0  # not selected: unchanged


def test_multiple_shooting_segments_join_and_start_at_the_true_state(fits, swinging):
    for _, report in fits:
        # the first segment's fitted start is the true initial state, to the noise level
        np.testing.assert_allclose(
            report.initial_states[0], swinging.observations[0], atol=0.01 * 2.0
        )
        # segment ends meet the next segment's start to a fraction of the noise (0.4 % of
        # the angle's spread of about 0.4 rad)
        assert report.continuity_gap < 0.004


def test_gravity_mass_and_length_together_are_unidentifiable(swinging, true_pendulum):
    # theta'' = 3 g / (2 l) sin(theta) + 3 u / (m l^2) depends on g / l and m l^2 only:
    # g -> c g, l -> c l, m -> m / c^2 leaves every trajectory unchanged
    c = 1.7
    scaled = Pendulum(g=10.0 * c, m=TRUE_M / c**2, l=TRUE_L * c)
    a = diffsim.rollout(true_pendulum, explore, jnp.array([3.0, 0.0]), num_steps=50)
    b = diffsim.rollout(scaled, explore, jnp.array([3.0, 0.0]), num_steps=50)
    np.testing.assert_allclose(a.states, b.states, rtol=1e-4, atol=1e-5)

    record, scale = noisy(swinging, 0)
    with pytest.warns(UserWarning, match="do not determine"):
        _, report = diffsim.identify(
            Pendulum(), record, gravity_mass_length, noise=scale, segment_steps=20
        )
    assert set(report.unidentifiable) == {"g", "m", "l"}
    assert np.all(np.isinf(report.standard_errors))


def test_mass_without_torque_is_unidentifiable_length_is_not(true_pendulum):
    # with u = 0 the mass never enters the equations; the length still sets the frequency
    free = diffsim.rollout(true_pendulum, no_torque, jnp.array([2.0, 0.0]), num_steps=200)
    record, scale = noisy(diffsim.Record.from_trajectory(free), 0)
    with pytest.warns(UserWarning, match="do not determine m"):
        _, report = diffsim.identify(
            Pendulum(), record, masses_and_lengths, noise=scale, segment_steps=20
        )
    assert report.unidentifiable == ("m",)
    assert np.isinf(report.standard_errors[0])
    assert abs(report.values[1] - TRUE_L) <= 3 * report.standard_errors[1]
    assert report.relative_errors[1] < 0.01


def record_of(env, y0, seed, fraction=0.01, excite=explore):
    trajectory = diffsim.rollout(env, excite, jnp.array(y0), num_steps=200)
    return noisy(diffsim.Record.from_trajectory(trajectory), seed, fraction)


def strong(t, observation):
    return jnp.stack([1.8 * jnp.sin(1.3 * t) + 1.2 * jnp.sin(4.1 * t + 1.0)])


def test_defaults_recover_parameters_that_single_shooting_misses(true_pendulum):
    # driven hard enough to touch the speed limit (8 rad/s), one shooting segment over
    # 10 s from the nominal guess (m = l = 1) falls into a wrong minimum; the default
    # segments (short ones first, then the length the dynamics allow) do not, and the wrong
    # minimum is flagged as a misfit, never reported as a fit
    m, l = TRUE_M, TRUE_L
    record, scale = record_of(true_pendulum, [3.0, 0.0], 0, excite=strong)
    assert np.max(np.abs(record.observations[:, 1])) > 7.9
    _, report = diffsim.identify(Pendulum(), record, masses_and_lengths, noise=scale)
    truth = np.array([m, l])
    assert 2 <= report.segment_steps < 40 and not report.misfit, report
    assert np.all(np.abs(report.values - truth) <= 3 * report.standard_errors), report
    assert np.all(np.abs(report.values - truth) / truth < 0.01), report
    with pytest.warns(UserWarning, match="does not explain the data"):
        _, single = diffsim.identify(
            Pendulum(), record, masses_and_lengths, noise=scale, segment_steps=200
        )
    assert single.misfit and single.autocorrelation > 0.9 and single.residual > 5
    assert np.max(np.abs(single.values - truth) / truth) > 0.1  # it did miss


@pytest.mark.slow  # 8-27 s (compilations): in `make test-all`
def test_a_rollout_trajectory_is_data(true_pendulum, swinging):
    trajectory = diffsim.rollout(true_pendulum, explore, jnp.array([3.0, 0.0]), num_steps=200)
    from_trajectory = diffsim.identify(Pendulum(), trajectory, masses_and_lengths)[1]
    from_record = diffsim.identify(Pendulum(), swinging, masses_and_lengths)[1]
    np.testing.assert_allclose(from_trajectory.values, from_record.values, rtol=1e-6)
    np.testing.assert_allclose(from_trajectory.values, [TRUE_M, TRUE_L], rtol=1e-3)


def test_understated_noise_is_a_misfit(swinging):
    record, scale = noisy(swinging, 0)
    with pytest.warns(UserWarning, match=r"residual \d\.\d+ times the stated noise"):
        _, report = diffsim.identify(Pendulum(), record, masses_and_lengths, noise=scale / 3)
    assert report.misfit and 2.7 < report.residual < 3.3
    assert abs(report.autocorrelation) < 0.2  # what is left is still noise: the size is wrong


class DampedPendulum(Pendulum):
    """The pendulum with viscous friction at the pivot (N m s/rad)."""

    friction: Float[Array, ""] = diffsim.parameter(0.3, positive=True)

    def vector_field(self, t, y, u):
        free = super().vector_field(t, y, u)
        return free.at[1].add(-3 * self.friction * y[1] / (self.m * self.l**2))


@pytest.mark.slow  # 8-19 s (compilations): in `make test-all`
def test_a_model_of_the_wrong_structure_is_a_misfit():
    truth = DampedPendulum(m=jnp.array(TRUE_M), l=jnp.array(TRUE_L))
    record, scale = record_of(truth, [3.0, 0.0], 0)
    with pytest.warns(UserWarning, match="does not explain the data"):
        _, report = diffsim.identify(Pendulum(), record, masses_and_lengths, noise=scale)
    assert report.misfit and report.autocorrelation > 0.5
    assert "MISFIT" in str(report)
    # without a stated noise, the residuals' correlation alone still tells
    with pytest.warns(UserWarning, match="does not explain the data"):
        _, unscaled = diffsim.identify(Pendulum(), record, masses_and_lengths)
    assert unscaled.misfit
    # the right structure fits the same record
    _, right = diffsim.identify(
        DampedPendulum(), record, lambda env: (env.m, env.l, env.friction), noise=scale
    )
    assert not right.misfit
    assert np.all(np.abs(right.values - [TRUE_M, TRUE_L, 0.3]) <= 3 * right.standard_errors)


@pytest.mark.slow  # 40 fits, about 40 s: in `make test-all`
def test_standard_errors_agree_with_the_errors_made(swinging):
    # 40 noise draws of the same record: the errors divided by the reported standard
    # errors should be standard normal (measured: standard deviations 1.15 and 0.95 over
    # 60 draws, 92 % and 95 % inside 1.96)
    z = []
    for seed in range(100, 140):
        record, scale = noisy(swinging, seed)
        _, report = diffsim.identify(Pendulum(), record, masses_and_lengths, noise=scale)
        z.append((report.values - [TRUE_M, TRUE_L]) / report.standard_errors)
    z = np.array(z)
    assert np.all((0.7 < z.std(axis=0)) & (z.std(axis=0) < 1.4)), z.std(axis=0)
    assert np.all(np.mean(np.abs(z) < 1.96, axis=0) >= 0.85), z
    assert np.all(np.abs(z.mean(axis=0)) < 0.5), z.mean(axis=0)


def test_predictions_are_the_fitted_simulation_and_plot(fits, swinging):
    import matplotlib

    matplotlib.use("Agg")
    from diffsim.plotting import plot_identification

    fitted, report = fits[0]
    record, _ = noisy(swinging, 0)
    (predicted,) = report.predictions
    assert predicted.shape == swinging.observations.shape
    # the fit follows the noise-free truth far closer than the 1 % noise
    spread = swinging.observations.std(axis=0)
    assert np.max(np.abs(predicted - swinging.observations) / spread) < 0.005
    axes = plot_identification(record, report, labels=["theta", "omega"])
    np.testing.assert_allclose(
        axes[1].lines[0].get_ydata(), record.observations[:, 0] - predicted[:, 0]
    )
    with pytest.raises(diffsim.DiffsimError, match="is not record 1 of the report"):
        plot_identification(record, report, record_index=1)


# ------------------------------------------------------------------------------------------
# A damped oscillator: partial observation (position only), bounds, uneven segments


class Oscillator(diffsim.AbstractEnv):
    """A mass on a spring with a damper, pushed by a force: state (x m, v m/s)."""

    stiffness: Float[Array, ""] = diffsim.parameter(4.0, positive=True)
    damping: Float[Array, ""] = diffsim.parameter(0.3, positive=True)
    mass: Float[Array, ""] = diffsim.parameter(1.0, positive=True)
    control_dt: float = eqx.field(static=True, default=0.1)
    episode_steps: int = eqx.field(static=True, default=100)
    transition: diffsim.AbstractTransition = diffsim.ODEStep()
    action_space = property(lambda self: diffsim.Box(-10.0, 10.0))

    def vector_field(self, t, y, u):
        force = -self.stiffness * y[0] - self.damping * y[1] + u[0]
        return jnp.stack([y[1], force / self.mass])

    def initial_state(self, key):
        return jnp.zeros(2)

    def running_cost(self, t, y, u):
        return y[0] ** 2


def spring_and_damper(env):
    return env.stiffness, env.damping


def position(y):
    return y[:1]


def position_and_rest(observation):
    return jnp.stack([observation[0], 0.0])


def push(t, observation):
    return jnp.stack([jnp.sin(1.3 * t) + jnp.cos(3.1 * t)])


@pytest.fixture(scope="module")
def oscillator_record():
    true = Oscillator(stiffness=6.0, damping=0.5)
    trajectory = diffsim.rollout(true, push, jnp.array([0.5, 0.0]), num_steps=90)
    return diffsim.Record.from_trajectory(trajectory, observe=position)


def test_partial_observation_bounds_and_uneven_segments(oscillator_record):
    # 90 steps in segments of 40: two full segments and one of 10
    record, scale = noisy(oscillator_record, 1)
    env, report = diffsim.identify(
        Oscillator(),
        record,
        spring_and_damper,
        observe=position,
        state_guess=position_and_rest,
        noise=scale,
        segment_steps=40,
        bounds={"damping": (0.01, 2.0)},
    )
    assert report.unidentifiable == ()
    truth = np.array([6.0, 0.5])
    assert np.all(np.abs(report.values - truth) <= 3 * report.standard_errors), report
    assert report.initial_states.shape == (1, 2)
    np.testing.assert_allclose(report.initial_states[0], [0.5, 0.0], atol=0.05)
    assert 0.01 < float(env.damping) < 2.0


def test_failed_solve_is_an_error(oscillator_record):
    with pytest.raises(diffsim.DiffsimError, match="identification failed after 2 solver steps"):
        diffsim.identify(
            Oscillator(stiffness=1.0, damping=1.5),
            oscillator_record,
            spring_and_damper,
            observe=position,
            state_guess=position_and_rest,
            max_steps=2,
        )


def test_bad_identification_inputs_are_errors(oscillator_record, swinging):
    def run(env=None, data=oscillator_record, **options):
        options = dict(observe=position, state_guess=position_and_rest) | options
        return diffsim.identify(env or Oscillator(), data, spring_and_damper, **options)

    with pytest.raises(
        diffsim.DiffsimError, match=r"sampled every 0\.0[45]\d* s somewhere.*control_dt = 0\.1 s"
    ):
        run(data=diffsim.Record(swinging.times, swinging.controls, swinging.observations[:, :1]))
    with pytest.raises(diffsim.DiffsimError, match="observe gives 1"):
        run(data=diffsim.Record(oscillator_record.times[:3], np.zeros((2, 1)), np.zeros((3, 2))))
    with pytest.raises(diffsim.DiffsimError, match="pass state_guess"):
        run(state_guess=None)
    with pytest.raises(diffsim.DiffsimError, match="cannot determine"):
        short = diffsim.Record(np.arange(3) * 0.1, np.zeros((2, 1)), np.zeros((3, 1)))
        run(data=short)
    with pytest.raises(diffsim.DiffsimError, match="bounds for damping"):
        run(bounds={"damping": (1.0, 2.0)})
    with pytest.raises(diffsim.DiffsimError, match="does not select"):
        run(bounds={"mass": (0.5, 2.0)})
    with pytest.raises(diffsim.DiffsimError, match="segment_steps"):
        run(segment_steps=0)
    with pytest.raises(diffsim.DiffsimError, match="noise must be positive"):
        run(noise=-1.0)
    with pytest.raises(diffsim.DiffsimError, match="Record"):
        run(data=[])


# ------------------------------------------------------------------------------------------
# Records: construction, CSV, errors


def test_record_errors_name_the_problem():
    times, controls, observations = np.arange(4) * 0.1, np.zeros((3, 1)), np.zeros((4, 2))
    with pytest.raises(diffsim.DiffsimError, match="mismatched lengths: 4 times need 4"):
        diffsim.Record(times, controls, observations[:3])
    with pytest.raises(diffsim.DiffsimError, match="mismatched lengths"):
        diffsim.Record(times, controls[:2], observations)
    with pytest.raises(diffsim.DiffsimError, match=r"times must increase strictly: times\[2\]"):
        diffsim.Record(np.array([0.0, 0.1, 0.1, 0.2]), controls, observations)
    bad = observations.copy()
    bad[2, 1] = np.nan
    with pytest.raises(diffsim.DiffsimError, match=r"observations\[2\] contains NaN"):
        diffsim.Record(times, controls, bad)
    with pytest.raises(diffsim.DiffsimError, match=r"controls\[0\] contains NaN"):
        diffsim.Record(times, np.full((3, 1), np.inf), observations)
    with pytest.raises(diffsim.DiffsimError, match="must be 2-D"):
        diffsim.Record(times, np.zeros(3), observations)
    with pytest.raises(diffsim.DiffsimError, match="times must be numbers"):
        diffsim.Record(["a", "b", "c", "d"], controls, observations)


def test_csv_round_trip_and_errors(tmp_path, swinging):
    path = tmp_path / "swing.csv"
    swinging.to_csv(path, controls=["torque"], observations=["theta", "theta_dot"])
    header = path.read_text().splitlines()[0]
    assert header == "t,torque,theta,theta_dot"
    back = diffsim.Record.from_csv(path, controls=["torque"], observations=["theta", "theta_dot"])
    for name in ("times", "controls", "observations"):
        np.testing.assert_array_equal(getattr(back, name), getattr(swinging, name))

    with pytest.raises(diffsim.DiffsimError, match="cannot read the record"):
        diffsim.Record.from_csv(tmp_path / "missing.csv", controls=["u"], observations=["y"])
    with pytest.raises(diffsim.DiffsimError, match="no column 'omega'"):
        diffsim.Record.from_csv(path, controls=["torque"], observations=["omega"])
    broken = tmp_path / "broken.csv"
    broken.write_text("t,u,y\n0.0,1.0,0.5\n0.1,oops,0.6\n0.2,,0.7\n")
    with pytest.raises(diffsim.DiffsimError, match="line 3, column 'u': 'oops' is not a finite"):
        diffsim.Record.from_csv(broken, controls=["u"], observations=["y"])
    backwards = tmp_path / "backwards.csv"
    backwards.write_text("t,u,y\n0.0,1.0,0.5\n0.2,1.0,0.6\n0.1,,0.7\n")
    with pytest.raises(diffsim.DiffsimError, match="times must increase"):
        diffsim.Record.from_csv(backwards, controls=["u"], observations=["y"])
    gap = tmp_path / "gap.csv"
    gap.write_text("t,u,y\n0.0,1.0,0.5\n0.1,1.0,nan\n0.2,,0.7\n")
    with pytest.raises(diffsim.DiffsimError, match="line 3, column 'y': 'nan' is not a finite"):
        diffsim.Record.from_csv(gap, controls=["u"], observations=["y"])
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(diffsim.DiffsimError, match="cannot read the record"):
        diffsim.Record.from_csv(binary, controls=["u"], observations=["y"])


def test_from_trajectory_stops_at_termination_and_refuses_batches():
    from diffsim.envs.cartpole import CartPole

    env = CartPole(action="continuous")
    trajectory = diffsim.rollout(env, lambda t, o: jnp.ones(1), jnp.zeros(4), num_steps=200)
    steps = int(trajectory.length)
    assert bool(trajectory.terminated) and steps < 200
    record = diffsim.Record.from_trajectory(trajectory)
    assert record.num_steps == steps and record.observations.shape == (steps + 1, 4)
    batch = jax.tree.map(lambda x: jnp.stack([x, x]), trajectory)
    with pytest.raises(diffsim.DiffsimError, match="one episode"):
        diffsim.Record.from_trajectory(batch)


# ------------------------------------------------------------------------------------------
# Property: on data nobody tuned it for, identify recovers the parameters or says it did not


@pytest.mark.slow  # 8-19 s (compilations): in `make test-all`
@settings(max_examples=12, deadline=None, derandomize=True)
@given(
    m=st.floats(0.5, 2.0),
    l=st.floats(0.5, 2.0),
    amplitudes=st.tuples(st.floats(0.3, 2.0), st.floats(0.3, 2.0)),
    frequencies=st.tuples(st.floats(0.5, 6.0), st.floats(0.5, 6.0)),
    theta0=st.floats(-3.1, 3.1),
    log_noise=st.floats(-2.5, -1.5),
    single_shooting=st.booleans(),
)
def test_identify_recovers_or_flags(
    m, l, amplitudes, frequencies, theta0, log_noise, single_shooting
):
    (a1, a2), (w1, w2) = amplitudes, frequencies

    def excite(t, observation):
        return jnp.stack([a1 * jnp.sin(w1 * t) + a2 * jnp.sin(w2 * t + 1.0)])

    truth = np.array([m, l])
    record, scale = record_of(
        Pendulum(m=jnp.array(m), l=jnp.array(l)), [theta0, 0.0], 0, 10**log_noise, excite
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, report = diffsim.identify(
            Pendulum(),
            record,
            masses_and_lengths,
            noise=scale,
            segment_steps=200 if single_shooting else None,
        )
    flagged = report.misfit or bool(report.unidentifiable)
    assert flagged == bool(caught), (report, [str(w.message) for w in caught])
    if not flagged:  # a fit: the truth within 4 of its standard errors, never a silent miss
        assert np.all(np.abs(report.values - truth) <= 4 * report.standard_errors), report
