"""Controllers: ``eqx.Module`` policies callable as ``controller(t, observation)``."""

from ._mlp import MLPPolicy

__all__ = ["MLPPolicy"]
