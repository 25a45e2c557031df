from __future__ import annotations

import pytest

from jobforge_sdk.errors import (
    ConflictError,
    DatabaseError,
    InvalidInputError,
    JobForgeError,
    NotFoundError,
    PermissionDeniedError,
    PolicyDeniedError,
    TransportError,
    error_from_sqlstate,
)


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        ("PT400", "type: must not be empty", InvalidInputError),
        ("PT403", "tenant_id: caller may not act for tenant x", PermissionDeniedError),
        ("PT403", "policy token refused: expired", PolicyDeniedError),
        ("PT404", "job 1 not found", NotFoundError),
        ("PT409", "job 1 is succeeded", ConflictError),
        ("42501", "permission denied for function jobforge_claim_jobs", PermissionDeniedError),
        ("22P02", 'invalid input syntax for type uuid: "x"', InvalidInputError),
        ("PGRST301", "JWSError", PermissionDeniedError),
        ("XX000", "internal error", DatabaseError),
        (None, "no code", DatabaseError),
    ],
)
def test_sqlstate_table(code: str | None, message: str, expected: type[JobForgeError]) -> None:
    error = error_from_sqlstate(code, message)
    assert type(error) is expected
    assert error.code == code
    assert str(error) == message


def test_input_errors_carry_the_field_from_the_message() -> None:
    error = error_from_sqlstate("PT400", "jobs[3].type: must not be empty")
    assert isinstance(error, InvalidInputError)
    assert error.field == "jobs[3].type"
    assert error_from_sqlstate("PT400", "something odd happened").field is None  # type: ignore[attr-defined]


def test_policy_denied_is_a_permission_error() -> None:
    assert issubclass(PolicyDeniedError, PermissionDeniedError)
    assert issubclass(InvalidInputError, ValueError)


def test_a_gateway_refusal_of_the_api_key_is_permission_denied() -> None:
    for message in ("Invalid API key", "No API key found in request"):
        error = error_from_sqlstate(None, message)
        assert type(error) is PermissionDeniedError
        assert (error.message, error.code) == (message, None)
    assert type(error_from_sqlstate(None, "something else")) is DatabaseError


def test_a_statement_timeout_is_a_retryable_transport_error() -> None:
    error = error_from_sqlstate("57014", "canceling statement due to statement timeout")
    assert isinstance(error, TransportError)
    assert (error.code, error.retryable) == ("57014", True)
    assert error.message == "statement timeout: canceling statement due to statement timeout"
