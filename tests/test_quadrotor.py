"""The planar quadrotor against analytic solutions: hover, free fall, rotation under a
pure differential thrust; and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim
from diffsim.envs import PlanarQuadrotor


def _flight(env, y0, thrusts):
    """States after each of ``len(thrusts)`` held thrust pairs, shape ``(T + 1, 6)``."""

    def body(y, u):
        y_next = env.transition(env, 0.0, y, u)
        return y_next, y_next

    _, states = jax.lax.scan(body, y0, thrusts)
    return jnp.concatenate([y0[None], states])


@pytest.mark.usefixtures("x64")
def test_hover_at_half_the_weight_per_rotor_is_an_equilibrium():
    """Level, at rest, each rotor at ``m g / 2``: the state does not move in 5 s, and the
    vector field is zero; 1 % more thrust accelerates it up at 1 % of g."""
    env = PlanarQuadrotor()
    y0 = jnp.array([0.7, -1.2, 0.0, 0.0, 0.0, 0.0])
    hover = jnp.full(2, env.hover_thrust)
    np.testing.assert_allclose(env.hover_thrust, 0.486 * 9.81 / 2, rtol=1e-15)
    np.testing.assert_allclose(env.vector_field(0.0, y0, hover), 0.0, atol=1e-15)
    states = _flight(env, y0, jnp.tile(hover, (env.episode_steps, 1)))
    np.testing.assert_allclose(states, jnp.tile(y0, (env.episode_steps + 1, 1)), atol=1e-13)
    climb = env.vector_field(0.0, y0, 1.01 * hover)
    np.testing.assert_allclose(climb, [0, 0, 0, 0, 0.01 * 9.81, 0], atol=1e-14)


@pytest.mark.slow  # 8-19 s (compilations): in `make test-all`
def test_the_declared_equilibrium_is_hover_at_the_waypoint_and_lqr_holds_it():
    """`equilibrium()` is a fixed point of one control interval; the LQR about it (the
    `lqr` method's, weights from the cost's Hessians) brings small offsets back: the
    closed loop of the linearisation is stable and 3 s from 10 cm away end within 1 mm."""
    from diffsim.controllers._methods import lqr_for

    env = PlanarQuadrotor(target_x=1.0, target_z=-0.5)
    y_eq, u_eq = env.equilibrium()
    np.testing.assert_allclose(y_eq, [1.0, -0.5, 0, 0, 0, 0])
    np.testing.assert_allclose(env.transition(env, 0.0, y_eq, u_eq), y_eq, atol=1e-6)
    lqr = lqr_for(env)
    y0 = y_eq + jnp.array([0.1, -0.1, 0.05, 0.0, 0.0, 0.0])
    final = diffsim.rollout(env, lqr, y0, num_steps=60).final_state
    assert float(jnp.max(jnp.abs(final - y_eq))) < 1e-3, final


@pytest.mark.usefixtures("x64")
def test_free_fall_with_zero_thrust_is_a_parabola():
    """Rotors off from a tilted, moving start: ``x = x0 + vx t``, ``z = z0 + vz t - g t^2
    / 2``, pitch ``theta0 + omega t`` for 5 s, to 1e-10 m."""
    env = PlanarQuadrotor()
    y0 = jnp.array([0.5, 3.0, 0.4, 1.5, 2.0, -0.8])
    states = _flight(env, y0, jnp.zeros((env.episode_steps, 2)))
    t = np.arange(env.episode_steps + 1) * env.control_dt
    x0, z0, theta0, vx, vz, omega = np.asarray(y0)
    expected = np.stack(
        [
            x0 + vx * t,
            z0 + vz * t - 9.81 * t**2 / 2,
            theta0 + omega * t,
            np.full_like(t, vx),
            vz - 9.81 * t,
            np.full_like(t, omega),
        ],
        axis=1,
    )
    np.testing.assert_allclose(states, expected, rtol=0, atol=1e-10)
    assert float(states[-1, 1]) < -100  # it fell over 100 m: the check is not vacuous


@pytest.mark.usefixtures("x64")
def test_differential_thrust_rotates_at_constant_angular_acceleration():
    """Only the +x rotor on (1 N): the pitch follows ``theta0 + r u1 t^2 / (2 I)`` whatever
    the body does meanwhile; with the rotors swapped the rotation reverses."""
    env = PlanarQuadrotor()
    y0 = jnp.array([0.0, 0.0, 0.1, 0.0, 0.0, 0.0])
    steps = 10
    t = np.arange(steps + 1) * env.control_dt
    alpha = 0.25 * 1.0 / 0.00383
    for thrust, sign in ((jnp.array([1.0, 0.0]), 1.0), (jnp.array([0.0, 1.0]), -1.0)):
        states = _flight(env, y0, jnp.tile(thrust, (steps, 1)))
        np.testing.assert_allclose(states[:, 2], 0.1 + sign * alpha * t**2 / 2, atol=1e-10)
        np.testing.assert_allclose(states[:, 5], sign * alpha * t, atol=1e-10)
    assert alpha * t[-1] ** 2 / 2 > 1.0  # more than a radian: not a small-angle check


def test_thrusts_are_bounded_to_zero_and_max_and_bad_parameters_raise():
    env = PlanarQuadrotor()
    np.testing.assert_allclose(env.action_space.to_control(jnp.array([-3.0, 9.0])), [0, 5])
    with pytest.raises(diffsim.DiffsimError, match="inertia must be positive"):
        PlanarQuadrotor(inertia=0.0)
    with pytest.raises(diffsim.DiffsimError, match="max_thrust must be positive"):
        PlanarQuadrotor(max_thrust=float("nan"))
