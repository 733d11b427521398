"""The analysis commands as library functions: each returns a ``Report`` that the CLI prints.

``predict``, ``fit``, ``validate``, ``compare_backups``, ``measure`` and ``import_trace`` compute;
``Report.text()`` is what the command line shows, ``Report.data`` what the JSON files hold, and
``Report.save(out)`` writes the command's files (atomically, as every result in this package).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..core.config import RunConfig
from ..core.limits import MAX_PREDICT, check_latency
from ..io import strictjson
from ..io.errors import InputError, named
from ..io.results import staged_dir, write_json
from ..latency import parse_latency
from ..latency.fitting import fit_durations
from ..latency.traces import combine, read_trace
from ..models.catalog import MODELS
from ..plots.figures import plot_adaptive, plot_fit
from ..strategies import get
from ..training import measure as measuring
from .compare_backups import compare_with_fixed
from .theory import predict_backups
from .validation import validate_trace


@dataclass
class Report:
    """What an analysis found (``data``), how it reads (``lines``) and what it writes."""

    data: dict | list
    lines: list[str]
    files: dict[str, Callable[[Path], None]] = field(default_factory=dict)  # name: writer(path)

    def text(self) -> str:
        return "\n".join(self.lines)

    def save(self, out: Path, *, overwrite: bool = False, inputs=()) -> None:
        """Write every file of the report into the folder ``out`` (replaced as a whole), which must
        not hold any of ``inputs`` (the files and folders the report was made from)."""
        with staged_dir(Path(out), overwrite=overwrite, inputs=inputs) as tmp:
            for name, write in self.files.items():
                write(tmp / name)


def _json_file(data) -> Callable[[Path], None]:
    return lambda path: write_json(path, data)


def moment_cell(value: float | None, finite: bool) -> str:
    """A predicted moment as printed: the number, ``inf``, or ``n/a`` (finite, beyond double precision)."""
    if value is not None:
        return f"{value:.6g}"
    return "n/a" if finite else "inf"


def predict(latency: str, workers: int, backups, *, trace_format: str = "csv", time_scale: float = 1.0) -> Report:
    """Mean and std of X_{N:N+B} for each B (``theory.predict_backups``), with its notes."""
    backups = list(dict.fromkeys(backups))  # each B once, in order
    if workers < 1 or min(backups) < 0:
        raise InputError(f"{named('workers')} must be >= 1 and {named('backups')} >= 0")
    if workers + max(backups) > MAX_PREDICT:
        raise InputError(
            f"{named('workers')} {workers} {named('backups')} {max(backups)}: N + B is at most {MAX_PREDICT:.0e}"
        )
    model = parse_latency(latency, trace_format=trace_format, time_scale=time_scale)
    check_latency(model, latency)
    rows = predict_backups(model, workers, backups)
    lines = [
        f"N={workers}, latency {latency}: iteration time of N of N+B with cancellation",
        f"  {'B':>4}{'mean (s)':>14}{'std (s)':>14}",
    ]
    for r in rows:
        cells = [moment_cell(r[f"{m}_iteration_time"], r[f"{m}_finite"]) for m in ("mean", "std")]
        lines.append(f"  {r['backups']:>4}{cells[0]:>14}{cells[1]:>14}")
    lines += [f"  B={r['backups']}: {note}" for r in rows for note in r["notes"]]
    return Report(rows, lines)


def fit(trace_path: Path, *, trace_format: str = "csv", time_scale: float = 1.0, out: Path | None = None) -> Report:
    """Maximum-likelihood fits of every latency family to a trace, ranked by AIC."""
    trace = read_trace(trace_path, trace_format, time_scale)
    data = {"trace": str(trace_path), "format": trace_format, "time_scale": time_scale, **fit_durations(trace.duration)}
    lines = [f"{trace_path}: {data['n']} durations, mean {data['mean']:.6g} s"]
    lines += [f"  {c['family']:<20} AIC {c['aic']:>12.1f}  KS {c['ks']:.4f}  {c['spec']}" for c in data["candidates"]]
    if data.get("mixture") is None:
        tail = "no body + tail mixture fitted: the best family is not one a mixture is built on"
    else:
        tail = "the body + tail mixture wins" if data["mixture_wins"] else "no single family is beaten by the mixture"
    lines.append(f"  best: {data['best']['spec']} ({data.get('note') or tail})")
    if out is not None:
        lines.append(f"  results: {out / 'fit.json'}, {out / 'fit.png'}")

    def figure(path: Path) -> None:  # fit.png and fit.pdf
        plot_fit(trace.duration, data, path.with_suffix(""), title=f"{trace_path}: {data['best']['spec']}")

    return Report(data, lines, {"fit.json": _json_file(data), "fit.png": figure})


def validate(
    trace_path: Path,
    workers: int,
    backups: int = 0,
    semantics: str = "tf",
    *,
    seed: int = 0,
    trace_format: str = "csv",
    time_scale: float = 1.0,
) -> Report:
    """Exact replay of a trace against a simulation of its fitted model (``validation.py``)."""
    config = RunConfig(
        strategy="backup",
        workers=workers,
        backups=backups,
        semantics=semantics,
        latency=f"trace:{trace_path}",
        trace_format=trace_format,
        time_scale=time_scale,
        steps=None,
        seed=seed,
        timing_only=True,
    ).validate()
    data = validate_trace(config)
    lines = [
        f"{trace_path}: backup N={workers} B={backups} ({semantics}); fitted {data['fitted_spec']}",
        f"  {'quantile':<10}{'replay (s)':>14}{'model (s)':>14}",
    ]
    for q, a, b in zip(data["quantiles"], data["replay_quantiles"], data["model_quantiles"], strict=True):
        lines.append(f"  {q:<10g}{a:>14.6g}{b:>14.6g}")
    lines.append(
        f"  mean iteration time: replay {data['replay_mean']:.6g} s, model {data['model_mean']:.6g} s "
        f"({data['mean_relative_error']:+.1%}); KS distance {data['ks']:.3f}"
    )
    got = f"got KS {data['ks']:.3f}, mean error {data['mean_relative_error']:+.1%}"
    if data["good_enough"]:
        verdict = f"good enough for this configuration ({data['criterion']}: {got})"
    else:
        verdict = f"NOT good enough for this configuration (needs {data['criterion']}; {got})"
    lines.append(f"  verdict: the fitted model is {verdict}")
    return Report(data, lines, {"validate.json": _json_file(data)})


def compare_backups(config: RunConfig, *, out: Path | None = None) -> Report:
    """adaptive-backup against every fixed number of backups on the same draws (``compare_backups.py``)."""
    data = compare_with_fixed(config)
    best, zero = data["best_fixed"], data["fixed"]["0"]
    lines = [
        f"P={config.workers}, latency {config.latency}: seconds per unit of progress",
        f"  best fixed B = {data['best_fixed_backups']}: {best:.6g}; B = 0: {zero:.6g}",
        f"  adaptive-backup: {data['adaptive']:.6g} ({data['adaptive_vs_best']:.3f}x the best fixed B)",
    ]
    if out is not None:
        lines.append(f"  results: {out / 'compare.json'}, {out / 'compare.png'}")
    files = {"compare.json": _json_file(data), "compare.png": lambda path: plot_adaptive(data, path.with_suffix(""))}
    return Report(data, lines, files)


def measure(workers: int, steps: int, *, model: str = "mlp", dataset: str = "digits", batch_size: int = 32):
    """A trace of real JAX gradient steps by ``workers`` processes; returns (trace, report)."""
    if workers < 1 or steps < 1 or batch_size < 1:
        raise InputError(f"{named('workers')}, {named('steps')} and {named('batch_size')} must be integers >= 1")
    if model not in MODELS:
        raise InputError(f"{named('model')}: unknown model {model!r} (choose from {', '.join(MODELS)})")
    if dataset not in ("digits", "mnist1d", "teacher-student"):
        raise InputError(
            f"{named('dataset')} {dataset!r}: measure uses a bundled "
            f"or generated dataset (digits, mnist1d, teacher-student)"
        )
    measuring.check_measure(workers, steps, dataset, batch_size)  # before any process starts
    trace = measuring.measure(workers, steps, model=model, dataset=dataset, batch_size=batch_size)
    per = [d.mean() for d in trace.per_worker()]
    line = (
        f"{workers} workers x {steps} steps of {model} on {dataset}; "
        f"mean step {trace.duration.mean() * 1e3:.3f} ms (per worker {min(per) * 1e3:.3f}-{max(per) * 1e3:.3f} ms), "
        f"max {trace.duration.max() * 1e3:.3f} ms"
    )
    return trace, Report({"workers": workers, "steps": steps}, [line])


def import_trace(sources: list[Path], *, trace_format: str = "csv", time_scale: float = 1.0):
    """Read trace files (several for chrome: one worker each) as one trace; returns (trace, report)."""
    trace = combine([read_trace(src, trace_format, time_scale) for src in sources]).rounded()
    line = f"{trace.n_workers} workers, {len(trace.duration)} computations, mean duration {trace.duration.mean():.6g} s"
    return trace, Report({"workers": trace.n_workers, "computations": len(trace.duration)}, [line])


def describe_run(s: dict, out: Path) -> str:
    """A short human-readable account of a run's summary."""
    head = f"{s['strategy']} N={s['workers']} B={s['backups']}"
    head += f" ({s['semantics']})" if s["semantics"] else ""
    head += f" staleness<={s['staleness_cutoff']}" if s["staleness_cutoff"] is not None else ""
    lines = [
        f"{head}, latency {s['latency']}, seed {s['seed']}",
        f"  {s['updates']} updates in {s['sim_time']:.6g} s simulated: "
        + (f"mean iteration time {s['mean_iteration_time']:.6g} s" if s["updates"] else "no update"),
        f"  gradients: {s['gradients_computed']} computed, {s['gradients_applied']} applied, "
        f"{s['gradients_dropped']} dropped, {s['gradients_cancelled']} cancelled, {s['gradients_failed']} failed; "
        f"{s['repeat_contributions']} repeat contributions",
    ]
    if s.get("trace_exhausted"):
        lines.append("  the trace was used up: the run ended there")
    if s["mean_staleness"] is not None and get(s["strategy"]).shows_staleness:
        lines.append(f"  staleness: mean {s['mean_staleness']:.4g}, max {s['max_staleness']}")
    if "model" in s:
        accuracy = f", test accuracy {s['final_test_accuracy']:.4f}" if s["final_test_accuracy"] is not None else ""
        lines.append(
            f"  {s['model']} on {s['dataset']} ({s['device']}): test loss {s['final_test_loss']:.4g}{accuracy}"
        )
        if isinstance(s.get("gradients_per_update"), float):  # a varying count (deadline, adaptive-backup)
            lines.append(
                f"  gradients averaged per update: mean {s['gradients_per_update']:.4g} "
                f"(effective batch {s['effective_batch_size']:.4g} examples)"
            )
        if s["target_accuracy"] is not None or s["target_loss"] is not None:
            reached = (
                f"reached after {s['updates_to_target']} updates, {s['time_to_target']:.6g} s simulated"
                if s["time_to_target"] is not None
                else "not reached"
            )
            lines.append(f"  target: {reached}")
    lines.append(f"  results: {out / 'summary.json'}")
    return "\n".join(lines)


def to_json(report: Report) -> str:
    return strictjson.dumps(report.data)
