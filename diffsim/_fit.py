"""Fitting any model to any loss with the runner that trains controllers."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import optax
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from . import _validate as validate
from ._errors import DiffsimError
from ._runner import History, run
from ._state import TrainState, init_state, optimiser_step, where_mask


class _LossStep(eqx.Module):
    loss: Callable = eqx.field(static=True)
    optimiser: optax.GradientTransformation

    def __call__(self, state: TrainState) -> tuple[TrainState, dict]:
        return optimiser_step(lambda m, c, k: (self.loss(m, k), c), self.optimiser, state)


def fit(
    loss: Callable[[PyTree, PRNGKeyArray], Float[Array, ""]],
    model: PyTree,
    optimiser: optax.GradientTransformation,
    *,
    key: PRNGKeyArray,
    iterations: int,
    where: Callable[[PyTree], PyTree] | None = None,
    progress: bool = True,
    description: str = "fitting",
    callback: Callable[[int, dict], None] | None = None,
) -> tuple[PyTree, History]:
    """Minimise ``loss(model, key)`` over the model's inexact arrays with ``optimiser``.

    Each iteration draws a fresh key (fresh data, for stochastic losses) and takes one
    optimiser step; many iterations run per compiled call. The same runner trains
    controllers (:func:`diffsim.train`).

    Args:
        loss: a scalar to minimise; ``key`` is this iteration's randomness.
        model: any pytree (an ``eqx.Module``, a tuple of arrays).
        optimiser: any optax transformation.
        key: the seed of the run.
        iterations: optimiser updates.
        where: selects the nodes to optimise, as for ``eqx.tree_at`` (default: every
            inexact array).
        progress: show a progress bar.
        callback: ``callback(iteration, {"loss": ...})`` after every iteration.

    Returns:
        ``(model, history)``.

    Raises:
        TrainingDiverged: at a non-finite loss or gradient, with the last finite model.

    Example: ``aimer, history = diffsim.fit(loss, aimer, optax.adam(1e-2), key=jr.key(0),
    iterations=1500)``.
    """
    validate.positive_int("iterations", iterations)
    validate.optimiser("optimiser", optimiser)
    validate.prng_key("key", key)
    if not callable(loss):
        raise DiffsimError(f"loss must be a function loss(model, key) -> scalar, got {loss!r:.60}")
    state = init_state(model, where_mask(model, where), optimiser, None, key)
    history = History()
    state = run(
        _LossStep(loss, optimiser),
        state,
        iterations,
        history=history,
        progress=progress,
        description=description,
        callback=callback,
    )
    return state.model, history
