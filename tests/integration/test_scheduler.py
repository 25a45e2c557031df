"""The cron scheduler with an injected clock: no sleeping, exactly one job per slot."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from jobforge_sdk import FeatureFlags, JobForgeClient, Scheduler
from jobforge_sdk.runtime.scheduler import due_slots

SCAN = "autopilot.ops.scan"
FLAGS = FeatureFlags(triggers=True, autopilot_jobs=True, audit_logging=True)
START = datetime(2026, 11, 29, 12, 0, 30, tzinfo=UTC)


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += timedelta(seconds=seconds)


@pytest.fixture
def client(fresh_db_url: str) -> Iterator[JobForgeClient]:
    with JobForgeClient.from_postgres(fresh_db_url, flags=FLAGS, max_size=6) as c:
        c.set_template_enabled(template_key=SCAN, enabled=True)
        yield c


def _backdate(url: str, trigger_id: uuid.UUID, moment: datetime) -> None:
    """Pretend the trigger was created at ``moment`` (the clock is simulated)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "update jobforge_triggers set created_at = %s where id = %s", (moment, trigger_id)
        )


def _trigger(client: JobForgeClient, url: str, **overrides: object) -> tuple[uuid.UUID, uuid.UUID]:
    tenant = uuid.uuid4()
    args: dict[str, object] = {
        "tenant_id": tenant,
        "name": "every minute",
        "cron_expression": "* * * * *",
        "target_template_key": SCAN,
        "target_inputs": {"target": "cluster-a"},
        "enabled": True,
    }
    args.update(overrides)
    trigger = client.create_cron_trigger(**args)  # type: ignore[arg-type]
    assert trigger is not None
    _backdate(url, trigger.id, START - timedelta(seconds=30))
    return tenant, trigger.id


def test_due_slots_keeps_only_the_latest_missed_ones() -> None:
    after = datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)
    until = datetime(2026, 1, 1, 0, 10, 0, tzinfo=UTC)
    assert due_slots("*/5 * * * *", after, until, limit=10) == [
        datetime(2026, 1, 1, 0, 5, tzinfo=UTC),
        datetime(2026, 1, 1, 0, 10, tzinfo=UTC),
    ]
    assert due_slots("* * * * *", after, until, limit=1) == [until]
    assert due_slots("0 0 1 1 *", after, until, limit=1) == []


def test_two_schedulers_make_exactly_one_job_per_slot(
    client: JobForgeClient, fresh_db_url: str
) -> None:
    tenant, _ = _trigger(client, fresh_db_url)
    clock = FakeClock(START)
    schedulers = [Scheduler(client, clock=clock) for _ in range(2)]
    # One simulated hour in 10-second steps; both schedulers tick at every step.
    for _ in range(6 * 60):
        clock.advance(10)
        threads = [threading.Thread(target=s.tick) for s in schedulers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    jobs = client.list_jobs(tenant_id=tenant, limit=1000)
    assert len(jobs) == 60
    slots = sorted(str(j.idempotency_key) for j in jobs)
    assert len(set(slots)) == 60


def test_after_downtime_only_the_latest_missed_slot_fires(
    client: JobForgeClient, fresh_db_url: str
) -> None:
    tenant, _ = _trigger(client, fresh_db_url)
    clock = FakeClock(START + timedelta(minutes=30))  # down for half an hour
    fired = Scheduler(client, clock=clock).tick()
    assert [r.fired for r in fired] == [True]
    assert fired[0].scheduled_for == datetime(2026, 11, 29, 12, 30, tzinfo=UTC)
    assert len(client.list_jobs(tenant_id=tenant)) == 1

    tenant2, _ = _trigger(client, fresh_db_url, name="catch up five")
    results = Scheduler(client, clock=clock, max_catchup=5).tick()
    mine = [r for r in results if r.job is not None and r.job.tenant_id == tenant2]
    assert [r.scheduled_for.minute for r in mine if r.scheduled_for] == [26, 27, 28, 29, 30]


def test_disabled_and_dry_run_triggers_enqueue_nothing(
    client: JobForgeClient, fresh_db_url: str
) -> None:
    disabled_tenant, _ = _trigger(client, fresh_db_url, enabled=False)
    dry_tenant, _ = _trigger(client, fresh_db_url, dry_run=True)
    clock = FakeClock(START)
    scheduler = Scheduler(client, clock=clock)
    for _ in range(3):
        clock.advance(60)
        scheduler.tick()
    assert client.list_jobs(tenant_id=disabled_tenant) == []
    assert client.list_jobs(tenant_id=dry_tenant) == []
    audit = client.list_audit_logs(tenant_id=dry_tenant, action="trigger_fire")
    assert [a.outcome.value for a in audit] == ["dry_run"] * 3


def test_the_scheduler_is_gated_by_the_triggers_flag(fresh_db_url: str) -> None:
    with JobForgeClient.from_postgres(fresh_db_url, flags=FeatureFlags()) as off:
        assert Scheduler(off, clock=lambda: START).tick() == []
