"""The standalone lease's lock file: an exclusive flock on `<state file>.lock`.

The lock is held by the open file description, so it dies with its process: a crash hands
over at once. But a lock excludes only those who lock the same file. Deleted or replaced
under its holder (a cleanup job, a person), the path names a new file that the next replica
locks while the holder still holds the old one. So the holder checks at every renewal that
the path still names the file it locked (`intact`), and steps down when it does not; and
the file's identity is recorded with the leader in the state file, so that the next holder
can tell a lock taken over from a live holder from one left by a dead one.
"""

from __future__ import annotations

import fcntl
import os
import threading


class LockFile:
    def __init__(self, path: str):
        self.path = path
        self.ident: str | None = None  # "<device>:<inode>" of the file held, while held
        self._fd: int | None = None
        # The worker thread takes and releases the lock, the event loop checks it (renew).
        self._guard = threading.Lock()

    @property
    def held(self) -> bool:
        return self._fd is not None

    def take(self, owner: str) -> bool:
        """Lock the file at the path (created if missing) and write `owner` in it; False
        when another process holds it. Raises OSError."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        try:
            # The file may have been deleted between the open and the lock: then this lock
            # is on a file no one else will ever look at.
            if not _same_file(fd, self.path):
                _close(fd)
                return False
            os.ftruncate(fd, 0)
            os.write(fd, owner.encode())
            st = os.fstat(fd)
        except BaseException:
            _close(fd)
            raise
        with self._guard:
            self._fd, self.ident = fd, f"{st.st_dev}:{st.st_ino}"
        return True

    def intact(self) -> bool:
        """Whether the lock is held and the path still names the file locked. Raises
        OSError when the path cannot be looked at for another reason than its absence."""
        with self._guard:
            return self._fd is not None and _same_file(self._fd, self.path)

    def release(self) -> None:
        with self._guard:
            fd, self._fd, self.ident = self._fd, None, None
        if fd is not None:
            _close(fd)

    def held_elsewhere(self) -> bool:
        """Whether another process holds the lock (probed without keeping it)."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)


def _same_file(fd: int, path: str) -> bool:
    held = os.fstat(fd)
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    return (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)


def _close(fd: int) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
