"""The documentation: a strict site build with every public name and every notebook, stored
notebooks whose outputs come from their current code, links that stay inside the project,
and (when Chromium is installed) the built pages rendering in a real browser."""

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import diffsim

ROOT = Path(__file__).parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "docs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


execute_notebooks = _load("execute_notebooks")


def _build(tmp: Path, config: Path) -> subprocess.CompletedProcess:
    """A strict build of `config` into tmp/site; notebooks rendered from stored outputs."""
    environment = dict(os.environ, NO_MKDOCS_2_WARNING="1", DISABLE_MKDOCS_2_WARNING="true")
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config),
         "--site-dir", str(tmp / "site")],
        cwd=ROOT, capture_output=True, text=True, env=environment, timeout=600,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("mkdocs", reason="the docs extra is not installed")
    tmp = tmp_path_factory.mktemp("docs")
    built = _build(tmp, ROOT / "mkdocs.yml")
    assert built.returncode == 0, built.stdout + built.stderr
    return tmp / "site"


def _anchors(page: Path) -> set[str]:
    return set(re.findall(r'id="([^"]+)"', page.read_text()))


def test_every_public_name_has_an_api_entry(site):
    core = _anchors(site / "api" / "diffsim" / "index.html")
    missing = [name for name in diffsim.__all__ if f"diffsim.{name}" not in core]
    assert not missing
    for package in (diffsim.envs, diffsim.controllers, diffsim.rl, diffsim.testing):
        anchors = _anchors(site / "api" / package.__name__ / "index.html")
        for name in package.__all__:
            value = getattr(package, name)
            if isinstance(value, type(diffsim)):  # a module: a page of its own
                assert (site / "api" / value.__name__ / "index.html").exists(), name
            else:  # documented here, or on the page it was first documented on
                assert f"{package.__name__}.{name}" in anchors or "documented as" in (
                    site / "api" / package.__name__ / "index.html"
                ).read_text(), (package.__name__, name)


def test_every_notebook_is_rendered_with_its_outputs(site):
    for path in NOTEBOOKS:
        page = (site / "notebooks" / path.stem / "index.html").read_text()
        stored = json.loads(path.read_text())
        images = sum(
            "image/png" in output.get("data", {})
            for cell in stored["cells"]
            for output in cell.get("outputs", [])
        )
        assert page.count("data:image/png;base64") >= images, path.name
        assert "jp-OutputArea" in page, path.name


def test_concept_pages_are_built(site):
    for page in ("evaluation", "trebuchet", "environments", "transitions", "rollouts",
                 "training", "rl"):
        assert (site / "concepts" / page / "index.html").exists(), page
    trebuchet = (site / "concepts" / "trebuchet" / "index.html").read_text()
    assert "74.7284" in trebuchet and "0.0152037" in trebuchet


def test_strict_build_fails_on_a_broken_reference(tmp_path):
    """Strictness is real: one page with a reference to a name that does not exist."""
    pytest.importorskip("mkdocs", reason="the docs extra is not installed")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "index.md").write_text("See [`nothing`][diffsim.no_such_name] and [x](missing.md).\n")
    config = tmp_path / "mkdocs.yml"
    config.write_text(
        f"site_name: t\ndocs_dir: {docs}\nstrict: true\n"
        "plugins:\n  - mkdocstrings:\n      handlers:\n        python:\n"
        f"          paths: [{ROOT}]\n"
    )
    built = _build(tmp_path, config)
    assert built.returncode != 0
    assert "missing.md" in built.stderr + built.stdout
    assert "diffsim.no_such_name" in built.stderr + built.stdout


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_stored_notebook_outputs_come_from_its_code(path):
    """The stamp written by docs/execute_notebooks.py matches the stored code cells."""
    assert execute_notebooks.stale(path) is None
    notebook = json.loads(path.read_text())
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert all(cell.get("execution_count") for cell in code), "not executed top to bottom"
    assert not [output for cell in code for output in cell.get("outputs", [])
                if output.get("output_type") == "error"]


def test_code_hash_sees_code_and_only_code():
    notebook = json.loads(NOTEBOOKS[0].read_text())
    before = execute_notebooks.code_hash(notebook)
    for cell in notebook["cells"]:
        if cell["cell_type"] == "markdown":
            cell["source"] = "changed prose"
        else:
            cell["outputs"] = []
    assert execute_notebooks.code_hash(notebook) == before
    code = next(cell for cell in notebook["cells"] if cell["cell_type"] == "code")
    code["source"] = "".join(code["source"]) + "\n# edited"
    assert execute_notebooks.code_hash(notebook) != before


def test_documentation_stays_inside_the_project():
    """No README, notebook, docs page, docstring or benchmark sends the reader to files
    outside the repository (the project's private notes)."""
    sources = [ROOT / "README.md", *NOTEBOOKS, *(ROOT / "docs").rglob("*.md")]
    for folder in ("diffsim", "envs", "controllers", "benchmarks"):
        sources += (ROOT / folder).rglob("*.py")
    pattern = re.compile(r"(\.\./)?shared/specs|/work/shared|\.\./shared")
    offenders = [str(p.relative_to(ROOT)) for p in sources if pattern.search(p.read_text())]
    assert not offenders


def test_site_renders_in_a_headless_browser(site, tmp_path):
    check_site = _load("check_site")
    if check_site.find_browser() is None:
        if os.environ.get("DIFFSIM_REQUIRE_BROWSER"):  # CI installs it: its absence is a failure
            pytest.fail("DIFFSIM_REQUIRE_BROWSER is set but no Chromium is installed")
        pytest.skip("no Chromium installed (Debian: apt-get install chromium)")
    report = check_site.check_site(site, screenshots=tmp_path)
    assert report == {page: [] for page in report}, report
    assert len(list(tmp_path.glob("*.png"))) == len(check_site.PAGES)
