"""Environments built on the diffsim core: examples of what a user writes.

Their recipes (``diffsim train NAME``) and the trebuchet's commands (``diffsim shoot``,
``diffsim aim``) are registered as entry points in ``pyproject.toml``, the mechanism any
installed package uses to add its own.
"""

from . import acrobot, cartpole, epidemic, pendulum, quadrotor, trebuchet
from .acrobot import Acrobot
from .cartpole import CartPole
from .epidemic import Epidemic
from .pendulum import Pendulum
from .quadrotor import PlanarQuadrotor

__all__ = [
    "Acrobot",
    "CartPole",
    "Epidemic",
    "Pendulum",
    "PlanarQuadrotor",
    "acrobot",
    "cartpole",
    "epidemic",
    "pendulum",
    "quadrotor",
    "trebuchet",
]
