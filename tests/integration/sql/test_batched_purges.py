"""``jobforge_purge_expired_events`` and ``jobforge_purge_audit_logs`` in batches, at the
SQL level: the bookkeeping the events purge clears with the events (trigger-fire records,
used token ids) goes in batches too, and ``more`` stays true while any of it is left."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from tests.integration.sql.helpers import ActAs, count, make_trigger, sql_error

CRON = {"p_trigger_type": "cron", "p_event_type_filter": None, "p_cron_expression": "0 * * * *"}


def test_the_events_purge_clears_fire_records_and_token_uses_in_batches(
    act_as: ActAs, fresh_db_url: str
) -> None:
    sr = act_as("service_role", url=fresh_db_url)
    trigger = make_trigger(sr, uuid.uuid4(), **CRON)
    with psycopg.connect(fresh_db_url, autocommit=True) as admin:
        admin.execute(
            "insert into jobforge_private.trigger_fires (trigger_id, fire_key, fired_at)"
            " select %s, 'cron:old-' || n, now() - interval '40 days'"
            " from generate_series(1, 3) as n",
            (trigger["id"],),
        )
        admin.execute(
            "insert into jobforge_private.trigger_fires (trigger_id, fire_key, fired_at)"
            " values (%s, 'cron:young', now() - interval '2 days')",
            (trigger["id"],),
        )
        admin.execute(
            "insert into jobforge_private.policy_token_uses (jti, expires_at)"
            " select 'old-' || n, now() - interval '1 hour' from generate_series(1, 3) as n"
            " union all select 'live', now() + interval '1 hour'"
        )

        first = sr.call("jobforge_purge_expired_events", p_retention_days=30, p_batch_size=2)
        assert first == {"deleted": 0, "more": True}  # no event, but fire records left
        assert count(admin, "select count(*) from jobforge_private.trigger_fires") == 2
        assert count(admin, "select count(*) from jobforge_private.policy_token_uses") == 2
        second = sr.call("jobforge_purge_expired_events", p_retention_days=30, p_batch_size=2)
        assert second == {"deleted": 0, "more": False}
        fires = admin.execute("select fire_key from jobforge_private.trigger_fires").fetchall()
        uses = admin.execute("select jti from jobforge_private.policy_token_uses").fetchall()
        assert fires == [("cron:young",)]
        assert uses == [("live",)]


def test_bad_batch_sizes_and_retentions_are_refused_and_delete_nothing(
    act_as: ActAs, fresh_db_url: str
) -> None:
    sr = act_as("service_role", url=fresh_db_url)
    with psycopg.connect(fresh_db_url, autocommit=True) as admin:
        admin.execute(
            "insert into jobforge_audit_logs (action, outcome, created_at)"
            " values ('job_cancel', 'success', now() - interval '400 days')"
        )

        def state(conn: Any) -> tuple[int, int]:
            return (
                count(conn, "select count(*) from jobforge_audit_logs"),
                count(conn, "select count(*) from jobforge_events"),
            )

        before = state(admin)
        bad: list[tuple[dict[str, Any], str]] = [
            ({"p_retention_days": 1, "p_batch_size": 0}, "batch_size: must be between"),
            ({"p_retention_days": 1, "p_batch_size": 10001}, "batch_size: must be between"),
            ({"p_retention_days": 1, "p_batch_size": None}, "batch_size: must be between"),
            ({"p_retention_days": 0}, "retention_days: must be at least 1"),
            ({"p_retention_days": None}, "retention_days: must be at least 1"),
            ({"p_retention_days": 36501}, "retention_days: must be at most 36500"),
            ({"p_retention_days": 2147483647}, "retention_days: must be at most 36500"),
        ]
        for fn in ("jobforge_purge_expired_events", "jobforge_purge_audit_logs"):
            for args, message in bad:
                with sql_error("PT400", message):
                    sr.call(fn, **args)
        assert state(admin) == before
