"""The README's own-environment example works as written."""

import re
from pathlib import Path

import jax.random as jr
import optax

import diffsim
from diffsim import MLPPolicy


def _readme_block(containing: str) -> str:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    (block,) = [b for b in blocks if containing in b]
    return block


def test_readme_custom_env_trains():
    namespace = {}
    exec(_readme_block("class Rocket"), namespace)
    env = namespace["Rocket"]()
    policy = MLPPolicy.for_env(env, width=16, depth=1, key=jr.key(0))
    before = diffsim.evaluate(env, policy, episodes=50, seed=0).mean
    _, policy, _ = diffsim.train(
        env, policy, optax.adam(3e-3), key=jr.key(1), iterations=100, batch_size=8, progress=False
    )
    after = diffsim.evaluate(env, policy, episodes=50, seed=0).mean
    assert after > before + 0.5 * abs(before), (before, after)  # measured: -12454 -> -1954
