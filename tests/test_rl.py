"""The RL bridge: functional, gymnax and gymnasium views of one diffsim env."""

import gymnasium
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import diffsim
from diffsim import rl
from diffsim.envs import CartPole, Pendulum
from diffsim.envs.pendulum import GymEuler


def test_gymnasium_adapter_reproduces_gymnasium_pendulum():
    ours = rl.to_gymnasium(Pendulum(transition=GymEuler()))
    check_env(ours, skip_render_check=True)
    reference = gymnasium.make("Pendulum-v1")
    reference.reset(seed=0)
    start = np.array([2.0, -0.5])
    reference.unwrapped.state = start.copy()
    observation, _ = ours.reset(seed=0, options={"state": start})
    actions = np.random.default_rng(0).uniform(-2, 2, size=(200, 1)).astype(np.float32)
    for i, action in enumerate(actions):
        expected = reference.step(action)
        got = ours.step(action)
        np.testing.assert_allclose(got[0], expected[0], rtol=1e-4, atol=1e-4)
        assert got[1] == pytest.approx(expected[1], rel=1e-4, abs=1e-4)
        assert got[2:4] == (expected[2], expected[3]), i  # terminated, truncated (time limit)
    assert got[3] is True


def test_gymnax_adapter_steps_like_diffsim_and_auto_resets():
    env = Pendulum()
    gymnax_env = rl.to_gymnax(env)
    params = gymnax_env.default_params
    assert params.max_steps_in_episode == 200
    assert gymnax_env.action_space(params).shape == (1,)
    observation, state = gymnax_env.reset(jr.key(0), params)

    def body(carry, key):
        observation, state = carry
        action = jnp.sin(state.steps * 0.1)[None]
        y_expected, cost, _ = diffsim.step(env, state.steps * env.control_dt, state.y, action)
        observation, next_state, reward, done, info = gymnax_env.step(key, state, action, params)
        return (observation, next_state), (reward + cost, done, next_state.steps)

    _, (reward_error, done, steps) = jax.lax.scan(
        body, (observation, state), jr.split(jr.key(1), 250)
    )
    assert float(jnp.max(jnp.abs(reward_error))) < 1e-5
    assert np.flatnonzero(np.asarray(done)).tolist() == [199]
    assert int(steps[199]) == 0 and int(steps[249]) == 50


def test_batch_of_envs_as_gymnax_params():
    gymnax_env = rl.to_gymnax(Pendulum())
    params = jax.vmap(lambda g: gymnax_env.default_params.__class__(Pendulum(g=g), 200))(
        jnp.array([5.0, 10.0])
    )
    _, states = jax.vmap(gymnax_env.reset)(jr.split(jr.key(0), 2), params)
    step = jax.vmap(gymnax_env.step, in_axes=(0, 0, None, 0))
    _, next_states, *_ = step(jr.split(jr.key(1), 2), states, jnp.zeros(1), params)
    assert next_states.y.shape == (2, 2)


@pytest.mark.slow
def test_rejax_ppo_trains_on_a_diffsim_env():
    rejax = pytest.importorskip("rejax")
    algorithm = rejax.PPO.create(
        env=rl.to_gymnax(Pendulum(transition=GymEuler())),
        total_timesteps=4096,
        eval_freq=4096,
        num_envs=8,
        num_steps=64,
    )
    with jax.numpy_rank_promotion("allow"):  # rejax broadcasts implicitly
        trained, (lengths, returns) = jax.jit(algorithm.train)(jr.key(0))
    assert np.all(np.isfinite(np.asarray(returns)))


def test_rejax_policy_takes_rejax_own_action_without_exploration_noise():
    """Checked against rejax's ``act``: PPO with its noise scale driven to zero (so that
    ``act``'s sample is the mean) and non-trivial observation statistics; DQN greedy
    (``act``'s 0.5 % exploration does not fire for most keys, so compare on the majority)."""
    rejax = pytest.importorskip("rejax")
    keys = jr.split(jr.key(3), 64)
    with jax.numpy_rank_promotion("allow"):  # rejax broadcasts implicitly
        env = Pendulum()
        ppo = rejax.PPO.create(env=rl.to_gymnax(env), normalize_observations=True)
        state = ppo.init_state(jr.key(0))
        params = state.actor_ts.params
        params["params"]["action_log_std"] = jnp.full((1,), -30.0)
        rms = state.obs_rms_state.replace(
            mean=jnp.array([0.3, -0.2, 1.0]), var=jnp.array([0.5, 2.0, 9.0])
        )
        state = state.replace(actor_ts=state.actor_ts.replace(params=params), obs_rms_state=rms)
        observations = jax.vmap(lambda k: env.observe(env.initial_state(k)))(keys)
        expected = jax.vmap(ppo.make_act(state))(observations, keys)
    policy = rl.policy_from_rejax(ppo, state)
    got = jax.vmap(lambda o: policy(0.0, o))(observations)
    assert got.shape == (64, 1)
    np.testing.assert_allclose(got[:, 0], np.clip(expected, -2.0, 2.0), rtol=1e-5, atol=1e-5)

    with jax.numpy_rank_promotion("allow"):
        cartpole = CartPole()
        dqn = rejax.DQN.create(env=rl.to_gymnax(cartpole))
        state = dqn.init_state(jr.key(1))
        observations = jax.vmap(lambda k: cartpole.observe(cartpole.initial_state(k)))(keys)
        expected = jax.vmap(dqn.make_act(state))(observations, keys)
    scores = jax.vmap(lambda o: rl.policy_from_rejax(dqn, state)(0.0, o))(observations)
    assert scores.shape == (64, 2)
    assert np.mean(np.argmax(scores, axis=1) == np.asarray(expected)) > 0.95
    # and diffsim.evaluate runs it as a controller, hard discrete actions from the scores
    result = diffsim.evaluate(cartpole, rl.policy_from_rejax(dqn, state), episodes=4, seed=0)
    assert np.isfinite(result.mean)
