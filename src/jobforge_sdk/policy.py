"""Policy tokens (make and check them) and payload redaction.

An action job (one that writes to the outside world, such as ``autopilot.ops.apply``)
must carry a short-lived HS256 token naming the tenant, the action and the scopes granted.
The SDK validates tokens to fail early with a reason; the database verifies them again
(and remembers each ``jti``), so a caller who skips the SDK gains nothing.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

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
    """Check a token the way the database does; never raises for a bad token.

    ``secret`` is one secret, or ``{kid: secret}`` for rotation: every key still listed
    is accepted, selected by the token's ``kid`` header.
    """
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError:
        return _refused("malformed")
    alg = header.get("alg")
    if alg != ALGORITHM:
        return _refused(f"unsupported algorithm {alg}")
    # The database looks the key up by kid, so a token without one is refused there too.
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        return _refused("unknown key")
    # One secret serves whatever kid the token names; a mapping must know the kid.
    key = secret if isinstance(secret, str) else secret.get(kid)
    if key is None:
        return _refused("unknown key", kid=kid)
    moment = int((now or datetime.now(UTC)).timestamp())
    try:
        raw = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            options={
                "verify_aud": False,
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "require": ["jti", "exp"],
            },
        )
        claims = PolicyToken.model_validate(raw)
    except jwt.InvalidSignatureError:
        return _refused("bad signature", kid=kid)
    except (jwt.InvalidTokenError, ValueError):
        return _refused("malformed", kid=kid)
    reason = _claims_problem(
        claims, raw, moment, action, set(required_scopes), tenant_id, project_id, actor_id
    )
    if reason:
        return _refused(reason, kid=kid, claims=claims)
    return PolicyCheckResult(allowed=True, claims=claims, kid=kid)


def _claims_problem(
    claims: PolicyToken,
    raw: Mapping[str, Any],
    moment: int,
    action: str,
    required: set[str],
    tenant_id: uuid.UUID | str,
    project_id: uuid.UUID | str | None,
    actor_id: str | None,
) -> str | None:
    audiences = [claims.aud] if isinstance(claims.aud, str) else claims.aud
    nbf = raw.get("nbf")
    checks: list[tuple[bool, str]] = [
        (claims.iss != ISSUER, "wrong issuer"),
        (claims.exp <= moment, "expired"),
        (claims.iat is not None and claims.iat > moment + LEEWAY_SECONDS, "not yet valid"),
        (isinstance(nbf, int | float) and nbf > moment + LEEWAY_SECONDS, "not yet valid"),
        (claims.tid != str(tenant_id), "wrong tenant"),
        (action not in audiences, "wrong action"),
        (project_id is not None and claims.pid != str(project_id), "wrong project"),
        (actor_id is not None and claims.sub != actor_id, "wrong actor"),
    ]
    for failed, reason in checks:
        if failed:
            return reason
    missing = sorted(required - set(claims.scp))
    return f"missing scope {missing[0]}" if missing else None


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
