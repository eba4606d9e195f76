"""Execute notebooks in full mode, store their outputs, and stamp a hash of their code.

Usage, from the repository root (``make notebooks`` runs it on every notebook)::

    .venv/bin/python docs/execute_notebooks.py notebooks/pendulum.ipynb [more.ipynb ...]
    .venv/bin/python docs/execute_notebooks.py            # every notebooks/*.ipynb
    .venv/bin/python docs/execute_notebooks.py --check    # only compare the stamps, execute nothing

Each notebook runs top to bottom in a fresh Jupyter kernel, in its own folder, with
``DIFFSIM_QUICK`` removed from the environment (full mode) and progress bars off
(``TQDM_DISABLE=1``), and is written back in place with its outputs. Its metadata then holds
``diffsim.code_sha256``, the SHA-256 of its code cells' sources: ``tests/test_docs.py``
recomputes it from the stored cells and fails when a code cell was edited after the notebook
was last executed, so the outputs shown in the docs always come from the code shown next to
them. A notebook that raises is not written back.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
STAMP = "diffsim"


def code_hash(notebook: dict) -> str:
    """SHA-256 (hex) of the sources of a notebook's code cells, in order.

    Args:
        notebook: a notebook as a dict (``json.load`` of an ``.ipynb``, or an nbformat node).

    Returns:
        64 hex digits; changes when any code cell's text changes, is added, removed or moved,
        and not when only markdown or outputs change.
    """
    sources = []
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            source = cell["source"]
            sources.append(source if isinstance(source, str) else "".join(source))
    return hashlib.sha256(json.dumps(sources).encode()).hexdigest()


def stale(path: Path) -> str | None:
    """Why the stored outputs of `path` do not come from its code, or None when they do."""
    notebook = json.loads(path.read_text())
    stamp = notebook.get("metadata", {}).get(STAMP, {})
    if "code_sha256" not in stamp:
        return f"{path.name} was never executed with docs/execute_notebooks.py"
    if stamp.get("mode") != "full":
        return f"{path.name} was executed in {stamp.get('mode')!r} mode, not full mode"
    if stamp["code_sha256"] != code_hash(notebook):
        return f"{path.name}: a code cell changed since the notebook was executed"
    return None


def execute(path: Path, timeout: int) -> float:
    """Run `path` in full mode, write it back with outputs and the stamp; returns seconds."""
    import nbformat
    from nbclient import NotebookClient

    os.environ.pop("DIFFSIM_QUICK", None)
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    # stored outputs are results: no progress bars (tqdm reads TQDM_DISABLE), and no warning
    # that the kernel lacks ipywidgets for them
    os.environ["TQDM_DISABLE"] = "1"
    os.environ["PYTHONWARNINGS"] = "ignore:IProgress not found"
    notebook = nbformat.read(path, as_version=4)
    started = time.perf_counter()
    NotebookClient(
        notebook,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    seconds = time.perf_counter() - started
    import jax

    notebook.metadata[STAMP] = {
        "code_sha256": code_hash(notebook),
        "mode": "full",
        "execution_seconds": round(seconds, 1),
        "jax": jax.__version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
    }
    nbformat.write(notebook, path)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: notebooks/*.ipynb")
    parser.add_argument("--check", action="store_true", help="compare stamps, execute nothing")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per cell")
    args = parser.parse_args(argv)
    paths = args.notebooks or sorted(NOTEBOOKS.glob("*.ipynb"))
    if args.check:
        problems = [problem for path in paths if (problem := stale(path))]
        print("\n".join(problems) or f"{len(paths)} notebooks up to date")
        return 1 if problems else 0
    for path in paths:
        print(f"executing {path} (full mode) ...", flush=True)
        seconds = execute(path.resolve(), args.timeout)
        print(f"  {seconds:.0f} s, written with outputs", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
