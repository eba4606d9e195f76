"""Core rollout machinery: gradients, batching, compilation, modes, errors."""

import collections
import re
from collections.abc import Callable

import diffrax as dfx
import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

import diffsim
from diffsim import MLPPolicy
from diffsim.envs import CartPole, Pendulum, cartpole
from diffsim.envs.pendulum import GymEuler

from helpers import Integrator, Rising

HORIZON = 40


@eqx.filter_jit
def _cost(env, controller, y0):
    return diffsim.rollout(env, controller, y0, num_steps=HORIZON).total_cost


def _central_difference(f, x, eps):
    return (f(x + eps) - f(x - eps)) / (2 * eps)


@pytest.mark.usefixtures("x64")
def test_rollout_gradient_matches_finite_differences():
    env = Pendulum()
    controller = MLPPolicy.for_env(env, width=16, depth=1, key=jr.key(0))
    y0 = jnp.array([2.0, 0.5])
    grads = eqx.filter_grad(lambda c: _cost(env, c, y0))(controller)
    # random direction in parameter space
    params, static = eqx.partition(controller, eqx.is_inexact_array)
    leaves, treedef = jax.tree_util.tree_flatten(params)
    keys = jr.split(jr.key(1), len(leaves))
    direction = jax.tree_util.tree_unflatten(
        treedef, [jr.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves, strict=True)]
    )
    along = lambda s: _cost(
        env,
        eqx.combine(jax.tree_util.tree_map(lambda p, d: p + s * d, params, direction), static),
        y0,
    )
    directional = sum(
        jnp.vdot(g, d)
        for g, d in zip(
            jax.tree_util.tree_leaves(eqx.filter(grads, eqx.is_inexact_array)),
            jax.tree_util.tree_leaves(direction),
            strict=True,
        )
    )
    assert float(directional) == pytest.approx(
        float(_central_difference(along, 0.0, 1e-6)), rel=1e-5
    )
    # and with respect to the physics: d cost / d g and d cost / d y0
    d_env, d_y0 = eqx.filter_grad(lambda ey: _cost(ey[0], controller, ey[1]))((env, y0))
    fd_g = _central_difference(
        lambda g: _cost(eqx.tree_at(lambda e: e.g, env, g), controller, y0), env.g, 1e-6
    )
    assert float(d_env.g) == pytest.approx(float(fd_g), rel=1e-5)
    fd_theta = _central_difference(lambda th: _cost(env, controller, y0.at[0].set(th)), y0[0], 1e-6)
    assert float(d_y0[0]) == pytest.approx(float(fd_theta), rel=1e-5)


def test_vmap_over_initial_states_and_over_physical_parameters():
    env = Pendulum()
    controller = MLPPolicy.for_env(env, key=jr.key(0))
    states = jax.vmap(env.initial_state)(jr.split(jr.key(3), 5))
    batched = jax.vmap(lambda y: _cost(env, controller, y))(states)
    one_by_one = jnp.stack([_cost(env, controller, y) for y in states])
    np.testing.assert_allclose(batched, one_by_one, rtol=1e-5)

    gravities = jnp.array([1.0, 5.0, 10.0, 20.0])
    envs = eqx.filter_vmap(lambda g: Pendulum(g=g))(gravities)
    costs = eqx.filter_vmap(lambda e: _cost(e, controller, states[0]))(envs)
    expected = jnp.stack([_cost(Pendulum(g=g), controller, states[0]) for g in gravities])
    np.testing.assert_allclose(costs, expected, rtol=1e-5)
    assert len(set(np.round(np.asarray(costs), 3))) == 4


def test_jit_compiles_once_when_only_values_change():
    env = Pendulum()

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def cost(env, controller, y0):
        return diffsim.rollout(env, controller, y0, num_steps=10).total_cost

    for seed in range(3):
        controller = MLPPolicy.for_env(env, key=jr.key(seed))
        cost(Pendulum(g=9.0 + seed), controller, env.initial_state(jr.key(seed)))


def test_feedback_mode_equals_zoh_for_a_constant_controller():
    env = Pendulum()
    constant = lambda t, o: jnp.array([0.7])
    y0 = jnp.array([1.0, 0.0])
    zoh = diffsim.rollout(env, constant, y0, num_steps=20)
    feedback = diffsim.rollout(env, constant, y0, num_steps=20, mode="feedback")
    np.testing.assert_allclose(zoh.states, feedback.states, rtol=1e-5, atol=1e-6)


def test_feedback_mode_differs_from_zoh_for_a_state_feedback_controller():
    env = Pendulum()
    damping = lambda t, o: -0.5 * o[2:]
    y0 = jnp.array([1.0, 3.0])
    zoh = diffsim.rollout(env, damping, y0, num_steps=20)
    feedback = diffsim.rollout(env, damping, y0, num_steps=20, mode="feedback")
    gap = float(jnp.max(jnp.abs(zoh.states - feedback.states)))
    assert 1e-4 < gap < 0.2


@pytest.mark.usefixtures("x64")
def test_fixed_step_and_adaptive_transitions_agree():
    y0 = jnp.array([2.5, 0.0])
    swing = lambda t, o: jnp.array([1.0])
    fixed = diffsim.rollout(
        Pendulum(transition=diffsim.ODEStep(substeps=8)), swing, y0, num_steps=20
    )
    tight = dfx.PIDController(rtol=1e-10, atol=1e-10)
    adaptive = Pendulum(transition=diffsim.ODESolve(stepsize_controller=tight))
    np.testing.assert_allclose(
        fixed.states, diffsim.rollout(adaptive, swing, y0, num_steps=20).states, atol=1e-7
    )


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("solver", [dfx.Tsit5(), dfx.Dopri5(), dfx.Heun(), dfx.Bosh3()])
def test_unrolled_runge_kutta_equals_the_solvers_own_step(solver):
    env = Pendulum(transition=diffsim.ODEStep(solver, substeps=2))
    y, u, t = jnp.array([2.9, -1.3]), jnp.array([1.7]), 0.35
    term = dfx.ODETerm(lambda t, y, u: env.vector_field(t, y, u))
    expected = y
    for t0 in (t, t + 0.025):
        state = solver.init(term, t0, t0 + 0.025, expected, u)
        expected = solver.step(term, t0, t0 + 0.025, expected, u, state, made_jump=False)[0]
    np.testing.assert_allclose(diffsim.step(env, t, y, u)[0], expected, rtol=1e-14, atol=1e-14)

    def own_step(y):
        for t0 in (t, t + 0.025):
            state = solver.init(term, t0, t0 + 0.025, y, u)
            y = solver.step(term, t0, t0 + 0.025, y, u, state, made_jump=False)[0]
        return y

    ours = lambda y: diffsim.step(env, t, y, u)[0]
    expected_jacobian = jax.jacrev(own_step)(y)  # diffrax steps in reverse mode only
    for jacobian in (jax.jacfwd, jax.jacrev):
        np.testing.assert_allclose(jacobian(ours)(y), expected_jacobian, rtol=1e-12, atol=1e-12)


def test_a_differentiated_runge_kutta_step_forms_each_stage_input_once():
    """Under differentiation each later stage's input is divided by a run-time one, so that
    XLA:CPU forms it once rather than copying its growing sum into each consumer: the ODE
    pendulum's gradient at 1,024 episodes went from 0.92-0.96 to 1.07-1.12 of the fastest
    hand scan (benchmarks/RESULTS.md). A plain forward pass keeps the sums as they are."""
    env = Pendulum(transition=diffsim.ODEStep(dfx.Tsit5()))
    y, u = jnp.array([2.9, -1.3]), jnp.array([1.7])
    advance = lambda y: diffsim.step(env, 0.35, y, u)[0]

    def denominators(function):
        """How many divides each traced value is the denominator of."""
        text = str(jax.make_jaxpr(function)(y))
        return collections.Counter(re.findall(r"= div \S+ ([a-z]+)\n", text))

    stage_inputs = len(dfx.Tsit5().tableau.a_lower)  # 6: one per stage after the first
    assert max(denominators(advance).values()) == 1
    linearised = denominators(lambda y: jax.jvp(advance, (y,), (y,))[0])
    assert max(linearised.values()) == stage_inputs
    primal = jax.jit(lambda y: jax.jvp(advance, (y,), (y,))[0])(y)
    np.testing.assert_allclose(primal, jax.jit(advance)(y), rtol=2e-6)  # bit-equal here
    # the pendulum does not read t: any t, even a non-finite one, gives the same derivatives
    jacobian = lambda t: jax.jacrev(lambda y: diffsim.step(env, t, y, u)[0])(y)
    for t in (jnp.inf, jnp.nan):
        np.testing.assert_array_equal(jacobian(t), jacobian(0.35))


def test_a_new_transition_is_one_small_class():
    class ExplicitEuler(diffsim.AbstractTransition):
        def __call__(self, dynamics, t, y, u):
            return y + dynamics.control_dt * dynamics.vector_field(t, y, u)

    y, u = jnp.array([0.4, -0.3]), jnp.array([0.8])
    env = Pendulum(transition=ExplicitEuler())
    y_next, _, _ = diffsim.step(env, 0.0, y, u)
    np.testing.assert_allclose(y_next, y + 0.05 * env.vector_field(0.0, y, u), rtol=1e-6)
    np.testing.assert_allclose(
        y_next, diffsim.step(Pendulum(transition=diffsim.ODEStep(dfx.Euler())), 0.0, y, u)[0]
    )


def test_termination_freezes_state_masks_costs_and_charges_the_terminal_cost_once():
    trajectory = diffsim.rollout(Rising(), lambda t, o: jnp.zeros(1), jnp.zeros(1))
    assert int(trajectory.length) == 4
    assert bool(trajectory.terminated)
    np.testing.assert_allclose(trajectory.states[4:, 0], 0.4, rtol=1e-5)
    # four running costs, then the terminal cost at the state that ended it (0.4 m), once
    assert float(trajectory.terminal_cost) == pytest.approx(4.0, rel=1e-5)
    assert float(trajectory.total_cost) == pytest.approx(4.0 + 4.0, rel=1e-5)


class _IntegratorWithAnExit(Integrator):
    """``Integrator`` with a termination that is traced but never reached."""

    def termination(self, y):
        return jnp.abs(y[0]) > 1e6


def test_an_env_that_cannot_terminate_is_rolled_out_without_per_step_masks():
    def loss(gain, env):
        trajectory = diffsim.rollout(env, lambda t, o: -gain * o, jnp.ones(1))
        return trajectory.total_cost, trajectory

    def stacked_masks(env):
        jaxpr = jax.make_jaxpr(jax.grad(lambda g: loss(g, env)[0]))(0.5)
        scans = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "scan"]
        return sum(v.aval.dtype == jnp.bool_ and v.aval.ndim > 0 for e in scans for v in e.outvars)

    (value, plain), grad = jax.value_and_grad(loss, has_aux=True)(0.5, Integrator())
    (masked_value, masked), masked_grad = jax.value_and_grad(loss, has_aux=True)(
        0.5, _IntegratorWithAnExit()
    )
    # y_k = 0.95^k: the sum of squares over 10 steps, and its derivative in the gain
    k = np.arange(10)
    assert float(value) == pytest.approx(np.sum(0.95 ** (2 * k)), rel=1e-5)
    assert float(grad) == pytest.approx(np.sum(2 * k * 0.95 ** (2 * k - 1) * -0.1), rel=1e-4)
    for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(masked), strict=True):
        np.testing.assert_array_equal(a, b)
    assert float(masked_grad) == float(grad)
    assert bool(jnp.all(plain.alive)) and int(plain.length) == 10 and not bool(plain.terminated)
    assert stacked_masks(Integrator()) == 0 and stacked_masks(_IntegratorWithAnExit()) > 0


def test_terminal_cost_is_charged_once_at_the_horizon():
    env = Rising(ceiling=100.0)
    full = diffsim.rollout(env, lambda t, o: jnp.zeros(1), jnp.zeros(1))
    assert not bool(full.terminated) and int(full.length) == 10
    assert float(full.total_cost) == pytest.approx(10.0 + 10.0 * 1.0, rel=1e-5)
    # windows of one episode: only the window that reaches step 10 pays it
    first = diffsim.rollout(env, lambda t, o: jnp.zeros(1), jnp.zeros(1), num_steps=6)
    second = diffsim.rollout(
        env, lambda t, o: jnp.zeros(1), first.final_state, num_steps=4, start_step=6
    )
    assert float(first.terminal_cost) == 0.0
    assert float(second.terminal_cost) == pytest.approx(10.0, rel=1e-5)
    np.testing.assert_allclose(second.times, [0.6, 0.7, 0.8, 0.9, 1.0], rtol=1e-6)
    # and the default objective and evaluation include it
    evaluation = diffsim.evaluate(env, lambda t, o: jnp.zeros(1), episodes=3, seed=0)
    np.testing.assert_allclose(evaluation.returns, -20.0, rtol=1e-5)
    assert float(diffsim.mean_step_cost(env, full)) == pytest.approx(2.0, rel=1e-5)


def test_bad_inputs_raise_clear_errors():
    env = Pendulum()
    controller = lambda t, o: jnp.zeros(1)
    with pytest.raises(diffsim.DiffsimError, match=r"shape \(3,\).*\(2,\)"):
        diffsim.rollout(env, controller, jnp.zeros(3))
    with pytest.raises(Exception, match="NaN or inf"):
        diffsim.rollout(env, controller, jnp.array([jnp.nan, 0.0]))
    with pytest.raises(diffsim.DiffsimError, match="mode"):
        diffsim.rollout(env, controller, jnp.zeros(2), mode="continuous")
    with pytest.raises(diffsim.DiffsimError, match="zero-order hold of a Pendulum, not ClosedLoop"):
        diffsim.rollout(Pendulum(transition=GymEuler()), controller, jnp.zeros(2), mode="feedback")


def test_non_physical_parameters_traced_under_jit_give_nan_never_a_number():
    controller = lambda t, o: jnp.zeros(1)

    @jax.jit
    def final_angle(m):
        return diffsim.rollout(Pendulum(m=m), controller, jnp.ones(2), num_steps=3).final_state[0]

    expected = diffsim.rollout(Pendulum(m=1.0), controller, jnp.ones(2), num_steps=3)
    assert float(final_angle(1.0)) == pytest.approx(float(expected.final_state[0]), rel=1e-6)
    # m = inf would be finite nonsense (3 / (m l^2) = 0): guarded like the others
    for bad in (-1.0, 0.0, np.inf, np.nan):
        assert np.isnan(float(final_angle(bad))), bad
    with pytest.raises(diffsim.DiffsimError, match=r"Pendulum\.m must be positive and finite"):
        Pendulum(m=-1.0)  # a concrete value is refused when the env is built


def test_a_batch_of_envs_with_a_non_physical_value_is_refused_where_it_enters():
    # built under filter_vmap the values are traced, so construction cannot check them
    batch = eqx.filter_vmap(lambda g: Pendulum(g=g))(jnp.array([9.0, -1.0, 10.0]))
    controller = lambda t, o: jnp.zeros(1)
    with pytest.raises(diffsim.DiffsimError, match=r"evaluate: Pendulum.g = \[9.0, -1.0, 10.0\]"):
        diffsim.evaluate(batch, controller, episodes=2)
    many = eqx.filter_vmap(lambda g: Pendulum(g=g))(jnp.arange(12.0) - 0.5)
    with pytest.raises(diffsim.DiffsimError, match=r"Pendulum.g: 1 of 12 values, e.g. \[-0.5\]"):
        diffsim.evaluate(many, controller, episodes=2)
    one = eqx.tree_at(lambda e: e.m, Pendulum(), jnp.asarray(0.0))  # past the constructor
    with pytest.raises(diffsim.DiffsimError, match=r"rollout: Pendulum.m = 0.0: each must be"):
        diffsim.rollout(one, controller, jnp.ones(2), num_steps=3)


_TRACED = []


class _Traced(eqx.Module):
    """A linear controller that notes in ``_TRACED`` each time it is traced."""

    gain: jax.Array

    def __call__(self, t, observation):
        _TRACED.append(t)
        return -self.gain * observation[:1]


def test_adaptive_solver_reports_max_steps():
    tight = dfx.PIDController(rtol=1e-12, atol=1e-12)
    env = Pendulum(transition=diffsim.ODESolve(stepsize_controller=tight, max_steps=2))
    y0, failed = jnp.array([2.0, 0.0]), "max_steps|maximum number of solver steps"
    # a function (traced at each call) and a Module (its program compiled once), and step
    for controller in (lambda t, o: jnp.ones(1), _Traced(jnp.asarray(1.0))):
        with pytest.raises(diffsim.DiffsimError, match=failed):
            diffsim.rollout(env, controller, y0, num_steps=3)
    with pytest.raises(diffsim.DiffsimError, match=failed):
        diffsim.step(env, 0.0, y0, jnp.ones(1))


def test_an_eager_rollout_compiles_once_per_env_controller_structure_and_options():
    env, controller, y0 = Pendulum(), _Traced(jnp.asarray(2.0)), jnp.array([1.0, 0.0])
    _TRACED.clear()
    first = diffsim.rollout(env, controller, y0, num_steps=20)
    assert len(_TRACED) == 1
    # Other start states, controller arrays and start steps: the same program.
    diffsim.rollout(env, _Traced(jnp.asarray(3.0)), jnp.array([0.5, 0.1]), num_steps=20)
    diffsim.rollout(env, controller, jnp.array([0.5, 0.1]), num_steps=20, start_step=7)
    assert len(_TRACED) == 1
    diffsim.rollout(env, controller, y0, num_steps=21)
    assert len(_TRACED) == 2
    # The compiled eager rollout agrees with one traced inside the user's jit.
    inside = eqx.filter_jit(lambda c, y: diffsim.rollout(env, c, y, num_steps=20))(controller, y0)
    np.testing.assert_allclose(first.states, inside.states, rtol=1e-6)


_GAIN = jnp.asarray(2.0)


def _global_gain(t, observation):
    return -_GAIN * observation[:1]


class _Wrapped(eqx.Module):
    law: Callable  # a function of the user's, in a field

    def __call__(self, t, observation):
        return self.law(t, observation)


def test_an_eager_call_of_a_plain_function_reads_its_arrays_when_called():
    """No program is reused for a function of the user's, bare or in a Module's field, or
    an object: their globals and attributes may change between calls, and a reused program
    would keep their first values."""
    global _GAIN
    env, y0 = Pendulum(), jnp.array([1.0, 0.0])

    class Gain:  # a callable object, not a pytree
        def __init__(self, k):
            self.k = k

        def __call__(self, t, observation):
            return -self.k * observation[:1]

    def final(controller):
        return diffsim.rollout(env, controller, y0, num_steps=10).final_state

    reference = {k: final(_Traced(jnp.asarray(k))) for k in (2.0, 0.5)}
    gain = Gain(jnp.asarray(2.0))
    controllers = gain, _global_gain, _Wrapped(_global_gain)

    def results():
        return [final(c) for c in controllers] + [diffsim.control(env, gain, 0.0, y0)]

    first = results()
    gain.k, _GAIN = jnp.asarray(0.5), jnp.asarray(0.5)
    try:
        then = results()
    finally:
        _GAIN = jnp.asarray(2.0)
    for before, after in zip(first[:-1], then[:-1], strict=True):
        np.testing.assert_allclose(before, reference[2.0], rtol=1e-6)
        np.testing.assert_allclose(after, reference[0.5], rtol=1e-6)
    np.testing.assert_allclose(first[-1], [-2.0 * np.cos(1.0)], rtol=1e-6)
    np.testing.assert_allclose(then[-1], [-0.5 * np.cos(1.0)], rtol=1e-6)


class _Concrete(eqx.Module):
    """A controller that needs concrete values: a Python ``if`` on the observation."""

    def __call__(self, t, observation):
        _TRACED.append(t)
        return jnp.ones(1) if float(observation[1]) > 0 else -jnp.ones(1)


def test_an_eager_control_of_code_that_cannot_be_traced_runs_as_called():
    env = Pendulum()
    _TRACED.clear()
    for theta, expected in ((1.0, 1.0), (-1.0, -1.0), (0.5, 1.0)):
        u = diffsim.control(env, _Concrete(), 0.0, jnp.array([theta, 0.0]))
        np.testing.assert_allclose(u, [expected])
    assert len(_TRACED) == 4  # the first call's failed trace, then one run per call


def test_an_eager_control_compiles_once():
    env = Pendulum()
    _TRACED.clear()
    for gain, theta in ((2.0, 1.0), (3.0, 0.5)):
        u = diffsim.control(env, _Traced(jnp.asarray(gain)), 0.1, jnp.array([theta, 0.0]))
        # observation (cos, sin, speed); the torque bound is 2 N m
        np.testing.assert_allclose(u, [max(-gain * np.cos(theta), -2.0)], rtol=1e-6)
    assert len(_TRACED) == 1


class _TracedIntegrator(Integrator):
    """``dy/dt = u``, noting in ``_TRACED`` each time its vector field is traced."""

    def vector_field(self, t, y, u):
        _TRACED.append(t)
        return u


def test_an_eager_step_compiles_once_and_integrates_exactly():
    env = _TracedIntegrator()
    _TRACED.clear()
    y, cost, done = diffsim.step(env, 0.0, jnp.array([1.0]), jnp.array([0.5]))
    traced = len(_TRACED)
    assert traced > 0
    for t, y0, u in ((0.3, 2.0, -1.0), (1, -0.5, 0.25)):  # a float or an int time
        y, cost, done = diffsim.step(env, t, jnp.array([y0]), jnp.array([u]))
        # dy/dt = u over one interval of 0.1 s; the running cost y^2 at its start, per step
        np.testing.assert_allclose(y, [y0 + 0.1 * u], rtol=1e-6)
        np.testing.assert_allclose(cost, y0**2, rtol=1e-6)
        assert not bool(done)
    assert len(_TRACED) == traced


class _Unhashable(eqx.Module):
    gains: list = eqx.field(static=True)

    def __call__(self, t, observation):
        return -jnp.asarray(self.gains) * observation[:1]


def test_an_eager_rollout_of_a_controller_that_cannot_be_a_static_argument_still_runs():
    y0 = jnp.array([1.0, 0.0])
    trajectory = diffsim.rollout(Pendulum(), _Unhashable([2.0]), y0, num_steps=20)
    expected = diffsim.rollout(Pendulum(), lambda t, o: -2.0 * o[:1], y0, num_steps=20)
    np.testing.assert_allclose(trajectory.states, expected.states, rtol=1e-6)


def test_evaluate_runs_a_batch_of_envs_each_with_its_own_physics():
    controller = MLPPolicy.for_env(Pendulum(), width=8, depth=1, key=jr.key(0))
    gravities = jnp.array([2.0, 10.0, 25.0])
    envs = eqx.filter_vmap(lambda g: Pendulum(g=g))(gravities)
    batch = diffsim.evaluate(envs, controller, episodes=20, seed=3)
    assert batch.returns.shape == (3, 20) and batch.episodes == 20
    for i, g in enumerate(gravities):
        single = diffsim.evaluate(Pendulum(g=g), controller, episodes=20, seed=3)
        np.testing.assert_allclose(batch.returns[i], single.returns, rtol=1e-5)
    assert batch.mean == pytest.approx(float(jnp.mean(batch.returns)), rel=1e-6)


@pytest.mark.usefixtures("x64")
def test_linearisation_matches_the_analytic_jacobians_and_the_exact_zero_order_hold():
    from scipy.linalg import expm

    env = Pendulum(g=9.0, m=1.5, l=0.8)
    upright = diffsim.linearise(env, jnp.zeros(2), jnp.zeros(1))
    A = np.array([[0.0, 1.0], [3 * 9.0 / (2 * 0.8), 0.0]])
    B = np.array([[0.0], [3.0 / (1.5 * 0.8**2)]])
    np.testing.assert_allclose(upright.A, A, rtol=1e-12)
    np.testing.assert_allclose(upright.B, B, rtol=1e-12)
    np.testing.assert_allclose(upright.derivative, 0.0, atol=1e-15)  # an equilibrium
    # one 0.05 s interval under zero-order hold: exp([[A, B], [0, 0]] dt)
    block = np.zeros((3, 3))
    block[:2, :2], block[:2, 2:] = A, B
    exact = expm(block * env.control_dt)
    tight = dfx.PIDController(rtol=1e-12, atol=1e-12)
    for transition, tolerance in (
        (diffsim.ODESolve(stepsize_controller=tight), 1e-9),
        (diffsim.ODEStep(substeps=4), 1e-7),
    ):
        lin = diffsim.linearise(
            eqx.tree_at(lambda e: e.transition, env, transition), jnp.zeros(2), jnp.zeros(1)
        )
        np.testing.assert_allclose(lin.A_discrete, exact[:2, :2], atol=tolerance)
        np.testing.assert_allclose(lin.B_discrete, exact[:2, 2:], atol=tolerance)
    # forward mode through step and rollout
    jac = jax.jacfwd(lambda u: diffsim.step(env, 0.0, jnp.zeros(2), u)[0])(jnp.zeros(1))
    np.testing.assert_allclose(jac, upright.B_discrete, rtol=1e-12)
    jvp = jax.jvp(
        lambda y0: diffsim.rollout(env, lambda t, o: jnp.zeros(1), y0, num_steps=3).final_state,
        (jnp.array([0.1, 0.0]),),
        (jnp.array([1.0, 0.0]),),
    )[1]
    assert np.all(np.isfinite(jvp)) and float(jvp[0]) > 1.0  # upright is unstable


def test_a_step_cost_may_charge_the_state_the_step_reaches():
    class Landing(Rising):
        def step_cost(self, t, y, u, y_next):
            return 100.0 * y_next[0] - y[0]

    trajectory = diffsim.rollout(Landing(ceiling=100.0), lambda t, o: jnp.zeros(1), jnp.zeros(1))
    heights = trajectory.states[:, 0]
    np.testing.assert_allclose(trajectory.costs, 100.0 * heights[1:] - heights[:-1], rtol=1e-5)
    _, cost, _ = diffsim.step(Landing(), 0.0, jnp.array([0.2]), jnp.zeros(1))
    assert float(cost) == pytest.approx(100.0 * 0.3 - 0.2, rel=1e-5)


class Drop(diffsim.AbstractEnv):
    """A ball dropped from ``height`` m; the episode ends as it reaches the ground, at the
    exact crossing time: the event ``y[0] = 0`` inside a 1 s control interval."""

    height: float = diffsim.parameter(2.0, positive=True)
    g: float = diffsim.parameter(9.81, positive=True)
    control_dt: float = 1.0
    episode_steps: int = 5
    transition: diffsim.AbstractTransition = diffsim.ODESolve(
        stepsize_controller=dfx.PIDController(rtol=1e-10, atol=1e-10)
    )

    @property
    def action_space(self):
        return diffsim.Box(-1.0, 1.0)

    def vector_field(self, t, y, u):
        return jnp.stack([y[1], -self.g + 0.0 * u[0]])

    def initial_state(self, key):
        return jnp.stack([self.height, jnp.zeros_like(self.height)])

    def running_cost(self, t, y, u):
        return jnp.zeros((), y.dtype)

    def terminal_cost(self, y):
        return y[1] ** 2  # the impact speed squared

    def event(self, t, y):
        return y[0]


@pytest.mark.slow
@pytest.mark.usefixtures("x64")
def test_an_event_ends_the_episode_at_the_exact_crossing_with_gradients_through_it():
    def impact(height, g=9.81):
        env = Drop(height=height, g=g)
        trajectory = diffsim.rollout(env, lambda t, o: jnp.zeros(1), env.initial_state(jr.key(0)))
        return trajectory.end_time, trajectory

    end_time, trajectory = impact(2.0)
    assert bool(trajectory.terminated) and int(trajectory.length) == 1
    assert float(end_time) == pytest.approx(np.sqrt(2 * 2.0 / 9.81), rel=1e-8)
    np.testing.assert_allclose(trajectory.states[1], [0.0, -np.sqrt(2 * 9.81 * 2.0)], atol=1e-7)
    assert float(trajectory.total_cost) == pytest.approx(2 * 9.81 * 2.0, rel=1e-8)
    # d(impact time)/d(height) = 1 / sqrt(2 g h); and against central differences, for g too
    d_height = jax.grad(lambda h: impact(h)[0])(2.0)
    assert float(d_height) == pytest.approx(1 / np.sqrt(2 * 9.81 * 2.0), rel=1e-6)
    d_g = jax.grad(lambda g: impact(2.0, g)[0])(9.81)
    fd = (impact(2.0, 9.81 + 1e-6)[0] - impact(2.0, 9.81 - 1e-6)[0]) / 2e-6
    assert float(d_g) == pytest.approx(float(fd), rel=1e-5)
    # the RL view ends the episode too, and a transition that cannot locate events refuses
    _, _, terminated = diffsim.step(Drop(), 0.0, jnp.array([2.0, 0.0]), jnp.zeros(1))
    assert bool(terminated)
    with pytest.raises(diffsim.DiffsimError, match=r"use transition=diffsim.ODESolve\(\)"):
        diffsim.step(Drop(transition=diffsim.ODEStep()), 0.0, jnp.array([2.0, 0.0]), jnp.zeros(1))


@pytest.mark.parametrize(
    "env",
    [
        Pendulum(),
        Pendulum(transition=GymEuler()),
        CartPole(transition=cartpole.GymEuler(), action="continuous"),
        CartPole(task="swingup"),
    ],
    ids=["pendulum-ode", "pendulum-gym", "cartpole-gym", "cartpole-swingup"],
)
def test_a_shipped_env_step_backward_forms_the_state_cotangent_without_pads(env):
    """The pendulum and the cart-pole read their state with ``jnp.unstack``, whose transpose
    is one ``stack`` per method. Slices (``theta, theta_dot = y``, ``y[1]``) would pad each
    component's cotangent to the state's shape and add the pieces: with them, this jaxpr
    held 6 pads (gym pendulum), 16 (its ODE step), 4 and 28 (the cart-pole's), and 14 of the
    47 kernels per 4 steps of the gym pendulum's compiled batch-1 gradient ended in a pad
    (benchmarks/RESULTS.md). The values are the same either way; this guards the speed."""
    y, u = env.initial_state(jr.key(0)), jnp.ones(1)

    def loss(y):
        next_state, cost, _ = diffsim.step(env, 0.0, y, u)
        return cost + jnp.sum(env.observe(next_state))

    backward = str(jax.make_jaxpr(jax.grad(loss))(y))
    assert "unstack[" in backward and "pad[" not in backward
