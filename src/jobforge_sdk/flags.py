"""Feature flags: every execution-plane feature is off until an operator turns it on.

Read from ``JOBFORGE_*`` environment variables when a client is built (never at import),
so a process can change its configuration between clients and tests need no reloads.
The core queue is never gated: existing jobs keep working whatever the flags say.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Feature", "FeatureFlags"]


class Feature(StrEnum):
    """A gated area of the execution plane; the value is the flag's field name."""

    EVENTS = "events"
    TRIGGERS = "triggers"
    AUTOPILOT_JOBS = "autopilot_jobs"
    ACTION_JOBS = "action_jobs"
    AUDIT_LOGGING = "audit_logging"
    MANIFESTS = "manifests"


class FeatureFlags(BaseSettings):
    """``JOBFORGE_EVENTS=1`` and friends; see docs/execution-plane-contract.md (F)."""

    model_config = SettingsConfigDict(env_prefix="JOBFORGE_", extra="ignore", frozen=True)

    events: bool = False
    triggers: bool = False
    autopilot_jobs: bool = False
    action_jobs: bool = False
    audit_logging: bool = False
    manifests: bool = False
    require_policy_tokens: bool = True
    policy_token_secret: SecretStr | None = None
    policy_token_kid: str = Field(default="default", min_length=1, max_length=64)
    policy_token_expiry_hours: float = Field(default=1.0, gt=0, le=24 * 30)

    def enabled(self, feature: Feature) -> bool:
        return bool(getattr(self, feature.value))

    @classmethod
    def all_on(cls, **overrides: Any) -> FeatureFlags:
        """Every feature on (the smoke test's ``--enable-all``); secrets still come from env."""
        values: dict[str, Any] = {feature.value: True for feature in Feature}
        values.update(overrides)
        return cls(**values)

    def summary(self) -> dict[str, Any]:
        """What is on and off, safe to log: the secret is reported only as set or not."""
        return {
            **{feature.value: self.enabled(feature) for feature in Feature},
            "require_policy_tokens": self.require_policy_tokens,
            "policy_token_secret": "set" if self.policy_token_secret else "unset",
            "policy_token_kid": self.policy_token_kid,
            "policy_token_expiry_hours": self.policy_token_expiry_hours,
        }
