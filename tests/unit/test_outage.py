"""The worker's outage bookkeeping (runtime/_outage.py) and the scheduler's part in it,
without a database: one line per outage however many threads report it, capped backoff,
and a cron tick that hands an unreachable database to its caller instead of logging a
warning per trigger and slot."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest

from jobforge_sdk.errors import TransportError
from jobforge_sdk.runtime._outage import Outage
from jobforge_sdk.runtime.scheduler import Scheduler


def test_an_outage_is_logged_once_and_its_end_once(caplog: pytest.LogCaptureFixture) -> None:
    outage = Outage(probe_dsn=None)
    caplog.set_level(logging.DEBUG, logger="jobforge_sdk.worker")
    outage.recovered()  # no outage: nothing to say
    assert not outage.down
    for doing in ("claim", "heartbeat", "complete", "LISTEN"):
        outage.failed(TransportError("connection refused"), doing)
    assert outage.down
    assert not outage.back.is_set()
    outage.recovered()
    outage.recovered()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert warnings[0].startswith("database unreachable (claim failed: connection refused)")
    assert warnings[1].startswith("database reachable again after ")
    assert outage.back.is_set()
    assert outage.outages == 1


def test_the_backoff_doubles_up_to_its_cap_and_restarts_with_each_outage() -> None:
    outage = Outage(probe_dsn=None, first_delay=0.1, max_delay=1.0)
    outage.failed(TransportError("down"), "claim")
    assert [outage.next_delay() for _ in range(6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 1, 1])
    outage.recovered()
    outage.failed(TransportError("down again"), "claim")
    assert outage.next_delay() == pytest.approx(0.1)
    assert outage.outages == 2


def test_a_probe_fails_on_a_closed_port_and_checks_the_pool_when_it_succeeds() -> None:
    assert Outage(probe_dsn="postgresql://postgres@127.0.0.1:1/none").probe() is False
    checked: list[bool] = []
    pool = SimpleNamespace(closed=False, check=lambda: checked.append(True))
    assert Outage(probe_dsn=None, pool=pool).probe() is True  # over HTTP: the next call tells
    assert checked == [True]


def test_a_cron_tick_raises_when_the_database_is_unreachable(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = datetime(2026, 12, 6, 3, 0, 30, tzinfo=UTC)
    trigger = SimpleNamespace(
        id=uuid.uuid4(),
        tenant_id=uuid.uuid4(),
        cron_expression="* * * * *",
        created_at=now - timedelta(minutes=5),
        enabled_at=None,
        last_scheduled_for=None,
        misfire_policy=None,
        max_catch_up=None,
    )

    def fire(**_: Any) -> None:
        raise TransportError("database connection failed: connection refused")

    client = SimpleNamespace(_list_cron_triggers=lambda: [trigger, trigger], fire_cron_trigger=fire)
    scheduler = Scheduler(cast(Any, client), clock=lambda: now)
    with pytest.raises(TransportError):
        scheduler.tick()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
