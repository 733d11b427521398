"""The attack battery (issue 17): run every test of ``tests/attack/`` and print its table.

Each attack test's docstring is one line ``attack -> expected result``; this script runs them
all (the fast ones and the slow ones: kills at random points, a full disk, concurrent writers,
corrupted checkpoints, hostile values) and prints one row per test: the attack, what the tool
must do, and whether it did (passed, failed, or skipped with the reason, e.g. no tmpfs mount).

    python benchmarks/attack.py                  # the whole battery, as a Markdown table
    python benchmarks/attack.py --fast           # only the part the default test run holds
    python benchmarks/attack.py -k checkpoint    # a subset (pytest's -k expression)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


class Table:
    """A pytest plugin that keeps each attack test's docstring and outcome."""

    def __init__(self):
        self.rows: dict[str, list] = {}

    def pytest_collection_modifyitems(self, items):
        for item in items:
            text = (getattr(item, "function", None).__doc__ or item.name).strip()
            doc = " ".join(line.strip() for line in text.split("\n\n")[0].splitlines())  # the first paragraph
            attack, _, expected = doc.partition("->")
            params = f" [{item.callspec.id}]" if hasattr(item, "callspec") else ""
            self.rows[item.nodeid] = [attack.strip() + params, expected.strip(), "not run"]

    def pytest_deselected(self, items):  # -m and -k: not part of this battery
        for item in items:
            self.rows.pop(item.nodeid, None)

    def pytest_runtest_logreport(self, report):
        row = self.rows.get(report.nodeid)
        if row is None:
            return
        if report.when == "call" or report.outcome != "passed":
            if report.skipped:
                row[2] = f"skipped: {report.longrepr[2] if isinstance(report.longrepr, tuple) else 'skipped'}"
            else:
                row[2] = report.outcome

    def markdown(self) -> str:
        lines = ["| attack | expected | result |", "|---|---|---|"]
        lines += [f"| {a} | {e} | {r} |" for a, e, r in self.rows.values()]
        return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="only the tests of the default run (not slow)")
    parser.add_argument("-k", default=None, help="a pytest -k expression selecting attacks")
    args = parser.parse_args(argv)
    table = Table()
    pytest_args = [str(ROOT / "tests" / "attack"), "-q", "-p", "no:cacheprovider", "-n", "0"]
    pytest_args += ["-m", "not slow" if args.fast else "slow or not slow"]
    if args.k:
        pytest_args += ["-k", args.k]
    status = pytest.main(pytest_args, plugins=[table])
    print(table.markdown())
    passed = sum(r[2] == "passed" for r in table.rows.values())
    print(f"\n{passed} of {len(table.rows)} attacks held", file=sys.stderr)
    return int(status)


if __name__ == "__main__":
    sys.exit(main())
