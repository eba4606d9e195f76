"""One process of tests/test_distributed.py: trains the pendulum with the batch split over
every device of every process, as a user's script does after ``jax.distributed.initialize``.

    python tests/distributed_worker.py PROCESS_ID NUM_PROCESSES PORT OUT_DIR

Runs with ``4 / NUM_PROCESSES`` CPU devices per process: a whole run of 6 updates, the same
run stopped after 3 by a SIGINT to the last process alone and resumed from its checkpoint,
an evaluation, and 3 seeds
trained together (``vmap`` of ``Trainer.step``) with each seed's batch split over the
devices, beside each seed trained alone on one device; prints one JSON line.
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

import equinox as eqx  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jax.random as jr  # noqa: E402
import numpy as np  # noqa: E402
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
        # the last process alone is interrupted: every process stops there with it
        callback=lambda i, m: (
            os.kill(os.getpid(), signal.SIGINT) if i == 3 and process_id == processes - 1 else None
        ),
    )
except diffsim.TrainingInterrupted as stopped:
    interrupted_at = diffsim.read_metadata(stopped.checkpoint)["iteration"]
_, _, resumed = train(f"{out}/part.eqx", resume=f"{out}/part.eqx")
evaluation = diffsim.evaluate(env, controller, episodes=12, seed=0, devices=jax.devices())


def seeds_trained(devices, seeds=(0, 1, 2), updates=3):
    """Per-update losses (seeds, updates) and final parameters of ``seeds`` trained together."""
    trainer = diffsim.Trainer(optax.adam(1e-2), batch_size=8, window=10, devices=devices)
    policies = [diffsim.MLPPolicy.for_env(env, width=16, depth=1, key=jr.key(s)) for s in seeds]
    arrays = [eqx.filter(policy, eqx.is_array) for policy in policies]
    stacked = eqx.combine(
        jax.tree.map(lambda *leaves: jnp.stack(leaves), *arrays),
        eqx.filter(policies[0], eqx.is_array, inverse=True),
    )
    keys = jnp.stack([jr.key(100 + s) for s in seeds])
    states = eqx.filter_vmap(trainer.init, in_axes=(None, eqx.if_array(0), 0))(env, stacked, keys)
    step = eqx.filter_jit(eqx.filter_vmap(trainer.step))
    losses = []
    for _ in range(updates):
        states, metrics = step(states)
        losses.append(np.asarray(metrics["loss"]).tolist())
    params = [np.asarray(x).tolist() for x in jax.tree.leaves(states.params)]
    sharded = len(states.carry.states.sharding.device_set)
    return np.transpose(losses).tolist(), params, sharded


seed_losses, seed_params, seed_devices = seeds_trained(jax.devices())
alone = (
    [seeds_trained(jax.devices()[:1], seeds=(s,))[0][0] for s in (0, 1, 2)]
    if processes == 1
    else None
)  # the single process's are the reference
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
            "seed_losses": seed_losses,
            "seed_params": seed_params,
            "seed_devices": seed_devices,
            "seed_losses_alone": alone,
        }
    )
)
