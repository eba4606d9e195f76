"""CartPole against gymnasium's CartPole-v1, the discrete-action estimators, and a short
training run."""

import dataclasses

import equinox as eqx
import gymnasium
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import diffsim
from diffsim.envs import CartPole, Pendulum, cartpole
from diffsim.envs.cartpole import GymEuler

GYM_ENV = CartPole(transition=GymEuler())


@eqx.filter_jit
def _gym_step(env, y, action):
    return diffsim.step(env, 0.0, y, env.action_space.from_action(action))


def _gym_reference():
    reference = gymnasium.make("CartPole-v1").unwrapped
    reference.reset(seed=0)
    return reference


@pytest.mark.usefixtures("x64")
def test_gym_discretisation_matches_gymnasium_step_for_step():
    """Random states inside and beyond the failure box, both actions: the next state to
    1e-12, the reward and the termination flag exactly."""
    reference = _gym_reference()
    env = CartPole(transition=GymEuler())  # built under float64, like its parameters
    rng = np.random.default_rng(0)
    terminated_seen = 0
    for _ in range(300):
        state = rng.uniform([-2.6, -3.0, -0.25, -3.0], [2.6, 3.0, 0.25, 3.0])
        action = int(rng.integers(2))
        reference.state = state.copy()
        reference.steps_beyond_terminated = None
        observation, reward, terminated, truncated, _ = reference.step(action)
        y_next, cost, done = _gym_step(env, jnp.asarray(state), action)
        np.testing.assert_allclose(y_next, reference.state, rtol=0, atol=1e-12)
        np.testing.assert_allclose(y_next, observation, rtol=1e-6, atol=1e-6)
        assert -float(cost) == reward
        assert bool(done) == terminated and not truncated
        terminated_seen += terminated
    assert 30 < terminated_seen < 270  # both outcomes are exercised


@pytest.mark.usefixtures("x64")
def test_gym_episode_matches_gymnasium_rollout():
    """A whole episode under a fixed feedback rule: same states until the pole falls, same
    length, and the states after termination stay frozen."""
    reference = _gym_reference()
    y0 = np.array([0.03, -0.02, 0.04, 0.01])
    reference.state = y0.copy()
    env = CartPole(transition=GymEuler())
    gains = np.array([0.0, 0.0, 0.0, 1.0])  # pushes towards the pole's swing: falls eventually

    def controller(t, observation):
        push_right = observation @ jnp.asarray(gains) > 0
        return jnp.where(push_right, jnp.array([-1.0, 1.0]), jnp.array([1.0, -1.0]))

    trajectory = diffsim.rollout(env, controller, jnp.asarray(y0))
    states, length = [y0], 0
    for _ in range(env.episode_steps):
        action = int(states[-1] @ gains > 0)
        _, reward, terminated, _, _ = reference.step(action)
        states.append(reference.state.copy())
        length += int(reward)
        if terminated:
            break
    assert 100 < length < env.episode_steps  # it falls, but not at once
    assert int(trajectory.length) == length
    assert float(trajectory.episode_return) == length
    assert bool(trajectory.terminated)
    np.testing.assert_allclose(trajectory.states[: length + 1], np.stack(states), atol=1e-12)
    frozen = trajectory.states[length + 1 :]
    np.testing.assert_array_equal(frozen, np.broadcast_to(trajectory.states[length], frozen.shape))


def test_ode_and_gym_discretisations_agree_over_one_step():
    y = jnp.array([0.3, -0.5, 0.1, 0.8])
    u = jnp.array([10.0])
    y_ode, *_ = diffsim.step(CartPole(), 0.0, y, u)
    y_gym, *_ = diffsim.step(GYM_ENV, 0.0, y, u)
    # Euler's local error is O(dt^2 * acceleration) ~ 0.02^2 * 15 / 2
    np.testing.assert_allclose(y_ode, y_gym, atol=5e-3)
    assert float(jnp.max(jnp.abs(y_ode - y_gym))) > 1e-4  # they are different schemes


def test_action_spaces_and_observations():
    assert isinstance(GYM_ENV.action_space, diffsim.Discrete)
    np.testing.assert_allclose(GYM_ENV.action_space.values, [[-10.0], [10.0]])
    continuous = CartPole(action="continuous")
    assert isinstance(continuous.action_space, diffsim.Box)
    np.testing.assert_allclose(continuous.action_space.to_control(jnp.array([25.0])), [10.0])
    swingup = CartPole(task="swingup")
    y0 = swingup.initial_state(jr.key(1))
    assert abs(float(y0[2]) - np.pi) <= 0.05
    assert swingup.observation_size == 5 and GYM_ENV.observation_size == 4
    # swing-up ends only off the track; it scores only upright steps
    assert not bool(swingup.termination(jnp.array([0.0, 0.0, 1.0, 0.0])))
    assert bool(swingup.termination(jnp.array([2.5, 0.0, 0.0, 0.0])))
    assert float(swingup.running_cost(0.0, jnp.array([0.0, 0.0, 2 * np.pi + 0.1, 0.0]), None)) == -1
    assert float(swingup.running_cost(0.0, jnp.array([0.0, 0.0, 0.3, 0.0]), None)) == 0


def test_bad_parameters_raise():
    with pytest.raises(diffsim.DiffsimError, match="pole_mass"):
        CartPole(pole_mass=-0.1)
    with pytest.raises(diffsim.DiffsimError, match="half_length"):
        CartPole(half_length=float("nan"))
    with pytest.raises(diffsim.DiffsimError, match="task"):
        CartPole(task="fly")
    with pytest.raises(diffsim.DiffsimError, match="zero-order hold of a CartPole, not Pendulum"):
        diffsim.step(Pendulum(transition=GymEuler()), 0.0, jnp.zeros(2), jnp.zeros(1))


def test_draw_returns_track_cart_and_pole():
    track, cart, pole = GYM_ENV.draw(jnp.array([1.0, 0.0, 0.2, 0.0]))
    assert track.shape == (2, 2) and cart.shape == (5, 2) and pole.shape == (2, 2)
    np.testing.assert_allclose(pole[1] - pole[0], [np.sin(0.2), np.cos(0.2)], atol=1e-6)
    np.testing.assert_allclose(cart[:, 0].mean(), 1.0, atol=0.1)


# --- estimators -------------------------------------------------------------------------


def test_straight_through_is_hard_forward_and_identity_backward():
    estimator = diffsim.StraightThrough()
    for logits in (jnp.array([0.3, -1.2, 0.7]), jnp.array([-2.0, 5.0]), jnp.array([1e-3, 0.0])):
        weights = estimator(logits)
        np.testing.assert_array_equal(weights, jax.nn.one_hot(jnp.argmax(logits), logits.size))
        np.testing.assert_allclose(jax.jacobian(estimator)(logits), jnp.eye(logits.size))


def test_straight_through_control_is_the_posts_sign_estimator():
    """Through ``Discrete.to_control`` the forward value is the hard push ``F sign(l1 - l0)``
    and ``d u / d logits`` is ``values.T``, i.e. ``F`` times the identity gradient of sign."""
    space = GYM_ENV.action_space
    estimator = diffsim.StraightThrough()
    to_control = lambda logits: space.to_control(logits, estimator)
    for logits in (jnp.array([0.1, -0.4]), jnp.array([-0.2, 0.9])):
        u = to_control(logits)
        np.testing.assert_allclose(u, [10.0 * jnp.sign(logits[1] - logits[0])])
        np.testing.assert_allclose(u, space.to_control(logits))  # the hard evaluation choice
        np.testing.assert_allclose(jax.jacobian(to_control)(logits), [[-10.0, 10.0]])


def test_gumbel_softmax_samples_the_softmax_and_differentiates_the_relaxation():
    logits = jnp.array([0.4, -0.3, 1.1])
    hard = diffsim.GumbelSoftmax(temperature=0.5)
    soft = diffsim.GumbelSoftmax(temperature=0.5, hard=False)
    keys = jr.split(jr.key(0), 4000)
    samples = jax.vmap(lambda k: hard(logits, key=k))(keys)
    np.testing.assert_array_equal(samples.sum(axis=1), 1.0)
    assert set(np.unique(samples).tolist()) == {0.0, 1.0}
    np.testing.assert_allclose(samples.mean(axis=0), jax.nn.softmax(logits), atol=0.03)
    relaxed = jax.vmap(lambda k: soft(logits, key=k))(keys)
    assert float(relaxed.min()) > 0 and np.allclose(relaxed.sum(axis=1), 1.0, atol=1e-5)
    key = keys[0]
    np.testing.assert_allclose(
        jax.jacobian(lambda l: hard(l, key=key))(logits),
        jax.jacobian(lambda l: soft(l, key=key))(logits),
        rtol=1e-5,
        atol=1e-6,
    )
    with pytest.raises(diffsim.DiffsimError, match="key"):
        diffsim.rollout(GYM_ENV, lambda t, o: jnp.zeros(2), jnp.zeros(4), estimator=hard)


# --- training -----------------------------------------------------------------------------

QUICK_STEPS = 800
"""Training env steps of the quick recipe: 50 updates, 2 episodes x windows of 8 steps."""
SEEDS = 8
MEDIAN_BALANCED = 450
"""The median over 8 seeds of the quick run's mean steps balanced (200 episodes) must reach
this. Measured over 16 seeds trained together: 366 to 500, median 499; 3 of 16 below 450
(seeds 0-7: median 499.5, seeds 8-15: 498.5). One seed's outcome is not asserted: float
rounding on another CPU may move a seed from the top of that spread to its bottom."""


def test_short_training_balances_in_the_median_of_eight_seeds():
    from diffsim._methods import methods

    recipe = cartpole.recipe
    env = recipe.make_env()
    runs = methods()["dp"].run(recipe, list(range(SEEDS)), quick=True, log=lambda line: None)
    starts = [recipe.make_controller(env, jr.split(jr.key(seed))[0]) for seed in range(SEEDS)]
    untrained = [diffsim.evaluate(env, policy, episodes=200).mean for policy in starts]
    trained = [diffsim.evaluate(r.env, r.controller, episodes=200, seed=0).mean for r in runs]
    assert all(run.env_steps == QUICK_STEPS for run in runs)
    assert np.median(untrained) < 100, untrained
    assert np.median(trained) >= MEDIAN_BALANCED, trained
    # gradients reached the policy through every hard choice (a plain arg-max gives 0),
    # and evaluation used hard pushes of exactly +-10 N
    trajectory = diffsim.rollout(env, runs[0].controller, env.initial_state(jr.key(3)))
    np.testing.assert_array_equal(jnp.abs(trajectory.controls), 10.0)
    moved = jax.tree.leaves(eqx.filter(runs[0].controller, eqx.is_array))
    start = jax.tree.leaves(eqx.filter(starts[0], eqx.is_array))
    assert max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(moved, start, strict=True)) > 1e-3


def _swingup_trajectory(theta, x, terminated_at=None):
    """A hand-made whole swing-up episode with the given angles and cart positions at the
    501 states; after ``terminated_at`` the episode has ended and the state is frozen."""
    steps = 500
    theta, x = np.asarray(theta, np.float32), np.asarray(x, np.float32)
    alive = np.ones(steps, bool)
    if terminated_at is not None:
        theta[terminated_at + 1 :], x[terminated_at + 1 :] = theta[terminated_at], x[terminated_at]
        alive[terminated_at:] = False
        alive[terminated_at] = True
    states = np.stack([x, np.zeros_like(x), theta, np.zeros_like(x)], axis=-1)
    return diffsim.Trajectory(
        costs=jnp.zeros(steps),
        controls=jnp.zeros((steps, 1)),
        alive=jnp.asarray(alive),
        times=jnp.arange(steps + 1) * 0.02,
        states=jnp.asarray(states),
        terminated=jnp.asarray(terminated_at is not None),
        terminal_cost=jnp.zeros(()),
        end_time=jnp.asarray(0.02 * (steps if terminated_at is None else terminated_at + 1)),
    )


def test_balanced_second_half_on_hand_made_episodes():
    """Swung up by step 200, then wobbling by 10 degrees (and a full turn, 2 pi + 10
    degrees, still counts as upright) with the cart within 1 m: balanced. The same episode
    falling to 30 degrees at step 400, or leaving the track at step 350: not balanced."""
    env = cartpole.swingup_recipe.make_env()
    steps = np.arange(501)
    wobble = np.deg2rad(10.0) * np.sin(steps / 7.0)
    theta = np.where(steps < 200, np.pi * (1 - steps / 200), wobble)
    theta[300:320] += 2 * np.pi
    x = 1.0 * np.sin(steps / 30.0)
    balances = _swingup_trajectory(theta, x)
    falls = _swingup_trajectory(np.where(steps >= 400, np.deg2rad(30.0), theta), x)
    leaves = _swingup_trajectory(theta, np.where(steps >= 350, 2.41, x), terminated_at=350)
    assert bool(cartpole.balanced_second_half(env, balances))
    assert not bool(cartpole.balanced_second_half(env, falls))
    assert not bool(cartpole.balanced_second_half(env, leaves))
    batch = jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), balances, falls, leaves)
    np.testing.assert_array_equal(cartpole.balanced_second_half(env, batch), [True, False, False])


def test_balanced_second_half_starts_at_step_250_and_needs_whole_episodes():
    """Only states 250..500 count: 13 degrees at state 249 passes, at state 250 fails; the
    cart exactly at the track limit is on the track. A 499-step window raises."""
    env = cartpole.swingup_recipe.make_env()
    x = np.zeros(501)
    x[260] = 2.4
    for index, expected in ((249, True), (250, False), (500, False)):
        theta = np.zeros(501)
        theta[index] = np.deg2rad(13.0)
        result = cartpole.balanced_second_half(env, _swingup_trajectory(theta, x))
        assert bool(result) is expected, index
    start = env.initial_state(jr.key(0))
    hanging = diffsim.rollout(env, lambda t, o: jnp.zeros(1), start)
    assert not bool(cartpole.balanced_second_half(env, hanging))
    short = diffsim.rollout(env, lambda t, o: jnp.zeros(1), start, num_steps=499)
    with pytest.raises(diffsim.DiffsimError, match="whole episode of 500 steps"):
        cartpole.balanced_second_half(env, short)


def test_untrained_swingup_controller_hands_over_to_lqr_near_upright():
    """Before any training the swing-up policy's linear part (the LQR of the upright
    equilibrium) already balances a pole started 9 degrees off upright with the cart
    0.5 m off centre, and brings the cart back towards the centre; from hanging down it
    does not swing up (that is what training is for)."""
    env = cartpole.swingup_recipe.make_env()
    controller = cartpole.swingup_recipe.make_controller(env, jr.key(0))
    near = diffsim.rollout(env, controller, jnp.array([0.5, 0.0, 0.15, 0.0]))
    assert bool(cartpole.balanced_second_half(env, near))
    assert bool(jnp.all(jax.vmap(env.upright)(near.states)))
    assert abs(float(near.final_state[0])) < 0.05
    hanging = diffsim.rollout(env, controller, env.initial_state(jr.key(0)))
    assert not bool(cartpole.balanced_second_half(env, hanging))


def test_shaped_swingup_loss_charges_leaving_the_track_more_than_hanging_down():
    """The swing-up loss against its formula written out in numpy, and its ordering: a
    balanced episode costs less than one that balances, then drifts off the track at step
    350; hanging down costs 6 a step, and a window of frozen steps after leaving the track
    costs more than hanging down (without the extra charge, about 1 a step: far less);
    the gradient reaches the frozen failing state and pushes it back towards the centre."""
    env = cartpole.swingup_recipe.make_env()
    steps = np.arange(501)
    theta = np.where(steps < 200, np.pi * (1 - steps / 200), 0.0)
    x = np.where(steps >= 300, 2.41 * (steps - 300) / 50, 0.0)
    balances = _swingup_trajectory(theta, np.zeros(501))
    hangs = _swingup_trajectory(np.full(501, np.pi), np.zeros(501))
    leaves = _swingup_trajectory(theta, x, terminated_at=350)
    loss = cartpole.shaped_swingup_loss
    height = (1 - np.cos(leaves.states[1:, 2])) / 2
    centring = (leaves.states[1:, 0] / 2.4) ** 2
    ended = ~np.asarray(leaves.alive)
    expected = np.mean(6 * height + centring + 5 * ended * (height + centring))
    np.testing.assert_allclose(float(loss(env, leaves)), expected, rtol=1e-5)
    assert float(loss(env, hangs)) == pytest.approx(6.0)
    assert float(loss(env, balances)) < float(loss(env, leaves))
    windows = [  # the last 100-step windows: steps 400 to 500
        dataclasses.replace(
            t, **{k: getattr(t, k)[400:] for k in ("costs", "controls", "alive", "times", "states")}
        )
        for t in (hangs, leaves)
    ]
    hang_window, leave_window = (float(loss(env, w)) for w in windows)
    assert leave_window > hang_window
    assert float(loss(env, windows[1], off_track_weight=0.0)) < hang_window / 4
    gradient = jax.grad(lambda s: loss(env, eqx.tree_at(lambda t: t.states, leaves, s)))(
        leaves.states
    )
    assert float(gradient[400, 0]) > 0


def test_shaped_swingup_costs_pay_for_staying_up_and_charge_the_exit():
    """SHAC's swing-up step costs against their formula in numpy: minus the height times
    the centring plus the swing's energy term at every state reached, the exit charged
    once, at the step that left the track; the 25-step window that ends in the exit costs
    more than one hanging down (0); the energy term's gradient does not vanish at the
    hanging rest, and the charge's pushes the failing state back towards the centre."""
    env = cartpole.swingup_recipe.make_env()
    steps = np.arange(501)
    theta = np.where(steps < 200, np.pi * (1 - steps / 200), 0.0)
    x = np.where(steps >= 300, 2.41 * (steps - 300) / 50, 0.0)
    leaves = _swingup_trajectory(theta, x, terminated_at=350)
    costs = cartpole.shaped_swingup_costs(env, leaves)
    states = np.asarray(leaves.states[1:])
    height = (1 + np.cos(states[:, 2])) / 2
    centring = (states[:, 0] / 2.4) ** 2
    energy = height + 0.5 * states[:, 3] ** 2 / (3 * 9.8)  # the hand-made poles do not turn
    expected = -height * (1 - centring) + 0.5 * ((1 - np.sqrt(energy)) ** 2 - 1)
    expected[350] += 30 * (1 + centring[350] + 1 - height[350])
    np.testing.assert_allclose(costs, expected, rtol=1e-5, atol=1e-4)
    assert costs.shape == (500,) and float(costs[350]) > 59  # x beyond 2.4 m, upright
    hangs = _swingup_trajectory(np.full(501, np.pi), np.zeros(501))
    np.testing.assert_allclose(cartpole.shaped_swingup_costs(env, hangs), 0.0, atol=1e-3)
    window = np.where(leaves.alive, costs, 0.0)[326:351]
    assert float(window.sum()) > 0
    balances = _swingup_trajectory(theta, np.zeros(501))
    assert float(cartpole.shaped_swingup_costs(env, balances)[300]) == pytest.approx(-1.5)
    at_rest = hangs.states.at[1, 2].add(0.01)  # a hundredth of a radian off the hanging rest
    swing = jax.grad(
        lambda s: cartpole.shaped_swingup_costs(env, eqx.tree_at(lambda t: t.states, hangs, s))[0]
    )(at_rest)
    assert float(swing[1, 2]) == pytest.approx(-0.5, rel=0.02)  # height alone: -0.005
    gradient = jax.grad(
        lambda s: cartpole.shaped_swingup_costs(env, eqx.tree_at(lambda t: t.states, leaves, s))[
            350
        ]
    )(leaves.states)
    assert float(gradient[351, 0]) > 0


@pytest.mark.slow
def test_swingup_recipe_balances_nine_episodes_in_ten():
    """The whole ``cartpole-swingup`` recipe (about 40 s on 2 CPU cores), training seed 1
    (the weakest seed of the former recipe), balances through the second half in at least
    90 % of 200 evaluation episodes from seed 0 (measured: 0.97)."""
    recipe = cartpole.swingup_recipe
    env, controller, _ = recipe.run(seed=1, progress=False)
    starts = diffsim.initial_states(env, 200, recipe.eval_seed)
    trajectories = jax.vmap(lambda y: diffsim.rollout(env, controller, y))(starts)
    assert float(cartpole.balanced_second_half(env, trajectories).mean()) >= 0.9
