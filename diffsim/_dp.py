"""``dp``: differentiable programming as a method of ``diffsim compare``, the env's own recipe
trained for every seed in one compiled program."""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from . import _validate as validate
from ._errors import DiffsimError
from ._methods import AbstractMethod, curve_return, train_seeds
from ._runner import _scan_steps, chunk_length
from ._shac import SHAC
from ._spaces import Box
from ._train import TRAINER_OPTIONS, Trainer


def stack_controllers(recipe, env, keys):
    """The recipe's controllers for ``keys``, stacked along a leading seed axis. Each is
    built outside any trace (a recipe may build one with NumPy, e.g. an LQR
    initialisation), then their arrays are stacked."""
    built = [recipe.make_controller(env, key) for key in keys]
    arrays = [eqx.filter(controller, eqx.is_array) for controller in built]
    stacked = jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *arrays)
    return eqx.combine(stacked, eqx.filter(built[0], eqx.is_array, inverse=True))


def train_vmapped(name, recipe, seeds, trainer, iterations: int, every: int, log):
    """Every seed of ``trainer`` (a :class:`Trainer` or anything with its ``init``/``step``
    and ``window_for``/``batch_size``) in one compiled program, each seed's controller
    built by the recipe and its training key split from ``key(seed)``, as
    :meth:`Recipe.run` starts it; evaluated every ``every`` updates."""
    env = recipe.make_env()
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
                    f"{name}: non-finite loss or gradient for seeds {bad} before update "
                    f"{done + chunk}; try a smaller learning rate or a shorter window"
                )
            done = int(states.iteration[0])
        return states

    return train_seeds(
        name,
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

    def build(self, recipe, quick):
        """The :class:`diffsim.Trainer` that :meth:`run` trains from ``recipe``'s
        ``train_options``, its number of updates and the updates between curve points."""
        iterations = recipe.quick_iterations if quick else recipe.iterations
        options = {k: v for k, v in recipe.train_options.items() if k in TRAINER_OPTIONS}
        every = min(recipe.train_options.get("eval_every", 0) or iterations, iterations)
        return Trainer(recipe.make_optimiser(iterations), **options), iterations, every

    def run(self, recipe, seeds, *, quick, log):
        trainer, iterations, every = self.build(recipe, quick)
        return train_vmapped(self.name, recipe, seeds, trainer, iterations, every, log)

    def template(self, recipe, env, spec):
        return recipe.make_controller(env, jr.key(0))

    def describe(self, recipe, env, quick):
        trainer, iterations, _ = self.build(recipe, quick)
        steps = iterations * trainer.batch_size * trainer.window_for(env)
        return f"the `{recipe.name}` recipe, {iterations} updates, {steps:,} env steps"


class SHACMethod(AbstractMethod):
    """``shac``: short-horizon actor-critic (:class:`diffsim.SHAC`) from the env recipe's
    controller, every seed in one compiled program, with the settings of the recipe's
    ``method_options["shac"]``: ``optimiser`` and ``critic_optimiser`` (optax objects),
    ``iterations`` and ``quick_iterations``, and any other keyword argument of
    :class:`diffsim.SHAC` (``batch_size``, ``window``, ``gamma``, ``lam``,
    ``critic_updates``, ``critic_batch_size``, ``target_step_size``, ``observation_scale``,
    ``value_scale``, ``cost``, ...); ``eval_every`` (updates between learning-curve points)
    optional; ``make_controller`` (``make_controller(env, key)``, as a recipe's) optional,
    for an actor other than the recipe's controller."""

    name: str = "shac"
    trained: bool = True
    by_default: bool = False
    needs: str = "continuous actions and SHAC settings in its recipe's method_options"

    def fits(self, env):
        return isinstance(env.action_space, Box)

    def check(self, recipe, env):
        settings = recipe.method_options.get("shac")
        if settings is None:
            raise DiffsimError(
                f"shac: the {recipe.name!r} recipe has no method_options['shac'] (the "
                "optimisers, budget and SHAC settings for this env)"
            )
        missing = sorted({"optimiser", "critic_optimiser", "iterations"} - set(settings))
        if missing:
            raise DiffsimError(f"shac: the {recipe.name!r} recipe's settings lack {missing}")
        if "make_controller" in settings:
            validate.callable_(
                f"shac: the {recipe.name!r} recipe's make_controller",
                settings["make_controller"],
                "a function make_controller(env, key) -> controller",
            )

    def _settings(self, recipe, quick):
        settings = dict(recipe.method_options["shac"])
        settings.pop("make_controller", None)
        iterations = settings.pop("iterations")
        quick_iterations = settings.pop("quick_iterations", max(1, iterations // 10))
        every = settings.pop("eval_every", 0)
        return settings, quick_iterations if quick else iterations, every

    def build(self, recipe, quick):
        """The :class:`diffsim.SHAC` that :meth:`run` trains from ``recipe``'s settings,
        its number of updates and the updates between learning-curve points."""
        settings, iterations, every = self._settings(recipe, quick)
        devices = recipe.train_options.get("devices")
        shac = SHAC(
            settings.pop("optimiser"), settings.pop("critic_optimiser"), devices=devices,
            **settings,
        )  # fmt: skip
        return shac, iterations, min(every or iterations, iterations)

    def run(self, recipe, seeds, *, quick, log):
        shac, iterations, every = self.build(recipe, quick)
        actor = self._actor_recipe(recipe)
        return train_vmapped(self.name, actor, seeds, shac, iterations, every, log)

    def template(self, recipe, env, spec):
        return self._actor_recipe(recipe).make_controller(env, jr.key(0))

    def describe(self, recipe, env, quick):
        shac, iterations, _ = self.build(recipe, quick)
        batch, window, horizon = shac.batch_size, shac.window_for(env), shac.trainer.horizon
        actor = "SHAC actor" if "make_controller" in recipe.method_options["shac"] else "controller"
        cut = f" (episodes cut at {horizon})" if horizon else ""
        return (
            f"SHAC from the `{recipe.name}` recipe's {actor}, {iterations} updates of "
            f"{batch} x {window} steps{cut}, {iterations * batch * window:,} env steps"
        )

    @staticmethod
    def _actor_recipe(recipe):
        """``recipe`` with the actor of its SHAC settings, where they name one."""
        make_controller = recipe.method_options["shac"].get("make_controller")
        if make_controller is None:
            return recipe
        return dataclasses.replace(recipe, make_controller=make_controller)


dp = DP()
"""The ``dp`` method instance (the entry point ``diffsim.methods: dp``)."""

shac = SHACMethod()
"""The ``shac`` method instance (the entry point ``diffsim.methods: shac``)."""
