"""Jobs from the file and the app's URL: read, validated as untrusted input, merged."""

from .watch import JobSources

__all__ = ["JobSources"]
