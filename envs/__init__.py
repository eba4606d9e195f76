"""Environments built on the diffsim core: examples of what a user writes.

``CLI_PLUGINS`` lists functions ``add_commands(subparsers)`` through which an env
module adds its own ``diffsim`` sub-commands.
"""

from . import cartpole
from . import pendulum, trebuchet
from .cartpole import CartPole
from .pendulum import Pendulum
from .trebuchet import _cli as _trebuchet_cli

CLI_PLUGINS = [_trebuchet_cli.add_commands]
RECIPES = {"pendulum": pendulum.recipe}
RECIPES["cartpole"] = cartpole.recipe
RECIPES["cartpole-continuous"] = cartpole.continuous_recipe
"""Training recipes by command-line name (``diffsim train NAME``)."""

__all__ = ["Pendulum", "trebuchet"]
__all__ += ["CartPole", "cartpole"]
