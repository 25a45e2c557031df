from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobforge_sdk import ConfigurationError, JobForgeClient
from jobforge_sdk.flags import (
    BOOL_SPELLINGS,
    OTHER_SETTINGS,
    Feature,
    FeatureFlags,
    UnknownSettingWarning,
    env_var,
    known_settings,
    reset_setting_warnings,
    unknown_setting_message,
    unknown_settings,
    warn_unknown_settings,
)

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/none?connect_timeout=1"
ROOT = Path(__file__).parents[2]
SWITCHES = {
    "JOBFORGE_EVENTS_ENABLED": "events",
    "JOBFORGE_TRIGGERS_ENABLED": "triggers",
    "JOBFORGE_AUTOPILOT_JOBS_ENABLED": "autopilot_jobs",
    "JOBFORGE_ACTION_JOBS_ENABLED": "action_jobs",
    "JOBFORGE_AUDIT_LOGGING_ENABLED": "audit_logging",
    "JOBFORGE_MANIFESTS_ENABLED": "manifests",
}
OLD_NAMES = [name.removesuffix("_ENABLED") for name in SWITCHES]


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No flag or stray JOBFORGE_* variable of the runner leaks in (the test suite's and
    CI's own settings stay: they are known)."""
    for name in list(os.environ):
        if name.upper().startswith("JOBFORGE_") and name not in OTHER_SETTINGS:
            monkeypatch.delenv(name)
    reset_setting_warnings()
    yield
    reset_setting_warnings()


# -- reading ----------------------------------------------------------------------------


def test_everything_is_off_by_default() -> None:
    flags = FeatureFlags()
    assert not any(flags.enabled(f) for f in Feature)
    assert flags.require_policy_tokens is True
    assert flags.policy_token_expiry_hours == 1.0


def test_each_feature_is_read_from_its_enabled_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert {f.env_var: f.value for f in Feature} == SWITCHES
    for name, field in SWITCHES.items():
        monkeypatch.setenv(name, "1")
        assert getattr(FeatureFlags(), field) is True, name
        monkeypatch.delenv(name)
        assert getattr(FeatureFlags(), field) is False, name


def test_the_policy_settings_keep_their_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBFORGE_REQUIRE_POLICY_TOKENS", "off")
    monkeypatch.setenv("JOBFORGE_POLICY_TOKEN_SECRET", "s3cret-value")
    monkeypatch.setenv("JOBFORGE_POLICY_TOKEN_KID", "ops-2026")
    monkeypatch.setenv("JOBFORGE_POLICY_TOKEN_EXPIRY_HOURS", "2.5")
    flags = FeatureFlags()
    assert flags.require_policy_tokens is False
    assert flags.policy_token_secret is not None
    assert flags.policy_token_secret.get_secret_value() == "s3cret-value"
    assert flags.policy_token_kid == "ops-2026"
    assert flags.policy_token_expiry_hours == 2.5


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        *[(spelling, on) for spelling, on in BOOL_SPELLINGS.items()],
        *[(spelling.upper(), on) for spelling, on in BOOL_SPELLINGS.items()],
        ("True", True),
        (" yes\n", True),
        ("\tOFF ", False),
    ],
)
def test_accepted_spellings(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    monkeypatch.setenv("JOBFORGE_EVENTS_ENABLED", value)
    assert FeatureFlags().events is expected


def test_the_accepted_spellings_are_exactly_these() -> None:
    assert sorted(BOOL_SPELLINGS) == sorted(["1", "0", "true", "false", "yes", "no", "on", "off"])


def test_an_empty_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBFORGE_EVENTS_ENABLED", "")
    monkeypatch.setenv("JOBFORGE_POLICY_TOKEN_SECRET", "")
    flags = FeatureFlags()
    assert flags.events is False
    assert flags.policy_token_secret is None


@pytest.mark.parametrize("old", OLD_NAMES)
def test_the_old_names_are_not_read(monkeypatch: pytest.MonkeyPatch, old: str) -> None:
    monkeypatch.setenv(old, "1")
    assert not any(FeatureFlags().enabled(f) for f in Feature)


def test_names_are_case_sensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("jobforge_events_enabled", "1")
    assert FeatureFlags().events is False
    assert unknown_settings({"jobforge_events_enabled": "1"}) == [
        ("jobforge_events_enabled", "JOBFORGE_EVENTS_ENABLED")
    ]


def test_keyword_arguments_use_field_names_and_override_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOBFORGE_EVENTS_ENABLED", "1")
    assert FeatureFlags(events=False).events is False
    assert FeatureFlags(triggers=True).triggers is True
    assert FeatureFlags(triggers=True).events is True
    assert not any(FeatureFlags.all_off().enabled(f) for f in Feature)


# -- bad values -------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*SWITCHES, "JOBFORGE_REQUIRE_POLICY_TOKENS"])
@pytest.mark.parametrize("value", ["maybe", "2", "t", "enabled"])
def test_a_bad_switch_value_names_the_variable_and_the_spellings(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as caught:
        FeatureFlags()
    message = str(caught.value)
    assert name in message
    assert repr(value) in message
    assert "1, 0, true, false, yes, no, on, off" in message


@pytest.mark.parametrize("value", ["abc", "0", "-1", "721"])
def test_a_bad_expiry_names_the_variable_and_the_range(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("JOBFORGE_POLICY_TOKEN_EXPIRY_HOURS", value)
    with pytest.raises(ConfigurationError, match="JOBFORGE_POLICY_TOKEN_EXPIRY_HOURS") as caught:
        FeatureFlags()
    assert "greater than 0 and at most 720" in str(caught.value)


def test_every_bad_variable_is_named_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBFORGE_EVENTS_ENABLED", "maybe")
    monkeypatch.setenv("JOBFORGE_POLICY_TOKEN_KID", "k" * 65)
    with pytest.raises(ConfigurationError) as caught:
        FeatureFlags()
    assert "JOBFORGE_EVENTS_ENABLED" in str(caught.value)
    assert "JOBFORGE_POLICY_TOKEN_KID" in str(caught.value)


def test_a_bad_keyword_argument_names_the_field_not_the_variable() -> None:
    with pytest.raises(ConfigurationError, match=r"FeatureFlags\(events=\.\.\.\)"):
        FeatureFlags(events="maybe")


def test_building_a_client_with_a_bad_value_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOBFORGE_MANIFESTS_ENABLED", "sometimes")
    with pytest.raises(ConfigurationError, match="JOBFORGE_MANIFESTS_ENABLED"):
        JobForgeClient.from_postgres(UNREACHABLE)


# -- summary ----------------------------------------------------------------------------


def test_summary_uses_the_variable_names_and_hides_the_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOBFORGE_EVENTS_ENABLED", "1")
    monkeypatch.setenv("JOBFORGE_POLICY_TOKEN_SECRET", "s3cret-value")
    flags = FeatureFlags()
    summary = flags.summary()
    assert list(summary) == [
        *SWITCHES,
        "JOBFORGE_REQUIRE_POLICY_TOKENS",
        "JOBFORGE_POLICY_TOKEN_SECRET",
        "JOBFORGE_POLICY_TOKEN_KID",
        "JOBFORGE_POLICY_TOKEN_EXPIRY_HOURS",
        "JOBFORGE_ENCRYPTION_KEYS",
    ]
    assert summary["JOBFORGE_EVENTS_ENABLED"] is True
    assert summary["JOBFORGE_TRIGGERS_ENABLED"] is False
    assert summary["JOBFORGE_POLICY_TOKEN_SECRET"] == "set"
    assert "s3cret-value" not in repr(summary)
    assert "s3cret-value" not in repr(flags)


def test_all_on() -> None:
    flags = FeatureFlags.all_on(policy_token_secret="x" * 32)
    assert all(flags.enabled(f) for f in Feature)


# -- unknown variables ------------------------------------------------------------------


def test_the_known_settings_are_the_flags_and_the_other_settings() -> None:
    assert known_settings() == {
        *SWITCHES,
        "JOBFORGE_REQUIRE_POLICY_TOKENS",
        "JOBFORGE_POLICY_TOKEN_SECRET",
        "JOBFORGE_POLICY_TOKEN_KID",
        "JOBFORGE_POLICY_TOKEN_EXPIRY_HOURS",
        "JOBFORGE_ENCRYPTION_KEYS",
        *OTHER_SETTINGS,
    }
    assert env_var("events") == "JOBFORGE_EVENTS_ENABLED"
    assert env_var("policy_token_kid") == "JOBFORGE_POLICY_TOKEN_KID"


def test_every_jobforge_variable_the_code_names_is_known() -> None:
    """The one list in flags.py covers every JOBFORGE_* name written in the SDK, its
    scripts, CI and the test support code, so none of them is ever reported as unknown."""
    pattern = re.compile(r"\bJOBFORGE_[A-Z0-9_]*[A-Z0-9]\b")
    paths = [
        *(ROOT / "src").rglob("*.py"),
        *(ROOT / "tests" / "support").rglob("*.py"),
        *(p for p in (ROOT / "scripts").rglob("*") if p.is_file()),
        *(p for p in (ROOT / ".ci").glob("*") if p.is_file()),
        ROOT / "tests" / "conftest.py",
        ROOT / "Makefile",
    ]
    found: dict[str, str] = {}
    for path in sorted(p for p in paths if p.exists()):
        for name in pattern.findall(path.read_text(encoding="utf-8", errors="replace")):
            found.setdefault(name, str(path.relative_to(ROOT)))
    unknown = {name: where for name, where in found.items() if name not in known_settings()}
    assert unknown == {}
    assert "JOBFORGE_DATABASE_URL" in found


@pytest.mark.parametrize("old", OLD_NAMES)
def test_an_old_name_is_reported_with_its_enabled_name(old: str) -> None:
    assert unknown_settings({old: "1"}) == [(old, f"{old}_ENABLED")]


def test_misspellings_get_the_nearest_known_name() -> None:
    env = {
        "JOBFORGE_DATABSE_URL": "postgresql://x",
        "JOBFORGE_TRIGGER_ENABLED": "1",
        "JOBFORGE_POLICY_TOKEN_SECRT": "abc",
        "JOBFORGE_NONSENSE": "1",
        "JOBFORGE_DATABASE_URL": "postgresql://x",
        "JOBFORGE_TEST_BACKEND": "url",
        "PATH": "/bin",
        "MY_JOBFORGE_EVENTS": "1",
    }
    assert unknown_settings(env) == [
        ("JOBFORGE_DATABSE_URL", "JOBFORGE_DATABASE_URL"),
        ("JOBFORGE_NONSENSE", None),
        ("JOBFORGE_POLICY_TOKEN_SECRT", "JOBFORGE_POLICY_TOKEN_SECRET"),
        ("JOBFORGE_TRIGGER_ENABLED", "JOBFORGE_TRIGGERS_ENABLED"),
    ]


def test_known_variables_are_not_reported() -> None:
    assert unknown_settings(dict.fromkeys(known_settings(), "1")) == []


def test_the_message_names_the_variable_and_the_suggestion() -> None:
    assert (
        unknown_setting_message("JOBFORGE_EVENTS", "JOBFORGE_EVENTS_ENABLED", "1")
        == "JOBFORGE_EVENTS=1 is not a JobForge setting; did you mean JOBFORGE_EVENTS_ENABLED?"
    )
    assert (
        unknown_setting_message("JOBFORGE_NONSENSE", None, "x")
        == "JOBFORGE_NONSENSE is not a JobForge setting"
    )


def test_the_message_never_shows_a_value_that_could_be_a_secret() -> None:
    message = unknown_setting_message(
        "JOBFORGE_POLICY_TOKEN_SECRT", "JOBFORGE_POLICY_TOKEN_SECRET", "hunter2-hunter2"
    )
    assert "hunter2" not in message
    assert "JOBFORGE_POLICY_TOKEN_SECRT" in message


def test_each_unknown_variable_is_warned_once_per_process() -> None:
    env = {"JOBFORGE_EVENTS": "1", "JOBFORGE_MANIFESTS": "on"}
    with pytest.warns(UnknownSettingWarning) as caught:
        first = warn_unknown_settings(env)
    assert first == [
        "JOBFORGE_EVENTS=1 is not a JobForge setting; did you mean JOBFORGE_EVENTS_ENABLED?",
        "JOBFORGE_MANIFESTS=on is not a JobForge setting; did you mean JOBFORGE_MANIFESTS_ENABLED?",
    ]
    assert [str(w.message) for w in caught] == first
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnknownSettingWarning)  # a second warning would raise
        assert warn_unknown_settings(env) == []
    with pytest.warns(UnknownSettingWarning) as again:
        assert warn_unknown_settings({**env, "JOBFORGE_TRIGGERS": "1"}) == [
            "JOBFORGE_TRIGGERS=1 is not a JobForge setting; did you mean JOBFORGE_TRIGGERS_ENABLED?"
        ]
    assert len(again) == 1


def test_reset_makes_the_next_call_warn_again() -> None:
    with pytest.warns(UnknownSettingWarning):
        warn_unknown_settings({"JOBFORGE_EVENTS": "1"})
    reset_setting_warnings()
    with pytest.warns(UnknownSettingWarning, match="JOBFORGE_EVENTS_ENABLED"):
        assert len(warn_unknown_settings({"JOBFORGE_EVENTS": "1"})) == 1


def test_building_a_client_warns_once_about_an_old_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOBFORGE_EVENTS", "1")
    expected = "JOBFORGE_EVENTS=1 is not a JobForge setting; did you mean JOBFORGE_EVENTS_ENABLED?"
    with pytest.warns(UnknownSettingWarning) as caught:
        client = JobForgeClient.from_postgres(UNREACHABLE, flags=FeatureFlags())
    client.close()
    assert [str(w.message) for w in caught] == [expected]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnknownSettingWarning)
        JobForgeClient.from_postgres(UNREACHABLE).close()
    assert client.flags.events is False
