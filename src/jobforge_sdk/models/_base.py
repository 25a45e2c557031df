"""Shared pydantic configuration for rows (lenient: the database may add columns) and
params (strict: unknown keyword arguments are a caller's typo, refused before any I/O)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, StringConstraints

__all__ = ["NonEmptyStr", "Params", "Row", "TenantId"]

NonEmptyStr = Annotated[str, StringConstraints(min_length=1, max_length=255)]
TenantId = UUID


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
