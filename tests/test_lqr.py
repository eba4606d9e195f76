"""The discrete LQR against scipy's Riccati solver, and its closed loop."""

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import diffsim
from diffsim.envs import CartPole, Pendulum


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize(
    "env", [Pendulum(), CartPole(task="swingup", action="continuous")], ids=type
)
def test_gain_matches_scipy_and_stabilises_the_upright_equilibrium(env):
    """``K`` equals ``(R + B'PB)^-1 B'PA`` with scipy's ``solve_discrete_are``'s ``P``, and
    every eigenvalue of ``A - B K`` lies inside the unit circle (the open loop has one
    outside: the upright equilibrium is unstable)."""
    n, m = env.state_size, env.action_space.control_size
    lin = diffsim.linearise(env, jnp.zeros(n), jnp.zeros(m))
    Q, R = np.diag(np.arange(1.0, n + 1)), 0.1 * np.eye(m)
    K = diffsim.discrete_lqr(lin, Q, R)
    A, B = np.asarray(lin.A_discrete), np.asarray(lin.B_discrete)
    P = scipy.linalg.solve_discrete_are(A, B, Q, R)
    expected = np.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)
    np.testing.assert_allclose(K, expected, rtol=1e-6)
    assert np.max(np.abs(np.linalg.eigvals(A))) > 1.0
    assert np.max(np.abs(np.linalg.eigvals(A - B @ K))) < 1.0


def test_bad_weights_and_uncontrollable_systems_raise():
    lin = diffsim.linearise(Pendulum(), jnp.zeros(2), jnp.zeros(1))
    with pytest.raises(diffsim.DiffsimError, match=r"Q of shape \(2, 2\)"):
        diffsim.discrete_lqr(lin, jnp.eye(3), jnp.eye(1))
    # no control authority over an unstable mode: the Riccati iteration diverges
    uncontrollable = diffsim.Linearisation(
        A=lin.A,
        B=0 * lin.B,
        A_discrete=lin.A_discrete,
        B_discrete=0 * lin.B_discrete,
        derivative=lin.derivative,
        next_state=lin.next_state,
    )
    with pytest.raises(diffsim.DiffsimError, match="did not converge"):
        diffsim.discrete_lqr(uncontrollable, jnp.eye(2), jnp.eye(1))
