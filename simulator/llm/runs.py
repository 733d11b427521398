"""Are per-rank profiler traces one run of one job? Refuse mixtures before they are analysed.

Files of one run profile the same steps, report the same process groups, and run the same-numbered
step at the same time on every rank: a step ends with collectives every rank takes part in, so its
windows on all ranks share an instant. Files of different runs (or of one rank profiled twice) fail
one of these; clocks known to be skewed (nodes not synchronised) may waive the last with
``--trust-clocks``.
"""

from __future__ import annotations

from pathlib import Path

from ..io.errors import InputError, named


def check_same_run(windows: dict[Path, dict], infos: dict[Path, object], *, trust_clocks: bool = False) -> None:
    """Refuse files that are not one run.

    Args:
        windows: each file's steps ``{N: (ts, dur, ...)}`` in microseconds.
        infos: each file's ``distributedInfo`` (None where it has none).
        trust_clocks: skip the check that each step's windows overlap across files.

    Raises:
        InputError: one line naming the files that disagree.
    """
    _same_groups(infos)
    paths = list(windows)
    first = paths[0]
    for path in paths[1:]:
        if len(windows[path]) != len(windows[first]):
            raise InputError(
                f"{path} and {first}: {len(windows[path])} and {len(windows[first])} profiled steps: files of one "
                "run profile the same steps"
            )
        if set(windows[path]) != set(windows[first]):
            missing = sorted(set(windows[first]) ^ set(windows[path]))
            raise InputError(
                f"{path} and {first}: step(s) {missing[:5]} in only one of them: files of one run profile the "
                "same steps"
            )
    if trust_clocks:
        return
    for n in sorted(windows[first]):
        late = max(paths, key=lambda p: windows[p][n][0])
        early = min(paths, key=lambda p: windows[p][n][0] + windows[p][n][1])
        start, end = windows[late][n][0], windows[early][n][0] + windows[early][n][1]
        if start >= end:
            raise InputError(
                f"{late} and {early}: step {n} starts {(start - end) * 1e-6:.3g} s after it ended on the other: "
                f"not one run (files of different runs?); pass {named('trust_clocks')} if the clocks are skewed"
            )


def _same_groups(infos: dict[Path, object]) -> None:
    """Every file that reports a world size or a process group agrees with the others."""
    world: tuple[Path, object] | None = None
    groups: dict[object, tuple[Path, object]] = {}
    for path, info in infos.items():
        if not isinstance(info, dict):
            continue
        size = info.get("world_size")
        if size is not None:
            if world is not None and size != world[1]:
                raise InputError(f"{path} and {world[0]}: world sizes {size!r} and {world[1]!r}: not one run")
            world = world or (path, size)
        config = info.get("pg_config")
        for group in config if isinstance(config, list) else ():
            if not isinstance(group, dict) or "pg_name" not in group:
                continue
            ranks = group.get("ranks")
            key = str(group["pg_name"])
            if key in groups and groups[key][1] != ranks:
                raise InputError(
                    f"{path} and {groups[key][0]}: process group {key} holds ranks {_short(ranks)} and "
                    f"{_short(groups[key][1])}: different process-group layouts, not one run"
                )
            groups.setdefault(key, (path, ranks))


def _short(ranks) -> str:
    text = str(ranks)
    return text if len(text) <= 40 else text[:37] + "...]"
