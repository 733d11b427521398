"""Sweeps on a Dask distributed cluster: one task per run, its files sent back to the client.

Each run is a pure function of its configuration, so a worker anywhere computes the same files
as a local process. The worker writes the run into a temporary folder and returns its files;
the client writes them into the sweep folder as they arrive, under a temporary name renamed into
place as local runs are. Workers therefore share no filesystem with the client, a lost worker
costs only its in-flight runs (the scheduler hands them to another worker), and an interrupted
sweep resumes like a local one.
"""

from __future__ import annotations

import asyncio
import logging
import re
import tempfile
import time
import traceback
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from ..core.config import RunConfig
from ..io.errors import InputError, named
from ..io.results import staged_dir
from ..io.version import __version__
from ..training.runner import execute_and_write

LOCAL = re.compile(r"local:(\d+)")
ADDRESS = re.compile(r"(tcp|tls|ucx|ws|wss)://\S+|[^\s:/]+:\d+")
INSTALL = "pip install '.[cluster]' in a stragglersim checkout"
TIMEOUT = 10.0  # seconds a scheduler's address has to answer


def compute_files(config: RunConfig) -> dict[str, bytes]:
    """Run ``config`` in a temporary folder; return its files as {relative POSIX path: bytes}."""
    with tempfile.TemporaryDirectory(prefix="stragglersim-") as tmp:
        out = Path(tmp) / "run"
        execute_and_write(config, out)
        return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def write_files(out: Path, files: dict[str, bytes]) -> None:
    """Write a run's files to ``out``, all together or not at all."""
    with staged_dir(out, overwrite=True) as tmp:
        for name, data in files.items():
            relative = PurePosixPath(name)
            if relative.is_absolute() or ".." in relative.parts:
                raise ValueError(f"a worker sent a file outside its run folder: {name}")
            (tmp / relative).parent.mkdir(parents=True, exist_ok=True)
            (tmp / relative).write_bytes(data)


def check_scheduler(scheduler: str, *, timeout: float | None = None) -> int | None:
    """Check ``--scheduler`` (and that Dask distributed is installed) before anything runs or is
    written: a scheduler's address must answer within ``timeout`` seconds (default ``TIMEOUT``).

    Returns:
        K for ``local:K``; None for the address of a running scheduler.
    """
    k = _parse(scheduler)
    if k is None:
        _probe(scheduler, TIMEOUT if timeout is None else timeout)
    return k


def _parse(scheduler: str) -> int | None:
    try:
        # here, not at import: an optional dependency (the cluster extra)
        import distributed  # noqa: F401
    except ImportError:
        raise InputError(
            f"{named('scheduler')} needs Dask distributed: install the cluster extra ({INSTALL})"
        ) from None
    local = LOCAL.fullmatch(scheduler)
    if local and int(local[1]) < 1:
        raise InputError(f"{named('scheduler')} {scheduler}: local:K needs K >= 1 workers")
    if local:
        return int(local[1])
    if not ADDRESS.fullmatch(scheduler):
        raise InputError(
            f"{named('scheduler')} {scheduler}: expected tcp://HOST:PORT (a running dask scheduler) or local:K"
        )
    return None


def _probe(address: str, timeout: float) -> None:
    """Raise unless a Dask scheduler answers at ``address`` (a handshake, then the comm is closed)."""
    from distributed.comm import connect as open_comm  # here, not at import: an optional dependency

    async def probe():
        comm = await open_comm(address, timeout=timeout)
        await comm.close()

    with ThreadPoolExecutor(1) as thread:  # its own event loop, whatever the caller runs
        try:
            thread.submit(asyncio.run, probe()).result()
        except (OSError, ValueError) as err:
            raise InputError(
                f"{named('scheduler')} {address}: no Dask scheduler answered within {timeout:g} s ({err})"
            ) from None


@contextmanager
def connect(scheduler: str, *, timeout: float | None = None, log=print):
    """A ``distributed.Client`` for ``tcp://HOST:PORT`` (a running ``dask scheduler``) or for
    ``local:K`` (a ``LocalCluster`` of K one-thread worker processes on this machine), checked
    to have stragglersim installed at this version on every worker.

    Raises:
        InputError: distributed is not installed, the address is malformed, no scheduler
            answers within ``timeout`` seconds, or a worker lacks stragglersim or has another version.
    """
    k = _parse(scheduler)
    timeout = TIMEOUT if timeout is None else timeout
    import distributed  # here, not at import: an optional dependency (the cluster extra)

    with _quiet_logs():
        if k is not None:
            with warnings.catch_warnings():  # the dashboard's port may be taken: Dask then picks another
                warnings.simplefilter("ignore")
                cluster = distributed.LocalCluster(
                    n_workers=k, threads_per_worker=1, processes=True, silence_logs=logging.CRITICAL
                )
            client = distributed.Client(cluster)
        else:
            cluster = None
            try:
                client = distributed.Client(scheduler, timeout=timeout)
            except OSError as err:
                raise InputError(
                    f"{named('scheduler')} {scheduler}: no Dask scheduler answered within {timeout:g} s ({err})"
                ) from None
        try:
            yield _checked(client, scheduler, log)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()


QUIET = ("distributed", "tornado", "asyncio")  # loggers whose lines (and tracebacks) are Dask's, not ours


@contextmanager
def _quiet_logs():
    """Keep Dask's own log lines (a lost worker's WARNING and ERROR lines, their tracebacks) off the
    terminal while a sweep runs; what matters is said in one line of ours (``run_on_dask``)."""
    names = [n for n in logging.root.manager.loggerDict if n.split(".")[0] in QUIET]
    loggers = [logging.getLogger(n) for n in sorted({*QUIET, *names})]
    before = [logger.disabled for logger in loggers]
    for logger in loggers:
        logger.disabled = True
    try:
        yield
    finally:
        for logger, disabled in zip(loggers, before, strict=True):
            logger.disabled = disabled


def _checked(client, scheduler: str, log):
    """``client``, once its workers are checked and the cluster is described in one line."""
    _check_workers(client, scheduler)
    nthreads = client.nthreads()
    log(
        f"Dask scheduler {client.scheduler.address}: {len(nthreads)} workers, {sum(nthreads.values())} threads"
        + (f"; dashboard {client.dashboard_link}" if "dashboard" in client.scheduler_info()["services"] else "")
        + ("" if nthreads else "; runs start when workers join")
    )
    return client


def _check_workers(client, scheduler: str) -> None:
    def version():  # defined here so that it travels by value, not by a module reference
        # here, not at import: this runs on each worker, where it reads the worker's own installed version
        from stragglersim.io.version import __version__ as installed

        return installed

    for worker, answer in client.run(version, on_error="return").items():
        if isinstance(answer, BaseException):
            raise InputError(
                f"{named('scheduler')} {scheduler}: worker {worker} cannot run stragglersim ({answer}): "
                f"install it there ({INSTALL})"
            )
        if answer != __version__:
            raise InputError(
                f"{named('scheduler')} {scheduler}: worker {worker} has "
                f"stragglersim {answer}, this client {__version__}: "
                "results would differ; install the same version everywhere"
            )


def run_on_dask(todo: list[tuple[RunConfig, Path]], client, counter, log=lambda message: None) -> list[tuple[str, str]]:
    """Compute every ``(config, folder)`` on the cluster and write each folder as its run
    arrives; ``log`` gets one line for each worker lost on the way. Returns the failed runs as
    ``(folder name, error with traceback)``."""
    from distributed import as_completed  # here, not at import: an optional dependency (the cluster extra)

    futures = {}
    for config, path in todo:
        key = f"stragglersim-{path.name}-{uuid.uuid4().hex[:8]}"
        futures[client.submit(compute_files, config, key=key, retries=0)] = path
    keys = {f.key for f in futures}
    failures = []
    pending = as_completed(futures)
    polled = -float("inf")
    workers = set(client.nthreads())
    try:
        while not pending.is_empty():
            batch = pending.next_batch(block=False)
            for future in batch:
                path = futures[future]
                if future.status == "lost":  # done, but its worker died before we fetched it: recomputed
                    pending.add(future)
                    continue
                if future.status == "finished":
                    write_files(path, future.result())
                    counter.update(finished=1)
                else:
                    failures.append((path.name, _describe_failure(future)))
                    counter.update(failed=1)
                future.release()  # its files are written: free the worker's copy
                keys.discard(future.key)
            if time.monotonic() - polled >= 0.5:
                counter.update(running=_running(client, keys))
                workers = _lost(client, workers, log)
                polled = time.monotonic()
            if not batch:
                time.sleep(0.1)
    except BaseException:
        client.cancel(list(futures))
        raise
    counter.update(running=0)
    return failures


def _lost(client, workers: set, log) -> set:
    """The workers now; one line for each of ``workers`` gone since (a lost worker's runs are
    handed to the others by the scheduler; one that kills worker after worker fails)."""
    now = set(client.nthreads())
    for worker in sorted(workers - now):
        log(
            f"a Dask worker was lost ({worker}): its runs in flight go to the other workers "
            "(a run that loses its worker again and again fails; the same command retries it)"
        )
    return now


def _running(client, keys: set) -> int:
    """How many of ``keys`` workers are computing now (a worker runs at most its thread count)."""
    nthreads = client.nthreads()
    return sum(min(nthreads.get(w, 1), sum(k in keys for k in ks)) for w, ks in client.processing().items())


def _describe_failure(future) -> str:
    if future.status != "error":
        return f"the task was {future.status} (was the scheduler lost?)"
    err = future.exception()
    return "".join(traceback.format_exception(type(err), err, future.traceback())).rstrip()
