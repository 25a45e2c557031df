"""One table of policy tokens, two verdicts that must agree: the SDK's offline
``validate_policy_token`` and the database's ``jobforge_verify_policy_token`` (issue 17).

The table holds what the issue found the two disagreeing on (an ``exp`` given as a string,
no ``iss``, a 300-character ``jti``, 9 kB tokens, a tenant written in upper case or
without hyphens) and every other way a token can be malformed. API callers are told
"invalid token" for an unknown key or a bad signature, where the SDK, which holds the
secret, says which; every other reason is the same word for word.
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

import pytest

from jobforge_sdk.policy import generate_policy_token, validate_policy_token
from tests.integration.sql.helpers import ACTION
from tests.support.roles import RoleSession

KID = f"parity-{uuid.uuid4().hex[:8]}"
SECRET = secrets.token_urlsafe(40)
TENANT = uuid.uuid4()
KEY_PROBLEMS = {"unknown key", "bad signature"}
# The SDK's key table as the database's: one secret alone would serve any kid.
KEYS = {KID: SECRET}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign(header: str, claims: str, secret: str = SECRET) -> str:
    """A token from the JSON text of its header and claims, as given (any bytes)."""
    h, p = b64(header.encode()), b64(claims.encode())
    return f"{h}.{p}.{b64(hmac.new(secret.encode(), f'{h}.{p}'.encode(), hashlib.sha256).digest())}"


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    value: dict[str, Any] = {
        "iss": "jobforge",
        "sub": "user-1",
        "aud": ACTION,
        "tid": str(TENANT),
        "scp": ["ops:read", "ops:write"],
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + 600,
    }
    value.update(overrides)
    return {k: v for k, v in value.items() if v is not DROP}


DROP = object()
HEADER = {"alg": "HS256", "typ": "JWT", "kid": KID}


def token(header: dict[str, Any] | None = None, **overrides: Any) -> str:
    return sign(json.dumps(header or HEADER), json.dumps(claims(**overrides)))


def text_token(claims_text: str, header: dict[str, Any] | None = None) -> str:
    return sign(json.dumps(header or HEADER), claims_text)


def _tokens() -> list[tuple[str, str]]:
    now = int(time.time())
    valid = token()
    h, p, s = valid.split(".")
    flipped = s[:-1] + ("B" if s[-1] == "A" else "A")
    # The last character of a 43-character signature carries 2 unused bits: another
    # character with the same 4 used bits decodes to the same bytes.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    index = alphabet.index(s[-1])
    non_canonical = s[:-1] + alphabet[index ^ 1]
    base = json.dumps(claims())
    return [
        ("valid", valid),
        ("valid, minted by the SDK", _minted()),
        ("aud an array", token(aud=["other", ACTION])),
        ("no scp claim on a template needing scopes", token(scp=DROP)),
        ("tenant in upper case", token(tid=str(TENANT).upper())),
        ("tenant without hyphens", token(tid=TENANT.hex)),
        ("tenant in braces", token(tid="{" + str(TENANT) + "}")),
        ("tenant not a uuid", token(tid="tenant-1")),
        ("tenant a number", token(tid=7)),
        ("other tenant", token(tid=str(uuid.uuid4()))),
        ("exp as a string", token(exp=str(now + 600))),
        ("exp a boolean", token(exp=True)),
        ("exp missing", token(exp=DROP)),
        ("exp a float", token(exp=now + 600.5)),
        ("exp huge", text_token(base.replace(f'"exp": {now + 600}', '"exp": 1e400'))),
        (
            "exp with 5,000 digits",
            text_token(base.replace(f'"exp": {now + 600}', '"exp": ' + "9" * 5000)),
        ),
        ("exp NaN", text_token(base.replace(f'"exp": {now + 600}', '"exp": NaN'))),
        ("expired", token(exp=now - 10)),
        ("iat in the future", token(iat=now + 3600)),
        ("iat a string", token(iat="now")),
        ("iat null", token(iat=None)),
        ("nbf in the future", token(nbf=now + 3600)),
        ("nbf a list", token(nbf=[1])),
        ("no iss", token(iss=DROP)),
        ("wrong iss", token(iss="someone")),
        ("iss a number", token(iss=1)),
        ("wrong action", token(aud="autopilot.ops.scan")),
        ("aud nested", token(aud=[[ACTION]])),
        ("missing scope", token(scp=["ops:read"])),
        ("scp a string", token(scp="ops:read ops:write")),
        ("jti of 128 characters", token(jti="j" * 128)),
        ("jti of 129 characters", token(jti="j" * 129)),
        ("jti of 300 characters", token(jti="j" * 300)),
        ("jti empty", token(jti="")),
        ("jti a number", token(jti=5)),
        ("jti missing", token(jti=DROP)),
        ("token of 9 kB", token(ctx={"pad": "x" * 9000})),
        ("token just under 8 kB", token(ctx={"pad": "x" * 5500})),
        ("sub with a NUL escape", text_token(base.replace('"user-1"', '"a\\u0000b"'))),
        ("sub with a lone surrogate", text_token(base.replace('"user-1"', '"\\ud800"'))),
        ("sub with a surrogate pair", text_token(base.replace('"user-1"', '"\\ud83d\\ude00"'))),
        (
            "duplicate iss, last wins",
            text_token(base.replace('"iss": "jobforge"', '"iss": "x", "iss": "jobforge"')),
        ),
        ("claims an array", text_token("[1, 2]")),
        ("claims not JSON", text_token("{nope")),
        ("claims with a BOM", text_token("\ufeff" + base)),
        ("claims with whitespace around", text_token(" \n" + base + "\t ")),
        ("header an array", sign("[1]", base)),
        ("header with crit", token({**HEADER, "crit": ["exp"]})),
        ("alg none", token({"alg": "none", "kid": KID})),
        ("alg HS512", token({"alg": "HS512", "kid": KID})),
        ("alg a number", token({"alg": 256, "kid": KID})),
        ("no kid", token({"alg": "HS256"})),
        ("kid empty", token({"alg": "HS256", "kid": ""})),
        ("kid a number", token({"alg": "HS256", "kid": 7})),
        ("unknown kid", token({"alg": "HS256", "kid": "no-such-kid"})),
        ("other secret", sign(json.dumps(HEADER), base, secret=SECRET + "x")),
        ("signature flipped", f"{h}.{p}.{flipped}"),
        ("signature not canonical", f"{h}.{p}.{non_canonical}"),
        ("signature empty", f"{h}.{p}."),
        ("signature padded", f"{h}.{p}.{s}="),
        ("four parts", f"{h}.{p}.{s}.x"),
        ("two parts", f"{h}.{p}"),
        ("segment with +", f"{h}+.{p}.{s}"),
        ("segment of one character", f"{h}.A.{s}"),
        ("empty", ""),
        ("spaces", "   "),
        ("non-ASCII", f"{h}.{p}é.{s}"),
    ]


def _minted() -> str:
    return generate_policy_token(
        secret=SECRET,
        kid=KID,
        tenant_id=TENANT,
        actor_id="user-1",
        action=ACTION,
        scopes=["ops:read", "ops:write"],
    )


@pytest.fixture(scope="module")
def service(enabled_db_url: str) -> Iterator[RoleSession]:
    session = RoleSession(enabled_db_url, "service_role")
    session.call("jobforge_add_policy_key", p_kid=KID, p_secret=SECRET)
    yield session
    session.close()


def test_sdk_and_database_give_the_same_verdict(service: RoleSession) -> None:
    required = service.call("jobforge_get_template", p_template_key=ACTION)["required_scopes"]
    mismatches = []
    table = _tokens()
    verdicts: dict[str, str | None] = {}
    for name, tok in table:
        offline = validate_policy_token(
            tok, KEYS, action=ACTION, required_scopes=required, tenant_id=TENANT
        )
        verdicts[name] = offline.reason
        online = service.call(
            "jobforge_verify_policy_token",
            p_tenant_id=TENANT,
            p_template_key=ACTION,
            p_policy_token=tok,
        )
        expected = "invalid token" if offline.reason in KEY_PROBLEMS else offline.reason
        if (offline.allowed, expected) != (online["allowed"], online["reason"]):
            mismatches.append((name, offline.reason, online["reason"]))
    assert mismatches == []
    # The cases the issue found the two disagreeing on, now refused or accepted by both.
    assert verdicts["exp as a string"] == "malformed"
    assert verdicts["no iss"] == "wrong issuer"
    assert verdicts["jti of 300 characters"] == "malformed"
    assert verdicts["token of 9 kB"] == "malformed"
    assert verdicts["tenant in upper case"] is None
    assert verdicts["tenant without hyphens"] is None
    assert sum(reason is None for reason in verdicts.values()) >= 8
