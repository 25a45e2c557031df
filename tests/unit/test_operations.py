"""The sans-I/O operations: what each call would send, without a database."""

from __future__ import annotations

import uuid

import pytest

from jobforge_sdk import EventEnvelope, InvalidInputError
from jobforge_sdk._operations import plane
from jobforge_sdk._operations._machinery import JsonText, RpcCall, parse_list, parse_one
from jobforge_sdk.models import JobRow


def test_an_envelope_and_keyword_fields_merge_when_they_agree() -> None:
    tenant = uuid.uuid4()
    envelope = EventEnvelope(
        event_type="a.b", source_app="aias", tenant_id=tenant, subject={"type": "t", "id": "1"}
    )
    call = plane.submit_event(envelope, tenant_id=str(tenant), actor_id="bob")
    assert isinstance(call, RpcCall)
    assert call.fn == "jobforge_submit_event"
    assert call.args["p_tenant_id"] == str(tenant)
    assert call.args["p_actor_id"] == "bob"
    assert (call.args["p_subject_type"], call.args["p_subject_id"]) == ("t", "1")
    with pytest.raises(InvalidInputError) as info:
        plane.submit_event(envelope, tenant_id=str(uuid.uuid4()))
    assert info.value.field == "tenant_id"


def test_answers_parse_from_json_text_or_python() -> None:
    row = {
        "id": str(uuid.uuid4()),
        "tenant_id": str(uuid.uuid4()),
        "type": "t",
        "payload": {"a": 1},
        "status": "queued",
        "attempts": 0,
        "max_attempts": 5,
        "run_at": "2026-01-01T00:00:00Z",
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
    }
    import json

    from_text = parse_one(JobRow)(JsonText(json.dumps(row)))
    from_python = parse_one(JobRow)(row)
    assert from_text == from_python
    assert parse_list(JobRow)(JsonText(json.dumps([row, row]))) == [from_python, from_python]
    assert parse_list(JobRow)(None) == []
