"""Plots and animations: what they draw is the data they were given, on the axes they say."""

import re

import jax.numpy as jnp
import jax.random as jr
import matplotlib.pyplot as plt
import numpy as np
import optax
import pytest

import diffsim
from diffsim.envs import CartPole, Pendulum
from diffsim.plotting import animate, plot_learning_curve, plot_trajectory

from helpers import pendulum_policy


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _curve(ax):
    (line,) = ax.get_lines()
    return np.asarray(line.get_xdata(), float), np.asarray(line.get_ydata(), float)


def test_a_training_history_is_drawn_against_env_steps():
    history = diffsim.History(
        iteration=[1, 2, 3],
        env_steps=[80, 160, 240],
        loss=[3.0, 2.0, 1.0],
        eval_iteration=[2, 3],
        eval_env_steps=[160, 240],
        eval_return=[-500.0, -300.0],
    )
    ax = plot_learning_curve(history)
    np.testing.assert_array_equal(_curve(ax), [[160, 240], [-500, -300]])
    (loss_ax,) = [other for other in ax.figure.axes if other is not ax]
    x, y = _curve(loss_ax)
    np.testing.assert_array_equal(x, [240])  # a 3-update mean: one point, at the last
    np.testing.assert_allclose(y, [2.0])
    assert ax.get_xlabel() == "training env steps"
    assert ax.get_title().startswith("240 env steps")


def test_a_fit_is_drawn_against_updates():
    _, history = diffsim.fit(
        lambda p, key: jnp.sum((p - 3.0) ** 2), jnp.zeros(2), optax.adam(0.1),
        key=jr.key(0), iterations=25, progress=False,
    )
    ax = plot_learning_curve(history)
    x, y = _curve(ax)  # the loss alone, on the main axis: a fit has no evaluation
    np.testing.assert_array_equal(x, history.iteration[19:])
    np.testing.assert_allclose(y, np.convolve(history.loss, np.ones(20) / 20, "valid"))
    assert ax.get_xlabel() == "updates" and ax.get_title().startswith("25 updates")


def test_a_trajectory_is_drawn_with_angles_wrapped():
    env = Pendulum()
    trajectory = diffsim.rollout(env, lambda t, o: jnp.array([2.0]), jnp.array([3.0, 0.0]))
    axes = plot_trajectory(env, trajectory)
    angle = np.asarray(axes[0].get_lines()[0].get_ydata(), float)
    wrapped = (np.asarray(trajectory.states[:, 0]) + np.pi) % (2 * np.pi) - np.pi
    shown = ~np.isnan(angle)
    assert not shown.all()  # the torque spins it past pi: the line breaks where it wraps
    np.testing.assert_allclose(angle[shown], wrapped[shown], atol=1e-6)
    np.testing.assert_allclose(axes[2].get_lines()[0].get_ydata(), trajectory.costs)


def test_an_animation_draws_every_kth_state():
    env = Pendulum()
    trajectory = diffsim.rollout(env, pendulum_policy(), jnp.array([np.pi, 0.0]))
    anim = animate(env, trajectory, every=50)
    assert anim._interval == pytest.approx(1000 * env.control_dt * 50)
    html = anim.to_jshtml()  # renders every frame: states 0, 50, ..., 200
    assert len(re.findall(r"frames\[\d+\] =", html)) == len(range(0, 201, 50))
    (line,) = [line for line in anim._fig.axes[0].get_lines()]
    (polyline,) = env.draw(trajectory.states[200])  # the last frame drawn
    np.testing.assert_allclose(line.get_xydata(), polyline, atol=1e-6)


def test_a_trajectory_of_another_env_is_refused():
    trajectory = diffsim.rollout(Pendulum(), lambda t, o: jnp.array([0.0]), jnp.zeros(2))
    for draw in (lambda: plot_trajectory(CartPole(), trajectory),
                 lambda: animate(CartPole(), trajectory)):
        with pytest.raises(diffsim.DiffsimError, match="have 2 components, CartPole's 4"):
            draw()
