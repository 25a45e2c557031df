"""The cron scheduler: fires each enabled cron trigger once per due slot, and, when asked
to, runs the retention purge once a day.

Slots are computed from the trigger's cron expression (UTC) and go through
``jobforge_fire_cron_trigger``, which enqueues at most one job per trigger and slot and
refuses a slot older than the newest one it recorded. Any number of schedulers may
therefore run at once.

A slot is *on time* while less than ``misfire_grace`` (default one minute) has passed
since it, and fired whatever the trigger's policy. A slot older than that, after the
trigger's last recorded slot (or, if none since, after the trigger was switched on), was
*missed*: no scheduler fired it in time. The trigger's ``misfire_policy`` decides:
``skip`` fires none of them, ``run_once`` the latest one, ``catch_up`` each of the latest
``max_catch_up`` of them, oldest first (docs/operations.md, "Missed cron slots").

The daily purge (``purge_jobs=``, ``purge_events=``, ...) is taken through
``jobforge_claim_daily_purge``, whose row per UTC day lets exactly one scheduler of the
database run it that day. The scheduler that took it runs it in batches, at most
``purge_batches_per_tick`` calls per tick so the worker loop that ticks it is never held
for long, and logs one line per batch.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import croniter

from jobforge_sdk._client.sync import JobForgeClient
from jobforge_sdk.errors import JobForgeError, TransportError
from jobforge_sdk.models.retention import MAX_PURGE_BATCH, MAX_RETENTION, PurgeResult
from jobforge_sdk.models.triggers import CronFireResult, MisfirePolicy, Trigger

__all__ = ["Scheduler", "due_slots", "slots_to_fire"]

logger = logging.getLogger("jobforge_sdk.scheduler")

Clock = Callable[[], datetime]
PurgeStep = tuple[str, Callable[[], PurgeResult | None]]

# However small the interval between schedulers' ticks, a slot is never looked for
# further back than this many slots of the window (a catch_up trigger's bound is lower).
_ON_TIME_LIMIT = 1000


def _utc_now() -> datetime:
    return datetime.now(UTC)


def due_slots(expression: str, after: datetime, until: datetime, *, limit: int) -> list[datetime]:
    """The last ``limit`` slots of ``expression`` in ``(after, until]``, oldest first.

    Walks back from ``until``, so the cost is ``limit`` steps however long ago ``after``
    is (a scheduler back from a month away does not step through a month of minutes)."""
    if limit < 1 or until <= after:
        return []
    slots: list[datetime] = []
    # get_prev is strictly before its start: start just after ``until`` and drop what
    # lies beyond it.
    it = croniter(expression, until.astimezone(UTC) + timedelta(seconds=1))
    while len(slots) < limit:
        slot = it.get_prev(datetime)
        if slot > until:
            continue
        if slot <= after:
            break
        slots.append(slot)
    slots.reverse()
    return slots


def slots_to_fire(
    expression: str,
    since: datetime,
    now: datetime,
    *,
    policy: MisfirePolicy,
    max_catch_up: int,
    grace: timedelta,
) -> list[datetime]:
    """The slots of ``expression`` after ``since`` to fire at ``now``, oldest first: the
    missed ones the policy keeps (those ``grace`` or more old), then the on-time ones."""
    edge = max(since, now - grace)
    on_time = due_slots(expression, edge, now, limit=_ON_TIME_LIMIT)
    if policy is MisfirePolicy.SKIP:
        return on_time
    keep = 1 if policy is MisfirePolicy.RUN_ONCE else max_catch_up
    return due_slots(expression, since, edge, limit=keep) + on_time


def _check_age(name: str, age: timedelta | None, *, whole_days: bool) -> None:
    if age is None:
        return
    if not isinstance(age, timedelta):
        raise ValueError(f"{name}: must be a timedelta")
    if age <= timedelta(0) or age > MAX_RETENTION:
        raise ValueError(f"{name}: must be positive and at most 36500 days")
    if whole_days and age % timedelta(days=1):
        raise ValueError(f"{name}: must be whole days")


class Scheduler:
    def __init__(
        self,
        client: JobForgeClient,
        *,
        clock: Clock = _utc_now,
        interval: float = 5.0,
        misfire_grace: timedelta = timedelta(minutes=1),
        purge_jobs: timedelta | None = None,
        purge_manifests: timedelta | None = None,
        purge_events: timedelta | None = None,
        purge_audit: timedelta | None = None,
        purge_batch_size: int = MAX_PURGE_BATCH,
        purge_batches_per_tick: int = 20,
        purge_check_interval: timedelta = timedelta(minutes=10),
        scheduler_id: str | None = None,
    ) -> None:
        if not isinstance(misfire_grace, timedelta) or misfire_grace <= timedelta(0):
            raise ValueError("misfire_grace: must be a positive timedelta")
        _check_age("purge_jobs", purge_jobs, whole_days=False)
        _check_age("purge_manifests", purge_manifests, whole_days=False)
        # Their RPCs take whole days.
        _check_age("purge_events", purge_events, whole_days=True)
        _check_age("purge_audit", purge_audit, whole_days=True)
        if (
            isinstance(purge_batch_size, bool)
            or not isinstance(purge_batch_size, int)
            or not 1 <= purge_batch_size <= MAX_PURGE_BATCH
        ):
            raise ValueError(f"purge_batch_size: must be between 1 and {MAX_PURGE_BATCH}")
        if isinstance(purge_batches_per_tick, bool) or not isinstance(purge_batches_per_tick, int):
            raise ValueError("purge_batches_per_tick: must be a whole number")
        if purge_batches_per_tick < 1:
            raise ValueError("purge_batches_per_tick: must be at least 1")
        self.client = client
        self.clock = clock
        self.interval = interval
        self.misfire_grace = misfire_grace
        self.purge_jobs = purge_jobs
        self.purge_manifests = purge_manifests
        self.purge_events = purge_events
        self.purge_audit = purge_audit
        self.purge_batch_size = purge_batch_size
        self.purge_batches_per_tick = purge_batches_per_tick
        self.purge_check_interval = purge_check_interval
        self.scheduler_id = scheduler_id or f"{socket.gethostname()}:{os.getpid()}"
        self._fired: dict[Any, datetime] = {}
        self._purge_checked_at: datetime | None = None
        # The purge this scheduler took and has not finished: the tables left, in order,
        # with the running total of the one in progress.
        self._purge_steps: list[PurgeStep] = []
        self._purge_total = 0

    @property
    def purge_configured(self) -> bool:
        return any(
            age is not None
            for age in (self.purge_jobs, self.purge_manifests, self.purge_events, self.purge_audit)
        )

    @property
    def purging(self) -> bool:
        """Whether a purge this scheduler took still has batches to run."""
        return bool(self._purge_steps)

    def tick(self) -> list[CronFireResult]:
        """Fire every due slot of every enabled cron trigger; returns what each call did.
        Then, when a purge is configured, take the day's purge or go on with it.

        The triggers are gated by the TRIGGERS flag: with it off none is fired. Raises
        ``TransportError`` when the database cannot be reached; nothing is lost, since a
        slot not fired is fired by the next tick while it is on time (and after that as
        the trigger's misfire policy says). The worker's loop waits for the database and
        ticks again.
        """
        results = self._fire_triggers()
        if self.purge_configured:
            self._purge()
        return results

    # -- cron -------------------------------------------------------------------------

    def _since(self, trigger: Trigger) -> datetime:
        """After what the trigger's slots are due: its newest recorded slot, or the time it
        was switched on when none is newer (a slot of a time it was off was not wanted)."""
        marks = [trigger.enabled_at or trigger.created_at]
        if trigger.last_scheduled_for is not None:
            marks.append(trigger.last_scheduled_for)
        if trigger.id in self._fired:
            marks.append(self._fired[trigger.id])
        return max(marks)

    def _fire_triggers(self) -> list[CronFireResult]:
        # An internal operation of the client: [] without I/O when TRIGGERS is off.
        triggers = self.client._list_cron_triggers()
        now = self.clock()
        results: list[CronFireResult] = []
        for trigger in triggers:
            slots = slots_to_fire(
                trigger.cron_expression or "",
                self._since(trigger),
                now,
                policy=trigger.misfire_policy or MisfirePolicy.SKIP,
                max_catch_up=trigger.max_catch_up or 1,
                grace=self.misfire_grace,
            )
            for slot in slots:
                try:
                    outcome = self.client.fire_cron_trigger(
                        trigger_id=trigger.id, scheduled_for=slot
                    )
                except TransportError:
                    # The database is gone: the caller waits for it (one log line, not
                    # one per trigger and slot); unfired slots are fired on its return.
                    raise
                except JobForgeError as exc:
                    logger.warning("firing trigger %s for %s failed: %s", trigger.id, slot, exc)
                    continue
                self._fired[trigger.id] = slot
                if outcome is not None:
                    results.append(outcome)
                    logger.info(
                        "cron slot %s of trigger %s: %s",
                        slot.isoformat(),
                        trigger.id,
                        "fired" if outcome.fired else outcome.reason,
                        extra={"trigger_id": str(trigger.id), "tenant_id": str(trigger.tenant_id)},
                    )
        return results

    # -- the daily purge --------------------------------------------------------------

    def _settings(self) -> dict[str, Any]:
        ages = {
            "jobs": self.purge_jobs,
            "manifests": self.purge_manifests,
            "events": self.purge_events,
            "audit": self.purge_audit,
        }
        settings: dict[str, Any] = {
            f"{name}_seconds": int(age.total_seconds())
            for name, age in ages.items()
            if age is not None
        }
        settings["batch_size"] = self.purge_batch_size
        return settings

    def _steps(self) -> list[PurgeStep]:
        # Imported here: the CLI's purge module is only needed when a purge is configured.
        from jobforge_sdk.tooling.purge import purge_steps

        # Configuring a purge is an administrator's explicit choice, as ``jobforge purge``
        # is: the purges run on the same connections whatever the client's flags.
        flags = self.client.flags.model_copy(
            update={"events": True, "audit_logging": True, "manifests": True}
        )
        purger = JobForgeClient(self.client.transport, flags=flags)
        return purge_steps(
            purger,
            jobs=self.purge_jobs,
            manifests=self.purge_manifests,
            events=self.purge_events,
            audit=self.purge_audit,
            batch_size=self.purge_batch_size,
        )

    def _purge(self) -> None:
        if not self._purge_steps:
            now = self.clock()
            if (
                self._purge_checked_at is not None
                and now - self._purge_checked_at < self.purge_check_interval
            ):
                return
            self._purge_checked_at = now
            claim = self.client._claim_daily_purge(
                taken_by=self.scheduler_id, settings=self._settings()
            )
            if not claim.taken:
                return
            logger.info("daily purge of %s: taken by %s", claim.day, self.scheduler_id)
            self._purge_steps = self._steps()
            self._purge_total = 0
        budget = self.purge_batches_per_tick
        while self._purge_steps and budget > 0:
            name, call = self._purge_steps[0]
            budget -= 1
            try:
                result = call()
            except TransportError:
                raise  # the database is gone: the next tick goes on where this one stopped
            except JobForgeError as exc:
                logger.warning("daily purge of %s failed: %s", name, exc)
                self._next_table()
                continue
            if result is None:
                logger.warning(
                    "daily purge of %s skipped: its feature flag is off for this client", name
                )
                self._next_table()
                continue
            self._purge_total += result.deleted
            logger.info(
                "daily purge of %s: deleted %d (total %d), %s",
                name,
                result.deleted,
                self._purge_total,
                "more to go" if result.more else "done",
            )
            if not result.more:
                self._next_table()

    def _next_table(self) -> None:
        self._purge_steps.pop(0)
        self._purge_total = 0
