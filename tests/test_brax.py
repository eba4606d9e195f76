"""The brax bridge: `diffsim.rl.to_brax` steps as gymnasium's Pendulum-v1 under brax's own
training wrappers, its gradient is the finite differences' (brax's APG needs it), and brax's
APG is a `diffsim compare` method whose checkpoints `diffsim eval` re-evaluates."""

import json
import sys

import equinox as eqx
import gymnasium
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import diffsim
from diffsim import cli, rl
from diffsim.envs import CartPole, Pendulum
from diffsim.envs.pendulum import GymEuler

pytest.importorskip("brax")


def _wrapped(env, episode_length):
    """``to_brax(env)`` under brax's training wrappers (vmap, time limit, auto-reset)."""
    from brax.envs.wrappers.training import wrap

    with jax.numpy_rank_promotion("allow"):  # brax broadcasts implicitly
        return wrap(rl.to_brax(env), episode_length=episode_length)


def test_steps_are_gymnasium_pendulum_steps_with_actions_scaled_to_the_torque_limit():
    """brax's action 0.25 is a torque of 0.5 N m (bounds +-2); 20 steps against
    gymnasium's Pendulum-v1 from the same state: the same states and rewards."""
    env = Pendulum(transition=GymEuler())
    brax_env = rl.to_brax(env)
    state = brax_env.reset(jr.key(3))
    gym = gymnasium.make("Pendulum-v1").unwrapped
    gym.reset(seed=0)
    gym.state = np.asarray(state.pipeline_state.y, np.float64)
    for action in np.linspace(-1.0, 1.0, 20):
        state = brax_env.step(state, jnp.array([action], jnp.float32))
        observation, reward, *_ = gym.step(np.array([2.0 * action]))
        np.testing.assert_allclose(state.obs, observation, rtol=1e-5, atol=1e-5)
        assert float(state.reward) == pytest.approx(reward, rel=1e-5, abs=1e-5)
        assert float(state.done) == 0.0
    assert (brax_env.observation_size, brax_env.action_size) == (3, 1)


def test_gradient_through_brax_wrappers_matches_finite_differences():
    """d(summed reward of 10 steps of 2 episodes) / d(constant action), through brax's
    VmapWrapper, EpisodeWrapper and AutoResetWrapper: the path brax's APG differentiates."""
    env = Pendulum()
    wrapped = _wrapped(env, env.episode_steps)
    start = wrapped.reset(jr.split(jr.PRNGKey(0), 2))  # brax: raw uint32 keys

    def total_reward(action):
        def body(state, _):
            state = wrapped.step(state, jnp.broadcast_to(action, (2, 1)))
            return state, state.reward

        with jax.numpy_rank_promotion("allow"):
            return jnp.sum(jax.lax.scan(body, start, length=10)[1])

    action, eps = jnp.array([0.3]), 1e-2
    gradient = float(jax.grad(total_reward)(action)[0])
    finite = float((total_reward(action + eps) - total_reward(action - eps))[()] / (2 * eps))
    assert gradient == pytest.approx(finite, rel=2e-2), (gradient, finite)
    assert abs(gradient) > 1.0  # the torque moves the pendulum: not just the direct cost


def test_brax_time_limit_truncates_and_auto_reset_restarts_the_episode():
    env = Pendulum()
    wrapped = _wrapped(env, 5)
    state = first = wrapped.reset(jr.split(jr.PRNGKey(1), 2))
    with jax.numpy_rank_promotion("allow"):
        for _ in range(5):
            state = wrapped.step(state, jnp.zeros((2, 1)))
    np.testing.assert_array_equal(state.done, [1.0, 1.0])
    np.testing.assert_array_equal(state.info["truncation"], [1.0, 1.0])
    np.testing.assert_array_equal(state.pipeline_state.y, first.pipeline_state.y)
    np.testing.assert_array_equal(state.pipeline_state.steps, [0, 0])


@pytest.mark.parametrize(
    "env, message",
    [
        (CartPole(), "to_brax needs continuous actions (a diffsim.Box); CartPole has Discrete"),
        (Pendulum(clip_torque=False), "bounds, but Pendulum's are not finite: low [-inf]"),
    ],
)
def test_envs_brax_cannot_drive_are_refused(env, message):
    with pytest.raises(diffsim.DiffsimError, match=None) as error:
        rl.to_brax(env)
    assert message in str(error.value)


def test_the_policy_takes_brax_own_deterministic_action_on_the_control_bounds():
    """BraxPolicy against brax's ``make_inference_fn(..., deterministic=True)`` with
    weights and normalisation statistics moved away from their initial values."""
    from brax.training.agents.apg import networks

    from diffsim._methods import methods
    from diffsim.rl._apg import _networks

    env = Pendulum()
    spec = {"hidden": [32, 32], "activation": "elu", "normalize_observations": True}
    template = methods()["apg"].template(None, env, spec)
    moved = jax.tree_util.tree_map(
        lambda x: 1.5 * x + 0.1 if eqx.is_inexact_array(x) else x,
        (template.normalizer, template.params),
    )
    policy = eqx.tree_at(lambda p: (p.normalizer, p.params), template, moved)
    act = networks.make_inference_fn(_networks(env, spec))(
        (policy.normalizer, policy.params), deterministic=True
    )
    observations = jax.vmap(env.observe)(diffsim.initial_states(env, 16, seed=0))
    with jax.numpy_rank_promotion("allow"):
        brax_actions = act(observations, jr.key(0))[0]
    ours = jax.vmap(lambda o: policy(0.0, o))(observations)
    np.testing.assert_allclose(ours, 2.0 * brax_actions, rtol=1e-5, atol=1e-6)
    assert float(jnp.std(ours)) > 0.01  # not a constant: the observations matter (0.03)


@pytest.mark.slow  # 8-27 s (compilations): in `make test-all`
def test_apg_compare_checkpoint_reevaluates_through_diffsim_eval(tmp_path, capsys):
    """A quick `diffsim compare pendulum --methods apg`: the learning curve's steps are
    brax's updates x episodes x unroll, and `diffsim eval` rebuilds the saved policy
    (weights and normalisation) to the reported return."""
    from diffsim._compare import compare

    recipe = diffsim.recipes()["pendulum"]
    config = recipe.method_options["apg"]
    results = compare(
        "pendulum",
        methods=["apg"],
        seeds=1,
        episodes=20,
        eval_seed=2,
        quick=True,
        out=tmp_path,
        log=lambda line: None,
    )
    (row,) = results["methods"]["apg"]
    per_update = config["settings"]["num_envs"] * config["settings"]["horizon_length"]
    assert row["env_steps"] == config["quick_updates"] * per_update
    assert (
        cli.main(
            ["eval", "pendulum", row["checkpoint"], "--episodes", "20", "--seed", "2", "--json"]
        )
        == 0
    )
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["mean"] == pytest.approx(row["mean_return"], rel=1e-6)


def test_missing_brax_extra_says_what_to_install(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "brax", None)  # `import brax` raises ImportError
    assert cli.main(["compare", "pendulum", "--methods", "apg", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "method 'apg' needs the brax extra: pip install" in err and err.count("\n") == 1
