"""The wheel built from the repository installs and imports in a fresh venv."""

import subprocess
import sys
import sysconfig
import venv
import zipfile


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
        cwd=str(__import__("pathlib").Path(__file__).parents[1]),
    )
    (wheel,) = (tmp_path / "dist").glob("diffsim-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for module in [
        "diffsim/__init__.py",
        "diffsim/envs/pendulum.py",
        "diffsim/controllers/_mlp.py",
        "diffsim/envs/trebuchet/__init__.py",
    ]:
        assert module in names, module
    assert not any(name.startswith(("envs/", "controllers/")) for name in names)

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
    (__import__("pathlib").Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"])
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
