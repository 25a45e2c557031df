"""Shared pydantic configuration for rows (lenient: the database may add columns) and
params (strict: unknown keyword arguments are a caller's typo, refused before any I/O)."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, JsonValue, StringConstraints

__all__ = [
    "JsonObject",
    "NonEmptyStr",
    "NoneIsEmpty",
    "Params",
    "PurgeParams",
    "Row",
    "TenantId",
    "check_json",
]

NonEmptyStr = Annotated[str, StringConstraints(min_length=1, max_length=255)]
TenantId = UUID


def _none_is_empty(value: Any) -> Any:
    return {} if value is None else value


# A JSON-object argument left out (``None``, the signature's default) is the empty object:
# said here once, so an operation hands its arguments to the model unchanged.
NoneIsEmpty = BeforeValidator(_none_is_empty)
JsonObject = Annotated[dict[str, JsonValue], NoneIsEmpty]


class Row(BaseModel):
    """A row returned by an RPC. Extra columns are kept, so a newer schema never breaks
    an older SDK."""

    model_config = ConfigDict(extra="allow", frozen=True)


class Params(BaseModel):
    """Arguments of one RPC, named after its parameters without the ``p_`` prefix."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)

    def rpc_args(self) -> dict[str, Any]:
        """JSON-ready named arguments; unset optional values are left to the SQL default."""
        return {f"p_{k}": v for k, v in self.model_dump(mode="json", exclude_none=True).items()}


class PurgeParams(Params):
    """A retention purge: ``purge_expired_events`` and ``purge_audit_logs`` alike."""

    retention_days: Annotated[int, Field(ge=1, le=36500)]


# A \u0000 escape preceded by an even number of backslashes is a real NUL character (an
# odd number means the backslash itself was escaped: the text "\\u0000" is harmless).
_NUL_ESCAPE = re.compile(r"(?:^|[^\\])(?:\\\\)*\\u0000")


def check_json(value: Any, *, max_bytes: int | None = None) -> Any:
    """Refuse what cannot travel as JSON, or is too big, with one C-speed ``json.dumps``.

    JSON fields are typed ``Any`` rather than ``JsonValue``: pydantic's recursive
    ``JsonValue`` check costs tens of microseconds per call on the enqueue hot path.
    """
    try:
        # Default separators: the size then matches PostgreSQL's jsonb text, which is what
        # the database measures against the same limit.
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"must be JSON ({exc})") from None
    if "\\u0000" in text and _NUL_ESCAPE.search(text):
        raise ValueError("must not contain NUL characters (\\u0000): PostgreSQL cannot store them")
    if max_bytes is not None:
        size = len(text.encode())
        if size > max_bytes:
            unit = "MiB" if max_bytes >= 1024 * 1024 else "KiB"
            limit = max_bytes // (1024 * 1024 if unit == "MiB" else 1024)
            raise ValueError(f"must be at most {limit} {unit} of JSON (got {size} bytes)")
    return value
