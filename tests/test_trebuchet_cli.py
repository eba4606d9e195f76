"""The trebuchet's command line (``diffsim shoot``, ``diffsim aim``) and its plots.

Compilation dominates: each jitted function is compiled once per module (module-scoped
fixtures) and shared by the tests that need it. Bad inputs run in a process of their
own, as a user would, and are rejected before anything is compiled.
"""

import contextlib
import io
import json
import os
import subprocess
import sys

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib import animation
from matplotlib.axes import Axes

from diffsim.cli import main
from diffsim.envs.trebuchet import (
    animate_shot,
    plot_distance,
    trajectory,
    trebuchet_jl,
)

from helpers import cli_outcomes

REFERENCE = ["--wind", "-2", "--angle", "45", "--weight", "200", "--preset", "trebuchet_jl"]


def _run(argv):
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(argv)
    return code, stdout.getvalue(), stderr.getvalue()


@pytest.fixture(scope="module")
def reference_shot():
    code, out, err = _run(["shoot", *REFERENCE, "--grad", "--json"])
    assert code == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def reference_path():
    return trajectory(-2.0, 45.0, 200.0, trebuchet_jl())


def test_shoot_reproduces_the_published_numbers(reference_shot):
    assert round(reference_shot["distance_m"], 2) == 74.73
    gradient = [
        reference_shot["d_distance_d_wind_m_per_m_s"],
        reference_shot["d_distance_d_angle_m_per_deg"],
        reference_shot["d_distance_d_weight_m_per_lb"],
    ]
    np.testing.assert_allclose(gradient, [4.02, -0.99, 0.051], atol=0.005)  # the post's
    assert abs(gradient[2] - 0.051) < 0.001  # within a unit of the post's last digit
    assert reference_shot["status"] == 0 and reference_shot["message"] == "ok"
    assert 0 < reference_shot["lift_off_s"] < reference_shot["release_s"]
    assert reference_shot["release_s"] < reference_shot["landing_s"]


def _subprocess(argv, cache=None):
    """``python -m diffsim.cli ARGV`` in a fresh process, its compilation cache in
    ``cache`` when given: (exit status, stdout, stderr)."""
    env = dict(os.environ)
    if cache is not None:
        env["DIFFSIM_CACHE_DIR"] = str(cache)
    process = subprocess.run(
        [sys.executable, "-m", "diffsim.cli", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    return process.returncode, process.stdout, process.stderr


# Each is rejected before anything is compiled: by argparse or by the commands' validate
# hook. They run one after another in one process (`helpers.cli_outcomes`); the failed
# shot below is a whole process ending with status 2.
BAD_INPUTS = [
    (["shoot", "--angle", "nan", "--weight", "200"], "--angle must be a finite number"),
    (["shoot", "--wind", "inf", "--angle", "45", "--weight", "200"], "--wind must be a finite"),
    (["shoot", "--wind", "1e6", "--angle", "45", "--weight", "200", "--grad"], "--wind must be"),
    (["shoot", "--wind", "-1e6", "--angle", "45", "--weight", "200"], "100 m/s"),
    (["shoot", "--angle", "1000", "--weight", "200"], "--angle must be strictly between 0"),
    (["shoot", "--angle", "90", "--weight", "200"], "--angle must be strictly between 0"),
    (["shoot", "--angle", "45", "--weight", "-5"], "--weight must be a positive number"),
    (["shoot", "--angle", "45", "--weight", "1e400"], "--weight must be a finite number"),
    (["shoot", "--angle", "45", "--weight", "2e6"], "at most 1e+06, got 2000000.0"),
    (["shoot", "--angle", "45"], "the following arguments are required: --weight"),
    (["shoot", "--angle", "forty-five", "--weight", "200"], "argument --angle: invalid float"),
    (["aim", "--target", "-3"], "--target must be a positive"),
    (["aim", "--target", "nan"], "--target must be a positive, finite"),
    (["aim", "--target", "60", "--wind", "-1e6"], "--wind must be at most 100 m/s"),
    (["aim", "--target", "60", "--wind=-inf"], "--wind must be a finite number"),
    # "-inf" after a space is a value, as "-1e6" is (argparse alone would read an option)
    (["aim", "--target", "60", "--wind", "-inf"], "--wind must be a finite number"),
    (["shoot", "--wind", "-NaN", "--angle", "45", "--weight", "200"], "--wind must be a finite"),
    (["aim"], "the following arguments are required: --target"),
    (["aim", "--target", "sixty"], "argument --target: invalid float"),
]


@pytest.fixture(scope="module")
def bad_input_outcomes():
    argvs = [argv for argv, _ in BAD_INPUTS]
    return dict(zip(map(" ".join, argvs), cli_outcomes(argvs), strict=True))


@pytest.mark.parametrize("argv, problem", BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_inputs_exit_2_with_one_line_naming_the_problem(argv, problem, bad_input_outcomes):
    code, out, err = bad_input_outcomes[" ".join(argv)]
    assert code == 2, (out, err)
    assert out == ""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"diffsim {argv[0]}: error: ")
    assert problem in lines[0], lines[0]


def test_a_failed_shot_exits_2_and_its_json_carries_the_status(tmp_path):
    """A valid but heavy counterweight at a low angle: 60 Hz Euler blows up to a NaN
    state. The one run of this file that compiles (the reference preset's gradient,
    about 10 s)."""
    argv = ["shoot", "--angle", "10", "--weight", "1e4", "--preset", "trebuchet_jl"]
    code, out, err = _subprocess([*argv, "--grad", "--json"], cache=tmp_path)
    assert code == 2, err
    assert "Traceback" not in err
    (line,) = err.strip().splitlines()
    assert line == (
        "diffsim shoot: error: the shot failed (status 5): the ODE solver failed "
        "(max_steps reached or a NaN state)"
    )
    result = json.loads(out)  # valid JSON: null, not NaN, where there is no number
    assert result["status"] == 5 and result["message"] in line
    assert result["distance_m"] is None
    assert "d_distance_d_wind_m_per_m_s" not in result  # no gradient of a failed shot


REPEATED = {
    "shoot": ["shoot", *REFERENCE],
    "shoot --grad": ["shoot", *REFERENCE, "--grad"],
    "aim": ["aim", "--target", "60", "--wind=-10", "--preset", "trebuchet_jl", "--json"],
}


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(argv, marks=pytest.mark.slow) if name == "shoot --grad" else argv
        for name, argv in REPEATED.items()
    ],
    ids=REPEATED.keys(),
)
def test_a_repeated_command_hits_the_persistent_compilation_cache(tmp_path, argv):
    """Every trebuchet command's second run compiles nothing: no program of theirs holds a
    host callback (which JAX never caches), so the second run writes no new entry."""
    cache = tmp_path / "jax-cache"
    code, first, err = _subprocess(argv, cache=cache)
    assert code == 0, err
    entries = {path.name for path in cache.iterdir()}
    assert entries, "the first run wrote no cache entry"
    code, second, err = _subprocess(argv, cache=cache)
    assert code == 0, err
    assert {path.name for path in cache.iterdir()} == entries  # all hits, nothing new
    if argv[0] == "shoot":
        assert "distance_m: 74.7284" in first.splitlines()
        assert second == first
    else:
        first, second = json.loads(first), json.loads(second)
        assert first["reachable"] and abs(first["distance_m"] - 60.0) < 0.01
        assert (second["angle_deg"], second["weight_lb"]) == (
            first["angle_deg"],
            first["weight_lb"],
        )


@pytest.fixture(scope="module")
def aim_runs():
    # The reference preset: its aim compiles in half the time of the adaptive default's.
    preset = ["--preset", "trebuchet_jl"]
    return [
        _run(["aim", "--target", "60", "--wind", "1", *preset, "--json"]),
        _run(["aim", "--target", "100", "--wind", "-10", *preset]),
    ]


@pytest.mark.slow  # compiling aim takes about 30 s on a 2-core CPU
def test_aim_hits_a_reachable_target(aim_runs):
    code, out, _ = aim_runs[0]
    assert code == 0
    result = json.loads(out)
    assert result["reachable"] is True
    assert result["miss_m"] < 0.01
    assert abs(result["distance_m"] - 60.0) < 0.01
    assert 10 <= result["angle_deg"] <= 80 and 50 <= result["weight_lb"] <= 500
    assert result["solve_ms"] > 0


@pytest.mark.slow
def test_aim_reports_an_unreachable_target(aim_runs):
    code, out, _ = aim_runs[1]
    assert code == 0
    assert "reachable: False" in out
    last = out.strip().splitlines()[-1]
    assert last.startswith("target unreachable: closest shot lands at ")
    closest = float(last.split()[-2])
    assert 20 < closest < 100


@pytest.mark.slow  # 7 s: in `make test-all`
def test_trajectory_ends_where_shoot_lands(reference_path, reference_shot):
    path = reference_path
    assert path.projectile[-1, 0] == pytest.approx(float(path.shot.distance), abs=0.01)
    assert path.projectile[-1, 0] == pytest.approx(reference_shot["distance_m"], abs=0.01)
    assert path.projectile[-1, 1] == pytest.approx(path.ground, abs=0.01)
    assert path.times[-1] == pytest.approx(reference_shot["landing_s"], abs=1e-3)
    assert np.all(np.diff(path.times) > 0)
    assert set(np.unique(path.phase)) == {0, 1, 2}


def test_trajectory_keeps_the_machine_rigid(reference_path):
    path, tb = reference_path, reference_path.trebuchet

    def length(a, b):
        return np.linalg.norm(a - b, axis=1)

    np.testing.assert_allclose(length(path.arm_tip, path.pivot), float(tb.long_arm), rtol=1e-5)
    np.testing.assert_allclose(
        length(path.weight_hinge, path.pivot), float(tb.short_arm), rtol=1e-5
    )
    np.testing.assert_allclose(
        length(path.weight, path.weight_hinge), float(tb.weight_arm), rtol=1e-5
    )
    # The hinge is on the far side of the pivot from the tip: one straight arm.
    np.testing.assert_allclose(
        path.weight_hinge, -path.arm_tip * float(tb.short_arm / tb.long_arm), atol=1e-5
    )
    attached = path.attached
    np.testing.assert_allclose(
        length(path.projectile[attached], path.arm_tip[attached]),
        float(tb.sling_length),
        rtol=1e-5,
    )
    # On the ground the projectile slides along it (Euler lets it sink by about 2.5 cm).
    on_ground = path.projectile[path.phase == 0]
    np.testing.assert_allclose(on_ground[:, 1], path.ground, atol=0.03)
    # No jumps between frames or phases: every move is slower than the release speed.
    speed = np.linalg.norm(np.diff(path.projectile, axis=0), axis=1) / np.diff(path.times)
    assert speed.max() < 1.05 * np.linalg.norm(np.asarray(path.shot.release_velocity))
    release = np.flatnonzero(path.phase == 2)[0]
    np.testing.assert_allclose(path.projectile[release], path.shot.release_position, atol=1e-5)


def test_trajectory_of_a_failed_shot_stops_where_it_failed():
    path = trajectory(0.0, 45.0, 10.0, trebuchet_jl())  # too light: the sling goes slack
    assert int(path.shot.status) == 1
    assert np.all(path.phase == 0)
    assert np.all(np.isfinite(path.projectile))
    assert path.projectile[-1, 0] == pytest.approx(float(path.shot.distance), abs=0.01)
    # it never left the ground: no lift-off, release or landing to time
    shot = path.shot
    events = [shot.lift_off_time, shot.release_time, shot.landing_time, *shot.release_velocity]
    assert np.isnan(events).all()


def test_animate_shot_draws_and_saves(tmp_path):
    anim = animate_shot(-2.0, 45.0, 200.0, trebuchet_jl(), target=70.0, fps=60, max_frames=4)
    assert isinstance(anim, animation.FuncAnimation)
    anim.save(tmp_path / "shot.gif", writer=animation.PillowWriter(fps=4))
    assert (tmp_path / "shot.gif").stat().st_size > 0


@pytest.mark.slow  # 7 s: in `make test-all`
def test_plot_distance_returns_an_axis():
    ax = plot_distance(trebuchet_jl(), wind=-2.0, angles=(20.0, 70.0, 4), weights=(100, 400, 3))
    assert isinstance(ax, Axes)
    assert ax.get_xlabel() == "release angle (degrees)"
    assert len(ax.figure.axes) == 2  # the map and its colorbar
    plt.close(ax.figure)
