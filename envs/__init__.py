"""Environments built on the diffsim core: examples of what a user writes.

Their recipes (``diffsim train NAME``) and the trebuchet's commands (``diffsim shoot``,
``diffsim aim``) are registered as entry points in ``pyproject.toml``, the mechanism any
installed package uses to add its own.
"""

from . import cartpole, pendulum, trebuchet
from .cartpole import CartPole
from .pendulum import Pendulum

__all__ = ["CartPole", "Pendulum", "cartpole", "pendulum", "trebuchet"]
