"""Linearisation of an env about a state and control: the Jacobians a control engineer
starts from (LQR, stability, controllability)."""

from __future__ import annotations

import equinox as eqx
import jax
from jaxtyping import Array, ArrayLike, Float, Real

from ._env import AbstractEnv
from ._rollout import _as_vector, check_model

StateMatrix = Float[Array, "n n"]
InputMatrix = Float[Array, "n m"]
StateVector = Float[Array, " n"]


class Linearisation(eqx.Module):
    """An env linearised about ``(y, u)`` at time ``t``.

    Example:
        ```python
        import jax.numpy as jnp
        import diffsim

        upright = diffsim.linearise(diffsim.envs.Pendulum(), jnp.zeros(2), jnp.zeros(1))
        upright.A            # [[0, 1], [15, 0]]: 3 g / (2 l) = 15 1/s^2
        upright.B            # [[0], [3]]: 3 / (m l^2)
        upright.A_discrete   # the map of one 0.05 s control interval
        ```
    """

    A: StateMatrix
    """Continuous time: ``d(dy/dt)/dy``, shape ``(n, n)``, in 1/s."""
    B: InputMatrix
    """Continuous time: ``d(dy/dt)/du``, shape ``(n, m)``."""
    A_discrete: StateMatrix
    """One control interval of ``env.transition`` (zero-order hold): ``d y_next / d y``."""
    B_discrete: InputMatrix
    """One control interval of ``env.transition`` (zero-order hold): ``d y_next / d u``."""
    derivative: StateVector
    """``dy/dt`` at ``(y, u)``: zero at an equilibrium."""
    next_state: StateVector
    """The state one control interval later."""


def linearise(
    env: AbstractEnv,
    y: ArrayLike,
    u: ArrayLike,
    *,
    t: Real[ArrayLike, ""] = 0.0,
) -> Linearisation:
    """Jacobians of the env's dynamics about state ``y`` (``(n,)``) and control ``u``
    (``(m,)``) at time ``t`` (s): of ``vector_field`` (continuous time) and of one control
    interval of ``env.transition`` (discrete time, what a discrete LQR needs).

    Forward mode where the transition allows it (``ODEStep``, exact maps, ``ODESolve``
    with ``adjoint=diffrax.ForwardMode()``), reverse mode otherwise (``ODESolve``'s
    default ``RecursiveCheckpointAdjoint`` supports reverse mode only; the same holds for
    ``jax.jvp`` through :func:`diffsim.step` and :func:`diffsim.rollout`).

    Jittable and vmappable. Example: ``lin = diffsim.linearise(Pendulum(), jnp.zeros(2),
    jnp.zeros(1))``; ``lin.A``, ``lin.B_discrete``.

    Args:
        env: the environment.
        y: the state linearised about, shape ``(n,)``.
        u: the control, shape ``(m,)``.
        t: time (s).

    Returns:
        A :class:`Linearisation`: ``A`` ``(n, n)`` and ``B`` ``(n, m)`` of the vector
        field, ``A_discrete`` and ``B_discrete`` of one control interval.
    """
    check_model("linearise", env, needs_controller=False)
    y = _as_vector(env, y, env.state_size, "state")
    u = _as_vector(env, u, env.action_space.control_size, "control")

    def field(y, u):
        return env.vector_field(t, y, u)

    def interval(y, u):
        return env.transition(env, t, y, u)

    A, B = jax.jacfwd(field, argnums=(0, 1))(y, u)
    try:
        A_discrete, B_discrete = jax.jacfwd(interval, argnums=(0, 1))(y, u)
    except TypeError:  # a reverse-mode-only adjoint (diffrax's RecursiveCheckpointAdjoint)
        A_discrete, B_discrete = jax.jacrev(interval, argnums=(0, 1))(y, u)
    return Linearisation(
        A=A,
        B=B,
        A_discrete=A_discrete,
        B_discrete=B_discrete,
        derivative=field(y, u),
        next_state=interval(y, u),
    )
