"""Notification channels beside webhooks: SMS, e-mail, an instant-messaging bot.

A channel is a class with ``send(event: dict) -> None``; it receives every event of a tenant that
has no webhook URL. The default writes the event to the log (no personal data is in events: ids,
states and amounts only). A platform plugs its own in with the setting ``notification_channel``
(``package.module:ClassName``, constructed without arguments); a channel that raises is retried
like a failed webhook.

Example::

    class SmsChannel:
        def send(self, event: dict) -> None:
            gateway.send(to=lookup_phone(event["claim"]["id"]), text=f"售后单状态：{event['event']}")
"""

from __future__ import annotations

import importlib
import logging
from typing import Any, Protocol

from ..errors import RefundlensError

__all__ = ["Channel", "LogChannel", "load_channel"]

log = logging.getLogger("refundlens.notifications")


class Channel(Protocol):
    def send(self, event: dict[str, Any]) -> None: ...


class LogChannel:
    """The default channel: one log line per event."""

    def send(self, event: dict[str, Any]) -> None:
        claim = (event.get("claim") or {}).get("id")
        log.info(
            "notification %s %s claim=%s (log channel)", event.get("id"), event.get("event"), claim
        )


def load_channel(spec: str) -> Channel:
    if not spec or spec == "log":
        return LogChannel()
    module_name, _, class_name = spec.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
        return cls()  # type: ignore[no-any-return]
    except (ImportError, AttributeError, TypeError) as exc:
        raise RefundlensError(
            "settings.invalid", f"notification_channel {spec!r} cannot be loaded: {exc}."
        ) from exc
