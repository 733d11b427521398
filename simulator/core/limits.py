"""What a run can finish and fit: checked before any work, each problem one line.

Three kinds of runs never end well, and each is refused up front by :func:`check_run`:

- **Memory.** :func:`memory_parts` estimates the bytes a run holds (event records per update and
  per gradient, the fast path's chunk of draws, the workers, fail-slow episodes, the model, a
  batch's activations, the dataset) from constants measured on real runs (peak RSS; see
  ``tests/attack/test_attack_values.py``); a run needing more than the machine has is refused
  with the estimate.
- **The float clock.** Simulated time is one float: past ``CLOCK_MAX`` seconds its squares (the
  variances of the summary) overflow, and a period below ``RESOLUTION`` times the run's end time
  no longer advances it (``t + period == t``), so a loop on that period never ends.
- **Work without end.** More evaluations or checkpoints than :data:`MAX_EVALUATIONS`, more
  fail-slow episodes per computation than :data:`MAX_EPISODES`, more tries per completed
  computation under failures than :data:`MAX_TRIES`.

The end time is bracketed from the latency's mean (its median when the mean is infinite) ``s``,
the speed factors, transfer times and P workers: at least ``steps * s / P`` (P workers all busy,
one gradient per update), typically ``steps * s`` for a barrier, at most ``steps * s * P``.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from ..io import imports
from ..io.errors import InputError, named
from ..io.memory import BASE, _gb, machine_memory
from ..latency.models import Straggler
from ..strategies import get
from .recursions import CHUNK, recursion

CLOCK_MAX = 1e150  # seconds: times and their squares (variances) stay finite in double precision
RESOLUTION = 2.0**-40  # a period must exceed this fraction of the end time (a double has 52 bits)
MAX_EVALUATIONS = 100_000  # evaluations (or checkpoints) of a run in seconds, or its updates if more
MAX_EPISODES = 1_000  # fail-slow episodes per computation
MAX_TRIES = 1_000  # expected tries per completed computation under --failures
MAX_PREDICT = 10**12  # N + B of predict (its closed forms and quadratures hold far beyond)

# Bytes, measured as peak RSS of timing-only and training runs (see the module docstring).
JAX = 300e6  # JAX and the compiled training steps
GRADIENT = 250  # one gradient record with its share of an update (--log-gradients all)
UPDATE = 100  # one update's record without gradient records
WORKER = 40e3  # one worker of the event engine: its process, streams and records in flight
FAST_WORKER = 1e3  # one worker of the fast path: its random stream
DRAW = 32  # one draw of the fast path's chunk (at most fastpath.CHUNK): uniforms, times, a transform's share
EPISODE = 32  # one fail-slow bound (a float in a list)
INPUTS = {"digits": (64, 10, 1_797), "mnist": (784, 10, 70_000), "cifar10": (3_072, 10, 60_000)}
INPUTS |= {"mnist1d": (40, 10, 20_000), "teacher-student": (32, 1, 20_000)}  # (features, outputs, examples)


def memory_parts(config) -> dict[str, float]:
    """The estimated bytes of each part of a run (before any work): name -> bytes."""
    steps = config.steps or 0
    p = config.total_workers
    barrier = get(config.strategy).barrier
    per_update = p if barrier else 1  # gradients created per update
    compact = config.timing_only and config.log_gradients == "none"
    quiet = not (config.fail_slow or config.fail_at or config.failures or config.data_cost != "none")
    kind = recursion(config) if config.timing_only and quiet and steps else None
    fast = kind == "barrier" or (kind is not None and compact)
    parts = {"the program": BASE if config.timing_only else BASE + JAX}
    if fast:
        parts["workers"] = p * FAST_WORKER + min(p * steps, CHUNK) * DRAW
    else:
        parts["workers"] = p * WORKER
    if compact:
        parts["update records"] = steps * UPDATE
    else:
        parts["gradient records"] = steps * per_update * GRADIENT
    if config.fail_slow:
        parts["fail-slow episodes"] = 0.0  # filled in by check_run, which knows the latency
    if not config.timing_only:
        parts.update(_training_parts(config, steps, min(config.workers, p) if barrier else 1))
    return parts


def _training_parts(config, steps: int, gradients: int) -> dict[str, float]:
    """The model (parameters, gradients, optimizer state), a batch's activations, the dataset, the records."""
    features, outputs, examples = INPUTS.get(config.dataset, (0, 0, 0))
    examples = config.dataset_size or examples
    hidden = config.hidden_sizes if config.model == "mlp" else ()
    widths = (features, *hidden, outputs)
    dense = config.model in ("mlp", "logreg")
    params = sum(a * b + b for a, b in zip(widths, widths[1:], strict=False)) if dense else 0
    return {
        "the model": 4.0 * params * 4,  # float32: parameters, gradient, two optimizer moments
        "a batch": 8.0 * config.batch_size * sum(widths) * gradients,  # activations forward and back, per gradient
        "the dataset": 8.0 * examples * (features + 1),  # float64 while generated
        "training records": 200.0 * steps,
    }


def check_memory(config, *, memory: int | None = None, extra: float = 0.0, measured: dict | None = None) -> None:
    """Refuse a run whose estimate exceeds ``memory`` bytes (default: this machine's). ``measured``:
    parts measured rather than estimated (a user's model and dataset: ``{"the model": bytes, ...}``).

    Raises:
        InputError: naming the largest part and the options behind it, with the estimate.
    """
    memory = machine_memory() if memory is None else memory
    parts = memory_parts(config) | (measured or {})
    if "fail-slow episodes" in parts:
        parts["fail-slow episodes"] = extra
    total = sum(parts.values())
    if total <= memory:
        return
    largest = max(parts, key=parts.get)
    raise InputError(
        f"{_options(config, largest)}: needs about {_gb(total)} of memory, {_gb(parts[largest])} of it for "
        f"{largest} (this machine has {_gb(memory)}); make the run smaller"
    )


def _options(config, part: str) -> str:
    """The options behind a part of the estimate, as given (``--workers 10000000 --steps 100``)."""
    names = {
        "the model": ("hidden",),
        "a batch": ("batch_size", "hidden"),
        "the dataset": ("dataset_size",),
        "fail-slow episodes": ("fail_slow", "steps"),
        "workers": ("workers", "backups", "steps"),
    }.get(part, ("workers", "steps"))
    own = {"the model": "model", "the dataset": "dataset"}.get(part)
    if own and imports.is_user(getattr(config, own)):
        names = (own,)  # the user's own, measured
    shown = [f"{named(n)} {getattr(config, n)}" for n in names if getattr(config, n)]
    return " ".join(shown) or f"{named('workers')} {config.workers} {named('steps')} {config.steps}"


def _scale(model) -> float:
    """A computation's typical seconds: the mean, or the median of a model without one."""
    try:
        mean = float(model.mean)
    except Exception:  # noqa: BLE001 (a model without a mean: use its median)
        mean = math.inf
    if math.isfinite(mean):
        return mean
    try:
        return float(np.asarray(model.ppf(0.5)))
    except Exception:  # noqa: BLE001
        return 0.0


def check_latency(model, spec: str) -> None:
    """Refuse a latency whose typical time is beyond what the clock holds (``predict`` too)."""
    scale = _scale(model)
    if not scale <= CLOCK_MAX:
        raise InputError(
            f"{named('latency')} {spec}: a typical computation of {scale:g} s is beyond what the simulated clock holds "
            f"(at most {CLOCK_MAX:g} s)"
        )


def check_run(config, model, factors: np.ndarray, faults) -> None:
    """Refuse a run that cannot finish or fit (see the module docstring): one line naming the option.

    Args:
        config: the validated run.
        model: its latency model; ``factors``: the per-worker speed factors; ``faults``: ``Faults``.
    """
    if config.steps is None and config.budgeted:  # the updates the budget allows, for the checks below
        config = replace(config, steps=_budget_steps(config, model))
    steps, p = config.steps or 1, config.total_workers
    fmax = float(np.max(factors)) if len(factors) else 1.0
    transfer = 2 * (config.comm_latency + (config.param_bytes or 0.0) / config.bandwidth)
    for flag, value in (
        (named("comm_latency"), config.comm_latency),
        (named("deadline"), config.deadline or 0.0),
    ):
        if value > CLOCK_MAX:
            raise InputError(f"{flag} {value:g}: beyond what the simulated clock holds (at most {CLOCK_MAX:g} s)")
    if not transfer <= CLOCK_MAX:
        raise InputError(
            f"{named('param_bytes')} / {named('bandwidth')}: one transfer "
            f"takes {transfer / 2:g} s, beyond what the simulated "
            f"clock holds (at most {CLOCK_MAX:g} s)"
        )
    check_latency(model, config.latency)
    draws = 10 * steps * p
    top = _largest(model, 1 / draws)
    if not top <= CLOCK_MAX:
        raise InputError(
            f"{named('latency')} {config.latency}: the tail is too heavy for a run of {steps} updates of {p} workers: "
            f"the largest of about {draws:.3g} draws is {f'about {top:.3g}' if top < math.inf else 'beyond 1e308'} s, "
            f"past what the simulated clock holds "
            f"(at most {CLOCK_MAX:g} s)"
        )
    base = _scale(model)
    slow = faults.fail_slow.factor if faults.fail_slow is not None else 1.0
    scale = base * fmax * slow + transfer
    t_high = steps * scale * p
    if not t_high <= CLOCK_MAX:
        what = (
            f"{named('latency')} {config.latency}"
            if base * p * steps > CLOCK_MAX
            else f"{named('speed_factors')} / {named('fail_slow')}"
        )
        raise InputError(
            f"{what}: computations of about {scale:g} s over {steps} updates of {p} workers would run the simulated "
            f"clock past {CLOCK_MAX:g} s (steps x workers x mean latency must stay below it)"
        )
    t_typ = steps * scale / (1 if get(config.strategy).barrier else p)
    floor = t_high * RESOLUTION
    if not config.timing_only and config.eval_schedule[0] == "seconds":  # quantiles of deep mixtures are slow
        t_low = steps * _round_time(config, model, p) * float(np.min(factors) if len(factors) else 1.0)
        _check_periods(config, t_low, floor)
    episodes = _check_faults(config, model, faults, scale, floor, t_typ)
    check_memory(config, extra=episodes * EPISODE)


def _budget_steps(config, model) -> int:
    """About how many updates a budget allows: its gradients (one or more per update), or its
    simulated time over the typical time per update."""
    if config.budget_gradients is not None:
        return config.budget_gradients
    per_update = _round_time(config, model, config.total_workers)
    return max(1, math.ceil(config.until / per_update)) if per_update > 0 else 1


def _largest(model, tail: float) -> float:
    """An upper bound of the (1 - ``tail``)-quantile: the largest draw expected among 1/``tail``.

    A straggler mixture is bounded by its parts, not by its own quantile (a numerical inversion of a
    CDF that nested mixtures make slow): P(X > max(a, f b + d)) <= tail when the base exceeds b and
    the delay exceeds d each with probability tail / 2.
    """
    if isinstance(model, Straggler):
        base = _largest(model.base, tail / 2)
        if model.p == 0:
            return base
        return max(base, model.factor * base + (_largest(model.delay, tail / 2) if model.delay else 0.0))
    try:
        with np.errstate(all="ignore"):
            top = float(np.asarray(model.isf(tail)))
    except Exception:  # noqa: BLE001 (a model without quantiles: nothing to refuse)
        return 0.0
    return top if not math.isnan(top) else 0.0


def _round_time(config, model, p: int) -> float:
    """Seconds per update, roughly: the N-th of P draws for a barrier (its quantile N/(P+1)), else mean / P."""
    if not get(config.strategy).barrier:
        return _scale(model) / p

    n = get(config.strategy).fast_path(config) or min(config.workers, p)
    try:
        return float(np.asarray(model.ppf(n / (p + 1))))
    except Exception:  # noqa: BLE001 (a model without quantiles)
        return _scale(model) / p


def _check_periods(config, t_low: float, floor: float) -> None:
    """Evaluation and checkpoint periods in simulated seconds: above the clock's resolution, and few enough."""
    mode, every = config.eval_schedule
    if mode != "seconds":
        return
    limit = max(MAX_EVALUATIONS, config.steps or 0)
    for flag, text, what in (
        (named("eval_every"), config.eval_every, "evaluations"),
        (named("checkpoint_every"), config.checkpoint_every, "checkpoints"),
    ):
        if not text.strip():
            continue
        period = every if what == "evaluations" else float(text.strip()[:-1])
        if period < floor:
            raise InputError(
                f"{flag} {text.strip()}: below the simulated clock's resolution at the run's end (about "
                f"{floor:.3g} s, the end time x 2^-40); give a longer period"
            )
        if t_low / period > limit:
            raise InputError(
                f"{flag} {text.strip()}: about {t_low / period:.3g} {what} in a run of about {t_low:.3g} "
                f"simulated seconds (at most {limit:,}); give a longer period"
            )


def _check_faults(config, model, faults, scale: float, floor: float, t_typ: float) -> float:
    """Fail-slow episodes and failure rates in a range the run can finish; returns the episodes kept."""
    episodes = 0.0
    fs = faults.fail_slow
    if fs is not None:
        for key in ("normal", "slow"):
            value = getattr(fs, key)
            if value < floor or value > CLOCK_MAX:
                raise InputError(
                    f"{named('fail_slow')} {config.fail_slow!r}: {key}={value:g} s is outside what the simulated clock "
                    f"resolves ({floor:.3g} to {CLOCK_MAX:g} s)"
                )
        per = 2 * scale / (fs.normal + fs.slow)
        if per > MAX_EPISODES:
            raise InputError(
                f"{named('fail_slow')} {config.fail_slow!r}: about "
                f"{per:.3g} episodes per computation of about {scale:.3g} s "
                f"(at most {MAX_EPISODES:,}); give longer normal= and slow= periods"
            )
        episodes = 2 * config.total_workers * t_typ / (fs.normal + fs.slow)
    rate = faults.rate
    if rate is not None:
        if rate.downtime > CLOCK_MAX or 1 / rate.rate < floor:
            key, value = ("downtime", rate.downtime) if rate.downtime > CLOCK_MAX else ("rate", rate.rate)
            raise InputError(
                f"{named('failures')} {config.failures!r}: {key}={value:g} is outside what the simulated clock resolves"
            )
        tries = 1 / _survival(model, rate.rate, scale)
        if tries > MAX_TRIES:
            raise InputError(
                f"{named('failures')} {config.failures!r}: rate={rate.rate:g} per second leaves a computation of about "
                f"{scale:.3g} s about {tries:.3g} tries to finish once (at most {MAX_TRIES:,}); give a lower rate"
            )
    return episodes


def _survival(model, rate: float, scale: float) -> float:
    """P(a computation ends before the next failure) = E[exp(-rate X)], over the model's quantiles."""
    u = (np.arange(4096) + 0.5) / 4096
    try:
        base = _scale(model)
        x = np.asarray(model.ppf(u), dtype=float) * (scale / base if base > 0 else 1.0)
    except Exception:  # noqa: BLE001 (a model without quantiles: its typical time)
        x = np.array([scale])
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        p = float(np.mean(np.exp(-rate * np.nan_to_num(x, nan=scale, posinf=CLOCK_MAX))))
    return max(p, 1e-300)
