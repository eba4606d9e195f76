"""Controllers with memory (`diffsim.AbstractStatefulController`): rollouts carry their
state exactly as a hand-written loop does, gradients flow through it, every episode of an
evaluation starts from `init()`, and the places that cannot carry it say so."""

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import optax
import pytest

import diffsim
from diffsim.envs import Pendulum

ENV = Pendulum(start=(0.6, 0.5), episode_steps=40)


class PI(diffsim.AbstractStatefulController):
    """Proportional-integral control of the angle with speed damping; the state is the
    integral of the angle error (rad s)."""

    kp: jnp.ndarray
    ki: jnp.ndarray
    kd: jnp.ndarray

    def init(self):
        return jnp.zeros((), self.kp.dtype)

    def step(self, state, t, x):
        error = -jnp.arctan2(x[1], x[0])
        state = state + ENV.control_dt * error
        return jnp.stack([self.kp * error + self.ki * state - self.kd * x[2]]), state


class StateFeedback(diffsim.AbstractStatefulController):
    """Sees the state, not the observation; counts its steps."""

    full_state = True

    def init(self):
        return jnp.zeros((), jnp.int32)

    def step(self, state, t, x):
        return -3.0 * x[:1] - 0.5 * x[1:], state + 1


def _pi(dtype=jnp.float32):
    return PI(*(jnp.asarray(v, dtype) for v in (8.0, 4.0, 1.0)))


def _by_hand(env, controller, y0, steps):
    """The closed loop written out: step the controller, then the env."""
    state, y, total, controls = controller.init(), y0, 0.0, []
    for k in range(steps):
        t = k * env.control_dt
        x = y if controller.full_state else env.observe(y)
        output, state = controller.step(state, t, x)
        u = env.action_space.to_control(output)
        controls.append(u)
        y, cost, _ = diffsim.step(env, t, y, u)
        total += float(cost)
    return y, total, jnp.stack(controls), state


@pytest.mark.parametrize("controller", [_pi(), StateFeedback()], ids=["observation", "state"])
def test_rollout_carries_the_state_as_a_hand_written_loop(controller):
    y0 = diffsim.initial_states(ENV, 1, 3)[0]
    trajectory = diffsim.rollout(ENV, controller, y0, num_steps=12)
    y, total, controls, _ = _by_hand(ENV, controller, y0, 12)
    np.testing.assert_allclose(trajectory.controls, controls, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(trajectory.final_state, y, rtol=1e-5, atol=1e-6)
    assert float(trajectory.total_cost) == pytest.approx(total, rel=1e-5)


def test_every_evaluation_episode_starts_from_init():
    """The integral term makes the state matter: evaluating 5 episodes together gives
    each the return of its own rollout from a fresh state."""
    evaluation = diffsim.evaluate(ENV, _pi(), episodes=5, seed=2)
    starts = diffsim.initial_states(ENV, 5, 2)
    alone = [float(diffsim.rollout(ENV, _pi(), y).episode_return) for y in starts]
    np.testing.assert_allclose(evaluation.returns, alone, rtol=1e-5)
    # and without its memory (ki = 0) the returns differ: the state is used
    forgetful = eqx.tree_at(lambda c: c.ki, _pi(), jnp.zeros(()))
    assert not np.allclose(diffsim.evaluate(ENV, forgetful, episodes=5, seed=2).returns, alone)


@pytest.mark.usefixtures("x64")
def test_gradient_through_the_carried_state_matches_finite_differences():
    y0 = jnp.array([0.2, 0.1])  # unsaturated: |u| < 2 N m throughout
    controller = _pi(jnp.float64)

    @eqx.filter_jit
    def cost(ki):
        pi = eqx.tree_at(lambda c: c.ki, controller, ki)
        return diffsim.rollout(ENV, pi, y0, num_steps=30).total_cost

    grad = eqx.filter_grad(cost)(controller.ki)
    eps = 1e-6
    fd = (cost(controller.ki + eps) - cost(controller.ki - eps)) / (2 * eps)
    assert float(grad) == pytest.approx(float(fd), rel=1e-6)
    assert abs(float(grad)) > 1e-3  # the memory changes the cost


def test_trainer_trains_it_on_whole_episodes_and_refuses_windows():
    trainer = diffsim.Trainer(optax.adam(0.1), batch_size=4)
    state = trainer.init(ENV, _pi(), jr.key(0))
    _, metrics = trainer.step(state)
    assert np.isfinite(float(metrics["grad_norm"])) and float(metrics["grad_norm"]) > 0
    windowed = diffsim.Trainer(optax.adam(0.1), batch_size=4, window=10, carry_state=True)
    with pytest.raises(diffsim.DiffsimError, match="trains on whole episodes only"):
        windowed.init(ENV, _pi(), jr.key(0))


def test_what_cannot_carry_the_state_says_so():
    y0 = jnp.array([0.3, 0.0])
    with pytest.raises(diffsim.DiffsimError, match="mode='feedback'.*use mode='zoh'"):
        diffsim.rollout(ENV, _pi(), y0, mode="feedback")
    with pytest.raises(diffsim.DiffsimError, match="PI is a stateful controller"):
        diffsim.control(ENV, _pi(), 0.0, y0)

