"""The state of a fit and its pure optimiser step: what every optimisation in diffsim
(:class:`diffsim.Trainer`, :func:`diffsim.fit`) is built from."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray, PyTree

from ._errors import DiffsimError

Loss = Callable[[PyTree, PyTree, PRNGKeyArray], tuple[Float[Array, ""], PyTree]]
"""``loss(model, carry, key) -> (value, next_carry)``: a scalar to minimise, and what the
next step starts from (e.g. episodes in progress; ``None`` when nothing is carried)."""


class TrainState(eqx.Module):
    """Everything that changes while a model is fitted, as one pytree of arrays, so that
    ``jax.jit``, ``jax.lax.scan`` over steps and ``jax.vmap`` over seeds all apply.

    Attributes:
        params: the arrays being optimised (the model partitioned by what is trainable).
        frozen: the model's other arrays.
        static: the model's non-array part (functions, static fields).
        opt_state: the optax state.
        carry: what the loss carries from one step to the next (:class:`diffsim.Trainer`:
            the episodes in progress, states of shape ``(batch, n)`` and step counts).
        key: the key of the next step.
        iteration: steps taken.

    Example:
        ```python
        import jax
        import jax.random as jr
        import optax
        import diffsim
        from diffsim import MLPPolicy

        env = diffsim.envs.Pendulum()
        trainer = diffsim.Trainer(optax.adam(1e-2), batch_size=8, window=20)
        state = trainer.init(env, MLPPolicy.for_env(env, key=jr.key(0)), jr.key(1))
        step = jax.jit(trainer.step)
        for _ in range(3):
            state, metrics = step(state)
        int(state.iteration), float(metrics["loss"])
        ```
    """

    params: PyTree
    frozen: PyTree
    static: PyTree = eqx.field(static=True)
    opt_state: PyTree
    carry: PyTree
    key: PRNGKeyArray
    iteration: Int[Array, ""]

    @property
    def model(self) -> PyTree:
        """The model with its current parameters."""
        return eqx.combine(self.params, self.frozen, self.static)


def init_state(
    model: PyTree,
    trainable: PyTree,
    optimiser: optax.GradientTransformation,
    carry: PyTree,
    key: PRNGKeyArray,
) -> TrainState:
    """A :class:`TrainState` at iteration 0; ``trainable`` is a boolean mask shaped like
    ``model`` (only inexact arrays under ``True`` are optimised)."""
    mask = jax.tree_util.tree_map(
        lambda leaf, selected: selected and eqx.is_inexact_array(leaf), model, trainable
    )
    params, rest = eqx.partition(model, mask)
    frozen, static = eqx.partition(rest, eqx.is_array)
    return TrainState(
        params=params,
        frozen=frozen,
        static=static,
        opt_state=optimiser.init(params),
        carry=carry,
        key=key,
        iteration=jnp.zeros((), jnp.int32),
    )


def stop_gradient(tree: PyTree) -> PyTree:
    """``jax.lax.stop_gradient`` of ``tree``'s array-like leaves; the functions and other
    objects in it (the norm of a diffrax step-size controller, say) pass as they are."""
    return jax.tree.map(lambda x: jax.lax.stop_gradient(x) if eqx.is_array_like(x) else x, tree)


def where_mask(model: PyTree, where: Callable[[PyTree], PyTree] | None) -> PyTree:
    """A boolean mask shaped like ``model``: ``True`` under the nodes ``where(model)``
    selects (as for ``eqx.tree_at``), everywhere when ``where`` is ``None``."""
    if where is None:
        return jax.tree_util.tree_map(lambda _: True, model)
    mask = jax.tree_util.tree_map(lambda _: False, model)
    try:
        return eqx.tree_at(
            where, mask, replace_fn=lambda node: jax.tree_util.tree_map(lambda _: True, node)
        )
    except (AttributeError, TypeError, ValueError, IndexError) as error:
        raise DiffsimError(
            f"where must select nodes of the model, as for eqx.tree_at (e.g. lambda model: "
            f"model.weight): {type(error).__name__}: {error}"
        ) from None


def optimiser_step(
    loss: Loss, optimiser: optax.GradientTransformation, state: TrainState
) -> tuple[TrainState, dict[str, Float[Array, ""]]]:
    """One optimiser update of ``state.params`` on ``loss``; pure.

    Returns:
        The next state and the metrics ``{"loss", "grad_norm"}`` of this step, scalars
        of the default float type.
    """
    key, step_key = jr.split(state.key)

    def value(params):
        return loss(eqx.combine(params, state.frozen, state.static), state.carry, step_key)

    (loss_value, carry), grads = eqx.filter_value_and_grad(value, has_aux=True)(state.params)
    updates, opt_state = optimiser.update(grads, state.opt_state, state.params)
    state = dataclasses.replace(
        state,
        params=eqx.apply_updates(state.params, updates),
        opt_state=opt_state,
        carry=carry,
        key=key,
        iteration=state.iteration + 1,
    )
    metrics = {"loss": loss_value, "grad_norm": optax.tree.norm(grads)}
    return state, {name: jnp.asarray(value, float) for name, value in metrics.items()}
