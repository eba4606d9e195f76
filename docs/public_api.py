"""Which names the API reference documents: found, never listed.

Used by ``docs/gen_pages.py`` (the pages) and ``tests/test_docstring_examples.py`` (every
public class has an example).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import types

SKIPPED_MODULES = {"cli"}  # the command line documents itself: `diffsim --help`


def public_names(module: types.ModuleType) -> list[str]:
    """``__all__``, or the public names the module defines itself (not its imports)."""
    names = getattr(module, "__all__", None)
    if names is not None:
        return list(names)
    return sorted(
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == module.__name__
    )


def public_submodules(package: types.ModuleType) -> list[str]:
    """Public modules inside a package, as dotted names, found on disk and in ``__all__``."""
    found = {
        f"{package.__name__}.{info.name}"
        for info in pkgutil.iter_modules(package.__path__)
        if not info.name.startswith("_") and info.name not in SKIPPED_MODULES
    }
    for name in getattr(package, "__all__", []):
        if isinstance(getattr(package, name, None), types.ModuleType):
            found.add(f"{package.__name__}.{name}")
    return sorted(found)


def api_modules() -> list[str]:
    """The core first, then its public submodules, then each plug-in package and its modules."""
    import diffsim

    modules = ["diffsim"] + public_submodules(diffsim)
    for package in ("diffsim.envs", "diffsim.controllers"):
        modules += [package] + public_submodules(importlib.import_module(package))
    return list(dict.fromkeys(modules))
