"""The pendulum against gymnasium's Pendulum-v1 and against analytic physics."""

import gymnasium
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import diffsim
from diffsim.envs import Pendulum
from diffsim.envs.pendulum import GymEuler, angle_normalize


@pytest.mark.usefixtures("x64")
def test_gym_discretisation_matches_gymnasium_step_for_step():
    reference = gymnasium.make("Pendulum-v1").unwrapped
    reference.reset(seed=0)
    env = Pendulum(transition=GymEuler())
    step = jax.jit(lambda y, a: diffsim.step(env, 0.0, y, env.action_space.from_action(a)))
    rng = np.random.default_rng(0)
    for _ in range(200):
        state = rng.uniform([-2 * np.pi, -8.0], [2 * np.pi, 8.0])
        action = rng.uniform(-3.0, 3.0, size=1)  # beyond the limit: both must clip
        reference.state = state.copy()
        observation, reward, *_ = reference.step(action)
        y_next, cost, terminated = step(jnp.asarray(state), jnp.asarray(action))
        np.testing.assert_allclose(y_next, reference.state, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(env.observe(y_next), observation, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(-cost, reward, rtol=1e-10, atol=1e-10)
        assert not terminated


def test_gym_episode_matches_gymnasium_rollout():
    """A whole 200-step episode under a fixed open-loop torque sequence, float32."""
    reference = gymnasium.make("Pendulum-v1").unwrapped
    reference.reset(seed=0)
    env = Pendulum(transition=GymEuler())
    torques = np.random.default_rng(1).uniform(-2, 2, size=(200, 1))
    y = np.array([2.5, 0.3])
    reference.state = y.copy()
    ref_return = sum(reference.step(u)[1] for u in torques)

    def controller(t, observation):
        return jnp.asarray(torques, jnp.float32)[jnp.round(t / env.control_dt).astype(int)]

    trajectory = diffsim.rollout(env, controller, jnp.asarray(y, jnp.float32))
    assert float(trajectory.episode_return) == pytest.approx(ref_return, rel=1e-3)


@pytest.mark.usefixtures("x64")
def test_ode_small_oscillation_period_matches_analytic():
    """Hanging down (theta = pi), small swings have angular frequency sqrt(3 g / (2 l))."""
    env = Pendulum(g=9.81, l=0.7)
    amplitude = 1e-3
    trajectory = diffsim.rollout(
        env, lambda t, o: jnp.zeros(1), jnp.array([jnp.pi + amplitude, 0.0]), num_steps=60
    )
    omega = np.sqrt(3 * 9.81 / (2 * 0.7))
    expected = jnp.pi + amplitude * np.cos(omega * np.asarray(trajectory.times))
    np.testing.assert_allclose(trajectory.states[:, 0], expected, atol=1e-7)


@pytest.mark.usefixtures("x64")
def test_ode_conserves_energy_without_torque():
    env = Pendulum()
    trajectory = diffsim.rollout(env, lambda t, o: jnp.zeros(1), jnp.array([2.0, 0.0]))
    theta, theta_dot = trajectory.states.T
    # rod about its end: I = m l^2 / 3, centre of mass at l / 2 above the pivot when upright
    energy = env.m * env.l**2 / 6 * theta_dot**2 + env.m * env.g * env.l / 2 * jnp.cos(theta)
    assert float(jnp.max(jnp.abs(energy - energy[0]))) < 1e-4 * float(jnp.abs(energy[0]))


def test_ode_and_gym_discretisations_agree_over_one_step():
    y = jnp.array([0.7, -1.2])
    u = jnp.array([1.3])
    y_ode, *_ = diffsim.step(Pendulum(), 0.0, y, u)
    y_gym, *_ = diffsim.step(Pendulum(transition=GymEuler()), 0.0, y, u)
    np.testing.assert_allclose(y_ode, y_gym, atol=0.02)


def test_cost_and_start_distribution_follow_pendulum_v1():
    env = Pendulum()
    assert float(env.running_cost(0.0, jnp.array([3 * jnp.pi / 2, 2.0]), jnp.array([2.0]))) == (
        pytest.approx((jnp.pi / 2) ** 2 + 0.1 * 4 + 0.001 * 4, rel=1e-6)
    )
    starts = jax.vmap(env.initial_state)(jr.split(jr.key(0), 4000))
    assert float(jnp.min(starts[:, 0])) >= -jnp.pi and float(jnp.max(starts[:, 0])) <= jnp.pi
    assert float(jnp.max(jnp.abs(starts[:, 1]))) <= 1.0
    assert float(jnp.std(starts[:, 0])) == pytest.approx(np.pi / np.sqrt(3), rel=0.05)
    assert float(angle_normalize(jnp.array(3 * jnp.pi))) == pytest.approx(-np.pi, abs=1e-5)


def test_unclipped_variant_applies_large_torques():
    clipped, unclipped = Pendulum(), Pendulum(clip_torque=False)
    u = jnp.array([10.0])
    assert float(clipped.action_space.to_control(u)[0]) == 2.0
    assert float(unclipped.action_space.to_control(u)[0]) == 10.0


@pytest.mark.parametrize(
    "kwargs", [dict(m=0.0), dict(l=-1.0), dict(g=float("nan")), dict(max_torque=0.0)]
)
def test_non_physical_parameters_are_rejected(kwargs):
    with pytest.raises(diffsim.DiffsimError, match="must be positive"):
        Pendulum(**kwargs)
