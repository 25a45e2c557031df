"""Policy tokens (make and check them) and payload redaction.

An action job (one that writes to the outside world, such as ``autopilot.ops.apply``)
must carry a short-lived HS256 token naming the tenant, the action and the scopes granted.
The SDK validates tokens to fail early with a reason; the database verifies them again
(and remembers each ``jti``), so a caller who skips the SDK gains nothing.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from jobforge_sdk.models._base import NUL_ESCAPE, text_problem
from jobforge_sdk.models.policy import PolicyCheckResult, PolicyToken

__all__ = [
    "ISSUER",
    "REDACTED",
    "generate_policy_token",
    "redact_payload",
    "validate_policy_token",
]

ISSUER = "jobforge"
ALGORITHM = "HS256"
REDACTED = "[REDACTED]"
DEFAULT_KID = "default"
# Clock skew tolerated between the machine that mints a token and the one that checks it.
LEEWAY_SECONDS = 60
# The database's caps (45_policy.sql): a longer token or jti is malformed.
MAX_TOKEN_BYTES = 8192
MAX_JTI_LENGTH = 128


def generate_policy_token(
    *,
    secret: str,
    tenant_id: uuid.UUID | str,
    actor_id: str,
    action: str,
    scopes: Iterable[str],
    project_id: uuid.UUID | str | None = None,
    resource: str | None = None,
    context: Mapping[str, Any] | None = None,
    kid: str = DEFAULT_KID,
    expires_in: timedelta = timedelta(hours=1),
    now: datetime | None = None,
) -> str:
    """Mint a token allowing ``actor_id`` to run ``action`` for ``tenant_id``."""
    if len(secret) < 32:
        raise ValueError("secret: must be at least 32 characters")
    if expires_in <= timedelta(0):
        raise ValueError("expires_in: must be positive")
    issued = int((now or datetime.now(UTC)).timestamp())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": actor_id,
        "aud": action,
        "tid": str(tenant_id),
        "scp": sorted(set(scopes)),
        "jti": str(uuid.uuid4()),
        "iat": issued,
        "exp": issued + int(expires_in.total_seconds()),
    }
    if project_id is not None:
        claims["pid"] = str(project_id)
    if resource is not None:
        claims["res"] = resource
    if context is not None:
        claims["ctx"] = dict(context)
    return jwt.encode(claims, secret, algorithm=ALGORITHM, headers={"kid": kid})


def validate_policy_token(
    token: str,
    secret: str | Mapping[str, str],
    *,
    action: str,
    required_scopes: Iterable[str],
    tenant_id: uuid.UUID | str,
    project_id: uuid.UUID | str | None = None,
    actor_id: str | None = None,
    now: datetime | None = None,
) -> PolicyCheckResult:
    """Check a token as the database does (``jobforge_private.check_policy_token``: the
    same steps in the same order, so both give the same verdict on any token, which a
    test holds them to); never raises for a bad token.

    ``secret`` is one secret, or ``{kid: secret}`` for rotation: every key still listed
    is accepted, selected by the token's ``kid`` header. Beyond the database's checks,
    ``project_id`` and ``actor_id``, when given, must match the token's ``pid`` and
    ``sub``. Whether a ``jti`` was used already only the database knows.
    """
    moment = (now or datetime.now(UTC)).timestamp()
    read = _read_token(token)
    if isinstance(read, str):
        return _refused(read)
    header, raw, signature, signed = read
    alg = header["alg"]
    if alg != ALGORITHM:
        return _refused(f"unsupported algorithm {alg[:32]}")
    kid = header.get("kid")
    # One secret serves whatever kid the token names; a mapping must know the kid.
    key = None
    if isinstance(kid, str) and kid:
        key = secret if isinstance(secret, str) else secret.get(kid)
    if key is None:
        return _refused("unknown key", kid=kid if isinstance(kid, str) else None)
    expected = hmac.new(key.encode(), signed, hashlib.sha256).digest()
    if not hmac.compare_digest(expected, signature):
        return _refused("bad signature", kid=kid)
    claims = _claims_model(raw)
    reason = _claims_problem(raw, moment, action, list(required_scopes), tenant_id)
    if reason is None:
        reason = _caller_problem(raw, project_id, actor_id)
    if reason:
        return _refused(reason, kid=kid, claims=claims)
    return PolicyCheckResult(allowed=True, claims=claims, kid=kid)


_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_SIGNATURE = re.compile(r"[A-Za-z0-9_-]*")
_UUID_TEXT = re.compile(
    r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.IGNORECASE
)


def _b64(segment: str) -> bytes:
    """base64url without padding, canonical only: the encoder must give the same text
    back (the decoder ignores a last character's unused bits, so without this two
    strings would carry one signature)."""
    data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    if base64.urlsafe_b64encode(data).decode().rstrip("=") != segment:
        raise ValueError("not canonical base64url")
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity: PostgreSQL refuses them


def _int(text: str) -> int | float:
    # Beyond Python's digit limit for int(), a float: as large (or as far below zero)
    # for every comparison made here, which PostgreSQL's numeric makes exactly.
    return int(text) if len(text) < 4000 else float(text)


def _json_object(data: bytes) -> dict[str, Any]:
    value = json.loads(data.decode("utf-8"), parse_constant=_no_constant, parse_int=_int)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    # jsonb holds neither NUL characters nor lone surrogates: PostgreSQL refuses such a
    # token's JSON, so it is malformed here too. check_json refuses both (and nothing
    # else a decoded JSON object can hold, below its depth cap).
    text = json.dumps(value, ensure_ascii=False)
    if NUL_ESCAPE.search(text) or text_problem(text) is not None:
        raise ValueError("text PostgreSQL cannot hold")
    return value


def _read_token(token: Any) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes] | str:
    """The header, claims, signature and signed bytes of a well-formed token, or the
    reason it is not one ("missing token", "malformed")."""
    if not isinstance(token, str) or token == "":
        return "missing token"
    if text_problem(token) is not None or len(token.encode()) > MAX_TOKEN_BYTES:
        return "malformed"
    parts = token.split(".")
    if (
        len(parts) != 3
        or not _SEGMENT.fullmatch(parts[0])
        or not _SEGMENT.fullmatch(parts[1])
        or not _SIGNATURE.fullmatch(parts[2])
    ):
        return "malformed"
    try:
        header = _json_object(_b64(parts[0]))
        raw = _json_object(_b64(parts[1]))
        signature = _b64(parts[2])
    except (ValueError, RecursionError):  # binascii.Error and JSON errors are ValueErrors
        return "malformed"
    # "crit" names extensions the verifier must understand; none are.
    if not isinstance(header.get("alg"), str) or "crit" in header:
        return "malformed"
    return header, raw, signature, f"{parts[0]}.{parts[1]}".encode()


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _claims_problem(
    raw: Mapping[str, Any],
    moment: float,
    action: str,
    required: list[str],
    tenant_id: uuid.UUID | str,
) -> str | None:
    """The first claim the database refuses, in its order (45_policy.sql)."""
    if raw.get("iss") != ISSUER:
        return "wrong issuer"
    if not _number(raw.get("exp")) or any(
        name in raw and raw[name] is not None and not _number(raw[name]) for name in ("nbf", "iat")
    ):
        return "malformed"
    if raw["exp"] <= moment:
        return "expired"
    if any(
        _number(raw.get(name)) and raw[name] > moment + LEEWAY_SECONDS for name in ("nbf", "iat")
    ):
        return "not yet valid"
    tid = raw.get("tid")
    if not isinstance(tid, str) or not _UUID_TEXT.fullmatch(tid) or not _same_uuid(tid, tenant_id):
        return "wrong tenant"
    aud = raw.get("aud")
    if not (aud == action or (isinstance(aud, list) and action in aud)):
        return "wrong action"
    scopes = raw.get("scp")
    if scopes is not None and not isinstance(scopes, list):
        return "malformed"
    for scope in required:
        if scope not in (scopes or []):
            return f"missing scope {scope}"
    jti = raw.get("jti")
    if not isinstance(jti, str) or jti == "" or len(jti) > MAX_JTI_LENGTH:
        return "malformed"
    return None


def _same_uuid(text: str, tenant_id: uuid.UUID | str) -> bool:
    """Tenants compared as UUIDs, as the database casts them: upper case, or without
    hyphens, is the same tenant."""
    try:
        return uuid.UUID(text) == (
            tenant_id if isinstance(tenant_id, uuid.UUID) else uuid.UUID(str(tenant_id))
        )
    except ValueError:
        return False


def _caller_problem(
    raw: Mapping[str, Any], project_id: uuid.UUID | str | None, actor_id: str | None
) -> str | None:
    if project_id is not None:
        pid = raw.get("pid")
        if not isinstance(pid, str) or not _same_uuid(pid, project_id):
            return "wrong project"
    if actor_id is not None and raw.get("sub") != actor_id:
        return "wrong actor"
    return None


def _claims_model(raw: Mapping[str, Any]) -> PolicyToken | None:
    """The claims as a model, for the caller to read; None when they do not fit it (the
    verdict does not depend on it)."""
    try:
        return PolicyToken.model_validate(raw)
    except ValueError:
        return None


def _refused(
    reason: str, *, kid: str | None = None, claims: PolicyToken | None = None
) -> PolicyCheckResult:
    return PolicyCheckResult(allowed=False, reason=reason, kid=kid, claims=claims)


def redact_payload(payload: Any, fields: Iterable[str]) -> Any:
    """A copy of ``payload`` with each dotted path replaced by ``"[REDACTED]"``.

    A path segment that meets a list applies the rest of the path to every element
    (``items.card`` redacts ``card`` in each item); missing paths are ignored. The same
    rule runs in SQL (``jobforge_private.redact``) before anything reaches the audit log.
    """
    result = copy.deepcopy(payload)
    for path in fields:
        parts = [p for p in path.split(".") if p]
        if parts:
            _redact_path(result, parts)
    return result


def _redact_path(node: Any, parts: list[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _redact_path(item, parts)
        return
    if not isinstance(node, dict) or parts[0] not in node:
        return
    if len(parts) == 1:
        node[parts[0]] = REDACTED
    else:
        _redact_path(node[parts[0]], parts[1:])
