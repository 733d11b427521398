"""A run's timeline: what cannot be drawn is a clear error."""

import pytest
from stragglersim.io.errors import InputError
from stragglersim.io.records import Gradient
from stragglersim.io.timeline import read_run, select

GRADIENTS = ",".join(Gradient.FIELDS) + "\n"


def test_a_run_without_updates_and_a_window_past_its_end_are_refused(tmp_path):
    (tmp_path / "gradients.csv").write_text(GRADIENTS + "0,0,0,0,0,0,1,unfinished,,\n")
    (tmp_path / "updates.csv").write_text("update,time,gradients\n")
    with pytest.raises(InputError, match=r"the run applied no update: no timeline to draw"):
        read_run(tmp_path)
    (tmp_path / "updates.csv").write_text("update,time,gradients\n1,1.0,1\n2,2.0,1\n")
    gradients, updates = read_run(tmp_path)
    with pytest.raises(InputError, match=r"--updates 3:5: the run has 2 updates"):
        select(gradients, updates, 3, 5)
    assert select(gradients, updates, 2, 9)[1:] == (updates[1:], (1.0, 2.0))  # clipped to the run


def test_a_folder_that_is_not_a_run_and_a_bad_window_are_one_line_errors(tmp_path):
    from stragglersim.io.timeline import parse_window

    with pytest.raises(InputError, match=r": not a run folder \(No such file or directory: .*gradients.csv\)"):
        read_run(tmp_path)
    assert parse_window("5") == (1, 5) and parse_window("3:7") == (3, 7)
    for text in ("x", "2:y", "1.5"):
        with pytest.raises(InputError, match=rf"--updates {text}: give K \(the first K updates\) or A:B"):
            parse_window(text)
