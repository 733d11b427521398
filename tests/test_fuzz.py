"""Fuzzing the front door: random SPECs, trace bytes and TOML either parse or fail cleanly."""

import subprocess
import sys

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stragglersim.core.assemble import check
from stragglersim.core.config import RunConfig
from stragglersim.io.errors import InputError
from stragglersim.latency import parse_latency
from stragglersim.latency.traces import read_trace

SPEC_ALPHABET = "abcdefghijklmnopqrstuvwxyz-:=,.()0123456789eE+ "
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(
    st.one_of(
        st.text(SPEC_ALPHABET, max_size=60),
        st.builds(
            lambda f, k, v: f"{f}:{k}={v}",
            st.sampled_from(["exponential", "gamma", "straggler", "lognormal", "x"]),
            st.sampled_from(["rate", "shape", "scale", "p", "base", "mu", "sigma"]),
            st.text(SPEC_ALPHABET, max_size=20),
        ),
    )
)
def test_random_specs_parse_or_fail_cleanly(text):
    try:
        model = parse_latency(text)
    except InputError as err:
        assert "\n" not in str(err)
        return
    assert model.mean > 0


@FUZZ
@given(
    data=st.binary(max_size=400),
    header=st.sampled_from([b"", b"worker,step,duration\n", b"worker,step,duration,start\n"]),
)
def test_random_trace_bytes_load_or_fail_cleanly(tmp_path, data, header):
    path = tmp_path / "t.csv"
    path.write_bytes(header + data)
    try:
        trace = read_trace(path)
    except InputError as err:
        assert str(path) in str(err) and "\n" not in str(err)
        return
    assert (trace.duration > 0).all()


@FUZZ
@given(st.text(max_size=200))
def test_random_toml_loads_or_fails_cleanly(tmp_path, text):
    path = tmp_path / "c.toml"
    path.write_text(text)
    try:
        check(RunConfig.load(path))
    except InputError as err:
        assert "\n" not in str(err)
    except TypeError:
        raise AssertionError("a wrongly typed field escaped validation") from None


def test_the_cli_never_shows_a_traceback_for_fuzzed_specs(tmp_path):
    for text in ["exponential:rate=(", "straggler:base=,p=1", "gamma:shape=1e999,scale=1", "::", "pareto:alpha=-0"]:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "stragglersim",
                "simulate",
                "--timing-only",
                "--latency",
                text,
                "--out",
                str(tmp_path / "x"),
            ],
            capture_output=True,
            text=True,
        )
        assert result.returncode == 2 and "Traceback" not in result.stderr and result.stderr.count("\n") == 1


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from([f.name for f in __import__("dataclasses").fields(RunConfig)]),
        st.one_of(
            st.integers(-5, 10**6),
            st.floats(allow_nan=True),
            st.text(max_size=12),
            st.booleans(),
            st.lists(st.integers(), max_size=3),
        ),
        max_size=4,
    )
)
def test_random_typed_config_values_fail_cleanly(tmp_path, values):
    import tomli_w

    path = tmp_path / "c.toml"
    path.write_text(tomli_w.dumps(values))
    try:
        check(RunConfig.load(path))
    except InputError as err:
        assert "\n" not in str(err)
