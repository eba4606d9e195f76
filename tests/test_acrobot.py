"""Acrobot against gymnasium's Acrobot-v1 (float64, step for step and whole episodes), its
energy against conservation, and bad input."""

import equinox as eqx
import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import diffsim
from diffsim.envs import Acrobot


@eqx.filter_jit
def _step(env, y, action):
    return diffsim.step(env, 0.0, y, env.action_space.from_action(action))


def _reference(seed):
    reference = gymnasium.make("Acrobot-v1").unwrapped
    reference.reset(seed=seed)
    return reference


@pytest.mark.usefixtures("x64")
def test_one_step_matches_gymnasium_from_random_states():
    """States all round the circle with speeds beyond the clips (wrapping and clipping
    exercised), all three torques: the next state to 1e-12, reward and termination
    exactly."""
    reference = _reference(0)
    env = Acrobot()
    rng = np.random.default_rng(0)
    high = np.array([np.pi, np.pi, 5 * np.pi, 10 * np.pi])
    terminated_seen = wrapped_seen = 0
    for _ in range(200):
        state = rng.uniform(-high, high)
        action = int(rng.integers(3))
        reference.state = state.copy()
        _, reward, terminated, _, _ = reference.step(action)
        y_next, cost, done = _step(env, jnp.asarray(state), action)
        np.testing.assert_allclose(y_next, reference.state, rtol=0, atol=1e-12)
        assert -float(cost) == reward
        assert bool(done) == terminated
        terminated_seen += terminated
        wrapped_seen += np.any(np.abs(state[:2] + 0.2 * state[2:]) > np.pi)
    assert 20 < terminated_seen < 180 and wrapped_seen > 20


def _table_controller(actions):
    """Plays ``actions[k]`` at step ``k`` (time ``0.2 k`` s) as one-hot logits."""
    table = jnp.asarray(actions)

    def controller(t, observation):
        return jax.nn.one_hot(table[jnp.round(t / 0.2).astype(int)], 3)

    return controller


@pytest.mark.usefixtures("x64")
def test_random_actions_episode_matches_gymnasium():
    """500 random actions from gym's own start state: the whole trajectory of the chaotic
    double pendulum to 1e-10 (measured: 3e-14), every reward."""
    reference = _reference(3)
    env = Acrobot()
    y0 = np.asarray(reference.state, np.float64)
    actions = np.random.default_rng(1).integers(3, size=env.episode_steps)
    trajectory = diffsim.rollout(env, _table_controller(actions), jnp.asarray(y0))
    states, rewards = [y0], []
    for action in actions:
        _, reward, terminated, _, _ = reference.step(int(action))
        states.append(reference.state.copy())
        rewards.append(reward)
        assert not terminated  # random torques do not swing it up from this start
    np.testing.assert_allclose(trajectory.states, np.stack(states), rtol=0, atol=1e-10)
    np.testing.assert_array_equal(-np.asarray(trajectory.costs), rewards)
    assert float(trajectory.episode_return) == -500.0


@pytest.mark.usefixtures("x64")
def test_swing_up_episodes_end_at_gymnasiums_step():
    """A feedback rule that swings up (torque along the elbow's speed) from five of gym's
    start states: the same states, episode lengths and returns, the states frozen after
    the tip crosses the line."""
    env = Acrobot()

    def rule(observation):
        return observation[5] > 0

    def controller(t, observation):
        return jnp.where(rule(observation), jnp.array([0.0, 0.0, 1.0]), jnp.array([1.0, 0, 0]))

    references = [_reference(seed) for seed in range(5)]
    y0s = np.stack([np.asarray(reference.state, np.float64) for reference in references])
    trajectories = jax.vmap(lambda y0: diffsim.rollout(env, controller, y0))(jnp.asarray(y0s))
    lengths = []
    for k, reference in enumerate(references):
        trajectory = jax.tree.map(lambda leaf, k=k: leaf[k], trajectories)
        states, episode_return = [y0s[k]], 0.0
        while True:
            action = 2 if reference.state[3] > 0 else 0
            _, reward, terminated, _, _ = reference.step(action)
            states.append(reference.state.copy())
            episode_return += reward
            if terminated:
                break
        length = len(states) - 1
        lengths.append(length)
        assert int(trajectory.length) == length and bool(trajectory.terminated)
        assert float(trajectory.episode_return) == episode_return == -(length - 1)
        np.testing.assert_allclose(trajectory.states[: length + 1], states, atol=1e-10)
        frozen = trajectory.states[length:]
        np.testing.assert_array_equal(frozen, jnp.broadcast_to(frozen[0], frozen.shape))
    assert max(lengths) < 200  # measured: 65 to 122 steps


@pytest.mark.usefixtures("x64")
def test_energy_is_conserved_without_torque():
    """The ODE (no clipping, no wrapping) at tight tolerance for 4 s from a swinging
    state: the energy of :meth:`Acrobot.energy` stays constant to 1e-8 J, while it
    changes by several joules under torque, at the rate ``tau theta2_dot``."""
    import diffrax

    solve = diffsim.ODESolve(
        stepsize_controller=diffrax.PIDController(rtol=1e-12, atol=1e-12), max_steps=4096
    )
    env = Acrobot(transition=solve, action="continuous")
    y0 = jnp.array([2.0, -1.0, 1.5, -3.0])

    @jax.jit
    def energies(y0):
        def body(y, _):
            y = env.transition(env, 0.0, y, jnp.zeros(1))
            return y, env.energy(y)

        y, energy = jax.lax.scan(body, y0, None, length=20)
        return y, energy

    y, energy = energies(y0)
    assert float(jnp.max(jnp.abs(energy - env.energy(y0)))) < 1e-8
    # power: dE/dt = tau * theta2_dot, by the chain rule through the vector field
    u = jnp.array([0.7])
    power = jax.grad(env.energy)(y) @ env.vector_field(0.0, y, u)
    np.testing.assert_allclose(power, 0.7 * y[3], rtol=1e-10)


def test_bad_input_raises():
    with pytest.raises(diffsim.DiffsimError, match="link_mass_1 must be positive"):
        Acrobot(link_mass_1=-1.0)
    with pytest.raises(diffsim.DiffsimError, match="action must be one of"):
        Acrobot(action="continous")
    with pytest.raises(diffsim.DiffsimError, match="GymRK4: zero-order hold of an Acrobot"):
        diffsim.envs.acrobot.GymRK4()(diffsim.envs.Pendulum(), 0.0, jnp.zeros(2), jnp.zeros(1))
