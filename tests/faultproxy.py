"""A small HTTP proxy on 127.0.0.1 in front of the moto S3 server that injects the faults a real S3 gives:
503 SlowDown, 500 InternalError, connection resets, and requests held until a test has killed their client."""

from __future__ import annotations

import http.client
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

ERRORS = {
    "503": (503, b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"),
    "500": (500, b"<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>"),
}
MIX = ("503", "500", "reset")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection", "upgrade"}


@dataclass
class Rule:
    """Requests whose `METHOD path?query` matches `pattern` get `fault` ("503", "500", "reset", "hold", or
    "mix": 503, 500 and reset in turn), `times` times (None: always); every `every`-th match only."""

    pattern: str
    fault: str
    times: int | None = None
    every: int = 1
    seen: int = 0
    injected: int = 0


@dataclass
class FaultProxy:
    target: str
    rules: list[Rule] = field(default_factory=list)
    held: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    requests: int = 0
    served: int = 0  # bytes of the bodies of GET responses passed on
    largest_upload: int = 0  # bytes of the largest PUT body passed on

    @property
    def injected(self) -> int:
        return sum(rule.injected for rule in self.rules)

    def fault_for(self, line: str) -> str | None:
        with _LOCK:
            self.requests += 1
            for rule in self.rules:
                if re.search(rule.pattern, line) and (rule.times is None or rule.injected < rule.times):
                    rule.seen += 1
                    if rule.seen % rule.every == 0:
                        rule.injected += 1
                        return MIX[rule.injected % len(MIX)] if rule.fault == "mix" else rule.fault
        return None

    def start(self) -> str:
        proxy = self
        target = urlsplit(self.target)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while size := int(self.rfile.readline().split(b";")[0], 16):
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    self.rfile.readline()
                    return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _handle(self) -> None:
                body = self._body()
                fault = proxy.fault_for(f"{self.command} {self.path}")
                if fault == "hold":
                    proxy.held.set()
                    proxy.release.wait(60)
                    fault = "reset"
                if fault == "reset":
                    self.close_connection = True
                    self.connection.close()
                    return
                if fault in ERRORS:
                    status, payload = ERRORS[fault]
                    self.send_response(status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                payload = response.read()
                with _LOCK:
                    if self.command == "GET":
                        proxy.served += len(payload)
                    elif self.command == "PUT":
                        proxy.largest_upload = max(proxy.largest_upload, len(body))
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in HOP_BY_HOP:
                        self.send_header(key, value)
                length = response.getheader("Content-Length") if self.command == "HEAD" else None
                self.send_header("Content-Length", length or str(len(payload)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(payload)
                upstream.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


_LOCK = threading.Lock()
