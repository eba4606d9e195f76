"""Long horizons in bounded memory: the gradient of one pendulum rollout of 1e2 to 1e5
control steps, with ``rollout(..., checkpoint_every=...)``.

The default ``Pendulum()`` (4 Tsit5 steps per 0.05 s interval) under a 64x64 tanh MLP
(``MLPPolicy.for_env(env, width=64, depth=2, key=jr.key(0))``), from ``[3.0, 0.0]``
(hanging nearly down), float32; the gradient of the mean step cost with respect to the
policy's arrays, jitted. ``checkpoint_every`` is ``round(sqrt(horizon))`` (``--every``
fixes it instead), which minimises the stored window carries plus one window's residuals.

Each horizon runs in a fresh subprocess. Memory is measured two ways:

- ``peak_bytes``: what XLA's compiled gradient allocates, from
  ``compiled.memory_analysis()``: temporaries plus arguments plus outputs. This is the
  peak device memory of the computation as XLA plans it (the buffer assignment's size),
  independent of the Python process.
- ``rss_bytes``: the subprocess's peak resident set (``getrusage``, ``ru_maxrss``), which
  includes the Python interpreter, JAX and XLA themselves (hundreds of MB), so it hides
  the gradient's own share at short horizons; printed for honesty.

For comparison, the temporaries of the plain (``checkpoint_every=None``) gradient are
printed for the horizons up to ``--plain-max`` (compiled only, not run). ``seconds`` is
the median of ``--repeats`` warm calls (compilation excluded, printed separately).
Ends with one JSON line ``{"horizons", "peak_bytes", "seconds", ...}``.

    python benchmarks/long_horizon.py [--horizons 100,1000,10000,100000] [--every N]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import time


def _measure(horizon: int, every: int | None, repeats: int) -> dict:
    """In this process: compile and time the gradient for one horizon."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import jax.random as jr

    import diffsim
    from diffsim import MLPPolicy
    from diffsim.envs import Pendulum

    env = Pendulum()
    policy = MLPPolicy.for_env(env, width=64, depth=2, key=jr.key(0))
    params, static = eqx.partition(policy, eqx.is_array)
    y0 = jnp.array([3.0, 0.0])

    def loss(params, y0):
        controller = eqx.combine(params, static)
        trajectory = diffsim.rollout(env, controller, y0, num_steps=horizon, checkpoint_every=every)
        return trajectory.total_cost / horizon

    started = time.perf_counter()
    compiled = jax.jit(jax.grad(loss)).lower(params, y0).compile()
    compile_s = time.perf_counter() - started
    memory = compiled.memory_analysis()
    seconds = []
    for _ in range(repeats + 1):
        started = time.perf_counter()
        gradient = jax.block_until_ready(compiled(params, y0))
        seconds.append(time.perf_counter() - started)
    norm = math.sqrt(sum(float(jnp.sum(g**2)) for g in jax.tree.leaves(gradient)))
    if not math.isfinite(norm):
        raise SystemExit(f"non-finite gradient at horizon {horizon}")
    return {
        "horizon": horizon,
        "every": every,
        "temp_bytes": memory.temp_size_in_bytes,
        "peak_bytes": memory.temp_size_in_bytes
        + memory.argument_size_in_bytes
        + memory.output_size_in_bytes,
        "seconds": statistics.median(seconds[1:]),
        "compile_s": compile_s,
        "grad_norm": norm,
        "rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def _plain_temp_bytes(horizon: int) -> int:
    """Temporaries of the gradient without checkpoints (compiled only)."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import jax.random as jr

    import diffsim
    from diffsim import MLPPolicy
    from diffsim.envs import Pendulum

    env = Pendulum()
    policy = MLPPolicy.for_env(env, width=64, depth=2, key=jr.key(0))
    params, static = eqx.partition(policy, eqx.is_array)

    def loss(params, y0):
        trajectory = diffsim.rollout(env, eqx.combine(params, static), y0, num_steps=horizon)
        return trajectory.total_cost / horizon

    compiled = jax.jit(jax.grad(loss)).lower(params, jnp.array([3.0, 0.0])).compile()
    return compiled.memory_analysis().temp_size_in_bytes


def _child(arguments: list[str]) -> dict:
    output = subprocess.run(
        [sys.executable, __file__, *arguments], capture_output=True, text=True, check=False
    )
    if output.returncode != 0:
        raise SystemExit(f"{arguments} failed:\n{output.stderr[-3000:]}")
    return json.loads(output.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizons", default="100,1000,10000,100000")
    parser.add_argument("--every", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--plain-max", type=int, default=10_000)
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--plain-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        every = args.every or max(1, round(math.sqrt(args.child)))
        print(json.dumps(_measure(args.child, every, args.repeats)))
        return
    if args.plain_child is not None:
        print(json.dumps({"temp_bytes": _plain_temp_bytes(args.plain_child)}))
        return

    import jax

    horizons = [int(float(h)) for h in args.horizons.split(",")]
    print(
        f"pendulum gradient, 64x64 MLP, float32; {platform.machine()}, {os.cpu_count()} "
        f"cores, jax {jax.__version__}"
    )
    print(
        f"{'horizon':>8}{'every':>7}{'peak MB':>10}{'temp MB':>10}{'plain temp MB':>15}"
        f"{'RSS MB':>9}{'grad s':>9}{'compile s':>11}{'grad norm':>11}"
    )
    rows = []
    for horizon in horizons:
        extra = ["--every", str(args.every)] if args.every else []
        row = _child(["--child", str(horizon), "--repeats", str(args.repeats), *extra])
        plain = (
            _child(["--plain-child", str(horizon)])["temp_bytes"]
            if horizon <= args.plain_max
            else None
        )
        row["plain_temp_bytes"] = plain
        rows.append(row)
        plain_text = "-" if plain is None else f"{plain / 1e6:.3f}"
        print(
            f"{horizon:>8}{row['every']:>7}{row['peak_bytes'] / 1e6:>10.3f}"
            f"{row['temp_bytes'] / 1e6:>10.3f}{plain_text:>15}{row['rss_bytes'] / 1e6:>9.0f}"
            f"{row['seconds']:>9.3f}{row['compile_s']:>11.1f}{row['grad_norm']:>11.4g}"
        )
    if 1000 in horizons and 100_000 in horizons:
        ratio = (
            rows[horizons.index(100_000)]["peak_bytes"] / rows[horizons.index(1000)]["peak_bytes"]
        )
        print(f"peak bytes at 1e5 / at 1e3: {ratio:.2f}x")
    print(
        json.dumps(
            {
                "horizons": horizons,
                "peak_bytes": [row["peak_bytes"] for row in rows],
                "seconds": [round(row["seconds"], 4) for row in rows],
                "checkpoint_every": [row["every"] for row in rows],
                "temp_bytes": [row["temp_bytes"] for row in rows],
                "plain_temp_bytes": [row["plain_temp_bytes"] for row in rows],
                "rss_bytes": [row["rss_bytes"] for row in rows],
                "memory": "peak_bytes: XLA memory_analysis temp+argument+output bytes of the "
                "compiled gradient; rss_bytes: subprocess peak RSS (includes Python/JAX)",
            }
        )
    )


if __name__ == "__main__":
    main()
