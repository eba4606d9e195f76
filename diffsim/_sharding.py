"""Data parallelism with JAX's own sharding: a batch of episodes split over devices.

The batch axis of the carried episodes and of their keys is sharded over every axis of a
``jax.sharding.Mesh``; the model and optimiser state are replicated. Everything else
(the vmapped rollouts, the mean over the batch, the all-reduce of the gradient) follows
from XLA's SPMD partitioner, so the program is the single-device one. The same holds over
several processes (``jax.distributed.initialize``, then ``jax.devices()`` lists every
process's devices): every process runs the same program on its share of the batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from jaxtyping import PyTree

from ._errors import DiffsimError

Devices = Sequence | Mesh | None
"""The devices to split a batch over: ``jax.devices()`` (or any list of them), a
``jax.sharding.Mesh`` (the batch is split over all its axes), or ``None`` (JAX's default
device, no sharding). Anything else is a :class:`DiffsimError`."""

BATCH_AXIS = "batch"


def as_mesh(devices: Devices) -> Mesh | None:
    """``devices`` as a mesh (one axis, ``"batch"``, for a list), ``None`` for ``None``."""
    if devices is None:
        return None
    if isinstance(devices, Mesh):
        check_every_process(devices)
        return devices
    if isinstance(devices, str):
        raise DiffsimError(
            f"devices must be jax devices, e.g. jax.devices() for all of them, got {devices!r} "
            "(a string names devices on the command line only: --devices all)"
        )
    given = devices
    if isinstance(devices, jax.Device):
        devices = [devices]
    if isinstance(devices, np.ndarray):
        devices = devices.ravel().tolist()
    devices = list(devices) if isinstance(devices, Sequence) else None
    if not devices or not all(isinstance(device, jax.Device) for device in devices):
        raise DiffsimError(
            "devices must be a non-empty list of jax devices (e.g. jax.devices()), a "
            f"jax.sharding.Mesh or None, got {given!r:.80}"
        )
    if len(set(devices)) != len(devices):
        raise DiffsimError(f"devices lists a device twice: {devices}")
    mesh = Mesh(np.asarray(devices), (BATCH_AXIS,))
    check_every_process(mesh)
    return mesh


def check_every_process(mesh: Mesh) -> None:
    """A :class:`DiffsimError` unless ``mesh`` holds devices of every process of the run:
    in a run of several processes, each simulates its share of the batch on its own."""
    missing = sorted(set(range(jax.process_count())) - {d.process_index for d in mesh.devices.flat})
    if missing:
        raise DiffsimError(
            f"the devices hold none of process(es) {missing} of this run of "
            f"{jax.process_count()} processes: every process needs a share of the batch "
            "(jax.devices(), or --devices all)"
        )


def check_divisible(mesh: Mesh | None, size: int, name: str) -> None:
    """A :class:`DiffsimError` unless ``size`` splits evenly over the mesh's devices."""
    if mesh is not None and size % mesh.size:
        raise DiffsimError(
            f"{name}={size} does not split over {mesh.size} devices: use a multiple of {mesh.size}"
        )


def shard_batch(tree: PyTree, mesh: Mesh | None) -> PyTree:
    """Every array of ``tree`` split over the mesh along its leading (batch) axis; inside
    ``jit`` a sharding constraint, outside a transfer. No-op without a mesh."""
    if mesh is None:
        return tree
    return _constrain(tree, NamedSharding(mesh, PartitionSpec(mesh.axis_names)))


def replicate(tree: PyTree, mesh: Mesh | None) -> PyTree:
    """Every array of ``tree`` copied to all devices of the mesh. No-op without a mesh."""
    if mesh is None:
        return tree
    return _constrain(tree, NamedSharding(mesh, PartitionSpec()))


def _constrain(tree: PyTree, sharding: NamedSharding) -> PyTree:
    def constrain(x):
        return jax.lax.with_sharding_constraint(x, sharding) if eqx.is_array(x) else x

    return jax.tree.map(constrain, tree)


def gather(tree: PyTree) -> PyTree:
    """Every array of ``tree`` that is spread over several processes, whole on this one
    (a collective: every process calls it); everything else unchanged."""

    def whole(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return multihost_utils.process_allgather(x, tiled=True)
        return x

    return jax.tree.map(whole, tree) if jax.process_count() > 1 else tree
