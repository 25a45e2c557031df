"""The cron scheduler: fires each enabled cron trigger once per due slot.

Slots are computed from the trigger's cron expression (UTC) and the last slot the
database recorded as fired, and each slot goes through ``jobforge_fire_cron_trigger``,
which enqueues at most one job per trigger and slot. Any number of schedulers may
therefore run at once, and a scheduler that was down catches up, firing at most
``max_catchup`` missed slots per trigger (by default only the latest one).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from croniter import croniter

from jobforge_sdk._client.sync import JobForgeClient
from jobforge_sdk.errors import JobForgeError, TransportError
from jobforge_sdk.models.triggers import CronFireResult

__all__ = ["Scheduler", "due_slots"]

logger = logging.getLogger("jobforge_sdk.scheduler")

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def due_slots(expression: str, after: datetime, until: datetime, *, limit: int) -> list[datetime]:
    """The last ``limit`` slots of ``expression`` in ``(after, until]``, oldest first."""
    if limit < 1:
        return []
    slots: list[datetime] = []
    it = croniter(expression, after.astimezone(UTC))
    while True:
        slot = it.get_next(datetime)
        if slot > until:
            break
        slots.append(slot)
        if len(slots) > limit:
            slots.pop(0)
    return slots


class Scheduler:
    def __init__(
        self,
        client: JobForgeClient,
        *,
        clock: Clock = _utc_now,
        max_catchup: int = 1,
        interval: float = 5.0,
        lookback: timedelta = timedelta(days=1),
    ) -> None:
        if max_catchup < 1:
            raise ValueError("max_catchup: must be at least 1")
        self.client = client
        self.clock = clock
        self.max_catchup = max_catchup
        self.interval = interval
        # A trigger never fired is due from its creation; a long-dead one only this far back.
        self.lookback = lookback
        self._fired: dict[Any, datetime] = {}

    def tick(self) -> list[CronFireResult]:
        """Fire every due slot of every enabled cron trigger; returns what each call did.

        Gated by the TRIGGERS flag: with it off this does nothing and returns ``[]``.
        Raises ``TransportError`` when the database cannot be reached; nothing is lost,
        since a slot not fired is fired by the next tick that reaches it (within
        ``max_catchup``). The worker's loop waits for the database and ticks again.
        """
        # An internal operation of the client: [] without I/O when TRIGGERS is off.
        triggers = self.client._list_cron_triggers()
        now = self.clock()
        results: list[CronFireResult] = []
        for trigger in triggers:
            start = max(
                trigger.last_scheduled_for or trigger.created_at,
                self._fired.get(trigger.id, trigger.created_at),
                now - self.lookback,
            )
            for slot in due_slots(
                trigger.cron_expression or "", start, now, limit=self.max_catchup
            ):
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
