"""How a Worker sizes its claims: one claim fills the free threads and the prefetch queue."""

from __future__ import annotations

from typing import Any

import pytest

from jobforge_sdk import JobForgeClient, JobRegistry, Worker
from tests.support.no_network import NoNetwork


def _worker(**kwargs: Any) -> Worker:
    return Worker(JobForgeClient(NoNetwork()), JobRegistry(), **kwargs)


def test_default_batch_covers_threads_and_prefetch() -> None:
    assert _worker(concurrency=4).batch_size == 8
    assert _worker(concurrency=4, prefetch=0).batch_size == 4
    assert _worker(concurrency=3, prefetch=5).batch_size == 8
    assert _worker(concurrency=900).batch_size == 1000  # a claim takes at most 1,000
    assert _worker(concurrency=4, batch_size=2).batch_size == 2


@pytest.mark.parametrize("bad", [0, -1, 1001])
def test_batch_size_out_of_range_is_refused(bad: int) -> None:
    with pytest.raises(ValueError, match="batch_size: must be between 1 and 1000"):
        _worker(batch_size=bad)
