"""The command line around a run: the command that resumes an interrupted one, the folder it
writes and the earlier run it replaces, its times across resumes, the plots it skips, what
`diffsim eval` prints, running out of memory, a reader that stops early."""

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import jax
import jax.random as jr
import pytest

import diffsim
from diffsim import MLPPolicy, _runner
from diffsim import _cli_train as cli_train
from diffsim._cli_train import _as_given, _options, _output_folder, _resume_command
from diffsim._compare import default_out
from diffsim._train import check_same_settings
from diffsim.cli import _build_parser, main

from helpers import ROCKET, cli_outcomes

DOCS = Path(__file__).resolve().parents[1] / "docs" / "concepts" / "cli.md"
TINY = ["--iterations", "4", "--batch-size", "2", "--window", "5", "--episodes", "3"]
"""A run of a few updates on a few short windows, evaluated on a few episodes."""


@pytest.fixture(autouse=True)
def _sys_path_restored(monkeypatch):
    """A user's env file puts its folder on ``sys.path``; the tests' temporary ones go."""
    monkeypatch.setattr(sys, "path", list(sys.path))


@pytest.fixture
def rocket(tmp_path):
    """``rocket.py:Rocket`` (no ``draw``) in ``tmp_path/envs``, the working directory
    ``tmp_path/work``."""
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "rocket.py").write_text(ROCKET)
    (tmp_path / "work").mkdir()
    return tmp_path / "envs" / "rocket.py"


def test_the_resume_command_repeats_every_option_the_resume_check_compares(tmp_path):
    run = _build_parser().parse_args(
        ["train", "pendulum", "--out", str(tmp_path / "a run"), "--seed", "3", "--quick",
         "--iterations", "3000", "--batch-size", "16", "--window", "25", "--lr", "0.003",
         "--keep-last", "--checkpoint-every", "7", "--episodes", "9", "--plots", "--json",
         "--coordinator", "node0:1234", "--num-processes", "2", "--process-id", "1"]
    )  # fmt: skip
    words = shlex.split(_resume_command(run))
    assert words[:2] == ["diffsim", "train"]
    resumed = _build_parser().parse_args(words[1:])
    assert resumed.resume and resumed.out == run.out
    assert (resumed.checkpoint_every, resumed.episodes, resumed.plots, resumed.json) == (
        7, 9, True, True
    )  # fmt: skip
    # each process of a run of several prints the command that rejoins it as itself
    assert (resumed.coordinator, resumed.num_processes, resumed.process_id) == ("node0:1234", 2, 1)
    assert _options(resumed) == _options(run)
    check_same_settings(
        tmp_path / "controller.eqx", _options(run), _options(resumed), describe=_as_given
    )


def test_a_refused_resume_names_an_option_that_was_not_given_as_such(tmp_path, capsys):
    env = diffsim.envs.Pendulum()
    given = _options(_build_parser().parse_args(["train", "pendulum"]))
    saved = given | {"iterations": 3000, "keep-last": True}
    diffsim.save_checkpoint(
        tmp_path / "controller.eqx",
        (env, MLPPolicy.for_env(env, key=jr.key(0))),
        {"env": "pendulum", "options": saved},
    )
    assert main(["train", "pendulum", "--out", str(tmp_path), "--resume"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert (
        "it was trained with --iterations 3000, --keep-last, not --iterations not given, "
        "--keep-last not given; " in line
    ), line
    assert "None" not in line and "False" not in line, line


@pytest.mark.parametrize(
    "spec, folder",
    [
        ("pendulum", "runs/pendulum"),
        ("../my_env.py:MyEnv", "runs/MyEnv"),
        ("/somewhere/else/my_env.py:MyEnv", "runs/MyEnv"),
        ("diffsim.envs.pendulum:Pendulum", "runs/Pendulum"),
    ],
)
def test_the_default_folder_is_runs_and_the_env_name(spec, folder):
    assert _output_folder(_build_parser().parse_args(["train", spec])) == Path(folder)
    assert default_out(spec) == Path("runs/compare") / Path(folder).name  # diffsim compare


def _interrupt_once(monkeypatch):
    """SIGINT to this process after the first compiled call of the next training run, as
    Ctrl-C would (the runner saves and stops at the end of that call)."""
    check_health, sent = _runner._check_health, []

    def check_health_then_interrupt(history, taken):
        check_health(history, taken)
        if not sent:
            sent.append(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(_runner, "_check_health", check_health_then_interrupt)


def test_an_interrupted_run_resumes_with_the_printed_command_and_keeps_its_times(
    rocket, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path / "work")
    command = ["train", "../envs/rocket.py:Rocket", *TINY, "--lr", "0.01", "--keep-last",
               "--checkpoint-every", "2", "--json"]  # fmt: skip
    _interrupt_once(monkeypatch)
    assert main(command) == 130
    last = capsys.readouterr().err.strip().splitlines()[-1]
    checkpoint = Path("runs/Rocket/controller.eqx")
    assert f"SIGINT at iteration 1; saved to {checkpoint}; continue with: diffsim train" in last
    interrupted = diffsim.read_metadata(checkpoint)["history"]
    assert len(interrupted["loss"]) == 1
    assert interrupted["train_seconds"] >= interrupted["compile_seconds"] > 0

    resume = shlex.split(last.split("continue with: ")[1])[1:]  # after `diffsim`
    assert main(resume) == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["resumed_from_iteration"] == 1
    finished = diffsim.read_metadata(checkpoint)["history"]
    assert len(finished["loss"]) == 4
    assert finished["train_seconds"] > interrupted["train_seconds"]
    assert finished["compile_seconds"] >= interrupted["compile_seconds"]

    # a finished run: nothing to train; the same file named by its absolute path
    resume[resume.index("../envs/rocket.py:Rocket")] = f"{rocket}:Rocket"
    assert main(resume) == 0, capsys.readouterr().err
    again = json.loads(Path("runs/Rocket/history.json").read_text())
    assert again["loss"] == finished["loss"]
    assert again["train_seconds"] >= finished["train_seconds"]
    assert again["compile_seconds"] == finished["compile_seconds"]


def test_a_new_run_replaces_an_earlier_one_in_its_folder_and_nothing_else(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    earlier = ["history.json", "learning_curve.png", "trajectory.png", "animation.gif"]
    for name in [*earlier, "controller.eqx", "notes.txt", "learning_curve.old.png"]:
        (out / name).write_text("an earlier run's")
    command = ["train", "pendulum", *TINY, "--out", str(out), "--checkpoint-every", "0"]
    assert main(command) == 0
    err = capsys.readouterr().err
    notices = [line for line in err.splitlines() if "replacing" in line]
    assert notices == [
        f"diffsim train: replacing the earlier run in {out} (controller.eqx, {', '.join(earlier)})"
    ], err
    assert sorted(path.name for path in out.iterdir()) == [
        "controller.eqx",
        "history.json",
        "learning_curve.old.png",
        "notes.txt",
    ]
    assert diffsim.read_metadata(out / "controller.eqx")["iteration"] == 4
    assert len(json.loads((out / "history.json").read_text())["loss"]) == 4
    assert (out / "notes.txt").read_text() == "an earlier run's"


def test_plots_of_an_env_that_draws_nothing_say_the_animation_was_skipped(rocket, tmp_path):
    out = tmp_path / "run"
    command = ["train", f"{rocket}:Rocket", *TINY, "--out", str(out), "--plots", "--json"]
    ((code, printed, err),) = cli_outcomes([command])  # plotting, outside the type checks
    assert code == 0, err
    skipped = [line for line in err.splitlines() if "animation.gif" in line]
    assert skipped == [
        "diffsim train: animation.gif skipped: Rocket defines no drawing (an env's draw(y) "
        "method pictures a state)"
    ], err
    assert json.loads(printed)["plots"] == [
        str(out / "learning_curve.png"),
        str(out / "trajectory.png"),
    ]
    assert not (out / "animation.gif").exists()


def _rocket_checkpoint(rocket, path):
    """A checkpoint of the Rocket's untrained default controller, as `diffsim eval` loads
    it; returns the env spec, the env and the controller."""
    spec = f"{rocket}:Rocket"
    recipe = diffsim.load_recipe(spec)
    env = recipe.make_env()
    controller = recipe.make_controller(env, jr.key(0))
    diffsim.save_checkpoint(path, (env, controller), {"env": spec})
    return spec, env, controller


def test_eval_prints_the_evaluation_as_train_does(rocket, tmp_path, capsys):
    spec, env, controller = _rocket_checkpoint(rocket, tmp_path / "c.eqx")
    command = ["eval", spec, str(tmp_path / "c.eqx"), "--episodes", "200", "--seed", "5"]
    assert main([*command, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    result = diffsim.evaluate(env, controller, episodes=200, seed=5)
    assert printed == result.summary() | {"mean": result.mean, "std": result.std}
    assert printed["seed"] == 5 and printed["mean_length"] == env.episode_steps == 100
    assert printed["block100_min"] <= printed["mean"] <= printed["block100_max"]
    assert main(command) == 0
    assert "seed: 5" in capsys.readouterr().out.splitlines()
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    assert re.search(r"--episodes EPISODES\s+[^-\s]", capsys.readouterr().out)  # a help text


OUT_OF_MEMORY = "RESOURCE_EXHAUSTED: Out of memory allocating 400000000000 bytes."


@pytest.mark.parametrize(
    "command, smaller",
    [
        (
            ["train", "pendulum", "--quick", "--batch-size", "100000000"],
            "--batch-size or --episodes",
        ),
        (["eval", "{spec}", "{checkpoint}", "--episodes", "1000000000"], "--episodes"),
    ],
    ids=["train", "eval"],
)
def test_running_out_of_memory_is_one_line_and_exit_status_2(
    command, smaller, rocket, tmp_path, monkeypatch, capsys
):
    spec, _, _ = _rocket_checkpoint(rocket, tmp_path / "c.eqx")
    command = [a.format(spec=spec, checkpoint=tmp_path / "c.eqx") for a in command]

    def exhausted(*args, **kwargs):  # as XLA reports it, many lines
        raise jax.errors.JaxRuntimeError(f"{OUT_OF_MEMORY}\n(the rest of XLA's report)")

    if command[0] == "train":
        command += ["--out", str(tmp_path / "run")]
        monkeypatch.setattr(diffsim.Recipe, "run", exhausted)
    else:
        monkeypatch.setattr(cli_train, "evaluate", exhausted)
    assert main(command) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"diffsim {command[0]}: error: out of memory: {OUT_OF_MEMORY}; try a smaller {smaller}"
    ]


def test_another_runtime_error_is_not_called_out_of_memory(rocket, tmp_path, monkeypatch):
    spec, _, _ = _rocket_checkpoint(rocket, tmp_path / "c.eqx")

    def failed(*args, **kwargs):
        raise jax.errors.JaxRuntimeError("INTERNAL: something else")

    monkeypatch.setattr(cli_train, "evaluate", failed)
    with pytest.raises(jax.errors.JaxRuntimeError, match="INTERNAL"):
        main(["eval", spec, str(tmp_path / "c.eqx")])


def test_a_reader_that_has_gone_ends_the_command_quietly():
    reader, writer = os.pipe()
    os.close(reader)  # `| head -c 1` that has read its byte and left
    try:
        done = subprocess.run(
            [sys.executable, "-m", "diffsim.cli", "list", "--json"],
            stdout=writer,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        os.close(writer)
    assert done.returncode == 141, done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr


def test_each_option_has_one_bullet_in_the_cli_page():
    bullets = re.findall(r"^- (`[^`]+`)", DOCS.read_text(), flags=re.MULTILINE)
    assert "`--devices all`" in bullets
    assert len(bullets) == len(set(bullets)), bullets
