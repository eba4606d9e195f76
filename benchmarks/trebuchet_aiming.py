"""Trebuchet aiming, direct and neural, against the 2019 post's figures, in one run.

On the evaluation test set of ``docs/concepts/evaluation.md`` (1000 pairs, seed 0: target
~ U(20, 100) m, wind ~ N(0, 5^2) m/s), faithful machine (:func:`trebuchet`), float32:

- direct aiming (:func:`aim`): compile seconds, time per target called one at a time
  (jit of the scalar function) and batched (``vmap`` over the whole set), the misses where
  reachable and the share of unreachable targets;
- the neural aimer (:func:`train_aimer` with its defaults, seed 0, through
  ``diffsim.fit``): training wall-clock (compile included, ``History.train_seconds``;
  ``History.compile_seconds`` the tracing and compilation), median and 95th-percentile
  miss on the reachable targets, inference time per shot batched and single.

The post's figures are the reference: direct aiming ~100 ms per target, training ~5 min,
inference ~5 us per shot. Prints a table and one JSON line whose ``*_ratio`` keys are
reference / diffsim for times (speed-ups: > 1 means faster than the post).

    python benchmarks/trebuchet_aiming.py [--steps N] [--single 50]
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import statistics
import time

import equinox as eqx
import jax
import jax.random as jr
import numpy as np

from diffsim.envs import trebuchet as tr

DEFAULT_STEPS = inspect.signature(tr.train_aimer).parameters["steps"].default
POST = {"aim_s": 0.1, "train_s": 300.0, "inference_s": 5e-6}


def _timed(function, *args):
    started = time.perf_counter()
    out = jax.block_until_ready(function(*args))
    return out, time.perf_counter() - started


def _repeat(function, args, repeats=5):
    times = []
    for _ in range(repeats):
        times.append(_timed(function, *args)[1])
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="aimer steps (default: its own)")
    parser.add_argument("--single", type=int, default=50, help="targets aimed one at a time")
    args = parser.parse_args()

    target, wind = tr.test_set(1000, seed=0)
    record = {
        "benchmark": "trebuchet_aiming",
        "machine": f"{platform.machine()} {jax.devices()[0].platform}",
        "cpu_cores": os.cpu_count(),
        "jax": jax.__version__,
    }

    batched_aim = jax.jit(jax.vmap(tr.aim))
    result, compile_and_run = _timed(batched_aim, target, wind)
    batched_s = _repeat(batched_aim, (target, wind), repeats=3) / target.size
    single_aim = jax.jit(tr.aim)
    _timed(single_aim, target[0], wind[0])
    single_s = statistics.median(
        _timed(single_aim, t, w)[1]
        for t, w in zip(target[: args.single], wind[: args.single], strict=True)
    )
    reachable = np.asarray(result.reachable)
    direct_miss = np.asarray(result.miss)[reachable]
    record |= {
        "aim_compile_s": round(compile_and_run - batched_s * target.size, 1),
        "aim_single_ms": round(1e3 * single_s, 2),
        "aim_batched_ms": round(1e3 * batched_s, 2),
        "aim_max_miss_mm": round(1e3 * float(direct_miss.max()), 2),
        "unreachable_share": round(1.0 - float(reachable.mean()), 3),
        "aim_single_speedup_ratio": round(POST["aim_s"] / single_s, 1),
        "aim_batched_speedup_ratio": round(POST["aim_s"] / batched_s, 1),
    }

    settings = {} if args.steps is None else {"steps": args.steps}
    aimer, history = tr.train_aimer(jr.PRNGKey(0), progress=False, **settings)
    misses = np.abs(np.asarray(eqx.filter_jit(tr.aimer_misses)(aimer, target, wind)))[reachable]
    shots = jr.uniform(jr.PRNGKey(1), (2, 100_000))
    parameters, structure = eqx.partition(aimer, eqx.is_array)
    aim_batch = jax.jit(jax.vmap(lambda p, t, w: eqx.combine(p, structure)(t, w), (None, 0, 0)))
    inference_batched = (
        _repeat(aim_batch, (parameters, 100.0 * shots[0], 5.0 * shots[1])) / shots.shape[1]
    )
    aim_one = jax.jit(lambda p, t, w: eqx.combine(p, structure)(t, w))
    _timed(aim_one, parameters, target[0], wind[0])
    inference_single = statistics.median(
        _timed(aim_one, parameters, t, w)[1] for t, w in zip(target, wind, strict=True)
    )
    record |= {
        "aimer_steps": settings.get("steps", DEFAULT_STEPS),
        "aimer_train_s": round(history.train_seconds, 1),
        "aimer_compile_s": round(history.compile_seconds, 1),
        "aimer_median_miss_cm": round(100 * float(np.median(misses)), 2),
        "aimer_p95_miss_cm": round(100 * float(np.percentile(misses, 95)), 1),
        "aimer_max_miss_m": round(float(misses.max()), 2),
        "aimer_inference_batched_us": round(1e6 * inference_batched, 3),
        "aimer_inference_single_us": round(1e6 * inference_single, 1),
        "aimer_train_speedup_ratio": round(POST["train_s"] / history.train_seconds, 2),
        "aimer_inference_speedup_ratio": round(POST["inference_s"] / inference_batched, 1),
    }

    rows = [
        ("direct aim, one target", f"{1e3 * single_s:.1f} ms", "~100 ms", POST["aim_s"] / single_s),
        ("direct aim, batched", f"{1e3 * batched_s:.2f} ms", "~100 ms", POST["aim_s"] / batched_s),
        (
            "aimer training",
            f"{history.train_seconds:.0f} s",
            "~5 min",
            POST["train_s"] / history.train_seconds,
        ),
        (
            "aimer inference, batched",
            f"{1e6 * inference_batched:.2f} us",
            "~5 us",
            POST["inference_s"] / inference_batched,
        ),
    ]
    print(f"{'':<26}{'diffsim':>12}{'2019 post':>12}{'speed-up':>10}")
    for name, ours, post, ratio in rows:
        print(f"{name:<26}{ours:>12}{post:>12}{ratio:>10.1f}")
    print(
        f"direct aim: max miss {1e3 * float(direct_miss.max()):.1f} mm on the reachable"
        f" {int(reachable.sum())} / {reachable.size} targets"
    )
    print(
        f"aimer: median miss {100 * float(np.median(misses)):.1f} cm, 95th percentile"
        f" {100 * float(np.percentile(misses, 95)):.1f} cm on reachable targets (post: one"
        f" illustrated shot 16 cm off); compile {history.compile_seconds:.0f} s;"
        f" single-shot inference {1e6 * inference_single:.0f} us (dispatch-bound)"
    )
    print(json.dumps(record))


if __name__ == "__main__":
    main()
