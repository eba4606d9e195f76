"""Several processes on JAX's distributed runtime (CPU collectives on localhost): the same
training as one process with as many devices, one checkpoint, and resumes that continue it.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import equinox as eqx
import jax
import numpy as np
import pytest

import diffsim

from helpers import cli_outcomes

WORKER = Path(__file__).with_name("distributed_worker.py")
ROOT = Path(__file__).parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _start(args, out: Path, **env):
    environment = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"} | env
    out.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process, timeout=400):
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """2 processes x 2 devices, and 1 process x 4 devices, started together."""
    port = _free_port()
    two, one = tmp_path_factory.mktemp("two"), tmp_path_factory.mktemp("one")
    workers = [_start([WORKER, str(i), "2", str(port), str(two)], two) for i in range(2)]
    single = _start([WORKER, "0", "1", "0", str(one)], one)
    lines = [json.loads(_finish(p).strip().splitlines()[-1]) for p in (*workers, single)]
    return {"two": lines[:2], "one": lines[2], "dirs": (two, one)}


def test_two_processes_train_as_one_process_with_as_many_devices(runs):
    first, second = runs["two"]
    single = runs["one"]
    assert (first["process"], second["process"]) == (0, 1)
    assert first["devices"] == 4 and first["local_devices"] == 2 and single["local_devices"] == 4
    # every process sees the same global run, and it is the single process's run
    assert first["loss"] == second["loss"]
    np.testing.assert_allclose(first["loss"], single["loss"], rtol=1e-5)
    np.testing.assert_allclose(first["eval_return"], single["eval_return"], rtol=1e-5)
    # evaluation gathers every process's episodes
    assert first["episodes"] == 12 and first["evaluation"] == second["evaluation"]
    assert first["evaluation"] == pytest.approx(single["evaluation"], rel=1e-5)


def test_one_checkpoint_is_written_and_a_resume_continues_the_run(runs):
    two, one = runs["dirs"]
    assert sorted(p.name for p in two.iterdir()) == ["part.eqx", "whole.eqx"]  # no stray files
    for line in runs["two"]:
        assert line["interrupted_at"] == 3
        assert line["resumed_loss"] == line["loss"]  # stopped, resumed: the same 6 updates
    env = diffsim.envs.Pendulum()
    template = (env, diffsim.MLPPolicy.for_env(env, width=16, depth=1, key=jax.random.key(0)))
    _, distributed = diffsim.load_checkpoint(two / "whole.eqx", template)
    _, alone = diffsim.load_checkpoint(one / "whole.eqx", template)
    arrays = [jax.tree.leaves(eqx.filter(c, eqx.is_array)) for c in (distributed, alone)]
    for a, b in zip(*arrays, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_seeds_vmapped_with_each_batch_split_over_two_processes(runs):
    first, second = runs["two"]
    single = runs["one"]
    assert first["seed_devices"] == 4  # every seed's episodes over both processes' devices
    assert first["seed_losses"] == second["seed_losses"]
    np.testing.assert_allclose(first["seed_losses"], single["seed_losses"], rtol=1e-5)
    for a, b in zip(first["seed_params"], single["seed_params"], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    # each seed of the vmapped, sharded run is that seed trained alone on one device
    np.testing.assert_allclose(first["seed_losses"], single["seed_losses_alone"], rtol=1e-5)
    assert len({tuple(losses) for losses in first["seed_losses"]}) == 3  # three runs


@pytest.mark.slow  # the API test above runs in `make test`
def test_the_command_line_joins_a_run_of_two_processes(tmp_path):
    port = _free_port()
    command = [
        "-m", "diffsim.cli", "train", "pendulum", "--quick", "--iterations", "2",
        "--batch-size", "8", "--window", "10", "--episodes", "8", "--devices", "all",
        "--out", str(tmp_path), "--json", "--coordinator", f"localhost:{port}",
        "--num-processes", "2",
    ]  # fmt: skip
    flags = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    processes = [_start([*command, "--process-id", str(i)], tmp_path, **flags) for i in range(2)]
    summaries = [json.loads(_finish(p)) for p in processes]  # stdout: one JSON object
    assert summaries[0]["evaluation"] == summaries[1]["evaluation"]
    assert summaries[0]["evaluation"]["episodes"] == 8
    written = sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".write"))
    assert "controller.eqx" in written and not [n for n in written if n.startswith(".")]
    bad = subprocess.run(
        [sys.executable, "-m", "diffsim.cli", "train", "pendulum", "--coordinator", "x:1"],
        capture_output=True, text=True, cwd=ROOT,
    )  # fmt: skip
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "diffsim train: error: --coordinator, --num-processes and --process-id go together, "
        "got 'x:1', None, None"
    )


def _refused_by_both(tmp_path, options) -> list[str]:
    """The error line of each of two processes started with ``options(i)``, both having
    exited with status 2 before training (Gloo's own lines on stderr may come after it)."""
    port = _free_port()
    command = [
        "-m", "diffsim.cli", "train", "pendulum", "--quick", "--iterations", "1",
        "--batch-size", "4", "--out", str(tmp_path), "--coordinator", f"localhost:{port}",
        "--num-processes", "2", "--join-timeout", "120",
    ]  # fmt: skip
    flags = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    processes = [
        _start([*command, "--process-id", str(i), *options(i)], tmp_path, **flags)
        for i in range(2)
    ]
    lines = []
    for process in processes:
        _, err = process.communicate(timeout=300)
        assert process.returncode == 2, err[-3000:]
        (line,) = [line for line in err.splitlines() if line.startswith("diffsim train: error")]
        lines.append(line)
    assert not (tmp_path / "controller.eqx").exists()
    return lines


def test_processes_started_with_other_options_refuse_to_train(tmp_path):
    # a batch of 6 does not split over the 4 devices: process 1 alone would find it
    options = lambda i: ["--devices", "all", "--seed", str(i), "--batch-size", str(4 + 2 * i)]  # noqa: E731
    assert _refused_by_both(tmp_path, options) == [
        "diffsim train: error: the processes of this run were started with different seed, "
        f"batch-size (process {i}: --seed {i}, --batch-size {4 + 2 * i}): start the same "
        "command on every process"
        for i in range(2)
    ]


def test_devices_of_one_process_only_are_refused_on_both(tmp_path):
    lines = _refused_by_both(tmp_path, lambda i: ["--devices", "2"])  # process 0's two
    assert lines == 2 * [
        "diffsim train: error: the devices hold none of process(es) [1] of this run of 2 "
        "processes: every process needs a share of the batch (jax.devices(), or --devices all)"
    ]


def test_a_process_whose_coordinator_never_starts_stops_with_one_line():
    port = _free_port()  # nobody listens there
    ((code, out, err),) = cli_outcomes([[
        "train", "pendulum", "--devices", "all", "--coordinator", f"localhost:{port}",
        "--num-processes", "2", "--process-id", "1", "--join-timeout", "2",
    ]])  # fmt: skip
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        f"diffsim train: joining process 1 of 2 at localhost:{port}, waiting up to 2 s for "
        "every process",
        f"diffsim train: error: no coordinator answered at localhost:{port} in 2 s: start "
        "process 0 there (its --coordinator is its own address)",
    ]
