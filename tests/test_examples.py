"""The example run configurations in examples/ run as documented (with few steps here)."""

import json
import re
import tomllib
from pathlib import Path

import pytest
from stragglersim.cli.main import main
from stragglersim.core.config import RunConfig

EXAMPLES = Path(__file__).parent.parent / "examples"
RUNS = ("paper-run", "async-staleness", "trace-replay")


@pytest.mark.parametrize("name", RUNS)
def test_an_example_config_runs(tmp_path, name):
    config = EXAMPLES / f"{name}.toml"
    assert main(["simulate", "--config", str(config), "--steps", "5", "--quiet", "--out", str(tmp_path / "r")]) == 0
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    expected = tomllib.loads(config.read_text())
    assert summary["updates"] == 5 and summary["strategy"] == expected["strategy"]
    assert summary["workers"] == expected["workers"] and summary["latency"] == expected["latency"]


@pytest.mark.parametrize("name", RUNS)
def test_the_commented_out_keys_of_an_example_are_valid(name):
    """Uncommenting the suggested settings gives a valid configuration too."""
    text = (EXAMPLES / f"{name}.toml").read_text()
    uncommented = re.sub(r"^# (\w+ = )", r"\1", text, flags=re.M).replace("timing_only = true", "timing_only = false")
    RunConfig.from_dict(tomllib.loads(uncommented)).validate()
