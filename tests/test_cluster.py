"""Per-worker streams, speed factors and transfer times."""

import math

import numpy as np
import pytest
from stragglersim.core.cluster import DurationStream, Link, parse_speed_factors
from stragglersim.core.streams import stream
from stragglersim.io.errors import InputError
from stragglersim.latency import parse_latency


def test_duration_stream_does_not_depend_on_block_size():
    model = parse_latency("lognormal:mu=0,sigma=1")
    small = DurationStream(model, stream(5, 0, 3), factor=2.0, block=3)
    large = DurationStream(model, stream(5, 0, 3), factor=2.0, block=1000)
    assert [small() for _ in range(50)] == [large() for _ in range(50)]
    assert small.drawn == 50


@pytest.mark.parametrize("spec", ["exponential:rate=2", "straggler:base=lognormal(mu=0,sigma=1),p=0.2,factor=3"])
def test_duration_stream_draws_across_growing_blocks_as_one_sample(spec):
    """Blocks of 128, then 1024 at a time: the d-th time is the d-th of one big draw."""
    model = parse_latency(spec)
    growing = DurationStream(model, stream(2, 0, 1), factor=1.5)
    expected = (model.sample(stream(2, 0, 1), 3000) * 1.5).tolist()
    assert [growing() for _ in range(3000)] == expected


def test_worker_streams_are_independent_of_the_number_of_workers():
    a = stream(7, 0, 4).random(5)
    stream(7, 0, 5).random(5)  # another worker's stream does not disturb worker 4's
    np.testing.assert_array_equal(a, stream(7, 0, 4).random(5))
    assert not np.array_equal(a, stream(7, 0, 3).random(5))
    assert not np.array_equal(a, stream(8, 0, 4).random(5))


def test_speed_factors_from_a_list_and_from_a_spec():
    np.testing.assert_array_equal(parse_speed_factors("", 3, 0), [1, 1, 1])
    np.testing.assert_array_equal(parse_speed_factors("1, 2.5,3", 3, 0), [1, 2.5, 3])
    np.testing.assert_array_equal(parse_speed_factors("1,2,3,4", 2, 0), [1, 2])  # one list serves several B
    drawn = parse_speed_factors("lognormal:mu=0,sigma=0.5", 6, seed=3)
    assert drawn.shape == (6,) and (drawn > 0).all() and len(set(drawn)) == 6
    np.testing.assert_array_equal(parse_speed_factors("lognormal:mu=0,sigma=0.5", 4, seed=3), drawn[:4])
    assert not np.array_equal(parse_speed_factors("lognormal:mu=0,sigma=0.5", 6, seed=4), drawn)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1,2", "2 factors given but the run has 3 workers"),
        ("1,0,2", "must be a finite number > 0, got 0"),
        ("1,-2,2", "got -2"),
        ("1,x,2", "expected numbers separated by commas"),
        ("lognormal:mu=0", "missing parameter 'sigma'"),
    ],
)
def test_bad_speed_factors(text, message):
    with pytest.raises(InputError, match=message):
        parse_speed_factors(text, 3, 0)


def test_transfer_time_is_latency_plus_bytes_over_bandwidth():
    assert Link().transfer_time(1e9) == 0
    assert Link(latency=0.01).transfer_time(0) == 0.01
    assert Link(latency=0.01, bandwidth=1e9).transfer_time(4e8) == pytest.approx(0.41)
    assert Link(bandwidth=math.inf).transfer_time(4e8) == 0
