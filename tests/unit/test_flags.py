from __future__ import annotations

import pytest
from pydantic import ValidationError

from jobforge_sdk.flags import Feature, FeatureFlags


def test_everything_is_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for feature in Feature:
        monkeypatch.delenv(f"JOBFORGE_{feature.value.upper()}", raising=False)
    flags = FeatureFlags()
    assert not any(flags.enabled(f) for f in Feature)
    assert flags.require_policy_tokens is True
    assert flags.policy_token_expiry_hours == 1.0


def test_flags_are_read_from_the_environment_when_built(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBFORGE_EVENTS", "1")
    monkeypatch.setenv("JOBFORGE_POLICY_TOKEN_SECRET", "s3cret-value")
    flags = FeatureFlags()
    assert flags.events is True
    assert flags.triggers is False
    summary = flags.summary()
    assert summary["events"] is True
    assert summary["policy_token_secret"] == "set"
    assert "s3cret-value" not in repr(summary)
    assert "s3cret-value" not in repr(flags)


def test_a_bad_flag_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBFORGE_EVENTS", "maybe")
    with pytest.raises(ValidationError, match="events"):
        FeatureFlags()


def test_all_on() -> None:
    flags = FeatureFlags.all_on(policy_token_secret="x" * 32)
    assert all(flags.enabled(f) for f in Feature)
