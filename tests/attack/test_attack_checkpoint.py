"""Corrupted, edited and misused checkpoints: each is refused with one line naming the file, never
a traceback, never a silent resume of something other than what was saved."""

import hashlib
import io
import json
import shutil

import numpy as np
import pytest
from conftest import same_result_file
from stragglersim.cli.main import main

# The smallest training run that keeps past versions (async: a ring in the checkpoint too).
RUN = ["--strategy", "async", "--workers", "2", "--eval-every", "2", "--checkpoint-every", "2", "--steps", "20"]
RESULTS = ("metrics.csv", "training.csv", "gradients.csv", "updates.csv", "summary.json", "config.toml")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A run cut right after its second checkpoint (``cut.checkpoint``) and the same run uninterrupted
    (``whole``), made once for the module."""
    import stragglersim.training.checkpoint as checkpoint

    root = tmp_path_factory.mktemp("checkpoint")
    assert main(["simulate", "--quiet", *RUN, "--out", str(root / "whole")]) == 0
    save, calls = checkpoint.save, []

    def crash_after_second(*a, **kw):
        save(*a, **kw)
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(checkpoint, "save", crash_after_second)
        assert main(["simulate", "--quiet", *RUN, "--out", str(root / "cut")]) == 130
    return root


@pytest.fixture
def ckpt(saved, tmp_path):
    """A fresh copy of the checkpoint, to corrupt."""
    return shutil.copytree(saved / "cut.checkpoint", tmp_path / "run.checkpoint")


def resume(ckpt, *extra, out=None):
    return main(["simulate", "--quiet", "--resume", str(ckpt), "--out", str(out or ckpt.parent / "run"), *extra])


def rehash(ckpt):
    """Write the hashes state.json keeps for the files as they are now (a forger's fix-up)."""
    meta = json.loads((ckpt / "state.json").read_text())
    meta.pop("sha256", None)
    hashes = {name: hashlib.sha256((ckpt / name).read_bytes()).hexdigest() for name in ("config.toml", "state.npz")}
    hashes["state.json"] = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()
    (ckpt / "state.json").write_text(json.dumps({**meta, "sha256": hashes}))


def edit_json(ckpt, change, *, fix=True):
    meta = json.loads((ckpt / "state.json").read_text())
    change(meta)
    (ckpt / "state.json").write_text(json.dumps(meta))
    if fix:
        rehash(ckpt)


def edit_arrays(ckpt, change):
    with np.load(ckpt / "state.npz") as loaded:
        arrays = dict(loaded)
    change(arrays)
    np.savez(ckpt / "state.npz", **arrays)
    rehash(ckpt)


def write(name, data: bytes, *, fix=False):
    def corrupt(ckpt):
        (ckpt / name).write_bytes(data)
        if fix:
            rehash(ckpt)

    return corrupt


def truncate(name, *, fix=False):
    def corrupt(ckpt):
        data = (ckpt / name).read_bytes()
        (ckpt / name).write_bytes(data[: len(data) // 2])
        if fix:
            rehash(ckpt)

    return corrupt


def edit_config(old, new, *, fix=False):
    def corrupt(ckpt):
        text = (ckpt / "config.toml").read_text()
        assert old in text
        (ckpt / "config.toml").write_text(text.replace(old, new))
        if fix:
            rehash(ckpt)

    return corrupt


GARBAGE = np.random.default_rng(0).bytes(4000)
NPY = io.BytesIO()
np.save(NPY, np.zeros(3))
CORRUPTIONS = {  # what is done to the checkpoint -> what the one line says
    "state.json truncated": (truncate("state.json"), "state.json is corrupt (not valid JSON"),
    "state.json random bytes": (write("state.json", GARBAGE), "state.json is corrupt (not valid JSON"),
    "state.json a JSON list": (write("state.json", b"[]"), "state.json keeps no hashes"),
    "state.json without hashes (older stragglersim)": (
        lambda c: edit_json(c, lambda m: m.pop("sha256"), fix=False),
        "state.json keeps no hashes (a checkpoint of an older stragglersim",
    ),
    "metrics edited in state.json": (
        lambda c: edit_json(c, lambda m: m["metrics"][-1].__setitem__(4, 0.99), fix=False),
        "state.json is corrupt (hash mismatch)",
    ),
    "consumed a string, hash fixed": (
        lambda c: edit_json(c, lambda m: m.__setitem__("consumed", "4")),
        "state.json is corrupt (bad or missing 'consumed')",
    ),
    "eval_mark edited, hash fixed": (
        lambda c: edit_json(c, lambda m: m.__setitem__("eval_mark", 3)),
        "state.json's eval_mark 3 is not the 4 losses of state.npz",
    ),
    "ring capacity 2**40, hash fixed": (
        lambda c: edit_json(c, lambda m: m["ring"].__setitem__(0, 2**40)),
        "inconsistent checkpoint (state.json's ring",
    ),
    "ring dropped, hash fixed": (
        lambda c: edit_json(c, lambda m: m.__setitem__("ring", None)),
        "inconsistent checkpoint (the run keeps past versions",
    ),
    "state.npz truncated": (truncate("state.npz"), "state.npz is corrupt (hash mismatch)"),
    "state.npz empty": (write("state.npz", b""), "state.npz is corrupt (hash mismatch)"),
    "state.npz random bytes": (write("state.npz", GARBAGE), "state.npz is corrupt (hash mismatch)"),
    "state.npz truncated, hash fixed": (truncate("state.npz", fix=True), "state.npz is corrupt ("),
    "state.npz empty, hash fixed": (write("state.npz", b"", fix=True), "state.npz is corrupt ("),
    "state.npz random bytes, hash fixed": (write("state.npz", GARBAGE, fix=True), "state.npz is corrupt ("),
    "state.npz a .npy, hash fixed": (write("state.npz", NPY.getvalue(), fix=True), "state.npz is corrupt ("),
    "params_0 wrong shape, hash fixed": (
        lambda c: edit_arrays(c, lambda a: a.__setitem__("params_0", a["params_0"][:64])),
        "state.npz's params_0 is float32[64], but the configuration's model has float32[128]",
    ),
    "params_1 wrong dtype, hash fixed": (
        lambda c: edit_arrays(c, lambda a: a.__setitem__("params_1", a["params_1"].astype(np.float64))),
        "state.npz's params_1 is float64[64, 128], but the configuration's model has float32[64, 128]",
    ),
    "params_3 missing, hash fixed": (
        lambda c: edit_arrays(c, lambda a: a.pop("params_3")),
        "state.npz has no array params_3",
    ),
    "an extra params_4, hash fixed": (
        lambda c: edit_arrays(c, lambda a: a.__setitem__("params_4", a["params_0"])),
        "state.npz has more params arrays than the model (4)",
    ),
    "ring_0 wrong shape, hash fixed": (
        lambda c: edit_arrays(c, lambda a: a.__setitem__("ring_0", a["ring_0"][:4])),
        "does not fit state.npz's ring_0 of [4, 128]",
    ),
    "losses 2-D, hash fixed": (
        lambda c: edit_arrays(c, lambda a: a.__setitem__("losses", a["losses"][None])),
        "state.npz holds no 1-D array of losses",
    ),
    "config.toml hidden 128 -> 64": (
        edit_config('hidden = "128"', 'hidden = "64"'),
        "the checkpoint's config.toml does not match the configuration it was saved with (edited or corrupt)",
    ),
    "config.toml hidden 128 -> 64, hash fixed": (
        edit_config('hidden = "128"', 'hidden = "64"', fix=True),
        "state.npz's params_0 is float32[128], but the configuration's model has float32[64]",
    ),
    "config.toml garbage": (write("config.toml", GARBAGE), "the checkpoint's config.toml does not match"),
    "config.toml garbage, hash fixed": (write("config.toml", b"hidden = [[[", fix=True), "config.toml: not valid TOML"),
    "config.toml deleted": (lambda c: (c / "config.toml").unlink(), "config.toml is missing"),
    "state.npz deleted": (lambda c: (c / "state.npz").unlink(), "state.npz is missing"),
    "state.json deleted": (lambda c: (c / "state.json").unlink(), "not a checkpoint folder (no state.json)"),
    "state.npz a folder": (
        lambda c: ((c / "state.npz").unlink(), (c / "state.npz").mkdir()),
        "cannot read state.npz",
    ),
}


@pytest.mark.parametrize("corrupt, message", CORRUPTIONS.values(), ids=CORRUPTIONS.keys())
def test_a_corrupt_or_edited_checkpoint_is_refused_with_one_line(ckpt, capsys, corrupt, message):
    """corrupt, truncated, deleted or edited checkpoint file (hashes forged or not) -> exit 2, one line naming it"""
    corrupt(ckpt)
    capsys.readouterr()
    assert resume(ckpt) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert not (ckpt.parent / "run").exists()


def test_an_untouched_checkpoint_resumes_to_the_uninterrupted_files(saved, ckpt):
    """untouched checkpoint (hashes verified) -> resume gives the uninterrupted run's files byte for byte"""
    assert resume(ckpt) == 0
    for name in RESULTS:
        assert same_result_file(ckpt.parent / "run" / name, saved / "whole" / name), name


def test_out_inside_the_checkpoint_is_refused(ckpt, capsys):
    """--resume C --out C/sub (results a later checkpoint would delete) -> exit 2, one line"""
    assert resume(ckpt, out=ckpt / "sub") == 2
    err = capsys.readouterr().err
    assert f"--out {ckpt / 'sub'}: inside the checkpoint {ckpt}" in err and err.count("\n") == 1, err
    assert not (ckpt / "sub").exists()


def test_out_and_overwrite_beside_resume_are_honoured(saved, ckpt, capsys):
    """--resume C --out (the checkpoint itself / results without --overwrite / with --overwrite) -> refused,
    refused, replaced with the uninterrupted run's files; the checkpoint goes once the run is complete"""
    assert resume(ckpt, out=ckpt) == 2
    assert f"--out {ckpt}: holds the input {ckpt}" in capsys.readouterr().err
    shutil.copytree(saved / "whole", ckpt.parent / "run")
    (ckpt.parent / "run" / "metrics.csv").write_text("update\n")
    assert resume(ckpt) == 2
    assert "directory is not empty; pass --overwrite" in capsys.readouterr().err
    assert resume(ckpt, "--overwrite") == 0
    for name in RESULTS:
        assert same_result_file(ckpt.parent / "run" / name, saved / "whole" / name), name
    assert not ckpt.exists()  # C is the run's own checkpoint (run.checkpoint): the complete run removes it


@pytest.mark.parametrize(
    "flag, message",
    [
        (["--hidden", "64"], "--hidden 64: not with --resume (the checkpoint's run has hidden = '128'"),
        (["--checkpoint-every", "4"], "--checkpoint-every 4: not with --resume"),
        (["--seed", "1"], "--seed 1: not with --resume"),
    ],
)
def test_a_run_option_changed_beside_resume_is_refused(ckpt, capsys, flag, message):
    """--resume C with a run option the checkpoint fixes, changed -> exit 2, one line naming the option"""
    assert resume(ckpt, *flag) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
