"""``supabase/schema/30_events.sql``: submitting (one or a batch), listing and redacting events.

Every RPC is called directly, as each role, exactly as PostgREST would call it (see
``tests/support/roles.py``). Firing triggers from events is ``test_triggers.py``.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.integration.sql.helpers import (
    ActAs,
    audit_rows,
    count,
    sql_error,
    submit,
)
from tests.support.roles import tenant_claims


def test_submit_events_batch(act_as: ActAs, admin_conn: Any) -> None:
    tenant = uuid.uuid4()
    project = uuid.uuid4()
    sr = act_as("service_role")
    first = submit(sr, tenant, p_trace_id="dup", p_occurred_at="2030-01-01T00:00:00Z")
    batch = sr.call(
        "jobforge_submit_events",
        p_tenant_id=tenant,
        p_events=[
            {
                "event_type": "support.ticket_opened",
                "source_app": "aias",
                "payload": {"n": 0},
                "project_id": str(project),
                "subject_type": "ticket",
                "subject_id": "T-1",
                "source_module": "support",
                "actor_id": "u1",
                "event_version": "2.0",
            },
            # the identity of an event stored before: its stored row comes back
            {
                "event_type": "infrastructure.disk_full",
                "source_app": "settler",
                "trace_id": "dup",
                "occurred_at": "2030-01-01T00:00:00Z",
                "payload": {"changed": True},
            },
            {
                "event_type": "support.ticket_closed",
                "source_app": "aias",
                "contains_pii": True,
                "redaction_hints": {"redact_fields": ["email"]},
                "payload": {"email": "x@y"},
            },
            # repeats element 3 of this batch
            {
                "event_type": "a.b",
                "source_app": "external",
                "trace_id": "t9",
                "occurred_at": "2030-05-05T05:05:05+02:00",
            },
            {
                "event_type": "a.b",
                "source_app": "external",
                "trace_id": "t9",
                "occurred_at": "2030-05-05T03:05:05Z",
            },
        ],
    )
    assert len(batch) == 5
    assert batch[0]["project_id"] == str(project)
    assert batch[0]["event_version"] == "2.0"
    assert batch[0]["payload"] == {"n": 0}
    assert batch[0]["source_module"] == "support"
    assert batch[1] == first
    assert batch[2]["contains_pii"] is True
    assert batch[2]["redaction_hints"] == {"redact_fields": ["email"]}
    assert batch[3] == batch[4]
    assert (
        count(admin_conn, "select count(*) from jobforge_events where tenant_id = %s", tenant) == 4
    )

    ingests = [r for r in audit_rows(admin_conn, tenant) if r["action"] == "event_ingest"]
    assert len(ingests) == 2  # the single submit, then one for the whole batch
    details = ingests[1]["details"]
    assert details["count"] == 5
    assert details["inserted"] == 3
    assert details["event_ids"] == [batch[0]["id"], batch[2]["id"], batch[3]["id"]]
    assert "payload" not in json.dumps(details)

    # Submitting the same batch again inserts nothing and audits nothing.
    audits = len(audit_rows(admin_conn, tenant))
    again = sr.call(
        "jobforge_submit_events",
        p_tenant_id=tenant,
        p_events=[
            {
                "event_type": "a.b",
                "source_app": "external",
                "trace_id": "t9",
                "occurred_at": "2030-05-05T03:05:05Z",
            }
        ],
    )
    assert again == [batch[3]]
    assert len(audit_rows(admin_conn, tenant)) == audits


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ([], "events: must be a non-empty JSON array"),
        ({"event_type": "a.b"}, "events: must be a non-empty JSON array"),
        (
            [{"event_type": "a.b", "source_app": "keys"}] * 1001,
            "events: at most 1000 events per batch",
        ),
        ([{"event_type": "a.b", "source_app": "keys"}, 5], "events[1]: must be a JSON object"),
        (
            [{"event_type": "a.b", "source_app": "keys", "zeta": 1, "alpha": 2}],
            "events[0].alpha: is not a known field (unknown: alpha, zeta)",
        ),
        ([{"source_app": "keys"}], "events[0].event_type: is required"),
        (
            [
                {"event_type": "a.b", "source_app": "keys"},
                {"event_type": "A.B", "source_app": "keys"},
            ],
            "events[1].event_type: must be dotted lowercase words",
        ),
        ([{"event_type": "a.b", "source_app": "mine"}], "events[0].source_app: must be one of"),
        (
            [{"event_type": "a.b", "source_app": "keys", "source_module": "hr"}],
            "events[0].source_module: must be one of",
        ),
        (
            [{"event_type": "a.b", "source_app": "keys", "payload": [1]}],
            "events[0].payload: must be a JSON object",
        ),
        (
            [{"event_type": "a.b", "source_app": "keys", "payload": {"x": "y" * 262144}}],
            "events[0].payload: must be at most 256 KiB",
        ),
        (
            [{"event_type": "a.b", "source_app": "keys", "project_id": "not-a-uuid"}],
            "events[0].project_id: must be a UUID",
        ),
        (
            [{"event_type": "a.b", "source_app": "keys", "trace_id": ""}],
            "events[0].trace_id: must not be empty",
        ),
        (
            [{"event_type": "a.b", "source_app": "keys", "contains_pii": "yes"}],
            "events[0].contains_pii: must be a boolean",
        ),
        (
            [{"event_type": "a.b", "source_app": "keys", "idempotency_key": 7}],
            "events[0].idempotency_key: must be a string",
        ),
        (
            [
                {"event_type": "a.b", "source_app": "keys", "idempotency_key": "ok"},
                {"event_type": "a.b", "source_app": "keys", "idempotency_key": ""},
            ],
            "events[1].idempotency_key: must not be empty",
        ),
        (
            [{"event_type": "a.b", "source_app": "keys", "idempotency_key": "k" * 201}],
            "events[0].idempotency_key: must be at most 200 characters",
        ),
        (
            [{"event_type": "a.b", "source_app": "keys", "event_id": "e-1"}],
            "events[0].event_id: is not a known field (unknown: event_id)",
        ),
        (
            [
                {
                    "event_type": "a.b",
                    "source_app": "keys",
                    "redaction_hints": {"redact_fields": "email"},
                }
            ],
            "events[0].redaction_hints: redact_fields must be an array",
        ),
        (
            [
                {"event_type": "a.b", "source_app": "keys"},
                {"event_type": "a.b", "source_app": "keys", "occurred_at": "yesterday-ish"},
            ],
            "events[1].occurred_at: must be an ISO 8601 timestamp",
        ),
    ],
)
def test_submit_events_bad_input_names_the_element(
    act_as: ActAs, admin_conn: Any, events: Any, message: str
) -> None:
    tenant = uuid.uuid4()
    with sql_error("PT400", message):
        act_as("service_role").call("jobforge_submit_events", p_tenant_id=tenant, p_events=events)
    assert (
        count(admin_conn, "select count(*) from jobforge_events where tenant_id = %s", tenant) == 0
    )
    assert audit_rows(admin_conn, tenant) == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"p_source_app": "myapp"},
            "source_app: must be one of settler, aias, keys, readylayer, jobforge, external",
        ),
        ({"p_source_app": None}, "source_app: is required"),
        ({"p_event_type": "Disk Full"}, "event_type: must be dotted lowercase words"),
        ({"p_event_type": "infrastructure"}, "event_type: must be dotted lowercase words"),
        ({"p_event_type": "a." + "b" * 300}, "event_type: must be at most 255 characters"),
        ({"p_payload": {"blob": "x" * 262144}}, "payload: must be at most 256 KiB"),
        ({"p_payload": ["a"]}, "payload: must be a JSON object"),
        ({"p_source_module": "hr"}, "source_module: must be one of"),
        ({"p_trace_id": "t" * 256}, "trace_id: must be at most 255 characters"),
        ({"p_redaction_hints": ["email"]}, "redaction_hints: must be a JSON object"),
        (
            {"p_redaction_hints": {"redact_fields": ["ok", 3]}},
            "redaction_hints: redact_fields must be an array",
        ),
        ({"p_event_version": ""}, "event_version: must not be empty"),
        ({"p_idempotency_key": ""}, "idempotency_key: must not be empty"),
        ({"p_idempotency_key": "k" * 201}, "idempotency_key: must be at most 200 characters"),
    ],
)
def test_submit_event_bad_input_writes_nothing(
    act_as: ActAs, admin_conn: Any, overrides: dict[str, Any], message: str
) -> None:
    tenant = uuid.uuid4()
    with sql_error("PT400", message):
        submit(act_as("service_role"), tenant, **overrides)
    assert (
        count(admin_conn, "select count(*) from jobforge_events where tenant_id = %s", tenant) == 0
    )
    assert audit_rows(admin_conn, tenant) == []


def test_an_idempotency_key_alone_makes_a_retry_the_same_event(
    act_as: ActAs, admin_conn: Any
) -> None:
    tenant = uuid.uuid4()
    sr = act_as("service_role")
    user = act_as("authenticated", tenant_claims(tenant))
    key = "k" * 200  # the longest key allowed
    # No trace_id, no occurred_at: the server fills both, differently on each call.
    first = submit(user, tenant, p_idempotency_key=key, p_payload={"n": 1})
    assert first["idempotency_key"] == key
    audits = len(audit_rows(admin_conn, tenant))
    again = submit(
        user,
        tenant,
        p_idempotency_key=key,
        p_payload={"n": 2},
        p_event_type="infrastructure.cpu_high",
        p_occurred_at="2031-01-01T00:00:00Z",
    )
    assert again == first  # the stored row, as first stored
    assert len(audit_rows(admin_conn, tenant)) == audits  # no audit row for a repeat

    # Per tenant: another tenant's key of the same value is another event.
    other = uuid.uuid4()
    assert submit(sr, other, p_idempotency_key=key)["id"] != first["id"]

    # The batch: a stored key returns the stored row, a key repeated inside the batch
    # gives one row, and elements without a key are new events.
    batch = sr.call(
        "jobforge_submit_events",
        p_tenant_id=tenant,
        p_events=[
            {"event_type": "a.b", "source_app": "keys", "idempotency_key": key},
            {
                "event_type": "a.b",
                "source_app": "keys",
                "idempotency_key": "b-1",
                "payload": {"n": 1},
            },
            {
                "event_type": "a.c",
                "source_app": "jobforge",
                "idempotency_key": "b-1",
                "payload": {"n": 2},
            },
            {"event_type": "a.b", "source_app": "keys"},
            {"event_type": "a.b", "source_app": "keys"},
        ],
    )
    assert batch[0] == first
    assert batch[1] == batch[2]
    assert batch[1]["payload"] == {"n": 1}
    assert batch[1]["event_type"] == "a.b"
    assert batch[3]["id"] != batch[4]["id"]
    assert len({row["id"] for row in batch}) == 4
    assert (
        count(admin_conn, "select count(*) from jobforge_events where tenant_id = %s", tenant) == 4
    )
    ingests = [r for r in audit_rows(admin_conn, tenant) if r["action"] == "event_ingest"]
    assert ingests[-1]["details"]["inserted"] == 3

    # The whole batch resent without trace_id or occurred_at: nothing new, nothing audited.
    audits = len(audit_rows(admin_conn, tenant))
    resent = sr.call(
        "jobforge_submit_events",
        p_tenant_id=tenant,
        p_events=[
            {"event_type": "a.b", "source_app": "keys", "idempotency_key": "b-1"},
            {"event_type": "a.b", "source_app": "keys", "idempotency_key": key},
        ],
    )
    assert resent == [batch[1], first]
    assert len(audit_rows(admin_conn, tenant)) == audits
    # A single submit finds a key that a batch stored.
    assert submit(sr, tenant, p_idempotency_key="b-1") == batch[1]


def test_trace_id_and_occurred_at_still_dedupe_and_the_key_wins(
    act_as: ActAs, admin_conn: Any
) -> None:
    tenant = uuid.uuid4()
    sr = act_as("service_role")
    at = "2030-06-01T00:00:00Z"
    plain = submit(sr, tenant, p_trace_id="tr-1", p_occurred_at=at)
    keyed = submit(sr, tenant, p_trace_id="tr-2", p_occurred_at=at, p_idempotency_key="key-2")
    # Same identity, no key: the identity's row. Same identity, a new key: still the
    # identity's row (either identity makes two submissions the same event).
    assert submit(sr, tenant, p_trace_id="tr-1", p_occurred_at=at) == plain
    assert submit(sr, tenant, p_trace_id="tr-1", p_occurred_at=at, p_idempotency_key="new") == plain
    # The key names one stored event and the identity another: the key's row.
    assert (
        submit(sr, tenant, p_trace_id="tr-1", p_occurred_at=at, p_idempotency_key="key-2") == keyed
    )
    batch = sr.call(
        "jobforge_submit_events",
        p_tenant_id=tenant,
        p_events=[
            {
                "event_type": "infrastructure.disk_full",
                "source_app": "settler",
                "trace_id": "tr-1",
                "occurred_at": at,
                "idempotency_key": "key-2",
            },
            {
                "event_type": "infrastructure.disk_full",
                "source_app": "settler",
                "trace_id": "tr-1",
                "occurred_at": at,
            },
        ],
    )
    assert batch == [keyed, plain]
    assert (
        count(admin_conn, "select count(*) from jobforge_events where tenant_id = %s", tenant) == 2
    )


def test_submit_events_can_answer_ids_only(act_as: ActAs, admin_conn: Any) -> None:
    """p_returning => 'ids': the same events stored, the same duplicates found, only the
    ids sent back (in input order; a duplicate's is the stored event's)."""
    tenant = uuid.uuid4()
    sr = act_as("service_role")
    stored = submit(sr, tenant, p_idempotency_key="ids-1")
    events = [
        {"event_type": "a.b", "source_app": "keys", "idempotency_key": "ids-1"},
        {"event_type": "a.b", "source_app": "keys", "idempotency_key": "ids-2"},
        {"event_type": "a.c", "source_app": "keys", "idempotency_key": "ids-2"},
        {"event_type": "a.b", "source_app": "keys"},
    ]
    ids = sr.call("jobforge_submit_events", p_tenant_id=tenant, p_events=events, p_returning="ids")
    assert len(ids) == 4
    assert ids[0] == stored["id"]
    assert ids[1] == ids[2] != ids[3]
    rows = admin_conn.execute(
        "select id::text, idempotency_key from jobforge_events where tenant_id = %s", (tenant,)
    ).fetchall()
    assert sorted(rows, key=lambda r: str(r[1])) == sorted(
        [(stored["id"], "ids-1"), (ids[1], "ids-2"), (ids[3], None)], key=lambda r: str(r[1])
    )
    # One audit row for the batch, naming every event it stored.
    batch_audit = audit_rows(admin_conn, tenant)[-1]
    assert batch_audit["target_type"] == "event_batch"
    assert batch_audit["details"]["event_ids"] == [ids[1], ids[3]]
    # Resent: every id found again, nothing new written or audited.
    audits = len(audit_rows(admin_conn, tenant))
    again = sr.call(
        "jobforge_submit_events", p_tenant_id=tenant, p_events=events[:3], p_returning="ids"
    )
    assert again == ids[:3]
    assert len(audit_rows(admin_conn, tenant)) == audits
    # The rows answer (the default) names the same events.
    assert [
        r["id"] for r in sr.call("jobforge_submit_events", p_tenant_id=tenant, p_events=events[:3])
    ] == ids[:3]


@pytest.mark.parametrize("returning", ["row", "", None])
def test_submit_events_refuses_an_unknown_answer_shape(
    act_as: ActAs, admin_conn: Any, returning: str | None
) -> None:
    tenant = uuid.uuid4()
    with sql_error("PT400", "returning: must be rows or ids"):
        act_as("service_role").call(
            "jobforge_submit_events",
            p_tenant_id=tenant,
            p_events=[{"event_type": "a.b", "source_app": "keys"}],
            p_returning=returning,
        )
    assert (
        count(admin_conn, "select count(*) from jobforge_events where tenant_id = %s", tenant) == 0
    )


def test_authenticated_reads_the_key_column(act_as: ActAs) -> None:
    tenant = uuid.uuid4()
    user = act_as("authenticated", tenant_claims(tenant))
    submit(user, tenant, p_idempotency_key="visible-key")
    assert user.query("select idempotency_key from jobforge_events") == [("visible-key",)]


def test_non_uuid_ids_are_refused_before_anything_runs(act_as: ActAs, admin_conn: Any) -> None:
    before = count(admin_conn, "select count(*) from jobforge_events")
    user = act_as("service_role")
    # A uuid parameter: PostgreSQL refuses the text before the function runs.
    with sql_error("22P02"):
        user.call(
            "jobforge_submit_event",
            p_tenant_id="not-a-uuid",
            p_event_type="a.b",
            p_source_app="keys",
        )
    with sql_error("22P02"):
        user.call("jobforge_list_events", p_tenant_id=uuid.uuid4(), p_project_id="123")
    assert count(admin_conn, "select count(*) from jobforge_events") == before


def test_list_events_filters_order_and_paging(act_as: ActAs) -> None:
    tenant = uuid.uuid4()
    project = uuid.uuid4()
    user = act_as("authenticated", tenant_claims(tenant))
    base = datetime(2030, 3, 1, tzinfo=UTC)
    made = [
        submit(
            user,
            tenant,
            p_event_type="infrastructure.disk_full" if i % 2 else "billing.invoice_paid",
            p_source_app="settler" if i < 3 else "keys",
            p_occurred_at=base + timedelta(minutes=i),
            p_project_id=project if i == 4 else None,
            p_subject_type="host",
            p_subject_id=f"h{i}",
            p_trace_id=f"tr{i}",
            p_source_module="ops" if i == 5 else None,
        )
        for i in range(6)
    ]

    def ids(rows: list[dict[str, Any]]) -> list[int]:
        return [int(r["subject_id"][1:]) for r in rows]

    assert ids(user.call("jobforge_list_events", p_tenant_id=tenant)) == [5, 4, 3, 2, 1, 0]
    assert ids(user.call("jobforge_list_events", p_tenant_id=tenant, p_project_id=project)) == [4]
    f = {"event_type": "infrastructure.disk_full"}
    assert ids(user.call("jobforge_list_events", p_tenant_id=tenant, p_filters=f)) == [5, 3, 1]
    assert ids(
        user.call("jobforge_list_events", p_tenant_id=tenant, p_filters={"source_app": "keys"})
    ) == [5, 4, 3]
    assert ids(
        user.call("jobforge_list_events", p_tenant_id=tenant, p_filters={"source_module": "ops"})
    ) == [5]
    assert ids(
        user.call("jobforge_list_events", p_tenant_id=tenant, p_filters={"trace_id": "tr2"})
    ) == [2]
    assert ids(
        user.call(
            "jobforge_list_events",
            p_tenant_id=tenant,
            p_filters={"subject_id": "h1", "subject_type": "host"},
        )
    ) == [1]
    assert ids(
        user.call("jobforge_list_events", p_tenant_id=tenant, p_filters={"processed": False})
    ) == [5, 4, 3, 2, 1, 0]
    assert (
        user.call("jobforge_list_events", p_tenant_id=tenant, p_filters={"processed": True}) == []
    )
    window = {
        "from": (base + timedelta(minutes=1)).isoformat(),
        "to": (base + timedelta(minutes=4)).isoformat(),
    }
    assert ids(user.call("jobforge_list_events", p_tenant_id=tenant, p_filters=window)) == [3, 2, 1]
    assert ids(
        user.call("jobforge_list_events", p_tenant_id=tenant, p_filters={"limit": 2, "offset": 1})
    ) == [4, 3]
    assert made[0]["trace_id"] == "tr0"

    for filters, message in [
        ({"colour": "red"}, "colour: is not a known filter"),
        ({"limit": 0}, "limit: must be between 1 and 1000"),
        ({"limit": 1001}, "limit: must be between 1 and 1000"),
        ({"offset": -1}, "offset: must be between 0"),
        ({"from": "soon"}, "from: must be an ISO 8601 timestamp"),
        ({"processed": "yes"}, "processed: must be a boolean"),
        ({"source_app": "other"}, "source_app: must be one of"),
    ]:
        with sql_error("PT400", message):
            user.call("jobforge_list_events", p_tenant_id=tenant, p_filters=filters)


# -- redaction --------------------------------------------------------------------------


def test_redaction_never_reaches_audit_and_list_events_redacts(
    act_as: ActAs, admin_conn: Any
) -> None:
    tenant = uuid.uuid4()
    user = act_as("authenticated", tenant_claims(tenant))
    sr = act_as("service_role")
    hinted_payload = {
        "user": {"email": "alice-secret@example.com", "plan": "pro"},
        "items": [
            {"card": "4111-SECRET-1111", "sku": "a"},
            {"card": "5500-SECRET-0004", "sku": "b"},
            {"sku": "c"},
        ],
        "note": "kept",
    }
    hinted = submit(
        user,
        tenant,
        p_payload=hinted_payload,
        p_redaction_hints={"redact_fields": ["user.email", "items.card", "absent.path"]},
        p_trace_id="hinted",
    )
    pii = submit(
        user,
        tenant,
        p_payload={
            "name": "Bob PII-NAME",
            "address": {"city": "PII-CITY"},
            "ids": [1234567, "PII-ID"],
        },
        p_contains_pii=True,
        p_trace_id="pii",
    )
    batch = sr.call(
        "jobforge_submit_events",
        p_tenant_id=tenant,
        p_events=[
            {
                "event_type": "a.b",
                "source_app": "keys",
                "contains_pii": True,
                "payload": {"ssn": "BATCH-PII"},
            }
        ],
    )
    assert hinted["payload"] == hinted_payload  # stored as given

    audit_text = json.dumps(audit_rows(admin_conn, tenant))
    for secret in [
        "alice-secret",
        "4111-SECRET",
        "5500-SECRET",
        "PII-NAME",
        "PII-CITY",
        "PII-ID",
        "1234567",
        "BATCH-PII",
    ]:
        assert secret not in audit_text, secret
    ingest = {
        r["target_id"]: r for r in audit_rows(admin_conn, tenant) if r["action"] == "event_ingest"
    }
    expected_hinted = {
        "user": {"email": "[REDACTED]", "plan": "pro"},
        "items": [
            {"card": "[REDACTED]", "sku": "a"},
            {"card": "[REDACTED]", "sku": "b"},
            {"sku": "c"},
        ],
        "note": "kept",
    }
    expected_pii = {
        "name": "[REDACTED]",
        "address": {"city": "[REDACTED]"},
        "ids": ["[REDACTED]", "[REDACTED]"],
    }
    # The audit row keeps no payload at all, redacted or not: its digest and key names.
    assert '"kept"' not in audit_text
    assert '"pro"' not in audit_text
    assert {
        k: ingest[hinted["id"]]["details"][k]
        for k in ("payload_keys", "redacted_fields", "contains_pii")
    } == {
        "payload_keys": ["items", "note", "user"],
        "redacted_fields": ["user.email", "items.card", "absent.path"],
        "contains_pii": False,
    }
    assert ingest[pii["id"]]["details"]["payload_keys"] == ["address", "ids", "name"]
    assert ingest[pii["id"]]["details"]["redacted_fields"] == []

    listed = {e["trace_id"]: e for e in user.call("jobforge_list_events", p_tenant_id=tenant)}
    assert listed["hinted"]["payload"] == expected_hinted
    assert listed["pii"]["payload"] == expected_pii
    assert listed[batch[0]["trace_id"]]["payload"] == {"ssn": "[REDACTED]"}
    service_default = {
        e["trace_id"]: e for e in sr.call("jobforge_list_events", p_tenant_id=tenant)
    }
    assert service_default["pii"]["payload"] == expected_pii
    raw = {
        e["trace_id"]: e
        for e in sr.call("jobforge_list_events", p_tenant_id=tenant, p_filters={"raw": True})
    }
    assert raw["hinted"]["payload"] == hinted_payload
    assert raw["pii"]["payload"]["name"] == "Bob PII-NAME"
    with sql_error("PT403", "raw: only service_role may read raw payloads"):
        user.call("jobforge_list_events", p_tenant_id=tenant, p_filters={"raw": True})


def test_redact_helpers(admin_conn: Any) -> None:
    def q(sql: str, *params: Any) -> Any:
        row = admin_conn.execute(sql, params).fetchone()
        return row[0]

    payload = json.dumps({"a": {"b": {"c": 1, "d": 2}}, "l": [[{"x": 1}], {"x": 2}], "s": "v"})
    assert q(
        "select jobforge_private.redact(%s::jsonb, %s)", payload, ["a.b.c", "l.x", "s.t", "nope"]
    ) == {
        "a": {"b": {"c": "[REDACTED]", "d": 2}},
        "l": [[{"x": "[REDACTED]"}], {"x": "[REDACTED]"}],
        "s": "v",
    }
    assert q("select jobforge_private.redact(%s::jsonb, %s)", payload, ["a"]) == {
        "a": "[REDACTED]",
        "l": [[{"x": 1}], {"x": 2}],
        "s": "v",
    }
    assert q("select jobforge_private.redact_all(%s::jsonb)", payload) == {
        "a": {"b": {"c": "[REDACTED]", "d": "[REDACTED]"}},
        "l": [[{"x": "[REDACTED]"}], {"x": "[REDACTED]"}],
        "s": "[REDACTED]",
    }
    assert q(
        "select jobforge_private.event_safe_payload(%s::jsonb, false, null)", payload
    ) == json.loads(payload)
    assert q(
        "select jobforge_private.event_safe_payload(%s::jsonb, true, %s::jsonb)",
        payload,
        json.dumps({"redact_fields": ["s"]}),
    ) == {**json.loads(payload), "s": "[REDACTED]"}


# -- tenants ----------------------------------------------------------------------------


def test_user_of_tenant_a_cannot_touch_tenant_b_events(act_as: ActAs, admin_conn: Any) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    occurred = "2030-04-01T00:00:00+00:00"
    b_event = submit(
        act_as("service_role"),
        b,
        p_trace_id="same-trace",
        p_occurred_at=occurred,
        p_payload={"secret": "B-ONLY"},
    )

    def events_of(tenant: uuid.UUID) -> list[dict[str, Any]]:
        rows = admin_conn.execute(
            "select to_jsonb(e) from jobforge_events e where e.tenant_id = %s order by e.id",
            (tenant,),
        ).fetchall()
        return [row[0] for row in rows]

    b_events, b_audits = events_of(b), audit_rows(admin_conn, b)
    user_a = act_as("authenticated", tenant_claims(a))
    refused = f"tenant_id: caller may not act for tenant {b}"
    with sql_error("PT403", refused):
        submit(user_a, b)
    with sql_error("PT403", refused):
        user_a.call(
            "jobforge_submit_events",
            p_tenant_id=b,
            p_events=[{"event_type": "a.b", "source_app": "keys"}],
        )
    with sql_error("PT403", refused):
        user_a.call("jobforge_list_events", p_tenant_id=b)
    assert (
        user_a.call("jobforge_list_events", p_tenant_id=a, p_filters={"trace_id": "same-trace"})
        == []
    )
    assert user_a.query(
        "select count(*) from public.jobforge_events where tenant_id = %s", (b,)
    ) == [(0,)]

    # The identity of B's event, submitted for A, is A's own new event, never B's row.
    mine = submit(user_a, a, p_trace_id="same-trace", p_occurred_at=occurred)
    assert mine["id"] != b_event["id"]
    assert mine["tenant_id"] == str(a)
    assert mine["payload"] == {"host": "db-1"}
    again = user_a.call(
        "jobforge_submit_events",
        p_tenant_id=a,
        p_events=[
            {
                "event_type": b_event["event_type"],
                "source_app": b_event["source_app"],
                "trace_id": "same-trace",
                "occurred_at": occurred,
            }
        ],
    )
    assert again == [mine]
    assert "B-ONLY" not in json.dumps(user_a.call("jobforge_list_events", p_tenant_id=a))

    assert events_of(b) == b_events
    assert audit_rows(admin_conn, b) == b_audits
