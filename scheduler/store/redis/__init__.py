"""The Redis backend: Lua scripts beside the code that runs them."""
