"""Feature flags: every execution-plane feature is off until an operator turns it on.

Read from ``JOBFORGE_*`` environment variables when a client is built (never at import),
so a process can change its configuration between clients and tests need no reloads.
The core queue is never gated: existing jobs keep working whatever the flags say.

The switches are ``JOBFORGE_<FEATURE>_ENABLED`` (``JOBFORGE_EVENTS_ENABLED=1``); the
Python field names have no suffix (``FeatureFlags(events=True)``). Names are matched
exactly (case-sensitive) and an empty variable counts as unset. A value that cannot be
used raises :class:`~jobforge_sdk.errors.ConfigurationError` naming the variable.

Every ``JOBFORGE_*`` variable any part of the SDK reads is listed here
(:func:`known_settings`); any other one in the environment is probably a typo or a
name from an older draft, and :func:`unknown_settings` finds it with the nearest known
name. Building a client reports each one once per process as an
:class:`UnknownSettingWarning` (:func:`warn_unknown_settings`); ``jobforge doctor``
fails on them.
"""

from __future__ import annotations

import difflib
import os
import threading
import warnings
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Final

from pydantic import BeforeValidator, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from jobforge_sdk.errors import ConfigurationError

__all__ = [
    "BOOL_SPELLINGS",
    "OTHER_SETTINGS",
    "Feature",
    "FeatureFlags",
    "UnknownSettingWarning",
    "env_var",
    "known_settings",
    "reset_setting_warnings",
    "unknown_setting_message",
    "unknown_settings",
    "warn_unknown_settings",
]

PREFIX: Final = "JOBFORGE_"

#: The spellings a switch accepts (case-insensitive, surrounding whitespace ignored).
BOOL_SPELLINGS: Final[Mapping[str, bool]] = {
    "1": True,
    "0": False,
    "true": True,
    "false": False,
    "yes": True,
    "no": False,
    "on": True,
    "off": False,
}
_ACCEPTED_BOOLS: Final = "one of " + ", ".join(BOOL_SPELLINGS)

#: The ``JOBFORGE_*`` variables read outside :class:`FeatureFlags`; with the flags' own
#: variables these are every name the SDK, its test suite and its CI scripts read (the
#: latter share the environment of the clients the tests build). Add a name here when
#: code starts reading it, or it is reported as unknown (tests/unit/test_flags.py checks).
OTHER_SETTINGS: Final[tuple[str, ...]] = (
    "JOBFORGE_DATABASE_URL",  # JobForgeClient.from_env, the CLI, the migration runner
    "JOBFORGE_MCP_CLAIMS",  # jobforge mcp: the JWT claims to act as
    "JOBFORGE_DASHBOARD_TOKEN",  # jobforge dashboard: the access token (--auth-token)
    # the test suite and CI tooling
    "JOBFORGE_PGBOUNCER",  # tests/support/pgbouncer.py: the pgbouncer binary
    "JOBFORGE_PG_BIN",  # tests/support/private_cluster.py: where initdb and pg_ctl are
    "JOBFORGE_PG_OS_USER",  # tests/support/private_cluster.py: the cluster's owner as root
    "JOBFORGE_FAULT_DB",  # tests/support/fault_app.py: where executions are recorded
    "JOBFORGE_FAULT_JOBS",  # tests/acceptance/test_faults.py: jobs of the chaos test
    "JOBFORGE_PG_MAJOR",  # scripts/ci_tools.sh: PostgreSQL major version
    "JOBFORGE_TEST_BACKEND",  # tests/support/database.py: which PostgreSQL to test on
    "JOBFORGE_TEST_DATABASE_URL",  # tests/support/database.py: a server the tests may use
    "JOBFORGE_TEST_SHAPE",  # tests/conftest.py: vanilla or Supabase-shaped databases
    "JOBFORGE_TEST_SLOW",  # tests/support/worker_app.py: slow handlers in a subprocess
    "JOBFORGE_SPLINTER_SQL",  # tests/support/splinter.py: a copy of splinter.sql
    "JOBFORGE_TOOLS_DIR",  # scripts/ci_tools.sh: cache folder for the CI tools
    "JOBFORGE_UPDATE_SCREENSHOT",  # tests/dashboard: rewrite docs/dashboard-overview.png
)


class Feature(StrEnum):
    """A gated area of the execution plane; the value is the flag's field name."""

    EVENTS = "events"
    TRIGGERS = "triggers"
    AUTOPILOT_JOBS = "autopilot_jobs"
    ACTION_JOBS = "action_jobs"
    AUDIT_LOGGING = "audit_logging"
    MANIFESTS = "manifests"

    @property
    def env_var(self) -> str:
        """The variable that turns the feature on: ``JOBFORGE_EVENTS_ENABLED``."""
        return f"{PREFIX}{self.value.upper()}_ENABLED"


def _switch(value: Any) -> Any:
    """``1/0/true/false/yes/no/on/off``, any case, whitespace ignored; bools as they are."""
    if isinstance(value, str):
        spelled = BOOL_SPELLINGS.get(value.strip().lower())
        if spelled is None:
            raise ValueError(f"expected {_ACCEPTED_BOOLS}")
        return spelled
    if isinstance(value, int) and not isinstance(value, bool) and value in (0, 1):
        return bool(value)
    return value  # a bool passes; anything else fails the bool check with pydantic's message


Switch = Annotated[bool, BeforeValidator(_switch)]


def _var(field: str) -> str:
    return f"{PREFIX}{field.upper()}"


class FeatureFlags(BaseSettings):
    """``JOBFORGE_EVENTS_ENABLED=1`` and friends; see docs/execution-plane-contract.md (F).

    Keyword arguments use the field names and override the environment.
    """

    model_config = SettingsConfigDict(
        extra="ignore",
        frozen=True,
        case_sensitive=True,
        env_ignore_empty=True,
        validate_by_name=True,
        validate_by_alias=True,
    )

    events: Switch = Field(default=False, validation_alias=Feature.EVENTS.env_var)
    triggers: Switch = Field(default=False, validation_alias=Feature.TRIGGERS.env_var)
    autopilot_jobs: Switch = Field(default=False, validation_alias=Feature.AUTOPILOT_JOBS.env_var)
    action_jobs: Switch = Field(default=False, validation_alias=Feature.ACTION_JOBS.env_var)
    audit_logging: Switch = Field(default=False, validation_alias=Feature.AUDIT_LOGGING.env_var)
    manifests: Switch = Field(default=False, validation_alias=Feature.MANIFESTS.env_var)
    require_policy_tokens: Switch = Field(
        default=True, validation_alias=_var("require_policy_tokens")
    )
    policy_token_secret: SecretStr | None = Field(
        default=None, validation_alias=_var("policy_token_secret")
    )
    policy_token_kid: str = Field(
        default="default", min_length=1, max_length=64, validation_alias=_var("policy_token_kid")
    )
    policy_token_expiry_hours: float = Field(
        default=1.0, gt=0, le=24 * 30, validation_alias=_var("policy_token_expiry_hours")
    )
    # Keys of field encryption (jobforge_sdk.encryption): key_id:base64key entries; the
    # first encrypts, all decrypt. Checked when the flags are built.
    encryption_keys: SecretStr | None = Field(
        default=None, validation_alias=_var("encryption_keys")
    )

    @field_validator("encryption_keys")
    @classmethod
    def _readable_keys(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            from jobforge_sdk.encryption import KeyRing

            try:
                KeyRing.parse(value.get_secret_value())
            except ConfigurationError as exc:
                raise ValueError(exc.message.partition(": ")[2]) from None
        return value

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise ConfigurationError(_explain(exc), details=exc.errors()) from None

    def enabled(self, feature: Feature) -> bool:
        return bool(getattr(self, feature.value))

    @classmethod
    def all_on(cls, **overrides: Any) -> FeatureFlags:
        """Every feature on (the smoke test's ``--enable-all``); secrets still come from env."""
        values: dict[str, Any] = {feature.value: True for feature in Feature}
        values.update(overrides)
        return cls(**values)

    @classmethod
    def all_off(cls, **overrides: Any) -> FeatureFlags:
        """Every feature off whatever the environment says; secrets still come from env."""
        values: dict[str, Any] = {feature.value: False for feature in Feature}
        values.update(overrides)
        return cls(**values)

    def summary(self) -> dict[str, Any]:
        """What is on and off by variable name, safe to log: the secret is only set/unset."""
        return {
            **{feature.env_var: self.enabled(feature) for feature in Feature},
            env_var("require_policy_tokens"): self.require_policy_tokens,
            env_var("policy_token_secret"): "set" if self.policy_token_secret else "unset",
            env_var("policy_token_kid"): self.policy_token_kid,
            env_var("policy_token_expiry_hours"): self.policy_token_expiry_hours,
            env_var("encryption_keys"): "set" if self.encryption_keys else "unset",
        }


_ACCEPTED: Final[Mapping[str, str]] = {
    "policy_token_secret": "a string",
    "policy_token_kid": "1 to 64 characters",
    "policy_token_expiry_hours": "a number of hours greater than 0 and at most 720",
    "encryption_keys": "key_id:base64key entries (32-byte keys), separated by commas",
}


def env_var(field: str) -> str:
    """The environment variable :class:`FeatureFlags` reads for ``field``."""
    alias = FeatureFlags.model_fields[field].validation_alias
    if not isinstance(alias, str):  # pragma: no cover - every field has a plain alias
        raise KeyError(field)
    return alias


def _field_of(loc_head: object) -> str | None:
    for name, info in FeatureFlags.model_fields.items():
        if loc_head in (name, info.validation_alias):
            return name
    return None


def _explain(exc: ValidationError) -> str:
    """One clause per bad setting: the variable, the value given and what is accepted."""
    clauses: list[str] = []
    for error in exc.errors():
        field = _field_of(error["loc"][0]) if error["loc"] else None
        if field is None:
            clauses.append(f"{PREFIX}*: {error['msg']}")
            continue
        given = error.get("input")
        hidden = field in ("policy_token_secret", "encryption_keys")
        shown = "<hidden>" if hidden else repr(given)
        accepted = _ACCEPTED.get(field, _ACCEPTED_BOOLS)
        if field == "encryption_keys":  # which entry is wrong (never the key itself)
            accepted += f" ({error['msg'].removeprefix('Value error, ')})"
        # loc is the variable's name when the value came from the environment.
        where = f"FeatureFlags({field}=...)" if error["loc"][0] == field else env_var(field)
        clauses.append(f"{where}: {shown} is not valid, expected {accepted}")
    return "; ".join(clauses)


# -- unknown variables ------------------------------------------------------------------


def known_settings() -> frozenset[str]:
    """Every ``JOBFORGE_*`` variable the SDK reads: the flags' and :data:`OTHER_SETTINGS`."""
    return frozenset(env_var(name) for name in FeatureFlags.model_fields) | frozenset(
        OTHER_SETTINGS
    )


def _suggest(name: str, known: frozenset[str]) -> str | None:
    upper = name.upper()
    if upper in known:  # only the case is wrong
        return upper
    if f"{upper}_ENABLED" in known:  # the pre-release name of a switch
        return f"{upper}_ENABLED"
    # Compare what follows the prefix: the shared JOBFORGE_ would make anything "close".
    tails = {k[len(PREFIX) :]: k for k in known}
    close = difflib.get_close_matches(upper[len(PREFIX) :], list(tails), n=1, cutoff=0.6)
    return tails[close[0]] if close else None


def unknown_settings(environ: Mapping[str, str] | None = None) -> list[tuple[str, str | None]]:
    """``(variable, nearest known name or None)`` for each ``JOBFORGE_*`` variable in
    ``environ`` (default ``os.environ``) that the SDK does not read, sorted by name."""
    env = os.environ if environ is None else environ
    known = known_settings()
    return [
        (name, _suggest(name, known))
        for name in sorted(env)
        if name.upper().startswith(PREFIX) and name not in known
    ]


def unknown_setting_message(name: str, suggestion: str | None, value: str | None = None) -> str:
    """``<NAME>=<value> is not a JobForge setting; did you mean <suggestion>?``

    The value is shown only when it is a switch spelling, so a misspelt secret is not.
    """
    shown = f"{name}={value.strip()}" if value and value.strip().lower() in BOOL_SPELLINGS else name
    hint = f"; did you mean {suggestion}?" if suggestion else ""
    return f"{shown} is not a JobForge setting{hint}"


class UnknownSettingWarning(UserWarning):
    """A ``JOBFORGE_*`` variable is set that the SDK does not read (:func:`unknown_settings`)."""


_reported: set[str] = set()
_reported_lock = threading.Lock()


def warn_unknown_settings(environ: Mapping[str, str] | None = None) -> list[str]:
    """Warn (:class:`UnknownSettingWarning`) about each unknown ``JOBFORGE_*`` variable not
    yet reported by this process; returns the messages warned now. Clients call this when
    they are built, so a typo shows once, not once per client."""
    env = os.environ if environ is None else environ
    messages: list[str] = []
    for name, suggestion in unknown_settings(env):
        with _reported_lock:
            if name in _reported:
                continue
            _reported.add(name)
        message = unknown_setting_message(name, suggestion, env.get(name))
        warnings.warn(message, UnknownSettingWarning, stacklevel=2)
        messages.append(message)
    return messages


def reset_setting_warnings() -> None:
    """Forget which variables were reported, so the next client reports them again (tests)."""
    with _reported_lock:
        _reported.clear()
