"""One process of tests/test_distributed.py: trains the pendulum with the batch split over
every device of every process, as a user's script does after ``jax.distributed.initialize``.

    python tests/distributed_worker.py PROCESS_ID NUM_PROCESSES PORT OUT_DIR

Runs with ``4 / NUM_PROCESSES`` CPU devices per process: a whole run of 6 updates, the same
run stopped by SIGINT after 3 and resumed from its checkpoint, and an evaluation; prints
one JSON line.
"""

import json
import os
import signal
import sys

process_id, processes, port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={4 // processes}"

import jax  # noqa: E402

if processes > 1:
    jax.distributed.initialize(f"localhost:{port}", processes, process_id)

import jax.random as jr  # noqa: E402
import optax  # noqa: E402

import diffsim  # noqa: E402
from diffsim.envs import Pendulum  # noqa: E402

env = Pendulum()
SETTINGS = dict(
    iterations=6, batch_size=8, window=10, eval_every=3, eval_episodes=8, keep_best=False,
    progress=False, devices=jax.devices(),
)  # fmt: skip


def train(path, **options):
    policy = diffsim.MLPPolicy.for_env(env, width=16, depth=1, key=jr.key(0))
    return diffsim.train(
        env, policy, optax.adam(1e-2), key=jr.key(1), checkpoint=path, **SETTINGS, **options
    )


_, controller, whole = train(f"{out}/whole.eqx")
try:
    train(
        f"{out}/part.eqx",
        callback=lambda i, m: os.kill(os.getpid(), signal.SIGINT) if i == 3 else None,
    )
except diffsim.TrainingInterrupted as stopped:
    interrupted_at = diffsim.read_metadata(stopped.checkpoint)["iteration"]
_, _, resumed = train(f"{out}/part.eqx", resume=f"{out}/part.eqx")
evaluation = diffsim.evaluate(env, controller, episodes=12, seed=0, devices=jax.devices())
print(
    json.dumps(
        {
            "process": jax.process_index(),
            "devices": jax.device_count(),
            "local_devices": jax.local_device_count(),
            "loss": whole.loss,
            "eval_return": whole.eval_return,
            "interrupted_at": interrupted_at,
            "resumed_loss": resumed.loss,
            "evaluation": evaluation.mean,
            "episodes": int(evaluation.returns.shape[-1]),
        }
    )
)
