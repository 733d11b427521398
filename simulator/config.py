"""One frozen configuration per run, validated in one place and saved beside the results."""

from __future__ import annotations

import math
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import tomli_w

from simulator.errors import InputError

STRATEGIES = ("sync", "backup", "async")
SEMANTICS = ("tf", "drop", "cancel")


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run. Same config, same event log.

    Attributes:
        strategy: ``sync`` (wait for all N), ``backup`` (first N of N+B) or ``async``.
        workers: N, gradients averaged per update (sync, backup); the number of workers (async).
        backups: B, extra workers whose late gradients are dropped (backup only).
        semantics: what happens to late workers under ``backup``: ``tf`` (the default),
            ``drop`` or ``cancel`` (see DESIGN.md). ``sync`` is a barrier where each of the N
            workers contributes exactly one gradient per update, so it has no semantics; TF's
            ``SyncReplicasOptimizer`` without backups is ``backup`` with B = 0 and ``tf``.
        staleness_cutoff: async only: drop a gradient whose staleness exceeds this (updates).
        latency: SPEC of one computation's duration (seconds of simulated time).
        speed_factors: per-worker multipliers of the computation time: ``""`` (all 1), a
            comma list, or a SPEC to draw them from.
        comm_latency: fixed cost of one pull or push (seconds).
        bandwidth: link bandwidth (bytes per second); ``inf`` makes size free.
        param_bytes: bytes moved by one pull (parameters) or push (gradient).
        steps: parameter updates to simulate.
        seed: the run seed; every random stream derives from it.
        timing_only: simulate timing only, without computing gradients.
    """

    strategy: str = "backup"
    workers: int = 16
    backups: int = 0
    semantics: str | None = None
    staleness_cutoff: int | None = None
    latency: str = "exponential:rate=1"
    speed_factors: str = ""
    comm_latency: float = 0.0
    bandwidth: float = math.inf
    param_bytes: float = 0.0
    steps: int = 1000
    seed: int = 0
    timing_only: bool = True

    def __post_init__(self):
        if self.strategy == "backup" and self.semantics is None:
            object.__setattr__(self, "semantics", "tf")

    @property
    def total_workers(self) -> int:
        """Worker processes in the run: N + B for sync/backup, N for async."""
        return self.workers + self.backups

    def validate(self) -> RunConfig:
        """Check every field; return self.

        Raises:
            InputError: naming the field, what is wrong and what would be right.
        """
        from simulator.cluster import parse_speed_factors
        from simulator.latency import parse_latency

        def need(ok: bool, message: str) -> None:
            if not ok:
                raise InputError(message)

        need(
            self.strategy in STRATEGIES,
            f"--strategy: unknown strategy {self.strategy!r} (choose from {', '.join(STRATEGIES)})",
        )
        if self.strategy == "backup":
            need(
                self.semantics in SEMANTICS,
                f"--semantics: unknown semantics {self.semantics!r} (choose from {', '.join(SEMANTICS)})",
            )
        else:
            need(
                self.semantics is None,
                "--semantics applies to --strategy backup only (for TF's SyncReplicasOptimizer "
                "without backups use --strategy backup --backups 0 --semantics tf)",
            )
        need(_is_int(self.workers) and self.workers >= 1, f"--workers must be an integer >= 1, got {self.workers}")
        need(_is_int(self.backups) and self.backups >= 0, f"--backups must be an integer >= 0, got {self.backups}")
        need(_is_int(self.steps) and self.steps >= 1, f"--steps must be an integer >= 1, got {self.steps}")
        need(_is_int(self.seed) and self.seed >= 0, f"--seed must be an integer >= 0, got {self.seed}")
        if self.strategy == "sync":
            need(
                self.backups == 0,
                f"--backups {self.backups}: sync waits for all N workers; use --strategy backup for B > 0",
            )
        if self.strategy == "async":
            need(
                self.backups == 0, f"--backups {self.backups}: async has no backup workers; --workers sets how many run"
            )
        if self.staleness_cutoff is not None:
            need(self.strategy == "async", "--staleness-cutoff applies to --strategy async only")
            need(
                _is_int(self.staleness_cutoff) and self.staleness_cutoff >= 0,
                f"--staleness-cutoff must be an integer >= 0, got {self.staleness_cutoff}",
            )
        need(
            _finite_nonneg(self.comm_latency),
            f"--comm-latency must be a finite number >= 0 (seconds), got {self.comm_latency}",
        )
        need(self.bandwidth > 0, f"--bandwidth must be > 0 (bytes per second), got {self.bandwidth}")
        need(_finite_nonneg(self.param_bytes), f"--param-bytes must be a finite number >= 0, got {self.param_bytes}")
        parse_latency(self.latency)
        parse_speed_factors(self.speed_factors, self.total_workers, self.seed)
        need(
            self.timing_only, "training runs need the trainer, which is not part of this build yet: pass --timing-only"
        )
        return self

    def to_dict(self) -> dict:
        """Plain fields, with ``None`` left out (TOML has no null)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict, *, source: str = "config") -> RunConfig:
        """Build from a dict such as a loaded ``config.toml``; unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"{source}: unknown field {unknown[0]!r} (known: {', '.join(sorted(known))})")
        return cls(**data)

    def save(self, path: Path) -> None:
        """Write ``config.toml``."""
        path.write_text(tomli_w.dumps(self.to_dict()))

    @classmethod
    def load(cls, path: Path) -> RunConfig:
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError) as err:
            raise InputError(f"{path}: cannot read: {err}") from None
        except tomllib.TOMLDecodeError as err:
            raise InputError(f"{path}: not valid TOML: {err}") from None
        return cls.from_dict(data, source=str(path))


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _finite_nonneg(x) -> bool:
    return isinstance(x, int | float) and math.isfinite(x) and x >= 0
