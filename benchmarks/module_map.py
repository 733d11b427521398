"""The package's module map: lines per module and the import graph (imports inside functions too).

    python benchmarks/module_map.py [ROOT]              # ROOT: a checkout (default: this one)
    python benchmarks/module_map.py --summary [ROOT]    # the structure in figures

Prints each module with its line count and the package modules it imports, then any import
cycles (strongly connected components). ``tests/test_architecture.py`` asserts there are none.

``--summary`` measures the structure: the depth of the import graph (the longest chain of imports),
the imports that run from a lower layer to a higher one (layers: ``LAYERS``, lowest first; a module
of the flat layout before issue 27 is placed by ``FLAT``, where it moved), the imports inside
functions (lazy), the modules at the package root and the largest modules.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

FOLDERS = {"simulator": "stragglersim", "models": "stragglersim.models"}  # folder: installed package
# the layers, lowest first: a module may import from its own layer and those before it (llm and
# studies are side by side: neither imports the other)
LAYERS = {"io": 0, "latency": 1, "strategies": 2, "models": 3, "core": 4, "training": 5, "plots": 6}
LAYERS |= {"studies": 7, "llm": 7, "cli": 8, "api": 9, "__main__": 9, "": 9}
# where each module of the flat layout (before issue 27) went: its layer, to measure the old layout
FLAT = {
    "io": "_version errors checks strictjson storage boundary shipped spec schema gcpause progress records results"
    " outcome timeline",
    "latency": "durations traces fitting",
    "core": "config limits cluster faults workload data streams assemble engine worker fastpath fastqueues recursions"
    " barrier_recursion queue_recursions",
    "training": "trainer steps optim evaluation versions checkpoint measure runner",
    "plots": "plots",
    "studies": "grids sweeps pool dask_sweep aggregation comparison forest sweep_plots study_plots folder_plots theory"
    " survival reproduce validation completeness convex compare_backups reports",
    "llm": "llm_trace llm_model llm_profile llm_profile_write llm_replay whatif whatif_report whatif_plots",
    "cli": "cli commands options",
}
FLAT_LAYER = {module: layer for layer, names in FLAT.items() for module in names.split()}


def modules(root: Path) -> dict[str, Path]:
    """Installed module name -> file, for every module of the package."""
    found = {}
    for folder, package in FOLDERS.items():
        for path in sorted((root / folder).rglob("*.py")):
            parts = path.relative_to(root / folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join((package, *parts))] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package modules that module ``name`` imports, anywhere in its body."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = _installed(node.module or "")
            candidates = [origin] + [f"{origin}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            candidates = [_installed(a.name) for a in node.names]
        else:
            continue
        for c in candidates:
            while c and c not in known:  # a name inside a module: the module
                c = c.rpartition(".")[0]
            if c and c != name and not (is_package and c.startswith(name + ".") and False):
                targets.add(c)
    return targets


def _installed(module: str) -> str:
    """``simulator.x`` (before the package was renamed) -> ``stragglersim.x``."""
    head, _, rest = module.partition(".")
    if head in FOLDERS:
        return FOLDERS[head] + (f".{rest}" if rest else "")
    return module


def graph(root: Path) -> tuple[dict[str, Path], dict[str, set[str]]]:
    known = modules(root)
    return known, {name: imports(name, path, known) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def parents_of(name: str) -> set[str]:
    """A submodule's import runs its parent packages' ``__init__`` first: not a dependency cycle."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def layer(name: str) -> str:
    """The layer of an installed module name: its subpackage, or where a flat module moved."""
    parts = name.split(".")[1:]
    if not parts:
        return ""
    head = parts[0]
    return head if head in LAYERS else FLAT_LAYER.get(head, head)


def _internal(node: ast.Import | ast.ImportFrom) -> bool:
    """An import of the package's own modules."""
    if isinstance(node, ast.ImportFrom):
        return bool(node.level) or (node.module or "").split(".")[0] in ("stragglersim", *FOLDERS)
    return any(a.name.split(".")[0] in ("stragglersim", *FOLDERS) for a in node.names)


def lazy_imports(path: Path, *, internal: bool | None = None) -> list[int]:
    """Lines of the imports inside functions (and methods) of one module: all, or only the package's
    own (``internal=True``) or only others (``False``)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            lines += [
                n.lineno
                for n in ast.walk(node)
                if isinstance(n, ast.Import | ast.ImportFrom) and (internal is None or _internal(n) == internal)
            ]
    return sorted(set(lines))


def depth(edges: dict[str, set[str]]) -> int:
    """Modules on the longest chain of imports (the graph has no cycles)."""
    memo: dict[str, int] = {}

    def visit(v: str) -> int:
        if v not in memo:
            memo[v] = 0  # a cycle (if any) stops here
            memo[v] = 1 + max((visit(w) for w in edges.get(v, ())), default=0)
        return memo[v]

    return max(visit(v) for v in edges)


def summary(root: Path) -> dict:
    known, edges = graph(root)
    edges = {n: e - parents_of(n) for n, e in edges.items()}
    upward = sorted(
        (a, b) for a, targets in edges.items() for b in targets if LAYERS.get(layer(a), 9) < LAYERS.get(layer(b), 9)
    )
    lazy = {name: lazy_imports(path, internal=True) for name, path in known.items()}
    lazy_other = {name: lazy_imports(path, internal=False) for name, path in known.items()}
    sizes = sorted(((len(p.read_text().splitlines()), n) for n, p in known.items()), reverse=True)
    at_root = sorted(n for n, p in known.items() if p.parent == root / "simulator" and n != "stragglersim")
    return {
        "modules": len(known),
        "modules at the package root": len(at_root),
        "import depth (modules on the longest chain)": depth(edges),
        "imports from a lower layer to a higher one": len(upward),
        "imports of the package inside functions": sum(map(len, lazy.values())),
        "imports of the package at the top of modules": sum(
            1
            for p in known.values()
            for node in ast.parse(p.read_text()).body
            if isinstance(node, ast.Import | ast.ImportFrom) and _internal(node)
        ),
        "imports of other libraries inside functions": sum(map(len, lazy_other.values())),
        "largest modules": ", ".join(f"{n.removeprefix('stragglersim.')} {lines}" for lines, n in sizes[:5]),
        "upward": [f"{a} -> {b}" for a, b in upward],
        "root": at_root,
    }


def main(root: Path) -> None:
    known, edges = graph(root)
    short = lambda n: n.removeprefix("stragglersim.") or "stragglersim"  # noqa: E731
    for name in sorted(known):
        n_lines = len(known[name].read_text().splitlines())
        deps = ", ".join(short(d) for d in sorted(edges[name] - parents_of(name)))
        print(f"{short(name):<28}{n_lines:>5}  -> {deps}")
    found = cycles({n: e - parents_of(n) for n, e in edges.items()})
    print("import cycles:", "none" if not found else "; ".join(" <-> ".join(map(short, c)) for c in found))


if __name__ == "__main__":
    args = sys.argv[1:]
    show = "--summary" in args
    args = [a for a in args if a != "--summary"]
    where = Path(args[0]) if args else Path(__file__).resolve().parents[1]
    if show:
        for key, value in summary(where).items():
            if isinstance(value, list):
                print(f"{key} ({len(value)}):" + "".join(f"\n  {v}" for v in value))
            else:
                print(f"{key}: {value}")
    else:
        main(where)
