"""LQR, residual control and MPC: the Riccati solution against scipy, closed loops that
stabilise, bounds that hold, planners that beat simple baselines, bad inputs."""

import re

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest
import scipy.linalg

import diffsim
from diffsim.controllers import (
    LQR,
    MPC,
    Mirrored,
    Residual,
    Squashed,
    ValueIteration,
    lqr_gain,
    solve_dare,
)
from diffsim.envs.cartpole import CartPole, GymEuler
from diffsim.envs.pendulum import Pendulum

PENDULUM_Q = jnp.diag(jnp.array([1.0, 0.1]))  # the env's running cost, per step
PENDULUM_R = jnp.array([[0.001]])
BALANCE = Pendulum(start=(0.3, 0.3), episode_steps=60)


def test_squashed_is_the_mlp_policys_own_squash():
    """An unbounded MLPPolicy squashed into the pendulum's box gives exactly what the same
    network, built for the box, outputs; the box's bounds get no gradient."""
    env = Pendulum()
    unbounded = diffsim.MLPPolicy(3, diffsim.Box(-jnp.inf, jnp.inf), key=jr.key(3))
    bounded = diffsim.MLPPolicy.for_env(env, key=jr.key(3))
    observations = jr.normal(jr.key(4), (50, 3)) * jnp.array([[1.0, 1.0, 8.0]])
    squashed = jax.vmap(lambda o: Squashed(unbounded, env.action_space)(0.0, o))(observations)
    np.testing.assert_allclose(squashed, jax.vmap(lambda o: bounded(0.0, o))(observations))
    assert float(jnp.max(jnp.abs(squashed))) < 2.0
    gradient = eqx.filter_grad(lambda policy: policy(0.0, observations[0])[0])(
        Squashed(unbounded, env.action_space)
    )
    assert float(gradient.low[0]) == 0.0 and float(gradient.high[0]) == 0.0  # the env's bounds
    assert float(jnp.abs(gradient.policy.mlp.layers[-1].bias[0])) > 0.0


class _Offset(eqx.Module):
    """``f(o) = 10 + a * sin``: a large mirror-symmetric part and a small antisymmetric
    one, the shape of a dead policy."""

    a: jax.Array

    def __call__(self, t, observation):
        return 10.0 + self.a * observation[1:2]


def test_mirroring_before_the_squash_keeps_the_gradient_that_after_loses():
    """Mirrored of a squashed policy averages two saturated tanh: control and gradient
    vanish (2 (tanh(10.1) - tanh(9.9)) / 2 and its derivative, about 1e-8). Squashed of
    the mirrored policy squashes only the antisymmetric part: 2 tanh(0.1), gradient 2 (1 -
    tanh(0.1)^2)."""
    env, signs = Pendulum(), dict(observation_signs=(1, -1, -1), output_signs=(-1,))
    observation = jnp.array([0.0, 1.0, 0.0])  # horizontal, at rest: sin = 1

    def after(a):
        return Mirrored(Squashed(_Offset(a), env.action_space), **signs)(0.0, observation)[0]

    def before(a):
        return Squashed(Mirrored(_Offset(a), **signs), env.action_space)(0.0, observation)[0]

    a = jnp.array(0.1)
    np.testing.assert_allclose(before(a), 2 * np.tanh(0.1), rtol=1e-5)  # 10.1 - 9.9 in float32
    np.testing.assert_allclose(jax.grad(before)(a), 2 * (1 - np.tanh(0.1) ** 2), rtol=1e-5)
    assert abs(float(after(a))) < 1e-6 and abs(float(jax.grad(after)(a))) < 1e-6
    mirrored = observation * jnp.array([1.0, -1.0, -1.0])
    policy = Squashed(Mirrored(_Offset(a), **signs), env.action_space)
    np.testing.assert_allclose(policy(0.0, mirrored), -policy(0.0, observation), rtol=1e-6)


def _first(t, observation):
    """A one-output policy: the observation's first value."""
    return observation[:1]


@pytest.mark.parametrize(
    "observation_signs, output_signs, message",
    [
        (
            (),
            (-1,),
            "observation_signs must be a sequence of +1 and -1 (non-empty, not booleans), got ()",
        ),
        (
            (1, -1, -1),
            [],
            "output_signs must be a sequence of +1 and -1 (non-empty, not booleans), got []",
        ),
        ((True, -1, -1), (-1,), "got (True, -1, -1)"),
        ((1, -1, -1), np.array([True]), "output_signs must be a sequence"),
    ],
)
def test_mirrored_refuses_empty_and_boolean_signs(observation_signs, output_signs, message):
    with pytest.raises(diffsim.DiffsimError) as error:
        Mirrored(_first, observation_signs, output_signs)
    assert message in str(error.value)


@pytest.mark.parametrize(
    "observation_signs, output_signs, observation, message",
    [
        # a 1-output policy with 2 output signs would silently give 2 controls
        (
            (1, -1, -1),
            (-1, 1),
            jnp.ones(3),
            "the policy's output has shape (1,), but output_signs has shape (2,)",
        ),
        (
            (1, -1),
            (-1,),
            jnp.ones(3),
            "the observation has shape (3,), but observation_signs has shape (2,)",
        ),
    ],
)
def test_mirrored_refuses_shapes_other_than_its_signs(
    observation_signs, output_signs, observation, message
):
    policy = Mirrored(_first, observation_signs, output_signs)
    with pytest.raises(diffsim.DiffsimError) as error:
        policy(0.0, observation)
    assert f"Mirrored: {message}" in str(error.value)
    with pytest.raises(diffsim.DiffsimError):  # a static check: raised while tracing
        eqx.filter_jit(policy)(0.0, observation)


def test_squashed_refuses_an_output_of_another_shape_than_the_box():
    policy = Squashed(lambda t, o: jnp.zeros(3), Pendulum().action_space)
    with pytest.raises(diffsim.DiffsimError) as error:
        policy(0.0, jnp.ones(3))
    assert "Squashed: the policy's output has shape (3,), but the box's low has shape (1,)" in str(
        error.value
    )


@pytest.fixture(scope="module")
def pendulum_lqr():
    return LQR.from_env(Pendulum(), jnp.zeros(2), jnp.zeros(1), PENDULUM_Q, PENDULUM_R)


@pytest.mark.parametrize("n, m, seed", [(2, 1, 0), (4, 1, 1), (6, 2, 2), (8, 3, 3)])
def test_dare_matches_scipy(x64, n, m, seed):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n, n))  # typically unstable: spectral radius above 1
    B = rng.normal(size=(n, m))
    root = rng.normal(size=(n, n))
    Q = root @ root.T + 0.1 * np.eye(n)
    R = np.diag(rng.uniform(0.1, 2.0, m))
    expected = scipy.linalg.solve_discrete_are(A, B, Q, R)
    X = np.asarray(solve_dare(A, B, Q, R))
    np.testing.assert_allclose(X, expected, rtol=1e-9, atol=1e-9 * np.abs(expected).max())
    K = np.asarray(lqr_gain(A, B, X, R))
    assert np.max(np.abs(np.linalg.eigvals(A - B @ K))) < 1


def test_lqr_gain_is_scipy_gain_of_the_transition_linearisation(x64):
    env = Pendulum()
    lqr = LQR.from_env(env, jnp.zeros(2), jnp.zeros(1), PENDULUM_Q, PENDULUM_R)
    lin = diffsim.linearise(env, jnp.zeros(2), jnp.zeros(1))
    A, B = np.asarray(lin.A_discrete), np.asarray(lin.B_discrete)
    X = scipy.linalg.solve_discrete_are(A, B, np.asarray(PENDULUM_Q), np.asarray(PENDULUM_R))
    K = np.linalg.solve(np.asarray(PENDULUM_R) + B.T @ X @ B, B.T @ X @ A)
    assert lqr.gain.shape == (1, 2)
    np.testing.assert_allclose(np.asarray(lqr.gain), K, rtol=1e-9)
    # the pendulum observes (cos, sin, speed): sin theta stands for theta near upright
    np.testing.assert_allclose(np.asarray(lqr.observation_gain), [[0.0, K[0, 0], K[0, 1]]])


@pytest.mark.slow  # 8-27 s (compilations): in `make test-all`
def test_lqr_balances_the_pendulum(pendulum_lqr):
    env = Pendulum()
    lin = diffsim.linearise(env, jnp.zeros(2), jnp.zeros(1))
    closed = np.asarray(lin.A_discrete - lin.B_discrete @ pendulum_lqr.gain)
    radius = np.max(np.abs(np.linalg.eigvals(closed)))
    assert radius < 1
    starts = jnp.array([[0.3, 0.0], [-0.2, 0.5], [0.1, -1.0], [-0.35, 0.2]])
    trajectories = jax.vmap(lambda y: diffsim.rollout(env, pendulum_lqr, y, num_steps=100))(starts)
    final = np.asarray(trajectories.final_state)
    assert np.max(np.abs(final)) < 1e-3
    # the zero controller lets every start fall
    fallen = jax.vmap(lambda y: diffsim.rollout(env, lambda t, o: jnp.zeros(1), y, num_steps=100))(
        starts
    )
    assert np.all(np.max(np.abs(np.asarray(fallen.states[:, :, 0])), axis=1) > 1.0)


def test_lqr_balances_the_continuous_cartpole():
    env = CartPole(transition=GymEuler(), action="continuous")
    lqr = LQR.from_env(env, jnp.zeros(4), jnp.zeros(1), jnp.eye(4), 0.1 * jnp.eye(1))
    lin = diffsim.linearise(env, jnp.zeros(4), jnp.zeros(1))
    closed = np.asarray(lin.A_discrete - lin.B_discrete @ lqr.gain)
    assert np.max(np.abs(np.linalg.eigvals(closed))) < 1
    assert np.max(np.abs(np.linalg.eigvals(np.asarray(lin.A_discrete)))) > 1  # unstable
    y0 = jnp.array([0.1, -0.1, 0.05, 0.05])
    trajectory = diffsim.rollout(env, lqr, y0, num_steps=400)
    assert not bool(trajectory.terminated)
    assert np.max(np.abs(np.asarray(trajectory.final_state))) < 1e-2


class _HalfControlled(diffsim.AbstractEnv):
    """``dy0/dt = u``, ``dy1/dt = y1``: the second state cannot be influenced."""

    control_dt: float = 0.1
    episode_steps: int = 10
    transition: diffsim.AbstractTransition = diffsim.ODEStep()
    action_space = property(lambda self: diffsim.Box(-1.0, 1.0))

    def vector_field(self, t, y, u):
        return jnp.stack([u[0], y[1]])

    def initial_state(self, key):
        return jnp.zeros(2)

    def running_cost(self, t, y, u):
        return jnp.sum(y**2)


@pytest.mark.parametrize(
    "env, y_eq, u_eq, Q, R, message",
    [
        (Pendulum(), [0.5, 0.0], [0.0], PENDULUM_Q, PENDULUM_R, "not an equilibrium"),
        # outside the 2 N m bound: reported as such, before the equilibrium check
        (Pendulum(), [0.0, 0.0], [3.0], PENDULUM_Q, PENDULUM_R, "u_eq [3.] lies outside"),
        (Pendulum(), [0.0, 0.0], [5.0], PENDULUM_Q, PENDULUM_R, "u_eq [5.] lies outside"),
        (
            Pendulum(),
            [np.nan, 0.0],
            [0.0],
            PENDULUM_Q,
            PENDULUM_R,
            "y_eq contains NaN or inf: [nan",
        ),
        (
            Pendulum(),
            [0.0, 0.0],
            [np.nan],
            PENDULUM_Q,
            PENDULUM_R,
            "u_eq contains NaN or inf: [nan]",
        ),
        (
            Pendulum(),
            [0.0, 0.0],
            [np.inf],
            PENDULUM_Q,
            PENDULUM_R,
            "u_eq contains NaN or inf: [inf]",
        ),
        (_HalfControlled(), [0.0, 0.0], [0.0], jnp.eye(2), jnp.eye(1), "rank 1 < 2"),
        (Pendulum(), [0.0, 0.0], [0.0], jnp.eye(3), PENDULUM_R, "Q must have shape (2, 2)"),
        (Pendulum(), [0.0, 0.0], [0.0], -PENDULUM_Q, PENDULUM_R, "positive semidefinite"),
        (Pendulum(), [0.0, 0.0], [0.0], PENDULUM_Q, jnp.zeros((1, 1)), "positive definite"),
        (Pendulum(), [0.0, 0.0], [0.0], jnp.array([[1, 1], [0, 1.0]]), PENDULUM_R, "symmetric"),
        (Pendulum(), [0.0, 0.0], [0.0], PENDULUM_Q, jnp.ones(1), "R must have shape (1, 1)"),
        (Pendulum(), [0.0, 0.0], [0.0], jnp.zeros((2, 2)), PENDULUM_R, "does not stabilise"),
        (CartPole(), jnp.zeros(4), [0.0], jnp.eye(4), jnp.eye(1), "Box"),
    ],
)
def test_lqr_bad_inputs(env, y_eq, u_eq, Q, R, message):
    with pytest.raises(diffsim.DiffsimError, match=re.escape(message)):
        LQR.from_env(env, jnp.asarray(y_eq), jnp.asarray(u_eq), Q, R)


def test_lqr_refuses_an_observation_of_another_size(pendulum_lqr):
    message = "LQR: the observation has shape (2,), but the env's observation has shape (3,)"
    with pytest.raises(diffsim.DiffsimError, match=re.escape(message)):
        pendulum_lqr(0.0, jnp.zeros(2))  # the pendulum observes (cos, sin, speed)
    with pytest.raises(diffsim.DiffsimError, match=re.escape(message)):  # while tracing
        eqx.filter_jit(pendulum_lqr)(0.0, jnp.zeros(2))


def test_non_equilibrium_reports_the_residual():
    with pytest.raises(diffsim.DiffsimError) as error:
        LQR.from_env(Pendulum(), jnp.array([0.5, 0.0]), jnp.zeros(1), PENDULUM_Q, PENDULUM_R)
    # f(y, u) = (0, 15 sin 0.5) = (0, 7.19)
    assert "7.19" in str(error.value)


def test_residual_correction_never_exceeds_its_bound(pendulum_lqr):
    residual = Residual.for_env(Pendulum(), pendulum_lqr, 0.25, key=jr.key(0))
    # blow the network's weights up so that its raw output is huge
    last = residual.network.mlp.layers[-1].weight
    residual = eqx.tree_at(lambda r: r.network.mlp.layers[-1].weight, residual, 500.0 * last)
    observations = jr.normal(jr.key(1), (2000, 3)) * jnp.array([[1.0, 1.0, 8.0]])
    corrections = jax.vmap(lambda o: residual(0.0, o) - pendulum_lqr(0.0, o))(observations)
    raw = jax.vmap(lambda o: residual.network(0.0, o))(observations)
    assert float(jnp.max(jnp.abs(raw))) > 10  # the bound, not the network, keeps it small
    assert float(jnp.max(jnp.abs(corrections))) <= 0.25 + 1e-6
    assert float(jnp.max(jnp.abs(corrections))) > 0.2


def test_residual_refuses_outputs_and_bounds_of_other_shapes(pendulum_lqr):
    o = jnp.array([1.0, 0.0, 0.0])
    # a bound per control of another env: 3 controls out of a 1-control base
    with pytest.raises(diffsim.DiffsimError) as error:
        Residual(pendulum_lqr, pendulum_lqr, bound=jnp.ones(3))(0.0, o)
    assert "bound has shape (3,), but the base's output has shape (1,)" in str(error.value)
    wide = Residual(pendulum_lqr, lambda t, o: jnp.zeros(3), bound=1.0)
    with pytest.raises(diffsim.DiffsimError) as error:
        eqx.filter_jit(wide)(0.0, o)  # raised while tracing
    assert "the network's output has shape (3,), but the base's output has shape (1,)" in str(
        error.value
    )
    assert Residual(pendulum_lqr, pendulum_lqr, bound=jnp.array([0.5]))(0.0, o).shape == (1,)


@pytest.mark.slow  # 11 s: in `make test-all`
def test_residual_training_improves_on_a_mistuned_base_and_leaves_it_fixed():
    env = BALANCE
    # an LQR designed for the wrong gravity (6 m/s^2, not 10): stable but too soft
    sluggish = LQR.from_env(
        Pendulum(g=6.0), jnp.zeros(2), jnp.zeros(1), PENDULUM_Q, jnp.array([[1.0]])
    )
    residual = Residual.for_env(env, sluggish, 1.0, key=jr.key(0), width=16)
    before = diffsim.evaluate(env, sluggish, episodes=50, seed=0).mean
    _, trained, _ = diffsim.train(
        env,
        residual,
        diffsim.adam_cosine(1e-2, 60),
        key=jr.key(1),
        iterations=60,
        batch_size=16,
        window=30,
        progress=False,
    )
    after = diffsim.evaluate(env, trained, episodes=50, seed=0).mean
    assert np.array_equal(np.asarray(trained.base.gain), np.asarray(sluggish.gain))
    assert np.array_equal(
        np.asarray(trained.base.observation_gain), np.asarray(sluggish.observation_gain)
    )
    assert after > 0.7 * before, (before, after)  # returns are negative: 30 % less cost


@pytest.fixture(scope="module")
def short_mpc():
    return MPC(BALANCE, horizon=10, iterations=15, optimiser=optax.adam(0.1))


def test_mpc_balances_better_than_zero_control(short_mpc, pendulum_lqr):
    evaluation = diffsim.evaluate(BALANCE, short_mpc, episodes=8, seed=0)
    zero = diffsim.evaluate(BALANCE, lambda t, o: jnp.zeros(1), episodes=8, seed=0)
    lqr = diffsim.evaluate(BALANCE, pendulum_lqr, episodes=8, seed=0)
    assert evaluation.mean > zero.mean / 5, (evaluation.mean, zero.mean)
    # the LQR is optimal for the linearised cost; a 0.5 s horizon and 15 updates come within
    # 50 % of its cost (measured: 24 %)
    assert evaluation.mean > lqr.mean * 1.5, (evaluation.mean, lqr.mean)


@pytest.mark.slow
def test_mpc_rollout_is_the_receding_horizon_loop(short_mpc):
    """`diffsim.rollout` with MPC equals the loop written out by hand: at every step, plan
    from the exact state with the warm-started plan, apply the first control, shift."""
    y0 = diffsim.initial_states(BALANCE, 1, 0)[0]
    trajectory = diffsim.rollout(BALANCE, short_mpc, y0, num_steps=6)
    state, y, total = short_mpc.init(), y0, 0.0
    for k in range(6):
        t = k * BALANCE.control_dt
        plan, _ = short_mpc.optimise(state.plan, t, y)
        state = type(state)(plan=jnp.concatenate([plan[1:], plan[-1:]]))
        np.testing.assert_allclose(trajectory.controls[k], plan[0], rtol=1e-5, atol=1e-6)
        y, cost, _ = diffsim.step(BALANCE, t, y, plan[0])
        total += float(cost)
        np.testing.assert_allclose(trajectory.states[k + 1], y, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(float(trajectory.total_cost), total, rtol=1e-5)


def test_mpc_warm_start_needs_fewer_iterations(short_mpc):
    y = jnp.array([0.3, 0.2])
    u, state = short_mpc.step(short_mpc.init(), 0.0, y)
    y_next, _, _ = diffsim.step(BALANCE, 0.0, y, u)
    _, warm = short_mpc.optimise(state.plan, BALANCE.control_dt, y_next)
    _, cold = short_mpc.optimise(short_mpc.init().plan, BALANCE.control_dt, y_next)
    # the warm start begins near where the cold start ends after all its iterations
    assert float(warm[0]) < float(cold[0])
    assert float(warm[2]) <= float(cold[-1]) * 1.05, (warm, cold)


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(horizon=0, iterations=5), "horizon must be a positive integer, got 0"),
        (dict(horizon=-3, iterations=5), "horizon must be a positive integer, got -3"),
        (dict(horizon=5, iterations=0), "iterations must be a positive integer, got 0"),
        (dict(horizon=True, iterations=5), "horizon must be a positive integer, got True"),
    ],
)
def test_mpc_bad_settings(options, message):
    with pytest.raises(diffsim.DiffsimError, match=re.escape(message)):
        MPC(BALANCE, optimiser=optax.adam(0.1), **options)


def test_mpc_takes_numpy_integers():
    mpc = MPC(BALANCE, horizon=np.int64(5), iterations=np.int32(2), optimiser=optax.adam(0.1))
    assert (mpc.horizon, mpc.iterations) == (5, 2) and type(mpc.horizon) is int
    assert mpc.init().plan.shape == (5, 1)


def test_mpc_needs_continuous_controls():
    with pytest.raises(diffsim.DiffsimError, match="Box"):
        MPC(CartPole(), horizon=5, iterations=5, optimiser=optax.adam(0.1))


@pytest.mark.slow  # 8-19 s (compilations): in `make test-all`
def test_lqr_is_a_compare_method_with_the_running_cost_as_weights(tmp_path, capsys):
    """`diffsim compare pendulum --methods lqr`: the gain is the LQR of the pendulum's own
    cost (Q = diag(1, 0.1), R = 0.001, up to the Hessian's factor 2), the checkpoint
    re-evaluates through `diffsim eval` to the reported return, and discrete pushes are
    refused in one line before any work."""
    import json

    from diffsim import cli
    from diffsim._compare import compare

    results = compare(
        "pendulum",
        methods=["lqr"],
        seeds=1,
        episodes=20,
        eval_seed=1,
        out=tmp_path,
        log=lambda line: None,
    )
    (row,) = results["methods"]["lqr"]
    assert row["env_steps"] == 0 and row["seconds_per_step"] > 0
    env = Pendulum()
    reference = LQR.from_env(
        env, jnp.zeros(2), jnp.zeros(1), jnp.diag(jnp.array([1.0, 0.1])), jnp.array([[0.001]])
    )
    saved = diffsim.load_checkpoint(row["checkpoint"], (env, reference))[1]
    np.testing.assert_allclose(saved.gain, reference.gain, rtol=1e-4)
    assert (
        cli.main(
            ["eval", "pendulum", row["checkpoint"], "--episodes", "20", "--seed", "1", "--json"]
        )
        == 0
    )
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["mean"] == pytest.approx(row["mean_return"], rel=1e-6)
    assert cli.main(["compare", "cartpole", "--methods", "lqr", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "method 'lqr' needs continuous actions and an equilibrium" in err
    assert err.count("\n") == 1


@pytest.mark.slow  # 13 s: in `make test-all`
def test_mpc_is_a_compare_method_and_its_checkpoint_re_evaluates(tmp_path, capsys):
    """`diffsim compare pendulum --methods mpc`: the pendulum recipe's MPC settings, one
    evaluation for every seed (the same controller), a compute time per step far above a
    network's, and a checkpoint that `diffsim eval` re-evaluates to the reported return."""
    import json

    from diffsim import cli
    from diffsim._compare import compare

    results = compare(
        "pendulum",
        methods=["mpc"],
        seeds=2,
        episodes=4,
        eval_seed=1,
        out=tmp_path,
        log=lambda line: None,
    )
    first, second = results["methods"]["mpc"]
    assert first["mean_return"] == second["mean_return"] and first["env_steps"] == 0
    recipe = diffsim.load_recipe("pendulum")
    mpc = MPC(Pendulum(), **recipe.method_options["mpc"])
    direct = diffsim.evaluate(Pendulum(), mpc, episodes=4, seed=1)
    assert first["mean_return"] == pytest.approx(direct.mean, rel=1e-5)
    assert (
        cli.main(
            ["eval", "pendulum", second["checkpoint"], "--episodes", "4", "--seed", "1", "--json"]
        )
        == 0
    )
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["mean"] == pytest.approx(second["mean_return"], rel=1e-5)
    # an MPC step is `iterations` gradients of a `horizon`-step rollout
    assert first["seconds_per_step"] > 20 * diffsim.seconds_per_step(
        Pendulum(), lambda t, o: jnp.zeros(1)
    )
    assert "compute per control step" in (tmp_path / "table.md").read_text()
    assert cli.main(["compare", "cartpole", "--methods", "mpc", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "method 'mpc' needs continuous actions, which cartpole (CartPole, Discrete" in err
    assert err.count("\n") == 1


# ------------------------------------------------------------------------------------------
# The optimum by value iteration


class DoubleIntegrator(diffsim.AbstractEnv):
    """A 1 kg cart pushed by a force in [-10, 10] N: state (x m, v m/s), quadratic cost, a
    3 s episode: finite-horizon LQR is its exact optimum."""

    control_dt: float = eqx.field(static=True, default=0.1)
    episode_steps: int = eqx.field(static=True, default=30)

    @property
    def action_space(self):
        return diffsim.Box(-10.0, 10.0)

    def vector_field(self, t, y, u):
        return jnp.stack([y[1], u[0]])

    def initial_state(self, key):
        return jr.uniform(key, (2,), minval=-1.0, maxval=1.0)

    def running_cost(self, t, y, u):
        return y[0] ** 2 + 0.1 * y[1] ** 2 + 0.01 * u[0] ** 2


def riccati_cost_to_go(env, steps):
    """``P`` of the optimal cost ``y^T P y`` over ``steps`` steps (terminal cost 0), by the
    backward Riccati recursion on the exact zero-order-hold discretisation."""
    A, B = (
        np.asarray(M, np.float64)
        for M in jax.jacobian(lambda y, u: env.transition(env, 0.0, y, u), argnums=(0, 1))(
            jnp.zeros(2), jnp.zeros(1)
        )
    )
    Q, R = np.diag([1.0, 0.1]), np.array([[0.01]])
    P = np.zeros((2, 2))
    for _ in range(steps):
        gain = np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)
        P = Q + A.T @ P @ (A - B @ gain)
    return P


@pytest.fixture(scope="module")
def integrator_optimum():
    env = DoubleIntegrator()
    bounds = {"y[0]": (-2.0, 2.0), "y[1]": (-4.0, 4.0)}
    return env, ValueIteration.solve(env, bounds, grid=(121, 121), actions=81)


def test_value_iteration_recovers_the_riccati_optimum(integrator_optimum):
    env, optimum = integrator_optimum
    P = riccati_cost_to_go(env, env.episode_steps)
    # bilinear interpolation of a convex cost lies above it: measured 6.054 against 6.023
    # at (1, 0), converging as the grid is refined (6.033 on 241 x 241, 6.025 on 481 x 481)
    for y in ([1.0, 0.0], [-0.5, 1.0], [0.3, -0.8]):
        exact = float(np.asarray(y) @ P @ np.asarray(y))
        approximate = float(optimum.cost_to_go(jnp.array(y)))
        assert exact <= approximate + 1e-3 and approximate <= 1.01 * exact + 0.05, (y, exact)
    # in closed loop: within 0.5 % of the time-varying LQR, the true optimum, per episode
    result = diffsim.evaluate(env, optimum, episodes=20, seed=0)
    lqr = LQR.from_env(
        env, jnp.zeros(2), jnp.zeros(1), jnp.diag(jnp.array([1.0, 0.1])), jnp.array([[0.01]])
    )
    stationary = diffsim.evaluate(env, lqr, episodes=20, seed=0)
    # the stationary LQR is near-optimal over 3 s; the grid's optimum is no worse than 0.5 %
    assert result.mean >= stationary.mean * 1.005


def test_the_optimum_converges_as_the_grid_is_refined():
    # pendulum swing-up, 100 episodes from seed 0: measured -137.3 (101 x 101 nodes, 41
    # controls), -136.2 (201), -135.5 (401), -135.2 (801 x 801, 81 controls) on 1000
    env = Pendulum()
    bounds = {"theta_dot": (-8.0, 8.0)}
    returns = [
        diffsim.evaluate(
            env, ValueIteration.solve(env, bounds, grid=(n, n), actions=21), episodes=100, seed=0
        ).mean
        for n in (51, 101)
    ]
    assert abs(returns[1] - returns[0]) < 4.0, returns
    assert returns[1] > -142.0, returns  # better than the DP recipe's median, -142.3 (5 seeds)


def test_value_iteration_bad_inputs():
    from helpers import Oscillator

    with pytest.raises(diffsim.DiffsimError, match=r"pass bounds=\{'theta_dot': \(low, high\)\}"):
        ValueIteration.solve(Pendulum())
    with pytest.raises(diffsim.DiffsimError, match="bounds name \\['speed'\\]"):
        ValueIteration.solve(Pendulum(), {"speed": (-8, 8)})
    with pytest.raises(diffsim.DiffsimError, match="one bounded continuous control"):
        ValueIteration.solve(CartPole(), {})
    with pytest.raises(diffsim.DiffsimError, match="one bounded continuous control"):
        ValueIteration.solve(Pendulum(clip_torque=False), {"theta_dot": (-8, 8)})
    with pytest.raises(diffsim.DiffsimError, match="grid must be two integers of at least 3"):
        ValueIteration.solve(Pendulum(), {"theta_dot": (-8, 8)}, grid=(2, 50))
    with pytest.raises(diffsim.DiffsimError, match="must be finite, low < high"):
        ValueIteration.solve(Oscillator(), {"y[0]": (1.0, -1.0), "y[1]": (-1, 1)})


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(grid=(True, 11)), "grid must be two integers of at least 3, got (True, 11)"),
        (dict(actions=True), "actions must be an integer of at least 2, got True"),
    ],
)
def test_value_iteration_refuses_booleans_as_sizes(options, message):
    with pytest.raises(diffsim.DiffsimError) as error:
        ValueIteration.unsolved(Pendulum(), {"theta_dot": (-8, 8)}, **options)
    assert message in str(error.value)


def test_value_iteration_takes_numpy_integers():
    grid = np.array([11, 7])  # NumPy integers, as numbers.Integral
    controller = ValueIteration.unsolved(
        Pendulum(), {"theta_dot": (np.float64(-8.0), 8)}, grid=grid, actions=np.int64(3)
    )
    assert controller.value.shape == (11, 7) and controller.actions.shape == (3,)
    np.testing.assert_allclose(controller.high, [np.pi, 8.0])


def test_optimal_is_a_compare_method_with_every_gap_on_the_table(tmp_path, capsys):
    import json

    from diffsim import cli
    from diffsim._compare import compare

    results = compare(
        "pendulum",
        methods=["lqr", "optimal"],
        seeds=1,
        episodes=20,
        quick=True,
        out=tmp_path,
        log=lambda line: None,
    )
    (row,) = results["methods"]["optimal"]
    (lqr,) = results["methods"]["lqr"]
    assert row["mean_return"] > lqr["mean_return"] + 100  # LQR cannot swing up
    table = (tmp_path / "table.md").read_text()
    assert "gap to the optimum (mean)" in table and "median over episodes" in table
    gap = f"{row['mean_return'] - lqr['mean_return']:.1f}"
    assert f"| {gap} |" in table
    assert cli.main(["eval", "pendulum", row["checkpoint"], "--episodes", "20", "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["mean"] == pytest.approx(row["mean_return"], rel=1e-5)
    refused = ["compare", "cartpole", "--methods", "optimal", "--out", str(tmp_path / "x")]
    assert cli.main(refused) == 2
    assert "a 2-dimensional state and one bounded continuous control" in capsys.readouterr().err
