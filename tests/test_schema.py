"""Every CSV column is described once, with its unit: in the guide (docs/outputs.md) and in each run folder."""

from pathlib import Path

from stragglersim.cli.main import main
from stragglersim.io import schema
from stragglersim.io.records import Gradient, Update
from stragglersim.training.evaluation import TrainingResult


def test_the_schema_lists_exactly_the_columns_written():
    assert tuple(schema.COLUMNS["updates.csv"]) == Update.FIELDS
    assert tuple(schema.COLUMNS["gradients.csv"]) == Gradient.FIELDS
    assert tuple(schema.COLUMNS["metrics.csv"]) == TrainingResult.METRICS_FIELDS
    assert tuple(schema.COLUMNS["training.csv"]) == TrainingResult.STEPS_FIELDS
    for columns in schema.COLUMNS.values():
        assert columns.get("time", columns.get("sim_time", ("s",)))[0] == "s"


def test_the_guide_holds_the_schema_table():
    readme = (Path(__file__).parent.parent / "docs" / "outputs.md").read_text()
    assert schema.table() in readme


def test_a_run_folder_describes_its_own_columns(tmp_path):
    argv = ["simulate", "--timing-only", "--quiet", "--steps", "3", "--log-gradients", "none", "--out", str(tmp_path)]
    assert main([*argv[:-1], str(tmp_path / "r")]) == 0
    note = (tmp_path / "r" / "columns.md").read_text()
    assert "| `updates.csv` | `time` | s | simulated time of the update |" in note
    assert "gradients.csv" not in note  # not written with --log-gradients none
    header = (tmp_path / "r" / "updates.csv").read_text().splitlines()[0].split(",")
    assert [line.split("`")[3] for line in note.splitlines() if line.startswith("| `updates.csv`")] == header


def test_an_imported_trace_has_the_schema_columns(tmp_path):
    out = tmp_path / "t.csv"
    assert main(["import", "traces/measured-cpu-4x-cnn-digits.csv", "--out", str(out)]) == 0
    assert out.read_text().splitlines()[0].split(",") == list(schema.COLUMNS["trace.csv"])
