"""One place turns a validated :class:`RunConfig` into the objects a run needs.

:meth:`RunConfig.validate` checks the fields alone (no file is read). :func:`assemble` then
reads and resolves everything else exactly once: the latency model (a trace file is read
here), the per-worker speed factors, the faults, the work model of ``--data-cost nnz`` and,
for training, the dataset, the model, its initial parameters and the size of one push. The
engine, the fast path and the trainer take the resulting :class:`RunInputs`, never the config's
strings.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from ..io import imports
from ..io.errors import InputError, named
from ..latency import TRACE_FAMILIES, LatencyModel, parse_latency
from .cluster import Cluster, Link, parse_speed_factors
from .components import dataset_of, model_of
from .config import RunConfig
from .faults import Faults
from .limits import check_run
from .workload import work_model


@dataclass(frozen=True)
class RunInputs:
    """Everything one run reads, resolved once.

    Attributes:
        config: the validated run; with training, ``param_bytes`` is filled in from the model.
        cluster: the latency model, per-worker speed factors and transfer times (seconds).
        faults: fail-slow episodes and failures.
        work: ``(worker, index) -> factor`` on the computation time (``--data-cost nnz``), or None.
        dataset: the training data (training, or ``--data-cost nnz``), or None.
        model: the model to train, or None for a timing-only run.
        params: the model's initial parameters (a pytree), or None.
    """

    config: RunConfig
    cluster: Cluster
    faults: Faults
    work: Callable[[int, int], float] | None = None
    dataset: object = None
    model: object = None
    params: object = None

    @property
    def training(self) -> bool:
        return self.model is not None


def latency_of(config: RunConfig) -> LatencyModel:
    """The latency model of a run, checked against its number of workers.

    Raises:
        InputError: a bad SPEC or trace, or a per-worker trace with too few workers.
    """
    model = parse_latency(config.latency, trace_format=config.trace_format, time_scale=config.time_scale)
    recorded = getattr(model, "n_workers", None)
    if recorded is not None and recorded < config.total_workers:
        raise InputError(
            f"{named('latency')} {config.latency}: the trace has {recorded} workers but the run needs "
            f"{config.total_workers} (N + B); replay needs one recorded worker per simulated worker"
        )
    return model


def _system(config: RunConfig):
    """The latency model, speed factors and faults: the inputs every run has."""
    model = latency_of(config)
    factors = parse_speed_factors(config.speed_factors, config.total_workers, config.seed)
    faults = Faults.from_config(config)
    check_run(config, model, factors, faults)  # refuse what cannot finish or fit, before any work
    return model, factors, faults


def check(config: RunConfig) -> RunConfig:
    """Validate ``config`` and its system inputs (latency, speed factors, faults) without
    loading any dataset: the up-front check of a sweep. Returns ``config``.

    Raises:
        InputError: the first problem found, in one line.
    """
    _system(config.validate())
    for field in _read(config, training=not config.timing_only):
        if imports.is_user(getattr(config, field)):
            imports.resolve(field, getattr(config, field))  # importable, and the name is there
    return config


def assemble(config: RunConfig, *, training: bool | None = None) -> RunInputs:
    """Resolve ``config`` (validated here) into the inputs of one run, reading each input once.

    Args:
        config: the run.
        training: whether to build the dataset and model (default: unless ``timing_only``).

    Raises:
        InputError: a bad latency, speed factors or faults; a dataset that cannot be loaded or
            a model that does not fit it.
    """
    config.validate()
    training = not config.timing_only if training is None else training
    latency, factors, faults = _system(config)
    dataset = model = params = None
    used = _read(config, training=training)
    sources = imports.sources_of(config, used) if used else None
    if config.sources is not None and sources is not None:  # a saved run's config (resumed, rerun)
        imports.check_sources(config, config.sources, sources, "the run was configured", used)
    if used:
        dataset = dataset_of(config)
    if training:
        model, params = model_of(config, dataset)
        if config.param_bytes is None:  # a push moves one gradient, the size of the parameters
            config = replace(config, param_bytes=float(model.param_bytes(params)))
    if sources:
        config = replace(config, sources=sources)
    cluster = Cluster(
        latency,
        factors,
        Link(config.comm_latency, config.bandwidth),
        config.param_bytes or 0.0,
        config.seed,
        config.ps_bandwidth,
        ps_service=config.ps_service or 0.0,
        ps_servers=config.ps_servers or 1,
    )
    work = work_model(config, dataset) if config.data_cost != "none" else None
    return RunInputs(config, cluster, faults, work, dataset, model, params)


def _read(config: RunConfig, *, training: bool) -> tuple[str, ...]:
    """Which of the model, dataset and optimizer a run reads: all three to train; the dataset alone for
    the work model of ``--data-cost``; none for a timing-only run."""
    if training:
        return imports.COMPONENTS
    return ("dataset",) if config.data_cost != "none" else ()


def inputs_of(run: RunInputs | RunConfig) -> RunInputs:
    """``run`` itself, or the timing inputs of a bare config (a convenience for tests and
    scripts that build an engine straight from a config)."""
    return run if isinstance(run, RunInputs) else assemble(run, training=False)


def input_files(config: RunConfig) -> list[str]:
    """The files a run reads (a trace latency's file, the dataset's), which its output must not replace."""
    family, _, path = config.latency.partition(":")
    files = [path.strip()] if family.strip() in TRACE_FAMILIES and path.strip() else []
    return files + ([config.data_path] if config.data_path else [])
