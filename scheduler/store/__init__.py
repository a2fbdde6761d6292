"""The state store: the Store protocol every backend meets, and the read-only view of the dry run.
Backends live in store.redis and store.sqlite; importing this face loads neither."""

from .protocol import Store

__all__ = ["Store"]
