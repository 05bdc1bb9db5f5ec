"""derive.budget: deadlines stop costly symbolic work, and only that work is charged."""
import gc
import time

import pytest

from derive.budget import Timeout, attempt, deadline


def test_a_deadline_stops_work_that_runs_past_it():
    start = time.monotonic()
    with pytest.raises(Timeout, match="gave up after 0.2 s"):
        with deadline(0.2):
            while True:
                sum(range(1000))
    assert time.monotonic() - start < 2.0


def test_the_collector_is_paused_inside_and_restored_after():
    assert gc.isenabled()
    with deadline(5.0) as armed:
        assert armed and not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(Timeout):
        with deadline(0.05):
            while True:
                pass
    assert gc.isenabled()


def test_a_collector_the_caller_disabled_stays_disabled():
    gc.disable()
    try:
        with deadline(1.0):
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_full_collection_is_not_charged_to_the_work():
    """A collection forced by a big heap would take longer than the budget itself."""
    heap = [[i] for i in range(2_000_000)]
    start = time.monotonic()
    gc.collect()
    full = time.monotonic() - start
    budget = max(4 * full, 0.05)
    triggered = []
    gc.callbacks.append(lambda phase, info: triggered.append(phase))
    try:
        # each allocation would make the collector run; inside the block it does not
        value = attempt(lambda: len([[j] for j in range(200_000)]), budget, default=None)
    finally:
        gc.callbacks.pop()
    assert value == 200_000 and triggered == []
    del heap
