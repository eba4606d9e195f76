"""Controllers: ``eqx.Module`` policies callable as ``controller(t, observation)``."""

from ._mlp import MLPPolicy
from ._symmetric import Mirrored

__all__ = ["MLPPolicy", "Mirrored"]
