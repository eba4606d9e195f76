"""The linear-quadratic regulator: discrete Riccati feedback about an equilibrium."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, Real

import diffsim
from diffsim import AbstractEnv, Box, DiffsimError

from ._checks import check_shape

_MAX_DOUBLINGS = 64


def solve_dare(
    A: Float[ArrayLike, "n n"],
    B: Float[ArrayLike, "n m"],
    Q: Float[ArrayLike, "n n"],
    R: Float[ArrayLike, "m m"],
) -> Float[Array, "n n"]:
    """The stabilising solution ``X`` of the discrete algebraic Riccati equation
    ``X = A^T X A - A^T X B (R + B^T X B)^{-1} B^T X A + Q``, as
    ``scipy.linalg.solve_discrete_are`` returns it.

    Solved in JAX by the structured doubling algorithm (Chu, Fan, Lin and Wang 2004,
    "Structure-preserving algorithms for periodic discrete-time algebraic Riccati
    equations"), whose iterates converge quadratically: a ``lax.while_loop`` of at most
    64 doublings, stopped when ``X`` changes by less than the dtype's precision. Jittable.
    An iteration that does not converge gives NaN; where ``(A, Q)`` is not detectable the
    iteration may converge to a solution that does not stabilise (``Q = 0`` gives
    ``X = 0``): :meth:`LQR.from_env` checks the closed loop ``A - B K`` and raises.
    """
    A, B, Q, R = (jnp.asarray(M) for M in (A, B, Q, R))
    dtype = jnp.result_type(A, B, Q, R, float)
    A, B, Q, R = (M.astype(dtype) for M in (A, B, Q, R))
    eye = jnp.eye(A.shape[0], dtype=dtype)
    tolerance = 10 * jnp.finfo(dtype).eps

    def double(state):
        Ak, Gk, Hk, _, k = state
        W = eye + Gk @ Hk
        V1 = jnp.linalg.solve(W, Ak)
        V2 = jnp.linalg.solve(W, Gk)
        H_next = Hk + V1.T @ Hk @ Ak
        H_next = (H_next + H_next.T) / 2
        G_next = Gk + Ak @ V2 @ Ak.T
        change = jnp.max(jnp.abs(H_next - Hk)) / jnp.maximum(jnp.max(jnp.abs(H_next)), 1e-30)
        return Ak @ V1, (G_next + G_next.T) / 2, H_next, change, k + 1

    def running(state):
        *_, change, k = state
        return (change > tolerance) & (k < _MAX_DOUBLINGS)

    G = B @ jnp.linalg.solve(R, B.T)
    init = (A, (G + G.T) / 2, (Q + Q.T) / 2, jnp.asarray(jnp.inf, dtype), 0)
    _, _, X, change, _ = jax.lax.while_loop(running, double, init)
    return jnp.where(change <= 1e3 * tolerance, X, jnp.nan)


def lqr_gain(
    A: Float[ArrayLike, "n n"],
    B: Float[ArrayLike, "n m"],
    X: Float[ArrayLike, "n n"],
    R: Float[ArrayLike, "m m"],
) -> Float[Array, "m n"]:
    """``K = (R + B^T X B)^{-1} B^T X A``, the optimal feedback ``u = -K y`` for the
    Riccati solution ``X``."""
    return jnp.linalg.solve(R + B.T @ X @ B, B.T @ X @ A)


class LQR(eqx.Module):
    """Linear-quadratic feedback about an equilibrium ``(y_eq, u_eq)`` of an env:
    ``u = u_eq - K (y - y_eq)``, clipped to the env's action bounds.

    ``K`` (``.gain``, shape ``(m, n)``) minimises ``sum_k dy_k^T Q dy_k + du_k^T R du_k``
    for the linearisation of one control interval of the env's own transition
    (:func:`diffsim.linearise`'s ``A_discrete``, ``B_discrete``).

    Controllers see observations, not states. Near the equilibrium the state deviation is
    recovered from the observation deviation through the linearised observation map
    ``C = d observe / dy`` at ``y_eq``: ``dy = C^+ (o - o_eq)`` (the pseudo-inverse; exact
    when the env observes its state). So the controller applies ``u_eq - K C^+ (o - o_eq)``
    (``.observation_gain`` is ``K C^+``); for the pendulum's ``(cos, sin, speed)`` the angle
    deviation is read as ``sin theta``. Build it with :meth:`from_env`.

    Example::

        env = Pendulum()
        lqr = LQR.from_env(env, jnp.zeros(2), jnp.zeros(1), jnp.diag(jnp.array([1.0, 0.1])),
                           jnp.array([[0.001]]))
        trajectory = diffsim.rollout(env, lqr, jnp.array([0.2, 0.0]))
    """

    gain: Float[Array, "m n"]
    """``K``: control (env units) per unit of state deviation."""
    riccati: Float[Array, "n n"]
    """``X``, the stabilising solution of the discrete Riccati equation: the optimal
    linearised cost-to-go from ``dy`` is ``dy^T X dy``."""
    observation_gain: Float[Array, "m o"]
    observation_eq: Float[Array, " o"]
    u_eq: Float[Array, " m"]
    low: Float[Array, " m"]
    high: Float[Array, " m"]

    @classmethod
    def from_env(
        cls,
        env: AbstractEnv,
        y_eq: ArrayLike,
        u_eq: ArrayLike,
        Q: ArrayLike,
        R: ArrayLike,
    ) -> LQR:
        """The LQR of ``env`` about state ``y_eq`` (``(n,)``) and control ``u_eq``
        (``(m,)``) with state weight ``Q`` (``(n, n)``, symmetric positive semidefinite)
        and control weight ``R`` (``(m, m)``, symmetric positive definite).

        Raises:
            DiffsimError: for an action space that is not a :class:`diffsim.Box`, a
                ``y_eq`` or ``u_eq`` that is not finite, a ``u_eq`` outside the action
                bounds, weights of the wrong shape, not symmetric or not positive
                (semi)definite, a point that is not an equilibrium of the transition (the
                residual ``y_next - y_eq`` and ``f(y_eq, u_eq)`` are reported), an
                uncontrollable linearisation (the rank of the controllability matrix), an
                observation from which the state deviation cannot be recovered, or a
                Riccati equation without a stabilising solution.
        """
        if not isinstance(env, AbstractEnv):
            raise DiffsimError(f"LQR.from_env needs a diffsim.AbstractEnv, got {env!r:.60}")
        space = env.action_space
        if not isinstance(space, Box):
            raise DiffsimError(
                f"LQR needs a continuous (Box) action space, {type(env).__name__} has "
                f"{type(space).__name__}"
            )
        lin = diffsim.linearise(env, y_eq, u_eq)
        y_eq, u_eq = jnp.asarray(y_eq, lin.A.dtype), jnp.asarray(u_eq, lin.A.dtype)
        n, m = lin.B_discrete.shape
        for name, value in (("y_eq", y_eq), ("u_eq", u_eq)):
            if not np.all(np.isfinite(np.asarray(value))):
                raise DiffsimError(f"{name} contains NaN or inf: {np.asarray(value)}")
        if np.any(np.asarray(u_eq) < np.asarray(space.low)) or np.any(
            np.asarray(u_eq) > np.asarray(space.high)
        ):
            raise DiffsimError(
                f"u_eq {np.asarray(u_eq)} lies outside the action bounds "
                f"[{np.asarray(space.low)}, {np.asarray(space.high)}]"
            )
        Q = _check_weight("Q", Q, n, definite=False)
        R = _check_weight("R", R, m, definite=True)
        _check_equilibrium(env, y_eq, u_eq, lin)
        A, B = lin.A_discrete, lin.B_discrete
        _check_controllable(A, B)
        C = jax.jacfwd(env.observe)(y_eq)
        recover = jnp.linalg.pinv(C)
        if int(np.linalg.matrix_rank(np.asarray(C, np.float64))) < n:
            raise DiffsimError(
                f"{type(env).__name__}'s observation does not determine the state near y_eq "
                f"(d observe / dy has rank {np.linalg.matrix_rank(np.asarray(C))} < {n}): "
                "LQR needs the state deviation"
            )
        X = solve_dare(A, B, Q, R)
        if not bool(jnp.all(jnp.isfinite(X))):
            raise DiffsimError(
                "the discrete Riccati equation has no stabilising solution for these weights "
                "(is every unstable mode of the linearisation seen by Q?)"
            )
        K = lqr_gain(A, B, X, R)
        radius = float(np.max(np.abs(np.linalg.eigvals(np.asarray(A - B @ K, np.float64)))))
        if not radius < 1:
            raise DiffsimError(
                f"the LQR gain does not stabilise the linearisation (spectral radius of A - BK "
                f"is {radius:.4g} >= 1): Q must weigh every unstable mode"
            )
        dtype = K.dtype
        return cls(
            gain=K,
            riccati=X,
            observation_gain=K @ recover,
            observation_eq=env.observe(y_eq),
            u_eq=u_eq,
            low=jnp.asarray(space.low, dtype),
            high=jnp.asarray(space.high, dtype),
        )

    def __call__(
        self, t: Real[ArrayLike, ""], observation: Float[Array, " o"]
    ) -> Float[Array, " m"]:
        check_shape(
            "LQR",
            "the observation",
            observation,
            self.observation_eq.shape,
            "the env's observation",
        )
        u = self.u_eq - self.observation_gain @ (observation - self.observation_eq)
        return jnp.clip(u, self.low, self.high)


def _check_weight(name: str, M: ArrayLike, size: int, *, definite: bool) -> Float[Array, "k k"]:
    M = jnp.asarray(M, dtype=float)
    if M.shape != (size, size):
        raise DiffsimError(f"{name} must have shape ({size}, {size}), got {M.shape}")
    values = np.asarray(M, np.float64)
    if not np.all(np.isfinite(values)):
        raise DiffsimError(f"{name} contains NaN or inf: {values.tolist()}")
    scale = max(float(np.max(np.abs(values))), 1e-30)
    if not np.allclose(values, values.T, rtol=0, atol=1e-6 * scale):
        raise DiffsimError(f"{name} must be symmetric, got {values.tolist()}")
    smallest = float(np.linalg.eigvalsh(values).min())
    if (smallest <= 0) if definite else (smallest < -1e-6 * scale):
        kind = "positive definite" if definite else "positive semidefinite"
        raise DiffsimError(
            f"{name} must be {kind}, its smallest eigenvalue is {smallest:.3g}: {values.tolist()}"
        )
    return M


def _check_equilibrium(env: AbstractEnv, y_eq, u_eq, lin: diffsim.Linearisation) -> None:
    residual = np.asarray(lin.next_state - y_eq)
    tolerance = float(np.sqrt(np.finfo(residual.dtype).eps)) * (
        1 + float(np.max(np.abs(np.asarray(y_eq))))
    )
    if not np.all(np.isfinite(residual)) or np.max(np.abs(residual)) > tolerance:
        raise DiffsimError(
            f"({np.asarray(y_eq)}, {np.asarray(u_eq)}) is not an equilibrium of "
            f"{type(env).__name__}: one control interval moves the state by {residual} "
            f"(f(y_eq, u_eq) = {np.asarray(lin.derivative)})"
        )


def _check_controllable(A: Float[Array, "n n"], B: Float[Array, "n m"]) -> None:
    A, B = np.asarray(A, np.float64), np.asarray(B, np.float64)
    n = A.shape[0]
    blocks, block = [], B
    for _ in range(n):
        blocks.append(block)
        block = A @ block
    controllability = np.concatenate(blocks, axis=1)
    singular = np.linalg.svd(controllability, compute_uv=False)
    rank = int(np.sum(singular > 1e-6 * singular[0])) if singular[0] > 0 else 0
    if rank < n:
        raise DiffsimError(
            f"the linearisation is not controllable: the controllability matrix "
            f"[B, AB, ..., A^{n - 1}B] has rank {rank} < {n} (singular values {singular})"
        )
