"""Property-based tests over every env's parameters, states and controls: valid draws give
finite rollouts and gradients, invalid draws a DiffsimError that names the problem."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import diffsim
from diffsim import MLPPolicy
from diffsim.envs import CartPole, Pendulum
from diffsim.envs.cartpole import GymEuler as CartPoleGymEuler
from diffsim.envs.pendulum import GymEuler as PendulumGymEuler

from helpers import Integrator

FAST = settings(max_examples=25, deadline=None)


def _between(low, high):
    return st.floats(low, high, allow_nan=False, allow_infinity=False)


@eqx.filter_jit
def _cost_and_gradients(env, controller, y0):
    """Total cost of a 20-step rollout and its gradient with respect to the controller and
    the env's parameters (one compilation per env type and transition)."""

    def cost(model):
        env, controller = model
        return diffsim.rollout(env, controller, y0, num_steps=20).total_cost

    return eqx.filter_value_and_grad(cost)((env, controller))


def _all_finite(tree):
    return all(
        bool(jnp.all(jnp.isfinite(leaf)))
        for leaf in jax.tree_util.tree_leaves(eqx.filter(tree, eqx.is_inexact_array))
    )


PENDULUM_POLICY = MLPPolicy.for_env(Pendulum(), width=16, depth=1, key=jr.key(0))
CARTPOLE_POLICY = MLPPolicy.for_env(CartPole(action="continuous"), width=16, depth=1, key=jr.key(0))


@FAST
@given(
    g=_between(0.5, 30.0),
    m=_between(0.05, 10.0),
    l=_between(0.1, 5.0),
    max_speed=_between(0.5, 30.0),
    max_torque=_between(0.05, 20.0),
    theta=_between(-20.0, 20.0),
    speed=_between(-30.0, 30.0),
    gym=st.booleans(),
)
def test_pendulum_valid_draws_give_finite_rollouts_and_gradients(
    g, m, l, max_speed, max_torque, theta, speed, gym
):
    transition = PendulumGymEuler() if gym else diffsim.ODEStep(substeps=4)
    env = Pendulum(g=g, m=m, l=l, max_speed=max_speed, max_torque=max_torque, transition=transition)
    cost, gradients = _cost_and_gradients(env, PENDULUM_POLICY, jnp.array([theta, speed]))
    assert np.isfinite(float(cost)) and float(cost) >= 0.0
    assert _all_finite(gradients)


@FAST
@given(
    g=_between(0.5, 30.0),
    cart_mass=_between(0.1, 10.0),
    pole_mass=_between(0.01, 5.0),
    half_length=_between(0.05, 3.0),
    force=_between(0.1, 50.0),
    state=st.tuples(*[_between(-2.0, 2.0)] * 4),
    gym=st.booleans(),
)
def test_cartpole_valid_draws_give_finite_rollouts_and_gradients(
    g, cart_mass, pole_mass, half_length, force, state, gym
):
    env = CartPole(
        g=g,
        cart_mass=cart_mass,
        pole_mass=pole_mass,
        half_length=half_length,
        force=force,
        action="continuous",
        transition=CartPoleGymEuler() if gym else diffsim.ODEStep(),
    )
    cost, gradients = _cost_and_gradients(env, CARTPOLE_POLICY, jnp.array(state))
    assert np.isfinite(float(cost)) and -20.0 <= float(cost) <= 0.0
    assert _all_finite(gradients)


BAD_NUMBERS = st.one_of(
    st.floats(max_value=0.0, allow_nan=False), st.sampled_from([math.nan, math.inf, -math.inf])
)


@FAST
@given(name=st.sampled_from(["g", "m", "l", "max_speed", "max_torque"]), value=BAD_NUMBERS)
def test_pendulum_non_physical_parameters_are_rejected(name, value):
    with pytest.raises(diffsim.DiffsimError, match=f"{name} must be positive and finite"):
        Pendulum(**{name: value})


@FAST
@given(
    name=st.sampled_from(
        ["g", "cart_mass", "pole_mass", "half_length", "force", "x_threshold", "theta_threshold"]
    ),
    value=BAD_NUMBERS,
)
def test_cartpole_non_physical_parameters_are_rejected(name, value):
    with pytest.raises(diffsim.DiffsimError, match=f"{name} must be positive and finite"):
        CartPole(**{name: value})


@FAST
@given(
    control_dt=BAD_NUMBERS,
    episode_steps=st.integers(max_value=0),
    which=st.sampled_from(["control_dt", "episode_steps"]),
)
def test_non_physical_timing_is_rejected(control_dt, episode_steps, which):
    value = control_dt if which == "control_dt" else episode_steps
    with pytest.raises(diffsim.DiffsimError, match=which):
        Pendulum(**{which: value})


@pytest.mark.parametrize(
    "settings_, says",
    [
        (dict(episode_steps=2.5), "episode_steps must be a positive integer, got 2.5"),
        (dict(episode_steps=True), "episode_steps must be a positive integer, got True"),
        (dict(control_dt="0.1"), r"control_dt \(s\) must be a positive, finite number"),
        (dict(control_dt=-0.05), r"control_dt \(s\) must be a positive, finite number, got -0.05"),
        (dict(transition="rk4"), "transition must be a diffsim.AbstractTransition"),
    ],
)
def test_user_envs_get_the_same_checks(settings_, says):
    with pytest.raises(diffsim.DiffsimError, match=says):
        Integrator(**settings_)


@FAST
@given(
    state=st.lists(_between(-5.0, 5.0), min_size=0, max_size=5).filter(lambda s: len(s) != 2),
    control=st.lists(_between(-5.0, 5.0), min_size=0, max_size=3).filter(lambda u: len(u) != 1),
)
def test_states_and_controls_of_the_wrong_size_are_rejected(state, control):
    env = Pendulum()
    with pytest.raises(diffsim.DiffsimError, match=r"state has shape \(\d+,\)"):
        diffsim.step(env, 0.0, jnp.asarray(state), jnp.zeros(1))
    with pytest.raises(diffsim.DiffsimError, match=r"control has shape \(\d+,\)"):
        diffsim.step(env, 0.0, jnp.zeros(2), jnp.asarray(control))


@FAST
@given(bad=st.sampled_from([math.nan, math.inf, -math.inf]), index=st.integers(0, 1))
def test_non_finite_initial_states_are_rejected(bad, index):
    y0 = [0.5, 0.5]
    y0[index] = bad
    with pytest.raises(diffsim.DiffsimError, match="initial state contains NaN or inf"):
        diffsim.rollout(Pendulum(), PENDULUM_POLICY, y0, num_steps=3)


def test_lists_and_integer_states_are_converted():
    env = Pendulum()
    by_list = diffsim.rollout(env, PENDULUM_POLICY, [1, 0], num_steps=3)
    by_array = diffsim.rollout(env, PENDULUM_POLICY, jnp.array([1.0, 0.0]), num_steps=3)
    np.testing.assert_allclose(by_list.states, by_array.states)
    y, _, _ = diffsim.step(env, 0, [1, 0], [1])
    assert y.dtype == jnp.float32


def test_controllers_with_the_wrong_number_of_outputs_are_rejected():
    three_logits = lambda t, observation: jnp.zeros(3)
    with pytest.raises(diffsim.DiffsimError, match=r"returned shape \(3,\).*shape \(2,\)"):
        diffsim.rollout(CartPole(), three_logits, jnp.zeros(4), num_steps=3)
    with pytest.raises(diffsim.DiffsimError, match="2 actions"):
        diffsim.evaluate(CartPole(), three_logits, episodes=2)


def test_a_diverging_simulation_is_an_error_not_a_number():
    unclipped = Pendulum(clip_torque=False, max_speed=1e30)
    huge = lambda t, observation: jnp.array([1e38])
    with pytest.raises(diffsim.DiffsimError, match="the simulation diverged"):
        diffsim.rollout(unclipped, huge, jnp.array([1e30, 0.0]), num_steps=5)


def test_parameters_of_the_wrong_shape_and_nan_states_in_step_are_rejected():
    with pytest.raises(diffsim.DiffsimError, match=r"g must have shape \(\), got \(3,\)"):
        Pendulum(g=jnp.array([9.0, 10.0, 11.0]))
    batch = eqx.filter_vmap(lambda g: Pendulum(g=g))(jnp.array([9.0, 10.0, 11.0]))
    assert batch.g.shape == (3,)  # a batch of envs is built with vmap, as documented
    with pytest.raises(diffsim.DiffsimError, match="state contains NaN or inf"):
        diffsim.step(Pendulum(), 0.0, jnp.array([jnp.nan, 0.0]), jnp.zeros(1))
    with pytest.raises(diffsim.DiffsimError, match="control contains NaN or inf"):
        diffsim.step(Pendulum(), 0.0, jnp.zeros(2), jnp.array([jnp.inf]))
