"""Pure slot math: a schedule and an instant in, the next slots out; never "now", never I/O."""

from .slots import Schedule, ScheduleError, parse

__all__ = ["Schedule", "ScheduleError", "parse"]
