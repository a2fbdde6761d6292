"""argv, wiring, signals and exit codes: the only wing that imports every other one."""

from .program import main

__all__ = ["main"]
