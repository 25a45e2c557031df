"""The cron scheduler with an injected clock: no sleeping, exactly one job per slot, missed
slots as each trigger's misfire policy says; and the daily purge it runs when asked."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from jobforge_sdk import CronFireResult, FeatureFlags, JobForgeClient, MisfirePolicy, Scheduler
from jobforge_sdk.runtime.scheduler import due_slots, slots_to_fire

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
    """Pretend the trigger was created and switched on at ``moment`` (the clock is
    simulated)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "update jobforge_triggers set created_at = %s,"
            " enabled_at = case when enabled then %s end where id = %s",
            (moment, moment, trigger_id),
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


def test_after_downtime_by_default_only_the_on_time_slot_fires(
    client: JobForgeClient, fresh_db_url: str
) -> None:
    tenant, _trigger_id = _trigger(client, fresh_db_url)
    [trigger] = client.list_triggers(tenant_id=tenant)
    assert (trigger.misfire_policy, trigger.max_catch_up) == (MisfirePolicy.SKIP, 10)
    clock = FakeClock(START + timedelta(minutes=30))  # down for half an hour
    fired = Scheduler(client, clock=clock).tick()
    # 12:30 is 30 s old (on time); 12:01 to 12:29 were missed, and skipped.
    assert [r.fired for r in fired] == [True]
    assert fired[0].scheduled_for == datetime(2026, 11, 29, 12, 30, tzinfo=UTC)
    assert len(client.list_jobs(tenant_id=tenant)) == 1
    [trigger] = client.list_triggers(tenant_id=tenant)
    assert trigger.last_scheduled_for == datetime(2026, 11, 29, 12, 30, tzinfo=UTC)


def _minutes(results: list[CronFireResult], trigger_id: uuid.UUID) -> list[int]:
    return [
        r.scheduled_for.minute
        for r in results
        if r.trigger_id == trigger_id and r.fired and r.scheduled_for is not None
    ]


@pytest.mark.parametrize(
    ("policy", "max_catch_up", "expected"),
    [
        ("skip", 10, [10]),
        ("run_once", 10, [9, 10]),
        ("catch_up", 3, [7, 8, 9, 10]),
        ("catch_up", 100, [2, 3, 4, 5, 6, 7, 8, 9, 10]),
    ],
)
def test_a_scheduler_down_across_several_slots_fires_what_the_policy_says(
    client: JobForgeClient,
    fresh_db_url: str,
    policy: str,
    max_catch_up: int,
    expected: list[int],
) -> None:
    tenant, trigger_id = _trigger(
        client, fresh_db_url, misfire_policy=policy, max_catch_up=max_catch_up
    )
    clock = FakeClock(START + timedelta(minutes=1, seconds=10))  # 12:01:40
    assert _minutes(Scheduler(client, clock=clock).tick(), trigger_id) == [1]
    # Every scheduler is gone from 12:01:40 to 12:10:30: 12:02 to 12:09 are missed, 12:10
    # is on time. A new scheduler knows the last slot from the database only.
    clock.advance(8 * 60 + 50)
    again = Scheduler(client, clock=clock)
    assert _minutes(again.tick(), trigger_id) == expected
    assert again.tick() == []  # nothing twice
    jobs = client.list_jobs(tenant_id=tenant, limit=1000)
    keys = sorted(str(j.idempotency_key)[-6:-4] for j in jobs)  # ...T12:MM:00Z
    assert keys == sorted(f"{m:02d}" for m in [1, *expected])


def test_the_newest_missed_slots_are_caught_up_oldest_first(
    client: JobForgeClient, fresh_db_url: str
) -> None:
    tenant, _trigger_id = _trigger(client, fresh_db_url, misfire_policy="catch_up", max_catch_up=5)
    clock = FakeClock(START + timedelta(minutes=30))
    results = Scheduler(client, clock=clock).tick()
    # Of the 29 missed slots, the latest 5, then the on-time one.
    assert [r.scheduled_for.minute for r in results if r.scheduled_for] == [25, 26, 27, 28, 29, 30]
    assert all(r.fired for r in results)
    created = [j.created_at for j in client.list_jobs(tenant_id=tenant)]
    assert len(created) == 6


def test_two_schedulers_catching_up_at_once_fire_each_slot_once(
    client: JobForgeClient, fresh_db_url: str
) -> None:
    ids = [
        _trigger(client, fresh_db_url, misfire_policy="catch_up", max_catch_up=100)
        for _ in range(3)
    ]
    clock = FakeClock(START + timedelta(minutes=20))
    schedulers = [Scheduler(client, clock=clock) for _ in range(2)]
    barrier = threading.Barrier(2)
    outcomes: list[list[CronFireResult]] = []

    def run(s: Scheduler) -> None:
        barrier.wait()
        outcomes.append(s.tick())

    threads = [threading.Thread(target=run, args=(s,)) for s in schedulers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    fired = [r for batch in outcomes for r in batch if r.fired]
    assert len(fired) == 3 * 20
    for tenant, trigger_id in ids:
        jobs = client.list_jobs(tenant_id=tenant, limit=1000)
        assert len(jobs) == 20
        assert len({j.idempotency_key for j in jobs}) == 20
        assert sorted(_minutes(fired, trigger_id)) == list(range(1, 21))


def test_an_older_slot_than_the_last_fired_is_refused(
    client: JobForgeClient, fresh_db_url: str
) -> None:
    """The exactly-once guarantee outlives the purge of the fire records: the trigger row
    keeps its newest slot, and nothing at or before it fires again."""
    tenant, trigger_id = _trigger(client, fresh_db_url)
    slot = datetime(2026, 11, 29, 12, 5, tzinfo=UTC)
    assert client.fire_cron_trigger(trigger_id=trigger_id, scheduled_for=slot).fired  # type: ignore[union-attr]
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        conn.execute("delete from jobforge_private.trigger_fires")
    again = client.fire_cron_trigger(trigger_id=trigger_id, scheduled_for=slot)
    older = client.fire_cron_trigger(
        trigger_id=trigger_id, scheduled_for=slot - timedelta(minutes=1)
    )
    assert again is not None
    assert older is not None
    assert (again.fired, again.reason) == (False, "already fired for this slot")
    assert (older.fired, older.reason) == (False, "a later slot already fired")
    assert len(client.list_jobs(tenant_id=tenant)) == 1


def test_slots_of_a_time_the_trigger_was_off_are_not_missed_ones(
    client: JobForgeClient, fresh_db_url: str
) -> None:
    # The database's clock sets enabled_at: this test runs on the real one.
    now = datetime.now(UTC)
    long_ago = now - timedelta(hours=2)
    tenant, reenabled = _trigger(client, fresh_db_url, misfire_policy="catch_up", max_catch_up=50)
    control_tenant, control = _trigger(
        client, fresh_db_url, name="control", misfire_policy="catch_up", max_catch_up=50
    )
    for trigger_id in (reenabled, control):
        _backdate(fresh_db_url, trigger_id, long_ago)
    client.set_trigger_enabled(trigger_id=reenabled, tenant_id=tenant, enabled=False)
    client.set_trigger_enabled(trigger_id=reenabled, tenant_id=tenant, enabled=True)
    [row] = client.list_triggers(tenant_id=tenant)
    assert row.enabled_at is not None
    assert row.enabled_at > long_ago
    results = Scheduler(client, clock=lambda: row.enabled_at or now).tick()
    assert _minutes(results, reenabled) == []
    # The same trigger never switched off: 50 missed slots caught up (and the on-time one
    # when the clock is less than a minute past a slot).
    assert len(_minutes(results, control)) in (50, 51)
    assert client.list_jobs(tenant_id=tenant) == []
    assert len(client.list_jobs(tenant_id=control_tenant, limit=100)) in (50, 51)


def test_slots_to_fire_by_policy() -> None:
    since = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)
    now = datetime(2026, 1, 1, 0, 5, 20, tzinfo=UTC)
    grace = timedelta(minutes=1)

    def minutes(policy: MisfirePolicy, most: int = 10) -> list[int]:
        slots = slots_to_fire(
            "* * * * *", since, now, policy=policy, max_catch_up=most, grace=grace
        )
        return [s.minute for s in slots]

    assert minutes(MisfirePolicy.SKIP) == [5]
    assert minutes(MisfirePolicy.RUN_ONCE) == [4, 5]
    assert minutes(MisfirePolicy.CATCH_UP) == [1, 2, 3, 4, 5]
    assert minutes(MisfirePolicy.CATCH_UP, 2) == [3, 4, 5]
    # Nothing missed: every policy fires the on-time slot alone.
    late = datetime(2026, 1, 1, 0, 4, tzinfo=UTC)
    for policy in MisfirePolicy:
        assert slots_to_fire(
            "* * * * *", late, now, policy=policy, max_catch_up=10, grace=grace
        ) == [datetime(2026, 1, 1, 0, 5, tzinfo=UTC)]


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
