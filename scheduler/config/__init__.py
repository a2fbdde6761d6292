"""The only reader of the environment: frozen Settings and JobSpec, and one ConfigError."""

from .loader import ConfigError, JobSpec, Settings, load

__all__ = ["ConfigError", "JobSpec", "Settings", "load"]
