"""The command line: one-line errors for every bad input, interruption and resumption of
a real training process, checkpoints shared with the API."""

import json
import os
import signal
import subprocess
import sys
import time

import jax.random as jr
import optax
import pytest

import diffsim
from diffsim import MLPPolicy
from diffsim.cli import main
from diffsim.controllers import Mirrored
from diffsim.envs import Pendulum

from helpers import ROCKET, cli_outcomes


def _cli(*args, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "diffsim.cli", *args], capture_output=True, text=True, **kwargs
    )


@pytest.fixture(scope="module")
def not_a_folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "afile.txt"
    path.write_text("not a folder")
    return path


BAD_INPUTS = [
    # (arguments, what the one line must say)
    (["train", "pendulum", "--seed", "99999999999999999999"], "--seed must be a whole number"),
    (["train", "pendulum", "--seed", "-1"], "--seed must be a whole number from 0"),
    (["train", "pendulum", "--seed", "x"], "invalid int value: 'x'"),
    (["train", "pendulum", "--episodes", "0"], "--episodes must be a positive integer"),
    (
        ["train", "pendulum", "--checkpoint-every", "-3"],
        "--checkpoint-every must be a non-negative integer, got -3",
    ),
    (["train", "pendulum", "--out", "/proc/diffsim"], "is not a writable folder"),
    (["train", "pendulum", "--out", "{not_a_folder}/sub"], "is not a writable folder"),
    (["train", "pendulum", "--out", "{not_a_folder}"], "exists and is not a folder"),
    (["train", "mars-lander"], "unknown env 'mars-lander': choose from acrobot"),
    (["train", "{empty}/nope.py:Rocket"], "no Python file at"),
    (["train", "{rocket}:Lander"], "has no 'Lander'"),
    (["train", "{rocket}:jnp"], "is a module, not a diffsim.Recipe or a concrete AbstractEnv"),
    (["train", "{broken}:Rocket"], "cannot import {broken}: NameError: name 'oops' is not defined"),
    (["train", "no_such_module:Env"], "cannot import no_such_module: ModuleNotFoundError"),
    (["train", "pendulum", "--lr", "-1"], "--lr must be a positive, finite number, got -1.0"),
    (["train", "pendulum", "--window", "0"], "--window must be a positive integer, got 0"),
    (["train", "pendulum", "--resume", "--out", "{empty}"], "no checkpoint file"),
    # a run of several processes: every argument checked before any process waits for another
    (["train", "pendulum", "--coordinator", "localhost:1", "--num-processes", "2",
      "--process-id", "0", "--devices", "all", "--join-timeout", "5", "--batch-size", "0"],
     "--batch-size must be a positive integer, got 0"),
    (["train", "pendulum", "--coordinator", "localhost:1", "--num-processes", "2",
      "--process-id", "0", "--devices", "all", "--join-timeout", "5", "--resume", "--out",
      "{empty}"], "no checkpoint file"),
    (["train", "pendulum", "--distributed", "--coordinator", "localhost:1", "--devices", "all"],
     "--distributed finds the run in the cluster's environment"),
    (["train", "pendulum", "--coordinator", "localhost:1", "--num-processes", "2",
      "--process-id", "0"], "add --devices all"),
    (["train", "pendulum", "--coordinator", "localhost:99999", "--num-processes", "2",
      "--process-id", "0", "--devices", "all"], "a port from 1 to 65535, got 'localhost:99999'"),
    (["train", "pendulum", "--devices", "two"], "--devices must be 'all' or a count, got 'two'"),
    (["eval", "pendulum", "{empty}/missing.eqx"], "no checkpoint file"),
    (["eval", "pendulum", "{not_a_folder}"], "not a diffsim checkpoint"),
    (["eval", "pendulum", "{truncated}"], "corrupt or truncated checkpoint"),
    (["eval", "cartpole", "{checkpoint}"], "was trained on 'pendulum', not 'cartpole'"),
    (["eval", "{rocket}:Rocket", "{moved}"], "was trained on '{rocket}:Rocket', not "
     "'{rocket}:Rocket' (the file /elsewhere/rocket.py, not {rocket}: a copy or a moved file "
     "is another env"),
    (["eval", "pendulum", "{checkpoint}", "--episodes", "-5"], "--episodes must be a positive"),
    (["eval", "pendulum"], "the following arguments are required: checkpoint"),
    ([], "the following arguments are required: COMMAND"),
]


@pytest.fixture(scope="module")
def files(tmp_path_factory, not_a_folder):
    folder = tmp_path_factory.mktemp("files")
    env = Pendulum()
    controller = MLPPolicy.for_env(env, key=jr.key(0))
    checkpoint = diffsim.save_checkpoint(folder / "c.eqx", (env, controller), {"env": "pendulum"})
    moved = diffsim.save_checkpoint(
        folder / "moved.eqx", (env, controller),
        {"env": f"{folder / 'rocket.py'}:Rocket", "env_file": "/elsewhere/rocket.py"},
    )  # trained on a file of that name elsewhere
    truncated = folder / "truncated.eqx"
    truncated.write_bytes(checkpoint.read_bytes()[:-10])
    empty = folder / "empty"
    empty.mkdir()
    rocket = folder / "rocket.py"
    rocket.write_text(ROCKET)
    broken = folder / "broken.py"
    broken.write_text(ROCKET + "\noops\n")
    return {
        "rocket": rocket,
        "broken": broken,
        "not_a_folder": not_a_folder,
        "checkpoint": checkpoint,
        "moved": moved,
        "truncated": truncated,
        "empty": empty,
    }


@pytest.fixture(scope="module")
def bad_input_outcomes(files):
    return dict(
        zip(
            (" ".join(arguments) for arguments, _ in BAD_INPUTS),
            cli_outcomes([[a.format(**files) for a in arguments] for arguments, _ in BAD_INPUTS]),
            strict=True,
        )
    )


@pytest.mark.parametrize(
    "arguments, says", BAD_INPUTS, ids=[" ".join(a) or "nothing" for a, _ in BAD_INPUTS]
)
def test_bad_input_is_one_line_and_exit_status_2(arguments, says, files, bad_input_outcomes):
    code, out, err = bad_input_outcomes[" ".join(arguments)]
    assert code == 2, (code, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(" ".join(["diffsim", *arguments[:1]]) + ": error: "), lines[0]
    assert says.format(**files) in lines[0], lines[0]


@pytest.mark.parametrize(
    "arguments, says",
    [
        (
            ["train", "pendulum", "--seed", "x"],
            "diffsim train: error: argument --seed: invalid int value: 'x'",
        ),
        (["eval", "pendulum", "nope.eqx"], "diffsim eval: error: no checkpoint file at nope.eqx"),
    ],
    ids=["argparse", "validation"],
)
def test_a_bad_input_ends_the_process_with_status_2_and_one_line(arguments, says, tmp_path):
    """The contract above, for a whole process as the shell sees it (the exit status of
    the interpreter, everything it writes to stderr), once for each kind of rejection."""
    result = _cli(*arguments, cwd=tmp_path)
    assert result.returncode == 2, result
    assert result.stdout == ""
    assert result.stderr.splitlines() == [says], result.stderr


def test_negative_numbers_in_scientific_notation_are_values():
    from diffsim.cli import _build_parser

    args = _build_parser().parse_args(["shoot", "--wind", "-1e6", "--angle", "45", "--weight", "2"])
    assert args.wind == -1e6


@pytest.mark.slow  # 10-18 s (compilations): in `make test-all`
def test_a_checkpoint_from_the_api_is_evaluated_by_the_cli(tmp_path, capsys):
    env = Pendulum()
    policy = Mirrored(
        MLPPolicy.for_env(env, observation_scale=(1.0, 1.0, 8.0), key=jr.key(0)),
        observation_signs=(1.0, -1.0, -1.0),
        output_signs=(-1.0,),
    )
    path = tmp_path / "api.eqx"
    _, controller, _ = diffsim.train(
        env,
        policy,
        optax.adam(1e-3),
        key=jr.key(0),
        iterations=2,
        batch_size=4,
        window=5,
        checkpoint=path,
        progress=False,
    )
    assert main(["eval", "pendulum", str(path), "--episodes", "20", "--json"]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["mean"] == pytest.approx(
        diffsim.evaluate(env, controller, episodes=20, seed=0).mean, rel=1e-6
    )


def _train_command(out, *extra):
    return [
        sys.executable,
        "-m",
        "diffsim.cli",
        "train",
        "pendulum",
        "--quick",
        "--out",
        str(out),
        "--checkpoint-every",
        "5",
        "--json",
        *extra,
    ]


@pytest.mark.parametrize(
    "signal_number, status",
    [
        # the same handler catches both; Ctrl-C's path runs in `make test-all`
        # (the in-process resume to the same bits is in test_train.py, in `make test`)
        pytest.param(signal.SIGINT, 130, marks=pytest.mark.slow),
        pytest.param(signal.SIGTERM, 143, marks=pytest.mark.slow),
    ],
)
def test_an_interrupted_training_process_saves_and_resumes_to_the_same_bits(
    tmp_path, signal_number, status
):
    whole, part = tmp_path / "whole", tmp_path / "part"
    uninterrupted = subprocess.run(
        _train_command(whole), check=True, capture_output=True, text=True
    )

    process = subprocess.Popen(
        _train_command(part), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    checkpoint = part / "controller.eqx"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal_number)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == status, stderr
    last = stderr.strip().splitlines()[-1]
    assert f"{signal.Signals(signal_number).name} at iteration" in last
    assert f"saved to {checkpoint}" in last and "--resume" in last
    stopped_at = diffsim.read_metadata(checkpoint)["iteration"]
    assert 5 <= stopped_at < 30

    resumed = subprocess.run(_train_command(part, "--resume"), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    expected = diffsim.read_metadata(whole / "controller.eqx")
    got = diffsim.read_metadata(checkpoint)
    assert got["iteration"] == expected["iteration"] == 30
    assert got["arrays_sha256"] == expected["arrays_sha256"]  # the saved arrays, bit for bit
    assert got["history"]["loss"] == expected["history"]["loss"]
    summary = json.loads(resumed.stdout)
    assert summary["evaluation"] == json.loads(uninterrupted.stdout)["evaluation"]


@pytest.mark.slow
def test_resume_refuses_a_checkpoint_of_another_seed(tmp_path):
    subprocess.run(_train_command(tmp_path), check=True, capture_output=True)
    result = subprocess.run(
        _train_command(tmp_path, "--resume", "--seed", "3"), capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "it was trained with --seed 0, not --seed 3" in result.stderr.strip().splitlines()[-1]


def test_a_user_env_in_a_file_trains_and_evaluates_from_the_command_line(files, tmp_path):
    spec = f"{files['rocket']}:Rocket"
    untrained = diffsim.load_recipe(spec)
    env = untrained.make_env()
    before = diffsim.evaluate(
        env, untrained.make_controller(env, jr.split(jr.key(0))[0]), episodes=100
    ).mean
    trained = _cli(
        "train",
        spec,
        "--iterations",
        "150",
        "--lr",
        "1e-2",
        "--out",
        str(tmp_path),
        "--episodes",
        "100",
        "--json",
    )
    assert trained.returncode == 0, trained.stderr
    summary = json.loads(trained.stdout)
    assert summary["env_steps"] == 150 * 64 * 50  # the default recipe's batch and window
    assert summary["evaluation"]["mean"] > before + 0.5 * abs(before), (before, summary)
    evaluated = _cli("eval", spec, summary["checkpoint"], "--episodes", "100", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["mean"] == pytest.approx(
        summary["evaluation"]["mean"], abs=0.01
    )


def test_a_module_env_gets_the_default_recipe_and_list_shows_the_installed_ones(capsys):
    recipe = diffsim.load_recipe("diffsim.envs.pendulum:Pendulum")
    assert recipe.name == "diffsim.envs.pendulum:Pendulum" and recipe.iterations == 300
    assert recipe.train_options["window"] == 50
    assert diffsim.load_recipe("cartpole") is diffsim.recipes()["cartpole"]
    assert main(["list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert set(listing) == {
        "pendulum",
        "pendulum-sample-efficient",
        "pendulum-200k",
        "cartpole",
        "cartpole-continuous",
        "cartpole-swingup",
        "acrobot",
        "acrobot-swingup",
        "quadrotor",
        "epidemic",
    }
    assert listing["pendulum"]["states"] == ["theta (rad)", "theta_dot (rad/s)"]
    assert listing["cartpole"]["actions"] == "Discrete(2)"


def test_a_repeated_train_command_compiles_nothing_new(tmp_path):
    """Training and evaluation programs hold no host callback (which JAX never caches), so
    the first run stores them in the persistent cache, the second finds every one of them
    there and trains to the same result."""
    cache = tmp_path / "jax-cache"
    command = ["train", "pendulum", "--quick", "--iterations", "4", "--batch-size", "4",
               "--window", "10", "--episodes", "8", "--json"]  # fmt: skip
    environment = dict(os.environ, DIFFSIM_CACHE_DIR=str(cache))

    def written():  # the training scan and the evaluations; smaller programs (a key's
        # uniform draw) compile near JAX's 0.2 s minimum for caching, stored or not by load
        names = {path.name for path in cache.iterdir()}
        return {name for name in names if name.startswith(("jit__scan_steps", "jit__returns"))}

    first = _cli(*command, "--out", str(tmp_path / "a"), env=environment)
    assert first.returncode == 0, first.stderr
    entries = written()
    assert any(name.startswith("jit__scan_steps") for name in entries), entries
    assert any(name.startswith("jit__returns") for name in entries), entries
    second = _cli(*command, "--out", str(tmp_path / "b"), env=environment)
    assert second.returncode == 0, second.stderr
    assert written() == entries  # all hits, nothing recompiled
    summary = lambda run: json.loads(run.stdout.strip().splitlines()[-1])["evaluation"]  # noqa: E731
    assert summary(second) == summary(first)
