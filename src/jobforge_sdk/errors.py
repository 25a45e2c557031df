"""The SDK's exception tree, and the one place where server errors become SDK errors.

Both transports (direct Postgres and Supabase/PostgREST) surface the same SQLSTATE codes,
so a caller sees the same exception whichever way the call travelled::

    JobForgeError
    ├── InvalidInputError        PT400, or pydantic validation before any I/O
    ├── PermissionDeniedError    PT403, 42501 (grants, RLS)
    │   └── PolicyDeniedError    PT403 raised by a policy-token check
    ├── NotFoundError            PT404
    ├── ConflictError            PT409
    ├── FeatureDisabledError     a gated method called with strict=True and its flag off
    ├── ConfigurationError       a client that cannot be built as configured
    ├── MigrationError           the migration runner could not finish
    ├── TransportError           network failure, statement timeout (57014), or the HTTP
    │                            endpoint unreachable (``retryable`` says if safe)
    ├── DatabaseError            any other server-side error
    ├── DecryptionError          an encrypted field that does not decrypt (unknown key id,
    │                            wrong key, altered or moved ciphertext): ``field``, ``key_id``
    └── NonRetryableError        raised by a job handler, never by the SDK: the job failed
                                 for good, so the worker makes it dead without a retry

An API gateway in front of PostgREST (Supabase's) refuses a wrong or missing API key
before the database sees the request, with a body that has a message and no code; those
refusals are ``PermissionDeniedError`` too.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConfigurationError",
    "ConflictError",
    "DatabaseError",
    "DecryptionError",
    "FeatureDisabledError",
    "InvalidInputError",
    "JobForgeError",
    "MigrationError",
    "NonRetryableError",
    "NotFoundError",
    "PermissionDeniedError",
    "PolicyDeniedError",
    "TransportError",
    "error_from_sqlstate",
]


class JobForgeError(Exception):
    """Base of every error the SDK raises on purpose."""

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details = details


class InvalidInputError(JobForgeError, ValueError):
    """Input was refused; ``field`` names the offending field when it is known."""

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        code: str | None = "PT400",
        details: Any = None,
    ) -> None:
        super().__init__(message, code=code, details=details)
        self.field = field if field is not None else _field_of(message)


class PermissionDeniedError(JobForgeError):
    """The caller may not do this: another tenant's data, a missing grant, RLS."""


class PolicyDeniedError(PermissionDeniedError):
    """A policy token was missing or refused; the message gives the reason."""


class NotFoundError(JobForgeError):
    """No such job, template, trigger or run for this tenant."""


class ConflictError(JobForgeError):
    """The object is in a state that does not allow the operation."""


class FeatureDisabledError(JobForgeError):
    """A gated method was called with ``strict=True`` while its feature flag is off."""


class ConfigurationError(JobForgeError):
    """The client or a command cannot run as configured (missing secret, bad URL, ...)."""


class MigrationError(JobForgeError):
    """The migration runner stopped; nothing of the failing file was applied."""


class TransportError(JobForgeError):
    """The database or the HTTP endpoint could not be reached, or the call timed out.

    ``retryable`` is true when the call is known not to have taken effect, or the
    operation is idempotent, so trying again is safe.
    """

    def __init__(self, message: str, *, retryable: bool = False, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retryable = retryable


class DatabaseError(JobForgeError):
    """A server error outside the documented contract (a bug or an outage)."""


class DecryptionError(JobForgeError):
    """An encrypted payload field could not be decrypted (``jobforge_sdk.encryption``):
    ``field`` names it (``inputs.ssn``), ``key_id`` the key it names when it can be read.
    The message never holds key material or the value."""

    def __init__(
        self, message: str, *, field: str | None = None, key_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.field = field
        self.key_id = key_id


class NonRetryableError(JobForgeError):
    """Raised by a handler whose job cannot succeed however often it runs (bad input, a
    target that no longer exists): the worker reports the failure as not retryable, and
    the database makes the job ``dead`` at once instead of spending its other attempts."""


# A PT403 whose message starts with this prefix comes from a policy-token check.
POLICY_DENIED_PREFIX = "policy token refused"

# What Supabase's API gateway answers (HTTP 401, no ``code``) for a wrong or missing key.
API_KEY_REFUSALS = frozenset({"Invalid API key", "No API key found in request"})

# Text PostgreSQL cannot hold: a NUL character (22P05), a character the encoding cannot
# represent (22021). Both are the caller's input, like every data exception (22xxx).
UNTRANSLATABLE_CHARACTER = "22P05"
CHARACTER_NOT_IN_REPERTOIRE = "22021"

# A statement cancelled by statement_timeout (or by an operator): rolled back, so nothing
# of the call took effect.
STATEMENT_CANCELLED = "57014"

_BY_CODE: dict[str, type[JobForgeError]] = {
    "PT400": InvalidInputError,
    "PT403": PermissionDeniedError,
    "PT404": NotFoundError,
    "PT409": ConflictError,
    "42501": PermissionDeniedError,
    # PostgREST's own codes for a bad or missing JWT.
    "PGRST301": PermissionDeniedError,
    "PGRST302": PermissionDeniedError,
}


def _field_of(message: str) -> str | None:
    """The field an input error names: server messages read ``field: reason``."""
    head, sep, _ = message.partition(":")
    if not sep or not head or " " in head.strip():
        return None
    return head.strip()


def error_from_sqlstate(code: str | None, message: str, *, details: Any = None) -> JobForgeError:
    """Build the SDK exception for a server error identified by its SQLSTATE (or PGRST code)."""
    if code is None and message in API_KEY_REFUSALS:
        return PermissionDeniedError(message, code=None, details=details)
    if code == STATEMENT_CANCELLED:
        return TransportError(f"statement timeout: {message}", retryable=True, code=code)
    if code == "PT403" and message.startswith(POLICY_DENIED_PREFIX):
        return PolicyDeniedError(message, code=code, details=details)
    if code is not None and code.startswith("22"):
        # Data exceptions (a malformed uuid, an out-of-range number) are invalid input too.
        return InvalidInputError(message, code=code, details=details)
    cls = _BY_CODE.get(code or "", DatabaseError)
    if cls is InvalidInputError:
        return InvalidInputError(message, code=code, details=details)
    return cls(message, code=code, details=details)
