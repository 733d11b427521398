"""Where results may be written: the checks made before any work."""

import os
import time
from pathlib import Path

import pytest
import stragglersim
from conftest import raises_as_cli
from stragglersim.io.results import check_out_dir, check_out_file, check_out_place


def test_an_output_that_is_not_a_folder_of_earlier_results_is_refused(tmp_path):
    (tmp_path / "file").write_text("a file\n")
    with raises_as_cli(r"--out .*file: exists and is not a directory"):
        check_out_dir(tmp_path / "file", overwrite=True)
    with raises_as_cli(r"--out .*: is a directory; give a file name"):
        check_out_file(tmp_path, overwrite=True)
    with raises_as_cli(r"holds the stragglersim package itself"):
        check_out_place(Path(stragglersim.__file__).parent)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("not results\n")
    with raises_as_cli(r"holds files that are not stragglersim results"):
        check_out_dir(tmp_path / "mine", overwrite=True)
    check_out_dir(tmp_path / "mine", overwrite=True, replaces=False)  # written into (reproduce): the files stay


def test_a_sigterm_between_the_renames_of_a_replacement_leaves_the_new_folder_in_place(tmp_path, monkeypatch):
    """The signal's exception arrives after the old copy is moved aside: the replacement is finished before it
    goes on, so what handles it (the CLI's message names the checkpoint) finds the new folder in place."""
    import signal

    from stragglersim.io import storage

    target, new = tmp_path / "ck", tmp_path / "ck.new"
    target.mkdir()
    (target / "state.json").write_text("old")
    new.mkdir()
    (new / "state.json").write_text("new")

    def handler(signum, frame):
        raise KeyboardInterrupt

    calls = []

    def sync_then_signal(path):
        calls.append(path)
        if len(calls) == 1:  # after the first rename: the old copy is aside, the new one not yet in
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)  # the handler runs here, in this thread, whichever thread the kernel chose

    previous = signal.signal(signal.SIGTERM, handler)
    monkeypatch.setattr(storage, "sync_dir", sync_then_signal)
    monkeypatch.setattr(storage, "sync_tree", lambda path: None)
    try:
        with pytest.raises(KeyboardInterrupt):
            storage.replace_dir(new, target)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert (target / "state.json").read_text() == "new" and not new.exists()
