"""Where the command line meets the file system: every failure is one line, never a traceback.

``explain`` turns what the library lets through (``OSError`` from a write, a corrupt file's
decode error, ``RecursionError``, ``MemoryError``) into an exit status and one line naming the
path: status 2 for an input problem (a bad path, a corrupt or too deeply nested file), status 1
for a problem of the environment (disk full, permission denied, read-only, out of memory).

The checks run before any work, so that a run never simulates for an hour and then fails to write:
``check_out_writable`` (the ``--out`` of every command that writes), ``check_input_file`` (a FIFO
or a device given as an input file would block forever or never end) and ``check_nesting`` (the
SPEC and TOML parsers recurse once per level).
"""

from __future__ import annotations

import errno
import io
import json
import os
import stat
import zipfile
from pathlib import Path

from .errors import InputError, named

ENVIRONMENT = 1  # exit status: disk full, permission, memory
INPUT = 2  # exit status: a bad path or a corrupt file

_OS_ERRORS = {  # errno: (exit status, what it means)
    errno.ENOSPC: (ENVIRONMENT, "no space left on the device (disk full)"),
    errno.EDQUOT: (ENVIRONMENT, "disk quota exceeded (disk full)"),
    errno.EFBIG: (ENVIRONMENT, "file too large for the file size limit (disk full)"),
    errno.EACCES: (ENVIRONMENT, "permission denied"),
    errno.EPERM: (ENVIRONMENT, "operation not permitted"),
    errno.EROFS: (ENVIRONMENT, "read-only file system"),
    errno.ENAMETOOLONG: (INPUT, "file name too long"),
    errno.ENOTDIR: (INPUT, "a part of the path is not a folder"),
    errno.EISDIR: (INPUT, "is a folder where a file was expected"),
    errno.ENOENT: (INPUT, "no such file or folder"),
    errno.EEXIST: (INPUT, "exists already"),
    errno.ENOTEMPTY: (INPUT, "folder is not empty"),
    errno.ELOOP: (INPUT, "too many levels of symbolic links"),
}


def explain(err: BaseException) -> tuple[int, str] | None:
    """The exit status and the one line for an error that reached the command line, or None if it
    is none of the file-system, memory or corrupt-file errors this module knows (a bug: traceback).
    """
    import tomllib  # here, not at import: the command line starts without tomllib (4 ms)

    if isinstance(err, OSError) and not isinstance(err, InterruptedError | BrokenPipeError):
        status, meaning = _OS_ERRORS.get(err.errno, (ENVIRONMENT, err.strerror or str(err) or type(err).__name__))
        paths = [str(p) for p in (err.filename, err.filename2) if p is not None] or [_path_written(err)]
        return status, f"{' -> '.join(dict.fromkeys(_untemp(p) for p in paths))}: {meaning}"
    if isinstance(err, MemoryError):
        return ENVIRONMENT, "out of memory; give smaller sizes (workers, steps, batch, dataset) or free memory"
    if isinstance(err, RecursionError):
        return INPUT, "input nested too deeply to read (a SPEC, TOML or JSON file); flatten it"
    corrupt = (json.JSONDecodeError, tomllib.TOMLDecodeError, zipfile.BadZipFile, EOFError, UnicodeDecodeError)
    if isinstance(err, corrupt):
        detail = " ".join(str(err).split())[:200]
        return INPUT, f"a file is corrupt or truncated ({type(err).__name__}: {detail})"
    return None


def _path_written(err: OSError) -> str:
    """The file a failed ``write`` was writing (the error holds no name): the innermost frame's open
    file, or its ``path`` (a full disk fails in ``f.write``, long after ``open`` named the file)."""
    frames = []
    tb = err.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        names = frame.f_locals
        for value in names.values():
            if isinstance(value, io.IOBase) and isinstance(getattr(value, "name", None), str):
                return value.name
        for name in ("path", "file", "out"):
            if isinstance(names.get(name), str | os.PathLike):
                return os.fspath(names[name])
    return "a file"


def _untemp(path: str) -> str:
    """``DIR/.run.tmp-PID/x.csv`` (removed by now) as the user knows it: ``DIR/run/x.csv``."""
    from .storage import TEMPORARY  # here, not at import: the command line starts without io.storage (5 ms)

    return "/".join(match["name"] if (match := TEMPORARY.match(part)) else part for part in path.split("/"))


PSEUDO = ("/proc", "/sys", "/dev")  # kernel file systems: never a place for results


def check_out_writable(out: Path, *, what: str = named("out")) -> None:
    """Refuse, before any work, an output path that cannot be written: the root folder, a path under
    ``/proc``, ``/sys`` or ``/dev``, a path through a file, a folder this user cannot write, a name
    longer than the file system allows (less room for the hidden temporary name beside it).

    Raises:
        InputError: naming ``out`` and what is wrong with it.
    """
    out = Path(out)
    where = Path(os.path.abspath(out))
    if where == Path(where.anchor):
        raise InputError(f"{what} {out}: is the root folder; give a new folder for the results")
    if os.path.islink(where):  # replacing it would replace the link, and a lock would not see its target
        try:
            target = Path(os.path.realpath(where, strict=True))
        except OSError:
            raise InputError(f"{what} {out}: is a symbolic link that leads nowhere (or in a loop)") from None
        raise InputError(f"{what} {out}: is a symbolic link (to {target}); give the folder itself")
    real = Path(os.path.realpath(where))
    if any(real == Path(p) or Path(p) in real.parents for p in PSEUDO):
        raise InputError(f"{what} {out}: is in a kernel file system ({real}); give a folder on a disk")
    ancestor = where
    while not os.path.lexists(ancestor):
        ancestor = ancestor.parent
    if ancestor != where and not ancestor.is_dir():  # an existing output is the command's to judge
        kind = "a file" if ancestor.is_file() else "not a folder"
        raise InputError(f"{what} {out}: {ancestor} is {kind}, so nothing can be written below it")
    # a new path is made in its nearest existing folder; an existing one is replaced through a
    # temporary beside it (in its parent) or written into (plot, reproduce)
    needed = [ancestor] if where != ancestor else [where.parent, *([where] if where.is_dir() else [])]
    for folder in needed:
        if not os.access(folder, os.W_OK | os.X_OK):
            raise InputError(f"{what} {out}: cannot write in {folder} (permission denied or read-only)")
    name_max = _limit(ancestor, "PC_NAME_MAX", 255)
    for part in [*where.relative_to(ancestor).parts, where.name]:
        room = name_max - 16 if part == where.name else name_max  # ".NAME.tmp-PID" is written beside
        if len(os.fsencode(part)) > room:
            raise InputError(f"{what} {out}: the name {part[:20]}... is longer than {room} bytes ({ancestor})")
    if len(os.fsencode(str(where))) + 16 > _limit(ancestor, "PC_PATH_MAX", 4096):
        raise InputError(f"{what} {out}: the path is longer than the file system allows")


def _limit(folder: Path, name: str, default: int) -> int:
    try:
        return os.pathconf(folder, name)
    except (OSError, ValueError):
        return default


def check_input_file(path: Path, what: str = "") -> None:
    """Refuse, before opening it, an input that exists but is not a regular file: reading a FIFO
    blocks until a writer comes, ``/dev/zero`` never ends. A missing file is left to the reader.

    Args:
        what: prefix of the message (``--config ``).

    Raises:
        InputError: naming the path and what it is.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if stat.S_ISREG(mode):
        return
    kinds = [(stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device")]
    kinds += [(stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")]
    kind = next((k for test, k in kinds if test(mode)), "special")
    raise InputError(f"{what}{path}: is not a regular file ({kind}); give a file")


def check_nesting(text: str, *, what: str, limit: int, opens: str = "(", closes: str = ")") -> None:
    """Refuse text whose brackets nest deeper than ``limit`` before a recursive parser sees it.

    Counts every bracket, quoted or not: a string holding brackets only counts towards a limit far
    above any real configuration. Raises InputError naming ``what`` and the limit.
    """
    depth = deepest = 0
    for ch in text:
        if ch in opens:
            depth += 1
            deepest = max(deepest, depth)
        elif ch in closes:
            depth -= 1
    if deepest > limit:
        raise InputError(f"{what}: nested {deepest} levels deep; at most {limit} are allowed")
