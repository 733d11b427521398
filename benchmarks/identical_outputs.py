"""Byte-identical outputs before and after a refactor: run a fixed set of commands, record everything.

    python benchmarks/identical_outputs.py record MANIFEST.json     # before the change
    python benchmarks/identical_outputs.py check MANIFEST.json      # after it: exit 1 on any difference

Each command runs in this process through the CLI's ``main`` (no start-up cost per command), in a
fresh folder; the manifest holds its exit status, its stdout and stderr (the folder's path written
as ``<tmp>``) and the SHA-256 of every file it wrote. Figures are included: matplotlib's PDFs carry
no date under ``SOURCE_DATE_EPOCH``, which this script sets. Fields that are not functions of the
inputs (wall-clock seconds) are blanked before hashing.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import sys
import tempfile
from pathlib import Path

os.environ["SOURCE_DATE_EPOCH"] = "0"  # before matplotlib loads: PDFs without a creation date
TRACE = "trace:traces/pai-mini-batch-time/{}.csv"
SHIPPED = "traces/measured-cpu-4x-cnn-digits.csv"
PAI = "traces/pai-mini-batch-time/job_1_norm.csv"

STRATEGIES = [
    ["--strategy", "sync", "--workers", "4"],
    ["--strategy", "backup", "--workers", "4", "--backups", "2", "--semantics", "tf"],
    ["--strategy", "backup", "--workers", "4", "--backups", "2", "--semantics", "drop"],
    ["--strategy", "backup", "--workers", "4", "--backups", "2", "--semantics", "cancel"],
    ["--strategy", "backup", "--workers", "2", "--backups", "5"],
    ["--strategy", "async", "--workers", "5"],
    ["--strategy", "async", "--workers", "5", "--staleness-cutoff", "2"],
    ["--strategy", "softsync", "--workers", "7", "--softsync-n", "3"],
    ["--strategy", "k-sync", "--workers", "7", "--k", "3"],
    ["--strategy", "k-batch-sync", "--workers", "7", "--k", "3"],
    ["--strategy", "k-async", "--workers", "7", "--k", "3"],
    ["--strategy", "k-batch-async", "--workers", "7", "--k", "3"],
    ["--strategy", "ssp", "--workers", "4", "--ssp-bound", "2"],
    ["--strategy", "deadline", "--workers", "4", "--deadline", "1.5"],
    ["--strategy", "adaptive-backup", "--workers", "6", "--adapt-every", "5"],
    ["--strategy", "sync", "--workers", "1"],
]
LATENCIES = [
    "exponential:rate=1",
    "straggler:base=lognormal(mu=0,sigma=0.3),p=0.1,factor=5",
    "constant:value=1",
    "pareto:alpha=2.5,scale=1",
]
EFFECTS = [
    ["--comm-latency", "0.1", "--bandwidth", "1e6", "--param-bytes", "100000"],
    ["--fail-slow", "normal=20,slow=5,factor=4", "--comm-latency", "0.05"],
    ["--failures", "rate=0.01,downtime=3"],
    ["--fail-at", "1@2-6"],
    ["--speed-factors", "lognormal:mu=0,sigma=0.5"],
    ["--ps-bandwidth", "1e6", "--param-bytes", "50000"],
]


def commands() -> list[tuple[str, list[str]]]:
    """(name, argv) of every command; ``{out}`` is the command's own folder."""
    out = []
    for i, strategy in enumerate(STRATEGIES):
        for j, latency in enumerate(LATENCIES):
            argv = ["simulate", "--timing-only", "--steps", "60", "--seed", str(i + j), *strategy]
            out.append((f"timing-{i}-{j}", [*argv, "--latency", latency, "--out", "{out}/run"]))
    for i, strategy in enumerate(STRATEGIES[:8]):
        for j, effect in enumerate(EFFECTS):
            argv = ["simulate", "--timing-only", "--steps", "40", "--seed", str(7 * i + j), *strategy, *effect]
            out.append((f"effects-{i}-{j}", [*argv, "--out", "{out}/run"]))
    fast = ["simulate", "--timing-only", "--log-gradients", "none", "--steps", "300"]
    for i, strategy in enumerate(STRATEGIES[:6]):
        out.append((f"fastpath-{i}", [*fast, *strategy, "--out", "{out}/run"]))
    out.append(
        (
            "trace-replay",
            [
                "simulate",
                "--timing-only",
                "--steps",
                "50",
                "--latency",
                f"trace:{SHIPPED}",
                "--workers",
                "4",
                "--out",
                "{out}/run",
            ],
        )
    )
    out.append(
        (
            "empirical",
            [
                "simulate",
                "--timing-only",
                "--steps",
                "50",
                "--latency",
                f"empirical:{SHIPPED}",
                "--workers",
                "4",
                "--backups",
                "1",
                "--out",
                "{out}/run",
            ],
        )
    )
    train = ["simulate", "--steps", "30", "--eval-every", "10", "--model", "logreg"]
    out += [
        ("train-backup", [*train, "--strategy", "backup", "--workers", "3", "--backups", "1", "--out", "{out}/r"]),
        ("train-async", [*train, "--strategy", "async", "--workers", "3", "--out", "{out}/r"]),
        (
            "train-mlp-adam",
            [
                *train,
                "--model",
                "mlp",
                "--optimizer",
                "adam",
                "--lr",
                "0.01",
                "--workers",
                "2",
                "--gradient-quality",
                "--out",
                "{out}/r",
            ],
        ),
        (
            "train-softsync",
            [*train, "--strategy", "softsync", "--workers", "5", "--softsync-n", "2", "--out", "{out}/r"],
        ),
        ("train-ssp", [*train, "--strategy", "ssp", "--workers", "3", "--ssp-bound", "1", "--out", "{out}/r"]),
        ("train-kbatch", [*train, "--strategy", "k-batch-async", "--workers", "4", "--k", "3", "--out", "{out}/r"]),
        (
            "train-sharded",
            [
                *train,
                "--strategy",
                "backup",
                "--workers",
                "3",
                "--backups",
                "1",
                "--data-partition",
                "sharded",
                "--semantics",
                "cancel",
                "--out",
                "{out}/r",
            ],
        ),
        ("train-target", [*train, "--target-accuracy", "0.5", "--workers", "4", "--out", "{out}/r"]),
    ]
    for n, backups in [(10, "0-4"), (100, "0-6"), (1000, "0-3")]:
        for latency in LATENCIES:
            out.append(
                (
                    f"predict-{n}-{latency[:6]}",
                    ["predict", "--workers", str(n), "--backups", backups, "--latency", latency],
                )
            )
    out += [
        ("fit", ["fit", SHIPPED, "--out", "{out}/fit"]),
        ("fit-pai", ["fit", PAI, "--format", "pai", "--time-scale", "0.5", "--out", "{out}/fit"]),
        ("import", ["import", PAI, "--format", "pai", "--time-scale", "0.5", "--out", "{out}/t.csv"]),
        ("replay", ["replay", SHIPPED, "--workers", "4", "--backups", "1", "--out", "{out}/run"]),
        ("validate", ["validate", SHIPPED, "--workers", "4", "--backups", "1"]),
        ("compare-backups", ["compare-backups", "--workers", "4", "--steps", "200", "--out", "{out}/cb"]),
        (
            "sweep",
            [
                "sweep",
                "--timing-only",
                "--quiet",
                "--strategy",
                "sync,backup",
                "--workers",
                "3-4",
                "--backups",
                "0-1",
                "--seeds",
                "0-1",
                "--steps",
                "50",
                "--jobs",
                "1",
                "--out",
                "{out}/sw",
            ],
        ),
        ("sweep-aggregate", ["aggregate", "{tmp}/sweep/sw"]),
        ("sweep-compare", ["compare", "{tmp}/sweep/sw", "--baseline", "strategy=sync,workers=3"]),
        ("sweep-plot", ["plot", "{tmp}/sweep/sw", "--out", "{out}/figs"]),
        ("timeline", ["timeline", "{tmp}/timing-1-0/run", "--out", "{out}/tl.json"]),
        ("whatif", ["whatif", "traces/llm-whatif/trace-AR.parquet", "--quiet", "--out", "{out}/w"]),
    ]
    bad = [
        ["simulate", "--workers", "0", "--out", "{out}/x"],
        ["simulate", "--strategy", "nope", "--out", "{out}/x"],
        ["simulate", "--latency", "exponential:rate=-1", "--out", "{out}/x"],
        ["simulate", "--strategy", "k-sync", "--workers", "3", "--k", "5", "--out", "{out}/x"],
        ["simulate", "--staleness-cutoff", "2", "--strategy", "sync", "--out", "{out}/x"],
        ["simulate", "--latency", "trace:missing.csv", "--out", "{out}/x"],
        ["predict", "--workers", "10", "--latency", "frobnicate:x=1"],
        ["fit", "missing.csv", "--out", "{out}/x"],
        ["sweep", "--workers", "0-", "--out", "{out}/x"],
        ["compare", "{out}/nothing", "--baseline", "backups=0"],
        ["aggregate", "{tmp}/sweep/sw/runs/nothing"],
        ["simulate", "--timing-only", "--format", "pai", "--latency", f"trace:{SHIPPED}", "--out", "{out}/x"],
        ["whatif", "--trace", "missing.parquet", "--out", "{out}/x"],
    ]
    out += [(f"error-{i}", argv) for i, argv in enumerate(bad)]
    return out


VOLATILE = re.compile(rb'"(wall_seconds|wall_time|elapsed|seconds_wall|created|started|finished)": [^,}\n]*')


def digest(path: Path) -> str:
    blob = path.read_bytes()
    if path.suffix in (".json", ".csv", ".toml", ".md", ".txt"):
        blob = VOLATILE.sub(rb'"\1": <volatile>', blob)
    return hashlib.sha256(blob).hexdigest()


def run_all() -> dict:
    from stragglersim.cli.main import main

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, argv in commands():
            folder = Path(tmp) / name
            folder.mkdir()
            argv = [a.replace("{out}", str(folder)).replace("{tmp}", tmp) for a in argv]
            stdout, stderr = io.StringIO(), io.StringIO()
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                try:
                    code = main(argv)
                except SystemExit as exit_:
                    code = exit_.code
            files = {str(p.relative_to(folder)): digest(p) for p in sorted(folder.rglob("*")) if p.is_file()}
            results[name] = {
                "argv": [a.replace(tmp, "<tmp>") for a in argv],
                "exit": code,
                "stdout": stdout.getvalue().replace(tmp, "<tmp>"),
                "stderr": stderr.getvalue().replace(tmp, "<tmp>"),
                "files": files,
            }
            print(f"{name}: exit {code}, {len(files)} files", file=sys.__stderr__)
    return results


def main(argv: list[str]) -> int:
    mode, manifest = argv
    os.chdir(Path(__file__).resolve().parents[1])  # the shipped traces by relative path
    results = run_all()
    if mode == "record":
        Path(manifest).write_text(json.dumps(results, indent=1, sort_keys=True))
        print(f"{len(results)} commands recorded in {manifest}")
        return 0
    before = json.loads(Path(manifest).read_text())
    differ = [name for name in before if before[name] != results.get(name)]
    for name in differ:
        for key in before[name]:
            if before[name][key] != results.get(name, {}).get(key):
                print(f"{name}: {key} differs", file=sys.stderr)
    print(f"{len(before) - len(differ)} of {len(before)} commands identical")
    return 1 if differ or set(results) != set(before) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
