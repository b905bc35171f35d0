"""The HTTP relay: S3-style bucket notifications in (S3 via SNS or EventBridge, MinIO webhooks), events out.

A sender retries what is not answered 2xx, so the relay answers 200 only once the events are sent,
400 for a body it cannot read (retrying would not help) and 503 when the Prefect API is unreachable.
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable, Iterable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from openimages_etl.production.events import relay_events

MAX_BODY = 1 << 20  # notifications are a few KB; anything bigger is not one
logger = logging.getLogger(__name__)

Emit = Callable[[list[dict[str, Any]]], None]


class RelayServer(ThreadingHTTPServer):
    """Turns POSTs to any path into events (start it with `serve_forever`); GET answers health checks.
    With `token`, requests must send `Authorization: Bearer <token>` (or the bare token)."""

    def __init__(self, host: str, port: int, emit: Emit, patterns: Iterable[str], token: str | None = None):
        super().__init__((host, port), _Handler)
        self.emit, self.patterns, self.token = emit, tuple(patterns), token


class _Handler(BaseHTTPRequestHandler):
    server: RelayServer
    server_version = "openimages-etl-relay"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._answer(HTTPStatus.OK, {"status": "ok"})

    def do_POST(self) -> None:  # noqa: N802
        if not self._authorised():
            return self._answer(HTTPStatus.UNAUTHORIZED, {"error": "missing or wrong token"})
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"body over {MAX_BODY} bytes"})
        try:
            events, notification = relay_events(self.rfile.read(length), self.server.patterns)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return self._answer(HTTPStatus.BAD_REQUEST, {"error": f"not a bucket notification: {exc!r}"})
        if notification.subscribe_url:
            # Confirming means fetching a URL taken from the request: left to the operator, not done blindly.
            logger.warning("SNS subscription waiting for confirmation: open %s", notification.subscribe_url)
        try:
            if events:
                self.server.emit(events)
        except Exception as exc:  # the sender will retry; say why in our log
            logger.error("could not emit %d events: %s: %s", len(events), type(exc).__name__, exc)
            return self._answer(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "Prefect API unavailable, retry later"})
        urls = [e["resource"]["prefect.resource.id"] for e in events]
        for url in urls:
            logger.info("emitted openimages.object.created for %s", url)
        self._answer(HTTPStatus.OK, {"emitted": urls})

    def _authorised(self) -> bool:
        token = self.server.token
        if not token:
            return True
        sent = (self.headers.get("Authorization") or "").removeprefix("Bearer ").strip()
        return hmac.compare_digest(sent.encode(), token.encode())

    def _answer(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # route access logs through logging
        logger.debug("%s %s", self.address_string(), format % args)
