"""Storage events as plain data: the `openimages.object.created` event, S3-style notifications, the watcher's state.

Nothing here talks to Prefect: the watcher and the relay hand the event dicts built here to one emit step
(`openimages_etl.deployments.emit`), so this logic is tested without a server.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

from openimages_etl.storage.objects import ObjectVersion, list_objects, matches, normalise_etag

OBJECT_CREATED = "openimages.object.created"


def object_event(obj: ObjectVersion, via: str) -> dict[str, Any]:
    """The event for one object version (the fields of `prefect.events.Event`); its id is derived from
    URL and version, so the watcher and the relay, or one notification delivered twice, send the same id."""
    resource = {
        "prefect.resource.id": obj.url,
        "prefect.resource.name": obj.url.rsplit("/", 1)[-1],
        "openimages.etag": obj.version,
    }
    if obj.size is not None:
        resource["openimages.size"] = str(obj.size)  # resource labels are strings
    return {
        "id": obj.event_id,
        "event": OBJECT_CREATED,
        "resource": resource,
        "payload": {"url": obj.url, "version": obj.version, "size": obj.size, "via": via},
    }


# --- bucket notifications -------------------------------------------------------------------------


@dataclass(frozen=True)
class Notification:
    """What a posted notification asked for: object versions created, or an SNS subscription to confirm."""

    created: list[ObjectVersion] = field(default_factory=list)
    subscribe_url: str | None = None


def parse_notification(body: bytes | str) -> Notification:
    """Read the JSON that S3 (directly, through SNS or through EventBridge) and MinIO post about new objects.
    Other events (deletions, S3's test event) give an empty list; a body that is not one of these raises ValueError."""
    message = json.loads(body)
    if not isinstance(message, dict):
        raise ValueError("a notification is a JSON object")
    if message.get("Type") == "SubscriptionConfirmation":
        return Notification(subscribe_url=message.get("SubscribeURL"))
    if message.get("Type") == "Notification":  # SNS wraps the S3 message in a string
        return parse_notification(message["Message"])
    if "detail-type" in message:  # EventBridge
        detail = message.get("detail") or {}
        if message["detail-type"] != "Object Created":
            return Notification()
        return Notification([_created(detail["bucket"]["name"], detail["object"]["key"], detail["object"])])
    if "Records" in message or "Event" in message:  # S3 / MinIO records; "Event" is S3's test event
        return Notification(
            [
                # keys in records are form-encoded ("hello world.zip" arrives as "hello+world.zip")
                _created(r["s3"]["bucket"]["name"], unquote_plus(r["s3"]["object"]["key"]), r["s3"]["object"])
                for r in message.get("Records", [])
                if "ObjectCreated" in r.get("eventName", "")
            ]
        )
    raise ValueError("not an S3, SNS, EventBridge or MinIO notification")


def _created(bucket: str, key: str, obj: dict[str, Any]) -> ObjectVersion:
    etag = obj.get("eTag") or obj.get("etag")
    if not etag:
        raise ValueError(f"s3://{bucket}/{key}: the notification carries no ETag")
    size = obj.get("size")
    return ObjectVersion(f"s3://{bucket}/{key}", normalise_etag(str(etag)), int(size) if size is not None else None)


# --- the watcher ----------------------------------------------------------------------------------


class WatchState:
    """The object versions a watcher has already announced: `{url: version}` in a JSON file, replaced atomically,
    so a restarted watcher announces only what is new or changed since."""

    def __init__(self, path: Path):
        self.path = path
        self.fresh = not path.exists()  # a first watch: nothing announced yet
        self.seen: dict[str, str] = {} if self.fresh else json.loads(path.read_text())

    def changed(self, objects: Iterable[ObjectVersion]) -> list[ObjectVersion]:
        return [o for o in objects if self.seen.get(o.url) != o.version]

    def remember(self, objects: Iterable[ObjectVersion], listed: Iterable[ObjectVersion] | None = None) -> None:
        """Record `objects` as announced; with `listed` (the whole listing), forget objects that are gone."""
        if listed is not None:
            present = {o.url for o in listed}
            self.seen = {url: version for url, version in self.seen.items() if url in present}
        self.seen.update({o.url: o.version for o in objects})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.part")
        partial.write_text(json.dumps(self.seen, indent=1, sort_keys=True))
        os.replace(partial, self.path)


def take_baseline(
    source: str, patterns: Iterable[str], state: WatchState, storage_options: dict[str, Any] | None = None
) -> list[ObjectVersion]:
    """Remember what is under the prefix now without announcing it, so that only what appears later is announced."""
    listed = list_objects(source, patterns, storage_options)
    state.remember(listed, listed)
    return listed


def poll_once(
    source: str,
    patterns: Iterable[str],
    state: WatchState,
    emit: Callable[[list[dict[str, Any]]], None],
    storage_options: dict[str, Any] | None = None,
) -> list[ObjectVersion]:
    """List the prefix, emit one event per new or changed object, then remember them. If `emit` raises,
    nothing is remembered and the next poll tries again: an event may repeat, never go missing."""
    listed = list_objects(source, patterns, storage_options)
    new = state.changed(listed)
    if new:
        emit([object_event(o, via="watch") for o in new])
    state.remember(new, listed)
    return new


def relay_events(body: bytes | str, patterns: Iterable[str]) -> tuple[list[dict[str, Any]], Notification]:
    """The events a posted notification asks for (objects whose name matches `patterns`), and the parsed
    notification."""
    notification = parse_notification(body)
    created = [o for o in notification.created if matches(o.url, patterns)]
    return [object_event(o, via="relay") for o in created], notification
