"""``batch_size: auto``: the probe's rule, the cache, and what a CPU run records."""

from __future__ import annotations

import json

import pytest
import torch

from bigroc import batch_size


def rates(curve):
    """A measure(batch) that returns images/s from ``curve`` and records what was asked."""
    asked = []

    def measure(batch):
        asked.append(batch)
        value = curve(batch)
        if value is None:
            raise torch.OutOfMemoryError("out of memory")
        return value

    return measure, asked


def test_doubling_stops_where_throughput_stops_rising():
    # images/s saturate at 1000: 64 -> 500, 128 -> 667, 256 -> 800, 512 -> 889, 1024 -> 941 (+6%)
    measure, asked = rates(lambda b: 1000 * b / (b + 64))
    best, measured = batch_size.probe(measure)
    assert best == 512 and asked == [64, 128, 256, 512, 1024]
    assert measured[-1] == (1024, round(1000 * 1024 / 1088, 1))


def test_doubling_stops_at_the_last_batch_that_fits():
    measure, asked = rates(lambda b: None if b > 256 else float(b))
    best, _ = batch_size.probe(measure)
    assert best == 256 and asked == [64, 128, 256, 512]


def test_a_first_batch_that_does_not_fit_is_an_error():
    measure, _ = rates(lambda b: None)
    with pytest.raises(torch.OutOfMemoryError):
        batch_size.probe(measure)


def test_the_cap_bounds_the_probe():
    measure, asked = rates(float)  # throughput grows forever
    best, _ = batch_size.probe(measure, cap=1024)
    assert best == 1024 and asked[-1] == 1024


def test_a_given_number_wins_and_cpus_take_the_fixed_size(tmp_path):
    never = lambda: pytest.fail("no probe for a given number or on a CPU")  # noqa: E731
    assert batch_size.resolve(7, "attack", torch.device("cpu"), "k", never, tmp_path)[0] == 7
    size, info = batch_size.resolve("auto", "attack", torch.device("cpu"), "k", never, tmp_path)
    assert size == batch_size.CPU_BATCH["attack"] and info["chosen"] == "auto: 64 on cpu"
    assert not (tmp_path / batch_size.CACHE_FILE).exists()


@pytest.mark.parametrize("value", [0, -1, "big", 1.5, True])
def test_bad_values_are_refused_by_name(value):
    with pytest.raises(ValueError, match="metrics.batch_size must be 'auto' or an integer"):
        batch_size.checked(value, "metrics.batch_size")


def test_a_cpu_run_records_auto_and_the_size_used(tmp_path, score_cache):
    from test_run_integrity_cli import run

    out = tmp_path / "run"
    done = run(tmp_path, score_cache, "batch_size=auto", out=out)  # after the quick settings' batch_size=4
    assert done.returncode == 0, done.stderr[-2000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["batch_size"] == "auto" and metrics["batch_size_used"] == 64
    assert metrics["batch_size_choice"] == "auto: 64 on cpu"
