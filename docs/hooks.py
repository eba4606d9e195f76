"""mkdocs hook: lay out the package's sources for mkdocstrings before it starts."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from mkdocs.plugins import event_priority

ROOT = Path(__file__).resolve().parents[1]


def source_tree() -> None:
    """Lay out ``build/griffe/diffsim`` as the installed package looks (a copy): mkdocstrings
    reads sources statically, and ``diffsim.envs`` / ``diffsim.controllers`` live in ``envs/`` and
    ``controllers/`` (``package-dir`` in pyproject.toml), so they are copied in as subfolders."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        mapping = {"diffsim": "diffsim", "diffsim.envs": "envs",
                   "diffsim.controllers": "controllers"}
    else:
        pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
        mapping = pyproject["tool"]["setuptools"]["package-dir"]
    tree = ROOT / os.environ.get("DIFFSIM_DOCS_SOURCES", "build/griffe")
    if tree.exists():
        shutil.rmtree(tree)
    for package, folder in sorted(mapping.items()):  # copies: griffe resolves symlinks
        shutil.copytree(ROOT / folder, tree.joinpath(*package.split(".")), dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


@event_priority(100)  # before mkdocstrings creates its Python handler, which reads `paths`
def on_config(config):
    source_tree()
    return config
