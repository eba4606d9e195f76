"""The package's layering (the core imports no plug-in and no RL library; plug-ins use only
the public API), and the wheel built from the repository installing in a fresh venv."""

import ast
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import diffsim

PACKAGE = Path(diffsim.__file__).parent
PLUG_INS = ("diffsim.envs", "diffsim.controllers", "diffsim.rl")
RL_LIBRARIES = ("gymnax", "gymnasium", "rejax", "flax", "brax", "distrax")


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """``(level, module, names)`` of every import statement in ``path``, nested ones too."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(0, alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or "", [a.name for a in node.names]))
    return found


def test_the_core_imports_no_plug_in_and_no_rl_library():
    core = sorted(PACKAGE.glob("_*.py"))
    assert len(core) > 20
    for path in core:
        for level, module, names in _imports(path):
            absolute = module if level == 0 else f"diffsim.{module}".rstrip(".")
            targets = [absolute] + [f"{absolute}.{name}" for name in names]
            for target in targets:
                assert not target.startswith(PLUG_INS), (path.name, target)
                assert target.split(".")[0] not in RL_LIBRARIES, (path.name, target)


def test_plug_ins_import_only_the_public_api():
    public = set(diffsim.__all__)
    for package in ("envs", "controllers", "rl"):
        for path in sorted((PACKAGE / package).rglob("*.py")):
            for level, module, names in _imports(path):
                if level:  # their own package's modules
                    continue
                if module == "diffsim":
                    assert set(names) <= public, (path.name, set(names) - public)
                elif module.startswith("diffsim."):
                    assert not any(part.startswith("_") for part in module.split(".")), (
                        path.name,
                        module,
                    )


def test_import_diffsim_imports_no_rl_library_and_no_plotting():
    code = "import sys, diffsim; print(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert not [m for m in loaded if m.split(".")[0] in (*RL_LIBRARIES, "matplotlib")]
    assert not [m for m in loaded if m.startswith(PLUG_INS)]


def test_wheel_installs_and_imports_in_a_fresh_venv(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            ".",
        ],
        check=True,
        cwd=str(Path(__file__).parents[1]),
    )
    (wheel,) = (tmp_path / "dist").glob("diffsim-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for module in [
        "diffsim/__init__.py",
        "diffsim/envs/pendulum.py",
        "diffsim/envs/trebuchet/__init__.py",
        "diffsim/controllers/_lqr.py",
        "diffsim/rl/_methods.py",
    ]:
        assert module in names, module

    fresh = tmp_path / "venv"
    venv.create(fresh, with_pip=False)
    python = fresh / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)  # a wheel install is an unpack into site-packages
    # dependencies come from this environment, the package itself only from the wheel
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"])
    result = subprocess.run(
        [
            str(python),
            "-c",
            "import diffsim, diffsim.envs, diffsim.controllers;"
            "print(diffsim.__file__); print(diffsim.envs.Pendulum().control_dt)",
        ],
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    location, dt = result.stdout.split()
    assert location.startswith(site) and float(dt) == 0.05
