"""The discrete-time linear-quadratic regulator of a linearised env."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from ._errors import DiffsimError
from ._linearise import Linearisation


def discrete_lqr(
    linearisation: Linearisation,
    Q: Float[ArrayLike, "n n"],
    R: Float[ArrayLike, "m m"],
    *,
    iterations: int = 5000,
    tolerance: float | None = None,
) -> Float[Array, "m n"]:
    """The gain ``K`` of the infinite-horizon discrete LQR of ``linearisation``'s
    zero-order-hold model ``dy' = A_discrete dy + B_discrete du``: the feedback
    ``du = -K dy`` minimises ``sum dy^T Q dy + du^T R du`` over control intervals.

    The discrete algebraic Riccati equation is solved by fixed-point iteration from
    ``P = Q`` (jittable; the same ``K`` as ``scipy.linalg.solve_discrete_are``).

    Args:
        linearisation: from :func:`diffsim.linearise` about an equilibrium ``(y*, u*)``.
        Q: state weight, shape ``(n, n)``, symmetric positive semi-definite.
        R: control weight, shape ``(m, m)``, symmetric positive definite.
        iterations: Riccati iterations at most.
        tolerance: convergence when the largest change of ``P`` in one iteration is
            below this fraction of its largest entry (default ``eps ** 0.75`` of the
            dtype: about 6e-6 in float32, 2e-12 in float64).

    Returns:
        ``K``, shape ``(m, n)``; the control is ``u* - K (y - y*)``.

    Raises:
        DiffsimError: for weights of the wrong shape, or when the iteration does not
            converge (an uncontrollable unstable mode) or gives non-finite values; only
            outside ``jax.jit``, where the values are known.

    Example: ``lin = diffsim.linearise(env, jnp.zeros(4), jnp.zeros(1))``;
    ``K = diffsim.discrete_lqr(lin, jnp.eye(4), jnp.eye(1))``.
    """
    A, B = linearisation.A_discrete, linearisation.B_discrete
    n, m = B.shape
    Q, R = jnp.asarray(Q, A.dtype), jnp.asarray(R, A.dtype)
    if tolerance is None:
        tolerance = float(jnp.finfo(A.dtype).eps) ** 0.75
    if Q.shape != (n, n) or R.shape != (m, m):
        raise DiffsimError(
            f"discrete_lqr needs Q of shape {(n, n)} and R of shape {(m, m)}, "
            f"got {Q.shape} and {R.shape}"
        )

    def gain(P):
        return jnp.linalg.solve(R + B.T @ P @ B, B.T @ P @ A)

    def change(P, P_next):
        return jnp.max(jnp.abs(P_next - P)) / jnp.maximum(jnp.max(jnp.abs(P_next)), 1e-30)

    def body(carry):
        i, P, _ = carry
        P_next = Q + A.T @ P @ (A - B @ gain(P))
        return i + 1, P_next, change(P, P_next)

    def running(carry):
        i, _, delta = carry
        return (i < iterations) & (delta > tolerance)

    start = (jnp.zeros((), jnp.int32), Q, jnp.asarray(jnp.inf, A.dtype))
    _, P, delta = jax.lax.while_loop(running, body, start)
    K = gain(P)
    if not isinstance(delta, jax.core.Tracer):
        if not bool(jnp.all(jnp.isfinite(K))) or not float(delta) <= tolerance:
            raise DiffsimError(
                f"discrete_lqr: the Riccati iteration did not converge in {iterations} "
                f"iterations (last relative change {float(delta):.3g}): is the system "
                "stabilisable, Q >= 0 and R > 0?"
            )
    return K
