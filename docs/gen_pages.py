"""Generate the API reference, the notebook pages and the navigation at build time.

mkdocs-gen-files runs this during `mkdocs build`; nothing it writes lands in the source tree.
Every public name is found, never listed: the names in ``diffsim.__all__``; the public
submodules of ``diffsim`` (``rl``, ``testing``, ``plotting``, ...) with their ``__all__`` (or,
without one, the public names they define); ``diffsim.envs`` and ``diffsim.controllers`` with
their ``__all__`` and every public module inside them; and every ``notebooks/*.ipynb``.
A new module, env, controller or notebook therefore appears in the site once it is merged.
"""

from __future__ import annotations

import importlib
import inspect
import json
import sys
import types
from pathlib import Path

import mkdocs_gen_files

sys.path.insert(0, str(Path(__file__).parent))
from public_api import api_modules, public_names  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

CONCEPTS = [
    ("Environments", "concepts/environments.md"),
    ("Transitions and solvers", "concepts/transitions.md"),
    ("Rollouts", "concepts/rollouts.md"),
    ("Training", "concepts/training.md"),
    ("Which differentiable method", "concepts/dp-methods.md"),
    ("Evaluation protocol", "concepts/evaluation.md"),
    ("Errors: nothing silent, nothing lost", "concepts/errors.md"),
    ("Scaling: devices, long horizons, float64", "concepts/scaling.md"),
    ("System identification", "concepts/system-identification.md"),
    ("Controllers: LQR, residual, MPC", "concepts/controllers.md"),
    ("The RL bridge", "concepts/rl.md"),
    ("The command line", "concepts/cli.md"),
    ("The trebuchet's physics", "concepts/trebuchet.md"),
]
RESULTS = [
    ("Overview", "results/index.md"),
    ("Pendulum swing-up", "results/pendulum.md"),
    ("CartPole", "results/cartpole.md"),
    ("Trebuchet", "results/trebuchet.md"),
    ("More environments", "results/more-envs.md"),
    ("DP against RL", "results/compare.md"),
    ("Controllers", "results/controllers.md"),
    ("Benchmarks", "results/benchmarks.md"),
]


def module_page(name: str, documented: dict[int, str]) -> str:
    """One page: the module's docstring, then one mkdocstrings entry per public name; an
    object already documented on an earlier page (a re-export) links there instead."""
    module = importlib.import_module(name)
    lines = [f"# `{name}`", "", f"::: {name}", "    options:", "      members: false",
             "      show_root_heading: false", ""]
    for attribute in public_names(module):
        value = getattr(module, attribute)
        if isinstance(value, types.ModuleType):
            lines += [f"- [`{value.__name__}`]({value.__name__}.md): its own page", ""]
            continue
        if id(value) in documented and (inspect.isclass(value) or inspect.isfunction(value)):
            lines += [f"- `{attribute}`: documented as [`{documented[id(value)]}`]"
                      f"[{documented[id(value)]}]", ""]
            continue
        if inspect.isclass(value) or inspect.isfunction(value):
            documented[id(value)] = f"{name}.{attribute}"
        lines += [f"::: {name}.{attribute}", ""]
    return "\n".join(lines)


def notebook_title(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    for cell in cells:
        if cell["cell_type"] == "markdown":
            for line in "".join(cell["source"]).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return path.stem.replace("_", " ").capitalize()


def main() -> None:
    nav = ["* [Home](index.md)", "* [Getting started](getting-started.md)", "* Concepts"]
    nav += [f"    * [{title}]({path})" for title, path in CONCEPTS]
    nav.append("* Results")
    nav += [f"    * [{title}]({path})" for title, path in RESULTS]
    nav.append("* API reference")
    documented: dict[int, str] = {}
    for name in api_modules():
        with mkdocs_gen_files.open(f"api/{name}.md", "w") as page:
            page.write(module_page(name, documented))
        nav.append(f"    * [{name}](api/{name}.md)")
    nav.append("* Notebooks")
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        with mkdocs_gen_files.open(f"notebooks/{path.name}", "wb") as copy:
            copy.write(path.read_bytes())
        nav.append(f"    * [{notebook_title(path)}](notebooks/{path.name})")
    with mkdocs_gen_files.open("SUMMARY.md", "w") as summary:
        summary.write("\n".join(nav) + "\n")


main()
