"""The package's module map: lines per module and the import graph (imports inside functions too).

    python benchmarks/module_map.py [ROOT]      # ROOT: a checkout (default: this one)

Prints each module with its line count and the package modules it imports, then any import
cycles (strongly connected components). ``tests/test_architecture.py`` asserts there are none.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

FOLDERS = {"simulator": "stragglersim", "models": "stragglersim.models"}  # folder: installed package


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
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1])
