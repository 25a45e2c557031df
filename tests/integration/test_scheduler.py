"""The cron scheduler with an injected clock: no sleeping, exactly one job per slot, missed
slots as each trigger's misfire policy says; and the daily purge it runs when asked."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from jobforge_sdk import (
    CronFireResult,
    FeatureFlags,
    InvalidInputError,
    JobForgeClient,
    MisfirePolicy,
    Scheduler,
)
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


# -- misfire settings through the client ----------------------------------------------


def test_bad_misfire_settings_are_refused_before_any_io_naming_the_field(
    client: JobForgeClient, fresh_db_url: str
) -> None:
    tenant = uuid.uuid4()
    base: dict[str, object] = {
        "tenant_id": tenant,
        "name": "bad",
        "cron_expression": "* * * * *",
        "target_template_key": SCAN,
        "target_inputs": {"target": "x"},
    }
    bad: list[tuple[dict[str, object], str]] = [
        ({"misfire_policy": "later"}, "misfire_policy"),
        ({"misfire_policy": None}, "misfire_policy"),
        ({"misfire_policy": 1}, "misfire_policy"),
        ({"max_catch_up": 0}, "max_catch_up"),
        ({"max_catch_up": -1}, "max_catch_up"),
        ({"max_catch_up": 1001}, "max_catch_up"),
        ({"max_catch_up": 10**12}, "max_catch_up"),
        ({"max_catch_up": "5"}, "max_catch_up"),
        ({"max_catch_up": 2.5}, "max_catch_up"),
        ({"max_catch_up": True}, "max_catch_up"),
    ]
    for extra, field in bad:
        with pytest.raises(InvalidInputError) as info:
            client.create_cron_trigger(**{**base, **extra})  # type: ignore[arg-type]
        assert info.value.field == field, (extra, info.value)
    # An event trigger has no misfire policy: the method does not take one.
    with pytest.raises(TypeError, match="misfire_policy"):
        client.create_event_trigger(  # type: ignore[call-arg]
            tenant_id=tenant,
            name="event",
            event_type_filter="a.*",
            target_template_key=SCAN,
            misfire_policy="skip",
        )
    assert client.list_triggers(tenant_id=tenant) == []

    _, trigger_id = _trigger(client, fresh_db_url, tenant_id=tenant)
    for extra, field in [*bad[:3], *[(b, f) for b, f in bad[3:] if b["max_catch_up"] is not None]]:
        args = {"misfire_policy": "catch_up", **extra}
        with pytest.raises(InvalidInputError) as info:
            client.set_trigger_misfire_policy(trigger_id=trigger_id, tenant_id=tenant, **args)  # type: ignore[arg-type]
        assert info.value.field == field, (extra, info.value)
    [row] = client.list_triggers(tenant_id=tenant)
    assert (row.misfire_policy, row.max_catch_up) == (MisfirePolicy.SKIP, 10)
    assert [a.action.value for a in client.list_audit_logs(tenant_id=tenant)] == ["trigger_create"]


def test_set_trigger_misfire_policy_through_the_client(
    client: JobForgeClient, fresh_db_url: str
) -> None:
    tenant, trigger_id = _trigger(client, fresh_db_url)
    changed = client.set_trigger_misfire_policy(
        trigger_id=trigger_id, tenant_id=tenant, misfire_policy=MisfirePolicy.CATCH_UP
    )
    assert changed is not None
    assert (changed.misfire_policy, changed.max_catch_up) == (MisfirePolicy.CATCH_UP, 10)
    # The new policy judges the slots already missed at the next tick.
    clock = FakeClock(START + timedelta(minutes=5))
    assert _minutes(Scheduler(client, clock=clock).tick(), trigger_id) == [1, 2, 3, 4, 5]


# -- the daily purge ------------------------------------------------------------------


def _old_rows(url: str, tenant: uuid.UUID) -> None:
    """A finished job 40 days old, an event 40 days old and an audit row 400 days old."""
    with JobForgeClient.from_postgres(url, flags=FeatureFlags(events=True)) as c:
        job = c.enqueue_job(tenant_id=tenant, type="purge.daily")
        c.submit_event(tenant_id=tenant, event_type="purge.daily", source_app="external")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "update jobforge_jobs set status = 'succeeded', finished_at = now() - interval"
            " '40 days' where id = %s",
            (job.id,),
        )
        conn.execute(
            "update jobforge_events set created_at = now() - interval '40 days'"
            " where tenant_id = %s",
            (tenant,),
        )
        conn.execute(
            "insert into jobforge_audit_logs (tenant_id, action, outcome, created_at)"
            " values (%s, 'job_cancel', 'success', now() - interval '400 days')",
            (tenant,),
        )


def _old_counts(url: str) -> tuple[int, int, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "select (select count(*) from jobforge_jobs where finished_at < now() - interval"
            " '30 days'), (select count(*) from jobforge_events where created_at < now() -"
            " interval '30 days'), (select count(*) from jobforge_audit_logs where created_at"
            " < now() - interval '365 days')"
        ).fetchone()
    assert row is not None
    return (int(row[0]), int(row[1]), int(row[2]))


PURGE = {
    "purge_jobs": timedelta(days=30),
    "purge_events": timedelta(days=30),
    "purge_audit": timedelta(days=365),
}


def test_a_configured_purge_runs_once_a_day_across_schedulers(
    client: JobForgeClient, fresh_db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    tenant = uuid.uuid4()
    for _ in range(3):
        _old_rows(fresh_db_url, tenant)
    assert _old_counts(fresh_db_url) == (3, 3, 3)
    clock = FakeClock(START)
    first = Scheduler(client, clock=clock, purge_batch_size=2, scheduler_id="first", **PURGE)  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="jobforge_sdk.scheduler"):
        first.tick()
    assert _old_counts(fresh_db_url) == (0, 0, 0)
    assert not first.purging
    lines = [r.getMessage() for r in caplog.records if "daily purge" in r.getMessage()]
    assert lines[1:] == [
        "daily purge of jobs: deleted 2 (total 2), more to go",
        "daily purge of jobs: deleted 1 (total 3), done",
        "daily purge of events: deleted 2 (total 2), more to go",
        "daily purge of events: deleted 1 (total 3), done",
        "daily purge of audit: deleted 2 (total 2), more to go",
        "daily purge of audit: deleted 1 (total 3), done",
    ]
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        recorded = conn.execute(
            "select taken_by, settings from jobforge_private.daily_purges"
        ).fetchall()
    assert recorded == [
        (
            "first",
            {
                "jobs_seconds": 30 * 86400,
                "events_seconds": 30 * 86400,
                "audit_seconds": 365 * 86400,
                "batch_size": 2,
            },
        )
    ]

    # New old rows the same day: neither another scheduler nor the first one's next ticks
    # purge again.
    _old_rows(fresh_db_url, tenant)
    second = Scheduler(client, clock=clock, scheduler_id="second", **PURGE)  # type: ignore[arg-type]
    second.tick()
    clock.advance(3600)
    first.tick()
    second.tick()
    assert _old_counts(fresh_db_url) == (1, 1, 1)
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        assert conn.execute("select count(*) from jobforge_private.daily_purges").fetchone() == (1,)
        # The next day (the database's), one of them takes it again.
        conn.execute("update jobforge_private.daily_purges set day = day - 1")
    clock.advance(3600)
    second.tick()
    assert _old_counts(fresh_db_url) == (0, 0, 0)


def test_two_schedulers_ticking_at_once_purge_once(
    client: JobForgeClient, fresh_db_url: str
) -> None:
    _old_rows(fresh_db_url, uuid.uuid4())
    clock = FakeClock(START)
    schedulers = [
        Scheduler(client, clock=clock, scheduler_id=f"s{i}", **PURGE)  # type: ignore[arg-type]
        for i in range(4)
    ]
    barrier = threading.Barrier(len(schedulers))

    def run(s: Scheduler) -> None:
        barrier.wait()
        s.tick()

    threads = [threading.Thread(target=run, args=(s,)) for s in schedulers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        purges = conn.execute(
            "select target_id from jobforge_audit_logs where action = 'retention_purge'"
        ).fetchall()
    # One scheduler took the day: one batch per table, not four.
    assert sorted(p[0] for p in purges) == [
        "jobforge_audit_logs",
        "jobforge_events",
        "jobforge_jobs",
    ]
    assert _old_counts(fresh_db_url) == (0, 0, 0)


def test_a_long_purge_goes_on_over_several_ticks(client: JobForgeClient, fresh_db_url: str) -> None:
    tenant = uuid.uuid4()
    for _ in range(3):
        _old_rows(fresh_db_url, tenant)
    clock = FakeClock(START)
    scheduler = Scheduler(
        client,
        clock=clock,
        purge_events=timedelta(days=30),
        purge_batch_size=1,
        purge_batches_per_tick=2,
    )
    scheduler.tick()
    assert scheduler.purging
    assert _old_counts(fresh_db_url)[1] == 1
    scheduler.tick()
    assert not scheduler.purging
    assert _old_counts(fresh_db_url) == (3, 0, 3)  # only what was configured


def test_without_a_purge_configured_the_scheduler_never_purges(
    client: JobForgeClient, fresh_db_url: str
) -> None:
    _old_rows(fresh_db_url, uuid.uuid4())
    clock = FakeClock(START)
    scheduler = Scheduler(client, clock=clock)
    for _ in range(3):
        scheduler.tick()
        clock.advance(86400)
    assert _old_counts(fresh_db_url) == (1, 1, 1)
    with psycopg.connect(fresh_db_url, autocommit=True) as conn:
        assert conn.execute("select count(*) from jobforge_private.daily_purges").fetchone() == (0,)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"purge_events": timedelta(hours=36)}, "purge_events: must be whole days"),
        ({"purge_audit": timedelta(hours=12)}, "purge_audit: must be whole days"),
        ({"purge_jobs": timedelta(0)}, "purge_jobs: must be positive"),
        ({"purge_manifests": timedelta(days=36501)}, "purge_manifests: must be positive"),
        ({"purge_jobs": 30}, "purge_jobs: must be a timedelta"),
        ({"purge_batch_size": 0}, "purge_batch_size: must be between 1 and 10000"),
        ({"purge_batch_size": True}, "purge_batch_size: must be between 1 and 10000"),
        ({"purge_batches_per_tick": 0}, "purge_batches_per_tick: must be at least 1"),
        ({"misfire_grace": timedelta(0)}, "misfire_grace: must be a positive timedelta"),
    ],
)
def test_bad_scheduler_options_are_refused_naming_them(
    client: JobForgeClient, kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Scheduler(client, **kwargs)
