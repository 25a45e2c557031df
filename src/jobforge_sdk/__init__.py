"""JobForge: a Postgres-native, multi-tenant job queue and execution plane."""

from __future__ import annotations

from .errors import (
    ConfigurationError,
    ConflictError,
    DatabaseError,
    FeatureDisabledError,
    InvalidInputError,
    JobForgeError,
    MigrationError,
    NotFoundError,
    PermissionDeniedError,
    PolicyDeniedError,
    TransportError,
)
from .migrate import Migrator

__version__ = "0.1.0"

__all__ = [
    "ConfigurationError",
    "ConflictError",
    "DatabaseError",
    "FeatureDisabledError",
    "InvalidInputError",
    "JobForgeError",
    "MigrationError",
    "Migrator",
    "NotFoundError",
    "PermissionDeniedError",
    "PolicyDeniedError",
    "TransportError",
    "__version__",
]
