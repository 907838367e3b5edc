"""service: the REST API over the case workflow (``create_app``) and its API keys."""

from .app import create_app

__all__ = ["create_app"]
