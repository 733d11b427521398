"""Choosing each configuration's candidate: the best mean over seeds of a selection metric.

A *configuration* is a run without its seed, its tuned options and its validation split; a
*candidate* is one combination of the tuned options' values. Each run scores one number:

- ``time_to_target`` (lower is better): a run that never reached the target, or diverged,
  scores +inf;
- ``accuracy_at_budget`` (higher is better): a diverged run scores -inf;
- ``loss_at_budget`` (lower is better): a diverged run scores +inf.

A candidate's score is the mean of its seeds' scores, so one seed at the worst value makes the
mean the worst value: such a candidate loses to any candidate whose every seed has a finite score.
The best mean wins; of equal means (two infinite ones included) the candidate listed first wins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from ..core.config import RunConfig
from ..io.errors import InputError, named
from .grids import digest, varied

LOWER_IS_BETTER = {"time_to_target": True, "accuracy_at_budget": False, "loss_at_budget": True}
# the winner's metrics on the test set, averaged over the seeds that have them (tuned.csv: test_KEY)
REPORTED = (
    "accuracy_at_budget",
    "loss_at_budget",
    "mean_last3_accuracy",
    "mean_last3_loss",
    "best_accuracy",
    "time_to_target",
    "time_to_target_interpolated",
)


def score(summary: dict, metric: str) -> float:
    """One run's selection score (see the module's docstring): the metric, or the worst value."""
    worst = math.inf if LOWER_IS_BETTER[metric] else -math.inf
    value = summary.get(metric)
    if summary.get("diverged") or not _finite(value):
        return worst
    return float(value)


def _finite(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def label(candidate: dict) -> str:
    """A candidate as a column's suffix: ``lr=0.1`` or ``lr=0.1,momentum=0.9``."""
    return ",".join(f"{name}={_shown(value)}" for name, value in candidate.items())


def _shown(value) -> str:
    """A value as short as it reads back exactly: 0.1, 10000, 1e-05."""
    short = f"{value:g}" if isinstance(value, float) else str(value)
    return short if not isinstance(value, float) or float(short) == value else repr(value)


@dataclass
class Choice:
    """One configuration's candidates and the one chosen."""

    base: RunConfig  # the configuration (seed 0, tuned options and validation split at their defaults)
    candidates: list[dict]  # name -> value, in the order listed
    runs: list[list[tuple[RunConfig, dict]]]  # per candidate: (config, summary) of each seed
    metric: str

    @property
    def means(self) -> list[float]:
        return [math.fsum(score(s, self.metric) for _, s in runs) / len(runs) for runs in self.runs]

    @property
    def winner(self) -> int:
        """The index of the best mean; the first of equals."""
        means = self.means
        sign = 1 if LOWER_IS_BETTER[self.metric] else -1
        return min(range(len(means)), key=lambda i: (sign * means[i], i))

    @property
    def edges(self) -> list[str]:
        """The numeric tuned options whose chosen value is their smallest or largest candidate."""
        chosen = self.candidates[self.winner]
        out = []
        for name, value in chosen.items():
            values = {c[name] for c in self.candidates}
            numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
            if numeric and len(values) > 1 and value in (min(values), max(values)):
                out.append(name)
        return out

    def finals(self) -> list[RunConfig]:
        """The winner's runs on the full training set, evaluated on the test set (same seeds)."""
        return [replace(config, validation_split=None).validate() for config, _ in self.runs[self.winner]]


def choose(configs: list[RunConfig], summaries: list[dict], tuned: list[dict], metric: str) -> list[Choice]:
    """Every configuration's choice, in the order of ``configs`` (the runs of a tuning grid).

    Args:
        configs: the runs; summaries: their summaries, in the same order.
        tuned: the candidates, each a dict of tuned option -> value, in the order listed.
        metric: one of ``LOWER_IS_BETTER``.

    Raises:
        InputError: a configuration lacks a candidate: a strategy that does not take a tuned option
            (the grid gave it the option's default).
    """
    names = list(tuned[0])
    defaults = {n: RunConfig.__dataclass_fields__[n].default for n in names}
    groups: dict[str, Choice] = {}
    for config, summary in zip(configs, summaries, strict=True):
        base = replace(config, seed=0, validation_split=None, **defaults)
        choice = groups.setdefault(digest(base), Choice(base, tuned, [[] for _ in tuned], metric))
        values = {n: getattr(config, n) for n in names}
        if values not in tuned:
            raise _not_taken(config, values)
        choice.runs[tuned.index(values)].append((config, summary))
    for choice in groups.values():
        for candidate, runs in zip(tuned, choice.runs, strict=True):
            if not runs:
                raise _not_taken(choice.base, candidate)
    return list(groups.values())


def _not_taken(config: RunConfig, values: dict) -> InputError:
    return InputError(
        f"{named('tune')} {label(values)}: {named('strategy')} {config.strategy} does not take "
        f"{' or '.join(values)}; tune options that every run of the grid takes"
    )


def table(choices: list[Choice], finals: list[list[dict]]) -> list[dict]:
    """The rows of ``tuned.csv``, one per configuration (``finals``: the summaries of each
    configuration's final runs, on the test set)."""
    bases = [c.base for c in choices]
    labels = ["strategy", *(n for n in varied(bases) if n != "strategy")]
    rows = []
    for choice, summaries in zip(choices, finals, strict=True):
        metric = choice.metric
        row = {n: getattr(choice.base, n) for n in labels}
        row |= {"n_seeds": len(choice.runs[choice.winner]), **choice.candidates[choice.winner]}
        row["at_edge"] = bool(choice.edges)
        for candidate, mean in zip(choice.candidates, choice.means, strict=True):
            row[f"{metric}[{label(candidate)}]"] = mean  # not finite: an empty cell
        for candidate, runs in zip(choice.candidates, choice.runs, strict=True):
            row[f"diverged[{label(candidate)}]"] = sum(bool(s.get("diverged")) for _, s in runs)
        if metric == "time_to_target":
            for candidate, runs in zip(choice.candidates, choice.runs, strict=True):
                row[f"missed[{label(candidate)}]"] = sum(not _finite(s.get(metric)) for _, s in runs)
        row |= _tested(
            summaries, targeted=choice.base.target_accuracy is not None or choice.base.target_loss is not None
        )
        rows.append(row)
    return rows


def _tested(summaries: list[dict], *, targeted: bool) -> dict:
    """The test metrics of the final runs: each key's mean over the seeds that have it (a diverged
    run has none), with the counts of seeds, diverged seeds and (with a target) seeds that reached it."""
    kept = [s for s in summaries if not s.get("diverged")]
    out = {"test_n_seeds": len(summaries), "test_diverged": len(summaries) - len(kept)}
    for key in REPORTED if targeted else [k for k in REPORTED if "target" not in k]:
        values = [s[key] for s in kept if _finite(s.get(key))]
        out[f"test_{key}"] = math.fsum(values) / len(values) if values else None
    if targeted:
        out["test_reached_target"] = sum(_finite(s.get("time_to_target")) for s in kept)
    return out
