"""The field-encryption module alone (no database): the key ring, the envelope, the
binding to tenant, scope and field, and the errors."""

from __future__ import annotations

import base64
import re
import uuid
from typing import Any

import pytest

from jobforge_sdk import ConfigurationError, DecryptionError, FeatureFlags, KeyRing
from jobforge_sdk.encryption import (
    ENVELOPE_PREFIX,
    check_field_names,
    decrypt_fields,
    encrypt_fields,
    is_ciphertext,
    keys_of,
)
from jobforge_sdk.errors import InvalidInputError

TENANT = uuid.UUID("00000000-0000-4000-8000-0000000000e1")
OTHER = uuid.UUID("00000000-0000-4000-8000-0000000000e2")
OLD = KeyRing.generate_entry("old")
NEW = KeyRing.generate_entry("new")
# What the database checks (jobforge_private.is_ciphertext).
SQL_SHAPE = re.compile(r"^jfenc:v1:[A-Za-z0-9_-]{1,32}:[A-Za-z0-9_-]{39,}$")


def _where(**overrides: Any) -> dict[str, Any]:
    return {"tenant_id": TENANT, "scope": "job:autopilot.ops.scan", "field": "ssn", **overrides}


@pytest.mark.parametrize("value", ["123-45-6789", 0, None, True, [1, "a"], {"k": {"n": 1.5}}, ""])
def test_every_json_value_round_trips_and_the_envelope_names_its_key(value: Any) -> None:
    ring = KeyRing.parse(OLD)
    sealed = ring.encrypt(value, **_where())
    assert sealed.startswith(f"{ENVELOPE_PREFIX}old:")
    assert SQL_SHAPE.match(sealed)
    assert is_ciphertext(sealed)
    assert ring.decrypt(sealed, **_where()) == value


def test_the_same_value_twice_gives_two_ciphertexts() -> None:
    ring = KeyRing.parse(OLD)
    assert ring.encrypt("x", **_where()) != ring.encrypt("x", **_where())


@pytest.mark.parametrize(
    "moved", [{"tenant_id": OTHER}, {"field": "name"}, {"scope": "job:autopilot.ops.diagnose"}]
)
def test_a_ciphertext_moved_to_another_tenant_field_or_scope_does_not_decrypt(
    moved: dict[str, Any],
) -> None:
    ring = KeyRing.parse(OLD)
    sealed = ring.encrypt("secret", **_where())
    with pytest.raises(DecryptionError, match="does not decrypt with key old") as caught:
        ring.decrypt(sealed, **_where(**moved))
    assert caught.value.key_id == "old"


def test_a_tampered_ciphertext_is_a_clear_error() -> None:
    ring = KeyRing.parse(OLD)
    sealed = ring.encrypt("secret", **_where())
    head, body = sealed.rsplit(":", 1)
    flipped = body[:10] + ("A" if body[10] != "A" else "B") + body[11:]
    with pytest.raises(DecryptionError, match=r"^ssn: the ciphertext does not decrypt"):
        ring.decrypt(f"{head}:{flipped}", **_where())
    with pytest.raises(DecryptionError, match="malformed"):
        ring.decrypt(f"{head}:abc", **_where())
    with pytest.raises(DecryptionError, match="no key id"):
        ring.decrypt(f"{ENVELOPE_PREFIX}not a key id!:{body}", **_where())


def test_an_unknown_key_id_or_a_wrong_key_is_a_clear_error() -> None:
    sealed = KeyRing.parse(OLD).encrypt("secret", **_where())
    with pytest.raises(DecryptionError, match=r"key old, which JOBFORGE_ENCRYPTION_KEYS does not"):
        KeyRing.parse(NEW).decrypt(sealed, **_where())
    impostor = KeyRing.generate_entry("old")  # the same id, another key
    with pytest.raises(DecryptionError, match="does not decrypt with key old"):
        KeyRing.parse(impostor).decrypt(sealed, **_where())


def test_rotation_the_first_key_encrypts_and_every_key_decrypts() -> None:
    before = KeyRing.parse(OLD)
    after = KeyRing.parse(f"{NEW}, {OLD}")
    old_sealed = before.encrypt({"a": 1}, **_where())
    assert after.decrypt(old_sealed, **_where()) == {"a": 1}
    assert after.primary_id == "new"
    renewed = after.reencrypt(old_sealed, **_where())
    assert renewed.startswith(f"{ENVELOPE_PREFIX}new:")
    assert KeyRing.parse(NEW).decrypt(renewed, **_where()) == {"a": 1}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "no key given"),
        ("k1", "entry 1 must read key_id:base64key"),
        ("k1:***", "key k1 is not valid base64"),
        (f"k1:{base64.b64encode(b'short').decode()}", "key k1 must be 32 bytes"),
        (f"bad!id:{base64.b64encode(bytes(32)).decode()}", "must be 1 to 32 letters"),
        (f"{OLD},{OLD}", "listed twice"),
    ],
)
def test_a_bad_key_list_names_the_variable_never_the_key(text: str, reason: str) -> None:
    with pytest.raises(ConfigurationError, match=reason) as caught:
        KeyRing.parse(text)
    assert caught.value.message.startswith("JOBFORGE_ENCRYPTION_KEYS: ")
    assert OLD.partition(":")[2] not in caught.value.message


def test_the_flags_read_the_variable_check_it_and_never_show_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("JOBFORGE_ENCRYPTION_KEYS", f"{NEW} {OLD}")
    flags = FeatureFlags()
    ring = keys_of(flags)
    assert ring is not None
    assert ring.key_ids == ("new", "old")
    secret = NEW.partition(":")[2]
    assert secret not in repr(flags) + repr(flags.summary()) + repr(ring)
    assert flags.summary()["JOBFORGE_ENCRYPTION_KEYS"] == "set"
    monkeypatch.setenv("JOBFORGE_ENCRYPTION_KEYS", "new:not-base64!")
    with pytest.raises(ConfigurationError, match="JOBFORGE_ENCRYPTION_KEYS: <hidden>"):
        FeatureFlags()
    monkeypatch.delenv("JOBFORGE_ENCRYPTION_KEYS")
    assert keys_of(FeatureFlags()) is None
    assert KeyRing.from_env({}) is None


def test_payload_helpers_encrypt_named_fields_and_decrypt_what_they_find() -> None:
    ring = KeyRing.parse(OLD)
    where: dict[str, Any] = {"tenant_id": TENANT, "scope": "event:billing.paid"}
    payload = {"card": "4111", "amount": 5, "nested": {"x": 1}}
    sealed = encrypt_fields(
        payload, ["card", "nested"], keys=ring, where="payload", required=True, **where
    )
    assert sealed["amount"] == 5
    assert is_ciphertext(sealed["card"])
    assert is_ciphertext(sealed["nested"])
    assert decrypt_fields(sealed, keys=ring, where="payload", **where) == payload
    # Without keys, a reader gets the ciphertext as stored; a worker is told why it stops.
    assert decrypt_fields(sealed, keys=None, where="payload", **where) is sealed
    with pytest.raises(DecryptionError, match=r"^payload.card: encrypted with key old, and"):
        decrypt_fields(sealed, keys=None, where="payload", required=True, **where)
    with pytest.raises(DecryptionError, match=r"^payload.card: the ciphertext does not") as caught:
        decrypt_fields(sealed, keys=ring, where="payload", tenant_id=OTHER, scope=where["scope"])
    assert caught.value.field == "payload.card"
    # A template's optional input that is absent is left out; a per-call name must exist.
    assert encrypt_fields(
        {"a": 1}, ["card"], keys=ring, where="inputs", required=False, **where
    ) == {"a": 1}
    with pytest.raises(InvalidInputError, match=r"encrypt_fields: payload.card is not in"):
        encrypt_fields({"a": 1}, ["card"], keys=ring, where="payload", required=True, **where)
    with pytest.raises(
        ConfigurationError, match=r"^inputs.card: .*JOBFORGE_ENCRYPTION_KEYS is not"
    ):
        encrypt_fields({"card": "x"}, ["card"], keys=None, where="inputs", required=True, **where)


@pytest.mark.parametrize(
    ("names", "field"),
    [
        ("card", "encrypt_fields"),
        (None, "encrypt_fields"),
        ([1], "encrypt_fields.0"),
        (["ok", "a.b"], "encrypt_fields.1"),
        ([""], "encrypt_fields.0"),
        (["a", "a"], "encrypt_fields"),
        ([f"f{i}" for i in range(33)], "encrypt_fields"),
    ],
)
def test_bad_field_lists_name_the_field(names: Any, field: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        check_field_names(names, "payload")
    assert caught.value.field == field
