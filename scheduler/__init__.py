"""cron-sidecar: a cron clock that fires each due job as one HTTP call to its application."""

# The package's only version string: the build reads it from here (pyproject's
# [tool.hatch.version]), and the User-Agent and `--version` import it.
__version__ = "0.2.0"
