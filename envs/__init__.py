"""Environments built on the diffsim core: examples of what a user writes.

``RECIPES`` maps command-line names to training recipes (``diffsim train NAME``);
``CLI_PLUGINS`` lists functions ``add_commands(subparsers)`` through which an env module
adds its own ``diffsim`` sub-commands.
"""

from . import cartpole, pendulum, trebuchet
from .cartpole import CartPole
from .pendulum import Pendulum
from .trebuchet import _cli as _trebuchet_cli

CLI_PLUGINS = [_trebuchet_cli.add_commands]
RECIPES = {
    recipe.name: recipe
    for recipe in (
        pendulum.recipe,
        cartpole.recipe,
        cartpole.continuous_recipe,
        cartpole.swingup_recipe,
    )
}

__all__ = ["CartPole", "Pendulum", "cartpole", "pendulum", "trebuchet"]
