"""A template's ``default_priority``: set by ``set_template_enabled`` (service role,
audited), given to every job requested from it; bad values refused naming the field
with nothing changed. Through each transport (the ``client`` fixture)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from jobforge_sdk import FeatureFlags, InvalidInputError

SCAN = "autopilot.ops.scan"


@pytest.fixture
def plane(make_client: Callable[..., Any], transport_kind: str) -> Any:
    return make_client(transport_kind, flags=FeatureFlags(autopilot_jobs=True, audit_logging=True))


def test_a_templates_default_priority_reaches_its_jobs(plane: Any) -> None:
    before = plane.get_template(template_key=SCAN)
    try:
        row = plane.set_template_enabled(
            template_key=SCAN, enabled=True, default_priority=9, actor_id="ops"
        )
        assert row.default_priority == 9
        tenant = uuid.uuid4()
        result = plane.request_job(tenant_id=tenant, template_key=SCAN, inputs={"target": "x"})
        assert result.job.priority == 9
        (entry, *_) = plane.list_audit_logs(
            tenant_id=None, action="template_update", target_id=SCAN
        )
        assert (entry.details["default_priority"], entry.details["previous_default_priority"]) == (
            9,
            before.default_priority,
        )

        for bad in (40000, -40000, True, "9", 1.5):
            with pytest.raises(InvalidInputError) as info:
                plane.set_template_enabled(template_key=SCAN, enabled=False, default_priority=bad)
            assert info.value.field == "default_priority"
        after = plane.get_template(template_key=SCAN)
        assert (after.enabled, after.default_priority) == (True, 9)
    finally:
        plane.set_template_enabled(
            template_key=SCAN, enabled=before.enabled, default_priority=before.default_priority
        )
