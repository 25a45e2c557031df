"""Hostile values meet a typed error naming the parameter, before any I/O (issue 17).

The clients point at a port nobody listens on: reaching the network would raise
``TransportError``, so an ``InvalidInputError`` here was raised by the SDK itself.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from pydantic import ValidationError

from jobforge_sdk import (
    AsyncJobForgeClient,
    DatabaseError,
    InvalidInputError,
    JobForgeClient,
    PermissionDeniedError,
    TransportError,
    validate_policy_token,
)
from jobforge_sdk._operations._machinery import JsonText, RpcCall, parse_list, read_answer
from jobforge_sdk._transports._sql import map_error, unencodable_text
from jobforge_sdk.errors import error_from_sqlstate
from jobforge_sdk.flags import FeatureFlags
from jobforge_sdk.models._base import MAX_JSON_DEPTH, check_json, json_depth_exceeds
from jobforge_sdk.models.jobs import JobRow

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/none?connect_timeout=1"
T = str(uuid.uuid4())
ALL_ON = FeatureFlags(
    events=True,
    triggers=True,
    autopilot_jobs=True,
    action_jobs=True,
    audit_logging=True,
    manifests=True,
    require_policy_tokens=False,
)


def nested(depth: int) -> Any:
    """A dict holding dicts ``depth`` containers deep (depth 1 is ``{}``)."""
    value: Any = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


DEEP = nested(5000)
DEEPER = nested(MAX_JSON_DEPTH + 1)
EVENT = {"tenant_id": T, "event_type": "a.b", "source_app": "aias"}
TRIGGER = {"tenant_id": T, "name": "n", "cron_expression": "* * * * *", "target_template_key": "k"}
JOB = {"job_id": T, "worker_id": "w"}

# (method, kwargs, the parameter the error must name)
HOSTILE: list[tuple[str, dict[str, Any], str]] = [
    # Raw Python exceptions that used to escape.
    ("submit_events", {"tenant_id": T, "events": "abc"}, "events"),
    ("submit_events", {"tenant_id": T, "events": 7}, "events"),
    ("submit_events", {"tenant_id": T, "events": None}, "events"),
    ("submit_events", {"tenant_id": T, "events": {"a": 1}}, "events"),
    ("submit_events", {"tenant_id": T, "events": [datetime.now(UTC)]}, "events.0"),
    ("submit_events", {"tenant_id": T, "events": [True]}, "events.0"),
    ("request_job", {"tenant_id": T, "template_key": "k", "inputs": [1]}, "inputs"),
    ("request_job", {"tenant_id": T, "template_key": "k", "inputs": {1, 2}}, "inputs"),
    ("request_job", {"tenant_id": T, "template_key": "k", "inputs": b"x"}, "inputs"),
    ("request_job", {"tenant_id": T, "template_key": "k", "inputs": 3.5}, "inputs"),
    ("create_cron_trigger", {**TRIGGER, "target_inputs": [1]}, "target_inputs"),
    ("create_cron_trigger", {**TRIGGER, "target_inputs": b"x"}, "target_inputs"),
    ("create_cron_trigger", {**TRIGGER, "target_inputs": {"k": "x" * 70000}}, "target_inputs"),
    ("purge_expired_events", {"retention_days": "30"}, "retention_days"),
    ("purge_expired_events", {"retention_days": None}, "retention_days"),
    ("purge_expired_events", {"retention_days": [1]}, "retention_days"),
    ("purge_audit_logs", {"retention_days": datetime.now(UTC)}, "retention_days"),
    ("purge_audit_logs", {"retention_days": {"d": 1}}, "retention_days"),
    # Nested beyond the cap: refused by name, no RecursionError.
    ("enqueue_job", {"tenant_id": T, "type": "t", "payload": DEEP}, "payload"),
    ("enqueue_job", {"tenant_id": T, "type": "t", "payload": DEEPER}, "payload"),
    ("enqueue_jobs", {"tenant_id": T, "jobs": [{"type": "t", "payload": DEEP}]}, "jobs.0.payload"),
    ("submit_event", {**EVENT, "payload": DEEPER}, "payload"),
    ("submit_event", {**EVENT, "redaction_hints": DEEPER}, "redaction_hints"),
    ("submit_event", {**EVENT, "redaction_hints": DEEP}, "redaction_hints"),
    ("request_job", {"tenant_id": T, "template_key": "k", "inputs": DEEP}, "inputs"),
    ("create_cron_trigger", {**TRIGGER, "target_inputs": DEEPER}, "target_inputs"),
    ("complete_job", {**JOB, "status": "failed", "error": DEEP}, "error"),
    ("complete_job", {**JOB, "status": "succeeded", "result": DEEPER}, "result"),
    ("create_manifest", {"run_id": T, "tenant_id": T, "manifest": {"error": DEEP}}, "manifest"),
    # Size caps on every JSON argument.
    ("submit_event", {**EVENT, "redaction_hints": {"x": "a" * 3_000_000}}, "redaction_hints"),
    ("complete_job", {**JOB, "status": "failed", "error": {"m": "x" * 70000}}, "error"),
    ("complete_job", {**JOB, "status": "succeeded", "result": "x" * 1_100_000}, "result"),
    # Bools are not numbers, numbers are not bools or durations.
    ("purge_audit_logs", {"retention_days": True}, "retention_days"),
    ("purge_expired_events", {"retention_days": False}, "retention_days"),
    ("reap_stale_jobs", {"timeout": True}, "timeout"),
    ("reap_stale_jobs", {"timeout": 30}, "timeout"),
    ("claim_jobs", {"worker_id": "w", "limit": True}, "limit"),
    ("enqueue_job", {"tenant_id": T, "type": "t", "max_attempts": True}, "max_attempts"),
    ("list_jobs", {"tenant_id": T, "offset": True}, "offset"),
    ("list_jobs", {"tenant_id": T, "offset": 2**31}, "offset"),
    ("list_events", {"tenant_id": T, "limit": 1.0}, "limit"),
    ("list_events", {"tenant_id": T, "raw": 1}, "raw"),
    ("complete_job", {**JOB, "status": "failed", "retryable": 0}, "retryable"),
    ("create_cron_trigger", {**TRIGGER, "enabled": "yes"}, "enabled"),
    ("create_cron_trigger", {**TRIGGER, "cooldown_seconds": True}, "cooldown_seconds"),
    ("set_template_enabled", {"template_key": "k", "enabled": 1}, "enabled"),
    # Text PostgreSQL cannot hold, in every kind of text argument.
    ("enqueue_job", {"tenant_id": T, "type": "a\x00b"}, "type"),
    ("enqueue_job", {"tenant_id": T, "type": "t", "idempotency_key": "k\x00"}, "idempotency_key"),
    ("enqueue_jobs", {"tenant_id": T, "jobs": [{"type": "t"}, {"type": "\x00"}]}, "jobs.1.type"),
    ("claim_jobs", {"worker_id": "w\x00"}, "worker_id"),
    ("claim_jobs", {"worker_id": "w", "types": ["t", "u\x00"]}, "types.1"),
    ("heartbeat_job", {"job_id": T, "worker_id": "\x00"}, "worker_id"),
    ("complete_job", {**JOB, "status": "succeeded", "artifact_ref": "s3://\x00"}, "artifact_ref"),
    ("list_jobs", {"tenant_id": T, "type": "t\x00"}, "type"),
    ("submit_event", {**EVENT, "trace_id": "tr\x00"}, "trace_id"),
    (
        "verify_policy_token",
        {"tenant_id": T, "template_key": "k", "policy_token": "a\x00"},
        "policy_token",
    ),
    (
        "request_job",
        {"tenant_id": T, "template_key": "k", "policy_token": "a\x00b"},
        "policy_token",
    ),
    ("add_policy_key", {"kid": "k", "secret": "s" * 40 + "\x00"}, "secret"),
    ("enqueue_job", {"tenant_id": T, "type": "t", "payload": {"k": "a\x00"}}, "payload"),
    ("enqueue_job", {"tenant_id": T, "type": "a\ud800"}, "type"),
    ("enqueue_job", {"tenant_id": T, "type": "t", "payload": {"k": "\udfff"}}, "payload"),
    ("list_audit_logs", {"tenant_id": T, "actor_id": "\ud800"}, "actor_id"),
]


def _id(case: tuple[str, dict[str, Any], str]) -> str:
    return f"{case[0]}-{case[2]}"


@pytest.mark.parametrize(("method", "kwargs", "field"), HOSTILE, ids=[_id(c) for c in HOSTILE])
def test_sync_client_names_the_parameter(method: str, kwargs: dict[str, Any], field: str) -> None:
    client = JobForgeClient.from_postgres(UNREACHABLE, flags=ALL_ON, timeout=1)
    with pytest.raises(InvalidInputError) as info:
        getattr(client, method)(**kwargs)
    assert info.value.field == field, info.value.message
    assert info.value.message.startswith(f"{field}:"), info.value.message
    assert client.transport.pool.closed  # type: ignore[attr-defined]


@pytest.mark.parametrize(("method", "kwargs", "field"), HOSTILE, ids=[_id(c) for c in HOSTILE])
def test_async_client_names_the_parameter(method: str, kwargs: dict[str, Any], field: str) -> None:
    client = AsyncJobForgeClient.from_postgres(UNREACHABLE, flags=ALL_ON, timeout=1)
    with pytest.raises(InvalidInputError) as info:
        asyncio.run(getattr(client, method)(**kwargs))
    assert info.value.field == field, info.value.message


def test_an_envelope_that_is_not_a_mapping_is_named() -> None:
    client = JobForgeClient.from_postgres(UNREACHABLE, flags=ALL_ON, timeout=1)
    for envelope in ("abc", 7, [1], b"x"):
        with pytest.raises(InvalidInputError) as info:
            client.submit_event(envelope)  # type: ignore[arg-type]
        assert info.value.field == "envelope"


def test_depth_cap_is_exact() -> None:
    assert check_json(nested(MAX_JSON_DEPTH)) is not None
    assert not json_depth_exceeds(nested(MAX_JSON_DEPTH))
    assert json_depth_exceeds(nested(MAX_JSON_DEPTH + 1))
    assert json_depth_exceeds([[[]]], limit=2)
    assert not json_depth_exceeds([[1], {"a": 1}], limit=2)
    with pytest.raises(ValueError, match="nested at most 64 levels deep"):
        check_json(nested(MAX_JSON_DEPTH + 1))
    # Many containers side by side are not depth.
    assert check_json([[{}] for _ in range(500)]) is not None


def test_an_allowed_payload_at_the_cap_is_accepted_before_io() -> None:
    """The cap refuses, it does not forbid reaching the database: a value at the cap goes
    on to the (unreachable) network."""
    client = JobForgeClient.from_postgres(UNREACHABLE, timeout=1)
    with pytest.raises(TransportError):
        client.enqueue_job(tenant_id=T, type="t", payload=nested(MAX_JSON_DEPTH))


def test_nul_and_unencodable_text_map_to_invalid_input_at_the_boundary() -> None:
    assert isinstance(error_from_sqlstate("22P05", "unsupported Unicode escape"), InvalidInputError)
    assert isinstance(error_from_sqlstate("22021", "invalid byte sequence"), InvalidInputError)
    # psycopg refuses a NUL itself, with no SQLSTATE: still bad input, not a connection.
    nul = psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes")
    assert isinstance(map_error(nul), InvalidInputError)
    bad = UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")
    assert isinstance(unencodable_text(bad), InvalidInputError)


def test_malformed_claims_are_an_authentication_failure() -> None:
    assert isinstance(error_from_sqlstate("PT403", "invalid JWT: ..."), PermissionDeniedError)


def test_an_answer_that_cannot_be_read_is_a_database_error_not_a_raw_one() -> None:
    call: RpcCall[list[JobRow]] = RpcCall("jobforge_claim_jobs", {}, parse_list(JobRow))
    with pytest.raises(DatabaseError, match="took effect"):
        read_answer(call, JsonText('[{"id": "not a uuid"}]'))
    with pytest.raises(DatabaseError):
        read_answer(call, JsonText("[" * 3000))


def test_rows_deeper_than_pydantics_parser_still_parse() -> None:
    """A row stored before the depth cap (200 deep) is read with json instead of failing
    the whole answer."""
    now = datetime.now(UTC).isoformat()
    row = {
        "id": T,
        "tenant_id": T,
        "type": "t",
        "payload": nested(300),
        "status": "queued",
        "attempts": 0,
        "max_attempts": 5,
        "run_at": now,
        "created_at": now,
        "updated_at": now,
    }
    with pytest.raises(ValidationError):
        JobRow.model_validate_json(json.dumps(row))
    rows = read_answer(RpcCall("f", {}, parse_list(JobRow)), JsonText(json.dumps([row, row])))
    assert len(rows) == 2
    assert rows[0].payload == nested(300)


def test_strict_durations_still_take_timedeltas() -> None:
    client = JobForgeClient.from_postgres(UNREACHABLE, timeout=1)
    with pytest.raises(InvalidInputError, match="timeout"):
        client.reap_stale_jobs(timeout=timedelta(seconds=-1))


# -- policy tokens offline, as strict as the database ----------------------------------

SECRET = "k" * 40
ACTION = "autopilot.ops.apply"


def _signed(claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    h = b64(json.dumps(header or {"alg": "HS256", "kid": "k1"}).encode())
    p = b64(json.dumps(claims).encode())
    sig = hmac.new(SECRET.encode(), f"{h}.{p}".encode(), hashlib.sha256).digest()
    return f"{h}.{p}.{b64(sig)}"


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(datetime.now(UTC).timestamp())
    base: dict[str, Any] = {
        "iss": "jobforge",
        "sub": "a",
        "aud": ACTION,
        "tid": T,
        "scp": ["ops:write"],
        "jti": "j-1",
        "iat": now,
        "exp": now + 600,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def _verdict(token: str) -> str | None:
    result = validate_policy_token(
        token, {"k1": SECRET}, action=ACTION, required_scopes=["ops:write"], tenant_id=T
    )
    assert result.allowed is (result.reason is None)
    return result.reason


def test_offline_tokens_are_as_strict_as_the_database() -> None:
    now = int(datetime.now(UTC).timestamp())
    assert _verdict(_signed(_claims())) is None
    assert _verdict(_signed(_claims(exp=str(now + 600)))) == "malformed"
    assert _verdict(_signed(_claims(exp=True))) == "malformed"
    assert _verdict(_signed(_claims(iat="now"))) == "malformed"
    assert _verdict(_signed({k: v for k, v in _claims().items() if k != "iss"})) == "wrong issuer"
    assert _verdict(_signed(_claims(jti="j" * 128))) is None
    assert _verdict(_signed(_claims(jti="j" * 129))) == "malformed"
    assert _verdict(_signed(_claims(jti="j" * 300))) == "malformed"
    assert _verdict(_signed(_claims(ctx={"pad": "x" * 9000}))) == "malformed"
    assert _verdict(_signed(_claims(sub="a\x00b"))) == "malformed"
    assert _verdict(_signed({"x": 1, **_claims(), "exp": math.inf})) == "malformed"  # Infinity
    assert _verdict(_signed(_claims(), {"alg": "HS256", "kid": "k1", "crit": ["x"]})) == "malformed"
    assert _verdict(_signed(_claims(), {"alg": "HS256", "kid": "k2"})) == "unknown key"
    assert (
        _verdict(_signed(_claims(), {"alg": "none", "kid": "k1"})) == "unsupported algorithm none"
    )


def test_offline_tenants_are_compared_as_uuids() -> None:
    assert _verdict(_signed(_claims(tid=T.upper()))) is None
    assert _verdict(_signed(_claims(tid=T.replace("-", "")))) is None
    assert _verdict(_signed(_claims(tid="{" + T + "}"))) == "wrong tenant"
    assert _verdict(_signed(_claims(tid=str(uuid.uuid4())))) == "wrong tenant"
