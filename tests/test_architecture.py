"""The package's shape: its folders are its layers (a subpackage imports none above it), the root holds
only ``__init__``, ``__main__`` and ``api``, no import cycles (imports inside functions included), no
module over 400 lines, one home per strategy, and nothing installed under the generic names
``simulator`` or ``models``."""

import ast
import importlib.util
import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("module_map", ROOT / "benchmarks" / "module_map.py")
module_map = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module_map)


def test_the_import_graph_has_no_cycles():
    known, edges = module_map.graph(ROOT)
    assert "stragglersim.core.engine" in known and "stragglersim.models.zoo" in known
    assert "stragglersim.io.records" in edges["stragglersim.core.engine"]  # the graph sees imports
    found = module_map.cycles({n: e - module_map.parents_of(n) for n, e in edges.items()})
    assert found == []


def test_the_package_root_holds_only_init_main_and_api():
    assert sorted(p.name for p in (ROOT / "simulator").glob("*.py")) == ["__init__.py", "__main__.py", "api.py"]
    folders = {p.name for p in (ROOT / "simulator").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(module_map.LAYERS) - {"models", "api", "__main__", ""}


def test_no_module_imports_from_a_layer_above_its_own():
    assert module_map.summary(ROOT)["upward"] == []


def test_the_layer_check_sees_an_import_from_above_inside_a_function(tmp_path):
    for folder in ("simulator/io", "simulator/core", "models"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "simulator" / "__init__.py").write_text("")
    (tmp_path / "simulator" / "core" / "engine.py").write_text("X = 1\n")
    (tmp_path / "simulator" / "io" / "files.py").write_text("def f():\n    from ..core.engine import X\n")
    assert module_map.summary(tmp_path)["upward"] == ["stragglersim.io.files -> stragglersim.core.engine"]


def test_models_import_only_the_documented_interface_of_the_package():
    """``models/`` uses the package only through ``stragglersim.io.errors`` and ``stragglersim.io.boundary``."""
    known, edges = module_map.graph(ROOT)
    used = {t for n, e in edges.items() if n.startswith("stragglersim.models") for t in e}
    assert {t for t in used if not t.startswith("stragglersim.models")} <= {
        "stragglersim.io.errors",
        "stragglersim.io.boundary",
        "stragglersim.io",
        "stragglersim",
    }


# Modules outside strategies/ that may name a strategy: a study's own choice of runs, not a fact about one.
STUDIES_OF_NAMED_STRATEGIES = {
    "studies/reproduce.py",
    "studies/reports.py",
    "studies/claims.py",  # the claim studies compare named strategies, and label their cells with them
    "studies/claim_plots.py",
    "studies/claim_report.py",
}


def test_nothing_outside_strategies_names_a_strategy():
    """A strategy's facts live in its module: no other module compares with or branches on its name
    (docstrings aside; the paper's study and the validate command choose their strategies)."""
    from stragglersim.strategies import names

    found = []
    for path in sorted((ROOT / "simulator").rglob("*.py")):
        where = path.relative_to(ROOT / "simulator").as_posix()
        if where.startswith("strategies/") or where in STUDIES_OF_NAMED_STRATEGIES:
            continue
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        defaults = {  # RunConfig's default strategy
            id(node.value) for node in ast.walk(tree) if isinstance(node, ast.AnnAssign) and node.value is not None
        }
        defaults |= {  # a field named in a message (the deadline option shares its strategy's name)
            id(arg)
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "named"
            for arg in node.args
        }
        found += [
            f"{where}:{node.lineno} {node.value!r}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and node.value in names() and id(node) not in docstrings | defaults
        ]
    assert found == []


def test_the_cycle_finder_finds_a_cycle_through_an_import_inside_a_function(tmp_path):
    (tmp_path / "simulator").mkdir()
    (tmp_path / "models").mkdir()
    (tmp_path / "simulator" / "__init__.py").write_text("")
    (tmp_path / "simulator" / "a.py").write_text("from .b import f\n")
    (tmp_path / "simulator" / "b.py").write_text("def f():\n    from . import a\n")
    _, edges = module_map.graph(tmp_path)
    assert module_map.cycles(edges) == [["stragglersim.a", "stragglersim.b"]]


@pytest.mark.parametrize("path", sorted([*ROOT.glob("simulator/**/*.py"), *ROOT.glob("models/*.py")]), ids=str)
def test_no_module_is_over_400_lines(path):
    assert len(path.read_text().splitlines()) <= 400


def unexplained_lazy_imports(path: Path) -> list[int]:
    """Lines of the imports inside functions of one module that give no reason: no comment on their line
    and no comment line just above (a bare ``# noqa``, ``# type:`` or ``# pragma`` is no reason)."""
    source = path.read_text()
    lines = source.splitlines()
    comments = {
        token.start[0]: token.string.lstrip("#").strip()
        for token in tokenize.generate_tokens(io.StringIO(source).readline)
        if token.type == tokenize.COMMENT
    }

    def reason(line: int) -> bool:
        text = comments.get(line, "")
        return bool(text) and not re.match(r"(noqa|type:|pragma)\b", text)

    def comment_line(line: int) -> bool:
        return line >= 1 and lines[line - 1].lstrip().startswith("#") and reason(line)

    return [n for n in module_map.lazy_imports(path) if not (reason(n) or comment_line(n - 1))]


PACKAGE_MODULES = sorted([*ROOT.glob("simulator/**/*.py"), *ROOT.glob("models/*.py")])


@pytest.mark.parametrize("path", PACKAGE_MODULES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_import_inside_a_function_says_why_it_is_not_at_the_top(path):
    """An import belongs at the top of its module; one inside a function (the command line's start, an
    import cycle, an optional dependency, a heavy library a light path skips) carries its reason as a
    comment on its line or the line above."""
    assert unexplained_lazy_imports(path) == []


def test_an_import_inside_a_function_without_a_reason_is_found(tmp_path):
    module = tmp_path / "lazy.py"
    module.write_text(
        "import json\n"
        "\n"
        "\n"
        "def f():\n"
        "    import csv  # here: a reason\n"
        "    # here: a reason for the line below\n"
        "    import gzip\n"
        "    import zlib\n"  # 8: the line above is an import with its own comment, not a comment line
        "    import bz2  # noqa: F401\n"  # 9: a directive is no reason
        "\n"
        "    def g():\n"
        "        from os import path\n"  # 12: a nested function's import
        "\n"
        "    return json, csv, gzip, zlib, path\n"
    )
    assert unexplained_lazy_imports(module) == [8, 9, 12]


def test_the_wheel_holds_one_package_named_stragglersim(tmp_path):
    """``pip install .`` puts stragglersim (and stragglersim.models, and the shipped traces with their
    README and licence as package data) in site-packages, nothing else,
    even from a checkout whose build/ folder holds an older build (the top-level packages of the
    old layout, a module since removed)."""
    import shutil
    import subprocess
    import sys
    import zipfile

    tree = tmp_path / "tree"
    shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "figures", "__pycache__"))
    for stale in ("simulator/old.py", "models/old.py", "stragglersim/gone.py"):
        (tree / "build" / "lib" / stale).parent.mkdir(parents=True, exist_ok=True)
        (tree / "build" / "lib" / stale).write_text("")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(tmp_path), str(tree)],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = tmp_path.glob("stragglersim-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    info = wheel.name.split("-py3")[0] + ".dist-info"
    assert {n.split("/")[0] for n in names} == {"stragglersim", info}
    sources = {f"stragglersim/{p.relative_to(ROOT / 'simulator').as_posix()}" for p in ROOT.glob("simulator/**/*.py")}
    sources |= {f"stragglersim/models/{p.name}" for p in ROOT.glob("models/*.py")}
    assert {n for n in names if n.endswith(".py")} == sources  # every module, subpackages included, nothing stale
    traces = [  # the scripts that made a trace stay in the repository
        p.relative_to(ROOT / "traces").as_posix()
        for p in ROOT.glob("traces/**/*")
        if p.is_file() and p.suffix not in (".py", ".sh")
    ]
    shipped = {f"stragglersim/shipped_traces/{name}" for name in traces}
    assert {"README.md", "pai-mini-batch-time/LICENSE", "measured-cpu-4x-cnn-digits.csv"} <= set(traces)
    assert {n for n in names if n.startswith("stragglersim/shipped_traces/")} == shipped  # traces, README, licence
    examples = {f"stragglersim/shipped_examples/{p.name}" for p in ROOT.glob("examples/*.toml")}
    assert len(examples) >= 5 and {n for n in names if n.startswith("stragglersim/shipped_examples/")} == examples
    entry = zipfile.ZipFile(wheel).read(info + "/entry_points.txt").decode()
    assert "stragglersim = stragglersim.cli.main:main" in entry


def test_the_command_line_starts_without_numpy_scipy_or_jax():
    """``stragglersim --help`` answers at once (0.3 s, ``benchmarks/README.md``): the CLI's imports leave
    NumPy, SciPy and JAX to the commands that need them, and the version is a literal (no importlib.metadata)."""
    import subprocess
    import sys

    code = "import sys, stragglersim.cli.main; heavy = {'numpy', 'scipy', 'jax', 'pandas', 'matplotlib'}; "
    code += "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_the_version_is_the_installed_distributions():
    import importlib.metadata

    import stragglersim

    assert stragglersim.__version__ == importlib.metadata.version("stragglersim")
