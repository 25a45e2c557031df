"""``supabase/schema/45_policy.sql``: policy keys and the policy tokens action jobs carry.

HMAC-SHA256 in SQL, a valid token accepted once, every way a token is refused (each
denial audited), key administration, and ``jobforge_verify_policy_token``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
import uuid
from collections.abc import Iterator
from typing import Any

import jwt
import pytest

from tests.integration.sql.helpers import (
    ACTION,
    ACTION_INPUTS,
    SCAN,
    ActAs,
    audit_rows,
    count,
    jobs_of,
    sql_error,
)
from tests.support.roles import RoleSession, tenant_claims


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_token(
    header: dict[str, Any], claims: dict[str, Any], secret: str | None, signature: str | None = None
) -> str:
    """A compact JWS built by hand (for headers pyjwt will not produce)."""
    h = b64(json.dumps(header).encode())
    p = b64(json.dumps(claims).encode())
    if signature is None:
        signature = (
            b64(hmac.new(secret.encode(), f"{h}.{p}".encode(), hashlib.sha256).digest())
            if secret
            else ""
        )
    return f"{h}.{p}.{signature}"


def claims_for(tenant: uuid.UUID, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": "jobforge",
        "sub": "user-42",
        "aud": ACTION,
        "tid": str(tenant),
        "scp": ["ops:read", "ops:write"],
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def mint(kid: str, secret: str, tenant: uuid.UUID, **overrides: Any) -> str:
    return jwt.encode(
        claims_for(tenant, **overrides), secret, algorithm="HS256", headers={"kid": kid}
    )


def new_key(sr: RoleSession) -> tuple[str, str]:
    kid = f"kid-{uuid.uuid4().hex[:12]}"
    secret = secrets.token_urlsafe(48)
    sr.call("jobforge_add_policy_key", p_kid=kid, p_secret=secret)
    return kid, secret


def test_hmac_matches_rfc_4231_and_python(admin_conn: Any) -> None:
    def sql_hmac(key: bytes, message: bytes) -> bytes:
        row = admin_conn.execute(
            "select jobforge_private.hmac_sha256(%s, %s)", (key, message)
        ).fetchone()
        return bytes(row[0])

    # RFC 4231 test cases 2 and 6 (a key longer than the block is hashed first).
    assert sql_hmac(b"Jefe", b"what do ya want for nothing?").hex() == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )
    assert sql_hmac(
        b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First"
    ).hex() == ("60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54")
    for key_len in (0, 1, 32, 63, 64, 65, 200):
        key = secrets.token_bytes(key_len)
        message = secrets.token_bytes(key_len * 3 + 1)
        assert sql_hmac(key, message) == hmac.new(key, message, hashlib.sha256).digest()


@pytest.fixture(scope="module")
def policy_keys(enabled_db_url: str) -> Iterator[dict[str, tuple[str, str]]]:
    session = RoleSession(enabled_db_url, "service_role")
    try:
        current = new_key(session)
        retired = new_key(session)
        session.call("jobforge_retire_policy_key", p_kid=retired[0])
        yield {"current": current, "retired": retired}
    finally:
        session.close()


def test_valid_token_is_accepted_once(
    act_as: ActAs, enabled_db_url: str, enabled_admin: Any, policy_keys: dict[str, tuple[str, str]]
) -> None:
    tenant = uuid.uuid4()
    kid, secret = policy_keys["current"]
    user = act_as("authenticated", tenant_claims(tenant, sub="user-42"), url=enabled_db_url)
    token = mint(kid, secret, tenant)
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]

    # verify does not consume; it may be called any number of times.
    for _ in range(2):
        verdict = user.call(
            "jobforge_verify_policy_token",
            p_tenant_id=tenant,
            p_template_key=ACTION,
            p_policy_token=token,
        )
        assert verdict["allowed"] is True
        assert verdict["reason"] is None
        assert verdict["jti"] == jti

    # A dry run verifies but does not consume either.
    dry = user.call(
        "jobforge_request_job",
        p_tenant_id=tenant,
        p_template_key=ACTION,
        p_inputs=ACTION_INPUTS,
        p_policy_token=token,
        p_dry_run=True,
    )
    assert dry["job"] is None
    assert dry["would_enqueue"]["type"] == ACTION

    result = user.call(
        "jobforge_request_job",
        p_tenant_id=tenant,
        p_template_key=ACTION,
        p_inputs=ACTION_INPUTS,
        p_policy_token=token,
    )
    assert result["job"]["type"] == ACTION
    assert result["job"]["max_attempts"] == 1
    request_audit = enabled_admin.execute(
        "select details -> 'policy' from jobforge_audit_logs where id = %s", (result["audit_id"],)
    ).fetchone()[0]
    assert request_audit == {"kid": kid, "jti": jti, "scopes": ["ops:read", "ops:write"]}

    with sql_error("PT403", "policy token refused: replayed"):
        user.call(
            "jobforge_request_job",
            p_tenant_id=tenant,
            p_template_key=ACTION,
            p_inputs=ACTION_INPUTS,
            p_policy_token=token,
        )
    verdict = user.call(
        "jobforge_verify_policy_token",
        p_tenant_id=tenant,
        p_template_key=ACTION,
        p_policy_token=token,
    )
    assert verdict == {
        "allowed": False,
        "reason": "replayed",
        "audit_id": verdict["audit_id"],
        "jti": jti,
    }
    assert len(jobs_of(enabled_admin, tenant)) == 1
    outcomes = [(r["action"], r["outcome"], r["reason"]) for r in audit_rows(enabled_admin, tenant)]
    assert outcomes == [
        ("policy_check", "success", None),
        ("policy_check", "success", None),
        ("job_request", "dry_run", None),
        ("job_request", "success", None),
        ("policy_check", "denied", "replayed"),
    ]
    assert enabled_admin.execute(
        "select tenant_id, template_key, expires_at > now()"
        " from jobforge_private.policy_token_uses where jti = %s",
        (jti,),
    ).fetchone() == (tenant, ACTION, True)

    # An absurd exp is still just a future exp.
    far = mint(kid, secret, tenant, exp=10**20)
    assert (
        user.call(
            "jobforge_request_job",
            p_tenant_id=tenant,
            p_template_key=ACTION,
            p_inputs=ACTION_INPUTS,
            p_policy_token=far,
        )["job"]["type"]
        == ACTION
    )


def _bad_tokens(keys: dict[str, tuple[str, str]], tenant: uuid.UUID) -> list[tuple[str, str, str]]:
    kid, secret = keys["current"]
    retired_kid, retired_secret = keys["retired"]
    now = int(time.time())
    good = mint(kid, secret, tenant)
    h, p, s = good.split(".")
    forged_claims = b64(
        json.dumps(claims_for(tenant, scp=["ops:read", "ops:write", "admin"])).encode()
    )
    flipped = s[:10] + ("A" if s[10] != "A" else "B") + s[11:]
    # The last character of a 32-byte signature carries 2 unused bits: a non-canonical
    # spelling of the same bytes.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    noncanonical = s[:-1] + alphabet[alphabet.index(s[-1]) ^ 1]
    return [
        ("expired", mint(kid, secret, tenant, iat=now - 7200, exp=now - 3600), "expired"),
        (
            "not yet valid (nbf)",
            mint(kid, secret, tenant, nbf=now + 3600, exp=now + 7200),
            "not yet valid",
        ),
        (
            "not yet valid (iat)",
            mint(kid, secret, tenant, iat=now + 3600, exp=now + 7200),
            "not yet valid",
        ),
        ("wrong tenant", mint(kid, secret, uuid.uuid4()), "wrong tenant"),
        ("wrong action", mint(kid, secret, tenant, aud=SCAN), "wrong action"),
        ("missing scope", mint(kid, secret, tenant, scp=["ops:read"]), "missing scope ops:write"),
        ("no scopes", mint(kid, secret, tenant, scp=None), "missing scope ops:read"),
        ("wrong issuer", mint(kid, secret, tenant, iss="someone"), "wrong issuer"),
        ("no exp", mint(kid, secret, tenant, exp=None), "malformed"),
        ("no jti", mint(kid, secret, tenant, jti=None), "malformed"),
        ("tampered payload", f"{h}.{forged_claims}.{s}", "bad signature"),
        ("tampered signature", f"{h}.{p}.{flipped}", "bad signature"),
        ("non-canonical signature", f"{h}.{p}.{noncanonical}", "malformed"),
        ("wrong secret", mint(kid, secrets.token_urlsafe(48), tenant), "bad signature"),
        (
            "alg none",
            raw_token({"alg": "none", "typ": "JWT", "kid": kid}, claims_for(tenant), None),
            "unsupported algorithm none",
        ),
        (
            "HS512",
            jwt.encode(
                claims_for(tenant), secret + secret, algorithm="HS512", headers={"kid": kid}
            ),
            "unsupported algorithm HS512",
        ),
        (
            "RS256 header",
            raw_token({"alg": "RS256", "typ": "JWT", "kid": kid}, claims_for(tenant), secret),
            "unsupported algorithm RS256",
        ),
        ("unknown kid", mint("kid-does-not-exist", secret, tenant), "unknown key"),
        ("no kid", jwt.encode(claims_for(tenant), secret, algorithm="HS256"), "unknown key"),
        ("retired key", mint(retired_kid, retired_secret, tenant), "retired key"),
        ("garbage", "not.a.token!", "malformed"),
        ("two parts", f"{h}.{p}", "malformed"),
        ("header not json", f"{b64(b'{nope')}.{p}.{s}", "malformed"),
        ("missing", "", "missing token"),
    ]


KEY_PROBLEMS = {"unknown key", "retired key", "bad signature"}


def test_bad_tokens_are_refused_and_denials_audited(
    act_as: ActAs, enabled_db_url: str, enabled_admin: Any, policy_keys: dict[str, tuple[str, str]]
) -> None:
    tenant = uuid.uuid4()
    user = act_as("authenticated", tenant_claims(tenant), url=enabled_db_url)
    sr = act_as("service_role", url=enabled_db_url)
    cases = _bad_tokens(policy_keys, tenant)
    for name, token, reason in cases:
        # API callers are told one reason for a key problem; the audit row says which.
        public = "invalid token" if reason in KEY_PROBLEMS else reason
        with sql_error("PT403", f"policy token refused: {public}"):
            user.call(
                "jobforge_request_job",
                p_tenant_id=tenant,
                p_template_key=ACTION,
                p_inputs=ACTION_INPUTS,
                p_policy_token=token,
            )
        with sql_error("PT403", f"policy token refused: {public}"):
            sr.call(
                "jobforge_request_job",
                p_tenant_id=tenant,
                p_template_key=ACTION,
                p_inputs=ACTION_INPUTS,
                p_policy_token=token,
                p_dry_run=True,
            )
        verdict = user.call(
            "jobforge_verify_policy_token",
            p_tenant_id=tenant,
            p_template_key=ACTION,
            p_policy_token=token,
        )
        assert (verdict["allowed"], verdict["reason"]) == (False, public), name
        row = enabled_admin.execute(
            "select action, outcome, reason, tenant_id from jobforge_audit_logs where id = %s",
            (verdict["audit_id"],),
        ).fetchone()
        assert row == ("policy_check", "denied", reason, tenant), name

    with sql_error("PT403", "policy token refused: missing token"):
        user.call(
            "jobforge_request_job",
            p_tenant_id=tenant,
            p_template_key=ACTION,
            p_inputs=ACTION_INPUTS,
        )
    # A refused request leaves nothing behind: no job, no job_request row, no used jti.
    assert jobs_of(enabled_admin, tenant) == []
    rows = audit_rows(enabled_admin, tenant)
    assert len(rows) == len(cases)
    assert {r["action"] for r in rows} == {"policy_check"}
    assert (
        count(
            enabled_admin,
            "select count(*) from jobforge_private.policy_token_uses where tenant_id = %s",
            tenant,
        )
        == 0
    )


def test_policy_key_admin(act_as: ActAs, admin_conn: Any) -> None:
    sr = act_as("service_role")
    kid = f"kid-{uuid.uuid4().hex[:10]}"
    secret = "s" * 31 + "-TOPSECRET"
    added = sr.call("jobforge_add_policy_key", p_kid=kid, p_secret=secret)
    assert set(added) == {"kid", "created_at"}
    assert added["kid"] == kid
    with sql_error("PT409", "already exists"):
        sr.call("jobforge_add_policy_key", p_kid=kid, p_secret=secret)
    with sql_error("PT400", "secret: must be at least 32 characters"):
        sr.call("jobforge_add_policy_key", p_kid=f"{kid}-2", p_secret="short")
    retired = sr.call("jobforge_retire_policy_key", p_kid=kid)
    assert retired["kid"] == kid
    assert retired["retired_at"] is not None
    assert sr.call("jobforge_retire_policy_key", p_kid=kid)["retired_at"] == retired["retired_at"]
    with sql_error("PT404", "not found"):
        sr.call("jobforge_retire_policy_key", p_kid="kid-never-added")

    rows = admin_conn.execute(
        "select action, outcome, tenant_id, details::text from jobforge_audit_logs"
        " where target_type = 'policy_key' and target_id = %s order by created_at",
        (kid,),
    ).fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("policy_key_add", "success", None),
        ("policy_key_retire", "success", None),
        ("policy_key_retire", "skipped", None),
    ]
    assert all("TOPSECRET" not in r[3] for r in rows)


def test_verify_policy_token_errors(act_as: ActAs) -> None:
    tenant, other = uuid.uuid4(), uuid.uuid4()
    user = act_as("authenticated", tenant_claims(tenant))
    with sql_error("PT403", "tenant_id"):
        user.call(
            "jobforge_verify_policy_token",
            p_tenant_id=other,
            p_template_key=ACTION,
            p_policy_token="x",
        )
    with sql_error("PT404", "not found"):
        user.call(
            "jobforge_verify_policy_token",
            p_tenant_id=tenant,
            p_template_key="autopilot.a.b",
            p_policy_token="x",
        )
    verdict = user.call(
        "jobforge_verify_policy_token",
        p_tenant_id=tenant,
        p_template_key=ACTION,
        p_policy_token="x",
    )
    assert verdict["allowed"] is False
    assert verdict["reason"] == "malformed"
    assert verdict["jti"] is None


# -- tenants ----------------------------------------------------------------------------


def test_user_of_tenant_a_cannot_verify_or_spend_tenant_b_tokens(
    act_as: ActAs, enabled_db_url: str, enabled_admin: Any, policy_keys: dict[str, tuple[str, str]]
) -> None:
    a, b = uuid.uuid4(), uuid.uuid4()
    kid, secret = policy_keys["current"]
    token_of_b = mint(kid, secret, b)
    user_a = act_as("authenticated", tenant_claims(a), url=enabled_db_url)

    refused = f"tenant_id: caller may not act for tenant {b}"
    with sql_error("PT403", refused):
        user_a.call(
            "jobforge_verify_policy_token",
            p_tenant_id=b,
            p_template_key=ACTION,
            p_policy_token=token_of_b,
        )
    with sql_error("PT403", refused):
        user_a.call(
            "jobforge_request_job",
            p_tenant_id=b,
            p_template_key=ACTION,
            p_inputs=ACTION_INPUTS,
            p_policy_token=token_of_b,
        )
    assert audit_rows(enabled_admin, b) == []  # not even a denial lands in B's trail

    # For A's own tenant, B's token is a token for the wrong tenant, and it is not spent.
    verdict = user_a.call(
        "jobforge_verify_policy_token",
        p_tenant_id=a,
        p_template_key=ACTION,
        p_policy_token=token_of_b,
    )
    assert (verdict["allowed"], verdict["reason"]) == (False, "wrong tenant")
    with sql_error("PT403", "policy token refused: wrong tenant"):
        user_a.call(
            "jobforge_request_job",
            p_tenant_id=a,
            p_template_key=ACTION,
            p_inputs=ACTION_INPUTS,
            p_policy_token=token_of_b,
        )
    assert [(r["action"], r["outcome"], r["reason"]) for r in audit_rows(enabled_admin, a)] == [
        ("policy_check", "denied", "wrong tenant")
    ]
    assert jobs_of(enabled_admin, a) == []
    assert audit_rows(enabled_admin, b) == []

    user_b = act_as("authenticated", tenant_claims(b), url=enabled_db_url)
    result = user_b.call(
        "jobforge_request_job",
        p_tenant_id=b,
        p_template_key=ACTION,
        p_inputs=ACTION_INPUTS,
        p_policy_token=token_of_b,
    )
    assert result["job"]["tenant_id"] == str(b)
