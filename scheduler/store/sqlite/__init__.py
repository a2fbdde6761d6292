"""The standalone backend: SQLite and a file lock."""
