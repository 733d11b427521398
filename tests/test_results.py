"""Where results may be written: the checks made before any work."""

from pathlib import Path

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
