"""The SIR epidemic against scipy's solve_ivp on the same equations, its invariant
``s + i + r = 1``, the final-size relation of Kermack and McKendrick, and bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.optimize import brentq

import diffsim
from diffsim.envs import Epidemic


def _scipy_sir(beta, gamma, y0, schedule):
    """The SIR equations in numpy, one solve_ivp (DOP853, rtol 1e-12) per day with that
    day's contact reduction held, returns the state at every day, shape ``(days + 1, 3)``."""

    def field(t, y, u):
        s, i, _ = y
        infection = beta * (1 - u) * s * i
        return [-infection, infection - gamma * i, gamma * i]

    states = [np.asarray(y0, np.float64)]
    for day, u in enumerate(schedule):
        solution = solve_ivp(
            field, (day, day + 1), states[-1], "DOP853", args=(u,), rtol=1e-12, atol=1e-14
        )
        states.append(solution.y[:, -1])
    return np.stack(states)


def _table_controller(schedule):
    table = jnp.asarray(schedule)
    return lambda t, observation: table[jnp.round(t).astype(int)][None]


@pytest.mark.usefixtures("x64")
def test_epidemic_matches_solve_ivp_and_conserves_the_population():
    """200 days under a varying intervention (none, a 60-day lockdown at 0.6, a partial
    one): the default transition (two Tsit5 steps a day) within 1e-9 of scipy's DOP853 at
    rtol 1e-12 (measured 1.2e-10), ``s + i + r = 1`` to 1e-13, each day's cost its new
    infections plus the intervention charge."""
    env = Epidemic()
    schedule = np.concatenate([np.zeros(40), np.full(60, 0.6), np.full(100, 0.3)])
    y0 = np.array([0.985, 0.005, 0.01])
    trajectory = diffsim.rollout(env, _table_controller(schedule), jnp.asarray(y0))
    reference = _scipy_sir(0.3, 0.1, y0, schedule)
    error = np.max(np.abs(np.asarray(trajectory.states) - reference))
    assert error < 1e-9
    np.testing.assert_allclose(jnp.sum(trajectory.states, axis=1), 1.0, rtol=0, atol=1e-13)
    new_infections = reference[:-1, 0] - reference[1:, 0]
    np.testing.assert_allclose(
        trajectory.costs, new_infections + 0.01 * schedule**2, rtol=0, atol=1e-10
    )
    assert float(jnp.max(trajectory.states[:, 1])) > 0.2  # an epidemic happened (peak 0.295)


@pytest.mark.usefixtures("x64")
def test_uncontrolled_final_size_matches_kermack_mckendrick():
    """No intervention for 200 days from ``i0 = 1e-4``: the fraction never infected
    solves ``s_inf = s0 exp(-R0 (1 - s_inf))`` (the final-size relation, Kermack and
    McKendrick 1927) to 1e-6."""
    env = Epidemic()
    y0 = jnp.array([1 - 1e-4, 1e-4, 0.0])
    trajectory = diffsim.rollout(env, lambda t, o: jnp.zeros(1), y0)
    s0, r0 = 1 - 1e-4, 3.0
    s_inf = brentq(lambda s: s - s0 * np.exp(-r0 * (1 - s)), 1e-6, 0.5)
    np.testing.assert_allclose(trajectory.states[-1, 0], s_inf, rtol=0, atol=1e-6)
    assert 0.05 < s_inf < 0.07  # R0 = 3 infects about 94 % of the population
    # without intervention the return counts the whole epidemic: the fraction ever
    # infected, what the final-size relation says from the start
    np.testing.assert_allclose(trajectory.total_cost, s0 - s_inf, rtol=0, atol=1e-9)


@pytest.mark.usefixtures("x64")
def test_terminal_cost_is_the_rest_of_the_epidemic():
    """From mid-epidemic states, :meth:`Epidemic.final_susceptible` (the final-size
    relation by Newton) equals the susceptible fraction left after solve_ivp runs the
    uncontrolled epidemic for 3000 days, to 1e-9."""
    env = Epidemic()
    for y in ([0.6, 0.02, 0.38], [0.9, 0.001, 0.099], [0.3, 0.05, 0.65], [0.2, 1e-4, 0.7999]):
        reference = solve_ivp(
            lambda t, y: [-0.3 * y[0] * y[1], 0.3 * y[0] * y[1] - 0.1 * y[1], 0.1 * y[1]],
            (0, 3000),
            y,
            "DOP853",
            rtol=1e-12,
            atol=1e-15,
        ).y[0, -1]
        np.testing.assert_allclose(env.final_susceptible(jnp.asarray(y)), reference, atol=1e-9)
        np.testing.assert_allclose(env.terminal_cost(jnp.asarray(y)), y[0] - reference, atol=1e-9)


def test_bounds_and_bad_parameters():
    env = Epidemic()
    np.testing.assert_allclose(env.action_space.to_control(jnp.array([2.0])), [0.7])
    np.testing.assert_allclose(env.action_space.to_control(jnp.array([-1.0])), [0.0])
    y0 = jax.vmap(env.initial_state)(jax.random.split(jax.random.key(0), 100))
    np.testing.assert_allclose(jnp.sum(y0, axis=1), 1.0, rtol=1e-6)
    assert bool(jnp.all(y0 >= 0))
    with pytest.raises(diffsim.DiffsimError, match="gamma must be positive"):
        Epidemic(gamma=-0.1)
