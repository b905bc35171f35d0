"""The one step that sends the watcher's and the relay's events to the Prefect API."""

from __future__ import annotations

import asyncio
from typing import Any

from prefect.events import Event
from prefect.events.clients import get_events_client
from prefect.settings import PREFECT_API_URL

from openimages_etl.errors import UsageError


def require_api() -> None:
    """Refuse to start a bridge without a server: Prefect would start a throwaway one that nothing is deployed on."""
    if not PREFECT_API_URL.value():
        raise UsageError("PREFECT_API_URL is not set: point it at the server running the deployments")


def send_events(events: list[dict[str, Any]]) -> None:
    """Send the events and return once the server has confirmed them (a ping after each): a caller that
    remembers what it announced, or answers a notification's sender, must not do so for a lost event."""
    require_api()
    asyncio.run(_send([Event(**event) for event in events]))


async def _send(events: list[Event]) -> None:
    async with get_events_client(reconnection_attempts=2, checkpoint_every=1) as client:
        for event in events:
            await client.emit(event)
