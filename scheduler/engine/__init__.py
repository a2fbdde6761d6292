"""One leadership: plan what is due, claim it, fire it, record it, keep the lease."""

from .leader import Engine

__all__ = ["Engine"]
