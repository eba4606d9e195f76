"""Controllers: ``eqx.Module`` policies callable as ``controller(t, observation)``, and the
control engineer's baselines (LQR, residual control on top of it, MPC)."""

from ._lqr import LQR, lqr_gain, solve_dare
from ._mpc import MPC, MPCState
from ._residual import Residual
from ._symmetric import Mirrored

__all__ = [
    "LQR",
    "MPC",
    "MPCState",
    "Mirrored",
    "Residual",
    "lqr_gain",
    "solve_dare",
]
