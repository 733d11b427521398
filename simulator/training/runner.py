"""Run one configuration (timing only or with training) and write its results."""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..core import fastpath
from ..core.assemble import RunInputs, assemble, input_files
from ..core.config import RunConfig
from ..core.engine import Simulation
from ..io.errors import InputError, named
from ..io.outcome import Outcome, outcome_of
from ..io.progress import NULL_PROGRESS, NullProgress
from ..io.results import check_not_in_sweep, check_out_dir, check_out_place, write_run
from ..io.storage import FolderLock, recover

WALL_CLOCK = (
    "wall_seconds",
    "updates_per_wall_second",
)  # of this machine, not the run: the only keys a seed does not fix


@dataclass
class RunResult:
    config: RunConfig  # resolved (the model's parameter size filled in when training)
    log: object
    summary: dict
    tables: dict  # extra CSV files: {name: (header, lines)}
    params: object = None  # with training: the final parameters (a pytree of NumPy arrays)
    outcome: Outcome = Outcome.COMPLETED  # how the run ended


def execute(run: RunConfig | RunInputs, *, progress=NULL_PROGRESS, checkpoints=None, resume=None) -> RunResult:
    """Simulate a run, training if it asks for it.

    Args:
        run: the run's inputs, or a config, assembled here (each input read once).

    Raises:
        InputError: bad configuration or input files, or a trace used up before any update.
    """
    inputs = run if isinstance(run, RunInputs) else assemble(run)
    config = inputs.config
    tables, params = {}, None
    start = time.perf_counter()
    if config.timing_only:
        if fastpath.applies(inputs):
            log = fastpath.fast_simulate(inputs, records=config.log_gradients == "all")
            progress.update(len(log.updates))
        else:
            log = Simulation(inputs, progress=progress).run()
        summary = log.summary(config)
    else:
        from .evaluation import TrainingResult  # here, not at import: a timing-only run never imports JAX
        from .trainer import train  # here, not at import: a timing-only run never imports JAX

        config, log, result = train(inputs, progress=progress, checkpoints=checkpoints, resume=resume)
        summary = {**log.summary(config), **result.summary}
        tables["metrics.csv"] = (TrainingResult.METRICS_FIELDS, result.metric_lines())
        tables["training.csv"] = (TrainingResult.STEPS_FIELDS, result.step_lines())
        params = result.params
    wall = time.perf_counter() - start
    summary |= dict(zip(WALL_CLOCK, (wall, len(log.updates) / wall if wall > 0 else None), strict=True))
    if not log.updates and log.exhausted:
        raise InputError(f"{named('latency')} {config.latency}: the trace was used up before the first update")
    return RunResult(config, log, summary, tables, params, outcome_of(log, summary))


def execute_and_write(config: RunConfig, out: Path, *, overwrite: bool = False) -> dict:
    """``execute`` then write the results to ``out``; returns the summary (for sweeps). The process
    is the only writer of ``out`` (``FolderLock``) from start to end."""
    with FolderLock(out):
        result = execute(config)
        write_run(out, result.config, result.log, result.summary, tables=result.tables, overwrite=overwrite)
    return result.summary


def run_to_folder(
    config: RunConfig, out: Path, *, overwrite: bool = False, progress=NULL_PROGRESS, resume=None, reads=()
):
    """``execute`` with checkpoints in ``OUT.checkpoint`` (when the config asks for them), then write
    the results to ``out``; the checkpoints go once the run is complete. ``progress`` is closed.
    ``reads``: files read besides the config's own (``--config``), which ``out`` must not replace.
    The process is the only writer of ``out`` and ``OUT.checkpoint`` (``FolderLock``) throughout."""
    try:  # progress.close() may be called twice (tqdm's and NullProgress's are idempotent)
        inputs = assemble(config)  # every input error first (validation, latency, faults, data) ...
        reads = [*reads, *input_files(config), *([resume] if resume is not None else [])]
        if resume is not None and Path(resume).resolve() in Path(out).resolve().parents:
            raise InputError(
                f"{named('out')} {out}: inside the checkpoint {resume}, "
                f"which a later checkpoint replaces; give another folder"
            )
        check_out_place(out, reads)
        check_not_in_sweep(out)
        with FolderLock(out):
            recover(out)  # an --overwrite a killed process left half-done; its temporaries
            check_out_dir(out, overwrite=overwrite, inputs=reads)  # ... then whether the results can be written
            checkpoints = Path(f"{out}.checkpoint")
            if inputs.config.checkpoint_every or resume is not None:
                from .checkpoint import recover as recover_checkpoint  # here, not at import: it imports JAX

                recover_checkpoint(checkpoints)  # a checkpoint write a killed run left half-done; its temporaries
            result = execute(inputs, progress=progress, checkpoints=checkpoints, resume=resume)
            progress.close()
            if not isinstance(progress, NullProgress) and len(result.log.gradients) > 200_000:
                print(f"writing {len(result.log.gradients)} gradient records to {out} ...", file=sys.stderr)
            write_run(out, result.config, result.log, result.summary, tables=result.tables, overwrite=overwrite)
            if checkpoints.exists():
                shutil.rmtree(checkpoints)  # the run is complete (resumed from here or not)
    finally:
        progress.close()
    return result
