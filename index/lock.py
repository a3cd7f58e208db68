"""An exclusive, advisory write lock per library (one index run at a time).

``flock`` locks vanish with their process, so a run killed with ``kill -9`` never leaves
a stale lock behind.
"""

from __future__ import annotations

import os
from pathlib import Path

from index.errors import CorruptFileError, LibraryBusyError
from index.files import disk_full_error, is_disk_full

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; concurrent writers are the user's problem
    fcntl = None  # type: ignore[assignment]


class WriteLock:
    """Hold with ``with WriteLock(path):``; raises LibraryBusyError if another process holds it."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    def acquire(self, blocking: bool = False) -> bool:
        """Take the lock; with ``blocking=False`` return False at once if it is held elsewhere."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as exc:
            raise self._unusable(exc) from exc
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                os.close(fd)
                return False
        try:  # the pid is only shown to a second writer: a full disk must not stop the run for it
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
        except OSError:
            pass
        self._fd = fd
        return True

    def _unusable(self, exc: OSError) -> Exception:
        """The error for a lock file that cannot be opened, naming the fix."""
        if self.path.is_dir():
            return CorruptFileError(
                f"{self.path} is a folder, not xmr's lock file; remove it (rmdir {self.path}) and run the command again."
            )
        if is_disk_full(exc):
            return disk_full_error(self.path.parent, exc, f"creating {self.path.name}")
        return CorruptFileError(
            f"cannot open the lock file {self.path} ({exc.strerror or exc}); check that the library folder is "
            f"writable by you, or remove {self.path} if it is not a plain file, and run the command again."
        )

    def release(self) -> None:
        if self._fd is not None:
            if fcntl is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> WriteLock:
        if not self.acquire():
            holder = ""
            try:
                holder = self.path.read_text().strip()
            except OSError:
                pass
            raise LibraryBusyError(
                f"another xmr process{f' (pid {holder})' if holder else ''} is writing to this "
                "library; wait for it to finish, or stop it (an interrupted run resumes later)."
            )
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
