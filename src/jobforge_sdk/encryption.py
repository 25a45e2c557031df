"""Field encryption at rest: payload fields the database stores only as ciphertext.

A template's ``encrypt_fields`` (or ``submit_event(..., encrypt_fields=[...])``) names
top-level fields of a job's inputs or an event's payload. The SDK replaces each one's
value with a ciphertext string before the call leaves the process, and turns it back
into the value when a caller holding the key reads it (``list_events``, the worker before
the handler runs); the database, its audit trail and its log only ever see the
ciphertext. Only top-level names are supported, not dotted paths into nested objects: a
nested secret is encrypted with the object that holds it.

Keys come from ``JOBFORGE_ENCRYPTION_KEYS`` (``FeatureFlags.encryption_keys``): one or
more ``key_id:base64-of-32-bytes`` entries separated by commas or whitespace. The first
key encrypts; every listed key decrypts. Rotation is adding a new key in front and
keeping the old ones listed for as long as rows encrypted with them are kept.

A ciphertext is one string, ``jfenc:v1:<key id>:<base64url(nonce | ciphertext | tag)>``:
AES-256-GCM with a random 96-bit nonce over the value's JSON text. The associated data
binds it to where it belongs (tenant, the template or event type, the field name), so a
ciphertext copied into another tenant's row or another field does not decrypt.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from jobforge_sdk.errors import ConfigurationError, DecryptionError, InvalidInputError

if TYPE_CHECKING:
    from jobforge_sdk.flags import FeatureFlags
    from jobforge_sdk.models.events import EventRow
    from jobforge_sdk.models.jobs import JobRow

__all__ = [
    "ENCRYPTION_KEYS_VAR",
    "ENVELOPE_PREFIX",
    "MAX_ENCRYPT_FIELDS",
    "KeyRing",
    "decrypt_event",
    "decrypt_fields",
    "decrypt_job",
    "encrypt_fields",
    "event_scope",
    "is_ciphertext",
    "job_scope",
    "keys_of",
]

ENCRYPTION_KEYS_VAR: Final = "JOBFORGE_ENCRYPTION_KEYS"
#: What every ciphertext starts with; the database checks encrypted fields for it.
ENVELOPE_PREFIX: Final = "jfenc:v1:"
#: At most this many fields are encrypted per payload (the database says the same of a
#: template's encrypt_fields).
MAX_ENCRYPT_FIELDS: Final = 32

_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_FIELD = re.compile(r"[^.\s]{1,255}")
_NONCE_BYTES = 12
_KEY_BYTES = 32

T = TypeVar("T")


def is_ciphertext(value: Any) -> bool:
    """Whether ``value`` is a string shaped like a ciphertext (not whether it decrypts)."""
    return isinstance(value, str) and value.startswith(ENVELOPE_PREFIX)


def job_scope(template_key: str) -> str:
    """What a template job's encrypted inputs are bound to, beside tenant and field."""
    return f"job:{template_key}"


def event_scope(event_type: str) -> str:
    """What an event's encrypted payload fields are bound to, beside tenant and field."""
    return f"event:{event_type}"


@dataclass(frozen=True, slots=True, repr=False)
class KeyRing:
    """The keys of ``JOBFORGE_ENCRYPTION_KEYS``: the first encrypts, all decrypt.
    Its ``repr`` names the key ids only."""

    keys: tuple[tuple[str, bytes], ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise ConfigurationError(f"{ENCRYPTION_KEYS_VAR}: no key given")
        for key_id, key in self.keys:
            if not _KEY_ID.fullmatch(key_id):
                raise ConfigurationError(
                    f"{ENCRYPTION_KEYS_VAR}: key id {key_id[:40]!r} must be 1 to 32 letters, "
                    "digits, _ or -"
                )
            if len(key) != _KEY_BYTES:
                raise ConfigurationError(
                    f"{ENCRYPTION_KEYS_VAR}: key {key_id} must be 32 bytes (AES-256), "
                    f"not {len(key)}"
                )
        ids = [key_id for key_id, _ in self.keys]
        if len(set(ids)) != len(ids):
            raise ConfigurationError(f"{ENCRYPTION_KEYS_VAR}: a key id is listed twice")

    def __repr__(self) -> str:
        return f"KeyRing(key_ids={list(self.key_ids)!r})"

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(key_id for key_id, _ in self.keys)

    @property
    def primary_id(self) -> str:
        """The id of the key new ciphertexts are made with."""
        return self.keys[0][0]

    @classmethod
    def parse(cls, text: str) -> KeyRing:
        """Read ``key_id:base64key`` entries separated by commas or whitespace. Errors
        name the variable and the key id, never key material."""
        entries = [entry for entry in re.split(r"[,\s]+", text.strip()) if entry]
        keys: list[tuple[str, bytes]] = []
        for position, entry in enumerate(entries, start=1):
            key_id, colon, encoded = entry.partition(":")
            if not colon:
                raise ConfigurationError(
                    f"{ENCRYPTION_KEYS_VAR}: entry {position} must read key_id:base64key"
                )
            try:
                key = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                raise ConfigurationError(
                    f"{ENCRYPTION_KEYS_VAR}: key {key_id[:40]} is not valid base64"
                ) from None
            keys.append((key_id, key))
        return cls(tuple(keys))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KeyRing | None:
        """The ring of ``JOBFORGE_ENCRYPTION_KEYS``, or ``None`` when it is unset or empty."""
        text = (os.environ if environ is None else environ).get(ENCRYPTION_KEYS_VAR, "")
        return cls.parse(text) if text.strip() else None

    @staticmethod
    def generate_entry(key_id: str) -> str:
        """A new ``key_id:base64key`` entry with a random key (for operators)."""
        if not _KEY_ID.fullmatch(key_id):
            raise InvalidInputError("key_id: must be 1 to 32 letters, digits, _ or -")
        return f"{key_id}:{base64.b64encode(secrets.token_bytes(_KEY_BYTES)).decode()}"

    def _key(self, key_id: str) -> bytes | None:
        return next((key for kid, key in self.keys if kid == key_id), None)

    def encrypt(self, value: Any, *, tenant_id: UUID | str, scope: str, field: str) -> str:
        """``value`` (any JSON value) as a ciphertext string bound to tenant, scope, field."""
        key_id, key = self.keys[0]
        nonce = secrets.token_bytes(_NONCE_BYTES)
        plaintext = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
        sealed = AESGCM(key).encrypt(nonce, plaintext, _bound(key_id, tenant_id, scope, field))
        body = base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode()
        return f"{ENVELOPE_PREFIX}{key_id}:{body}"

    def decrypt(self, envelope: str, *, tenant_id: UUID | str, scope: str, field: str) -> Any:
        """The JSON value inside a ciphertext. ``DecryptionError`` (naming ``field`` and
        the key id) for a malformed one, an unknown key id, a wrong key, a ciphertext
        altered or moved to another tenant, scope or field."""
        key_id, body = _split(envelope, field)
        key = self._key(key_id)
        if key is None:
            raise DecryptionError(
                f"{field}: encrypted with key {key_id}, which {ENCRYPTION_KEYS_VAR} does not "
                f"list (it has {', '.join(self.key_ids)})",
                field=field,
                key_id=key_id,
            )
        try:
            plaintext = AESGCM(key).decrypt(
                body[:_NONCE_BYTES], body[_NONCE_BYTES:], _bound(key_id, tenant_id, scope, field)
            )
        except InvalidTag:
            raise DecryptionError(
                f"{field}: the ciphertext does not decrypt with key {key_id} (a wrong key, "
                "or a ciphertext altered or moved from another tenant or field)",
                field=field,
                key_id=key_id,
            ) from None
        return json.loads(plaintext)

    def reencrypt(self, envelope: str, *, tenant_id: UUID | str, scope: str, field: str) -> str:
        """The same value under the first key (for copying data after a rotation)."""
        value = self.decrypt(envelope, tenant_id=tenant_id, scope=scope, field=field)
        return self.encrypt(value, tenant_id=tenant_id, scope=scope, field=field)


def _bound(key_id: str, tenant_id: UUID | str, scope: str, field: str) -> bytes:
    # The associated data: authenticated, not encrypted, not stored (the reader rebuilds
    # it from where it found the ciphertext). A JSON array, so no two bindings collide.
    return json.dumps(["jfenc:v1", key_id, str(tenant_id).lower(), scope, field]).encode()


def _split(envelope: str, field: str) -> tuple[str, bytes]:
    if not is_ciphertext(envelope):
        raise DecryptionError(f"{field}: not a ciphertext", field=field)
    key_id, colon, encoded = envelope[len(ENVELOPE_PREFIX) :].partition(":")
    if not colon or not _KEY_ID.fullmatch(key_id):
        raise DecryptionError(f"{field}: a malformed ciphertext (no key id)", field=field)
    try:
        body = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError):
        body = b""
    if len(body) < _NONCE_BYTES + 16 + 1:
        raise DecryptionError(
            f"{field}: a malformed ciphertext (key {key_id})", field=field, key_id=key_id
        )
    return key_id, body


@functools.lru_cache(maxsize=8)
def _parsed(text: str) -> KeyRing:
    return KeyRing.parse(text)


def keys_of(flags: FeatureFlags) -> KeyRing | None:
    """The key ring a client's flags carry (parsed once per distinct value), or ``None``."""
    secret = flags.encryption_keys
    return None if secret is None else _parsed(secret.get_secret_value())


# -- payloads ---------------------------------------------------------------------------


def check_field_names(names: Any, where: str) -> list[str]:
    """``encrypt_fields`` as a list of distinct top-level names, or ``InvalidInputError``."""
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise InvalidInputError(
            "encrypt_fields: must be a list of field names", field="encrypt_fields"
        )
    if len(names) > MAX_ENCRYPT_FIELDS:
        raise InvalidInputError(
            f"encrypt_fields: at most {MAX_ENCRYPT_FIELDS} fields", field="encrypt_fields"
        )
    for index, name in enumerate(names):
        if not isinstance(name, str) or not _FIELD.fullmatch(name):
            raise InvalidInputError(
                f"encrypt_fields.{index}: must be the name of a top-level field of the "
                f"{where} (no dots, no spaces, 1 to 255 characters)",
                field=f"encrypt_fields.{index}",
            )
    if len(set(names)) != len(names):
        raise InvalidInputError("encrypt_fields: a field is named twice", field="encrypt_fields")
    return list(names)


def encrypt_fields(
    payload: Mapping[str, Any],
    names: Sequence[str],
    *,
    keys: KeyRing | None,
    tenant_id: UUID | str,
    scope: str,
    where: str,
    required: bool,
) -> dict[str, Any]:
    """``payload`` with the value of each named field encrypted. ``required``: a named
    field must be in the payload (a per-call list); otherwise an absent or null one is
    left out (a template's optional input). Raises before anything is sent:
    ``InvalidInputError`` for a missing field, ``ConfigurationError`` naming the field
    when there are no keys."""
    result = dict(payload)
    for name in names:
        if result.get(name) is None:
            if required and name not in result:
                raise InvalidInputError(
                    f"encrypt_fields: {where}.{name} is not in the {where}",
                    field="encrypt_fields",
                )
            if not required:
                continue
        if is_ciphertext(result[name]):
            continue  # already a ciphertext (a value read back and sent again)
        if keys is None:
            raise ConfigurationError(
                f"{where}.{name}: is to be stored encrypted, but {ENCRYPTION_KEYS_VAR} is not set"
            )
        result[name] = keys.encrypt(result[name], tenant_id=tenant_id, scope=scope, field=name)
    return result


def decrypt_fields(
    payload: T,
    *,
    keys: KeyRing | None,
    tenant_id: UUID | str,
    scope: str,
    where: str,
    required: bool = False,
) -> T:
    """``payload`` with every top-level ciphertext decrypted (the same object when it
    holds none). Without keys, ciphertexts are left as they are, unless ``required`` (a
    worker about to run a handler), which raises ``DecryptionError``."""
    if not isinstance(payload, dict):
        return payload
    found = [name for name, value in payload.items() if is_ciphertext(value)]
    if not found:
        return payload
    if keys is None:
        if not required:
            return payload
        name = found[0]
        key_id, _ = _split(payload[name], f"{where}.{name}")
        raise DecryptionError(
            f"{where}.{name}: encrypted with key {key_id}, and {ENCRYPTION_KEYS_VAR} is not set",
            field=f"{where}.{name}",
            key_id=key_id,
        )
    result = dict(payload)
    for name in found:
        try:
            result[name] = keys.decrypt(payload[name], tenant_id=tenant_id, scope=scope, field=name)
        except DecryptionError as exc:
            field = f"{where}.{name}"
            raise DecryptionError(
                f"{where}.{exc.message}", field=field, key_id=exc.key_id
            ) from None
    return result  # type: ignore[return-value]


def decrypt_event(row: EventRow, keys: KeyRing | None) -> EventRow:
    """An event row with its encrypted payload fields decrypted (as it was without keys)."""
    payload = decrypt_fields(
        row.payload,
        keys=keys,
        tenant_id=row.tenant_id,
        scope=event_scope(row.event_type),
        where="payload",
    )
    return row if payload is row.payload else row.model_copy(update={"payload": payload})


def decrypt_job(job: JobRow, keys: KeyRing | None, *, required: bool = False) -> JobRow:
    """A template job with its encrypted inputs decrypted (any other job as it is)."""
    payload = job.payload
    if not isinstance(payload, dict) or payload.get("template_key") != job.type:
        return job
    inputs = decrypt_fields(
        payload.get("inputs"),
        keys=keys,
        tenant_id=job.tenant_id,
        scope=job_scope(job.type),
        where="inputs",
        required=required,
    )
    if inputs is payload.get("inputs"):
        return job
    return job.model_copy(update={"payload": {**payload, "inputs": inputs}})
