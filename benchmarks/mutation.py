"""Mutation testing of the engine, the strategies and the trainer: does the suite notice?

Each mutant changes one thing in one module (a comparison, an arithmetic or boolean operator,
a number, min/max, a `not`, or deletes one assignment or call), is written into a private copy
of the tree, and the tests that guard that module run against it in a fresh process with
``-x``: a failing test kills the mutant, a passing run lets it survive, a run past the timeout
counts as killed by timeout (reported separately). Survivors are listed with their line so
they can be judged: equivalent (nothing observable changes) or a missing test.

    python benchmarks/mutation.py                      # every target, 2 processes
    python benchmarks/mutation.py --module engine --jobs 2 --limit 20
    python benchmarks/mutation.py --list               # the mutants, without running them
    python benchmarks/mutation.py --retest benchmarks/mutation-results.json --out retest.json \
        --tests tests/test_traces.py ...               # survivors against more of the suite

A fresh process per mutant is deliberate: mutmut 3 forks one process that has already imported
JAX and filled the trainer's cache of compiled functions, so a mutant inside a jitted function
would be tested against the compiled original. Lines ending in ``# pragma: no mutate`` are
skipped. Results go to ``benchmarks/mutation-results.json`` (not committed) and a summary to
stdout; ``benchmarks/README.md`` keeps the last report.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENGINE_TESTS = [
    "tests/test_reference_model.py",
    "tests/test_engine.py",
    "tests/test_strategies.py",
    "tests/test_golden.py",
    "tests/test_relaxed.py",
    "tests/test_properties.py",
    "tests/test_faults.py",
    "tests/test_fastpath.py",
]
TRAINER_TESTS = [
    "tests/test_reference.py",
    "tests/test_trainer.py::test_async_applies_each_gradient_at_the_version_it_read",
    "tests/test_trainer.py::test_history_keeps_only_versions_that_can_still_be_applied",
    "tests/test_trainer.py::test_sync_updates_average_exactly_n_minibatches",
]
WORKER_TESTS = ["tests/test_reference_model.py", "tests/test_engine.py", "tests/test_faults.py", "tests/test_worker.py"]
THEORY_TESTS = ["tests/test_theory.py", "tests/test_theory_branches.py"]
STUDY_TESTS = ["tests/test_study_tables.py", "tests/test_aggregation.py", "tests/test_comparison.py"]
WHATIF_TESTS = ["tests/test_whatif_corners.py", "tests/test_whatif.py", "tests/test_whatif_properties.py"]
# module -> (file, functions to mutate (None: the whole module), tests that guard it)
TARGETS = {
    "engine": ("simulator/core/engine.py", None, ENGINE_TESTS),
    **{
        f"strategies.{family}": (f"simulator/strategies/{family}.py", None, ENGINE_TESTS)
        for family in ("base", "sync", "asynchronous", "softsync", "dutta", "ssp", "deadline")
    },
    "trainer": (
        "simulator/training/trainer.py",
        {"_apply_update", "_flush_stale", "_flush", "_indices", "_gradient", "_prune"},
        TRAINER_TESTS,
    ),
    "steps": ("simulator/training/steps.py", {"build_steps"}, TRAINER_TESTS),
    "versions": ("simulator/training/versions.py", None, TRAINER_TESTS),
    # the corners (issue 26): the worker loop, the fast path, the theory, the study tables, the what-if replay
    "worker": ("simulator/core/worker.py", None, WORKER_TESTS),
    "fastpath": (
        "simulator/core/barrier_recursion.py",
        None,
        ["tests/test_reference_model.py", "tests/test_fastpath.py"],
    ),
    "theory": ("simulator/studies/theory.py", None, THEORY_TESTS),
    "survival": ("simulator/studies/survival.py", None, THEORY_TESTS),
    "aggregation": ("simulator/studies/aggregation.py", None, STUDY_TESTS),
    "comparison": ("simulator/studies/comparison.py", None, STUDY_TESTS),
    "llm_replay": ("simulator/llm/replay.py", None, WHATIF_TESTS),
    "whatif": ("simulator/llm/whatif.py", None, WHATIF_TESTS),
}
# The operator classes: the classic ones, and those that make corner bugs (--kinds corner).
CLASSIC = ("comparison", "arithmetic", "boolean", "remove not", "constant", "min/max", "delete statement")
CORNER = ("floor/ceil", "off by one", "swapped arguments", "time base")
TIME_WORDS = {"now", "start", "end", "time", "t0", "clock", "step_started", "started", "began"}
NOT_COMMUTATIVE = (ast.Sub, ast.Div, ast.FloorDiv, ast.Mod, ast.Pow)

SWAP = {
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Mult,
    ast.Mod: ast.FloorDiv,
    ast.And: ast.Or,
    ast.Or: ast.And,
}


@dataclass
class Mutant:
    module: str
    line: int
    kind: str
    before: str
    after: str
    status: str = "pending"  # killed, survived, timeout, error
    seconds: float = 0.0
    killer: str = ""


def _segment(source: str, node: ast.AST) -> str:
    return ast.get_source_segment(source, node) or ast.unparse(node)


def mutants_of(module: str, path: Path, functions: set[str] | None) -> list[tuple[Mutant, str]]:
    """Every single-change mutant of ``path`` (inside ``functions`` if given): (record, new source)."""
    source = path.read_text()
    lines = source.splitlines(keepends=True)
    tree = ast.parse(source)
    docstrings = {
        id(n.body[0].value)
        for n in ast.walk(tree)
        if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef)
        and n.body
        and isinstance(n.body[0], ast.Expr)
        and isinstance(n.body[0].value, ast.Constant)
    }
    scopes = []
    for n in ast.walk(tree):
        if isinstance(n, ast.FunctionDef | ast.ClassDef) and (functions is None or n.name in functions):
            if isinstance(n, ast.FunctionDef):
                scopes.append(n)
    roots = scopes if functions is not None else [tree]
    # the time-like local names of each function, by node: candidates for a changed time base
    scope_names: dict[int, set[str]] = {}
    for fn in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
        names = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and n.id in TIME_WORDS}
        names |= {a.arg for a in fn.args.args + fn.args.kwonlyargs if a.arg in TIME_WORDS}
        for n in ast.walk(fn):
            scope_names[id(n)] = names
    seen: set[int] = set()
    out: list[tuple[Mutant, str]] = []

    def replace(node: ast.AST, new: ast.AST | str, kind: str) -> None:
        if "pragma: no mutate" in lines[node.lineno - 1]:
            return
        before = _segment(source, node)
        after = new if isinstance(new, str) else ast.unparse(new)
        if after == before:
            return
        start = sum(len(x) for x in lines[: node.lineno - 1]) + len(
            lines[node.lineno - 1].encode()[: node.col_offset].decode()
        )
        end = sum(len(x) for x in lines[: node.end_lineno - 1]) + len(
            lines[node.end_lineno - 1].encode()[: node.end_col_offset].decode()
        )
        text = source[:start] + after + source[end:]
        try:
            ast.parse(text)
        except SyntaxError:
            return
        out.append((Mutant(module, node.lineno, kind, before, after.splitlines()[0] if after else "pass"), text))

    for root in roots:
        for node in ast.walk(root):
            if id(node) in seen:
                continue
            seen.add(id(node))
            if isinstance(node, ast.Import | ast.ImportFrom):
                continue
            if isinstance(node, ast.Compare):
                for i, op in enumerate(node.ops):
                    if type(op) in SWAP:
                        new = copy.deepcopy(node)
                        new.ops[i] = SWAP[type(op)]()
                        replace(node, new, "comparison")
            elif isinstance(node, ast.BinOp | ast.AugAssign) and type(node.op) in SWAP:
                new = copy.deepcopy(node)
                new.op = SWAP[type(node.op)]()
                replace(node, new, "arithmetic")
            elif isinstance(node, ast.BoolOp):
                new = copy.deepcopy(node)
                new.op = SWAP[type(node.op)]()
                replace(node, new, "boolean")
            elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
                replace(node, node.operand, "remove not")
            elif isinstance(node, ast.Constant) and id(node) not in docstrings:
                v = node.value
                if isinstance(v, bool):
                    replace(node, ast.Constant(not v), "constant")
                elif isinstance(v, int | float):
                    replace(node, ast.Constant(v + 1), "constant")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("min", "max"):
                new = copy.deepcopy(node)
                new.func.id = "max" if node.func.id == "min" else "min"
                replace(node, new, "min/max")
            _corners(node, replace, scope_names.get(id(node), set()))
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__slots__" for t in node.targets):
                continue  # memory layout only
            if isinstance(node, ast.Assign | ast.AugAssign) or (
                isinstance(node, ast.Expr) and isinstance(node.value, ast.Call)
            ):
                replace(node, "pass", "delete statement")
    out.sort(key=lambda m: (m[0].line, m[0].kind, m[0].after))
    return out


def _corners(node: ast.AST, replace, time_names: set[str]) -> None:
    """The corner mutants of one node: floor against ceiling division, off-by-one in ranges,
    indices and slices, swapped arguments and operands, and a changed time base."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.FloorDiv):  # a // b -> ceil(a / b)
        ceil = ast.UnaryOp(ast.USub(), ast.BinOp(ast.UnaryOp(ast.USub(), node.left), ast.FloorDiv(), node.right))
        replace(node, ceil, "floor/ceil")
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("floor", "ceil"):
        new = copy.deepcopy(node)
        new.func.attr = "ceil" if node.func.attr == "floor" else "floor"
        replace(node, new, "floor/ceil")
    two = node.args[:2] if isinstance(node, ast.Call) else []
    if len(two) == 2 and not any(isinstance(a, ast.Starred) for a in two) and _swappable(node):
        new = copy.deepcopy(node)
        new.args[0], new.args[1] = new.args[1], new.args[0]
        replace(node, new, "swapped arguments")
    if isinstance(node, ast.BinOp) and isinstance(node.op, NOT_COMMUTATIVE):
        replace(node, ast.BinOp(node.right, node.op, node.left), "swapped arguments")
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in (ast.Lt, ast.LtE, ast.Gt, ast.GtE):
        replace(node, ast.Compare(node.comparators[0], node.ops, [node.left]), "swapped arguments")
    word = node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else None
    if word in TIME_WORDS and isinstance(getattr(node, "ctx", None), ast.Load):
        for other in sorted(time_names - {word}):
            replace(node, ast.Name(other, ast.Load()), "time base")


def _swappable(call: ast.Call) -> bool:
    """Calls whose first two arguments mean different things (not type checks, messages or
    symmetric functions, where a swap breaks at once or changes nothing)."""
    name = call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", "")
    if name in ("isinstance", "getattr", "setattr", "hasattr", "min", "max", "print", "zip", "format", "join"):
        return False
    return not any(
        isinstance(a, ast.JoinedStr) or (isinstance(a, ast.Constant) and isinstance(a.value, str))
        for a in call.args[:2]
    )


def run_one(mutant: Mutant, text: str, file: str, tests: list[str], workdir: Path, timeout: float) -> None:
    target = workdir / file
    original = target.read_text()
    target.write_text(text)
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-n", "0", *tests],
            cwd=workdir,
            env={**os.environ, "PYTHONPATH": str(workdir), "PYTHONDONTWRITEBYTECODE": "1"},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode == 0:
            mutant.status = "survived"
        elif proc.returncode == 1:
            mutant.status = "killed"
            failed = [line for line in proc.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
            mutant.killer = failed[0].split(" - ")[0] if failed else ""
        else:
            mutant.status = "killed"  # collection or internal error: the mutant broke the import
            mutant.killer = f"pytest exit {proc.returncode}"
    except subprocess.TimeoutExpired:
        mutant.status = "timeout"
    finally:
        target.write_text(original)
        mutant.seconds = round(time.perf_counter() - started, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--module", action="append", choices=sorted(TARGETS), help="default: all")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=240.0, help="seconds per mutant")
    parser.add_argument("--limit", type=int, default=0, help="at most this many mutants per module")
    parser.add_argument("--list", action="store_true")
    parser.add_argument(
        "--kinds", choices=("all", "classic", "corner"), default="all", help="operator classes (corner: issue 26's)"
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "mutation-results.json")
    parser.add_argument(
        "--retest",
        type=Path,
        metavar="RESULTS",
        help="run the survivors of an earlier RESULTS file again, against --tests (default: the whole default suite)",
    )
    parser.add_argument("--tests", nargs="+", default=["tests"], help="with --retest: the tests to run")
    args = parser.parse_args()

    work = []
    survivors = None
    if args.retest:
        survivors = {
            (m["module"], m["line"], m["kind"], m["before"], m["after"])
            for m in json.loads(args.retest.read_text())["mutants"]
            if m["status"] == "survived"
        }
    for module in args.module or list(TARGETS):
        file, functions, tests = TARGETS[module]
        found = mutants_of(module, ROOT / file, functions)
        if args.kinds != "all":
            wanted = CORNER if args.kinds == "corner" else CLASSIC
            found = [(m, t) for m, t in found if m.kind in wanted]
        if survivors is not None:
            found = [(m, t) for m, t in found if (m.module, m.line, m.kind, m.before, m.after) in survivors]
            tests = args.tests
        if args.limit:
            found = found[: args.limit]
        work += [(m, text, file, tests) for m, text in found]
    if args.list:
        for m, *_ in work:
            print(f"{m.module}:{m.line} {m.kind}: {m.before!r} -> {m.after!r}")
        print(f"{len(work)} mutants")
        return

    copies = []
    for j in range(args.jobs):
        d = Path(tempfile.mkdtemp(prefix=f"mutation-{j}-"))
        for part in ("simulator", "models", "tests", "traces", "pyproject.toml"):
            src = ROOT / part
            (shutil.copytree if src.is_dir() else shutil.copy)(src, d / part)
        # The installed layout, from the copy (PYTHONPATH comes before the editable install):
        # stragglersim is the folder simulator/, stragglersim.models the folder models/.
        (d / "stragglersim").symlink_to(d / "simulator", target_is_directory=True)
        (d / "simulator" / "models").symlink_to(d / "models", target_is_directory=True)
        copies.append(d)
    free = list(copies)

    def task(item):
        m, text, file, tests = item
        d = free.pop()
        try:
            run_one(m, text, file, tests, d, args.timeout)
        finally:
            free.append(d)
        print(f"{m.status:>8} {m.seconds:6.1f}s {m.module}:{m.line} {m.kind}: {m.before!r} -> {m.after!r}", flush=True)
        return m

    started = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(task, work))
    for d in copies:
        shutil.rmtree(d, ignore_errors=True)
    summary = {}
    for module in dict.fromkeys(m.module for m in results):
        ms = [m for m in results if m.module == module]
        counts = {s: sum(m.status == s for m in ms) for s in ("killed", "timeout", "survived")}
        summary[module] = {"mutants": len(ms), **counts}
    args.out.write_text(
        json.dumps(
            {
                "summary": summary,
                "seconds": round(time.perf_counter() - started),
                "mutants": [asdict(m) for m in results],
            },
            indent=1,
        )
    )
    print(json.dumps(summary))
    for m in results:
        if m.status == "survived":
            print(f"SURVIVED {m.module}:{m.line} {m.kind}: {m.before!r} -> {m.after!r}")


if __name__ == "__main__":
    main()
