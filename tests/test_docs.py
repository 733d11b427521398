"""The documentation's examples run as written and print what it shows.

README.md and every page of docs/ follow one convention (docs/index.md, "The examples are tested"):

- a ```bash block followed directly by a ```text block: each ``stragglersim`` command of the block
  runs, in order, in this process (``stragglersim.cli.main.main``), and their standard output together
  is the text block;
- a ```python block followed directly by a ```text block: what it prints is the text block;
- every ```python block runs; a page's blocks run in order as one notebook in a fresh temporary
  folder, which the page's commands share (``runs/NAME`` lands there);
- a ```bash block with no output after it does not run (installation, clusters, long studies);
- a block after ``<!-- docs-test: slow -->`` runs only with ``-m slow``, alone in its own folder;
- a bare ``` block is literal text, never directly after a command block.

Outputs are compared exactly, line by line, but for trailing spaces (and the temporary folder's path,
should a command print it, which reads as ``.``).
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SLOW = "<!-- docs-test: slow -->"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.S | re.M)
COMMANDS = ("bash", "python")
# The front-door lines install the package before their command; here it is installed.
SETUP = {"python3 -m venv .venv", ". .venv/bin/activate", "pip install ."}


@dataclass
class Block:
    lang: str
    code: str
    line: int  # of the opening fence, from 1
    slow: bool
    output: str | None = None  # the text block right after it

    def where(self, page: Path) -> str:
        return f"{page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The page's fenced blocks, each command block with the output block after it.

    Raises:
        AssertionError: a block breaks the convention (an output block after anything but a command
            block, a bare block right after a command block, a command block of another language).
    """
    text = page.read_text()
    found: list[Block] = []
    end = 0
    for m in FENCE.finditer(text):
        lang, code, between = m.group(1), m.group(2), text[end : m.start()]
        line = text.count("\n", 0, m.start()) + 1
        follows = found[-1] if found and not between.strip() and found[-1].output is None else None
        if lang == "text":
            assert follows is not None and follows.lang in COMMANDS, (
                f"{page.relative_to(ROOT)}:{line}: an output block must follow a bash or python block directly"
            )
            follows.output = code
        else:
            assert lang in ("", *COMMANDS), f"{page.relative_to(ROOT)}:{line}: use bash, python, text or a bare block"
            assert not (lang == "" and follows is not None and follows.lang in COMMANDS), (
                f"{page.relative_to(ROOT)}:{line}: a bare block right after a command reads as its output: use text"
            )
            found.append(Block(lang, code, line, slow=between.rstrip().endswith(SLOW)))
        end = m.end()
    return found


def commands(block: Block) -> list[list[str]]:
    """The stragglersim commands of a bash block, each as its arguments (without ``stragglersim``)."""
    argvs = []
    for line in block.code.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        while words:
            part, words = (words[: words.index("&&")], words[words.index("&&") + 1 :]) if "&&" in words else (words, [])
            if " ".join(part) in SETUP:
                continue
            assert part[0] == "stragglersim", f"line {block.line}: only stragglersim commands run: {' '.join(part)}"
            argvs.append(part[1:])
    return argvs


def normal(text: str, folder: Path) -> str:
    return "\n".join(line.rstrip() for line in text.replace(str(folder), ".").rstrip("\n").split("\n"))


def run_blocks(page: Path, chosen: list[Block], folder: Path, capsys) -> int:
    """Run ``chosen`` in order in ``folder`` (the working folder), checking each shown output; returns
    how many outputs were compared."""
    from stragglersim import strategies
    from stragglersim.cli.main import main

    namespace: dict = {"__name__": "__docs__"}
    registered = strategies.names()
    compared = 0
    try:
        for block in chosen:
            if block.lang not in COMMANDS or (block.lang == "bash" and block.output is None):
                continue
            capsys.readouterr()
            if block.lang == "python":
                # the page's line numbers in tracebacks
                exec(compile("\n" * block.line + block.code, str(page), "exec"), namespace)
                printed = capsys.readouterr().out
            else:
                printed = ""
                for argv in commands(block):
                    status = main(argv)
                    seen = capsys.readouterr()
                    command = " ".join(["stragglersim", *argv])
                    assert status == 0, f"{block.where(page)}: {command} exited {status}:\n{seen.err}"
                    printed += seen.out
            if block.output is not None:
                assert normal(printed, folder) == normal(block.output, folder), (
                    f"{block.where(page)}: the output differs from the page's"
                )
                compared += 1
    finally:
        for name in strategies.names():  # a page's own strategies leave with it
            if name not in registered:
                strategies.unregister(name)
    return compared


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_the_examples_print_what_the_page_shows(page, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    # A sweep's default is a process per CPU; its small grids here run in this process, twice as fast
    # (a sweep's results do not depend on where its runs ran).
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    run_blocks(page, [b for b in blocks(page) if not b.slow], tmp_path, capsys)


SLOW_BLOCKS = [(page, block) for page in PAGES for block in blocks(page) if block.slow]


@pytest.mark.slow
@pytest.mark.parametrize("page, block", SLOW_BLOCKS, ids=[b.where(p) for p, b in SLOW_BLOCKS])
def test_the_slow_examples_print_what_the_page_shows(page, block, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run_blocks(page, [block], tmp_path, capsys) == (block.output is not None)


def test_the_pages_follow_the_convention():
    """Every page parses; the examples that show output are many, and the API page's python blocks
    (the notebook a user copies) all run."""
    found = {page: blocks(page) for page in PAGES}
    shown = [b for bs in found.values() for b in bs if b.output is not None]
    assert len(shown) >= 20
    assert sum(b.lang == "python" for b in found[ROOT / "docs" / "api.md"]) >= 5
    readme = found[ROOT / "README.md"]
    assert readme[0].code.startswith("python3 -m venv .venv && ") and readme[0].output  # the quick start
    assert not any(b.slow for b in readme)  # the front door's examples run in every test run


def test_the_readme_is_a_front_door():
    """At most 250 lines; every relative link in it names a file of the repository."""
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    links = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    assert links
    for link in links:
        if not re.match(r"\w+://", link):
            assert (ROOT / link).exists(), link


def test_every_page_is_in_the_navigation():
    """MkDocs only mentions a page left out of ``nav``; here that fails."""
    nav = (ROOT / "mkdocs.yml").read_text()
    assert sorted(re.findall(r"^  - [^:]+: (\S+\.md)$", nav, re.M)) == sorted(p.name for p in PAGES[1:])


def test_the_outputs_page_holds_the_schema_table():
    """Every CSV column's description, as ``schema.table()`` writes it (also each run's ``columns.md``)."""
    from stragglersim.io import schema

    assert schema.table() in (ROOT / "docs" / "outputs.md").read_text()
