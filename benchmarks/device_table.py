"""The accelerator table: rollout throughput and time to train, written into RESULTS.md.

Runs ``rollout_throughput.py``'s measurements on the device JAX picks first (a GPU where
one is installed, else the CPU): env steps per second, forward and gradient, of diffsim's
rollout against the fastest hand-written ``lax.scan`` and gymnax's own environments, at
batches of 1 to 65,536 episodes, then the wall-clock seconds for the ``pendulum`` recipe
to reach -160 at several batch sizes. It prints the tables as it goes and inserts one
dated section, headed by the device's name, under "Rollout throughput" in the results
file. ``--record`` keeps the measurements as JSON, rewritten after each batch of each
problem and each training run, so that a run killed part way still leaves what it
measured; ``--from-record`` writes the section from such a file without measuring.
``--budget-s`` starts no batch or training run after that many seconds (counted from the
first measurement, after JAX has started) and names, in the section, what it left out.

    python benchmarks/device_table.py [--results benchmarks/RESULTS.md]
        [--record FILE] [--from-record FILE] [--batches 1,16,256,4096,65536]
        [--repeats 3] [--train-batches 32,1024] [--problems pendulum_gym,pendulum_ode]
        [--budget-s SECONDS]

On a GPU machine without network access (with JAX for the GPU, diffrax, equinox, optax,
optimistix, lineax, matplotlib and tqdm installed, and flax, seaborn and six, which gymnax
imports), bring pure-Python wheels made where
there is a network: diffsim's own, so that its recipes are registered (``pip wheel
--no-deps -w .whl .``), and ``pip download --no-deps -d .whl gymnax==0.0.9
gymnasium==1.4.0 farama-notifications==0.0.6`` (the versions measured here). There,
install them aside and write into a copy of the results file that is then brought back:

    pip install --no-index --no-deps --target /tmp/site .whl/*.whl
    mkdir -p out && cp benchmarks/RESULTS.md out/ && PYTHONPATH=/tmp/site python3 \
        benchmarks/device_table.py --results out/RESULTS.md --record out/record.json \
        --budget-s 420

The defaults (about 150 programs to compile and time, 2 problems, 5 batches, 3 repeats, then two
training runs) are meant to finish within 10 minutes on one GPU; they have run only on a
CPU so far, at small batches. Where the machine is lent for a fixed time, ``--budget-s``
with room for one more batch (the largest takes longest) ends the run in time to write the
section; were it killed all the same, ``--record`` holds every finished batch.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import rollout_throughput as throughput  # noqa: E402

ANCHOR = "## Rollout throughput (`benchmarks/rollout_throughput.py`)\n\n"
TITLES = {
    "pendulum_gym": "pendulum, gym Euler",
    "pendulum_ode": "pendulum, ODE (4 Tsit5 steps)",
    "cartpole_gym_continuous": "cart-pole, continuous",
    "cartpole_gym_discrete": "cart-pole, discrete (forward only)",
}


def _rate(record: dict, key: str) -> str:
    value = record.get(f"{key}_steps_per_s")
    return "n/a" if value is None else f"{value:,}"


def _ratio(record: dict, key: str) -> str:
    value = record.get(key)
    return "n/a" if value is None else f"{value:.2f}"


def _shown(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _batch(key: str) -> int:
    return int(re.search(r"_b(\d+)_", key).group(1))


def section(record: dict) -> str:
    """The markdown section for ``record``: ``rollout_throughput.measure``'s fields and the
    ``command`` and ``date`` of the run."""
    lines = [
        f"### {record['machine']} ({record['date']})",
        "",
        f"`{record['command']}`, jax {record['jax']}, gymnax {record['gymnax']}, "
        f"medians of {record['repeats']} interleaved repeats. Env steps per second; ratios are "
        "diffsim's rate over the reference's (> 1: diffsim faster); noise is the rate of "
        "diffsim's default program over that of itself compiled again, forward / gradient.",
        "",
        "| problem | batch | fwd diffsim | fwd scan | fwd gymnax | diffsim/scan | "
        "diffsim/gymnax | grad diffsim | grad scan | diffsim/scan | noise |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    batches = sorted({_batch(key) for key in record if key.endswith("_diffsim_steps_per_s")})
    for problem, title in TITLES.items():
        for batch in batches:
            fwd, grad = f"{problem}_fwd_b{batch}", f"{problem}_grad_b{batch}"
            if f"{fwd}_diffsim_steps_per_s" not in record:
                continue
            noise = f"{_ratio(record, f'{fwd}_control_ratio')} / "
            noise += _ratio(record, f"{grad}_control_ratio")
            lines.append(
                f"| {title} | {batch:,} | {_rate(record, f'{fwd}_diffsim')} | "
                f"{_rate(record, f'{fwd}_scan')} | {_rate(record, f'{fwd}_gymnax')} | "
                f"{_ratio(record, f'{fwd}_vs_scan_ratio')} | "
                f"{_ratio(record, f'{fwd}_vs_gymnax_ratio')} | "
                f"{_rate(record, f'{grad}_diffsim')} | {_rate(record, f'{grad}_scan')} | "
                f"{_ratio(record, f'{grad}_vs_scan_ratio')} | {noise} |"
            )
    trained = sorted(
        _batch(key)
        for key in record
        if key.startswith("pendulum_train_b") and key.endswith("_compile_s")
    )
    if trained:
        target = f"{throughput.TARGET:g}"
        lines += [
            "",
            f"Time for the `pendulum` recipe (seed 0) to reach {target}, wall clock, compilation "
            "included and shown apart:",
            "",
            f"| batch | seconds to {target} | of which compile | updates |",
            "|---:|---:|---:|---:|",
        ]
        for batch in trained:
            key = f"pendulum_train_b{batch}"
            seconds = record.get(f"{key}_seconds_to_{-throughput.TARGET:g}")
            updates = record.get(f"{key}_updates_to_{-throughput.TARGET:g}", "not reached")
            cell = "not reached" if seconds is None else f"{seconds:.1f} s"
            lines.append(f"| {batch:,} | {cell} | {record[f'{key}_compile_s']:.1f} s | {updates} |")
    if "wall_s" not in record:
        stopped = "Stopped part way (a record kept before the run ended): only the rows above"
        lines += ["", f"{stopped} were measured."]
    if record.get("skipped"):
        skipped = "; ".join(record["skipped"])
        lines += ["", f"Cut short by the time budget; not measured: {skipped}."]
    lines += ["", "```", json.dumps(record), "```", "", ""]
    return "\n".join(lines)


def insert(results: Path, text: str) -> None:
    """Puts ``text`` first under the rollout-throughput heading (at the end without one)."""
    content = results.read_text() if results.exists() else ""
    if ANCHOR in content:
        content = content.replace(ANCHOR, ANCHOR + text, 1)
    else:
        content = content + "\n" + text
    _replace(results, content)


def _replace(path: Path, text: str) -> None:
    """Writes ``text`` to ``path`` whole or not at all (a run killed mid-write leaves the
    previous file)."""
    temporary = path.with_name(f".{path.name}.partial")
    temporary.write_text(text)
    os.replace(temporary, path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path(__file__).parent / "RESULTS.md")
    parser.add_argument("--record", type=Path, help="keep the measurements here as JSON")
    parser.add_argument("--from-record", type=Path, help="write the section from this JSON")
    parser.add_argument("--batches", default="1,16,256,4096,65536")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-batches", default="32,1024")
    parser.add_argument("--problems", default="pendulum_gym,pendulum_ode")
    parser.add_argument(
        "--budget-s", type=float, help="start no batch or training run after this many seconds"
    )
    args = parser.parse_args()
    given = {
        name: getattr(args, name.replace("-", "_"))
        for name in ("batches", "repeats", "train-batches", "problems", "budget-s")
    }
    command = "python benchmarks/device_table.py " + " ".join(
        f"--{name} {shlex.quote(_shown(value))}"
        for name, value in given.items()
        if value is not None
    )
    run = {"command": command, "date": datetime.date.today().isoformat()}
    if args.from_record is not None:
        record = json.loads(args.from_record.read_text())
    else:

        def keep(record):
            if args.record is not None:
                _replace(args.record, json.dumps(record | run))

        record = throughput.measure(
            throughput.integers(args.batches),
            args.repeats,
            args.problems.split(","),
            throughput.integers(args.train_batches),
            throughput.TARGET,
            after_each=keep,
            budget_s=args.budget_s,
        )
        record = record | run
        print(json.dumps(record))
    insert(args.results, section(record))
    print(f"wrote a section into {args.results}")


if __name__ == "__main__":
    main()
