"""A sweep's local worker processes, which never outlive the sweep.

A pool worker is a spawned Python process. Nothing in ``multiprocessing`` stops it when the
sweep process dies without cleaning up (SIGKILL, the out-of-memory killer): it would go on
running queued runs beside a resumed sweep. So each worker asks the kernel to kill it when its
parent dies (Linux's parent-death signal) and, on every system, watches its parent's PID once a
second and exits when the parent is gone. Once the workers are gone, multiprocessing's resource
tracker (also a child of the sweep) sees its pipe close and exits too.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

PR_SET_PDEATHSIG = 1  # prctl(2): the signal this process gets when its parent dies
WATCH_EVERY = 1.0  # seconds between two looks at the parent's PID


def worker_pool(jobs: int) -> ProcessPoolExecutor:
    """``jobs`` spawned worker processes that die with this process and share their compilations."""
    return ProcessPoolExecutor(
        max_workers=jobs, mp_context=mp.get_context("spawn"), initializer=start_worker, initargs=(os.getpid(),)
    )


def start_worker(parent: int) -> None:
    """A pool worker's start: die with ``parent``; share compiled training steps (:func:`share_compilations`)."""
    die_with_parent(parent)
    share_compilations()


def share_compilations() -> None:
    """Point JAX's persistent compilation cache at ``$STRAGGLERSIM_CACHE/jax`` (default
    ``~/.cache/stragglersim/jax``) before this process imports JAX, so that the workers of a sweep, and
    later sweeps, load a training step another one compiled instead of compiling it again (the same
    executable: the same numbers). Left alone where the user set ``JAX_COMPILATION_CACHE_DIR``;
    ``STRAGGLERSIM_COMPILE_CACHE=off`` turns it off."""
    if os.environ.get("STRAGGLERSIM_COMPILE_CACHE", "").lower() in ("0", "off", "no", "false"):
        return
    root = Path(os.environ.get("STRAGGLERSIM_CACHE", Path.home() / ".cache" / "stragglersim"))
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(root / "jax"))


def die_with_parent(parent: int) -> None:
    """Make this process exit when ``parent`` (the PID of its parent now) dies."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the watchdog alone
            pass
    if os.getppid() != parent:  # the parent died before the signal was set
        os._exit(1)
    threading.Thread(target=_watch, args=(parent,), daemon=True, name="stragglersim-parent-watch").start()


def _watch(parent: int) -> None:
    while True:
        time.sleep(WATCH_EVERY)
        if os.getppid() != parent:  # reparented: the parent is gone
            os._exit(1)


def stop(pool: ProcessPoolExecutor) -> None:
    """Cancel the queued runs and end the running ones now: terminate the workers (a run cut short
    leaves its temporary folder, named with its worker's PID: ``storage.recover_all`` removes it)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join()
