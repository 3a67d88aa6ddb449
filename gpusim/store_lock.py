"""One writer at a time: an advisory lock on the store's folder.

``gpusim run`` (on the store it builds, and with ``--overwrite`` on the store
it replaces) and ``gpusim resume`` hold the lock while they write; a second
writer is refused at once, in one line naming the holder's pid and command.
The lock is ``fcntl.flock`` on the store's folder itself: nothing is added to
the store, the lock goes with the folder when it is renamed, and the system
releases it when its holder exits, however it exits (a SIGKILL too), so no
stale lock outlives a process.  Readers (``info``, ``report``, ``view``,
``open_run``) take no lock.
"""

import errno
import fcntl
import os
from pathlib import Path

from gpusim.store_validation import StoreError


class WriterLock:
    """The writers' lock of the store at ``path``, held from :meth:`acquire` to :meth:`release` (or the process's
    end)."""

    def __init__(self, path, command):
        self.store = Path(path)
        self.command = command
        self.fd = None

    def acquire(self):
        """Take the lock or raise StoreError naming who holds it.  A lock taken on a folder that was replaced
        meanwhile (its store swapped for a new one) is taken again on the folder now there."""
        for _attempt in range(10):
            try:
                fd = os.open(self.store, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError as exc:
                raise StoreError(f"{self.store}: cannot open it to lock it ({exc.strerror})") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = lock_holder(os.fstat(fd))
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise StoreError(f"{self.store}: another gpusim is writing it ({holder}); wait for it to finish "
                                     "or stop it") from None
                raise StoreError(f"{self.store}: cannot lock it ({exc.strerror})") from None
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.store, follow_symlinks=False))
            except OSError:
                same = False
            if same:
                self.fd = fd
                return self
            os.close(fd)  # the store was swapped while we waited: lock the folder there now
        raise StoreError(f"{self.store}: it keeps being replaced; is another gpusim replacing it?")

    def moved_to(self, path):
        """The store's folder was renamed to ``path``; the lock holds on."""
        self.store = Path(path)

    def release(self):
        if self.fd is not None:
            os.close(self.fd)  # closing the folder releases the flock
            self.fd = None

    __del__ = release  # a writer dropped without closing lets go of its store


def lock_holder(status):
    """Who holds the flock on the file of ``status`` (an os.stat_result): 'pid N, COMMAND' from the system's
    table of locks (Linux), or a vaguer phrase where that table is not to be had."""
    device = f"{os.major(status.st_dev):02x}:{os.minor(status.st_dev):02x}:{status.st_ino}"
    try:
        with open("/proc/locks") as table:
            for line in table:
                fields = line.split()
                if "FLOCK" in fields and device in fields:
                    pid = fields[fields.index(device) - 1]
                    return f"pid {pid}" + _command_of(pid)
    except OSError:
        pass
    return "a process this system does not name"


def _command_of(pid):
    """', gpusim run ...' for a process whose command line can be read, else ''."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            words = f.read(500).split(b"\0")
    except OSError:
        return ""
    words = [w.decode(errors="replace") for w in words if w]
    if "gpusim" in " ".join(words):  # from "python -m gpusim run ..." or ".../bin/gpusim run ..."
        at = next(k for k, w in enumerate(words) if w.endswith("gpusim"))
        words = ["gpusim"] + words[at + 1 : at + 3]
    text = " ".join(words)[:80]
    return ", " + "".join(c if c.isprintable() else "?" for c in text) if text else ""
