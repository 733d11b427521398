"""One small golden regression: a tiny seeded run's files, byte for byte.

It fails when any change moves an event. If the change is meant to (a new semantics
detail, a different draw order), regenerate on purpose and say why in the commit::

    python tests/test_golden.py --regenerate
"""

import json
import sys
from pathlib import Path

from stragglersim.cli.main import main

GOLDEN = Path(__file__).parent / "golden" / "backup-tf-n3-b1"
ARGS = [
    "simulate",
    "--timing-only",
    "--quiet",
    "--strategy",
    "backup",
    "--workers",
    "3",
    "--backups",
    "1",
    "--latency",
    "straggler:base=exponential(rate=1),p=0.1,factor=4",
    "--speed-factors",
    "1,1,1.5,1",
    "--comm-latency",
    "0.05",
    "--steps",
    "8",
    "--seed",
    "2016",
]
FILES = ("updates.csv", "gradients.csv", "config.toml")


def _produce(out: Path) -> None:
    assert main([*ARGS, "--out", str(out), "--overwrite"]) == 0


def test_golden_run_is_unchanged(tmp_path):
    _produce(tmp_path / "run")
    for name in FILES:
        assert (tmp_path / "run" / name).read_text() == (GOLDEN / name).read_text(), f"{name} changed"
    got = json.loads((tmp_path / "run" / "summary.json").read_text())
    want = json.loads((GOLDEN / "summary.json").read_text())
    got.pop("version"), want.pop("version")
    assert got.pop("wall_seconds") > 0 and got.pop("updates_per_wall_second") > 0  # this machine's, not the run's
    assert got == want


if __name__ == "__main__" and "--regenerate" in sys.argv:
    _produce(GOLDEN)
    print(f"regenerated {GOLDEN}")
