"""The operator console (``jobforge dashboard``): a small server-rendered web app over the
SDK client. Needs the ``dashboard`` extra (Starlette, Jinja2, uvicorn)."""

from jobforge_sdk.dashboard.app import create_app
from jobforge_sdk.dashboard.settings import DashboardSettings, claims_tenants, is_loopback

__all__ = ["DashboardSettings", "claims_tenants", "create_app", "is_loopback"]
