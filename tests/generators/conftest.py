"""Every generator test runs on one thread: tiny networks are as fast on one, and do not stall
on a busy machine."""

from __future__ import annotations

import pytest

from generator_checks import single_thread


@pytest.fixture(autouse=True)
def _one_thread():
    with single_thread():
        yield
