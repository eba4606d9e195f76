"""``dp``: differentiable programming as a method of ``diffsim compare``, the env's own recipe
trained for every seed in one compiled program."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from ._errors import DiffsimError
from ._methods import AbstractMethod, curve_return, train_seeds
from ._runner import _scan_steps, chunk_length
from ._train import TRAINER_OPTIONS, Trainer


def stack_controllers(recipe, env, keys):
    """The recipe's controllers for ``keys``, stacked along a leading seed axis. Each is
    built outside any trace (a recipe may build one with NumPy, e.g. an LQR
    initialisation), then their arrays are stacked."""
    built = [recipe.make_controller(env, key) for key in keys]
    arrays = [eqx.filter(controller, eqx.is_array) for controller in built]
    stacked = jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *arrays)
    return eqx.combine(stacked, eqx.filter(built[0], eqx.is_array, inverse=True))


class DP(AbstractMethod):
    """Differentiable programming: the env's own recipe, every seed in one compiled program
    (``jax.vmap`` of :meth:`Trainer.step` over seeds), each seed starting exactly as
    :meth:`Recipe.run` starts it (controller and training keys split from ``key(seed)``);
    the final controller kept. Evaluated along training every ``eval_every`` updates of the
    recipe (default: at the end only). Batched float32 arithmetic is not bit-identical to
    one seed's, so a seed's result is close to, not equal to, ``diffsim train``'s."""

    name: str = "dp"
    trained: bool = True
    by_default: bool = True
    needs: str = ""

    def fits(self, env):
        return True

    def run(self, recipe, seeds, *, quick, log):
        iterations = recipe.quick_iterations if quick else recipe.iterations
        env = recipe.make_env()
        options = {k: v for k, v in recipe.train_options.items() if k in TRAINER_OPTIONS}
        every = min(recipe.train_options.get("eval_every", 0) or iterations, iterations)
        trainer = Trainer(recipe.make_optimiser(iterations), **options)
        per_iteration = trainer.batch_size * trainer.window_for(env)
        split = [jr.split(jr.key(seed)) for seed in seeds]
        controllers = stack_controllers(recipe, env, [key for key, _ in split])
        train_keys = jnp.stack([key for _, key in split])
        chunk = chunk_length(iterations, every)
        steps = eqx.filter_jit(
            eqx.filter_vmap(
                lambda state, stop: _scan_steps(trainer.step, state, stop, chunk),
                in_axes=(eqx.if_array(0), None),
            )
        )

        start = eqx.filter_vmap(trainer.init, in_axes=(None, eqx.if_array(0), 0))

        def init():
            return eqx.filter_jit(start)(env, controllers, train_keys)

        def advance(states):
            done = int(states.iteration[0])
            stop = min(done + every - done % every, iterations)
            while done < stop:
                states, (_, active, finite) = steps(states, jnp.asarray(stop, jnp.int32))
                active, finite = jax.device_get((active, finite))
                if not finite[active].all():
                    bad = sorted({seeds[i] for i in np.nonzero(~finite & active)[0]})
                    raise DiffsimError(
                        f"dp: non-finite loss or gradient for seeds {bad} before update "
                        f"{done + chunk}; try a smaller learning rate or a shorter window"
                    )
                done = int(states.iteration[0])
            return states

        return train_seeds(
            self.name,
            seeds,
            init,
            advance,
            eqx.filter_jit(eqx.filter_vmap(lambda state: curve_return(*state.model))),
            lambda states: int(states.iteration[0]) * per_iteration,
            lambda state: state.model,
            points=-(-iterations // every),
            spec={"recipe": recipe.name},
            log=log,
        )

    def template(self, recipe, env, spec):
        return recipe.make_controller(env, jr.key(0))

    def describe(self, recipe, env, quick):
        iterations = recipe.quick_iterations if quick else recipe.iterations
        options = recipe.train_options
        window = options.get("window") or env.episode_steps
        steps = iterations * options.get("batch_size", 64) * window
        return f"the `{recipe.name}` recipe, {iterations} updates, {steps:,} env steps"


dp = DP()
"""The ``dp`` method instance (the entry point ``diffsim.methods: dp``)."""
