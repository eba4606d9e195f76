"""Controllers: ``eqx.Module`` policies callable as ``controller(t, observation)``, and the
control engineer's baselines (LQR, residual control on top of it, MPC) and the optimum of small
problems by value iteration."""

from ._lqr import LQR, lqr_gain, solve_dare
from ._mpc import MPC, MPCState
from ._residual import Residual
from ._squashed import Squashed
from ._symmetric import Mirrored
from ._value_iteration import ValueIteration

__all__ = [
    "LQR",
    "MPC",
    "MPCState",
    "Mirrored",
    "Residual",
    "Squashed",
    "ValueIteration",
    "lqr_gain",
    "solve_dare",
]
