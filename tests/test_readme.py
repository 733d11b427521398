"""The README's "Python API" section runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks(section: str) -> list[str]:
    """The fenced ```python blocks of the README section titled ``section`` (a ``## `` heading)."""
    text = README.read_text()
    start = text.index(f"\n## {section}\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"^```python\n(.*?)^```", text[start : end if end >= 0 else None], re.S | re.M)


def test_python_api_section_runs(tmp_path, monkeypatch, capsys):
    blocks = python_blocks("Python API")
    assert len(blocks) >= 3
    monkeypatch.chdir(tmp_path)  # the examples write runs/ here
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # one notebook: later blocks use earlier names
    printed = capsys.readouterr().out
    assert "predicted" in printed and "test_accuracy" in printed
    assert (tmp_path / "runs" / "api-training" / "metrics.csv").exists()
