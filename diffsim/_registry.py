"""Where the command line finds envs: installed recipes and commands (entry points), and
user envs named as ``path/to/file.py:Name`` or ``package.module:Name``."""

from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.metadata
import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path

from . import _validate as validate
from ._env import AbstractEnv
from ._errors import DiffsimError, first_line
from ._mlp import MLPPolicy
from ._recipe import Recipe, adam_cosine

RECIPE_GROUP = "diffsim.recipes"
"""Entry-point group of installed recipes: ``name = "package.module:recipe"``."""
COMMAND_GROUP = "diffsim.commands"
"""Entry-point group of functions ``add_commands(subparsers)`` adding CLI sub-commands."""


def _entry_points(group: str):
    return sorted(importlib.metadata.entry_points(group=group), key=lambda e: e.name)


def named_entry_points(group: str, kind: type, what: str) -> dict:
    """Load every entry point of ``group``, each of which must be an instance of ``kind``
    whose ``name`` is the entry point's (``what`` names it in the error)."""
    found = {}
    for entry in _entry_points(group):
        value = entry.load()
        if not isinstance(value, kind) or value.name != entry.name:
            raise DiffsimError(
                f"entry point {entry.name} = {entry.value} must be {what} named {entry.name!r}"
            )
        found[entry.name] = value
    return found


@functools.cache
def recipes() -> dict[str, Recipe]:
    """Every installed recipe by name (the shipped envs' included), from the
    ``diffsim.recipes`` entry-point group; a package registers its own in its
    ``pyproject.toml``::

        [project.entry-points."diffsim.recipes"]
        my-env = "my_package.my_module:recipe"

    Returns:
        ``{name: Recipe}`` for every installed recipe.
    """
    return named_entry_points(RECIPE_GROUP, Recipe, "a diffsim.Recipe")


def command_plugins() -> list[Callable]:
    """The ``add_commands(subparsers)`` functions of the ``diffsim.commands`` group."""
    return [entry.load() for entry in _entry_points(COMMAND_GROUP)]


def load_recipe(spec: str) -> Recipe:
    """The recipe for ``spec``: an installed recipe's name, or ``path/to/file.py:Name`` or
    ``package.module:Name`` naming a :class:`Recipe`, an :class:`AbstractEnv` subclass
    (built with its defaults) or an env instance. Envs without a recipe get
    :func:`default_recipe`.

    Args:
        spec: a recipe name, ``path/to/file.py:Name`` or ``package.module:Name``.

    Returns:
        A :class:`Recipe`.

    Example: ``diffsim.load_recipe("my_env.py:Rocket").run(seed=0)``.
    """
    if not isinstance(spec, str):
        raise DiffsimError(
            f"the env must be named by a string (an installed recipe such as 'pendulum', or "
            f"'path/to/file.py:Name'), got {spec!r:.60}"
        )
    if ":" not in spec:
        known = recipes()
        if spec in known:
            return known[spec]
        raise DiffsimError(
            f"unknown env {spec!r}: choose from {', '.join(sorted(known))}, or name your own "
            "as path/to/file.py:ClassName or package.module:ClassName"
        )
    where, _, name = spec.rpartition(":")
    obj = getattr(_load_module(where), name, None)
    if obj is None:
        raise DiffsimError(f"{where} has no {name!r}")
    if isinstance(obj, Recipe):
        return dataclasses.replace(obj, name=spec)
    if inspect.isclass(obj) and issubclass(obj, AbstractEnv):
        # equinox's own record of what a Module subclass leaves abstract
        missing = obj.__abstractmethods__ | obj.__abstractvars__ | obj.__abstractclassvars__
        if missing:
            raise DiffsimError(
                f"{spec} is an abstract class: it does not define {', '.join(sorted(missing))}"
            )
        return default_recipe(spec, obj)
    if isinstance(obj, AbstractEnv):
        return default_recipe(spec, lambda: obj)
    raise DiffsimError(
        f"{spec} is a {type(obj).__name__}, not a diffsim.Recipe or a concrete AbstractEnv"
    )


def env_name(spec: str) -> str:
    """The name a run's default folder takes: an installed env's, or the class (or
    object) that ``path/to/file.py:NAME`` or ``package.module:NAME`` names."""
    return spec.rpartition(":")[2]


def env_record(spec: str) -> dict[str, str]:
    """What a checkpoint records of the env ``spec`` names: ``{"env": spec}``, and for a
    ``FILE.py:Name`` spec the file's absolute path as ``"env_file"``, so that any path to
    that file, from any working directory, finds it again (:func:`same_env`)."""
    file = _file_of(spec)
    return {"env": spec} | ({} if file is None else {"env_file": str(file)})


def same_env(recorded: dict, given: str) -> bool:
    """Whether the env a checkpoint's metadata records (:func:`env_record`) is the one
    ``given`` names: the same installed name or module, or the same class in the same file,
    whichever path names it (``my_env.py:Env``, ``./my_env.py:Env``, its absolute path). A
    record without ``"env_file"`` (written before it existed) resolves its path from the
    working directory."""
    spec = recorded.get("env", given)
    file, other = _file_of(spec), _file_of(given)
    if file is None or other is None:
        return spec == given
    file = Path(recorded.get("env_file", file))
    return env_name(spec) == env_name(given) and file == other


def _file_of(spec: str) -> Path | None:
    """The absolute path of the file a ``FILE.py:Name`` spec names (resolved from the
    working directory), else ``None``."""
    where = spec.rpartition(":")[0]
    return Path(where).resolve() if where.endswith(".py") else None


def _load_module(where: str):
    try:
        if where.endswith(".py"):
            path = Path(where)
            if not path.is_file():
                raise DiffsimError(f"no Python file at {path}")
            folder = str(path.resolve().parent)
            if folder not in sys.path:  # its own imports find the modules beside it
                sys.path.insert(0, folder)
            name = f"_diffsim_user_{path.stem}"
            module_spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[name] = module  # dataclasses (and so equinox) look their module up
            module_spec.loader.exec_module(module)
            return module
        return importlib.import_module(where)
    except DiffsimError:
        raise
    except (Exception, SystemExit) as error:  # the user's code: one line, whatever it is
        raise DiffsimError(
            f"cannot import {where}: {type(error).__name__}: {first_line(error)}"
        ) from None


def default_recipe(name: str, make_env: Callable[[], AbstractEnv]) -> Recipe:
    """A sensible recipe for an env that brings none: a 64x64 tanh MLP sized from the env
    (``diffsim.MLPPolicy``), Adam at 3e-3 with global-norm clipping and cosine
    decay, 300 updates of 64 episodes on windows of at most 50 control steps carried from
    window to window, a straight-through estimator for discrete actions, an evaluation on
    100 episodes every 25 updates.

    Args:
        name: the env's name on the command line.
        make_env: builds the env, without arguments.

    Returns:
        A :class:`Recipe`.
    """
    from ._spaces import Discrete, StraightThrough

    validate.instance("name", name, str, "the env's name on the command line, a string")
    validate.callable_("make_env", make_env, "a function make_env() -> env")
    try:
        env = make_env()
    except DiffsimError:
        raise
    except Exception as error:  # the user's code: report it in one line, whatever it is
        raise DiffsimError(
            f"cannot build {name}: {type(error).__name__}: {first_line(error)}"
        ) from None
    if not isinstance(env, AbstractEnv):
        raise DiffsimError(f"make_env() must return a diffsim.AbstractEnv, got {env!r:.60}")
    options = dict(
        batch_size=64,
        window=min(env.episode_steps, 50),
        eval_every=25,
        eval_episodes=100,
    )
    if isinstance(env.action_space, Discrete):
        options["estimator"] = StraightThrough()
    return Recipe(
        name=name,
        make_env=make_env,
        make_controller=_default_controller,
        make_optimiser=functools.partial(adam_cosine, 3e-3),
        iterations=300,
        quick_iterations=10,
        train_options=options,
    )


def _default_controller(env: AbstractEnv, key):
    return MLPPolicy.for_env(env, width=64, depth=2, key=key)
