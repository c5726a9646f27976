"""The web adapter: `create_app(settings)`, the one composition root of the server."""

from .app import DRIVERS, SERVICE, SETTINGS, create_app
from .settings import Settings

__all__ = ["DRIVERS", "SERVICE", "SETTINGS", "Settings", "create_app"]
