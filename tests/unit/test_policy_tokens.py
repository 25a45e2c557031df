"""The SDK's policy-token validator: every way a token is refused, with its reason."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from jobforge_sdk import generate_policy_token, redact_payload, validate_policy_token

SECRET = "s" * 40
OTHER = "o" * 40
TENANT = str(uuid.uuid4())
ACTION = "autopilot.ops.apply"
SCOPES = ["ops:read", "ops:write"]


def _token(**overrides: Any) -> str:
    args: dict[str, Any] = {
        "secret": SECRET,
        "tenant_id": TENANT,
        "actor_id": "alice",
        "action": ACTION,
        "scopes": SCOPES,
    }
    args.update(overrides)
    return generate_policy_token(**args)


def _check(token: str, secret: Any = SECRET, **overrides: Any) -> Any:
    args: dict[str, Any] = {"action": ACTION, "required_scopes": SCOPES, "tenant_id": TENANT}
    args.update(overrides)
    return validate_policy_token(token, secret, **args)


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_a_valid_token_is_accepted_with_its_claims() -> None:
    result = _check(_token(project_id="p1", resource="db/main", context={"ticket": 7}))
    assert result.allowed, result.reason
    assert result.claims is not None
    assert result.claims.sub == "alice"
    assert result.claims.tid == TENANT
    assert result.claims.scp == sorted(SCOPES)
    assert result.claims.exp - result.claims.iat == 3600
    assert result.kid == "default"


def test_a_token_signed_by_another_implementation_verifies() -> None:
    """HS256 written out with the standard library (no pyjwt) is accepted: the SDK speaks
    the JWS format, not one library's dialect."""
    now = int(datetime.now(UTC).timestamp())
    claims = {
        "iss": "jobforge",
        "sub": "bob",
        "aud": [ACTION],
        "tid": TENANT,
        "scp": SCOPES,
        "jti": "j-1",
        "iat": now,
        "exp": now + 60,
    }
    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT', 'kid': 'default'})}.{_b64(claims)}"
    mac = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    result = _check(token)
    assert result.allowed, result.reason
    assert result.claims is not None
    assert result.claims.sub == "bob"


@pytest.mark.parametrize(
    ("token_args", "check_args", "reason"),
    [
        ({"now": datetime.now(UTC) - timedelta(hours=2)}, {}, "expired"),
        ({"now": datetime.now(UTC) + timedelta(minutes=10)}, {}, "not yet valid"),
        ({}, {"tenant_id": str(uuid.uuid4())}, "wrong tenant"),
        ({}, {"action": "autopilot.ops.scan"}, "wrong action"),
        ({"scopes": ["ops:read"]}, {}, "missing scope ops:write"),
        ({"kid": "k2"}, {"secret": {"default": SECRET}}, "unknown key"),
        ({"secret": OTHER}, {}, "bad signature"),
        ({"project_id": "p1"}, {"project_id": "p2"}, "wrong project"),
        ({}, {"actor_id": "mallory"}, "wrong actor"),
    ],
)
def test_refusals_say_why(
    token_args: dict[str, Any], check_args: dict[str, Any], reason: str
) -> None:
    secret = check_args.pop("secret", SECRET)
    result = _check(_token(**token_args), secret, **check_args)
    assert not result.allowed
    assert result.reason == reason


def test_tampered_payload_and_signature_are_refused() -> None:
    header, payload, signature = _token().split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["scp"] = [*claims["scp"], "admin"]
    assert _check(f"{header}.{_b64(claims)}.{signature}").reason == "bad signature"
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    assert _check(f"{header}.{payload}.{flipped}").reason == "bad signature"


@pytest.mark.parametrize("alg", ["none", "HS512", "RS256"])
def test_other_algorithms_are_refused(alg: str) -> None:
    _, payload, signature = _token().split(".")
    header = _b64({"alg": alg, "typ": "JWT", "kid": "default"})
    result = _check(f"{header}.{payload}.{signature if alg != 'none' else ''}")
    assert not result.allowed
    assert result.reason == f"unsupported algorithm {alg}"


@pytest.mark.parametrize("garbage", ["abc", "a.b.c", "a.b", "...."])
def test_garbage_is_malformed_not_an_exception(garbage: str) -> None:
    result = _check(garbage)
    assert not result.allowed
    assert result.reason == "malformed"


def test_an_empty_token_is_missing_as_the_database_says() -> None:
    assert _check("").reason == "missing token"


def test_key_rotation_accepts_every_listed_kid() -> None:
    keys = {"2026-01": SECRET, "2026-06": OTHER}
    assert _check(_token(kid="2026-01"), keys).allowed
    assert _check(_token(kid="2026-06", secret=OTHER), keys).allowed
    assert _check(_token(kid="2025-12"), keys).reason == "unknown key"


def test_short_secrets_are_refused_when_minting() -> None:
    with pytest.raises(ValueError, match="secret"):
        _token(secret="short")


def test_redact_payload_handles_dotted_paths_and_lists() -> None:
    payload: dict[str, Any] = {
        "user": {"email": "a@example.com", "name": "A"},
        "items": [{"card": "4111", "sku": 1}, {"card": "5500", "sku": 2}, "plain"],
        "keep": True,
    }
    redacted = redact_payload(payload, ["user.email", "items.card", "missing.path", "keep.x"])
    assert redacted == {
        "user": {"email": "[REDACTED]", "name": "A"},
        "items": [{"card": "[REDACTED]", "sku": 1}, {"card": "[REDACTED]", "sku": 2}, "plain"],
        "keep": True,
    }
    assert payload["user"]["email"] == "a@example.com"  # the input is not modified


def test_a_token_without_kid_or_iat() -> None:
    now = int(datetime.now(UTC).timestamp())
    claims = {
        "iss": "jobforge",
        "sub": "a",
        "aud": ACTION,
        "tid": TENANT,
        "scp": SCOPES,
        "jti": "j",
        "exp": now + 60,
    }
    no_iat = jwt.encode(claims, SECRET, algorithm="HS256", headers={"kid": "default"})
    assert _check(no_iat).allowed  # the database does not require iat either
    no_kid = jwt.encode(claims, SECRET, algorithm="HS256")
    assert _check(no_kid).reason == "unknown key"  # the database looks keys up by kid
