"""Crash-safe files and folders, and one writer per output folder.

A folder ``DIR`` is replaced in three steps: the old copy is renamed aside to ``.DIR.old-PID``, the
new one (written in ``.DIR.tmp-PID``) is renamed in, then the old copy is removed. A process killed
at any point leaves either ``DIR`` or both copies in hidden folders beside it; ``recover`` finishes
such a replacement (the new copy wins once complete) and removes the temporaries of processes that
are gone. Temporaries are named after their process (``PID``, and ``PID-N`` for files), so two
processes never write the same temporary.

``FolderLock`` makes one process the only writer of a folder for a whole run or sweep: it holds
``fcntl.flock`` on ``.DIR.lock`` beside the folder (so it works before ``DIR`` exists, and covers
``DIR.checkpoint`` too) and writes its PID there for the refusal message; the file goes when the
lock is released.

For tests only: ``STRAGGLERSIM_TEST_PAUSE_IN_REPLACE=SECONDS`` sleeps between the two renames of a
replacement, to widen the window a test kills the process in.
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import os
import re
import shutil
import time
from pathlib import Path

from .errors import InputError, named

TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)(-\d+)?$")  # a temporary's name
_serial = itertools.count()


def temporary(target: Path, kind: str = "tmp") -> Path:
    """The hidden name beside ``target`` this process writes (``tmp``) or moves aside (``old``)."""
    target = Path(target)
    return target.with_name(f".{target.name}.{kind}-{os.getpid()}")


def write_text(path: Path, text: str) -> None:
    """Write ``path`` atomically and durably: a temporary file of this process and thread beside it,
    flushed to disk, then renamed over ``path``. A reader sees the old file or the new one, whole."""
    write_bytes(path, text.encode())


def write_bytes(path: Path, data: bytes) -> None:
    """``write_text`` for bytes (a gzipped or parquet file)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{next(_serial)}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    sync_dir(path.parent)


def replace_dir(new: Path, target: Path) -> None:
    """Put the folder ``new`` (beside ``target``) in place of ``target``, crash-safely: at every
    moment ``target`` or both copies exist, and ``recover`` finishes an interrupted replacement."""
    new, target = Path(new), Path(target)
    sync_tree(new)
    if target.exists():
        old = temporary(target, "old")
        shutil.rmtree(old, ignore_errors=True)
        try:
            target.rename(old)
            sync_dir(target.parent)
            if pause := float(os.environ.get("STRAGGLERSIM_TEST_PAUSE_IN_REPLACE", "0") or 0):
                time.sleep(pause)
            new.rename(target)
            sync_dir(target.parent)
        except BaseException:  # a SIGTERM or Ctrl-C between the renames: put the new copy in before it goes on
            if not target.exists() and new.exists():
                new.rename(target)
            raise
        shutil.rmtree(old)
    else:
        new.rename(target)
        sync_dir(target.parent)


def recover(target: Path, complete=None) -> None:
    """Finish a replacement of ``target`` that a killed process left, and remove the temporaries
    beside ``target`` of processes that are gone (a live process's are left alone).

    A new copy wins when the replacement had begun (its process had moved the old copy aside, which
    it does only once the new one is written) or when ``complete(copy)`` says it is whole; ``target``
    missing (or not ``complete``) with no such copy gets the old copy back.

    Args:
        complete: a predicate on a folder (the caller knows which files make it whole), or None.
    """
    target = Path(target)
    gone = [(path, kind, pid) for path, kind, pid in _temporaries(target) if not _alive(pid)]
    aside = {pid for _, kind, pid in gone if kind == "old"}
    news = [p for p, kind, pid in gone if kind == "tmp" and p.is_dir() and (pid in aside or (complete and complete(p)))]
    olds = [p for p, kind, _ in gone if kind == "old" and p.is_dir()]
    if not target.exists() or (complete is not None and target.is_dir() and not complete(target)):
        if news:
            replace_dir(max(news, key=lambda p: p.stat().st_mtime), target)
        elif olds and not target.exists():
            max(olds, key=lambda p: p.stat().st_mtime).rename(target)
            sync_dir(target.parent)
    for path, _, _ in gone:
        _remove(path)


def recover_all(folder: Path) -> None:
    """``recover`` every entry of ``folder`` that has temporaries beside it, and remove lock files
    that no process holds."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    names = set()
    for entry in folder.iterdir():
        if match := TEMPORARY.match(entry.name):
            names.add(match["name"])
        elif entry.name.startswith(".") and entry.name.endswith(".lock"):
            _remove_stale_lock(entry)
    for name in sorted(names):
        recover(folder / name)


def sync_tree(folder: Path) -> None:
    """Flush every file under ``folder``, and the folders, to disk."""
    for root, _, files in os.walk(folder):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        sync_dir(Path(root))


def sync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename in it) to disk."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FolderLock:
    """One writer per folder: an advisory lock on ``.NAME.lock`` beside ``folder``, for a ``with``.

    The same process may take it again inside (the count goes up); another process gets
    ``InputError`` naming the holder's PID. Parent folders it had to create go again if the run
    left them empty.
    """

    _held: dict[str, list] = {}  # lock path -> [fd, count, pid, parent folders it created]

    def __init__(self, folder: Path, option: str = named("out")):
        self.folder, self.option = Path(folder), option

    def __enter__(self) -> FolderLock:
        where = Path(os.path.abspath(self.folder))
        created = _make_parents(where.parent)
        self.path = where.parent.resolve() / f".{where.name}.lock"  # one name for every spelling of the folder
        held = self._held.get(str(self.path))
        if held is not None and held[2] == os.getpid():
            held[1] += 1
            return self
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                _remove_empty(created)
                raise InputError(
                    f"{self.option} {self.folder}: another stragglersim process{_holder(self.path)} is writing it; "
                    "wait for it or give another folder"
                ) from None
            if _same_file(fd, self.path):  # not unlinked by its last holder between our open and flock
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._held[str(self.path)] = [fd, 1, os.getpid(), created]
        return self

    def __exit__(self, *exc) -> None:
        held = self._held[str(self.path)]
        held[1] -= 1
        if held[1] == 0:
            del self._held[str(self.path)]
            self.path.unlink(missing_ok=True)  # while still holding it: a waiter then sees another file
            os.close(held[0])
            _remove_empty(held[3])


def _holder(path: Path) -> str:
    """`` (PID n)`` of the lock's holder, as it wrote it (it may be writing it just now)."""
    for _ in range(20):
        try:
            text = path.read_text().strip()
        except OSError:
            return ""
        if text.isdigit():
            return f" (PID {text})"
        time.sleep(0.01)
    return ""


def _same_file(fd: int, path: Path) -> bool:
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (now.st_dev, now.st_ino)


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and missing parents; return those created, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    for path in reversed(missing):
        path.mkdir(exist_ok=True)
    return missing


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            break


def _remove_stale_lock(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if _same_file(fd, path):
            path.unlink()
    except OSError:
        pass  # held: its process is alive
    finally:
        os.close(fd)


def _temporaries(target: Path) -> list[tuple[Path, str, int]]:
    """The temporaries beside ``target``: (path, ``tmp`` or ``old``, the PID that wrote it)."""
    parent = target.parent
    if not parent.is_dir():
        return []
    found = []
    for entry in parent.iterdir():
        match = TEMPORARY.match(entry.name)
        if match and match["name"] == target.name:
            found.append((entry, match["kind"], int(match["pid"])))
    return found


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError as err:
        return err.errno == errno.EPERM  # another user's live process
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)
